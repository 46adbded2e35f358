# Pull-through (nixcache_upstream) inside one nginx: the "upstream cache"
# is a location of the same server serving files the fixture writes (a
# narinfo signed by Nix itself: t/unit/test_sign.c's first vector, key
# test-1), reached through an internal proxy_pass location.  The real
# Nix client against real upstream caches is t/063.  These blocks also
# run under valgrind and with reloads.

use lib 't/lib';
use Nixcache::Test;
run_tests();
__DATA__

=== TEST 1: a narinfo only the upstream has: served, URL on our upstream route, the upstream's Sig kept
--- fixture
upstream_files();
--- config
    location /up/ {
        alias $TEST_NIXCACHE_DIR/up/;
    }
    location /_up/a/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/up/;
    }
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a /_up/a/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
--- request
GET /7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo
--- response_headers
Content-Type: text/x-nix-narinfo
--- response_body_like: ^StorePath: /nix/store/7i15is0z08y2p0rck85fkp5s7w2jb7jd-hello.txt\nURL: upstream/a/7i15is0z08y2p0rck85fkp5s7w2jb7jd/nar/1vmjrk9zlkfr8kriiw76v02blpifs2xspm2rnd4h04hc0am1gwd2\.nar\.xz\nCompression: xz\n.*\nSig: test-1:jFFQzK4AU8M6MZEJsyqPRpBqYM/YWaJcEuO8fhLT1Kwx9f3Emz7h8V/Ez\+uIpBy1iZ7K2fi6D\+zxkVxTu/ybAg==\n
--- no_error_log
[error]



=== TEST 2: the NAR through the upstream route: the upstream's bytes and length; HEAD too
--- fixture
upstream_files();
--- config
    location /up/ {
        alias $TEST_NIXCACHE_DIR/up/;
    }
    location /_up/a/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/up/;
    }
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a /_up/a/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
--- init
u=http://127.0.0.1:$TEST_NIXCACHE_PORT/upstream/a/7i15is0z08y2p0rck85fkp5s7w2jb7jd/nar/1vmjrk9zlkfr8kriiw76v02blpifs2xspm2rnd4h04hc0am1gwd2.nar.xz
curl -s -D $TEST_NIXCACHE_DIR/h -o $TEST_NIXCACHE_DIR/got "$u"
grep -q '^HTTP/1.1 200' $TEST_NIXCACHE_DIR/h
grep -qi '^Content-Length: 300000' $TEST_NIXCACHE_DIR/h
cmp $TEST_NIXCACHE_DIR/got $TEST_NIXCACHE_DIR/up/nar/1vmjrk9zlkfr8kriiw76v02blpifs2xspm2rnd4h04hc0am1gwd2.nar.xz
curl -s -I -o $TEST_NIXCACHE_DIR/h "$u"
grep -q '^HTTP/1.1 200' $TEST_NIXCACHE_DIR/h
grep -qi '^Content-Length: 300000' $TEST_NIXCACHE_DIR/h
test "$(curl -s -o /dev/null -w '%{http_code}' "${u%.nar.xz}.nar.bz2")" = 404
test "$(curl -s -o /dev/null -w '%{http_code}' "${u/upstream\/a/upstream/b}")" = 404
--- request
GET /nix-cache-info
--- no_error_log
[alert]



=== TEST 3: no client header reaches the upstream, whatever the proxy location passes on
--- fixture
upstream_files();
--- config
    location /up/ {
        if ($http_authorization) {
            return 418;
        }
        if ($http_x_secret) {
            return 418;
        }
        alias $TEST_NIXCACHE_DIR/up/;
    }
    location /_up/a/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/up/;
    }
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a /_up/a/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
--- request
GET /7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo
--- more_headers
Authorization: Bearer sometoken
X-Secret: 1
--- response_body_like: ^StorePath: /nix/store/7i15is0z08y2p0rck85fkp5s7w2jb7jd-hello\.txt\n
--- no_error_log
[error]



