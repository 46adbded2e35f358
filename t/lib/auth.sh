# Helpers for the init/post sections of t/057-auth.t (sourced by bash,
# set -e).

U=http://127.0.0.1:$TEST_NIXCACHE_PORT
K=$TEST_NIXCACHE_ROOT/t/auth

# st METHOD PATH STATUS [CURL-ARGS...]: the request's status must be STATUS;
# its headers are left in $TEST_NIXCACHE_DIR/st.headers.
st() {
    local method=$1 path=$2 want=$3 code
    shift 3
    code=$(curl -s -o /dev/null -D "$TEST_NIXCACHE_DIR/st.headers" \
               -w '%{http_code}' -X "$method" \
               $([ "$method" = HEAD ] && echo -I) \
               $([ "$method" = PUT ] && echo --data-binary x) \
               "$@" "$U/$path")
    if [ "$code" != "$want" ]; then
        echo "$method /$path $*: $code, want $want"
        exit 1
    fi
}

# challenged: the last st answer carried both WWW-Authenticate challenges
challenged() {
    grep -qix 'WWW-Authenticate: Basic realm="nixcache"'$'\r' \
        "$TEST_NIXCACHE_DIR/st.headers"
    grep -qix 'WWW-Authenticate: Bearer realm="nixcache"'$'\r' \
        "$TEST_NIXCACHE_DIR/st.headers"
}

bearer() { echo "-HAuthorization: Bearer $1"; }
