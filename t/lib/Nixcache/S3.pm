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
#   stop_s3rver($s3)

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Find qw(find);
use IO::Socket::INET;
use Test::More;

use Exporter qw(import);

our @EXPORT = qw(
    s3rver_available start_s3rver stop_s3rver s3_object s3_keys s3_puts
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
            };

            push @running, $s3;
            return $s3;
        }
    }

    die "s3rver did not start (see $dir/log)";
}


sub stop_s3rver {
    my ($s3) = @_;

    system($ctl, 'stop', $s3->{dir});
    @running = grep { $_ != $s3 } @running;
}


END {
    system($ctl, 'stop', $_->{dir}) for @running;
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


1;
