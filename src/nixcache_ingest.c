/*
 * The ingest pipeline (see nixcache_ingest.h): NAR bytes in, chunk frames
 * to a sink, manifest and hashes out.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* the GNU strerror_r() */
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "nixcache_ingest.h"
#include "nixcache_cid.h"
#include "nixcache_manifest.h"


#define NIXCACHE_INGEST_WINDOW      4
#define NIXCACHE_INGEST_MBUF_LEN    (1024 * NIXCACHE_MANIFEST_ENTRY_LEN)


static int nixcache_ingest_chunk(nixcache_ingest_t *ing,
    const unsigned char *p, size_t n);
static ssize_t nixcache_ingest_read_stored(nixcache_ingest_t *ing,
    const unsigned char *digest, size_t usize);
static int nixcache_ingest_entry(nixcache_ingest_t *ing,
    const nixcache_manifest_entry_t *e);
static int nixcache_ingest_flush(nixcache_ingest_t *ing);
static int nixcache_ingest_pwrite(int fd, const unsigned char *p, size_t len,
    uint64_t off);
static int nixcache_ingest_fail(nixcache_ingest_t *ing,
    nixcache_ingest_err_e error, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));


int
nixcache_ingest_init(nixcache_ingest_t *ing,
    const nixcache_ingest_conf_t *conf)
{
    memset(ing, 0, sizeof(nixcache_ingest_t));

    ing->manifest_fd = -1;
    ing->sink = conf->sink;

    if (nixcache_chunker_init(&ing->chunker, conf->chunk_min, conf->chunk_avg,
                              conf->chunk_max)
        != 0)
    {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_PARAMS, 0,
                   "invalid chunking parameters min %zu avg %zu max %zu "
                   "(64 <= min < avg < max <= %d, avg a power of two)",
                   conf->chunk_min, conf->chunk_avg, conf->chunk_max,
                   NIXCACHE_CHUNK_MAX_LIMIT);
    }

    if (conf->level < ZSTD_minCLevel() || conf->level > ZSTD_maxCLevel()) {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_PARAMS, 0,
                                    "invalid zstd level %d (%d to %d)",
                                    conf->level, ZSTD_minCLevel(),
                                    ZSTD_maxCLevel());
    }

    ing->size = NIXCACHE_INGEST_WINDOW * conf->chunk_max;
    ing->frame_cap = ZSTD_compressBound(conf->chunk_max);

    ing->buf = malloc(ing->size);

    /* one byte more than any valid frame, to see an oversized file */
    ing->frame = malloc(ing->frame_cap + 1);

    ing->cctx = ZSTD_createCCtx();

    if (ing->buf == NULL || ing->frame == NULL || ing->cctx == NULL) {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_NOMEM, 0,
                                    "out of memory");
    }

    if (ZSTD_isError(ZSTD_CCtx_setParameter(ing->cctx,
                                            ZSTD_c_compressionLevel,
                                            conf->level))
        || ZSTD_isError(ZSTD_CCtx_setParameter(ing->cctx,
                                               ZSTD_c_contentSizeFlag, 1))
        || ZSTD_isError(ZSTD_CCtx_setParameter(ing->cctx,
                                               ZSTD_c_checksumFlag, 1)))
    {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                    "zstd: cannot set compression "
                                    "parameters");
    }

    return 0;
}


void
nixcache_ingest_free(nixcache_ingest_t *ing)
{
    if (ing->started) {
        nixcache_sha256_free(&ing->nar_ctx);
        nixcache_sha256_free(&ing->file_ctx);
        ing->started = 0;
    }

    ZSTD_freeCCtx(ing->cctx);
    free(ing->nar.manifest);
    free(ing->mbuf);
    free(ing->frame);
    free(ing->buf);

    ing->cctx = NULL;
    ing->nar.manifest = NULL;
    ing->mbuf = NULL;
    ing->frame = NULL;
    ing->buf = NULL;
}


