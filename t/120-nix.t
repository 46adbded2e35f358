#!/bin/bash
# The Nix packaging, as far as it can be checked here (Debian's Nix 2.8,
# no nixpkgs, no network):
#  - every .nix file of the repository parses (nix-instantiate --parse);
#  - nix/module.nix evaluates against t/nix/stub.nix (a stand-in for the
#    parts of nixpkgs' lib it uses) with README's configuration.nix
#    example and other sample configurations: the nginx text it gives
#    services.nginx, put into a full nginx.conf the way NixOS would (http
#    text, one server, the caches' locations) with our built module
#    loaded, passes `nginx -t`, the secret files being where systemd
#    would put the credentials (mode 0400, one directory);
#  - its assertions refuse what nginx -t would refuse (uploads without
#    push tokens, anonymous uploads to a private cache), and more;
#  - nix/nginx-conf.nix called directly gives the same text;
#  - nix/package.nix, called with stand-ins, names existing files and the
#    libraries the Makefile and config link; its build and check phases
#    (make cli, make unit) pass on a copy of its source file set.
# Not checked here: building nix/package.nix or the flake with nixpkgs,
# the NixOS VM test (nix/vm-test.nix).  Under CI=true a missing
# nix-instantiate fails instead of skipping.

source "$(dirname "$0")/lib/e2e.sh"

ROOT=$E2E_ROOT
cd "$ROOT" || exit 1

if ! command -v nix-instantiate > /dev/null; then
    if [ "${CI:-}" = true ]; then
        bail_out "nix-instantiate not installed (make deps: nix-bin)"
    fi
    skip_all "nix-instantiate not installed (make deps)"
fi
[ -x "$NGINX_BIN" ] || skip_all "$NGINX_BIN not installed"
[ -f "$NIXCACHE_MODULE" ] || bail_out "$NIXCACHE_MODULE not built (run make)"

T=$(mktemp -d "${TMPDIR:-/tmp}/nixcache-nix.XXXXXX") || bail_out "mktemp"
chmod 0755 "$T"
trap e2e_cleanup EXIT
mkdir -p "$T/log" "$T/nixconf" "$T/state"

# A root Nix without daemon (FACTS.md), with a state dir of its own.
printf 'build-users-group =\nexperimental-features = nix-command\n' \
    > "$T/nixconf/nix.conf"
export NIX_CONF_DIR=$T/nixconf
export NIX_STATE_DIR=$T/state
export NIX_USER_CONF_FILES=$T/nixconf/user.conf
: > "$T/nixconf/user.conf"
unset NIX_PATH NIX_REMOTE

# --- 1. every .nix file parses ---------------------------------------------

nix_files=$(git ls-files '*.nix' 2>/dev/null; find nix t/nix -name '*.nix' \
                2>/dev/null; [ -f flake.nix ] && echo flake.nix)
nix_files=$(printf '%s\n' $nix_files | sort -u)
for f in nix/package.nix nix/module.nix nix/nginx-conf.nix nix/vm-test.nix \
         flake.nix; do
    [ -f "$f" ]
    ok $? "$f exists"
done
for f in $nix_files; do
    run_ok "$f parses" nix-instantiate --parse "$f"
done

# --- helpers ---------------------------------------------------------------

# eval_module NAME SETTINGS: nix/module.nix through t/nix/eval-module.nix;
# the JSON in $T/NAME.json.
eval_module() {
    local name=$1 settings=$2
    nix-instantiate --eval --strict --json t/nix/eval-module.nix \
        --arg settings "$settings" > "$T/$name.json" 2> "$T/$name.err"
}

# json FILE PERL-EXPR: a value of the JSON ($j), printed.
json() {
    perl -MJSON::PP -e '
        local $/; open my $fh, "<", $ARGV[0] or die; my $j = decode_json(<$fh>);
        my $v = eval $ARGV[1]; die $@ if $@;
        print ref $v ? JSON::PP->new->canonical->encode($v) : $v // "";
    ' "$1" "$2"
}

