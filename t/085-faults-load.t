#!/bin/bash
# Faults under load: wrk on the narinfo and NAR routes (.nar.zst and
# .nar) while Redis is killed (SIGKILL) and restarted on the same port
# with its data.  Expected: only 200 and 503 (never a 404, nor another
# 5xx), 503s seen during the outage, 200 again within 3 s of the restart
# (the module has no back-off: the next command reconnects; 3 s, not 1,
# since wrk and the other suites of a 2-core machine compete with the
# probe), the same worker processes before and after, no crash or alert
# in the error log.
#
# With the S3 tier (a module that knows nixcache_s3_endpoint, and s3rver
# from make deps): the same load on a NAR whose chunks are in the disk
# tier while s3rver is stopped: only 200s; a NAR whose chunks are only in
# S3 is the control (503 while S3 is down).
#
# Env: FAULTS_LOAD_SECONDS (wrk duration, default 6).

source "$(dirname "$0")/lib/e2e.sh"

command -v wrk > /dev/null || skip_all "wrk not installed"
e2e_init

LUA=$E2E_ROOT/t/load/status-count.lua
DURATION=${FAULTS_LOAD_SECONDS:-6}

# --- a store path of a few chunks, pushed; Redis data saved to disk ---------

mkdir -p "$T/w"
head -c $((1536 * 1024)) /dev/urandom > "$T/w/blob"
seq 1 100000 >> "$T/w/blob"
P=$(nix-store --store "$T/store" --add "$T/w/blob")
ok $? "fixture store path added" || bail_out "no fixture"
H=$(basename "$P" | cut -c1-32)

redis_start
ok $? "redis-server started" || bail_out "no redis"

CHUNKS=$T/chunks
mkdir -p "$CHUNKS"
run_ok "nixcache push" \
    "$NIXCACHE" push --redis "$REDIS_ADDR" --chunks "$CHUNKS" \
        --store "$T/store" "$P"
chmod -R a+rX "$CHUNKS"

# --- the S3 tier, when there is one: a second path with chunks only in S3 --

S3=
S3CONF=
S3CTL=$E2E_ROOT/t/lib/s3rver-ctl
S3RVER_JS=$E2E_ROOT/build/node_modules/s3rver/bin/s3rver.js
if ! grep -q nixcache_s3_endpoint "$NIXCACHE_MODULE"; then
    skip_part "no S3 tier in this module: its part is skipped"
elif [ ! -f "$S3RVER_JS" ] || ! command -v node > /dev/null; then
    skip_part "s3rver not installed (make deps): the S3 part is skipped"
else
    for try in 1 2 3; do
        S3PORT=$(free_port)
        if S3RVER_JS=$S3RVER_JS "$S3CTL" start "$T/s3" "$S3PORT" nixcache \
               > "$T/log/s3rver" 2>&1
        then
            S3=http://127.0.0.1:$S3PORT
            break
        fi
    done
    ok "$([ -n "$S3" ]; echo $?)" "s3rver started" \
        || { diag_file "$T/log/s3rver"; bail_out "no s3rver"; }
    E2E_PIDS+=("$(cat "$T/s3/pid")")

    head -c $((512 * 1024)) /dev/urandom > "$T/w/cold"
    Q=$(nix-store --store "$T/store" --add "$T/w/cold")
    run_ok "nixcache push --s3-* of a second path (chunks only in S3)" \
        env AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER \
        "$NIXCACHE" push --redis "$REDIS_ADDR" --store "$T/store" \
            --s3-endpoint "$S3" --s3-bucket nixcache "$Q"

    printf 'S3RVER\nS3RVER\n' > "$T/s3creds"
    chmod 0600 "$T/s3creds"
    S3CONF="
            nixcache_s3_endpoint $S3;
            nixcache_s3_bucket nixcache;
            nixcache_s3_credentials $T/s3creds;"
fi

# The restarted Redis loads this dump: the data survives the kill.
is "$(redis SAVE)" OK "Redis data saved (dump.rdb)"

NAR_URL=$(redis GET "nixcache:narinfo:$H" | sed -n 's/^URL: //p')
like "$NAR_URL" '^nar/[0-9a-z]{52}\.nar\.zst$' "narinfo URL ($NAR_URL)"

nginx_start "
    nixcache_redis_timeout 1s;

    server {
        listen 127.0.0.1:@PORT@;

        location / {
            nixcache on;
            nixcache_chunks $CHUNKS;$S3CONF
        }
    }
" || bail_out "nginx did not start"

BASE=http://127.0.0.1:$NGINX_PORT
NARINFO=$BASE/$H.narinfo
NARZST=$BASE/$NAR_URL
NAR=$BASE/${NAR_URL%.zst}

code() {
    curl -s -o /dev/null -w '%{http_code}' "$1"
}

is "$(code "$NARINFO")" 200 "narinfo 200 before the load"
is "$(code "$NARZST")" 200 ".nar.zst 200 before the load"
is "$(code "$NAR")" 200 ".nar 200 before the load"

