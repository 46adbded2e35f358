# The harness must be able to fail: a block file where every check is
# wrong on purpose is run, and each of those checks must come out "not ok"
# (while its neighbours still pass).  Also: a port taken between blocks, a
# test file killed by SIGKILL (nothing may survive it), a missing dependency
# (a skip, but a failure under CI=true; t/run-all counts skips), a crashed
# nginx seen also under valgrind, and t/000 in the HUP-reload mode.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use Test::More;

my $root = abs_path(dirname(__FILE__) . '/..');
chdir $root or die "chdir $root: $!";

my $dir = tempdir('nixcache-fails-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub slurp_pid {
    my ($path) = @_;
    open my $fh, '<', $path or return ();
    my ($pid) = (<$fh> // '') =~ /^(\d+)/;
    return $pid // ();
}

# alive and not a zombie
sub running {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    return (<$fh> // '') !~ /^\d+ \(.*\) [ZX]/s;
}

sub tap_of {
    my ($file, %env) = @_;
    local @ENV{keys %env} = values %env;
    my $out = `$^X -I$root/t/lib $file 2>&1`;
    my %r;
    for (split /\n/, $out) {
        $r{$2} = $1 ? 'not ok' : 'ok' if /^(not )?ok \d+ - (.*)$/;
    }
    return ($? >> 8, $out, \%r);
}

open my $fh, '>', "$dir/fails.t" or die;
print {$fh} <<'EOF';
use lib 't/lib';
use Nixcache::Test;
run_tests();
__DATA__

=== TEST 1: wrong status
--- no_module
--- config
    location / { return 200 "body\n"; }
--- request
GET /
--- error_code: 404
--- response_body
body

=== TEST 2: wrong body, wrong headers
--- no_module
--- config
    location / { add_header X-A a; return 200 "body\n"; }
--- request
GET /
--- response_headers
X-A: b
!Content-Type
--- response_headers_like
X-A: ^z
--- response_body
other

=== TEST 3: wrong body_like, wrong body_file
--- no_module
--- init
printf 'not the body' > $TEST_NIXCACHE_DIR/want
--- config
    location / { return 200 "body\n"; }
--- request
GET /
--- response_body_like: ^nope
--- response_body_file: $TEST_NIXCACHE_DIR/want

=== TEST 4: log patterns
--- no_module
--- config
    location / { return 200 "body\n"; }
--- request
GET /logged-uri
--- error_log
never logged anywhere
--- no_error_log
/logged-uri

=== TEST 5: a cut body without response_incomplete
--- no_module
--- init
python3 - > /dev/null 2>&1 <<'PY' &
import os, socket
path = os.environ['TEST_NIXCACHE_DIR'] + '/up.sock'
s = socket.socket(socket.AF_UNIX)
s.bind(path + '.tmp')
os.chmod(path + '.tmp', 0o777)
os.rename(path + '.tmp', path)
s.listen(1)
s.settimeout(20)
c, _ = s.accept()
c.recv(65536)
c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nshort')
c.close()
PY
for i in $(seq 100); do test -S $TEST_NIXCACHE_DIR/up.sock && break; sleep 0.05; done
--- config
    location / { proxy_pass http://unix:$TEST_NIXCACHE_DIR/up.sock:; }
--- request
GET /

=== TEST 6: response_incomplete on a complete body
--- no_module
--- config
    location / { return 200 "body\n"; }
--- request
GET /
--- response_incomplete

=== TEST 7: a failing init
--- no_module
--- config
    location / { return 200 "body\n"; }
--- init
true
false
true
--- request
GET /

=== TEST 8: must_die on a good config
--- no_module
--- config
    location / { return 200; }
--- must_die

=== TEST 9: a server that never answers
--- no_module
--- init
python3 - > /dev/null 2>&1 <<'PY' &
import os, socket, time
path = os.environ['TEST_NIXCACHE_DIR'] + '/up.sock'
s = socket.socket(socket.AF_UNIX)
s.bind(path + '.tmp')
os.chmod(path + '.tmp', 0o777)
os.rename(path + '.tmp', path)
s.listen(1)
s.settimeout(20)
c, _ = s.accept()
time.sleep(5)
PY
for i in $(seq 100); do test -S $TEST_NIXCACHE_DIR/up.sock && break; sleep 0.05; done
--- config
    location / { proxy_pass http://unix:$TEST_NIXCACHE_DIR/up.sock:; }
--- request
GET /
--- timeout: 1

=== TEST 10: a fixture that dies
--- no_module
--- fixture
die "on purpose";
--- config
    location / { return 200; }
--- request
GET /

=== TEST 11: a failing post
--- no_module
--- config
    location / { return 200 "body\n"; }
--- request
GET /
--- post
exit 3

=== TEST 12: the module is required unless no_module
--- config
    location / { return 200; }
--- request
GET /

=== TEST 13: a negated command is refused, not ignored
--- no_module
--- config
    location / { return 200 "body\n"; }
--- request
GET /
--- post
! true
true

=== TEST 14: fails on a command that succeeds
--- no_module
--- config
    location / { return 200 "body\n"; }
--- request
GET /
--- post
fails true
true

=== TEST 15: a failure early in a pipeline (pipefail)
--- no_module
--- config
    location / { return 200 "body\n"; }
--- init
false | cat
true
--- request
GET /
EOF
close $fh;

my ($rc, $out, $r) = tap_of("$dir/fails.t",
                            TEST_NIXCACHE_MODULE => "$dir/missing.so",
                            TEST_NIXCACHE_KEEP => '');

my @must_fail = (
    'TEST 1: wrong status - status code',
    'TEST 2: wrong body, wrong headers - header X-A',
    'TEST 2: wrong body, wrong headers - header Content-Type absent',
    'TEST 2: wrong body, wrong headers - header X-A like',
    'TEST 2: wrong body, wrong headers - response body',
    'TEST 3: wrong body_like, wrong body_file - response body like',
    "TEST 3: wrong body_like, wrong body_file - response body = /",
    'TEST 4: log patterns - error_log: never logged anywhere',
    'TEST 4: log patterns - no_error_log: /logged-uri',
    'TEST 5: a cut body without response_incomplete - response complete',
    'TEST 6: response_incomplete on a complete body - response incomplete (server closed early)',
    'TEST 7: a failing init - init',
    'TEST 8: must_die on a good config - nginx -t fails',
    'TEST 9: a server that never answers - response',
    'TEST 10: a fixture that dies - fixture',
    'TEST 11: a failing post - post',
    'TEST 12: the module is required unless no_module - module built',
    'TEST 13: a negated command is refused, not ignored - post',
    'TEST 14: fails on a command that succeeds - post',
    'TEST 15: a failure early in a pipeline (pipefail) - init',
);
my @must_pass = (
    'TEST 1: wrong status - response body',
    'TEST 2: wrong body, wrong headers - status code',
    'TEST 4: log patterns - status code',
    'TEST 5: a cut body without response_incomplete - status code',
    'TEST 6: response_incomplete on a complete body - status code',
    'TEST 11: a failing post - status code',
    'TEST 13: a negated command is refused, not ignored - status code',
    'TEST 14: fails on a command that succeeds - status code',
);

isnt($rc, 0, 'the file with wrong checks fails');
for my $name (@must_fail) {
    my ($key) = grep { index($_, $name) == 0 } keys %$r;
    is($key && $r->{$key}, 'not ok', "fails: $name") or diag($out);
}
for my $name (@must_pass) {
    my ($key) = grep { index($_, $name) == 0 } keys %$r;
    is($key && $r->{$key}, 'ok', "passes: $name");
}
like($out, qr/on purpose/, 'the fixture error is shown');
like($out, qr/line 1: ! true\n.*cannot fail under set -e/,
     'a negated command is named, with why');
like($out, qr/kept \S+nixcache-t-/, 'a failing file keeps its temp dir');
if ($out =~ /kept (\S+nixcache-t-\S+)/) {
    system('rm', '-rf', $1);
}

# A port taken by someone else between blocks: nginx moves to a new one.
{
    require IO::Socket::INET;
    my $held = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0',
                                     Listen => 5, ReuseAddr => 1) or die;
    my $port = $held->sockport;
    open my $fh, '>', "$dir/port.t" or die;
    print {$fh} <<'EOF';
use lib 't/lib';
use Nixcache::Test;
run_tests();
__DATA__

=== TEST 1: served although the first port was taken
--- no_module
--- config
    location / { return 200 "port $TEST_NIXCACHE_PORT\n"; }
--- request
GET /
--- response_body
port $TEST_NIXCACHE_PORT
--- post
test "$TEST_NIXCACHE_PORT" != "$HELD_PORT"
EOF
    close $fh;
    my ($rc, $out) = tap_of("$dir/port.t", TEST_NIXCACHE_PORT => $port,
                            HELD_PORT => $port);
    is($rc, 0, 'a block whose port is taken moves to a free one')
        or diag($out);
}

# A test file killed by SIGKILL leaves nothing running: its watchdog stops
# nginx, redis-server and what init started.
{
    require POSIX;
    my $tmp = tempdir('nixcache-kill-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $tmp;
    open my $fh, '>', "$dir/slow.t" or die;
    print {$fh} <<'EOF';
use lib 't/lib';
use Nixcache::Test;
run_tests();
__DATA__

=== TEST 1: init that takes long
--- no_module
--- config
    location / { return 204; }
--- init
sleep 60 &
echo $! > $TEST_NIXCACHE_TMP/bg.pid
sleep 60
--- request
GET /
EOF
    close $fh;

    my $pid = fork // die;
    if ($pid == 0) {
        $ENV{TMPDIR} = $tmp;
        open STDOUT, '>', '/dev/null';
        open STDERR, '>&', \*STDOUT;
        exec($^X, "-I$root/t/lib", "$dir/slow.t") or POSIX::_exit(127);
    }

    my ($t, @pids);
    for (1 .. 200) {
        ($t) = glob "$tmp/nixcache-t-*";
        @pids = map { slurp_pid($_) } "$t/logs/nginx.pid",
                                      "$t/redis/redis.pid", "$t/bg.pid"
            if $t;
        last if @pids == 3;
        select undef, undef, undef, 0.05;
    }
    is(scalar @pids, 3, 'nginx, redis-server and an init child run');
    ok(!grep({ !running($_) } @pids), '... all alive');

    kill 'KILL', $pid;
    waitpid $pid, 0;
    my $until = time + 10;
    select undef, undef, undef, 0.1 while grep({ running($_) } @pids)
                                          && time < $until;
    ok(!grep({ running($_) } @pids),
       'after SIGKILL of the test file they are all gone')
        or diag('still running: ' . join ' ', grep { running($_) } @pids);
}

# A missing dependency skips, and fails under CI=true: in Perl (a file and
# a part of one) and in bash (t/lib/e2e.sh).
{
    open my $fh, '>', "$dir/missing-all.t" or die;
    print {$fh} <<'EOF';
use Test::More;
use Nixcache::Skip;
skip_all_missing('frobnicator not installed');
EOF
    close $fh;
    open $fh, '>', "$dir/missing-part.t" or die;
    print {$fh} <<'EOF';
use Test::More;
use Nixcache::Skip;
ok(1, 'before');
SKIP: {
    skip_missing('frobnicator not installed', 2);
    ok(1, 'needs the frobnicator');
}
ok(1, 'after');
done_testing();
EOF
    close $fh;
    open $fh, '>', "$dir/missing-sh.t" or die;
    print {$fh} <<EOF;
#!/bin/bash
source $root/t/lib/e2e.sh
skip_all "frobnicator not installed"
EOF
    close $fh;

    for my $t (qw(missing-all.t missing-part.t missing-sh.t)) {
        my $cmd = $t =~ /sh/ ? "bash $dir/$t" : "$^X -I$root/t/lib $dir/$t";
        my $out = `env -u CI $cmd 2>&1`;
        is($? >> 8, 0, "$t: passes without CI") or diag($out);
        like($out, qr/# (SKIP|skip) frobnicator not installed/,
             "$t: ... and skips") or diag($out);
        $out = `env CI=true $cmd 2>&1`;
        isnt($? >> 8, 0, "$t: fails under CI=true") or diag($out);
        like($out, qr/^not ok \d+ - missing: frobnicator not installed/m,
             '... naming what is missing') or diag($out);
    }

    my $out = `env -u CI t/run-all $dir/missing-all.t $dir/missing-part.t 2>&1`;
    like($out, qr/^2 passed, 0 failed, 3 skipped$/m,
         't/run-all counts skips, not as passed') or diag($out);
    $out = `env CI=true t/run-all $dir/missing-all.t 2>&1`;
    like($out, qr/^0 passed, 1 failed, 0 skipped$/m,
         '... and under CI=true the skip is a failure') or diag($out);
}

# A crash is seen: a worker's in the master's log; under valgrind, where
# master_process is off, by how the one process ended.
{
    open my $fh, '>', "$dir/crash.t" or die;
    print {$fh} <<'EOF';
use lib 't/lib';
use Nixcache::Test;
run_tests();
__DATA__

=== TEST 1: nginx killed by SIGSEGV after the response
--- no_module
--- config
    location / { return 204; }
--- request
GET /
--- error_code: 204
--- post
master=$(cat $TEST_NIXCACHE_LOGS/nginx.pid)
worker=$(pgrep -P $master) || worker=$master
kill -SEGV $worker
sleep 0.5

=== TEST 2: nginx stopped as usual
--- no_module
--- config
    location / { return 204; }
--- request
GET /
--- error_code: 204
EOF
    close $fh;

    for my $mode ('plain', 'valgrind') {
        my ($rc, $out, $r) = tap_of("$dir/crash.t", TEST_NIXCACHE_KEEP => '',
                                    TEST_NIXCACHE_VALGRIND =>
                                        $mode eq 'valgrind' ? 1 : '');
        is($r->{'TEST 1: nginx killed by SIGSEGV after the response'
                . ' - no worker crash'}, 'not ok', "$mode: a crash is seen")
            or diag($out);
        is($r->{'TEST 1: nginx killed by SIGSEGV after the response'
                . ' - status code'}, 'ok', "$mode: ... its response was ok");
        is($r->{'TEST 2: nginx stopped as usual - no worker crash'}, 'ok',
           "$mode: ... a clean stop is no crash") or diag($out);
        if ($out =~ /kept (\S+nixcache-t-\S+)/) {
            system('rm', '-rf', $1);
        }
    }
}

# t/000 again, with one nginx reloaded by HUP between blocks
($rc, $out, $r) = tap_of('t/000-harness.t', TEST_NIXCACHE_HUP => 1);
is($rc, 0, 't/000-harness.t passes in HUP mode') or diag($out);
ok(!grep({ $_ ne 'ok' } values %$r) && keys %$r > 50,
   '... every assertion ok');

done_testing();
