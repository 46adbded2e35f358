#!/usr/bin/perl
# Models a nixpkgs mass rebuild for bench/corpus.
#
#   rebuild-tree.pl template SRC TMPL
#       copies the tree SRC to TMPL as Nix's fixup phase would leave it:
#       SRC's own location becomes the output's store path, other
#       /usr/bin, /bin, /usr/lib, /usr/share paths point into three
#       dependency store paths (this rewrites #! lines too), and
#       nix-support/propagated-build-inputs lists the dependencies.  Store
#       hash parts are 32-character placeholders.  Prints what it touched.
#   rebuild-tree.pl generation TMPL OUT SELF DEP1 DEP2 DEP3
#       copies TMPL to OUT with the placeholders replaced by the given
#       32-character hash parts (same length: a rebuild changes those bytes
#       and nothing else).
#
# Symlinks and executable bits are kept; file contents are the only change.

use strict;
use warnings;

use File::Find;
use File::Path qw(make_path);

my %PH = (
    SELF => 'SELFSELFSELFSELFSELFSELFSELFSELF',
    DEP1 => 'DEP1DEP1DEP1DEP1DEP1DEP1DEP1DEP1',
    DEP2 => 'DEP2DEP2DEP2DEP2DEP2DEP2DEP2DEP2',
    DEP3 => 'DEP3DEP3DEP3DEP3DEP3DEP3DEP3DEP3',
);

my $mode = shift // '';
my ($src, $dst) = (shift, shift);
die "usage: $0 template SRC TMPL | generation TMPL OUT SELF D1 D2 D3\n"
    unless defined $dst && ($mode eq 'template' || $mode eq 'generation');
$src =~ s,/+$,,;

my %sub;
if ($mode eq 'generation') {
    for my $k (qw(SELF DEP1 DEP2 DEP3)) {
        my $h = shift // die "generation needs 4 hash parts\n";
        die "hash part '$h' is not 32 nix32 characters\n"
            unless $h =~ /^[0-9a-df-np-sv-z]{32}$/;
        $sub{$PH{$k}} = $h;
    }
}
my $subre = join '|', map { quotemeta } keys %sub;

my ($files, $touched, $occ) = (0, 0, 0);
my $self = "/nix/store/$PH{SELF}-" . ($src =~ m,([^/]+)$,)[0];

sub rewrite_template {
    my ($data) = @_;
    my $n = 0;
    $n += $data =~ s,\Q$src\E(?=[/"'\s:;]|$),$self,gm;
    $n += $data =~ s,(?<![\w.])/usr/bin/,/nix/store/$PH{DEP1}-coreutils/bin/,g;
    $n += $data =~ s,(?<![\w./])/bin/(?=\w),/nix/store/$PH{DEP1}-coreutils/bin/,g;
    $n += $data =~ s,(?<![\w.])/usr/lib/,/nix/store/$PH{DEP2}-glibc/lib/,g;
    $n += $data =~ s,(?<![\w.])/usr/share/,/nix/store/$PH{DEP3}-share/share/,g;
    return ($data, $n);
}

make_path($dst);
find({ no_chdir => 1, wanted => sub {
    my $p = $File::Find::name;
    (my $rel = $p) =~ s,^\Q$src\E/?,,;
    my $out = $rel eq '' ? $dst : "$dst/$rel";
    if (-l $p) {
        symlink(readlink($p), $out) or die "symlink $out: $!\n";
        return;
    }
    if (-d $p) {
        make_path($out);
        return;
    }
    return unless -f $p;
    open(my $in, '<:raw', $p) or die "$p: $!\n";
    local $/;
    my $data = <$in> // '';
    close $in;
    $files++;
    if ($mode eq 'template') {
        my $n;
        ($data, $n) = rewrite_template($data);
        if ($n) { $touched++; $occ += $n; }
    } elsif ($subre ne '') {
        $data =~ s/($subre)/$sub{$1}/g;
    }
    open(my $o, '>:raw', $out) or die "$out: $!\n";
    print $o $data;
    close $o or die "$out: $!\n";
    chmod((-x $p ? 0755 : 0644), $out);
}}, $src);

if ($mode eq 'template') {
    make_path("$dst/nix-support");
    open(my $o, '>', "$dst/nix-support/propagated-build-inputs") or die;
    print $o join(' ', map { "/nix/store/$PH{$_}-" . lc($_) }
                  qw(DEP1 DEP2 DEP3)), "\n";
    close $o;
    print "$files files, $touched rewritten ($occ store path occurrences)\n";
}
