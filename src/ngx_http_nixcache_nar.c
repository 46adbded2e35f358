/*
 * GET/HEAD /nar/<NarHash>.nar.zst and /nar/<NarHash>.nar.
 *
 * The manifest is read from Redis in windows of nixcache_manifest_window
 * entries (GETRANGE), copied into one buffer per request.  For .nar.zst the
 * chunk files are queued back to back as file buffers, so the write filter
 * uses sendfile; for .nar each chunk is read, decompressed and checked
 * against its ID before any of its bytes is queued.  Buffers live in a
 * small fixed ring reused for the whole response: memory per request does
 * not depend on the size of the NAR or on its number of chunks.
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
 *
 * Errors before the header is sent become a status (404 no manifest, 502
 * broken manifest or chunk or a bad S3 answer, 503 Redis or S3
 * unreachable, 504 S3 timed out); after it, the connection is cut so
 * the client sees a short body, never a complete-looking wrong one.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <zstd.h>

#include "ngx_http_nixcache.h"
#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif

#include "nixcache_chunkstore.h"
#include "nixcache_cid.h"
#include "nixcache_hash.h"
#include "nixcache_manifest.h"


/* file buffers in flight for .nar.zst: open fds per request */
#define NGX_HTTP_NIXCACHE_NAR_FILE_SLOTS  8

/* decompressed chunks in flight for .nar: one being sent, one being made */
#define NGX_HTTP_NIXCACHE_NAR_MEM_SLOTS   2

/* bytes queued per event loop turn before yielding to other connections */
#define NGX_HTTP_NIXCACHE_NAR_BUDGET      (1024 * 1024)

/* what a chunk costs the budget besides its bytes (open, fstat, close) */
#define NGX_HTTP_NIXCACHE_NAR_CHUNK_COST  4096

/* smallest chunk buffer: above the pool's small size, so ngx_pfree works */
#define NGX_HTTP_NIXCACHE_NAR_MIN_BUF     (64 * 1024)

#define NGX_HTTP_NIXCACHE_NAR_TYPE        "application/x-nix-nar"

/* write-through copies in flight per worker; beyond, a chunk is not kept */
#define NGX_HTTP_NIXCACHE_NAR_WRITE_MAX   (64 * 1024 * 1024)


typedef enum {
    NGX_HTTP_NIXCACHE_FETCH_FREE = 0,
    NGX_HTTP_NIXCACHE_FETCH_BUSY,          /* GET in flight */
    NGX_HTTP_NIXCACHE_FETCH_DONE,          /* answered, not used yet */
    NGX_HTTP_NIXCACHE_FETCH_SENDING        /* .nar.zst: queued for output */
} ngx_http_nixcache_fetch_state_e;


typedef struct {
    ngx_http_nixcache_s3_fetch_t   f;      /* first: f is the slot */
    ngx_http_request_t            *r;
    ngx_uint_t                     index;  /* manifest entry */
    nixcache_manifest_entry_t      e;
    u_char                        *mem;    /* the frame */
    size_t                         mem_size;
    ngx_http_nixcache_fetch_state_e  state;
} ngx_http_nixcache_nar_fetch_t;


typedef struct {
    ngx_buf_t                  buf;
    ngx_chain_t                chain;
    ngx_file_t                 file;       /* .nar.zst: the chunk file */
    u_char                    *mem;        /* .nar: the decompressed chunk */
    size_t                     mem_size;
    ngx_http_nixcache_nar_fetch_t  *fetch; /* .nar.zst: a frame from S3 */
} ngx_http_nixcache_nar_slot_t;


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


