/*
 * nixcache_health: 200 "ok" when the location's chunk directory can be
 * stat()ed (when set), the worker's Redis connection answers a PING and,
 * with an S3 tier, the bucket answers; 503 naming the part that failed
 * otherwise.  Cheap enough for a load balancer to poll every second: one
 * stat, one Redis round trip, one S3 request at most, no lock, nothing
 * written.
 *
 * The S3 probe is a GET, signed as the chunk fetches are, of the key of a
 * chunk that cannot exist (the all-zero digest): S3 answering 404
 * NoSuchKey shows that it is reachable, the credentials are accepted and
 * the bucket exists.  It goes through the worker's S3 client, and is not
 * counted in the fetch metrics.
 */

#include "ngx_http_nixcache.h"


typedef struct {
    ngx_http_nixcache_s3_fetch_t   f;
    ngx_http_request_t            *request;
    u_char                         byte[1];
} ngx_http_nixcache_health_probe_t;


static ngx_int_t ngx_http_nixcache_health_handler(ngx_http_request_t *r);
static void ngx_http_nixcache_health_reply(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_health_s3(ngx_http_request_t *r,
    ngx_http_nixcache_s3_conf_t *s3);
static void ngx_http_nixcache_health_s3_done(ngx_http_nixcache_s3_fetch_t *f);
static void ngx_http_nixcache_health_s3_cleanup(void *data);
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
    ngx_int_t                      rc;
    ngx_http_nixcache_loc_conf_t  *nlcf;

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
        nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

        if (nlcf->s3.endpoint.len) {
            rc = ngx_http_nixcache_health_s3(r, &nlcf->s3);
            if (rc == NGX_DONE) {
                return;
            }

        } else {
            rc = ngx_http_nixcache_health_send(r, NGX_HTTP_OK,
                                               (u_char *) "ok\n", 3);
        }
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_nixcache_health_s3(ngx_http_request_t *r,
    ngx_http_nixcache_s3_conf_t *s3)
{
    ngx_pool_cleanup_t                *cln;
    ngx_http_nixcache_health_probe_t  *pr;

    cln = ngx_pool_cleanup_add(r->pool,
                               sizeof(ngx_http_nixcache_health_probe_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pr = cln->data;
    ngx_memzero(pr, sizeof(ngx_http_nixcache_health_probe_t));

    pr->request = r;
    pr->f.conf = s3;
    pr->f.log = r->connection->log;
    pr->f.buf = pr->byte;
    pr->f.cap = sizeof(pr->byte);
    pr->f.csize = sizeof(pr->byte);
    pr->f.handler = ngx_http_nixcache_health_s3_done;
    pr->f.data = pr;
    pr->f.probe = 1;

    cln->handler = ngx_http_nixcache_health_s3_cleanup;

    if (ngx_http_nixcache_s3_start(&pr->f) != NGX_OK) {
        ngx_http_nixcache_s3_log_error(&pr->f, r->connection->log,
                                       "health check");
        return ngx_http_nixcache_health_send(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  (u_char *) "s3: no client\n",
                                  sizeof("s3: no client\n") - 1);
    }

    return NGX_DONE;
}


static void
ngx_http_nixcache_health_s3_done(ngx_http_nixcache_s3_fetch_t *f)
{
    ngx_http_nixcache_health_probe_t *pr = f->data;

    u_char              *p;
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;
    u_char               buf[NGX_MAX_ERROR_STR];

    r = pr->request;
    c = r->connection;

    if (f->http_status == NGX_HTTP_NOT_FOUND && f->code_len == 9
        && ngx_strncmp(f->code, "NoSuchKey", 9) == 0)
    {
        rc = ngx_http_nixcache_health_send(r, NGX_HTTP_OK,
                                           (u_char *) "ok\n", 3);

    } else {
        ngx_http_nixcache_s3_log_error(f, c->log, NULL);

        if (f->curl_code != 0) {
            p = ngx_snprintf(buf, sizeof(buf), "s3: %s\n",
                             f->errtext[0] ? (char *) f->errtext
                             : "no answer");

        } else {
            p = ngx_snprintf(buf, sizeof(buf), "s3: HTTP %l %*s\n",
                             f->http_status, f->code_len, f->code);
        }

        rc = ngx_http_nixcache_health_send(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           buf, p - buf);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_nixcache_health_s3_cleanup(void *data)
{
    ngx_http_nixcache_health_probe_t *pr = data;

    ngx_http_nixcache_s3_cancel(&pr->f);
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
