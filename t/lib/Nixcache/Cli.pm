package Nixcache::Cli;

# Helpers for the nixcache CLI suites (t/030-cli.t, t/031-import.t):
# a private Nix store, a private redis-server, a tiny RESP client, and an
# independent check of what the CLI stored (nix32, base32 and CIDs are
# computed here, not by the code under test).

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA qw(sha256);
use File::Basename qw(dirname);
use File::Path qw(remove_tree);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Socket::UNIX;
use IPC::Run qw(run);
use Test::More;

use Nixcache::Skip;

use Exporter qw(import);

our @EXPORT = qw(
    cli_setup nixcache nixcache_rss nix redis_cmd redis_get redis_keys
    start_redis stop_redis free_port nix32 base32 cid_of parse_narinfo
    check_nar dump_path slurp spew summary_field
);
our @EXPORT_OK = qw(noise store_add);

my $root = abs_path(dirname(__FILE__) . '/../../..');

# The repository's top directory.
sub root_dir { return $root }

our $CLI = $ENV{NIXCACHE_CLI} // "$root/build/nixcache";
our $T;
our $STORE;

my @redis;


# A temporary directory, a private chroot store and Nix settings for it.

sub cli_setup {
    skip_all_missing("$CLI not built (make cli)") unless -x $CLI;

    $T = tempdir('nixcache-cli-XXXXXX', TMPDIR => 1,
                 CLEANUP => !$ENV{KEEP});
    diag("temp dir $T") if $ENV{KEEP};

    mkdir "$T/etc";
    mkdir "$T/cache";
    spew("$T/etc/nix.conf",
         "build-users-group =\nexperimental-features = nix-command\n"
         . "sandbox = false\nsubstituters =\n");

    $ENV{NIX_CONF_DIR} = "$T/etc";
    $ENV{XDG_CACHE_HOME} = "$T/cache";
    delete $ENV{NIXCACHE_REDIS};
    delete $ENV{NIXCACHE_CHUNKS};
    delete $ENV{NIXCACHE_REDIS_AUTH};

    $STORE = "$T/store";

    return $T;
}


# Runs the CLI: returns (exit code, stdout, stderr).

sub nixcache {
    my @args = @_;
    my ($out, $err) = ('', '');

    run([$CLI, @args], '<', \undef, '>', \$out, '2>', \$err);

    return ($? >> 8, $out, $err);
}


# Runs the CLI with -v from a small shell: returns (exit code, stdout,
# stderr, the CLI's own max RSS in KiB from its summary line).  A process
# keeps its parent's RSS high-water mark across fork and exec, so the CLI
# must not be forked from Perl directly for this; and the wait4() figure of
# /usr/bin/time would include the nix child processes.

sub nixcache_rss {
    my @args = @_;
    my ($out, $err) = ('', '');

    run(['sh', '-c', '"$@" & wait $!', 'sh', $CLI, @args, '-v'],
        '<', \undef, '>', \$out, '2>', \$err);
    my $rc = $? >> 8;

    return ($rc, $out, $err, summary_field($err, qr/max RSS (\d+) KiB/));
}


# Runs nix, nix-store, nix-build...: returns (exit code, stdout, stderr).

sub nix {
    my @args = @_;
    my ($out, $err) = ('', '');

    run([@args], '<', \undef, '>', \$out, '2>', \$err);

    return ($? >> 8, $out, $err);
}


# $len bytes that do not compress, the same for the same $seed.

sub noise {
    my ($seed, $len) = @_;
    my $data = '';
    my $i = 0;

    $data .= Digest::SHA::sha256("$seed:" . $i++) while length($data) < $len;

    return substr($data, 0, $len);
}


# A file $name holding $data added to the test's store: its store path.

sub store_add {
    my ($name, $data) = @_;

    mkdir "$T/src";
    spew("$T/src/$name", $data);

    my ($rc, $out, $err) = nix('nix-store', '--store', $STORE, '--add',
                               "$T/src/$name");
    die "nix-store --add $name: $err" if $rc != 0;
    chomp $out;

    return $out;
}


