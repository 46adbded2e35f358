/*
 * The NAR response's chunk source: manifest entry i's share of the body
 * as a buffer in the output ring (ngx_http_nixcache_nar.c), or "later"
 * while it is fetched.  For .nar.zst the chunk files are queued back to
 * back as file buffers, so the write filter uses sendfile; for .nar each
 * chunk is read, decompressed and checked against its ID before any of
 * its bytes is queued.
 *
 * With an S3 tier (nixcache_s3_endpoint), a chunk missing on disk is
 * fetched from S3 into one of K fetch slots allocated once per request
 * (nixcache_s3_prefetch); from then on, the next chunks of the range that
 * are not on disk are fetched ahead, K at a time, while earlier ones are
 * sent: output stays in manifest order.  A fetched frame is checked like
 * a .nar chunk (exact size, one frame, content size, SHA-256 = chunk ID)
 * in the event loop, before any of its bytes is queued; .nar.zst sends it
 * from memory.  A checked frame is written through to the disk tier by a
 * thread pool task with its own copy (bounded per worker), so a slot is
 * reusable as soon as its bytes are sent.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_nixcache.h"
#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif

#include "nixcache_chunkstore.h"
#include "nixcache_cid.h"
#include "nixcache_frame.h"
#include "nixcache_hash.h"


/* smallest chunk buffer: above the pool's small size, so ngx_pfree works */
#define NGX_HTTP_NIXCACHE_NAR_MIN_BUF     (64 * 1024)

/* write-through copies in flight per worker; beyond, a chunk is not kept */
#define NGX_HTTP_NIXCACHE_NAR_WRITE_MAX   (64 * 1024 * 1024)


typedef struct {
    ngx_http_nixcache_main_conf_t  *nmcf;
    u_char                     *dir;       /* NUL-terminated */
    u_char                     *frame;
    size_t                      len;
    u_char                      digest[NIXCACHE_SHA256_LEN];
    int                         rc;
    ngx_err_t                   err;
    ngx_log_t                  *log;
} ngx_http_nixcache_nar_write_t;


static ngx_int_t ngx_http_nixcache_nar_open(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_file_t *file,
    nixcache_manifest_entry_t *e);
static ngx_int_t ngx_http_nixcache_nar_decompress(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_http_nixcache_nar_slot_t *slot,
    nixcache_manifest_entry_t *e);
static const char *ngx_http_nixcache_nar_check(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, u_char *in, size_t len,
    nixcache_manifest_entry_t *e, u_char *out);
static ngx_int_t ngx_http_nixcache_nar_s3_get(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *e,
    ngx_http_nixcache_nar_fetch_t **fsp);
static ngx_int_t ngx_http_nixcache_nar_s3_start(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_http_nixcache_nar_fetch_t *fs,
    ngx_uint_t index, nixcache_manifest_entry_t *e);
static ngx_int_t ngx_http_nixcache_nar_s3_use(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_http_nixcache_nar_fetch_t *fs,
    ngx_http_nixcache_nar_slot_t *slot);
static void ngx_http_nixcache_nar_s3_handler(ngx_http_nixcache_s3_fetch_t *f);
static void ngx_http_nixcache_nar_write_through(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_http_nixcache_nar_fetch_t *fs);
#if (NGX_THREADS)
static void ngx_http_nixcache_nar_write_thread(void *data, ngx_log_t *log);
static void ngx_http_nixcache_nar_write_done(ngx_event_t *ev);
#endif
static void ngx_http_nixcache_nar_chunk_error(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *e,
    ngx_err_t err, const char *what);
static ngx_int_t ngx_http_nixcache_nar_reserve(ngx_http_request_t *r,
    u_char **p, size_t *size, size_t need);


/*
 * Queues bytes [lo, hi) of one chunk's share of the body in a free slot:
 * from the disk tier, or from S3 when it is not there.  NGX_AGAIN: its
 * S3 GET is in flight; NGX_BUSY: every fetch slot holds a frame being
 * sent; NGX_ERROR with ctx->fail_status set or 0 (502).
 */

