package Nixcache::Fixture;

# An independent writer of ngx_nixcache's storage format (docs/FORMAT.md,
# src/nixcache_format.h), in Perl, for tests: it shares no code with the C
# core, so a test that serves what this wrote checks both sides against the
# format document rather than against each other.
#
# Test.pm sets $REDIS_PORT, $CHUNKS and $DIR before each block's fixture
# section; add_nar() records what it wrote in %VARS, which the harness
# turns into $TEST_NIXCACHE_FIX_<name>_* variables.

use strict;
use warnings;

use Digest::SHA qw(sha256);
use File::Path qw(make_path);
use IO::Socket::INET;
use Carp qw(croak);

use parent 'Exporter';

our @EXPORT = qw(add_nar add_narinfo_raw add_manifest_raw redis_cmd
                 nar_regular nix32 base32_lower cid_of chunk_path
                 fake_store_hash manifest_encode manifest_decode
                 fixture_var upstream_files upstream_broken);

our $REDIS_PORT = $ENV{TEST_NIXCACHE_REDIS_PORT};
our $CHUNKS     = $ENV{TEST_NIXCACHE_CHUNKS};
our $DIR        = $ENV{TEST_NIXCACHE_DIR};
our %VARS;
our %FIXTURES;

my $NIX32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';
my $B32_ALPHABET   = 'abcdefghijklmnopqrstuvwxyz234567';


# Nix's base-32: the digest read as a little-endian bit string; the last
# character holds bits 0..4, the one before it bits 5..9, and so on.
sub nix32 {
    my ($bytes) = @_;
    my @b   = unpack 'C*', $bytes;
    my $len = int((@b * 8 - 1) / 5) + 1;
    my $s   = '';

    for (my $n = $len - 1; $n >= 0; $n--) {
        my $bit = $n * 5;
        my $i   = $bit >> 3;
        my $j   = $bit & 7;
        my $c   = $b[$i] >> $j;
        $c |= $b[$i + 1] << (8 - $j) if $i + 1 < @b;
        $s .= substr $NIX32_ALPHABET, $c & 0x1f, 1;
    }

    return $s;
}


# RFC 4648 base32, lower case, no padding (multibase 'b').
sub base32_lower {
    my ($bytes) = @_;
    my $bits = unpack 'B*', $bytes;
    $bits .= '0' x ((5 - length($bits) % 5) % 5);
    return join '', map { substr $B32_ALPHABET, oct("0b$_"), 1 }
                    $bits =~ /(.{5})/g;
}


sub cid_of {
    my ($digest) = @_;
    return 'b' . base32_lower("\x01\x55\x12\x20" . $digest);
}


sub chunk_path {
    my ($cid, $dir) = @_;
    $dir //= $CHUNKS;
    return "$dir/" . substr($cid, -2) . "/$cid";
}


sub fake_store_hash {
    my ($name) = @_;
    return nix32(substr sha256("nixcache-fixture:$name"), 0, 20);
}


sub _nar_str {
    my ($s) = @_;
    my $pad = (8 - length($s) % 8) % 8;
    return pack('Q<', length $s) . $s . ("\0" x $pad);
}


# The NAR of a single regular file.
sub nar_regular {
    my ($content, $executable) = @_;
    return join '', map { _nar_str($_) }
        'nix-archive-1', '(', 'type', 'regular',
        ($executable ? ('executable', '') : ()),
        'contents', $content, ')';
}


sub manifest_encode {
    my (%m) = @_;
    my $entries = $m{entries};
    my $out = pack 'a4 v v V V Q< Q< a32 a32',
        $m{magic} // 'NXCM', $m{version} // 1, $m{flags} // 0,
        scalar(@$entries), 0, $m{nar_size}, $m{file_size},
        $m{nar_hash}, $m{file_hash};

    for my $e (@$entries) {
        $out .= pack 'a32 V V', $e->{chunk}, $e->{usize}, $e->{csize};
    }

    return $out;
}


