# An upstream binary cache for tests: flat caches written by Nix itself,
# served by a PLAIN nginx (no module) over HTTP and HTTPS, plus the ways
# an upstream goes wrong.  For import --from-url and pull-through suites.
#
# Source it after t/lib/e2e.sh and call e2e_init first: everything lives
# under $T/upstream and is stopped by e2e.sh's EXIT trap.
#
# Functions
#   upstream_build      fixture store paths (t/e2e/fixtures.sh: a text
#                       file, an empty file, a tree with a 3 MiB random
#                       file that spans many chunks, an input-addressed
#                       build output and its dependency) in a private
#                       store, a key (`nix key generate-secret`), and
#                       `nix copy --to file://…?compression=X&secret-key=…`
#                       of their closure into $UPSTREAM_DIR/X for X in xz,
#                       zstd, none; then the broken copies named below
#   upstream_ca         a test CA and a server certificate for 127.0.0.1
#                       and localhost (openssl); called by upstream_start
#   upstream_start      a plain nginx on two loopback ports, HTTP and
#                       HTTPS, serving $UPSTREAM_DIR; returns 1 if it
#                       would not start
#   upstream_stop       graceful stop (QUIT), waits until it is gone
#   upstream_kill       KILL the master and workers: the ports are closed
#                       (connections refused), as for a dead upstream
#   upstream_blackhole  a listening socket nobody accepts from: connects
#                       succeed, requests are never answered; sets
#                       UPSTREAM_BLACKHOLE
#   upstream_count RE   lines of the access log matching RE (extended)
#
# Under both base URLs (UPSTREAM_HTTP, UPSTREAM_HTTPS), the caches:
#   /xz/ /zstd/ /none/  the closure as Nix wrote it, signed
#   /slow/              /xz/ sent at 128 KiB/s (limit_rate)
#   /500/               every request answered 500
#   /truncated/         /xz/ with every NAR file cut to half its length
#                       (a short file, served with its own length)
#   /wronghash/         /xz/ where $UPSTREAM_BIG's NAR file is the one of
#                       another path, FileHash/FileSize made to match it:
#                       only NarHash/NarSize are wrong
#   /badsig/            /xz/ signed by another key with the same name
#                       (signatures present, none verifies)
#   /unsigned/          /xz/ with the Sig lines removed
#
# Variables set
#   UPSTREAM_HTTP       http://127.0.0.1:PORT (no trailing slash)
#   UPSTREAM_HTTPS      https://127.0.0.1:PORT
#   UPSTREAM_CA         PEM file of the test CA: curl --cacert, CURL_CA_BUNDLE;
#                       the Nix client takes it as NIX_SSL_CERT_FILE (it
#                       ignores CURL_CA_BUNDLE)
#   UPSTREAM_KEYNAME    the signing key's name
#   UPSTREAM_SECKEY     file of the secret key
#   UPSTREAM_PUBKEY     the public key, NAME:BASE64 (trusted-public-keys)
#   UPSTREAM_STORE      the private store the paths were built in
#   UPSTREAM_PATHS      array: the top-level paths copied
#   UPSTREAM_CLOSURE    their closure, one path a line, sorted
#   UPSTREAM_BIG        the path with the multi-MiB NAR (FIX[tree])
#   UPSTREAM_DIR        the document root (one directory per cache)
#   UPSTREAM_LOG        the access log (both ports)
#   UPSTREAM_BLACKHOLE  http://127.0.0.1:PORT, after upstream_blackhole
#   FIX                 as t/e2e/fixtures.sh sets it

source "$(dirname "${BASH_SOURCE[0]}")/../e2e/fixtures.sh"

UPSTREAM_KEYNAME=upstream-test-1