# nginx_conf NAME: $T/NAME/nginx.conf from $T/NAME.json as NixOS would
# assemble it, the credentials directory replaced by $T/NAME/credentials,
# where each credential's file is copied (mode 0400, as systemd makes
# them).  Then nginx -t on it.
nginx_t() {
    local name=$1 d=$T/$1
    mkdir -p "$d/logs" "$d/credentials"
    perl -MJSON::PP -e '
        my ($json, $d, $module) = @ARGV;
        local $/; open my $fh, "<", $json or die; my $j = decode_json(<$fh>);
        my $cred = "/run/credentials/nginx.service";
        for my $c (@{$j->{credentials}}) {
            my ($n, $f) = split /:/, $c, 2;
            system("install", "-m", "0400", $f, "$d/credentials/$n") == 0
                or die "install $f\n";
        }
        my $locs = "";
        for my $l (sort keys %{$j->{locations}}) {
            (my $body = $j->{locations}{$l}) =~ s/^/            /mg;
            $locs .= "        location $l {\n$body        }\n";
        }
        my $conf = <<CONF;
load_module $module;
pid $d/nginx.pid;
error_log $d/logs/error.log;
events {}
http {
    access_log $d/logs/access.log;
    client_body_temp_path $d/client_body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    default_type application/octet-stream;
    client_max_body_size 10m;

$j->{http}
    server {
        listen 127.0.0.1:1;
$locs    }
}
CONF
        $conf =~ s{\Q$cred\E}{$d/credentials}g;
        open my $out, ">", "$d/nginx.conf" or die;
        print {$out} $conf;
    ' "$T/$name.json" "$d" "$NIXCACHE_MODULE" || return 1
    "$NGINX_BIN" -t -p "$d/" -c "$d/nginx.conf" -e "$d/logs/error.log"
}

# --- 2. the sample configurations --------------------------------------------

mkdir -p "$T/secrets" "$T/chunks"
cp t/auth/a.sk "$T/secrets/main.sk"
cp t/auth/b.sk "$T/secrets/team-b.sk"
cp t/auth/push.tokens t/auth/read.tokens t/auth/admin.tokens "$T/secrets/"
printf 'AWS_ACCESS_KEY_ID=S3RVER\nAWS_SECRET_ACCESS_KEY=S3RVER\n' \
    > "$T/secrets/s3.credentials"
chmod 0600 "$T/secrets/"*
S=$T/secrets

# README's configuration.nix ("On NixOS"), with this run's paths.
perl -0ne 'print $1 if /and in `configuration\.nix`.*?```nix\n(.*?)```/s' \
    README.md > "$T/example.nix"
perl -pi -e "s{/var/lib/secrets/nixcache/}{$S/}g;
             s{/var/lib/nixcache/chunks}{$T/chunks}g" "$T/example.nix"
[ -s "$T/example.nix" ]
ok $? "README has a configuration.nix example"
run_ok "README's example parses" nix-instantiate --parse "$T/example.nix"
is "$(nix-instantiate --eval -E \
        "builtins.attrNames (import $T/example.nix { }).services.nginx.virtualHosts" \
        2>&1)" '[ "nixcache" ]' \
   "README's example configures the module's default virtual host"
full="(import $T/example.nix { }).services.nixcache"
run_ok "module: README's example evaluates" eval_module full "$full"
diag_file "$T/full.err"
is "$(json "$T/full.json" '$j->{failedAssertions}')" "[]" \
   "module: no assertion fails"
is "$(json "$T/full.json" '$j->{modules}')" '["nixcache"]' \
   "module: the nginx module is added to services.nginx"
like "$(json "$T/full.json" '$j->{http}')" \
     'nixcache_redis unix:/run/redis-nixcache/redis\.sock;' \
     "module: Redis defaults to services.redis.servers.nixcache's socket"
is "$(json "$T/full.json" '$j->{redis}{enable} ? "on" : "off"')" on \
   "module: ... which it enables"
is "$(json "$T/full.json" '$j->{nginxGroups}')" '["redis-nixcache"]' \
   "module: ... and whose group nginx joins"
is "$(json "$T/full.json" 'join " ", sort keys %{$j->{locations}}')" \
   "/ /team-b/" "module: one location per cache, default /<name>/"
like "$(json "$T/full.json" '$j->{locations}{"/"}')" \
     'sendfile on;.*nixcache_upload on;.*client_max_body_size 8g;' \
     "module: sendfile on, upload on, client_max_body_size = uploadMaxNarSize"
like "$(json "$T/full.json" '$j->{locations}{"/"}')" \
     'nixcache_redis_prefix "main:";' \
     "module: redisPrefix defaults to <name>:"
is "$(json "$T/full.json" 'join " ", sort @{$j->{credentials}}')" \
   "nixcache-main-admin-tokens:$S/admin.tokens nixcache-main-push-tokens:$S/push.tokens nixcache-main-sign-key:$S/main.sk nixcache-team-b-read-tokens:$S/read.tokens nixcache-team-b-sign-key:$S/team-b.sk" \
   "module: every secret file is a LoadCredential of nginx"
like "$(json "$T/full.json" '$j->{locations}{"/"}')" \
     'nixcache_sign_key "/run/credentials/nginx\.service/nixcache-main-sign-key";' \
     "module: nginx reads it from the credentials directory"