=== TEST 4: the upstreams in order: a dead one (503 alone), then one without the path, then one with it
--- fixture
upstream_files();
--- config
    # each location asks its own upstreams for the same path: none
    # keeps another's "absent" (TEST 14)
    nixcache_upstream_negative_ttl 0;
    location /up/ {
        alias $TEST_NIXCACHE_DIR/up/;
    }
    location /nothing/ {
        return 404;
    }
    location /_up/dead/ {
        internal;
        proxy_pass http://127.0.0.1:1/;
    }
    location /_up/empty/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/nothing/;
    }
    location /_up/a/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/up/;
    }
    location /dead/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream dead /_up/dead/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
    location /empty/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream empty /_up/empty/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
    location /deadempty/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream dead /_up/dead/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
        nixcache_upstream empty /_up/empty/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream dead /_up/dead/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
        nixcache_upstream empty /_up/empty/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
        nixcache_upstream a /_up/a/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
--- init
b=http://127.0.0.1:$TEST_NIXCACHE_PORT
n=7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo
test "$(curl -s -o /dev/null -w '%{http_code}' $b/dead/$n)" = 503
test "$(curl -s -o /dev/null -w '%{http_code}' $b/empty/$n)" = 404
test "$(curl -s -o /dev/null -w '%{http_code}' $b/deadempty/$n)" = 503
curl -s $b/$n | grep -q '^URL: upstream/a/'
--- request
GET /nix-cache-info
--- error_log
nixcache: upstream "dead" did not answer for "7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo" (the proxy's error is above): not counted as absent



=== TEST 5: what the upstream sends is checked: a bad signature or none is absent (404); another path's, a bad URL, an unparsable one, a 500 count as failed (503)
--- fixture
upstream_files();
upstream_broken();
--- config
    # each location asks its own upstreams for the same path: none
    # keeps another's "absent" (TEST 14)
    nixcache_upstream_negative_ttl 0;
    location /up/ {
        alias $TEST_NIXCACHE_DIR/up/;
    }
    location /bad/ {
        alias $TEST_NIXCACHE_DIR/bad/;
    }
    location /e500/ {
        return 500;
    }
    location /_up/a/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/up/;
    }
    location /_up/bad/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/bad/;
    }
    location /_up/e500/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/e500/;
    }
    location /otherkey/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a /_up/a/ key=test-1:AAAAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
    location /e500c/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream e500 /_up/e500/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
    location /unchecked/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream bad /_up/bad/ require_sigs=off;
    }
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream bad /_up/bad/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
--- init
b=http://127.0.0.1:$TEST_NIXCACHE_PORT
st() { test "$(curl -s -o /dev/null -w '%{http_code}' "$b/$1")" = "$2" || { echo "$1: not $2"; exit 1; }; }
st otherkey/7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo 404
st 7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo 404
st unchecked/7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo 200
st 0000000000000000000000000000000a.narinfo 503
st 0000000000000000000000000000000b.narinfo 503
st 0000000000000000000000000000000c.narinfo 503
st e500c/7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo 503
--- request
GET /nix-cache-info
--- error_log
upstream "a": "7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo" has no valid signature by its trusted keys
upstream "bad": "7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo" has no valid signature by its trusted keys
upstream "bad": "0000000000000000000000000000000a.narinfo" is for another store path "/nix/store/7i15is0z08y2p0rck85fkp5s7w2jb7jd-hello.txt"
upstream "bad": "0000000000000000000000000000000b.narinfo" has a URL this cache cannot stand for: "../../etc/passwd"
upstream "bad": "0000000000000000000000000000000c.narinfo" does not parse
upstream "e500" failed for "7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo" (status 500)



=== TEST 6: nginx -t: an upstream without a key, a bad key, a bad name, a name twice, a URI that is not one, an unknown parameter
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a /_up/a/;
    }
--- must_die
--- error_log
nixcache_upstream "a" needs the upstream's public key (key=NAME:BASE64), or "require_sigs=off" to serve what it sends unchecked



=== TEST 7: nginx -t: a key that is not one
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a /_up/a/ key=test-1:nope;
    }
--- must_die
--- error_log
nixcache_upstream "a": "test-1:nope" is not a public key (NAME:BASE64, as in Nix's trusted-public-keys)



=== TEST 8: nginx -t: a name with a dot, a name twice, a URI without '/', an unknown parameter
--- config
    location /a/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream c.n.o /_up/a/ require_sigs=off;
    }
