# The S3 tier in the module: chunks missing on the disk tier come from a
# private s3rver (t/lib/s3rver-ctl), checked, served in order, written
# back to the disk tier; faults end the request cleanly with one log line.
#
# Fixtures are made by add_nar() as usual, then to_s3() moves every chunk
# file into the bucket (a signed PUT by curl --aws-sigv4, an independent
# signer) and leaves the disk tier empty.

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
                                DIR => $ENV{TMPDIR} // '/tmp');
my $s3 = start_s3rver("$S3DIR/s3", 'nixcache');

# Stopped here, first of the END blocks (defined last): s3rver-ctl needs
# the pid file in $S3DIR, which a File::Temp clean-up would remove first.
our @SIG_CHECKERS;

END {
    my $status = $?;
    for my $c (@SIG_CHECKERS) {
        kill 'TERM', $c->[0];
        close $c->[1];
    }
    stop_s3rver($s3) if $s3;
    system('rm', '-rf', $S3DIR) if $S3DIR;
    $? = $status;
}

sub creds {
    my ($name, $text) = @_;
    my $f = "$S3DIR/$name";
    open my $fh, '>', $f or die "$f: $!";
    print $fh $text;
    close $fh;
    chmod 0600, $f;
    return $f;
}

$ENV{TEST_NIXCACHE_S3_ENDPOINT} = $s3->{endpoint};
$ENV{TEST_NIXCACHE_S3_PORT} = $s3->{port};
$ENV{TEST_NIXCACHE_S3_DATA} = "$s3->{dir}/data/nixcache";
$ENV{TEST_NIXCACHE_S3_CREDS} = creds('creds', "S3RVER\nS3RVER\n");
$ENV{TEST_NIXCACHE_S3_CREDS_KV} = creds('creds-kv',
    "[default]\naws_access_key_id = S3RVER\naws_secret_access_key=x\n");
$ENV{TEST_NIXCACHE_S3_CREDS_BAD} = creds('creds-bad', "NOSUCHKEY\nsecret\n");
$ENV{TEST_NIXCACHE_S3_CREDS_OPEN} = creds('creds-open', "S3RVER\nS3RVER\n");
chmod 0644, $ENV{TEST_NIXCACHE_S3_CREDS_OPEN};
$ENV{TEST_NIXCACHE_S3_CTL} = "$ENV{PWD}/t/lib/s3rver-ctl";


package Nixcache::Fixture::Eval;

# Moves every chunk file of the disk tier into the bucket (only those
# whose CID the optional filter accepts).
sub to_s3 {
    my ($keep) = @_;
    my @files;
    my $dir = $Nixcache::Fixture::CHUNKS;
    File::Find::find({ no_chdir => 1, wanted => sub {
        push @files, $_ if m{/([a-z2-7]{2})/(b[a-z2-7]{58})$};
    } }, $dir);
    for my $f (@files) {
        my ($xx, $cid) = $f =~ m{/([a-z2-7]{2})/(b[a-z2-7]{58})$};
        next if $keep && !$keep->($cid);
        Nixcache::S3::s3_put_file($ENV{TEST_NIXCACHE_S3_ENDPOINT},
                                  'nixcache', "chunks/$xx/$cid", $f);
        unlink $f or die "$f: $!";
        (my $fan = $f) =~ s{/[^/]+$}{};
        rmdir $fan;
        chmod 0777, $fan;
    }
    chmod 0777, $dir;
    s3_vars();
    return scalar @files;
}

# The s3rver and credentials variables, for blocks.
sub s3_vars {
    $Nixcache::Fixture::VARS{"TEST_NIXCACHE_$_"} = $ENV{"TEST_NIXCACHE_$_"}
        for qw(S3_ENDPOINT S3_PORT S3_DATA S3_CREDS S3_CREDS_KV S3_CREDS_BAD
               S3_CREDS_OPEN S3_CTL);
}

