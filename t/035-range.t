# Range on both NAR forms: one range (a-b, a-, -n) gives 206 with
# Content-Range and only the overlapping chunks are read; unsatisfiable
# gives 416; several ranges or garbage give the whole body.
#
# The .nar fixture is 20480 bytes in 5 chunks of 4096: "0000000\n",
# "0000001\n", ... so offsets are easy to check by eye.

use lib 't/lib';
use Nixcache::Test;
run_tests();

__DATA__

=== TEST 1: nar: first byte
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=0-0
--- error_code: 206
--- response_headers
Content-Range: bytes 0-0/20480
Content-Length: 1
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- response_body_file_range: 0-0
--- no_error_log
[error]



=== TEST 2: nar: last byte
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=20479-20479
--- error_code: 206
--- response_headers
Content-Range: bytes 20479-20479/20480
Content-Length: 1
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- response_body_file_range: 20479-20479
--- no_error_log
[error]



=== TEST 3: nar: across a chunk boundary
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=4000-4200
--- error_code: 206
--- response_headers
Content-Range: bytes 4000-4200/20480
Content-Length: 201
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- response_body_file_range: 4000-4200
--- no_error_log
[error]



=== TEST 4: nar: across three chunks
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=4095-12288
--- error_code: 206
--- response_headers
Content-Range: bytes 4095-12288/20480
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- response_body_file_range: 4095-12288
--- no_error_log
[error]



=== TEST 5: nar: inside one chunk
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=5000-6000
--- error_code: 206
--- response_headers
Content-Range: bytes 5000-6000/20480
Content-Length: 1001
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- response_body_file_range: 5000-6000
--- no_error_log
[error]



=== TEST 6: nar: suffix
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=-100
--- error_code: 206
--- response_headers
Content-Range: bytes 20380-20479/20480
Content-Length: 100
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- response_body_file_range: -100
--- no_error_log
[error]



=== TEST 7: nar: suffix longer than the body
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=-999999
--- error_code: 206
--- response_headers
Content-Range: bytes 0-20479/20480
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- response_body_file_range: 0-20479
--- no_error_log
[error]



=== TEST 8: nar: open ended
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=10000-
--- error_code: 206
--- response_headers
Content-Range: bytes 10000-20479/20480
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- response_body_file_range: 10000-
--- no_error_log
[error]



=== TEST 9: nar: end beyond the body is clamped
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=0-999999
--- error_code: 206
--- response_headers
Content-Range: bytes 0-20479/20480
Content-Length: 20480
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- response_body_file_range: 0-20479
--- no_error_log
[error]



=== TEST 10: nar: spaces tolerated
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes = 8 - 15 
--- error_code: 206
--- response_headers
Content-Range: bytes 8-15/20480
--- response_body
0000001
--- no_error_log
[error]



=== TEST 11: nar: unsatisfiable
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=20480-
--- error_code: 416
--- response_headers
Content-Range: bytes */20480
--- no_error_log
[error]



=== TEST 12: nar: suffix of zero is unsatisfiable
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=-0
--- error_code: 416
--- response_headers
Content-Range: bytes */20480
--- no_error_log
[error]



=== TEST 13: nar: several ranges: the whole body
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=0-1,5-6
--- error_code: 200
--- response_headers
!Content-Range
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- no_error_log
[error]



=== TEST 14: nar: garbage: the whole body
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=abc
--- error_code: 200
--- response_headers
!Content-Range
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- no_error_log
[error]



=== TEST 15: nar: end before start: the whole body
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=50-10
--- error_code: 200
--- response_headers
!Content-Range
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- no_error_log
[error]



=== TEST 16: nar: other unit: the whole body
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: items=0-10
--- error_code: 200
--- response_headers
!Content-Range
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- no_error_log
[error]



=== TEST 17: nar: If-Range with another tag: the whole body
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=0-0
If-Range: "something-else"
--- error_code: 200
--- response_headers
!Content-Range
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- no_error_log
[error]



=== TEST 18: nar: If-Range with our tag: the range
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=0-0
If-Range: "$TEST_NIXCACHE_FIX_r_NARHASH"
--- error_code: 206
--- response_headers
Content-Range: bytes 0-0/20480
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- response_body_file_range: 0-0
--- no_error_log
[error]



=== TEST 19: nar: only overlapping chunks are read (others deleted)
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- init
rm $TEST_NIXCACHE_FIX_r_CHUNK0 $TEST_NIXCACHE_FIX_r_CHUNK1 $TEST_NIXCACHE_FIX_r_CHUNK3 $TEST_NIXCACHE_FIX_r_CHUNK4
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=9000-9100
--- error_code: 206
--- response_headers
Content-Range: bytes 9000-9100/20480
--- response_body_file
$TEST_NIXCACHE_FIX_r_NAR
--- response_body_file_range: 9000-9100
--- no_error_log
[error]