ngx_int_t
ngx_http_nixcache_nar_chunk(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *e,
    off_t lo, off_t hi)
{
    ngx_int_t                       rc;
    ngx_buf_t                      *b;
    ngx_http_nixcache_nar_slot_t   *slot;
    ngx_http_nixcache_nar_fetch_t  *fs;

    slot = &ctx->slots[(ctx->head + ctx->used) % ctx->nslots];
    b = &slot->buf;

    fs = ngx_http_nixcache_nar_s3_find(ctx, ctx->index);

    if (fs == NULL) {
        rc = ctx->zst ? ngx_http_nixcache_nar_open(r, ctx, &slot->file, e)
                      : ngx_http_nixcache_nar_decompress(r, ctx, slot, e);

        if (rc == NGX_DECLINED) {
            rc = ngx_http_nixcache_nar_s3_get(r, ctx, e, &fs);
        }

        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (ctx->fetches != NULL) {
        ngx_http_nixcache_nar_prefetch(r, ctx, e);
    }

    ngx_memzero(b, sizeof(ngx_buf_t));
    slot->fetch = NULL;

    if (fs != NULL) {
        if (fs->state == NGX_HTTP_NIXCACHE_FETCH_BUSY) {
            return NGX_AGAIN;
        }

        if (ngx_http_nixcache_nar_s3_use(r, ctx, fs, slot) != NGX_OK) {
            return NGX_ERROR;
        }

        b->memory = 1;

        if (ctx->zst) {
            fs->state = NGX_HTTP_NIXCACHE_FETCH_SENDING;
            slot->fetch = fs;
            b->start = fs->mem;
            b->end = fs->mem + fs->mem_size;
            b->pos = fs->mem + lo;
            b->last = fs->mem + hi;

        } else {
            fs->state = NGX_HTTP_NIXCACHE_FETCH_FREE;
            b->start = slot->mem;
            b->end = slot->mem + slot->mem_size;
            b->pos = slot->mem + lo;
            b->last = slot->mem + hi;
        }

    } else if (ctx->zst) {
        b->in_file = 1;
        b->file = &slot->file;
        b->file_pos = lo;
        b->file_last = hi;

    } else {
        b->memory = 1;
        b->start = slot->mem;
        b->end = slot->mem + slot->mem_size;
        b->pos = slot->mem + lo;
        b->last = slot->mem + hi;
    }

    b->tag = (ngx_buf_tag_t) &ngx_http_nixcache_nar_handler;

    slot->chain.next = NULL;
    *ctx->last_out = &slot->chain;
    ctx->last_out = &slot->chain.next;

    ctx->used++;

    return NGX_OK;
}


/*
 * Opens a chunk file and checks it is the frame the manifest names, as far
 * as can be told without reading it: a regular file of csize bytes.  The
 * sendfile path cannot hash what it does not read; .nar checks the
 * content (see ngx_http_nixcache_nar_decompress).
 */

static ngx_int_t
ngx_http_nixcache_nar_open(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_file_t *file,
    nixcache_manifest_entry_t *e)
{
    u_char           *name;
    ngx_err_t         err;
    ngx_file_info_t   fi;

    name = file->name.data;

    nixcache_chunk_relpath((char *) name + ctx->dir_len, e->chunk);
    file->name.len = ctx->dir_len + NIXCACHE_CHUNK_RELPATH_LEN;
    name[file->name.len] = '\0';

    if (file->name.data != ctx->path) {
        ngx_memcpy(ctx->path, name, file->name.len + 1);
    }

    /* a chunk file is never a symlink: the writers make none */
    file->fd = ngx_open_file(name, NGX_FILE_RDONLY|O_NOFOLLOW, NGX_FILE_OPEN,
                             0);

    if (file->fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        if (err == NGX_ENOENT && ctx->s3 != NULL) {
            /* not (or no longer) in the disk tier: from S3 */
            return NGX_DECLINED;
        }

        ngx_http_nixcache_nar_chunk_error(r, ctx, e, err,
                                          err == NGX_ENOENT ? "is missing"
                                          : "cannot be opened");
        return NGX_ERROR;
    }

    if (ngx_fd_info(file->fd, &fi) == NGX_FILE_ERROR) {
        ngx_http_nixcache_nar_chunk_error(r, ctx, e, ngx_errno,
                                          "cannot be examined");
        goto failed;
    }

    if (!ngx_is_file(&fi) || ngx_file_size(&fi) != (off_t) e->csize) {
        ngx_http_nixcache_nar_chunk_error(r, ctx, e, 0,
                                          "has the wrong size");
        goto failed;
    }

    file->offset = 0;

    ngx_http_nixcache_evict_touch(r, file->fd, &fi);
    ngx_http_nixcache_metrics_chunk(r, 0, e->csize);
    ctx->chunks_sent[0]++;

    return NGX_OK;

failed:

    if (ngx_close_file(file->fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", name);
    }

    file->fd = NGX_INVALID_FILE;

    return NGX_ERROR;
}


/*
 * Reads a whole chunk, decompresses it into the slot and checks it: one
 * frame of exactly csize bytes, usize bytes out, SHA-256 equal to the
 * chunk ID.  Only then may any of its bytes be sent.
 */

static ngx_int_t
ngx_http_nixcache_nar_decompress(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_http_nixcache_nar_slot_t *slot,
    nixcache_manifest_entry_t *e)
{
    ssize_t      got;
    ngx_int_t    rc;
    const char  *what;

    if (ngx_http_nixcache_nar_reserve(r, &ctx->in, &ctx->in_size, e->csize)
        != NGX_OK
        || ngx_http_nixcache_nar_reserve(r, &slot->mem, &slot->mem_size,
                                         e->usize)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_nixcache_nar_open(r, ctx, &ctx->file, e);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = NGX_ERROR;

    got = ngx_read_file(&ctx->file, ctx->in, e->csize, 0);

    if (got != (ssize_t) e->csize) {
        ngx_http_nixcache_nar_chunk_error(r, ctx, e, 0,
                                          "cannot be read whole");
        goto done;
    }

    what = ngx_http_nixcache_nar_check(r, ctx, ctx->in, e->csize, e,
                                       slot->mem);
    if (what != NULL) {
        ngx_http_nixcache_nar_chunk_error(r, ctx, e, 0, what);
        goto done;
    }

    rc = NGX_OK;

done:

    if (ngx_close_file(ctx->file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", ctx->path);
    }

    ctx->file.fd = NGX_INVALID_FILE;

    return rc;
}


/*
 * Checks a compressed frame against its manifest entry: one zstd frame of
 * exactly csize bytes, usize bytes of content into out (usize bytes),
 * SHA-256 equal to the chunk ID.  NULL, or what is wrong.
 */

static const char *
ngx_http_nixcache_nar_check(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, u_char *in, size_t len,
    nixcache_manifest_entry_t *e, u_char *out)
{
    nixcache_frame_e  rc;

    if (len != e->csize) {
        return "has the wrong size";
    }

    if (ctx->dctx == NULL) {
        ctx->dctx = ZSTD_createDCtx();
        if (ctx->dctx == NULL) {
            return "cannot be decompressed: ZSTD_createDCtx() failed";
        }
    }

    rc = nixcache_frame_check(ctx->dctx, in, len, e->usize, e->chunk, out,
                              e->usize, NULL);

    return rc == NIXCACHE_FRAME_OK ? NULL : nixcache_frame_strerror(rc);
}


/*
 * The fetch slot holding manifest entry index, or NULL.  With an index no
 * entry has (NGX_MAX_UINT32_VALUE): a free slot, or NULL.
 */

ngx_http_nixcache_nar_fetch_t *
ngx_http_nixcache_nar_s3_find(ngx_http_nixcache_nar_ctx_t *ctx,
    ngx_uint_t index)
{
    ngx_uint_t                      i;
    ngx_http_nixcache_nar_fetch_t  *fs;

    for (i = 0; i < ctx->nfetches; i++) {
        fs = &ctx->fetches[i];

        if (index == NGX_MAX_UINT32_VALUE) {
            if (fs->state == NGX_HTTP_NIXCACHE_FETCH_FREE) {
                return fs;
            }

            continue;
        }

        if (fs->state != NGX_HTTP_NIXCACHE_FETCH_FREE && fs->index == index) {
            return fs;
        }
    }

    return NULL;
}


/*
 * The chunk at ctx->index is not on disk: its GET starts in a free fetch
 * slot, or in one taken from the furthest prefetch (a chunk evicted after
 * the prefetch looked at it).  The slots are made at the first miss.
 */

static ngx_int_t
ngx_http_nixcache_nar_s3_get(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *e,
    ngx_http_nixcache_nar_fetch_t **fsp)
{
    ngx_uint_t                      i;
    ngx_http_nixcache_nar_fetch_t  *fs, *far;

    if (ctx->fetches == NULL) {
        ctx->nfetches = ctx->s3->prefetch;
        ctx->fetches = ngx_pcalloc(r->pool,
                                   ctx->nfetches
                                   * sizeof(ngx_http_nixcache_nar_fetch_t));
        if (ctx->fetches == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < ctx->nfetches; i++) {
            fs = &ctx->fetches[i];
            fs->r = r;
            fs->f.conf = ctx->s3;
            fs->f.log = r->connection->log;
            fs->f.handler = ngx_http_nixcache_nar_s3_handler;
            fs->f.data = fs;
        }

        ctx->probed = ctx->index + 1;
        ctx->probe_offset = ctx->offset + (ctx->zst ? e->csize : e->usize);
    }

    fs = ngx_http_nixcache_nar_s3_find(ctx, NGX_MAX_UINT32_VALUE);

    if (fs == NULL) {
        far = NULL;

        for (i = 0; i < ctx->nfetches; i++) {
            fs = &ctx->fetches[i];

            if (fs->state != NGX_HTTP_NIXCACHE_FETCH_SENDING
                && (far == NULL || fs->index > far->index))
            {
                far = fs;
            }
        }

        if (far == NULL) {
            return NGX_BUSY;
        }

        ngx_http_nixcache_s3_cancel(&far->f);
        far->state = NGX_HTTP_NIXCACHE_FETCH_FREE;
        fs = far;
    }

    if (ngx_http_nixcache_nar_s3_start(r, ctx, fs, ctx->index, e) != NGX_OK) {
        return NGX_ERROR;
    }

    *fsp = fs;

    return NGX_OK;
}


static ngx_int_t
ngx_http_nixcache_nar_s3_start(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_http_nixcache_nar_fetch_t *fs,
    ngx_uint_t index, nixcache_manifest_entry_t *e)
{
    if (ngx_http_nixcache_nar_reserve(r, &fs->mem, &fs->mem_size, e->csize)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    fs->index = index;
    fs->e = *e;
    fs->f.buf = fs->mem;
    fs->f.cap = e->csize;
    fs->f.csize = e->csize;
    ngx_memcpy(fs->f.digest, e->chunk, NIXCACHE_SHA256_LEN);

    if (ngx_http_nixcache_s3_start(&fs->f) != NGX_OK) {
        /* reported when the chunk is reached */
        fs->f.status = NGX_HTTP_SERVICE_UNAVAILABLE;
        fs->state = NGX_HTTP_NIXCACHE_FETCH_DONE;
        return NGX_OK;
    }

    fs->state = NGX_HTTP_NIXCACHE_FETCH_BUSY;

    return NGX_OK;
}


/*
 * Starts GETs for the chunks after ctx->index that the body needs and the
 * disk tier lacks, up to K entries ahead, as long as a fetch slot is free
 * and the current manifest window reaches.  Each entry is looked at once.
 * cur is the entry at ctx->index (NULL when it was already handled).
 */

void
ngx_http_nixcache_nar_prefetch(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *cur)
{
    int                             has;
    off_t                           size;
    ngx_http_nixcache_nar_fetch_t  *fs;
    nixcache_manifest_entry_t       e;

    if (ctx->fetches == NULL) {
        return;
    }

    if (ctx->probed <= ctx->index) {
        if (cur == NULL) {
            return;
        }

        ctx->probed = ctx->index + 1;
        ctx->probe_offset = ctx->offset + (ctx->zst ? cur->csize : cur->usize);
    }

    while (ctx->probed < ctx->index + ctx->nfetches
           && ctx->probed < ctx->window_first + ctx->window_count
           && ctx->probed < ctx->header.chunk_count
           && ctx->probe_offset < ctx->end)
    {
        nixcache_manifest_entry_decode(&e,
              ctx->entries
              + (ctx->probed - ctx->window_first)
                * NIXCACHE_MANIFEST_ENTRY_LEN);

        if (e.usize == 0 || e.csize == 0
            || e.usize > NIXCACHE_CHUNK_MAX_LIMIT
            || e.csize > ZSTD_compressBound(NIXCACHE_CHUNK_MAX_LIMIT))
        {
            /* the main loop reports it when it gets there */
            return;
        }

        size = ctx->zst ? e.csize : e.usize;

        if (ctx->probe_offset + size > ctx->start) {

            fs = ngx_http_nixcache_nar_s3_find(ctx, NGX_MAX_UINT32_VALUE);
            if (fs == NULL) {
                return;
            }

            has = nixcache_chunkstore_has((const char *) ctx->chunks,
                                          e.chunk);

            if (has != 1
                && ngx_http_nixcache_nar_s3_start(r, ctx, fs, ctx->probed,
                                                  &e)
                   != NGX_OK)
            {
                return;
            }
        }

        ctx->probed++;
        ctx->probe_offset += size;
    }
}


/*
 * A fetch slot's answer, for the chunk at ctx->index: checked, then
 * written through; .nar gets the content in the output slot.
 */

static ngx_int_t
ngx_http_nixcache_nar_s3_use(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_http_nixcache_nar_fetch_t *fs,
    ngx_http_nixcache_nar_slot_t *slot)
{
    u_char                     *out;
    const char                 *what;
    nixcache_manifest_entry_t  *e;

    e = &fs->e;

    if (fs->f.status != NGX_OK) {
        ngx_http_nixcache_s3_log_error(&fs->f, r->connection->log, NULL);
        ctx->fail_status = fs->f.status;
        fs->state = NGX_HTTP_NIXCACHE_FETCH_FREE;
        return NGX_ERROR;
    }

    if (ctx->zst) {
        if (ngx_http_nixcache_nar_reserve(r, &ctx->scratch,
                                          &ctx->scratch_size, e->usize)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        out = ctx->scratch;

    } else {
        if (ngx_http_nixcache_nar_reserve(r, &slot->mem, &slot->mem_size,
                                          e->usize)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        out = slot->mem;
    }

    what = ngx_http_nixcache_nar_check(r, ctx, fs->mem, fs->f.len, e, out);

    if (what != NULL) {
        ngx_http_nixcache_s3_log_error(&fs->f, r->connection->log, what);
        ngx_http_nixcache_metrics_s3(NGX_HTTP_NIXCACHE_METRICS_S3_CORRUPT);
        ctx->fail_status = NGX_HTTP_BAD_GATEWAY;
        fs->state = NGX_HTTP_NIXCACHE_FETCH_FREE;
        return NGX_ERROR;
    }

    ngx_http_nixcache_metrics_chunk(r, 1, fs->f.len);
    ctx->chunks_sent[1]++;
    ngx_http_nixcache_nar_write_through(r, ctx, fs);

    return NGX_OK;
}


static void
ngx_http_nixcache_nar_s3_handler(ngx_http_nixcache_s3_fetch_t *f)
{
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_http_nixcache_nar_ctx_t    *ctx;
    ngx_http_nixcache_nar_fetch_t  *fs;

    fs = f->data;
    r = fs->r;
    c = r->connection;

    fs->state = NGX_HTTP_NIXCACHE_FETCH_DONE;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_NAR);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "nixcache nar: S3 answer for entry %ui: %i, %uz bytes",
                   fs->index, f->status, f->len);

    if (ctx == NULL || !ctx->s3_waiting || fs->index != ctx->index) {
        return;
    }

    ctx->s3_waiting = 0;

    ngx_http_nixcache_nar_run(r, ctx);
    ngx_http_run_posted_requests(c);
}


void
ngx_http_nixcache_nar_s3_stop(ngx_http_nixcache_nar_ctx_t *ctx)
{
    ngx_uint_t  i;

    ctx->s3_waiting = 0;

    for (i = 0; i < ctx->nfetches; i++) {
        ngx_http_nixcache_s3_cancel(&ctx->fetches[i].f);
    }
}


/*
 * Stores a checked frame in the disk tier off the event loop: a thread
 * pool task with its own copy, so the fetch slot is free once sent.  The
 * copies in flight are bounded per worker; beyond, and without threads,
 * the chunk is simply not kept (it is fetched again next time).
 *
 * The disk tier's size limit is kept by ngx_http_nixcache_evict.c, which
 * walks the directory: nothing to account here.
 */

static void
ngx_http_nixcache_nar_write_through(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_http_nixcache_nar_fetch_t *fs)
{
#if (NGX_THREADS)
    size_t                           dlen, size;
    ngx_thread_task_t               *task;
    ngx_http_nixcache_nar_write_t   *w;
    ngx_http_nixcache_main_conf_t   *nmcf;

    nmcf = ngx_http_get_module_main_conf(r, ngx_http_nixcache_module);

    if (nmcf->s3_write_bytes + fs->f.len > NGX_HTTP_NIXCACHE_NAR_WRITE_MAX) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "nixcache nar: write-through skipped, queue full");
        return;
    }

    dlen = ngx_strlen(ctx->chunks);
    size = sizeof(ngx_thread_task_t) + sizeof(ngx_http_nixcache_nar_write_t)
           + dlen + 1 + fs->f.len;

    task = ngx_alloc(size, r->connection->log);
    if (task == NULL) {
        return;
    }

    ngx_memzero(task, sizeof(ngx_thread_task_t)
                      + sizeof(ngx_http_nixcache_nar_write_t));

    w = (ngx_http_nixcache_nar_write_t *) (task + 1);
    w->nmcf = nmcf;
    w->dir = (u_char *) (w + 1);
    ngx_memcpy(w->dir, ctx->chunks, dlen + 1);
    w->frame = w->dir + dlen + 1;
    w->len = fs->f.len;
    ngx_memcpy(w->frame, fs->mem, w->len);
    ngx_memcpy(w->digest, fs->e.chunk, NIXCACHE_SHA256_LEN);
    w->log = ngx_cycle->log;

    task->ctx = w;
    task->handler = ngx_http_nixcache_nar_write_thread;
    task->event.handler = ngx_http_nixcache_nar_write_done;
    task->event.data = task;
    task->event.log = ngx_cycle->log;

    if (ngx_thread_task_post(ctx->s3->thread_pool, task) != NGX_OK) {
        ngx_free(task);
        return;
    }

    nmcf->s3_write_bytes += w->len;
#endif
}


#if (NGX_THREADS)

static void
ngx_http_nixcache_nar_write_thread(void *data, ngx_log_t *log)
{
    ngx_http_nixcache_nar_write_t *w = data;

    w->rc = nixcache_chunkstore_put((const char *) w->dir, w->digest,
                                    w->frame, w->len);
    w->err = (w->rc == 0) ? 0 : ngx_errno;
}


static void
ngx_http_nixcache_nar_write_done(ngx_event_t *ev)
{
    ngx_thread_task_t  *task = ev->data;

    u_char                         cid[NIXCACHE_CID_LEN];
    ngx_http_nixcache_nar_write_t *w;

    w = task->ctx;

    w->nmcf->s3_write_bytes -= w->len;

    if (w->rc != 0) {
        nixcache_cid_encode((char *) cid, w->digest);
        ngx_log_error(NGX_LOG_ERR, w->log, w->err,
                      "nixcache: chunk %*s from S3 not written to \"%s\"",
                      (size_t) NIXCACHE_CID_LEN, cid, w->dir);
    }

    ngx_free(task);
}

#endif


static void
ngx_http_nixcache_nar_chunk_error(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *e,
    ngx_err_t err, const char *what)
{
    u_char  cid[NIXCACHE_CID_LEN];

    nixcache_cid_encode((char *) cid, e->chunk);

    ngx_log_error(NGX_LOG_ERR, r->connection->log, err,
                  "nixcache: chunk %*s of manifest \"%V\" %s: \"%s\"",
                  (size_t) NIXCACHE_CID_LEN, cid, &ctx->key, what, ctx->path);
}


/*
 * Grows a buffer that is reused for every chunk.  Only a larger chunk than
 * any before makes it grow, so it is replaced at most a few times; the
 * sizes are above the pool's small limit, so the old one is really freed.
 */

static ngx_int_t
ngx_http_nixcache_nar_reserve(ngx_http_request_t *r, u_char **p,
    size_t *size, size_t need)
{
    size_t  n;

    if (*size >= need) {
        return NGX_OK;
    }

    if (*p != NULL) {
        ngx_pfree(r->pool, *p);
        *p = NULL;
        *size = 0;
    }

    n = ngx_max(NGX_HTTP_NIXCACHE_NAR_MIN_BUF, need);
    n = ngx_align(n, NGX_HTTP_NIXCACHE_NAR_MIN_BUF);

    *p = ngx_palloc(r->pool, n);
    if (*p == NULL) {
        return NGX_ERROR;
    }

    *size = n;

    return NGX_OK;
}