sub dump_path {
    my ($path, $file) = @_;

    my $err = '';

    run(['nix', 'store', 'dump-path', '--store', $STORE, $path],
        '<', \undef, '>', $file, '2>', \$err)
        or die "dump-path $path: $err";
}


sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1)
        or die "bind: $!";
    my $port = $s->sockport;
    close $s;

    return $port;
}


# A private redis-server on a free port (and a unix socket).  Returns its
# TCP address "127.0.0.1:PORT".

sub start_redis {
    my $dir = "$T/redis";
    mkdir $dir;

    for my $try (1 .. 5) {
        my $port = free_port();

        system('redis-server', '--bind', '127.0.0.1', '--port', $port,
               '--unixsocket', "$dir/sock", '--save', '', '--appendonly',
               'no', '--dir', $dir, '--daemonize', 'yes', '--pidfile',
               "$dir/pid", '--logfile', "$dir/log") == 0
            or die "redis-server failed";

        for (1 .. 50) {
            if (IO::Socket::UNIX->new(Peer => "$dir/sock")
                && -s "$dir/pid")
            {
                push @redis, "$dir/pid";
                return "127.0.0.1:$port";
            }

            select(undef, undef, undef, 0.1);
        }
    }

    die "redis-server did not start";
}


# Stops our redis-servers and waits for them to exit (one still writing
# its log would keep the temporary directory from being removed).

sub stop_redis {
    for my $pidfile (@redis) {
        my $pid = slurp($pidfile) // '';
        chomp $pid;
        next unless $pid =~ /^\d+$/;

        kill 'TERM', $pid;

        for (1 .. 100) {
            last unless kill 0, $pid;
            select(undef, undef, undef, 0.05);
        }
    }

    @redis = ();
}


END {
    stop_redis();
}


# A minimal RESP client over the unix socket.

sub redis_cmd {
    my @args = @_;

    my $s = IO::Socket::UNIX->new(Peer => "$T/redis/sock")
        or die "redis: $!";

    my $req = '*' . @args . "\r\n";
    $req .= '$' . length($_) . "\r\n$_\r\n" for @args;
    print $s $req;

    my $reply = _resp_read($s);
    close $s;

    return $reply;
}


sub _resp_read {
    my ($s) = @_;

    my $line = <$s>;
    die "redis: connection closed" unless defined $line;
    $line =~ s/\r\n$//;

    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));

    return $rest if $type eq '+' || $type eq ':';
    die "redis error: $rest" if $type eq '-';

    if ($type eq '$') {
        return undef if $rest < 0;
        my $data = '';
        while (length($data) < $rest + 2) {
            read($s, $data, $rest + 2 - length($data), length($data))
                or die "redis: short read";
        }
        return substr($data, 0, $rest);
    }

    if ($type eq '*') {
        return [ map { _resp_read($s) } 1 .. $rest ];
    }

    die "redis: unexpected reply $line";
}


sub redis_get {
    return redis_cmd('GET', $_[0]);
}


sub redis_keys {
    return sort @{ redis_cmd('KEYS', $_[0]) };
}


# Nix's base-32: least significant 5 bits of the number last.

sub nix32 {
    my ($bytes) = @_;
    my @b = unpack('C*', $bytes);
    my $alpha = '0123456789abcdfghijklmnpqrsvwxyz';
    my $len = int((@b * 8 - 1) / 5) + 1;
    my $s = '';

    for (my $n = $len - 1; $n >= 0; $n--) {
        my $bit = $n * 5;
        my $i = int($bit / 8);
        my $j = $bit % 8;
        my $c = ($b[$i] >> $j) | ($i + 1 < @b ? $b[$i + 1] << (8 - $j) : 0);
        $s .= substr($alpha, $c & 0x1f, 1);
    }

    return $s;
}


# RFC 4648 base32, lower case, no padding (multibase 'b').

