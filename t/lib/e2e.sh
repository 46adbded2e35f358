# Shared helpers for the end-to-end suites t/05x-e2e-*.t.
#
# Sourced by bash test scripts that speak TAP.  Everything a test starts
# (redis-server, nginx) lives in one private temporary directory $T and
# is stopped by the EXIT trap, whatever the outcome.  Nothing listens
# anywhere but 127.0.0.1, on ports picked free at run time.
#
# Environment knobs:
#   NIXCACHE_BUILD     where nixcache and the module are (default build/)
#   NIXCACHE_E2E_KEEP  keep $T after the run (for debugging)

set -u
set -o pipefail

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_BUILD=${NIXCACHE_BUILD:-$E2E_ROOT/build}
NIXCACHE=$E2E_BUILD/nixcache
NIXCACHE_MODULE=$E2E_BUILD/ngx_http_nixcache_module.so
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}

E2E_NTESTS=0
E2E_NFAILED=0
E2E_PIDS=()
E2E_NIXRUN=0

# --- TAP ------------------------------------------------------------------

ok() {
    local cond=$1; shift
    E2E_NTESTS=$((E2E_NTESTS + 1))
    if [ "$cond" = 0 ]; then
        echo "ok $E2E_NTESTS - $*"
        return 0
    fi
    echo "not ok $E2E_NTESTS - $*"
    E2E_NFAILED=$((E2E_NFAILED + 1))
    return 1
}

# run_ok NAME CMD...: passes when CMD exits 0; its output goes to
# $T/log/<n>.log and is shown as diagnostics on failure.
run_ok() {
    local name=$1 log rc; shift
    log=$T/log/$((E2E_NTESTS + 1)).log
    "$@" > "$log" 2>&1
    rc=$?
    ok "$rc" "$name" || { diag "command: $*"; diag "exit $rc"; diag_file "$log"; }
}

# run_fails NAME CMD...: passes when CMD exits non-zero.
run_fails() {
    local name=$1 log rc; shift
    log=$T/log/$((E2E_NTESTS + 1)).log
    "$@" > "$log" 2>&1
    rc=$?
    if [ "$rc" != 0 ]; then rc=0; else rc=1; fi
    ok "$rc" "$name" || { diag "command unexpectedly succeeded: $*"; diag_file "$log"; }
}

is() {
    local got=$1 exp=$2; shift 2
    if [ "$got" = "$exp" ]; then ok 0 "$*"; return 0; fi
    ok 1 "$*"
    diag "     got: '$got'"
    diag "expected: '$exp'"
    return 1
}

like() {
    local got=$1 re=$2; shift 2
    if [[ $got =~ $re ]]; then ok 0 "$*"; return 0; fi
    ok 1 "$*"
    diag "     got: '$got'"
    diag "expected to match: '$re'"
    return 1
}

diag() {
    local line
    printf '%s\n' "$*" | while IFS= read -r line; do echo "# $line" >&2; done
}

note() {
    local line
    printf '%s\n' "$*" | while IFS= read -r line; do echo "# $line"; done
}

diag_file() {
    [ -f "$1" ] || return 0
    tail -n "${2:-30}" "$1" | sed 's/^/#   /' >&2
}

# Whether CI is set to true (or 1): CI installs everything, so there a
# missing dependency is a broken install step and fails instead of skipping.
in_ci() {
    [[ ${CI:-} =~ ^([Tt][Rr][Uu][Ee]|1)$ ]]
}

# skip_all WHY: a dependency is missing; the whole file skips (fails in CI).
skip_all() {
    if in_ci; then
        ok 1 "missing: $*"
        diag "CI=true: a missing dependency fails instead of skipping"
        echo "1..$E2E_NTESTS"
        exit 1
    fi
    echo "1..0 # SKIP $*"
    exit 0
}

# skip_part WHY: a dependency of one part is missing; that part is one
# skipped test (a failure in CI) and the file goes on.
skip_part() {
    if in_ci; then
        ok 1 "missing: $*"
        diag "CI=true: a missing dependency fails instead of skipping"
        return 0
    fi
    E2E_NTESTS=$((E2E_NTESTS + 1))
    echo "ok $E2E_NTESTS # SKIP $*"
}

bail_out() {
    echo "Bail out! $*"
    exit 255
}

done_testing() {
    echo "1..$E2E_NTESTS"
    [ "$E2E_NFAILED" = 0 ]
}

# --- the private directory and clean-up -----------------------------------

e2e_cleanup() {
    local pid i
    for pid in "${E2E_PIDS[@]}"; do
        kill -CONT "$pid" 2>/dev/null
        kill -TERM "$pid" 2>/dev/null || continue
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
    done
    if [ -n "${NIXCACHE_E2E_KEEP:-}" ]; then
        echo "# kept $T" >&2
    elif [ -n "${T:-}" ] && [ -d "$T" ]; then
        chmod -R u+w "$T" 2>/dev/null
        rm -rf "$T"
    fi
}

