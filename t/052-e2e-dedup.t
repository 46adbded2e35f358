#!/bin/bash
# End to end: deduplication across versions of real software.
#
# Three successive patch releases of TypeScript (from the npm registry,
# cached under build/e2e-npm so a re-run downloads nothing) are added as
# store paths and pushed one after the other.  For each we compare what
# our chunk directory gained with what Nix's own flat binary cache
# (`nix copy --to file://…?compression=zstd`) stores for it, then
# substitute all of them back through nginx and verify.
#
# Measured with the reference chunker settings (16/64/256 KiB, zstd -3):
# a patch release adds roughly 4-11 % of its own compressed size.  (Minor
# releases, e.g. 5.3.3 -> 5.4.5, rewrite the bundled compiler almost
# everywhere and share little; they are not what this test shows.)

source "$(dirname "$0")/lib/e2e.sh"

VERSIONS="5.4.3 5.4.4 5.4.5"
declare -A SHA256=(
    [5.4.3]=c1fe425dd986563370ea040a173022216ac93dc4d5e977e6f6d47539302f1090
    [5.4.4]=0a5b3b80f055936eef797431778bbb3c39c1a4d3fcdbea16f9ac9dc343454c48
    [5.4.5]=154fae77169f04155ac52d521ac59abb07c9be29ea3744732adbf9f14abb2440
)
# A later version may add at most this share of its own zstd flat size.
MAX_ADDED_PCT=25
# All versions together: at most this share of the flat caches' sum.
MAX_TOTAL_PCT=60

# --- the tarballs, from the cache or the npm registry -----------------------

NPM_CACHE=$E2E_BUILD/e2e-npm
mkdir -p "$NPM_CACHE"
for v in $VERSIONS; do
    tgz=$NPM_CACHE/typescript-$v.tgz
    if [ ! -s "$tgz" ]; then
        command -v npm > /dev/null || skip_all "npm not installed"
        # into a private directory first: a concurrent run never sees a
        # partial tarball
        dl=$NPM_CACHE/dl.$$
        mkdir -p "$dl"
        if (cd "$dl" && npm pack --silent --fetch-timeout=30000 \
                --fetch-retries=1 "typescript@$v" > /dev/null 2>&1)
        then
            mv "$dl/typescript-$v.tgz" "$tgz"
        fi
        rm -rf "$dl"
        [ -s "$tgz" ] || skip_all "npm registry unreachable"
    fi
    sum=$(sha256sum "$tgz" | cut -d' ' -f1)
    if [ "$sum" != "${SHA256[$v]}" ]; then
        rm -f "$tgz"
        bail_out "typescript-$v.tgz: sha256 $sum, expected ${SHA256[$v]}"
    fi
done

e2e_init

SRC=$T/store
declare -A SP
for v in $VERSIONS; do
    mkdir -p "$T/w/$v"
    tar -xzf "$NPM_CACHE/typescript-$v.tgz" -C "$T/w/$v"
    mv "$T/w/$v/package" "$T/w/$v/typescript-$v"
    SP[$v]=$(nix-store --store "$SRC" --add "$T/w/$v/typescript-$v")
done
is "$(printf '%s\n' "${SP[@]}" | grep -c -- '-typescript-5')" 3 \
   "TypeScript $VERSIONS added to the store"

redis_start
ok $? "redis-server started" || bail_out "no redis"

CHUNKS=$T/chunks
mkdir -p "$CHUNKS"
chmod 0755 "$CHUNKS"

chunk_bytes() {
    find "$CHUNKS" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'
}

# Redis holds the rest: manifests (40 bytes per chunk) and narinfos (the
# other keys, such as the gc's access set, are not strings).
redis_bytes() {
    local k n=0
    for k in $(redis --scan --pattern 'nixcache:narinfo:*') \
             $(redis --scan --pattern 'nixcache:manifest:*'); do
        n=$((n + $(redis STRLEN "$k")))
    done
    echo $n
}

pct() {
    echo $(($1 * 100 / $2))
}

note "$(printf '%-8s %12s %12s %12s %12s %7s' \
        version nar_size flat_zstd chunk_total added added%)"

stored=0 flat_sum=0 nar_sum=0 first=1
for v in $VERSIONS; do
    p=${SP[$v]}
    nar=$(nix path-info --store "$SRC" --json "$p" \
              | perl -MJSON::PP -0e 'print decode_json(<STDIN>)->[0]{narSize}')
    nix copy --store "$SRC" --to "file://$T/flat-$v?compression=zstd" "$p" \
        2> /dev/null
    flat=$(find "$T/flat-$v/nar" -type f -printf '%s\n' \
               | awk '{ s += $1 } END { print s + 0 }')

    start=$SECONDS
    run_ok "nixcache push typescript-$v" \
        "$NIXCACHE" push --redis "$REDIS_ADDR" --chunks "$CHUNKS" \
            --store "$SRC" "$p"
    now=$(chunk_bytes)
    added=$((now - stored))
    note "$(printf '%-8s %12d %12d %12d %12d %6d%%' \
            "$v" "$nar" "$flat" "$now" "$added" "$(pct $added $flat)")"

    if [ $first = 0 ]; then
        ok "$([ $((added * 100)) -lt $((flat * MAX_ADDED_PCT)) ]; echo $?)" \
           "typescript-$v adds $(pct $added $flat)% of its own zstd size" \
           "(< $MAX_ADDED_PCT%)"
    else
        ok "$([ "$added" -gt $((flat / 2)) ]; echo $?)" \
           "typescript-$v, the first, is stored in full ($added bytes)"
    fi
    first=0 stored=$now
    flat_sum=$((flat_sum + flat)) nar_sum=$((nar_sum + nar))
done

note "sum of NAR sizes:              $nar_sum"
note "sum of zstd flat NAR files:    $flat_sum"
note "chunk directory (all):         $stored"
meta=$(redis_bytes)
note "manifests + narinfos (Redis):  $meta"
note "ratio chunks / flat:           $(pct $stored $flat_sum)%"
note "ratio chunks / NAR:            $(pct $stored $nar_sum)%"
all=$((stored + meta))
ok "$([ $((all * 100)) -lt $((flat_sum * MAX_TOTAL_PCT)) ]; echo $?)" \
   "all versions, chunks and Redis, take $(pct $all $flat_sum)% of the" \
   "flat caches (< $MAX_TOTAL_PCT%)"

# --- and they still come back intact -----------------------------------------

chmod -R a+rX "$CHUNKS"
nginx_start "
    sendfile on;

    server {
        listen 127.0.0.1:@PORT@;
        location / {
            nixcache on;
            nixcache_chunks $CHUNKS;
        }
    }"
ok $? "nginx with the module started" || bail_out "no nginx"

DST=$T/dst
run_ok "nix copy --from the cache: all versions" \
    substitute "http://127.0.0.1:$NGINX_PORT" "$DST" "${SP[@]}"
check_copy "$SRC" "$DST" "typescript" "${SP[@]}"

run_ok "nginx stops gracefully (QUIT)" nginx_stop
nginx_log_ok

done_testing
