package Nixcache::Test;

# A Test::Nginx-like harness for ngx_nixcache on Test::Base: every .t file
# gets its own temp dir, redis-server and nginx port; every block gets a
# flushed Redis, an empty chunk dir, its own nginx.conf and a fresh nginx.
# See README.md ("Testing") for the block format.

use strict;
use warnings;

use Test::Base;
use Test::LongString;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IPC::Run ();
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

use Nixcache::Fixture ();

use parent 'Exporter';

our @EXPORT = qw(run_tests free_port env_or nixcache_root);

$Test::LongString::Max     = 160;
$Test::LongString::Context = 40;

my $ROOT = abs_path(dirname(__FILE__) . '/../../..');

my ($T, %BASE, $nginx_pid, $nginx_module, $valgrind_pid, $valgrind_status);

# Wait statuses of the children that _alive reaped, by pid.
my %reaped;

# Under valgrind everything takes longer: request timeouts, and the waits
# and bounds of init/post scripts (TEST_NIXCACHE_SLOW, "scaled").
my $SLOW = $ENV{TEST_NIXCACHE_VALGRIND} ? 5 : 1;

# TEST_NIXCACHE_HUP=1: keep nginx running across blocks and switch to each
# block's configuration with a HUP reload (new workers, Redis reconnects).
my $HUP = $ENV{TEST_NIXCACHE_HUP} && !$ENV{TEST_NIXCACHE_VALGRIND};

# sendfile as recommended (on), unless TEST_NIXCACHE_SENDFILE=off or the
# block's http_config sets it (a server or location may still override).
my $SENDFILE = ($ENV{TEST_NIXCACHE_SENDFILE} // 'on') =~ /^(off|0)$/
               ? 'off' : 'on';


sub nixcache_root { $ROOT }


sub env_or {
    my ($name, $default) = @_;
    return defined $ENV{$name} && $ENV{$name} ne '' ? $ENV{$name} : $default;
}


# A port nobody listens on, outside the ephemeral range so no outgoing
# connection can hold it.
sub free_port {
    for (1 .. 200) {
        my $port = 10000 + int rand 20000;
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $port,
                                      Proto     => 'tcp',
                                      ReuseAddr => 1,
                                      Listen    => 1)
            or next;
        close $s;
        return $port;
    }
    die "no free port found\n";
}


sub _slurp {
    my ($path, $offset) = @_;
    open my $fh, '<:raw', $path or return '';
    seek $fh, $offset // 0, 0;
    local $/;
    my $data = <$fh>;
    return $data // '';
}


sub _spew {
    my ($path, $data, $mode) = @_;
    open my $fh, '>:raw', $path or die "write $path: $!\n";
    print {$fh} $data;
    close $fh or die "write $path: $!\n";
    chmod $mode, $path if defined $mode;
}


sub _run {
    my ($cmd, $timeout) = @_;
    my $out = '';
    my $ok = eval {
        IPC::Run::run($cmd, '<', \undef, '>&', \$out,
                      IPC::Run::timeout($timeout // 60));
    };
    return ($? >> 8, $out) if !$@;
    return (-1, $out . "\n[timed out or failed: $@]");
}


# ---- Redis ---------------------------------------------------------------

sub _write_redis_ctl {
    my ($port) = @_;
    my $dir = "$T/redis";
    my $ctl = "$T/redis-ctl";

    _spew($ctl, <<"EOF", 0755);
#!/bin/bash
# Controls the redis-server of one test file: start|stop|restart|pause|resume
port=$port
dir=$dir
pidfile=\$dir/redis.pid

pid() { cat "\$pidfile" 2>/dev/null; }
# init may reap late: a zombie is not running
running() {
    [ -n "\$1" ] && [ -r /proc/\$1/stat ] || return 1
    state=\$(sed 's/.*) //' /proc/\$1/stat 2>/dev/null | cut -d' ' -f1)
    [ -n "\$state" ] && [ "\$state" != Z ] && [ "\$state" != X ]
}
alive() { running "\$(pid)"; }

start() {
    alive && return 0
    redis-server --bind 127.0.0.1 --port \$port --save '' \\
        --appendonly no --dir "\$dir" --daemonize yes \\
        --pidfile "\$pidfile" --logfile "\$dir/redis.log" || return 1
    for i in \$(seq 1 200); do
        [ "\$(timeout 2 redis-cli -p \$port ping 2>/dev/null)" = PONG ] \\
            && return 0
        sleep 0.025
    done
    echo "redis-ctl: redis-server did not answer on port \$port" >&2
    return 1
}

stop() {
    alive || { rm -f "\$pidfile"; return 0; }
    p=\$(pid)
    kill -CONT "\$p" 2>/dev/null
    kill -TERM "\$p" 2>/dev/null
    # by pid: redis removes its pidfile before it has finished exiting
    for i in \$(seq 1 200); do
        running "\$p" || { rm -f "\$pidfile"; return 0; }
        sleep 0.025
    done
    kill -KILL "\$p" 2>/dev/null
    rm -f "\$pidfile"
}

case "\$1" in
    start)   start ;;
    stop)    stop ;;
    restart) stop && start ;;
    pause)   alive && kill -STOP "\$(pid)" ;;
    resume)  alive && kill -CONT "\$(pid)"; true ;;
    pid)     pid ;;
    *)       echo "usage: \$0 start|stop|restart|pause|resume|pid" >&2
             exit 2 ;;
