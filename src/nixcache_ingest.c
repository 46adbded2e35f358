/*
 * The ingest pipeline (see nixcache_ingest.h): NAR bytes in, chunk frames
 * to a sink, manifest and hashes out.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* the GNU strerror_r() */
#endif

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "nixcache_ingest.h"
#include "nixcache_cid.h"
#include "nixcache_frame.h"
#include "nixcache_manifest.h"


#define NIXCACHE_INGEST_WINDOW      4
#define NIXCACHE_INGEST_MBUF_LEN    (1024 * NIXCACHE_MANIFEST_ENTRY_LEN)
#define NIXCACHE_INGEST_SLOTS       2           /* per thread */


/*
 * A chunk in flight in the threaded pipeline.  A worker (or the caller,
 * when it would otherwise wait) runs the HASH and COMPRESS steps; every
 * other step is the caller's.  The slots form a ring in chunk order from
 * pool->head; the first pool->looked of them have been looked up.
 */
typedef enum {
    NIXCACHE_SLOT_FREE = 0,
    NIXCACHE_SLOT_HASH,             /* to do: SHA-256 of the chunk */
    NIXCACHE_SLOT_HASHING,
    NIXCACHE_SLOT_HASHED,           /* the caller looks it up */
    NIXCACHE_SLOT_DEFER,            /* looked up again when the oldest */
    NIXCACHE_SLOT_COMPRESS,         /* to do: compress the chunk */
    NIXCACHE_SLOT_COMPRESSING,
    NIXCACHE_SLOT_COMPRESSED,       /* our frame: store it, then commit */
    NIXCACHE_SLOT_STORED,           /* the sink's frame: commit it */
    NIXCACHE_SLOT_FAILED            /* zstd failed (zerr) */
} nixcache_ingest_slot_e;


typedef struct {
    unsigned char             *data;        /* the chunk */
    unsigned char             *frame;       /* frame_cap + 1 bytes */
    size_t                     usize;
    size_t                     csize;
    const char                *zerr;
    nixcache_ingest_slot_e     state;
    unsigned char              digest[NIXCACHE_SHA256_LEN];
} nixcache_ingest_slot_t;


typedef struct {
    nixcache_ingest_pool_t    *pool;
    void                      *cctx;
    pthread_t                  thread;
} nixcache_ingest_worker_t;


struct nixcache_ingest_pool_s {
    pthread_mutex_t            mutex;
    pthread_cond_t             work;        /* a step to do, or quit */
    pthread_cond_t             done;        /* a step done */

    nixcache_ingest_worker_t  *workers;
    unsigned                   nworkers;    /* started */

    nixcache_ingest_slot_t    *slots;
    unsigned                   nslots;
    unsigned                   head;
    unsigned                   count;
    unsigned                   looked;

    size_t                     frame_cap;
    unsigned                   quit:1;
};


static void *nixcache_ingest_cctx(int level);
static int nixcache_ingest_chunk(nixcache_ingest_t *ing,
    const unsigned char *p, size_t n);
static size_t nixcache_ingest_compress(void *cctx, unsigned char *frame,
    size_t cap, const unsigned char *p, size_t n, const char **err);
static int nixcache_ingest_store(nixcache_ingest_t *ing,
    const unsigned char *digest, unsigned char *frame, size_t *csize,
    size_t usize);
static int nixcache_ingest_commit(nixcache_ingest_t *ing,
    const unsigned char *digest, const unsigned char *frame, size_t usize,
    size_t csize);
static ssize_t nixcache_ingest_read_stored(nixcache_ingest_t *ing,
    const unsigned char *digest, size_t usize, unsigned char *frame);
static nixcache_ingest_pool_t *nixcache_ingest_pool_create(
    nixcache_ingest_t *ing, unsigned n);
static void nixcache_ingest_pool_destroy(nixcache_ingest_pool_t *pool);
static void nixcache_ingest_pool_reset(nixcache_ingest_pool_t *pool);
static void *nixcache_ingest_worker(void *data);
static nixcache_ingest_slot_t *nixcache_ingest_pool_step(
    nixcache_ingest_pool_t *pool);
