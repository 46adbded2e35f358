# nixcache rm, pin, unpin and gc on the disk tier: each frees what it
# should and nothing else (verify clean after every gc); pushes and gc run
# together many times without a narinfo losing a chunk; a gc killed at any
# moment leaves nothing live deleted and the next gc completes.
#
#   t/run-all t/140-gc.t       (needs `make cli`)

use strict;
use warnings;

use File::Find ();
use POSIX ();
use Test::More;

use lib 't/lib';
use Nixcache::Cli qw(:DEFAULT noise store_add);

my $T = cli_setup();
start_redis();
my $sock = "unix:$T/redis/sock";
my $chunks = "$T/chunks";
my @tier = ('--redis', $sock, '--chunks', $chunks);


sub hash_of { substr($_[0], 11, 32) }

sub push_paths {
    return nixcache('push', @tier, '--store', "$T/store", '-q', @_);
}

sub gc { return nixcache('gc', @tier, @_) }

sub chunk_files {
    my %f;
    return {} unless -d $chunks;
    File::Find::find(sub { $f{$_} = -s $_ if -f $_ && !/^\./ }, $chunks);
    return \%f;
}

sub _chunk_path { "$chunks/" . substr($_[0], -2) . "/$_[0]" }

sub clean {
    my ($name) = @_;
    my ($rc, $out, $err) = nixcache('verify', @tier);
    is($rc, 0, "$name: verify clean") or diag("$out\n$err");
}

