# nixcache push/import with the S3 tier: chunks as objects of a bucket on
# a private s3rver (t/lib/s3rver-ctl), checked on s3rver's disk, not
# through the client under test; uploads confirmed before publication;
# retries through a fault proxy (t/lib/s3-fault-proxy).
#
#   prove -I t/lib t/100-s3-cli.t     (needs `make cli` and `make deps`)

use strict;
use warnings;

use Digest::SHA qw(sha256);
use File::Path qw(make_path);
use Test::More;

use lib 't/lib';
use Nixcache::Cli;
use Nixcache::S3;
use Nixcache::Skip;

skip_all_missing('s3rver not installed (make deps)')
    unless s3rver_available();

my $T = cli_setup();
my $S = "$T/store";
start_redis();
my $sock = "unix:$T/redis/sock";
my $bucket = 'nixcache';
my $s3 = start_s3rver("$T/s3", $bucket);

$ENV{AWS_ACCESS_KEY_ID} = 'S3RVER';
$ENV{AWS_SECRET_ACCESS_KEY} = 'S3RVER';
delete $ENV{AWS_SESSION_TOKEN};

my @s3 = ('--s3-endpoint', $s3->{endpoint}, '--s3-bucket', $bucket);
my @push = ('--redis', $sock, '--store', $S);

my ($rc, $out, $err);


sub add {
    my ($p) = @_;
    my ($rc, $out, $err) = nix('nix-store', '--store', $S, '--add', $p);
    die "nix-store --add $p: $err" if $rc != 0;
    chomp $out;
    return $out;
}

sub noise {
    my ($seed, $len) = @_;
    my $data = '';
    my $i = 0;
    $data .= sha256("$seed:" . $i++) while length($data) < $len;
    return substr($data, 0, $len);
}

