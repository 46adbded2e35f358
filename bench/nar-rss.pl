#!/usr/bin/perl
# Memory of a worker serving a large NAR: starts its own redis-server and
# nginx (module from build/), stores a NAR of --size bytes (default 1 GiB;
# --distinct chunks of --chunk bytes cycled, so the disk holds only a few
# MiB), downloads it as .nar.zst and .nar (fast, rate-limited, and several
# at once), checks every body's SHA-256, and prints the worker's RSS and
# open fds before, during (maximum of samples every 50 ms) and after.
# Memory per request must not depend on the NAR size: RSS stays flat.
#
#   perl bench/nar-rss.pl [--size BYTES] [--chunk BYTES] [--distinct N]
#                         [--window N] [--rate BYTES/s] [--parallel N]
#
# Exits non-zero if a body is wrong or RSS grew by more than --max-growth
# KiB (default 65536) during any download.

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA;
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use Getopt::Long;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

my %o = (size => 1 << 30, chunk => 256 * 1024, distinct => 64,
         window => 1024, rate => 200 * 1024 * 1024, parallel => 4,
         'max-growth' => 65536);
GetOptions(\%o, 'size=i', 'chunk=i', 'distinct=i', 'window=i', 'rate=i',
           'parallel=i', 'max-growth=i') or die "bad options\n";

my $root = abs_path(dirname(__FILE__) . '/..');
my $module = $ENV{TEST_NIXCACHE_MODULE}
             // "$root/build/ngx_http_nixcache_module.so";
-f $module or die "$module missing: run make\n";

my $NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

sub nix32 {
    my @b = unpack 'C*', shift;
    my $len = int((@b * 8 - 1) / 5) + 1;
    my $s = '';
    for (my $n = $len - 1; $n >= 0; $n--) {
        my $bit = $n * 5;
        my ($i, $j) = ($bit >> 3, $bit & 7);
        my $c = $b[$i] >> $j;
        $c |= $b[$i + 1] << (8 - $j) if $i + 1 < @b;
        $s .= substr $NIX32, $c & 0x1f, 1;
    }
    return $s;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1) or die "socket: $!\n";
    my $p = $s->sockport;
    close $s;
    return $p;
}

my $dir = tempdir('nixcache-rss-XXXXXX', DIR => '/tmp', CLEANUP => 1);
chmod 0755, $dir;
mkdir "$dir/$_", 0755 for qw(chunks logs tmp redis);
chmod 0755, "$dir/chunks";

my ($rport, $port) = (free_port(), free_port());
my ($nginx_started, $redis_started);

END {
    system('nginx', '-p', "$dir/", '-c', "$dir/nginx.conf", '-s', 'stop')
        if $nginx_started;
    if ($redis_started && open my $fh, '<', "$dir/redis/pid") {
        chomp(my $pid = <$fh>);
        kill 'TERM', $pid if $pid;
    }
    sleep 0.3;
}

system('redis-server', '--bind', '127.0.0.1', '--port', $rport, '--save', '',
       '--appendonly', 'no', '--dir', "$dir/redis", '--daemonize', 'yes',
       '--pidfile', "$dir/redis/pid", '--logfile', "$dir/redis/log") == 0
    or die "redis-server failed\n";
$redis_started = 1;

for (1 .. 100) {
    last if `redis-cli -p $rport ping 2>/dev/null` =~ /PONG/;
    sleep 0.05;
}

# the distinct chunks: half random, half text, as real NARs mix both
{
    open my $out, '>:raw', "$dir/content" or die $!;
    open my $rnd, '<:raw', '/dev/urandom' or die $!;
    for my $i (1 .. $o{distinct}) {
        if ($i % 2) {
            read $rnd, my $b, $o{chunk};
            print $out $b;
        } else {
            my $t = '';
            my $k = 0;
            $t .= "lib/file-$i-" . $k++ . ".so: ELF text\n"
                while length $t < $o{chunk};
            print $out substr $t, 0, $o{chunk};
        }
    }
    close $out;
}

print "# storing a NAR of $o{size} bytes ($o{distinct} distinct chunks of "
      . "$o{chunk} bytes)\n";
my $fix = `$^X $root/bench/nar-fixture.pl --redis-port $rport \\
           --chunks $dir/chunks --content $dir/content \\
           --chunk-size $o{chunk} --cycle $o{distinct} --size $o{size}`;
$? == 0 or die "nar-fixture.pl failed\n";
my %f = $fix =~ /(\w+)=(\S+)/g;
print "# $fix";