sub manifest_decode {
    my ($bytes) = @_;
    croak "manifest: short header" if length $bytes < 96;

    my %m;
    @m{qw(magic version flags chunk_count reserved nar_size file_size
          nar_hash file_hash)} = unpack 'a4 v v V V Q< Q< a32 a32', $bytes;

    croak "manifest: length " . length($bytes) . " does not match "
          . "$m{chunk_count} entries"
        if length $bytes != 96 + 40 * $m{chunk_count};

    $m{entries} = [];
    for my $i (0 .. $m{chunk_count} - 1) {
        my ($chunk, $usize, $csize) =
            unpack 'a32 V V', substr($bytes, 96 + 40 * $i, 40);
        push @{$m{entries}},
             { chunk => $chunk, usize => $usize, csize => $csize };
    }

    return \%m;
}


sub _resp_read_line {
    my ($sock) = @_;
    my $line = <$sock>;
    croak "redis: connection closed" unless defined $line;
    $line =~ s/\r\n\z//;
    return $line;
}


sub _resp_read {
    my ($sock) = @_;
    my $line = _resp_read_line($sock);
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));

    return $rest if $type eq '+' || $type eq ':';
    croak "redis: $rest" if $type eq '-';

    if ($type eq '$') {
        return undef if $rest < 0;
        my $buf = '';
        while (length $buf < $rest + 2) {
            my $n = read $sock, $buf, $rest + 2 - length $buf, length $buf;
            croak "redis: connection closed" unless $n;
        }
        return substr $buf, 0, $rest;
    }

    if ($type eq '*') {
        return undef if $rest < 0;
        return [ map { _resp_read($sock) } 1 .. $rest ];
    }

    croak "redis: bad reply '$line'";
}


# Sends one command to the suite's Redis, returns its reply (dies on a
# Redis error).  Binary safe.
sub redis_cmd {
    my (@args) = @_;
    my $port = $REDIS_PORT // $ENV{TEST_NIXCACHE_REDIS_PORT}
        // croak "redis_cmd: no TEST_NIXCACHE_REDIS_PORT";

    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port,
                                     Proto    => 'tcp',
                                     Timeout  => 5)
        or croak "redis_cmd: connect 127.0.0.1:$port: $!";
    binmode $sock;

    my $req = '*' . scalar(@args) . "\r\n";
    $req .= '$' . length($_) . "\r\n$_\r\n" for @args;
    print {$sock} $req or croak "redis_cmd: write: $!";

    my $reply = _resp_read($sock);
    close $sock;
    return $reply;
}


sub _write_file {
    my ($path, $bytes, $mode) = @_;
    open my $fh, '>:raw', $path or croak "write $path: $!";
    print {$fh} $bytes or croak "write $path: $!";
    close $fh or croak "write $path: $!";
    chmod $mode // 0644, $path;
}


sub _zstd {
    my ($piece, $level) = @_;
    my $tmp = _scratch() . "/.fixture-piece.$$";

    # From a file (not stdin) so the frame header carries the content size.
    _write_file($tmp, $piece);
    open my $fh, '-|', 'zstd', '-q', "-$level", '-c', '--', $tmp
        or croak "zstd: $!";
    binmode $fh;
    local $/;
    my $frame = <$fh>;
    close $fh or croak "zstd failed: $? $!";
    unlink $tmp;
    return $frame // '';
}


sub _scratch {
    my $dir = $DIR // $ENV{TEST_NIXCACHE_DIR} // croak "no scratch dir";
    make_path($dir) unless -d $dir;
    return $dir;
}


sub _export {
    my ($name, %kv) = @_;
    (my $id = $name) =~ s/\W/_/g;
    for my $k (keys %kv) {
        $VARS{"TEST_NIXCACHE_FIX_${id}_$k"} = $kv{$k};
        $VARS{'TEST_NIXCACHE_FIX_' . uc($id) . "_$k"} = $kv{$k};
    }
}


sub fixture_var {
    my ($name, $key) = @_;
    (my $id = $name) =~ s/\W/_/g;
    return $VARS{"TEST_NIXCACHE_FIX_${id}_$key"};
}


