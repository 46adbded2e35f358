# Helpers for the init/post sections of t/056-upload.t (sourced by bash,
# set -e): uploads with curl, checks on the file's Redis.

U=http://127.0.0.1:$TEST_NIXCACHE_PORT

# put PATH FILE STATUS [CURL-ARGS...]: PUT FILE's bytes to /PATH, expect
# STATUS.
put() {
    local path=$1 file=$2 want=$3 code
    shift 3
    code=$(curl -s -o "$TEST_NIXCACHE_DIR/put.out" -w '%{http_code}' \
               -X PUT -H 'Content-Type: application/x-nix-nar' \
               --data-binary "@$file" "$@" "$U/$path")
    if [ "$code" != "$want" ]; then
        echo "PUT /$path: $code, want $want"
        cat "$TEST_NIXCACHE_DIR/put.out"
        exit 1
    fi
}

# status METHOD PATH STATUS
status() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -X "$1" \
               $([ "$1" = HEAD ] && echo -I) "$U/$2")
    if [ "$code" != "$3" ]; then
        echo "$1 /$2: $code, want $3"
        exit 1
    fi
}

rcli() {
    redis-cli -p "$TEST_NIXCACHE_REDIS_PORT" "$@"
}

# no_keys PATTERN: nothing in Redis matches
no_keys() {
    local k
    k=$(rcli --scan --pattern "$1")
    if [ -n "$k" ]; then
        echo "unexpected Redis keys for $1:" $k
        exit 1
    fi
}

# no_temp_files: nothing left in nginx's client body directory
no_temp_files() {
    local f
    f=$(find "$TEST_NIXCACHE_TMP/tmp/client_body" -type f 2>/dev/null)
    if [ -n "$f" ]; then
        echo "left behind: $f"
        exit 1
    fi
}

# narinfo NAME [NARHASH] [NARSIZE] [STOREPATH]: the fixture's narinfo with
# fields replaced, in $TEST_NIXCACHE_DIR/NAME.narinfo
narinfo() {
    local name=$1 ni
    eval "ni=\$TEST_NIXCACHE_FIX_${name}_NARINFO"
    perl -pe '
        BEGIN { ($h, $s, $p) = @ARGV[1..3]; splice @ARGV, 1 }
        s/^NarHash: .*/NarHash: sha256:$h/ if length $h;
        s/^NarSize: .*/NarSize: $s/ if length $s;
        s/^StorePath: .*/StorePath: $p/ if length $p;
    ' "$ni" "${2:-}" "${3:-}" "${4:-}" > "$TEST_NIXCACHE_DIR/$name.narinfo"
}
