# Access tokens (nixcache_push_tokens, nixcache_read_tokens) and narinfo
# signing (nixcache_sign_key).  Keys and token files are in t/auth/:
# a.sk/a.pk made by nix-store --generate-binary-cache-key (cache-a-1),
# b.sk/b.pk by nixcache keygen (cache-b-1), a-other.* another key also
# named cache-a-1.  Signatures are checked by t/lib/nix-sig-verify, which
# shares no code with the module.

use lib 't/lib';
use Nixcache::Test;
run_tests();
__DATA__

=== TEST 1: push tokens: reads stay public, a PUT without credentials is 401
--- fixture
add_nar(name => 'a', content => "a\n" x 100);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upload on;
        nixcache_push_tokens $TEST_NIXCACHE_ROOT/t/auth/push.tokens;
    }
--- init
source t/lib/auth.sh
st GET nix-cache-info 200
st GET $TEST_NIXCACHE_FIX_a_HASH.narinfo 200
st GET nar/$TEST_NIXCACHE_FIX_a_NARHASH.nar 200
st PUT nix-cache-info 401
challenged
st PUT nix-cache-info 403 "$(bearer push-token-2)"
st PUT nix-cache-info 403 "$(bearer push-token-)"
st PUT nix-cache-info 403 "$(bearer push-token-1x)"
st PUT nix-cache-info 403 "$(bearer x)"
st PUT nix-cache-info 403 -u ci:wrong
st PUT nix-cache-info 401 -u push-token-1:
st PUT nix-cache-info 401 -H 'Authorization: Digest foo'
st PUT nix-cache-info 401 -H 'Authorization: Bearer '
st PUT nix-cache-info 204 "$(bearer push-token-1)"
st PUT nix-cache-info 204 "$(bearer push-token-two-longer)"
st PUT nix-cache-info 204 -H 'Authorization: bearer push-token-1'
st PUT nix-cache-info 204 -u ci:push-token-1
st PUT nix-cache-info 204 -u :push-token-two-longer
st HEAD nar/x.nar.xz 401
st HEAD nar/x.nar.xz 403 "$(bearer wrong)"
st HEAD nar/x.nar.xz 404 "$(bearer push-token-1)"
--- request
PUT /$TEST_NIXCACHE_FIX_a_HASH.narinfo
x
--- error_code: 401
--- response_headers_like
WWW-Authenticate: ^Basic realm="nixcache", Bearer realm="nixcache"$
--- no_error_log
[error]



=== TEST 2: a private cache: every route needs a read or push token
--- fixture
add_nar(name => 'a', content => "a\n" x 100);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upload on;
        nixcache_push_tokens $TEST_NIXCACHE_ROOT/t/auth/push.tokens;
        nixcache_read_tokens $TEST_NIXCACHE_ROOT/t/auth/read.tokens;
    }
--- init
source t/lib/auth.sh
h=$TEST_NIXCACHE_FIX_a_HASH
n=$TEST_NIXCACHE_FIX_a_NARHASH
for p in nix-cache-info $h.narinfo nar/$n.nar nar/$n.nar.zst; do
    st GET $p 401
    challenged
    st HEAD $p 401
    st GET $p 403 "$(bearer read-token-2)"
    st GET $p 403 "$(bearer read-token-)"
    st GET $p 403 "$(bearer read-token-1-and-more)"
    st GET $p 403 -u x:read-token-2
    st GET $p 403 "$(bearer '# a comment')"
    st GET $p 200 "$(bearer read-token-1)"
    st HEAD $p 200 "$(bearer read-token-1)"
    st GET $p 200 -u x:read-token-1
    st GET $p 200 "$(bearer push-token-1)"
    st GET $p 200 -u nix:push-token-two-longer
done
st GET nix-cache-infox 401
st PUT nix-cache-info 403 "$(bearer read-token-1)"
st PUT nix-cache-info 204 "$(bearer push-token-1)"
st HEAD nar/x.nar.xz 403 "$(bearer read-token-1)"
curl -sf -u x:read-token-1 $U/nar/$n.nar | cmp - $TEST_NIXCACHE_FIX_a_NAR
# credentials come before Redis: without it, 401 and 403 still
$TEST_NIXCACHE_REDIS_CTL stop
st GET $h.narinfo 401
st GET $h.narinfo 403 "$(bearer nope)"
st GET $h.narinfo 503 "$(bearer read-token-1)"
--- request
GET /nix-cache-info
--- error_code: 401
--- response_body_like: 401 Authorization Required



