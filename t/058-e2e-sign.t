#!/bin/bash
# End to end with the real Nix client and require-sigs on: narinfos
# signed by the module (nixcache_sign_key) for paths pushed unsigned;
# access tokens from a netrc file; several caches in one server sharing
# one chunk directory.
#
#   /team-a/   prefix a:, key team-a-1 (nix-store --generate-binary-cache-
#              key), Priority 30
#   /team-b/   prefix b:, key team-b-1 (nixcache keygen), Priority 50
#   /private/  prefix a: too, read tokens, key team-a-1
#   /up-xz/, /up-zstd/, /up-none/   prefixes u-*:, uploads (nix copy
#              --to ?compression=...) with push tokens, key team-b-1
#
# Signatures matter for input-addressed paths only (FIX[dep], FIX[top]):
# Nix accepts content-addressed ones (FIX[text]) unsigned.

source "$(dirname "$0")/lib/e2e.sh"
source "$(dirname "$0")/e2e/fixtures.sh"

e2e_init

SRC=$T/store
make_fixtures "$SRC" "$T/w"
ok $? "fixture store paths built" || bail_out "no fixtures"

IA=("${FIX[top]}")                       # closure: top, dep
ALL=$(closure "$SRC" "${IA[@]}")
is "$(echo "$ALL" | wc -l)" 2 "the input-addressed closure has 2 members"
for p in $ALL; do
    is "$(nix path-info --store "$SRC" --json "$p" | grep -c '"ca"')" 0 \
       "$(basename "$p") is input-addressed"
done

K=$T/keys
mkdir -p "$K"
nix-store --generate-binary-cache-key team-a-1 "$K/a.sk" "$K/a.pk"
ok $? "nix-store --generate-binary-cache-key team-a-1"
"$NIXCACHE" keygen team-b-1 "$K/b.sk" "$K/b.pk" > /dev/null
ok $? "nixcache keygen team-b-1"
nix-store --generate-binary-cache-key team-a-1 "$K/w.sk" "$K/w.pk"
ok $? "a wrong key of the same name"

