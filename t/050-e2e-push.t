#!/bin/bash
# End to end: `nixcache push -r` store paths into Redis + a chunk
# directory, serve them with nginx + our module, and let the real Nix
# client substitute them into fresh stores, once through the .nar.zst URLs
# (default) and once through the .nar URLs (nixcache_nar_compression
# none).  Nix checks every NarHash; we also compare the trees with the
# originals and check from the access log which URLs were fetched.
#
# nginx runs with sendfile on (as deployed); .nar.zst is also fetched
# through a location with sendfile off.
#
# Also, with the real client: signatures handed on by push and made by
# push --sign-key (require-sigs),
# `nix-store --realise` with the cache as a substituter, FileHash/FileSize
# against the bytes served, a reload, Redis dropping the connections, a
# missing or damaged chunk (the copy fails, nothing registered), a path
# never pushed, uploads refused, and a Redis outage that must give 503s
# Nix does not remember (with a 404 control that it does remember).

source "$(dirname "$0")/lib/e2e.sh"
source "$(dirname "$0")/e2e/fixtures.sh"

e2e_init

H52='[0123456789abcdfghijklmnpqrsvwxyz]{52}'

# --- fixtures, Redis, push --------------------------------------------------

SRC=$T/store
start=$SECONDS
make_fixtures "$SRC" "$T/w" big
ok $? "fixture store paths built" || bail_out "no fixtures"
note "fixtures built in $((SECONDS - start)) s"

# The input-addressed build outputs carry a signature in the local store;
# push must hand it on, so that clients requiring signatures accept them.
nix-store --generate-binary-cache-key e2e-test-1 "$T/sk" "$T/pk"
nix-store --generate-binary-cache-key e2e-other-1 "$T/sk2" "$T/pk2"
run_ok "e2e-top and e2e-dep signed in the source store" \
    nix store sign --store "$SRC" --key-file "$T/sk" -r "${FIX[top]}"

PUSHED=("${FIX[text]}" "${FIX[empty]}" "${FIX[tree]}" "${FIX[top]}"
        "${FIX[big]}")
ALL=$(closure "$SRC" "${PUSHED[@]}")
is "$(echo "$ALL" | wc -l)" 6 "closure of the pushed paths has 6 members"

redis_start
ok $? "redis-server started" || bail_out "no redis"

CHUNKS=$T/chunks
mkdir -p "$CHUNKS"
chmod 0755 "$CHUNKS"

start=$SECONDS
run_ok "nixcache push -r (6 paths, one of 112 MiB)" \
    "$NIXCACHE" push --redis "$REDIS_ADDR" --chunks "$CHUNKS" \
        --store "$SRC" -r "${PUSHED[@]}"
note "push took $((SECONDS - start)) s"

missing=""
for p in $ALL; do
    h=$(basename "$p" | cut -c1-32)
    [ "$(redis EXISTS "nixcache:narinfo:$h")" = 1 ] || missing="$missing $p"
done
is "$missing" "" "every closure member (dep too, via -r) has a narinfo in Redis"

is "$(redis --scan --pattern 'nixcache:manifest:*' | wc -l)" 6 \
   "6 manifests in Redis"

nchunks=$(find "$CHUNKS" -type f | wc -l)
ok "$([ "$nchunks" -gt 100 ]; echo $?)" \
   "chunk files written ($nchunks)"

# nginx workers run as another user (nobody): what push writes must be
# readable by them without an operator chmod.
unreadable=$(find "$CHUNKS" \( -type f ! -perm -0004 \) -o \
                            \( -type d ! -perm -0005 \) | head -3)
is "$unreadable" "" "chunk files and directories are world-readable"
chmod -R a+rX "$CHUNKS"

stored_before=$(du -sb "$CHUNKS" | cut -f1)
run_ok "pushing the same paths again succeeds" \
    "$NIXCACHE" push --redis "$REDIS_ADDR" --chunks "$CHUNKS" \
        --store "$SRC" -r "${PUSHED[@]}"
is "$(du -sb "$CHUNKS" | cut -f1)" "$stored_before" \
   "a second push stores no new bytes"

# --- nginx ------------------------------------------------------------------

