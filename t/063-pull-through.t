#!/bin/bash
# Pull-through (nixcache_upstream): a cache location with nothing in
# Redis answers for the paths of upstream caches (plain nginx serving
# caches written by Nix: t/lib/upstream.sh), over HTTP and HTTPS with a
# test CA, asked in order; the real Nix client substitutes through it
# with signatures required.  Broken upstreams get their documented
# answers, a black-holed or trickling one within the module's whole-request
# limits.  Not built yet, so not tested here: the ingest into our chunks
# (issue 10).  The negative cache and the FileHash check of a NAR proxied
# by a trusted narinfo are tested in t/064 as well.

source "$(dirname "$0")/lib/e2e.sh"
source "$(dirname "$0")/lib/upstream.sh"

e2e_init
command -v openssl > /dev/null || skip_all "openssl not installed"

upstream_build
ok $? "upstream caches built" || bail_out "no upstream caches"
upstream_start
ok $? "upstream started" || bail_out "no upstream"
redis_start
ok $? "redis-server started" || bail_out "no redis"
upstream_blackhole
ok $? "a black-holed upstream listens" || bail_out "no black hole"

CHUNKS=$T/chunks
mkdir -p "$CHUNKS"
chmod 0755 "$CHUNKS"
# port 1: nothing listens there (a free port now may be taken later)
DEAD=http://127.0.0.1:1
KEY="key=$UPSTREAM_PUBKEY"

# one internal proxy location per upstream cache, one cache location per
# case; "@U@" in a cache location's lines is its upstreams
proxies=""
for c in xz zstd none 500 truncated wronghash badsig unsigned slow; do
    proxies="$proxies
        location /_up/$c/ {
            internal;
            proxy_pass $UPSTREAM_HTTP/$c/;
        }"
done
proxies="$proxies
        location /_up/https/ {
            internal;
            proxy_pass $UPSTREAM_HTTPS/zstd/;
            proxy_ssl_trusted_certificate $UPSTREAM_CA;
            proxy_ssl_verify on;
            proxy_ssl_server_name on;
            proxy_ssl_name localhost;
            proxy_buffering off;
        }
        location /_up/dead/ {
            internal;
            proxy_pass $DEAD/;
        }
        location /_up/hole/ {
            internal;
            proxy_pass $UPSTREAM_BLACKHOLE/;
        }
        location /_up/empty/ {
            internal;
            proxy_pass $UPSTREAM_HTTP/nothing-here/;
        }"

cache() {   # cache NAME UPSTREAM-LINES...
    local name=$1; shift
    printf '        location /%s/ {\n            nixcache on;\n' "$name"
    printf '            nixcache_chunks %s;\n' "$CHUNKS"
    printf '            nixcache_redis_prefix %s:;\n' "$name"
    printf '            %s;\n' "$@"
    printf '        }\n'
}

nginx_start "
    server {
        listen 127.0.0.1:@PORT@;
$proxies
$(cache xz "nixcache_upstream xz /_up/xz/ $KEY")
$(cache https "nixcache_upstream https /_up/https/ $KEY")
$(cache none "nixcache_upstream none /_up/none $KEY")
$(cache order "nixcache_upstream dead /_up/dead/ $KEY" \
              "nixcache_upstream empty /_up/empty/ $KEY" \
              "nixcache_upstream zstd /_up/zstd/ $KEY")
$(cache absent "nixcache_upstream empty /_up/empty/ $KEY" \
               "nixcache_upstream badsig /_up/badsig/ $KEY")
$(cache failed "nixcache_upstream empty /_up/empty/ $KEY" \
               "nixcache_upstream e500 /_up/500/ $KEY")
$(cache dead "nixcache_upstream dead /_up/dead/ $KEY")
$(cache truncated "nixcache_upstream truncated /_up/truncated/ $KEY")
$(cache wronghash "nixcache_upstream wronghash /_up/wronghash/ $KEY")
$(cache unsigned "nixcache_upstream unsigned /_up/unsigned/ $KEY")
$(cache trusting "nixcache_upstream unsigned /_up/unsigned/ require_sigs=off")
$(cache hole "nixcache_upstream hole /_up/hole/ $KEY narinfo_timeout=1s" \
             "nixcache_upstream zstd /_up/zstd/ $KEY")
$(cache slow "nixcache_upstream slow /_up/slow/ $KEY nar_timeout=1s")
    }"
ok $? "nginx with the module started" || bail_out "no nginx"
BASE=http://127.0.0.1:$NGINX_PORT

h=$(basename "$UPSTREAM_BIG" | cut -c1-32)
nar=$(sed -n 's/^URL: //p' "$UPSTREAM_DIR/xz/$h.narinfo")

