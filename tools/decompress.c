/*
 * Streaming decompression of a flat binary cache's NAR files (none, xz,
 * zstd, bzip2) into the ingest pipeline, with fixed-size buffers.  The
 * compressed bytes are hashed on the way (the narinfo's FileHash), and a
 * stream that ends early, carries trailing garbage or decodes to more than
 * the expected NAR size is an error.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bzlib.h>
#include <lzma.h>

#include "cli.h"


#define NIXCACHE_DECOMP_OUT_SIZE    (256 * 1024)

/* xz -9e needs 65 MiB to decode; a stream that wants more is refused */
#define NIXCACHE_DECOMP_XZ_MEMLIMIT (256 * 1024 * 1024)


typedef struct {
    nixcache_decomp_e          kind;
    const char                *name;
    nixcache_ingest_t         *ingest;
    uint64_t                   limit;
    uint64_t                   out_total;
    unsigned char             *out;

    lzma_stream                xz;
    ZSTD_DCtx                 *zstd;
    size_t                     zstd_last;
    bz_stream                  bz;

    unsigned                   xz_init:1;
    unsigned                   bz_init:1;
    unsigned                   ended:1;
} nixcache_decomp_t;


static int nixcache_decomp_feed(nixcache_decomp_t *d,
    const unsigned char *in, size_t n, int eof);
static int nixcache_decomp_emit(nixcache_decomp_t *d, size_t n);
static int nixcache_decomp_xz(nixcache_decomp_t *d, const unsigned char *in,
    size_t n, int eof);
static int nixcache_decomp_zstd(nixcache_decomp_t *d,
    const unsigned char *in, size_t n, int eof);
static int nixcache_decomp_bzip2(nixcache_decomp_t *d,
    const unsigned char *in, size_t n, int eof);


int
nixcache_decomp_kind(const char *s, size_t len, nixcache_decomp_e *kind)
{
    if (len == 4 && memcmp(s, "none", 4) == 0) {
        *kind = NIXCACHE_DECOMP_NONE;

    } else if (len == 2 && memcmp(s, "xz", 2) == 0) {
        *kind = NIXCACHE_DECOMP_XZ;

    } else if (len == 4 && memcmp(s, "zstd", 4) == 0) {
        *kind = NIXCACHE_DECOMP_ZSTD;

    } else if (len == 5 && memcmp(s, "bzip2", 5) == 0) {
        *kind = NIXCACHE_DECOMP_BZIP2;

    } else {
        return -1;
    }

    return 0;
}


/*
 * Reads fd to its end, decompresses, and writes the NAR bytes into the
 * ingest pipeline.  *file_size and file_hash get the compressed input's.
 */

int
nixcache_decompress_fd(int fd, nixcache_decomp_e kind, const char *name,
    uint64_t limit, nixcache_ingest_t *ing, unsigned char *file_hash,
    uint64_t *file_size)
{
    int                 rc, eof;
    ssize_t             n;
    nixcache_decomp_t   d;
    nixcache_sha256_t   sha;
    unsigned char       in[NIXCACHE_CLI_IO_SIZE];

    memset(&d, 0, sizeof(nixcache_decomp_t));

    d.kind = kind;
    d.name = name;
    d.ingest = ing;
    d.limit = limit;

    *file_size = 0;
    rc = -1;

    if (nixcache_sha256_init(&sha) != 0) {
        nixcache_error("SHA-256: cannot initialise");
        return -1;
    }

    d.out = malloc(NIXCACHE_DECOMP_OUT_SIZE);
    if (d.out == NULL) {
        nixcache_error("out of memory");
        goto done;
    }

    switch (kind) {

    case NIXCACHE_DECOMP_XZ:
        if (lzma_stream_decoder(&d.xz, NIXCACHE_DECOMP_XZ_MEMLIMIT,
                                LZMA_CONCATENATED)
            != LZMA_OK)
        {
            nixcache_error("xz: cannot initialise the decoder");
            goto done;
        }

        d.xz_init = 1;
        break;

    case NIXCACHE_DECOMP_ZSTD:
        d.zstd = ZSTD_createDCtx();
        if (d.zstd == NULL) {
            nixcache_error("out of memory");
            goto done;
        }

        break;

    case NIXCACHE_DECOMP_BZIP2:
        if (BZ2_bzDecompressInit(&d.bz, 0, 0) != BZ_OK) {
            nixcache_error("bzip2: cannot initialise the decoder");
            goto done;
        }

        d.bz_init = 1;
        break;

    default:
        break;
    }

    for ( ;; ) {
        n = read(fd, in, sizeof(in));

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            nixcache_error("%s: read: %s", name, strerror(errno));
            goto done;
        }

        eof = (n == 0);

        nixcache_sha256_update(&sha, in, n);
        *file_size += n;

        if (nixcache_decomp_feed(&d, in, n, eof) != 0) {
            goto done;
        }

        if (eof) {
            break;
        }
    }

    rc = 0;