upstream_build() {
    local u=$T/upstream c f h half sig

    mkdir -p "$u/www" "$u/w" || return 1
    UPSTREAM_DIR=$u/www
    UPSTREAM_STORE=$u/store

    make_fixtures "$UPSTREAM_STORE" "$u/w" || return 1
    UPSTREAM_PATHS=("${FIX[text]}" "${FIX[empty]}" "${FIX[tree]}"
                    "${FIX[top]}")
    UPSTREAM_BIG=${FIX[tree]}
    UPSTREAM_CLOSURE=$(closure "$UPSTREAM_STORE" "${UPSTREAM_PATHS[@]}")

    UPSTREAM_SECKEY=$u/secret-key
    nix key generate-secret --key-name "$UPSTREAM_KEYNAME" \
        > "$UPSTREAM_SECKEY" || return 1
    UPSTREAM_PUBKEY=$(nix key convert-secret-to-public < "$UPSTREAM_SECKEY") \
        || return 1

    for c in xz zstd none; do
        nix copy --store "$UPSTREAM_STORE" \
            --to "file://$UPSTREAM_DIR/$c?compression=$c&secret-key=$UPSTREAM_SECKEY" \
            "${UPSTREAM_PATHS[@]}" 2> "$u/copy-$c.log" \
            || { diag_file "$u/copy-$c.log"; return 1; }
    done

    # another key under the same name: every Sig line is there, none valid
    nix key generate-secret --key-name "$UPSTREAM_KEYNAME" > "$u/other-key" \
        || return 1
    nix copy --store "$UPSTREAM_STORE" \
        --to "file://$UPSTREAM_DIR/badsig?compression=xz&secret-key=$u/other-key" \
        "${UPSTREAM_PATHS[@]}" 2> "$u/copy-badsig.log" \
        || { diag_file "$u/copy-badsig.log"; return 1; }

    cp -a "$UPSTREAM_DIR/xz" "$UPSTREAM_DIR/unsigned" || return 1
    sed -i '/^Sig: /d' "$UPSTREAM_DIR"/unsigned/*.narinfo || return 1

    cp -a "$UPSTREAM_DIR/xz" "$UPSTREAM_DIR/truncated" || return 1
    for f in "$UPSTREAM_DIR"/truncated/nar/*; do
        half=$(( $(stat -c %s "$f") / 2 ))
        truncate -s "$half" "$f" || return 1
    done

    cp -a "$UPSTREAM_DIR/xz" "$UPSTREAM_DIR/wronghash" || return 1
    upstream_swap_nar "$UPSTREAM_DIR/wronghash" "$UPSTREAM_BIG" \
        "${FIX[text]}" || return 1

    chmod -R a+rX "$u"
}


# upstream_swap_nar DIR PATH OTHER: PATH's narinfo in DIR names OTHER's
# NAR file (copied under PATH's file name), FileHash/FileSize those of
# that file; NarHash, NarSize and the signature stay PATH's.
upstream_swap_nar() {
    local dir=$1 h o url ourl fh fs

    h=$(basename "$2" | cut -c1-32)
    o=$(basename "$3" | cut -c1-32)
    url=$(sed -n 's/^URL: //p' "$dir/$h.narinfo")
    ourl=$(sed -n 's/^URL: //p' "$dir/$o.narinfo")
    [ -n "$url" ] && [ -n "$ourl" ] || return 1
    cp "$dir/$ourl" "$dir/$url" || return 1
    fh=$(sed -n 's/^FileHash: //p' "$dir/$o.narinfo")
    fs=$(sed -n 's/^FileSize: //p' "$dir/$o.narinfo")
    sed -i -e "s|^FileHash: .*|FileHash: $fh|" \
        -e "s|^FileSize: .*|FileSize: $fs|" "$dir/$h.narinfo"
}


upstream_ca() {
    local s=$T/upstream/tls

    mkdir -p "$s" || return 1
    UPSTREAM_CA=$s/ca.pem
    [ -f "$s/server.pem" ] && return 0

    openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
        -subj "/CN=nixcache test CA" -keyout "$s/ca.key" -out "$s/ca.pem" \
        > "$s/openssl.log" 2>&1 || { diag_file "$s/openssl.log"; return 1; }
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$s/server.key" -out "$s/server.csr" \
        >> "$s/openssl.log" 2>&1 || { diag_file "$s/openssl.log"; return 1; }
    printf 'subjectAltName = IP:127.0.0.1, DNS:localhost\n' > "$s/san.ext"
    openssl x509 -req -in "$s/server.csr" -CA "$s/ca.pem" \
        -CAkey "$s/ca.key" -CAcreateserial -days 2 -extfile "$s/san.ext" \
        -out "$s/server.pem" >> "$s/openssl.log" 2>&1 \
        || { diag_file "$s/openssl.log"; return 1; }
}


upstream_start() {
    local n=$T/upstream/nginx try port sport

    upstream_ca || return 1
    mkdir -p "$n"
    UPSTREAM_LOG=$n/access.log

    for try in 1 2 3; do
        port=$(free_port)
        sport=$(free_port)
        { nginx_conf_head "$n" 1
          cat <<NGINXCONF
    server {
        listen 127.0.0.1:$port;
        listen 127.0.0.1:$sport ssl;
        ssl_certificate $T/upstream/tls/server.pem;
        ssl_certificate_key $T/upstream/tls/server.key;

        root $UPSTREAM_DIR;

        location /500/ {
            return 500;
        }

        location /slow/ {
            alias $UPSTREAM_DIR/xz/;
            limit_rate 128k;
        }
    }
}
NGINXCONF
        } > "$n/nginx.conf"
        nginx_launch "$n" "http://127.0.0.1:$port/"
        case $? in
        0)
            UPSTREAM_PID=$(cat "$n/nginx.pid")
            UPSTREAM_HTTP=http://127.0.0.1:$port
            UPSTREAM_HTTPS=https://127.0.0.1:$sport
            return 0
            ;;
        2)
            break
            ;;
        esac
    done
    diag_file "$n/start.log"
    diag_file "$n/error.log"
    return 1
}


upstream_stop() {
    [ -n "${UPSTREAM_PID:-}" ] || return 1
    kill -QUIT "$UPSTREAM_PID" || return 1
    wait_for_exit "$UPSTREAM_PID"
}


# the workers too: a KILLed master leaves them serving the open sockets
upstream_kill() {
    local p workers

    [ -n "${UPSTREAM_PID:-}" ] || return 1
    workers=$(awk -v p="$UPSTREAM_PID" '$4 == p { print $1 }' \
                  /proc/[0-9]*/stat 2>/dev/null)
    kill -KILL "$UPSTREAM_PID" $workers || return 1
    for p in "$UPSTREAM_PID" $workers; do
        wait_for_exit "$p" || return 1
    done
}


upstream_blackhole() {
    local b=$T/upstream/blackhole port

    mkdir -p "$b"
    port=$(free_port)
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(Listen => 16, ReuseAddr => 1,
                                      LocalAddr => "127.0.0.1:$ARGV[0]")
            or die "listen: $!";
        open(my $f, ">", $ARGV[1]) or die; print $f "up\n"; close $f;
        sleep 3600;' "$port" "$b/ready" > "$b/log" 2>&1 &
    E2E_PIDS+=("$!")
    wait_for test -s "$b/ready" || { diag_file "$b/log"; return 1; }
    UPSTREAM_BLACKHOLE=http://127.0.0.1:$port
}


upstream_count() {
    grep -cE "$1" "$UPSTREAM_LOG" 2>/dev/null
}
