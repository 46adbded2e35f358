# Crash-safe ingest: `nixcache push` killed with SIGKILL at random moments
# never leaves a narinfo that cannot be served.  After every kill:
#
#   - `nixcache verify` (full) reports nothing: every narinfo present has
#     its manifest and every chunk, sound;
#   - every file under a chunk's final name is one valid zstd frame
#     (`zstd -t`), since a later push reuses stored chunks;
#   - every narinfo's references are present (push goes references first);
#   - for a sample of the narinfos present, the NAR fetched through the
#     module (nginx and Redis started here) hashes to NarHash, the .nar.zst
#     to FileHash; absent paths are 404, never 5xx.
#
# Half the kills start from an empty cache, half resume from what the
# previous kill left (the delay then scaled to the NAR bytes left).  A last push completes, and everything verifies.
#
#   prove -I t/lib t/080-crash-push.t   (needs `make`)
#   CRASH_KILLS=N kills during a push are wanted (default 20), within
#   CRASH_BUDGET seconds (default 60).

use strict;
use warnings;

use Cwd ();
use Digest::SHA qw(sha256);
use File::Basename ();
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use IPC::Run ();
use JSON::PP ();
use MIME::Base64 ();
use POSIX qw(:sys_wait_h);
use Test::More;
use Time::HiRes qw(sleep time);

use lib 't/lib';
use Nixcache::Cli;
use Nixcache::Skip;

my $root = Cwd::abs_path(File::Basename::dirname(__FILE__) . '/..');
my $module = $ENV{TEST_NIXCACHE_MODULE}
             // "$root/build/ngx_http_nixcache_module.so";
skip_all_missing("$module not built (make)") unless -f $module;

my $T = cli_setup();
chmod 0755, $T;             # nginx workers (nobody) read the chunks
my $S = "$T/store";
my $redis = start_redis();
my $sock = "unix:$T/redis/sock";
my $chunks = "$T/chunks";
my $kills = $ENV{CRASH_KILLS} || 20;

my ($rc, $out, $err);
my $nginx_pid;


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


# nginx ---------------------------------------------------------------------

sub nginx_start {
    my $n = "$T/nginx";
    make_path($n);

    for my $try (1 .. 3) {
        my $port = free_port();
        spew("$n/nginx.conf", <<"EOF");
load_module $module;

worker_processes 1;
daemon on;
pid $n/nginx.pid;
error_log $n/error.log info;

events {
    worker_connections 256;
}

http {
    access_log $n/access.log;
    client_body_temp_path $n/client_body;
    proxy_temp_path $n/proxy;
    fastcgi_temp_path $n/fastcgi;
    uwsgi_temp_path $n/uwsgi;
    scgi_temp_path $n/scgi;

    nixcache_redis $redis;

    server {
        listen 127.0.0.1:$port;

        location / {
            nixcache on;
            nixcache_chunks $chunks;
        }
    }
}
EOF
        my $o = '';
        IPC::Run::run(['nginx', '-p', $n, '-c', "$n/nginx.conf", '-e',
                       "$n/error.log"], '<', \undef, '>&', \$o);
        for (1 .. 100) {
            if (-s "$n/nginx.pid"
                && IO::Socket::INET->new("127.0.0.1:$port"))
            {
                ($nginx_pid) = slurp("$n/nginx.pid") =~ /(\d+)/;
                return $port;
            }
            sleep 0.05;
        }
        diag("nginx did not start: $o");
    }

    die "nginx did not start\n";
}

END {
    if ($nginx_pid) {
        kill 'TERM', $nginx_pid;
        sleep 0.2;
    }
}

my $port = nginx_start();

# GET through the module: (status, sha256 of the body, body length)
sub fetch {
    my ($uri) = @_;
    my $file = "$T/fetched";
    unlink $file;
    my ($rc, $code) = nix('curl', '-s', '-o', $file, '-w', '%{http_code}',
                          '--max-time', '30', "http://127.0.0.1:$port/$uri");
    return ($code || 'none') unless -e $file;
    my $sha = Digest::SHA->new(256)->addfile($file, 'b')->digest;
    return ($code, $sha, -s $file);
}


# Store contents: a closure c -> b -> a, a 30 MB NAR, some medium ones ------

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

