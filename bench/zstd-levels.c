/*
 * Which zstd level for chunk frames?  Chunks a file (a NAR) with the
 * default chunker parameters, compresses every chunk as its own frame at
 * several levels, and prints the total size, ratio and speeds; one
 * whole-file frame at -3 and -19 is the reference.
 *
 *   make bench-tools
 *   nix-store --dump /usr/lib/python3.11 > /tmp/py.nar
 *   build/bench/zstd-levels /tmp/py.nar
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zstd.h>

#include "nixcache_chunker.h"
#include "nixcache_format.h"


typedef struct {
    size_t                     off;
    size_t                     len;
} bench_chunk_t;


static double
bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static unsigned char *
bench_read(const char *name, size_t *len)
{
    long            n;
    FILE           *f;
    unsigned char  *p;

    f = fopen(name, "rb");
    if (f == NULL) {
        perror(name);
        return NULL;
    }

    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);

    p = malloc(n > 0 ? n : 1);
    if (p == NULL || fread(p, 1, n, f) != (size_t) n) {
        fprintf(stderr, "%s: short read\n", name);
        fclose(f);
        free(p);
        return NULL;
    }

    fclose(f);
    *len = n;

    return p;
}


static void
bench_line(const char *what, int level, size_t in, size_t out, double ct,
    double dt)
{
    printf("| %-10s | %5d | %10zu | %6.3f | %9.1f | %11.1f |\n",
           what, level, out, (double) in / out, in / 1e6 / ct,
           in / 1e6 / dt);
}


int
main(int argc, char **argv)
{
    int                  i, level;
    size_t               len, n, nchunks, total, c, bound;
    double               t0, ct, dt;
    ZSTD_CCtx           *cctx;
    ZSTD_DCtx           *dctx;
    unsigned char       *data, *frames, *back;
    bench_chunk_t       *chunks;
    size_t              *csizes;
    nixcache_chunker_t   ck;

    static const int  levels[] = { 1, 3, 6, 9, 12, 15, 19 };

    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }

    data = bench_read(argv[1], &len);
    if (data == NULL || len == 0) {
        return 1;
    }

    if (nixcache_chunker_init(&ck, NIXCACHE_CHUNK_MIN_DEFAULT,
                              NIXCACHE_CHUNK_AVG_DEFAULT,
                              NIXCACHE_CHUNK_MAX_DEFAULT) != 0)
    {
        return 1;
    }

    chunks = malloc(sizeof(bench_chunk_t) * (len / 64 + 1));
    csizes = malloc(sizeof(size_t) * (len / 64 + 1));
    bound = ZSTD_compressBound(len) + (len / 64 + 1) * 32;
    frames = malloc(bound);
    back = malloc(len);
    cctx = ZSTD_createCCtx();
    dctx = ZSTD_createDCtx();

    if (chunks == NULL || csizes == NULL || frames == NULL || back == NULL
        || cctx == NULL || dctx == NULL)
    {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    /* fault the buffers in, so the first level is not charged for it */

    memset(frames, 0, bound);
    memset(back, 0, len);

    nchunks = 0;
    t0 = bench_now();

    for (n = 0; n < len; n += c) {
        c = nixcache_chunker_cut(&ck, data + n, len - n, 1);
        chunks[nchunks].off = n;
        chunks[nchunks].len = c;
        nchunks++;
    }

    ct = bench_now() - t0;

    printf("input %s: %zu bytes, %zu chunks (mean %zu), chunking %.0f MB/s\n"
           "\n", argv[1], len, nchunks, len / nchunks, len / 1e6 / ct);

    printf("| frames     | level | bytes      | ratio  "
           "| comp MB/s | decomp MB/s |\n"
           "|------------|------:|-----------:|-------:"
           "|----------:|------------:|\n");

    for (i = 0; i < (int) (sizeof(levels) / sizeof(levels[0])); i++) {
        level = levels[i];
        total = 0;

        t0 = bench_now();

        for (n = 0; n < nchunks; n++) {
            c = ZSTD_compressCCtx(cctx, frames + total, bound - total,
                                  data + chunks[n].off, chunks[n].len, level);
            if (ZSTD_isError(c)) {
                fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(c));
                return 1;
            }

            csizes[n] = c;
            total += c;
        }

        ct = bench_now() - t0;

        /* decompress frame by frame, as the module does for .nar */

        t0 = bench_now();

        for (n = 0, c = 0; n < nchunks; n++) {
            size_t  r;

            r = ZSTD_decompressDCtx(dctx, back + chunks[n].off,
                                    chunks[n].len, frames + c, csizes[n]);
            if (r != chunks[n].len) {
                fprintf(stderr, "decompression failed\n");
                return 1;
            }

            c += csizes[n];
        }

        dt = bench_now() - t0;

        if (memcmp(back, data, len) != 0) {
            fprintf(stderr, "round trip differs at level %d\n", level);
            return 1;
        }

        bench_line("per chunk", level, len, total, ct, dt);
    }

    for (i = 0; i < 2; i++) {
        level = i == 0 ? 3 : 19;

        t0 = bench_now();
        total = ZSTD_compressCCtx(cctx, frames, bound, data, len, level);
        ct = bench_now() - t0;

        if (ZSTD_isError(total)) {
            fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(total));
            return 1;
        }

        t0 = bench_now();
        c = ZSTD_decompressDCtx(dctx, back, len, frames, total);
        dt = bench_now() - t0;

        if (c != len || memcmp(back, data, len) != 0) {
            fprintf(stderr, "whole-file round trip failed\n");
            return 1;
        }

        bench_line("whole file", level, len, total, ct, dt);
    }

    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
    free(data);
    free(chunks);
    free(csizes);
    free(frames);
    free(back);

    return 0;
}
