/*
 * Streaming decompression (see nixcache_decompress.h): none, xz, zstd,
 * bzip2, fixed-size buffers, the compressed input hashed on the way when
 * read from a file.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bzlib.h>
#include <lzma.h>
#include <zstd.h>

#include "nixcache_decompress.h"
#include "nixcache_hash.h"


#define NIXCACHE_DECOMP_OUT_SIZE    (256 * 1024)

/* xz -9e needs 65 MiB to decode; a stream that wants more is refused */
#define NIXCACHE_DECOMP_XZ_MEMLIMIT (256 * 1024 * 1024)


struct nixcache_decomp_s {
    nixcache_decomp_e          kind;
    nixcache_decomp_out_pt     out_handler;
    void                      *out_data;
    uint64_t                   limit;
    uint64_t                   out_total;
    unsigned char             *out;

    lzma_stream                xz;
    ZSTD_DCtx                 *zstd;
    size_t                     zstd_last;
    bz_stream                  bz;

    nixcache_decomp_err_e      error;
    int                        sys_errno;
    char                       errmsg[NIXCACHE_DECOMP_ERR_LEN];

    unsigned                   xz_init:1;
    unsigned                   bz_init:1;
    unsigned                   ended:1;
};


static int nixcache_decomp_emit(nixcache_decomp_t *d, size_t n);
static int nixcache_decomp_pass(nixcache_decomp_t *d,
    const unsigned char *in, size_t n);
static int nixcache_decomp_xz(nixcache_decomp_t *d, const unsigned char *in,
    size_t n, int eof);
static int nixcache_decomp_zstd(nixcache_decomp_t *d,
    const unsigned char *in, size_t n, int eof);
static int nixcache_decomp_bzip2_step(nixcache_decomp_t *d);
static int nixcache_decomp_bzip2(nixcache_decomp_t *d,
    const unsigned char *in, size_t n, int eof);
static int nixcache_decomp_fail(nixcache_decomp_t *d,
    nixcache_decomp_err_e error, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));


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


int
nixcache_decomp_kind_ext(const char *s, size_t len, nixcache_decomp_e *kind)
{
    if (len == 0) {
        *kind = NIXCACHE_DECOMP_NONE;

    } else if (len == 3 && memcmp(s, ".xz", 3) == 0) {
        *kind = NIXCACHE_DECOMP_XZ;

    } else if (len == 4 && memcmp(s, ".zst", 4) == 0) {
        *kind = NIXCACHE_DECOMP_ZSTD;

    } else if (len == 4 && memcmp(s, ".bz2", 4) == 0) {
        *kind = NIXCACHE_DECOMP_BZIP2;

    } else {
        return -1;
    }

    return 0;
}


nixcache_decomp_t *
nixcache_decomp_create(nixcache_decomp_e kind, uint64_t limit,
    nixcache_decomp_out_pt out, void *data)
{
    nixcache_decomp_t  *d;

    d = calloc(1, sizeof(nixcache_decomp_t));
    if (d == NULL) {
        return NULL;
    }

    d->kind = kind;
    d->limit = limit;
    d->out_handler = out;
    d->out_data = data;

    d->out = malloc(NIXCACHE_DECOMP_OUT_SIZE);
    if (d->out == NULL) {
        nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_NOMEM, 0,
                             "out of memory");
        return d;
    }

    switch (kind) {

    case NIXCACHE_DECOMP_XZ:
        if (lzma_stream_decoder(&d->xz, NIXCACHE_DECOMP_XZ_MEMLIMIT,
                                LZMA_CONCATENATED)
            != LZMA_OK)
        {
            nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INTERNAL, 0,
                                 "xz: cannot initialise the decoder");
            return d;
        }

        d->xz_init = 1;
        break;

    case NIXCACHE_DECOMP_ZSTD:
        d->zstd = ZSTD_createDCtx();
        if (d->zstd == NULL) {
            nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_NOMEM, 0,
                                 "out of memory");
            return d;
        }

        break;

    case NIXCACHE_DECOMP_BZIP2:
        if (BZ2_bzDecompressInit(&d->bz, 0, 0) != BZ_OK) {
            nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INTERNAL, 0,
                                 "bzip2: cannot initialise the decoder");
            return d;
        }

        d->bz_init = 1;
        break;

    default:
        break;
    }

    return d;
}


