# nixcache_redis_auth FILE (src/nixcache_redis_auth.h): "password" or
# "user password", read when the configuration is loaded, sent as AUTH on
# every connection before SELECT.  A refused AUTH answers 503 (Redis
# unavailable), never 404, and never logs the password.
#
# The suite's Redis keeps its default user open (the harness flushes it
# between blocks): ACL users are added to it; the password-only form
# (requirepass) gets a redis-server of its own, started by the fixture
# and stopped by post.
#
# The narinfo below: store hash 9m1skbnr5i43n3yypvda5s65vhfwdx5a, a
# minimal text the module serves as 242 bytes.

use lib 't/lib';
use Nixcache::Test;

run_tests();

__DATA__

=== TEST 1: an ACL user and its password: served
--- fixture
redis_cmd('ACL', 'SETUSER', 'cache', 'reset', 'on', '>acl-pw-4711',
          '~*', '+@all');
open my $f, '>', "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
print $f "cache acl-pw-4711\n";
close $f;
chmod 0600, "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
--- http_config
nixcache_redis 127.0.0.1:$TEST_NIXCACHE_REDIS_PORT;
nixcache_redis_auth $TEST_NIXCACHE_DIR/auth;
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
--- post
# the module's connection is the ACL user's, not the default user's
test "$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT CLIENT LIST | grep -c 'user=cache')" -ge 1
--- no_error_log
[error]
acl-pw-4711



=== TEST 2: an ACL user with a wrong password: 503, AUTH failed logged, no password
--- fixture
redis_cmd('ACL', 'SETUSER', 'cache', 'reset', 'on', '>acl-pw-4711',
          '~*', '+@all');
open my $f, '>', "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
print $f "cache wrong-pw-0815\n";
close $f;
chmod 0600, "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
--- http_config
nixcache_redis 127.0.0.1:$TEST_NIXCACHE_REDIS_PORT;
nixcache_redis_auth $TEST_NIXCACHE_DIR/auth;
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
--- error_code: 503
--- error_log
nixcache: redis 127.0.0.1:$TEST_NIXCACHE_REDIS_PORT: AUTH failed: WRONGPASS
--- no_error_log
wrong-pw-0815
acl-pw-4711



=== TEST 3: a wrong password on an absent path: 503, not 404
--- fixture
redis_cmd('ACL', 'SETUSER', 'cache', 'reset', 'on', '>acl-pw-4711',
          '~*', '+@all');
open my $f, '>', "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
print $f "cache wrong-pw-0815\n";
close $f;
chmod 0600, "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
--- http_config
nixcache_redis 127.0.0.1:$TEST_NIXCACHE_REDIS_PORT;
nixcache_redis_auth $TEST_NIXCACHE_DIR/auth;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/0000000000000000000000000000000a.narinfo
--- error_code: 503
--- error_log
AUTH failed: WRONGPASS



=== TEST 4: a wrong password: one error line per attempt, each request a new attempt
--- fixture
redis_cmd('ACL', 'SETUSER', 'cache', 'reset', 'on', '>acl-pw-4711',
          '~*', '+@all');
open my $f, '>', "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
print $f "cache wrong-pw-0815\n";
close $f;
chmod 0600, "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
--- http_config
nixcache_redis 127.0.0.1:$TEST_NIXCACHE_REDIS_PORT;
nixcache_redis_auth $TEST_NIXCACHE_DIR/auth;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
grep -c 'AUTH failed' $TEST_NIXCACHE_LOGS/error.log > $TEST_NIXCACHE_DIR/before || true
for i in 1 2; do
    code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo)
    test "$code" = 503 || { echo "request $i: $code"; exit 1; }
done
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 503
--- post
before=$(cat $TEST_NIXCACHE_DIR/before)
after=$(grep -c 'AUTH failed' $TEST_NIXCACHE_LOGS/error.log)
test $((after - before)) -eq 3 || { echo "AUTH failed lines: $before -> $after"; exit 1; }
--- no_error_log
wrong-pw-0815



=== TEST 5: AUTH again on reconnect: the connection killed, the next request served as the ACL user
--- fixture
redis_cmd('ACL', 'SETUSER', 'cache', 'reset', 'on', '>acl-pw-4711',
          '~*', '+@all');