# Deletes an object from the bucket.
sub s3_delete {
    my ($cid) = @_;
    system('curl', '-sSf', '-o', '/dev/null', '-X', 'DELETE',
           '--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', 'S3RVER:S3RVER',
           '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD',
           "$ENV{TEST_NIXCACHE_S3_ENDPOINT}/nixcache/chunks/"
           . substr($cid, -2) . "/$cid") == 0 or die "DELETE $cid failed";
}

package main;

run_tests();

__DATA__

=== TEST 1: .nar.zst with every chunk in S3 only: byte-exact, disk tier refilled
--- fixture
my $c = '';
$c .= pack('N', $_ * 2654435761 % 4294967296) . "s3 line $_\n" for 1 .. 30000;
my $f = add_nar(name => 'many', content => $c, chunk_size => 9000);
die "want many chunks" if $f->{NCHUNKS} < 20;
to_s3() == $f->{NCHUNKS} or die "not every chunk moved";
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_s3_prefetch 4;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_many_NARHASH.nar.zst
--- error_code: 200
--- response_headers
Content-Length: $TEST_NIXCACHE_FIX_many_FILESIZE
--- response_body_file
$TEST_NIXCACHE_FIX_many_NARZST
--- post
for i in $(seq 50); do
    n=$(find $TEST_NIXCACHE_CHUNKS -type f -name 'b*' | wc -l)
    [ "$n" = "$TEST_NIXCACHE_FIX_many_NCHUNKS" ] && break
    sleep 0.1
done
echo "chunk files: $n of $TEST_NIXCACHE_FIX_many_NCHUNKS"
[ "$n" = "$TEST_NIXCACHE_FIX_many_NCHUNKS" ]
left=$(find $TEST_NIXCACHE_CHUNKS -name '.*tmp*')
[ -z "$left" ] || { echo "temporary files left: $left"; exit 1; }
--- no_error_log
[error]
[alert]



=== TEST 2: .nar with every chunk in S3 only, K = 1 (no prefetch)
--- fixture
my $c = '';
$c .= pack('N', $_ * 2654435761 % 4294967296) . "s3 line $_\n" for 1 .. 30000;
add_nar(name => 'many', content => $c, chunk_size => 9000);
to_s3();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS_KV;
        nixcache_s3_prefetch 1;
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



=== TEST 3: filled from S3, then served with S3 gone (a location with a dead endpoint, same disk tier)
--- fixture
my $c = '';
$c .= pack('N', $_ * 2654435761 % 4294967296) . "s3 line $_\n" for 1 .. 30000;
add_nar(name => 'many', content => $c, chunk_size => 9000);
to_s3();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
    location /dead/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint http://127.0.0.1:9;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
--- init
curl -sf -o $TEST_NIXCACHE_DIR/first http://127.0.0.1:$TEST_NIXCACHE_PORT/nar/$TEST_NIXCACHE_FIX_many_NARHASH.nar
cmp $TEST_NIXCACHE_DIR/first $TEST_NIXCACHE_FIX_many_NAR
for i in $(seq 50); do
    n=$(find $TEST_NIXCACHE_CHUNKS -type f -name 'b*' | wc -l)
    [ "$n" = "$TEST_NIXCACHE_FIX_many_NCHUNKS" ] && break
    sleep 0.1
done
[ "$n" = "$TEST_NIXCACHE_FIX_many_NCHUNKS" ]
--- request
GET /dead/nar/$TEST_NIXCACHE_FIX_many_NARHASH.nar.zst
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_many_NARZST
--- no_error_log
[error]
[alert]



=== TEST 4: Range over S3 chunks (.nar)
--- fixture
my $c = '';
$c .= pack('N', $_ * 2654435761 % 4294967296) . "s3 line $_\n" for 1 .. 30000;
add_nar(name => 'many', content => $c, chunk_size => 9000);
to_s3();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_many_NARHASH.nar
--- more_headers
Range: bytes=100000-250000
--- error_code: 206
--- response_body_file
$TEST_NIXCACHE_FIX_many_NAR
--- response_body_file_range: 100000-250000
--- no_error_log
[error]



