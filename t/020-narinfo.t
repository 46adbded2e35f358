# narinfo: served from Redis, rendered for nixcache_nar_compression.
#
# Hashes used below (independently computed, nix32 of SHA-1/SHA-256):
#   9m1skbnr5i43n3yypvda5s65vhfwdx5a  store hash of "hello"
#   8r51h62n591ljql8fh4npakqkpy479fn  store hash of "glibc"
#   0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
#       = sha256 c1a3d0ab649821db54ec4dc668c63489ea17738ca1727ed2638a230ede605e3f
#   101bq2db3ma3wnf6ycg88s9ar67igjf30kz1sdm1p8zh6s7kb71v  a FileHash

use lib 't/lib';
use Nixcache::Test;

run_tests();

__DATA__

=== TEST 1: zstd (default): served as stored
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
add_narinfo_raw(hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => <<'NI');
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
Compression: zstd
FileHash: sha256:101bq2db3ma3wnf6ycg88s9ar67igjf30kz1sdm1p8zh6s7kb71v
FileSize: 50308
NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
NarSize: 226560
References: 8r51h62n591ljql8fh4npakqkpy479fn-glibc-2.35 9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
Deriver: b73c4k1mwwqwk4frz2n6jd5faz8akr8r-hello-2.12.1.drv
Sig: cache.example.org-1:MGQ0ZjBlZmY3ZmQ2ZDYxZDZjNjgzMTcyYzNhOTM2YTc=
NI
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Type: text/x-nix-narinfo
Content-Length: 558
--- response_body
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
Compression: zstd
FileHash: sha256:101bq2db3ma3wnf6ycg88s9ar67igjf30kz1sdm1p8zh6s7kb71v
FileSize: 50308
NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
NarSize: 226560
References: 8r51h62n591ljql8fh4npakqkpy479fn-glibc-2.35 9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
Deriver: b73c4k1mwwqwk4frz2n6jd5faz8akr8r-hello-2.12.1.drv
Sig: cache.example.org-1:MGQ0ZjBlZmY3ZmQ2ZDYxZDZjNjgzMTcyYzNhOTM2YTc=
--- no_error_log
[error]



=== TEST 2: HEAD: headers only, same Content-Length
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
add_narinfo_raw(hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => <<'NI');
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
Compression: zstd
FileHash: sha256:101bq2db3ma3wnf6ycg88s9ar67igjf30kz1sdm1p8zh6s7kb71v
FileSize: 50308
NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
NarSize: 226560
References: 8r51h62n591ljql8fh4npakqkpy479fn-glibc-2.35 9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
Deriver: b73c4k1mwwqwk4frz2n6jd5faz8akr8r-hello-2.12.1.drv
Sig: cache.example.org-1:MGQ0ZjBlZmY3ZmQ2ZDYxZDZjNjgzMTcyYzNhOTM2YTc=
NI
--- request
HEAD /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Type: text/x-nix-narinfo
Content-Length: 558
--- response_body eval
""
--- no_error_log
[error]



=== TEST 3: none: URL .nar, FileHash = NarHash, FileSize = NarSize
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_nar_compression none;
}
--- fixture
add_narinfo_raw(hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => <<'NI');
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
Compression: zstd
FileHash: sha256:101bq2db3ma3wnf6ycg88s9ar67igjf30kz1sdm1p8zh6s7kb71v
FileSize: 50308
NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
NarSize: 226560
References: 8r51h62n591ljql8fh4npakqkpy479fn-glibc-2.35 9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
Deriver: b73c4k1mwwqwk4frz2n6jd5faz8akr8r-hello-2.12.1.drv
Sig: cache.example.org-1:MGQ0ZjBlZmY3ZmQ2ZDYxZDZjNjgzMTcyYzNhOTM2YTc=
NI
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Type: text/x-nix-narinfo
Content-Length: 555
--- response_body
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar
Compression: none
FileHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
FileSize: 226560
NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
NarSize: 226560
References: 8r51h62n591ljql8fh4npakqkpy479fn-glibc-2.35 9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
Deriver: b73c4k1mwwqwk4frz2n6jd5faz8akr8r-hello-2.12.1.drv
Sig: cache.example.org-1:MGQ0ZjBlZmY3ZmQ2ZDYxZDZjNjgzMTcyYzNhOTM2YTc=
--- no_error_log
[error]



=== TEST 4: HEAD in none mode
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_nar_compression none;
}
--- fixture
add_narinfo_raw(hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => <<'NI');
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
Compression: zstd
FileHash: sha256:101bq2db3ma3wnf6ycg88s9ar67igjf30kz1sdm1p8zh6s7kb71v
FileSize: 50308
NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
NarSize: 226560
References: 8r51h62n591ljql8fh4npakqkpy479fn-glibc-2.35 9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
Deriver: b73c4k1mwwqwk4frz2n6jd5faz8akr8r-hello-2.12.1.drv
Sig: cache.example.org-1:MGQ0ZjBlZmY3ZmQ2ZDYxZDZjNjgzMTcyYzNhOTM2YTc=
NI
--- request
HEAD /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Length: 555
--- response_body eval
""