sub chunks_of {
    my ($path) = @_;
    my $ni = parse_narinfo(redis_get('nixcache:narinfo:' . hash_of($path)));
    my $m = redis_get('nixcache:manifest:' . ($ni->{NarHash} =~ s/^sha256://r));
    my $n = unpack('V', substr($m, 8, 4));
    return map { cid_of(substr($m, 96 + 40 * $_, 32)) } 0 .. $n - 1;
}


# A and B share their first 600 KB; C is alone.

my $common = noise('common', 600_000);
my $A = store_add('a', $common . noise('a', 300_000));
my $B = store_add('b', $common . noise('b', 300_000));
my $C = store_add('c', noise('c', 400_000));

my ($rc, $out, $err) = push_paths($A, $B, $C);
is($rc, 0, 'push three paths') or diag($err);
clean('pushed');

my %a = map { $_ => 1 } chunks_of($A);
my %b = map { $_ => 1 } chunks_of($B);
my @only_a = grep { !$b{$_} } keys %a;
my @shared = grep { $b{$_} } keys %a;
ok(@only_a > 0 && @shared > 0, 'A has chunks of its own and shared ones');

my $before = chunk_files();

($rc, $out, $err) = gc('--grace', '0');
is($rc, 0, 'gc with nothing removed') or diag($err);
like($err, qr/gc done: 3 narinfos .* 0 deleted \(0 bytes\)/,
     'gc: nothing deleted');
is_deeply(chunk_files(), $before, 'every chunk file still there');
clean('gc, nothing removed');

# rm: the narinfo goes, the chunks at the next gc

($rc, $out, $err) = nixcache('rm', '--redis', $sock, $A, 'nosuchpath');
is($rc, 1, 'rm of a path and of nonsense: exit 1');
like($err, qr/"nosuchpath" is not a store path/, 'rm: nonsense named');
is(redis_get('nixcache:narinfo:' . hash_of($A)), undef, 'rm: narinfo gone');
is_deeply(chunk_files(), $before, 'rm: chunks still there');

sleep 1;   # the manifest is older than --grace 0 by a second of TIME

my $bytes = 0;
$bytes += $before->{$_} for @only_a;

($rc, $out, $err) = gc('--grace', '0', '--dry-run', '-v');
is($rc, 0, 'gc --dry-run') or diag($err);
like($err, qr/gc done \(dry run\): .* \(1 would drop\), .* \Q${\ scalar @only_a}\E would go \($bytes bytes\)/,
     'gc --dry-run: the manifest and A\'s own chunks, with their bytes');
is_deeply(chunk_files(), $before, 'gc --dry-run: nothing deleted');

($rc, $out, $err) = gc('--grace', '3600');
is($rc, 0, 'gc --grace 3600') or diag($err);
like($err, qr/ 0 deleted /, 'gc: young chunks are kept');
is_deeply(chunk_files(), $before, 'gc --grace: nothing deleted');

($rc, $out, $err) = gc('--grace', '0');
is($rc, 0, 'gc') or diag($err);
my $after = chunk_files();
is_deeply([sort grep { !$after->{$_} } keys %$before], [sort @only_a],
          'gc: exactly the chunks only A had are deleted');
is(scalar(my @m = redis_keys('nixcache:manifest:*')), 2, 'gc: A\'s manifest dropped');
clean('gc after rm');

# pushed again: the missing chunks are written again

($rc, $out, $err) = push_paths($A);
is($rc, 0, 'A pushed again') or diag($err);
is_deeply(chunk_files(), $before, 'A\'s chunks are back');
clean('A pushed again');

# pin, unpin, --keep-days

($rc, $out, $err) = nixcache('pin', '--redis', $sock, $B, hash_of($C));
is($rc, 0, 'pin B and C (by hash)') or diag($err);
is_deeply([sort @{ redis_cmd('SMEMBERS', 'nixcache:pin') }],
          [sort(hash_of($B), hash_of($C))], 'pin: the set');
redis_cmd('ZADD', 'nixcache:access', time() - 3 * 86400, hash_of($_))
    for $A, $B, $C;
($rc, $out, $err) = nixcache('unpin', '--redis', $sock, $C);
is($rc, 0, 'unpin C') or diag($err);

($rc, $out, $err) = gc('--grace', '0', '--keep-days', '2');
is($rc, 0, 'gc --keep-days 2') or diag($err);
like($err, qr/gc done: 1 narinfos \(2 expired\)/, 'A and C expired, B pinned');
ok(defined redis_get('nixcache:narinfo:' . hash_of($B)), 'B kept');
is(redis_get('nixcache:narinfo:' . hash_of($_)), undef, 'expired: gone')
    for $A, $C;
clean('after retention');
ok(!grep({ !$before->{$_} } keys %{ chunk_files() }), 'no new chunks');
my $left = chunk_files();
ok(!grep({ !$left->{$_} } chunks_of($B)), 'B\'s chunks kept');

($rc, $out, $err) = push_paths($A, $C);
is($rc, 0, 'A and C pushed again') or diag($err);
ok(redis_cmd('ZSCORE', 'nixcache:access', hash_of($A)) > time() - 60,
   'a push records the access time');

# the refusal path, made to happen: a chunk of a push in progress is
# deleted and the generation moved, as a gc batch would; the push checks
# again, sends the NAR through again, and publishes whole

my $slow = store_add('slow', noise('slow', 6_000_000));
my $t0 = time() - 1;
my $pp = fork() // die;
if ($pp == 0) {
    my ($rc, $o, $e) = nixcache('push', @tier, '--store', "$T/store", '-v',
                                '-j', '1', '--level', '19', $slow);
    spew("$T/slow.err", $e);
    POSIX::_exit($rc);
}
my $gone;
for (1 .. 100) {
    select(undef, undef, undef, 0.05);
    my $f = chunk_files();
    ($gone) = grep { !$before->{$_} && (stat(_chunk_path($_)))[9] >= $t0 }
              keys %$f;
    last if $gone;
}
ok($gone, 'a chunk of the push in progress is written') or diag('none');
unlink(_chunk_path($gone)) if $gone;
redis_cmd('INCR', 'nixcache-gc:gen');
waitpid($pp, 0);
is($? >> 8, 0, 'the push with a chunk deleted under it succeeds');
like(slurp("$T/slow.err"), qr/publication refused \(a gc ran\), chunks checked again: some gone/,
     'the push saw the refusal and the missing chunk');
clean('after the refused publication');
ok(-f _chunk_path($gone), 'the deleted chunk is written again') if $gone;

# a gc's lock (here by hand, 1.5 s): a push waits for it, then publishes

redis_cmd('SET', 'nixcache-gc:lock', 'test', 'PX', '1500');
nixcache('rm', '--redis', $sock, '-q', $slow);
my $t1 = time();
($rc, $out, $err) = push_paths($slow);
is($rc, 0, 'push while the lock is held') or diag($err);
ok(time() - $t1 >= 1, 'it waited for the lock');
clean('after the lock');

# pushes and gc together: pushers rm and re-push paths sharing chunks
# while gc sweeps with no grace; then every narinfo has every chunk

my @P = map { store_add("p$_", $common . noise("p$_", 200_000)) } 1 .. 6;
($rc, $out, $err) = push_paths(@P);
is($rc, 0, 'push the concurrency set') or diag($err);

# With no grace and gc back to back, a push may be refused more often
# than it retries ("refused 3 times while gc ran": the protocol's bound,
# docs/FORMAT.md) and fail cleanly; that is allowed for a minority of the
# rounds (a machine under load), any other failure is not.  The child's
# exit status is the number of refused rounds, 100 for another failure.
my $rounds = $ENV{GC_ROUNDS} // 12;
my $pid = fork() // die;
if ($pid == 0) {
    my $refused = 0;
    for my $i (1 .. $rounds) {
        my $p = $P[$i % @P];
        nixcache('rm', '--redis', $sock, '-q', $p);
        my ($rc, $o, $e) = push_paths($p, $P[($i + 3) % @P]);
        next if $rc == 0;
        if ($e =~ /: refused \d+ times while gc ran; not pushed$/m
            && $e !~ /^nixcache: (?!.*refused \d+ times while gc ran)/m)
        {
            $refused++;
            next;
        }
        print STDERR "push failed: $e";
        POSIX::_exit(100);
    }
    POSIX::_exit($refused);
}
my $gcs = 0;
my $gc_failed = 0;
while (waitpid($pid, POSIX::WNOHANG()) == 0) {
    my ($rc, $o, $e) = gc('--grace', '0', '-q');
    $gcs++;
    $gc_failed++ if $rc != 0;
    diag($e) if $rc != 0;
}
my $refused = $? >> 8;
ok($refused <= $rounds / 2, "$rounds rounds of rm and push beside $gcs gc "
   . "runs: every push succeeded or was refused while gc ran ($refused "
   . 'refused)');
is($gc_failed, 0, 'every gc succeeded');
push_paths(@P);
clean('after pushes and gc together');

# kill -9 of gc at random moments: nothing live goes, the next completes

my @all = (@P, $A, $B, $C, $slow);
nixcache('rm', '--redis', $sock, '-q', @P[0 .. 2]);
sleep 1;
for my $try (1 .. 5) {
    my $g = fork() // die;
    if ($g == 0) {
        exec($Nixcache::Cli::CLI, 'gc', @tier, '--grace', '0', '-q')
            or POSIX::_exit(127);
    }
    select(undef, undef, undef, rand(0.05));
    kill 'KILL', $g;
    waitpid($g, 0);
    clean("gc killed after a random time ($try)");
}
($rc, $out, $err) = gc('--grace', '0');
is($rc, 0, 'gc after the kills completes') or diag($err);
clean('gc after the kills');
for my $p (@P[0 .. 2]) {
    is(redis_get('nixcache:narinfo:' . hash_of($p)), undef, "$p removed");
}

# everything removed: the chunk space is freed

nixcache('rm', '--redis', $sock, '-q', @all);
sleep 1;
($rc, $out, $err) = gc('--grace', '0');
is($rc, 0, 'gc after removing every path') or diag($err);
is(scalar(keys %{ chunk_files() }), 0, 'no chunk file left');
is(scalar(my @n = redis_keys('nixcache:manifest:*')), 0, 'no manifest left');

# --metrics-file: the run's figures for node_exporter's textfile collector

sub metrics_of {
    my %m;
    open my $fh, '<', $_[0] or return {};
    while (<$fh>) {
        $m{$1} = $2 if /^(nixcache_gc_[a-z_]+)\{cache="nixcache:"\} (\S+)$/;
    }
    return \%m;
}

my $mfile = "$T/gc.prom";
push_paths(@P[0 .. 1]);
nixcache('rm', '--redis', $sock, '-q', $P[0]);
sleep 1;
my $had = chunk_files();
my $files = scalar keys %$had;
($rc, $out, $err) = gc('--grace', '0', '--metrics-file', $mfile);
is($rc, 0, 'gc --metrics-file') or diag($err);
my $kept = chunk_files();
my @gone = grep { !exists $kept->{$_} } keys %$had;
my $deleted = scalar @gone;
my $freed = 0;
$freed += $had->{$_} for @gone;
my $m = metrics_of($mfile);
ok($deleted > 0, "the run deleted $deleted chunk files");
is($m->{nixcache_gc_last_deleted_chunks}, $deleted, 'metrics: deleted chunks');
is($m->{nixcache_gc_last_deleted_bytes}, $freed, 'metrics: deleted bytes, the sizes of the files gone');
is($m->{nixcache_gc_last_dropped_manifests}, 1, 'metrics: one manifest dropped');
is($m->{nixcache_gc_chunk_files}, $files, 'metrics: chunk files seen');
is($m->{nixcache_gc_last_run_success}, 1, 'metrics: success');
my $ok_at = $m->{nixcache_gc_last_success_timestamp_seconds};
ok(abs($ok_at - time()) < 60, 'metrics: success time is now');
is($m->{nixcache_gc_last_run_timestamp_seconds}, $ok_at, 'metrics: run time = success time');
ok(!-e "$mfile.tmp", 'no temporary file left');
system("promtool check metrics < $mfile") == 0
    or fail('promtool check metrics');
# every gc metric the alert rules name is in the file
open my $rules, '<', 'docs/monitoring/alerts.yml' or die $!;
my %named = map { $_ => 1 } (join('', <$rules>) =~ /\b(nixcache_gc_[a-z_]+)/g);
ok(%named, 'the alert rules name gc metrics');
ok(exists $m->{$_}, "alert rules' $_ is written") for sort keys %named;

# a failed run: success 0, the last success's time kept
sleep 1;
($rc, $out, $err) = nixcache('gc', '--redis', "unix:$T/no-redis.sock", '--chunks', $chunks,
                             '--metrics-file', $mfile);
is($rc, 1, 'gc without Redis fails');
$m = metrics_of($mfile);
is($m->{nixcache_gc_last_run_success}, 0, 'metrics: failure');
is($m->{nixcache_gc_last_success_timestamp_seconds}, $ok_at, 'metrics: last success kept');
ok($m->{nixcache_gc_last_run_timestamp_seconds} > $ok_at, 'metrics: run time moves on');

# a dry run writes nothing
my $mtime = (stat $mfile)[9];
sleep 1;
($rc, $out, $err) = gc('--dry-run', '--metrics-file', $mfile);
is($rc, 0, 'gc --dry-run --metrics-file');
is((stat $mfile)[9], $mtime, 'a dry run leaves the metrics file as it was');

($rc, $out, $err) = nixcache('gc', '--help');
is($rc, 0, 'gc --help');
like($out, qr/--keep-days N/, 'gc --help: --keep-days');
like($out, qr/--metrics-file FILE/, 'gc --help: --metrics-file');

done_testing();
