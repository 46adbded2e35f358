# Uploads through the module (nixcache_upload on), request by request as
# `nix copy --to http://...` sends them, and every way they can go wrong:
# the NAR in each compression, NarHash or NarSize mismatch, a StorePath
# for another URL, oversized or malformed narinfos, unknown compression,
# garbage, truncated bodies and wrong Content-Length, uploads off, Redis
# down, an unwritable chunk directory, concurrent uploads of one NAR.
#
# Fixture NARs are written under the prefix "fix:" (their chunks in the
# harness's chunk dir); the cache under test uses "up:" and its own chunk
# directory, so whatever it serves came through the upload.

use lib 't/lib';
use Nixcache::Test;
run_tests();
__DATA__

=== TEST 1: a NAR uploaded as .nar.xz, then its narinfo: served back
--- fixture
add_nar(name => 'a', prefix => 'fix:',
        content => join('', map { "line $_ " . ('x' x ($_ % 97)) . "\n" }
                               1 .. 20000));
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
xz -c $TEST_NIXCACHE_FIX_a_NAR > $TEST_NIXCACHE_DIR/a.nar.xz
status HEAD nar/someupload.nar.xz 404
put nar/someupload.nar.xz $TEST_NIXCACHE_DIR/a.nar.xz 201
status HEAD nar/someupload.nar.xz 200
no_keys 'up:narinfo:*'
narinfo a
put $TEST_NIXCACHE_FIX_a_HASH.narinfo $TEST_NIXCACHE_DIR/a.narinfo 201
--- request
GET /nar/$TEST_NIXCACHE_FIX_a_NARHASH.nar
--- response_body_file: $TEST_NIXCACHE_FIX_a_NAR
--- post
source t/lib/upload.sh
curl -s $U/$TEST_NIXCACHE_FIX_a_HASH.narinfo > $TEST_NIXCACHE_DIR/got
grep -qx "URL: nar/$TEST_NIXCACHE_FIX_a_NARHASH.nar.zst" $TEST_NIXCACHE_DIR/got
grep -qx "Compression: zstd" $TEST_NIXCACHE_DIR/got
grep -qx "StorePath: $TEST_NIXCACHE_FIX_a_STOREPATH" $TEST_NIXCACHE_DIR/got
grep -qx "NarSize: $TEST_NIXCACHE_FIX_a_NARSIZE" $TEST_NIXCACHE_DIR/got
curl -s $U/nar/$TEST_NIXCACHE_FIX_a_NARHASH.nar.zst | zstd -dc \
    | cmp - $TEST_NIXCACHE_FIX_a_NAR
no_keys 'up:manifest:*.tmp.*'
[ "$(rcli GET up:upload:someupload.nar.xz)" = $TEST_NIXCACHE_FIX_a_NARHASH ]
[ "$(rcli TTL up:manifest:$TEST_NIXCACHE_FIX_a_NARHASH)" = -1 ]
no_temp_files
--- error_log
nixcache: uploaded "someupload.nar.xz": NAR
--- no_error_log
[error]



=== TEST 2: .nar (none), .nar.zst and .nar.bz2 of the same NAR: one copy
--- fixture
add_nar(name => 'a', prefix => 'fix:',
        content => join('', map { "row $_ " . ('y' x ($_ % 89)) . "\n" }
                               1 .. 20000));
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
d=$TEST_NIXCACHE_DIR
zstd -q -19 -c $TEST_NIXCACHE_FIX_a_NAR > $d/a.nar.zst
bzip2 -c $TEST_NIXCACHE_FIX_a_NAR > $d/a.nar.bz2
put nar/plain.nar $TEST_NIXCACHE_FIX_a_NAR 201
n=$(find $d/up -type f | wc -l)
[ "$n" -gt 3 ] || { echo "only $n chunks"; exit 1; }
put nar/z.nar.zst $d/a.nar.zst 201
put nar/b.nar.bz2 $d/a.nar.bz2 201
[ "$(find $d/up -type f | wc -l)" = $n ] || { echo "new chunks"; exit 1; }
narinfo a
put $TEST_NIXCACHE_FIX_a_HASH.narinfo $d/a.narinfo 201
--- request
GET /nar/$TEST_NIXCACHE_FIX_a_NARHASH.nar
--- response_body_file: $TEST_NIXCACHE_FIX_a_NAR
--- no_error_log
[error]