# --- the narinfo ---------------------------------------------------------

curl -s -D "$T/h" -o "$T/ni" "$BASE/xz/$h.narinfo"
like "$(head -1 "$T/h")" " 200" "a path only the upstream has: 200"
like "$(cat "$T/h")" "Content-Type: text/x-nix-narinfo" "... as a narinfo"
is "$(grep ^URL: "$T/ni")" "URL: upstream/xz/$h/$nar" \
   "... its URL points at our upstream route"
is "$(grep -v ^URL: "$T/ni")" "$(grep -v ^URL: "$UPSTREAM_DIR/xz/$h.narinfo")" \
   "... the rest is the upstream's, signature included"
is "$(redis --scan --pattern 'xz:*')" "xz:upstream:$h" \
   "nothing is stored in Redis but the upstream's narinfo, for the NAR's check (no ingest yet)"

is "$(curl -s -o /dev/null -w '%{http_code}' \
          "$BASE/xz/00000000000000000000000000000000.narinfo")" 404 \
   "a path the upstream does not have: 404"
is "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/xz/e$h.narinfo")" 400 \
   "a malformed hash: 400, the upstream is not asked"
is "$(upstream_count "GET /xz/e$h\.narinfo")" 0 "... (its access log)"

# --- the NAR -------------------------------------------------------------

curl -s -D "$T/h" -o "$T/nar" "$BASE/xz/upstream/xz/$h/$nar"
like "$(head -1 "$T/h")" " 200" "the NAR through the upstream route: 200"
cmp -s "$T/nar" "$UPSTREAM_DIR/xz/$nar"
ok $? "... the upstream's bytes"
like "$(cat "$T/h")" "Content-Length: $(stat -c %s "$UPSTREAM_DIR/xz/$nar")" \
     "... with their length"
curl -s -I -o "$T/h" "$BASE/xz/upstream/xz/$h/$nar"
like "$(head -1 "$T/h")" " 200" "HEAD: 200"
like "$(cat "$T/h")" "Content-Length: $(stat -c %s "$UPSTREAM_DIR/xz/$nar")" \
     "... with the length"
is "$(curl -s -o /dev/null -w '%{http_code}' \
          "$BASE/xz/upstream/other/$h/$nar")" 404 \
   "an upstream this location does not have: 404"
is "$(curl -s -o /dev/null -w '%{http_code}' \
          "$BASE/xz/upstream/xz/$h/nar/x~y.nar.xz")" 404 \
   "a URL with a character no narinfo URL has: 404"
is "$(upstream_count "x~y")" 0 "... the upstream is not asked"
is "$(curl -s -o /dev/null -w '%{http_code}' \
          "$BASE/xz/upstream/xz/$h/nar/nothing.nar.xz")" 404 \
   "a NAR the upstream does not have: 404"

# a big uncompressed NAR: nginx's proxy buffers spill to its temporary file
# (and its narinfo asked first, so that the FileHash check reads it back)
nnar=$(sed -n 's/^URL: //p' "$UPSTREAM_DIR/none/$h.narinfo")
is "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/none/$h.narinfo")" 200 \
   "the big NAR's narinfo: 200"
got=$(curl -s -o "$T/nar" -w '%{http_code} %{size_download}' \
          "$BASE/none/upstream/none/$h/$nnar"; echo " $?")
is "$got" "200 $(stat -c %s "$UPSTREAM_DIR/none/$nnar") 0" \
   "a $(stat -c %s "$UPSTREAM_DIR/none/$nnar")-byte NAR through proxy_buffering on: whole"
cmp -s "$T/nar" "$UPSTREAM_DIR/none/$nnar"
ok $? "... the upstream's bytes"
# a slow client: the proxy's file is read out while the upstream is done
got=$(curl -s -o "$T/nar" --limit-rate 3m -w '%{http_code} %{size_download}' \
          "$BASE/none/upstream/none/$h/$nnar"; echo " $?")
is "$got" "200 $(stat -c %s "$UPSTREAM_DIR/none/$nnar") 0" \
   "... to a slow client (3 MB/s): whole"
cmp -s "$T/nar" "$UPSTREAM_DIR/none/$nnar"
ok $? "... the upstream's bytes"
is "$(grep -c "upstream NAR \"$nnar\" .*without the FileHash check" \
          "$T/nginx/error.log")" 0 \
   "... both checked against the recorded FileHash"

# --- the real client, signatures required --------------------------------

for c in xz https none order; do
    run_ok "nix copy through /$c/ (upstream only), signatures required" \
        nix_fresh nix copy --option require-sigs true \
            --option trusted-public-keys "$UPSTREAM_PUBKEY" \
            --from "$BASE/$c" --to "$T/dst-$c" "${UPSTREAM_PATHS[@]}"
    check_copy "$UPSTREAM_STORE" "$T/dst-$c" "/$c/" "${UPSTREAM_PATHS[@]}"
