/*
 * The content-defined chunker: gear table, parameters, expected cuts from
 * an independent reading of the spec (t/unit/chunker_ref.py), size
 * bounds, boundary stability after an insertion, streaming, and speed
 * (printed, not asserted).
 */

#include <stdlib.h>
#include <time.h>

#include "unit.h"

#include "nixcache_chunker.h"
#include "nixcache_format.h"
#include "nixcache_hash.h"


#define BIG  (10 * 1024 * 1024)


/* python3 t/unit/chunker_ref.py: 1 MiB of splitmix64(42) bytes */

static const size_t  ref_small[] = {
    11090, 2886, 10109, 8683, 10228, 8783, 8658, 8747, 3848, 4847, 9484,
    9137, 10431, 9847, 9669, 8321, 8327, 8827, 6375, 11028, 8957, 10800,
    2379, 8734, 10438, 8702, 8601, 3695, 6444, 9987, 2287, 10726, 8393,
    8905, 11031, 8614, 8729, 8248, 10309, 10742, 12388, 8021, 15467, 10614,
    10904, 8637, 5660, 8740, 8234, 8813, 9360, 9552, 13525, 8375, 5728,
    8977, 8916, 9824, 9056, 3741, 8502, 10278, 9876, 3646, 9208, 8847,
    12096, 8610, 9499, 9452, 2202, 8864, 8394, 9657, 11690, 6333, 11195,
    10922, 9943, 9965, 9269, 6219, 11861, 8212, 9747, 8584, 8387, 9856,
    14350, 9476, 2049, 9418, 8385, 10417, 10512, 16712, 10204, 7014, 9111,
    8619, 8565, 8226, 8613, 12013, 3840, 10483, 11049, 2809, 9200, 16316,
    7008, 15194, 10941, 12661, 11178, 8473, 3848
};

static const size_t  ref_default[] = {
    73032, 67361, 51068, 36475, 126109, 69862, 96671, 71063, 21153, 102451,
    96030, 78569, 71379, 86054, 1299
};


typedef struct {
    size_t         off;
    size_t         len;
    unsigned char  digest[NIXCACHE_SHA256_LEN];
} chunk_t;


static uint64_t
splitmix64(uint64_t *s)
{
    uint64_t  z;

    *s += 0x9e3779b97f4a7c15ULL;
    z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;

    return z ^ (z >> 31);
}


static void
fill(unsigned char *p, size_t n, uint64_t seed)
{
    size_t    i, k;
    uint64_t  v;

    for (i = 0; i < n; i += 8) {
        v = splitmix64(&seed);

        for (k = 0; k < 8 && i + k < n; k++) {
            p[i + k] = (unsigned char) (v >> (8 * k));
        }
    }
}


/* one-shot pass: every cut with eof set, as the CLI does on a whole NAR */

static size_t
chunk_all(const nixcache_chunker_t *ck, const unsigned char *p, size_t len,
    chunk_t *out, size_t cap, int hash)
{
    size_t  off, n, c;

    off = 0;
    n = 0;

    while (off < len && n < cap) {
        c = nixcache_chunker_cut(ck, p + off, len - off, 1);
        if (c == 0) {
            return 0;
        }

        out[n].off = off;
        out[n].len = c;

        if (hash) {
            nixcache_sha256(out[n].digest, p + off, c);
        }

        off += c;
        n++;
    }

    return n;
}


static int
cmp_digest(const void *a, const void *b)
{
    return memcmp(((const chunk_t *) a)->digest,
                  ((const chunk_t *) b)->digest, NIXCACHE_SHA256_LEN);
}