typedef struct {
    ngx_str_t                  key;        /* <prefix>manifest:<hash> */
    ngx_str_t                  etag;

    u_char                    *path;       /* chunk dir + relpath + NUL */
    size_t                     dir_len;

    nixcache_manifest_header_t header;

    u_char                    *window;     /* header + window entries */
    u_char                    *entries;    /* first entry in window */
    ngx_uint_t                 window_size;    /* entries per GETRANGE */
    ngx_uint_t                 window_first;   /* index of entries[0] */
    ngx_uint_t                 window_count;
    ngx_uint_t                 fetch_first;    /* the GETRANGE in flight */
    ngx_uint_t                 fetch_count;

    ngx_uint_t                 index;      /* next manifest entry */
    off_t                      offset;     /* body offset of that entry */
    off_t                      length;     /* whole body */
    off_t                      start;      /* bytes sent: [start, end) */
    off_t                      end;
    ngx_uint_t                 status;

    ngx_http_nixcache_nar_slot_t  *slots;
    ngx_uint_t                 nslots;
    ngx_uint_t                 head;       /* oldest slot in flight */
    ngx_uint_t                 used;

    ngx_chain_t               *out;        /* queued, not yet passed on */
    ngx_chain_t              **last_out;
    ngx_buf_t                 *last;       /* the last_buf */
    size_t                     budget;

    ngx_file_t                 file;       /* .nar: chunk being read */
    u_char                    *in;         /* .nar: compressed chunk */
    size_t                     in_size;
    ZSTD_DCtx                 *dctx;

    ngx_http_nixcache_s3_conf_t    *s3;    /* NULL: no S3 tier */
    ngx_http_nixcache_nar_fetch_t  *fetches;   /* made at the first miss */
    ngx_uint_t                 nfetches;
    ngx_uint_t                 probed;     /* next entry to prefetch */
    off_t                      probe_offset;   /* its body offset */
    u_char                    *scratch;    /* .nar.zst: checked content */
    size_t                     scratch_size;
    ngx_int_t                  fail_status;
    const u_char              *chunks;     /* disk tier dir, NUL */

    unsigned                   zst:1;
    unsigned                   head_only:1;
    unsigned                   have_header:1;
    unsigned                   waiting:1;  /* for Redis */
    unsigned                   s3_waiting:1;   /* for the next chunk */
    unsigned                   done:1;
} ngx_http_nixcache_nar_ctx_t;


static ngx_int_t ngx_http_nixcache_nar_fetch(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx);
static void ngx_http_nixcache_nar_redis_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_nar_first_window(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, redisReply *reply);
static void ngx_http_nixcache_nar_run(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx);
static ngx_int_t ngx_http_nixcache_nar_chunk(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *e,
    off_t lo, off_t hi);
static ngx_int_t ngx_http_nixcache_nar_open(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_file_t *file,
    nixcache_manifest_entry_t *e);
static ngx_int_t ngx_http_nixcache_nar_decompress(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_http_nixcache_nar_slot_t *slot,
    nixcache_manifest_entry_t *e);
static const char *ngx_http_nixcache_nar_check(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, u_char *in, size_t len,
    nixcache_manifest_entry_t *e, u_char *out);
static ngx_http_nixcache_nar_fetch_t *ngx_http_nixcache_nar_s3_find(
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_uint_t index);
static ngx_int_t ngx_http_nixcache_nar_s3_get(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *e,
    ngx_http_nixcache_nar_fetch_t **fsp);
static ngx_int_t ngx_http_nixcache_nar_s3_start(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_http_nixcache_nar_fetch_t *fs,
    ngx_uint_t index, nixcache_manifest_entry_t *e);
static void ngx_http_nixcache_nar_prefetch(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *cur);
static ngx_int_t ngx_http_nixcache_nar_s3_use(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_http_nixcache_nar_fetch_t *fs,
    ngx_http_nixcache_nar_slot_t *slot);
static void ngx_http_nixcache_nar_s3_handler(ngx_http_nixcache_s3_fetch_t *f);
static void ngx_http_nixcache_nar_s3_stop(ngx_http_nixcache_nar_ctx_t *ctx);
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
static ngx_int_t ngx_http_nixcache_nar_flush(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx);
static void ngx_http_nixcache_nar_reclaim(ngx_http_nixcache_nar_ctx_t *ctx);
static ngx_int_t ngx_http_nixcache_nar_wait_write(ngx_http_request_t *r);
static void ngx_http_nixcache_nar_write_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_nixcache_nar_send_header(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx);
static ngx_int_t ngx_http_nixcache_nar_range(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx);
static ngx_int_t ngx_http_nixcache_nar_parse_range(u_char *p, u_char *last,
    off_t length, off_t *start, off_t *end);
static void ngx_http_nixcache_nar_fail(ngx_http_request_t *r,
    ngx_int_t status);
static void ngx_http_nixcache_nar_cleanup(void *data);