nginx_start "
    sendfile on;

    nixcache_redis_timeout 1s;

    server {
        listen 127.0.0.1:@PORT@;

        location / {
            nixcache on;
            nixcache_chunks $CHUNKS;
        }

        location /plain/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_nar_compression none;
        }

        location /nosendfile/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            sendfile off;
        }

        location /signed/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_redis_prefix signed:;
        }

        location /fault/ {
            nixcache on;
            nixcache_chunks $T/chunks-fault;
            nixcache_redis_prefix fault:;
        }

        location /fault-plain/ {
            nixcache on;
            nixcache_chunks $T/chunks-fault;
            nixcache_redis_prefix fault:;
            nixcache_nar_compression none;
        }
    }"
ok $? "nginx with the module started" || bail_out "no nginx"
URL=http://127.0.0.1:$NGINX_PORT

info=$(curl -s "$URL/nix-cache-info")
like "$info" "StoreDir: /nix/store" "nix-cache-info served"

h=$(basename "${FIX[top]}" | cut -c1-32)
ni=$(curl -s "$URL/$h.narinfo")
like "$ni" "URL: nar/$H52\.nar\.zst" "default narinfo points at .nar.zst"
like "$ni" "Compression: zstd" "default narinfo says Compression: zstd"
ni=$(curl -s "$URL/plain/$h.narinfo")
like "$ni" "URL: nar/$H52\.nar(\$|[[:space:]])" "'none' narinfo points at .nar"
like "$ni" "Compression: none" "'none' narinfo says Compression: none"

# --- substitution through .nar.zst ------------------------------------------

DST=$T/dst-zst
start=$SECONDS
run_ok "nix copy --from the cache (.nar.zst)" \
    substitute "$URL" "$DST" "${PUSHED[@]}"
note "substitution (.nar.zst) took $((SECONDS - start)) s"
check_copy "$SRC" "$DST" ".nar.zst" "${PUSHED[@]}"
run_ok "the reference of e2e-top was substituted with it" \
    nix-store --store "$DST" --check-validity "${FIX[dep]}"
is "$(access_count "\"GET /nar/$H52\.nar\.zst HTTP/1\.1\" 200 ")" 6 \
   "6 .nar.zst fetched with 200"
is "$(access_count "\"GET /(plain/)?nar/$H52\.nar HTTP")" 0 \
   "no .nar fetched in zst mode"

# --- the same with sendfile off (chunk files read into memory buffers) -------

DST=$T/dst-nosendfile
run_ok "nix copy --from the cache (.nar.zst, sendfile off)" \
    substitute "$URL/nosendfile" "$DST" "${PUSHED[@]}"
check_copy "$SRC" "$DST" ".nar.zst, sendfile off" "${PUSHED[@]}"
is "$(access_count "\"GET /nosendfile/nar/$H52\.nar\.zst HTTP/1\.1\" 200 ")" 6 \
   "6 .nar.zst fetched with 200 under /nosendfile/"

# --- substitution through .nar (decompressed by the module) ------------------

DST=$T/dst-plain
start=$SECONDS
run_ok "nix copy --from the cache (.nar)" \
    substitute "$URL/plain" "$DST" "${PUSHED[@]}"
note "substitution (.nar) took $((SECONDS - start)) s"
check_copy "$SRC" "$DST" ".nar" "${PUSHED[@]}"
is "$(access_count "\"GET /plain/nar/$H52\.nar HTTP/1\.1\" 200 ")" 6 \
   "6 .nar fetched with 200 under /plain/"
is "$(access_count "\"GET /plain/nar/$H52\.nar\.zst HTTP")" 0 \
   "no .nar.zst fetched in none mode"

# --- signatures required ----------------------------------------------------

run_ok "signatures required, the signer's key trusted: nix copy e2e-top" \
    nix_fresh nix copy --option require-sigs true \
        --option trusted-public-keys "$(cat "$T/pk")" \
        --from "$URL" --to "$T/dst-signed" "${FIX[top]}"
check_copy "$SRC" "$T/dst-signed" "signed" "${FIX[top]}"
run_fails "signatures required, another key trusted: nix copy e2e-top fails" \
    nix_fresh nix copy --option require-sigs true \
        --option trusted-public-keys "$(cat "$T/pk2")" \
        --from "$URL" --to "$T/dst-badsig" "${FIX[top]}"
like "$(cat "$T/log/$E2E_NTESTS.log")" "lacks a valid signature" \
     "... because it lacks a valid signature"
run_ok "signatures required: the content-addressed paths need none" \
    nix_fresh nix copy --option require-sigs true \
        --option trusted-public-keys "$(cat "$T/pk2")" \
        --from "$URL" --to "$T/dst-ca" "${FIX[text]}" "${FIX[tree]}"

