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

declare -gA FIX

# keystream KEYHEX BYTES: AES-128-CTR keystream, the same everywhere.
# (head closes the pipe early: the writer's SIGPIPE is expected.)
keystream() {
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
    out=$(nix-build --store "$store" --no-out-link \
              --option extra-sandbox-paths "/bin /lib /lib64 /usr" \
              "$w/drv.nix" -A dep -A top 2> "$w/build.log") \
        || { cat "$w/build.log" >&2; return 1; }
    FIX[dep]=$(echo "$out" | sed -n 1p)
    FIX[top]=$(echo "$out" | sed -n 2p)

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
