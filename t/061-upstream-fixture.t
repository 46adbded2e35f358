#!/bin/bash
# t/lib/upstream.sh, the upstream-cache fixture, does what it says: the
# real Nix client substitutes from its HTTP and HTTPS caches with
# signatures required, and refuses its broken variants for the reason
# each is broken; its dead and black-holed upstreams fail as documented.

source "$(dirname "$0")/lib/e2e.sh"
source "$(dirname "$0")/lib/upstream.sh"

e2e_init
command -v openssl > /dev/null || skip_all "openssl not installed"

upstream_build
ok $? "upstream caches built" || bail_out "no upstream caches"
is "$(ls "$UPSTREAM_DIR"/zstd/*.narinfo | wc -l)" \
   "$(echo "$UPSTREAM_CLOSURE" | wc -l)" "a narinfo per closure member"
big=$(sed -n 's/^NarSize: //p' \
          "$UPSTREAM_DIR/xz/$(basename "$UPSTREAM_BIG" | cut -c1-32).narinfo")
ok "$([ "$big" -gt $((3 * 1024 * 1024)) ]; echo $?)" \
   "UPSTREAM_BIG's NAR is over 3 MiB ($big bytes)"

upstream_start
ok $? "plain nginx upstream started" || bail_out "no upstream"

h=$(basename "$UPSTREAM_BIG" | cut -c1-32)
like "$(curl -s --cacert "$UPSTREAM_CA" "$UPSTREAM_HTTPS/zstd/$h.narinfo")" \
     "Sig: $UPSTREAM_KEYNAME:" "HTTPS with the test CA: a signed narinfo"
is "$(upstream_count "GET /zstd/$h\.narinfo HTTP/1\.1\" 200 ")" 1 \
   "the access log counts it"
is "$(curl -s -o /dev/null -w '%{http_code}' "$UPSTREAM_HTTP/500/$h.narinfo")" \
   500 "/500/ answers 500"

run_ok "nix copy from the HTTPS xz cache, signatures required" \
    nix_fresh env NIX_SSL_CERT_FILE="$UPSTREAM_CA" nix copy \
        --option require-sigs true \
        --option trusted-public-keys "$UPSTREAM_PUBKEY" \
        --from "$UPSTREAM_HTTPS/xz" --to "$T/dst-xz" "${UPSTREAM_PATHS[@]}"
check_copy "$UPSTREAM_STORE" "$T/dst-xz" "https xz" "${UPSTREAM_PATHS[@]}"
run_ok "nix copy from the HTTP zstd cache, signatures required" \
    nix_fresh nix copy --option require-sigs true \
        --option trusted-public-keys "$UPSTREAM_PUBKEY" \
        --from "$UPSTREAM_HTTP/zstd" --to "$T/dst-zstd" "${UPSTREAM_PATHS[@]}"

# input-addressed FIX[dep]: Nix accepts the CA paths unsigned
run_fails "/badsig/: refused" \
    nix_fresh nix copy --option trusted-public-keys "$UPSTREAM_PUBKEY" \
        --from "$UPSTREAM_HTTP/badsig" --to "$T/dst-badsig" "${FIX[dep]}"
like "$(cat "$T/log/$E2E_NTESTS.log")" "lacks a valid signature" \
     "... for lacking a valid signature"
run_fails "/unsigned/: refused" \
    nix_fresh nix copy --option trusted-public-keys "$UPSTREAM_PUBKEY" \
        --from "$UPSTREAM_HTTP/unsigned" --to "$T/dst-unsigned" "${FIX[dep]}"
like "$(cat "$T/log/$E2E_NTESTS.log")" "lacks a valid signature" \
     "... for lacking a valid signature"
run_fails "/wronghash/: refused" \
    nix_fresh nix copy --option trusted-public-keys "$UPSTREAM_PUBKEY" \
        --from "$UPSTREAM_HTTP/wronghash" --to "$T/dst-wh" "$UPSTREAM_BIG"
like "$(cat "$T/log/$E2E_NTESTS.log")" "hash mismatch" "... for a hash mismatch"
run_fails "/truncated/: refused" \
    nix_fresh nix copy --option trusted-public-keys "$UPSTREAM_PUBKEY" \
        --from "$UPSTREAM_HTTP/truncated" --to "$T/dst-tr" "$UPSTREAM_BIG"

nar=$(sed -n 's/^URL: //p' "$UPSTREAM_DIR/xz/$h.narinfo")
got=$(curl -s -o /dev/null --max-time 2 -w '%{size_download}' \
          "$UPSTREAM_HTTP/slow/$nar"; echo " $?")
like "$got" "^[0-9]+ 28$" "/slow/: a 3 MiB NAR is not done in 2 s ($got)"
ok "$([ "${got% *}" -gt 16384 ] && [ "${got% *}" -lt 1048576 ]; echo $?)" \
   "... but bytes flow (${got% *} in 2 s)"

upstream_blackhole
ok $? "black hole listening"
is "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "$UPSTREAM_BLACKHOLE/x"; echo " $?")" \
   "000 28" "black hole: connects, then the 1 s timeout (curl 28)"

run_ok "upstream_kill" upstream_kill
is "$(curl -s -o /dev/null -w '%{http_code}' "$UPSTREAM_HTTP/xz/nix-cache-info"; echo " $?")" \
   "000 7" "killed: connection refused (curl 7)"
upstream_start
ok $? "started again"
run_ok "upstream_stop" upstream_stop

done_testing