=== TEST 20: nar: a range beyond several windows (window of 1)
--- http_config
    nixcache_manifest_window 1;
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- init
rm $TEST_NIXCACHE_FIX_r_CHUNK0 $TEST_NIXCACHE_FIX_r_CHUNK1
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar
--- more_headers
Range: bytes=16390-16399
--- error_code: 206
--- response_headers
Content-Range: bytes 16390-16399/20480
--- response_body
8
0002049
--- no_error_log
[error]



=== TEST 21: zst: first byte
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar.zst
--- more_headers
Range: bytes=0-0
--- error_code: 206
--- response_headers
Content-Range: bytes 0-0/$TEST_NIXCACHE_FIX_r_FILESIZE
Content-Length: 1
--- response_body_file
$TEST_NIXCACHE_FIX_r_NARZST
--- response_body_file_range: 0-0
--- no_error_log
[error]



=== TEST 22: zst: last byte
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar.zst
--- more_headers
Range: bytes=-1
--- error_code: 206
--- response_headers
Content-Length: 1
--- response_body_file
$TEST_NIXCACHE_FIX_r_NARZST
--- response_body_file_range: -1
--- response_headers_like
Content-Range: ^bytes (\d+)-\1/$TEST_NIXCACHE_FIX_r_FILESIZE$
--- no_error_log
[error]



=== TEST 23: zst: across a chunk boundary
--- fixture
my $f = add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
                chunk_size => 4096);
open my $fh, '>:raw', "$Nixcache::Fixture::DIR/want" or die;
print $fh substr($f->{file}, 10, $f->{CSIZE0} - 10 + 1);
close $fh;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar.zst
--- more_headers
Range: bytes=10-$TEST_NIXCACHE_FIX_r_CSIZE0
--- error_code: 206
--- response_headers
Content-Range: bytes 10-$TEST_NIXCACHE_FIX_r_CSIZE0/$TEST_NIXCACHE_FIX_r_FILESIZE
--- response_body_file
$TEST_NIXCACHE_DIR/want
--- no_error_log
[error]



=== TEST 24: zst: inside one chunk
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar.zst
--- more_headers
Range: bytes=3-20
--- error_code: 206
--- response_headers
Content-Range: bytes 3-20/$TEST_NIXCACHE_FIX_r_FILESIZE
Content-Length: 18
--- response_body_file
$TEST_NIXCACHE_FIX_r_NARZST
--- response_body_file_range: 3-20
--- no_error_log
[error]



=== TEST 25: zst: suffix
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar.zst
--- more_headers
Range: bytes=-100
--- error_code: 206
--- response_headers
Content-Length: 100
--- response_body_file
$TEST_NIXCACHE_FIX_r_NARZST
--- response_body_file_range: -100
--- no_error_log
[error]



=== TEST 26: zst: open ended
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar.zst
--- more_headers
Range: bytes=1000-
--- error_code: 206
--- response_body_file
$TEST_NIXCACHE_FIX_r_NARZST
--- response_body_file_range: 1000-
--- no_error_log
[error]



=== TEST 27: zst: end beyond the body is clamped
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar.zst
--- more_headers
Range: bytes=0-99999999
--- error_code: 206
--- response_headers
Content-Length: $TEST_NIXCACHE_FIX_r_FILESIZE
--- response_body_file
$TEST_NIXCACHE_FIX_r_NARZST
--- response_body_file_range: 0-99999999
--- no_error_log
[error]



=== TEST 28: zst: unsatisfiable
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar.zst
--- more_headers
Range: bytes=$TEST_NIXCACHE_FIX_r_FILESIZE-
--- error_code: 416
--- response_headers
Content-Range: bytes */$TEST_NIXCACHE_FIX_r_FILESIZE
--- no_error_log
[error]



=== TEST 29: zst: several ranges: the whole body
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar.zst
--- more_headers
Range: bytes=0-1, 3-4
--- error_code: 200
--- response_headers
!Content-Range
Content-Length: $TEST_NIXCACHE_FIX_r_FILESIZE
--- response_body_file
$TEST_NIXCACHE_FIX_r_NARZST
--- no_error_log
[error]



=== TEST 30: zst: only overlapping chunks are opened (others deleted)
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- init
rm $TEST_NIXCACHE_FIX_r_CHUNK0 $TEST_NIXCACHE_FIX_r_CHUNK1 $TEST_NIXCACHE_FIX_r_CHUNK2 $TEST_NIXCACHE_FIX_r_CHUNK3
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar.zst
--- more_headers
Range: bytes=-5
--- error_code: 206
--- response_body_file
$TEST_NIXCACHE_FIX_r_NARZST
--- response_body_file_range: -5
--- no_error_log
[error]



=== TEST 31: zst: HEAD with a range
--- fixture
add_nar(name => 'r', nar => join('', map { sprintf "%07d\n", $_ } 0 .. 2559),
        chunk_size => 4096);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
HEAD /nar/$TEST_NIXCACHE_FIX_r_NARHASH.nar.zst
--- more_headers
Range: bytes=0-9
--- error_code: 206
--- response_headers
Content-Range: bytes 0-9/$TEST_NIXCACHE_FIX_r_FILESIZE
Content-Length: 10
--- response_body
--- no_error_log
[error]
