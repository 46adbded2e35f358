# Hostile requests against a cache that holds one NAR: path traversal and
# encoded separators, over-long names, malformed hashes, trailing garbage,
# query strings, every method on every route, absurd Range headers,
# oversized and numerous headers.  Each gets the status docs/DESIGN.md
# ("Routes", "Errors") or nginx's own limits give, nothing is logged at
# [error] or above, no worker dies, and the server still answers the next
# request (each block's post step).
#
# The blocks are generated from the tables below (Test::Base spec_string),
# in the harness's format: run with TEST_VERBOSE=1 t/run-all t/090-hostile.t
# and look for the block names.

use strict;
use warnings;

use lib 't/lib';
use Digest::SHA qw(sha256);
use Nixcache::Fixture qw(fake_store_hash nar_regular nix32);
use Nixcache::Test;
use Test::Base ();


my $content = join '', map { "line $_ of the fixture NAR\n" } 1 .. 400;
my $H = fake_store_hash('f');                       # present
my $N = nix32(sha256(nar_regular($content)));       # its NarHash
my $HA = fake_store_hash('absent');
my $NA = nix32(sha256('absent'));

my $FIXTURE = "add_nar(name => 'f', content => <<'EOF', chunk_size => 1000);\n"
              . $content . "EOF\n";

my $NARINFO = '$TEST_NIXCACHE_FIX_f_NARINFO';
my $NARZST  = '$TEST_NIXCACHE_FIX_f_NARZST';
my $NAR     = '$TEST_NIXCACHE_FIX_f_NAR';
my $FSIZE   = '$TEST_NIXCACHE_FIX_f_FILESIZE';
my $NSIZE   = '$TEST_NIXCACHE_FIX_f_NARSIZE';

my @blocks;

# as many ranges as fit in 8 KB, under nginx's 8 KB header line limit
my $many_ranges = 'bytes=0-0';
for (my $i = 1; length($many_ranges) < 7900; $i++) {
    $many_ranges .= ",$i-$i";
}