=== TEST 5: Range over S3 chunks (.nar.zst), the middle: chunks before it are not fetched
--- fixture
my $c = '';
$c .= pack('N', $_ * 2654435761 % 4294967296) . "s3 line $_\n" for 1 .. 30000;
add_nar(name => 'many', content => $c, chunk_size => 9000);
to_s3();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_many_NARHASH.nar.zst
--- more_headers
Range: bytes=50000-60000
--- error_code: 206
--- response_body_file
$TEST_NIXCACHE_FIX_many_NARZST
--- response_body_file_range: 50000-60000
--- post
n=$(find $TEST_NIXCACHE_CHUNKS -type f -name 'b*' | wc -l)
echo "chunk files: $n of $TEST_NIXCACHE_FIX_many_NCHUNKS"
[ "$n" -ge 1 ] && [ "$n" -le 6 ]
--- wait: 0.5
--- no_error_log
[error]



=== TEST 6: a corrupted object (same size, one byte flipped) → 502, logged with CID and key, not written to disk
--- fixture
add_nar(name => 'bad', content => "corrupt me please\n" x 3000);
to_s3();
my $cid = fixture_var('bad', 'CID0');
my $obj = "$ENV{TEST_NIXCACHE_S3_DATA}/chunks/" . substr($cid, -2)
          . "/$cid._S3rver_object";
open my $fh, '+<:raw', $obj or die "$obj: $!";
seek $fh, 20, 0; read $fh, my $b, 1; seek $fh, 20, 0; print $fh chr(ord($b) ^ 1);
close $fh;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_bad_NARHASH.nar.zst
--- error_code: 502
--- wait: 0.5
--- post
n=$(find $TEST_NIXCACHE_CHUNKS -type f | wc -l)
echo "chunk files: $n"
[ "$n" = 0 ]
--- error_log
S3 chunk $TEST_NIXCACHE_FIX_bad_CID0, key "chunks/
in bucket "nixcache": does not



=== TEST 7: S3 unreachable, cold chunk → 503, one log line with the cause
--- fixture
add_nar(name => 'cold', content => "cold and far away\n" x 3000);
to_s3();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint http://127.0.0.1:9;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_cold_NARHASH.nar
--- error_code: 503
--- error_log
S3 chunk $TEST_NIXCACHE_FIX_cold_CID0, key "chunks/
Failed to connect
(after one retry)
--- no_error_log
[alert]



=== TEST 8: a disk hit is served while S3 is unreachable
--- fixture
add_nar(name => 'warm', content => "warm and near\n" x 3000);
s3_vars();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint http://127.0.0.1:9;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_warm_NARHASH.nar
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_warm_NAR
--- no_error_log
[error]



=== TEST 9: a slow S3 (3 s delaying proxy) and a 500 ms timeout → 504, logged
--- fixture
add_nar(name => 'slow', content => "slow as a snail\n" x 3000);
to_s3();
my $port = `t/lib/s3-delay-proxy-bg $ENV{TEST_NIXCACHE_S3_PORT} 3000 $Nixcache::Fixture::DIR/proxy.pid`;
chomp $port;
$Nixcache::Fixture::VARS{TEST_NIXCACHE_PROXY_PORT} = $port;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint http://127.0.0.1:$TEST_NIXCACHE_PROXY_PORT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_s3_timeout 500ms;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_slow_NARHASH.nar.zst
--- error_code: 504
--- post
kill $(cat $TEST_NIXCACHE_DIR/proxy.pid)
--- error_log
S3 chunk $TEST_NIXCACHE_FIX_slow_CID0
timed out
--- no_error_log
after one retry



=== TEST 10: an access key id S3 does not know → 502, logged with S3's error code
--- fixture
add_nar(name => 'forbidden', content => "not for you\n" x 3000);
to_s3();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS_BAD;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_forbidden_NARHASH.nar.zst
--- error_code: 502
--- error_log
S3 chunk $TEST_NIXCACHE_FIX_forbidden_CID0
HTTP 403 InvalidAccessKeyId
--- no_error_log
after one retry



