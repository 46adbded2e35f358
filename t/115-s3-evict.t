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
$ENV{TEST_NIXCACHE_S3_DATA} = "$s3->{dir}/data/nixcache";

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
        for qw(S3_ENDPOINT S3_CREDS S3_DATA EV_RATE);
}

package main;

run_tests();

__DATA__

=== TEST 1: four 8 MiB NARs through a 16 MiB disk tier: under the limit, oldest gone, newest kept, all still served
--- http_config
nixcache_metrics_zone m115 1m;
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
    location = /metrics {
        nixcache_metrics;
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
# the evictor's figures: the limit, a size under it, chunks evicted
curl -sf http://127.0.0.1:$TEST_NIXCACHE_PORT/metrics > $TEST_NIXCACHE_DIR/m.txt
m() { sed -n "s/^nixcache_disk_tier_$1{dir=\"[^\"]*\"} //p" $TEST_NIXCACHE_DIR/m.txt; }
echo "metrics: used $(m used_bytes), limit $(m limit_bytes), passes $(m passes_total), evicted $(m evictions_total) ($(m evicted_bytes_total) bytes)"
[ "$(m limit_bytes)" = 16777216 ]
[ "$(m used_bytes)" -gt 0 ] && [ "$(m used_bytes)" -le 16777216 ]
[ "$(m passes_total)" -gt 0 ] && [ "$(m evictions_total)" -gt 0 ]
[ "$(m evicted_bytes_total)" -gt 0 ]
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



=== TEST 10: NARs uploaded (nix copy --to) to a cache with an S3 tier are in S3 before 201, survive eviction, and are served byte-exact
--- fixture
for my $n ([X => 21], [Y => 22], [Z => 23]) {
    srand($n->[1]);
    add_nar(name => $n->[0], prefix => 'fix:', chunk_size => 262144,
            level => 1,
            content => pack('N*', map { int(rand(4294967296)) }
                                      1 .. 2 * 1024 * 1024));
}
my $tok = "$Nixcache::Fixture::DIR/push-tokens";
open my $fh, '>', $tok or die "$tok: $!";
print $fh "push-secret\n";
close $fh;
chmod 0600, $tok;
$Nixcache::Fixture::VARS{TEST_NIXCACHE_PUSH_TOKENS} = $tok;
s3_vars();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens $TEST_NIXCACHE_PUSH_TOKENS;
        client_max_body_size 0;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_chunks_max_size 16m;
        nixcache_chunks_evict_interval 1s;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
auth='Authorization: Bearer push-secret'
for n in X Y Z; do
    eval "nar=\$TEST_NIXCACHE_FIX_${n}_NAR hash=\$TEST_NIXCACHE_FIX_${n}_HASH"
    put nar/$n.nar $nar 201 -H "$auth"
    # the 201 promises every chunk in S3: what is on disk now is there
    find $TEST_NIXCACHE_DIR/up -type f -name 'b*' -printf '%P %s\n' \
        >> $TEST_NIXCACHE_DIR/uploaded
    while read rel size; do
        obj=$TEST_NIXCACHE_S3_DATA/chunks/$rel._S3rver_object
        [ "$(stat -c %s $obj)" = "$size" ] \
            || { echo "$rel: not in S3 after the 201 of $n"; exit 1; }
    done < $TEST_NIXCACHE_DIR/uploaded
    narinfo $n
    put $hash.narinfo $TEST_NIXCACHE_DIR/$n.narinfo 201 -H "$auth"
done
--- request
GET /nix-cache-info
--- error_code: 200
--- post
TEST_NIXCACHE_CHUNKS=$TEST_NIXCACHE_DIR/up
. t/lib/evict.sh
echo "uploaded: $(sort -u $TEST_NIXCACHE_DIR/uploaded | wc -l) chunks"
wait_under $((16 * 1024 * 1024))
left=$(find $TEST_NIXCACHE_CHUNKS -type f -name 'b*' | wc -l)
echo "after eviction: $(tier_bytes) bytes, $left chunk files"
[ "$left" -lt "$(sort -u $TEST_NIXCACHE_DIR/uploaded | wc -l)" ]
# every uploaded NAR still served, byte-exact, evicted chunks from S3
for n in X Y Z; do
    eval "nh=\$TEST_NIXCACHE_FIX_${n}_NARHASH nar=\$TEST_NIXCACHE_FIX_${n}_NAR"
    curl -sSf $base/nar/$nh.nar | cmp - $nar
    curl -sSf $base/nar/$nh.nar.zst | zstd -dc | cmp - $nar
done
--- error_log eval
[qr/limit 16777216: [1-9]\d* chunks \(\d+ bytes\) evicted/]
--- no_error_log
[error]
[alert]
--- timeout: 90



=== TEST 11: chunks on disk but not in S3 (a push without the S3 tier) are never evicted: the others go instead
--- fixture
big_nar($_->[0], $_->[1]) for [N => 31], [A => 32], [B => 33], [C => 34];
# A, B and C go to S3; N's chunks stay on disk only, and are the oldest
my $dir = $Nixcache::Fixture::CHUNKS;
for my $n (qw(A B C)) {
    for my $rel (split ' ', $Nixcache::Fixture::VARS{"TEST_NIXCACHE_EV_$n"}) {
        Nixcache::S3::s3_put_file($ENV{TEST_NIXCACHE_S3_ENDPOINT},
                                  'nixcache', "chunks/$rel", "$dir/$rel");
        unlink "$dir/$rel" or die "$rel: $!";
    }
}
for my $rel (split ' ', $Nixcache::Fixture::VARS{TEST_NIXCACHE_EV_N}) {
    utime time - 3 * 3600, time - 3 * 3600, "$dir/$rel" or die "$rel: $!";
}
system('chmod', '-R', 'a+rwX', $dir) == 0 or die "chmod";
s3_vars();
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
for n in B C; do
    sleep 1.1
    get $n
    wait_all $n
done
wait_under $((24 * 1024 * 1024))
echo "after: $(tier_bytes) bytes; N $(present N) of $(count N), A $(present A), B $(present B), C $(present C)"
[ "$(present N)" = "$(count N)" ]
[ "$(present A)" -lt "$(count A)" ]
for n in N A B C; do get $n; get $n .nar; done
--- error_log eval
[qr/limit 25165824: [1-9]\d* chunks \(\d+ bytes\) evicted/,
 qr/nixcache: disk tier "[^"]*": \d+ chunks kept: not in S3 bucket "nixcache"/]
--- no_error_log
[error]
[alert]
--- timeout: 90



=== TEST 12: a fan-out name that is a symlink is never entered: CID-named files behind it (in S3 too) are not removed
--- fixture
big_nar($_->[0], $_->[1]) for [V => 41], [A => 42], [B => 43], [C => 44];
to_s3();
# V's chunks, in S3, also as files in a directory outside the disk tier,
# older than anything, reachable through the fan-out name "99"
my $dir = $Nixcache::Fixture::CHUNKS;
my $away = "$Nixcache::Fixture::DIR/elsewhere";
mkdir $away or die "$away: $!";
for my $rel (split ' ', $Nixcache::Fixture::VARS{TEST_NIXCACHE_EV_V}) {
    (my $cid = $rel) =~ s{^.*/}{};
    my $obj = "$ENV{TEST_NIXCACHE_S3_DATA}/chunks/$rel._S3rver_object";
    system('cp', $obj, "$away/$cid") == 0 or die "cp $obj";
    utime time - 3 * 3600, time - 3 * 3600, "$away/$cid" or die;
}
system('chmod', '-R', 'a+rwX', $away) == 0 or die "chmod";
symlink $away, "$dir/99" or die "symlink: $!";
$Nixcache::Fixture::VARS{TEST_NIXCACHE_AWAY} = $away;
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
for n in B C; do
    sleep 1.1
    get $n
    wait_all $n
done
wait_under $((16 * 1024 * 1024))
sleep 1.5
n=$(find $TEST_NIXCACHE_AWAY -type f | wc -l)
echo "behind the symlink: $n of $(count V) files"
[ "$n" = "$(count V)" ]
[ "$(present A)" -lt "$(count A)" ]
--- error_log eval
[qr/limit 16777216: [1-9]\d* chunks \(\d+ bytes\) evicted/,
 qr/errors while evicting, the first: not entering the symlink "[^"]*\/99"/]
--- no_error_log
[alert]
--- timeout: 90



=== TEST 13: an upload whose chunks S3 does not take: 502 with S3's error, nothing published
--- fixture
add_nar(name => 'F', prefix => 'fix:',
        content => join('', map { "line $_\n" } 1 .. 30000));
s3_vars();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_max_body_size 0;
        nixcache_s3_endpoint http://127.0.0.1:9;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
put nar/f.nar $TEST_NIXCACHE_FIX_F_NAR 502
narinfo F
put $TEST_NIXCACHE_FIX_F_HASH.narinfo $TEST_NIXCACHE_DIR/F.narinfo 400
no_keys 'up:manifest:*'
no_keys 'up:narinfo:*'
--- request
GET /$TEST_NIXCACHE_FIX_F_HASH.narinfo
--- error_code: 404
--- error_log eval
[qr/upload of "f\.nar".*chunks not stored in S3: s3 HEAD http:\/\/127\.0\.0\.1:9\/nixcache\/chunks\/\S+: Couldn't connect to server \(after 5 attempts\)/]
--- no_error_log
[alert]
--- timeout: 60