ngx_int_t
ngx_http_nixcache_nar_handler(ngx_http_request_t *r, ngx_str_t *hash,
    ngx_http_nixcache_route_e route)
{
    size_t                          len;
    ngx_uint_t                      i;
    ngx_pool_cleanup_t             *cln;
    ngx_http_nixcache_nar_ctx_t    *ctx;
    ngx_http_nixcache_nar_slot_t   *slot;
    ngx_http_nixcache_loc_conf_t   *nlcf;
    ngx_http_nixcache_main_conf_t  *nmcf;

    nmcf = ngx_http_get_module_main_conf(r, ngx_http_nixcache_module);
    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_nixcache_nar_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->zst = (route == NGX_HTTP_NIXCACHE_ROUTE_NAR_ZST);
    ctx->head_only = (r->method == NGX_HTTP_HEAD);
    ctx->file.fd = NGX_INVALID_FILE;
    ctx->last_out = &ctx->out;
    ctx->chunks = nlcf->chunks.data;

    if (nlcf->s3.endpoint.len) {
        ctx->s3 = &nlcf->s3;
    }

    /* the two forms are different representations: different tags */

    ctx->etag.len = hash->len + (ctx->zst ? sizeof("\"-zst\"") - 1 : 2);
    ctx->etag.data = ngx_pnalloc(r->pool, ctx->etag.len);
    if (ctx->etag.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(ctx->etag.data, ctx->zst ? "\"%V-zst\"" : "\"%V\"", hash);

    ctx->key.len = nlcf->prefix.len + sizeof(NIXCACHE_KEY_MANIFEST) - 1
                   + hash->len;
    ctx->key.data = ngx_pnalloc(r->pool, ctx->key.len);
    if (ctx->key.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(ctx->key.data, "%V" NIXCACHE_KEY_MANIFEST "%V",
                &nlcf->prefix, hash);

    ctx->window_size = nmcf->manifest_window;
    if (ctx->window_size == 0 || ctx->window_size == NGX_CONF_UNSET_UINT) {
        ctx->window_size = 1024;
    }

    ctx->window = ngx_pnalloc(r->pool,
                              NIXCACHE_MANIFEST_HEADER_LEN
                              + ctx->window_size
                                * NIXCACHE_MANIFEST_ENTRY_LEN);
    if (ctx->window == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->dir_len = nlcf->chunks.len;
    len = ctx->dir_len + NIXCACHE_CHUNK_RELPATH_LEN + 1;

    ctx->nslots = ctx->zst ? NGX_HTTP_NIXCACHE_NAR_FILE_SLOTS
                           : NGX_HTTP_NIXCACHE_NAR_MEM_SLOTS;

    ctx->slots = ngx_pcalloc(r->pool,
                        ctx->nslots * sizeof(ngx_http_nixcache_nar_slot_t));
    if (ctx->slots == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * A file buffer's name must live as long as the buffer, so each file
     * slot has its own path; .nar reads one chunk at a time.
     */

    for (i = 0; i < ctx->nslots; i++) {
        slot = &ctx->slots[i];
        slot->chain.buf = &slot->buf;
        slot->file.fd = NGX_INVALID_FILE;
        slot->file.log = r->connection->log;

        if (!ctx->zst) {
            continue;
        }

        slot->file.name.data = ngx_pnalloc(r->pool, len);
        if (slot->file.name.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(slot->file.name.data, nlcf->chunks.data, ctx->dir_len);
    }

    ctx->path = ngx_pnalloc(r->pool, len);
    if (ctx->path == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ctx->path, nlcf->chunks.data, ctx->dir_len);

    ctx->file.name.data = ctx->path;
    ctx->file.log = r->connection->log;

    ctx->last = ngx_calloc_buf(r->pool);
    if (ctx->last == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->last->last_buf = (r == r->main);
    ctx->last->last_in_chain = 1;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_nixcache_nar_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_nixcache_module);

    if (ngx_http_nixcache_nar_fetch(r, ctx) != NGX_OK) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_nixcache_nar_write_handler;

    r->main->count++;

    return NGX_DONE;
}


static ngx_int_t
ngx_http_nixcache_nar_fetch(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx)
{
    u_char       *p;
    uint64_t      from, to;
    ngx_uint_t    n;
    const char   *argv[4];
    size_t        argvlen[4];
    u_char        range[2][NGX_INT64_LEN];

    if (!ctx->have_header) {
        ctx->fetch_first = 0;
        ctx->fetch_count = ctx->head_only ? 0 : ctx->window_size;
        from = 0;

    } else {
        ctx->fetch_first = ctx->window_first + ctx->window_count;
        n = ctx->header.chunk_count - ctx->fetch_first;
        ctx->fetch_count = ngx_min(n, ctx->window_size);
        from = nixcache_manifest_entry_offset(ctx->fetch_first);
    }

    to = nixcache_manifest_entry_offset(ctx->fetch_first + ctx->fetch_count)
         - 1;

    argv[0] = "GETRANGE";
    argvlen[0] = sizeof("GETRANGE") - 1;
    argv[1] = (const char *) ctx->key.data;
    argvlen[1] = ctx->key.len;

    p = ngx_sprintf(range[0], "%uL", from);
    argv[2] = (const char *) range[0];
    argvlen[2] = p - range[0];

    p = ngx_sprintf(range[1], "%uL", to);
    argv[3] = (const char *) range[1];
    argvlen[3] = p - range[1];

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "nixcache nar: GETRANGE %V %uL %uL", &ctx->key, from, to);

    /* set first: the reply handler clears it, whenever it runs */

    ctx->waiting = 1;

    if (ngx_http_nixcache_redis_command(r,
                                        ngx_http_nixcache_nar_redis_handler,
                                        ctx, 4, argv, argvlen)
        != NGX_OK)
    {
        ctx->waiting = 0;
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_nixcache_nar_redis_handler(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    size_t                        expect;
    ngx_int_t                     rc;
    ngx_http_nixcache_nar_ctx_t  *ctx;

    ctx = data;
    ctx->waiting = 0;

    /* the Redis code has logged why there is no reply */

    if (reply == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: manifest \"%V\" could not be read",
                      &ctx->key);
        ngx_http_nixcache_nar_fail(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    if (reply->type != REDIS_REPLY_STRING) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: manifest \"%V\": unexpected Redis reply "
                      "type %d", &ctx->key, reply->type);
        ngx_http_nixcache_nar_fail(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    if (!ctx->have_header) {
        rc = ngx_http_nixcache_nar_first_window(r, ctx, reply);

        if (rc == NGX_DONE) {
            return;
        }

        if (rc != NGX_OK) {
            ngx_http_nixcache_nar_fail(r, rc);
            return;
        }

    } else {
        expect = ctx->fetch_count * NIXCACHE_MANIFEST_ENTRY_LEN;

        if ((size_t) reply->len != expect) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "nixcache: manifest \"%V\" truncated: %uz bytes "
                          "at entry %ui, expected %uz",
                          &ctx->key, (size_t) reply->len, ctx->fetch_first,
                          expect);
            ngx_http_nixcache_nar_fail(r, NGX_HTTP_BAD_GATEWAY);
            return;
        }

        ngx_memcpy(ctx->window, reply->str, expect);
        ctx->entries = ctx->window;
        ctx->window_first = ctx->fetch_first;
        ctx->window_count = ctx->fetch_count;
    }

    ngx_http_nixcache_nar_run(r, ctx);
}


/*
 * The first window carries the header: from it come the status, the
 * length and whether there is a body at all.  NGX_DONE: the request was
 * finalized here.
 */

static ngx_int_t
ngx_http_nixcache_nar_first_window(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, redisReply *reply)
{
    size_t      len, expect;
    uint64_t    size;
    ngx_int_t   rc;
    ngx_uint_t  n;

    len = reply->len;

    if (len == 0) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "nixcache nar: no manifest \"%V\"", &ctx->key);
        return NGX_HTTP_NOT_FOUND;
    }

    if (len > NIXCACHE_MANIFEST_HEADER_LEN
              + ctx->fetch_count * NIXCACHE_MANIFEST_ENTRY_LEN
        || nixcache_manifest_header_decode(&ctx->header,
                                           (u_char *) reply->str, len)
           != 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: manifest \"%V\" has an invalid header",
                      &ctx->key);
        return NGX_HTTP_BAD_GATEWAY;
    }

    size = ctx->zst ? ctx->header.file_size : ctx->header.nar_size;

    if (size > (uint64_t) NGX_MAX_OFF_T_VALUE) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: manifest \"%V\" has an invalid size",
                      &ctx->key);
        return NGX_HTTP_BAD_GATEWAY;
    }

    n = ngx_min(ctx->fetch_count, ctx->header.chunk_count);
    expect = NIXCACHE_MANIFEST_HEADER_LEN + n * NIXCACHE_MANIFEST_ENTRY_LEN;

    if (len != expect) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: manifest \"%V\" truncated: %uz bytes, "
                      "expected %uz", &ctx->key, len, expect);
        return NGX_HTTP_BAD_GATEWAY;
    }

    ngx_memcpy(ctx->window, reply->str, len);

    ctx->have_header = 1;
    ctx->entries = ctx->window + NIXCACHE_MANIFEST_HEADER_LEN;
    ctx->window_first = 0;
    ctx->window_count = n;
    ctx->length = (off_t) size;
    ctx->start = 0;
    ctx->end = ctx->length;
    ctx->status = NGX_HTTP_OK;

    rc = ngx_http_nixcache_nar_range(r, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ctx->head_only) {
        rc = ngx_http_nixcache_nar_send_header(r, ctx);
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    return NGX_OK;
}