--- must_die
--- error_log
nixcache_upstream: the name "c.n.o" is not 1 to 32 of [0-9a-zA-Z_-]



=== TEST 9: nginx -t: a name given twice
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a /_up/a/ require_sigs=off;
        nixcache_upstream a /_up/b/ require_sigs=off;
    }
--- must_die
--- error_log
nixcache_upstream "a" is given twice



=== TEST 10: nginx -t: a URI that is not one
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a http://cache.nixos.org require_sigs=off;
    }
--- must_die
--- error_log
nixcache_upstream "a": "http://cache.nixos.org" is not a URI (the internal location with proxy_pass to the upstream cache, as "/_upstream/a/")



=== TEST 11: nginx -t: an unknown parameter
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a /_up/a/ require_sigs=off timeout=5s;
    }
--- must_die
--- error_log
nixcache_upstream "a": unknown parameter "timeout=5s"



=== TEST 12: without nixcache_upstream the upstream route is 404 and a miss asks no one
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /upstream/a/7i15is0z08y2p0rck85fkp5s7w2jb7jd/nar/x.nar.xz
--- error_code: 404



=== TEST 13: a path stored here is answered from Redis, the upstreams not asked (one dead here)
--- fixture
add_nar(name => 'a', content => "a\n" x 100);
--- config
    location /_up/dead/ {
        internal;
        proxy_pass http://127.0.0.1:1/;
    }
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream dead /_up/dead/ require_sigs=off;
    }
--- request
GET /$TEST_NIXCACHE_FIX_a_HASH.narinfo
--- response_body_like: ^StorePath: \S+\nURL: nar/\S+\.nar\.zst\n
--- no_error_log
[error]



=== TEST 14: negative cache: a path every upstream said absent is not asked again for nixcache_upstream_negative_ttl; a narinfo stored meanwhile is served
--- fixture
upstream_files();
--- config
    location /nothing/ {
        access_log $TEST_NIXCACHE_DIR/asked.log;
        return 404;
    }
    location /_up/empty/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/nothing/;
    }
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream empty /_up/empty/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
        nixcache_upstream_negative_ttl 2s;
    }
--- init
b=http://127.0.0.1:$TEST_NIXCACHE_PORT
h=7i15is0z08y2p0rck85fkp5s7w2jb7jd
asked() { grep -c "$h.narinfo" $TEST_NIXCACHE_DIR/asked.log || true; }
for i in 1 2 3; do
    test "$(curl -s -o /dev/null -w '%{http_code}' $b/$h.narinfo)" = 404
done
test "$(asked)" = 1
test "$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT exists nixcache:absent:$h)" = 1
ttl=$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT pttl nixcache:absent:$h)
test "$ttl" -gt 0 && test "$ttl" -le 2000
redis-cli -p $TEST_NIXCACHE_REDIS_PORT pexpire nixcache:absent:$h 1 > /dev/null
sleep 0.1
test "$(curl -s -o /dev/null -w '%{http_code}' $b/$h.narinfo)" = 404
test "$(asked)" = 2
redis-cli -p $TEST_NIXCACHE_REDIS_PORT -x set nixcache:narinfo:$h \
    < $TEST_NIXCACHE_DIR/up/$h.narinfo > /dev/null
curl -s $b/$h.narinfo | grep -q '^URL: nar/.*\.nar\.zst$'
test "$(asked)" = 2
--- request
GET /nix-cache-info
--- no_error_log
[error]



=== TEST 15: negative cache off (0), and a failed upstream is never kept absent: each miss asks again
--- fixture
upstream_files();
--- config
    location /nothing/ {
        access_log $TEST_NIXCACHE_DIR/asked.log;
        return 404;
    }
    location /broken/ {
        access_log $TEST_NIXCACHE_DIR/broken.log;
        return 500;
    }
    location /_up/empty/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/nothing/;
    }
    location /_up/broken/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/broken/;
    }
    location /off/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_redis_prefix off:;
        nixcache_upstream empty /_up/empty/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
        nixcache_upstream_negative_ttl 0;
    }
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream broken /_up/broken/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=
                          backoff=1ms;
        nixcache_upstream empty /_up/empty/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