# One block.  %s: request (or raw_request, an eval'd Perl expression),
# code, headers (response_headers lines), like (response_headers_like),
# body_file, range (response_body_file_range), more (more_headers),
# config (instead of a cache at "location /"), next (the URI that must
# still answer 200 afterwards).
sub block {
    my ($name, %s) = @_;
    my $b = "=== TEST " . (@blocks + 1) . ": $name\n";

    $b .= "--- fixture\n$FIXTURE";
    $b .= "--- config\n"
          . ($s{config} // "    location / {\n"
                          . "        nixcache on;\n"
                          . "        nixcache_chunks \$TEST_NIXCACHE_CHUNKS;\n"
                          . "    }\n");

    if (defined $s{raw}) {
        $b .= "--- raw_request eval\n$s{raw}\n";
    } else {
        $b .= "--- request\n$s{request}\n";
    }

    $b .= "--- more_headers\n$s{more}\n" if defined $s{more};
    $b .= "--- error_code: $s{code}\n";
    $b .= "--- response_headers\n$s{headers}\n" if defined $s{headers};
    $b .= "--- response_headers_like\n$s{like}\n" if defined $s{like};
    $b .= "--- response_body_file: $s{body_file}\n" if defined $s{body_file};
    $b .= "--- response_body_file_range: $s{range}\n" if defined $s{range};
    $b .= "--- post\n"
          . "curl -sf -o /dev/null "
          . "http://127.0.0.1:\$TEST_NIXCACHE_PORT"
          . ($s{next} // '/nix-cache-info') . "\n";
    $b .= "--- no_error_log\n[error]\n[crit]\n[alert]\n[emerg]\n";

    push @blocks, $b;
}


# Every method on every route ----------------------------------------------

my @routes = (
    [ 'nix-cache-info',       '/nix-cache-info',      200,
      "Content-Type: text/x-nix-cache-info" ],
    [ 'narinfo',              "/$H.narinfo",          200,
      "Content-Type: text/x-nix-narinfo", $NARINFO ],
    [ 'nar.zst',              "/nar/$N.nar.zst",      200,
      "Content-Type: application/x-nix-nar\nContent-Length: $FSIZE",
      $NARZST ],
    [ 'nar',                  "/nar/$N.nar",          200,
      "Content-Type: application/x-nix-nar\nContent-Length: $NSIZE", $NAR ],
    [ 'absent narinfo',       "/$HA.narinfo",         404 ],
    [ 'absent nar.zst',       "/nar/$NA.nar.zst",     404 ],
    [ 'absent nar',           "/nar/$NA.nar",         404 ],
    [ 'unknown name',         '/index.html',          404 ],
    [ 'malformed narinfo',    '/' . ('e' x 32) . '.narinfo', 400 ],
);

for my $r (@routes) {
    my ($what, $uri, $code, $headers, $file) = @$r;

    block("GET $what", request => "GET $uri", code => $code,
          headers => $headers, body_file => $code == 200 ? $file : undef);

    block("HEAD $what", request => "HEAD $uri", code => $code,
          headers => $headers);

    for my $m (qw(PUT POST DELETE OPTIONS PATCH PROPFIND)) {
        block("$m $what: 405 with Allow",
              request => $m =~ /^(PUT|POST|PATCH)$/ ? "$m $uri\nsome body"
                                                    : "$m $uri",
              code => 405, headers => 'Allow: GET, HEAD');
    }
}

# nginx refuses TRACE itself (no Allow header from us then)
block('TRACE: refused by nginx', request => "TRACE /$H.narinfo", code => 405);

# a PUT that waits for 100-continue, and a chunked one, are refused whole
block('PUT with Expect: 100-continue', request => "PUT /$H.narinfo\nbody",
      more => 'Expect: 100-continue', code => 405,
      headers => 'Allow: GET, HEAD');
block('chunked PUT',
      raw => qq{"PUT /nar/$N.nar.zst HTTP/1.1\\r\\nHost: x\\r\\n}
             . qq{Connection: close\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n}
             . qq{5\\r\\nhello\\r\\n0\\r\\n\\r\\n"},
      code => 405, headers => 'Allow: GET, HEAD');

# a GET with a body is served; the body is discarded
block('GET with a body', request => "GET /$H.narinfo\nignored body",
      code => 200, body_file => $NARINFO);


# Path traversal and encodings ---------------------------------------------
# nginx resolves "." and ".." segments and %XX escapes before any module
# sees the URI, and refuses to climb above the root: routes see only the
# normalized path, as static files would.

my @paths = (
    [ 'traversal above the root',         '/../etc/passwd',              400 ],
    [ 'deep traversal above the root',    '/nar/../../../etc/passwd',    400 ],
    [ 'encoded traversal above the root', '/%2e%2e/etc/passwd',          400 ],
    [ 'mixed-case encoded traversal',     '/%2E%2e/%2e%2E/etc/passwd',   400 ],
    [ 'traversal out of /nar/',           '/nar/../x',                   404 ],
    [ 'traversal to a narinfo',           "/nar/../$H.narinfo",          200,
      $NARINFO ],
    [ 'encoded traversal to a narinfo',   "/nar/%2e%2e/$H.narinfo",      200,
      $NARINFO ],
    [ 'dot segment',                      '/./nix-cache-info',           200 ],
    [ 'double slash',                     '//nix-cache-info',            200 ],
    [ 'double slash in /nar/',            "/nar//$N.nar.zst",            200,
      $NARZST ],
    [ 'encoded slash: decoded, same route', "/nar%2F$N.nar.zst",         200,
      $NARZST ],
    [ 'encoded slash in the name',        "/nar/$N%2F.nar.zst",          404 ],
    [ 'encoded dot: decoded',             "/$H%2Enarinfo",               200,
      $NARINFO ],
    [ 'encoded NUL',                      "/$H.narinfo%00",              400 ],
    [ 'encoded NUL inside the hash',      "/nar/$N%00.nar",              400 ],
    [ 'backslash traversal',              '/..\\..\\etc\\passwd',        404 ],
    [ 'narinfo under a directory',        "/foo/$H.narinfo",             404 ],
    [ 'narinfo under /nar/',              "/nar/$H.narinfo",             404 ],
    [ 'nar outside /nar/',                "/$N.nar.zst",                 404 ],
    [ 'nar two levels down',              "/x/nar/$N.nar.zst",           404 ],
    [ 'absolute URI in the request line', "http://evil.example/$H.narinfo",
      200, $NARINFO ],
    [ 'root',                             '/',                           404 ],
    [ '/nar/ alone',                      '/nar/',                       404 ],
    [ '/nar alone',                       '/nar',                        404 ],
    [ 'nix-cache-info with a slash',      '/nix-cache-info/',            404 ],
    [ 'nix-cache-info uppercase',         '/NIX-CACHE-INFO',             404 ],
);

for my $p (@paths) {
    my ($what, $uri, $code, $file) = @$p;
    block("path: $what", request => "GET $uri", code => $code,
          body_file => $file);
}

# a cache under a prefix: ".." leaves it, to what the server has there
my $prefixed = "    location /cache/ {\n"
             . "        nixcache on;\n"
             . "        nixcache_chunks \$TEST_NIXCACHE_CHUNKS;\n"
             . "    }\n"
             . "    location / {\n"
             . "        return 418;\n"
             . "    }\n";

for my $p ([ 'narinfo', "/cache/$H.narinfo", 200, $NARINFO ],
           [ 'nar.zst', "/cache/nar/$N.nar.zst", 200, $NARZST ],
           [ 'traversal out of the prefix', "/cache/../$H.narinfo", 418 ],
           [ 'encoded traversal out of the prefix',
             "/cache/%2e%2e/$H.narinfo", 418 ],
           [ 'traversal within the prefix', "/cache/nar/../$H.narinfo", 200,
             $NARINFO ],
           [ 'a longer prefix', "/cachex/$H.narinfo", 418 ],
           [ 'a directory under the prefix', "/cache/x/$H.narinfo", 404 ],
           [ 'the prefix itself', '/cache/', 404 ])
{
    my ($what, $uri, $code, $file) = @$p;
    block("prefix: $what", config => $prefixed, request => "GET $uri",
          code => $code, body_file => $file,
          next => '/cache/nix-cache-info');
}

block('request line without a leading slash',
      raw => qq{"GET nix-cache-info HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"},
      code => 400);


# Hashes of the wrong alphabet or length, trailing garbage -----------------

my $upper = uc $H;
my $upper_n = uc $N;
my @names = (
    [ 'narinfo hash of 31 chars',         '/' . substr($H, 1) . '.narinfo',   400 ],
    [ 'narinfo hash of 33 chars',         "/${H}0.narinfo",                   400 ],
    [ 'narinfo hash uppercase',           "/$upper.narinfo",                  400 ],
    [ 'narinfo hash with e/o/t/u',        '/' . substr($H, 0, 28) . 'eotu.narinfo', 400 ],
    [ 'narinfo hash with a dash',         '/' . substr($H, 0, 31) . '-.narinfo', 400 ],
    [ 'narinfo of a full basename',       "/$H-f.narinfo",                    400 ],
    [ 'narinfo named by a NarHash',       "/$N.narinfo",                      400 ],
    [ 'narinfo with a space',             '/' . substr($H, 0, 31) . '%20.narinfo', 400 ],
    [ 'narinfo with an empty hash',       '/.narinfo',                        400 ],
    [ 'nar.zst with an empty hash',       '/nar/.nar.zst',                    400 ],
    [ 'nar with an empty hash',           '/nar/.nar',                        400 ],
    [ 'narinfo.bak',                      "/$H.narinfo.bak",                  404 ],
    [ 'narinfo with a trailing slash',    "/$H.narinfo/",                     404 ],
    [ 'NARINFO uppercase suffix',         "/$H.NARINFO",                      404 ],
    [ 'narinfo;param',                    "/$H.narinfo;x",                    404 ],
    [ 'nar hash of 51 chars',             '/nar/' . substr($N, 1) . '.nar.zst', 400 ],
    [ 'nar hash of 53 chars',             "/nar/${N}0.nar.zst",               400 ],
    [ 'nar hash uppercase',               "/nar/$upper_n.nar.zst",            400 ],
    [ 'nar hash uppercase, .nar',         "/nar/$upper_n.nar",                400 ],
    [ 'nar hash with e/o/t/u',            '/nar/' . substr($N, 0, 48) . 'eotu.nar', 400 ],
    [ 'nar named by a store hash',        "/nar/$H.nar.zst",                  400 ],
    [ 'nar named by a hex sha256',        '/nar/' . unpack('H*', sha256('x')) . '.nar', 400 ],
    [ 'nar.gz',                           "/nar/$N.nar.gz",                   404 ],
    [ 'nar.xz',                           "/nar/$N.nar.xz",                   404 ],
    [ 'nar.zst with a trailing slash',    "/nar/$N.nar.zst/",                 404 ],
    [ 'nar.zst.bak',                      "/nar/$N.nar.zst.bak",              404 ],
    [ 'nar without a suffix',             "/nar/$N",                          404 ],
    [ 'nar.zst.nar',                      "/nar/$N.nar.zst.nar",              400 ],
    [ 'NAR uppercase suffix',             "/nar/$N.NAR",                      404 ],
);

for my $n (@names) {
    my ($what, $uri, $code) = @$n;
    block("name: $what", request => "GET $uri", code => $code);
}


# Query strings are ignored -------------------------------------------------

block('narinfo?x=1 is the narinfo', request => "GET /$H.narinfo?x=1",
      code => 200, body_file => $NARINFO);
block('narinfo? (empty query)', request => "GET /$H.narinfo?",
      code => 200, body_file => $NARINFO);
block('nar.zst?foo', request => "GET /nar/$N.nar.zst?foo", code => 200,
      body_file => $NARZST);
block('nar?a=b&c', request => "GET /nar/$N.nar?a=b&c", code => 200,
      body_file => $NAR);
block('nix-cache-info?%00', request => 'GET /nix-cache-info?%00',
      code => 200);
block('a route name in the query only', request => "GET /?$H.narinfo",
      code => 404);
block('absent narinfo?x=1', request => "GET /$HA.narinfo?x=1", code => 404);
block('malformed hash with a query', request => "GET /${upper}.narinfo?x",
      code => 400);
block('7 KB query string', request => "GET /$H.narinfo?" . ('q' x 7000),
      code => 200, body_file => $NARINFO);


# Over-long names -----------------------------------------------------------

block('10 KB URI: nginx refuses it (414)',
      request => 'GET /' . ('a' x 10240) . '.narinfo', code => 414);
block('10 KB /nar/ URI: 414',
      request => 'GET /nar/' . ('a' x 10240) . '.nar.zst',
      code => 414);
block('7 KB narinfo name: malformed hash',
      request => 'GET /' . ('a' x 7000) . '.narinfo', code => 400);
block('7 KB nar name: malformed hash',
      request => 'GET /nar/' . ('a' x 7000) . '.nar.zst', code => 400);
block('7 KB unknown name', request => 'GET /' . ('a' x 7000), code => 404);


# Range ---------------------------------------------------------------------
# One range a-b, a- or -n: 206; unsatisfiable: 416 with
# "Content-Range: bytes */N"; several ranges, or one that does not parse
# (including last < first): 200 with the whole body.

for my $f ([ 'nar.zst', "/nar/$N.nar.zst", $NARZST, $FSIZE ],
           [ 'nar', "/nar/$N.nar", $NAR, $NSIZE ])
{
    my ($what, $uri, $file, $size) = @$f;

    my @ranges = (
        [ 'bytes=0-9', 206, '0-9', "Content-Range: bytes 0-9/$size" ],
        [ 'bytes=-10', 206, '-10' ],
        [ 'bytes=100-', 206, '100-' ],
        [ 'bytes=99999999999999999999-', 416, undef,
          "Content-Range: bytes */$size" ],
        [ 'bytes=18446744073709551616-', 416, undef,
          "Content-Range: bytes */$size" ],
        [ 'bytes=-0', 416, undef, "Content-Range: bytes */$size" ],
        [ "bytes=$size-", 416, undef, "Content-Range: bytes */$size" ],
        [ 'bytes=5-2', 200 ],
        [ 'bytes=a-b', 200 ],
        [ 'bytes=--1', 200 ],
        [ 'bytes=1-2-3', 200 ],
        [ 'items=0-9', 200 ],
        [ 'bytes=0-0,2-3,5-9', 200 ],
        [ $many_ranges, 200 ],
    );

    for my $r (@ranges) {
        my ($spec, $code, $range, $headers) = @$r;
        my $label = length $spec > 40 ? substr($spec, 0, 20) . '... ('
                                        . length($spec) . ' bytes)'
                                      : $spec;
        block("Range $label on $what", request => "GET $uri",
              more => "Range: $spec", code => $code, headers => $headers,
              body_file => $code == 416 ? undef : $file, range => $range);
    }

    block("Range with a wrong If-Range on $what: whole body",
          request => "GET $uri", more => "Range: bytes=0-9\nIf-Range: \"x\"",
          code => 200, body_file => $file);
}

block('Range on a narinfo: ignored', request => "GET /$H.narinfo",
      more => 'Range: bytes=0-9', code => 200, body_file => $NARINFO);

# a Range header longer than nginx's header buffers: its 400
block('Range header of 9 KB: nginx refuses it',
      request => "GET /nar/$N.nar.zst",
      more => 'Range: bytes=' . join(',', map { "$_-$_" } 0 .. 1800),
      code => 400);


# Many and large headers ----------------------------------------------------

block('100 headers: served',
      raw => qq{"GET /$H.narinfo HTTP/1.1\\r\\nHost: x\\r\\n"}
             . qq{ . CORE::join('', map { "X-H-\$_: v\\r\\n" } 1 .. 100)}
             . qq{ . "Connection: close\\r\\n\\r\\n"},
      code => 200, body_file => $NARINFO);
block('1000 headers: nginx refuses them (400)',
      raw => qq{"GET /$H.narinfo HTTP/1.1\\r\\nHost: x\\r\\n"}
             . qq{ . CORE::join('', map { "X-H-\$_: v\\r\\n" } 1 .. 1000)}
             . qq{ . "Connection: close\\r\\n\\r\\n"},
      code => 400);
block('5000 headers: nginx refuses them (400)',
      raw => qq{"GET /$H.narinfo HTTP/1.1\\r\\nHost: x\\r\\n"}
             . qq{ . CORE::join('', map { "X-Header-\$_: value\\r\\n" } 1 .. 5000)}
             . qq{ . "Connection: close\\r\\n\\r\\n"},
      code => 400);
block('one 10 KB header: 400',
      request => "GET /$H.narinfo", more => 'X-Big: ' . ('b' x 10240),
      code => 400);
block('two Host headers: 400',
      raw => qq{"GET /$H.narinfo HTTP/1.1\\r\\nHost: a\\r\\nHost: b\\r\\n}
             . qq{Connection: close\\r\\n\\r\\n"},
      code => 400);
block('HTTP/1.0 without Host',
      raw => qq{"GET /$H.narinfo HTTP/1.0\\r\\n\\r\\n"},
      code => 200, body_file => $NARINFO);
block('header line without a colon: ignored by nginx',
      raw => qq{"GET /$H.narinfo HTTP/1.1\\r\\nHost: x\\r\\nbroken\\r\\n"}
             . qq{ . "Connection: close\\r\\n\\r\\n"},
      code => 200, body_file => $NARINFO);
block('Accept-Encoding does not change the NAR',
      request => "GET /nar/$N.nar", more => 'Accept-Encoding: gzip, zstd, br',
      code => 200, headers => '!Content-Encoding', body_file => $NAR);


Test::Base::spec_string(join "\n\n", @blocks);

run_tests();