/*
 * Produces the body: walks the manifest, queues the chunks overlapping
 * [start, end), passes them on when the ring is full, the budget spent, a
 * window needed or the body complete.  Called from the Redis reply, the
 * write event and the posted event; always returns with the request parked
 * (Redis, write event, posted event) or finalized.
 */

static void
ngx_http_nixcache_nar_run(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx)
{
    off_t                       size, lo, hi;
    ngx_int_t                   rc;
    nixcache_manifest_entry_t   e;

    ctx->budget = 0;

    for ( ;; ) {

        if (ctx->offset >= ctx->end) {
            goto done;
        }

        if (ctx->index == ctx->header.chunk_count) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "nixcache: manifest \"%V\" entries sum to %O, "
                          "header says %O", &ctx->key, ctx->offset,
                          ctx->length);
            goto failed;
        }

        if (ctx->index == ctx->window_first + ctx->window_count) {

            rc = ngx_http_nixcache_nar_flush(r, ctx);
            if (rc == NGX_ERROR) {
                goto cut;
            }

            if (rc == NGX_AGAIN
                && ngx_http_nixcache_nar_wait_write(r) != NGX_OK)
            {
                goto cut;
            }

            if (ngx_http_nixcache_nar_fetch(r, ctx) != NGX_OK) {
                ngx_http_nixcache_nar_fail(r, NGX_HTTP_SERVICE_UNAVAILABLE);
            }

            return;
        }

        if (ctx->used == ctx->nslots
            || ctx->budget >= NGX_HTTP_NIXCACHE_NAR_BUDGET)
        {
            rc = ngx_http_nixcache_nar_flush(r, ctx);
            if (rc == NGX_ERROR) {
                goto cut;
            }

            if (rc == NGX_AGAIN) {
                goto wait;
            }

            if (ctx->used == ctx->nslots) {
                /* sent but not released: wait for the socket */
                goto wait;
            }

            if (ctx->budget >= NGX_HTTP_NIXCACHE_NAR_BUDGET) {
                /*
                 * Not ngx_posted_events: those run again in this same
                 * turn, before epoll is asked about anyone else.
                 */
                ngx_post_event(r->connection->write, &ngx_posted_next_events);
                return;
            }

            continue;
        }

        nixcache_manifest_entry_decode(&e,
              ctx->entries
              + (ctx->index - ctx->window_first) * NIXCACHE_MANIFEST_ENTRY_LEN);

        if (e.usize == 0 || e.csize == 0
            || e.usize > NIXCACHE_CHUNK_MAX_LIMIT
            || e.csize > ZSTD_compressBound(NIXCACHE_CHUNK_MAX_LIMIT))
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "nixcache: manifest \"%V\" entry %ui has an "
                          "invalid size", &ctx->key, ctx->index);
            goto failed;
        }

        size = ctx->zst ? e.csize : e.usize;

        if (ctx->offset + size > ctx->length) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "nixcache: manifest \"%V\" entries exceed its "
                          "size at entry %ui", &ctx->key, ctx->index);
            goto failed;
        }

        if (ctx->offset + size <= ctx->start) {
            /* before the range: not even opened */
            ctx->offset += size;
            ctx->index++;
            continue;
        }

        lo = ngx_max(ctx->start - ctx->offset, 0);
        hi = ngx_min(ctx->end - ctx->offset, size);

        rc = ngx_http_nixcache_nar_chunk(r, ctx, &e, lo, hi);

        if (rc == NGX_AGAIN) {

            /* its GET is in flight: what is queued goes out meanwhile */

            rc = ngx_http_nixcache_nar_flush(r, ctx);
            if (rc == NGX_ERROR) {
                goto cut;
            }

            /* the flush may have freed slots of frames sent: refill them */

            ngx_http_nixcache_nar_prefetch(r, ctx, &e);

            ctx->s3_waiting = 1;

            if (rc == NGX_AGAIN
                && ngx_http_nixcache_nar_wait_write(r) != NGX_OK)
            {
                goto cut;
            }

            return;
        }

        if (rc == NGX_BUSY) {

            /* every fetch slot holds a frame being sent */

            rc = ngx_http_nixcache_nar_flush(r, ctx);
            if (rc == NGX_ERROR) {
                goto cut;
            }

            if (rc == NGX_AGAIN) {
                goto wait;
            }

            if (ngx_http_nixcache_nar_s3_find(ctx, NGX_MAX_UINT32_VALUE)
                == NULL)
            {
                ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                              "nixcache: no S3 fetch slot after a flush");
                goto failed;
            }

            continue;
        }

        if (rc != NGX_OK) {
            goto failed;
        }

        ctx->offset += size;
        ctx->index++;
        ctx->budget += (size_t) (hi - lo) + NGX_HTTP_NIXCACHE_NAR_CHUNK_COST;

        if (r->header_sent) {
            continue;
        }

        rc = ngx_http_nixcache_nar_send_header(r, ctx);

        if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
            ngx_http_finalize_request(r, rc);
            return;
        }

        /* the status line and the first bytes go out at once */

        rc = ngx_http_nixcache_nar_flush(r, ctx);

        if (rc == NGX_ERROR) {
            goto cut;
        }

        if (rc == NGX_AGAIN) {
            goto wait;
        }
    }