--- init
b=http://127.0.0.1:$TEST_NIXCACHE_PORT
h=7i15is0z08y2p0rck85fkp5s7w2jb7jd
for i in 1 2; do
    test "$(curl -s -o /dev/null -w '%{http_code}' $b/off/$h.narinfo)" = 404
done
test "$(grep -c "$h.narinfo" $TEST_NIXCACHE_DIR/asked.log)" = 2
test "$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT keys '*absent*')" = ""
for i in 1 2; do
    test "$(curl -s -o /dev/null -w '%{http_code}' $b/$h.narinfo)" = 503
    sleep 0.01
done
test "$(grep -c "$h.narinfo" $TEST_NIXCACHE_DIR/broken.log)" = 2
test "$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT keys '*absent*')" = ""
--- request
GET /nix-cache-info



=== TEST 16: a NAR after its narinfo is checked against the recorded FileSize and FileHash: right, it streams whole; the record names the upstream
--- fixture
upstream_files(file_size => 300000, file_hash => 'real');
--- config
    location /up/ {
        alias $TEST_NIXCACHE_DIR/up/;
    }
    location /_up/a/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/up/;
    }
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a /_up/a/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
--- init
b=http://127.0.0.1:$TEST_NIXCACHE_PORT
h=7i15is0z08y2p0rck85fkp5s7w2jb7jd
u=$(curl -s $b/$h.narinfo | sed -n 's/^URL: //p')
test -n "$u"
redis-cli -p $TEST_NIXCACHE_REDIS_PORT get nixcache:upstream:$h | head -1 | grep -qx a
ttl=$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT ttl nixcache:upstream:$h)
test "$ttl" -gt 86000
curl -sf -o $TEST_NIXCACHE_DIR/got $b/$u
cmp $TEST_NIXCACHE_DIR/got $TEST_NIXCACHE_DIR/up/nar/1vmjrk9zlkfr8kriiw76v02blpifs2xspm2rnd4h04hc0am1gwd2.nar.xz
--- request
GET /nix-cache-info
--- no_error_log
[error]
without the FileHash check



=== TEST 17: a NAR that is not its recorded FileHash: the client's connection is closed before its last bytes
--- fixture
upstream_files(file_size => 300000, file_hash => 'sha256:0000000000000000000000000000000000000000000000000000');
--- config
    location /up/ {
        alias $TEST_NIXCACHE_DIR/up/;
    }
    location /_up/a/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/up/;
    }
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a /_up/a/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
--- init
b=http://127.0.0.1:$TEST_NIXCACHE_PORT
h=7i15is0z08y2p0rck85fkp5s7w2jb7jd
u=$(curl -s $b/$h.narinfo | sed -n 's/^URL: //p')
test -n "$u"
rc=0
curl -s -o $TEST_NIXCACHE_DIR/got $b/$u || rc=$?
test "$rc" = 18
test "$(stat -c %s $TEST_NIXCACHE_DIR/got)" -lt 300000
--- request
GET /nix-cache-info
--- error_log
is not its narinfo's FileHash: the client's connection is closed before its last bytes



=== TEST 18: a NAR whose length is not its recorded FileSize: 502, nothing sent; another upstream's record or none is not used
--- fixture
upstream_files();
--- config
    location /up/ {
        alias $TEST_NIXCACHE_DIR/up/;
    }
    location /_up/a/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/up/;
    }
    location /_up/b/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/up/;
    }
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a /_up/a/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
        nixcache_upstream b /_up/b/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
--- init
b=http://127.0.0.1:$TEST_NIXCACHE_PORT
h=7i15is0z08y2p0rck85fkp5s7w2jb7jd
u=$(curl -s $b/$h.narinfo | sed -n 's/^URL: //p')
test -n "$u"
test "$(curl -s -o /dev/null -w '%{http_code}' $b/$u)" = 502
test "$(curl -s -o /dev/null -w '%{http_code}' $b/${u/upstream\/a/upstream/b})" = 200
redis-cli -p $TEST_NIXCACHE_REDIS_PORT del nixcache:upstream:$h > /dev/null
test "$(curl -s -o /dev/null -w '%{http_code}' $b/$u)" = 200
--- request
GET /nix-cache-info
--- error_log
NAR "/_up/a/nar/1vmjrk9zlkfr8kriiw76v02blpifs2xspm2rnd4h04hc0am1gwd2.nar.xz" is 300000 bytes, its narinfo's FileSize 140
without the FileHash check



