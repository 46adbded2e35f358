/*
 * The NAR response's manifest reader: the manifest is read from Redis in
 * windows of nixcache_manifest_window entries (GETRANGE), copied into one
 * buffer per request.  The first window carries the header: the status,
 * the length, and the range (ngx_http_nixcache_nar.c) follow from it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_nixcache.h"


static void ngx_http_nixcache_nar_redis_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_nar_first_window(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, redisReply *reply);


ngx_int_t
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