# push --sign-key: the cache's own signature, next to the one from the store.
run_ok "nixcache push --sign-key (another key) e2e-top" \
    "$NIXCACHE" push --redis "$REDIS_ADDR" --chunks "$CHUNKS" \
        --prefix signed: --sign-key "$T/sk2" --store "$SRC" -r "${FIX[top]}"
chmod -R a+rX "$CHUNKS"
ni=$(curl -s "$URL/signed/$(basename "${FIX[top]}" | cut -c1-32).narinfo")
like "$ni" "Sig: e2e-other-1:" "the narinfo has the push key's signature"
like "$ni" "Sig: e2e-test-1:" "... and keeps the store's"
run_ok "signatures required, only the push key trusted: nix copy e2e-top" \
    nix_fresh nix copy --option require-sigs true \
        --option trusted-public-keys "$(cat "$T/pk2")" \
        --from "$URL/signed" --to "$T/dst-signed2" "${FIX[top]}"
check_copy "$SRC" "$T/dst-signed2" "signed by push" "${FIX[top]}"

# --- realisation through substituters, as a user would ----------------------

DST=$T/dst-realise
run_ok "nix-store --realise e2e-top with the cache as substituter" \
    nix_fresh nix-store --store "$DST" --realise "${FIX[top]}" \
        --option substituters "$URL" --option require-sigs false
check_copy "$SRC" "$DST" "realise" "${FIX[top]}"

# --- every narinfo's FileHash and FileSize describe the bytes served -------

# Nix checks only NarHash; a wrong FileSize/FileHash would go unnoticed by
# it but break other clients and mirrors.
bad=""
for p in $ALL; do
    h=$(basename "$p" | cut -c1-32)
    for loc in "" /plain; do
        ni=$(curl -s "$URL$loc/$h.narinfo")
        u=$(echo "$ni" | sed -n 's/^URL: //p')
        fh=$(echo "$ni" | sed -n 's/^FileHash: sha256://p')
        fs=$(echo "$ni" | sed -n 's/^FileSize: //p')
        curl -s -o "$T/nar.tmp" "$URL$loc/$u"
        if [ "$(stat -c %s "$T/nar.tmp")" != "$fs" ] \
           || [ "$(nix-hash --type sha256 --base32 --flat "$T/nar.tmp")" != "$fh" ]
        then
            bad="$bad $loc/$u"
        fi
    done
done
rm -f "$T/nar.tmp"
is "$bad" "" "FileHash/FileSize match the bytes served, both NAR forms"

# --- after a reload, and after Redis dropped the workers' connections -------

run_ok "nginx reloaded (HUP)" nginx_reload
run_ok "after the reload: nix copy e2e-top" \
    substitute "$URL" "$T/dst-reload" "${FIX[top]}"
killed=$(redis CLIENT KILL TYPE normal)
ok "$([ "${killed:-0}" -ge 1 ]; echo $?)" \
   "Redis closed the workers' connections ($killed)"
run_ok "after Redis closed the idle connections: nix copy without retries" \
    substitute "$URL" "$T/dst-killed" "${FIX[tree]}" \
        --option download-attempts 1

# --- a chunk missing or damaged: Nix fails and registers nothing -----------

# e2e-tree alone in its own chunk directory, so every chunk there is its.
mkdir -p "$T/chunks-fault"
chmod 0755 "$T/chunks-fault"
run_ok "nixcache push e2e-tree into a separate chunk directory" \
    "$NIXCACHE" push --redis "$REDIS_ADDR" --chunks "$T/chunks-fault" \
        --prefix fault: --store "$SRC" "${FIX[tree]}"
chmod -R a+rX "$T/chunks-fault"
FAULTY=($(find "$T/chunks-fault" -type f -size +20k | sort | head -2))
ok "$([ ${#FAULTY[@]} = 2 ]; echo $?)" "two chunks of e2e-tree to damage"

mv "${FAULTY[0]}" "$T/chunk.saved"
n=0
for loc in fault fault-plain; do
    n=$((n + 1))
    run_fails "/$loc/: a chunk file missing: nix copy fails" \
        substitute "$URL/$loc" "$T/dst-fault-$n" "${FIX[tree]}" \
            --option download-attempts 1
    run_fails "/$loc/: ... and does not register the path" \
        nix-store --store "$T/dst-fault-$n" --check-validity "${FIX[tree]}"
done

mv "$T/chunk.saved" "${FAULTY[0]}"
size=$(stat -c %s "${FAULTY[1]}")
printf 'garbage-garbage!' | dd of="${FAULTY[1]}" bs=1 seek=$((size / 2)) \
    conv=notrunc status=none