is "$(json "$T/full.json" '$j->{tmpfiles}')" \
   "[\"d $T/chunks 0750 nginx nginx - -\"]" \
   "module: the chunk directory is made by tmpfiles, owned by nginx"
is "$(json "$T/full.json" '$j->{readWritePaths}')" "[\"$T/chunks\"]" \
   "module: ... and writable under ProtectSystem=strict"
run_ok "module: README's example passes nginx -t" nginx_t full

# S3 and the disk tier's limit; Redis by address; anonymous uploads.
s3="{
  enable = true;
  chunks = { directory = \"$T/chunks\"; maxSize = \"1g\"; };
  redis = { createLocally = false; address = \"redis://127.0.0.1:6390/1\"; };
  s3 = {
    endpoint = \"http://127.0.0.1:9000\";
    bucket = \"nixcache\";
    credentialsFile = \"$S/s3.credentials\";
  };
  caches.open = { location = \"/\"; upload = true; allowAnonymousUpload = true;
                  uploadMaxNarSize = \"2g\"; };
}"
run_ok "module: an S3 example evaluates" eval_module s3 "$s3"
diag_file "$T/s3.err"
is "$(json "$T/s3.json" '$j->{failedAssertions}')" "[]" \
   "module: no assertion fails"
like "$(json "$T/s3.json" '$j->{http}')" 'nixcache_redis redis://127\.0\.0\.1:6390/1;' \
     "module: redis.address is used"
is "$(json "$T/s3.json" '$j->{redis}{enable} ? "on" : "off"')" off \
   "module: ... and no local Redis is made"
like "$(json "$T/s3.json" '$j->{locations}{"/"}')" \
     'nixcache_push_tokens off;.*nixcache_s3_endpoint "http://127\.0\.0\.1:9000";.*nixcache_s3_credentials "/run/credentials/nginx\.service/nixcache-s3-credentials";.*nixcache_chunks_max_size 1g;' \
     "module: anonymous uploads said out loud; S3 credentials as a credential"
run_ok "module: the S3 example passes nginx -t" nginx_t s3

minimal="{ enable = true; chunks.directory = \"$T/chunks\";
           caches.c = { narCompression = \"none\";
                        extraConfig = \"add_header X-Cache c;\"; }; }"
run_ok "module: a small cache evaluates" eval_module minimal "$minimal"
run_ok "module: ... and passes nginx -t" nginx_t minimal

observed="{ enable = true; chunks.directory = \"$T/chunks\"; caches.c = { };
            metrics = { enable = true; allow = [ \"10.0.0.0/8\" ]; }; }"
run_ok "module: metrics on evaluates" eval_module observed "$observed"
diag_file "$T/observed.err"
like "$(json "$T/observed.json" '$j->{http}')" \
     'nixcache_metrics_zone nixcache 1m;' "module: metrics: the zone"
is "$(json "$T/observed.json" '$j->{locations}{"/nixcache/metrics"}')" \
   "allow 10.0.0.0/8;
deny all;
nixcache_metrics;" "module: metrics: served to metrics.allow only"
like "$(json "$T/observed.json" '$j->{locations}{"/nixcache/health"}')" \
     "nixcache_chunks \"$T/chunks\";.*nixcache_health;" \
     "module: metrics: the health check, on the chunk directory"
run_ok "module: ... and passes nginx -t" nginx_t observed
is "$(json "$T/minimal.json" 'join " ", sort keys %{$j->{locations}}')" "/c/" \
   "module: metrics off (the default): no such locations"

# nix/nginx-conf.nix alone, from the module's settings: the same text.
run_ok "nginx-conf.nix called directly" sh -c "
    nix-instantiate --eval --strict --json -E '
      (import ./nix/nginx-conf.nix {
        credentialsDirectory = \"/run/credentials/nginx.service\";
        settings = {
          redis = { address = \"127.0.0.1:6390\"; timeout = \"2s\"; };
          chunks = { directory = \"$T/chunks\"; maxSize = null; };
          s3 = null;
          extraConfig = \"\";
          caches.c = {
            location = \"/c/\"; redisPrefix = \"c:\"; priority = 30;
            narCompression = \"none\"; signKeyFile = null;
            readTokensFile = null; pushTokensFile = null;
            adminTokensFile = null; allowAnonymousUpload = false;
            upload = false; uploadMaxNarSize = \"8g\";
            extraConfig = \"add_header X-Cache c;\";
          };
        };
      }).locations' > '$T/direct.json'"
is "$(json "$T/direct.json" '$j->{"/c/"}')" \
   "$(json "$T/minimal.json" '$j->{locations}{"/c/"}')" \
   "nginx-conf.nix: the location text is the module's"

# --- 3. nix/package.nix ---------------------------------------------------

run_ok "package.nix evaluates with stand-ins (its file sets exist)" sh -c \
    "nix-instantiate --eval --strict --json t/nix/eval-package.nix > '$T/pkg.json'"

# -lNAME as the Makefile and config link it -> the nixpkgs attribute
libs_to_pkgs() {
    perl -e '
        my %p = (hiredis => "hiredis", zstd => "zstd", lzma => "xz",
                 bz2 => "bzip2", sodium => "libsodium", crypto => "openssl",
                 curl => "curl", "json-c" => "json-c");
        my @l = map { $p{$_} // "unknown-lib-$_" } $ARGV[0] =~ /-l([^\s"]+)/g;
        print join(" ", sort @l);
    ' -- "$1"
}
is "$(json "$T/pkg.json" 'join " ", sort @{$j->{buildInputs}}')" \
   "$(libs_to_pkgs "$(sed -n 's/^CLI_LIBS *:= *//p' Makefile)")" \
   "package: the CLI's inputs are the libraries the Makefile links"
is "$(json "$T/pkg.json" 'join " ", sort @{$j->{module}{inputs}}')" \
   "$(libs_to_pkgs "$(sed -n 's/^NIXCACHE_LIBS=//p' config)")" \
   "package: the nginx module's inputs are the libraries config links"
is "$(json "$T/pkg.json" '$j->{module}{name}')" nixcache \
   "package: passthru.nginxModule is a named nginx module"
is "$(json "$T/pkg.json" '$j->{nginxModules}')" '["nixcache"]' \
   "package: passthru.nginx is nginx with it"
is "$(json "$T/pkg.json" '"$j->{buildFlags}[0] $j->{checkTarget} " . ($j->{doCheck} ? "check" : "nocheck")')" \
   "cli unit check" "package: builds make cli, checks with make unit"

# The package's build and check phases, replayed on a copy of its source
# file set only (make cli, make unit): nothing outside it is needed.
mkdir -p "$T/pkgsrc"
for f in $(json "$T/pkg.json" 'join " ", @{$j->{srcFiles}}'); do
    cp -r --parents "$f" "$T/pkgsrc/"
done
run_ok "package: make cli in its source set" \
    nice make -s -C "$T/pkgsrc" SHELL=/bin/bash cli
run_ok "package: make unit in its source set" \
    nice make -s -C "$T/pkgsrc" SHELL=/bin/bash unit

# --- 4. what the module refuses --------------------------------------------

# refused NAME SETTINGS REGEX: evaluation fails, or an assertion does,
# with a message matching REGEX.
refused() {
    local name=$1 settings=$2 re=$3 msg
    if eval_module "$name" "$settings"; then
        msg=$(json "$T/$name.json" 'join "\n", @{$j->{failedAssertions}}')
    else
        msg=$(cat "$T/$name.err")
    fi
    like "$msg" "$re" "module refuses: $name"
}

refused upload-without-tokens \
    "{ enable = true; caches.c = { upload = true; }; }" \
    'upload needs pushTokensFile'
refused anonymous-private \
    "{ enable = true; caches.c = { upload = true; allowAnonymousUpload = true;
       readTokensFile = \"$S/read.tokens\"; }; }" \
    'never takes anonymous uploads'
refused secret-in-store \
    "{ enable = true; caches.c.signKeyFile = \"/nix/store/aaaa-key.sk\"; }" \
    'in the Nix store'
refused max-size-without-s3 \
    "{ enable = true; chunks.maxSize = \"1g\"; caches.c = { }; }" \
    'maxSize needs services.nixcache.s3'
refused same-location \
    "{ enable = true; caches.a.location = \"/\"; caches.b.location = \"/\"; }" \
    'share a location'
refused bad-name \
    "{ enable = true; caches.\"a b\" = { }; }" \
    'names are letters'
refused no-caches "{ enable = true; }" 'at least one cache'
refused bad-priority \
    "{ enable = true; caches.c.priority = 70000; }" \
    'priority.*not a integer between 0 and 65535'
refused unknown-option \
    "{ enable = true; caches.c.signKey = \"/x\"; }" \
    'caches\.c\.signKey: no such option'

# the nginx -t the module's assertions stand in for really fails
nginx_refuses="{ enable = true; chunks.directory = \"$T/chunks\";
                 caches.c = { upload = true; }; }"
eval_module upload-nginx "$nginx_refuses"
like "$(nginx_t upload-nginx 2>&1)" 'nixcache_push_tokens.*test failed' \
     "nginx -t refuses upload without push tokens (as the assertion does)"

run_ok "module: disabled, it adds nothing" \
    eval_module off "{ enable = false; }"
is "$(json "$T/off.json" '$j->{enabled} ? "on" : "off"')" off \
   "module: ... not even services.nginx"

done_testing
