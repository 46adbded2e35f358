# Redis faults: down, restarted, stuck, erroring; unix sockets; bad
# configuration refused by nginx -t.  Never a 404 when Redis cannot answer.

use lib 't/lib';
use Nixcache::Test;

run_tests();

__DATA__

=== TEST 1: Redis down: 503 and the cause logged
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
$TEST_NIXCACHE_REDIS_CTL stop
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 503
--- error_log
nixcache: redis 127.0.0.1:$TEST_NIXCACHE_REDIS_PORT: Connection refused



=== TEST 2: Redis down: HEAD is a 503 too
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
$TEST_NIXCACHE_REDIS_CTL stop
--- request
HEAD /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 503



=== TEST 3: Redis down, then up: the next request reconnects
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
url=http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
$TEST_NIXCACHE_REDIS_CTL stop
for i in 1 2 3; do
    test "$(curl -s -o /dev/null -w '%{http_code}' $url)" = 503
done
$TEST_NIXCACHE_REDIS_CTL start
printf 'StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\nURL: x\nNarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\nNarSize: 1\nReferences: \n' \
    | redis-cli -p $TEST_NIXCACHE_REDIS_PORT -x SET nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_body
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
Compression: zstd
NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
NarSize: 1
References: 



=== TEST 4: Redis restarted under an open connection: recovered
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
url=http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
seed() {
    printf 'StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\nURL: x\nNarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\nNarSize: 1\nReferences: \n' \
        | redis-cli -p $TEST_NIXCACHE_REDIS_PORT -x SET nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a
}
seed
test "$(curl -s -o /dev/null -w '%{http_code}' $url)" = 200
$TEST_NIXCACHE_REDIS_CTL restart
seed
sleep $(scaled 0.2)
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Length: 242
--- error_log
nixcache: redis 127.0.0.1:$TEST_NIXCACHE_REDIS_PORT: connection lost
--- no_error_log
[error]



=== TEST 5: stuck Redis: 503 within the timeout, for every waiting request, then recovered
--- http_config
nixcache_redis_timeout 1s;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
url=http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
printf 'StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\nURL: x\nNarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\nNarSize: 1\nReferences: \n' \
    | redis-cli -p $TEST_NIXCACHE_REDIS_PORT -x SET nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a
test "$(curl -s -o /dev/null -w '%{http_code}' $url)" = 200
$TEST_NIXCACHE_REDIS_CTL pause
for i in $(seq 1 8); do echo $url; done \
    | xargs -P 8 -n 1 curl -s --max-time $(scaled 5) -o /dev/null \
        -w '%{http_code} %{time_total}\n' \
    > $TEST_NIXCACHE_DIR/codes
$TEST_NIXCACHE_REDIS_CTL resume
cat $TEST_NIXCACHE_DIR/codes
test "$(grep -c '^503 ' $TEST_NIXCACHE_DIR/codes)" = 8
# the first command's timer (1 s) tears the connection down and fails the
# later ones with it: all are answered by then, well before the 5 s limit
# (both bounds of the slow side scaled under valgrind)
awk -v s=$TEST_NIXCACHE_SLOW '
    { if ($2 > 2.5 * s) exit 1; if ($2 > max) max = $2 }
    END { if (max < 0.9) exit 1 }' $TEST_NIXCACHE_DIR/codes
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Length: 242
--- error_log
nixcache: redis 127.0.0.1:$TEST_NIXCACHE_REDIS_PORT: no reply within 1000 ms



=== TEST 6: Redis stuck before the first request: 503, then recovered
--- http_config
nixcache_redis_timeout 500ms;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
url=http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
$TEST_NIXCACHE_REDIS_CTL pause
code=$(curl -s --max-time $(scaled 5) -o /dev/null -w '%{http_code}' $url)
test "$code" = 503
$TEST_NIXCACHE_REDIS_CTL resume
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 404
--- error_log
no reply within 500 ms