void
nixcache_decomp_destroy(nixcache_decomp_t *d)
{
    if (d == NULL) {
        return;
    }

    if (d->xz_init) {
        lzma_end(&d->xz);
    }

    if (d->bz_init) {
        BZ2_bzDecompressEnd(&d->bz);
    }

    ZSTD_freeDCtx(d->zstd);
    free(d->out);
    free(d);
}


nixcache_decomp_err_e
nixcache_decomp_error(const nixcache_decomp_t *d)
{
    return d->error;
}


int
nixcache_decomp_errno(const nixcache_decomp_t *d)
{
    return d->sys_errno;
}


const char *
nixcache_decomp_strerror(const nixcache_decomp_t *d)
{
    return d->errmsg;
}


uint64_t
nixcache_decomp_total(const nixcache_decomp_t *d)
{
    return d->out_total;
}


int
nixcache_decomp_fd(nixcache_decomp_t *d, int fd, unsigned char *file_hash,
    uint64_t *file_size)
{
    int                 rc, eof;
    ssize_t             n;
    uint64_t            size;
    nixcache_sha256_t   sha;
    unsigned char       in[NIXCACHE_DECOMP_IN_SIZE];

    if (d->error != NIXCACHE_DECOMP_OK) {
        return -1;
    }

    if (nixcache_sha256_init(&sha) != 0) {
        return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INTERNAL, 0,
                                    "SHA-256: cannot initialise");
    }

    size = 0;
    rc = -1;

    for ( ;; ) {
        n = read(fd, in, sizeof(in));

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_READ, errno, "read");
            break;
        }

        eof = (n == 0);

        nixcache_sha256_update(&sha, in, n);
        size += n;

        if (nixcache_decomp_feed(d, in, n, eof) != 0) {
            break;
        }

        if (eof) {
            rc = 0;
            break;
        }
    }

    if (file_hash != NULL) {
        nixcache_sha256_final(&sha, file_hash);
    }

    nixcache_sha256_free(&sha);

    if (file_size != NULL) {
        *file_size = size;
    }

    return rc;
}


int
nixcache_decomp_feed(nixcache_decomp_t *d, const unsigned char *in,
    size_t n, int eof)
{
    if (d->error != NIXCACHE_DECOMP_OK) {
        return -1;
    }

    switch (d->kind) {

    case NIXCACHE_DECOMP_XZ:
        return nixcache_decomp_xz(d, in, n, eof);

    case NIXCACHE_DECOMP_ZSTD:
        return nixcache_decomp_zstd(d, in, n, eof);

    case NIXCACHE_DECOMP_BZIP2:
        return nixcache_decomp_bzip2(d, in, n, eof);

    default:
        return nixcache_decomp_pass(d, in, n);
    }
}


static int
nixcache_decomp_pass(nixcache_decomp_t *d, const unsigned char *in,
    size_t n)
{
    if (n == 0) {
        return 0;
    }

    if (d->out_total + n > d->limit) {
        return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INPUT, 0,
                                    "longer than NarSize %llu",
                                    (unsigned long long) d->limit);
    }

    d->out_total += n;

    if (d->out_handler(d->out_data, in, n) != 0) {
        return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_OUTPUT, 0,
                                    "output failed");
    }

    return 0;
}


/* Passes n decompressed bytes from d->out on, within the limit. */

