# nixcache import: flat binary caches made by `nix copy --to file://...`
# with each compression, checked independently (t/lib/Nixcache/Cli.pm),
# and broken ones refused path by path.
#
#   prove -I t/lib t/031-import.t       (needs `make cli`)

use strict;
use warnings;

use Digest::SHA qw(sha256);
use File::Copy qw(copy);
use File::Path qw(make_path);
use Test::More;

use lib 't/lib';
use Nixcache::Cli;

my $T = cli_setup();
my $S = "$T/store";
start_redis();
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

sub hash_of {
    my ($path) = @_;
    return substr($path, 11, 32);
}

# copies a flat cache directory (the test then breaks the copy)
sub clone {
    my ($from, $to) = @_;
    system('cp', '-a', $from, $to) == 0 or die "cp $from $to";
}

sub narinfo_file {
    my ($dir, $path) = @_;
    return "$dir/" . hash_of($path) . '.narinfo';
}

sub edit_narinfo {
    my ($file, $sub) = @_;
    my $text = slurp($file);
    local $_ = $text;
    $sub->();
    spew($file, $_);
}


# Store contents: a file, a tree of several chunks, a closure ---------------

spew("$T/hello.txt", "hello, import\n");
my $small = add("$T/hello.txt");

make_path("$T/tree/sub");
spew("$T/tree/data.bin", noise('tree', 1536 * 1024));
spew("$T/tree/sub/run.sh", "#!/bin/sh\necho hi\n");
chmod 0755, "$T/tree/sub/run.sh";
symlink('sub/run.sh', "$T/tree/link") or die "symlink: $!";
my $tree = add("$T/tree");

spew("$T/dep.nix", <<'EOF');
let
  a = builtins.toFile "a.txt" "import-aaa";
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/bin:/usr/bin";
    args = [ "-c" script ];
  };
  b = mk "b" "echo ${a} > $out";
  c = mk "c" "mkdir $out; echo ${b} > $out/ref";
in c
EOF
($rc, $out, $err) = nix('nix-build', '--store', $S, '--no-out-link',
                        '--option', 'extra-sandbox-paths',
                        '/bin /lib /lib64 /usr', "$T/dep.nix");
die "nix-build: $err" if $rc != 0;
chomp(my $c = $out);
($rc, $out, $err) = nix('nix-store', '--store', $S, '-qR', $c);
my @closure = split /\n/, $out;
my ($b) = grep { /-b$/ } @closure;
my ($a) = grep { /-a\.txt$/ } @closure;

# sign b so that Sig lines must be carried over
nix('nix-store', '--generate-binary-cache-key', 'test-1', "$T/sk", "$T/pk");
($rc, $out, $err) = nix('nix', 'store', 'sign', '--store', $S, '--key-file',
                        "$T/sk", $b);
die "sign: $err" if $rc != 0;

my @paths = ($small, $tree, @closure);


# Each compression round-trips ----------------------------------------------

my %src;

for my $comp (qw(none xz zstd bzip2)) {
    my $dir = "$T/flat-$comp";
    ($rc, $out, $err) = nix('nix', 'copy', '--store', $S, '--to',
                            "file://$dir?compression=$comp", @paths);
    is($rc, 0, "nix copy --to file:// compression=$comp") or diag($err);

    ($rc, $out, $err) = nixcache('import', '--redis', $sock, '--chunks',
                                 $chunks, '--prefix', "$comp:", $dir);
    is($rc, 0, "import $comp") or diag($err);
    like($err, qr/import done: 5\/5 paths \(0 skipped, 0 failed\)/,
         "import $comp: summary");

    for my $p (@paths) {
        my $ni = check_nar(path => $p, chunks => $chunks,
                           prefix => "$comp:", name => "$comp $p");
        my $src = parse_narinfo(slurp(narinfo_file($dir, $p)));

        for my $k (qw(StorePath NarHash NarSize References Deriver CA)) {
            is($ni->{$k}, $src->{$k}, "$comp $p: $k kept");
        }

        is_deeply($ni->{Sig}, $src->{Sig}, "$comp $p: Sig kept");
        $src{$comp}{$p} = $src;
    }
}

