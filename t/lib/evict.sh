# Helpers for t/115-s3-evict.t's init/post scripts (bash, set -e, repo root).
#
# A NAR's chunk list is in TEST_NIXCACHE_EV_<name> ("xx/CID ..."), set by
# the block's fixture.

base=http://127.0.0.1:$TEST_NIXCACHE_PORT

# under valgrind everything is about ten times slower: so are the waits
slow=1
[ -n "${TEST_NIXCACHE_VALGRIND:-}" ] && slow=10

# the bytes of the disk tier, counted as the evictor counts them:
# max(size, blocks) of every file
tier_bytes() {
    find "$TEST_NIXCACHE_CHUNKS" -type f -printf '%s %b\n' \
        | awk '{ b = $2 * 512; t += ($1 > b ? $1 : b) } END { print t + 0 }'
}

chunks_of() {
    local v=TEST_NIXCACHE_EV_$1
    echo "${!v}"
}

# how many of a NAR's chunks are on disk
present() {
    local n=0 c
    for c in $(chunks_of "$1"); do
        [ -f "$TEST_NIXCACHE_CHUNKS/$c" ] && n=$((n + 1))
    done
    echo $n
}

count() {
    chunks_of "$1" | wc -w
}

# waits (5 s at most, 50 under valgrind) until every chunk of a NAR is on disk
wait_all() {
    local i
    for i in $(seq $((50 * slow))); do
        [ "$(present "$1")" = "$(count "$1")" ] && return 0
        sleep 0.1
    done
    echo "$1: $(present "$1") of $(count "$1") chunks on disk"
    return 1
}

# get NAME [.nar|.nar.zst] [location prefix]: byte-exact or fails
get() {
    local name=$1 ext=${2:-.nar.zst} loc=${3:-} hv fv out
    hv=TEST_NIXCACHE_FIX_${name}_NARHASH
    if [ "$ext" = .nar ]; then fv=TEST_NIXCACHE_FIX_${name}_NAR
    else fv=TEST_NIXCACHE_FIX_${name}_NARZST; fi
    out=$TEST_NIXCACHE_DIR/got-$name$ext-$RANDOM
    curl -sSf -o "$out" "$base$loc/nar/${!hv}$ext"
    cmp "$out" "${!fv}"
    rm -f "$out"
}

# waits (10 s at most, 100 under valgrind) until the disk tier holds at most $1 bytes
wait_under() {
    local i
    for i in $(seq $((100 * slow))); do
        [ "$(tier_bytes)" -le "$1" ] && return 0
        sleep 0.1
    done
    echo "disk tier: $(tier_bytes) bytes, more than $1"
    return 1
}
