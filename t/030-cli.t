# nixcache push: store paths from a private Nix store into a private Redis
# and chunk directory, checked independently (t/lib/Nixcache/Cli.pm).
#
#   prove -I t/lib t/030-cli.t          (needs `make cli`)
#   NIXCACHE_BIG=0 skips the 110 MB bounded-memory test.

use strict;
use warnings;

use Digest::SHA qw(sha256);
use File::Path qw(make_path);
use Test::More;

use lib 't/lib';
use Nixcache::Cli;

my $T = cli_setup();
my $S = "$T/store";
my $redis = start_redis();
my $sock = "unix:$T/redis/sock";
my $chunks = "$T/chunks";

my ($rc, $out, $err);


# Store contents ------------------------------------------------------------

sub add {
    my ($p) = @_;
    my ($rc, $out, $err) = nix('nix-store', '--store', $S, '--add', $p);
    die "nix-store --add $p: $err" if $rc != 0;
    chomp $out;
    return $out;
}

# deterministic pseudo-random bytes, several chunks' worth
sub noise {
    my ($seed, $len) = @_;
    my $data = '';
    my $i = 0;
    $data .= sha256("$seed:" . $i++) while length($data) < $len;
    return substr($data, 0, $len);
}

spew("$T/hello.txt", "hello, nixcache\n");
my $small = add("$T/hello.txt");

make_path("$T/tree/sub");
spew("$T/tree/big.bin", noise('big', 2 * 1024 * 1024));
spew("$T/tree/sub/run.sh", "#!/bin/sh\necho hi\n");
chmod 0755, "$T/tree/sub/run.sh";
symlink('sub/run.sh', "$T/tree/link") or die "symlink: $!";
spew("$T/tree/sub/empty", '');
my $tree = add("$T/tree");

# the same tree with a small edit in the middle of the big file
my $big2 = noise('big', 2 * 1024 * 1024);
substr($big2, 1024 * 1024, 100) = 'x' x 100;
make_path("$T/tree2/sub");
spew("$T/tree2/big.bin", $big2);
spew("$T/tree2/sub/run.sh", "#!/bin/sh\necho hi\n");
chmod 0755, "$T/tree2/sub/run.sh";
symlink('sub/run.sh', "$T/tree2/link") or die "symlink: $!";
spew("$T/tree2/sub/empty", '');
my $tree2 = add("$T/tree2");

# a closure with references and derivers: c -> b -> a
spew("$T/dep.nix", <<'EOF');
let
  a = builtins.toFile "a.txt" "aaa";
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/bin:/usr/bin";
    args = [ "-c" script ];
  };
  b = mk "b" "echo ${a} > $out";
  c = mk "c" "mkdir $out; echo ${b} > $out/ref; ln -s ref $out/link";
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
is(scalar @closure, 3, 'closure of c has 3 paths');


# Usage ---------------------------------------------------------------------

($rc, $out, $err) = nixcache('--help');
is($rc, 0, '--help exits 0');
like($out, qr/usage: nixcache COMMAND/, '--help prints usage');

($rc, $out, $err) = nixcache('push', '--help');
is($rc, 0, 'push --help exits 0');
like($out, qr/usage: nixcache push .*--recursive/s, 'push --help');

($rc, $out, $err) = nixcache('import', '--help');
is($rc, 0, 'import --help exits 0');
like($out, qr/usage: nixcache import/, 'import --help');

($rc, $out, $err) = nixcache('frobnicate');
is($rc, 2, 'unknown command exits 2');
like($err, qr/unknown command "frobnicate".*usage:/s,
     'unknown command: message and usage on stderr');

($rc, $out, $err) = nixcache('push', '--bogus', '--chunks', $chunks, $small);
is($rc, 2, 'unknown option exits 2');
like($err, qr/unknown option.*--bogus.*usage: nixcache push/s,
     'unknown option: message and usage on stderr');

($rc, $out, $err) = nixcache();
is($rc, 2, 'no command exits 2');