static void nixcache_ingest_step(nixcache_ingest_pool_t *pool,
    nixcache_ingest_slot_t *s, void *cctx);
static int nixcache_ingest_submit(nixcache_ingest_t *ing,
    const unsigned char *p, size_t n);
static int nixcache_ingest_advance(nixcache_ingest_t *ing, int wait);
static int nixcache_ingest_look(nixcache_ingest_t *ing,
    nixcache_ingest_slot_t *s, unsigned k);
static int nixcache_ingest_lookup(nixcache_ingest_t *ing,
    nixcache_ingest_slot_t *s, unsigned k, nixcache_ingest_slot_e *next);
static int nixcache_ingest_retire(nixcache_ingest_t *ing,
    nixcache_ingest_slot_t *s);
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
    ing->level = conf->level;

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

    if (ing->buf == NULL || ing->frame == NULL) {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_NOMEM, 0,
                                    "out of memory");
    }

    ing->cctx = nixcache_ingest_cctx(conf->level);

    if (ing->cctx == NULL) {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                    "zstd: cannot make a compression "
                                    "context");
    }

    return 0;
}


int
nixcache_ingest_threads(nixcache_ingest_t *ing, unsigned n)
{
    if (n == 0 || n > NIXCACHE_INGEST_THREADS_MAX) {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_PARAMS, 0,
                                    "invalid number of threads %u (1 to %d)",
                                    n, NIXCACHE_INGEST_THREADS_MAX);
    }

    if (ing->pool != NULL) {
        nixcache_ingest_pool_destroy(ing->pool);
        ing->pool = NULL;
    }

    if (n == 1) {
        return 0;
    }

    ing->pool = nixcache_ingest_pool_create(ing, n);

    return ing->pool != NULL ? 0 : -1;
}


void
nixcache_ingest_free(nixcache_ingest_t *ing)
{
    if (ing->pool != NULL) {
        nixcache_ingest_pool_destroy(ing->pool);
        ing->pool = NULL;
    }

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

    if (ing->pool != NULL) {
        /* what a failed NAR left in flight */
        nixcache_ingest_pool_reset(ing->pool);
    }

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

    while (ing->pool != NULL && ing->pool->count > 0) {
        if (nixcache_ingest_advance(ing, 1) != 0) {
            return -1;
        }
    }

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
    size_t          csize;
    ssize_t         stored;
    const char     *err;
    unsigned char   digest[NIXCACHE_SHA256_LEN];

    if (ing->pool != NULL) {
        return nixcache_ingest_submit(ing, p, n);
    }

    if (ing->nar.chunk_count == UINT32_MAX) {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                    "too many chunks in one NAR");
    }

    nixcache_sha256(digest, p, n);

    stored = nixcache_ingest_read_stored(ing, digest, n, ing->frame);

    if (stored == -1) {
        return -1;
    }

    if (stored > 0) {
        csize = (size_t) stored;

    } else {
        csize = nixcache_ingest_compress(ing->cctx, ing->frame,
                                         ing->frame_cap, p, n, &err);
        if (csize == 0) {
            return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                        "zstd: %s", err);
        }

        if (nixcache_ingest_store(ing, digest, ing->frame, &csize, n) != 0) {
            return -1;
        }
    }

    return nixcache_ingest_commit(ing, digest, ing->frame, n, csize);
}


/* One frame of the chunk: its size, or 0 with *err set. */

static size_t
nixcache_ingest_compress(void *cctx, unsigned char *frame, size_t cap,
    const unsigned char *p, size_t n, const char **err)
{
    size_t  csize;

    *err = NULL;

    csize = ZSTD_compress2(cctx, frame, cap, p, n);

    if (ZSTD_isError(csize)) {
        *err = ZSTD_getErrorName(csize);
        return 0;
    }

    if (ZSTD_getFrameContentSize(frame, csize) != n) {
        *err = "frame without content size";
        return 0;
    }

    return csize;
}


