#!/bin/bash
# Faults under load: wrk on the narinfo and NAR routes (.nar.zst and
# .nar) while Redis is killed (SIGKILL) and restarted on the same port
# with its data.  Expected: only 200 and 503 (never a 404, nor another
# 5xx), 503s seen during the outage, 200 again within a second of the
# restart, the same worker processes before and after, no crash or alert
# in the error log.
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
            nixcache_chunks $CHUNKS;
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

for route in narinfo narzst nar; do
    case $route in
        narinfo) url=$NARINFO ;;
        narzst)  url=$NARZST ;;
        nar)     url=$NAR ;;
    esac
    wrk -t1 -c4 -d"${DURATION}s" --timeout 5s -s "$LUA" "$url" \
        > "$T/wrk-$route.out" 2>&1 &
    WRK_PIDS+=($!)
    E2E_PIDS+=($!)
done

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
while [ $(($(now_ms) - t0)) -lt 5000 ]; do
    if [ "$(code "$NARINFO")" = 200 ]; then
        recovered=$(($(now_ms) - t0))
        break
    fi
    sleep 0.01
done
note "first narinfo 200 ${recovered:-never} ms after Redis answered ping"
ok "$([ -n "$recovered" ] && [ "$recovered" -le 1000 ]; echo $?)" \
   "narinfo 200 again within 1 s of the restart (${recovered:-never} ms)"
is "$(code "$NARZST")" 200 ".nar.zst 200 after the restart"

for pid in "${WRK_PIDS[@]}"; do
    wait "$pid"
done

# --- what the clients saw ------------------------------------------------------

for route in narinfo narzst nar; do
    out=$T/wrk-$route.out
    statuses=$(awk '$1 == "status" { print $2 }' "$out" | sort -n \
                   | tr '\n' ' ')
    n200=$(awk '$1 == "status" && $2 == 200 { print $3 }' "$out")
    n503=$(awk '$1 == "status" && $2 == 503 { print $3 }' "$out")
    errs=$(awk '$1 == "errors" && $3 != 0 { printf "%s=%s ", $2, $3 }' "$out")
    note "$route: $(awk '$1 == "status" { printf "%s x%s ", $2, $3 }' "$out")${errs:+socket errors: $errs}"
    ok "$([ -n "$statuses" ] && [ -z "$(echo "$statuses" | tr ' ' '\n' \
            | grep -vxE '200|503|')" ]; echo $?)" \
       "$route under the fault: only 200 and 503 ($statuses)" \
        || diag_file "$out"
    ok "$([ "${n200:-0}" -gt 0 ] && [ "${n503:-0}" -gt 0 ]; echo $?)" \
       "$route: 200s and the outage's 503s both seen (${n200:-0}, ${n503:-0})"
    is "$errs" "" "$route: no connection reset, truncated response or timeout"
done

is "$(workers)" "$WORKERS_BEFORE" "the same worker processes after the fault"
nginx_log_ok
is "$(grep -c 'exited on signal' "$T/nginx/error.log")" 0 \
   "no worker exited on a signal"

nginx_stop
ok $? "nginx stops gracefully"

done_testing