# e2e_init: make $T, the Nix configuration, the EXIT trap; check tools.
e2e_init() {
    local tool

    for tool in nix nix-store nix-build redis-server redis-cli curl perl; do
        command -v "$tool" > /dev/null || skip_all "$tool not installed"
    done
    [ -x "$NGINX_BIN" ] || skip_all "$NGINX_BIN not installed"
    [ -x "$NIXCACHE" ] || bail_out "$NIXCACHE not built (run make)"
    [ -f "$NIXCACHE_MODULE" ] || bail_out "$NIXCACHE_MODULE not built (run make)"

    T=$(mktemp -d "${TMPDIR:-/tmp}/nixcache-e2e.XXXXXX") || bail_out "mktemp"
    chmod 0755 "$T"
    trap e2e_cleanup EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$T/log" "$T/nixconf" "$T/xdg"

    # A root Nix without daemon: see FACTS.md "Nix client".
    cat > "$T/nixconf/nix.conf" <<NIXCONF
build-users-group =
experimental-features = nix-command
sandbox = false
substituters =
narinfo-cache-negative-ttl = 0
narinfo-cache-positive-ttl = 0
NIXCONF
    : > "$T/nixconf/user.conf"
    export NIX_CONF_DIR=$T/nixconf
    export NIX_USER_CONF_FILES=$T/nixconf/user.conf   # not ~/.config/nix
    export XDG_CACHE_HOME=$T/xdg
    unset NIX_REMOTE NIX_PATH NIX_STORE NIX_STORE_DIR
}

# nix_fresh CMD...: run CMD with a new, empty Nix cache directory, so no
# narinfo (positive or negative) cached by an earlier step is reused.
nix_fresh() {
    E2E_NIXRUN=$((E2E_NIXRUN + 1))
    XDG_CACHE_HOME=$T/xdg.$E2E_NIXRUN "$@"
}

# --- ports, Redis, nginx --------------------------------------------------

free_port() {
    perl -MIO::Socket::INET -e \
        'print IO::Socket::INET->new(Listen => 1, ReuseAddr => 1,
             LocalAddr => "127.0.0.1:0")->sockport, "\n"'
}

wait_for() {
    local i
    for i in $(seq 1 100); do
        "$@" > /dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

# redis_start: REDIS_PORT, a Redis with no persistence in $T/redis.
redis_start() {
    local try
    mkdir -p "$T/redis"
    for try in 1 2 3; do
        REDIS_PORT=$(free_port)
        redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
            --appendonly no --dir "$T/redis" --daemonize yes \
            --pidfile "$T/redis/redis.pid" --logfile "$T/redis/redis.log" \
            > /dev/null 2>&1
        if wait_for test -s "$T/redis/redis.pid" \
           && wait_for redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping
        then
            REDIS_PID=$(cat "$T/redis/redis.pid")
            E2E_PIDS+=("$REDIS_PID")
            REDIS_ADDR=127.0.0.1:$REDIS_PORT
            return 0
        fi
        [ -s "$T/redis/redis.pid" ] && kill "$(cat "$T/redis/redis.pid")"
    done
    diag_file "$T/redis/redis.log"
    return 1
}

redis() {
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"
}

# nginx_conf_head DIR WORKERS: the start of a private nginx.conf up to
# inside http {}: pid, logs and temporary paths in DIR (access log
# DIR/access.log), WORKERS worker processes.
nginx_conf_head() {
    cat <<NGINXCONF

worker_processes $2;
daemon on;
pid $1/nginx.pid;
error_log $1/error.log info;

events {
    worker_connections 256;
}

http {
    access_log $1/access.log;
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    default_type application/octet-stream;

NGINXCONF
}

# nginx_start HTTP_BODY: NGINX_PORT, a private nginx loading our module.
# HTTP_BODY is placed inside http {} and may use @PORT@ for the port
# (listen 127.0.0.1:@PORT@).  sendfile is nginx's default (off) unless the
# body sets it.  Logs: $T/nginx/{error,access}.log.
nginx_start() {
    local body=$1 try n=$T/nginx
    mkdir -p "$n"
    for try in 1 2 3; do
        NGINX_PORT=$(free_port)
        { echo "load_module $NIXCACHE_MODULE;"
          nginx_conf_head "$n" 2
          cat <<NGINXCONF
    nixcache_redis $REDIS_ADDR;

${body//@PORT@/$NGINX_PORT}
}
NGINXCONF
        } > "$n/nginx.conf"
        nginx_launch "$n" "http://127.0.0.1:$NGINX_PORT/"
        case $? in 0) return 0 ;; 2) break ;; esac
    done
    diag_file "$n/start.log"
    diag_file "$n/error.log"
    return 1
}

