# Routing: methods, exact routes under the location prefix, malformed
# hashes (400 without touching Redis), everything else 404.

use lib 't/lib';
use Nixcache::Test;

run_tests();

__DATA__

=== TEST 1: POST: 405 with Allow, body discarded
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
POST /cache/nix-cache-info
hello=world
--- error_code: 405
--- response_headers
Allow: GET, HEAD
--- no_error_log
[error]



=== TEST 2: PUT of a narinfo (nix copy --to): 405
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- more_headers
Content-Type: text/x-nix-narinfo
--- request
PUT /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello
--- error_code: 405
--- response_headers
Allow: GET, HEAD



=== TEST 3: DELETE: 405
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
DELETE /cache/nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
--- error_code: 405
--- response_headers
Allow: GET, HEAD



=== TEST 4: a POST body does not break the next request on the connection
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- raw_request eval
"POST /cache/nix-cache-info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"
. "GET /cache/nix-cache-info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
--- error_code: 405
--- post
# the harness reads only the first response: read both here
perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new("127.0.0.1:$ENV{TEST_NIXCACHE_PORT}")
        or die "connect: $!";
    print $s "POST /cache/nix-cache-info HTTP/1.1\r\nHost: x\r\n"
        . "Content-Length: 5\r\n\r\nhello"
        . "GET /cache/nix-cache-info HTTP/1.1\r\nHost: x\r\n"
        . "Connection: close\r\n\r\n";
    local $/;
    my $r = <$s>;
    $r =~ m{^HTTP/1.1 405 .*^HTTP/1.1 200 .*Priority: 30\n\z}ms
        or die "unexpected:\n$r";
'



=== TEST 5: GET with a body: the body is discarded, the answer is normal
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/nix-cache-info
ignored body
--- response_body
StoreDir: /nix/store
WantMassQuery: 1
Priority: 30



=== TEST 6: unknown path: 404
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/index.html
--- error_code: 404
--- no_error_log
[error]



=== TEST 7: the location itself: 404
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/
--- error_code: 404



=== TEST 8: a route under a subdirectory: 404
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/foo/nix-cache-info
--- error_code: 404



=== TEST 9: a narinfo under a subdirectory: 404, not 400
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/x/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 404



=== TEST 10: an unknown NAR compression: 404
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.xz
--- error_code: 404



=== TEST 11: a NAR under a subdirectory of nar/: 404
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/nar/x/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar
--- error_code: 404



=== TEST 12: nix-cache-info with a suffix: 404
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/nix-cache-info.txt
--- error_code: 404



=== TEST 13: narinfo hash of 31 chars: 400, Redis untouched
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
$TEST_NIXCACHE_REDIS_CTL stop
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5.narinfo
--- error_code: 400
--- no_error_log
nixcache: redis



=== TEST 14: narinfo hash of 33 chars: 400
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
$TEST_NIXCACHE_REDIS_CTL stop
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5aa.narinfo
--- error_code: 400
--- no_error_log
nixcache: redis



=== TEST 15: narinfo hash with 'e' (not in nix32): 400
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
$TEST_NIXCACHE_REDIS_CTL stop
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5e.narinfo
--- error_code: 400
--- no_error_log
nixcache: redis



=== TEST 16: narinfo hash with 'u' (not in nix32): 400
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
$TEST_NIXCACHE_REDIS_CTL stop
--- request
GET /cache/um1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 400
--- no_error_log
nixcache: redis



=== TEST 17: narinfo hash in uppercase: 400
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
$TEST_NIXCACHE_REDIS_CTL stop
--- request
GET /cache/9M1SKBNR5I43N3YYPVDA5S65VHFWDX5A.narinfo
--- error_code: 400
--- no_error_log
nixcache: redis



=== TEST 18: ".narinfo" alone: 400
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/.narinfo
--- error_code: 400



=== TEST 19: a store path name instead of a hash: 400
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello.narinfo
--- error_code: 400



=== TEST 20: NAR hash of 51 chars: 400, Redis untouched
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
$TEST_NIXCACHE_REDIS_CTL stop
--- request
GET /cache/nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y.nar.zst
--- error_code: 400
--- no_error_log
nixcache: redis



=== TEST 21: NAR hash with 'o': 400
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- init
$TEST_NIXCACHE_REDIS_CTL stop
--- request
GET /cache/nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18o.nar
--- error_code: 400
--- no_error_log
nixcache: redis



=== TEST 22: NAR by a 32-char store hash: 400
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/nar/9m1skbnr5i43n3yypvda5s65vhfwdx5a.nar.zst
--- error_code: 400



=== TEST 23: HEAD with a malformed hash: 400
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
HEAD /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5E.narinfo
--- error_code: 400



=== TEST 24: prefix location without a trailing slash
--- config
location /cache {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/nix-cache-info
--- response_body
StoreDir: /nix/store
WantMassQuery: 1
Priority: 30



=== TEST 25: ... does not serve "/cachenix-cache-info"
--- config
location /cache {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cachenix-cache-info
--- error_code: 404



=== TEST 26: location / serves at the root
--- config
location / {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_priority 12;
}
--- request
GET /nix-cache-info
--- response_body
StoreDir: /nix/store
WantMassQuery: 1
Priority: 12



=== TEST 27: a narinfo at the root
--- config
location / {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
add_narinfo_raw(hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => <<'NI');
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
Compression: zstd
NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
NarSize: 226560
References: 
NI
--- request
GET /9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Type: text/x-nix-narinfo



=== TEST 28: a regex location matches the last path components
--- config
location ~ ^/caches/[a-z]+/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /caches/main/nix-cache-info
--- response_body
StoreDir: /nix/store
WantMassQuery: 1
Priority: 30



=== TEST 29: ... narinfo in a regex location
--- config
location ~ ^/caches/[a-z]+/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
add_narinfo_raw(hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => <<'NI');
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
Compression: zstd
NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
NarSize: 226560
References: 
NI
--- request
GET /caches/main/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Type: text/x-nix-narinfo
Content-Length: 254



=== TEST 30: ... a NAR route shape in a regex location (bad hash: 400)
--- config
location ~ ^/caches/[a-z]+/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /caches/main/nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y.nar
--- error_code: 400



=== TEST 31: ... an unknown name in a regex location: 404
--- config
location ~ ^/caches/[a-z]+/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /caches/main/robots.txt
--- error_code: 404



=== TEST 32: the NAR routes reach the NAR handler (.nar.zst)
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
add_nar(name => 'r', content => "route test\n" x 100);
--- request
GET /cache/nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar.zst
--- response_body_file
$TEST_NIXCACHE_FIX_r_NARZST



=== TEST 33: the NAR routes reach the NAR handler (.nar, regex location)
--- config
location ~ ^/caches/[a-z]+/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
add_nar(name => 'r', content => "route test\n" x 100);
--- request
GET /caches/main/nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