=== TEST 11: an object missing in the bucket → 502, logged with NoSuchKey
--- fixture
add_nar(name => 'gone', content => "gone with the wind\n" x 3000);
to_s3();
s3_delete(fixture_var('gone', 'CID0'));
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_gone_NARHASH.nar
--- error_code: 502
--- error_log
S3 chunk $TEST_NIXCACHE_FIX_gone_CID0, key "chunks/
HTTP 404 NoSuchKey



=== TEST 12: disk and S3 mixed (every other chunk on disk): .nar byte-exact
--- fixture
my $c = '';
$c .= pack('N', $_ * 2654435761 % 4294967296) . "mixed $_\n" for 1 .. 30000;
my $f = add_nar(name => 'mixed', content => $c, chunk_size => 7000);
my $i = 0;
my %odd = map { (fixture_var('mixed', "CID$_") => 1) } grep { $_ % 2 } 0 .. $f->{NCHUNKS} - 1;
to_s3(sub { $odd{$_[0]} });
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_s3_prefetch 3;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_mixed_NARHASH.nar
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_mixed_NAR
--- no_error_log
[error]



=== TEST 13: an S3 failure after the header (first chunk on disk) cuts the connection
--- fixture
my $c = '';
$c .= pack('N', $_ * 2654435761 % 4294967296) . "cut $_\n" for 1 .. 30000;
my $f = add_nar(name => 'cut', content => $c, chunk_size => 7000);
my $last = fixture_var('cut', 'CID' . ($f->{NCHUNKS} - 1));
to_s3(sub { $_[0] eq $last });
s3_delete($last);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_cut_NARHASH.nar.zst
--- error_code: 200
--- response_incomplete
--- error_log
HTTP 404 NoSuchKey



=== TEST 14: nginx -t: credentials readable by others are refused
--- fixture
s3_vars();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint http://127.0.0.1:9;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS_OPEN;
    }
--- must_die
--- error_log
is readable or writable by group or others (mode 0644)



=== TEST 15: nginx -t: an endpoint without credentials
--- fixture
s3_vars();
--- config
    location /a/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint http://127.0.0.1:9;
        nixcache_s3_bucket nixcache;
    }
--- must_die
--- error_log
"nixcache_s3_endpoint" requires "nixcache_s3_credentials"



=== TEST 16: nginx -t: an endpoint without a bucket
--- fixture
s3_vars();
--- config
    location /a/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint http://127.0.0.1:9;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
--- must_die
--- error_log
"nixcache_s3_endpoint" requires "nixcache_s3_bucket"



=== TEST 17: nginx -t: an endpoint that is not http(s)://host[:port]
--- fixture
s3_vars();
--- config
    location /a/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint ftp://127.0.0.1/x;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
--- must_die
--- error_log
invalid "nixcache_s3_endpoint" "ftp://127.0.0.1/x"



=== TEST 18: nginx -t: an unknown thread pool
--- fixture
s3_vars();
--- config
    location /a/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint http://127.0.0.1:9;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        nixcache_s3_thread_pool nosuchpool;
    }
--- must_die
--- error_log
unknown thread pool "nosuchpool"



=== TEST 19: temporary credentials (a session token) serve from S3
--- fixture
my $c = '';
$c .= pack('N', $_ * 2654435761 % 4294967296) . "tok line $_\n" for 1 .. 9000;
add_nar(name => 'tok', content => $c, chunk_size => 9000);
to_s3();
$Nixcache::Fixture::VARS{TEST_NIXCACHE_S3_CREDS_TOKEN} = main::creds(
    'creds-token', "AWS_ACCESS_KEY_ID=S3RVER\nAWS_SECRET_ACCESS_KEY=S3RVER\n"
    . "AWS_SESSION_TOKEN=FwoGZXIvYXdzEBYaD+token/x=\n");
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS_TOKEN;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_tok_NARHASH.nar
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_tok_NAR
--- no_error_log
[error]
[alert]