=== TEST 5: zstd: a foreign URL and Compression are rewritten, hex NarHash kept
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
add_narinfo_raw(hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => <<'NI');
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/whatever.nar.xz
Compression: xz
NarHash: sha256:c1a3d0ab649821db54ec4dc668c63489ea17738ca1727ed2638a230ede605e3f
NarSize: 226560
References: 
NI
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_body
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
Compression: zstd
NarHash: sha256:c1a3d0ab649821db54ec4dc668c63489ea17738ca1727ed2638a230ede605e3f
NarSize: 226560
References: 



=== TEST 6: none: a hex NarHash becomes nix32 in URL and FileHash
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_nar_compression none;
}
--- fixture
add_narinfo_raw(hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => <<'NI');
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/whatever.nar.xz
Compression: xz
NarHash: sha256:c1a3d0ab649821db54ec4dc668c63489ea17738ca1727ed2638a230ede605e3f
NarSize: 226560
References: 
NI
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_body
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar
Compression: none
FileHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
FileSize: 226560
NarHash: sha256:c1a3d0ab649821db54ec4dc668c63489ea17738ca1727ed2638a230ede605e3f
NarSize: 226560
References: 



=== TEST 7: absent: 404, nothing logged
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 404
--- no_error_log
[error]



=== TEST 8: HEAD of an absent narinfo: 404
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- request
HEAD /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 404



=== TEST 9: nixcache_redis_prefix selects the keys
--- config
location /a/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    nixcache_redis_prefix cache-a:;
}
location /b/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
add_narinfo_raw(prefix => 'cache-a:', hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => <<'NI');
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
Compression: zstd
NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
NarSize: 226560
References: 
NI
--- init
# the default prefix does not see cache-a's narinfo
test "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$TEST_NIXCACHE_PORT/b/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo)" = 404
--- request
GET /a/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_body
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
Compression: zstd
NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
NarSize: 226560
References: 



=== TEST 10: a stored narinfo that does not parse: 502, key logged
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
add_narinfo_raw(hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => "StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello\nthis is not a narinfo\n");
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 502
--- error_log
nixcache: narinfo in redis key "nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a" does not parse



=== TEST 11: a stored narinfo without NarHash: 502
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
add_narinfo_raw(hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => <<'NI');
StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-hello-2.12.1
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
Compression: zstd
NarSize: 226560
References: 
NI
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 502
--- error_log
"nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a" does not parse



=== TEST 12: an empty stored value: 502
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
add_narinfo_raw(hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => '');
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 502
--- error_log
does not parse



=== TEST 13: a narinfo stored under another path's key: 502
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
add_narinfo_raw(hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => <<'NI');
StorePath: /nix/store/8r51h62n591ljql8fh4npakqkpy479fn-glibc-2.35
URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst
Compression: zstd
NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1
NarSize: 226560
References: 
NI
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 502
--- error_log
is for another store path "/nix/store/8r51h62n591ljql8fh4npakqkpy479fn-glibc-2.35"



=== TEST 14: a key of the wrong Redis type: 503, Redis's error logged
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
redis_cmd('RPUSH', 'nixcache:narinfo:9m1skbnr5i43n3yypvda5s65vhfwdx5a', 'x');
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- error_code: 503
--- error_log
nixcache: redis 127.0.0.1:$TEST_NIXCACHE_REDIS_PORT: WRONGTYPE



=== TEST 15: a 60 KB narinfo (several socket reads) arrives whole
--- config
location /cache/ {
    nixcache on;
    nixcache_chunks $TEST_NIXCACHE_CHUNKS;
}
--- fixture
my $refs = join ' ', map { sprintf '%032d-ref-%d', $_, $_ } 1 .. 1200;
my $text = "StorePath: /nix/store/9m1skbnr5i43n3yypvda5s65vhfwdx5a-big\n"
    . "URL: nar/0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1.nar.zst\n"
    . "Compression: zstd\n"
    . "NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\n"
    . "NarSize: 226560\n"
    . "References: $refs\n";
add_narinfo_raw(hash => '9m1skbnr5i43n3yypvda5s65vhfwdx5a', text => $text);
open my $fh, '>', "$Nixcache::Fixture::DIR/big.narinfo" or die;
print {$fh} $text;
close $fh;
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_body_file
$TEST_NIXCACHE_DIR/big.narinfo
--- no_error_log
[error]



=== TEST 16: 200 concurrent narinfo requests share the pipelined connection
--- config
location /cache/ {
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
--- init
url=http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
absent=http://127.0.0.1:$TEST_NIXCACHE_PORT/cache/8r51h62n591ljql8fh4npakqkpy479fn.narinfo
for i in $(seq 1 100); do echo "$url"; echo "$absent"; done \
    | xargs -P 50 -n 1 curl -s -o /dev/null -w '%{http_code} %{url_effective}\n' \
    > $TEST_NIXCACHE_DIR/codes
test "$(grep -c '^200 .*9m1skbnr' $TEST_NIXCACHE_DIR/codes)" = 100
test "$(grep -c '^404 .*8r51h62n' $TEST_NIXCACHE_DIR/codes)" = 100
--- request
GET /cache/9m1skbnr5i43n3yypvda5s65vhfwdx5a.narinfo
--- response_headers
Content-Length: 254
--- no_error_log
[error]