=== TEST 3: a revoked token is refused after nginx -s reload
--- skip eval
# nginx reloads badly with master_process off, as valgrind mode runs it
$ENV{TEST_NIXCACHE_VALGRIND} ? 'no reload under valgrind' : undef
--- fixture
open my $f, '>', "$ENV{TEST_NIXCACHE_DIR}/tokens" or die $!;
print $f "keep-this-one\nrevoke-this-one\n";
close $f;
chmod 0600, "$ENV{TEST_NIXCACHE_DIR}/tokens" or die $!;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_read_tokens $TEST_NIXCACHE_DIR/tokens;
    }
--- init
source t/lib/auth.sh
st GET nix-cache-info 200 "$(bearer revoke-this-one)"
st GET nix-cache-info 200 "$(bearer keep-this-one)"
echo keep-this-one > $TEST_NIXCACHE_DIR/tokens
master=$(cat $TEST_NIXCACHE_LOGS/nginx.pid)
old=$(pgrep -P $master || true)
kill -HUP $master
# the new configuration refuses the token, and the old workers are gone
for i in $(seq 150); do
    gone=1
    for p in $old; do kill -0 $p 2>/dev/null && gone=0; done
    code=$(curl -s -o /dev/null -w '%{http_code}' \
               "$(bearer revoke-this-one)" $U/nix-cache-info || true)
    [ $gone = 1 ] && [ $code = 403 ] && break
    sleep 0.1
done
[ $gone = 1 ]
--- request
GET /nix-cache-info
--- more_headers
Authorization: Bearer revoke-this-one
--- error_code: 403
--- post
source t/lib/auth.sh
st GET nix-cache-info 200 "$(bearer keep-this-one)"
--- no_error_log
[error]



=== TEST 4: narinfos are signed by each key; another cache's Sig is kept, a stale one of ours replaced
--- fixture
add_nar(name => 'dep', content => "dep\n");
add_nar(name => 'a', content => "a\n" x 100, references => ['dep'],
        self_reference => 1, deriver => 'x.drv',
        sig => ['other-cache-1:' . ('A' x 86) . '==',
                'cache-a-1:' . ('B' x 86) . '==']);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_sign_key $TEST_NIXCACHE_ROOT/t/auth/a.sk;
        nixcache_sign_key $TEST_NIXCACHE_ROOT/t/auth/b.sk;
    }
--- request
GET /$TEST_NIXCACHE_FIX_a_HASH.narinfo
--- response_body_like: \nSig: other-cache-1:A{86}==\nSig: cache-a-1:[A-Za-z0-9+/]{86}==\nSig: cache-b-1:[A-Za-z0-9+/]{86}==\n$
--- post
source t/lib/auth.sh
d=$TEST_NIXCACHE_DIR
curl -sf $U/$TEST_NIXCACHE_FIX_a_HASH.narinfo > $d/a.narinfo
curl -sf $U/$TEST_NIXCACHE_FIX_dep_HASH.narinfo > $d/dep.narinfo
t/lib/nix-sig-verify $K/a.pk $d/a.narinfo
t/lib/nix-sig-verify $K/b.pk $d/a.narinfo
t/lib/nix-sig-verify $K/a.pk $d/dep.narinfo
t/lib/nix-sig-verify $K/b.pk $d/dep.narinfo
# the verifier can fail: another key of the same name, a changed narinfo
fails t/lib/nix-sig-verify $K/a-other.pk $d/a.narinfo
sed 's/^NarSize: .*/NarSize: 1/' $d/a.narinfo > $d/changed.narinfo
fails t/lib/nix-sig-verify $K/a.pk $d/changed.narinfo
[ $(grep -c '^Sig: cache-a-1:' $d/a.narinfo) = 1 ]
[ $(grep -c '^Sig: ' $d/dep.narinfo) = 2 ]
grep -q '^References: .* .*' $d/a.narinfo
--- no_error_log
[error]



=== TEST 5: keys and tokens are inherited; without keys nothing is signed
--- fixture
add_nar(name => 'a', content => "a\n" x 100);
--- config
    nixcache_sign_key $TEST_NIXCACHE_ROOT/t/auth/b.sk;
    nixcache_read_tokens $TEST_NIXCACHE_ROOT/t/auth/read.tokens;
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
    location /plain/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_read_tokens $TEST_NIXCACHE_ROOT/t/auth/push.tokens;
        nixcache_sign_key $TEST_NIXCACHE_ROOT/t/auth/a.sk;
    }