done:

    if (!r->header_sent) {
        rc = ngx_http_nixcache_nar_send_header(r, ctx);

        if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
            ngx_http_finalize_request(r, rc);
            return;
        }
    }

    ctx->done = 1;

    *ctx->last_out = ngx_alloc_chain_link(r->pool);
    if (*ctx->last_out == NULL) {
        goto cut;
    }

    (*ctx->last_out)->buf = ctx->last;
    (*ctx->last_out)->next = NULL;
    ctx->last_out = &(*ctx->last_out)->next;

    rc = ngx_http_nixcache_nar_flush(r, ctx);

    ngx_http_finalize_request(r, rc);
    return;

wait:

    if (ngx_http_nixcache_nar_wait_write(r) == NGX_OK) {
        return;
    }

    goto cut;

failed:

    ngx_http_nixcache_nar_fail(r, ctx->fail_status ? ctx->fail_status
                                                   : NGX_HTTP_BAD_GATEWAY);
    return;

cut:

    ngx_http_nixcache_nar_s3_stop(ctx);
    ngx_http_finalize_request(r, NGX_ERROR);
}


/*
 * Queues bytes [lo, hi) of one chunk's share of the body in a free slot:
 * from the disk tier, or from S3 when it is not there.  NGX_AGAIN: its
 * S3 GET is in flight; NGX_BUSY: every fetch slot holds a frame being
 * sent; NGX_ERROR with ctx->fail_status set or 0 (502).
 */