=== TEST 19: narinfo_timeout=, nar_timeout=: an upstream trickling its answer is cut at the whole request's time (narinfo: 503 and the upstream is down; NAR: the connection closed)
--- fixture
upstream_files();
--- config
    location /up/ {
        limit_rate 100;
        alias $TEST_NIXCACHE_DIR/up/;
    }
    location /up/nar/ {
        limit_rate_after 4k;
        limit_rate 100;
        alias $TEST_NIXCACHE_DIR/up/nar/;
    }
    location /_up/a/ {
        internal;
        proxy_buffering off;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/up/;
    }
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a /_up/a/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=
                          narinfo_timeout=300ms nar_timeout=500ms backoff=1ms;
    }
--- init
b=http://127.0.0.1:$TEST_NIXCACHE_PORT
h=7i15is0z08y2p0rck85fkp5s7w2jb7jd
t0=$(date +%s%N)
test "$(curl -s -o /dev/null -w '%{http_code}' $b/$h.narinfo)" = 503
t1=$(date +%s%N)
test $(( (t1 - t0) / 1000000 )) -lt 3000
rc=0
curl -s -o $TEST_NIXCACHE_DIR/got \
    $b/upstream/a/$h/nar/1vmjrk9zlkfr8kriiw76v02blpifs2xspm2rnd4h04hc0am1gwd2.nar.xz || rc=$?
test "$rc" = 18
test "$(stat -c %s $TEST_NIXCACHE_DIR/got)" -lt 300000
test $(( ($(date +%s%N) - t1) / 1000000 )) -lt 5000
--- request
GET /nix-cache-info
--- error_log
upstream "a": "/_up/a/7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo" not done in 300 ms (narinfo_timeout): timed out
upstream "a": "/_up/a/nar/1vmjrk9zlkfr8kriiw76v02blpifs2xspm2rnd4h04hc0am1gwd2.nar.xz" not done in 500 ms (nar_timeout): timed out
upstream "a" is down: not asked for 1 ms



=== TEST 20: nginx -t: a timeout that is not a time
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream a /_up/a/ require_sigs=off narinfo_timeout=0;
    }
--- must_die
--- error_log
nixcache_upstream "a": "narinfo_timeout=0" is not a time above 0



=== TEST 21: $nixcache_source is upstream:<name> for a narinfo and a NAR answered from that upstream, nothing for a miss
--- fixture
upstream_files(file_size => 300000, file_hash => 'real');
--- http_config
    log_format src '$request_uri $status $nixcache_route $nixcache_source';
--- config
    location /up/ {
        alias $TEST_NIXCACHE_DIR/up/;
    }
    location /nothing/ {
        return 404;
    }
    location /_up/empty/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/nothing/;
    }
    location /_up/a/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NIXCACHE_PORT/up/;
    }
    location / {
        access_log $TEST_NIXCACHE_DIR/src.log src;
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upstream empty /_up/empty/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
        nixcache_upstream a /_up/a/ key=test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=;
    }
--- init
b=http://127.0.0.1:$TEST_NIXCACHE_PORT
h=7i15is0z08y2p0rck85fkp5s7w2jb7jd
u=$(curl -s $b/$h.narinfo | sed -n 's/^URL: //p')
curl -s -o /dev/null $b/$u
curl -s -o /dev/null $b/0000000000000000000000000000000a.narinfo
curl -s -o /dev/null $b/nix-cache-info
cat > $TEST_NIXCACHE_DIR/want <<W
/$h.narinfo 200 narinfo upstream:a
/$u 200 other upstream:a
/0000000000000000000000000000000a.narinfo 404 narinfo -
/nix-cache-info 200 cache_info -
W
diff $TEST_NIXCACHE_DIR/want $TEST_NIXCACHE_DIR/src.log
--- request
GET /nix-cache-info