int
main(void)
{
    int                  good;
    size_t               i, j, k, n, n2, nref, shared, off, have, fed, piece, c;
    size_t               min_seen, max_seen, total;
    double               secs;
    uint64_t             s;
    clock_t              t0;
    chunk_t             *a, *b, *sorted;
    unsigned char       *data, *data2, *win;
    nixcache_chunker_t   ck, ck2;

    /* the gear table is splitmix64(NIXCACHE_GEAR_SEED) */

    s = NIXCACHE_GEAR_SEED;
    good = 1;
    for (i = 0; i < 256; i++) {
        if (nixcache_gear[i] != splitmix64(&s)) {
            good = 0;
        }
    }
    ok(good, "gear table agrees with splitmix64 seeded \"nixcachk\"");

    s = 0;
    is_u64(splitmix64(&s), 0xe220a8397b1dcdafULL,
           "splitmix64 seed 0 first output is the published one");
    is_u64(nixcache_gear[0], 0x71fdc3fd60e353adULL, "gear[0]");

    /* parameters */

    ok(nixcache_chunker_init(&ck, NIXCACHE_CHUNK_MIN_DEFAULT,
                             NIXCACHE_CHUNK_AVG_DEFAULT,
                             NIXCACHE_CHUNK_MAX_DEFAULT) == 0,
       "defaults accepted");
    is_u64(ck.mask_strict, 0xffffc00000000000ULL,
           "strict mask: top 18 bits for 64 KiB");
    is_u64(ck.mask_loose, 0xfffc000000000000ULL,
           "loose mask: top 14 bits for 64 KiB");

    ok(nixcache_chunker_init(&ck2, 64, 128, 129) == 0,
       "smallest parameters accepted");
    ok(nixcache_chunker_init(&ck2, 63, 128, 256) == -1, "min 63 rejected");
    ok(nixcache_chunker_init(&ck2, 128, 128, 256) == -1,
       "min == avg rejected");
    ok(nixcache_chunker_init(&ck2, 100, 200, 400) == -1,
       "avg not a power of two rejected");
    ok(nixcache_chunker_init(&ck2, 64, 128, 128) == -1,
       "avg == max rejected");
    ok(nixcache_chunker_init(&ck2, 1024, 4096, NIXCACHE_CHUNK_MAX_LIMIT)
       == 0, "max at the limit accepted");
    ok(nixcache_chunker_init(&ck2, 1024, 4096, NIXCACHE_CHUNK_MAX_LIMIT + 1)
       == -1, "max over the limit rejected");
    ok(nixcache_chunker_init(&ck2, 1024, NIXCACHE_CHUNK_MAX_LIMIT,
                             NIXCACHE_CHUNK_MAX_LIMIT * 2) == -1,
       "max over the limit rejected (large avg)");

    /* cuts from the independent reference */

    data = malloc(BIG + 1);
    data2 = malloc(BIG + 1);
    a = malloc(sizeof(chunk_t) * (BIG / 64));
    b = malloc(sizeof(chunk_t) * (BIG / 64));
    sorted = malloc(sizeof(chunk_t) * (BIG / 64));
    win = malloc(BIG);

    fill(data, 1 << 20, 42);

    ok(nixcache_chunker_init(&ck2, 2048, 8192, 65536) == 0, "2K/8K/64K");
    nref = sizeof(ref_small) / sizeof(ref_small[0]);
    n = chunk_all(&ck2, data, 1 << 20, a, BIG / 64, 0);
    good = n == nref;
    for (i = 0; good && i < n; i++) {
        good = a[i].len == ref_small[i];
    }
    ok(good, "2K/8K/64K cuts of 1 MiB match the reference (%zu chunks)",
       nref);

    nref = sizeof(ref_default) / sizeof(ref_default[0]);
    n = chunk_all(&ck, data, 1 << 20, a, BIG / 64, 0);
    good = n == nref;
    for (i = 0; good && i < n; i++) {
        good = a[i].len == ref_default[i];
    }
    ok(good, "default cuts of 1 MiB match the reference (%zu chunks)", nref);

    /* small inputs */

    is_u64(nixcache_chunker_cut(&ck, data, 0, 1), 0, "0 bytes at eof: 0");
    is_u64(nixcache_chunker_cut(&ck, data, 0, 0), 0, "0 bytes: 0");
    is_u64(nixcache_chunker_cut(&ck, data, 100, 1), 100,
           "100 bytes at eof: one chunk");
    is_u64(nixcache_chunker_cut(&ck, data, 100, 0), 0,
           "100 bytes, more to come: 0");
    is_u64(nixcache_chunker_cut(&ck, data, ck.min, 0), 0,
           "min bytes, more to come: 0");
    is_u64(nixcache_chunker_cut(&ck, data, ck.min + 1, 0), 0,
           "min + 1 random bytes, more to come: 0");

    memset(win, 0, ck.max * 2);
    is_u64(nixcache_chunker_cut(&ck, win, ck.max * 2, 0), ck.max,
           "zeros: a forced cut at max");
    is_u64(nixcache_chunker_cut(&ck, win, ck.max - 1, 0), 0,
           "zeros, max - 1 bytes, more to come: 0");
    is_u64(nixcache_chunker_cut(&ck, win, ck.max - 1, 1), ck.max - 1,
           "zeros, max - 1 bytes at eof: all of them");

    /* 10 MiB: determinism, bounds, average */

    fill(data, BIG, 7);

    n = chunk_all(&ck, data, BIG, a, BIG / 64, 1);
    n2 = chunk_all(&ck, data, BIG, b, BIG / 64, 1);
    good = n == n2 && n > 0;
    for (i = 0; good && i < n; i++) {
        good = a[i].len == b[i].len
               && memcmp(a[i].digest, b[i].digest, 32) == 0;
    }
    ok(good, "same input twice, same %zu chunks", n);

    good = 1;
    total = 0;
    min_seen = (size_t) -1;
    max_seen = 0;
    for (i = 0; i < n; i++) {
        total += a[i].len;

        if (i + 1 < n && (a[i].len <= ck.min || a[i].len > ck.max)) {
            good = 0;
        }

        if (i + 1 < n && a[i].len < min_seen) {
            min_seen = a[i].len;
        }

        if (a[i].len > max_seen) {
            max_seen = a[i].len;
        }
    }
    ok(good, "every chunk but the last in (min, max]: %zu..%zu",
       min_seen, max_seen);
    is_u64(total, BIG, "chunks cover the input");
    printf("# %zu chunks of 10 MiB random data: mean %zu bytes "
           "(min %zu, avg %zu, max %zu)\n",
           n, total / n, ck.min, ck.avg, ck.max);
    ok(total / n > ck.avg * 3 / 4 && total / n < ck.avg * 3 / 2,
       "mean chunk size near avg");

    memcpy(sorted, a, n * sizeof(chunk_t));
    qsort(sorted, n, sizeof(chunk_t), cmp_digest);

    /*
     * Insert one byte near the start (inside the first chunk's unhashed
     * prefix, then inside a hashed region): once a boundary falls where an
     * old one did, shifted by 1, every later chunk is an old chunk.
     */

    for (k = 0; k < 2; k++) {
        size_t  at = k == 0 ? 1000 : 100000;

        memcpy(data2, data, at);
        data2[at] = 0x5a;
        memcpy(data2 + at + 1, data + at, BIG - at);

        n2 = chunk_all(&ck, data2, BIG + 1, b, BIG / 64, 1);

        shared = 0;
        for (i = 0; i < n2; i++) {
            if (bsearch(&b[i], sorted, n, sizeof(chunk_t), cmp_digest)
                != NULL)
            {
                shared++;
            }
        }

        printf("# after a 1-byte insertion at %zu: %zu of %zu chunks "
               "shared\n", at, shared, n2);
        ok(shared + 2 >= n2 && n2 > 100,
           "insertion at %zu: all but at most 2 chunks shared", at);

        /* find the re-synchronisation, then compare chunk by chunk */

        for (i = 0, j = 0; i < n2 && j < n; ) {
            if (b[i].off > at && b[i].off == a[j].off + 1) {
                break;
            }

            if (b[i].off < a[j].off + 1) {
                i++;
            } else {
                j++;
            }
        }

        good = i < n2 && i <= 3 && n2 - i == n - j;
        for ( /* void */ ; good && i < n2; i++, j++) {
            good = b[i].len == a[j].len
                   && memcmp(b[i].digest, a[j].digest, 32) == 0;
        }
        ok(good, "insertion at %zu: after the re-synchronised boundary "
           "every chunk is the old one", at);
    }

    /* ... and a change in the middle disturbs only its neighbourhood */

    memcpy(data2, data, BIG);
    data2[BIG / 2] ^= 0xff;
    n2 = chunk_all(&ck, data2, BIG, b, BIG / 64, 1);

    shared = 0;
    for (i = 0; i < n2; i++) {
        if (bsearch(&b[i], sorted, n, sizeof(chunk_t), cmp_digest) != NULL) {
            shared++;
        }
    }
    printf("# after a 1-byte change at 5 MiB: %zu of %zu chunks shared\n",
           shared, n2);
    ok(shared + 2 >= n2 && shared + 2 >= n,
       "a change in the middle costs at most 2 chunks");

    /* streaming: pieces of varying size, eof only at the end */

    s = 99;
    have = 0;
    fed = 0;
    off = 0;
    n2 = 0;
    good = 1;

    while (fed < BIG) {
        piece = (size_t) (splitmix64(&s) % 9000) + 1;
        if (piece > BIG - fed) {
            piece = BIG - fed;
        }

        memcpy(win + have, data + fed, piece);
        have += piece;
        fed += piece;

        for ( ;; ) {
            c = nixcache_chunker_cut(&ck, win + off, have - off, 0);
            if (c == 0) {
                if (have - off >= ck.max) {
                    good = 0;
                }
                break;
            }

            if (n2 >= n || c != a[n2].len) {
                good = 0;
            }

            n2++;
            off += c;
        }
    }

    while (off < have) {
        c = nixcache_chunker_cut(&ck, win + off, have - off, 1);
        if (c == 0 || n2 >= n || c != a[n2].len) {
            good = 0;
            break;
        }

        n2++;
        off += c;
    }

    ok(good && n2 == n, "streaming in pieces gives the one-shot cuts "
       "(%zu of %zu)", n2, n);

    /* speed */

    t0 = clock();
    for (i = 0; i < 5; i++) {
        n2 = chunk_all(&ck, data, BIG, b, BIG / 64, 0);
    }
    secs = (double) (clock() - t0) / CLOCKS_PER_SEC;
    printf("# chunker speed: %.0f MB/s (defaults, 5 x 10 MiB)\n",
           secs > 0 ? 5.0 * BIG / 1e6 / secs : 0.0);
    is_u64(n2, n, "the timed passes cut the same");

    free(data);
    free(data2);
    free(a);
    free(b);
    free(sorted);
    free(win);

    return done_testing();
}