=== TEST 7: a client that gives up while Redis is stuck; the late reply is harmless
--- http_config
nixcache_redis_timeout 3s;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
url=http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
test "$(curl -s -o /dev/null -w '%{http_code}' $url)" = 404
$TEST_NIXCACHE_REDIS_CTL pause
# at once, so that all give up well before the 3 s timeout, also when
# their limit is scaled under valgrind
for i in 1 2 3 4; do
    curl -s --max-time $(scaled 0.3) -o /dev/null $url &
done
wait
$TEST_NIXCACHE_REDIS_CTL resume
sleep $(scaled 0.2)
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 404
--- no_error_log
[error]
[alert]



=== TEST 8: requests torn down at worker shutdown while their command is pending
--- skip eval
$ENV{TEST_NIXCACHE_VALGRIND} ? 'with master_process off, QUIT exits at once' : undef
--- main_config
worker_shutdown_timeout 200ms;
--- http_config
nixcache_redis_timeout 1s;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/nix-cache-info
--- post
url=http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
test "$(curl -s -o /dev/null -w '%{http_code}' $url)" = 404
$TEST_NIXCACHE_REDIS_CTL pause
for i in 1 2 3; do curl -s --max-time 5 -o /dev/null $url & done
sleep 0.3
kill -QUIT "$(cat $TEST_NIXCACHE_LOGS/nginx.pid)"
wait
$TEST_NIXCACHE_REDIS_CTL resume
for i in $(seq 1 100); do
    grep -q 'exit$' $TEST_NIXCACHE_LOGS/error.log && break
    sleep 0.05
done
grep -q 'exit$' $TEST_NIXCACHE_LOGS/error.log
--- error_log
nixcache redis: command detached
--- no_error_log
open socket
[alert]



=== TEST 9: an error reply (NOAUTH) is a 503 with Redis's message
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
redis-cli -p $TEST_NIXCACHE_REDIS_PORT CONFIG SET requirepass sekrit
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 503
--- post
redis-cli -p $TEST_NIXCACHE_REDIS_PORT -a sekrit --no-auth-warning CONFIG SET requirepass ""
--- error_log
nixcache: redis 127.0.0.1:$TEST_NIXCACHE_REDIS_PORT: NOAUTH



=== TEST 10: a Redis address that never completes the TCP handshake: 503 after the timeout
--- http_config
nixcache_redis_timeout 500ms;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
# a listener with a full accept queue on Redis's port: SYNs are dropped
$TEST_NIXCACHE_REDIS_CTL stop
python3 -c '
import os, socket, sys, time
port = int(sys.argv[1])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port))
l.listen(0)
fill = []
for i in range(3):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(("127.0.0.1", port))
    fill.append(c)
time.sleep(0.2)
open(sys.argv[2], "w").write("%d" % os.getpid())
time.sleep(20)
' $TEST_NIXCACHE_REDIS_PORT $TEST_NIXCACHE_DIR/listener.pid \
    > $TEST_NIXCACHE_DIR/listener.out 2>&1 &
for i in $(seq 1 100); do
    [ -s $TEST_NIXCACHE_DIR/listener.pid ] && break
    sleep 0.02
done
curl -s --max-time $(scaled 5) -o /dev/null -w '%{http_code} %{time_total}\n' \
    http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo \
    > $TEST_NIXCACHE_DIR/code
cat $TEST_NIXCACHE_DIR/code
awk -v s=$TEST_NIXCACHE_SLOW '
    { if ($1 != 503 || $2 < 0.4 || $2 > 3 * s) exit 1 }' $TEST_NIXCACHE_DIR/code
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 503
--- post
kill "$(cat $TEST_NIXCACHE_DIR/listener.pid)"
--- error_log
nixcache: redis 127.0.0.1:$TEST_NIXCACHE_REDIS_PORT: not connected within 500 ms



