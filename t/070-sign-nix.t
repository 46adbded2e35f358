#!/usr/bin/perl

# Live cross-check of our ed25519 narinfo signatures against the real Nix.
#
# On a private Nix store (no daemon, no servers) we build a small closure
# of input-addressed paths (one with references, one referring to itself)
# and add two content-addressed ones.  Then, for a key pair made by Nix
# (nix-store --generate-binary-cache-key) and one made by us (nixcache
# keygen):
#   - our code parses both key files and renders them back byte for byte;
#   - Nix signs every path (nix store sign --key-file) and our code makes
#     the very same signature for the same fingerprint (ed25519 is
#     deterministic), and verifies Nix's;
#   - Nix's nix store verify trusts the paths with the public key;
#   - a binary cache whose narinfos carry only OUR signatures is accepted
#     by nix copy --from with require-sigs, and one signed by an impostor
#     key of the same name is refused.
#
# Our side runs through t/sign/signtool.c, a small driver over the core
# (build/libnixcache.a) compiled here.  The reference fingerprints are made
# here from nix path-info and nix-store -q --hash, independently of the
# core's narinfo code, which must agree with them.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IPC::Run qw(run);
use JSON::PP;
use Test::More;


my $root = abs_path(dirname(__FILE__) . '/..');
my $T = tempdir('nixcache-sign-XXXXXX', TMPDIR => 1, CLEANUP => 1);

mkdir "$T/conf" or die;
write_file("$T/conf/nix.conf", <<'EOF');
build-users-group =
experimental-features = nix-command
sandbox = false
substituters =
EOF

$ENV{NIX_CONF_DIR} = "$T/conf";
$ENV{XDG_CACHE_HOME} = "$T/xdg";
delete $ENV{NIX_REMOTE};

my $S = "$T/build-store";     # where paths are built: "ultimately trusted"
my $V = "$T/store";           # copies: trusted only through signatures


# --- our side: the driver, and nixcache keygen --------------------------

my ($out, $err);

ok(run([ 'make', '-s', '-C', $root, 'build/libnixcache.a' ],
       \undef, \$out, \$err), 'make build/libnixcache.a')
    or BAIL_OUT("cannot build the core: $err");

ok(run([ 'cc', '-O2', '-g', '-Wall', '-Wextra', '-Wpointer-arith',
         '-Wno-unused-parameter', '-Werror', '-D_GNU_SOURCE',
         "-I$root/src", "-I$root/tools", '-o', "$T/signtool",
         "$root/t/sign/signtool.c", "$root/tools/keygen.c",
         "$root/build/libnixcache.a", '-lsodium', '-lcrypto' ],
       \undef, \$out, \$err), 'signtool builds')
    or BAIL_OUT("cannot build t/sign/signtool.c: $err");

my @keygen = ("$T/signtool", 'keygen');

if (-x "$root/build/nixcache"
    && run([ "$root/build/nixcache", 'keygen', '--help' ],
           \undef, \$out, \$err))
{
    @keygen = ("$root/build/nixcache", 'keygen');
}

diag("keygen: @keygen");


# --- the paths ----------------------------------------------------------

write_file("$T/closure.nix", <<'EOF');
let
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
  };
  leaf = mk "nixcache-sign-leaf" "echo leaf > $out";
  mid = mk "nixcache-sign-mid" "echo ${leaf} > $out";
in
  mk "nixcache-sign-top"
    "/bin/mkdir $out; echo ${leaf} ${mid} > $out/refs; echo $out > $out/self"
EOF

my $top = nix('nix-build', '--store', $S, '--no-out-link',
              '--option', 'extra-sandbox-paths', '/bin /lib /lib64 /usr',
              "$T/closure.nix");
chomp $top;
like($top, qr{^/nix/store/[0-9a-z]{32}-nixcache-sign-top$}, 'closure built');

my @built = split /\n/, nix('nix-store', '--store', $S, '-qR', $top);
is(scalar @built, 3, 'closure has three paths');

write_file("$T/hello.txt", "hello from nixcache\n");
mkdir "$T/dir" or die;
write_file("$T/dir/a", "a\n");
write_file("$T/dir/b", "b\n");
my @added = map { my $p = nix('nix-store', '--store', $S, '--add', $_);
                  chomp $p; $p } ("$T/hello.txt", "$T/dir");

my @paths = (@built, @added);

nix('nix', 'copy', '--no-check-sigs', '--store', $S, '--to', $V, @paths);