done:

    nixcache_sha256_final(&sha, file_hash);
    nixcache_sha256_free(&sha);

    if (d.xz_init) {
        lzma_end(&d.xz);
    }

    if (d.bz_init) {
        BZ2_bzDecompressEnd(&d.bz);
    }

    ZSTD_freeDCtx(d.zstd);
    free(d.out);

    return rc;
}


static int
nixcache_decomp_feed(nixcache_decomp_t *d, const unsigned char *in,
    size_t n, int eof)
{
    switch (d->kind) {

    case NIXCACHE_DECOMP_XZ:
        return nixcache_decomp_xz(d, in, n, eof);

    case NIXCACHE_DECOMP_ZSTD:
        return nixcache_decomp_zstd(d, in, n, eof);

    case NIXCACHE_DECOMP_BZIP2:
        return nixcache_decomp_bzip2(d, in, n, eof);

    default:
        if (n == 0) {
            return 0;
        }

        if (d->out_total + n > d->limit) {
            nixcache_error("%s: longer than NarSize %llu", d->name,
                           (unsigned long long) d->limit);
            return -1;
        }

        d->out_total += n;

        return nixcache_ingest_write(d->ingest, in, n);
    }
}


/* Passes n decompressed bytes from d->out on, within the NarSize limit. */

static int
nixcache_decomp_emit(nixcache_decomp_t *d, size_t n)
{
    if (n == 0) {
        return 0;
    }

    if (d->out_total + n > d->limit) {
        nixcache_error("%s: decompresses to more than NarSize %llu",
                       d->name, (unsigned long long) d->limit);
        return -1;
    }

    d->out_total += n;

    return nixcache_ingest_write(d->ingest, d->out, n);
}


static int
nixcache_decomp_xz(nixcache_decomp_t *d, const unsigned char *in, size_t n,
    int eof)
{
    lzma_ret  ret;

    if (d->ended) {
        if (n > 0) {
            nixcache_error("%s: data after the end of the xz stream",
                           d->name);
            return -1;
        }

        return 0;
    }

    d->xz.next_in = in;
    d->xz.avail_in = n;

    for ( ;; ) {
        d->xz.next_out = d->out;
        d->xz.avail_out = NIXCACHE_DECOMP_OUT_SIZE;

        ret = lzma_code(&d->xz, eof ? LZMA_FINISH : LZMA_RUN);

        if (nixcache_decomp_emit(d, NIXCACHE_DECOMP_OUT_SIZE
                                    - d->xz.avail_out)
            != 0)
        {
            return -1;
        }

        if (ret == LZMA_STREAM_END) {
            d->ended = 1;

            if (d->xz.avail_in > 0) {
                nixcache_error("%s: data after the end of the xz stream",
                               d->name);
                return -1;
            }

            return 0;
        }

        if (ret == LZMA_BUF_ERROR && eof) {
            nixcache_error("%s: truncated xz stream", d->name);
            return -1;
        }

        if (ret == LZMA_MEMLIMIT_ERROR) {
            nixcache_error("%s: the xz stream needs more than %d MiB to "
                           "decode", d->name,
                           NIXCACHE_DECOMP_XZ_MEMLIMIT / (1024 * 1024));
            return -1;
        }

        if (ret != LZMA_OK) {
            nixcache_error("%s: corrupt xz stream (lzma error %d)", d->name,
                           (int) ret);
            return -1;
        }

        if (d->xz.avail_in == 0 && d->xz.avail_out > 0 && !eof) {
            return 0;
        }
    }
}


