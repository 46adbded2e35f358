#!/bin/bash
# Memory of a worker ingesting a large upload: starts its own redis-server
# and nginx (module from build/, nixcache_upload on, one worker), makes a
# NAR of SIZE_MIB MiB (default 1024: one file of numbered text lines, so
# nothing deduplicates and zstd has real work), PUTs it as .nar.zst
# (compressed with zstd -1 on the way) and then its narinfo, downloads
# the NAR back and compares SHA-256, and prints the worker's RSS before
# and after the upload, and its peak (VmHWM) and RSS sampled every 0.2 s
# during the upload.  The body goes to a temporary file and the manifest
# to another: RSS must stay flat whatever the size.
#
#   bench/upload-rss.sh [SIZE_MIB]
#
# Exits non-zero if the round trip differs or the RSS grew by more than
# MAX_GROWTH_KIB (default 65536) during the upload.

set -eu
set -o pipefail

SIZE_MIB=${1:-1024}
MAX_GROWTH_KIB=${MAX_GROWTH_KIB:-65536}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODULE=$ROOT/build/ngx_http_nixcache_module.so
[ -f "$MODULE" ] || { echo "$MODULE missing: run make" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/nixcache-upload-rss.XXXXXX")
chmod 0755 "$T"
REDIS_PID= NGINX_PID=
cleanup() {
    [ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null
    sleep 0.5
    rm -rf "$T"
}
trap cleanup EXIT

free_port() {
    perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen => 1,
        LocalAddr => "127.0.0.1:0")->sockport'
}

# --- the NAR ---------------------------------------------------------------

echo "making a $SIZE_MIB MiB file and its NAR"
perl -e '
    my $want = $ARGV[0] * 1024 * 1024; my ($n, $out) = (0, 0);
    while ($out < $want) {
        my $b = join "", map { sprintf "line %012d of the upload benchmark %x\n",
                                   $_, $_ * 2654435761 % 4294967296 }
                         $n .. $n + 9999;
        $n += 10000;
        $b = substr($b, 0, $want - $out) if $out + length($b) > $want;
        print $b; $out += length $b;
    }' "$SIZE_MIB" > "$T/big"
nix-store --dump "$T/big" > "$T/big.nar"
rm "$T/big"
NARSIZE=$(stat -c %s "$T/big.nar")
NARHASH=$(nix-hash --type sha256 --flat --base32 "$T/big.nar")
SHA=$(sha256sum "$T/big.nar" | cut -d' ' -f1)
zstd -q -1 -T2 -c "$T/big.nar" > "$T/big.nar.zst"
echo "NAR: $NARSIZE bytes, NarHash sha256:$NARHASH;" \
     "upload body (zstd -1): $(stat -c %s "$T/big.nar.zst") bytes"

# --- servers ----------------------------------------------------------------

RP=$(free_port)
mkdir -p "$T/redis" "$T/chunks" "$T/logs"
chmod 0777 "$T/chunks"
redis-server --bind 127.0.0.1 --port "$RP" --save '' --appendonly no \
    --dir "$T/redis" --daemonize yes --pidfile "$T/redis/pid" \
    --logfile "$T/redis/log" > /dev/null
for _ in $(seq 100); do [ -s "$T/redis/pid" ] && break; sleep 0.05; done
REDIS_PID=$(cat "$T/redis/pid")

PORT=$(free_port)
cat > "$T/nginx.conf" <<CONF
load_module $MODULE;
worker_processes 1;
pid $T/nginx.pid;
error_log $T/logs/error.log info;
events { worker_connections 64; }
http {
    access_log $T/logs/access.log;
    client_body_temp_path $T/client_body;
    proxy_temp_path $T/proxy;
    fastcgi_temp_path $T/fastcgi;
    uwsgi_temp_path $T/uwsgi;
    scgi_temp_path $T/scgi;
    nixcache_redis 127.0.0.1:$RP;
    server {
        listen 127.0.0.1:$PORT;
        location / {
            nixcache on;
            nixcache_chunks $T/chunks;
            nixcache_upload on;
            nixcache_push_tokens off;
            client_max_body_size 0;
        }
    }
}
CONF
/usr/sbin/nginx -p "$T" -c "$T/nginx.conf" -e "$T/logs/error.log"
for _ in $(seq 100); do [ -s "$T/nginx.pid" ] && break; sleep 0.05; done
NGINX_PID=$(cat "$T/nginx.pid")
U=http://127.0.0.1:$PORT
curl -sf -o /dev/null "$U/nix-cache-info"
WORKER=$(pgrep -P "$NGINX_PID" | head -1)

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$WORKER/status"; }
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$WORKER/status"; }

# --- upload ------------------------------------------------------------------

before=$(rss)
start=$(date +%s.%N)
curl -s -o "$T/put.out" -w '%{http_code}\n' -X PUT \
    --data-binary "@$T/big.nar.zst" "$U/nar/big.nar.zst" > "$T/code" &
curl_pid=$!
max=$before
while kill -0 "$curl_pid" 2>/dev/null; do
    r=$(rss)
    [ "$r" -gt "$max" ] && max=$r
    sleep 0.2
done
wait "$curl_pid"
end=$(date +%s.%N)
after=$(rss)
code=$(cat "$T/code")
[ "$code" = 201 ] || { echo "PUT nar: $code"; tail "$T/logs/error.log"; exit 1; }

SP=/nix/store/0123456789abcdfghijklmnpqrsvwxyz-big
printf 'StorePath: %s\nURL: nar/big.nar.zst\nCompression: zstd\nNarHash: sha256:%s\nNarSize: %s\nReferences: \n' \
    "$SP" "$NARHASH" "$NARSIZE" > "$T/narinfo"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "@$T/narinfo" \
           "$U/0123456789abcdfghijklmnpqrsvwxyz.narinfo")
[ "$code" = 201 ] || { echo "PUT narinfo: $code"; exit 1; }

got=$(curl -sf "$U/nar/$NARHASH.nar" | sha256sum | cut -d' ' -f1)
[ "$got" = "$SHA" ] || { echo "downloaded NAR differs"; exit 1; }
got=$(curl -sf "$U/nar/$NARHASH.nar.zst" | zstd -dc | sha256sum | cut -d' ' -f1)
[ "$got" = "$SHA" ] || { echo "downloaded NAR (.zst) differs"; exit 1; }

chunks=$(find "$T/chunks" -type f | wc -l)
stored=$(du -sk "$T/chunks" | cut -f1)
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
echo "upload of $SIZE_MIB MiB: $secs s, $chunks chunks," \
     "$stored KiB stored"
echo "worker RSS: before $before KiB, max during $max KiB, after $after KiB;" \
     "VmHWM $(hwm) KiB"
echo "round trip: .nar and .nar.zst downloads hash to the NAR's SHA-256"
growth=$((max - before))
if [ "$growth" -gt "$MAX_GROWTH_KIB" ]; then
    echo "FAIL: RSS grew by $growth KiB"
    exit 1
fi
echo "ok: RSS growth $growth KiB"