/*
 * Hands a new frame to the sink.  When a concurrent writer stored the
 * chunk first, perhaps as another frame of the same bytes, frame and
 * *csize become the stored one's: the manifest describes what is stored.
 */

static int
nixcache_ingest_store(nixcache_ingest_t *ing, const unsigned char *digest,
    unsigned char *frame, size_t *csize, size_t usize)
{
    int      rc;
    char     cid[NIXCACHE_CID_LEN];
    ssize_t  stored;

    rc = ing->sink->put(ing->sink->data, digest, frame, *csize);

    if (rc == -1) {
        nixcache_cid_encode(cid, digest);
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_SINK, errno,
                                    "cannot write chunk %.*s",
                                    NIXCACHE_CID_LEN, cid);
    }

    if (rc == 1) {
        ing->stats.new_chunks++;
        ing->stats.new_usize += usize;
        ing->stats.new_csize += *csize;
        return 0;
    }

    stored = nixcache_ingest_read_stored(ing, digest, usize, frame);

    if (stored == -1) {
        return -1;
    }

    if (stored == 0) {
        nixcache_cid_encode(cid, digest);
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_SINK, 0,
                                    "chunk %.*s vanished while being "
                                    "stored", NIXCACHE_CID_LEN, cid);
    }

    *csize = (size_t) stored;

    return 0;
}


/* A stored chunk into FileHash, the manifest and the counters. */

static int
nixcache_ingest_commit(nixcache_ingest_t *ing, const unsigned char *digest,
    const unsigned char *frame, size_t usize, size_t csize)
{
    nixcache_manifest_entry_t  e;

    nixcache_sha256_update(&ing->file_ctx, frame, csize);

    memcpy(e.chunk, digest, NIXCACHE_SHA256_LEN);
    e.usize = (uint32_t) usize;
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
 * Reads a stored chunk's frame into frame (frame_cap + 1 bytes).  Returns
 * its size, 0 when
 * the chunk is not stored, -1 on an error (a stored frame that is not one
 * zstd frame of usize bytes is one: it would make the served NAR wrong).
 */

static ssize_t
nixcache_ingest_read_stored(nixcache_ingest_t *ing,
    const unsigned char *digest, size_t usize, unsigned char *frame)
{
    char     cid[NIXCACHE_CID_LEN];
    size_t   len;
    ssize_t  n;

    n = ing->sink->read_stored(ing->sink->data, digest, frame,
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
        || nixcache_frame_shape(frame, len, usize, NULL) != NIXCACHE_FRAME_OK)
    {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_STORED, 0,
                                    "stored chunk %.*s is not one zstd "
                                    "frame of %zu bytes; remove it and "
                                    "retry", NIXCACHE_CID_LEN, cid, usize);
    }

    return n;
}


/* A compression context for new frames, or NULL. */

static void *
nixcache_ingest_cctx(int level)
{
    ZSTD_CCtx  *cctx;

    cctx = ZSTD_createCCtx();
    if (cctx == NULL) {
        return NULL;
    }

    if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel,
                                            level))
        || ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag,
                                               1))
        || ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag,
                                               1)))
    {
        ZSTD_freeCCtx(cctx);
        return NULL;
    }

    return cctx;
}


/* n - 1 workers and 2 x n slots; NULL with the error set. */

