#!/bin/bash
# End to end: `nix copy --to http://…` uploads through the module
# (nixcache_upload on), with compression xz (Nix's default), zstd, bzip2
# and none, into three caches sharing one chunk directory; each is then
# substituted back into a fresh store and verified.  The second and later
# uploads of the same paths must store no new chunk file; a location
# without nixcache_upload refuses the copy.

source "$(dirname "$0")/lib/e2e.sh"
source "$(dirname "$0")/e2e/fixtures.sh"

e2e_init

SRC=$T/store
make_fixtures "$SRC" "$T/w"
ok $? "fixture store paths built" || bail_out "no fixtures"

# input-addressed paths with a signature: the upload must keep it
nix-store --generate-binary-cache-key e2e-upload-1 "$T/sk" "$T/pk"
run_ok "e2e-top and e2e-dep signed in the source store" \
    nix store sign --store "$SRC" --key-file "$T/sk" -r "${FIX[top]}"

PATHS=("${FIX[text]}" "${FIX[empty]}" "${FIX[tree]}" "${FIX[top]}")
ALL=$(closure "$SRC" "${PATHS[@]}")
is "$(echo "$ALL" | wc -l)" 5 "closure of the uploaded paths has 5 members"

redis_start
ok $? "redis-server started" || bail_out "no redis"

# the workers (nobody) write the chunks
CHUNKS=$T/chunks
mkdir -p "$CHUNKS"
chmod 0777 "$CHUNKS"

loc() {
    cat <<LOC
        location /$1/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_redis_prefix $1:;
            nixcache_upload ${2:-on};
            nixcache_push_tokens off;
            client_max_body_size 0;
        }
LOC
}

nginx_start "
    server {
        listen 127.0.0.1:@PORT@;
$(loc xz)
$(loc zstd)
$(loc bzip2)
$(loc none)
$(loc readonly off)
    }"
ok $? "nginx started" || bail_out "no nginx"

URL=http://127.0.0.1:$NGINX_PORT

chunk_files() {
    find "$CHUNKS" -type f | wc -l
}

n=0
for comp in xz zstd bzip2 none; do
    before=$(chunk_files)
    run_ok "nix copy --to $comp cache" \
        nix_fresh nix copy --to "$URL/$comp/?compression=$comp" \
            --from "$SRC" "${PATHS[@]}"
    after=$(chunk_files)
    if [ $n = 0 ]; then
        ok "$([ "$after" -gt 10 ]; echo $?)" \
           "$comp: chunks stored ($after files)"
    else
        is "$after" "$before" \
           "$comp: the same NARs again: no new chunk file"
    fi
    n=$((n + 1))

    missing=""
    for p in $ALL; do
        h=$(basename "$p" | cut -c1-32)
        [ "$(redis EXISTS "$comp:narinfo:$h")" = 1 ] || missing="$missing $p"
    done
    is "$missing" "" "$comp: every closure member has a narinfo"
    is "$(redis --scan --pattern "$comp:manifest:*.tmp.*" | wc -l)" 0 \
       "$comp: no temporary manifest key left"

    is "$(redis GET "$comp:narinfo:$(basename "${FIX[tree]}" | cut -c1-32)" \
          | grep -E '^(URL|Compression):' | sed 's/[a-z0-9]\{52\}/H/')" \
       "URL: nar/H.nar.zst
Compression: zstd" "$comp: narinfo rewritten to this cache's URL"

    is "$(redis GET "$comp:narinfo:$(basename "${FIX[top]}" | cut -c1-32)" \
          | grep -c '^Sig: e2e-upload-1:')" 1 "$comp: the path's signature kept"

    DEST=$T/dest-$comp
    run_ok "$comp: nix copy --from the cache into a fresh store" \
        substitute "$URL/$comp/" "$DEST" "${PATHS[@]}"
    check_copy "$SRC" "$DEST" "$comp" "${PATHS[@]}"

    # the uploaded NAR's own name answers HEAD (Nix skips re-uploading)
    name=$(grep -oE "PUT /$comp/nar/[^ ]+" "$T/nginx/access.log" | head -1 \
           | sed "s|PUT /$comp/||")
    if [ "$comp" = xz ] || [ "$comp" = bzip2 ]; then
        is "$(curl -s -o /dev/null -w '%{http_code}' -I "$URL/$comp/$name")" \
           200 "$comp: HEAD of the uploaded $name answers 200"
    fi