--- init
source t/lib/auth.sh
st GET $TEST_NIXCACHE_FIX_a_HASH.narinfo 401
curl -sf "$(bearer read-token-1)" $U/$TEST_NIXCACHE_FIX_a_HASH.narinfo \
    > $TEST_NIXCACHE_DIR/a.narinfo
t/lib/nix-sig-verify $K/b.pk $TEST_NIXCACHE_DIR/a.narinfo
st GET plain/$TEST_NIXCACHE_FIX_a_HASH.narinfo 403 "$(bearer read-token-1)"
curl -sf "$(bearer push-token-1)" \
    $U/plain/$TEST_NIXCACHE_FIX_a_HASH.narinfo > $TEST_NIXCACHE_DIR/p.narinfo
t/lib/nix-sig-verify $K/a.pk $TEST_NIXCACHE_DIR/p.narinfo
fails t/lib/nix-sig-verify $K/b.pk $TEST_NIXCACHE_DIR/p.narinfo
--- request
GET /$TEST_NIXCACHE_FIX_a_HASH.narinfo
--- more_headers
Authorization: Bearer read-token-1
--- response_body_like: \nSig: cache-b-1:
--- no_error_log
[error]



=== TEST 6: without nixcache_sign_key the stored Sig lines are served as they are
--- fixture
add_nar(name => 'a', content => "a\n" x 100,
        sig => 'other-cache-1:' . ('A' x 86) . '==');
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- request
GET /$TEST_NIXCACHE_FIX_a_HASH.narinfo
--- response_body_like: \nReferences: \nSig: other-cache-1:A{86}==\n$



=== TEST 7: nginx -t: a malformed secret key
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_sign_key $TEST_NIXCACHE_ROOT/t/auth/bad.sk;
    }
--- must_die
--- error_log
qr/nixcache_sign_key "\S+/t/auth/bad\.sk" is not a Nix secret key \("name:base64"\): \S/



=== TEST 8: nginx -t: a public key given as the secret one
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_sign_key $TEST_NIXCACHE_ROOT/t/auth/pub-as-secret.sk;
    }
--- must_die
--- error_log
qr/nixcache_sign_key "\S+/pub-as-secret\.sk" is not a Nix secret key/



=== TEST 9: nginx -t: a missing key file
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_sign_key $TEST_NIXCACHE_DIR/nonexistent.sk;
    }
--- must_die
--- error_log
qr/open\(\) "\S+/nonexistent\.sk" failed \(2: No such file or directory\)/



=== TEST 10: nginx -t: two keys of the same name in one location
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_sign_key $TEST_NIXCACHE_ROOT/t/auth/a.sk;
        nixcache_sign_key $TEST_NIXCACHE_ROOT/t/auth/a-other.sk;
    }
--- must_die
--- error_log
a key named "cache-a-1" is already configured here



=== TEST 11: nginx -t: a token file without tokens
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_push_tokens $TEST_NIXCACHE_ROOT/t/auth/empty.tokens;
    }
--- must_die
--- error_log
qr/nixcache_push_tokens "\S+/empty\.tokens" holds no token/



=== TEST 12: nginx -t: a missing token file
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_read_tokens $TEST_NIXCACHE_DIR/none.tokens;
    }
--- must_die
--- error_log
qr/open\(\) "\S+/none\.tokens" failed/



=== TEST 13: nginx -t: a directory as token file
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_read_tokens $TEST_NIXCACHE_ROOT/t/auth;
    }
--- must_die
--- error_log
qr/"\S+/t/auth" is not a regular file/



=== TEST 14: nginx -t: nixcache_read_tokens twice
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_read_tokens $TEST_NIXCACHE_ROOT/t/auth/read.tokens;
        nixcache_read_tokens $TEST_NIXCACHE_ROOT/t/auth/push.tokens;
    }
--- must_die
--- error_log
"nixcache_read_tokens" directive is duplicate



=== TEST 15: a narinfo already holding 16 Sig lines: ours replace the last foreign ones
--- fixture
add_nar(name => 'a', content => "a\n" x 100,
        sig => [ 'cache-b-1:' . ('B' x 86) . '==',
                 map { "other-$_:" . ('A' x 86) . '==' } 1 .. 15 ]);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_sign_key $TEST_NIXCACHE_ROOT/t/auth/a.sk;
        nixcache_sign_key $TEST_NIXCACHE_ROOT/t/auth/b.sk;
    }