# nginx_launch DIR URL: starts nginx with DIR/nginx.conf (as written by
# nginx_conf_head) and waits until URL answers.  0 up (its pid is stopped
# at exit), 1 a port was taken meanwhile (pick others and try again),
# 2 failed otherwise (DIR/start.log and DIR/error.log say why).
nginx_launch() {
    local n=$1
    if "$NGINX_BIN" -p "$n" -c "$n/nginx.conf" -e "$n/error.log" \
           > "$n/start.log" 2>&1 \
       && wait_for curl -s -o /dev/null "$2"
    then
        E2E_PIDS+=("$(cat "$n/nginx.pid")")
        return 0
    fi
    [ -s "$n/nginx.pid" ] && kill "$(cat "$n/nginx.pid")" && sleep 0.2
    grep -q 'Address already in use' "$n/start.log" "$n/error.log" \
        2>/dev/null && return 1
    return 2
}

# nginx_stop: graceful shutdown (QUIT), so that whatever a worker leaves
# behind at exit (an open socket, a leaked connection) shows in the log.
nginx_stop() {
    local pid
    pid=$(cat "$T/nginx/nginx.pid" 2>/dev/null) || return 1
    kill -QUIT "$pid" || return 1
    wait_for_exit "$pid"
}

# nginx_reload: HUP, then wait until the old workers are gone.
nginx_reload() {
    local pid old p
    pid=$(cat "$T/nginx/nginx.pid") || return 1
    old=$(awk -v p="$pid" '$4 == p { print $1 }' /proc/[0-9]*/stat \
              2>/dev/null)
    kill -HUP "$pid" || return 1
    for p in $old; do
        wait_for_exit "$p" || return 1
    done
    wait_for curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/"
}

wait_for_exit() {
    local i
    for i in $(seq 1 200); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.05
    done
    return 1
}

# nginx_log_ok: no crash, alert or emergency in the error log.
nginx_log_ok() {
    local bad
    bad=$(grep -E '\[(alert|emerg|crit)\]|exited on signal' \
              "$T/nginx/error.log" 2>/dev/null)
    is "$bad" "" "nginx error log has no crit/alert/emerg/crash"
}

# access_count REGEX: access log lines matching REGEX (extended).
access_count() {
    grep -cE "$1" "$T/nginx/access.log" 2>/dev/null
}

# --- Nix store helpers -----------------------------------------------------

# realpath_in STORE /nix/store/xxx: where the path lives in a chroot store.
realpath_in() {
    echo "$1$2"
}

# closure STORE PATH...: the sorted closure.
closure() {
    local store=$1; shift
    nix-store --store "$store" -qR "$@" | sort
}

# path_meta STORE PATH...: "path narHash narSize refs,... deriver ca" per
# path, sorted; the fields a binary cache must carry over intact.
path_meta() {
    local store=$1; shift
    nix path-info --store "$store" --json "$@" | perl -MJSON::PP -e '
        local $/; my $j = decode_json(<STDIN>);
        for my $p (sort { $a->{path} cmp $b->{path} } @$j) {
            print join(" ", $p->{path}, $p->{narHash}, $p->{narSize},
                       join(",", sort @{$p->{references}}),
                       $p->{deriver} // "-", $p->{ca} // "-"), "\n";
        }'
}

# substitute URL DEST PATH...: nix copy from a binary cache, unsigned
# paths allowed, nothing cached from earlier look-ups.
substitute() {
    local url=$1 dest=$2; shift 2
    nix_fresh nix copy --option require-sigs false \
        --from "$url" --to "$dest" "$@"
}

# check_copy SRC DEST NAME PATH...: the copy in DEST is the same as the
# original in SRC: Nix verifies its NAR hashes, metadata agree, and the
# file trees are identical (modes, symlinks, contents).
check_copy() {
    local src=$1 dest=$2 name=$3 p diffs=""; shift 3
    run_ok "$name: nix store verify" \
        nix store verify --no-trust --store "$dest" -r "$@"
    is "$(path_meta "$dest" $(closure "$src" "$@"))" \
       "$(path_meta "$src" $(closure "$src" "$@"))" \
       "$name: narHash/narSize/references/deriver/CA equal the originals"
    for p in $(closure "$src" "$@"); do
        if ! diff -r --no-dereference "$src$p" "$dest$p" > "$T/log/diff" 2>&1
        then
            diffs="$diffs $p"
        fi
        if [ "$(tree_modes "$src$p")" != "$(tree_modes "$dest$p")" ]; then
            diffs="$diffs $p(modes)"
        fi
    done
    is "$diffs" "" "$name: trees identical to the originals"
}

# tree_modes DIR: file types, executable bits and symlink targets.
tree_modes() {
    (cd "$(dirname "$1")" && find "$(basename "$1")" -printf '%P %y %m %l\n' \
        | sort)
}
