# nixcache verify: a cache pushed by the CLI verifies clean; each kind of
# damage, made here by hand in Redis or the chunk directory, is reported
# on its own line naming the chunk, manifest or narinfo, with exit 1.
#
#   prove -I t/lib t/032-verify.t       (needs `make cli`)

use strict;
use warnings;

use Digest::SHA qw(sha256);
use File::Path qw(make_path);
use IO::Socket::INET;
use POSIX ();
use IPC::Run ();
use Test::More;

use lib 't/lib';
use Nixcache::Cli;

my $T = cli_setup();
my $S = "$T/store";
my $redis = start_redis();
my $sock = "unix:$T/redis/sock";
my $chunks = "$T/chunks";

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

sub hash_of { substr($_[0], 11, 32) }

sub narinfo_of {
    my ($path, $prefix) = @_;
    return parse_narinfo(redis_get(($prefix // 'nixcache:') . 'narinfo:'
                                   . hash_of($path)));
}

sub nar32_of { narinfo_of(@_)->{NarHash} =~ s/^sha256://r }

sub manifest_of {
    my ($path) = @_;
    return redis_get('nixcache:manifest:' . nar32_of($path));
}

# the manifest's entries: [digest, usize, csize, cid, file]
sub entries_of {
    my ($path) = @_;
    my $m = manifest_of($path);
    my $count = unpack('V', substr($m, 8, 4));
    my @e;
    for my $i (0 .. $count - 1) {
        my ($d, $u, $c) = unpack('a32 V V', substr($m, 96 + 40 * $i, 40));
        my $cid = cid_of($d);
        push @e, [$d, $u, $c, $cid, "$chunks/" . substr($cid, -2) . "/$cid"];
    }
    return @e;
}

sub verify {
    return nixcache('verify', '--redis', $sock, '--chunks', $chunks, @_);
}

# Runs verify (full, then --quick) on a broken cache and checks the exit
# status and that every wanted line is reported.
sub broken {
    my (%a) = @_;
    my ($rc, $out, $err) = verify();
    is($rc, 1, "$a{name}: exit 1") or diag("stdout:\n$out\nstderr:\n$err");
    note("$a{name}:\n$out");
    for my $re (@{ $a{want} }) {
        like($out, $re, "$a{name}: reported");
    }
    like($err, qr/verify done: .* [1-9]\d* problems/,
         "$a{name}: summary counts it");

    return unless exists $a{quick};

    ($rc, $out, $err) = verify('--quick');
    if ($a{quick}) {
        is($rc, 1, "$a{name}: --quick exit 1");
        like($out, $_, "$a{name}: --quick reports it") for @{ $a{want} };
    } else {
        is($rc, 0, "$a{name}: --quick does not see it")
            or diag("stdout:\n$out");
    }
}

sub clean {
    my ($name) = @_;
    my ($rc, $out, $err) = verify();
    is($rc, 0, "$name: verify exits 0") or diag("stdout:\n$out\n$err");
    is($out, '', "$name: nothing reported");
    return $err;
}

# A zstd frame of $plain made of raw blocks, without checksum, exactly
# $size bytes long (frame header fields and block splits chosen to fit):
# a valid frame whose content is whatever we want.
sub raw_frame {
    my ($plain, $size) = @_;
    my $u = length $plain;

    for my $nblocks (int(($u + 131071) / 131072) .. 64) {
        for my $hdr ([0x20 | 0x80, '', 4], [0x80, chr(10 << 3), 4],
                     [0xc0, chr(10 << 3), 8], [0x20 | 0xc0, '', 8])
        {
            my ($fhd, $wd, $fcs) = @$hdr;
            next if 4 + 1 + length($wd) + $fcs + 3 * $nblocks + $u != $size;

            my $f = pack('V', 0xFD2FB528) . chr($fhd) . $wd
                    . ($fcs == 4 ? pack('V', $u) : pack('Q<', $u));
            my $per = int($u / $nblocks);
            for my $b (0 .. $nblocks - 1) {
                my $len = $b == $nblocks - 1 ? $u - $per * $b : $per;
                next if $len > 131072;
                my $last = $b == $nblocks - 1 ? 1 : 0;
                my $h = $last | ($len << 3);
                $f .= substr(pack('V', $h), 0, 3)
                      . substr($plain, $per * $b, $len);
            }
            return $f if length $f == $size;
        }
    }
    return undef;
}


# Store contents ------------------------------------------------------------

spew("$T/hello.txt", "hello, nixcache\n");
my $small = add("$T/hello.txt");

make_path("$T/tree/sub");
spew("$T/tree/big.bin", noise('big', 2 * 1024 * 1024));
spew("$T/tree/sub/text", join '', map { "line $_ of some text\n" } 1 .. 20000);
my $tree = add("$T/tree");

spew("$T/other.bin", noise('other', 300 * 1024));
my $other = add("$T/other.bin");


# Usage ---------------------------------------------------------------------

($rc, $out, $err) = nixcache('verify', '--help');
is($rc, 0, 'verify --help exits 0');
like($out, qr/usage: nixcache verify .*--quick/s, 'verify --help');

($rc, $out, $err) = nixcache('--help');
like($out, qr/^  verify /m, 'nixcache --help lists verify');

($rc, $out, $err) = nixcache('verify', '--redis', $sock);
is($rc, 2, 'verify without --chunks exits 2');
like($err, qr/no chunk directory/, 'verify without --chunks: message');

($rc, $out, $err) = verify('--bogus');
is($rc, 2, 'unknown option exits 2');
like($err, qr/unknown option.*--bogus.*usage: nixcache verify/s,
     'unknown option: message and usage');

($rc, $out, $err) = verify('extra');
is($rc, 2, 'an argument exits 2');

($rc, $out, $err) = nixcache('verify', '--redis', $sock, '--chunks',
                             "$T/nonexistent");
is($rc, 0, 'no narinfo and no chunk directory yet (a push killed before '
   . 'its first chunk) is consistent: exits 0');
like($err, qr/chunk directory \Q$T\E\/nonexistent does not exist/,
     'missing chunk dir: said on stderr');
is($out, '', 'missing chunk dir, empty cache: no problem reported');

my $down = '127.0.0.1:' . free_port();
($rc, $out, $err) = nixcache('verify', '--redis', $down, '--chunks', $T);
is($rc, 2, 'Redis down exits 2');
like($err, qr/cannot connect to Redis at \Q$down\E/, 'Redis down: message');


# A clean cache -------------------------------------------------------------

mkdir $chunks;
$err = clean('empty cache');
like($err, qr/verify done: 0 narinfos, 0 chunk references/,
     'empty cache: summary');

($rc, $out, $err) = nixcache('push', '--redis', $sock, '--chunks', $chunks,
                             '--store', $S, $small, $tree, $other);
is($rc, 0, 'push three paths') or diag($err);

my @tree = entries_of($tree);
ok(@tree > 10, 'the tree has ' . scalar(@tree) . ' chunks');

$err = clean('pushed cache');
like($err, qr/verify done: 3 narinfos, (\d+) chunk references \((\d+) bytes\), 0 problems/,
     'pushed cache: summary');

($rc, $out, $err) = verify('--quick');
is($rc, 0, 'pushed cache: --quick exits 0');
like($err, qr/quick/, '--quick: summary says so');

{
    local $ENV{NIXCACHE_REDIS} = $sock;
    local $ENV{NIXCACHE_CHUNKS} = $chunks;
    ($rc, $out, $err) = nixcache('verify');
    is($rc, 0, 'NIXCACHE_REDIS and NIXCACHE_CHUNKS');
    like($err, qr/3 narinfos/, 'environment reaches the same cache');
}

# SCAN walks past its first batch: 2500 narinfos more (other store paths,
# all pointing at the small file's NAR)
my $ni_small = redis_get('nixcache:narinfo:' . hash_of($small));
my @mset;
for my $i (1 .. 2500) {
    my $h = substr(nix32(sha256("fake $i")), 0, 32);
    push @mset, "nixcache:narinfo:$h",
        $ni_small =~ s{^StorePath: /nix/store/\w{32}}{StorePath: /nix/store/$h}mr;
}
redis_cmd('MSET', @mset);
$err = clean('2503 narinfos');
like($err, qr/2503 narinfos/, 'SCAN saw every narinfo');

# one of them broken: found among the others
my $victim = $mset[2 * 1234];
my ($victim_hash) = $victim =~ /(\w{32})$/;
redis_cmd('SET', $victim, "StorePath: nonsense\n");
broken(name => 'one bad narinfo among 2503',
       want => [qr/^narinfo \Q$victim_hash\E: unparsable/m]);
redis_cmd('DEL', @mset[grep { $_ % 2 == 0 } 0 .. $#mset]);
clean('fakes removed');

# another prefix, glob characters in it escaped: "x*:" must not match "xy:"
($rc, $out, $err) = nixcache('push', '--redis', $sock, '--chunks', $chunks,
                             '--prefix', 'x*:', '--store', $S, $small);
is($rc, 0, 'push under prefix "x*:"');
redis_cmd('SET', 'xy:narinfo:' . hash_of($small), "junk\n");
($rc, $out, $err) = verify('--prefix', 'x*:');
is($rc, 0, 'prefix "x*:" verifies clean') or diag($out);
like($err, qr/ 1 narinfos/, 'prefix "x*:": one narinfo');
($rc, $out, $err) = verify('--prefix', 'xy:');
is($rc, 1, 'prefix "xy:" has the junk');
redis_cmd('DEL', 'xy:narinfo:' . hash_of($small));


# Redis failing after the connection: exit 2 ------------------------------

# A fake Redis that answers PING, then does $after to the next command.
# Its process leaves by _exit: END blocks would stop the real Redis.
sub fake_redis {
    my ($after) = @_;
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                    Listen => 1, ReuseAddr => 1)
        or die "listen: $!";
    my $port = $srv->sockport;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        alarm 10;
        my $c = $srv->accept or POSIX::_exit(0);
        my $buf = '';
        sysread($c, $buf, 65536) or POSIX::_exit(0);
        syswrite($c, "+PONG\r\n");
        sysread($c, $buf, 65536) or POSIX::_exit(0);
        syswrite($c, $after) if $after ne '';
        close $c;
        POSIX::_exit(0);
    }
    close $srv;
    return ("127.0.0.1:$port", $pid);
}

for my $case ([ 'an error reply to SCAN', "-ERR boom\r\n",
                qr/SCAN: unexpected reply/ ],
              [ 'the connection closed', '',
                qr/Redis at 127\.0\.0\.1:\d+: / ])
{
    my ($what, $reply, $msg) = @$case;
    my ($addr, $pid) = fake_redis($reply);
    ($rc, $out, $err) = nixcache('verify', '--redis', $addr, '--chunks',
                                 $chunks);
    waitpid($pid, 0);
    is($rc, 2, "Redis failing ($what): exit 2");
    like($err, $msg, "Redis failing ($what): message");
    like($err, qr/verify stopped: /, "Redis failing ($what): summary says so");
}


# Chunks --------------------------------------------------------------------

my $tree32 = nar32_of($tree);
my ($d, $u, $c, $cid, $file) = @{ $tree[5] };
my $keep = slurp($file);

unlink $file;
broken(name => 'chunk deleted',
       want => [qr/^chunk \Q$cid\E: missing \(manifest \Q$tree32\E\)$/m],
       quick => 1);
spew($file, $keep);
clean('chunk restored');

# a byte flipped in the middle: same size, so --quick cannot see it
my $bad = $keep;
substr($bad, int($c / 2), 1) ^= "\x01";
spew($file, $bad);
broken(name => 'byte flipped in a chunk',
       want => [qr/^chunk \Q$cid\E: (?:corrupt: .*|hash mismatch) \(manifest \Q$tree32\E\)$/m],
       quick => 0);

# a valid frame of other content, same sizes: only the hash tells
my $plain = '';
IPC::Run::run(['zstd', '-d', '-q', '-c'], '<', \$keep, '>', \$plain)
    or die 'zstd -d';
is(length $plain, $u, 'chunk decompresses to usize');
substr($plain, 100, 1) ^= "\x01";
my $frame = raw_frame($plain, $c);
ok(defined $frame, 'a raw frame of the same size') or diag("usize $u csize $c");
spew($file, $frame);
($rc, $out, $err) = nix('zstd', '-d', '-q', '-c', $file);
is($rc, 0, 'the substitute frame is valid zstd');
broken(name => 'chunk of other content',
       want => [qr/^chunk \Q$cid\E: hash mismatch \(manifest \Q$tree32\E\)$/m],
       quick => 0);

spew($file, substr($keep, 0, $c - 7));
broken(name => 'chunk truncated',
       want => [qr/^chunk \Q$cid\E: @{[ $c - 7 ]} bytes, the manifest says $c \(manifest \Q$tree32\E\)$/m],
       quick => 1);

spew($file, $keep . 'x');
broken(name => 'chunk too long',
       want => [qr/^chunk \Q$cid\E: @{[ $c + 1 ]} bytes/m], quick => 1);

spew($file, $keep);
clean('chunk restored again');


# Manifests -----------------------------------------------------------------

my $mkey = "nixcache:manifest:$tree32";
my $m = manifest_of($tree);

redis_cmd('DEL', $mkey);
broken(name => 'manifest deleted',
       want => [qr/^narinfo \Q@{[ hash_of($tree) ]}\E: missing manifest \Q$tree32\E$/m],
       quick => 1);

redis_cmd('DEL', $mkey);
redis_cmd('HSET', $mkey, 'a', 'b');
broken(name => 'manifest of the wrong type',
       want => [qr/^manifest \Q$tree32\E: unreadable: WRONGTYPE/m],
       quick => 1);
redis_cmd('DEL', $mkey);

redis_cmd('SET', $mkey, 'NXCM junk');
broken(name => 'manifest junk',
       want => [qr/^manifest \Q$tree32\E: invalid header$/m], quick => 1);

redis_cmd('SET', $mkey, substr($m, 0, length($m) - 40));
broken(name => 'manifest short by one entry',
       want => [qr/^manifest \Q$tree32\E: \d+ bytes, \d+ entries need \d+$/m],
       quick => 1);

# two entries swapped: every chunk is sound, only the NAR's hashes tell
my $swapped = $m;
substr($swapped, 96 + 40 * 3, 40) = substr($m, 96 + 40 * 4, 40);
substr($swapped, 96 + 40 * 4, 40) = substr($m, 96 + 40 * 3, 40);
redis_cmd('SET', $mkey, $swapped);
broken(name => 'manifest entries swapped',
       want => [qr/^manifest \Q$tree32\E: the chunk frames hash to FileHash sha256:\w{52}, not the manifest's$/m,
                qr/^manifest \Q$tree32\E: the chunks hash to NarHash sha256:\w{52}, not the manifest's$/m],
       quick => 0);

# an entry's size changed, header left alone
my $sized = $m;
substr($sized, 96 + 40 * 2 + 32, 4) = pack('V', $tree[2][1] + 1);
redis_cmd('SET', $mkey, $sized);
broken(name => 'manifest sizes do not add up',
       want => [qr/^manifest \Q$tree32\E: entries sum to \d+ bytes/m]);

redis_cmd('SET', $mkey, $m);
clean('manifest restored');


# narinfos ------------------------------------------------------------------

my $nkey = 'nixcache:narinfo:' . hash_of($tree);
my $ni = redis_get($nkey);
my $other32 = nar32_of($other);

# NarHash (and URL) of a NAR the cache does not have
my $nowhere = nix32(sha256('nowhere'));
redis_cmd('SET', $nkey, $ni =~ s/$tree32/$nowhere/gr);
broken(name => 'narinfo NarHash of an absent NAR',
       want => [qr/^narinfo \Q@{[ hash_of($tree) ]}\E: missing manifest \Q$nowhere\E$/m],
       quick => 1);

# NarHash (and URL) of another NAR of the cache: sizes and FileHash differ
redis_cmd('SET', $nkey, $ni =~ s/$tree32/$other32/gr);
broken(name => 'narinfo NarHash of another NAR',
       want => [qr/^narinfo \Q@{[ hash_of($tree) ]}\E: FileHash sha256:\w{52}, manifest \Q$other32\E says sha256:\w{52}$/m,
                qr/^narinfo \Q@{[ hash_of($tree) ]}\E: NarSize \d+, manifest \Q$other32\E says \d+$/m],
       quick => 1);

# NarHash changed, URL left: the URL does not name it
redis_cmd('SET', $nkey, $ni =~ s/^NarHash: sha256:$tree32/NarHash: sha256:$other32/mr);
broken(name => 'narinfo URL and NarHash disagree',
       want => [qr/^narinfo \Q@{[ hash_of($tree) ]}\E: URL nar\/$tree32\.nar\.zst, expected nar\/$other32\.nar\.zst$/m],
       quick => 1);

redis_cmd('SET', $nkey, $ni =~ s/^FileSize: \d+/FileSize: 1/mr);
broken(name => 'narinfo FileSize',
       want => [qr/^narinfo \Q@{[ hash_of($tree) ]}\E: FileSize 1, manifest \Q$tree32\E says \d+$/m],
       quick => 1);

redis_cmd('SET', $nkey, $ni =~ s/^Compression: zstd/Compression: xz/mr);
broken(name => 'narinfo Compression',
       want => [qr/^narinfo \Q@{[ hash_of($tree) ]}\E: Compression "xz", not zstd$/m]);

redis_cmd('SET', $nkey, $ni =~ s/^FileHash: .*\n//mr);
broken(name => 'narinfo without FileHash',
       want => [qr/^narinfo \Q@{[ hash_of($tree) ]}\E: no FileHash$/m]);

redis_cmd('SET', $nkey, "garbage\n");
broken(name => 'narinfo garbage',
       want => [qr/^narinfo \Q@{[ hash_of($tree) ]}\E: unparsable: /m],
       quick => 1);

redis_cmd('SET', $nkey, '');
broken(name => 'narinfo empty',
       want => [qr/^narinfo \Q@{[ hash_of($tree) ]}\E: empty$/m]);

redis_cmd('DEL', $nkey);
redis_cmd('HSET', $nkey, 'a', 'b');
broken(name => 'narinfo of the wrong type',
       want => [qr/^narinfo \Q@{[ hash_of($tree) ]}\E: unreadable: WRONGTYPE/m]);
redis_cmd('DEL', $nkey);

# the tree's narinfo filed under the small file's key
my $skey = 'nixcache:narinfo:' . hash_of($small);
my $ni_s = redis_get($skey);
redis_cmd('SET', $skey, $ni);
broken(name => 'narinfo under another key',
       want => [qr/^narinfo \Q@{[ hash_of($small) ]}\E: StorePath \Q$tree\E does not match its key$/m]);
redis_cmd('SET', $skey, $ni_s);

redis_cmd('SET', 'nixcache:narinfo:short', $ni);
broken(name => 'narinfo key not a store hash',
       want => [qr/^narinfo key nixcache:narinfo:short: not a store hash$/m]);
redis_cmd('DEL', 'nixcache:narinfo:short');

redis_cmd('SET', $nkey, $ni);
$err = clean('narinfo restored');
like($err, qr/ 3 narinfos/, 'three narinfos again');

# a manifest of several windows (1024 entries each): tiny chunks
{
    my $wchunks = "$T/chunks-w";
    my @w = ('--redis', $sock, '--chunks', $wchunks, '--prefix', 'w:');
    ($rc, $out, $err) = nixcache('push', @w, '--chunk-min', 64,
                                 '--chunk-avg', 128, '--chunk-max', 512,
                                 '--store', $S, $other);
    is($rc, 0, 'push a NAR in tiny chunks') or diag($err);
    my $wm = redis_get('w:manifest:' . nar32_of($other, 'w:'));
    my $count = unpack('V', substr($wm, 8, 4));
    ok($count > 1500, "$count entries");
    ($rc, $out, $err) = nixcache('verify', @w);
    is($rc, 0, "$count entries: clean") or diag($out);
    like($err, qr/$count chunk references/, "$count entries: all checked");

    my $cid = cid_of(substr($wm, 96 + 40 * 1400, 32));
    my $f = "$wchunks/" . substr($cid, -2) . "/$cid";
    my $k = slurp($f);
    unlink $f;
    ($rc, $out, $err) = nixcache('verify', @w, '--quick');
    is($rc, 1, 'entry 1400 of the manifest: chunk deleted');
    like($out, qr/^chunk \Q$cid\E: missing/m, 'entry 1400: reported');
    spew($f, $k);
}

# the file deleted, the tree's narinfo removed: reporting never fixes
unlink $file;
($rc, $out, $err) = verify();
is($rc, 1, 'chunk deleted again');
ok(!-e $file && defined redis_get($nkey), 'verify changed nothing');
spew($file, $keep);

stop_redis();

done_testing();