for loc in fault fault-plain; do
    n=$((n + 1))
    run_fails "/$loc/: a chunk file damaged: nix copy fails" \
        substitute "$URL/$loc" "$T/dst-fault-$n" "${FIX[tree]}" \
            --option download-attempts 1
    run_fails "/$loc/: ... and does not register the path" \
        nix-store --store "$T/dst-fault-$n" --check-validity "${FIX[tree]}"
done

# --- a path that was never pushed --------------------------------------------

printf 'never pushed\n' > "$T/w/absent.txt"
absent=$(nix-store --store "$SRC" --add "$T/w/absent.txt")
h=$(basename "$absent" | cut -c1-32)
is "$(curl -s -o /dev/null -w '%{http_code}' "$URL/$h.narinfo")" 404 \
   "narinfo of a path never pushed: 404"
run_fails "nix copy of a path never pushed fails" \
    substitute "$URL" "$T/dst-absent" "$absent"
like "$(cat "$T/log/$E2E_NTESTS.log")" "no substituter|not valid|does not exist" \
   "... saying that no substituter has it"
run_fails "... and it is not in the destination store" \
    nix-store --store "$T/dst-absent" --check-validity "$absent"

# The cache is read-only over HTTP: an upload is refused, not half-stored.
run_fails "nix copy --to the cache (upload) is refused" \
    nix_fresh nix copy --store "$SRC" --to "$URL" "$absent"
like "$(cat "$T/log/$E2E_NTESTS.log")" "upload|405|Not Allowed" \
     "... as an upload error"
is "$(curl -s -o /dev/null -w '%{http_code}' "$URL/$h.narinfo")" 404 \
   "... and the path is still absent"

# --- Redis not answering: 503, and Nix does not remember the path as absent

# Nix caches a 404 for narinfo-cache-negative-ttl (1 h by default): the
# cache must never answer 404 when it merely could not ask Redis.  One Nix
# cache directory, the default TTL, across the outage and after it.
printf 'pushed during an outage\n' > "$T/w/outage.txt"
outage=$(nix-store --store "$SRC" --add "$T/w/outage.txt")
h=$(basename "$outage" | cut -c1-32)
NEG=(--option narinfo-cache-negative-ttl 3600)
run_ok "nixcache push a path for the outage test" \
    "$NIXCACHE" push --redis "$REDIS_ADDR" --chunks "$CHUNKS" \
        --store "$SRC" "$outage"
chmod -R a+rX "$CHUNKS"

kill -STOP "$REDIS_PID"
is "$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$URL/$h.narinfo")" 503 \
   "Redis stopped: narinfo answers 503"
run_fails "Redis stopped: nix copy fails" \
    env XDG_CACHE_HOME="$T/xdg-outage" nix copy "${NEG[@]}" \
        --option download-attempts 1 \
        --option require-sigs false --from "$URL" --to "$T/dst-outage" \
        "$outage"
kill -CONT "$REDIS_PID"
run_ok "Redis back: the same Nix cache directory now substitutes the path" \
    env XDG_CACHE_HOME="$T/xdg-outage" nix copy "${NEG[@]}" \
        --option require-sigs false --from "$URL" --to "$T/dst-outage" \
        "$outage"

# Control: a real 404 is remembered, so the check above can tell.
printf 'pushed after a 404\n' > "$T/w/late.txt"
late=$(nix-store --store "$SRC" --add "$T/w/late.txt")
run_fails "control: a path not yet pushed fails" \
    env XDG_CACHE_HOME="$T/xdg-outage" nix copy "${NEG[@]}" \
        --option require-sigs false --from "$URL" --to "$T/dst-outage" "$late"
"$NIXCACHE" push --redis "$REDIS_ADDR" --chunks "$CHUNKS" --store "$SRC" \
    "$late" > "$T/log/late-push.log" 2>&1
chmod -R a+rX "$CHUNKS"
run_fails "control: pushed later, Nix still remembers its 404" \
    env XDG_CACHE_HOME="$T/xdg-outage" nix copy "${NEG[@]}" \
        --option require-sigs false --from "$URL" --to "$T/dst-outage" "$late"
run_ok "control: with a fresh Nix cache it is there" \
    substitute "$URL" "$T/dst-outage" "$late"

run_ok "nginx stops gracefully (QUIT)" nginx_stop
nginx_log_ok

done_testing