# a directory with a file of $len pseudo-random bytes, added to the store
sub add_noise {
    my ($name, $len, $edit) = @_;
    my $data = noise($name =~ s/\d+$//r, $len);
    substr($data, $len / 2, length $edit) = $edit if defined $edit;
    make_path("$T/src/$name");
    spew("$T/src/$name/data.bin", $data);
    spew("$T/src/$name/note", "$name\n");
    return add("$T/src/$name");
}

sub store_hash { ($_[0] =~ m{^/nix/store/([0-9a-z]{32})-})[0] }

sub published {
    my ($path) = @_;
    return defined redis_get('nixcache:narinfo:' . store_hash($path));
}

sub s3_file {
    my ($cid) = @_;
    return "$s3->{dir}/data/$bucket/chunks/" . substr($cid, -2)
           . "/$cid._S3rver_object";
}

# the CIDs of a published path's manifest
sub manifest_cids {
    my ($path) = @_;
    my $ni = parse_narinfo(redis_get('nixcache:narinfo:'
                                     . store_hash($path)));
    my ($h) = $ni->{NarHash} =~ /^sha256:(\w+)$/;
    my $m = redis_get("nixcache:manifest:$h");
    my ($count) = unpack('x8 V', $m);
    return map { cid_of(substr($m, 96 + 40 * $_, 32)) } 0 .. $count - 1;
}

# the keys the layout allows, and the CIDs behind them
sub layout_ok {
    my @bad = grep { !m{^chunks/([a-z2-7]{2})/(b[a-z2-7]{58})$}
                     || $1 ne substr($2, -2) } s3_keys($s3);
    diag("keys off the layout: @bad") if @bad;
    return !@bad;
}

# a fault proxy in front of s3rver: the first $fail requests get a 503
sub start_proxy {
    my ($fail) = @_;
    my $count = "$T/proxy.count." . int(rand(1e9));
    my $pid = open(my $ph, '-|', 't/lib/s3-fault-proxy', $s3->{port},
                   $fail, $count) or die "proxy: $!";
    my $port = <$ph>;
    die "proxy did not start" unless defined $port;
    chomp $port;
    return { pid => $pid, fh => $ph, port => $port, count => $count,
             endpoint => "http://127.0.0.1:$port" };
}

sub stop_proxy {
    my ($p) = @_;
    kill 'TERM', $p->{pid};
    close $p->{fh};
}

sub proxy_counts {
    my ($p) = @_;
    my $c = slurp($p->{count}) // '0 0';
    return split ' ', $c;
}


my $small = do { spew("$T/hello.txt", "hello, s3\n"); add("$T/hello.txt") };
my $big = add_noise('big', 1024 * 1024);
my $big2 = add_noise('big2', 1024 * 1024, 'x' x 100);


# Options -------------------------------------------------------------------

($rc, $out, $err) = nixcache('push', '--help');
like($out, qr/--s3-endpoint URL.*--s3-credentials FILE/s,
     'push --help lists the S3 options');

($rc, $out, $err) = nixcache('push', @push, '--s3-endpoint',
                             $s3->{endpoint}, $small);
is($rc, 2, '--s3-endpoint without --s3-bucket exits 2');
like($err, qr/--s3-endpoint and --s3-bucket go together/, '... and says so');

($rc, $out, $err) = nixcache('push', @push, '--s3-endpoint',
                             'ftp://x', '--s3-bucket', $bucket, $small);
isnt($rc, 0, 'an ftp:// endpoint is refused');
like($err, qr/not http\(s\):\/\/host/, '... with a clear message');

{
    local $ENV{AWS_ACCESS_KEY_ID};
    delete $ENV{AWS_ACCESS_KEY_ID};
    ($rc, $out, $err) = nixcache('push', @push, @s3, $small);
    isnt($rc, 0, 'no credentials: fails');
    like($err, qr/no credentials: set AWS_ACCESS_KEY_ID/, '... and says so');
}
ok(!published($small), 'nothing published by the failed runs');


# Push to S3 only -----------------------------------------------------------

($rc, $out, $err) = nixcache('push', @push, @s3, $small, $big);
is($rc, 0, 'push to S3 (no --chunks) exits 0') or diag($err);
like($err, qr/s3: \d+ uploaded/, 'the summary counts uploads');

check_nar(path => $small, chunk_file => \&s3_file, name => 'small in S3');
check_nar(path => $big, chunk_file => \&s3_file, name => 'big in S3');
ok(layout_ok(), 'every object key is chunks/<last 2 chars of CID>/<CID>');

my %cids = map { $_ => 1 } manifest_cids($small), manifest_cids($big);
is(scalar(my @keys = s3_keys($s3)), scalar(keys %cids),
   'one object per distinct chunk, nothing else');
is(s3_puts($s3), scalar(keys %cids), 'one PUT per distinct chunk');
cmp_ok(scalar(manifest_cids($big)), '>', 8, 'big is several chunks');


# Dedup ---------------------------------------------------------------------

my $puts = s3_puts($s3);
($rc, $out, $err) = nixcache('push', @push, @s3, '--force',
                             $small, $big);
is($rc, 0, 'second push (--force) exits 0') or diag($err);
is(s3_puts($s3), $puts, 'second push uploads no object');
like($err, qr/s3: 0 uploaded/, '... and says so');

($rc, $out, $err) = nixcache('push', @push, @s3, $big2);
is($rc, 0, 'push of an edited copy exits 0') or diag($err);
check_nar(path => $big2, chunk_file => \&s3_file, name => 'big2 in S3');
my @c2 = manifest_cids($big2);
my $new = grep { !$cids{$_} } @c2;
is(s3_puts($s3) - $puts, $new, "only the $new changed chunks uploaded");
cmp_ok($new, '<', @c2 / 2, 'most chunks of the edited copy are shared');
$cids{$_} = 1 for @c2;


# the same content twice in one NAR: each distinct chunk uploaded once
make_path("$T/src/dup");
spew("$T/src/dup/$_", noise('dup', 512 * 1024)) for qw(a b c);
my $dup = add("$T/src/dup");
$puts = s3_puts($s3);
($rc, $out, $err) = nixcache('push', @push, @s3, $dup);
is($rc, 0, 'push of a NAR with repeated content') or diag($err);
my @cd = manifest_cids($dup);
my %cd = map { $_ => 1 } @cd;
cmp_ok(scalar(keys %cd), '<', @cd * 2 / 3, scalar(@cd) . ' chunks, '
       . scalar(keys %cd) . ' distinct');
is(s3_puts($s3) - $puts, scalar(grep { !$cids{$_} } keys %cd),
   'one PUT per distinct chunk');
check_nar(path => $dup, chunk_file => \&s3_file, name => 'dup in S3');
$cids{$_} = 1 for @cd;


# Addressing styles ---------------------------------------------------------

my $vh = add_noise('vh', 100 * 1024);
($rc, $out, $err) = nixcache('push', @push, '--s3-endpoint',
                             "http://s3.localhost:$s3->{port}",
                             '--s3-bucket', $bucket, '-v', $vh);
is($rc, 0, 'virtual-host addressing (the default for a DNS name)')
    or diag($err);
like($err, qr{http://$bucket\.s3\.localhost:\d+/chunks/},
     '... requests go to http://BUCKET.s3.localhost:PORT/KEY');
check_nar(path => $vh, chunk_file => \&s3_file, name => 'vh in S3');

my $ps = add_noise('ps', 100 * 1024);
($rc, $out, $err) = nixcache('push', @push, '--s3-endpoint',
                             "http://localhost:$s3->{port}/",
                             '--s3-bucket', $bucket, $ps);
is($rc, 0, 'path style is the default for localhost') or diag($err);
check_nar(path => $ps, chunk_file => \&s3_file, name => 'ps in S3');

($rc, $out, $err) = nixcache('push', @push, @s3, '--s3-virtual-host',
                             $small);
isnt($rc, 0, '--s3-virtual-host with an IP endpoint is refused');
like($err, qr/virtual-host addressing needs a DNS name/, '... clearly');


# Another frame of the same chunk in the bucket -----------------------------

make_path("$T/src/text");
spew("$T/src/text/t", join('', map { "line $_ of some text\n" } 1 .. 20000));
my $text = add("$T/src/text");
($rc, $out, $err) = nixcache('push', @push, @s3, '--level', 1, $text);
is($rc, 0, 'push of compressible text at --level 1') or diag($err);
my $before = redis_get('nixcache:narinfo:' . store_hash($text));
$puts = s3_puts($s3);
($rc, $out, $err) = nixcache('push', @push, @s3, '--level', 19, '--force',
                             $text);
isnt($rc, 0, 'again at --level 19: fails');
like($err, qr/chunk b\w+: the bucket holds another frame of it/,
     '... saying the bucket holds another frame');
is(s3_puts($s3), $puts, '... replaces no object');
is(redis_get('nixcache:narinfo:' . store_hash($text)), $before,
   '... publishes nothing');
check_nar(path => $text, chunk_file => \&s3_file, name => 'text in S3');


# Write-through to a local disk tier ----------------------------------------

my $wt = add_noise('wt', 300 * 1024);
($rc, $out, $err) = nixcache('push', @push, @s3, '--chunks',
                             "$T/chunks", $wt);
is($rc, 0, 'push to S3 and --chunks exits 0') or diag($err);
check_nar(path => $wt, chunks => "$T/chunks", name => 'wt on disk');
check_nar(path => $wt, chunk_file => \&s3_file, name => 'wt in S3');

# a disk tier filled before S3 was configured gets uploaded
my $old = add_noise('old', 300 * 1024);
($rc, $out, $err) = nixcache('push', @push, '--chunks',
                             "$T/chunks", $old);
is($rc, 0, 'push of a path to the disk tier only') or diag($err);
my @old = manifest_cids($old);
ok(!grep({ -e s3_file($_) } @old), '... its chunks are not in S3');
($rc, $out, $err) = nixcache('push', @push, @s3, '--chunks',
                             "$T/chunks", '--force', $old);
is($rc, 0, 'push again with S3 exits 0') or diag($err);
check_nar(path => $old, chunk_file => \&s3_file, name => 'old in S3');


# Failures: nothing published -----------------------------------------------

my $fail1 = add_noise('fail1', 200 * 1024);

my $dead = free_port();
($rc, $out, $err) = nixcache('push', @push, '--s3-endpoint',
                             "http://127.0.0.1:$dead", '--s3-bucket',
                             $bucket, '--s3-attempts', 2, $fail1);
isnt($rc, 0, 'S3 down: push fails');
like($err, qr{s3\ (HEAD|PUT)\ http://127\.0\.0\.1:$dead/$bucket/chunks/../b\w+:
              \ .*(connect|Connection).*\(after\ 2\ attempts\)}x,
     '... naming the request and the cause');
ok(!published($fail1), '... nothing published');
is(scalar(redis_keys('nixcache:manifest:*')), scalar(redis_keys(
   'nixcache:narinfo:*')), '... no manifest without narinfo either');

{
    local $ENV{AWS_ACCESS_KEY_ID} = 'NOSUCHKEY';
    ($rc, $out, $err) = nixcache('push', @push, @s3, $fail1);
}
isnt($rc, 0, 'unknown access key id: push fails');
like($err, qr{s3\ (HEAD|PUT)\ http://127\.0\.0\.1:\d+/$bucket/chunks/\S+:
              \ 403\ (InvalidAccessKeyId|Forbidden)}x,
     '... with the status and the S3 error');
ok(!published($fail1), '... nothing published');

spew("$T/cred-bad", "S3RVER\n");
($rc, $out, $err) = nixcache('push', @push, @s3,
                             '--s3-credentials', "$T/cred-bad", $fail1);
isnt($rc, 0, 'a credentials file without secret: fails');
like($err, qr/need an access key id and a secret/, '... and says so');


# Credentials files ---------------------------------------------------------

{
    local $ENV{AWS_ACCESS_KEY_ID} = 'NOSUCHKEY';

    spew("$T/cred-lines", "S3RVER\nsecret\n");
    ($rc, $out, $err) = nixcache('push', @push, @s3, '--force',
                                 '--s3-credentials', "$T/cred-lines", $small);
    is($rc, 0, '--s3-credentials with two lines') or diag($err);

    spew("$T/cred-kv", "# comment\n[default]\naws_access_key_id = S3RVER\n"
                       . "AWS_SECRET_ACCESS_KEY=secret\n");
    ($rc, $out, $err) = nixcache('push', @push, @s3, '--force',
                                 '--s3-credentials', "$T/cred-kv", $small);
    is($rc, 0, '--s3-credentials with KEY=VALUE lines') or diag($err);
}


# Retries -------------------------------------------------------------------

my $proxy = start_proxy(5);
my $retry = add_noise('retry', 200 * 1024);
($rc, $out, $err) = nixcache('push', @push, '--s3-endpoint',
                             $proxy->{endpoint}, '--s3-bucket', $bucket,
                             '--s3-inflight', 2, $retry);
is($rc, 0, '5 injected 503s: push succeeds through retries') or diag($err);
my ($seen, $failed) = proxy_counts($proxy);
is($failed, 5, '... the proxy answered 503 five times');
cmp_ok($seen, '>', 5, '... and forwarded the rest');
check_nar(path => $retry, chunk_file => \&s3_file, name => 'retry in S3');
stop_proxy($proxy);

$proxy = start_proxy(-1);
($rc, $out, $err) = nixcache('push', @push, '--s3-endpoint',
                             $proxy->{endpoint}, '--s3-bucket', $bucket,
                             '--s3-attempts', 3, $fail1);
isnt($rc, 0, 'S3 always 503: push fails');
like($err, qr{s3\ HEAD\ http://127\.0\.0\.1:\d+/$bucket/chunks/\S+:
              \ 503\ (SlowDown|Service\ Unavailable)\ \(after\ 3\ attempts\)}x,
     '... after 3 attempts, with the S3 error code');
($seen) = proxy_counts($proxy);
ok($seen >= 3, "... $seen requests tried");
ok(!published($fail1), '... nothing published');
stop_proxy($proxy);


my $sig_path;

# Signatures, checked by botocore ------------------------------------------

SKIP: {
    skip_missing('python3-botocore not installed', 4)
        if system('python3 -c "import botocore" 2>/dev/null') != 0;

    my $log = "$T/sig.log";
    my $pid = open(my $ph, '-|', 't/lib/s3-sig-check', 'eu-west-3',
                   'AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
                   $log) or die "s3-sig-check: $!";
    chomp(my $port = <$ph> // '');

    my $sig = $sig_path = add_noise('sig', 150 * 1024);
    local $ENV{AWS_ACCESS_KEY_ID} = 'AKIDEXAMPLE';
    local $ENV{AWS_SECRET_ACCESS_KEY} =
        'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
    ($rc, $out, $err) = nixcache('push', @push, '--s3-endpoint',
                                 "http://127.0.0.1:$port", '--s3-bucket',
                                 'my-bucket', '--s3-region', 'eu-west-3',
                                 '--s3-prefix', 'p/x y+z/', $sig);
    is($rc, 0, 'push to a signature-checking server') or diag($err);
    kill 'TERM', $pid;
    close $ph;

    my @lines = split /\n/, slurp($log) // '';
    my @put = grep { /^PUT / } @lines;
    cmp_ok(scalar(@put), '>=', 2, scalar(@put) . ' PUTs, '
           . (@lines - @put) . ' HEADs seen');
    is(scalar(grep { !/ ok$/ } @lines), 0,
       'every request signed as botocore signs it, payload hash right')
        or diag(join "\n", grep { !/ ok$/ } @lines);
    like($put[0] // '', qr{^PUT /my-bucket/p/x%20y%2Bz/../b\w{58} ok$},
         'key prefix encoded once in the path');
}


# Import to S3 --------------------------------------------------------------

my $imp = add_noise('imp', 400 * 1024);
($rc, $out, $err) = nix('nix', 'copy', '--store', $S, '--to',
                        "file://$T/flat?compression=xz", $imp);
is($rc, 0, 'nix copy --to file://') or diag($err);
($rc, $out, $err) = nixcache('import', '--redis', $sock, @s3, "$T/flat");
is($rc, 0, 'import to S3 exits 0') or diag($err);
check_nar(path => $imp, chunk_file => \&s3_file, name => 'imported in S3');
ok(layout_ok(), 'every object key still follows the layout');



# verify against the bucket -------------------------------------------------

# the stand-in server's path has no chunks in s3rver
redis_cmd('DEL', 'nixcache:narinfo:' . store_hash($sig_path)) if $sig_path;

my @verify = ('verify', '--redis', $sock, @s3);
($rc, $out, $err) = nixcache(@verify);
is($rc, 0, 'verify --s3-*: every chunk of every narinfo sound') or diag($out);
my ($refs) = $err =~ /(\d+) chunk references/;
cmp_ok($refs // 0, '>', 50, "... $refs chunk references checked");
($rc, $out, $err) = nixcache(@verify, '--quick');
is($rc, 0, 'verify --quick --s3-*') or diag($out);

# one object corrupted (same size), one removed
my @bc = manifest_cids($big);
my $f = s3_file($bc[1]);
my $obj = slurp($f);
substr($obj, length($obj) / 2, 8) = 'CORRUPT!';
spew($f, $obj);
($rc, $out, $err) = nixcache(@verify);
is($rc, 1, 'verify: a corrupted object is a problem');
like($out, qr/chunk $bc[1]: (corrupt|hash mismatch)/, '... named');
($rc, $out, $err) = nixcache(@verify, '--quick');
is($rc, 0, 'verify --quick checks sizes only');

unlink s3_file($bc[2]) or die "unlink: $!";
($rc, $out, $err) = nixcache(@verify, '--quick');
is($rc, 1, 'verify --quick: a missing object is a problem');
like($out, qr{chunk $bc[2]: missing in S3 as chunks/../$bc[2]},
     '... named with its key');


# Bounded memory: N frames in flight, whatever the NAR size -----------------

SKIP: {
    skip 'NIXCACHE_BIG=0', 3 if ($ENV{NIXCACHE_BIG} // 1) eq '0';

    my $mb = 80;
    my $huge = add_noise('huge', $mb * 1024 * 1024);
    my $rss;
    ($rc, $out, $err, $rss) = nixcache_rss('push', @push, @s3, $huge);
    is($rc, 0, "push of a $mb MiB NAR to S3") or diag($err);
    ok(defined $rss && $rss < 48 * 1024,
       "max RSS " . ($rss // '?') . " KiB, far below the NAR size");
    diag("max RSS: $rss KiB for a $mb MiB NAR pushed to S3");
    ok(-e s3_file((manifest_cids($huge))[-1]), 'its last chunk is in S3');
}

done_testing();
