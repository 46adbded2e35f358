/*
 * GET/HEAD /nar/<NarHash>.nar.zst and /nar/<NarHash>.nar: the response.
 *
 * The handler sets up the request; the manifest arrives in windows
 * (ngx_http_nixcache_nar_manifest.c) and each entry's share of the body
 * comes from the chunk source (ngx_http_nixcache_nar_chunk.c: the disk
 * tier, S3).  This file applies Range, sends the headers and walks the
 * manifest over [start, end), passing the chunks on from a small fixed
 * ring of buffers reused for the whole response: memory per request does
 * not depend on the size of the NAR or on its number of chunks.
 *
 * Errors before the header is sent become a status (404 no manifest, 502
 * broken manifest or chunk or a bad S3 answer, 503 Redis or S3
 * unreachable, 504 S3 timed out); after it, the connection is cut so
 * the client sees a short body, never a complete-looking wrong one.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_nixcache.h"

#include "nixcache_range.h"


/* file buffers in flight for .nar.zst: open fds per request */
#define NGX_HTTP_NIXCACHE_NAR_FILE_SLOTS  8

/* decompressed chunks in flight for .nar: one being sent, one being made */
#define NGX_HTTP_NIXCACHE_NAR_MEM_SLOTS   2

/* bytes queued per event loop turn before yielding to other connections */
#define NGX_HTTP_NIXCACHE_NAR_BUDGET      (1024 * 1024)

/* what a chunk costs the budget besides its bytes (open, fstat, close) */
#define NGX_HTTP_NIXCACHE_NAR_CHUNK_COST  4096

#define NGX_HTTP_NIXCACHE_NAR_TYPE        "application/x-nix-nar"


static ngx_int_t ngx_http_nixcache_nar_entry(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *e,
    off_t *size);
static ngx_int_t ngx_http_nixcache_nar_next_window(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx);
static ngx_int_t ngx_http_nixcache_nar_s3_wait(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *e);
static void ngx_http_nixcache_nar_done(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx);
static ngx_int_t ngx_http_nixcache_nar_flush(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx);
static void ngx_http_nixcache_nar_reclaim(ngx_http_nixcache_nar_ctx_t *ctx);
static ngx_int_t ngx_http_nixcache_nar_wait_write(ngx_http_request_t *r);
static void ngx_http_nixcache_nar_write_handler(ngx_http_request_t *r);
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

    if (ngx_http_nixcache_key(r, &ctx->key, NIXCACHE_KEY_KIND_MANIFEST,
                              hash->data, hash->len)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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

    ngx_http_nixcache_set_ctx(r, ctx, NGX_HTTP_NIXCACHE_CTX_NAR);

    if (ngx_http_nixcache_nar_fetch(r, ctx) != NGX_OK) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_nixcache_nar_write_handler;

    r->main->count++;

    return NGX_DONE;
}


/*
 * Produces the body: walks the manifest, queues the chunks overlapping
 * [start, end), passes them on when the ring is full, the budget spent, a
 * window needed or the body complete.  Called from the Redis reply, the
 * write event and the posted event; always returns with the request parked
 * (Redis, write event, posted event) or finalized.
 */

