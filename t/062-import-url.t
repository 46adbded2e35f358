#!/bin/bash
# nixcache import --from-url: the upstream fixture's caches (t/lib/upstream.sh)
# imported over HTTP and HTTPS, served by nginx + our module, substituted
# by the real Nix client with signatures required; each broken upstream
# fails the run with a message naming it and publishes nothing.

source "$(dirname "$0")/lib/e2e.sh"
source "$(dirname "$0")/lib/upstream.sh"

e2e_init
command -v openssl > /dev/null || skip_all "openssl not installed"

upstream_build
ok $? "upstream caches built" || bail_out "no upstream caches"
upstream_start
ok $? "plain nginx upstream started" || bail_out "no upstream"
redis_start
ok $? "redis-server started" || bail_out "no redis"

CHUNKS=$T/chunks
mkdir -p "$CHUNKS"
chmod 0755 "$CHUNKS"
N=$(echo "$UPSTREAM_CLOSURE" | wc -l)
big=$(basename "$UPSTREAM_BIG" | cut -c1-32)

imp() {
    "$NIXCACHE" import --redis "$REDIS_ADDR" --chunks "$CHUNKS" "$@"
}

locations=""
for c in xz zstd none; do
    for s in http https; do
        if [ $s = http ]; then base=$UPSTREAM_HTTP; else base=$UPSTREAM_HTTPS; fi
        run_ok "import --from-url $s $c" \
            imp --prefix "$s-$c:" --from-url "$base/$c" --cacert "$UPSTREAM_CA" \
                --trusted-key "$UPSTREAM_PUBKEY" $UPSTREAM_CLOSURE
        is "$(redis --scan --pattern "$s-$c:narinfo:*" | wc -l)" "$N" \
           "$s $c: $N narinfos in Redis"
        locations="$locations
        location /$s-$c/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_redis_prefix $s-$c:;
        }"
    done
done

# -r: the closure of the top-level paths only
run_ok "import --from-url -r of the top-level paths" \
    imp --prefix rec: --from-url "$UPSTREAM_HTTP/zstd" -r \
        --trusted-key "$UPSTREAM_PUBKEY" "${UPSTREAM_PATHS[@]}"
is "$(redis --scan --pattern "rec:narinfo:*" | wc -l)" "$N" \
   "-r: the $N narinfos of the closure"

# the CA from the environment, a bare hash as the argument
run_ok "https: CA from NIX_SSL_CERT_FILE, a hash argument" \
    env NIX_SSL_CERT_FILE="$UPSTREAM_CA" "$NIXCACHE" import \
        --redis "$REDIS_ADDR" --chunks "$CHUNKS" --prefix env: \
        --from-url "$UPSTREAM_HTTPS/xz" --trusted-key "$UPSTREAM_PUBKEY" "$big"
ok "$(redis exists "env:narinfo:$big" | grep -q 1; echo $?)" "... imported"
run_fails "https without the CA: refused" \
    env -u NIX_SSL_CERT_FILE -u SSL_CERT_FILE -u CURL_CA_BUNDLE \
        "$NIXCACHE" import --redis "$REDIS_ADDR" --chunks "$CHUNKS" \
        --prefix noca: --from-url "$UPSTREAM_HTTPS/xz" \
        --trusted-key "$UPSTREAM_PUBKEY" "$big"
like "$(cat "$T/log/$E2E_NTESTS.log")" "GET https://.*certificate" \
     "... naming the URL and the certificate problem"
run_ok "again: already present" \
    imp --prefix http-xz: --from-url "$UPSTREAM_HTTP/xz" \
        --trusted-key "$UPSTREAM_PUBKEY" "$UPSTREAM_BIG"
like "$(cat "$T/log/$E2E_NTESTS.log")" "already present" "... skipped"

# failures: non-zero, a message naming the path/URL, nothing published
fails() {
    local name=$1 prefix=$2 re=$3
    shift 3
    run_fails "$name: fails" imp --prefix "$prefix:" "$@"
    like "$(cat "$T/log/$E2E_NTESTS.log")" "$re" "$name: message"
    is "$(redis --scan --pattern "$prefix:narinfo:*" | wc -l)" 0 \
       "$name: no narinfo published"
}
K=(--trusted-key "$UPSTREAM_PUBKEY")
fails "500" e500 "GET $UPSTREAM_HTTP/500/nix-cache-info: HTTP 500" \
    --from-url "$UPSTREAM_HTTP/500" "${K[@]}" "$UPSTREAM_BIG"
fails "truncated" etr "$UPSTREAM_HTTP/truncated/nar/.*(truncated|corrupt|end)" \
    --from-url "$UPSTREAM_HTTP/truncated" "${K[@]}" "$UPSTREAM_BIG"
fails "wronghash" ewh "$UPSTREAM_HTTP/wronghash/nar/.*NAR mismatch" \
    --from-url "$UPSTREAM_HTTP/wronghash" "${K[@]}" "$UPSTREAM_BIG"
fails "badsig" ebs "$big\.narinfo: no valid signature by a trusted key" \
    --from-url "$UPSTREAM_HTTP/badsig" "${K[@]}" "$UPSTREAM_BIG"
fails "unsigned, key given" eus "$big\.narinfo: unsigned" \
    --from-url "$UPSTREAM_HTTP/unsigned" "${K[@]}" "$UPSTREAM_BIG"
fails "unsigned, no key, no --no-check-sigs" eun "no --trusted-key" \
    --from-url "$UPSTREAM_HTTP/unsigned" "$UPSTREAM_BIG"
fails "absent path" eab "not in the cache" \
    --from-url "$UPSTREAM_HTTP/xz" "${K[@]}" \
    /nix/store/00000000000000000000000000000000-absent
run_ok "unsigned with --no-check-sigs: imported" \
    imp --prefix nocheck: --from-url "$UPSTREAM_HTTP/unsigned" \
        --no-check-sigs "$UPSTREAM_BIG"
ok "$(redis exists "nocheck:narinfo:$big" | grep -q 1; echo $?)" "... published"

nginx_start "
    server {
        listen 127.0.0.1:@PORT@;
        $locations
    }"
ok $? "nginx with the module started" || bail_out "no nginx"
chmod -R a+rX "$CHUNKS"
URL=http://127.0.0.1:$NGINX_PORT

for c in xz zstd none; do
    for s in http https; do
        run_ok "$s $c: nix copy --from the imported cache, signatures required" \
            nix_fresh nix copy --option require-sigs true \
                --option trusted-public-keys "$UPSTREAM_PUBKEY" \
                --from "$URL/$s-$c" --to "$T/dst-$s-$c" "${UPSTREAM_PATHS[@]}"
        check_copy "$UPSTREAM_STORE" "$T/dst-$s-$c" "$s $c" "${UPSTREAM_PATHS[@]}"
    done
done

run_ok "upstream_kill" upstream_kill
fails "dead upstream" edead "GET $UPSTREAM_HTTP/xz/nix-cache-info: .*(onnect|refused)" \
    --from-url "$UPSTREAM_HTTP/xz" "${K[@]}" "$UPSTREAM_BIG"

run_ok "nginx stops gracefully (QUIT)" nginx_stop
nginx_log_ok

done_testing
