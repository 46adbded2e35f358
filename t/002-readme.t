# README.md stays true: its directive table is DESIGN.md's, every directive
# the module defines is documented, every CLI command is described, its
# nginx example is accepted by nginx, and its links resolve.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use Test::More;

use lib 't/lib';
use Nixcache::Skip;

my $root = abs_path(dirname(__FILE__) . '/..');
chdir $root or die "chdir $root: $!";

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or die "$path: $!";
    local $/;
    return <$fh>;
}

sub directive_table {
    my ($text) = @_;
    my ($t) = $text =~ /(\| directive \| context \| default \| meaning \|\n(?:\|.*\|\n)+)/;
    return $t;
}

my $readme = slurp('README.md');
my $design = slurp('docs/DESIGN.md');

my $table = directive_table($readme);
ok(defined $table, 'README has a directive table');
is($table, directive_table($design),
   'README directive table is the one in docs/DESIGN.md')
    or diag('run "make readme" to copy it again');

# the metrics table ("| metric | labels | meaning |") names metrics, not
# directives: every metric the module exposes is in it, and only those
my $metrics_re = qr/^\| metric \| labels \| meaning \|\n(?:\|.*\|\n)+/m;
my ($metrics) = $readme =~ /($metrics_re)/;
ok(defined $metrics, 'README has a metrics table');
my %mdoc = map { $_ => 1 } ($metrics // '') =~ /^\| `(nixcache_\w+)`/mg;
my %mdef = map { $_ => 1 }
    slurp('src/ngx_http_nixcache_metrics_out.c') =~ /"(nixcache_[a-z0-9_]+)"/g;
ok(%mdef, 'the module exposes metrics');
for my $m (sort keys %mdef) {
    ok($mdoc{$m}, "metric $m is documented")
        or diag("add a row for $m to README.md's metrics table");
}
for my $m (sort keys %mdoc) {
    ok($mdef{$m}, "documented metric $m exists");
}

# every table row naming a directive, in any of README's other tables; a
# directive is an ngx_string("nixcache...") followed by its context flags
# (a zone's or a variable's name is not one)
(my $readme_nometrics = $readme) =~ s/$metrics_re//;
my %documented = map { $_ => 1 } $readme_nometrics =~ /^\| `(nixcache\w*)/mg;
my %defined;
for my $src (grep { !/_variables\.c$/ } glob 'src/ngx_http_nixcache*.c') {
    $defined{$_} = 1 for slurp($src) =~ /ngx_string\("(nixcache\w*)"\),\s*NGX_HTTP_/g;
}
ok(%defined, 'the module defines directives');
for my $d (sort keys %defined) {
    ok($documented{$d}, "directive $d is documented")
        or diag("add a row for $d to README.md (and docs/DESIGN.md)");
}
for my $d (sort keys %documented) {
    ok($defined{$d}, "documented directive $d exists");
}

# the variables: each in README's variable table, and only those
my %vdoc = map { $_ => 1 } $readme =~ /^\| `\$(nixcache_\w+)`/mg;
my %vdef = map { $_ => 1 }
    slurp('src/ngx_http_nixcache_variables.c') =~ /ngx_string\("(nixcache\w*)"\)/g;
ok(%vdef, 'the module defines variables');
for my $v (sort keys %vdef) {
    ok($vdoc{$v}, "variable \$$v is documented")
        or diag("add a row for \$$v to README.md's variable table");
}
for my $v (sort keys %vdoc) {
    ok($vdef{$v}, "documented variable \$$v exists");
}

SKIP: {
    skip_missing('CLI not built', 1) unless -x 'build/nixcache';
    my $help = `build/nixcache --help 2>&1`;
    my @cmds = $help =~ /^  (\w+)\s{2,}/mg;
    ok(@cmds >= 2, 'nixcache --help lists commands');
    for my $c (@cmds) {
        like($readme, qr/nixcache $c\b/, "README describes nixcache $c");
    }
}

# The nginx example is a configuration nginx accepts, with our module.
SKIP: {
    my $module = "$root/build/ngx_http_nixcache_module.so";
    skip_missing('module not built', 1) unless -f $module;
    my ($example) = $readme =~ /```nginx\n(.*?)```/s;
    my $dir = tempdir('nixcache-readme-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    mkdir "$dir/logs";
    $example =~ s{/path/to/build/}{$root/build/}g;
    $example =~ s{/var/lib/nixcache}{$dir}g;
    $example =~ s{/etc/nixcache/}{$root/t/auth/}g;    # test keys, tokens
    open my $fh, '>', "$dir/nginx.conf" or die;
    print {$fh} "pid $dir/nginx.pid;\nerror_log $dir/logs/error.log;\n",
                $example;
    close $fh;
    my $out = `nginx -t -p $dir/ -c $dir/nginx.conf -e $dir/logs/error.log 2>&1`;
    is($?, 0, 'the README nginx example passes nginx -t') or diag($out);
}

my %seen;
for my $link (grep { !$seen{$_}++ } $readme =~ /\]\(((?:docs|t)\/[^)#]+)/g) {
    ok(-e $link, "README link $link exists");
}

done_testing();
