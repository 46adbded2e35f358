# The disk tier's size limit (nixcache_chunks_max_size): least recently
# used chunks are removed by worker 0's thread task, the disk tier stays
# under the limit, evicted chunks come back from S3, a NAR being served
# while its chunks are removed completes byte-exact.
#
# NARs of 8 MiB of random bytes (incompressible) in 256 KiB chunks, all
# in a private s3rver only; serving them fills the disk tier
# (write-through).  Post scripts use t/lib/evict.sh.

use strict;
use warnings;

use File::Find qw(find);
use lib 't/lib';
use Nixcache::S3;
use Nixcache::Skip;
use Nixcache::Test;

BEGIN {
    skip_all_missing('s3rver not installed (make deps)')
        unless s3rver_available();
}

my $S3DIR = File::Temp::tempdir('nixcache-s3-XXXXXX',
                                DIR => $ENV{TMPDIR} // '/tmp',
                                CLEANUP => 1);
my $s3 = start_s3rver("$S3DIR/s3", 'nixcache');

my $creds = "$S3DIR/creds";
open my $fh, '>', $creds or die "$creds: $!";
print $fh "S3RVER\nS3RVER\n";
close $fh;
chmod 0600, $creds;

$ENV{TEST_NIXCACHE_S3_ENDPOINT} = $s3->{endpoint};
$ENV{TEST_NIXCACHE_S3_CREDS} = $creds;

# the slow downloads of TEST 3 must outlast the eviction, also under
# valgrind
$ENV{TEST_NIXCACHE_EV_RATE} = $ENV{TEST_NIXCACHE_VALGRIND} ? '128k' : '512k';


package Nixcache::Fixture::Eval;

sub chunk_files {
    my @files;
    File::Find::find({ no_chdir => 1, wanted => sub {
        push @files, "$1/$2" if m{/([a-z2-7]{2})/(b[a-z2-7]{58})$};
    } }, $Nixcache::Fixture::CHUNKS);
    return @files;
}

# A NAR of 8 MiB of random bytes in 256 KiB chunks; its chunk list goes
# to TEST_NIXCACHE_EV_<name>.
sub big_nar {
    my ($name, $seed) = @_;
    my %before = map { $_ => 1 } chunk_files();
    srand($seed);
    my $c = pack('N*', map { int(rand(4294967296)) } 1 .. 2 * 1024 * 1024);
    my $f = add_nar(name => $name, content => $c, chunk_size => 262144,
                    level => 1);
    my @new = grep { !$before{$_} } chunk_files();
    die "$name: want its own chunks" if @new != $f->{NCHUNKS};
    $Nixcache::Fixture::VARS{"TEST_NIXCACHE_EV_$name"} = join ' ', @new;
}

# Moves every chunk file into the bucket, leaving the disk tier empty
# (and writable by the workers).
sub to_s3 {
    my $dir = $Nixcache::Fixture::CHUNKS;
    for my $rel (chunk_files()) {
        my $f = "$dir/$rel";
        Nixcache::S3::s3_put_file($ENV{TEST_NIXCACHE_S3_ENDPOINT},
                                  'nixcache', "chunks/$rel", $f);
        unlink $f or die "$f: $!";
        (my $fan = $f) =~ s{/[^/]+$}{};
        rmdir $fan;
    }
    chmod 0777, $dir;
    s3_vars();
}

sub s3_vars {
    $Nixcache::Fixture::VARS{"TEST_NIXCACHE_$_"} = $ENV{"TEST_NIXCACHE_$_"}
        for qw(S3_ENDPOINT S3_CREDS EV_RATE);
}

package main;

run_tests();

__DATA__

=== TEST 1: four 8 MiB NARs through a 16 MiB disk tier: under the limit, oldest gone, newest kept, all still served
--- fixture
big_nar($_->[0], $_->[1]) for [A => 1], [B => 2], [C => 3], [D => 4];
to_s3();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_chunks_max_size 16m;
        nixcache_chunks_evict_interval 1s;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_A_NARHASH.nar.zst
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_A_NARZST
--- post
. t/lib/evict.sh
wait_all A
for n in B C D; do
    sleep 1.1
    get $n
    wait_all $n
done
wait_under $((16 * 1024 * 1024))
echo "after: $(tier_bytes) bytes; A $(present A), B $(present B), C $(present C), D $(present D) of $(count D)"
[ "$(present A)" = 0 ]
[ "$(present D)" = "$(count D)" ]
# every NAR is still served, byte-exact, the evicted chunks from S3
for n in A B C D; do get $n; get $n .nar; done
--- error_log eval
[qr/nixcache: disk tier "[^"]*": \d+ bytes in \d+ chunks, limit 16777216: [1-9]\d* chunks \(\d+ bytes\) evicted, 0 stale temporary files removed, now \d+ bytes/]
--- no_error_log
[error]
[alert]
--- timeout: 60



=== TEST 2: least recently *used*: an old chunk served again from disk (mtime bumped) outlives a newer one never used since
--- fixture
big_nar($_->[0], $_->[1]) for [A => 5], [B => 6], [C => 7];
to_s3();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_chunks_max_size 24m;
        nixcache_chunks_evict_interval 1s;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_A_NARHASH.nar.zst
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_A_NARZST
--- post
. t/lib/evict.sh
wait_all A
get B
wait_all B
for c in $(chunks_of A); do touch -d '3 hours ago' $TEST_NIXCACHE_CHUNKS/$c; done
for c in $(chunks_of B); do touch -d '2 hours ago' $TEST_NIXCACHE_CHUNKS/$c; done
sleep 1.5
[ "$(present A)" = "$(count A)" ]
[ "$(present B)" = "$(count B)" ]
# A from disk: the serving path marks its chunks used
get A
now=$(date +%s)
for c in $(chunks_of A); do
    m=$(stat -c %Y $TEST_NIXCACHE_CHUNKS/$c)
    [ $((now - m)) -lt $((30 * slow)) ] || { echo "$c: mtime not bumped ($m, now $now)"; exit 1; }
