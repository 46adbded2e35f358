#!/bin/bash
# Installs the Debian packages ngx_nixcache needs to build, run and test.
# Idempotent: asks dpkg which packages are missing and touches apt only
# then.  Silent when everything is present.  Needs root for installing.
# tools/deps.sh --bench adds the benchmarks' peers (make bench-deps).

set -euo pipefail

packages=(
    # build
    build-essential nginx nginx-dev
    libhiredis-dev libzstd-dev libsodium-dev libssl-dev liblzma-dev
    libbz2-dev libcurl4-openssl-dev libjson-c-dev
    # run
    redis-server
    # test: compressors, the Nix client, the perl harness's building blocks
    zstd xz-utils bzip2 nix-bin
    libtest-base-perl libtest-longstring-perl liblist-moreutils-perl
    libtext-diff-perl libipc-run-perl libhttp-message-perl liburi-perl
    curl wrk time python3 python3-botocore valgrind
    # test: promtool and a real Prometheus scraping /metrics (t/130)
    prometheus
    # fuzzing (make fuzz, t/095): clang and its libFuzzer runtime
    clang libclang-rt-14-dev
)

# The peers the benchmarks compare against (bench/*), only with --bench:
# make test does not need them.
if [ "${1:-}" = --bench ]; then
    packages+=(casync borgbackup restic hyperfine linux-perf)
fi

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$status" in
        ii*) ;;
        *) missing+=("$p") ;;
    esac
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
        echo "deps: must run as root to install packages" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive

    # Installing nginx and redis-server would start their system instances
    # (ports 80 and 6379, and a postinst failure if port 80 is taken).  We
    # never use them, so forbid service starts for the duration of the
    # install with Debian's policy-rc.d (honoured by invoke-rc.d and
    # deb-systemd-invoke), unless the machine already has one.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# tools/deps.sh: no service starts\nexit 101\n' \
            > "$policy"
        chmod 0755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi

    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        </dev/null >/tmp/nixcache-deps-apt.log 2>&1 \
        || { tail -30 /tmp/nixcache-deps-apt.log >&2; exit 1; }
fi

# --- npm packages (S3 test server) -----------------------------------------
# s3rver@3.7.1, the S3-compatible server of the S3 tier tests (see
# t/lib/s3rver-ctl), goes to build/node_modules (gitignored).  node and npm
# come from Debian's nodejs and npm when absent; a node installed otherwise
# (e.g. NodeSource's nodejs, which bundles npm and conflicts with Debian's
# npm package) is used as it is.

S3RVER_PREFIX=${S3RVER_PREFIX:-$(cd "$(dirname "$0")/.." && pwd)/build}

if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
    echo "deps: installing nodejs npm"
    if [ "$(id -u)" != 0 ]; then
        echo "deps: must run as root to install packages" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm \
        </dev/null >/tmp/nixcache-deps-apt.log 2>&1 \
        || { tail -30 /tmp/nixcache-deps-apt.log >&2; exit 1; }
fi

if [ ! -f "$S3RVER_PREFIX/node_modules/s3rver/bin/s3rver.js" ]; then
    echo "deps: installing s3rver@3.7.1 into $S3RVER_PREFIX/node_modules"
    mkdir -p "$S3RVER_PREFIX"
    npm install --no-save --no-audit --no-fund --loglevel=error \
        --prefix "$S3RVER_PREFIX" s3rver@3.7.1 \
        </dev/null >/tmp/nixcache-deps-npm.log 2>&1 \
        || { tail -30 /tmp/nixcache-deps-npm.log >&2; exit 1; }
fi