int
nixcache_ingest_begin(nixcache_ingest_t *ing, int manifest_fd)
{
    unsigned char  *m;

    if (ing->started) {
        nixcache_sha256_free(&ing->nar_ctx);
        nixcache_sha256_free(&ing->file_ctx);
        ing->started = 0;
    }

    ing->error = NIXCACHE_INGEST_OK;
    ing->sys_errno = 0;
    ing->errmsg[0] = '\0';

    if (nixcache_sha256_init(&ing->nar_ctx) != 0) {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                    "SHA-256: cannot initialise");
    }

    if (nixcache_sha256_init(&ing->file_ctx) != 0) {
        nixcache_sha256_free(&ing->nar_ctx);
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                    "SHA-256: cannot initialise");
    }

    ing->started = 1;
    ing->start = 0;
    ing->end = 0;
    ing->manifest_fd = manifest_fd;
    ing->mbuf_len = 0;
    ing->mbuf_off = NIXCACHE_MANIFEST_HEADER_LEN;

    if (manifest_fd >= 0) {
        if (ing->mbuf == NULL) {
            ing->mbuf = malloc(NIXCACHE_INGEST_MBUF_LEN);
            if (ing->mbuf == NULL) {
                return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_NOMEM,
                                            0, "out of memory");
            }
        }

    } else if (ing->nar.manifest == NULL) {
        ing->manifest_cap = NIXCACHE_MANIFEST_HEADER_LEN
                            + 64 * NIXCACHE_MANIFEST_ENTRY_LEN;
        m = malloc(ing->manifest_cap);
        if (m == NULL) {
            return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_NOMEM, 0,
                                        "out of memory");
        }

        ing->nar.manifest = m;
    }

    m = ing->nar.manifest;

    memset(&ing->nar, 0, sizeof(nixcache_nar_t));

    ing->nar.manifest = m;
    ing->nar.manifest_len = NIXCACHE_MANIFEST_HEADER_LEN;

    return 0;
}


/*
 * Takes n more bytes of the NAR.  Whole chunks leave the window as soon as
 * a full chunk max is buffered, since by then a cut is always decided.
 */

int
nixcache_ingest_write(nixcache_ingest_t *ing, const void *data, size_t n)
{
    size_t                k, cut, max;
    const unsigned char  *p;

    p = data;
    max = ing->chunker.max;

    nixcache_sha256_update(&ing->nar_ctx, p, n);
    ing->nar.nar_size += n;
    ing->stats.nar_bytes += n;

    while (n > 0) {
        k = ing->size - ing->end;
        if (k > n) {
            k = n;
        }

        memcpy(ing->buf + ing->end, p, k);
        ing->end += k;
        p += k;
        n -= k;

        while (ing->end - ing->start >= max) {
            cut = nixcache_chunker_cut(&ing->chunker, ing->buf + ing->start,
                                       ing->end - ing->start, 0);
            if (cut == 0 || cut > max) {
                return nixcache_ingest_fail(ing,
                                            NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                            "chunker: no cut within chunk "
                                            "max");
            }

            if (nixcache_ingest_chunk(ing, ing->buf + ing->start, cut) != 0) {
                return -1;
            }

            ing->start += cut;
        }

        if (ing->start > 0) {
            memmove(ing->buf, ing->buf + ing->start, ing->end - ing->start);
            ing->end -= ing->start;
            ing->start = 0;
        }
    }

    return 0;
}


int
nixcache_ingest_out(void *data, const void *p, size_t n)
{
    return nixcache_ingest_write(data, p, n);
}


