#!/usr/bin/perl
# Memory of a worker serving a large NAR cold from S3: a NAR of --size
# bytes (default 1 GiB) of distinct chunks, all in a private s3rver and
# none on the disk tier, downloaded as .nar.zst and then (disk tier
# emptied again) as .nar; prints the worker's RSS before, during (maximum
# of samples every 50 ms) and after each download, and checks each body's
# SHA-256.  The fetch slots are allocated once per request (K × the
# largest frame): RSS must stay flat whatever the NAR size.
#
#   perl bench/s3-rss.pl [--size BYTES] [--chunk BYTES] [--k K]
#                        [--max-growth KiB]

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA;
use File::Basename qw(dirname);
use Getopt::Long;
use Time::HiRes qw(sleep time);

require(abs_path(dirname(__FILE__)) . '/s3lib.pl');
our ($T, %PORT);

my %o = (size => 1 << 30, chunk => 256 << 10, k => 8,
         'max-growth' => 65536);
GetOptions(\%o, 'size=i', 'chunk=i', 'k=i', 'max-growth=i')
    or die "bad options\n";

start_backends();
my $f = make_nar($o{size}, $o{chunk}, 1);

open my $cf, '>', "$T/creds" or die $!;
print $cf "S3RVER\nS3RVER\n";
close $cf;
chmod 0600, "$T/creds";
mkdir "$T/chunks";
chmod 0777, "$T/chunks";

start_nginx(<<EOC);
    server {
        listen 127.0.0.1:\@PORT\@;
        location / {
            nixcache on;
            nixcache_chunks $T/chunks;
            nixcache_s3_endpoint http://127.0.0.1:$PORT{s3};
            nixcache_s3_bucket nixcache;
            nixcache_s3_credentials $T/creds;
            nixcache_s3_prefetch $o{k};
        }
    }
EOC

my $worker = worker_pid() or die "no worker\n";
my $fail = 0;

printf "# NAR %.0f MiB, %d chunks of %d KiB, K = %d, worker %d\n",
       $f->{narsize} / 1048576, $f->{chunks}, $o{chunk} / 1024, $o{k},
       $worker;
printf "%-10s %12s %12s %12s %8s %s\n", 'form', 'before KiB', 'max KiB',
       'after KiB', 'seconds', 'body';

for my $form (['.nar.zst', $f->{zst}], ['.nar', $f->{nar}]) {
    clear_dir("$T/chunks");
    sleep 1;
    my $want = Digest::SHA->new(256)->addfile($form->[1])->hexdigest;
    my $before = rss_kib($worker);
    my $max = $before;
    my $t0 = time;
    my $pid = open(my $fh, '-|',
                   "curl -s http://127.0.0.1:$PORT{nginx}/nar/"
                   . "$f->{narhash}$form->[0] | sha256sum") or die $!;
    my $got = '';
    # sample while the download runs
    my $rin = '';
    vec($rin, fileno($fh), 1) = 1;
    while (1) {
        my $r = select(my $rout = $rin, undef, undef, 0.05);
        my $rss = rss_kib($worker);
        $max = $rss if $rss > $max;
        if ($r > 0) {
            $got = <$fh> // '';
            last;
        }
    }
    close $fh;
    my $secs = time - $t0;
    sleep 1;
    my $after = rss_kib($worker);
    my ($hex) = $got =~ /^([0-9a-f]{64})/;
    my $ok = defined $hex && $hex eq $want;
    $fail++ unless $ok;
    $fail++ if $max - $before > $o{'max-growth'};
    printf "%-10s %12d %12d %12d %8.1f %s\n", $form->[0], $before, $max,
           $after, $secs, $ok ? 'exact' : 'WRONG';
}

my $errors = `grep -c '\\[error\\]' $T/nginx/error.log`;
chomp $errors;
print "# errors in the nginx log: $errors\n";
print $fail ? "FAIL\n" : "ok: RSS flat, bodies exact\n";
exit($fail ? 1 : 0);