static nixcache_ingest_pool_t *
nixcache_ingest_pool_create(nixcache_ingest_t *ing, unsigned n)
{
    int                        err;
    unsigned                   i;
    nixcache_ingest_pool_t    *pool;
    nixcache_ingest_worker_t  *w;

    pool = calloc(1, sizeof(nixcache_ingest_pool_t));
    if (pool == NULL) {
        goto nomem;
    }

    if (pthread_mutex_init(&pool->mutex, NULL) != 0) {
        free(pool);
        goto nomem;
    }

    if (pthread_cond_init(&pool->work, NULL) != 0) {
        pthread_mutex_destroy(&pool->mutex);
        free(pool);
        goto nomem;
    }

    if (pthread_cond_init(&pool->done, NULL) != 0) {
        pthread_cond_destroy(&pool->work);
        pthread_mutex_destroy(&pool->mutex);
        free(pool);
        goto nomem;
    }

    pool->frame_cap = ing->frame_cap;
    pool->nslots = NIXCACHE_INGEST_SLOTS * n;

    pool->slots = calloc(pool->nslots, sizeof(nixcache_ingest_slot_t));
    pool->workers = calloc(n - 1, sizeof(nixcache_ingest_worker_t));

    if (pool->slots == NULL || pool->workers == NULL) {
        nixcache_ingest_pool_destroy(pool);
        goto nomem;
    }

    for (i = 0; i < pool->nslots; i++) {
        pool->slots[i].data = malloc(ing->chunker.max);
        pool->slots[i].frame = malloc(ing->frame_cap + 1);

        if (pool->slots[i].data == NULL || pool->slots[i].frame == NULL) {
            nixcache_ingest_pool_destroy(pool);
            goto nomem;
        }
    }

    for (i = 0; i < n - 1; i++) {
        w = &pool->workers[i];
        w->pool = pool;
        w->cctx = nixcache_ingest_cctx(ing->level);

        if (w->cctx == NULL) {
            nixcache_ingest_pool_destroy(pool);
            (void) nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                        "zstd: cannot make a compression "
                                        "context");
            return NULL;
        }

        err = pthread_create(&w->thread, NULL, nixcache_ingest_worker, w);

        if (err != 0) {
            ZSTD_freeCCtx(w->cctx);
            w->cctx = NULL;
            nixcache_ingest_pool_destroy(pool);
            (void) nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL,
                                        err, "cannot start a thread");
            return NULL;
        }

        pool->nworkers++;
    }

    return pool;

nomem:

    (void) nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_NOMEM, 0,
                                "out of memory");
    return NULL;
}


static void
nixcache_ingest_pool_destroy(nixcache_ingest_pool_t *pool)
{
    unsigned  i;

    pthread_mutex_lock(&pool->mutex);
    pool->quit = 1;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->mutex);

    for (i = 0; i < pool->nworkers; i++) {
        pthread_join(pool->workers[i].thread, NULL);
        ZSTD_freeCCtx(pool->workers[i].cctx);
    }

    if (pool->slots != NULL) {
        for (i = 0; i < pool->nslots; i++) {
            free(pool->slots[i].data);
            free(pool->slots[i].frame);
        }
    }

    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->work);
    pthread_mutex_destroy(&pool->mutex);

    free(pool->workers);
    free(pool->slots);
    free(pool);
}


/* Forgets every chunk in flight, once no worker is busy with one. */

static void
nixcache_ingest_pool_reset(nixcache_ingest_pool_t *pool)
{
    unsigned                 i;
    nixcache_ingest_slot_t  *s;

    pthread_mutex_lock(&pool->mutex);

    for (i = 0; i < pool->nslots; i++) {
        s = &pool->slots[i];

        while (s->state == NIXCACHE_SLOT_HASHING
               || s->state == NIXCACHE_SLOT_COMPRESSING)
        {
            pthread_cond_wait(&pool->done, &pool->mutex);
        }

        s->state = NIXCACHE_SLOT_FREE;
    }

    pool->head = 0;
    pool->count = 0;
    pool->looked = 0;

    pthread_mutex_unlock(&pool->mutex);
}


static void *
nixcache_ingest_worker(void *data)
{
    nixcache_ingest_worker_t *w = data;

    nixcache_ingest_slot_t  *s;
    nixcache_ingest_pool_t  *pool;

    pool = w->pool;

    pthread_mutex_lock(&pool->mutex);

    for ( ;; ) {
        s = NULL;

        while (!pool->quit) {
            s = nixcache_ingest_pool_step(pool);
            if (s != NULL) {
                break;
            }

            pthread_cond_wait(&pool->work, &pool->mutex);
        }

        if (pool->quit) {
            break;
        }

        nixcache_ingest_step(pool, s, w->cctx);
    }

    pthread_mutex_unlock(&pool->mutex);

    return NULL;
}


/* The oldest chunk with a step to do, marked busy (mutex held). */

