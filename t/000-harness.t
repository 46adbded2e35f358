# The harness itself (t/lib/Nixcache/Test.pm, Fixture.pm): plain nginx,
# no nixcache directives, so this passes before the module exists.

use lib 't/lib';
use Nixcache::Test;
run_tests();

__DATA__

=== TEST 1: a plain response
--- no_module
--- config
    location / { return 200 "hi\n"; }
--- request
GET /
--- error_code: 200
--- response_headers
Content-Type: text/plain
Content-Length: 3
!X-Nixcache-Absent
--- response_body
hi
--- no_error_log
[error]



=== TEST 2: header absence and presence, status other than 200
--- no_module
--- config
    location / {
        add_header X-Present yes always;
        return 404;
    }
--- request
GET /missing
--- error_code: 404
--- response_headers
X-Present: yes
!ETag
--- response_headers_like
Content-Type: ^text/html
Server: ^nginx



=== TEST 3: response_body_file and a byte range of it (sendfile on by default)
--- no_module
--- init
head -c 100000 /dev/urandom > $TEST_NIXCACHE_DIR/blob
cp $TEST_NIXCACHE_DIR/blob $TEST_NIXCACHE_DIR/www-blob
chmod 0644 $TEST_NIXCACHE_DIR/www-blob
--- config
    location /blob { alias $TEST_NIXCACHE_DIR/www-blob; }
--- request
GET /blob
--- more_headers
Range: bytes=1000-1999
--- error_code: 206
--- response_headers
Content-Range: bytes 1000-1999/100000
--- response_body_file: $TEST_NIXCACHE_DIR/blob
--- response_body_file_range: 1000-1999
--- error_log
sendfile: @1000 1000



=== TEST 4: a chunked response is reassembled
--- no_module
--- init
printf 'part one\n' > $TEST_NIXCACHE_DIR/a
printf 'part two\n' > $TEST_NIXCACHE_DIR/b
chmod 0644 $TEST_NIXCACHE_DIR/a $TEST_NIXCACHE_DIR/b
--- config
    ssi on;
    ssi_types text/plain;
    location = /page {
        return 200 '<!--# include virtual="/a" --><!--# include virtual="/b" -->';
    }
    location = /a { alias $TEST_NIXCACHE_DIR/a; }
    location = /b { alias $TEST_NIXCACHE_DIR/b; }
--- request
GET /page
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body
part one
part two



=== TEST 5: request body, more_headers and variables in config
--- no_module
--- config
    location / {
        return 200 "$request_method $http_x_test $content_length port=$TEST_NIXCACHE_PORT\n";
    }
--- request
PUT /x
hello
--- more_headers
X-Test: abc
--- response_body
PUT abc 5 port=$TEST_NIXCACHE_PORT



=== TEST 6: raw_request, HTTP/1.0 and a HEAD request
--- no_module
--- config
    location / { return 200 "body\n"; }
--- raw_request eval
"HEAD / HTTP/1.0\r\n\r\n"
--- response_headers
Content-Length: 5
--- response_body chomp



=== TEST 7: error_log sees only this block's lines
--- no_module
--- config
    location / { return 200 "ok\n"; }
--- request
GET /not-logged-before
--- error_log
http request line: "GET /not-logged-before HTTP/1.1"
--- no_error_log
[error]
"PUT /x HTTP/1.1"