static int
nixcache_decomp_emit(nixcache_decomp_t *d, size_t n)
{
    if (n == 0) {
        return 0;
    }

    if (d->out_total + n > d->limit) {
        return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INPUT, 0,
                                    "decompresses to more than NarSize %llu",
                                    (unsigned long long) d->limit);
    }

    d->out_total += n;

    if (d->out_handler(d->out_data, d->out, n) != 0) {
        return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_OUTPUT, 0,
                                    "output failed");
    }

    return 0;
}


static int
nixcache_decomp_xz(nixcache_decomp_t *d, const unsigned char *in, size_t n,
    int eof)
{
    lzma_ret  ret;

    if (d->ended) {
        if (n > 0) {
            return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INPUT, 0,
                                        "data after the end of the xz "
                                        "stream");
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
                return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INPUT, 0,
                                            "data after the end of the xz "
                                            "stream");
            }

            return 0;
        }

        if (ret == LZMA_BUF_ERROR && eof) {
            return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INPUT, 0,
                                        "truncated xz stream");
        }

        if (ret == LZMA_MEMLIMIT_ERROR) {
            return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INPUT, 0,
                                        "the xz stream needs more than "
                                        "%d MiB to decode",
                                        NIXCACHE_DECOMP_XZ_MEMLIMIT
                                        / (1024 * 1024));
        }

        if (ret != LZMA_OK) {
            return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INPUT, 0,
                                        "corrupt xz stream (lzma error %d)",
                                        (int) ret);
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
            return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INPUT, 0,
                                        "truncated zstd stream");
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
            return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INPUT, 0,
                                        "corrupt zstd stream: %s",
                                        ZSTD_getErrorName(ret));
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
    char      *next;
    unsigned   avail;

    if (eof) {
        if (!d->ended) {
            return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INPUT, 0,
                                        "truncated bzip2 stream");
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
                return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INTERNAL,
                                            0, "bzip2: cannot initialise "
                                            "the decoder");
            }

            d->bz_init = 1;
            d->ended = 0;
            d->bz.next_in = next;
            d->bz.avail_in = avail;
        }

        if (nixcache_decomp_bzip2_step(d) != 0) {
            return -1;
        }
    }

    /* the decoder may hold output it could not hand over yet */

    while (!d->ended) {
        if (nixcache_decomp_bzip2_step(d) != 0) {
            return -1;
        }

        if (d->bz.avail_out > 0) {
            break;
        }
    }

    return 0;
}


/* One BZ2_bzDecompress() into the output buffer, whose bytes are emitted. */

static int
nixcache_decomp_bzip2_step(nixcache_decomp_t *d)
{
    int  ret;

    d->bz.next_out = (char *) d->out;
    d->bz.avail_out = NIXCACHE_DECOMP_OUT_SIZE;

    ret = BZ2_bzDecompress(&d->bz);

    if (ret != BZ_OK && ret != BZ_STREAM_END) {
        return nixcache_decomp_fail(d, NIXCACHE_DECOMP_ERR_INPUT, 0,
                                    "corrupt bzip2 stream (bzip2 error %d)",
                                    ret);
    }

    if (nixcache_decomp_emit(d, NIXCACHE_DECOMP_OUT_SIZE - d->bz.avail_out)
        != 0)
    {
        return -1;
    }

    if (ret == BZ_STREAM_END) {
        d->ended = 1;
    }

    return 0;
}


/* Records an error; with err != 0 its text is appended.  Returns -1. */

static int
nixcache_decomp_fail(nixcache_decomp_t *d, nixcache_decomp_err_e error,
    int err, const char *fmt, ...)
{
    int       n;
    va_list   args;

    d->error = error;
    d->sys_errno = err;

    va_start(args, fmt);
    n = vsnprintf(d->errmsg, NIXCACHE_DECOMP_ERR_LEN, fmt, args);
    va_end(args);

    if (err != 0 && n >= 0 && n < NIXCACHE_DECOMP_ERR_LEN) {
        snprintf(d->errmsg + n, NIXCACHE_DECOMP_ERR_LEN - n, ": %s",
                 strerror(err));
    }

    return -1;
}
