# Metrics (nixcache_metrics_zone, nixcache_metrics) and health
# (nixcache_health).  Every block names its own zone, so that under
# TEST_NIXCACHE_HUP a block's counters never carry over from the block
# before it; TEST 5 reloads nginx itself and checks that they do carry over
# a reload that keeps the zone.  Scripts work in the block's directory (a
# fresh one per block: Prometheus's storage must not outlive the block).

use lib 't/lib';
use Nixcache::Test;

run_tests();

__DATA__

=== TEST 1: every series at 0 from startup, HELP and TYPE, promtool check
--- http_config
nixcache_metrics_zone m1 1m;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
location = /metrics {
    nixcache_metrics;
}
--- post
cd $TEST_NIXCACHE_DIR
curl -sf http://127.0.0.1:$TEST_NIXCACHE_PORT/metrics > m.txt
promtool check metrics < m.txt
for route in other cache_info narinfo nar nar_zst upload; do
    for s in 1xx 2xx 3xx 4xx 5xx; do
        grep -qxF "nixcache_requests_total{cache=\"nixcache:\",route=\"$route\",status=\"$s\"} 0" m.txt
    done
done
# per cache: requests 30, narinfo 3, NAR bytes 2, chunks 2+2, uploads
# 2+2+5; the server: Redis 1+1+4+16 (histogram), S3 9+16; no disk tier
test "$(grep -c "^nixcache_" m.txt)" = 95
test "$(grep -v '^#' m.txt | grep -vc ' 0$')" = 0
for c in bad_request denied conflict too_large server_error; do
    grep -qxF "nixcache_upload_failures_total{cache=\"nixcache:\",cause=\"$c\"} 0" m.txt
done
for c in timeout connect not_found denied http_5xx http_other transfer too_large corrupt; do
    grep -qxF "nixcache_s3_fetch_errors_total{cause=\"$c\"} 0" m.txt
done
for h in redis_command s3_fetch; do
    grep -qxF "# TYPE nixcache_${h}_duration_seconds histogram" m.txt
    grep -qxF "nixcache_${h}_duration_seconds_bucket{le=\"+Inf\"} 0" m.txt
    grep -qxF "nixcache_${h}_duration_seconds_count 0" m.txt
done
grep -qxF 'nixcache_redis_command_duration_seconds_bucket{le="0.00025"} 0' m.txt
grep -qxF 'nixcache_s3_fetch_duration_seconds_bucket{le="2.5"} 0' m.txt
--- request
GET /metrics
--- error_code: 200
--- response_headers
Content-Type: text/plain; version=0.0.4
--- response_body_like
^# HELP nixcache_requests_total .*
# TYPE nixcache_requests_total counter
nixcache_requests_total\{cache="nixcache:",route="other",status="1xx"\} 0
.*
# TYPE nixcache_narinfo_lookups_total counter
nixcache_narinfo_lookups_total\{cache="nixcache:",result="hit"\} 0
nixcache_narinfo_lookups_total\{cache="nixcache:",result="miss"\} 0
nixcache_narinfo_lookups_total\{cache="nixcache:",result="error"\} 0
.*
nixcache_nar_sent_bytes_total\{cache="nixcache:",route="nar"\} 0
nixcache_nar_sent_bytes_total\{cache="nixcache:",route="nar_zst"\} 0
.*
nixcache_upload_received_bytes_total\{cache="nixcache:"\} 0
.*
# TYPE nixcache_redis_connects_total counter
nixcache_redis_connects_total 0
.*
nixcache_redis_failures_total\{cause="unreachable"\} 0
nixcache_redis_failures_total\{cause="timeout"\} 0
nixcache_redis_failures_total\{cause="closed"\} 0
nixcache_redis_failures_total\{cause="error_reply"\} 0
.*
nixcache_s3_fetch_duration_seconds_sum 0
nixcache_s3_fetch_duration_seconds_count 0
.*
# TYPE nixcache_disk_tier_evicted_bytes_total counter
$
--- no_error_log
[error]



=== TEST 2: narinfo hits and misses, NARs: exact counts, body bytes
--- http_config
nixcache_metrics_zone m2 1m;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
location = /metrics {
    nixcache_metrics;
}
--- fixture
add_nar(name => 'one', content => "hello, nixcache\n" x 5000,
        chunk_size => 4096);
--- init
cd $TEST_NIXCACHE_DIR
u=http://127.0.0.1:$TEST_NIXCACHE_PORT/cache
for i in 1 2 3; do
    curl -sf -o /dev/null $u/$TEST_NIXCACHE_FIX_one_HASH.narinfo
