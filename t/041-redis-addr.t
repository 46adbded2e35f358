# nixcache_redis address forms (src/nixcache_redis_addr.h): a host name
# resolved when the configuration is loaded, a database number selected
# on every connection before any command, unix:///path?db=N; what
# nginx -t refuses.  The forms the module took before are in t/040.
#
# The narinfo below: store hash 9m1skbnr5i43n3yypvda5s65vhfwdx5a, a
# minimal text the module serves as 242 bytes.

use lib 't/lib';
use Nixcache::Test;

run_tests();

__DATA__

=== TEST 1: a host name: localhost:PORT serves
--- http_config
nixcache_redis localhost:$TEST_NIXCACHE_REDIS_PORT;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
printf 'StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\nURL: x\nNarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\nNarSize: 1\nReferences: \n' \
    | redis-cli -p $TEST_NIXCACHE_REDIS_PORT -x SET nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Length: 242
--- response_body_like
^StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\n
--- no_error_log
[error]



=== TEST 2: redis://localhost:PORT without a database reads database 0
--- http_config
nixcache_redis redis://localhost:$TEST_NIXCACHE_REDIS_PORT;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
printf 'StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\nURL: x\nNarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\nNarSize: 1\nReferences: \n' \
    | redis-cli -p $TEST_NIXCACHE_REDIS_PORT -x SET nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Length: 242
--- no_error_log
[error]



=== TEST 3: redis://127.0.0.1:PORT/1 serves a narinfo stored in database 1
--- http_config
nixcache_redis redis://127.0.0.1:$TEST_NIXCACHE_REDIS_PORT/1;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
printf 'StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\nURL: x\nNarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\nNarSize: 1\nReferences: \n' \
    | redis-cli -p $TEST_NIXCACHE_REDIS_PORT -n 1 -x SET nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Length: 242
--- response_body_like
^StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\n
--- no_error_log
[error]



=== TEST 4: redis://127.0.0.1:PORT/1 does not serve one stored only in database 0
--- http_config
nixcache_redis redis://127.0.0.1:$TEST_NIXCACHE_REDIS_PORT/1;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
printf 'StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\nURL: x\nNarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\nNarSize: 1\nReferences: \n' \
    | redis-cli -p $TEST_NIXCACHE_REDIS_PORT -x SET nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 404
--- no_error_log
[error]



=== TEST 5: a name and a database; SELECT again after Redis restarts
--- http_config
nixcache_redis redis://localhost:$TEST_NIXCACHE_REDIS_PORT/2;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
url=http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
seed() {
    printf 'StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\nURL: x\nNarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\nNarSize: 1\nReferences: \n' \
        | redis-cli -p $TEST_NIXCACHE_REDIS_PORT -n $1 -x SET nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a
}
seed 2
test "$(curl -s -o /dev/null -w '%{http_code}' $url)" = 200
$TEST_NIXCACHE_REDIS_CTL restart
seed 0
test "$(curl -s -o /dev/null -w '%{http_code}' $url)" != 200
sleep 0.2
test "$(curl -s -o /dev/null -w '%{http_code}' $url)" = 404
seed 2
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Length: 242



=== TEST 6: a database Redis does not have: 503 with Redis's answer, database 0 never read
--- http_config
nixcache_redis redis://127.0.0.1:$TEST_NIXCACHE_REDIS_PORT/99;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
printf 'StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\nURL: x\nNarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\nNarSize: 1\nReferences: \n' \
    | redis-cli -p $TEST_NIXCACHE_REDIS_PORT -x SET nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a
url=http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
test "$(curl -s -o /dev/null -w '%{http_code}' $url)" = 503
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 503
--- error_log
nixcache: redis redis://127.0.0.1:$TEST_NIXCACHE_REDIS_PORT/99: SELECT 99: ERR DB index is out of range



=== TEST 7: unix:///path?db=1
--- http_config
nixcache_redis unix://$TEST_NIXCACHE_DIR/redis.sock?db=1;
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
    | redis-cli -s $TEST_NIXCACHE_DIR/redis.sock -n 1 -x SET nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Length: 242
--- post
kill "$(cat $TEST_NIXCACHE_DIR/redis.pid)"
--- no_error_log
[error]



=== TEST 8: nginx -t: a host name that does not resolve
--- http_config
nixcache_redis nixcache-no-such-host.invalid:6379;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- must_die
--- error_log
nixcache_redis "nixcache-no-such-host.invalid:6379": host "nixcache-no-such-host.invalid" not found



=== TEST 9: nginx -t: a password in the address
--- http_config
nixcache_redis redis://user:secret@localhost:6379;
--- must_die
--- error_log
nixcache_redis "redis://user:secret@localhost:6379" is not a valid address: user names and passwords in a Redis address are not supported



=== TEST 10: nginx -t: TLS
--- http_config
nixcache_redis rediss://localhost:6379;
--- must_die
--- error_log
nixcache_redis "rediss://localhost:6379" is not a valid address: TLS (rediss://) is not supported



=== TEST 11: nginx -t: a database that is not a number
--- http_config
nixcache_redis redis://localhost:6379/one;
--- must_die
--- error_log
nixcache_redis "redis://localhost:6379/one" is not a valid address: invalid Redis database (0 to 2147483647)



=== TEST 12: nginx -t: a database on a host:port without redis://
--- http_config
nixcache_redis localhost:6379/1;
--- must_die
--- error_log
nixcache_redis "localhost:6379/1" is not a valid address: a database number needs the redis:// form
