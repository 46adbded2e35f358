#!/bin/bash
# End to end: an existing flat binary cache, written by Nix itself
# (`nix copy --to file://DIR?compression=X` for X in none, xz, zstd,
# bzip2, signed with a test key), is imported with `nixcache import`,
# each into its own Redis key prefix, served by nginx + our module, and
# substituted by the real Nix client into fresh stores with signatures
# required.

source "$(dirname "$0")/lib/e2e.sh"
source "$(dirname "$0")/e2e/fixtures.sh"

e2e_init

H52='[0123456789abcdfghijklmnpqrsvwxyz]{52}'
COMPRESSIONS="none xz zstd bzip2"

SRC=$T/store
make_fixtures "$SRC" "$T/w"
ok $? "fixture store paths built" || bail_out "no fixtures"

PATHS=("${FIX[text]}" "${FIX[empty]}" "${FIX[tree]}" "${FIX[top]}")
N=$(closure "$SRC" "${PATHS[@]}" | wc -l)

nix-store --generate-binary-cache-key e2e-test-1 "$T/sk" "$T/pk"
PUBKEY=$(cat "$T/pk")

redis_start
ok $? "redis-server started" || bail_out "no redis"

CHUNKS=$T/chunks
mkdir -p "$CHUNKS"
chmod 0755 "$CHUNKS"

locations=""
for c in $COMPRESSIONS; do
    flat=$T/flat-$c
    # Nix's default upload compression, xz, also with NAR listings (.ls).
    extra=""
    [ "$c" = xz ] && extra="&write-nar-listing=true"
    run_ok "nix copy --to file://…?compression=$c$extra (signed)" \
        nix copy --store "$SRC" \
            --to "file://$flat?compression=$c&secret-key=$T/sk$extra" \
            "${PATHS[@]}"
    is "$(ls "$flat"/*.narinfo | wc -l)" "$N" "$c: $N narinfos written by Nix"

    start=$SECONDS
    run_ok "nixcache import of the $c cache" \
        "$NIXCACHE" import --redis "$REDIS_ADDR" --chunks "$CHUNKS" \
            --prefix "e2e-$c:" "$flat"
    note "import ($c) took $((SECONDS - start)) s"
    is "$(redis --scan --pattern "e2e-$c:narinfo:*" | wc -l)" "$N" \
       "$c: $N narinfos in Redis under prefix e2e-$c:"

    locations="$locations
        location /$c/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_redis_prefix e2e-$c:;
        }"
done
chmod -R a+rX "$CHUNKS"
is "$(ls "$T/flat-xz"/*.ls | wc -l)" "$N" "the xz cache has NAR listings too"

# Brotli is a compression Nix writes but nixcache does not read: the
# import must fail loudly and publish nothing.
run_ok "nix copy --to file://…?compression=br" \
    nix copy --store "$SRC" --to "file://$T/flat-br?compression=br" \
        "${PATHS[@]}"
run_fails "nixcache import of a brotli cache fails" \
    "$NIXCACHE" import --redis "$REDIS_ADDR" --chunks "$CHUNKS" \
        --prefix "e2e-br:" "$T/flat-br"
like "$(cat "$T/log/$E2E_NTESTS.log")" "[Cc]ompression.*br" \
     "... naming the compression"
is "$(redis --scan --pattern "e2e-br:*" | wc -l)" 0 \
   "... and publishes nothing under its prefix"

nginx_start "
    sendfile on;

    server {
        listen 127.0.0.1:@PORT@;
        $locations

        location /resigned/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_redis_prefix e2e-resigned:;
        }
    }"
ok $? "nginx with the module started" || bail_out "no nginx"
URL=http://127.0.0.1:$NGINX_PORT

h=$(basename "${FIX[top]}" | cut -c1-32)
for c in $COMPRESSIONS; do
    ni=$(curl -s "$URL/$c/$h.narinfo")
    like "$ni" "URL: nar/$H52\.nar\.zst" "$c: imported narinfo points at .nar.zst"
    like "$ni" "Sig: e2e-test-1:" "$c: imported narinfo keeps its signature"
    like "$ni" "Deriver: [a-z0-9]{32}-e2e-top\.drv" \
         "$c: imported narinfo keeps its Deriver"
    ni=$(curl -s "$URL/$c/$(basename "${FIX[text]}" | cut -c1-32).narinfo")
    like "$ni" "CA: fixed:r:sha256:" "$c: imported narinfo keeps its CA"

    DST=$T/dst-$c
    run_ok "$c: nix copy --from the imported cache, signatures required" \
        nix_fresh nix copy --option require-sigs true \
            --option trusted-public-keys "$PUBKEY" \
            --from "$URL/$c" --to "$DST" "${PATHS[@]}"
    check_copy "$SRC" "$DST" "$c" "${PATHS[@]}"
done

# import --sign-key: the cache signs what it imports with its own key.
nix-store --generate-binary-cache-key e2e-cache-1 "$T/sk-cache" "$T/pk-cache"
run_ok "nixcache import --sign-key of the xz cache" \
    "$NIXCACHE" import --redis "$REDIS_ADDR" --chunks "$CHUNKS" \
        --prefix "e2e-resigned:" --sign-key "$T/sk-cache" "$T/flat-xz"
chmod -R a+rX "$CHUNKS"
run_ok "signatures required, only the cache's key trusted: nix copy" \
    nix_fresh nix copy --option require-sigs true \
        --option trusted-public-keys "$(cat "$T/pk-cache")" \
        --from "$URL/resigned" --to "$T/dst-resigned" "${PATHS[@]}"
check_copy "$SRC" "$T/dst-resigned" "re-signed" "${PATHS[@]}"

is "$(access_count "\"GET /[a-z0-9]+/nar/$H52\.nar\.zst HTTP/1\.1\" 200 ")" \
   $((N * 5)) "every NAR came from the module as .nar.zst with 200"

# The four imports hold the same NARs: their chunks are stored once.
bytes=$(find "$CHUNKS" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
flat=$(find "$T/flat-zstd/nar" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
note "chunk files: $bytes bytes for 4 imports; one zstd flat cache: $flat bytes"
ok "$([ "$bytes" -lt $((flat * 2)) ]; echo $?)" \
   "four imports of the same NARs share their chunks"

run_ok "nginx stops gracefully (QUIT)" nginx_stop
nginx_log_ok

done_testing