workers() {
    local master
    master=$(cat "$T/nginx/nginx.pid")
    awk -v p="$master" '$4 == p { print $1 }' /proc/[0-9]*/stat 2>/dev/null \
        | sort -n | tr '\n' ' '
}

WORKERS_BEFORE=$(workers)
ok "$([ -n "$WORKERS_BEFORE" ]; echo $?)" "workers: $WORKERS_BEFORE"

# redis_restart: the same port, directory and dump as redis_start.
redis_restart() {
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
        --appendonly no --dir "$T/redis" --daemonize yes \
        --pidfile "$T/redis/redis.pid" --logfile "$T/redis/redis.log" \
        > /dev/null 2>&1 || return 1
    wait_for redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping || return 1
    REDIS_PID=$(cat "$T/redis/redis.pid")
    E2E_PIDS+=("$REDIS_PID")
}

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# --- load, kill, restart -----------------------------------------------------

# load_start TAG: wrk on the three routes in the background, for
# $DURATION seconds, each counting statuses into $T/wrk-TAG-ROUTE.out.
load_start() {
    local route url
    WRK_PIDS=()
    for route in narinfo narzst nar; do
        case $route in
            narinfo) url=$NARINFO ;;
            narzst)  url=$NARZST ;;
            nar)     url=$NAR ;;
        esac
        wrk -t1 -c4 -d"${DURATION}s" --timeout 5s -s "$LUA" "$url" \
            > "$T/wrk-$1-$route.out" 2>&1 &
        WRK_PIDS+=($!)
        E2E_PIDS+=($!)
    done
}

load_wait() {
    local pid
    for pid in "${WRK_PIDS[@]}"; do
        wait "$pid"
    done
}

# load_check TAG ALLOWED NEED: per route, only the statuses matching the
# regex ALLOWED were seen, each of the space-separated statuses NEED at
# least once, and no socket error (reset, truncated response, timeout).
load_check() {
    local tag=$1 allowed=$2 need=$3 route out statuses errs c n
    for route in narinfo narzst nar; do
        out=$T/wrk-$tag-$route.out
        statuses=$(awk '$1 == "status" { print $2 }' "$out" | sort -n \
                       | tr '\n' ' ')
        errs=$(awk '$1 == "errors" && $3 != 0 { printf "%s=%s ", $2, $3 }' \
                   "$out")
        note "$tag, $route: $(awk '$1 == "status" { printf "%s x%s ", $2, $3 }' \
                                  "$out")${errs:+socket errors: $errs}"
        ok "$([ -n "$statuses" ] && [ -z "$(echo "$statuses" | tr ' ' '\n' \
                | grep -vxE "$allowed|")" ]; echo $?)" \
           "$tag, $route: only $allowed ($statuses)" || diag_file "$out"
        for c in $need; do
            n=$(awk -v c="$c" '$1 == "status" && $2 == c { print $3 }' "$out")
            ok "$([ "${n:-0}" -gt 0 ]; echo $?)" \
               "$tag, $route: $c seen (${n:-0} times)"
        done
        is "$errs" "" "$tag, $route: no socket error"
    done
}

load_start redis

sleep 1.5
kill -KILL "$REDIS_PID"
wait_for_exit "$REDIS_PID"
ok $? "Redis killed under load (SIGKILL)"

sleep 1.5
is "$(code "$NARINFO")" 503 "narinfo 503 while Redis is down"

redis_restart
ok $? "Redis restarted on the same port" || bail_out "no redis"
t0=$(now_ms)

recovered=
while [ $(($(now_ms) - t0)) -lt 10000 ]; do
    if [ "$(code "$NARINFO")" = 200 ]; then
        recovered=$(($(now_ms) - t0))
        break
    fi
    sleep 0.01
done
note "first narinfo 200 ${recovered:-never} ms after Redis answered ping"
ok "$([ -n "$recovered" ] && [ "$recovered" -le 3000 ]; echo $?)" \
   "narinfo 200 again within 3 s of the restart (${recovered:-never} ms)"
is "$(code "$NARZST")" 200 ".nar.zst 200 after the restart"

load_wait

# --- what the clients saw ------------------------------------------------------

load_check redis '200|503' '200 503'

# --- S3 stopped under load: disk-tier hits go on -------------------------------

if [ -n "$S3" ]; then
    QH=$(basename "$Q" | cut -c1-32)
    Q_URL=$(redis GET "nixcache:narinfo:$QH" | sed -n 's/^URL: //p')

    load_start s3
    sleep 1.5
    run_ok "s3rver stopped under load" "$S3CTL" stop "$T/s3"
    is "$(code "$BASE/$Q_URL")" 503 \
       "control: a NAR whose chunks are only in S3 is a 503 while S3 is down"
    load_wait
    load_check s3 '200' '200'
fi

is "$(workers)" "$WORKERS_BEFORE" "the same worker processes after the fault"
nginx_log_ok
is "$(grep -c 'exited on signal' "$T/nginx/error.log")" 0 \
   "no worker exited on a signal"

nginx_stop
ok $? "nginx stops gracefully"

done_testing