sub _pieces {
    my ($nar, %o) = @_;
    my @sizes;

    if ($o{chunk_sizes}) {
        @sizes = @{$o{chunk_sizes}};
    } elsif ($o{chunk_size}) {
        my $n = int((length($nar) + $o{chunk_size} - 1) / $o{chunk_size});
        @sizes = ($o{chunk_size}) x $n;
    } else {
        @sizes = (length $nar);
    }

    my ($off, @pieces) = (0);
    for my $size (@sizes) {
        last if $off >= length $nar;
        push @pieces, substr $nar, $off, $size;
        $off += length $pieces[-1];
    }
    push @pieces, substr $nar, $off if $off < length $nar;
    return grep { length } @pieces;
}


# Writes one NAR the way `nixcache push` would: chunk files, manifest,
# narinfo.  See the POD at the end for the options.
sub add_nar {
    my (%o) = @_;
    my $name   = $o{name} // croak "add_nar: name required";
    my $prefix = $o{prefix} // 'nixcache:';
    my $level  = $o{level} // 3;
    my $chunks = $o{chunks} // $CHUNKS // croak "add_nar: no chunk dir";
    my %corrupt = map { $_ => 1 }
        ref $o{corrupt} ? @{$o{corrupt}} : grep { defined } $o{corrupt};

    my $nar = $o{nar}
        // nar_regular($o{content} // croak("add_nar: content or nar"),
                       $o{executable});

    my $store_name = $o{store_name} // $name;
    my $hash       = $o{hash} // fake_store_hash($name);
    my $store_path = "/nix/store/$hash-$store_name";

    my (@entries, @paths, @cids, $file);
    for my $piece (_pieces($nar, %o)) {
        my $digest = sha256($piece);
        my $frame  = _zstd($piece, $level);
        my $cid    = cid_of($digest);
        my $path   = chunk_path($cid, $chunks);

        make_path(substr($path, 0, rindex $path, '/'), { mode => 0755 });
        _write_file($path, $frame);

        push @entries, { chunk => $digest, usize => length $piece,
                         csize => length $frame };
        push @paths, $path;
        push @cids, $cid;
        $file .= $frame;
    }
    $file //= '';

    my $nar_hash   = sha256($nar);
    my $file_hash  = sha256($file);
    my $nar_nix32  = nix32($nar_hash);
    my $file_nix32 = nix32($file_hash);

    my $manifest = manifest_encode(
        entries => \@entries, nar_size => length $nar,
        file_size => length $file, nar_hash => $nar_hash,
        file_hash => $file_hash,
        ($corrupt{bad_manifest_magic} ? (magic => 'XXXX') : ()),
        ($corrupt{bad_manifest_version} ? (version => 99) : ()));
    $manifest = substr $manifest, 0, length($manifest) - 1
        if $corrupt{short_manifest};

    my @refs = map {
        my $r = $_;
        $r =~ s{^/nix/store/}{};
        $FIXTURES{$r} ? $FIXTURES{$r}{basename} : $r;
    } @{$o{references} // []};
    @refs = (@refs, "$hash-$store_name") if $o{self_reference};

    my $narinfo = "StorePath: $store_path\n"
                . "URL: nar/$nar_nix32.nar.zst\n"
                . "Compression: zstd\n"
                . "FileHash: sha256:$file_nix32\n"
                . 'FileSize: ' . length($file) . "\n"
                . "NarHash: sha256:$nar_nix32\n"
                . 'NarSize: ' . length($nar) . "\n"
                . 'References: ' . join(' ', @refs) . "\n";
    $narinfo .= "Deriver: $o{deriver}\n" if defined $o{deriver};
    $narinfo .= "Sig: $_\n"
        for ref $o{sig} ? @{$o{sig}} : grep { defined } $o{sig};
    $narinfo .= "CA: $o{ca}\n" if defined $o{ca};
    $narinfo .= $o{extra} if defined $o{extra};

    my $ci = $o{corrupt_chunk} // 0;
    if ($corrupt{missing_chunk}) {
        unlink $paths[$ci] or croak "unlink $paths[$ci]: $!";
    }
    if ($corrupt{truncate_chunk}) {
        truncate $paths[$ci], int($entries[$ci]{csize} / 2)
            or croak "truncate $paths[$ci]: $!";
    }
    if ($corrupt{empty_chunk}) {
        truncate $paths[$ci], 0 or croak "truncate $paths[$ci]: $!";
    }
    if ($corrupt{flip_chunk}) {
        open my $fh, '+<:raw', $paths[$ci] or croak "$paths[$ci]: $!";
        my $at = int($entries[$ci]{csize} / 2);
        seek $fh, $at, 0;
        read $fh, my $c, 1;
        seek $fh, $at, 0;
        print {$fh} chr(ord($c) ^ 0xff);
        close $fh;
    }
    if ($corrupt{chunk_unreadable}) {
        chmod 0000, $paths[$ci];
    }

    redis_cmd('SET', "${prefix}manifest:$nar_nix32", $manifest)
        unless $corrupt{no_manifest};
    redis_cmd('SET', "${prefix}narinfo:$hash", $narinfo)
        unless $corrupt{no_narinfo};

    my $scratch = _scratch();
    (my $id = $name) =~ s/\W/_/g;
    _write_file("$scratch/fixture-$id.nar", $nar);
    _write_file("$scratch/fixture-$id.nar.zst", $file);
    _write_file("$scratch/fixture-$id.narinfo", $narinfo);

    my %r = (
        HASH      => $hash,
        STOREPATH => $store_path,
        BASENAME  => "$hash-$store_name",
        NARHASH   => $nar_nix32,
        FILEHASH  => $file_nix32,
        NARSIZE   => length $nar,
        FILESIZE  => length $file,
        NCHUNKS   => scalar @entries,
        NAR       => "$scratch/fixture-$id.nar",
        NARZST    => "$scratch/fixture-$id.nar.zst",
        NARINFO   => "$scratch/fixture-$id.narinfo",
        URL       => "nar/$nar_nix32.nar.zst",
        (map { ("CHUNK$_" => $paths[$_], "CID$_" => $cids[$_],
                "USIZE$_" => $entries[$_]{usize},
                "CSIZE$_" => $entries[$_]{csize}) } 0 .. $#entries),
    );
    _export($name, %r);

    my $fix = { %r, basename => "$hash-$store_name", nar => $nar,
                file => $file, narinfo => $narinfo, manifest => $manifest,
                entries => \@entries, chunk_paths => \@paths,
                cids => \@cids };
    $FIXTURES{$name} = $fix;
    $FIXTURES{"$hash-$store_name"} = $fix;
    return $fix;
}


# Stores arbitrary narinfo text under a store hash.
sub add_narinfo_raw {
    my (%o) = @_;
    my $prefix = $o{prefix} // 'nixcache:';
    my $hash = $o{hash} // croak "add_narinfo_raw: hash required";
    redis_cmd('SET', "${prefix}narinfo:$hash", $o{text} // '');
    return $hash;
}


# Stores arbitrary manifest bytes under a NarHash (52 nix32 chars).
sub add_manifest_raw {
    my (%o) = @_;
    my $prefix = $o{prefix} // 'nixcache:';
    my $nar_hash = $o{nar_hash} // croak "add_manifest_raw: nar_hash";
    redis_cmd('SET', "${prefix}manifest:$nar_hash", $o{bytes} // '');
    return $nar_hash;
}


# An upstream binary cache's files for pull-through blocks, under
# $DIR/up/: Nix's own signed narinfo of a path (key test-1, public
# test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=, the vector of
# t/unit/test_sign.c) and 300000 bytes standing for its NAR file.
our $UPSTREAM_NARINFO =
      "StorePath: /nix/store/7i15is0z08y2p0rck85fkp5s7w2jb7jd-hello.txt\n"
    . "URL: nar/1vmjrk9zlkfr8kriiw76v02blpifs2xspm2rnd4h04hc0am1gwd2.nar.xz\n"
    . "Compression: xz\n"
    . "FileHash: sha256:1vmjrk9zlkfr8kriiw76v02blpifs2xspm2rnd4h04hc0am1gwd2\n"
    . "FileSize: 140\n"
    . "NarHash: sha256:01mdg50aamf9yn1s4138vihq9jyp0k0x345b7d9s452h5habfh5d\n"
    . "NarSize: 128\n"
    . "References: \n"
    . "Sig: test-1:jFFQzK4AU8M6MZEJsyqPRpBqYM/YWaJcEuO8fhLT1Kwx9f3Emz7h8V/Ez+u"
    . "IpBy1iZ7K2fi6D+zxkVxTu/ybAg==\n"
    . "CA: fixed:r:sha256:01mdg50aamf9yn1s4138vihq9jyp0k0x345b7d9s452h5habfh5d"
    . "\n";

#
# file_size => N, file_hash => 'sha256:...' replace the narinfo's FileSize
# and FileHash (fields the signature does not cover); file_hash => 'real'
# is the NAR file's own.
sub upstream_files {
    my (%o) = @_;
    my $up = "$DIR/up";
    my $nar = join('', map { chr($_ % 251) } 1 .. 300000);
    my $ni = $UPSTREAM_NARINFO;
    mkdir $up; mkdir "$up/nar";
    chmod 0755, $up, "$up/nar";
    $o{file_hash} = 'sha256:' . nix32(sha256($nar))
        if ($o{file_hash} // '') eq 'real';
    $ni =~ s/^FileSize: .*$/FileSize: $o{file_size}/m if defined $o{file_size};
    $ni =~ s/^FileHash: .*$/FileHash: $o{file_hash}/m if defined $o{file_hash};
    _write_file("$up/7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo", $ni);
    _write_file("$up/nar/1vmjrk9zlkfr8kriiw76v02blpifs2xspm2rnd4h04hc0am1gwd2"
                . ".nar.xz", $nar);
}

# Broken narinfos under $DIR/bad/: the path's with its Sig made invalid
# (NarSize changed); another path's under hash ...a; a URL out of the
# cache under ...b; one that does not parse under ...c.
sub upstream_broken {
    my $bad = "$DIR/bad";
    mkdir $bad;
    chmod 0755, $bad;
    (my $t = $UPSTREAM_NARINFO) =~ s/NarSize: 128/NarSize: 129/;
    _write_file("$bad/7i15is0z08y2p0rck85fkp5s7w2jb7jd.narinfo", $t);
    _write_file("$bad/0000000000000000000000000000000a.narinfo",
                $UPSTREAM_NARINFO);
    (my $u = $UPSTREAM_NARINFO) =~ s{^StorePath: /nix/store/7i15is0z08y2p0rck85fkp5s7w2jb7jd}{StorePath: /nix/store/0000000000000000000000000000000b};
    $u =~ s{^URL: .*$}{URL: ../../etc/passwd}m;
    _write_file("$bad/0000000000000000000000000000000b.narinfo", $u);
    _write_file("$bad/0000000000000000000000000000000c.narinfo",
                "StorePath: /nix/store/0000000000000000000000000000000c-x\n"
                . "no colon here\n");
}


1;

__END__

=head1 NAME

Nixcache::Fixture - write NARs in ngx_nixcache's storage format for tests

=head1 add_nar(%options)

  name           fixture name (required); variables are exported as
                 TEST_NIXCACHE_FIX_<name>_* (and with <name> upper-cased)
  content        bytes of the single regular file the NAR holds
  executable     mark that file executable
  nar            or: the whole NAR bytes, used as is
  chunk_sizes    [n1, n2, ...] piece sizes; any remainder is a last piece
  chunk_size     or: cut into pieces of n bytes
                 (default: one chunk)
  level          zstd level (default 3)
  store_name     name part of the store path (default: name)
  hash           store hash (default: 32 nix32 chars derived from name)
  references     [names of earlier fixtures, basenames or store paths]
  self_reference add the path itself to References
  deriver, ca    extra narinfo fields; sig => 'k:..' or [...]
  extra          text appended to the narinfo
  prefix         Redis key prefix (default "nixcache:")
  chunks         chunk directory (default: the block's)
  corrupt        one or a list of: missing_chunk truncate_chunk empty_chunk
                 flip_chunk chunk_unreadable no_manifest no_narinfo
                 bad_manifest_magic bad_manifest_version short_manifest
  corrupt_chunk  which chunk the *_chunk corruptions hit (default 0)

Exported per fixture: HASH STOREPATH BASENAME NARHASH FILEHASH (bare
nix32, no "sha256:") NARSIZE FILESIZE NCHUNKS NAR NARZST NARINFO (files in
the block's scratch dir) URL CHUNK<i> CID<i> USIZE<i> CSIZE<i>.

Returns a hash with the same keys plus nar, file, narinfo, manifest,
entries, chunk_paths, cids.

=cut