=== TEST 3: the narinfo claims another NarHash: 400, nothing visible
--- fixture
add_nar(name => 'a', prefix => 'fix:', content => "the real one\n" x 5000);
add_nar(name => 'b', prefix => 'fix:', content => "another one\n" x 5000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
put nar/x.nar $TEST_NIXCACHE_FIX_b_NAR 201
--- request
PUT /$TEST_NIXCACHE_FIX_a_HASH.narinfo
StorePath: $TEST_NIXCACHE_FIX_a_STOREPATH
URL: nar/x.nar
Compression: none
NarHash: sha256:$TEST_NIXCACHE_FIX_a_NARHASH
NarSize: $TEST_NIXCACHE_FIX_a_NARSIZE
References: 
--- error_code: 400
--- post
source t/lib/upload.sh
no_keys 'up:narinfo:*'
status GET $TEST_NIXCACHE_FIX_a_HASH.narinfo 404
--- error_log
NAR not uploaded or NarHash mismatch
--- no_error_log
[error]



=== TEST 4: the right NarHash with a wrong NarSize: 400
--- fixture
add_nar(name => 'a', prefix => 'fix:', content => "sized\n" x 5000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
put nar/x.nar $TEST_NIXCACHE_FIX_a_NAR 201
narinfo a '' 12345
put $TEST_NIXCACHE_FIX_a_HASH.narinfo $TEST_NIXCACHE_DIR/a.narinfo 400
--- request
GET /$TEST_NIXCACHE_FIX_a_HASH.narinfo
--- error_code: 404
--- error_log
NAR not uploaded or NarHash mismatch
--- no_error_log
[error]



=== TEST 5: a narinfo whose NAR was never uploaded: 400
--- fixture
add_nar(name => 'a', prefix => 'fix:', content => "never sent\n");
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
--- init
source t/lib/upload.sh
narinfo a
--- request
PUT /$TEST_NIXCACHE_FIX_a_HASH.narinfo
StorePath: $TEST_NIXCACHE_FIX_a_STOREPATH
URL: nar/x.nar
Compression: none
NarHash: sha256:$TEST_NIXCACHE_FIX_a_NARHASH
NarSize: $TEST_NIXCACHE_FIX_a_NARSIZE
References: 
--- error_code: 400
--- post
source t/lib/upload.sh
no_keys 'up:*'
--- no_error_log
[error]



=== TEST 6: StorePath of another path than the URL's hash: 400
--- fixture
add_nar(name => 'a', prefix => 'fix:', content => "a\n" x 100);
add_nar(name => 'b', prefix => 'fix:', content => "b\n" x 100);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
put nar/a.nar $TEST_NIXCACHE_FIX_a_NAR 201
--- request
PUT /$TEST_NIXCACHE_FIX_b_HASH.narinfo
StorePath: $TEST_NIXCACHE_FIX_a_STOREPATH
URL: nar/a.nar
Compression: none
NarHash: sha256:$TEST_NIXCACHE_FIX_a_NARHASH
NarSize: $TEST_NIXCACHE_FIX_a_NARSIZE
References: 
--- error_code: 400
--- post
source t/lib/upload.sh
no_keys 'up:narinfo:*'
--- error_log
is not that path
--- no_error_log
[error]



=== TEST 7: a narinfo that does not parse: 400
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
--- request
PUT /0123456789abcdfghijklmnpqrsvwxyz.narinfo
StorePath: /nix/store/0123456789abcdfghijklmnpqrsvwxyz-x
--- error_code: 400
--- error_log
refused
--- no_error_log
[error]



=== TEST 8: an oversized narinfo (Content-Length over 64 KiB): 413
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_max_body_size 1m;
    }
--- request eval
"PUT /0123456789abcdfghijklmnpqrsvwxyz.narinfo\n" . ("Sig: x\n" x 10000)
--- error_code: 413
--- error_log
bytes, more than 65536
--- no_error_log
[error]



=== TEST 9: a chunked narinfo: 411 before any of it is spooled
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
printf 'StorePath: x\n' > $TEST_NIXCACHE_DIR/small
code=$(curl -s -o /dev/null -w '%{http_code}' -T - \
       -H 'Transfer-Encoding: chunked' \
       $U/0123456789abcdfghijklmnpqrsvwxyz.narinfo < $TEST_NIXCACHE_DIR/small)
[ "$code" = 411 ] || { echo "small chunked narinfo: $code"; exit 1; }
# a NAR may come chunked (push --url streams them): a non-NAR is a 400
code=$(curl -s -o /dev/null -w '%{http_code}' -T - \
       -H 'Transfer-Encoding: chunked' \
       $U/nar/x.nar < $TEST_NIXCACHE_DIR/small)
[ "$code" = 400 ] || { echo "chunked NAR: $code"; exit 1; }
--- raw_request eval
"PUT /0123456789abcdfghijklmnpqrsvwxyz.narinfo HTTP/1.1\r\nHost: x\r\n"
. "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
. "11170\r\n" . ("Sig: x\n" x 10000) . "\r\n0\r\n\r\n"
--- error_code: 411
--- error_log
a chunked body (send Content-Length)
--- no_error_log
[error]



=== TEST 10: unknown compression or a name that is not <x>.nar[.ext]: 400
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
--- init
source t/lib/upload.sh
echo data > $TEST_NIXCACHE_DIR/f
put nar/abc.nar.br $TEST_NIXCACHE_DIR/f 400
put nar/abc.tar $TEST_NIXCACHE_DIR/f 400
put nar/.nar $TEST_NIXCACHE_DIR/f 400
put nar/a%20b.nar $TEST_NIXCACHE_DIR/f 400
put nar/sub/abc.nar $TEST_NIXCACHE_DIR/f 400
--- request
PUT /nar/abc.nar.gz
data
--- error_code: 400
--- post
source t/lib/upload.sh
no_keys '*'
no_temp_files
--- error_log
is not <name>.nar[.xz|.zst|.bz2]
--- no_error_log
[error]



=== TEST 11: garbage as .nar.xz, .nar.zst, .nar.bz2 and .nar: 400
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
head -c 100000 /dev/urandom > $TEST_NIXCACHE_DIR/g
put nar/g.nar.zst $TEST_NIXCACHE_DIR/g 400
put nar/g.nar.bz2 $TEST_NIXCACHE_DIR/g 400
put nar/g.nar $TEST_NIXCACHE_DIR/g 400
--- request
PUT /nar/g.nar.xz
this is not xz
--- error_code: 400
--- post
source t/lib/upload.sh
no_keys '*'
no_temp_files
--- error_log
corrupt xz stream
corrupt zstd stream
corrupt bzip2 stream
not a NAR
--- no_error_log
[error]



=== TEST 12: a truncated .nar.xz (complete request, stream cut): 400
--- fixture
add_nar(name => 'a', prefix => 'fix:', content => "cut me\n" x 50000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
xz -c $TEST_NIXCACHE_FIX_a_NAR > $TEST_NIXCACHE_DIR/full.xz
head -c $(( $(stat -c %s $TEST_NIXCACHE_DIR/full.xz) - 100 )) \
    $TEST_NIXCACHE_DIR/full.xz > $TEST_NIXCACHE_DIR/cut.xz
put nar/cut.nar.xz $TEST_NIXCACHE_DIR/cut.xz 400
--- request
GET /nix-cache-info
--- post
source t/lib/upload.sh
no_keys 'nixcache:*'
no_temp_files
--- error_log
truncated xz stream
--- no_error_log
[error]



=== TEST 13: the client sends less than its Content-Length and waits
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_body_timeout 1s;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new("127.0.0.1:$ENV{TEST_NIXCACHE_PORT}")
        or die;
    print $s "PUT /nar/short.nar HTTP/1.1\r\nHost: x\r\n",
             "Content-Length: 100000\r\n\r\n",
             "\x0d\0\0\0\0\0\0\0nix-archive-1\0\0\0", "x" x 1000;
    local $/; my $answer = <$s>;      # nginx gives up after 1 s
    exit 0;'
--- request
GET /nix-cache-info
--- post
source t/lib/upload.sh
no_keys '*'
no_temp_files
grep -q '"PUT /nar/short.nar HTTP/1.1" 408 ' $TEST_NIXCACHE_LOGS/access.log
--- no_error_log
[error]



=== TEST 14: the client closes before its Content-Length: nothing stored
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new("127.0.0.1:$ENV{TEST_NIXCACHE_PORT}")
        or die;
    print $s "PUT /nar/closed.nar HTTP/1.1\r\nHost: x\r\n",
             "Content-Length: 1000000\r\n\r\n", "x" x 300000;
    close $s;'
for i in $(seq 100); do     # until nginx has seen the close (slow: valgrind)
    grep -q 'client prematurely closed' $TEST_NIXCACHE_LOGS/error.log && break
    sleep 0.1
done
--- request
GET /nix-cache-info
--- post
source t/lib/upload.sh
no_keys '*'
no_temp_files
[ -z "$(find $TEST_NIXCACHE_DIR/up -type f)" ]
--- error_log
client prematurely closed connection
--- no_error_log
[error]



=== TEST 15: Content-Length shorter than the body: the NAR is cut, 400
--- fixture
add_nar(name => 'a', prefix => 'fix:', content => "longer\n" x 5000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
zstd -q -c $TEST_NIXCACHE_FIX_a_NAR > $TEST_NIXCACHE_DIR/a.zst
put nar/a.nar.zst $TEST_NIXCACHE_DIR/a.zst 400 -H 'Content-Length: 100'
--- request
GET /nix-cache-info
--- post
source t/lib/upload.sh
no_keys 'nixcache:*'
no_temp_files
--- error_log
truncated zstd stream
--- no_error_log
[error]



=== TEST 16: uploads off (the default): PUT is 405 as before
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
    }
--- request
PUT /nar/x.nar.xz
data
--- error_code: 405
--- response_headers
Allow: GET, HEAD
--- no_error_log
[error]



=== TEST 17: nix-cache-info and .ls uploads are accepted and dropped
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
--- init
source t/lib/upload.sh
echo '{"version":1}' > $TEST_NIXCACHE_DIR/ls
put 0123456789abcdfghijklmnpqrsvwxyz.ls $TEST_NIXCACHE_DIR/ls 204
put nosuchthing $TEST_NIXCACHE_DIR/ls 404
--- request
PUT /nix-cache-info
StoreDir: /nix/store
--- error_code: 204
--- post
source t/lib/upload.sh
no_keys '*'
[ "$(curl -s $U/nix-cache-info | grep -c Priority)" = 1 ]



=== TEST 18: four concurrent uploads of the same NAR, then the narinfo
--- fixture
add_nar(name => 'a', prefix => 'fix:',
        content => join('', map { "c $_ " . ('z' x ($_ % 113)) . "\n" }
                               1 .. 30000));
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
xz -0 -c $TEST_NIXCACHE_FIX_a_NAR > $TEST_NIXCACHE_DIR/a.xz
for i in 1 2 3 4; do
    (put nar/same.nar.xz $TEST_NIXCACHE_DIR/a.xz 201 > $TEST_NIXCACHE_DIR/r$i
     echo ok >> $TEST_NIXCACHE_DIR/r$i) &
done
wait
for i in 1 2 3 4; do
    grep -qx ok $TEST_NIXCACHE_DIR/r$i || { cat $TEST_NIXCACHE_DIR/r$i; exit 1; }
done
narinfo a
put $TEST_NIXCACHE_FIX_a_HASH.narinfo $TEST_NIXCACHE_DIR/a.narinfo 201
--- request
GET /nar/$TEST_NIXCACHE_FIX_a_NARHASH.nar
--- response_body_file: $TEST_NIXCACHE_FIX_a_NAR
--- post
source t/lib/upload.sh
no_keys 'up:manifest:*.tmp.*'
[ -z "$(find $TEST_NIXCACHE_DIR/up -name '*.tmp.*')" ]
--- no_error_log
[error]



=== TEST 19: Redis down: the NAR upload and the narinfo upload get 503
--- fixture
add_nar(name => 'a', prefix => 'fix:', content => "redis\n" x 1000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
narinfo a
$TEST_NIXCACHE_REDIS_CTL stop
put nar/a.nar $TEST_NIXCACHE_FIX_a_NAR 503
--- request
PUT /$TEST_NIXCACHE_FIX_a_HASH.narinfo
StorePath: $TEST_NIXCACHE_FIX_a_STOREPATH
URL: nar/x.nar
Compression: none
NarHash: sha256:$TEST_NIXCACHE_FIX_a_NARHASH
NarSize: $TEST_NIXCACHE_FIX_a_NARSIZE
References: 
--- error_code: 503
--- no_error_log
[alert]



=== TEST 20: an unwritable chunk directory: 500 and a clear error
--- fixture
add_nar(name => 'a', prefix => 'fix:', content => "nowhere\n" x 1000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/file/chunks;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
--- init
source t/lib/upload.sh
echo > $TEST_NIXCACHE_DIR/file
put nar/a.nar $TEST_NIXCACHE_FIX_a_NAR 500
no_keys 'nixcache:*'
--- request
GET /nix-cache-info
--- error_log eval
[qr/\[error\].*upload of "a.nar" failed: cannot (?:open|write) chunk bafkrei\w+: Not a directory/]



=== TEST 21: nixcache_upload_thread_pool names a pool thread_pool defines
--- main_config
thread_pool uploads threads=2;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
        nixcache_upload_thread_pool uploads;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
--- request
PUT /nar/x.nar
x
--- error_code: 400
--- error_log
not a NAR
--- no_error_log
[error]



=== TEST 22: an unknown thread pool fails nginx -t
--- must_die
--- config
    location / {
        nixcache on;
        nixcache_chunks /tmp;
        nixcache_upload on;
        nixcache_push_tokens off;
        nixcache_upload_thread_pool nosuchpool;
    }
--- error_log
unknown thread pool "nosuchpool"



=== TEST 23: the client leaves while the ingest runs: it finishes, once
--- fixture
add_nar(name => 'a', prefix => 'fix:',
        content => join('', map { "gone $_ " . ('q' x ($_ % 71)) . "\n" }
                               1 .. 40000));
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
xz -c $TEST_NIXCACHE_FIX_a_NAR > $TEST_NIXCACHE_DIR/a.xz
perl -MIO::Socket::INET -e '
    local $/; open my $f, "<", $ARGV[0] or die; my $b = <$f>;
    my $s = IO::Socket::INET->new("127.0.0.1:$ENV{TEST_NIXCACHE_PORT}")
        or die;
    print $s "PUT /nar/gone.nar.xz HTTP/1.1\r\nHost: x\r\n",
             "Content-Length: ", length($b), "\r\n\r\n", $b;
    close $s;' $TEST_NIXCACHE_DIR/a.xz
for i in $(seq 200); do     # the upload completes without its client
    grep -q 'uploaded "gone.nar.xz"' $TEST_NIXCACHE_LOGS/error.log && break
    sleep 0.1
done
narinfo a
put $TEST_NIXCACHE_FIX_a_HASH.narinfo $TEST_NIXCACHE_DIR/a.narinfo 201
--- request
GET /nar/$TEST_NIXCACHE_FIX_a_NARHASH.nar
--- response_body_file: $TEST_NIXCACHE_FIX_a_NAR
--- post
source t/lib/upload.sh
no_temp_files
--- error_log
uploaded "gone.nar.xz"
--- no_error_log
[error]
[alert]



=== TEST 24: nixcache_upload_max_nar_size: a NAR decompressing past it, 413
--- fixture
add_nar(name => 'a', prefix => 'fix:', content => "\0" x 3000000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
        nixcache_upload_max_nar_size 1m;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
xz -c $TEST_NIXCACHE_FIX_a_NAR > $TEST_NIXCACHE_DIR/a.xz
[ $(stat -c %s $TEST_NIXCACHE_DIR/a.xz) -lt 10000 ]
put nar/a.nar.xz $TEST_NIXCACHE_DIR/a.xz 413
--- request
GET /nix-cache-info
--- post
source t/lib/upload.sh
no_keys 'nixcache:*'
no_temp_files
--- error_log
the NAR is larger than nixcache_upload_max_nar_size
--- no_error_log
[error]



=== TEST 25: nixcache_upload_max_chunks: a NAR of more chunks, 413, nothing kept
--- fixture
add_nar(name => 'a', prefix => 'fix:',
        content => join('', map { "chunky $_ " . ('q' x ($_ % 113)) . "\n" }
                               1 .. 40000));
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
        nixcache_upload_max_chunks 4;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
[ $(stat -c %s $TEST_NIXCACHE_FIX_a_NAR) -gt 1000000 ]
put nar/a.nar $TEST_NIXCACHE_FIX_a_NAR 413
--- request
GET /nix-cache-info
--- post
source t/lib/upload.sh
no_keys 'nixcache:*'
no_temp_files
--- error_log
the NAR has more chunks than nixcache_upload_max_chunks
--- no_error_log
[error]



=== TEST 26: a Content-Length past what the NAR size limit allows: 413 before reading
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
        nixcache_upload_max_nar_size 64k;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
head -c 200000 /dev/zero > $TEST_NIXCACHE_DIR/big
put nar/big.nar $TEST_NIXCACHE_DIR/big 413
--- request
GET /nix-cache-info
--- post
source t/lib/upload.sh
no_keys 'nixcache:*'
--- error_log
upload of "big.nar" refused: 200000 bytes, more than
--- no_error_log
[error]
the NAR is larger than



=== TEST 27: first writer wins: the same narinfo again is 200, another is 409 but for an admin token
--- fixture
add_nar(name => 'a', prefix => 'fix:', content => "first wins\n" x 3000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
        nixcache_admin_tokens $TEST_NIXCACHE_ROOT/t/auth/admin.tokens;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
d=$TEST_NIXCACHE_DIR
h=$TEST_NIXCACHE_FIX_a_HASH
put nar/a.nar $TEST_NIXCACHE_FIX_a_NAR 201
narinfo a
put $h.narinfo $d/a.narinfo 201
first=$(rcli GET up:narinfo:$h)
put $h.narinfo $d/a.narinfo 200
# another text for the same path: a poisoned one, as a pusher could send
sed 's/^References:.*/References: 00000000000000000000000000000000-evil/' \
    $d/a.narinfo > $d/evil.narinfo
put $h.narinfo $d/evil.narinfo 409
[ "$(rcli GET up:narinfo:$h)" = "$first" ] || { echo replaced; exit 1; }
put $h.narinfo $d/evil.narinfo 409 -H 'Authorization: Bearer wrong'
put $h.narinfo $d/evil.narinfo 201 -H 'Authorization: Bearer admin-token-1'
rcli GET up:narinfo:$h | grep -qx 'References: 0*-evil'
--- request
GET /nix-cache-info
--- error_log
replacing it needs one of nixcache_admin_tokens
replaced with an admin token
--- no_error_log
[error]



=== TEST 28: a name that is a FileHash must be the body's hash: no squatting
--- fixture
add_nar(name => 'a', prefix => 'fix:', content => "mine\n" x 3000);
add_nar(name => 'b', prefix => 'fix:', content => "theirs\n" x 3000);
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
d=$TEST_NIXCACHE_DIR
xz -c $TEST_NIXCACHE_FIX_a_NAR > $d/a.nar.xz
xz -c $TEST_NIXCACHE_FIX_b_NAR > $d/b.nar.xz
fa=$(nix-hash --type sha256 --flat --base32 $d/a.nar.xz)
# b's bytes under the name a's file will have: refused, nothing recorded
put nar/$fa.nar.xz $d/b.nar.xz 400
status HEAD nar/$fa.nar.xz 404
no_keys "up:upload:*"
put nar/$fa.nar.xz $d/a.nar.xz 201
status HEAD nar/$fa.nar.xz 200
[ "$(rcli GET up:upload:$fa.nar.xz)" = $TEST_NIXCACHE_FIX_a_NARHASH ]
bzip2 -c $TEST_NIXCACHE_FIX_b_NAR > $d/b.nar.bz2
put nar/$fa.nar.bz2 $d/b.nar.bz2 400
# HEAD of .nar and .nar.zst names asks the NarHash routes, which answer
# from what is stored: such names are not checked (push --url names its
# frames by the NarHash)
put nar/$TEST_NIXCACHE_FIX_a_NARHASH.nar $TEST_NIXCACHE_FIX_b_NAR 201
--- request
GET /nix-cache-info
--- error_log
refused: the name is a FileHash, the body's is
--- no_error_log
[error]



=== TEST 29: a name that is no NAR name is logged escaped, not as decoded
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_upload on;
        nixcache_push_tokens off;
    }
--- request
PUT /nar/a%0A2026%2F12%2F03%20[emerg]%20forged.nar
x
--- error_code: 400
--- error_log
"nar/a%0A2026%2F12%2F03%20%5Bemerg%5D%20forged.nar" is not
--- no_error_log
qr/nixcache: upload: "nar\/a$/m



=== TEST 30: nixcache_upload_jobs 1: concurrent uploads wait their turn, none refused
--- fixture
for my $n (1 .. 4) {
    add_nar(name => "n$n", prefix => 'fix:',
            content => join('', map { "$n-$_ " . ('w' x ($_ % 101)) . "\n" }
                                   1 .. 20000));
}
--- http_config
    nixcache_upload_jobs 1;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
d=$TEST_NIXCACHE_DIR
for i in 1 2 3 4; do
    eval "nar=\$TEST_NIXCACHE_FIX_n${i}_NAR"
    (put nar/n$i.nar $nar 201 > $d/r$i; echo ok >> $d/r$i) &
done
wait
for i in 1 2 3 4; do
    grep -qx ok $d/r$i || { cat $d/r$i; exit 1; }
    narinfo n$i
    eval "h=\$TEST_NIXCACHE_FIX_n${i}_HASH"
    put $h.narinfo $d/n$i.narinfo 201
done
--- request
GET /nar/$TEST_NIXCACHE_FIX_n4_NARHASH.nar
--- response_body_file: $TEST_NIXCACHE_FIX_n4_NAR
--- error_log
nixcache upload: ingest of "n
" waits
--- no_error_log
[error]



=== TEST 31: nginx -t: nixcache_upload_jobs must be at least 1
--- http_config
    nixcache_upload_jobs 0;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
    }
--- must_die
--- error_log
value must be between 1 and 1024



=== TEST 32: a gc lock held when the upload starts: 503, nothing left; then 201
--- fixture
add_nar(name => 'a', prefix => 'fix:',
        content => join('', map { "locked $_ " . ('l' x ($_ % 89)) . "\n" }
                               1 .. 20000));
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
rcli SET nixcache-gc:lock test PX 30000 > /dev/null
put nar/a.nar $TEST_NIXCACHE_FIX_a_NAR 503
no_keys 'up:manifest:*'
no_keys 'up:upload:*'
rcli DEL nixcache-gc:lock > /dev/null
put nar/a.nar $TEST_NIXCACHE_FIX_a_NAR 201
narinfo a
put $TEST_NIXCACHE_FIX_a_HASH.narinfo $TEST_NIXCACHE_DIR/a.narinfo 201
--- request
GET /nar/$TEST_NIXCACHE_FIX_a_NARHASH.nar
--- response_body_file: $TEST_NIXCACHE_FIX_a_NAR
--- error_log
refused (503): gc holds its lock
--- no_error_log
[error]



=== TEST 33: the gc generation moves between the check and the rename: 503s, nothing published
# nixcache_upload_jobs 1: b reads the generation, then waits behind a's
# ingest (large); the test moves the generation as a gc batch's lock
# would once the log says b waits, so both renames are refused: no
# manifest, no temporary key; b uploaded again is published.
--- fixture
add_nar(name => 'a', prefix => 'fix:',
        content => join('', map { "big $_ " . ('b' x ($_ % 997)) . "$_\n" }
                               1 .. 60000));
add_nar(name => 'b', prefix => 'fix:',
        content => join('', map { "moved $_ " . ('m' x ($_ % 83)) . "\n" }
                               1 .. 20000));
--- http_config
    nixcache_upload_jobs 1;
--- config
    location / {
        nixcache on;
        nixcache_chunks $TEST_NIXCACHE_DIR/up;
        nixcache_redis_prefix up:;
        nixcache_upload on;
        nixcache_push_tokens off;
        client_max_body_size 0;
    }
--- init
source t/lib/upload.sh
mkdir -m 0777 $TEST_NIXCACHE_DIR/up
d=$TEST_NIXCACHE_DIR
xz -c $TEST_NIXCACHE_FIX_a_NAR > $d/a.nar.xz
log=$TEST_NIXCACHE_LOGS/error.log
from=$(($(wc -l < $log) + 1))
(put nar/a.nar.xz $d/a.nar.xz 503 > $d/ra; echo ok >> $d/ra) &
for i in $(seq 200); do
    tail -n +$from $log | grep -q 'ingest of "a.nar.xz" posted' && break
    sleep 0.01
done
(put nar/b.nar $TEST_NIXCACHE_FIX_b_NAR 503 > $d/rb; echo ok >> $d/rb) &
for i in $(seq 200); do
    tail -n +$from $log | grep -q 'ingest of "b.nar" waits' && break
    sleep 0.01
done
rcli INCR nixcache-gc:gen > /dev/null
wait
grep -qx ok $d/ra || { cat $d/ra; exit 1; }
grep -qx ok $d/rb || { cat $d/rb; exit 1; }
no_keys 'up:manifest:*'
no_keys 'up:upload:*'
put nar/b.nar $TEST_NIXCACHE_FIX_b_NAR 201
narinfo b
put $TEST_NIXCACHE_FIX_b_HASH.narinfo $d/b.narinfo 201
--- request
GET /nar/$TEST_NIXCACHE_FIX_b_NARHASH.nar
--- response_body_file: $TEST_NIXCACHE_FIX_b_NAR
--- error_log
refused (503): gc ran during the upload
--- no_error_log
[error]