static ngx_int_t
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
    size_t              n;
    unsigned long long  content;
    unsigned char       digest[NIXCACHE_SHA256_LEN];

    if (len != e->csize) {
        return "has the wrong size";
    }

    if (ctx->dctx == NULL) {
        ctx->dctx = ZSTD_createDCtx();
        if (ctx->dctx == NULL) {
            return "cannot be decompressed: ZSTD_createDCtx() failed";
        }
    }

    n = ZSTD_findFrameCompressedSize(in, len);

    if (ZSTD_isError(n) || n != len) {
        return "is not one zstd frame";
    }

    content = ZSTD_getFrameContentSize(in, len);

    if (content != e->usize) {
        return "has the wrong content size";
    }

    n = ZSTD_decompressDCtx(ctx->dctx, out, e->usize, in, len);

    if (ZSTD_isError(n) || n != e->usize) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: zstd: %s",
                      ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short");
        return "does not decompress";
    }

    nixcache_sha256(digest, out, e->usize);

    if (ngx_memcmp(digest, e->chunk, NIXCACHE_SHA256_LEN) != 0) {
        return "does not match its ID";
    }

    return NULL;
}


/*
 * The fetch slot holding manifest entry index, or NULL.  With an index no
 * entry has (NGX_MAX_UINT32_VALUE): a free slot, or NULL.
 */

static ngx_http_nixcache_nar_fetch_t *
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

static void
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
        ctx->fail_status = NGX_HTTP_BAD_GATEWAY;
        fs->state = NGX_HTTP_NIXCACHE_FETCH_FREE;
        return NGX_ERROR;
    }

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

    ctx = ngx_http_get_module_ctx(r, ngx_http_nixcache_module);

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


static void
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


/*
 * Passes the queued buffers on.  The last one is flushed, so nothing we
 * wait on can sit in the write filter below postpone_output.
 */

static ngx_int_t
ngx_http_nixcache_nar_flush(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx)
{
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    if (ctx->out != NULL) {
        for (cl = ctx->out; cl->next; cl = cl->next) { /* void */ }
        cl->buf->flush = 1;

    } else if (!r->buffered && !r->connection->buffered) {
        return NGX_OK;
    }

    rc = ngx_http_output_filter(r, ctx->out);

    ctx->out = NULL;
    ctx->last_out = &ctx->out;

    ngx_http_nixcache_nar_reclaim(ctx);

    if (rc == NGX_OK && r->connection->write->timer_set
        && !r->connection->write->delayed)
    {
        ngx_del_timer(r->connection->write);
    }

    return rc;
}


/*
 * Releases the slots whose buffers the write filter has consumed, oldest
 * first (buffers are sent in order); a file slot's fd is closed here, as
 * soon as its bytes are out.
 */

static void
ngx_http_nixcache_nar_reclaim(ngx_http_nixcache_nar_ctx_t *ctx)
{
    ngx_http_nixcache_nar_slot_t  *slot;

    while (ctx->used) {
        slot = &ctx->slots[ctx->head];

        if (ngx_buf_size(&slot->buf) != 0) {
            break;
        }

        if (slot->file.fd != NGX_INVALID_FILE) {
            if (ngx_close_file(slot->file.fd) == NGX_FILE_ERROR) {
                ngx_log_error(NGX_LOG_ALERT, slot->file.log, ngx_errno,
                              ngx_close_file_n " \"%V\" failed",
                              &slot->file.name);
            }

            slot->file.fd = NGX_INVALID_FILE;
        }

        if (slot->fetch != NULL) {
            slot->fetch->state = NGX_HTTP_NIXCACHE_FETCH_FREE;
            slot->fetch = NULL;
        }

        ctx->head = (ctx->head + 1) % ctx->nslots;
        ctx->used--;
    }
}