open my $conf, '>', "$dir/nginx.conf" or die $!;
print $conf <<"EOF";
load_module $module;
worker_processes 1;
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log info;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/1;
    proxy_temp_path $dir/tmp/2;
    fastcgi_temp_path $dir/tmp/3;
    uwsgi_temp_path $dir/tmp/4;
    scgi_temp_path $dir/tmp/5;
    nixcache_redis 127.0.0.1:$rport;
    nixcache_manifest_window $o{window};
    server {
        listen 127.0.0.1:$port;
        location / {
            nixcache on;
            nixcache_chunks $dir/chunks;
        }
        location /slow/ {
            limit_rate $o{rate};
            rewrite ^/slow(/.*)\$ \$1 break;
            nixcache on;
            nixcache_chunks $dir/chunks;
        }
    }
}
EOF
close $conf;

system('nginx', '-p', "$dir/", '-c', "$dir/nginx.conf") == 0
    or die "nginx failed to start\n";
$nginx_started = 1;
sleep 0.5;

open my $pf, '<', "$dir/logs/nginx.pid" or die "no pid\n";
chomp(my $master = <$pf>);
my ($worker) = grep { /\S/ } split /\s+/,
               `ps -o pid= --ppid $master`;
die "no worker\n" unless $worker;

sub rss {
    open my $fh, '<', "/proc/$worker/status" or return 0;
    while (<$fh>) {
        return $1 if /^VmRSS:\s+(\d+)/;
    }
    return 0;
}

sub fds {
    opendir my $d, "/proc/$worker/fd" or return 0;
    my $n = grep { !/^\./ } readdir $d;
    return $n;
}

# downloads with curl into a SHA-256 (in a child each), sampling meanwhile
sub run {
    my ($label, $path, $want, $n) = @_;
    my $before = rss();
    my ($max, $maxfd) = ($before, fds());
    my @kids;

    for (1 .. $n) {
        my $pid = open my $fh, '-|';
        die "fork: $!\n" unless defined $pid;
        if (!$pid) {
            open my $c, '-|', 'curl', '-s', '-f', "http://127.0.0.1:$port$path"
                or die;
            binmode $c;
            my $sha = Digest::SHA->new(256);
            my ($buf, $len) = ('', 0);
            while (my $r = sysread $c, $buf, 1 << 20) {
                $sha->add($buf);
                $len += $r;
            }
            close $c;
            print nix32($sha->digest), " $len\n";
            close STDOUT;
            POSIX::_exit(0);    # not exit: END would stop the servers
        }
        push @kids, $fh;
    }

    my $t0 = time;
    my @res;
    my $sel = IO::Select->new(@kids);
    while ($sel->count) {
        for my $fh ($sel->can_read(0.05)) {
            my $line = <$fh>;
            push @res, $line if defined $line;
            $sel->remove($fh);
            close $fh;
        }
        my $r = rss();
        $max = $r if $r > $max;
        my $f = fds();
        $maxfd = $f if $f > $maxfd;
    }
    my $secs = time - $t0;
    sleep 0.2;
    my $after = rss();

    my $ok = @res == $n && !grep { !/^\Q$want\E \d+$/ } @res;
    printf "%-28s x%d %6.1fs  rss KiB before %7d  max %7d  after %7d  "
           . "(+%d)  fds max %d  %s\n", $label, $n, $secs, $before, $max,
           $after, $max - $before, $maxfd, $ok ? 'sha256 ok' : 'BODY WRONG';
    print "#   got: @res" unless $ok;
    return ($ok, $max - $before);
}

my $fail = 0;
my $h = $f{narhash};
for my $t (["nar.zst", "/nar/$h.nar.zst", $f{filehash}, 1],
           ["nar", "/nar/$h.nar", $h, 1],
           ["nar.zst parallel", "/nar/$h.nar.zst", $f{filehash}, $o{parallel}],
           ["nar parallel", "/nar/$h.nar", $h, $o{parallel}],
           ["nar rate-limited", "/slow/nar/$h.nar", $h, 1])
{
    my ($ok, $growth) = run($t->[0], $t->[1], $t->[2], $t->[3]);
    $fail++ if !$ok || $growth > $o{'max-growth'};
}

open my $log, '<', "$dir/logs/error.log" or die;
my @bad = grep { /\[(error|alert|crit|emerg)\]/ } <$log>;
print "# error.log:\n", @bad if @bad;
$fail++ if @bad;

print $fail ? "FAIL\n" : "ok: RSS flat, bodies exact\n";
exit($fail ? 1 : 0);