# half incompressible, half text: both kinds of frames, 30 MB
{
    open(my $fh, '>:raw', "$T/big.bin") or die;
    open(my $rnd, '<:raw', '/dev/urandom') or die;
    for my $i (1 .. 15) {
        read($rnd, my $buf, 1024 * 1024) == 1024 * 1024 or die;
        print $fh $buf;
        print $fh join '', map { "block $i line $_ of text\n" }
                           1 .. 1024 * 1024 / 24;
    }
    close $fh or die;
}
my $big = add("$T/big.bin");
unlink "$T/big.bin";

my @medium;
for my $i (1 .. 4) {
    make_path("$T/m$i/sub");
    spew("$T/m$i/data", noise("m$i", $i * 700 * 1024));
    spew("$T/m$i/sub/text", join '', map { "m$i $_\n" } 1 .. 30000 * $i);
    push @medium, add("$T/m$i");
}

($rc, $out, $err) = nix('nix-store', '--store', $S, '-qR', $c, $big,
                        @medium);
my @all = sort split /\n/, $out;
is(scalar @all, 8, '8 store paths to push');

my %nar_hash;       # store hash -> [NarHash digest, NarSize]
{
    ($rc, $out, $err) = nix('nix', 'path-info', '--store', $S, '--json',
                            @all);
    for my $p (@{ JSON::PP::decode_json($out) }) {
        my ($b64) = $p->{narHash} =~ /^sha256-(.*)$/ or die;
        $nar_hash{hash_of($p->{path})} =
            [MIME::Base64::decode_base64($b64), $p->{narSize}];
    }
}

my @push = ('push', '-q', '--redis', $sock, '--chunks', $chunks, '--store',
            $S, '-r', $c, $big, @medium);

sub reset_cache {
    redis_cmd('FLUSHALL');
    remove_tree($chunks);
}


# The invariants ------------------------------------------------------------

sub present {
    my @keys = @{ redis_cmd('KEYS', 'nixcache:narinfo:*') };
    return map { /:([0-9a-z]{32})$/ ? ($1) : () } @keys;
}

my %name_of = map { (hash_of($_) => $_ =~ s{^/nix/store/\w{32}-}{}r) } @all;

