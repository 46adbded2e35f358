#!/usr/bin/env python3
"""
An independent, plain reading of the chunker as nixcache_chunker.h and
docs/FORMAT.md describe it, used to derive the expected cut points in
test_chunker.c.  Prints the lengths of the chunks of the test input (1 MiB
of splitmix64 output seeded with 42, little-endian) at
min/avg/max = 2048/8192/65536 and at the defaults 16K/64K/256K.

    python3 t/unit/chunker_ref.py
"""

M = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(seed):
    s = seed
    while True:
        s = (s + GOLDEN) & M
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        yield z ^ (z >> 31)


def gear_table():
    g = splitmix64(0x6E6978636163686B)          # "nixcachk"
    return [next(g) for _ in range(256)]


def data(seed, n):
    g = splitmix64(seed)
    out = bytearray()
    while len(out) < n:
        out += next(g).to_bytes(8, "little")
    return bytes(out[:n])


def top_bits(n):
    return (M << (64 - n)) & M if n else 0


def chunks(buf, mn, avg, mx):
    gear = gear_table()
    k = avg.bit_length() - 1
    strict, loose = top_bits(k + 2), top_bits(k - 2)
    pos, out = 0, []
    while pos < len(buf):
        rest = len(buf) - pos
        n = min(rest, mx)
        cut = n
        if rest > mn:
            fp = 0
            for i in range(mn, n):
                fp = ((fp << 1) + gear[buf[pos + i]]) & M
                if fp & (strict if i < avg else loose) == 0:
                    cut = i + 1
                    break
        else:
            cut = rest
        out.append(cut)
        pos += cut
    return out


if __name__ == "__main__":
    d = data(42, 1 << 20)
    print("2048/8192/65536:", chunks(d, 2048, 8192, 65536))
    print("defaults:", chunks(d, 16384, 65536, 262144))
