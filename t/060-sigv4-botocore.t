#!/bin/bash
#
# The core's SigV4 signer against two independent signers: botocore's
# S3SigV4Auth (python3-botocore) on ~320 requests (fixed S3 requests plus
# random paths, queries, headers, bodies, methods, regions, times and
# credentials), and curl --aws-sigv4 on the fixed ones, its request
# captured on a free loopback port.  See t/sigv4/compare.py.

set -e

cd "$(dirname "$0")/.."

B=${BUILD:-build}
PY=/usr/bin/python3

if ! $PY -c 'import botocore' 2>/dev/null; then
    echo "Bail out! python3-botocore is not installed (make deps)"
    exit 1
fi

if ! command -v curl >/dev/null; then
    echo "Bail out! curl is not installed (make deps)"
    exit 1
fi

make -s BUILD="$B" "$B/libnixcache.a" >&2
mkdir -p "$B/sigv4"
${CC:-cc} -O2 -g -Wall -Wextra -Wpointer-arith -Wno-unused-parameter \
    -Werror -Isrc -D_GNU_SOURCE -o "$B/sigv4/driver" t/sigv4/driver.c \
    "$B/libnixcache.a" -lcrypto >&2

exec $PY t/sigv4/compare.py "$B/sigv4/driver"
