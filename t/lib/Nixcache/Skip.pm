package Nixcache::Skip;

# Skips for a missing dependency (a tool, a package, a build product, the
# network): a skip on a machine without it, a failure under CI=true.  CI
# installs and builds everything first, so there a missing dependency is a
# broken install step, and a skipped suite would pass without testing.
# Skips that belong to a mode (a timing test not run under valgrind) are
# plain Test::More skips.
#
#   skip_all_missing($why)       instead of plan skip_all => $why
#   skip_missing($why, $count)   instead of skip($why, $count), in SKIP: {}
#   in_ci()                      whether CI is set to true (or 1)

use strict;
use warnings;

use Test::More ();

use Exporter qw(import);

our @EXPORT = qw(skip_all_missing skip_missing in_ci);


sub in_ci {
    return ($ENV{CI} // '') =~ /^(true|1)$/i;
}


sub _fail {
    my ($why) = @_;
    Test::More::fail("missing: $why");
    Test::More::diag("CI=true: a missing dependency fails instead of "
                     . "skipping (CI installs everything)");
}


sub skip_all_missing {
    my ($why) = @_;
    Test::More::plan(skip_all => $why) unless in_ci();
    _fail($why);
    Test::More::done_testing();
    exit 1;
}


sub skip_missing {
    my ($why, $count) = @_;
    if (!in_ci()) {
        Test::More::skip($why, $count);
    }
    _fail($why);
    no warnings 'exiting';
    last SKIP;
}


1;