static ngx_int_t
ngx_http_nixcache_nar_wait_write(ngx_http_request_t *r)
{
    ngx_event_t               *wev;
    ngx_http_core_loc_conf_t  *clcf;

    wev = r->connection->write;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (!wev->delayed) {
        ngx_add_timer(wev, clcf->send_timeout);
    }

    return ngx_handle_write_event(wev, clcf->send_lowat);
}


static void
ngx_http_nixcache_nar_write_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_event_t                  *wev;
    ngx_connection_t             *c;
    ngx_http_nixcache_nar_ctx_t  *ctx;

    c = r->connection;
    wev = c->write;

    ctx = ngx_http_get_module_ctx(r, ngx_http_nixcache_module);

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    if (wev->delayed) {
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_ERROR);
        }

        return;
    }

    if (ctx == NULL || ctx->done) {
        return;
    }

    if (ctx->waiting || ctx->s3_waiting) {

        /* Redis or S3 has what comes next: meanwhile, push what is pending */

        rc = ngx_http_nixcache_nar_flush(r, ctx);

        if (rc == NGX_ERROR) {
            ngx_http_finalize_request(r, NGX_ERROR);
            return;
        }

        if (ctx->s3_waiting) {
            ngx_http_nixcache_nar_prefetch(r, ctx, NULL);
        }

        if (rc == NGX_AGAIN
            && ngx_http_nixcache_nar_wait_write(r) != NGX_OK)
        {
            ngx_http_finalize_request(r, NGX_ERROR);
        }

        return;
    }

    ngx_http_nixcache_nar_run(r, ctx);
}