int
nixcache_ingest_finish(nixcache_ingest_t *ing)
{
    size_t                       cut;
    unsigned char                header[NIXCACHE_MANIFEST_HEADER_LEN];
    nixcache_manifest_header_t   h;

    while (ing->end > ing->start) {
        cut = nixcache_chunker_cut(&ing->chunker, ing->buf + ing->start,
                                   ing->end - ing->start, 1);
        if (cut == 0) {
            return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                        "chunker: no cut at end of input");
        }

        if (nixcache_ingest_chunk(ing, ing->buf + ing->start, cut) != 0) {
            return -1;
        }

        ing->start += cut;
    }

    ing->start = 0;
    ing->end = 0;

    nixcache_sha256_final(&ing->nar_ctx, ing->nar.nar_hash);
    nixcache_sha256_final(&ing->file_ctx, ing->nar.file_hash);
    nixcache_sha256_free(&ing->nar_ctx);
    nixcache_sha256_free(&ing->file_ctx);
    ing->started = 0;

    memset(&h, 0, sizeof(nixcache_manifest_header_t));

    h.chunk_count = ing->nar.chunk_count;
    h.flags = 0;
    h.nar_size = ing->nar.nar_size;
    h.file_size = ing->nar.file_size;
    memcpy(h.nar_hash, ing->nar.nar_hash, NIXCACHE_SHA256_LEN);
    memcpy(h.file_hash, ing->nar.file_hash, NIXCACHE_SHA256_LEN);

    if (ing->manifest_fd < 0) {
        nixcache_manifest_header_encode(ing->nar.manifest, &h);

    } else {
        nixcache_manifest_header_encode(header, &h);

        if (nixcache_ingest_flush(ing) != 0
            || nixcache_ingest_pwrite(ing->manifest_fd, header,
                                      NIXCACHE_MANIFEST_HEADER_LEN, 0)
               != 0)
        {
            return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_MANIFEST,
                                        errno, "cannot write the manifest");
        }
    }

    if (ing->progress != NULL) {
        ing->progress(ing->progress_data);
    }

    return 0;
}


int
nixcache_ingest_sync(nixcache_ingest_t *ing)
{
    if (ing->sink->sync(ing->sink->data) != 0) {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_SINK, errno,
                                    "cannot sync the chunk store");
    }

    return 0;
}


static int
nixcache_ingest_chunk(nixcache_ingest_t *ing, const unsigned char *p,
    size_t n)
{
    int                         rc;
    char                        cid[NIXCACHE_CID_LEN];
    size_t                      csize;
    ssize_t                     stored;
    unsigned char               digest[NIXCACHE_SHA256_LEN];
    nixcache_manifest_entry_t   e;

    if (ing->nar.chunk_count == UINT32_MAX) {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                    "too many chunks in one NAR");
    }

    nixcache_sha256(digest, p, n);

    stored = nixcache_ingest_read_stored(ing, digest, n);

    if (stored == -1) {
        return -1;
    }

    if (stored > 0) {
        csize = (size_t) stored;

    } else {
        csize = ZSTD_compress2(ing->cctx, ing->frame, ing->frame_cap, p, n);

        if (ZSTD_isError(csize)) {
            return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                        "zstd: %s",
                                        ZSTD_getErrorName(csize));
        }

        if (ZSTD_getFrameContentSize(ing->frame, csize) != n) {
            return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                        "zstd: frame without content size");
        }

        rc = ing->sink->put(ing->sink->data, digest, ing->frame, csize);

        if (rc == -1) {
            nixcache_cid_encode(cid, digest);
            return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_SINK, errno,
                                        "cannot write chunk %.*s",
                                        NIXCACHE_CID_LEN, cid);
        }

        if (rc == 0) {
            /*
             * a concurrent writer stored this chunk first, perhaps another
             * frame of the same bytes: describe the one that is stored
             */

            stored = nixcache_ingest_read_stored(ing, digest, n);

            if (stored == -1) {
                return -1;
            }

            if (stored == 0) {
                nixcache_cid_encode(cid, digest);
                return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_SINK, 0,
                                            "chunk %.*s vanished while "
                                            "being stored",
                                            NIXCACHE_CID_LEN, cid);
            }

            csize = (size_t) stored;

        } else {
            ing->stats.new_chunks++;
            ing->stats.new_usize += n;
            ing->stats.new_csize += csize;
        }
    }

    nixcache_sha256_update(&ing->file_ctx, ing->frame, csize);

    memcpy(e.chunk, digest, NIXCACHE_SHA256_LEN);
    e.usize = (uint32_t) n;
    e.csize = (uint32_t) csize;

    if (nixcache_ingest_entry(ing, &e) != 0) {
        return -1;
    }

    ing->nar.chunk_count++;
    ing->nar.file_size += csize;
    ing->stats.chunks++;

    if (ing->progress != NULL) {
        ing->progress(ing->progress_data);
    }

    return 0;
}


/* Appends a manifest entry, in memory or to the manifest file. */