=== TEST 20: a session token is sent as x-amz-security-token and signed (botocore checks every GET)
--- fixture
system('python3 -c "import botocore" 2>/dev/null') == 0
    or die "python3-botocore not installed (make deps)";
add_nar(name => 'sig', content => "signed with a token\n" x 3000,
        chunk_size => 9000);
to_s3();
my $log = "$Nixcache::Fixture::DIR/sig.log";
my $token = 'FwoGZXIvYXdzEBYaDtemp/orary+token==';
my $pid = open(my $ph, '-|', 't/lib/s3-sig-check', 'eu-west-3',
               'ASIATEMPORARY', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
               $log, $token) or die "s3-sig-check: $!";
chomp(my $port = <$ph> // '');
$port or die "s3-sig-check did not start";
push @main::SIG_CHECKERS, [$pid, $ph];
$Nixcache::Fixture::VARS{TEST_NIXCACHE_SIG_PORT} = $port;
$Nixcache::Fixture::VARS{TEST_NIXCACHE_SIG_PID} = $pid;
$Nixcache::Fixture::VARS{TEST_NIXCACHE_SIG_LOG} = $log;
$Nixcache::Fixture::VARS{TEST_NIXCACHE_S3_CREDS_SIG} = main::creds(
    'creds-sig', "ASIATEMPORARY\nwJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n"
    . "$token\n");
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint http://127.0.0.1:$TEST_NIXCACHE_SIG_PORT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_region eu-west-3;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS_SIG;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_sig_NARHASH.nar.zst
--- error_code: 502
--- post
kill $TEST_NIXCACHE_SIG_PID
cat $TEST_NIXCACHE_SIG_LOG
grep -q '^GET /nixcache/chunks/[a-z2-7][a-z2-7]/b[a-z2-7]* ok$' \
    $TEST_NIXCACHE_SIG_LOG
[ -z "$(grep -v ' ok$' $TEST_NIXCACHE_SIG_LOG)" ]
--- error_log
HTTP 404



=== TEST 21: metrics: chunks served from the disk tier and from S3, counted apart
--- http_config
nixcache_metrics_zone m110 1m;
--- fixture
my $c = '';
$c .= pack('N', $_ * 2654435761 % 4294967296) . "counted $_\n" for 1 .. 30000;
my $f = add_nar(name => 'counted', content => $c, chunk_size => 7000);
my %odd = map { (fixture_var('counted', "CID$_") => 1) } grep { $_ % 2 } 0 .. $f->{NCHUNKS} - 1;
to_s3(sub { $odd{$_[0]} });
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
    location = /metrics {
        nixcache_metrics;
    }
--- request
GET /nar/$TEST_NIXCACHE_FIX_counted_NARHASH.nar.zst
--- error_code: 200
--- response_body_file
$TEST_NIXCACHE_FIX_counted_NARZST
--- post
cd $TEST_NIXCACHE_DIR
curl -sf http://127.0.0.1:$TEST_NIXCACHE_PORT/metrics > m.txt
n=$TEST_NIXCACHE_FIX_counted_NCHUNKS
value() { sed -n "s/^$1{cache=\"nixcache:\",tier=\"$2\"} //p" m.txt; }
echo "disk $(value nixcache_chunks_served_total disk), s3 $(value nixcache_chunks_served_total s3) of $n"
test "$(value nixcache_chunks_served_total s3)" = $((n / 2))
test "$(value nixcache_chunks_served_total disk)" = $((n - n / 2))
test $(( $(value nixcache_chunks_served_bytes_total disk) \
         + $(value nixcache_chunks_served_bytes_total s3) )) \
     = $TEST_NIXCACHE_FIX_counted_FILESIZE
test "$(value nixcache_chunks_served_bytes_total s3)" -gt 0
# one timed fetch per chunk from S3, none failed
grep -qxF "nixcache_s3_fetch_duration_seconds_count $((n / 2))" m.txt
grep -qxF "nixcache_s3_fetch_duration_seconds_bucket{le=\"+Inf\"} $((n / 2))" m.txt
test "$(grep '^nixcache_s3_fetch_errors_total' m.txt | grep -vc ' 0$')" = 0
--- no_error_log
[error]



=== TEST 22: metrics: an object missing in the bucket is counted as not_found, a corrupt one as corrupt
--- http_config
nixcache_metrics_zone m110b 1m;
--- fixture
add_nar(name => 'gone2', content => "gone with the wind\n" x 3000);
add_nar(name => 'bent', content => "bent out of shape\n" x 3000);
to_s3();
s3_delete(fixture_var('gone2', 'CID0'));
my $cid = fixture_var('bent', 'CID0');
my $obj = "$ENV{TEST_NIXCACHE_S3_DATA}/chunks/" . substr($cid, -2)
          . "/$cid._S3rver_object";
open my $fh, '+<:raw', $obj or die "$obj: $!";
seek $fh, 20, 0; read $fh, my $b, 1; seek $fh, 20, 0; print $fh chr(ord($b) ^ 1);
close $fh;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
    }
    location = /metrics {
        nixcache_metrics;
    }
