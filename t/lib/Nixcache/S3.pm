package Nixcache::S3;

# A private s3rver for the S3 tier suites, started through t/lib/s3rver-ctl
# on a free loopback port, stopped at exit; and an independent look at
# what it stores (s3rver keeps every object as a file on disk).
#
#   my $s3 = start_s3rver("$T/s3", 'bucket');
#   $s3->{endpoint}          http://127.0.0.1:PORT
#   s3_object($s3, $key)     the object's bytes, or undef
#   s3_keys($s3)             every key in the bucket, sorted
#   s3_puts($s3)             objects stored so far (from s3rver's log)
#   s3_put_file($endpoint, $bucket, $key, $file)
#                            PUT a file by curl (SigV4), dies on failure
#   stop_s3rver($s3)

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Find qw(find);
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);

use Exporter qw(import);

our @EXPORT = qw(
    s3rver_available start_s3rver stop_s3rver s3_object s3_keys s3_puts
    s3_put_file
);

my $root = abs_path(dirname(__FILE__) . '/../../..');
my $ctl = "$root/t/lib/s3rver-ctl";
my $js = $ENV{S3RVER_JS} // "$root/build/node_modules/s3rver/bin/s3rver.js";

my @running;


sub s3rver_available {
    return -f $js && system('sh', '-c', 'command -v node >/dev/null') == 0;
}


sub _free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1)
        or die "bind: $!";
    my $port = $s->sockport;
    close $s;

    return $port;
}


# Starts s3rver with its data, log and pidfile in $dir; retries on another
# port if the chosen one was taken in between.

sub start_s3rver {
    my ($dir, $bucket) = @_;

    $bucket //= 'nixcache';

    for my $try (1 .. 5) {
        my $port = _free_port();

        if (system($ctl, 'start', $dir, $port, $bucket) == 0) {
            my $s3 = {
                dir      => $dir,
                port     => $port,
                bucket   => $bucket,
                endpoint => "http://127.0.0.1:$port",
                pid      => _read_pid("$dir/pid"),
            };

            push @running, $s3;
            return $s3;
        }
    }

    die "s3rver did not start (see $dir/log)";
}


sub _read_pid {
    my ($file) = @_;

    open(my $fh, '<', $file) or die "s3rver pid file $file: $!";
    my ($pid) = <$fh> =~ /^(\d+)/ or die "s3rver pid file $file: no pid";
    close $fh;

    return $pid;
}


# Whether $pid is still that s3rver: a zombie (its parent, init, reaps
# late) counts as gone, and so does a pid reused by another program.

sub _s3rver_alive {
    my ($pid) = @_;

    open(my $fh, '<', "/proc/$pid/stat") or return 0;
    my $stat = <$fh> // '';
    close $fh;
    return 0 if $stat =~ /^\d+ \(.*\) Z /s;

    open($fh, '<', "/proc/$pid/cmdline") or return 0;
    my $cmd = <$fh> // '';
    close $fh;

    return index($cmd, 's3rver.js') >= 0;
}


# Stops it by the pid noted at start, not through its pid file: a suite
# may keep $dir in a File::Temp directory with CLEANUP, whose END block
# (defined after this module's when the suite loads File::Temp later)
# removes the pid file before ours runs, which left s3rver running.

sub stop_s3rver {
    my ($s3) = @_;
    my (@pids, $until);

    @running = grep { $_ != $s3 } @running;

    # a suite may have restarted it through s3rver-ctl: the pid file, if
    # still there, names the current one
    @pids = grep { _s3rver_alive($_) }
            ($s3->{pid}, eval { _read_pid("$s3->{dir}/pid") } // ());

    if (@pids) {
        kill 'TERM', @pids;
        $until = time + 5;
        sleep 0.1 while grep({ _s3rver_alive($_) } @pids) && time < $until;
        kill 'KILL', grep { _s3rver_alive($_) } @pids;
    }

    unlink "$s3->{dir}/pid";
}


END {
    my $status = $?;
    stop_s3rver($_) for @running;
    $? = $status;
}


sub _object_file {
    my ($s3, $key) = @_;

    return "$s3->{dir}/data/$s3->{bucket}/$key._S3rver_object";
}


sub s3_object {
    my ($s3, $key) = @_;

    open(my $fh, '<:raw', _object_file($s3, $key)) or return undef;
    local $/;
    my $data = <$fh>;
    close $fh;

    return $data;
}


sub s3_keys {
    my ($s3) = @_;
    my $base = "$s3->{dir}/data/$s3->{bucket}";
    my @keys;

    return () unless -d $base;

    find({ no_chdir => 1, wanted => sub {
        push @keys, substr($1, length($base) + 1)
            if $File::Find::name =~ /^(.*)\._S3rver_object$/;
    } }, $base);

    return sort @keys;
}


# s3rver logs 'Stored object "KEY" in bucket "B" successfully' per PUT.

sub s3_puts {
    my ($s3) = @_;

    open(my $fh, '<', "$s3->{dir}/log") or return 0;
    my $n = grep { /Stored object "/ } <$fh>;
    close $fh;

    return $n;
}


# Uploads through s3rver's own API, independent of the code under test
# (s3rver's default credentials S3RVER:S3RVER).

sub s3_put_file {
    my ($endpoint, $bucket, $key, $file) = @_;

    my $rc = system('curl', '-sSf', '-o', '/dev/null', '-X', 'PUT',
                    '--aws-sigv4', 'aws:amz:us-east-1:s3',
                    '--user', 'S3RVER:S3RVER',
                    '-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD',
                    '--data-binary', "\@$file",
                    "$endpoint/$bucket/$key");
    die "PUT $key failed" if $rc != 0;
}


1;