done
for c in $(chunks_of B); do
    m=$(stat -c %Y $TEST_NIXCACHE_CHUNKS/$c)
    [ $((now - m)) -gt 3600 ] || { echo "$c: mtime bumped"; exit 1; }
done
get C
wait_all C
wait_under $((24 * 1024 * 1024))
echo "after: $(tier_bytes) bytes; A $(present A), B $(present B), C $(present C) of $(count C)"
[ "$(present A)" = "$(count A)" ]
[ "$(present C)" = "$(count C)" ]
[ "$(present B)" -lt "$(count B)" ]
get B
--- error_log eval
[qr/limit 25165824: [1-9]\d* chunks \(\d+ bytes\) evicted/]
--- no_error_log
[error]
[alert]
--- timeout: 60



=== TEST 3: NARs being served (.nar.zst and .nar, rate-limited) while eviction removes their chunks complete byte-exact
--- fixture
big_nar($_->[0], $_->[1]) for [A => 8], [B => 9], [C => 10];
to_s3();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_chunks_max_size 16m;
        nixcache_chunks_evict_interval 1s;
    }
    location /slow/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_chunks_max_size 16m;
        nixcache_chunks_evict_interval 1s;
        limit_rate $TEST_NIXCACHE_EV_RATE;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_A_NARHASH.nar.zst
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_A_NARZST
--- post
. t/lib/evict.sh
wait_all A
sleep 1.1
curl -sSf -o $TEST_NIXCACHE_DIR/slow.nar.zst $base/slow/nar/$TEST_NIXCACHE_FIX_A_NARHASH.nar.zst &
p1=$!
curl -sSf -o $TEST_NIXCACHE_DIR/slow.nar $base/slow/nar/$TEST_NIXCACHE_FIX_A_NARHASH.nar &
p2=$!
sleep 0.5
get B
get C
# A's chunks are the oldest: removed while both downloads go on
for i in $(seq $((50 * slow))); do
    [ "$(present A)" -lt "$(count A)" ] && break
    sleep 0.1
done
left=$(present A)
kill -0 $p1 && kill -0 $p2 || { echo "a slow download ended before eviction"; exit 1; }
echo "A: $left of $(count A) chunks left on disk while being served"
[ "$left" -lt "$(count A)" ]
wait $p1
wait $p2
cmp $TEST_NIXCACHE_DIR/slow.nar.zst $TEST_NIXCACHE_FIX_A_NARZST
cmp $TEST_NIXCACHE_DIR/slow.nar $TEST_NIXCACHE_FIX_A_NAR
--- error_log eval
[qr/limit 16777216: [1-9]\d* chunks \(\d+ bytes\) evicted/]
--- no_error_log
[error]
[alert]
--- timeout: 60



=== TEST 4: stale temporary files (a crash's) are removed, young ones (writes in progress) kept
--- fixture
big_nar($_->[0], $_->[1]) for [A => 11], [B => 12], [C => 13];
to_s3();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_chunks_max_size 16m;
        nixcache_chunks_evict_interval 1s;
    }
--- init
mkdir -p $TEST_NIXCACHE_CHUNKS/aa
chmod 777 $TEST_NIXCACHE_CHUNKS/aa
old=$TEST_NIXCACHE_CHUNKS/aa/.bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.tmp.1.1
young=$TEST_NIXCACHE_CHUNKS/aa/.bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.tmp.1.2
echo crashed > $old
echo writing > $young
touch -d '2 hours ago' $old
--- request
GET /nar/$TEST_NIXCACHE_FIX_A_NARHASH.nar.zst
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_A_NARZST
--- post
. t/lib/evict.sh
old=$TEST_NIXCACHE_CHUNKS/aa/.bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.tmp.1.1
young=$TEST_NIXCACHE_CHUNKS/aa/.bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.tmp.1.2
for i in $(seq 30); do [ -e $old ] || break; sleep 0.1; done
[ ! -e $old ]
[ -e $young ]
--- error_log
1 stale temporary files removed
--- no_error_log
[error]
[alert]



=== TEST 5: nginx -t: a size limit without an S3 tier
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_chunks_max_size 1g;
    }
--- must_die
--- error_log
"nixcache_chunks_max_size" needs an S3 tier ("nixcache_s3_endpoint")



=== TEST 6: nginx -t: a size limit below 16m
--- fixture
s3_vars();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_chunks_max_size 15m;
    }
--- must_die
--- error_log
"nixcache_chunks_max_size" 15m is too small: at least 16m



=== TEST 7: nginx -t: two limits for one chunk directory
--- fixture
s3_vars();
--- config
    location /a/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_chunks_max_size 1g;
    }
    location /b/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_chunks_max_size 2g;
    }
--- must_die
--- error_log
conflicting "nixcache_chunks_max_size" for the chunk directory



=== TEST 8: nginx -t: a size that is not one
--- fixture
s3_vars();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_chunks_max_size lots;
    }
--- must_die
--- error_log
invalid value



=== TEST 9: nginx -t: off is accepted without an S3 tier
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_chunks_max_size off;
    }
--- request
GET /nix-cache-info
--- error_code: 200