--- init
u=http://127.0.0.1:$TEST_NIXCACHE_PORT
test "$(curl -s -o /dev/null -w '%{http_code}' $u/nar/$TEST_NIXCACHE_FIX_gone2_NARHASH.nar)" = 502
test "$(curl -s -o /dev/null -w '%{http_code}' $u/nar/$TEST_NIXCACHE_FIX_bent_NARHASH.nar)" = 502
--- request
GET /metrics
--- error_code: 200
--- response_body_like
nixcache_s3_fetch_errors_total\{cause="not_found"\} 1
.*
nixcache_s3_fetch_errors_total\{cause="corrupt"\} 1
--- error_log
HTTP 404 NoSuchKey



=== TEST 23: health with an S3 tier: 200 when the bucket answers, the probe not counted as a fetch
--- http_config
nixcache_metrics_zone m110c 1m;
--- fixture
s3_vars();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        location = /health {
            nixcache_health;
        }
    }
    location = /metrics {
        nixcache_metrics;
    }
--- request
GET /health
--- error_code: 200
--- response_body
ok
--- post
curl -sf http://127.0.0.1:$TEST_NIXCACHE_PORT/metrics > $TEST_NIXCACHE_DIR/m.txt
grep -qxF 'nixcache_s3_fetch_duration_seconds_count 0' $TEST_NIXCACHE_DIR/m.txt
test "$(grep '^nixcache_s3_fetch_errors_total' $TEST_NIXCACHE_DIR/m.txt | grep -vc ' 0$')" = 0
--- no_error_log
[error]



=== TEST 24: health with an S3 tier S3 refuses the credentials of: 503 naming s3 and S3's code
--- fixture
s3_vars();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS_BAD;
        location = /health {
            nixcache_health;
        }
    }
--- request
GET /health
--- error_code: 503
--- response_body
s3: HTTP 403 InvalidAccessKeyId
--- error_log
HTTP 403 InvalidAccessKeyId



=== TEST 24b: credentials that rotate: the file is read again when it changes (nixcache_s3_credentials_interval); one open to others or unparsable is refused, the credentials in use kept
--- http_config
nixcache_s3_credentials_interval 200ms;
--- fixture
s3_vars();
system('install', '-o', 'nobody', '-m', '600',
       $ENV{TEST_NIXCACHE_S3_CREDS_BAD}, "$Nixcache::Fixture::DIR/creds") == 0
    or die 'install';
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_DIR/creds;
        location = /health {
            nixcache_health;
        }
    }
