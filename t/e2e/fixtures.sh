# Fixture store paths for the end-to-end suites.
#
#   make_fixtures STORE WORKDIR [big]
#
# fills the chroot store STORE and sets the associative array FIX:
#
#   FIX[text]    a small text file                 (nix-store --add, CA)
#   FIX[empty]   an empty file                     (nix-store --add, CA)
#   FIX[tree]    a directory: subdirectories, executables, symlinks (to a
#                file, to a directory, dangling), an empty directory, odd
#                file names, a 3 MiB pseudo-random file (several chunks)
#   FIX[dep]     an input-addressed build output (no references)
#   FIX[top]     an input-addressed build output referencing FIX[dep] and
#                itself
#   FIX[big]     (with "big") one 112.5 MiB file: 48 MiB incompressible,
#                40.5 MiB base64 text (of a 30 MiB keystream), 16 MiB of
#                zeros, 8 MiB repeating its start; identical on every
#                machine (AES-CTR keystreams with fixed keys)
#
# Everything is deterministic: the same store paths on every run.
# NIXCACHE_E2E_NO_BUILD=1 skips nix-build and makes FIX[dep] and FIX[top]
# by hand (the fallback where a chroot store cannot build).

declare -gA FIX

# keystream KEYHEX BYTES: AES-128-CTR keystream, the same everywhere
# (without the openssl command: Python's seeded Mersenne Twister).
# (head closes the pipe early: the writer's SIGPIPE is expected.)
keystream() {
    if ! command -v openssl > /dev/null; then
        python3 -c 'import random, sys
r = random.Random(int(sys.argv[1], 16)); n = int(sys.argv[2])
while n > 0:
    k = min(n, 1 << 20); sys.stdout.buffer.write(r.randbytes(k)); n -= k
' "$1" "$2"
        return
    fi
    (
        set +o pipefail
        openssl enc -aes-128-ctr -nosalt -K "$1" \
            -iv 00000000000000000000000000000000 -in /dev/zero 2>/dev/null \
            | head -c "$2"
    )
}

make_fixtures() {
    local store=$1 w=$2 big=${3:-} mib=$((1024 * 1024))

    mkdir -p "$w" || return 1

    printf 'hello from ngx_nixcache e2e\n' > "$w/hello.txt"
    : > "$w/empty"
    FIX[text]=$(nix-store --store "$store" --add "$w/hello.txt") || return 1
    FIX[empty]=$(nix-store --store "$store" --add "$w/empty") || return 1

    local d=$w/e2e-tree
    rm -rf "$d"
    mkdir -p "$d/bin" "$d/share/doc" "$d/lib/sub/deeper" "$d/empty-dir"
    printf '#!/bin/sh\necho e2e tool\n' > "$d/bin/tool"
    chmod 0755 "$d/bin/tool"
    printf 'not executable\n' > "$d/share/doc/README"
    printf 'data with spaces\n' > "$d/share/doc/file with spaces.txt"
    printf 'unicode\n' > "$d/share/doc/ünïcødé-ファイル"
    keystream 11111111111111111111111111111111 $((3 * mib)) \
        > "$d/lib/sub/deeper/random.bin"
    seq 1 200000 > "$d/lib/numbers.txt"
    ln -s tool "$d/bin/tool-link"
    ln -s ../share/doc "$d/bin/doc-dir-link"
    ln -s /nonexistent/target "$d/lib/dangling"
    FIX[tree]=$(nix-store --store "$store" --add "$d") || return 1

    cat > "$w/drv.nix" <<'NIX'
let
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/bin:/usr/bin";
    args = [ "-c" script ];
  };
  dep = mk "e2e-dep" "echo dependency-content > $out";
in {
  inherit dep;
  top = mk "e2e-top" ''
    mkdir $out
    echo ${dep} > $out/dep-path
    cat ${dep} > $out/dep-copy
    echo $out > $out/self-path
  '';
}
NIX
    local out
    if [ -z "${NIXCACHE_E2E_NO_BUILD:-}" ] \
       && out=$(nix-build --store "$store" --no-out-link \
                 --option extra-sandbox-paths "/bin /lib /lib64 /usr" \
                 "$w/drv.nix" -A dep -A top 2> "$w/build.log")
    then
        FIX[dep]=$(echo "$out" | sed -n 1p)
        FIX[top]=$(echo "$out" | sed -n 2p)
    else
        # A chroot store builds in a mount namespace; where that is not
        # allowed, make the same kind of paths (input-addressed, no CA,
        # a reference and a self-reference) without building.
        echo "# nix-build failed (or NIXCACHE_E2E_NO_BUILD): paths made by hand" >&2
        [ -f "$w/build.log" ] && sed 's/^/#   /' "$w/build.log" | tail -5 >&2
        make_unbuilt "$store" "$w" || return 1
    fi

    if [ "$big" = big ]; then
        local b=$w/e2e-big
        { keystream 22222222222222222222222222222222 $((48 * mib))
          keystream 33333333333333333333333333333333 $((30 * mib)) \
              | base64 -w 76
          head -c $((16 * mib)) /dev/zero
          keystream 22222222222222222222222222222222 $((8 * mib))
        } > "$b" || return 1
        FIX[big]=$(nix-store --store "$store" --add "$b") || return 1
        rm -f "$b"
    fi
}

# make_unbuilt STORE WORKDIR: FIX[dep] and FIX[top] as a flat binary
# cache written by hand (narinfo + uncompressed NAR), copied into STORE.
make_unbuilt() {
    local store=$1 w=$2 c=$2/unbuilt-cache dep top name p h
    rm -rf "$c" "$w/unbuilt"
    mkdir -p "$c/nar" "$w/unbuilt"
    printf 'StoreDir: /nix/store\n' > "$c/nix-cache-info"

    # store hash parts: 32 nix32 characters, fixed
    dep=/nix/store/$(printf e2e-dep | sha1sum | cut -c1-40 \
                     | xargs nix-hash --type sha1 --to-base32)-e2e-dep
    top=/nix/store/$(printf e2e-top | sha1sum | cut -c1-40 \
                     | xargs nix-hash --type sha1 --to-base32)-e2e-top

    echo dependency-content > "$w/unbuilt/dep"
    mkdir "$w/unbuilt/top"
    echo "$dep" > "$w/unbuilt/top/dep-path"
    cp "$w/unbuilt/dep" "$w/unbuilt/top/dep-copy"
    echo "$top" > "$w/unbuilt/top/self-path"

    for name in dep top; do
        [ $name = dep ] && p=$dep || p=$top
        h=$(nix-hash --type sha256 --base32 "$w/unbuilt/$name")
        nix-store --dump "$w/unbuilt/$name" > "$c/nar/$h.nar" || return 1
        {
            echo "StorePath: $p"
            echo "URL: nar/$h.nar"
            echo "Compression: none"
            echo "NarHash: sha256:$h"
            echo "NarSize: $(stat -c %s "$c/nar/$h.nar")"
            if [ $name = dep ]; then
                echo "References: "
            else
                echo "References: $(basename "$dep") $(basename "$top")"
            fi
            echo "Deriver: $(basename "$p" | cut -c1-32 | rev)-e2e-$name.drv"
        } > "$c/$(basename "$p" | cut -c1-32).narinfo"
    done

    nix copy --no-check-sigs --from "file://$c" --to "$store" "$top" \
        2> "$w/unbuilt.log" || { cat "$w/unbuilt.log" >&2; return 1; }
    FIX[dep]=$dep
    FIX[top]=$top
}
