#!/bin/bash
# End to end: `nixcache push --url` uploads store paths through the
# module's upload routes (nixcache_upload on, nixcache_push_tokens), so a
# CI machine needs no Redis or chunk directory of its own.  The paths are
# substituted back with the real Nix client, signatures made by
# --sign-key checked with require-sigs.

source "$(dirname "$0")/lib/e2e.sh"
source "$(dirname "$0")/e2e/fixtures.sh"

e2e_init

SRC=$T/store
make_fixtures "$SRC" "$T/w"
ok $? "fixture store paths built" || bail_out "no fixtures"

# a NAR of a few MiB: many read and chunked-body rounds
mkdir -p "$T/w/medium"
head -c $((2 * 1024 * 1024)) /dev/urandom > "$T/w/medium/random"
seq 1 300000 > "$T/w/medium/text"
MED=$(nix-store --store "$SRC" --add "$T/w/medium")
ok $? "a medium path added"

PATHS=("${FIX[text]}" "${FIX[empty]}" "${FIX[tree]}" "${FIX[top]}" "$MED")
ALL=$(closure "$SRC" "${PATHS[@]}")
is "$(echo "$ALL" | wc -l)" 6 "the closure of the pushed paths has 6 members"

K=$T/keys
mkdir -p "$K"
nix-store --generate-binary-cache-key ci-1 "$K/ci.sk" "$K/ci.pk"
ok $? "a signing key"
printf 'push-secret-1\n' > "$K/push.tokens"
printf 'admin-secret-1\n' > "$K/admin.tokens"
chmod 0600 "$K"/*.sk "$K"/*.tokens   # the module refuses others' access
printf 'push-secret-1\n' > "$K/token"

redis_start
ok $? "redis-server started" || bail_out "no redis"

CHUNKS=$T/chunks
mkdir -p "$CHUNKS"
chmod 0777 "$CHUNKS"

nginx_start "
    server {
        listen 127.0.0.1:@PORT@;

        location /c/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_redis_prefix c:;
            nixcache_upload on;
            nixcache_push_tokens $K/push.tokens;
            nixcache_admin_tokens $K/admin.tokens;
            client_max_body_size 0;
        }
        location /d/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_redis_prefix d:;
            nixcache_upload on;
            nixcache_push_tokens $K/push.tokens;
            client_max_body_size 0;
        }
        location /small/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_redis_prefix s:;
            nixcache_upload on;
            nixcache_push_tokens off;
            nixcache_upload_max_nar_size 64k;
            client_max_body_size 0;
        }
    }"
ok $? "nginx started" || bail_out "no nginx"

URL=http://127.0.0.1:$NGINX_PORT

narinfos() {
    redis --scan --pattern 'c:narinfo:*' | wc -l
}

# --- refusals: nothing stored ----------------------------------------------

out=$("$NIXCACHE" push --url "$URL/c/" --store "$SRC" -r "${PATHS[@]}" 2>&1)
is "$?" 1 "without a token: exit 1"
like "$out" "nixcache: $URL/c/: 401 Unauthorized: a push token is needed \\(--token\\)" \
     "... with the 401 message"
is "$(narinfos)" 0 "... nothing stored"

out=$("$NIXCACHE" push --url "$URL/c/" --token wrong-secret --store "$SRC" \
      -r "${PATHS[@]}" 2>&1)
is "$?" 1 "with a wrong token: exit 1"
like "$out" "403: token refused" "... with the 403 message"
unlike=$(echo "$out" | grep -c wrong-secret)
is "$unlike" 0 "... and the token is not printed"
is "$(narinfos)" 0 "... nothing stored"

out=$("$NIXCACHE" push --url "$URL/c/" --redis "$REDIS_ADDR" \
      --store "$SRC" "${FIX[text]}" 2>&1)
is "$?" 2 "--url with --redis: usage error"
like "$out" "do not go with it" "... saying so"

port=$(free_port)
out=$("$NIXCACHE" push --url "http://127.0.0.1:$port/c/" --token x \
      --store "$SRC" "${FIX[text]}" 2>&1)
is "$?" 1 "nothing listening: exit 1"
like "$out" "127.0.0.1:$port/c/.*(onnect|refused)" "... naming the URL"

out=$("$NIXCACHE" push --url "$URL/small/" --store "$SRC" "$MED" 2>&1)
is "$?" 1 "a NAR the server refuses (upload_max_nar_size): exit 1"
like "$out" "PUT $URL/small/nar/[0-9a-z]{52}\\.nar\\.zst: HTTP 413 Request Entity Too Large" \
     "... with the status"
is "$(redis --scan --pattern 's:*' | wc -l)" 0 "... nothing stored"

# --- the push ---------------------------------------------------------------

out=$(NIXCACHE_TOKEN=push-secret-1 "$NIXCACHE" push -v --url "$URL/c/" \
      --store "$SRC" -r --sign-key "$K/ci.sk" "${PATHS[@]}" 2>&1)
is "$?" 0 "push --url -r with the token (\$NIXCACHE_TOKEN) succeeds"
[ -n "$out" ] && note "$out"
like "$out" "push done: 6/6 paths \\(0 skipped, 0 failed\\), .* NAR in, .* sent" \
     "... with push's summary line"
is "$(echo "$out" | grep -c push-secret-1)" 0 "... not showing the token"

missing=""
for p in $ALL; do
    h=$(basename "$p" | cut -c1-32)
    [ "$(redis EXISTS "c:narinfo:$h")" = 1 ] || missing="$missing $p"
done
is "$missing" "" "every closure member has a narinfo"
is "$(access_count '"PUT /c/nar/[0-9a-z]{52}\.nar\.zst HTTP/1\.1" 2')" 6 \
   "six NARs PUT as .nar.zst"
top_h=$(basename "${FIX[top]}" | cut -c1-32)
like "$(curl -s "$URL/c/$top_h.narinfo")" "Sig: ci-1:" \
     "the --sign-key signature is in the narinfo"

run_ok "nix copy --from the cache into a fresh store" \
    substitute "$URL/c/" "$T/dest" "${PATHS[@]}"
check_copy "$SRC" "$T/dest" "push --url" "${PATHS[@]}"

run_ok "require-sigs with ci-1's key: the input-addressed paths substitute" \
    nix_fresh nix copy --option require-sigs true \
        --option trusted-public-keys "$(cat "$K/ci.pk")" \
        --from "$URL/c/" --to "$T/dest-signed" "${FIX[top]}"
check_copy "$SRC" "$T/dest-signed" "signed" "${FIX[top]}"
run_fails "... and not with another key" \
    nix_fresh nix copy --option require-sigs true \
        --option trusted-public-keys "other-1:$(head -c 32 /dev/zero | base64)" \
        --from "$URL/c/" --to "$T/dest-other" "${FIX[top]}"

# a store whose file no longer matches its recorded NarHash: the NAR may
# reach the server (under the hash it really has) but no narinfo is sent
echo "will be corrupted" > "$T/w/bad.txt"
BAD=$(nix-store --store "$SRC" --add "$T/w/bad.txt")
chmod u+w "$SRC$BAD" && echo "corrupted" > "$SRC$BAD"
out=$("$NIXCACHE" push --url "$URL/c/" --token push-secret-1 --store "$SRC" \
      "$BAD" 2>&1)
is "$?" 1 "a corrupt store path: exit 1"
like "$out" "NAR hash or size mismatch.*narinfo not sent" "... saying why"
is "$(curl -s -o /dev/null -w '%{http_code}' \
      "$URL/c/$(basename "$BAD" | cut -c1-32).narinfo")" 404 \
   "... and the path is not in the cache"

# --- again: everything present ----------------------------------------------

puts=$(access_count '"PUT ')
out=$("$NIXCACHE" push --url "$URL/c/" --token-file "$K/token" \
      --store "$SRC" -r "${PATHS[@]}" 2>&1)
is "$?" 0 "a second push (--token-file) succeeds"
is "$(access_count '"PUT ')" "$puts" "... and uploads nothing"
like "$out" "already present" "... saying the paths are present"

out=$("$NIXCACHE" push --url "$URL/c" --token push-secret-1 --force \
      --store "$SRC" --sign-key "$K/ci.sk" "${FIX[text]}" 2>&1)
is "$?" 0 "--force pushes a present path again (URL without trailing /)"
is "$(access_count '"PUT ')" $((puts + 2)) "... a NAR and a narinfo PUT"

# another narinfo text (no signature): a push token cannot replace it
out=$("$NIXCACHE" push --url "$URL/c" --token push-secret-1 --force \
      --store "$SRC" "${FIX[text]}" 2>&1)
is "$?" 1 "--force with another text and a push token: exit 1"
like "$out" "narinfo: HTTP 409 Conflict" "... the server refuses it (409)"
like "$(curl -s "$URL/c/$(basename "${FIX[text]}" | cut -c1-32).narinfo")" \
     "Sig: ci-1:" "... and keeps the first"
out=$("$NIXCACHE" push --url "$URL/c" --token admin-secret-1 --force \
      --store "$SRC" "${FIX[text]}" 2>&1)
is "$?" 0 "--force with an admin token replaces it"

# --- paths on stdin, --skip-upstream, --exclude, into cache /d/ -------------

echo "new for d" > "$T/w/new-d.txt"
NEW=$(nix-store --store "$SRC" --add "$T/w/new-d.txt")
d_narinfos() {
    redis --scan --pattern 'd:narinfo:*' | sort
}
hash_of() {
    basename "$1" | cut -c1-32
}

out=$(printf '%s\n' $ALL "$NEW" | "$NIXCACHE" push -v --url "$URL/d/" \
      --token push-secret-1 --store "$SRC" --skip-upstream "$URL/c/" - 2>&1)
is "$?" 0 "push - (paths on stdin) --skip-upstream the cache /c/"
like "$out" "push done: 7/7 paths \\(6 skipped, 0 failed\\)" \
     "... the six /c/ has are skipped"
like "$out" "${FIX[top]}: in $URL/c/" "... each named with the upstream"
is "$(d_narinfos)" "d:narinfo:$(hash_of "$NEW")" \
   "... only the new path is in /d/"
run_ok "nix copy --from /d/: the new path substitutes" \
    substitute "$URL/d/" "$T/dest-d" "$NEW"
check_copy "$SRC" "$T/dest-d" "push -" "$NEW"

port=$(free_port)
out=$("$NIXCACHE" push --url "$URL/d/" --token push-secret-1 --store "$SRC" \
      --skip-upstream "http://127.0.0.1:$port/" --exclude '-e2e-tree$' \
      --exclude '^/nix/store/[0-9a-z]{32}-e2e-top' -r "${PATHS[@]}" 2>&1)
is "$?" 0 "an upstream that does not answer: the push goes on"
like "$out" "--skip-upstream http://127.0.0.1:$port/: no answer; this path and the rest are pushed" \
     "... saying so once"
is "$(echo "$out" | grep -c 'no answer')" 1 "... only once"
like "$out" "push done: 4/4 paths \\(0 skipped, 0 failed, 2 excluded\\)" \
     "--exclude: tree and top left out"
want=$(for p in $ALL "$NEW"; do
           case "$p" in "${FIX[tree]}"|"${FIX[top]}") ;;
                        *) echo "d:narinfo:$(hash_of "$p")" ;; esac
       done | sort)
is "$(d_narinfos)" "$want" "... every other closure member is in /d/"

out=$(printf '' | "$NIXCACHE" push --url "$URL/d/" --token push-secret-1 \
      --store "$SRC" - 2>&1)
is "$?" 1 "push - with nothing on stdin: exit 1"
like "$out" "no paths" "... saying so"

leftover=$(find "$T/nginx/client_body" -type f 2>/dev/null | wc -l)
is "$leftover" 0 "no request body file left behind"

nginx_log_ok
nginx_stop
ok $? "nginx stopped"

done_testing