--- request
GET /health
--- error_code: 503
--- response_body
s3: HTTP 403 InvalidAccessKeyId
--- post
cd $TEST_NIXCACHE_DIR
health() { curl -s -o h.txt -w '%{http_code}' http://127.0.0.1:$TEST_NIXCACHE_PORT/health; }
# the refresher writes good credentials: served within a few intervals
install -o nobody -m 600 $TEST_NIXCACHE_S3_CREDS creds.new && mv creds.new creds
for i in $(seq 50); do [ "$(health)" = 200 ] && break; sleep 0.1; done
test "$(health)" = 200
# open to others: refused, the good ones kept
install -o nobody -m 644 $TEST_NIXCACHE_S3_CREDS_BAD creds.new && mv creds.new creds
sleep 1
test "$(health)" = 200
# not credentials at all: refused, kept
printf 'nonsense\n' > creds.new && chmod 600 creds.new && chown nobody creds.new && mv creds.new creds
sleep 1
test "$(health)" = 200
# bad ones written in place (same inode): read, and S3 refuses them
cat $TEST_NIXCACHE_S3_CREDS_BAD > creds
for i in $(seq 50); do [ "$(health)" = 503 ] && break; sleep 0.1; done
test "$(health)" = 503
grep -q InvalidAccessKeyId h.txt
--- error_log
S3 credentials "$TEST_NIXCACHE_DIR/creds" read again
is readable or writable by group or others (mode 0644): chmod 600 it; the credentials read before are kept
/creds": need an access key id and a secret access key (two lines, or AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=...); the credentials read before are kept



=== TEST 24b2: credentials that rotate into a file the workers cannot read (root's): the ones in use kept, and why said
--- skip eval
$ENV{TEST_NIXCACHE_VALGRIND} ? 'with master_process off the process is root: no file is unreadable to it' : undef
--- http_config
nixcache_s3_credentials_interval 200ms;
--- fixture
s3_vars();
system('install', '-o', 'nobody', '-m', '600',
       $ENV{TEST_NIXCACHE_S3_CREDS}, "$Nixcache::Fixture::DIR/creds") == 0
    or die 'install';
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_DIR/creds;
        location = /health {
            nixcache_health;
        }
    }
--- request
GET /health
--- error_code: 200
--- post
cd $TEST_NIXCACHE_DIR
health() { curl -s -o h.txt -w '%{http_code}' http://127.0.0.1:$TEST_NIXCACHE_PORT/health; }
# after the workers' first check (which sets what a change is)
sleep 1
# root's own file: the workers cannot read it, and say so; kept
install -m 600 $TEST_NIXCACHE_S3_CREDS_BAD creds.new && mv creds.new creds
sleep 1
test "$(health)" = 200
--- error_log
(to be read again, the file must be readable by the worker processes' user) (13: Permission denied)



=== TEST 24c: credentials the workers cannot read (root's, mode 0600): they work as read at load, and are not followed, said once at notice level
--- skip eval
$ENV{TEST_NIXCACHE_VALGRIND} ? 'with master_process off the process is root: no file is unreadable to it' : undef
--- http_config
nixcache_s3_credentials_interval 200ms;
--- fixture
s3_vars();
system('install', '-m', '600', $ENV{TEST_NIXCACHE_S3_CREDS},
       "$Nixcache::Fixture::DIR/creds") == 0 or die 'install';
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint $TEST_NIXCACHE_S3_ENDPOINT;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_DIR/creds;
        location = /health {
            nixcache_health;
        }
    }
--- request
GET /health
--- wait: 1
--- error_code: 200
--- error_log
the worker processes' user cannot read the file, so its changes are not followed (make it that user's, mode 0600, to follow them)
--- no_error_log
[error]



=== TEST 25: health with an S3 tier that is unreachable: 503 naming s3
--- fixture
s3_vars();
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_s3_endpoint http://127.0.0.1:9;
        nixcache_s3_bucket nixcache;
        nixcache_s3_credentials $TEST_NIXCACHE_S3_CREDS;
        location = /health {
            nixcache_health;
        }
    }
--- request
GET /health
--- error_code: 503
--- response_body_like
^s3: .*connect
--- error_log
Failed to connect