sub base32 {
    my ($bytes) = @_;
    my $bits = unpack('B*', $bytes);
    $bits .= '0' x ((5 - length($bits) % 5) % 5);

    return join '', map { ('a' .. 'z', '2' .. '7')[oct("0b$_")] }
                    $bits =~ /(.{5})/g;
}


# CIDv1, raw codec, sha2-256 multihash.

sub cid_of {
    my ($digest) = @_;

    return 'b' . base32("\x01\x55\x12\x20" . $digest);
}


sub parse_narinfo {
    my ($text) = @_;
    my %ni;

    for my $line (split /\n/, $text) {
        my ($k, $v) = $line =~ /^([A-Za-z]+): ?(.*)$/ or next;
        if ($k eq 'Sig') {
            push @{ $ni{Sig} }, $v;
        } else {
            $ni{$k} = $v;
        }
    }

    return \%ni;
}


# Checks a stored NAR against the store: the narinfo in Redis, the
# manifest, every chunk file, the concatenated frames.  Returns the
# narinfo hash.  chunk_file => sub { CID -> file } overrides where chunk
# files are looked for (e.g. objects of the S3 test server).

sub check_nar {
    my (%a) = @_;
    my $path = $a{path};
    my $prefix = $a{prefix} // 'nixcache:';
    my $chunks = $a{chunks};
    my $name = $a{name} // $path;
    my ($hash) = $path =~ m{^/nix/store/([0-9a-z]{32})-};

    my $text = redis_get("${prefix}narinfo:$hash");
    ok(defined $text, "$name: narinfo present") or return;

    my $ni = parse_narinfo($text);

    # what Nix says about the path, independently of the CLI
    my $nar = "$T/check.nar";
    dump_path($path, $nar);
    my $nar_sha = Digest::SHA->new(256)->addfile($nar, 'b')->digest;
    my $nar_hash = 'sha256:' . nix32($nar_sha);
    my $nar_size = -s $nar;

    is($ni->{StorePath}, $path, "$name: StorePath");
    is($ni->{NarHash}, $nar_hash, "$name: NarHash");
    is($ni->{NarSize}, $nar_size, "$name: NarSize");
    is($ni->{Compression}, 'zstd', "$name: Compression");
    is($ni->{URL}, 'nar/' . nix32($nar_sha) . '.nar.zst', "$name: URL");

    my $m = redis_get("${prefix}manifest:" . nix32($nar_sha));
    ok(defined $m, "$name: manifest present") or return $ni;

    my ($magic, $version, $flags, $count, $reserved, $msize, $fsize,
        $mnar, $mfile) = unpack('a4 v v V V Q< Q< a32 a32', $m);

    is($magic, 'NXCM', "$name: manifest magic");
    is($version, 1, "$name: manifest version");
    is(length($m), 96 + 40 * $count, "$name: manifest length");
    is($msize, $nar_size, "$name: manifest nar_size");
    is($mnar, $nar_sha, "$name: manifest nar_hash");

    # every chunk: file named by the CID of its decompressed content,
    # one zstd frame of usize bytes; the frames concatenated are the NAR
    my $cat = "$T/check.nar.zst";
    open(my $fh, '>:raw', $cat) or die "$cat: $!";
    my ($bad_cid, $bad_size, $bad_fcs, $sum_u, $sum_c) = (0, 0, 0, 0, 0);

    # each frame is decompressed on its own (a frame that only decodes
    # together with its neighbours is caught), by one zstd process per
    # batch of files rather than one per chunk: a 110 MiB NAR has ~1,500
    my $dir = "$T/check.frames";
    remove_tree($dir);
    mkdir $dir or die "$dir: $!";
    my @want;

    for my $i (0 .. $count - 1) {
        my ($digest, $usize, $csize) =
            unpack('a32 V V', substr($m, 96 + 40 * $i, 40));
        my $cid = cid_of($digest);
        my $file = $a{chunk_file} ? $a{chunk_file}->($cid)
                                  : "$chunks/" . substr($cid, -2) . "/$cid";
        my $frame = slurp($file);

        if (!defined $frame) {
            $bad_cid++;
            diag("$name: chunk $i missing: $file");
            next;
        }

        print $fh $frame;
        $bad_fcs++ if (frame_content_size($frame) // -1) != $usize;
        $sum_u += $usize;
        $sum_c += $csize;
        $bad_size++ if length($frame) != $csize;

        spew("$dir/$i.zst", $frame);
        push @want, [$i, $usize, $digest];
        $bad_cid++ if length($cid) != 59;
    }

    close $fh;

    my @zst = map { "$dir/$_->[0].zst" } @want;
    while (my @batch = splice @zst, 0, 256) {
        my $e = '';
        run(['zstd', '-d', '-q', '-f', '--', @batch], '2>', \$e)
            or diag("$name: zstd -d: $e");
    }
    for my $w (@want) {
        my ($i, $usize, $digest) = @$w;
        my $plain = slurp("$dir/$i");
        $bad_cid++ if !defined $plain || length($plain) != $usize
                      || sha256($plain) ne $digest;
    }
    remove_tree($dir);

    is($bad_cid, 0, "$name: $count chunk files named by the CID of "
                    . "their content");
    is($bad_size, 0, "$name: chunk file sizes match csize");
    is($bad_fcs, 0, "$name: every frame header carries its content size");
    is($sum_u, $nar_size, "$name: usize sum");
    is($sum_c, $fsize, "$name: csize sum");
    is($ni->{FileSize}, -s $cat, "$name: FileSize");

    my $file_sha = Digest::SHA->new(256)->addfile($cat, 'b')->digest;
    is($ni->{FileHash}, 'sha256:' . nix32($file_sha), "$name: FileHash");
    is($mfile, $file_sha, "$name: manifest file_hash");

    my $plain = "$T/check.plain";
    my $e = '';
    ok(run(['zstd', '-d', '-q', '-c', $cat], '>', $plain, '2>', \$e),
       "$name: zstd -d of the concatenated frames") or diag($e);
    my $plain_sha = Digest::SHA->new(256)->addfile($plain, 'b')->digest;
    ok($plain_sha eq $nar_sha && -s $plain == $nar_size,
       "$name: decompressed frames = nix store dump-path, byte for byte");

    unlink $nar, $cat, $plain;

    return $ni;
}


# The Frame_Content_Size of a zstd frame header (RFC 8878 3.1.1.1), or
# undef when the header has none.

sub frame_content_size {
    my ($frame) = @_;

    return undef if length($frame) < 6
                    || unpack('V', $frame) != 0xFD2FB528;

    my $fhd = ord(substr($frame, 4, 1));
    my $fcs_flag = $fhd >> 6;
    my $single = ($fhd >> 5) & 1;
    my $off = 5 + ($single ? 0 : 1) + (0, 1, 2, 4)[$fhd & 3];
    my $len = (($single ? 1 : 0), 2, 4, 8)[$fcs_flag];

    return undef if $len == 0 || length($frame) < $off + $len;

    my $v = substr($frame, $off, $len);

    return ord($v) if $len == 1;
    return unpack('v', $v) + 256 if $len == 2;
    return unpack('V', $v) if $len == 4;
    return unpack('Q<', $v);
}


# A field of the CLI's final summary line.

sub summary_field {
    my ($err, $re) = @_;
    my ($line) = grep { / done: / } split /\n/, $err;

    return undef unless defined $line;
    return $line =~ $re ? $1 : undef;
}


sub slurp {
    my ($file) = @_;

    open(my $fh, '<:raw', $file) or return undef;
    local $/;
    my $data = <$fh>;
    close $fh;

    return $data // '';
}


sub spew {
    my ($file, $data) = @_;

    open(my $fh, '>:raw', $file) or die "$file: $!";
    print $fh $data;
    close $fh or die "$file: $!";
}


1;