void
ngx_http_nixcache_nar_run(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx)
{
    off_t                       size, lo, hi;
    ngx_int_t                   rc;
    nixcache_manifest_entry_t   e;

    ctx->budget = 0;

    for ( ;; ) {

        if (ctx->offset >= ctx->end) {
            ngx_http_nixcache_nar_done(r, ctx);
            return;
        }

        if (ctx->index == ctx->header.chunk_count) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "nixcache: manifest \"%V\" entries sum to %O, "
                          "header says %O", &ctx->key, ctx->offset,
                          ctx->length);
            goto failed;
        }

        if (ctx->index == ctx->window_first + ctx->window_count) {
            if (ngx_http_nixcache_nar_next_window(r, ctx) != NGX_OK) {
                goto cut;
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

        if (ngx_http_nixcache_nar_entry(r, ctx, &e, &size) != NGX_OK) {
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
            if (ngx_http_nixcache_nar_s3_wait(r, ctx, &e) != NGX_OK) {
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
 * The manifest entry at ctx->index, checked against the limits and the
 * manifest's size: NGX_OK with *e and *size, its share of the body in
 * this form, or NGX_ERROR (logged).
 */

static ngx_int_t
ngx_http_nixcache_nar_entry(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *e,
    off_t *size)
{
    nixcache_manifest_entry_decode(e,
          ctx->entries
          + (ctx->index - ctx->window_first) * NIXCACHE_MANIFEST_ENTRY_LEN);

    if (e->usize == 0 || e->csize == 0
        || e->usize > NIXCACHE_CHUNK_MAX_LIMIT
        || e->csize > ZSTD_compressBound(NIXCACHE_CHUNK_MAX_LIMIT))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: manifest \"%V\" entry %ui has an "
                      "invalid size", &ctx->key, ctx->index);
        return NGX_ERROR;
    }

    *size = ctx->zst ? e->csize : e->usize;

    if (ctx->offset + *size > ctx->length) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: manifest \"%V\" entries exceed its "
                      "size at entry %ui", &ctx->key, ctx->index);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The window is used up: what is queued goes out, and the next window is
 * asked for.  NGX_OK with the request parked or failed (503); NGX_ERROR:
 * the connection is to be cut.
 */

static ngx_int_t
ngx_http_nixcache_nar_next_window(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx)
{
    ngx_int_t  rc;

    rc = ngx_http_nixcache_nar_flush(r, ctx);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_AGAIN && ngx_http_nixcache_nar_wait_write(r) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_nixcache_nar_fetch(r, ctx) != NGX_OK) {
        ngx_http_nixcache_nar_fail(r, NGX_HTTP_SERVICE_UNAVAILABLE);
    }

    return NGX_OK;
}


/*
 * Entry e's S3 GET is in flight: what is queued goes out meanwhile, and
 * the request waits for the answer.  NGX_OK, or NGX_ERROR: the connection
 * is to be cut.
 */

static ngx_int_t
ngx_http_nixcache_nar_s3_wait(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *e)
{
    ngx_int_t  rc;

    rc = ngx_http_nixcache_nar_flush(r, ctx);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    /* the flush may have freed slots of frames sent: refill them */

    ngx_http_nixcache_nar_prefetch(r, ctx, e);

    ctx->s3_waiting = 1;

    if (rc == NGX_AGAIN && ngx_http_nixcache_nar_wait_write(r) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* The body is complete: the headers if not sent yet, the last buffer. */

static void
ngx_http_nixcache_nar_done(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx)
{
    ngx_int_t  rc;

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
        ngx_http_nixcache_nar_s3_stop(ctx);
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    (*ctx->last_out)->buf = ctx->last;
    (*ctx->last_out)->next = NULL;
    ctx->last_out = &(*ctx->last_out)->next;

    rc = ngx_http_nixcache_nar_flush(r, ctx);

    ngx_http_finalize_request(r, rc);
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

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_NAR);

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


ngx_int_t
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
 * nixcache_range_parse() ignores (several ranges, junk) or an If-Range
 * that does not match our tag give the whole body;
 * NGX_HTTP_RANGE_NOT_SATISFIABLE after having added
 * "Content-Range: bytes * /length".
 */

ngx_int_t
ngx_http_nixcache_nar_range(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx)
{
    u_char            *p;
    uint64_t           start, end;
    ngx_str_t          value;
    ngx_table_elt_t   *h;
    nixcache_range_e   rc;

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

    rc = nixcache_range_parse((const char *) h->value.data, h->value.len,
                              (uint64_t) ctx->length, &start, &end);

    if (rc == NIXCACHE_RANGE_IGNORE) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "nixcache nar: Range \"%V\" ignored", &h->value);
        return NGX_OK;
    }

    if (rc == NIXCACHE_RANGE_UNSATISFIABLE) {
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

    ctx->start = (off_t) start;
    ctx->end = (off_t) end;
    ctx->status = NGX_HTTP_PARTIAL_CONTENT;

    return NGX_OK;
}


void
ngx_http_nixcache_nar_fail(ngx_http_request_t *r, ngx_int_t status)
{
    ngx_http_nixcache_nar_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_NAR);

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