static nixcache_ingest_slot_t *
nixcache_ingest_pool_step(nixcache_ingest_pool_t *pool)
{
    unsigned                 i;
    nixcache_ingest_slot_t  *s;

    for (i = 0; i < pool->count; i++) {
        s = &pool->slots[(pool->head + i) % pool->nslots];

        if (s->state == NIXCACHE_SLOT_HASH) {
            s->state = NIXCACHE_SLOT_HASHING;
            return s;
        }

        if (s->state == NIXCACHE_SLOT_COMPRESS) {
            s->state = NIXCACHE_SLOT_COMPRESSING;
            return s;
        }
    }

    return NULL;
}


/*
 * Runs a busy slot's step with the mutex released; called and returns
 * with it held.  A busy slot is touched by its step only.
 */

static void
nixcache_ingest_step(nixcache_ingest_pool_t *pool, nixcache_ingest_slot_t *s,
    void *cctx)
{
    nixcache_ingest_slot_e  state;

    pthread_mutex_unlock(&pool->mutex);

    if (s->state == NIXCACHE_SLOT_HASHING) {
        nixcache_sha256(s->digest, s->data, s->usize);
        state = NIXCACHE_SLOT_HASHED;

    } else {
        s->csize = nixcache_ingest_compress(cctx, s->frame, pool->frame_cap,
                                            s->data, s->usize, &s->zerr);
        state = s->csize ? NIXCACHE_SLOT_COMPRESSED : NIXCACHE_SLOT_FAILED;
    }

    pthread_mutex_lock(&pool->mutex);

    s->state = state;

    pthread_cond_signal(&pool->done);
}


/* A chunk into the next free slot, waiting for one if need be. */

static int
nixcache_ingest_submit(nixcache_ingest_t *ing, const unsigned char *p,
    size_t n)
{
    nixcache_ingest_pool_t  *pool;
    nixcache_ingest_slot_t  *s;

    pool = ing->pool;

    /* head, count and looked change in this thread only */

    if ((uint64_t) ing->nar.chunk_count + pool->count >= UINT32_MAX) {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                    "too many chunks in one NAR");
    }

    while (pool->count == pool->nslots) {
        if (nixcache_ingest_advance(ing, 1) != 0) {
            return -1;
        }
    }

    s = &pool->slots[(pool->head + pool->count) % pool->nslots];

    memcpy(s->data, p, n);
    s->usize = n;

    pthread_mutex_lock(&pool->mutex);

    s->state = NIXCACHE_SLOT_HASH;
    pool->count++;

    pthread_cond_signal(&pool->work);
    pthread_mutex_unlock(&pool->mutex);

    return nixcache_ingest_advance(ing, 0);
}


/*
 * The caller's part: looks up hashed chunks in chunk order, stores and
 * commits the oldest chunks once they are ready.  With wait, returns only
 * after at least one chunk left the ring, doing steps itself meanwhile.
 * Sink calls are made with the mutex released: no worker touches a slot
 * in the states the caller handles.
 */