($rc, $out, $err) = nixcache('push', '--redis', $sock, $small);
is($rc, 2, 'push without --chunks exits 2');
like($err, qr/no chunk directory/, 'push without --chunks: message');

($rc, $out, $err) = nixcache('push', '--redis', $sock, '--chunks', $chunks,
                             '--chunk-avg', '3000', $small);
isnt($rc, 0, 'bad chunking parameters fail');
like($err, qr/invalid chunking parameters/, 'bad chunking: message');

# bash completion (tools/nixcache.bash) and the man page (docs/nixcache.1):
# each command's options as its --help lists them, no more, no fewer

my $root = Nixcache::Cli::root_dir();

sub complete {
    my (@words) = @_;
    my $script = 'source "$1"; shift; COMP_WORDS=("$@"); '
                 . 'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _nixcache; '
                 . 'printf "%s\n" "${COMPREPLY[@]}"';
    my ($rc, $out, $err) = nix('bash', '-c', $script, 'complete',
                               "$root/tools/nixcache.bash", 'nixcache',
                               @words);
    return sort grep { length } split /\n/, $out;
}

is_deeply([complete('pu')], ['push'], 'completion: a command');
is_deeply([complete('push', '--ex')], ['--exclude'],
          'completion: a push option');

my $man = slurp("$root/docs/nixcache.1");
for my $cmd (qw(push import verify keygen use rm pin unpin gc)) {
    ($rc, $out, $err) = nixcache($cmd, '--help');
    my ($usage) = $out =~ /^(usage: .*)$/m;
    # option lines are indented 2 to 6 columns, their continuations more
    my @lines = $out =~ /^ {2,6}(-.*)$/mg;
    my %opt = map { $_ => 1 } '--help',
        (map { /(--[a-z0-9-]+)/g } @lines),
        $usage =~ /\[(--[a-z0-9-]+)/g;
    my @want = sort keys %opt;
    is_deeply([complete($cmd, '--')], \@want,
              "completion: ${cmd}'s options are those of its --help");
    (my $m = $man) =~ s/\\-/-/g;
    like($m, qr/^\.B nixcache \Q$cmd\E\b/m, "man page: $cmd in SYNOPSIS");
}
($rc, $out, $err) = nix('groff', '-man', '-ww', '-z',
                        "$root/docs/nixcache.1");
is("$rc $err", '0 ', 'man page: groff -ww finds nothing to warn about');


# Push ----------------------------------------------------------------------

my @push = ('push', '--redis', $sock, '--chunks', $chunks, '--store', $S);

($rc, $out, $err) = nixcache(@push, $small, $tree);
is($rc, 0, 'push a file and a tree') or diag($err);
like($err, qr/push done: 2\/2 paths \(0 skipped, 0 failed\)/,
     'summary line');
check_nar(path => $small, chunks => $chunks, name => 'file');
my $ni_tree = check_nar(path => $tree, chunks => $chunks, name => 'tree');
like($ni_tree->{CA} // '', qr/^fixed:r:sha256:/, 'tree: CA kept');

my $nchunks = () = glob("$chunks/*/*");
ok($nchunks > 10, "tree made several chunks ($nchunks files)");

# TCP address forms reach the same Redis
($rc, $out, $err) = nixcache(@push, '--redis', "redis://$redis/0", $small);
is($rc, 0, 'redis://host:port/db address');
like($err, qr/already present/, 'already present through redis://');

($rc, $out, $err) = nixcache(@push, '--redis', $redis, $small);
is($rc, 0, 'IP:port address');

($rc, $out, $err) = nixcache(@push, '--redis',
                             $redis =~ s/127\.0\.0\.1/localhost/r, $small);
is($rc, 0, 'host:port address');

# a database on a unix socket: ?db=N, the bare path and unix:///path forms
($rc, $out, $err) = nixcache(@push, '--redis', "$T/redis/sock?db=2",
                             '--prefix', 'db2:', $small);
is($rc, 0, '/path?db=N address') or diag($err);
is_deeply([redis_keys('db2:*')], [], '?db=2: nothing in database 0');
my @db2 = split /\n/,
    `redis-cli -s $T/redis/sock -n 2 --scan --pattern 'db2:narinfo:*'`;
is(scalar(@db2), 1, '?db=2: the narinfo is in database 2');
($rc, $out, $err) = nixcache(@push, '--redis', "unix://$T/redis/sock?db=2",
                             '--prefix', 'db2:', $small);
is($rc, 0, 'unix:///path?db=N address') or diag($err);
like($err, qr/already present/, 'already present in database 2');

{
    local $ENV{NIXCACHE_REDIS} = $redis;
    local $ENV{NIXCACHE_CHUNKS} = $chunks;
    ($rc, $out, $err) = nixcache('push', '--store', $S, $small);
    is($rc, 0, 'NIXCACHE_REDIS and NIXCACHE_CHUNKS');
    like($err, qr/already present/, 'environment reaches the same cache');
}


my $bogus_early = '/nix/store/11111111111111111111111111111111-nope';


# Already present, --force --------------------------------------------------

($rc, $out, $err) = nixcache(@push, $tree);
is($rc, 0, 'second push of the tree');
like($err, qr/\Q$tree\E: already present/, 'already present');
like($err, qr/1 skipped/, 'summary counts the skip');

($rc, $out, $err) = nixcache(@push, '-q', $tree);
is($rc, 0, 'push -q');
is($err, '', '-q: nothing on stderr');

($rc, $out, $err) = nixcache(@push, '-q', $bogus_early);
isnt($rc, 0, 'push -q of an unknown path fails');
like($err, qr/not a valid store path/, '-q: errors still shown');

redis_cmd('SET', 'nixcache:narinfo:' . substr($tree, 11, 32), 'junk');
($rc, $out, $err) = nixcache(@push, '--force', $tree);
is($rc, 0, '--force push');
is(summary_field($err, qr/(\d+)\/\d+ chunks new/), 0,
   '--force: no new chunks');
check_nar(path => $tree, chunks => $chunks, name => 'tree after --force');

# a chunk stored at another level keeps its own frame: FileHash follows it
($rc, $out, $err) = nixcache(@push, '--force', '--level', '19', $tree);
is($rc, 0, '--force --level 19');
check_nar(path => $tree, chunks => $chunks,
          name => 'tree, chunks stored at the default level, pushed at 19');


# Dedup ---------------------------------------------------------------------

($rc, $out, $err) = nixcache(@push, $tree2);
is($rc, 0, 'push the edited tree');
my $new = summary_field($err, qr/\((\d+) new NAR bytes\)/);
my $nar2 = parse_narinfo(redis_get('nixcache:narinfo:'
                                   . substr($tree2, 11, 32)))->{NarSize};
ok(defined $new && $new < $nar2 / 5,
   "edited tree: only $new of $nar2 NAR bytes in new chunks");
like($err, qr/dedup (9\d|8\d)\.\d%/, 'summary shows the dedup ratio');
check_nar(path => $tree2, chunks => $chunks, name => 'edited tree');


# Two store paths with the same NAR share one manifest ----------------------

spew("$T/same1.txt", noise('same', 300 * 1024));
spew("$T/same2.txt", noise('same', 300 * 1024));
my $same1 = add("$T/same1.txt");
my $same2 = add("$T/same2.txt");
isnt($same1, $same2, 'two store paths with the same contents');

($rc, $out, $err) = nixcache(@push, $same1);
is($rc, 0, 'push the first');
($rc, $out, $err) = nixcache(@push, '--chunk-min', 4096, '--chunk-avg', 8192,
                             '--chunk-max', 32768, $same2);
is($rc, 0, 'push the second with other chunking parameters');
my $ni_s1 = check_nar(path => $same1, chunks => $chunks, name => 'same1');
my $ni_s2 = check_nar(path => $same2, chunks => $chunks, name => 'same2');
is($ni_s2->{FileHash}, $ni_s1->{FileHash},
   'the second narinfo describes the manifest in place');


# Closure -------------------------------------------------------------------

($rc, $out, $err) = nixcache(@push, '-r', '-v', $c);
is($rc, 0, 'push -r') or diag($err);
like($err, qr/push done: 3\/3 paths/, 'push -r: three paths');

my @order = $err =~ m{(/nix/store/\S+): pushed}g;
is_deeply(\@order, [$a, $b, $c], 'references pushed first');

my $ni_c = check_nar(path => $c, chunks => $chunks, name => 'c');
my $ni_b = check_nar(path => $b, chunks => $chunks, name => 'b');
check_nar(path => $a, chunks => $chunks, name => 'a');

is($ni_c->{References}, substr($b, 11), 'c: References');
is($ni_b->{References}, substr($a, 11), 'b: References');
like($ni_c->{Deriver} // '', qr/^[0-9a-z]{32}-c\.drv$/, 'c: Deriver');

($rc, $out, $err) = nix('nix', 'path-info', '--store', $S, '--json', $c);
like($out, qr/"deriver":"\/nix\/store\/\Q$ni_c->{Deriver}\E"/,
     'c: Deriver is the one path-info gives');

($rc, $out, $err) = nixcache(@push, '-r', $c);
like($err, qr/3 skipped/, 'closure already present');

# --exclude: the closure without b (a path named "-b"), into another cache
my @xpush = (@push, '--prefix', 'x1:');
($rc, $out, $err) = nixcache(@xpush, '-r', '-v', '--exclude', '-b$',
                             '--exclude', 'no-such-thing', $c);
is($rc, 0, 'push -r --exclude') or diag($err);
like($err, qr/push done: 2\/2 paths \(0 skipped, 0 failed, 1 excluded\)/,
     '--exclude: two paths pushed, one excluded');
like($err, qr/\Q$b\E: excluded/, '--exclude: the excluded path is named');
is_deeply([sort map { s/^x1:narinfo://r } redis_keys('x1:narinfo:*')],
          [sort map { substr($_, 11, 32) } $a, $c],
          '--exclude: narinfos of a and c only');

($rc, $out, $err) = nixcache(@push, '--prefix', 'x2:', '-r', '--exclude',
                             '(unclosed', $c);
isnt($rc, 0, 'an invalid --exclude fails');
like($err, qr/--exclude "\(unclosed":/, '... and names it');
is_deeply([redis_keys('x2:*')], [], '... before anything is written');


# Signatures are carried over -----------------------------------------------

($rc, $out, $err) = nix('nix-store', '--generate-binary-cache-key',
                        'test-1', "$T/sk", "$T/pk");
($rc, $out, $err) = nix('nix', 'store', 'sign', '--store', $S, '--key-file',
                        "$T/sk", $b);
is($rc, 0, 'sign b') or diag($err);
($rc, $out, $err) = nixcache(@push, '--force', $b);
is($rc, 0, 'push signed b');
my $ni_bs = parse_narinfo(redis_get('nixcache:narinfo:' . substr($b, 11, 32)));
is(scalar @{ $ni_bs->{Sig} // [] }, 1, 'b: one Sig line');
like($ni_bs->{Sig}[0] // '', qr/^test-1:[A-Za-z0-9+\/]{86}==$/,
     'b: Sig as path-info has it');


# --sign-key: our signature is the one Nix makes (ed25519 is deterministic)

($rc, $out, $err) = nixcache(@push, '--prefix', 's1:', '--sign-key', "$T/sk",
                             '-r', $c);
is($rc, 0, 'push -r --sign-key') or diag($err);
my $ni_cs = parse_narinfo(redis_get('s1:narinfo:' . substr($c, 11, 32)));
is(scalar @{ $ni_cs->{Sig} // [] }, 1, 'c: one Sig line');
my $ni_bs2 = parse_narinfo(redis_get('s1:narinfo:' . substr($b, 11, 32)));
is_deeply($ni_bs2->{Sig}, $ni_bs->{Sig},
          'b, signed in the store by the same key: one Sig, the same');

($rc, $out, $err) = nix('nix', 'store', 'sign', '--store', $S, '--key-file',
                        "$T/sk", $c);
($rc, $out, $err) = nix('nix', 'path-info', '--store', $S, '--json', $c);
my ($nix_sig) = $out =~ /"signatures":\["([^"]+)"\]/;
ok(defined $nix_sig, 'Nix signed c');
is($ni_cs->{Sig}[0], $nix_sig, 'c: our Sig is the one Nix makes');

spew("$T/badkey", "test-1:bm90IGEga2V5\n");
($rc, $out, $err) = nixcache(@push, '--prefix', 's2:', '--sign-key',
                             "$T/badkey", $small);
is($rc, 1, 'bad signing key: exit 1');
like($err, qr/signing key \Q$T\E\/badkey: /, 'bad signing key: message');
is_deeply([redis_keys('s2:*')], [], 'bad signing key: nothing written');

($rc, $out, $err) = nixcache(@push, '--prefix', 's2:', '--sign-key',
                             "$T/no-such-key", $small);
is($rc, 1, 'missing signing key: exit 1');
like($err, qr/no-such-key: No such file/, 'missing signing key: message');


# Errors --------------------------------------------------------------------

my $bogus = '/nix/store/00000000000000000000000000000000-nope';
($rc, $out, $err) = nixcache(@push, $bogus);
isnt($rc, 0, 'unknown store path fails');
like($err, qr/\Q$bogus\E: not a valid store path/, 'unknown path: message');

($rc, $out, $err) = nixcache(@push, "$T/not-in-store");
isnt($rc, 0, 'a path outside the store fails');

my $down = '127.0.0.1:' . free_port();
($rc, $out, $err) = nixcache('push', '--redis', $down, '--chunks', $chunks,
                             '--store', $S, $small);
is($rc, 1, 'Redis down exits 1');
like($err,
     qr/^nixcache: cannot connect to Redis at \Q$down\E: Connection refused$/m,
     'Redis down: message');

($rc, $out, $err) = nixcache('push', '--redis', 'unix:/nonexistent/sock',
                             '--chunks', $chunks, $small);
is($rc, 1, 'unix socket missing exits 1');
like($err, qr/cannot connect to Redis at unix:\/nonexistent\/sock/,
     'unix socket missing: message');

($rc, $out, $err) = nixcache('push', '--redis', 'host:notaport',
                             '--chunks', $chunks, $small);
isnt($rc, 0, 'bad Redis address fails');
like($err, qr/invalid Redis port/, 'bad Redis address: message');

spew("$T/notadir", "x");
($rc, $out, $err) = nixcache('push', '--redis', $sock, '--chunks',
                             "$T/notadir", '--prefix', 'e1:', '--store', $S,
                             $small);
isnt($rc, 0, 'chunk dir that is a file fails');
like($err, qr/chunk directory \Q$T\E\/notadir: not a directory/,
     'chunk dir is a file: message');
is_deeply([redis_keys('e1:*')], [], 'nothing written to Redis');

# a fan-out directory that cannot be created: a file in its place
spew("$T/hello2.txt", "hello again\n");
my $small2 = add("$T/hello2.txt");
mkdir "$T/chunks-blocked";
for my $x ('a' .. 'z', '2' .. '7') {
    for my $y ('a' .. 'z', '2' .. '7') {
        spew("$T/chunks-blocked/$x$y", '');
    }
}
($rc, $out, $err) = nixcache('push', '--redis', $sock, '--chunks',
                             "$T/chunks-blocked", '--prefix', 'e2:',
                             '--store', $S, $small2);
isnt($rc, 0, 'unwritable chunk fan-out fails');
like($err, qr/cannot (?:write|open) chunk/, 'unwritable chunk: message');
is_deeply([redis_keys('e2:*')], [], 'nothing written to Redis');

# a store path whose files changed behind Nix's back: NarHash mismatch
spew("$T/victim.txt", "original\n");
my $victim = add("$T/victim.txt");
my $real = "$S$victim";
chmod 0644, $real;
spew($real, "tampered\n");
($rc, $out, $err) = nixcache('push', '--redis', $sock, '--chunks', $chunks,
                             '--prefix', 'e3:', '--store', $S, $victim);
isnt($rc, 0, 'NarHash mismatch fails');
like($err, qr/\Q$victim\E: NAR hash or size mismatch/,
     'NarHash mismatch: message');
is_deeply([redis_keys('e3:*')], [], 'nothing written to Redis');

# a stored chunk that is not what its name says is refused
my $m_small = redis_get('nixcache:manifest:'
                        . (parse_narinfo(redis_get('nixcache:narinfo:'
                                                   . substr($small, 11, 32)))
                           ->{NarHash} =~ s/^sha256://r));
my $cid_small = cid_of(substr($m_small, 96, 32));
my $one = "$chunks/" . substr($cid_small, -2) . "/$cid_small";
my $keep = slurp($one);
spew($one, 'garbage');
($rc, $out, $err) = nixcache('push', '--redis', $sock, '--chunks', $chunks,
                             '--prefix', 'e4:', '--store', $S, $small);
isnt($rc, 0, 'a corrupt stored chunk fails the push');
like($err, qr/stored chunk .* is not one zstd frame/,
     'corrupt stored chunk: message');
is_deeply([redis_keys('e4:*')], [], 'nothing written to Redis');
spew($one, $keep);


# Bounded memory ------------------------------------------------------------

SKIP: {

    skip 'NIXCACHE_BIG=0', 6 if defined $ENV{NIXCACHE_BIG}
                                && !$ENV{NIXCACHE_BIG};

    my $size = 110 * 1024 * 1024;
    system("head -c $size /dev/urandom > $T/big.bin") == 0 or die;
    my $big = add("$T/big.bin");
    unlink "$T/big.bin";

    # serial (-j 1) first; then -j 2 adds one worker: its zstd context and
    # four chunk slots (about 6 MiB at level 6), whatever the NAR size
    my ($rss, $rss_small, $rss_j2);
    ($rc, $out, $err, $rss_small) = nixcache_rss(@push, '-j', 1, '--force',
                                                 $small);
    ($rc, $out, $err, $rss) = nixcache_rss(@push, '-j', 1, $big);
    is($rc, 0, 'push a 110 MiB NAR') or diag($err);

    diag("max RSS: $rss KiB for a 110 MiB NAR, $rss_small KiB for a "
         . "120-byte one");
    ok(defined $rss && defined $rss_small && $rss < 24 * 1024
       && $rss < $rss_small + 8 * 1024,
       "memory bounded: max RSS $rss KiB for a 110 MiB NAR");

    system("head -c $size /dev/urandom > $T/big.bin") == 0 or die;
    my $big2 = add("$T/big.bin");
    unlink "$T/big.bin";

    my ($rc2, $err2);
    ($rc2, $out, $err2, $rss_j2) = nixcache_rss(@push, '-j', 2, $big2);
    is($rc2, 0, 'push another 110 MiB NAR, 2 threads') or diag($err2);
    ok(defined $rss_j2 && $rss_j2 < 24 * 1024 && $rss_j2 < $rss + 8 * 1024,
       "memory bounded with 2 threads: max RSS $rss_j2 KiB");

    # progress: at most about two lines a second, and the summary
    my $lines = () = $err =~ /^nixcache: push: /mg;
    my $secs = summary_field($err, qr/, ([\d.]+) s(?:,|$)/);
    ok(defined $secs && $lines <= 2 * $secs + 2,
       "$lines progress lines in $secs s");

    check_nar(path => $big, chunks => $chunks, name => '110 MiB NAR');
}

stop_redis();

done_testing();