my %fp;
my %info = path_info(@paths);

for my $p (@paths) {
    my $hash = nix('nix-store', '--store', $V, '-q', '--hash', $p);
    chomp $hash;
    like($hash, qr/^sha256:[0-9a-z]{52}$/, "NarHash of $p");

    $fp{$p} = join(';', '1', $p, $hash, $info{$p}{narSize},
                   join(',', sort @{ $info{$p}{references} }));
    is_deeply($info{$p}{signatures} // [], [], "$p starts unsigned");
}

my ($self_refs, $multi_refs) = (0, 0);

for my $p (@built) {
    my @refs = split /,/, (split /;/, $fp{$p}, 5)[4];

    $self_refs++ if grep { $_ eq $p } @refs;
    $multi_refs++ if @refs >= 2;
}

is($self_refs, 1, 'one path refers to itself');
is($multi_refs, 1, 'one path has several references');


# --- each key pair ------------------------------------------------------

my %keys = (
    nix  => { name => 'nix-made-1',
              make => [ 'nix-store', '--generate-binary-cache-key' ] },
    ours => { name => 'ours-made-1', make => \@keygen },
);

for my $who (sort keys %keys) {
    my $k = $keys{$who};
    my ($sk, $pk) = ("$T/$who.sk", "$T/$who.pk");

    ok(run([ @{ $k->{make} }, $k->{name}, $sk, $pk ], \undef, \$out, \$err),
       "$who: key pair made") or diag($err);

    my $sk_text = read_file($sk);
    my $pk_text = read_file($pk);
    like($sk_text, qr{^\Q$k->{name}\E:[A-Za-z0-9+/]{86}==$},
         "$who: secret key file format");
    like($pk_text, qr{^\Q$k->{name}\E:[A-Za-z0-9+/]{43}=$},
         "$who: public key file format");
    is((stat $sk)[2] & 07777, 0600, "$who: secret key mode 0600")
        if $who eq 'ours';

    is(tool('secret', $sk), "$k->{name}\n$sk_text\n",
       "$who: our code parses the secret key and renders it back");
    is(tool('public', $pk), "$k->{name}\n$pk_text\n",
       "$who: our code parses the public key and renders it back");

    nix('nix', 'store', 'sign', '--store', $V, '--key-file', $sk, @paths);
    pass("$who: nix store sign accepts the secret key");

    my %signed = path_info(@paths);

    for my $p (@paths) {
        my @sigs = grep { /^\Q$k->{name}\E:/ } @{ $signed{$p}{signatures} };
        is(scalar @sigs, 1, "$who: Nix signed $p");

        my $ours = tool('sign', $sk, $fp{$p});
        chomp $ours;
        is($ours, $sigs[0], "$who: our signature of $p equals Nix's");

        is(tool_rc('verify', $pk, $sigs[0], $fp{$p}), 0,
           "$who: our code verifies Nix's signature of $p");
        (my $other = $fp{$p}) =~ s/;(\d+);/';' . ($1 + 1) . ';'/e;
        is(tool_rc('verify', $pk, $sigs[0], $other), 1,
           "$who: ... and not for another NarSize");
    }

    ok(run([ 'nix', 'store', 'verify', '--store', $V, '--no-contents',
             '--trusted-public-keys', $pk_text, @built ],
           \undef, \$out, \$err), "$who: nix store verify trusts the paths")
        or diag($err);

    $k->{sk} = $sk;
    $k->{pk} = $pk_text;
}

ok(run([ @keygen, 'ours-made-1', "$T/imp.sk", "$T/imp.pk" ],
       \undef, \$out, \$err), 'impostor key pair made (same name as ours)')
    or diag($err);
ok(!run([ 'nix', 'store', 'verify', '--store', $V, '--no-contents',
          '--trusted-public-keys', read_file("$T/imp.pk"), @built ],
        \undef, \$out, \$err),
   'nix store verify does not trust the paths with the impostor key');
like($err, qr/untrusted/, '... saying they are untrusted');


# --- nixcache keygen's care with files -----------------------------------

{
    my ($sk, $pk) = ("$T/keep.sk", "$T/keep.pk");

    write_file($pk, "precious\n");
    ok(!run([ @keygen, 'k-1', $sk, $pk ], \undef, \$out, \$err),
       'keygen refuses an existing PUBLIC-FILE');
    like($err, qr/exists/, '... saying it exists');
    ok(!-e $sk, '... and creates no SECRET-FILE');
    is(read_file($pk), "precious\n", '... and leaves PUBLIC-FILE alone');

    write_file($sk, "precious\n");
    chmod 0644, $sk;
    unlink $pk;
    ok(!run([ @keygen, 'k-1', $sk, $pk ], \undef, \$out, \$err),
       'keygen refuses an existing SECRET-FILE');
    is(read_file($sk), "precious\n", '... and leaves it alone');
    ok(!-e $pk, '... and creates no PUBLIC-FILE');

    ok(run([ @keygen, '--force', 'k-1', $sk, $pk ], \undef, \$out, \$err),
       'keygen --force replaces them') or diag($err);
    like(read_file($sk), qr{^k-1:[A-Za-z0-9+/]{86}==$}, '... with a key');
    is((stat $sk)[2] & 07777, 0600, '... of mode 0600');
    is(tool('public', $pk), "k-1\n" . read_file($pk) . "\n",
       '... whose public half parses');
    is(join(',', sort grep { /keep\./ } map { s{.*/}{}r } glob("$T/*")),
       'keep.pk,keep.sk', '... leaving no temporary file behind');

    for my $bad ('', 'a b', 'a:b') {
        ok(!run([ @keygen, $bad, "$T/bad.sk", "$T/bad.pk" ],
                \undef, \$out, \$err), "keygen refuses the name '$bad'");
    }
    ok(!-e "$T/bad.sk" && !-e "$T/bad.pk", '... and writes nothing');
}


# --- a binary cache carrying only our signatures -------------------------

for my $signer ('ours', 'imp') {
    my ($sk, $pk) = $signer eq 'imp'
                    ? ("$T/imp.sk", $keys{ours}{pk})
                    : ($keys{ours}{sk}, $keys{ours}{pk});
    my $bc = "$T/bc-$signer";

    nix('nix', 'copy', '--store', $V, '--to', "file://$bc", @built);

    for my $p (@built) {
        my ($h) = $p =~ m{^/nix/store/([0-9a-z]{32})-};
        my $ni = read_file("$bc/$h.narinfo");

        my $fp = tool('fingerprint', "$bc/$h.narinfo");
        chomp $fp;
        is($fp, $fp{$p},
           "$signer: our fingerprint of Nix's narinfo of $p is Nix's");

        my $sig = tool('sign', $sk, $fp);
        chomp $sig;
        $ni =~ s/^Sig: .*\n//mg;
        $ni .= "Sig: $sig\n";
        write_file("$bc/$h.narinfo", $ni);
    }

    my $ok = run([ 'nix', 'copy', '--from', "file://$bc", '--to',
                   "$T/dest-$signer", '--option', 'require-sigs', 'true',
                   '--option', 'trusted-public-keys', $pk, $top ],
                 \undef, \$out, \$err);

    if ($signer eq 'ours') {
        ok($ok, 'nix copy accepts narinfos signed by our code') or diag($err);

        my %got = path_info_in("$T/dest-$signer", @built);
        is(scalar(grep { @{ $got{$_}{signatures} } == 1 } @built),
           scalar @built, '... and keeps our signatures');

    } else {
        ok(!$ok, 'nix copy refuses narinfos signed by an impostor key');
        like($err, qr/lacks a valid signature/, '... as lacking a valid one');
    }
}

done_testing();


sub nix {
    my @cmd = @_;
    my ($o, $e);

    run(\@cmd, \undef, \$o, \$e) or do { diag($e); BAIL_OUT("@cmd failed") };

    return $o;
}


sub tool {
    my ($o, $e);

    run([ "$T/signtool", @_ ], \undef, \$o, \$e) or return "failed: $e";

    return $o;
}


sub tool_rc {
    my ($o, $e);

    run([ "$T/signtool", @_ ], \undef, \$o, \$e);

    return $? >> 8;
}


sub path_info {
    return path_info_in($V, @_);
}


sub path_info_in {
    my ($store, @p) = @_;
    my $json = nix('nix', 'path-info', '--json', '--store', $store, @p);

    return map { $_->{path} => $_ } @{ decode_json($json) };
}


sub read_file {
    my ($path) = @_;

    open my $fh, '<', $path or return undef;
    local $/;
    my $s = <$fh>;
    close $fh;

    return $s;
}


sub write_file {
    my ($path, $s) = @_;

    open my $fh, '>', $path or die "$path: $!";
    print $fh $s;
    close $fh or die "$path: $!";
}
