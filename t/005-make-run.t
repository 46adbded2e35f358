# tools/run.sh (`make run`): starts Redis and nginx with the module on the
# ports it is given, serves a cache from $DATA, refuses a port in use,
# and leaves nothing running after SIGTERM.

use strict;
use warnings;

use lib 't/lib';
use Nixcache::Fixture ();
use Nixcache::Skip;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h setsid);
use Test::More;
use Time::HiRes qw(sleep time);

my $root = abs_path(dirname(__FILE__) . '/..');
chdir $root or die "chdir $root: $!";

my $module = $ENV{TEST_NIXCACHE_MODULE}
             // "$root/build/ngx_http_nixcache_module.so";
skip_all_missing("module not built ($module): run make") unless -f $module;

my $data = tempdir('nixcache-run-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $data;
my $port = free_port();
my $rport = free_port();
$rport = free_port() while $rport == $port;

# Outside the ephemeral port range, checked free.
sub free_port {
    for (1 .. 200) {
        my $p = 10000 + int rand 20000;
        my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$p",
                                      ReuseAddr => 1, Listen => 1) or next;
        close $s;
        return $p;
    }
    die "no free port\n";
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or return '';
    local $/;
    return <$fh> // '';
}

sub get {
    my ($path) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 5) or return '';
    print {$s} "GET $path HTTP/1.0\r\nHost: localhost\r\n\r\n";
    local $/;
    return <$s> // '';
}

sub alive {
    my ($pid) = @_;
    my $stat = slurp("/proc/$pid/stat");
    return $stat ne '' && $stat !~ /^\d+ \(.*\) [ZX]/s;
}

sub start_run {
    my ($port, $rport, $data, $out) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        setsid();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or die;
        open STDERR, '>&', \*STDOUT;
        $ENV{PORT} = $port;
        $ENV{REDIS_PORT} = $rport;
        $ENV{DATA} = $data;
        $ENV{MODULE} = $module;
        exec 'tools/run.sh' or exit 127;
    }
    return $pid;
}

my $pid = start_run($port, $rport, "$data/state", "$data/run.out");
my $stop_group = sub { kill 'KILL', -$pid if $pid && alive($pid) };
END { $stop_group->() if $stop_group }

my $info = '';
for (1 .. 200) {
    $info = get('/nix-cache-info');
    last if $info =~ /StoreDir/;
    last unless alive($pid);
    sleep 0.05;
}
like($info, qr{^HTTP/1\.1 200.*\r\n\r\nStoreDir: /nix/store\n}s,
     'nix-cache-info answers on the chosen port')
    or diag(slurp("$data/run.out"));

# run.sh prints its instructions once both servers answer
my $out = '';
for (1 .. 100) {
    $out = slurp("$data/run.out");
    last if $out =~ /NIX_CONF_DIR/ || !alive($pid);
    sleep 0.05;
}
like($out, qr{build/nixcache push --redis 127\.0\.0\.1:$rport --chunks \Q$data\E/state/chunks -r /nix/store/},
     'prints how to push');
like($out, qr{nix copy --from http://127\.0\.0\.1:$port --option require-sigs false},
     'prints how to substitute');
like($out, qr{NIX_CONF_DIR=}, 'prints the no-daemon Nix recipe');
like($out, qr{^  metrics http://127\.0\.0\.1:$port/metrics }m,
     'prints the metrics URL');
like($out, qr{^  health  http://127\.0\.0\.1:$port/health$}m,
     'prints the health URL');
like(get('/health'), qr{^HTTP/1\.1 200.*\r\n\r\nok\n\z}s, '/health: ok');
like(get('/metrics'),
     qr{^HTTP/1\.1[ ]200[ ].*\r\nContent-Type:[ ]text/plain;[ ]version=0\.0\.4\r\n.*
        ^nixcache_requests_total\{cache="nixcache:",route="cache_info",status="2xx"\}\ [1-9]}msx,
     '/metrics: counts the nix-cache-info GET');

ok(-d "$data/state/chunks" && ((stat "$data/state/chunks")[2] & 0005) == 5,
   'chunk dir exists and is readable by others');

# The cache is wired to that Redis and chunk dir: a NAR written there in our
# format is served.
{
    local $Nixcache::Fixture::REDIS_PORT = $rport;
    local $Nixcache::Fixture::CHUNKS = "$data/state/chunks";
    local $Nixcache::Fixture::DIR = "$data/scratch";
    my $f = Nixcache::Fixture::add_nar(name => 'runpath',
                                       content => "served by make run\n");
    my $ni = get("/$f->{HASH}.narinfo");
    like($ni, qr{^HTTP/1\.1 200.*\r\n\r\nStorePath: \Q$f->{STOREPATH}\E\n}s,
         'a narinfo written to its Redis is served');
    my $nar = get("/nar/$f->{NARHASH}.nar");
    my ($body) = $nar =~ /\r\n\r\n(.*)\z/s;
    ok(defined $body && $body eq $f->{nar},
       'its NAR is served from the chunk dir');
}

# A second instance on the same port is refused, and the first survives.
my $out2 = `PORT=$port REDIS_PORT=$rport DATA=$data/other MODULE=$module tools/run.sh 2>&1`;
isnt($? >> 8, 0, 'a second run on a port in use fails');
like($out2, qr/port $port is already in use/, '... and says why');
like(get('/nix-cache-info'), qr/StoreDir/, 'the first instance still serves');

my $nginx_pid = (slurp("$data/state/nginx.pid") =~ /(\d+)/)[0];
my $redis_pid = (grep { slurp("/proc/$_/cmdline") =~ /^redis-server\0?.*:$rport/ }
                 map { m{/proc/(\d+)} } glob '/proc/[0-9]*')[0];
ok($nginx_pid && alive($nginx_pid), 'nginx master is running');
ok($redis_pid && alive($redis_pid), 'redis-server is running');

kill 'TERM', $pid;
my $until = time + 15;
sleep 0.05 while waitpid($pid, WNOHANG) == 0 && time < $until;
my $status = $?;
ok(time < $until, 'run.sh exits after SIGTERM');
is($status >> 8, 0, '... with status 0');

sleep 0.05 while ($nginx_pid && alive($nginx_pid)
                  || $redis_pid && alive($redis_pid)) && time < $until;
ok(!$nginx_pid || !alive($nginx_pid), 'nginx is gone');
ok(!$redis_pid || !alive($redis_pid), 'redis-server is gone');
ok(!IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 1),
   'nothing listens on the port any more');

undef $pid;
done_testing();
