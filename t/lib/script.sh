# Sourced by every init and post script of a Nixcache::Test block, which
# runs under set -e -o pipefail.
#
#   fails CMD...   succeeds only when CMD fails.  A bare "! CMD" cannot
#                  fail a set -e script (bash ignores the status of a
#                  negated command): the harness refuses such lines.
#   scaled SECS    SECS times $TEST_NIXCACHE_SLOW (5 under valgrind, else
#                  1), for sleeps, curl --max-time and timing bounds that
#                  wait on nginx.

fails() {
    if "$@"; then
        echo "fails: succeeded: $*" >&2
        return 1
    fi
}

scaled() {
    awk -v t="$1" -v s="${TEST_NIXCACHE_SLOW:-1}" 'BEGIN { print t * s }'
}
