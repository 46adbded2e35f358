# nix-cache-info: fixed text, the Priority directive, no Redis access.

use lib 't/lib';
use Nixcache::Test;

run_tests();

__DATA__

=== TEST 1: GET nix-cache-info, default priority
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/nix-cache-info
--- response_headers
Content-Type: text/x-nix-cache-info
Content-Length: 51
--- response_body
StoreDir: /nix/store
WantMassQuery: 1
Priority: 30
--- no_error_log
[error]



=== TEST 2: HEAD sends the headers only
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
HEAD /cache/nix-cache-info
--- response_headers
Content-Type: text/x-nix-cache-info
Content-Length: 51
--- response_body eval
""
--- no_error_log
[error]



=== TEST 3: nixcache_priority
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_priority 41;
}
--- request
GET /cache/nix-cache-info
--- response_body
StoreDir: /nix/store
WantMassQuery: 1
Priority: 41



=== TEST 4: priority 0 is allowed
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_priority 0;
}
--- request
GET /cache/nix-cache-info
--- response_body
StoreDir: /nix/store
WantMassQuery: 1
Priority: 0



=== TEST 5: served with Redis down: no Redis access
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
$TEST_NIXCACHE_REDIS_CTL stop
--- request
GET /cache/nix-cache-info
--- response_body
StoreDir: /nix/store
WantMassQuery: 1
Priority: 30
--- post
$TEST_NIXCACHE_REDIS_CTL start
--- no_error_log
nixcache: redis



=== TEST 6: a nested location inherits nixcache and overrides priority
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_priority 50;

    location /cache/sub/ {
        nixcache_priority 10;
    }
}
--- request
GET /cache/sub/nix-cache-info
--- response_body
StoreDir: /nix/store
WantMassQuery: 1
Priority: 10



=== TEST 7: two caches in one server, each with its own priority
--- config
location /a/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_priority 7;
}
location /b/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_priority 8;
}
--- init
test "$(curl -s http://127.0.0.1:$TEST_NIXCACHE_PORT/a/nix-cache-info | grep Priority)" = "Priority: 7"
--- request
GET /b/nix-cache-info
--- response_body
StoreDir: /nix/store
WantMassQuery: 1
Priority: 8



=== TEST 8: nixcache off in a nested location
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;

    location /cache/plain/ {
        nixcache off;
        return 204;
    }
}
--- request
GET /cache/plain/nix-cache-info
--- error_code: 204