done
like "$(curl -s "$BASE/order/$h.narinfo" | grep ^URL:)" "^URL: upstream/zstd/$h/" \
     "/order/: after a dead upstream and one without the path, the third's"
ok "$([ "$(upstream_count "GET /nothing-here/$h\.narinfo")" -gt 0 ]; echo $?)" \
   "... the one without it was asked"
like "$(cat "$T/nginx/error.log")" "upstream \"dead\" did not answer for \"[a-z0-9]{32}\.narinfo\"" \
     "... the dead one's failure logged"
like "$(cat "$T/nginx/error.log")" "upstream \"dead\" is down: not asked for 10000 ms" \
     "... it is marked down, for its back-off"
like "$(cat "$T/nginx/error.log")" "upstream \"dead\" is down for [0-9]+ ms more: not asked" \
     "... and the next misses skip it"

# --- upstreams that fail -------------------------------------------------

is "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/absent/$h.narinfo")" 404 \
   "absent from one, badly signed at the other: 404 (Nix falls back)"
like "$(cat "$T/nginx/error.log")" "upstream \"badsig\": \"$h.narinfo\" has no valid signature by its trusted keys" \
     "... the bad signature logged"
is "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/failed/$h.narinfo")" 503 \
   "absent from one, 500 at the other: 503, not 404"
is "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/dead/$h.narinfo")" 503 \
   "the only upstream dead: 503"
is "$(curl -s -o /dev/null -w '%{http_code}' \
          "$BASE/dead/upstream/dead/$h/$nar")" 502 \
   "a NAR of a dead upstream: 502"
is "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/unsigned/$h.narinfo")" 404 \
   "unsigned, signatures required: 404"
is "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/trusting/$h.narinfo")" 200 \
   "unsigned, require_sigs=off: served"

# /truncated/ serves short NAR files with their own (short) length: a
# whole HTTP transfer, but not the length the narinfo recorded says
run_fails "nix copy through /truncated/ fails" \
    nix_fresh nix copy --option trusted-public-keys "$UPSTREAM_PUBKEY" \
        --from "$BASE/truncated" --to "$T/dst-tr" "$UPSTREAM_BIG"
like "$(cat "$T/nginx/error.log")" "upstream \"truncated\" NAR \"[^\"]*\" is [0-9]+ bytes, its narinfo's FileSize [0-9]+" \
     "... refused by the recorded FileSize (502), before a byte is sent"
run_fails "nix copy through /wronghash/ fails" \
    nix_fresh nix copy --option trusted-public-keys "$UPSTREAM_PUBKEY" \
        --from "$BASE/wronghash" --to "$T/dst-wh" "$UPSTREAM_BIG"
like "$(cat "$T/log/$E2E_NTESTS.log")" "hash mismatch" \
     "... for a hash mismatch (the client checks; no ingest yet)"

# a black-holed upstream (accepts, never answers) first: narinfo_timeout=1s
# ends it, not proxy_read_timeout's 60s; while it is down it is skipped
# and the path comes from the next upstream at once
t0=$(date +%s%N)
is "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/hole/$h.narinfo")" 200 \
   "a black-holed upstream, then one with the path: 200"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -ge 900 ] && [ "$ms" -lt 5000 ]
ok $? "... in $ms ms: the black hole's narinfo_timeout (1s), not its proxy_read_timeout"
like "$(cat "$T/nginx/error.log")" "upstream \"hole\": \"/_up/hole/$h.narinfo\" not done in 1000 ms \(narinfo_timeout\): timed out" \
     "... the timeout logged"
t0=$(date +%s%N)
is "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/hole/$h.narinfo")" 200 \
   "again while the black hole is down: 200"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 500 ]
ok $? "... in $ms ms: the black hole not asked"

# an upstream sending a NAR at 128 KiB/s, nar_timeout=1s: cut
snar=$nar
ssize=$(stat -c %s "$UPSTREAM_DIR/xz/$snar")
curl -s -o /dev/null "$BASE/slow/$h.narinfo"
t0=$(date +%s%N)
got=$(curl -s -o "$T/nar" -w '%{http_code}' \
          "$BASE/slow/upstream/slow/$h/$snar"; echo " $?")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
is "$got" "200 18" "a $ssize-byte NAR trickling in past nar_timeout=1s: cut"
[ "$(stat -c %s "$T/nar")" -lt "$ssize" ] && [ "$ms" -lt 5000 ]
ok $? "... short, after $ms ms"

nginx_log_ok "$T/nginx/error.log"
done_testing