sub check_cache {
    my ($label, $sample) = @_;
    my @bad;

    my ($rc, $out, $err) = nixcache('verify', '--redis', $sock, '--chunks',
                                    $chunks);
    push @bad, "verify exit $rc:\n$out$err" if $rc != 0 || $out ne '';

    # no half-written file under a chunk's final name
    my @files = grep { !m{/\.[^/]*$} } glob("$chunks/*/*");
    if (@files) {
        my $zerr = '';
        IPC::Run::run(['zstd', '-t', '-q', @files], '<', \undef,
                      '>&', \$zerr)
            or push @bad, "zstd -t: $zerr";
    }

    my %have = map { ($_ => 1) } present();

    for my $h (sort keys %have) {
        my $ni = parse_narinfo(redis_get("nixcache:narinfo:$h"));
        for my $ref (split ' ', $ni->{References} // '') {
            my ($rh) = $ref =~ /^(\w{32})-/;
            push @bad, "$h refers to absent $ref" unless $have{$rh};
        }
    }

    # through nginx: a sample of the present NARs (the big one whenever it
    # is there), and 404s for the absent
    my @have = sort keys %have;
    my @pick = grep { $name_of{$_} eq 'big.bin' } @have;
    @pick = @have if $sample >= @have;
    while (@pick < $sample && @pick < @have) {
        my $h = $have[int rand @have];
        push @pick, $h unless grep { $_ eq $h } @pick;
    }

    for my $h (@pick) {
        my $ni = parse_narinfo(redis_get("nixcache:narinfo:$h"));
        my ($want, $size) = @{ $nar_hash{$h} };
        my ($code, $sha, $len) = fetch("$h.narinfo");
        push @bad, "GET $h.narinfo: $code" if $code ne '200';

        my ($n32) = $ni->{URL} =~ m{^nar/(\w{52})\.nar\.zst$};
        ($code, $sha, $len) = fetch("nar/$n32.nar");
        push @bad, "GET nar/$n32.nar ($name_of{$h}): $code, "
                   . ($len // 0) . " bytes, want $size"
            if $code ne '200' || $sha ne $want || $len != $size;

        # verify recomputed FileHash already; the big one is long to get
        next if $name_of{$h} eq 'big.bin' && $sample < @all;

        ($code, $sha, $len) = fetch($ni->{URL});
        push @bad, "GET $ni->{URL} ($name_of{$h}): $code, FileHash differs"
            if $code ne '200'
               || 'sha256:' . nix32($sha // '') ne $ni->{FileHash}
               || $len != $ni->{FileSize};
    }

    for my $h (grep { !$have{$_} } keys %nar_hash) {
        my ($code) = fetch("$h.narinfo");
        push @bad, "GET $h.narinfo (absent): $code" if $code ne '404';
    }

    ok(!@bad, "$label: " . scalar(@have) . '/' . scalar(@all)
              . ' narinfos, all servable'
              . (@pick ? ' (' . scalar(@pick) . ' NARs fetched)' : ''))
        or diag(join "\n", @bad);

    return scalar @have;
}


# A normal push, timed ------------------------------------------------------

reset_cache();
my $t0 = time;
($rc, $out, $err) = nixcache(@push);
my $duration = time - $t0;
is($rc, 0, 'a full push') or diag($err);
is(scalar(my @p = present()), scalar @all, 'every path pushed');
check_cache('after a full push', scalar @all);
diag(sprintf 'a full push takes %.2f s', $duration);


# Kills ---------------------------------------------------------------------

# Until $kills kills hit a running push (or the time budget is spent: the
# machine may be loaded).  A fresh push that ends before its kill tells
# how long a push takes now: the delays follow.

my ($mid, $done_before, $i) = (0, 0, 0);
my %partial;
my $budget = time + ($ENV{CRASH_BUDGET} || 60);

while ($mid < $kills && time < $budget) {
    $i++;

    # resuming a complete cache would only skip: start afresh then
    my %have = map { ($_ => 1) } present();
    my $fresh = $i % 2 || keys %have == @all;
    reset_cache() if $fresh;

    # a resumed push has only the absent NARs left to do
    my $left = 1;
    if (!$fresh) {
        my ($total, $absent) = (0, 0);
        for my $h (keys %nar_hash) {
            $total += $nar_hash{$h}[1];
            $absent += $nar_hash{$h}[1] unless $have{$h};
        }
        $left = $absent / $total;
        $left = 0.1 if $left < 0.1;
    }

    my $delay = rand($duration * $left);

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', "$T/push.err";
        exec($Nixcache::Cli::CLI, @push) or POSIX::_exit(127);
    }

    my $start = time;
    my ($finished, $status);

    while (time - $start < $delay) {
        last if $finished = waitpid($pid, WNOHANG) == $pid;
        sleep 0.002;
    }

    $status = $?;

    if ($finished && $fresh) {
        $duration = ($duration + time - $start) / 2;
    }

    if (!$finished) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        $status = $?;
    }

    # the NAR dumper it started: gone with SIGPIPE, or here
    kill 'KILL', -$pid;

    if ($finished || ($status & 127) != 9) {
        $done_before++;
        is($status >> 8, 0, "kill $i: push finished before the kill")
            or diag(slurp("$T/push.err"));
    } else {
        $mid++;
    }

    my $n = check_cache(sprintf('kill %d after %.3f s (%s)', $i, $delay,
                                $fresh ? 'from empty' : 'resumed'), 2);
    $partial{$n}++;
}

diag("$mid kills during a push, $done_before after it finished; "
     . 'narinfos present after the kills: '
     . join(', ', map { "$_ ($partial{$_}x)" } sort { $a <=> $b }
                  keys %partial));

ok($mid >= $kills, "$mid kills hit a running push (want $kills)");
ok((grep { $_ > 0 && $_ < @all } keys %partial) >= 2,
   'kills left several different partial caches');


# Recovery ------------------------------------------------------------------

($rc, $out, $err) = nixcache(@push);
is($rc, 0, 'a push after the last kill completes') or diag($err);
is(scalar(@p = present()), scalar @all, 'every path present');
check_cache('after the final push', scalar @all);

my @tmp = glob("$chunks/*/.*.tmp.*");
note(scalar(@tmp) . ' temporary chunk files left by the kills');

my $log = slurp("$T/nginx/error.log") // '';
my @worse = grep { /\[(error|crit|alert|emerg)\]|exited on signal/ }
            split /^/, $log;
ok(!@worse, 'nginx error log: nothing at [error] or above')
    or diag(join '', @worse[0 .. ($#worse < 20 ? $#worse : 19)]);

stop_redis();

done_testing();