--- request
GET /$TEST_NIXCACHE_FIX_a_HASH.narinfo
--- response_body_like: ^StorePath: .*\nSig: cache-b-1:[A-Za-z0-9+/]{86}==\n(Sig: other-\d+:A{86}==\n){14}Sig: cache-a-1:[A-Za-z0-9+/]{86}==\n$
--- post
source t/lib/auth.sh
d=$TEST_NIXCACHE_DIR
curl -sf $U/$TEST_NIXCACHE_FIX_a_HASH.narinfo > $d/a.narinfo
t/lib/nix-sig-verify $K/a.pk $d/a.narinfo
t/lib/nix-sig-verify $K/b.pk $d/a.narinfo
[ $(grep -c '^Sig: ' $d/a.narinfo) = 16 ]
fails grep -q '^Sig: other-15:' $d/a.narinfo
--- error_log
too many Sig lines, a stored one is dropped
--- no_error_log
[error]



=== TEST 16: nginx -t: uploads without nixcache_push_tokens are refused
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upload on;
        nixcache_read_tokens $TEST_NIXCACHE_ROOT/t/auth/read.tokens;
    }
--- must_die
--- error_log
"nixcache_upload on" in location "/" requires "nixcache_push_tokens": a token file, or "off" to take uploads from anyone



=== TEST 17: nginx -t: a private cache cannot take anonymous uploads
--- config
    nixcache_read_tokens $TEST_NIXCACHE_ROOT/t/auth/read.tokens;
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
--- must_die
--- error_log
"nixcache_push_tokens off" in location "/" would let anyone write to a cache that needs nixcache_read_tokens to be read



=== TEST 18: "off" is explicit: anonymous uploads, and a public location in a private server
--- fixture
add_nar(name => 'a', content => "a\n" x 100);
--- config
    nixcache_read_tokens $TEST_NIXCACHE_ROOT/t/auth/read.tokens;
    location /open/ {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_read_tokens off;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
    }
--- init
source t/lib/auth.sh
st GET nix-cache-info 401
st GET nix-cache-info 200 "$(bearer read-token-1)"
st GET open/nix-cache-info 200
st GET open/$TEST_NIXCACHE_FIX_a_HASH.narinfo 200
st PUT open/nix-cache-info 204
--- request
GET /open/nix-cache-info
--- error_code: 200
--- no_error_log
[error]



=== TEST 19: admin tokens grant push and read
--- fixture
add_nar(name => 'a', content => "a\n" x 100);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_upload on;
        nixcache_admin_tokens $TEST_NIXCACHE_ROOT/t/auth/admin.tokens;
        nixcache_push_tokens $TEST_NIXCACHE_ROOT/t/auth/push.tokens;
        nixcache_read_tokens $TEST_NIXCACHE_ROOT/t/auth/read.tokens;
    }
--- init
source t/lib/auth.sh
st GET $TEST_NIXCACHE_FIX_a_HASH.narinfo 200 "$(bearer admin-token-1)"
st PUT nix-cache-info 204 "$(bearer admin-token-1)"
st PUT nix-cache-info 204 "$(bearer push-token-1)"
st PUT nix-cache-info 403 "$(bearer read-token-1)"
st PUT nix-cache-info 403 "$(bearer admin-token-2)"
--- request
GET /nix-cache-info
--- error_code: 401
--- no_error_log
[error]



=== TEST 20: nginx -t: a token file others can read
--- fixture
open my $f, '>', "$ENV{TEST_NIXCACHE_DIR}/open.tokens" or die $!;
print $f "a-token\n";
close $f;
chmod 0644, "$ENV{TEST_NIXCACHE_DIR}/open.tokens" or die $!;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_read_tokens $TEST_NIXCACHE_DIR/open.tokens;
    }
--- must_die
--- error_log
qr/nixcache_read_tokens "\S+\/open\.tokens" is readable or writable by group or others \(mode 644\): chmod 600 it/



=== TEST 21: nginx -t: a signing key others can write
--- fixture
use File::Copy qw(copy);
copy("$ENV{TEST_NIXCACHE_ROOT}/t/auth/a.sk", "$ENV{TEST_NIXCACHE_DIR}/a.sk")
    or die $!;
chmod 0620, "$ENV{TEST_NIXCACHE_DIR}/a.sk" or die $!;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_CHUNKS;
        nixcache_sign_key $TEST_NIXCACHE_DIR/a.sk;
    }
--- must_die
--- error_log
qr/nixcache_sign_key "\S+\/a\.sk" is readable or writable by group or others \(mode 620\)/
