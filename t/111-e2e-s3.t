#!/bin/bash
# End to end with the S3 tier: `nixcache push --s3-*` stores the chunks in
# a private s3rver only (empty disk tier); the real Nix client substitutes
# through the module, which fetches every chunk from S3, checks it and
# writes it through to the disk tier; `nix store verify` passes; the disk
# tier then holds every chunk, and a second substitution (fresh store,
# fresh Nix cache) works with s3rver stopped.  Then `nix copy --to` uploads
# through a location with the S3 tier: every chunk is in the bucket, and
# with the disk tier emptied (as eviction would) the paths still
# substitute, from S3.

source "$(dirname "$0")/lib/e2e.sh"
source "$(dirname "$0")/e2e/fixtures.sh"

e2e_init

S3RVER_JS=$E2E_ROOT/build/node_modules/s3rver/bin/s3rver.js
[ -f "$S3RVER_JS" ] || skip_all "s3rver not installed (make deps)"
S3CTL=$E2E_ROOT/t/lib/s3rver-ctl

SRC=$T/store
make_fixtures "$SRC" "$T/w"
ok $? "fixture store paths built" || bail_out "no fixtures"

PUSHED=("${FIX[text]}" "${FIX[empty]}" "${FIX[tree]}" "${FIX[top]}")
ALL=$(closure "$SRC" "${PUSHED[@]}")

redis_start
ok $? "redis-server started" || bail_out "no redis"

started=1
for try in 1 2 3; do
    S3PORT=$(free_port)
    if "$S3CTL" start "$T/s3" "$S3PORT" nixcache > "$T/log/s3rver" 2>&1; then
        started=0
        break
    fi
done
ok $started "s3rver started" || { diag_file "$T/log/s3rver"; bail_out "no s3rver"; }
E2E_PIDS+=("$(cat "$T/s3/pid")")
S3=http://127.0.0.1:$S3PORT

run_ok "nixcache push --s3-* -r (no disk tier)" \
    env AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER \
    "$NIXCACHE" push --redis "$REDIS_ADDR" --store "$SRC" \
        --s3-endpoint "$S3" --s3-bucket nixcache -r "${PUSHED[@]}"

objects=$(find "$T/s3/data/nixcache" -name '*._S3rver_object' \
              | sed 's/._S3rver_object$//; s,.*/,,' | sort)
nobjects=$(echo "$objects" | grep -c .)
ok "$([ "$nobjects" -gt 3 ]; echo $?)" "chunks are objects in the bucket ($nobjects)"

CHUNKS=$T/chunks
UPCHUNKS=$T/upchunks
mkdir -p "$CHUNKS" "$UPCHUNKS"
chmod 0777 "$CHUNKS" "$UPCHUNKS"
printf 'S3RVER\nS3RVER\n' > "$T/s3creds"
chmod 0600 "$T/s3creds"

nginx_start "
    server {
        listen 127.0.0.1:@PORT@;
        location / {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_s3_endpoint $S3;
            nixcache_s3_bucket nixcache;
            nixcache_s3_credentials $T/s3creds;
        }
        location /up/ {
            nixcache on;
            nixcache_chunks $UPCHUNKS;
            nixcache_redis_prefix up:;
            nixcache_upload on;
            nixcache_push_tokens off;
            client_max_body_size 0;
            nixcache_s3_endpoint $S3;
            nixcache_s3_bucket nixcache;
            nixcache_s3_prefix up-chunks/;
            nixcache_s3_credentials $T/s3creds;
        }
    }"
ok $? "nginx started" || bail_out "no nginx"

URL=http://127.0.0.1:$NGINX_PORT

run_ok "nix copy --from the cache, every chunk cold in S3" \
    substitute "$URL" "$T/dest1" "${PUSHED[@]}"
check_copy "$SRC" "$T/dest1" "from S3" "${PUSHED[@]}"

# write-through is asynchronous (thread pool): give it a moment
for i in $(seq 1 50); do
    files=$(find "$CHUNKS" -type f -name 'b*' -printf '%f\n' | sort)
    [ "$files" = "$objects" ] && break
    sleep 0.1
done
is "$files" "$objects" "the disk tier now holds every chunk of the bucket"

# uploads to a location with the S3 tier: in the bucket before published
run_ok "nix copy --to a cache with an S3 tier (upload)" \
    nix_fresh nix copy --to "$URL/up/" --from "$SRC" "${PUSHED[@]}"
up_files=$(find "$UPCHUNKS" -type f -name 'b*' -printf '%f\n' | sort)
up_objects=$(find "$T/s3/data/nixcache/up-chunks" -name '*._S3rver_object' \
                 | sed 's/._S3rver_object$//; s,.*/,,' | sort)
ok "$([ -n "$up_files" ]; echo $?)" \
   "uploaded chunks on the disk tier ($(echo "$up_files" | grep -c .))"
is "$up_objects" "$up_files" "... and every one of them in the bucket"
find "$UPCHUNKS" -type f -name 'b*' -delete
run_ok "uploaded paths substitute with the disk tier emptied (from S3)" \
    substitute "$URL/up/" "$T/dest-up" "${PUSHED[@]}"
check_copy "$SRC" "$T/dest-up" "uploaded, from S3" "${PUSHED[@]}"

run_ok "s3rver stopped" "$S3CTL" stop "$T/s3"

run_ok "nix copy again (fresh store, fresh Nix cache), S3 stopped" \
    substitute "$URL" "$T/dest2" "${PUSHED[@]}"
check_copy "$SRC" "$T/dest2" "from the disk tier" "${PUSHED[@]}"

is "$(grep -c 'nixcache: S3' "$T/nginx/error.log")" 0 \
   "no S3 error logged"

# a graceful stop: S3 connections kept alive by curl are released (an
# nginx connection left open would be an alert "open socket ... left")
run_ok "nginx stops gracefully" nginx_stop
nginx_log_ok

done_testing