done
for i in 1 2; do
    test "$(curl -s -o /dev/null -w '%{http_code}' \
            $u/00000000000000000000000000000000.narinfo)" = 404
done
curl -sf -o /dev/null $u/nix-cache-info
curl -sf -o nar $u/nar/$TEST_NIXCACHE_FIX_one_NARHASH.nar
cmp nar $TEST_NIXCACHE_FIX_one_NAR
curl -sf -o /dev/null $u/nar/$TEST_NIXCACHE_FIX_one_NARHASH.nar.zst
curl -sf -o /dev/null $u/nar/$TEST_NIXCACHE_FIX_one_NARHASH.nar.zst
test "$(curl -s -o /dev/null -w '%{http_code}' $u/nope)" = 404
--- post
cd $TEST_NIXCACHE_DIR
curl -sf http://127.0.0.1:$TEST_NIXCACHE_PORT/metrics > m.txt
promtool check metrics < m.txt
chunks=$((TEST_NIXCACHE_FIX_one_NCHUNKS * 3))
test $TEST_NIXCACHE_FIX_one_NCHUNKS -gt 1
grep -qxF "nixcache_chunks_served_total{cache=\"nixcache:\",tier=\"disk\"} $chunks" m.txt
grep -qxF "nixcache_chunks_served_total{cache=\"nixcache:\",tier=\"s3\"} 0" m.txt
zst=$((TEST_NIXCACHE_FIX_one_FILESIZE * 2))
grep -qxF "nixcache_nar_sent_bytes_total{cache=\"nixcache:\",route=\"nar_zst\"} $zst" m.txt
# one worker, one connection to Redis, no failure
grep -qxF "nixcache_redis_connects_total 1" m.txt
test "$(grep '^nixcache_redis_failures_total' m.txt | grep -vc ' 0$')" = 0
--- request
GET /metrics
--- response_body_like
nixcache_requests_total\{cache="nixcache:",route="other",status="4xx"\} 1
.*
nixcache_requests_total\{cache="nixcache:",route="cache_info",status="2xx"\} 1
.*
nixcache_requests_total\{cache="nixcache:",route="narinfo",status="2xx"\} 3
.*
nixcache_requests_total\{cache="nixcache:",route="narinfo",status="4xx"\} 2
.*
nixcache_requests_total\{cache="nixcache:",route="nar",status="2xx"\} 1
.*
nixcache_requests_total\{cache="nixcache:",route="nar_zst",status="2xx"\} 2
.*
nixcache_narinfo_lookups_total\{cache="nixcache:",result="hit"\} 3
nixcache_narinfo_lookups_total\{cache="nixcache:",result="miss"\} 2
nixcache_narinfo_lookups_total\{cache="nixcache:",result="error"\} 0
.*
nixcache_nar_sent_bytes_total\{cache="nixcache:",route="nar"\} $TEST_NIXCACHE_FIX_one_NARSIZE
--- no_error_log
[error]



