# /nar/<NarHash>.nar.zst (chunk frames back to back by sendfile) and
# /nar/<NarHash>.nar (decompressed on the fly): byte-exact bodies, headers,
# HEAD, several manifest windows, flow control.

use lib 't/lib';
use Nixcache::Test;
run_tests();

__DATA__

=== TEST 1: .nar.zst of a one-chunk NAR: the frame, exact headers
--- fixture
add_nar(name => 'one', content => "hello, nixcache\n" x 100);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_one_NARHASH.nar.zst
--- error_code: 200
--- response_headers
Content-Type: application/x-nix-nar
Content-Length: $TEST_NIXCACHE_FIX_one_FILESIZE
ETag: "$TEST_NIXCACHE_FIX_one_NARHASH-zst"
Accept-Ranges: bytes
!Content-Encoding
!Content-Range
--- response_body_file
$TEST_NIXCACHE_FIX_one_NARZST
--- no_error_log
[error]
[alert]



=== TEST 2: .nar of a one-chunk NAR: decompressed
--- fixture
add_nar(name => 'one', content => "hello, nixcache\n" x 100);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_one_NARHASH.nar
--- error_code: 200
--- response_headers
Content-Type: application/x-nix-nar
Content-Length: $TEST_NIXCACHE_FIX_one_NARSIZE
ETag: "$TEST_NIXCACHE_FIX_one_NARHASH"
Accept-Ranges: bytes
!Content-Encoding
--- response_body_file
$TEST_NIXCACHE_FIX_one_NAR
--- no_error_log
[error]
[alert]



=== TEST 3: .nar.zst of a many-chunk NAR (more chunks than the fd ring), by sendfile
--- fixture
my $c = '';
$c .= pack('N', $_ * 2654435761 % 4294967296) . "line $_\n" for 1 .. 30000;
my $f = add_nar(name => q{many}, content => $c, chunk_size => 9000);
die "want many chunks" if $f->{NCHUNKS} < 20;
--- config
    sendfile on;
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_many_NARHASH.nar.zst
--- error_code: 200
--- response_headers
Content-Length: $TEST_NIXCACHE_FIX_many_FILESIZE
--- response_body_file
$TEST_NIXCACHE_FIX_many_NARZST
--- error_log
sendfile: @
--- no_error_log
[error]
[alert]