static ngx_int_t
ngx_http_nixcache_nar_send_header(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t   value;

    r->headers_out.status = ctx->status;
    r->headers_out.content_length_n = ctx->end - ctx->start;

    ngx_str_set(&r->headers_out.content_type, NGX_HTTP_NIXCACHE_NAR_TYPE);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_nixcache_add_header(r, "ETag", &ctx->etag,
                                         &r->headers_out.etag)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_str_set(&value, "bytes");

    if (ngx_http_nixcache_add_header(r, "Accept-Ranges", &value,
                                         &r->headers_out.accept_ranges)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->status == NGX_HTTP_PARTIAL_CONTENT) {
        value.data = ngx_pnalloc(r->pool,
                                 sizeof("bytes --/") - 1 + 3 * NGX_OFF_T_LEN);
        if (value.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_sprintf(value.data, "bytes %O-%O/%O",
                        ctx->start, ctx->end - 1, ctx->length);
        value.len = p - value.data;

        if (ngx_http_nixcache_add_header(r, "Content-Range", &value,
                                             &r->headers_out.content_range)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* the body is exact bytes: no filter may encode or slice it */

#if (NGX_HTTP_GZIP)
    r->gzip_tested = 1;
    r->gzip_ok = 0;
#endif

    r->allow_ranges = 0;

    return ngx_http_send_header(r);
}


/*
 * Applies a Range header to [start, end) and the status.  A header that
 * does not parse, several ranges or an If-Range that does not match our
 * tag are ignored (the whole body); NGX_HTTP_RANGE_NOT_SATISFIABLE after
 * having added "Content-Range: bytes * /length".
 */

static ngx_int_t
ngx_http_nixcache_nar_range(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx)
{
    u_char           *p;
    off_t             start, end;
    ngx_int_t         rc;
    ngx_str_t         value;
    ngx_table_elt_t  *h;

    h = r->headers_in.range;

    if (h == NULL || r->http_version < NGX_HTTP_VERSION_10) {
        return NGX_OK;
    }

    if (r->headers_in.if_range != NULL
        && (r->headers_in.if_range->value.len != ctx->etag.len
            || ngx_strncmp(r->headers_in.if_range->value.data,
                           ctx->etag.data, ctx->etag.len)
               != 0))
    {
        return NGX_OK;
    }

    rc = ngx_http_nixcache_nar_parse_range(h->value.data,
                                           h->value.data + h->value.len,
                                           ctx->length, &start, &end);

    if (rc == NGX_DECLINED) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "nixcache nar: Range \"%V\" ignored", &h->value);
        return NGX_OK;
    }

    if (rc == NGX_HTTP_RANGE_NOT_SATISFIABLE) {
        value.data = ngx_pnalloc(r->pool, sizeof("bytes */") - 1
                                          + NGX_OFF_T_LEN);
        if (value.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_sprintf(value.data, "bytes */%O", ctx->length);
        value.len = p - value.data;

        if (ngx_http_nixcache_add_header(r, "Content-Range", &value,
                                             &r->headers_out.content_range)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_RANGE_NOT_SATISFIABLE;
    }

    ctx->start = start;
    ctx->end = end;
    ctx->status = NGX_HTTP_PARTIAL_CONTENT;

    return NGX_OK;
}


/*
 * "bytes=a-b", "bytes=a-", "bytes=-n", spaces allowed around the parts.
 * NGX_OK with [*start, *end) clamped to length; NGX_DECLINED when the
 * header is not one such range; NGX_HTTP_RANGE_NOT_SATISFIABLE.
 */

static ngx_int_t
ngx_http_nixcache_nar_parse_range(u_char *p, u_char *last, off_t length,
    off_t *start, off_t *end)
{
    off_t       a, b, cutoff, cutlim;
    ngx_uint_t  suffix, have_b;

    cutoff = NGX_MAX_OFF_T_VALUE / 10;
    cutlim = NGX_MAX_OFF_T_VALUE % 10;

    while (p < last && (*p == ' ' || *p == '\t')) { p++; }

    if (last - p < 5 || ngx_strncasecmp(p, (u_char *) "bytes", 5) != 0) {
        return NGX_DECLINED;
    }

    p += 5;

    while (p < last && (*p == ' ' || *p == '\t')) { p++; }

    if (p == last || *p++ != '=') {
        return NGX_DECLINED;
    }

    while (p < last && (*p == ' ' || *p == '\t')) { p++; }

    a = 0;
    b = 0;
    suffix = 0;
    have_b = 0;

    if (p < last && *p == '-') {
        suffix = 1;

    } else {
        if (p == last || *p < '0' || *p > '9') {
            return NGX_DECLINED;
        }

        while (p < last && *p >= '0' && *p <= '9') {
            if (a > cutoff || (a == cutoff && *p - '0' > cutlim)) {
                return NGX_HTTP_RANGE_NOT_SATISFIABLE;
            }

            a = a * 10 + (*p++ - '0');
        }

        while (p < last && (*p == ' ' || *p == '\t')) { p++; }

        if (p == last || *p != '-') {
            return NGX_DECLINED;
        }
    }

    p++;

    while (p < last && (*p == ' ' || *p == '\t')) { p++; }

    while (p < last && *p >= '0' && *p <= '9') {
        if (b > cutoff || (b == cutoff && *p - '0' > cutlim)) {
            return NGX_DECLINED;
        }

        b = b * 10 + (*p++ - '0');
        have_b = 1;
    }

    while (p < last && (*p == ' ' || *p == '\t')) { p++; }

    if (p != last) {
        /* several ranges, or garbage: the whole body */
        return NGX_DECLINED;
    }

    if (suffix) {
        if (!have_b) {
            return NGX_DECLINED;
        }

        if (b == 0 || length == 0) {
            return NGX_HTTP_RANGE_NOT_SATISFIABLE;
        }

        *start = length - ngx_min(b, length);
        *end = length;

        return NGX_OK;
    }

    if (have_b && b < a) {
        return NGX_DECLINED;
    }

    if (a >= length) {
        return NGX_HTTP_RANGE_NOT_SATISFIABLE;
    }

    *start = a;
    *end = (have_b && b < length) ? b + 1 : length;

    return NGX_OK;
}


static void
ngx_http_nixcache_nar_fail(ngx_http_request_t *r, ngx_int_t status)
{
    ngx_http_nixcache_nar_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_nixcache_module);

    if (ctx != NULL) {
        ngx_http_nixcache_nar_s3_stop(ctx);
    }

    if (r->header_sent) {
        r->connection->error = 1;
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    ngx_http_finalize_request(r, status);
}


static void
ngx_http_nixcache_nar_cleanup(void *data)
{
    ngx_http_nixcache_nar_ctx_t *ctx = data;

    ngx_uint_t                     i;
    ngx_http_nixcache_nar_slot_t  *slot;

    for (i = 0; i < ctx->nslots; i++) {
        slot = &ctx->slots[i];

        if (slot->file.fd != NGX_INVALID_FILE) {
            if (ngx_close_file(slot->file.fd) == NGX_FILE_ERROR) {
                ngx_log_error(NGX_LOG_ALERT, slot->file.log, ngx_errno,
                              ngx_close_file_n " \"%V\" failed",
                              &slot->file.name);
            }

            slot->file.fd = NGX_INVALID_FILE;
        }
    }

    if (ctx->file.fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(ctx->file.fd);
        ctx->file.fd = NGX_INVALID_FILE;
    }

    if (ctx->dctx != NULL) {
        ZSTD_freeDCtx(ctx->dctx);
        ctx->dctx = NULL;
    }

    ngx_http_nixcache_nar_s3_stop(ctx);
}
