#!/usr/bin/perl
# `make readme`: copies docs/DESIGN.md's directive table into README.md
# (t/002-readme.t checks that the two are the same).

use strict;
use warnings;

my $table_re = qr/\| directive \| context \| default \| meaning \|\n(?:\|.*\|\n)+/;

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or die "$path: $!\n";
    local $/;
    return <$fh>;
}

my ($table) = slurp('docs/DESIGN.md') =~ /($table_re)/
    or die "no directive table in docs/DESIGN.md\n";
my $readme = slurp('README.md');
$readme =~ s/$table_re/$table/ or die "no directive table in README.md\n";

open my $fh, '>', 'README.md.tmp' or die "README.md.tmp: $!\n";
print {$fh} $readme;
close $fh or die "README.md.tmp: $!\n";
rename 'README.md.tmp', 'README.md' or die "README.md: $!\n";
