# nixcache push and verify against a Redis that wants a password: AUTH
# from the file named by --redis-auth or $NIXCACHE_REDIS_AUTH ("password"
# or "user password", the module's nixcache_redis_auth format), sent
# before SELECT; a clear error without it or with a wrong one, and never
# the password in the output.
#
#   prove -I t/lib t/033-cli-redis-auth.t          (needs `make cli`)

use strict;
use warnings;

use Test::More;

use lib 't/lib';
use Nixcache::Cli;

my $T = cli_setup();
my $S = "$T/store";
my $redis = start_redis();
my $chunks = "$T/chunks";
my $pw = 'cli-rp-pw-2718';

my ($rc, $out, $err);

spew("$T/hello.txt", "hello, redis auth\n");
($rc, $out, $err) = nix('nix-store', '--store', $S, '--add', "$T/hello.txt");
die "nix-store --add: $err" if $rc != 0;
chomp(my $path = $out);
my ($hash) = $path =~ m{/([0-9a-z]{32})-};

# the last command without a password: from now on every one needs AUTH
redis_cmd('CONFIG', 'SET', 'requirepass', $pw);

sub rcli {
    my $o = `redis-cli -s $T/redis/sock -a $pw --no-auth-warning @_`;
    chomp $o;
    return $o;
}

my @push = ('push', '--redis', "redis://$redis/3", '--chunks', $chunks,
            '--store', $S, $path);

sub auth_file {
    my ($name, $text) = @_;
    spew("$T/$name", $text);
    chmod 0600, "$T/$name" or die "chmod: $!";
    return "$T/$name";
}


# no credentials: refused, and said so

delete $ENV{NIXCACHE_REDIS_AUTH};
($rc, $out, $err) = nixcache(@push);
isnt($rc, 0, 'no credentials: push fails');
like($err, qr/NOAUTH|Authentication required/i, 'no credentials: says why')
    or diag($err);
is(rcli('-n', 3, 'EXISTS', "nixcache:narinfo:$hash"), '0',
   'no credentials: nothing written');


# a wrong password: AUTH failed, the password not printed

$ENV{NIXCACHE_REDIS_AUTH} = auth_file('wrong', "wrong-pw-1414\n");
($rc, $out, $err) = nixcache(@push);
isnt($rc, 0, 'wrong password: push fails');
like($err, qr/AUTH failed: WRONGPASS/, 'wrong password: AUTH failed')
    or diag($err);
unlike($out . $err, qr/wrong-pw-1414/, 'wrong password: not printed');


# a missing file: named in the error

$ENV{NIXCACHE_REDIS_AUTH} = "$T/no-such-file";
($rc, $out, $err) = nixcache(@push);
isnt($rc, 0, 'missing file: push fails');
like($err, qr{Redis credentials \Q$T\E/no-such-file: No such file},
     'missing file: named') or diag($err);


# the password (requirepass form): pushed into database 3

$ENV{NIXCACHE_REDIS_AUTH} = auth_file('pass', "$pw\n");
($rc, $out, $err) = nixcache(@push);
is($rc, 0, 'password: push succeeds') or diag($err);
is(rcli('-n', 3, 'EXISTS', "nixcache:narinfo:$hash"), '1',
   'password: narinfo written in database 3');
unlike($out . $err, qr/\Q$pw\E/, 'password: not printed');


# an ACL user and its password

rcli('ACL', 'SETUSER', 'pusher', 'on', "'>acl-pusher-pw'", "'~*'", '+@all');
rcli('-n', 3, 'FLUSHDB');
$ENV{NIXCACHE_REDIS_AUTH} = auth_file('acl', "pusher acl-pusher-pw\n");
($rc, $out, $err) = nixcache(@push);
is($rc, 0, 'ACL user: push succeeds') or diag($err);
is(rcli('-n', 3, 'EXISTS', "nixcache:narinfo:$hash"), '1',
   'ACL user: narinfo written');

$ENV{NIXCACHE_REDIS_AUTH} = auth_file('acl-wrong', "pusher nope\n");
($rc, $out, $err) = nixcache(@push, '--force');
isnt($rc, 0, 'ACL user, wrong password: push fails');
like($err, qr/AUTH failed: WRONGPASS/, 'ACL user, wrong password: says why')
    or diag($err);

delete $ENV{NIXCACHE_REDIS_AUTH};


# --redis-auth FILE, and verify (its own options) with and without it

($rc, $out, $err) = nixcache(@push, '--force', '--redis-auth', "$T/acl");
is($rc, 0, '--redis-auth: push succeeds') or diag($err);

my @verify = ('verify', '--redis', "redis://$redis/3", '--chunks', $chunks);
($rc, $out, $err) = nixcache(@verify, '--redis-auth', "$T/acl");
is($rc, 0, 'verify --redis-auth: sound') or diag("$out$err");

($rc, $out, $err) = nixcache(@verify);
is($rc, 2, 'verify without credentials: a Redis error (2)');
like($err, qr/NOAUTH|Authentication required/i,
     'verify without credentials: says why') or diag($err);

$ENV{NIXCACHE_REDIS_AUTH} = "$T/pass";
($rc, $out, $err) = nixcache(@verify, '--redis-auth', "$T/acl-wrong");
isnt($rc, 0, '--redis-auth wins over $NIXCACHE_REDIS_AUTH');
like($err, qr/AUTH failed: WRONGPASS/, '--redis-auth wins: its file used')
    or diag($err);
delete $ENV{NIXCACHE_REDIS_AUTH};

stop_redis();

done_testing();
