# Shared by bench/s3-cold and bench/s3-rss.pl: a private redis-server,
# s3rver (t/lib/s3rver-ctl) and nginx with the module, all on free
# loopback ports in one temp dir, stopped at exit; a NAR of distinct
# chunks stored by bench/nar-fixture.pl, its chunks moved into the bucket
# (signed PUTs by curl --aws-sigv4, 16 in parallel), its .nar.zst also
# stored whole as one object (for the flat proxy_pass comparison).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Find qw(find);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

our $ROOT = abs_path(dirname(__FILE__) . '/..');
our $MODULE = $ENV{TEST_NIXCACHE_MODULE}
              // "$ROOT/build/ngx_http_nixcache_module.so";
our $T = tempdir('nixcache-s3bench-XXXXXX', DIR => $ENV{TMPDIR} // '/tmp',
                 CLEANUP => 0);
chmod 0755, $T;
our (%PORT, @STOP, $NGINX_PID);

-f $MODULE or die "$MODULE missing: run make\n";

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1) or die $!;
    return $s->sockport;
}

sub run { system(@_) == 0 or die "failed: @_\n" }

sub start_backends {
    $PORT{redis} = free_port();
    run('redis-server', '--bind', '127.0.0.1', '--port', $PORT{redis},
        '--save', '', '--appendonly', 'no', '--dir', $T, '--daemonize',
        'yes', '--pidfile', "$T/redis.pid", '--logfile', "$T/redis.log");
    push @STOP, sub {
        system('redis-cli', '-p', $PORT{redis}, 'shutdown', 'nosave');
    };
    for (1 .. 5) {
        $PORT{s3} = free_port();
        last if system("$ROOT/t/lib/s3rver-ctl", 'start', "$T/s3",
                       $PORT{s3}, 'nixcache') == 0;
        $PORT{s3} = undef;
    }
    die "s3rver did not start\n" unless $PORT{s3};
    push @STOP, sub { system("$ROOT/t/lib/s3rver-ctl", 'stop', "$T/s3") };
    sleep 0.5 until -s "$T/redis.pid";
}

# A delaying TCP proxy (t/lib/s3-delay-proxy) in front of s3rver.
sub start_delay_proxy {
    my ($ms) = @_;
    my $pid = open(my $fh, '-|', "$ROOT/t/lib/s3-delay-proxy", $PORT{s3},
                   $ms) or die "proxy: $!";
    my $port = <$fh>;
    chomp $port;
    push @STOP, sub { kill 'TERM', $pid; close $fh };
    return $port;
}

sub s3_put_many {
    my (@pairs) = @_;    # [file, key]
    open my $cf, '>', "$T/curl.cfg" or die $!;
    for my $p (@pairs) {
        print $cf "upload-file = \"$p->[0]\"\n",
                  "url = \"http://127.0.0.1:$PORT{s3}/nixcache/$p->[1]\"\n",
                  "output = /dev/null\n";
    }
    close $cf;
    run("curl -sSf -Z --parallel-max 16 --aws-sigv4 aws:amz:us-east-1:s3"
        . " --user S3RVER:S3RVER"
        . " -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -K $T/curl.cfg"
        . " > /dev/null");
}

# A NAR of $size bytes of distinct content cut in $chunk-byte pieces;
# chunks and the whole .nar.zst go to the bucket, the disk tier stays
# empty.  Returns { narhash, narsize, filesize, chunks, zst }.
sub make_nar {
    my ($size, $chunk, $with_nar) = @_;
    my $content = "$T/content";
    # base64 of random bytes: zstd makes it ~ 3/4 of its size
    run("head -c " . int($size * 3 / 4) . " /dev/urandom | base64 -w 0"
        . " | head -c $size > $content");
    my $cmd = "perl $ROOT/bench/nar-fixture.pl --redis-port $PORT{redis}"
              . " --chunks $T/src --content $content --chunk-size $chunk"
              . " --zst-out $T/nar.zst"
              . ($with_nar ? " --nar-out $T/nar" : '');
    my $out = `$cmd`;
    my %f = $out =~ /(\w+)=(\S+)/g;
    die "nar-fixture: $out" unless $f{narhash};
    unlink $content;
    my @pairs;
    find({ no_chdir => 1, wanted => sub {
        push @pairs, [$_, "chunks/$1/$2"]
            if m{/([a-z2-7]{2})/(b[a-z2-7]{58})$};
    } }, "$T/src");
    my $t0 = time;
    s3_put_many(@pairs, ["$T/nar.zst", "flat/nar/$f{narhash}.nar.zst"]);
    printf "# %d chunks and the flat .nar.zst put in S3 in %.1f s\n",
           scalar @pairs, time - $t0;
    system('rm', '-rf', "$T/src");
    $f{zst} = "$T/nar.zst";
    $f{nar} = "$T/nar" if $with_nar;
    return \%f;
}

# nginx with the module; $body goes into http {}, @PORT@ is its port.
sub start_nginx {
    my ($body) = @_;
    $PORT{nginx} = free_port();
    $body =~ s/\@PORT\@/$PORT{nginx}/g;
    mkdir "$T/nginx";
    open my $fh, '>', "$T/nginx/nginx.conf" or die $!;
    print $fh <<EOC;
load_module $MODULE;
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $T/nginx/cb;
    proxy_temp_path $T/nginx/proxy;
    fastcgi_temp_path $T/nginx/fcgi;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
    sendfile on;
    nixcache_redis 127.0.0.1:$PORT{redis};
$body
}
EOC
    close $fh;
    run('nginx', '-p', "$T/nginx", '-c', "$T/nginx/nginx.conf", '-e',
        "$T/nginx/error.log");
    sleep 0.1 until -s "$T/nginx/nginx.pid";
    $NGINX_PID = `cat $T/nginx/nginx.pid` + 0;
    push @STOP, sub { kill 'QUIT', $NGINX_PID; sleep 0.5 };
    sleep 0.3;
}

sub worker_pid {
    my ($w) = grep { /\S/ } split /\s+/, `pgrep -P $NGINX_PID`;
    return $w;
}

sub rss_kib {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return 0;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}

# The fixed SigV4-shaped headers s3rver accepts for the flat proxy_pass
# (s3rver checks the key id and the date, not the signature).
sub flat_headers {
    my @t = gmtime;
    my $date = POSIX::strftime('%Y%m%dT%H%M%SZ', @t);
    my $day = substr $date, 0, 8;
    my $e = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
    return <<EOH;
            proxy_set_header x-amz-date $date;
            proxy_set_header x-amz-content-sha256 $e;
            proxy_set_header Authorization "AWS4-HMAC-SHA256 Credential=S3RVER/$day/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=@{[ '0' x 64 ]}";
EOH
}

sub clear_dir {
    my ($d) = @_;
    system("rm -rf '$d'/*");
}

END {
    my $status = $?;
    $_->() for reverse @STOP;
    if ($ENV{KEEP}) { print "# kept $T\n" } else { system('rm', '-rf', $T) }
    $? = $status;
}

1;