static int
nixcache_decomp_zstd(nixcache_decomp_t *d, const unsigned char *in,
    size_t n, int eof)
{
    size_t          ret;
    ZSTD_inBuffer   ib;
    ZSTD_outBuffer  ob;

    if (eof) {
        if (d->zstd_last != 0 || d->out_total == 0) {
            nixcache_error("%s: truncated zstd stream", d->name);
            return -1;
        }

        return 0;
    }

    ib.src = in;
    ib.size = n;
    ib.pos = 0;

    for ( ;; ) {
        ob.dst = d->out;
        ob.size = NIXCACHE_DECOMP_OUT_SIZE;
        ob.pos = 0;

        ret = ZSTD_decompressStream(d->zstd, &ob, &ib);

        if (ZSTD_isError(ret)) {
            nixcache_error("%s: corrupt zstd stream: %s", d->name,
                           ZSTD_getErrorName(ret));
            return -1;
        }

        d->zstd_last = ret;

        if (nixcache_decomp_emit(d, ob.pos) != 0) {
            return -1;
        }

        if (ib.pos == ib.size && ob.pos < ob.size) {
            return 0;
        }
    }
}


static int
nixcache_decomp_bzip2(nixcache_decomp_t *d, const unsigned char *in,
    size_t n, int eof)
{
    int        ret;
    char      *next;
    unsigned   avail;

    if (eof) {
        if (!d->ended) {
            nixcache_error("%s: truncated bzip2 stream", d->name);
            return -1;
        }

        return 0;
    }

    d->bz.next_in = (char *) in;
    d->bz.avail_in = n;

    while (d->bz.avail_in > 0) {

        if (d->ended) {
            /* concatenated streams, as parallel bzip2 writes them */
            next = d->bz.next_in;
            avail = d->bz.avail_in;

            BZ2_bzDecompressEnd(&d->bz);
            d->bz_init = 0;

            memset(&d->bz, 0, sizeof(bz_stream));

            if (BZ2_bzDecompressInit(&d->bz, 0, 0) != BZ_OK) {
                nixcache_error("bzip2: cannot initialise the decoder");
                return -1;
            }

            d->bz_init = 1;
            d->ended = 0;
            d->bz.next_in = next;
            d->bz.avail_in = avail;
        }

        d->bz.next_out = (char *) d->out;
        d->bz.avail_out = NIXCACHE_DECOMP_OUT_SIZE;

        ret = BZ2_bzDecompress(&d->bz);

        if (ret != BZ_OK && ret != BZ_STREAM_END) {
            nixcache_error("%s: corrupt bzip2 stream (bzip2 error %d)",
                           d->name, ret);
            return -1;
        }

        if (nixcache_decomp_emit(d, NIXCACHE_DECOMP_OUT_SIZE
                                    - d->bz.avail_out)
            != 0)
        {
            return -1;
        }

        if (ret == BZ_STREAM_END) {
            d->ended = 1;
        }
    }

    /* the decoder may hold output it could not hand over yet */

    while (!d->ended) {
        d->bz.next_out = (char *) d->out;
        d->bz.avail_out = NIXCACHE_DECOMP_OUT_SIZE;

        ret = BZ2_bzDecompress(&d->bz);

        if (ret != BZ_OK && ret != BZ_STREAM_END) {
            nixcache_error("%s: corrupt bzip2 stream (bzip2 error %d)",
                           d->name, ret);
            return -1;
        }

        if (nixcache_decomp_emit(d, NIXCACHE_DECOMP_OUT_SIZE
                                    - d->bz.avail_out)
            != 0)
        {
            return -1;
        }

        if (ret == BZ_STREAM_END) {
            d->ended = 1;
        }

        if (d->bz.avail_out > 0) {
            break;
        }
    }

    return 0;
}
