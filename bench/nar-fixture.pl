#!/usr/bin/perl
# Stores a NAR in our format (docs/FORMAT.md, src/nixcache_format.h) for
# hand tests and benchmarks: each piece of the content becomes one zstd
# frame (zstd CLI) under <chunks>/<xx>/<CID>, the manifest goes to Redis
# (redis-cli).  The content does not have to be a real NAR.
#
#   nar-fixture.pl --redis-port P --chunks DIR [--prefix nixcache:]
#                  --content FILE (--chunk-size N | --chunk-sizes a,b,...)
#                  [--cycle K --size N] [--nar-out F] [--zst-out F]
#
# --cycle K: the content is FILE's first K chunks repeated up to --size
# bytes (so a 1 GiB NAR needs only K chunk files).
# Prints "narhash=<nix32> narsize=N filesize=N chunks=N filehash=<nix32>".

use strict;
use warnings;

use Digest::SHA qw(sha256);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use Getopt::Long;

my %o = (prefix => 'nixcache:');
GetOptions(\%o, 'redis-port=i', 'chunks=s', 'prefix=s', 'content=s',
           'chunk-size=i', 'chunk-sizes=s', 'cycle=i', 'size=i', 'level=i',
           'nar-out=s', 'zst-out=s')
    or die "usage\n";
$o{level} //= 3;

my $NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

sub nix32 {
    my @b = unpack 'C*', shift;
    my $len = int((@b * 8 - 1) / 5) + 1;
    my $s = '';
    for (my $n = $len - 1; $n >= 0; $n--) {
        my $bit = $n * 5;
        my ($i, $j) = (int($bit / 8), $bit % 8);
        my $c = $b[$i] >> $j;
        $c |= $b[$i + 1] << (8 - $j) if $i + 1 < @b;
        $s .= substr $NIX32, $c & 0x1f, 1;
    }
    return $s;
}

sub cid {
    my $bin = "\x01\x55\x12\x20" . shift;
    my $bits = unpack 'B*', $bin;
    $bits .= '0' x ((5 - length($bits) % 5) % 5);
    my $s = 'b';
    $s .= ('a' .. 'z', 2 .. 7)[oct "0b$_"] for $bits =~ /(.{5})/g;
    return $s;
}

sub frame {
    my ($data, $tmp) = @_;
    open my $fh, '>', "$tmp/in" or die $!;
    print $fh $data;
    close $fh;
    system('zstd', '-q', '-f', "-$o{level}", "$tmp/in", '-o', "$tmp/out") == 0
        or die "zstd failed\n";
    open $fh, '<', "$tmp/out" or die $!;
    local $/;
    my $f = <$fh>;
    close $fh;
    return $f;
}

open my $in, '<', $o{content} or die "$o{content}: $!\n";
my $content = do { local $/; <$in> };
close $in;

my @sizes;
if ($o{'chunk-sizes'}) {
    @sizes = split /,/, $o{'chunk-sizes'};
} else {
    my $n = $o{'chunk-size'} or die "--chunk-size or --chunk-sizes\n";
    my $len = $o{cycle} ? $n * $o{cycle} : length $content;
    for (my $off = 0; $off < $len; $off += $n) {
        push @sizes, $len - $off < $n ? $len - $off : $n;
    }
}

my $tmp = tempdir(CLEANUP => 1);
my (@pieces, $off);
$off = 0;
for my $s (@sizes) {
    my $piece = substr $content, $off, $s;
    die "content shorter than the chunk sizes\n" if length $piece != $s;
    my $digest = sha256($piece);
    my $frame = frame($piece, $tmp);
    my $c = cid($digest);
    my $dir = "$o{chunks}/" . substr($c, -2);
    make_path($dir);
    chmod 0755, $o{chunks}, $dir;
    open my $fh, '>', "$dir/$c" or die "$dir/$c: $!\n";
    print $fh $frame;
    close $fh;
    chmod 0644, "$dir/$c";
    push @pieces, [$digest, $s, length $frame, $frame, $off];
    $off += $s;
}

my @entries = @pieces;
if ($o{cycle}) {
    my $total = $o{size} or die "--cycle needs --size\n";
    @entries = ();
    my $sum = 0;
    while ($sum < $total) {
        for my $p (@pieces) {
            last if $sum >= $total;
            push @entries, $p;
            $sum += $p->[1];
        }
    }
}

my $nar = Digest::SHA->new(256);
my $file = Digest::SHA->new(256);
my ($narsize, $filesize, $body) = (0, 0, '');
for my $e (@entries) {
    $narsize += $e->[1];
    $filesize += $e->[2];
    $nar->add(substr $content, $e->[4], $e->[1]);
    $file->add($e->[3]);
    $body .= pack 'a32 V V', $e->[0], $e->[1], $e->[2];
}
my $narhash = $nar->digest;
my $filehash = $file->digest;
my $header = pack 'a4 v v V V Q< Q< a32 a32', 'NXCM', 1, 0, scalar @entries,
                  0, $narsize, $filesize, $narhash, $filehash;

if ($o{'nar-out'} || $o{'zst-out'}) {
    my ($n, $z);
    open $n, '>', $o{'nar-out'} or die $! if $o{'nar-out'};
    open $z, '>', $o{'zst-out'} or die $! if $o{'zst-out'};
    for my $e (@entries) {
        print $n substr $content, $e->[4], $e->[1] if $n;
        print $z $e->[3] if $z;
    }
    close $n if $n;
    close $z if $z;
}

my $h = nix32($narhash);
open my $fh, '>', "$tmp/manifest" or die $!;
print $fh $header, $body;
close $fh;
system("redis-cli -p $o{'redis-port'} -x SET '$o{prefix}manifest:$h' "
       . "< $tmp/manifest > /dev/null") == 0 or die "redis-cli failed\n";

printf "narhash=%s narsize=%d filesize=%d chunks=%d filehash=%s\n", $h,
       $narsize, $filesize, scalar @entries, nix32($filehash);