=== TEST 8: a body cut short by the server is detected (expected here)
--- no_module
--- init
# an upstream that promises 1000 bytes, sends 5 and closes
python3 - > /dev/null 2>&1 <<'EOF' &
import os, socket
path = os.environ['TEST_NIXCACHE_DIR'] + '/up.sock'
s = socket.socket(socket.AF_UNIX)
s.bind(path + '.tmp')
os.chmod(path + '.tmp', 0o777)
os.rename(path + '.tmp', path)
s.listen(1)
s.settimeout(20)
c, _ = s.accept()
c.recv(65536)
c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nshort')
c.close()
EOF
for i in $(seq 100); do test -S $TEST_NIXCACHE_DIR/up.sock && break; sleep 0.05; done
test -S $TEST_NIXCACHE_DIR/up.sock
--- config
    location / { proxy_pass http://unix:$TEST_NIXCACHE_DIR/up.sock:; }
--- request
GET /cut
--- response_headers
Content-Length: 1000
--- response_body chomp
short
--- response_incomplete
--- error_log
upstream prematurely closed connection



=== TEST 9: must_die on a bad directive
--- no_module
--- config
    location / { no_such_directive on; }
--- must_die
--- error_log
unknown directive "no_such_directive"



=== TEST 10: init and post see the harness variables; Redis is up
--- no_module
--- config
    location / { return 204; }
--- init
test -n "$TEST_NIXCACHE_PORT"
test -x "$TEST_NIXCACHE_REDIS_CTL"
test "$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT ping)" = PONG
redis-cli -p $TEST_NIXCACHE_REDIS_PORT set leftover 1 > /dev/null
--- request
GET /
--- error_code: 204
--- post
test -d "$TEST_NIXCACHE_CHUNKS"
test "$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT get leftover)" = 1



=== TEST 11: Redis is flushed between blocks; redis-ctl stop/start/pause
--- no_module
--- config
    location / { return 204; }
--- init
test -z "$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT get leftover)"
$TEST_NIXCACHE_REDIS_CTL pause
if timeout 0.5 redis-cli -p $TEST_NIXCACHE_REDIS_PORT ping; then exit 1; fi
$TEST_NIXCACHE_REDIS_CTL resume
$TEST_NIXCACHE_REDIS_CTL stop
if redis-cli -p $TEST_NIXCACHE_REDIS_PORT ping 2>/dev/null; then exit 1; fi
$TEST_NIXCACHE_REDIS_CTL start
test "$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT ping)" = PONG
$TEST_NIXCACHE_REDIS_CTL stop
--- request
GET /
--- error_code: 204



=== TEST 12: Redis stopped by the previous block is back
--- no_module
--- config
    location / { return 204; }
--- init
test "$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT ping)" = PONG
--- request
GET /
--- error_code: 204



=== TEST 13: nix32 in Perl agrees with nix-hash
--- no_module
--- fixture
use Digest::SHA qw(sha256 sha256_hex);
for my $input ('', 'a', 'hello world', 'x' x 1000, "\0\xff" x 7) {
    my $hex = sha256_hex($input);
    my $want = `nix-hash --type sha256 --to-base32 $hex`;
    chomp $want;
    die "nix-hash failed" unless $want =~ /^[0-9a-z]{52}$/;
    my $got = nix32(sha256($input));
    die "nix32 mismatch for sha256 $hex: got $got want $want"
        unless $got eq $want;
}
# 20-byte store hashes are 32 characters
die "store hash length" unless length(fake_store_hash('x')) == 32;
die "store hash charset" if fake_store_hash('y') =~ /[eotu]/;
--- config
    location / { return 204; }
--- request
GET /
--- error_code: 204



=== TEST 14: CIDs are 59-char bafkrei... strings; base32 is RFC 4648
--- no_module
--- fixture
use Digest::SHA qw(sha256);
die "rfc4648 vector" unless base32_lower('foobar') eq 'mzxw6ytboi';
die "rfc4648 vector 2" unless base32_lower('f') eq 'my';
my $cid = cid_of(sha256('abc'));
die "cid '$cid'" unless $cid =~ /^bafkrei[a-z2-7]{52}$/;
# The well-known CIDv1 raw of the empty input
die "empty cid $cid" unless cid_of(sha256(''))
    eq 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku';
--- config
    location / { return 204; }
--- request
GET /
--- error_code: 204



=== TEST 15: the fixture writer's manifest round-trips; chunks are frames
--- no_module
--- fixture
use Digest::SHA qw(sha256);
my $content = join '', map { "line $_\n" } 1 .. 5000;
my $f = add_nar(name => 'rt', content => $content,
                chunk_sizes => [1000, 20000, 7]);
my $m = manifest_decode(redis_cmd('GET', "nixcache:manifest:$f->{NARHASH}"));
die "magic" unless $m->{magic} eq 'NXCM' && $m->{version} == 1;
die "count $m->{chunk_count}" unless $m->{chunk_count} == 4;
die "nar_size" unless $m->{nar_size} == length $f->{nar};
die "nar_hash" unless $m->{nar_hash} eq sha256($f->{nar});
die "file_hash" unless $m->{file_hash} eq sha256($f->{file});
my ($nar, $file, $usum, $csum) = ('', '', 0, 0);
for my $i (0 .. $#{$m->{entries}}) {
    my $e = $m->{entries}[$i];
    my $path = chunk_path(cid_of($e->{chunk}));
    die "chunk $i missing at $path" unless -f $path;
    die "chunk $i mode" unless ((stat $path)[2] & 0444) == 0444;
    my $piece = `zstd -d -q -c $path`;
    die "chunk $i hash" unless sha256($piece) eq $e->{chunk};
    die "chunk $i usize" unless length $piece == $e->{usize};
    die "chunk $i csize" unless -s $path == $e->{csize};
    my $hdr = `zstd -lv $path 2>&1`;
    die "chunk $i has no content size:\n$hdr"
        unless $hdr =~ /Decompressed Size:\s+\S/;
    $nar .= $piece;
    $usum += $e->{usize};
    $csum += $e->{csize};
}
die "reassembled NAR" unless $nar eq $f->{nar};
die "sizes" unless $usum == $m->{nar_size} && $csum == $m->{file_size};
my $ni = redis_cmd('GET', "nixcache:narinfo:$f->{HASH}");
die "narinfo:\n$ni" unless $ni eq $f->{narinfo}
    && $ni =~ m{^StorePath: /nix/store/$f->{HASH}-rt$}m
    && $ni =~ m{^URL: nar/$f->{NARHASH}\.nar\.zst$}m
    && $ni =~ m{^Compression: zstd$}m
    && $ni =~ m{^NarSize: \d+$}m;
--- init
# the NAR file is a NAR of one regular file
head -c 40 $TEST_NIXCACHE_FIX_rt_NAR | grep -q nix-archive-1
zstd -d -q -c $TEST_NIXCACHE_FIX_rt_NARZST | cmp - $TEST_NIXCACHE_FIX_rt_NAR
test "$(stat -c %s $TEST_NIXCACHE_FIX_rt_NARZST)" = $TEST_NIXCACHE_FIX_RT_FILESIZE
test -f $TEST_NIXCACHE_FIX_rt_CHUNK3
test "$(basename $TEST_NIXCACHE_FIX_rt_CHUNK0)" = $TEST_NIXCACHE_FIX_rt_CID0
# nix-store agrees with NarHash and can restore the file
test "$(nix-hash --type sha256 --to-base32 $(sha256sum < $TEST_NIXCACHE_FIX_rt_NAR | cut -c1-64))" = $TEST_NIXCACHE_FIX_rt_NARHASH
nix-store --restore $TEST_NIXCACHE_DIR/restored < $TEST_NIXCACHE_FIX_rt_NAR
test "$(wc -l < $TEST_NIXCACHE_DIR/restored)" = 5000
--- config
    location / { return 204; }
--- request
GET /
--- error_code: 204



=== TEST 16: the chunk dir is emptied between blocks
--- no_module
--- init
test -z "$(ls -A $TEST_NIXCACHE_CHUNKS)"
test "$(redis-cli -p $TEST_NIXCACHE_REDIS_PORT dbsize)" = 0
--- config
    location / { return 204; }
--- request
GET /
--- error_code: 204



=== TEST 17: nginx workers (nobody) can read fixture chunks
--- no_module
--- fixture
add_nar(name => 'served', content => "served by nginx\n");
--- config
    location ~ ^/chunks/(.*(..))$ { alias $TEST_NIXCACHE_CHUNKS/$2/$1; }
--- request
GET /chunks/$TEST_NIXCACHE_FIX_served_CID0
--- response_body_file: $TEST_NIXCACHE_FIX_served_NARZST



=== TEST 18: the fixture writer agrees with docs/FORMAT.md's worked example
--- no_module
--- fixture
my $f = add_nar(name => 'doc', content => "hello\n", level => 6);
die "NarHash $f->{NARHASH}"
    unless $f->{NARHASH} eq '04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw';
die "NarSize $f->{NARSIZE}" unless $f->{NARSIZE} == 120;
die "CID $f->{CID0}" unless $f->{CID0}
    eq 'bafkreia4g7ibv5al4luaneo6htb56rbxpjuzv65rprupbaewjmx5a4p4cm';
die "chunk path $f->{CHUNK0}" unless $f->{CHUNK0} =~ m{/chunks/cm/bafkreia4g7ibv5al4luaneo6htb56rbxpjuzv65rprupbaewjmx5a4p4cm$};
my $m = $f->{manifest};
die "length" unless length $m == 136;
# the header's first 24 bytes do not depend on the frame size
my $fs = pack 'Q<', $f->{FILESIZE};
die "header " . unpack('H*', substr $m, 0, 32) unless unpack('H*', substr $m, 0, 24)
    eq '4e58434d0100000001000000000000007800000000000000'
    && substr($m, 24, 8) eq $fs;
die "nar_hash" unless unpack('H*', substr $m, 32, 32)
    eq '1c37d01af40be2e80691de3cc3df44377a699afbb17c68f080964b2fd071fc13';
die "entry" unless unpack('H*', substr $m, 96, 36)
    eq '1c37d01af40be2e80691de3cc3df44377a699afbb17c68f080964b2fd071fc1378000000';
--- init
# the NAR is nix-store --dump of a file holding hello
printf 'hello\n' > $TEST_NIXCACHE_DIR/hello.txt
nix-store --dump $TEST_NIXCACHE_DIR/hello.txt | cmp - $TEST_NIXCACHE_FIX_doc_NAR
--- config
    location / { return 204; }
--- request
GET /
--- error_code: 204



=== TEST 19: init may leave a server in the background (no hang on its output)
--- no_module
--- init
sleep 300 &
echo $! > $TEST_NIXCACHE_TMP/sleeper.pid
echo "init output"
--- config
    location / { return 204; }
--- request
GET /
--- error_code: 204
--- timeout: 5



=== TEST 20: ... and it is stopped when its block ends
--- no_module
--- init
pid=$(cat $TEST_NIXCACHE_TMP/sleeper.pid)
state=$(sed 's/.*) //' /proc/$pid/stat 2>/dev/null | cut -d' ' -f1)
if [ -n "$state" ] && [ "$state" != Z ]; then
    echo "sleeper $pid still running ($state)"; exit 1
fi
--- config
    location / { return 204; }
--- request
GET /
--- error_code: 204



=== TEST 21: scripts: fails CMD, pipefail, "! " in a here-document
--- no_module
--- init
fails false
fails grep -q absent /dev/null
cat > $TEST_NIXCACHE_DIR/doc <<'DOC'
! not a command
DOC
grep -qx '! not a command' $TEST_NIXCACHE_DIR/doc
--- config
    location / { return 204; }
--- request
GET /
--- error_code: 204
--- post
if false | cat; then echo "pipefail is off"; exit 1; fi