=== TEST 11: Redis on a unix socket
--- http_config
nixcache_redis unix:$TEST_NIXCACHE_DIR/redis.sock;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
redis-server --port 0 --unixsocket $TEST_NIXCACHE_DIR/redis.sock \
    --unixsocketperm 777 --save '' --appendonly no --dir $TEST_NIXCACHE_DIR \
    --daemonize yes --pidfile $TEST_NIXCACHE_DIR/redis.pid \
    --logfile $TEST_NIXCACHE_DIR/redis.log
for i in $(seq 1 100); do
    [ "$(redis-cli -s $TEST_NIXCACHE_DIR/redis.sock ping 2>/dev/null)" = PONG ] && break
    sleep 0.02
done
printf 'StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\nURL: x\nNarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\nNarSize: 1\nReferences: \n' \
    | redis-cli -s $TEST_NIXCACHE_DIR/redis.sock -x SET nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Length: 242
--- post
kill "$(cat $TEST_NIXCACHE_DIR/redis.pid)"
--- no_error_log
[error]



=== TEST 12: a missing unix socket: 503 with the cause
--- http_config
nixcache_redis unix:$TEST_NIXCACHE_DIR/nothing.sock;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 503
--- error_log
nixcache: redis unix:$TEST_NIXCACHE_DIR/nothing.sock: No such file or directory



=== TEST 13: nginx -t: nixcache on without nixcache_chunks
--- config
location /cache/ {
    nixcache on;
}
--- must_die
--- error_log
"nixcache on" in location "/cache/" requires "nixcache_chunks"



=== TEST 14: a host name without a port is accepted (resolved at load, port 6379)
--- http_config
nixcache_redis localhost;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/nix-cache-info
--- error_code: 200



=== TEST 15: nginx -t: an empty port
--- http_config
nixcache_redis 127.0.0.1:;
--- must_die
--- error_log
nixcache_redis "127.0.0.1:" is not



=== TEST 16: nginx -t: port 0
--- http_config
nixcache_redis 127.0.0.1:0;
--- must_die
--- error_log
nixcache_redis "127.0.0.1:0" is not



=== TEST 17: nginx -t: port out of range
--- http_config
nixcache_redis 127.0.0.1:65536;
--- must_die
--- error_log
nixcache_redis "127.0.0.1:65536" is not



=== TEST 18: nginx -t: an empty unix socket path
--- http_config
nixcache_redis unix:;
--- must_die
--- error_log
nixcache_redis "unix:" is not



=== TEST 19: nginx -t: an unbracketed IPv6 address
--- http_config
nixcache_redis ::1:6379;
--- must_die
--- error_log
nixcache_redis "::1:6379" is not



=== TEST 20: IPv6 in brackets and a unix path are accepted (no connection at start)
--- http_config
nixcache_redis [::1]:6379;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/nix-cache-info
--- error_code: 200



=== TEST 21: nginx -t: nixcache_redis is http-level only
--- config
nixcache_redis 127.0.0.1:6379;
--- must_die
--- error_log
"nixcache_redis" directive is not allowed here



=== TEST 22: nginx -t: negative priority
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_priority -1;
}
--- must_die
--- error_log
invalid number



=== TEST 23: nginx -t: priority too large
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_priority 65536;
}
--- must_die
--- error_log
value must be between 0 and 65535



=== TEST 24: nginx -t: zero timeout
--- http_config
nixcache_redis_timeout 0;
--- must_die
--- error_log
"nixcache_redis_timeout" must be positive



=== TEST 25: nginx -t: unknown NAR compression
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_nar_compression xz;
}
--- must_die
--- error_log
invalid value "xz"



=== TEST 26: nginx -t: manifest window 0
--- http_config
nixcache_manifest_window 0;
--- must_die
--- error_log
value must be between 1 and 65536



=== TEST 27: nginx -t: nixcache_redis given twice
--- http_config
nixcache_redis 127.0.0.1:6379;
nixcache_redis 127.0.0.1:6380;
--- must_die
--- error_log
"nixcache_redis" directive is duplicate



=== TEST 28: nginx -t: nixcache_chunks given twice
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_chunks /tmp;
}
--- must_die
--- error_log
"nixcache_chunks" directive is duplicate