done

# signatures checked by the client (require-sigs on, the default)
run_ok "signed paths substitute with require-sigs and the right key" \
    nix_fresh nix copy --option trusted-public-keys "$(cat "$T/pk")" \
        --from "$URL/xz/" --to "$T/dest-signed" "${FIX[top]}"
run_fails "... and not with another key" \
    nix_fresh nix copy --option trusted-public-keys \
        "other-1:$(head -c 32 /dev/zero | base64)" \
        --from "$URL/xz/" --to "$T/dest-unsigned" "${FIX[top]}"
like "$(cat "$T/log/$E2E_NTESTS.log")" "signature" \
     "... refused for its signature"

# a path already in the cache is not uploaded again
puts=$(access_count '"PUT ')
run_ok "copying the same paths again succeeds" \
    nix_fresh nix copy --to "$URL/xz/" --from "$SRC" "${PATHS[@]}"
is "$(access_count '"PUT ')" "$puts" "nothing uploaded twice"

run_fails "a location without nixcache_upload refuses nix copy --to" \
    nix_fresh nix copy --to "$URL/readonly/" --from "$SRC" "${FIX[text]}"
is "$(redis --scan --pattern 'readonly:*' | wc -l)" 0 \
   "nothing stored for the read-only location"

# gc beside the module's uploads: each narinfo PUT recorded the path's
# access time and its manifest in nixcache-gc:recent; removing one cache's
# paths frees nothing the others share; removing them all frees every
# chunk; an upload after that writes the chunks again and substitutes

CLI=$E2E_BUILD/nixcache
top=$(basename "${FIX[top]}" | cut -c1-32)
ok "$([ -n "$(redis ZSCORE xz:access "$top")" ]; echo $?)" \
   "the upload's narinfo PUT recorded the path's access time"
is "$(redis ZCARD nixcache-gc:recent)" "$(redis --scan --pattern '*:manifest:*' | wc -l)" \
   "every uploaded manifest is in nixcache-gc:recent"
before=$(chunk_files)
hashes=$(for p in $ALL; do basename "$p" | cut -c1-32; done)
run_ok "rm the xz cache's paths" \
    "$CLI" rm -q --redis "$REDIS_ADDR" --prefix xz: $hashes
sleep 1
run_ok "gc --grace 0" "$CLI" gc -q --redis "$REDIS_ADDR" --chunks "$CHUNKS" \
    --grace 0
is "$(chunk_files)" "$before" "the other caches keep every chunk"
run_ok "verify the zstd cache after gc" \
    "$CLI" verify --redis "$REDIS_ADDR" --chunks "$CHUNKS" --prefix zstd:
for comp in zstd bzip2 none; do
    "$CLI" rm -q --redis "$REDIS_ADDR" --prefix $comp: $hashes
done
sleep 1
run_ok "gc after every path is removed" \
    "$CLI" gc -q --redis "$REDIS_ADDR" --chunks "$CHUNKS" --grace 0
is "$(chunk_files)" 0 "every chunk file freed"
run_ok "nix copy --to the xz cache after gc" \
    nix_fresh nix copy --to "$URL/xz/" --from "$SRC" "${PATHS[@]}"
run_ok "verify the xz cache" \
    "$CLI" verify --redis "$REDIS_ADDR" --chunks "$CHUNKS" --prefix xz:
run_ok "xz: nix copy --from the cache after gc" \
    substitute "$URL/xz/" "$T/dest-after-gc" "${PATHS[@]}"
check_copy "$SRC" "$T/dest-after-gc" "after gc" "${PATHS[@]}"

leftover=$(find "$T/nginx/client_body" -type f | wc -l)
is "$leftover" 0 "no request body or manifest file left behind"

nginx_log_ok
nginx_stop
ok $? "nginx stopped"

done_testing
