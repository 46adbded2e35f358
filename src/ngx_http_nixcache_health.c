/*
 * nixcache_health: 200 "ok" when the location's chunk directory can be
 * stat()ed (when set) and the worker's Redis connection answers a PING;
 * 503 naming the part that failed otherwise.  Cheap enough for a load
 * balancer to poll every second: one stat and one Redis round trip, no
 * lock, nothing written.
 */

#include "ngx_http_nixcache.h"


static ngx_int_t ngx_http_nixcache_health_handler(ngx_http_request_t *r);
static void ngx_http_nixcache_health_reply(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_health_send(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len);


char *
ngx_http_nixcache_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_nixcache_health_handler;

    return NGX_CONF_OK;
}


/*
 * The disk tier first (a stat of the location's nixcache_chunks, when
 * set), then a PING through the worker's Redis connection.
 */

static ngx_int_t
ngx_http_nixcache_health_handler(ngx_http_request_t *r)
{
    size_t                           argvlen[1];
    u_char                          *p;
    ngx_int_t                        rc;
    const char                      *argv[1];
    ngx_file_info_t                  fi;
    ngx_http_nixcache_loc_conf_t    *nlcf;
    u_char                           buf[NGX_MAX_ERROR_STR];

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    if (nlcf->chunks.data != NULL) {
        if (ngx_file_info(nlcf->chunks.data, &fi) == NGX_FILE_ERROR) {
            p = ngx_snprintf(buf, sizeof(buf), "disk: %s: ",
                             nlcf->chunks.data);
            p = ngx_strerror(ngx_errno, p, buf + sizeof(buf) - 1 - p);
            *p++ = LF;
            return ngx_http_nixcache_health_send(r,
                                                 NGX_HTTP_SERVICE_UNAVAILABLE,
                                                 buf, p - buf);
        }

        if (!ngx_is_dir(&fi)) {
            p = ngx_snprintf(buf, sizeof(buf), "disk: %s: not a directory\n",
                             nlcf->chunks.data);
            return ngx_http_nixcache_health_send(r,
                                                 NGX_HTTP_SERVICE_UNAVAILABLE,
                                                 buf, p - buf);
        }
    }

    argv[0] = "PING";
    argvlen[0] = sizeof("PING") - 1;

    if (ngx_http_nixcache_redis_command(r, ngx_http_nixcache_health_reply,
                                        NULL, 1, argv, argvlen)
        != NGX_OK)
    {
        return ngx_http_nixcache_health_send(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                             (u_char *) "redis: unreachable\n",
                                             sizeof("redis: unreachable\n")
                                             - 1);
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_nixcache_health_reply(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_int_t  rc;

    if (reply == NULL) {
        /* the cause (refused, timed out, lost) is in the error log */
        rc = ngx_http_nixcache_health_send(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  (u_char *) "redis: no answer\n",
                                  sizeof("redis: no answer\n") - 1);

    } else if (reply->type != REDIS_REPLY_STATUS
               && reply->type != REDIS_REPLY_STRING)
    {
        rc = ngx_http_nixcache_health_send(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  (u_char *) "redis: unexpected reply\n",
                                  sizeof("redis: unexpected reply\n") - 1);

    } else {
        rc = ngx_http_nixcache_health_send(r, NGX_HTTP_OK,
                                           (u_char *) "ok\n", 3);
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_nixcache_health_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->pos, body, len);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "text/plain");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    /* polled every second: never from a cache */
    r->headers_out.last_modified_time = -1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