=== TEST 3: ?format=json, two caches
--- http_config
nixcache_metrics_zone m3 1m;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
location /other/ {
    nixcache on;
    nixcache_redis_prefix other:;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
location = /metrics {
    nixcache_metrics;
}
--- init
cd $TEST_NIXCACHE_DIR
curl -sf -o /dev/null http://127.0.0.1:$TEST_NIXCACHE_PORT/other/nix-cache-info
--- post
cd $TEST_NIXCACHE_DIR
curl -sf "http://127.0.0.1:$TEST_NIXCACHE_PORT/metrics?format=json" > m.json
python3 - <<'PY'
import json
m = json.load(open('m.json'))
assert sorted(m['caches']) == ['nixcache:', 'other:'], m
assert m['caches']['other:']['requests']['cache_info']['2xx'] == 1, m
assert m['caches']['nixcache:']['requests']['cache_info']['2xx'] == 0, m
assert m['caches']['nixcache:']['narinfo'] == {'hit': 0, 'miss': 0, 'error': 0}
PY
--- request
GET /metrics?format=json
--- response_headers
Content-Type: application/json
--- response_body_like
^\{"caches":\{"nixcache:":\{"requests":\{"other":\{"1xx":0,
--- no_error_log
[error]



=== TEST 4: counters survive a reload (HUP) that keeps the zone
--- skip eval
$ENV{TEST_NIXCACHE_VALGRIND} ? 'no reload under valgrind (master_process off)' : undef
--- http_config
nixcache_metrics_zone m4 1m;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
location = /metrics {
    nixcache_metrics;
}
--- init
cd $TEST_NIXCACHE_DIR
u=http://127.0.0.1:$TEST_NIXCACHE_PORT
for i in 1 2 3 4; do curl -sf -o /dev/null $u/cache/nix-cache-info; done
# (to a file: grep -q would close the pipe on curl, and pipefail fail)
curl -sf $u/metrics > m.txt
grep -qxF 'nixcache_requests_total{cache="nixcache:",route="cache_info",status="2xx"} 4' m.txt
kill -HUP $(cat $TEST_NIXCACHE_DIR/../../logs/nginx.pid)
# the old worker goes away once the new ones answer
for i in $(seq 50); do
    grep -q 'gracefully shutting down' $TEST_NIXCACHE_DIR/../../logs/error.log && break
    sleep 0.2
done
sleep $(scaled 0.5)
curl -sf --max-time $(scaled 5) -o /dev/null $u/cache/nix-cache-info
--- request
GET /metrics
--- response_body_like
nixcache_requests_total\{cache="nixcache:",route="cache_info",status="2xx"\} 5
--- no_error_log
[error]



=== TEST 4b: a reload that adds a cache starts the counters again at 0
--- skip eval
$ENV{TEST_NIXCACHE_VALGRIND} ? 'no reload under valgrind (master_process off)' : undef
--- http_config
nixcache_metrics_zone m4b 1m;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
location = /metrics {
    nixcache_metrics;
}
--- init
cd $TEST_NIXCACHE_DIR
u=http://127.0.0.1:$TEST_NIXCACHE_PORT
conf=$TEST_NIXCACHE_DIR/../../nginx.conf
curl -sf -o /dev/null $u/cache/nix-cache-info
curl -sf $u/metrics > m1.txt
grep -qxF 'nixcache_requests_total{cache="nixcache:",route="cache_info",status="2xx"} 1' m1.txt
sed -i 's|^location = /metrics {|location /b/ { nixcache on; nixcache_redis_prefix b:; nixcache_chunks $TEST_NIXCACHE_CHUNKS; }\n&|' $conf
grep -q 'location /b/' $conf
kill -HUP $(cat $TEST_NIXCACHE_DIR/../../logs/nginx.pid)
for i in $(seq 50); do
    curl -s --max-time 2 $u/metrics > m2.txt || true
    grep -q 'cache="b:"' m2.txt && break
    sleep 0.2
done
grep -qxF 'nixcache_requests_total{cache="b:",route="cache_info",status="2xx"} 0' m2.txt
grep -qxF 'nixcache_requests_total{cache="nixcache:",route="cache_info",status="2xx"} 0' m2.txt
# an old worker may still take a connection or two (its 404 is an
# [error] in the log): until a new one does
for i in $(seq 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' $u/b/nix-cache-info)
    [ "$code" = 200 ] && break
    sleep 0.2
done
test "$code" = 200
--- request
GET /metrics
--- response_body_like
nixcache_requests_total\{cache="b:",route="cache_info",status="2xx"\} 1
--- no_error_log
[alert]
[emerg]



=== TEST 5: a real Prometheus scrapes /metrics; a query returns the count
--- http_config
nixcache_metrics_zone m5 1m;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
location = /metrics {
    nixcache_metrics;
}
--- script_timeout: 120
--- init
cd $TEST_NIXCACHE_DIR
u=http://127.0.0.1:$TEST_NIXCACHE_PORT
for i in 1 2 3; do
    curl -s -o /dev/null $u/cache/11111111111111111111111111111111.narinfo
done
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > prometheus.yml <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: nixcache
    static_configs:
      - targets: ['127.0.0.1:$TEST_NIXCACHE_PORT']
YML
prometheus --config.file=prometheus.yml --storage.tsdb.path=prom \
    --web.listen-address=127.0.0.1:$pport > prom.log 2>&1 &
ppid=$!
trap 'kill $ppid 2>/dev/null; wait $ppid 2>/dev/null || true' EXIT
q='nixcache_narinfo_lookups_total{cache="nixcache:",result="miss"}'
got=
for i in $(seq 60); do
    got=$(curl -sG "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$q" \
          | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' || true)
    [ "$got" = 3 ] && break
    sleep 1
done
echo "prometheus answered: '$got'"
test "$got" = 3
--- no_error_log
[error]



=== TEST 6: health: 200 "ok" with Redis up and the disk tier readable
--- http_config
nixcache_metrics_zone m6 1m;
--- config
location = /health {
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_health;
}
--- request
GET /health
--- error_code: 200
--- response_body
ok
--- no_error_log
[error]



=== TEST 7: health: 503 naming redis when Redis is stopped; counted
--- http_config
nixcache_metrics_zone m7 1m;
--- config
location = /health {
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_health;
}
location = /metrics {
    nixcache_metrics;
}
--- init
cd $TEST_NIXCACHE_DIR
$TEST_NIXCACHE_REDIS_CTL stop
--- post
cd $TEST_NIXCACHE_DIR
curl -sf http://127.0.0.1:$TEST_NIXCACHE_PORT/metrics > m.txt
promtool check metrics < m.txt
# refused: the non-blocking connect fails after it was started
grep -qxF 'nixcache_redis_failures_total{cause="closed"} 1' m.txt
grep -qxF 'nixcache_redis_failures_total{cause="timeout"} 0' m.txt
--- request
GET /health
--- error_code: 503
--- response_body_like
^redis: 
--- error_log
nixcache: redis 127.0.0.1:$TEST_NIXCACHE_REDIS_PORT



=== TEST 8: health: 503 naming the disk tier when its directory is gone
--- config
location = /health {
    nixcache_chunks $TEST_NIXCACHE_DIR/no-such-dir;
    nixcache_health;
}
--- request
GET /health
--- error_code: 503
--- response_body_like
^disk: .*no-such-dir: No such file or directory$



=== TEST 9: nixcache_metrics without a zone is refused
--- config
location = /metrics {
    nixcache_metrics;
}
--- must_die
--- error_log
"nixcache_metrics" directive requires "nixcache_metrics_zone" before it



=== TEST 10: uploads: NARs (one chunked) and a narinfo PUT, counted with their body bytes
--- http_config
nixcache_metrics_zone m10 1m;
--- fixture
add_nar(name => 'a', prefix => 'fix:',
        content => join('', map { "upload line $_\n" } 1 .. 5000));
--- config
location / {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_DIR/up;
    nixcache_redis_prefix up:;
    nixcache_upload on;
    nixcache_push_tokens off;
    client_max_body_size 0;
}
location = /metrics {
    nixcache_metrics;
}
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
xz -c $TEST_NIXCACHE_FIX_a_NAR > $TEST_NIXCACHE_DIR/a.nar.xz
put nar/someupload.nar.xz $TEST_NIXCACHE_DIR/a.nar.xz 201
narinfo a
put $TEST_NIXCACHE_FIX_a_HASH.narinfo $TEST_NIXCACHE_DIR/a.narinfo 201
put nar/chunked.nar.xz $TEST_NIXCACHE_DIR/a.nar.xz 201 \
    -H 'Transfer-Encoding: chunked'
printf 'not xz at all' > $TEST_NIXCACHE_DIR/bad.nar.xz
put nar/bad.nar.xz $TEST_NIXCACHE_DIR/bad.nar.xz 400
--- request
GET /metrics
--- error_code: 200
--- post
cd $TEST_NIXCACHE_DIR
curl -sf http://127.0.0.1:$TEST_NIXCACHE_PORT/metrics > m.txt
bytes=$(( 2 * $(stat -c %s a.nar.xz) + $(stat -c %s a.narinfo) ))
grep -qxF 'nixcache_upload_nars_total{cache="up:"} 2' m.txt
grep -qxF "nixcache_upload_received_bytes_total{cache=\"up:\"} $bytes" m.txt
grep -qxF 'nixcache_requests_total{cache="up:",route="upload",status="2xx"} 3' m.txt
# the first upload stored every chunk anew, the second none (deduplicated)
n=$(find up -type f | wc -l)
size=$(find up -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
test "$n" -ge 1
grep -qxF "nixcache_upload_new_chunks_total{cache=\"up:\"} $n" m.txt
grep -qxF "nixcache_upload_new_chunk_bytes_total{cache=\"up:\"} $size" m.txt
grep -qxF 'nixcache_upload_failures_total{cache="up:",cause="bad_request"} 1' m.txt
grep -qxF 'nixcache_upload_failures_total{cache="up:",cause="denied"} 0' m.txt
--- no_error_log
[error]



=== TEST 11: the Redis latency histogram counts every command; the access log variables
--- http_config
nixcache_metrics_zone m11 1m;
log_format nixcache '$nixcache_route|$nixcache_source|$nixcache_chunks|'
                    '$nixcache_redis_time|$status';
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    access_log $TEST_NIXCACHE_DIR/access.log nixcache;
}
location = /metrics {
    nixcache_metrics;
    access_log $TEST_NIXCACHE_DIR/metrics.log nixcache;
}
--- fixture
add_nar(name => 'one', content => "hello, nixcache\n" x 5000,
        chunk_size => 4096);
--- init
cd $TEST_NIXCACHE_DIR
u=http://127.0.0.1:$TEST_NIXCACHE_PORT/cache
curl -sf -o /dev/null $u/$TEST_NIXCACHE_FIX_one_HASH.narinfo
curl -sf -o /dev/null $u/$TEST_NIXCACHE_FIX_one_HASH.narinfo
test "$(curl -s -o /dev/null -w '%{http_code}' \
        $u/00000000000000000000000000000000.narinfo)" = 404
curl -sf -o /dev/null $u/nix-cache-info
curl -sf -o /dev/null $u/nar/$TEST_NIXCACHE_FIX_one_NARHASH.nar.zst
--- request
GET /metrics
--- error_code: 200
--- post
cd $TEST_NIXCACHE_DIR
curl -sf http://127.0.0.1:$TEST_NIXCACHE_PORT/metrics > m.txt
promtool check metrics < m.txt
h=nixcache_redis_command_duration_seconds
count=$(sed -n "s/^${h}_count //p" m.txt)
# three narinfo lookups and a NAR (its manifest window): at least four
test "$count" -ge 4
grep -qxF "${h}_bucket{le=\"+Inf\"} $count" m.txt
# cumulative buckets never decrease; the sum is positive
grep "^${h}_bucket" m.txt | awk '{ if ($2 < last) exit 1; last = $2 }'
awk -v n="${h}_sum" '$1 == n { exit !($2 > 0) }' m.txt
# the log: route, source, chunks, Redis time
grep -c '^narinfo|-|-|0\.[0-9]\{6\}|200$' access.log | grep -qx 2
grep -qx 'narinfo|-|-|0\.[0-9]\{6\}|404' access.log
grep -qx 'cache_info|-|-|0\.000000|200' access.log
grep -qx "nar_zst|disk|$TEST_NIXCACHE_FIX_one_NCHUNKS|0\\.[0-9]\\{6\\}|200" access.log
# outside a cache location the variables are not found
grep -qx -- '-|-|-|-|200' metrics.log
--- no_error_log
[error]



=== TEST 12: docs/monitoring: the alert rules pass promtool check and their unit tests; the dashboard and the rules name only exported metrics
--- http_config
nixcache_metrics_zone m12 1m;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
location = /metrics {
    nixcache_metrics;
}
--- request
GET /metrics
--- error_code: 200
--- post
cd $TEST_NIXCACHE_DIR
curl -sf http://127.0.0.1:$TEST_NIXCACHE_PORT/metrics > m.txt
mon=$TEST_NIXCACHE_ROOT/docs/monitoring
promtool check rules $mon/alerts.yml
(cd $mon && promtool test rules alerts_test.yml)
$mon/check-dashboard $mon/dashboard.json m.txt
# every metric an alert names is exported (histograms with their suffixes);
# nixcache_gc_* come from gc --metrics-file, checked by t/140
grep -v '^ *#' $mon/alerts.yml | grep -o 'nixcache_[a-z0-9_]*' | grep -v '^nixcache_gc_' | sort -u | while read n; do
    b=${n%_bucket}
    grep -qx "# TYPE \(${n}\|${b}\) [a-z]*" m.txt || { echo "$n not exported"; exit 1; }
done
--- no_error_log
[error]



=== TEST 13: two workers add up: requests served by both are all counted
--- skip eval
$ENV{TEST_NIXCACHE_VALGRIND} ? 'one process under valgrind (master_process off)' : undef
--- main_config
worker_processes 2;
--- http_config
nixcache_metrics_zone m13 1m;
log_format pids '$pid';
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    access_log $TEST_NIXCACHE_DIR/pids.log pids;
}
location = /metrics {
    nixcache_metrics;
}
--- init
cd $TEST_NIXCACHE_DIR
u=http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/nix-cache-info
# 400 requests, 16 connections at a time, until both workers have served
n=0
while [ $n -lt 2000 ]; do
    seq 400 | xargs -P 16 -I{} curl -sf -o /dev/null $u
    n=$((n + 400))
    [ "$(sort -u pids.log | wc -l)" = 2 ] && break
done
echo $n > sent
--- request
GET /metrics
--- error_code: 200
--- post
cd $TEST_NIXCACHE_DIR
curl -sf http://127.0.0.1:$TEST_NIXCACHE_PORT/metrics > m.txt
test "$(sort -u pids.log | wc -l)" = 2
test "$(wc -l < pids.log)" = "$(cat sent)"
grep -qxF "nixcache_requests_total{cache=\"nixcache:\",route=\"cache_info\",status=\"2xx\"} $(cat sent)" m.txt
--- no_error_log
[error]