open my $f, '>', "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
print $f "cache acl-pw-4711\n";
close $f;
chmod 0600, "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
--- http_config
nixcache_redis 127.0.0.1:$TEST_NIXCACHE_REDIS_PORT;
nixcache_redis_auth $TEST_NIXCACHE_DIR/auth;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
printf 'StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\nURL: x\nNarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\nNarSize: 1\nReferences: \n' \
    | redis-cli -p $TEST_NIXCACHE_REDIS_PORT -x SET nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo)
test "$code" = 200 || { echo "first request: $code"; exit 1; }
killed=$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT CLIENT KILL USER cache)
test "$killed" -ge 1 || { echo "no connection of user cache: $killed"; exit 1; }
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Length: 242
--- post
test "$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT CLIENT LIST | grep -c 'user=cache')" -ge 1
--- no_error_log
acl-pw-4711



=== TEST 6: the password-only form against a requirepass Redis, with a database
--- fixture
my $port = Nixcache::Test::free_port();
my $dir = $ENV{TEST_NIXCACHE_DIR};
$Nixcache::Fixture::VARS{TEST_NIXCACHE_AUTH_REDIS_PORT} = $port;
system('redis-server', '--bind', '127.0.0.1', '--port', $port,
       '--save', '', '--appendonly', 'no', '--dir', $dir,
       '--daemonize', 'yes', '--pidfile', "$dir/redis-auth.pid",
       '--logfile', "$dir/redis-auth.log",
       '--requirepass', 'rp-pw-1234') == 0 or die "redis-server: $?";
for (1 .. 200) {
    last if `redis-cli -p $port -a rp-pw-1234 --no-auth-warning ping 2>/dev/null` =~ /PONG/;
    select(undef, undef, undef, 0.025);
}
open my $f, '>', "$dir/auth" or die $!;
print $f "rp-pw-1234";
close $f;
chmod 0600, "$dir/auth" or die $!;
--- http_config
nixcache_redis redis://127.0.0.1:$TEST_NIXCACHE_AUTH_REDIS_PORT/2;
nixcache_redis_auth $TEST_NIXCACHE_DIR/auth;
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
printf 'StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\nURL: x\nNarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\nNarSize: 1\nReferences: \n' \
    | redis-cli -p $TEST_NIXCACHE_AUTH_REDIS_PORT -a rp-pw-1234 --no-auth-warning -n 2 -x SET nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Length: 242
--- post
pid=$(cat $TEST_NIXCACHE_DIR/redis-auth.pid)
kill "$pid"
for i in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.025; done
kill -KILL "$pid"
--- no_error_log
[error]
rp-pw-1234



=== TEST 7: nginx -t: a credentials file others can read
--- fixture
open my $f, '>', "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
print $f "cache acl-pw-4711\n";
close $f;
chmod 0644, "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
--- http_config
nixcache_redis_auth $TEST_NIXCACHE_DIR/auth;
--- must_die
--- error_log
nixcache_redis_auth "$TEST_NIXCACHE_DIR/auth" is readable or writable by group or others (mode 644): chmod 600 it



=== TEST 8: nginx -t: a missing credentials file
--- http_config
nixcache_redis_auth $TEST_NIXCACHE_DIR/no-such-file;
--- must_die
--- error_log
open() "$TEST_NIXCACHE_DIR/no-such-file" failed



=== TEST 9: nginx -t: three fields
--- fixture
open my $f, '>', "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
print $f "cache acl-pw-4711 extra\n";
close $f;
chmod 0600, "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
--- http_config
nixcache_redis_auth $TEST_NIXCACHE_DIR/auth;
--- must_die
--- error_log
nixcache_redis_auth "$TEST_NIXCACHE_DIR/auth": more than two fields
--- no_error_log
acl-pw-4711



=== TEST 10: nginx -t: an empty credentials file
--- fixture
open my $f, '>', "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
print $f "\n";
close $f;
chmod 0600, "$ENV{TEST_NIXCACHE_DIR}/auth" or die $!;
--- http_config
nixcache_redis_auth $TEST_NIXCACHE_DIR/auth;
--- must_die
--- error_log
nixcache_redis_auth "$TEST_NIXCACHE_DIR/auth": no password in it
