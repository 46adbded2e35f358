# Shared helpers for the bench/ scripts (sourced, bash).
#
# Reuses t/lib/e2e.sh for the private directory $T, the EXIT trap that
# stops every server started, free ports, redis_start and nginx_start.
# The corpora live in a private Nix store under build/bench (see
# bench/corpus); the other scripts read their path lists from there.
#
# Knobs: BENCH_FULL=1 (or --full) for the bigger runs; BENCH_DIR (default
# build/bench).

source "$(dirname "${BASH_SOURCE[0]}")/../t/lib/e2e.sh"

BENCH_DIR=${BENCH_DIR:-$E2E_BUILD/bench}
BENCH_STORE=$BENCH_DIR/store
BENCH_CORPUS=$BENCH_DIR/corpus
BENCH_FULL=${BENCH_FULL:-0}
for a in "$@"; do
    [ "$a" = --full ] && BENCH_FULL=1
done

# bench_init: $T, the Nix configuration, the trap (e2e_init), quietly.
bench_init() {
    e2e_init > /dev/null
    mkdir -p "$BENCH_DIR"
}

say() {
    printf '%s\n' "$*"
}

# machine: one line about where the figures come from.
machine() {
    local cpu load
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    say "# machine: $(nproc) cores, $cpu; load average $load;" \
        "$(date -u +%Y-%m-%dT%H:%MZ)"
}

# corpus_paths NAME: the store paths of corpus NAME (version, rebuild),
# one a line, in the order they were made.
corpus_paths() {
    local f=$BENCH_CORPUS/$1.paths
    [ -s "$f" ] || { echo "bench: run bench/corpus first" >&2; exit 1; }
    cut -f2 "$f"
}

# corpus_groups NAME: the distinct project names of a corpus.
corpus_groups() {
    cut -f1 "$BENCH_CORPUS/$1.paths" | awk '!s[$0]++'
}

# corpus_group_paths NAME GROUP: the paths of one project in a corpus.
corpus_group_paths() {
    awk -F'\t' -v g="$2" '$1 == g { print $2 }' "$BENCH_CORPUS/$1.paths"
}

nar_size() {
    nix path-info --store "$BENCH_STORE" --json "$@" \
        | perl -MJSON::PP -0e 'my $s = 0;
              $s += $_->{narSize} for @{decode_json(<STDIN>)}; print $s'
}

# apparent and real bytes of a directory tree
bytes_apparent() {
    du -s --apparent-size -B1 "$1" | cut -f1
}

bytes_real() {
    du -s -B1 "$1" | cut -f1
}

# files_sum DIR [FIND-ARGS]: the sum of the sizes of regular files.
files_sum() {
    local d=$1; shift
    find "$d" -type f "$@" -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'
}

# redis_bytes: bytes of the values of every key (manifests, narinfos).
redis_bytes() {
    local k total=0 n
    while IFS= read -r k; do
        n=$(redis STRLEN "$k" 2>/dev/null)
        case $n in ''|*[!0-9]*) n=$(redis MEMORY USAGE "$k") ;; esac
        total=$((total + n + ${#k}))
    done < <(redis --scan)
    echo "$total"
}

mb() {
    awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'
}

pct() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", b ? 100 * a / b : 0 }'
}

# push_all CHUNKS PUSH-OPTIONS... -- PATH...: one nixcache push, quiet.
push_all() {
    local chunks=$1; shift
    "$NIXCACHE" push -q --redis "$REDIS_ADDR" --chunks "$chunks" \
        --store "$BENCH_STORE" "$@"
}