esac
EOF
    return $ctl;
}


sub _redis_ensure {
    my ($rc, $out) = _run([$BASE{TEST_NIXCACHE_REDIS_CTL}, 'resume']);
    ($rc, $out) = _run([$BASE{TEST_NIXCACHE_REDIS_CTL}, 'start']);
    die "cannot start redis-server: $out\n" if $rc != 0;
}


# ---- nginx ---------------------------------------------------------------

sub _nginx_conf {
    my ($block, $v) = @_;
    my $module = _module_path($block);
    my $valgrind = $ENV{TEST_NIXCACHE_VALGRIND};
    my $http_config = _sec($block, q{http_config}) // '';
    my $conf = '';

    $conf .= "load_module $module;\n" if $module ne '';
    $conf .= "master_process off;\ndaemon off;\n" if $valgrind;
    # one worker, unless the block asks for more
    $conf .= "worker_processes 1;\n"
        unless (_sec($block, q{main_config}) // '') =~ /^\s*worker_processes\b/m;
    $conf .= <<"EOF";
error_log $T/logs/error.log debug;
pid $T/logs/nginx.pid;

EOF
    $conf .= (_sec($block, q{main_config}) // '') . "\n";
    $conf .= <<"EOF";
events {
    worker_connections 1024;
}

http {
    access_log $T/logs/access.log;
    client_body_temp_path $T/tmp/client_body;
    proxy_temp_path $T/tmp/proxy;
    fastcgi_temp_path $T/tmp/fastcgi;
    uwsgi_temp_path $T/tmp/uwsgi;
    scgi_temp_path $T/tmp/scgi;
    default_type text/plain;
EOF
    $conf .= "    nixcache_redis 127.0.0.1:$v->{TEST_NIXCACHE_REDIS_PORT};\n"
        if $module ne '' && $http_config !~ /\bnixcache_redis\s/;
    $conf .= "    sendfile $SENDFILE;\n" if $http_config !~ /\bsendfile\s/;
    $conf .= "\n$http_config\n" if $http_config ne '';
    $conf .= <<"EOF";

    server {
        listen 127.0.0.1:$v->{TEST_NIXCACHE_PORT};
        server_name localhost;

@{[ _sec($block, q{config}) // '' ]}
    }
}
EOF
    return $conf;
}


sub _module_path {
    my ($block) = @_;
    return '' if defined _sec($block, q{no_module});
    return $BASE{TEST_NIXCACHE_MODULE};
}


sub _nginx_cmd {
    return ('nginx', '-p', "$T/", '-c', "$T/nginx.conf",
            '-e', "$T/logs/error.log", @_);
}


sub _children_of {
    my ($ppid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = _slurp($stat);
        push @kids, $1 if $s =~ /^(\d+) \(.*\) \S+ (\d+)/s && $2 == $ppid;
    }
    return @kids;
}


# A daemon's parent is init, which may reap late: a zombie counts as gone.
# A child of ours (nginx under valgrind) is reaped, its status kept.
sub _alive {
    my ($pid) = @_;
    $reaped{$pid} = $? if waitpid($pid, WNOHANG) == $pid;
    my $stat = _slurp("/proc/$pid/stat");
    return 0 if $stat eq '';
    return $stat !~ /^\d+ \(.*\) [ZX]/s;
}


sub _wait_gone {
    my ($pid, $secs) = @_;
    my $until = time + $secs;
    while (time < $until) {
        return 1 unless _alive($pid);
        sleep 0.01;
    }
    return 0;
}


# Whether process $pid itself holds the listening socket of 127.0.0.1:$port
# (someone else may listen there).
sub _listens {
    my ($pid, $port) = @_;
    my $want = sprintf '0100007F:%04X', $port;
    my %inodes;
    for my $line (split /\n/, _slurp('/proc/net/tcp')) {
        my @f = split ' ', $line;
        $inodes{$f[9]} = 1 if @f > 9 && $f[1] eq $want && $f[3] eq '0A';
    }
    return 0 unless %inodes;
    for my $fd (glob "/proc/$pid/fd/*") {
        my $l = readlink $fd // next;
        return 1 if $l =~ /^socket:\[(\d+)\]$/ && $inodes{$1};
    }
    return 0;
}


sub _nginx_start {
    if ($ENV{TEST_NIXCACHE_VALGRIND}) {
        my $pid = fork // die "fork: $!\n";
        if ($pid == 0) {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>>', "$T/logs/nginx.out";
            open STDERR, '>&', \*STDOUT;
            exec 'valgrind', '--quiet', '--leak-check=full',
                 '--num-callers=30', "--log-file=$T/logs/valgrind.log",
                 _nginx_cmd();
            exit 127;
        }
        $valgrind_pid = $nginx_pid = $pid;
        undef $valgrind_status;
        my $until = time + 30;
        while (time < $until) {
            return (1, '') if _listens($pid, $BASE{TEST_NIXCACHE_PORT});
            if (waitpid($pid, WNOHANG) == $pid) {
                undef $nginx_pid;
                undef $valgrind_pid;
                return (0, _slurp("$T/logs/nginx.out")
                           . _slurp("$T/logs/error.log"));
            }
            sleep 0.05;
        }
        return (0, 'nginx under valgrind did not listen in 30s');
    }

    unlink "$T/logs/nginx.pid";
    my ($rc, $out) = _run([_nginx_cmd()], 30);
    return (0, $out) if $rc != 0;

    my $until = time + 5;
    while (time < $until) {
        my $pid = _slurp("$T/logs/nginx.pid");
        if ($pid =~ /^(\d+)/) {
            $nginx_pid = $1;
            return (1, $out);
        }
        sleep 0.005;
    }
    return (0, "$out\nno pid file after 5 s");
}


# Reloads the running nginx with the new nginx.conf: returns once the old
# worker is gone and a new one runs, or (0, why) if the reload failed.
sub _nginx_reload {
    my ($err_offset) = @_;
    my %old = map { $_ => 1 } _children_of($nginx_pid);
    kill 'HUP', $nginx_pid;

    my $until = time + 10;
    while (time < $until) {
        my $log = _log_since($err_offset);
        return (0, $log) if $log =~ /\[emerg\]/;
        my @kids = _children_of($nginx_pid);
        my @new = grep { !$old{$_} } @kids;
        my @left = grep { _alive($_) } keys %old;
        return (1, '') if @new && !@left;
        sleep 0.01;
    }
    return (0, "reload did not complete in 10 s\n" . _log_since($err_offset));
}


# Lets a running nginx finish logging the request: waits until the access
# log has grown (the log phase is the last thing a request does).
sub _nginx_settle {
    my ($access_size) = @_;
    my $until = time + 2;
    sleep 0.01 while (-s "$T/logs/access.log" // 0) <= $access_size
                     && time < $until;
    sleep 0.02;
}


sub _nginx_stop {
    return unless $nginx_pid;
    my $pid = $nginx_pid;
    undef $nginx_pid;

    my @kids = _children_of($pid);
    kill 'TERM', $pid;
    my $gone = _wait_gone($pid, $valgrind_pid ? 5 : 10);

    # With master_process off, a SIGTERM that lands between nginx's look
    # at its flags and epoll_wait() is logged ("exiting") but then sleeps
    # with it, for good: another one wakes it (60 s in all).
    for (my $n = 1; !$gone && $valgrind_pid && $n < 12; $n++) {
        kill 'TERM', $pid;
        $gone = _wait_gone($pid, 5);
    }
    if (!$gone) {
        kill 'KILL', $pid, _children_of($pid);
        _wait_gone($pid, 5);
    }
    for my $k (@kids) {
        kill 'KILL', $k if _alive($k);
    }

    # With master_process off no master logs a crash: how the process
    # ended tells (0 after SIGTERM; valgrind dies of the signal that
    # killed nginx).  _alive may have seen a zombie it had not reaped.
    if ($valgrind_pid) {
        $reaped{$pid} = $? if $gone && !exists $reaped{$pid}
                             && waitpid($pid, 0) == $pid;
        $valgrind_status = !$gone ? 'did not exit within 60 s of SIGTERM'
                         : _status_text(delete $reaped{$pid});
    }
    undef $valgrind_pid;
}


# '' for a clean exit, else what ended the process.
sub _status_text {
    my ($status) = @_;
    return 'was not reaped: exit status unknown' if !defined $status;
    return "killed by signal " . ($status & 127) if $status & 127;
    return $status >> 8 ? 'exited ' . ($status >> 8) : '';
}


# ---- HTTP ----------------------------------------------------------------

sub _build_request {
    my ($block, $text, $more) = @_;
    my ($line, $body) = split /\n/, $text, 2;
    $line =~ s/^\s+|\s+$//g;
    my ($method, $uri, $proto) = split /\s+/, $line;
    $proto //= 'HTTP/1.1';

    if (defined $body) {
        chomp $body;
    }

    my @headers = grep { /\S/ } split /\n/, $more // '';
    my %have = map { /^([^:]+):/ ? (lc $1 => 1) : () } @headers;

    my $req = "$method $uri $proto\r\n";
    $req .= "Host: localhost\r\n" unless $have{host};
    $req .= "Connection: close\r\n" unless $have{connection};
    $req .= "$_\r\n" for @headers;
    $req .= 'Content-Length: ' . length($body) . "\r\n"
        if defined $body && !$have{'content-length'}
           && !$have{'transfer-encoding'};
    $req .= "\r\n";
    $req .= $body if defined $body;

    return ($req, $method);
}


# Returns { status, headers => {lc name => [values]}, head, body,
# complete, error }.
sub _http {
    my ($req, $method, $port, $timeout) = @_;
    my %r = (body => '', complete => 0, headers => {}, raw => '');
    my $deadline = time + $timeout;

    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port,
                                     Proto    => 'tcp',
                                     Timeout  => $timeout);
    if (!$sock) {
        $r{error} = "connect 127.0.0.1:$port: $!";
        return \%r;
    }
    binmode $sock;

    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite $sock, $req, length($req) - $off, $off;
        if (!defined $n) {
            $r{error} = "write: $!";
            last;
        }
        $off += $n;
    }

    my $sel = IO::Select->new($sock);
    my $buf = '';
    my $eof = 0;

    my $more = sub {
        return 0 if $eof;
        my $left = $deadline - time;
        if ($left <= 0 || !$sel->can_read($left)) {
            $r{error} //= "timeout after ${timeout}s";
            $r{timed_out} = 1;
            $eof = 1;
            return 0;
        }
        my $n = sysread $sock, $buf, 65536, length $buf;
        if (!$n) {
            $r{error} //= "read: $!" if !defined $n;
            $eof = 1;
            return 0;
        }
        return 1;
    };

    my $hend;
    while (1) {
        if ($buf =~ /\r?\n\r?\n/) {
            $hend = $+[0];
            last;
        }
        last unless $more->();
    }

    if (!defined $hend) {
        $r{error} //= 'connection closed before the response header';
        $r{raw} = $buf;
        close $sock;
        return \%r;
    }

    $r{head} = substr $buf, 0, $hend;
    $buf = substr $buf, $hend;

    my ($status_line, @lines) = split /\r?\n/, $r{head};
    ($r{status}) = $status_line =~ m{^HTTP/\d\.\d\s+(\d{3})};
    $r{status_line} = $status_line;
    for my $l (@lines) {
        next unless $l =~ /^([^:]+):\s*(.*?)\s*$/;
        push @{$r{headers}{lc $1}}, $2;
    }

    my $te = join ',', @{$r{headers}{'transfer-encoding'} // []};
    my $cl = $r{headers}{'content-length'};

    if ($method eq 'HEAD' || ($r{status} // 0) =~ /^(1..|204|304)$/) {
        $r{complete} = 1;

    } elsif ($te =~ /chunked/i) {
        my $body = '';
        my $pos = 0;
        CHUNKS: while (1) {
            my $l;
            while (1) {
                if (substr($buf, $pos) =~ /\A([0-9a-fA-F]+)[^\r\n]*\r\n/) {
                    $l = hex $1;
                    $pos += $+[0];
                    last;
                }
                last CHUNKS unless $more->();
            }
            if ($l == 0) {
                while (1) {
                    if (substr($buf, $pos) =~ /\A(?:[^\r\n]+\r\n)*\r\n/) {
                        $r{complete} = 1;
                        last CHUNKS;
                    }
                    last CHUNKS unless $more->();
                }
            }
            while (length($buf) - $pos < $l + 2) {
                if (!$more->()) {
                    $body .= substr $buf, $pos;
                    last CHUNKS;
                }
            }
            $body .= substr $buf, $pos, $l;
            $pos += $l + 2;
        }
        $r{body} = $body;
        $r{chunked} = 1;

    } elsif ($cl) {
        my $want = $cl->[0];
        while (length $buf < $want) {
            last unless $more->();
        }
        $r{complete} = length $buf >= $want;
        $r{extra} = substr $buf, $want if length $buf > $want;
        $r{body} = substr $buf, 0, $want;

    } else {
        1 while $more->();
        $r{complete} = !defined $r{error};
        $r{body} = $buf;
    }

    close $sock;
    return \%r;
}


# ---- blocks --------------------------------------------------------------

# A section's value (filters applied), undef when absent.
sub _sec {
    my ($block, $name) = @_;
    my $m = $block->can($name) or return undef;
    return scalar $block->$m();
}


sub _subst {
    my ($text, $v) = @_;
    return $text unless defined $text;
    if (ref $text eq 'ARRAY') {
        return [ map { _subst($_, $v) } @$text ];
    }
    return $text if ref $text;
    $text =~ s{\$(?:\{(TEST_NIXCACHE_\w+)\}|(TEST_NIXCACHE_\w+))}{
        my $name = $1 // $2;
        exists $v->{$name} ? $v->{$name} : "\$$name";
    }ge;
    return $text;
}


sub _patterns {
    my ($spec) = @_;
    return () unless defined $spec;
    my @items = ref $spec eq 'ARRAY' ? @$spec : split /\n/, $spec;
    return map {
        ref $_ ? $_
        : m{^qr/(.*)/(\w*)$} ? eval "qr/\$1/$2" // die "bad pattern $_: $@"
        : $_
    } grep { ref $_ || /\S/ } @items;
}


sub _match {
    my ($text, $pat) = @_;
    return ref $pat ? $text =~ $pat : index($text, $pat) >= 0;
}


# What every init/post script starts with, on one line so that bash's line
# numbers stay those of the block plus one.  t/lib/script.sh has "fails
# CMD..." (a bare "! CMD" cannot fail a set -e script: bash ignores the
# status of a negated command, and _negations refuses it) and "scaled".
my $SCRIPT_PRELUDE = "set -e -o pipefail; source '$ROOT/t/lib/script.sh'";


# The lines of a script that begin with a negated command ("! CMD"), as
# "line N: text"; here-document bodies are not commands and are passed by.
sub _negations {
    my ($script) = @_;
    my ($n, $heredoc, @bad) = (0, undef);
    for my $line (split /\n/, $script) {
        $n++;
        if (defined $heredoc) {
            undef $heredoc if $line =~ /^\t*\Q$heredoc\E$/;
            next;
        }
        push @bad, "line $n: $line" if $line =~ /^\s*!\s/;
        $heredoc = $1 if $line =~ /(?<!<)<<-?\s*['"]?([A-Za-z_]\w*)/;
    }
    return @bad;
}


# Runs an init/post script in its own process group, output to a file (so
# a server it leaves in the background does not hold a pipe we wait on).
# What it leaves running is stopped at the end of the block.
my @script_groups;

sub _script {
    my ($name, $script, $dir, $timeout) = @_;
    my $path = "$dir/$name.sh";
    my $outf = "$dir/$name.out";

    if (my @bad = _negations($script)) {
        return (2, join("\n", @bad) . "\n\"! CMD\" cannot fail under set -e"
                   . ' (bash ignores its status): write "fails CMD"');
    }
    _spew($path, "$SCRIPT_PRELUDE\n$script\n", 0755);

    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        POSIX::setpgid(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $outf or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        exec 'bash', $path or POSIX::_exit(127);
    }
    push @script_groups, $pid;
    _spew("$T/script-groups", join("\n", @script_groups) . "\n");

    my $until = time + $timeout;
    while (waitpid($pid, WNOHANG) != $pid) {
        if (time > $until) {
            kill 'KILL', -$pid;
            waitpid $pid, 0;
            return (-1, _slurp($outf) . "\n[timed out after ${timeout}s]");
        }
        sleep 0.005;
    }
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return ($rc, _slurp($outf));
}


sub _stop_script_groups {
    kill 'TERM', -$_ for @script_groups;
    @script_groups = ();
    unlink "$T/script-groups";
}


sub _byte_range {
    my ($data, $spec) = @_;
    my $len = length $data;
    $spec =~ s/\s+//g;
    if ($spec =~ /^(\d+)-(\d+)$/) {
        return substr $data, $1, $2 - $1 + 1;
    }
    if ($spec =~ /^(\d+)-$/) {
        return substr $data, $1;
    }
    if ($spec =~ /^-(\d+)$/) {
        return $1 >= $len ? $data : substr $data, $len - $1;
    }
    die "bad response_body_file_range '$spec'\n";
}


sub _log_since {
    my ($offset) = @_;
    my $log = _slurp("$T/logs/error.log", $offset);
    return $log;
}


sub _run_block {
    my ($block, $n) = @_;
    my $name = $block->name;
    $name =~ s/^\s+|\s+$//g;

    if (defined _sec($block, q{skip})) {
        SKIP: { skip("$name - " . (_sec($block, q{skip}) || 'skipped'), 1) }
        return;
    }

    my $dir = "$T/blocks/$n";
    remove_tree($dir);
    make_path($dir, { mode => 0755 });
    chmod 0755, $dir;

    my %v = (%BASE, TEST_NIXCACHE_DIR => $dir);
    local %ENV = (%ENV, %v);

    _redis_ensure();
    Nixcache::Fixture::redis_cmd('FLUSHALL');

    remove_tree($BASE{TEST_NIXCACHE_CHUNKS}, { keep_root => 1 });
    chmod 0755, $BASE{TEST_NIXCACHE_CHUNKS};

    if (defined(my $code = _sec($block, q{fixture}))) {
        local $Nixcache::Fixture::REDIS_PORT = $v{TEST_NIXCACHE_REDIS_PORT};
        local $Nixcache::Fixture::CHUNKS = $v{TEST_NIXCACHE_CHUNKS};
        local $Nixcache::Fixture::DIR = $dir;
        local %Nixcache::Fixture::VARS = ();
        local %Nixcache::Fixture::FIXTURES = ();
        $code = _subst($code, \%v);
        my $ok = eval "package Nixcache::Fixture::Eval;"
                    . " Nixcache::Fixture->import; no strict 'vars';\n"
                    . "#line 1 \"fixture of $name\"\n$code\n;1";
        my $err = $@;
        ok($ok, "$name - fixture") or diag($err);
        return unless $ok;
        %v = (%v, %Nixcache::Fixture::VARS);
        %ENV = (%ENV, %Nixcache::Fixture::VARS);
    }

    my $timeout = _sec($block, q{timeout}) // 10;
    $timeout *= $SLOW;
    my $module = _module_path($block);

    if ($module ne '' && !-f $module) {
        fail("$name - module built");
        diag("$module does not exist: run make");
        return;
    }

    my $write_conf = sub {
        my $conf = _subst(_nginx_conf($block, \%v), \%v);
        _spew("$T/nginx.conf", $conf);
        _spew("$dir/nginx.conf", $conf);
    };
    $write_conf->();

    my $err_offset = -s "$T/logs/error.log" // 0;

    if (defined _sec($block, q{must_die})) {
        my ($rc, $out) = _run([_nginx_cmd('-t')], 30);
        ok($rc != 0, "$name - nginx -t fails") or diag($out);
        my $log = $out . _log_since($err_offset);
        for my $p (_patterns(_subst(_sec($block, q{error_log}), \%v))) {
            ok(_match($log, $p), "$name - error_log: $p") or diag($log);
        }
        for my $p (_patterns(_subst(_sec($block, q{no_error_log}), \%v))) {
            ok(!_match($log, $p), "$name - no_error_log: $p") or diag($log);
        }
        return;
    }

    my ($started, $start_out);
    if ($HUP && $nginx_pid && _alive($nginx_pid) && $nginx_module eq $module) {
        ($started, $start_out) = _nginx_reload($err_offset);
        if (!$started) {
            fail("$name - nginx reloads");
            diag($start_out);
            _nginx_stop();
            return;
        }
    } else {
        _nginx_stop();
        ($started, $start_out) = _nginx_start();

        # Between blocks the port is free, and another suite on this
        # machine may have taken it: move to a new one.
        for (1 .. 3) {
            last if $started
                    || ($start_out . _log_since($err_offset))
                       !~ /Address already in use/;
            my $port = free_port();
            $BASE{TEST_NIXCACHE_PORT} = $v{TEST_NIXCACHE_PORT}
                = $ENV{TEST_NIXCACHE_PORT} = $port;
            $write_conf->();
            $err_offset = -s "$T/logs/error.log" // 0;
            ($started, $start_out) = _nginx_start();
        }

        if (!$started) {
            fail("$name - nginx starts");
            diag($start_out . _log_since($err_offset));
            return;
        }
        $nginx_module = $module;
    }

    my $script_timeout = _sec($block, q{script_timeout}) // 300;

    if (defined(my $init = _sec($block, q{init}))) {
        my ($rc, $out) = _script('init', _subst($init, \%v), $dir,
                                 $script_timeout);
        if (!ok($rc == 0, "$name - init")) {
            diag("init exited $rc:\n$out");
            _stop_script_groups();
            _nginx_stop();
            return;
        }
    }

    my $access_size = -s "$T/logs/access.log" // 0;
    my $res;
    if (defined _sec($block, q{request}) || defined _sec($block, q{raw_request})) {
        my ($req, $method);
        if (defined _sec($block, q{raw_request})) {
            $req = _subst(_sec($block, q{raw_request}), \%v);
            ($method) = $req =~ /^(\S+)/;
        } else {
            ($req, $method) = _build_request($block,
                                             _subst(_sec($block, q{request}), \%v),
                                             _subst(_sec($block, q{more_headers}),
                                                    \%v));
        }
        $res = _http($req, $method // 'GET', $v{TEST_NIXCACHE_PORT},
                     $timeout);
    }

    sleep _sec($block, q{wait}) if _sec($block, q{wait});

    if (defined(my $post = _sec($block, q{post}))) {
        my ($rc, $out) = _script('post', _subst($post, \%v), $dir,
                                 $script_timeout);
        ok($rc == 0, "$name - post") or diag("post exited $rc:\n$out");
    }

    _stop_script_groups();
    if ($HUP) {
        _nginx_settle($access_size) if $res;
    } else {
        _nginx_stop();
    }
    my $log = _log_since($err_offset);

    if ($res) {
        _check_response($block, $name, $res, \%v);
    }

    for my $p (_patterns(_subst(_sec($block, q{error_log}), \%v))) {
        ok(_match($log, $p), "$name - error_log: $p")
            or diag("error.log of this block:\n" . _tail($log));
    }
    for my $p (_patterns(_subst(_sec($block, q{no_error_log}), \%v))) {
        ok(!_match($log, $p), "$name - no_error_log: $p")
            or diag("matching lines:\n"
                    . join('', grep { _match($_, $p) } split /^/, $log));
    }

    if ($ENV{TEST_NIXCACHE_VALGRIND}) {
        ok(defined $valgrind_status && $valgrind_status eq '',
           "$name - no worker crash")
            or diag('nginx (master_process off, under valgrind) '
                    . ($valgrind_status // 'is still running'));
    } else {
        ok($log !~ /exited on signal/, "$name - no worker crash")
            or diag(join '', grep { /exited on signal/ } split /^/, $log);
    }

    if ($ENV{TEST_NIXCACHE_VALGRIND}) {
        my $vlog = _slurp("$T/logs/valgrind.log");
        _spew("$T/logs/valgrind.log", '');
        my @bad = _valgrind_errors($vlog);
        ok(!@bad, "$name - valgrind clean") or diag(join "\n", @bad);
    }
}


# Memory errors of any kind, and leaks definitely lost from our own code
# (nginx itself does not free everything at exit).
sub _valgrind_errors {
    my ($log) = @_;
    my @records = split /^==\d+==\s*\n/m, $log;
    return grep {
        /\S/ && (!/ lost in loss record|still reachable/
                 || (/definitely lost/ && /nixcache|hiredis|redis/))
    } @records;
}


sub _tail {
    my ($log) = @_;
    my @lines = split /^/, $log;
    @lines = @lines[-40 .. -1] if @lines > 40;
    return join '', @lines;
}


sub _check_response {
    my ($block, $name, $res, $v) = @_;

    if (!defined $res->{status}) {
        fail("$name - response");
        diag("no HTTP response: " . ($res->{error} // '?')
             . "\nreceived: " . substr($res->{raw} // '', 0, 500));
        return;
    }

    my $code = _sec($block, q{error_code});
    $code = 200 unless defined $code;
    $code =~ s/^\s+|\s+$//g;
    is($res->{status}, $code, "$name - status code")
        or diag("response head:\n$res->{head}");

    for my $l (grep { /\S/ } split /\n/, _subst(_sec($block, q{response_headers}),
                                                $v) // '') {
        if ($l =~ /^\s*!\s*([^:\s]+)\s*$/) {
            ok(!exists $res->{headers}{lc $1}, "$name - header $1 absent")
                or diag("$1: " . join ', ', @{$res->{headers}{lc $1}});
        } elsif ($l =~ /^\s*([^:]+?)\s*:\s?(.*?)\s*$/) {
            my $got = $res->{headers}{lc $1};
            is(defined $got ? join(', ', @$got) : undef, $2,
               "$name - header $1");
        } else {
            fail("$name - bad response_headers line '$l'");
        }
    }

    for my $l (grep { /\S/ } split /\n/,
               _subst(_sec($block, q{response_headers_like}), $v) // '') {
        if ($l =~ /^\s*([^:]+?)\s*:\s?(.*?)\s*$/) {
            my ($h, $re) = ($1, $2);
            my $got = $res->{headers}{lc $h};
            like(defined $got ? join(', ', @$got) : '', qr/$re/,
                 "$name - header $h like");
        } else {
            fail("$name - bad response_headers_like line '$l'");
        }
    }

    if (defined(my $want = _sec($block, q{response_body}))) {
        is_string($res->{body}, _subst($want, $v), "$name - response body");
    }

    if (defined(my $re = _sec($block, q{response_body_like}))) {
        $re = _subst($re, $v);
        my $qr = ref $re ? $re : do { chomp $re; qr/$re/s };
        like_string($res->{body}, $qr, "$name - response body like");
    }

    if (defined(my $file = _sec($block, q{response_body_file}))) {
        $file = _subst($file, $v);
        $file =~ s/^\s+|\s+$//g;
        if (!-r $file) {
            fail("$name - response body file");
            diag("cannot read $file");
        } else {
            my $want = _slurp($file);
            my $range = _sec($block, q{response_body_file_range});
            $want = _byte_range($want, $range) if defined $range;
            my $label = "$name - response body = $file"
                        . (defined $range ? " [$range]" : '');
            if ($res->{body} eq $want) {
                pass($label);
            } else {
                fail($label);
                diag('got ' . length($res->{body}) . ' bytes, want '
                     . length($want) . ' bytes; first difference at byte '
                     . _first_diff($res->{body}, $want));
            }
        }
    }

    if (defined _sec($block, q{response_incomplete})) {
        ok(!$res->{complete} && !$res->{timed_out},
           "$name - response incomplete (server closed early)")
            or diag($res->{timed_out}
                    ? "the server did not close the connection: "
                      . "$res->{error}"
                    : 'the whole body arrived (' . length($res->{body})
                      . ' bytes)');
    } else {
        ok($res->{complete}, "$name - response complete")
            or diag('incomplete body: got ' . length($res->{body})
                    . ' bytes' . ($res->{error} ? " ($res->{error})" : '')
                    . "\nresponse head:\n$res->{head}");
    }
}


sub _first_diff {
    my ($a, $b) = @_;
    my $n = length $a < length $b ? length $a : length $b;
    for my $i (0 .. $n - 1) {
        return $i if substr($a, $i, 1) ne substr($b, $i, 1);
    }
    return $n;
}


# ---- suite ---------------------------------------------------------------

sub _setup {
    my $tmproot = env_or('TMPDIR', '/tmp');
    $T = tempdir('nixcache-t-XXXXXX', DIR => $tmproot, CLEANUP => 0);

    # Workers run as nobody (when root): every directory down to the chunks
    # must be searchable by others, and mkdtemp makes 0700.
    chmod 0755, $T;
    my $p = $T;
    while (($p = dirname($p)) ne '/') {
        my $mode = (stat $p)[2] // 0;
        warn "# warning: $p is not searchable by others; nginx workers "
             . "may not read chunks\n" unless $mode & 0001;
    }

    make_path("$T/$_", { mode => 0755 })
        for qw(logs tmp chunks redis blocks);

    my $port = env_or('TEST_NIXCACHE_PORT', free_port());
    my $rport = env_or('TEST_NIXCACHE_REDIS_PORT', free_port());
    $rport = free_port() while $rport == $port;

    %BASE = (
        TEST_NIXCACHE_ROOT       => $ROOT,
        TEST_NIXCACHE_PORT       => $port,
        TEST_NIXCACHE_REDIS_PORT => $rport,
        TEST_NIXCACHE_CHUNKS     => "$T/chunks",
        TEST_NIXCACHE_TMP        => $T,
        TEST_NIXCACHE_LOGS       => "$T/logs",
        TEST_NIXCACHE_SLOW       => $SLOW,
        TEST_NIXCACHE_CLI        => env_or('TEST_NIXCACHE_CLI',
                                           "$ROOT/build/nixcache"),
        TEST_NIXCACHE_MODULE     => $ENV{TEST_NIXCACHE_MODULE}
                                    // "$ROOT/build/ngx_http_nixcache_module.so",
    );
    $BASE{TEST_NIXCACHE_REDIS_CTL} = _write_redis_ctl($rport);

    $SIG{INT} = $SIG{TERM} = sub { die "killed by signal\n" };

    _start_watchdog();
    _redis_ensure();
}


# A process that outlives a test file killed by SIGKILL (nothing of ours
# runs then) and stops that file's nginx and redis-server, which are
# daemons in sessions of their own.
sub _start_watchdog {
    my $parent = $$;
    my $t = $T;
    my $pid = fork;
    return if !defined $pid || $pid;

    POSIX::setsid();
    $SIG{$_} = 'IGNORE' for qw(INT TERM HUP PIPE);
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';
    $0 = "nixcache-test-watchdog $t";

    sleep 0.25 while getppid() == $parent;

    kill 'TERM', map { -$_ } _slurp("$t/script-groups") =~ /(\d+)/g;

    my @pids;
    for my $f ("$t/logs/nginx.pid", "$t/redis/redis.pid") {
        my ($p) = _slurp($f) =~ /^(\d+)/ or next;
        push @pids, $p if _slurp("/proc/$p/cmdline") =~ /nginx|redis/;
    }
    if (@pids) {
        kill 'CONT', @pids;
        kill 'TERM', @pids;
        my $until = time + 5;
        sleep 0.05 while grep({ _alive($_) } @pids) && time < $until;
        kill 'KILL', grep { _alive($_) } @pids;
    }
    POSIX::_exit(0);
}


sub _teardown {
    return unless $T;
    _stop_script_groups();
    _nginx_stop();
    _run([$BASE{TEST_NIXCACHE_REDIS_CTL}, 'stop']) if -x "$T/redis-ctl";

    my $failed = grep { !$_ } Test::More->builder->summary;
    if ($failed || $ENV{TEST_NIXCACHE_KEEP}) {
        Test::More::diag("kept $T (logs, nginx.conf, block scratch dirs)");
    } else {
        remove_tree($T);
    }
    undef $T;
}


END {
    my $status = $?;
    _teardown();
    $? = $status;
}


sub run_tests {
    plan('no_plan');
    chdir $ROOT or die "chdir $ROOT: $!\n";
    _setup();

    # Test::Base's eval filter compiles in a package that has a sub named
    # join: a section calling join() warns "Ambiguous call" though it can
    # only mean CORE::join.
    my @blocks = do {
        local $SIG{__WARN__} = sub {
            warn @_ unless $_[0] =~ /^Ambiguous call resolved as CORE::join/;
        };
        blocks();
    };

    my $n = 0;
    for my $block (@blocks) {
        $n++;
        my $ok = eval { _run_block($block, $n); 1 };
        if (!$ok) {
            fail($block->name . ' - harness error');
            diag($@);
            _nginx_stop();
        }
    }

    _teardown();
    Test::More::done_testing();
}


1;
