#!/bin/bash
# The fuzz targets (fuzz/README.md) built with clang, ASan and UBSan, and
# each run for a short while from its committed seeds: every seed still
# passes (a fixed crash stays fixed), and a few hundred thousand mutated
# inputs find nothing.  A longer run is `make fuzz FUZZ_SECONDS=3600`.
#
# Env: FUZZ_SMOKE_SECONDS (per target, default 10).

set -u

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1

# for skip_all: a skip, or under CI=true a failure
source t/lib/e2e.sh

command -v clang > /dev/null || skip_all "clang not installed"
[ -n "$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a \
        2>/dev/null)" ] \
    || skip_all "libclang-rt-14-dev (libFuzzer) not installed"

build=${NIXCACHE_BUILD:-build}
seconds=${FUZZ_SMOKE_SECONDS:-10}
n=0
failed=0

if ! out=$(make -s --no-print-directory BUILD="$build" fuzz-build 2>&1); then
    echo "not ok 1 - fuzz targets build"
    printf '%s\n' "$out" | tail -30 | sed 's/^/# /'
    echo "1..1"
    exit 1
fi
n=$((n + 1))
echo "ok $n - fuzz targets build"

for src in fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    n=$((n + 1))
    if out=$(FUZZ_SECONDS=$seconds BUILD=$build fuzz/run "$build/fuzz/$name" 2>&1)
    then
        echo "ok $n - $out"
    else
        echo "not ok $n - $name"
        printf '%s\n' "$out" | sed 's/^/# /'
        failed=1
    fi
done

echo "1..$n"
exit $failed