static int
nixcache_ingest_entry(nixcache_ingest_t *ing,
    const nixcache_manifest_entry_t *e)
{
    size_t          cap;
    unsigned char  *m;

    if (ing->manifest_fd >= 0) {
        if (ing->mbuf_len + NIXCACHE_MANIFEST_ENTRY_LEN
            > NIXCACHE_INGEST_MBUF_LEN
            && nixcache_ingest_flush(ing) != 0)
        {
            return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_MANIFEST,
                                        errno, "cannot write the manifest");
        }

        nixcache_manifest_entry_encode(ing->mbuf + ing->mbuf_len, e);
        ing->mbuf_len += NIXCACHE_MANIFEST_ENTRY_LEN;
        ing->nar.manifest_len += NIXCACHE_MANIFEST_ENTRY_LEN;

        return 0;
    }

    if (ing->nar.manifest_len + NIXCACHE_MANIFEST_ENTRY_LEN
        > ing->manifest_cap)
    {
        cap = ing->manifest_cap * 2;
        m = realloc(ing->nar.manifest, cap);
        if (m == NULL) {
            return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_NOMEM, 0,
                                        "out of memory");
        }

        ing->nar.manifest = m;
        ing->manifest_cap = cap;
    }

    nixcache_manifest_entry_encode(ing->nar.manifest + ing->nar.manifest_len,
                                   e);
    ing->nar.manifest_len += NIXCACHE_MANIFEST_ENTRY_LEN;

    return 0;
}


static int
nixcache_ingest_flush(nixcache_ingest_t *ing)
{
    if (ing->mbuf_len == 0) {
        return 0;
    }

    if (nixcache_ingest_pwrite(ing->manifest_fd, ing->mbuf, ing->mbuf_len,
                               ing->mbuf_off)
        != 0)
    {
        return -1;
    }

    ing->mbuf_off += ing->mbuf_len;
    ing->mbuf_len = 0;

    return 0;
}


static int
nixcache_ingest_pwrite(int fd, const unsigned char *p, size_t len,
    uint64_t off)
{
    ssize_t  n;

    while (len > 0) {
        n = pwrite(fd, p, len, (off_t) off);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            return -1;
        }

        p += n;
        len -= (size_t) n;
        off += (uint64_t) n;
    }

    return 0;
}


/*
 * Reads a stored chunk's frame into ing->frame.  Returns its size, 0 when
 * the chunk is not stored, -1 on an error (a stored frame that is not one
 * zstd frame of usize bytes is one: it would make the served NAR wrong).
 */

static ssize_t
nixcache_ingest_read_stored(nixcache_ingest_t *ing,
    const unsigned char *digest, size_t usize)
{
    char     cid[NIXCACHE_CID_LEN];
    size_t   len;
    ssize_t  n;

    n = ing->sink->read_stored(ing->sink->data, digest, ing->frame,
                               ing->frame_cap + 1);

    if (n == 0) {
        return 0;
    }

    nixcache_cid_encode(cid, digest);

    if (n == -1) {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_SINK, errno,
                                    "cannot open chunk %.*s",
                                    NIXCACHE_CID_LEN, cid);
    }

    len = (size_t) n;

    if (len > ing->frame_cap
        || ZSTD_getFrameContentSize(ing->frame, len) != usize
        || ZSTD_findFrameCompressedSize(ing->frame, len) != len)
    {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_STORED, 0,
                                    "stored chunk %.*s is not one zstd "
                                    "frame of %zu bytes; remove it and "
                                    "retry", NIXCACHE_CID_LEN, cid, usize);
    }

    return n;
}


/* Records an error; with err != 0 its text is appended.  Returns -1. */

static int
nixcache_ingest_fail(nixcache_ingest_t *ing, nixcache_ingest_err_e error,
    int err, const char *fmt, ...)
{
    int       n;
    char      buf[128];
    va_list   args;

    ing->error = error;
    ing->sys_errno = err;

    va_start(args, fmt);
    n = vsnprintf(ing->errmsg, NIXCACHE_INGEST_ERR_LEN, fmt, args);
    va_end(args);

    if (err != 0 && n >= 0 && n < NIXCACHE_INGEST_ERR_LEN) {
        snprintf(ing->errmsg + n, NIXCACHE_INGEST_ERR_LEN - n, ": %s",
                 strerror_r(err, buf, sizeof(buf)));
    }

    return -1;
}