static int
nixcache_ingest_advance(nixcache_ingest_t *ing, int wait)
{
    int                      rc, progress, retired;
    nixcache_ingest_pool_t  *pool;
    nixcache_ingest_slot_t  *s;

    pool = ing->pool;
    retired = 0;

    pthread_mutex_lock(&pool->mutex);

    for ( ;; ) {
        progress = 0;

        while (pool->looked < pool->count) {
            s = &pool->slots[(pool->head + pool->looked) % pool->nslots];

            if (s->state != NIXCACHE_SLOT_HASHED) {
                break;
            }

            if (nixcache_ingest_look(ing, s, pool->looked) != 0) {
                goto failed;
            }

            pool->looked++;
            progress = 1;
        }

        while (pool->count > 0) {
            s = &pool->slots[pool->head];

            if (s->state == NIXCACHE_SLOT_DEFER) {
                if (nixcache_ingest_look(ing, s, 0) != 0) {
                    goto failed;
                }

                if (s->state == NIXCACHE_SLOT_COMPRESS) {
                    break;
                }
            }

            if (s->state != NIXCACHE_SLOT_COMPRESSED
                && s->state != NIXCACHE_SLOT_STORED
                && s->state != NIXCACHE_SLOT_FAILED)
            {
                break;
            }

            pthread_mutex_unlock(&pool->mutex);
            rc = nixcache_ingest_retire(ing, s);
            pthread_mutex_lock(&pool->mutex);

            if (rc != 0) {
                goto failed;
            }

            s->state = NIXCACHE_SLOT_FREE;
            pool->head = (pool->head + 1) % pool->nslots;
            pool->count--;
            pool->looked--;
            progress = 1;
            retired = 1;
        }

        if (!wait || retired) {
            break;
        }

        if (progress) {
            continue;
        }

        /* nothing for the caller to do: a step of a worker's, or sleep */

        s = nixcache_ingest_pool_step(pool);

        if (s != NULL) {
            nixcache_ingest_step(pool, s, ing->cctx);
            continue;
        }

        pthread_cond_wait(&pool->done, &pool->mutex);
    }

    pthread_mutex_unlock(&pool->mutex);

    return 0;

failed:

    pthread_mutex_unlock(&pool->mutex);

    return -1;
}


/*
 * nixcache_ingest_lookup() of the k-th chunk in flight, called and
 * returning with the mutex held, released around the sink's call; its
 * next state is set, and a chunk to compress wakes a worker.
 */

static int
nixcache_ingest_look(nixcache_ingest_t *ing, nixcache_ingest_slot_t *s,
    unsigned k)
{
    int                     rc;
    nixcache_ingest_slot_e  next;

    pthread_mutex_unlock(&ing->pool->mutex);
    rc = nixcache_ingest_lookup(ing, s, k, &next);
    pthread_mutex_lock(&ing->pool->mutex);

    if (rc != 0) {
        return -1;
    }

    s->state = next;

    if (next == NIXCACHE_SLOT_COMPRESS) {
        pthread_cond_signal(&ing->pool->work);
    }

    return 0;
}


/*
 * Looks up the k-th chunk in flight; *next gets its next state, which the
 * caller sets with the mutex held (workers read every slot's state).  One
 * equal to an earlier chunk still in flight waits until that one is stored
 * (DEFER, looked up again as the oldest, k = 0): the serial pipeline would
 * find it stored by then.
 */

static int
nixcache_ingest_lookup(nixcache_ingest_t *ing, nixcache_ingest_slot_t *s,
    unsigned k, nixcache_ingest_slot_e *next)
{
    unsigned                 i;
    ssize_t                  stored;
    nixcache_ingest_pool_t  *pool;

    pool = ing->pool;

    for (i = 0; i < k; i++) {
        if (memcmp(pool->slots[(pool->head + i) % pool->nslots].digest,
                   s->digest, NIXCACHE_SHA256_LEN)
            == 0)
        {
            *next = NIXCACHE_SLOT_DEFER;
            return 0;
        }
    }

    stored = nixcache_ingest_read_stored(ing, s->digest, s->usize, s->frame);

    if (stored == -1) {
        return -1;
    }

    if (stored > 0) {
        s->csize = (size_t) stored;
        *next = NIXCACHE_SLOT_STORED;
        return 0;
    }

    *next = NIXCACHE_SLOT_COMPRESS;

    return 0;
}


/* The oldest chunk, ready: stored if new, then committed. */

static int
nixcache_ingest_retire(nixcache_ingest_t *ing, nixcache_ingest_slot_t *s)
{
    if (s->state == NIXCACHE_SLOT_FAILED) {
        return nixcache_ingest_fail(ing, NIXCACHE_INGEST_ERR_INTERNAL, 0,
                                    "zstd: %s", s->zerr);
    }

    if (s->state == NIXCACHE_SLOT_COMPRESSED
        && nixcache_ingest_store(ing, s->digest, s->frame, &s->csize,
                                 s->usize)
           != 0)
    {
        return -1;
    }

    return nixcache_ingest_commit(ing, s->digest, s->frame, s->usize,
                                  s->csize);
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
