# /nar/ when things are broken: missing, short, corrupt or swapped chunks,
# broken manifests, Redis down.  Before the header is out the answer is a
# status (404, 502, 503); after it the connection is cut, so a client
# never gets a complete-looking wrong body.  Every chunk failure is logged
# with the chunk's CID.
#
# "Middle" fixtures have 20 chunks and break chunk 5: the header and the
# first chunks are out before it is reached.

use lib 't/lib';
use Nixcache::Test;
run_tests();

__DATA__

=== TEST 1: missing first chunk, .nar.zst: 502 before the header
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'missing_chunk');
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar.zst
--- error_code: 502
--- error_log
$TEST_NIXCACHE_FIX_f_CID0 of manifest "nixcache:manifest:$TEST_NIXCACHE_FIX_f_NARHASH" is missing



=== TEST 2: missing first chunk, .nar: 502
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'missing_chunk');
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 502
--- error_log
$TEST_NIXCACHE_FIX_f_CID0 of manifest
is missing



=== TEST 3: missing middle chunk, .nar.zst: cut after the header
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $nar, 2000000;
add_nar(name => 'f', nar => $nar, chunk_size => 100_000,
        corrupt => 'missing_chunk', corrupt_chunk => 5);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar.zst
--- error_code: 200
--- response_incomplete
--- error_log
$TEST_NIXCACHE_FIX_f_CID5
is missing



=== TEST 4: missing middle chunk, .nar: cut
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $nar, 2000000;
add_nar(name => 'f', nar => $nar, chunk_size => 100_000,
        corrupt => 'missing_chunk', corrupt_chunk => 5);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 200
--- response_incomplete
--- error_log
$TEST_NIXCACHE_FIX_f_CID5
is missing



=== TEST 5: short first chunk, .nar.zst: 502
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'truncate_chunk');
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar.zst
--- error_code: 502
--- error_log
$TEST_NIXCACHE_FIX_f_CID0
has the wrong size



=== TEST 6: short first chunk, .nar: 502
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'truncate_chunk');
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 502
--- error_log
$TEST_NIXCACHE_FIX_f_CID0
has the wrong size



=== TEST 7: short middle chunk, .nar.zst: cut
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $nar, 2000000;
add_nar(name => 'f', nar => $nar, chunk_size => 100_000,
        corrupt => 'truncate_chunk', corrupt_chunk => 5);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar.zst
--- error_code: 200
--- response_incomplete
--- error_log
$TEST_NIXCACHE_FIX_f_CID5
has the wrong size



=== TEST 8: empty first chunk, .nar.zst: 502
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'empty_chunk');
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar.zst
--- error_code: 502
--- error_log
$TEST_NIXCACHE_FIX_f_CID0
has the wrong size



=== TEST 9: first chunk that cannot be opened (a symlink loop, so even root fails): 502
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'none');
--- init
rm $TEST_NIXCACHE_FIX_f_CHUNK0
ln -s $TEST_NIXCACHE_FIX_f_CHUNK0 $TEST_NIXCACHE_FIX_f_CHUNK0
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar.zst
--- error_code: 502
--- error_log
$TEST_NIXCACHE_FIX_f_CID0
cannot be opened



=== TEST 10: corrupt first chunk (a byte flipped), .nar: 502
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'flip_chunk');
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 502
--- error_log
$TEST_NIXCACHE_FIX_f_CID0 of manifest



=== TEST 11: corrupt middle chunk (a byte flipped), .nar: cut
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $nar, 2000000;
add_nar(name => 'f', nar => $nar, chunk_size => 100_000,
        corrupt => 'flip_chunk', corrupt_chunk => 5);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 200
--- response_incomplete
--- error_log
$TEST_NIXCACHE_FIX_f_CID5 of manifest



=== TEST 12: first chunk swapped for another valid frame, .nar: 502
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $nar, 2000000;
my $f = add_nar(name => 'f', nar => $nar, chunk_size => 100_000);
# another valid frame of the same sizes: only the SHA-256 check can tell
read $fh, my $other, $f->{USIZE0};
my $frame = Nixcache::Fixture::_zstd($other, 3);
die "sizes differ" if length $frame != $f->{CSIZE0};
open my $out, '>:raw', $f->{CHUNK0} or die;
print $out $frame;
close $out;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 502
--- error_log
$TEST_NIXCACHE_FIX_f_CID0
does not match its ID



=== TEST 13: middle chunk swapped for another valid frame, .nar: cut
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $nar, 2000000;
my $f = add_nar(name => 'f', nar => $nar, chunk_size => 100_000);
# another valid frame of the same sizes: only the SHA-256 check can tell
read $fh, my $other, $f->{USIZE5};
my $frame = Nixcache::Fixture::_zstd($other, 3);
die "sizes differ" if length $frame != $f->{CSIZE5};
open my $out, '>:raw', $f->{CHUNK5} or die;
print $out $frame;
close $out;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 200
--- response_incomplete
--- error_log
$TEST_NIXCACHE_FIX_f_CID5
does not match its ID



=== TEST 14: manifest with a bad magic: 502
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'bad_manifest_magic');
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 502
--- error_log
invalid header