=== TEST 4: .nar of a many-chunk NAR
--- fixture
my $c = '';
$c .= pack('N', $_ * 2654435761 % 4294967296) . "line $_\n" for 1 .. 30000;
add_nar(name => 'many', content => $c, chunk_size => 9000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_many_NARHASH.nar
--- error_code: 200
--- response_headers
Content-Length: $TEST_NIXCACHE_FIX_many_NARSIZE
--- response_body_file
$TEST_NIXCACHE_FIX_many_NAR
--- no_error_log
[error]
[alert]



=== TEST 5: .nar.zst over several manifest windows (window of 2 entries)
--- http_config
    nixcache_manifest_window 2;
--- fixture
my $f = add_nar(name => q{win}, content => join(q{}, map { "$_ " x 500 } 1 .. 40),
                 chunk_size => 3000);
die "want several windows" if $f->{NCHUNKS} < 7;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_win_NARHASH.nar.zst
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_win_NARZST
--- error_log
GETRANGE nixcache:manifest:$TEST_NIXCACHE_FIX_win_NARHASH 256 335
--- no_error_log
[error]



=== TEST 6: .nar over several manifest windows (window of 2 entries)
--- http_config
    nixcache_manifest_window 2;
--- fixture
add_nar(name => 'win', content => join('', map { "$_ " x 500 } 1 .. 40),
        chunk_size => 3000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_win_NARHASH.nar
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_win_NAR
--- error_log
GETRANGE nixcache:manifest:$TEST_NIXCACHE_FIX_win_NARHASH 256 335
--- no_error_log
[error]



=== TEST 7: a 20 MB NAR, window of 4, .nar.zst byte exact
--- http_config
    nixcache_manifest_window 4;
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $rnd, 10_000_000;
my $text = join '', map { "path/$_/file-$_.so\n" } 1 .. 500_000;
add_nar(name => 'big', content => $rnd . substr($text, 0, 10_000_000),
        chunk_size => 100_000);
--- config
    sendfile on;
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_big_NARHASH.nar.zst
--- timeout: 60
--- error_code: 200
--- response_headers
Content-Length: $TEST_NIXCACHE_FIX_big_FILESIZE
--- response_body_file
$TEST_NIXCACHE_FIX_big_NARZST
--- no_error_log
[error]
[alert]



=== TEST 8: a 20 MB NAR, window of 4, .nar byte exact
--- http_config
    nixcache_manifest_window 4;
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $rnd, 10_000_000;
my $text = join '', map { "path/$_/file-$_.so\n" } 1 .. 500_000;
add_nar(name => 'big', content => $rnd . substr($text, 0, 10_000_000),
        chunk_size => 100_000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_big_NARHASH.nar
--- timeout: 60
--- error_code: 200
--- response_headers
Content-Length: $TEST_NIXCACHE_FIX_big_NARSIZE
--- response_body_file
$TEST_NIXCACHE_FIX_big_NAR
--- no_error_log
[error]
[alert]



=== TEST 9: HEAD .nar: NarSize, no body, no chunk read (chunks deleted)
--- fixture
add_nar(name => 'h', content => "x" x 100_000, chunk_size => 30_000);
--- init
rm -rf $TEST_NIXCACHE_CHUNKS/*
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
HEAD /nar/$TEST_NIXCACHE_FIX_h_NARHASH.nar
--- error_code: 200
--- response_headers
Content-Type: application/x-nix-nar
Content-Length: $TEST_NIXCACHE_FIX_h_NARSIZE
--- response_body
--- no_error_log
[error]



=== TEST 10: HEAD .nar.zst: FileSize, no chunk read (chunks deleted)
--- fixture
add_nar(name => 'h', content => "x" x 100_000, chunk_size => 30_000);
--- init
rm -rf $TEST_NIXCACHE_CHUNKS/*
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
HEAD /nar/$TEST_NIXCACHE_FIX_h_NARHASH.nar.zst
--- error_code: 200
--- response_headers
Content-Length: $TEST_NIXCACHE_FIX_h_FILESIZE
--- response_body
--- no_error_log
[error]



=== TEST 11: gzip on for everything still never encodes a NAR
--- http_config
    gzip on;
    gzip_types *;
    gzip_min_length 0;
--- fixture
add_nar(name => 'gz', content => "compress me please\n" x 5000,
        chunk_size => 20_000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_gz_NARHASH.nar
--- more_headers
Accept-Encoding: gzip
--- error_code: 200
--- response_headers
!Content-Encoding
!Vary
Content-Length: $TEST_NIXCACHE_FIX_gz_NARSIZE
--- response_body_file
$TEST_NIXCACHE_FIX_gz_NAR



=== TEST 12: sendfile off: .nar.zst through nginx's own file reads
--- fixture
my $c = join '', map { "entry $_\n" } 1 .. 100_000;
add_nar(name => 'nosf', content => $c, chunk_size => 50_000);
--- config
    sendfile off;
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_nosf_NARHASH.nar.zst
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_nosf_NARZST
--- no_error_log
[error]
[alert]
sendfile: @



=== TEST 13: a rate-limited client: the stream waits for the socket
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $rnd, 3_000_000;
add_nar(name => 'slow', content => $rnd, chunk_size => 64 * 1024);
--- config
    location / {
        limit_rate 3m;
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_slow_NARHASH.nar
--- timeout: 30
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_slow_NAR
--- no_error_log
[error]
[alert]



=== TEST 14: a rate-limited client, .nar.zst
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $rnd, 3_000_000;
add_nar(name => 'slow', content => $rnd, chunk_size => 64 * 1024);
--- config
    sendfile on;
    location / {
        limit_rate 3m;
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_slow_NARHASH.nar.zst
--- timeout: 30
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_slow_NARZST
--- no_error_log
[error]
[alert]



=== TEST 15: tiny chunks (below postpone_output) in a full ring still flow
--- http_config
    nixcache_manifest_window 3;
--- fixture
add_nar(name => 'tiny', nar => join('', map { chr(65 + $_ % 26) x 7 } 0 .. 299),
        chunk_size => 50);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_tiny_NARHASH.nar.zst
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_tiny_NARZST
--- no_error_log
[error]



=== TEST 16: tiny chunks, .nar
--- http_config
    nixcache_manifest_window 3;
--- fixture
add_nar(name => 'tiny', nar => join('', map { chr(65 + $_ % 26) x 7 } 0 .. 299),
        chunk_size => 50);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_tiny_NARHASH.nar
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_tiny_NAR
--- no_error_log
[error]



=== TEST 17: no manifest: 404
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/0a7glvrsfnx4hp1sbi0pmkb6jc1q41q0ba6cmbk47hpr2gjm5vxk.nar
--- error_code: 404
--- no_error_log
[error]



=== TEST 18: If-None-Match with the tag: 304
--- fixture
add_nar(name => 'inm', content => "etag\n" x 1000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_inm_NARHASH.nar
--- more_headers
If-None-Match: "$TEST_NIXCACHE_FIX_inm_NARHASH"
--- error_code: 304



=== TEST 19: another cache prefix
--- fixture
add_nar(name => 'pfx', content => "prefixed\n" x 1000, prefix => 'other:');
--- config
    location / {
        nixcache on;
        nixcache_redis_prefix other:;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_pfx_NARHASH.nar
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_pfx_NAR



=== TEST 20: a request is answered (its Redis reply read) while big NARs stream
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $rnd, 1 << 20;
add_nar(name => 'big', nar => $rnd x 80, chunk_size => 1 << 18);
add_nar(name => 'small', content => "small\n" x 100);
--- init
# Fairness as an order, not a deadline (a loaded machine slows all alike):
# once three big .nar streams run, a small NAR (Redis asked and answered)
# is served before any of them ends.  Measured here: it takes 0.2-0.45 of
# the time the first big one still needs (0.06 under valgrind); with no
# budget per turn (a stream keeps its worker until its socket is full)
# 2.6 times it or more.
d=$TEST_NIXCACHE_DIR
url=http://127.0.0.1:$TEST_NIXCACHE_PORT/nar
for i in 1 2 3; do
    (curl -s -o $d/big$i $url/$TEST_NIXCACHE_FIX_big_NARHASH.nar
     date +%s%N > $d/big$i.done) &
done
for i in $(seq 1 1000); do
    [ -s $d/big1 ] && [ -s $d/big2 ] && [ -s $d/big3 ] && break
    sleep 0.001
done
t0=$(date +%s%N)
curl -sf -o $d/small $url/$TEST_NIXCACHE_FIX_small_NARHASH.nar
small=$((($(date +%s%N) - t0) / 1000))
wait
cmp $d/small $TEST_NIXCACHE_FIX_small_NAR
first=
for i in 1 2 3; do
    test "$(stat -c %s $d/big$i)" = $TEST_NIXCACHE_FIX_big_NARSIZE
    rm $d/big$i
    t=$((($(cat $d/big$i.done) - t0) / 1000))
    [ -n "$first" ] && [ "$first" -le $t ] || first=$t
done
echo "small NAR in $small us, the first big one ended after $first us"
[ $small -lt $first ]
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_small_NARHASH.nar
--- timeout: 30
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_small_NAR
--- no_error_log
[error]