printf '# CI\nread-secret-1\n' > "$K/read.tokens"
printf 'push-secret-1\n' > "$K/push.tokens"
chmod 0600 "$K"/*.sk "$K"/*.tokens   # the module refuses others' access

redis_start
ok $? "redis-server started" || bail_out "no redis"

CHUNKS=$T/chunks
mkdir -p "$CHUNKS"
chmod 0777 "$CHUNKS"

nginx_start "
    server {
        listen 127.0.0.1:@PORT@;

        location /team-a/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_redis_prefix a:;
            nixcache_sign_key $K/a.sk;
            nixcache_priority 30;
        }
        location /team-b/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_redis_prefix b:;
            nixcache_sign_key $K/b.sk;
            nixcache_priority 50;
        }
        location /private/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_redis_prefix a:;
            nixcache_sign_key $K/a.sk;
            nixcache_read_tokens $K/read.tokens;
        }
$(for c in xz zstd none; do cat <<LOC
        location /up-$c/ {
            nixcache on;
            nixcache_chunks $CHUNKS;
            nixcache_redis_prefix u-$c:;
            nixcache_sign_key $K/b.sk;
            nixcache_upload on;
            nixcache_push_tokens $K/push.tokens;
            client_max_body_size 0;
        }
LOC
done)
    }"
ok $? "nginx started" || bail_out "no nginx"

URL=http://127.0.0.1:$NGINX_PORT

chunk_files() {
    find "$CHUNKS" -type f | wc -l
}

# --- several caches, one chunk space ---------------------------------------

run_ok "push -r to team-a (unsigned)" \
    "$NIXCACHE" push --redis "$REDIS_ADDR" --chunks "$CHUNKS" --prefix a: \
        --store "$SRC" -r "${IA[@]}" "${FIX[tree]}"
n_a=$(chunk_files)
ok "$([ "$n_a" -gt 3 ]; echo $?)" "chunks stored ($n_a files)"
run_ok "push -r the same paths to team-b (unsigned)" \
    "$NIXCACHE" push --redis "$REDIS_ADDR" --chunks "$CHUNKS" --prefix b: \
        --store "$SRC" -r "${IA[@]}"
is "$(chunk_files)" "$n_a" "team-b's push stored no new chunk file"
is "$(redis GET "a:narinfo:$(basename "${FIX[top]}" | cut -c1-32)" \
      | grep -c '^Sig:')" 0 "the stored narinfo is unsigned"

tree_h=$(basename "${FIX[tree]}" | cut -c1-32)
top_h=$(basename "${FIX[top]}" | cut -c1-32)
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
is "$(code "$URL/team-a/$tree_h.narinfo")" 200 "team-a serves its own path"
is "$(code "$URL/team-b/$tree_h.narinfo")" 404 \
   "team-b does not serve team-a's path"
like "$(curl -s "$URL/team-a/nix-cache-info")" "Priority: 30" \
     "team-a: Priority 30"
like "$(curl -s "$URL/team-b/nix-cache-info")" "Priority: 50" \
     "team-b: Priority 50"
like "$(curl -s "$URL/team-a/$top_h.narinfo")" "Sig: team-a-1:" \
     "team-a signs with team-a-1"
sigs=$(curl -s "$URL/team-b/$top_h.narinfo" | grep '^Sig:' | cut -d: -f2)
is "$sigs" " team-b-1" "team-b signs with team-b-1 only"
like "$(curl -s "$URL/team-b/$top_h.narinfo")" \
     "URL: nar/[0-9a-z]{52}\.nar\.zst" "the narinfo URL is relative"

# sigsubst NAME CACHE-URL PUBKEY-FILE DEST: substitute the input-addressed
# closure with require-sigs on, trusting only that key
sigsubst() {
    local url=$1 pk=$2 dest=$3; shift 3
    nix_fresh nix copy --option require-sigs true \
        --option trusted-public-keys "$(cat "$pk")" \
        --from "$url" --to "$dest" "$@" "${IA[@]}"
}

run_ok "team-a: require-sigs with team-a's key (nix-made) substitutes" \
    sigsubst "$URL/team-a/" "$K/a.pk" "$T/d-a"
check_copy "$SRC" "$T/d-a" "team-a" "${IA[@]}"

run_ok "team-b: require-sigs with team-b's key (nixcache keygen) substitutes" \
    sigsubst "$URL/team-b" "$K/b.pk" "$T/d-b"
check_copy "$SRC" "$T/d-b" "team-b" "${IA[@]}"

out=$(sigsubst "$URL/team-a/" "$K/w.pk" "$T/d-w" 2>&1)
ok "$([ $? != 0 ]; echo $?)" "team-a with a wrong key of the same name fails"
like "$out" "lacks a valid signature" "... because of the signature"
[ $? = 0 ] || diag "$out"

out=$(sigsubst "$URL/team-b/" "$K/a.pk" "$T/d-w2" 2>&1)
ok "$([ $? != 0 ]; echo $?)" "team-b with team-a's key fails"
like "$out" "lacks a valid signature" "... because of the signature"

# --- a private cache ---------------------------------------------------------

printf 'machine 127.0.0.1 login ci password read-secret-1\n' > "$K/netrc"
printf 'machine 127.0.0.1 login ci password wrong-secret\n' > "$K/netrc.bad"
printf 'machine 127.0.0.1 login ci password push-secret-1\n' > "$K/netrc.push"

run_ok "private: with the read token in netrc-file, substitutes" \
    sigsubst "$URL/private/" "$K/a.pk" "$T/d-p" \
        --option netrc-file "$K/netrc"
check_copy "$SRC" "$T/d-p" "private" "${IA[@]}"
run_fails "private: without netrc, nothing substitutes" \
    sigsubst "$URL/private/" "$K/a.pk" "$T/d-p2"
run_fails "private: with a wrong token, nothing substitutes" \
    sigsubst "$URL/private/" "$K/a.pk" "$T/d-p3" \
        --option netrc-file "$K/netrc.bad"
ok "$([ ! -e "$T/d-p2/nix/store/$(basename "${FIX[top]}")" ]; echo $?)" \
   "private: nothing arrived without a token"
is "$(access_count '"GET /private/nix-cache-info HTTP/1.1" 401')" 1 \
   "private: answered 401 to Nix without a token"

# --- nixcache use: the client's configuration, read from the cache ---------

out=$("$NIXCACHE" use "$URL/team-a/" 2>&1)
is "$?" 0 "use team-a: exit 0"
# has_line TEXT LINE: LINE (taken literally: keys hold + and /) is in TEXT
has_line() {
    grep -qxF -- "$2" <<< "$1"
}
ok "$(has_line "$out" "extra-substituters = $URL/team-a/"; echo $?)" \
   "... the substituter line"
ok "$(has_line "$out" "extra-trusted-public-keys = $(cat "$K/a.pk")"; echo $?)" \
   "... team-a's public key, from its nix-cache-info"
ok "$(has_line "$(curl -s "$URL/team-b/nix-cache-info")" \
               "PublicKey: $(cat "$K/b.pk")"; echo $?)" \
   "team-b's nix-cache-info names its key"

out=$("$NIXCACHE" use "$URL/private/" 2>&1)
is "$?" 1 "use private without a token: exit 1"
like "$out" "401" "... the cache said 401"

out=$("$NIXCACHE" use --token read-secret-1 --nix-conf "$T/use.conf" \
      --netrc "$T/use.netrc" "$URL/private/" 2>&1)
is "$?" 0 "use private --token --nix-conf --netrc: exit 0"
is "$(cat "$T/use.conf")" \
   "extra-substituters = $URL/private/
extra-trusted-public-keys = $(cat "$K/a.pk")" "... nix.conf lines written"
is "$(cat "$T/use.netrc")" \
   "machine 127.0.0.1 login nixcache password read-secret-1" \
   "... netrc line written"
is "$(stat -c %a "$T/use.netrc")" 600 "... netrc made mode 0600"
is "$(echo "$out" | grep -c read-secret-1)" 0 "... the token not printed"

# Nix with those files (require-sigs on, the default) substitutes the
# input-addressed closure into an empty store from the private cache
with_use_conf() {
    NIX_USER_CONF_FILES="$T/use.conf:$NIX_USER_CONF_FILES" nix_fresh "$@"
}
run_ok "nix-store -r with use's nix.conf and netrc substitutes" \
    with_use_conf nix-store --store "$T/d-use" \
        --option netrc-file "$T/use.netrc" -r "${IA[@]}"
check_copy "$SRC" "$T/d-use" "use" "${IA[@]}"

out=$("$NIXCACHE" use --key "$(cat "$K/b.pk")" "$URL/team-a/" 2>&1)
ok "$(has_line "$out" "extra-trusted-public-keys = $(cat "$K/b.pk")"; echo $?)" \
   "use --key: the given key instead of the cache's"
out=$("$NIXCACHE" use --key nonsense "$URL/team-a/" 2>&1)
is "$?" 2 "use --key with no key: usage error"

# --- uploads with a push token -----------------------------------------------

run_fails "up: nix copy --to without a token fails" \
    nix_fresh nix copy --to "$URL/up-xz/" --from "$SRC" "${IA[@]}"
is "$(redis --scan --pattern 'u-*:narinfo:*' | wc -l)" 0 \
   "up: nothing stored without a token"
ok "$([ "$(access_count '"PUT /up-xz/[^ ]* HTTP/1.1" 401')" -ge 1 ]; echo $?)" \
   "up: the PUT was answered 401"
run_fails "up: nix copy --to with a read-only token fails" \
    nix_fresh nix copy --to "$URL/up-xz/" --from "$SRC" \
        --option netrc-file "$K/netrc" "${IA[@]}"
before=$(chunk_files)
for c in xz zstd none; do
    run_ok "up-$c: nix copy --to ?compression=$c with the push token" \
        nix_fresh nix copy --to "$URL/up-$c/?compression=$c" --from "$SRC" \
            --option netrc-file "$K/netrc.push" "${IA[@]}"
    is "$(redis --scan --pattern "u-$c:narinfo:*" | wc -l)" 2 \
       "up-$c: both narinfos stored"
    run_ok "up-$c: require-sigs with team-b's key substitutes the upload" \
        sigsubst "$URL/up-$c/" "$K/b.pk" "$T/d-u-$c"
    check_copy "$SRC" "$T/d-u-$c" "up-$c" "${IA[@]}"
done
is "$(chunk_files)" "$before" "up: the uploaded NARs stored no new chunk"

nginx_log_ok
nginx_stop
ok $? "nginx stopped"

done_testing