=== TEST 15: manifest with an unknown version: 502
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'bad_manifest_version');
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar.zst
--- error_code: 502
--- error_log
invalid header



=== TEST 16: manifest one byte short: 502
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'short_manifest');
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 502
--- error_log
truncated



=== TEST 17: manifest short in a later window: cut
--- http_config
    nixcache_manifest_window 4;
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $nar, 2000000;
add_nar(name => 'f', nar => $nar, chunk_size => 100_000,
        corrupt => 'short_manifest', corrupt_chunk => 5);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar.zst
--- error_code: 200
--- response_incomplete
--- error_log
truncated



=== TEST 18: entries sum to less than the header says, .nar: cut
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $nar, 500000;
my $f = add_nar(name => 'f', nar => $nar, chunk_size => 50_000);
my @e = map { {%$_} } @{$f->{entries}};

add_manifest_raw(nar_hash => $f->{NARHASH},
                 bytes => manifest_encode(entries => \@e,
                     nar_size => $f->{NARSIZE} + (10),
                     file_size => $f->{FILESIZE} + (10),
                     nar_hash => "\0" x 32, file_hash => "\0" x 32));
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 200
--- response_incomplete
--- error_log
entries sum to



=== TEST 19: entries sum to less than the header says, .nar.zst: cut
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $nar, 500000;
my $f = add_nar(name => 'f', nar => $nar, chunk_size => 50_000);
my @e = map { {%$_} } @{$f->{entries}};

add_manifest_raw(nar_hash => $f->{NARHASH},
                 bytes => manifest_encode(entries => \@e,
                     nar_size => $f->{NARSIZE} + (10),
                     file_size => $f->{FILESIZE} + (10),
                     nar_hash => "\0" x 32, file_hash => "\0" x 32));
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar.zst
--- error_code: 200
--- response_incomplete
--- error_log
entries sum to



=== TEST 20: entries sum to more than the header says: never more than Content-Length
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $nar, 500000;
my $f = add_nar(name => 'f', nar => $nar, chunk_size => 50_000);
my @e = map { {%$_} } @{$f->{entries}};

add_manifest_raw(nar_hash => $f->{NARHASH},
                 bytes => manifest_encode(entries => \@e,
                     nar_size => $f->{NARSIZE} + (-10),
                     file_size => $f->{FILESIZE} + (-10),
                     nar_hash => "\0" x 32, file_hash => "\0" x 32));
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 200
--- response_incomplete
--- error_log
entries exceed



=== TEST 21: an entry of size 0: 502
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $nar, 500000;
my $f = add_nar(name => 'f', nar => $nar, chunk_size => 50_000);
my @e = map { {%$_} } @{$f->{entries}};
$e[0]{usize} = 0;
add_manifest_raw(nar_hash => $f->{NARHASH},
                 bytes => manifest_encode(entries => \@e,
                     nar_size => $f->{NARSIZE} + (0),
                     file_size => $f->{FILESIZE} + (0),
                     nar_hash => "\0" x 32, file_hash => "\0" x 32));
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 502
--- error_log
invalid size



=== TEST 22: Redis stopped, .nar: 503
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'none');
--- init
$TEST_NIXCACHE_REDIS_CTL stop
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 503



=== TEST 23: Redis stopped, .nar.zst: 503
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'none');
--- init
$TEST_NIXCACHE_REDIS_CTL stop
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar.zst
--- error_code: 503



=== TEST 24: Redis stopped, HEAD: 503
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'none');
--- init
$TEST_NIXCACHE_REDIS_CTL stop
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
HEAD /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 503



=== TEST 25: Redis not answering within nixcache_redis_timeout: 503
--- http_config
    nixcache_redis_timeout 300ms;
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'none');
--- init
$TEST_NIXCACHE_REDIS_CTL pause
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 503
--- post
$TEST_NIXCACHE_REDIS_CTL resume



=== TEST 26: the manifest key holds another type: 503
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'no_manifest');
redis_cmd('HSET', 'nixcache:manifest:' . fixture_var('f', 'NARHASH'), 'a', 'b');
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- error_code: 503
--- error_log
WRONGTYPE



=== TEST 27: no manifest, HEAD: 404
--- fixture
add_nar(name => 'f', nar => 'first chunk ' x 1000 . 'second' x 1000,
        chunk_size => 6000, corrupt => 'no_manifest');
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
HEAD /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar.zst
--- error_code: 404
--- no_error_log
[error]



=== TEST 28: Redis stops in the middle of a stream: cut
--- http_config
    nixcache_manifest_window 1;
--- fixture
open my $fh, '<:raw', '/dev/urandom' or die;
read $fh, my $nar, 3_000_000;
add_nar(name => 'f', nar => $nar, chunk_size => 50_000);
--- init
(sleep 1; $TEST_NIXCACHE_REDIS_CTL stop) > /dev/null 2>&1 &
--- config
    location / {
        limit_rate 1m;
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_f_NARHASH.nar
--- timeout: 20
--- error_code: 200
--- response_incomplete
--- error_log
qr/nixcache: (redis|manifest)/