ok(@{ $src{xz}{$b}{Sig} // [] } == 1, 'the signed path has its Sig line');
is($src{xz}{$a}{Compression}, 'xz', 'source narinfo says xz');

# the same NARs again: all chunks are there already
($rc, $out, $err) = nixcache('import', '--redis', $sock, '--chunks', $chunks,
                             '--prefix', 'again:', "$T/flat-zstd");
is($rc, 0, 'import again under another prefix');
is(summary_field($err, qr/(\d+)\/\d+ chunks new/), 0, 'no new chunks');

($rc, $out, $err) = nixcache('import', '--redis', $sock, '--chunks', $chunks,
                             '--prefix', 'again:', "$T/flat-zstd");
is($rc, 0, 'import a third time');
like($err, qr/5 skipped/, 'already present: skipped');

($rc, $out, $err) = nixcache('import', '--redis', $sock, '--chunks', $chunks,
                             '--prefix', 'again:', '--force',
                             "$T/flat-zstd");
is($rc, 0, 'import --force');
like($err, qr/0 skipped/, '--force: none skipped');


# --sign-key adds our signature next to the ones carried over -------------

nix('nix-store', '--generate-binary-cache-key', 'test-2', "$T/sk2", "$T/pk2");
($rc, $out, $err) = nixcache('import', '--redis', $sock, '--chunks', $chunks,
                             '--prefix', 'signed:', '--sign-key', "$T/sk2",
                             "$T/flat-xz");
is($rc, 0, 'import --sign-key') or diag($err);
($rc, $out, $err) = nix('nix', 'store', 'sign', '--store', $S, '--key-file',
                        "$T/sk2", $b);
($rc, $out, $err) = nix('nix', 'path-info', '--store', $S, '--json', $b);
my ($nix_sig2) = $out =~ /"(test-2:[^"]+)"/;
my $ni_signed = parse_narinfo(redis_get('signed:narinfo:' . hash_of($b)));
is_deeply([sort @{ $ni_signed->{Sig} // [] }],
          [sort(@{ $src{xz}{$b}{Sig} }, $nix_sig2)],
          'b: the Sig carried over and ours, the one Nix makes');


# Compression absent means bzip2 --------------------------------------------

clone("$T/flat-bzip2", "$T/flat-nocomp");
for my $p (@paths) {
    edit_narinfo(narinfo_file("$T/flat-nocomp", $p),
                 sub { s/^Compression: .*\n//m });
}
unlike(slurp(narinfo_file("$T/flat-nocomp", $tree)), qr/Compression/,
       'Compression line removed');
($rc, $out, $err) = nixcache('import', '--redis', $sock, '--chunks', $chunks,
                             '--prefix', 'nocomp:', "$T/flat-nocomp");
is($rc, 0, 'import without Compression lines (bzip2)') or diag($err);
check_nar(path => $tree, chunks => $chunks, prefix => 'nocomp:',
          name => 'no Compression');


# Broken sources: the bad path fails, the others go in ----------------------

sub nar_file {
    my ($dir, $p) = @_;
    my $ni = parse_narinfo(slurp(narinfo_file($dir, $p)));
    return "$dir/$ni->{URL}";
}

sub expect_one_failure {
    my ($dir, $prefix, $bad, $re, $name) = @_;

    my ($rc, $out, $err) = nixcache('import', '--redis', $sock, '--chunks',
                                    $chunks, '--prefix', $prefix, $dir);
    is($rc, 1, "$name: exit 1");
    like($err, $re, "$name: message");
    like($err, qr/\Q$bad\E: not imported/, "$name: names the path");
    like($err, qr/4\/5 paths|5\/5 paths \(0 skipped, 1 failed\)/,
         "$name: summary counts the failure");
    ok(!defined redis_get("${prefix}narinfo:" . hash_of($bad)),
       "$name: no narinfo for the bad path");

    my @good = grep { $_ ne $bad } @paths;
    is(scalar(grep { defined redis_get("${prefix}narinfo:" . hash_of($_)) }
                   @good),
       4, "$name: the other paths imported");
}

# flipped bytes in an xz NAR (FileHash kept: either check may catch it)
clone("$T/flat-xz", "$T/bad-xz");
{
    my $f = nar_file("$T/bad-xz", $tree);
    my $data = slurp($f);
    substr($data, length($data) / 2, 16) ^= "\xff" x 16;
    spew($f, $data);
}
expect_one_failure("$T/bad-xz", 'badxz:', $tree,
                   qr/corrupt xz stream|corrupt source file/,
                   'corrupt .nar.xz');

# the same without FileHash: the decoder must catch it
clone("$T/bad-xz", "$T/bad-xz2");
edit_narinfo(narinfo_file("$T/bad-xz2", $tree),
             sub { s/^FileHash: .*\n//m; s/^FileSize: .*\n//m });
expect_one_failure("$T/bad-xz2", 'badxz2:', $tree, qr/corrupt xz stream/,
                   'corrupt .nar.xz without FileHash');

# truncated zstd and bzip2 NARs, FileHash/FileSize removed
for my $comp (qw(zstd bzip2 xz)) {
    clone("$T/flat-$comp", "$T/trunc-$comp");
    my $f = nar_file("$T/trunc-$comp", $tree);
    truncate($f, int((-s $f) / 2)) or die;
    edit_narinfo(narinfo_file("$T/trunc-$comp", $tree),
                 sub { s/^FileHash: .*\n//m; s/^FileSize: .*\n//m });
    expect_one_failure("$T/trunc-$comp", "trunc$comp:", $tree,
                       qr/truncated $comp stream|corrupt $comp stream/,
                       "truncated .nar ($comp)");
}

# trailing garbage after a complete zstd stream
clone("$T/flat-zstd", "$T/trail-zstd");
{
    my $f = nar_file("$T/trail-zstd", $small);
    open(my $fh, '>>:raw', $f) or die;
    print $fh "garbage after the frame";
    close $fh;
    edit_narinfo(narinfo_file("$T/trail-zstd", $small),
                 sub { s/^FileHash: .*\n//m; s/^FileSize: .*\n//m });
}
expect_one_failure("$T/trail-zstd", 'trail:', $small,
                   qr/corrupt zstd stream/, 'garbage after the zstd frame');

# the source file no longer matches its FileHash, but decodes fine
clone("$T/flat-none", "$T/bad-filehash");
my $other_fh = $src{none}{$small}{FileHash};
edit_narinfo(narinfo_file("$T/bad-filehash", $a),
             sub { s/^FileHash: .*$/FileHash: $other_fh/m });
{
    my $t = slurp(narinfo_file("$T/bad-filehash", $a));
    my $o = slurp(narinfo_file("$T/flat-none", $a));
    isnt($t, $o, 'FileHash edited');
}
expect_one_failure("$T/bad-filehash", 'badfh:', $a,
                   qr/corrupt source file/, 'FileHash mismatch');

# NarHash in the narinfo is not the NAR's
clone("$T/flat-zstd", "$T/bad-narhash");
my $other = $src{zstd}{$small}{NarHash};
edit_narinfo(narinfo_file("$T/bad-narhash", $tree),
             sub { s/^NarHash: .*$/NarHash: $other/m });
expect_one_failure("$T/bad-narhash", 'badnh:', $tree, qr/NAR mismatch/,
                   'NarHash mismatch');

# NarSize too small: decoding stops at NarSize
clone("$T/flat-xz", "$T/bad-narsize");
edit_narinfo(narinfo_file("$T/bad-narsize", $tree),
             sub { s/^NarSize: .*$/NarSize: 1000/m });
expect_one_failure("$T/bad-narsize", 'badns:', $tree,
                   qr/more than NarSize 1000/, 'NarSize too small');

# missing NAR file
clone("$T/flat-none", "$T/missing");
unlink nar_file("$T/missing", $c) or die;
expect_one_failure("$T/missing", 'missing:', $c,
                   qr/No such file or directory/, 'missing NAR file');

# unsupported compression
clone("$T/flat-none", "$T/brotli");
edit_narinfo(narinfo_file("$T/brotli", $b),
             sub { s/^Compression: .*$/Compression: br/m });
expect_one_failure("$T/brotli", 'br:', $b,
                   qr/unsupported Compression "br"/,
                   'unsupported compression');

# a narinfo that does not parse
clone("$T/flat-none", "$T/garbled");
edit_narinfo(narinfo_file("$T/garbled", $small), sub { s/^NarHash: .*\n//m });
($rc, $out, $err) = nixcache('import', '--redis', $sock, '--chunks', $chunks,
                             '--prefix', 'garbled:', "$T/garbled");
is($rc, 1, 'narinfo without NarHash: exit 1');
like($err, qr/\Q@{[hash_of($small)]}\E\.narinfo: .*NarHash/i,
     'narinfo without NarHash: message');
ok(!defined redis_get('garbled:narinfo:' . hash_of($small)),
   'narinfo without NarHash: nothing written');

# a URL outside the source directory
clone("$T/flat-none", "$T/escape");
edit_narinfo(narinfo_file("$T/escape", $small),
             sub { s/^URL: .*$/URL: ..\/flat-none\/nar\/x.nar/m });
expect_one_failure("$T/escape", 'escape:', $small,
                   qr/is not a file in/, 'URL outside the directory');


# Whole-run errors ----------------------------------------------------------

($rc, $out, $err) = nixcache('import', '--redis', $sock, '--chunks', $chunks,
                             "$T/no-such-dir");
is($rc, 1, 'missing source directory: exit 1');
like($err, qr/no-such-dir: No such file or directory/,
     'missing source directory: message');

my $down = '127.0.0.1:' . free_port();
($rc, $out, $err) = nixcache('import', '--redis', $down, '--chunks', $chunks,
                             "$T/flat-none");
is($rc, 1, 'Redis down: exit 1');
like($err, qr/cannot connect to Redis at \Q$down\E: Connection refused/,
     'Redis down: message');

spew("$T/notadir", 'x');
($rc, $out, $err) = nixcache('import', '--redis', $sock, '--chunks',
                             "$T/notadir", '--prefix', 'nd:', "$T/flat-none");
is($rc, 1, 'chunk dir is a file: exit 1');
like($err, qr/not a directory/, 'chunk dir is a file: message');
is_deeply([redis_keys('nd:*')], [], 'chunk dir is a file: nothing written');

($rc, $out, $err) = nixcache('import', '--redis', $sock, '--chunks', $chunks,
                             "$T/flat-none", "$T/flat-xz");
is($rc, 2, 'two source directories: exit 2');

stop_redis();

done_testing();
