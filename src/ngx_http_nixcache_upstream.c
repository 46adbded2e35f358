/*
 * Pull-through (nixcache_upstream): a narinfo missing in Redis is asked
 * of the location's upstream caches, in order, and served pointing at
 * "upstream/<name>/<store hash>/<its URL>", which is proxied from that
 * upstream as it arrives.
 *
 * Each upstream request is a subrequest to the internal location the
 * operator names (proxy_pass to the upstream cache; docs/DESIGN.md says
 * why nginx and not libcurl).  The subrequest gets no client header at
 * all, whatever the location says: no token of ours reaches an upstream.
 * Its output goes through the filters here:
 *
 *   - a narinfo is captured (at most NIXCACHE_NARINFO_MAX_LEN bytes) and
 *     nothing of it reaches the client; once the subrequest is done the
 *     main request checks it (StorePath, URL, signatures) and serves it
 *     or asks the next upstream;
 *   - a NAR answered 200 with a Content-Length sends the main request's
 *     header and streams on to the client through nginx's own buffers
 *     (back-pressure, memory bounded by the proxy location's buffers); a
 *     NAR cut short closes the client's connection, so the client never
 *     takes a short body for a whole one; any other answer is swallowed
 *     and the main request answers 404 or 502/504 itself.
 *
 * Health: an upstream that did not answer or answered 5xx is skipped by
 * every worker for its back-off (a time in the "nixcache_upstreams"
 * shared memory zone, one word per upstream); when it runs out, the
 * first request to see it takes the probe (compare-and-set of the time)
 * while the others keep skipping it, and an answer clears it.
 *
 * Negative cache: when every upstream said absent, <prefix>absent:<hash>
 * is set for nixcache_upstream_negative_ttl and the narinfo lookup (one
 * MGET) answers 404 without asking while it lasts.
 *
 * FileHash: the narinfo served is recorded in Redis (<prefix>upstream:<hash>,
 * a day) and the NAR route checks the NAR against its FileSize (before the
 * header) and FileHash (before its last bytes).
 *
 * Not built yet (issue 10): the ingest into our chunks.
 */

#include "ngx_http_nixcache.h"

#include "nixcache_hash.h"
#include "nixcache_route.h"
#include "nixcache_sign.h"


#define NGX_HTTP_NIXCACHE_UPSTREAM_RECORD_TTL  "86400"
#define NGX_HTTP_NIXCACHE_UPSTREAM_READ        65536


typedef struct {
    ngx_uint_t                       kind;     /* first: ..._CTX_UPSTREAM */
    ngx_str_t                        hash;     /* the store hash */
    ngx_uint_t                       next;     /* the next upstream */
    ngx_uint_t                       failed;   /* upstreams that failed */
    ngx_http_nixcache_upstream_t    *up;       /* the one asked now */
    ngx_http_request_t              *sr;

    u_char                          *buf;      /* narinfo: captured */
    size_t                           len;

    nixcache_narinfo_t               ni;       /* narinfo: to serve */

    ngx_uint_t                       status;   /* the subrequest's */
    off_t                            length;   /* NAR: Content-Length */
    off_t                            passed;   /* NAR: bytes passed on */

    ngx_str_t                        url;      /* NAR: the upstream's */
    off_t                            file_size;    /* NAR: FileSize, or 0 */
    u_char                           file_hash[NIXCACHE_SHA256_LEN];
    nixcache_sha256_t                sha;      /* NAR: of what came */
    u_char                          *rbuf;     /* NAR: read-back buffer */

    ngx_event_t                      timer;    /* the whole request's */

    unsigned                         nar:1;
    unsigned                         pass:1;   /* NAR: streaming on */
    unsigned                         check:1;  /* NAR: FileHash known */
    unsigned                         mismatch:1;   /* NAR: not FileHash's
                                                      or FileSize's */
    unsigned                         timedout:1;
    unsigned                         served:1; /* answered from ctx->up */
    unsigned                         overflow:1;
    unsigned                         sr_done:1;
    unsigned                         sr_error:1;
} ngx_http_nixcache_upstream_ctx_t;


static ngx_int_t ngx_http_nixcache_upstream_find(ngx_array_t *upstreams,
    ngx_str_t *name);
static ngx_int_t ngx_http_nixcache_upstream_ask(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx, ngx_str_t *url);
static ngx_int_t ngx_http_nixcache_upstream_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static void ngx_http_nixcache_upstream_resume(ngx_http_request_t *r);
static ngx_int_t ngx_http_nixcache_upstream_absent(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx);
static void ngx_http_nixcache_upstream_absent_set(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_upstream_record(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx);
static void ngx_http_nixcache_upstream_recorded(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_nixcache_upstream_record_reply(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_nixcache_upstream_record_read(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx, const char *text, size_t len);
static ngx_http_nixcache_upstream_ctx_t *ngx_http_nixcache_upstream_ctx(
    ngx_http_request_t *r);
static void ngx_http_nixcache_upstream_cleanup(void *data);
static void ngx_http_nixcache_upstream_timeout(ngx_event_t *ev);
static char *ngx_http_nixcache_upstream_time(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *value, size_t skip, ngx_uint_t zero, ngx_msec_t *ms);
static ngx_int_t ngx_http_nixcache_upstream_hash(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx, ngx_buf_t *b);
static ngx_int_t ngx_http_nixcache_upstream_narinfo_check(
    ngx_http_request_t *r, ngx_http_nixcache_upstream_ctx_t *ctx);
static ngx_int_t ngx_http_nixcache_upstream_nar_end(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx);
static ngx_http_nixcache_upstream_ctx_t *ngx_http_nixcache_upstream_sr_ctx(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_nixcache_upstream_header_filter(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_nixcache_upstream_body_filter(
    ngx_http_request_t *r, ngx_chain_t *in);
static ngx_int_t ngx_http_nixcache_upstream_capture(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx, ngx_buf_t *b);


static ngx_int_t ngx_http_nixcache_upstream_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_atomic_t *ngx_http_nixcache_upstream_down(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_t *up);
static ngx_uint_t ngx_http_nixcache_upstream_usable(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_t *up);
static void ngx_http_nixcache_upstream_health(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx);


/* upstreams with a health word, over all locations */
#define NGX_HTTP_NIXCACHE_UPSTREAMS_MAX  1024

#define NGX_HTTP_NIXCACHE_UPSTREAM_BACKOFF  10000

#define NGX_HTTP_NIXCACHE_UPSTREAM_NARINFO_TIMEOUT  10000
#define NGX_HTTP_NIXCACHE_UPSTREAM_NAR_TIMEOUT      3600000


static ngx_str_t  ngx_http_nixcache_upstream_zone_name =
    ngx_string("nixcache_upstreams");


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;

static ngx_str_t  ngx_http_nixcache_nar_type =
    ngx_string("application/x-nix-nar");


/*
 * nixcache_upstream NAME URI [key=NAME:BASE64]... [require_sigs=off]
 *     [backoff=TIME]
 *
 * URI: the internal location (proxy_pass to the upstream cache) the
 * paths are asked of, as URI<store hash>.narinfo and URI<its URL>.
 */

char *
ngx_http_nixcache_upstream(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_nixcache_loc_conf_t *nlcf = conf;

    u_char                         *p;
    ngx_str_t                      *value, key;
    ngx_uint_t                      i;
    const char                     *err;
    nixcache_sign_public_t         *pk;
    ngx_http_nixcache_upstream_t   *up;
    ngx_http_nixcache_main_conf_t  *nmcf;

    value = cf->args->elts;

    if (nlcf->upstreams == NULL) {
        nlcf->upstreams = ngx_array_create(cf->pool, 2,
                                           sizeof(ngx_http_nixcache_upstream_t));
        if (nlcf->upstreams == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (!nixcache_route_upstream_name((const char *) value[1].data,
                                      value[1].len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "nixcache_upstream: the name \"%V\" is not 1 to "
                           "%d of [0-9a-zA-Z_-]", &value[1],
                           NIXCACHE_ROUTE_UPSTREAM_NAME_MAX);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_nixcache_upstream_find(nlcf->upstreams, &value[1])
        != NGX_ERROR)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "nixcache_upstream \"%V\" is given twice",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (value[2].len == 0 || value[2].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "nixcache_upstream \"%V\": \"%V\" is not a URI "
                           "(the internal location with proxy_pass to the "
                           "upstream cache, as \"/_upstream/%V/\")",
                           &value[1], &value[2], &value[1]);
        return NGX_CONF_ERROR;
    }

    up = ngx_array_push(nlcf->upstreams);
    if (up == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(up, sizeof(ngx_http_nixcache_upstream_t));

    up->name = value[1];
    up->require_sigs = 1;
    up->backoff = NGX_HTTP_NIXCACHE_UPSTREAM_BACKOFF;
    up->narinfo_timeout = NGX_HTTP_NIXCACHE_UPSTREAM_NARINFO_TIMEOUT;
    up->nar_timeout = NGX_HTTP_NIXCACHE_UPSTREAM_NAR_TIMEOUT;

    /* its health word, in the zone made with the first upstream */

    nmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_nixcache_module);

    if (nmcf->upstream_zone == NULL) {
        nmcf->upstream_zone = ngx_shared_memory_add(cf,
                                       &ngx_http_nixcache_upstream_zone_name,
                                       8 * ngx_pagesize,
                                       &ngx_http_nixcache_module);
        if (nmcf->upstream_zone == NULL) {
            return NGX_CONF_ERROR;
        }

        nmcf->upstream_zone->init = ngx_http_nixcache_upstream_init_zone;
        nmcf->upstream_zone->data = ngx_pcalloc(cf->pool,
                                                sizeof(ngx_atomic_t *));
        if (nmcf->upstream_zone->data == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (nmcf->upstream_count == NGX_HTTP_NIXCACHE_UPSTREAMS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "nixcache_upstream: more than %d in all",
                           NGX_HTTP_NIXCACHE_UPSTREAMS_MAX);
        return NGX_CONF_ERROR;
    }

    up->index = nmcf->upstream_count++;

    /* the URI always ends with '/': paths are appended to it */

    if (value[2].data[value[2].len - 1] == '/') {
        up->uri = value[2];

    } else {
        p = ngx_pnalloc(cf->pool, value[2].len + 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        up->uri.data = p;
        up->uri.len = ngx_cpymem(p, value[2].data, value[2].len) - p;
        up->uri.data[up->uri.len++] = '/';
    }

    up->keys = ngx_array_create(cf->pool, 1, sizeof(nixcache_sign_public_t));
    if (up->keys == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 3; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            key.data = value[i].data + 4;
            key.len = value[i].len - 4;

            pk = ngx_array_push(up->keys);
            if (pk == NULL) {
                return NGX_CONF_ERROR;
            }

            err = NULL;

            if (nixcache_sign_public_parse(pk, (const char *) key.data,
                                           key.len, &err)
                != 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "nixcache_upstream \"%V\": \"%V\" is not "
                                   "a public key (NAME:BASE64, as in Nix's "
                                   "trusted-public-keys): %s", &value[1],
                                   &key, err);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "require_sigs=off") == 0) {
            up->require_sigs = 0;
            continue;
        }

        if (ngx_strcmp(value[i].data, "require_sigs=on") == 0) {
            up->require_sigs = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "backoff=", 8) == 0) {
            if (ngx_http_nixcache_upstream_time(cf, &value[1], &value[i], 8, 0,
                                                &up->backoff)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "narinfo_timeout=", 16) == 0) {
            if (ngx_http_nixcache_upstream_time(cf, &value[1], &value[i], 16,
                                                0, &up->narinfo_timeout)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "nar_timeout=", 12) == 0) {
            if (ngx_http_nixcache_upstream_time(cf, &value[1], &value[i], 12,
                                                1, &up->nar_timeout)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "nixcache_upstream \"%V\": unknown parameter "
                           "\"%V\"", &value[1], &value[i]);
        return NGX_CONF_ERROR;
    }

    if (up->require_sigs && up->keys->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "nixcache_upstream \"%V\" needs the upstream's "
                           "public key (key=NAME:BASE64), or "
                           "\"require_sigs=off\" to serve what it sends "
                           "unchecked", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The zone holds one word per upstream: 0 when it is up, else the
 * ngx_current_msec (a monotonic clock shared by the workers) until which
 * it is skipped.  After a reload every upstream starts up (indexes may
 * have changed); old workers' last writes land in a word of the same
 * zone, a wrong skip for one back-off at worst.
 */

static ngx_int_t
ngx_http_nixcache_upstream_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_atomic_t  **odown = data;

    ngx_atomic_t     **down;
    ngx_slab_pool_t   *shpool;

    down = shm_zone->data;

    if (odown != NULL && *odown != NULL) {
        *down = *odown;
        ngx_memzero((void *) *down,
                    NGX_HTTP_NIXCACHE_UPSTREAMS_MAX * sizeof(ngx_atomic_t));
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    *down = ngx_slab_calloc(shpool,
                            NGX_HTTP_NIXCACHE_UPSTREAMS_MAX
                            * sizeof(ngx_atomic_t));

    return (*down != NULL) ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_nixcache_upstream_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_nixcache_upstream_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_nixcache_upstream_body_filter;

    return NGX_OK;
}


/* A time parameter of nixcache_upstream: "<param>=TIME", above 0 or not. */

static char *
ngx_http_nixcache_upstream_time(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *value, size_t skip, ngx_uint_t zero, ngx_msec_t *ms)
{
    ngx_str_t  s;
    ngx_int_t  n;

    s.data = value->data + skip;
    s.len = value->len - skip;

    n = ngx_parse_time(&s, 0);

    if (n == NGX_ERROR || (n == 0 && !zero)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "nixcache_upstream \"%V\": \"%V\" is not a time%s",
                           name, value, zero ? "" : " above 0");
        return NGX_CONF_ERROR;
    }

    *ms = (ngx_msec_t) n;

    return NGX_CONF_OK;
}


/*
 * A narinfo not in Redis: asks the upstreams.  NGX_DONE when a
 * subrequest was started (the request is finalized from its end), else
 * the status to answer.
 */

ngx_int_t
ngx_http_nixcache_upstream_narinfo(ngx_http_request_t *r, ngx_str_t *hash)
{
    ngx_http_nixcache_upstream_ctx_t  *ctx;

    ctx = ngx_http_nixcache_upstream_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->buf = ngx_pnalloc(r->pool, NIXCACHE_NARINFO_MAX_LEN);
    if (ctx->buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->hash.data = ngx_pnalloc(r->pool, hash->len);
    if (ctx->hash.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->hash.len = ngx_cpymem(ctx->hash.data, hash->data, hash->len)
                    - ctx->hash.data;

    ngx_http_nixcache_set_ctx(r, ctx, NGX_HTTP_NIXCACHE_CTX_UPSTREAM);

    return ngx_http_nixcache_upstream_ask(r, ctx, NULL);
}


/*
 * GET/HEAD upstream/<name>/<store hash>/<URL>: the NAR at that upstream,
 * streamed.  name and url are from the route, checked there.
 */

ngx_int_t
ngx_http_nixcache_upstream_nar(ngx_http_request_t *r, ngx_str_t *hash,
    ngx_str_t *name, ngx_str_t *url)
{
    size_t                             argvlen[2];
    ngx_int_t                          i;
    ngx_str_t                          key;
    const char                        *argv[2];
    ngx_http_nixcache_loc_conf_t      *nlcf;
    ngx_http_nixcache_upstream_ctx_t  *ctx;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    if (nlcf->upstreams == NULL) {
        return NGX_HTTP_NOT_FOUND;
    }

    i = ngx_http_nixcache_upstream_find(nlcf->upstreams, name);

    if (i == NGX_ERROR) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: no nixcache_upstream \"%V\" here", name);
        return NGX_HTTP_NOT_FOUND;
    }

    ctx = ngx_http_nixcache_upstream_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->hash = *hash;
    ctx->url = *url;
    ctx->nar = 1;
    ctx->next = (ngx_uint_t) i;

    ngx_http_nixcache_set_ctx(r, ctx, NGX_HTTP_NIXCACHE_CTX_UPSTREAM);

    /* first the narinfo this upstream sent for the path, if recorded */

    if (ngx_http_nixcache_key(r, &key, NIXCACHE_KEY_KIND_UPSTREAM,
                              hash->data, hash->len)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "GET";
    argvlen[0] = sizeof("GET") - 1;
    argv[1] = (const char *) key.data;
    argvlen[1] = key.len;

    if (ngx_http_nixcache_redis_command(r,
                                        ngx_http_nixcache_upstream_record_reply,
                                        ctx, 2, argv, argvlen)
        != NGX_OK)
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_nixcache_upstream_record_reply(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    ngx_http_nixcache_upstream_ctx_t  *ctx = data;

    ngx_int_t  rc;

    if (reply == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    if (reply->type == REDIS_REPLY_STRING) {
        ngx_http_nixcache_upstream_record_read(r, ctx, reply->str,
                                               reply->len);

    } else if (reply->type != REDIS_REPLY_NIL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: upstream record of \"%V\": unexpected "
                      "reply type %d", &ctx->hash, reply->type);
    }

    if (!ctx->check) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upstream NAR \"%V\" of \"%V\": no "
                      "narinfo of this upstream with this URL recorded "
                      "(served over a day ago, or by another): proxied "
                      "without the FileHash check", &ctx->url, &ctx->hash);
    }

    rc = ngx_http_nixcache_upstream_ask(r, ctx, &ctx->url);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/*
 * "<upstream name>\n<narinfo>" as recorded: its FileHash and FileSize
 * are what the NAR must be, when it is this upstream's and this URL's.
 */

static void
ngx_http_nixcache_upstream_record_read(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx, const char *text, size_t len)
{
    const char                    *nl, *err;
    nixcache_narinfo_t             ni;
    ngx_http_nixcache_upstream_t  *up;
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);
    up = (ngx_http_nixcache_upstream_t *) nlcf->upstreams->elts + ctx->next;

    nl = memchr(text, '\n', len);

    if (nl == NULL
        || (size_t) (nl - text) != up->name.len
        || ngx_strncmp(text, up->name.data, up->name.len) != 0)
    {
        return;
    }

    len -= nl + 1 - text;
    text = nl + 1;

    if (nixcache_narinfo_parse(&ni, text, len, &err) != 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: upstream record of \"%V\" does not parse: "
                      "%s", &ctx->hash, err);
        return;
    }

    if (ni.url.len != ctx->url.len
        || ngx_strncmp(ni.url.data, ctx->url.data, ctx->url.len) != 0
        || ni.file_hash.len == 0
        || nixcache_hash_parse(ctx->file_hash, ni.file_hash.data,
                               ni.file_hash.len)
           != 0)
    {
        return;
    }

    ctx->file_size = (off_t) ni.file_size;
    ctx->check = 1;
}


/*
 * For $nixcache_source: the name of the upstream this request was
 * answered from (a narinfo, or the header of its NAR), or NGX_DECLINED.
 */

ngx_int_t
ngx_http_nixcache_upstream_source(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_http_nixcache_upstream_ctx_t  *ctx;

    /* any request's: a context of another kind is no answer here */

    ctx = ngx_http_get_module_ctx(r, ngx_http_nixcache_module);

    if (ctx == NULL || ctx->kind != NGX_HTTP_NIXCACHE_CTX_UPSTREAM
        || !ctx->served)
    {
        return NGX_DECLINED;
    }

    *name = ctx->up->name;

    return NGX_OK;
}


/* A request's pull-through state, freed (hash, timer) with the request. */

static ngx_http_nixcache_upstream_ctx_t *
ngx_http_nixcache_upstream_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t                *cln;
    ngx_http_nixcache_upstream_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_nixcache_upstream_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_nixcache_upstream_cleanup;
    cln->data = ctx;

    ctx->timer.handler = ngx_http_nixcache_upstream_timeout;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;
    ctx->timer.cancelable = 1;

    return ctx;
}


static void
ngx_http_nixcache_upstream_cleanup(void *data)
{
    ngx_http_nixcache_upstream_ctx_t  *ctx = data;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    nixcache_sha256_free(&ctx->sha);
}


/*
 * narinfo_timeout= or nar_timeout= ran out while the upstream still
 * holds its connection (a black hole, or an answer trickling in): the
 * connection is made to time out, as proxy_read_timeout would, so that
 * nginx's proxy ends it (504), and the subrequest's end decides as for
 * any failure.  Bytes an upstream already delivered to the proxy's
 * buffers are not its: a slow client draining them is not timed here.
 */

static void
ngx_http_nixcache_upstream_timeout(ngx_event_t *ev)
{
    ngx_http_nixcache_upstream_ctx_t *ctx = ev->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *sr;

    sr = ctx->sr;

    if (ctx->sr_done || sr->upstream == NULL
        || sr->upstream->peer.connection == NULL)
    {
        return;
    }

    c = sr->upstream->peer.connection;

    ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                  "nixcache: upstream \"%V\": \"%V\" not done in %M ms "
                  "(%s): timed out", &ctx->up->name, &sr->uri,
                  ctx->nar ? ctx->up->nar_timeout : ctx->up->narinfo_timeout,
                  ctx->nar ? "nar_timeout" : "narinfo_timeout");

    ctx->timedout = 1;

    c->read->timedout = 1;
    c->read->delayed = 0;
    c->read->handler(c->read);
}


/*
 * Starts the subrequest to upstream ctx->next: the narinfo of ctx->hash,
 * or the NAR at url.  NGX_DONE, or the status to answer when no upstream
 * is left (404 when every one said absent, else 503).
 */

static ngx_int_t
ngx_http_nixcache_upstream_ask(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx, ngx_str_t *url)
{
    u_char                        *p;
    ngx_str_t                      uri;
    ngx_http_request_t            *sr;
    ngx_msec_t                     timeout;
    ngx_http_post_subrequest_t    *ps;
    ngx_http_nixcache_upstream_t  *ups;
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    ups = nlcf->upstreams->elts;

    for ( ;; ) {
        if (ctx->next >= nlcf->upstreams->nelts) {
            return ctx->failed ? NGX_HTTP_SERVICE_UNAVAILABLE
                               : NGX_HTTP_NOT_FOUND;
        }

        ctx->up = &ups[ctx->next++];

        if (ngx_http_nixcache_upstream_usable(r, ctx->up)) {
            break;
        }

        if (ctx->nar) {
            return NGX_HTTP_BAD_GATEWAY;
        }

        ctx->failed++;
    }

    uri.len = ctx->up->uri.len
              + (ctx->nar ? url->len
                          : ctx->hash.len + sizeof(".narinfo") - 1);

    uri.data = ngx_pnalloc(r->pool, uri.len);
    if (uri.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(uri.data, ctx->up->uri.data, ctx->up->uri.len);

    if (ctx->nar) {
        ngx_memcpy(p, url->data, url->len);

    } else {
        p = ngx_cpymem(p, ctx->hash.data, ctx->hash.len);
        ngx_memcpy(p, ".narinfo", sizeof(".narinfo") - 1);
    }

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ps->handler = ngx_http_nixcache_upstream_done;
    ps->data = ctx;

    ctx->len = 0;
    ctx->status = 0;
    ctx->length = -1;
    ctx->passed = 0;
    ctx->pass = 0;
    ctx->overflow = 0;
    ctx->sr_done = 0;
    ctx->sr_error = 0;
    ctx->timedout = 0;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "nixcache upstream \"%V\": \"%V\"", &ctx->up->name, &uri);

    if (ngx_http_subrequest(r, &uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * No client header reaches the upstream (tokens, cookies, Range,
     * Accept-Encoding), whatever the proxy location passes on.
     */

    ngx_memzero(&sr->headers_in, sizeof(ngx_http_headers_in_t));

    if (ngx_list_init(&sr->headers_in.headers, r->pool, 1,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sr->headers_in.content_length_n = -1;
    sr->headers_in.keep_alive_n = -1;
    sr->request_body = NULL;
    sr->header_only = 0;

    ngx_http_set_ctx(sr, ctx, ngx_http_nixcache_module);

    ctx->sr = sr;

    timeout = ctx->nar ? ctx->up->nar_timeout : ctx->up->narinfo_timeout;

    if (timeout != 0) {
        ngx_add_timer(&ctx->timer, timeout);
    }

    r->write_event_handler = ngx_http_nixcache_upstream_resume;

    return NGX_DONE;
}


/*
 * The subrequest's end (called again when it ends a second time, after
 * its output was flushed, and then only that call counts).  Returns NGX_OK so that
 * nginx makes no error page of an upstream's failure; the main request
 * decides.  A NAR cut short after its header was sent ends the client's
 * connection (NGX_ERROR).
 */

static ngx_int_t
ngx_http_nixcache_upstream_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_http_nixcache_upstream_ctx_t  *ctx = data;

    if (ctx->sr != sr || ctx->sr_done) {
        return rc;
    }

    if (rc == NGX_ERROR || rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        ctx->sr_error = 1;
    }

    /*
     * Output still held by a filter above ours (the copy filter reading
     * the proxy's temporary file): not the end yet, nginx finalizes the
     * subrequest again once it is flushed.
     */

    if (sr->buffered || sr->postponed) {
        return (ctx->pass && ctx->sr_error) ? NGX_ERROR : NGX_OK;
    }

    ctx->sr_done = 1;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "nixcache upstream done: rc %i, status %ui, passed %O",
                   rc, ctx->status, ctx->passed);

    if (ctx->mismatch) {
        return ctx->pass ? NGX_ERROR : NGX_OK;
    }

    if (ctx->pass && ctx->passed != ctx->length) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "nixcache: upstream \"%V\" NAR \"%V\" ended after "
                      "%O of its %O bytes: the client's connection is "
                      "closed", &ctx->up->name, &sr->uri, ctx->passed,
                      ctx->length);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* The main request, woken when its subrequest is done. */

static void
ngx_http_nixcache_upstream_resume(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    ngx_http_nixcache_upstream_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPSTREAM);

    if (ctx == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (!ctx->sr_done || !ctx->sr->done) {
        return;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_http_nixcache_upstream_health(r, ctx);

    if (ctx->nar) {
        ngx_http_finalize_request(r,
                                  ngx_http_nixcache_upstream_nar_end(r, ctx));
        return;
    }

    rc = ngx_http_nixcache_upstream_narinfo_check(r, ctx);

    if (rc == NGX_DONE) {
        return;
    }

    if (rc == NGX_DECLINED) {
        rc = ngx_http_nixcache_upstream_ask(r, ctx, NULL);

        if (rc == NGX_HTTP_NOT_FOUND) {
            rc = ngx_http_nixcache_upstream_absent(r, ctx);
        }

        if (rc == NGX_DONE) {
            return;
        }
    }

    ngx_http_finalize_request(r, rc);
}


/*
 * Every upstream said absent: kept as <prefix>absent:<hash> for
 * nixcache_upstream_negative_ttl, so that a burst of misses for one
 * path asks the upstreams once (the narinfo lookup reads it with the
 * narinfo).  The answer is 404 whether Redis took it or not.
 */

static ngx_int_t
ngx_http_nixcache_upstream_absent(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx)
{
    u_char                        *p;
    size_t                         argvlen[5];
    ngx_str_t                      key;
    const char                    *argv[5];
    u_char                         ttl[NGX_INT_T_LEN];
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    if (nlcf->upstream_negative_ttl == 0) {
        return NGX_HTTP_NOT_FOUND;
    }

    if (ngx_http_nixcache_key(r, &key, NIXCACHE_KEY_KIND_ABSENT,
                              ctx->hash.data, ctx->hash.len)
        != NGX_OK)
    {
        return NGX_HTTP_NOT_FOUND;
    }

    p = ngx_sprintf(ttl, "%M", nlcf->upstream_negative_ttl);

    argv[0] = "SET";
    argvlen[0] = sizeof("SET") - 1;
    argv[1] = (const char *) key.data;
    argvlen[1] = key.len;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = "PX";
    argvlen[3] = 2;
    argv[4] = (const char *) ttl;
    argvlen[4] = p - ttl;

    if (ngx_http_nixcache_redis_command(r,
                                        ngx_http_nixcache_upstream_absent_set,
                                        ctx, 5, argv, argvlen)
        != NGX_OK)
    {
        return NGX_HTTP_NOT_FOUND;
    }

    return NGX_DONE;
}


static void
ngx_http_nixcache_upstream_absent_set(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    ngx_http_nixcache_upstream_ctx_t  *ctx = data;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "nixcache: \"%V\" absent upstream not kept: redis "
                      "said \"%*s\"", &ctx->hash, reply->len, reply->str);
    }

    ngx_http_finalize_request(r, NGX_HTTP_NOT_FOUND);
}


/*
 * The narinfo answer of ctx->up: served (what the send returns), or
 * NGX_DECLINED to ask the next upstream, counted absent or failed.
 */

static ngx_int_t
ngx_http_nixcache_upstream_narinfo_check(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx)
{
    u_char                        *p, *url;
    int                            trusted;
    size_t                         url_len;
    ngx_str_t                     *name;
    const char                    *err;
    nixcache_narinfo_t             ni;
    ngx_http_nixcache_upstream_t  *up;

    up = ctx->up;
    name = &up->name;

    switch (ctx->status) {

    case NGX_HTTP_OK:
        break;

    case NGX_HTTP_NOT_FOUND:
    case NGX_HTTP_FORBIDDEN:    /* S3 answers 403 for a missing key */
    case 410:                   /* Gone */
        return NGX_DECLINED;

    case 0:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: upstream \"%V\" did not answer for "
                      "\"%V.narinfo\" (the proxy's error is above): not "
                      "counted as absent", name, &ctx->hash);
        ctx->failed++;
        return NGX_DECLINED;

    default:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: upstream \"%V\" failed for \"%V.narinfo\" "
                      "(status %ui): not counted as absent", name,
                      &ctx->hash, ctx->status);
        ctx->failed++;
        return NGX_DECLINED;
    }

    if (ctx->sr_error || ctx->overflow) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: upstream \"%V\": \"%V.narinfo\" %s", name,
                      &ctx->hash, ctx->overflow ? "is over 64 KiB"
                                                : "was cut short");
        ctx->failed++;
        return NGX_DECLINED;
    }

    if (nixcache_narinfo_parse(&ni, (const char *) ctx->buf, ctx->len, &err)
        != 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: upstream \"%V\": \"%V.narinfo\" does not "
                      "parse: %s", name, &ctx->hash, err);
        ctx->failed++;
        return NGX_DECLINED;
    }

    if (!nixcache_narinfo_is_path(&ni, (const char *) ctx->hash.data,
                                  ctx->hash.len))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: upstream \"%V\": \"%V.narinfo\" is for "
                      "another store path \"%*s\"", name, &ctx->hash,
                      ni.store_path.len, ni.store_path.data);
        ctx->failed++;
        return NGX_DECLINED;
    }

    if (!nixcache_route_upstream_url(ni.url.data, ni.url.len, 0)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: upstream \"%V\": \"%V.narinfo\" has a URL "
                      "this cache cannot stand for: \"%*s\"", name,
                      &ctx->hash, ni.url.len, ni.url.data);
        ctx->failed++;
        return NGX_DECLINED;
    }

    /*
     * A path without a valid signature by a trusted key is what Nix
     * itself would refuse: this upstream does not have it (absent, so a
     * client falls back to building it or to its other substituters).
     */

    if (up->require_sigs) {
        trusted = nixcache_sign_trusted(up->keys->elts, up->keys->nelts, &ni);

        if (trusted == -1) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (!trusted) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "nixcache: upstream \"%V\": \"%V.narinfo\" has no "
                          "valid signature by its trusted keys: not "
                          "served", name, &ctx->hash);
            return NGX_DECLINED;
        }
    }

    /* upstream/<name>/<store hash>/<URL> */

    url_len = sizeof("upstream/") - 1 + name->len + 1 + ctx->hash.len + 1
              + ni.url.len;

    p = ngx_pnalloc(r->pool, url_len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    url = p;

    p = ngx_cpymem(p, "upstream/", sizeof("upstream/") - 1);
    p = ngx_cpymem(p, name->data, name->len);
    *p++ = '/';
    p = ngx_cpymem(p, ctx->hash.data, ctx->hash.len);
    *p++ = '/';
    ngx_memcpy(p, ni.url.data, ni.url.len);

    ni.url.data = (const char *) url;
    ni.url.len = url_len;

    ctx->ni = ni;
    ctx->served = 1;

    return ngx_http_nixcache_upstream_record(r, ctx);
}


/*
 * Records the narinfo the upstream sent (its name first) as
 * <prefix>upstream:<hash> for a day, for the NAR route's FileHash check,
 * then serves ours (NGX_DONE), or serves it at once when Redis cannot be
 * asked (the NAR is then proxied unchecked).
 */

static ngx_int_t
ngx_http_nixcache_upstream_record(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx)
{
    u_char     *p, *value;
    size_t      argvlen[5];
    ngx_str_t   key, *name;
    const char *argv[5];

    name = &ctx->up->name;

    value = ngx_pnalloc(r->pool, name->len + 1 + ctx->len);

    if (value == NULL
        || ngx_http_nixcache_key(r, &key, NIXCACHE_KEY_KIND_UPSTREAM,
                                 ctx->hash.data, ctx->hash.len)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(value, name->data, name->len);
    *p++ = '\n';
    p = ngx_cpymem(p, ctx->buf, ctx->len);

    argv[0] = "SET";
    argvlen[0] = sizeof("SET") - 1;
    argv[1] = (const char *) key.data;
    argvlen[1] = key.len;
    argv[2] = (const char *) value;
    argvlen[2] = p - value;
    argv[3] = "EX";
    argvlen[3] = 2;
    argv[4] = NGX_HTTP_NIXCACHE_UPSTREAM_RECORD_TTL;
    argvlen[4] = sizeof(NGX_HTTP_NIXCACHE_UPSTREAM_RECORD_TTL) - 1;

    if (ngx_http_nixcache_redis_command(r, ngx_http_nixcache_upstream_recorded,
                                        ctx, 5, argv, argvlen)
        != NGX_OK)
    {
        return ngx_http_nixcache_narinfo_serve(r, &ctx->ni);
    }

    return NGX_DONE;
}


static void
ngx_http_nixcache_upstream_recorded(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_nixcache_upstream_ctx_t  *ctx = data;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "nixcache: upstream narinfo of \"%V\" not recorded: "
                      "redis said \"%*s\"", &ctx->hash, reply->len,
                      reply->str);
    }

    ngx_http_finalize_request(r, ngx_http_nixcache_narinfo_serve(r, &ctx->ni));
}


/* The end of a NAR: what to finalize the main request with. */

static ngx_int_t
ngx_http_nixcache_upstream_nar_end(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx)
{
    if (ctx->status == NGX_HTTP_OK && r->header_sent) {

        if (r->header_only) {
            return NGX_OK;
        }

        return ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    switch (ctx->status) {

    case NGX_HTTP_NOT_FOUND:
    case NGX_HTTP_FORBIDDEN:
    case 410:                   /* Gone */
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: upstream \"%V\" has no NAR \"%V\" (status "
                      "%ui) for \"%V\"", &ctx->up->name, &ctx->sr->uri,
                      ctx->status, &ctx->hash);
        return NGX_HTTP_NOT_FOUND;

    case NGX_HTTP_OK:
        if (ctx->mismatch) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "nixcache: upstream \"%V\" NAR \"%V\" is %O "
                          "bytes, its narinfo's FileSize %O",
                          &ctx->up->name, &ctx->sr->uri, ctx->length,
                          ctx->file_size);
            return NGX_HTTP_BAD_GATEWAY;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: upstream \"%V\" NAR \"%V\" came without a "
                      "Content-Length", &ctx->up->name, &ctx->sr->uri);
        return NGX_HTTP_BAD_GATEWAY;

    case 0:
        /* nginx logged why (connect, timeout): the subrequest's rc */
        return NGX_HTTP_BAD_GATEWAY;

    default:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: upstream \"%V\" NAR \"%V\": status %ui",
                      &ctx->up->name, &ctx->sr->uri, ctx->status);
        return NGX_HTTP_BAD_GATEWAY;
    }
}


static ngx_atomic_t *
ngx_http_nixcache_upstream_down(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_t *up)
{
    ngx_atomic_t                   **down;
    ngx_http_nixcache_main_conf_t   *nmcf;

    nmcf = ngx_http_get_module_main_conf(r, ngx_http_nixcache_module);
    down = nmcf->upstream_zone->data;

    return &(*down)[up->index];
}


/*
 * Whether to ask up now: 1 when it is up, or when its back-off ran out
 * and this request took the probe; 0 when it is skipped.
 */

static ngx_uint_t
ngx_http_nixcache_upstream_usable(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_t *up)
{
    ngx_msec_t     now;
    ngx_atomic_t  *down;
    ngx_atomic_uint_t  until;

    down = ngx_http_nixcache_upstream_down(r, up);
    until = *down;

    if (until == 0) {
        return 1;
    }

    now = ngx_current_msec;

    if ((ngx_msec_int_t) (until - now) > 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upstream \"%V\" is down for %M ms more: "
                      "not asked", &up->name, (ngx_msec_t) (until - now));
        return 0;
    }

    /* the others skip it while this request probes */

    if (ngx_atomic_cmp_set(down, until, (now + up->backoff) | 1)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upstream \"%V\" was down: asking it again",
                      &up->name);
        return 1;
    }

    return 0;
}


/*
 * After an upstream's answer: no answer (connect error, timeout) or a
 * 5xx marks it down for its back-off; any other answer marks it up.
 */

static void
ngx_http_nixcache_upstream_health(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx)
{
    ngx_atomic_t                  *down;
    ngx_atomic_uint_t              until;
    ngx_http_nixcache_upstream_t  *up;

    up = ctx->up;
    down = ngx_http_nixcache_upstream_down(r, up);
    until = *down;

    if (ctx->status == 0 || ctx->status >= NGX_HTTP_INTERNAL_SERVER_ERROR
        || ctx->timedout)
    {
        *down = (ngx_current_msec + up->backoff) | 1;

        if (until == 0) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "nixcache: upstream \"%V\" is down: not asked for "
                          "%M ms", &up->name, up->backoff);
        }

        return;
    }

    if (until != 0) {
        *down = 0;

        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "nixcache: upstream \"%V\" is up again", &up->name);
    }
}


/* The index of the upstream named name, or NGX_ERROR. */

static ngx_int_t
ngx_http_nixcache_upstream_find(ngx_array_t *upstreams, ngx_str_t *name)
{
    ngx_uint_t                     i;
    ngx_http_nixcache_upstream_t  *ups;

    ups = upstreams->elts;

    for (i = 0; i < upstreams->nelts; i++) {
        if (ups[i].name.len == name->len
            && ngx_strncmp(ups[i].name.data, name->data, name->len) == 0)
        {
            return i;
        }
    }

    return NGX_ERROR;
}


/* The context of one of our upstream subrequests, else NULL. */

static ngx_http_nixcache_upstream_ctx_t *
ngx_http_nixcache_upstream_sr_ctx(ngx_http_request_t *r)
{
    ngx_http_nixcache_upstream_ctx_t  *ctx;

    if (r == r->main) {
        return NULL;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_nixcache_module);

    if (ctx == NULL || ctx->kind != NGX_HTTP_NIXCACHE_CTX_UPSTREAM
        || ctx->sr != r)
    {
        return NULL;
    }

    return ctx;
}


static ngx_int_t
ngx_http_nixcache_upstream_header_filter(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    ngx_http_request_t                *mr;
    ngx_http_nixcache_upstream_ctx_t  *ctx;

    ctx = ngx_http_nixcache_upstream_sr_ctx(r);

    if (ctx == NULL) {
        return ngx_http_next_header_filter(r);
    }

    ctx->status = r->headers_out.status;
    ctx->length = r->headers_out.content_length_n;

    if (!ctx->nar || ctx->status != NGX_HTTP_OK || ctx->length < 0) {
        return NGX_OK;
    }

    if (ctx->file_size > 0 && ctx->length != ctx->file_size) {
        ctx->mismatch = 1;
        return NGX_OK;
    }

    if (ctx->check && nixcache_sha256_init(&ctx->sha) != 0) {
        return NGX_ERROR;
    }

    /* a NAR: the main request's header, then the bytes as they come */

    mr = r->main;

    mr->headers_out.status = NGX_HTTP_OK;
    mr->headers_out.content_length_n = ctx->length;
    mr->headers_out.content_type = ngx_http_nixcache_nar_type;
    mr->headers_out.content_type_len = ngx_http_nixcache_nar_type.len;
    mr->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(mr);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    ctx->pass = mr->header_only ? 0 : 1;
    ctx->served = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_nixcache_upstream_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in)
{
    off_t                              size;
    ngx_buf_t                         *b;
    ngx_chain_t                       *cl;
    unsigned char                      digest[NIXCACHE_SHA256_LEN];
    ngx_http_nixcache_upstream_ctx_t  *ctx;

    ctx = ngx_http_nixcache_upstream_sr_ctx(r);

    if (ctx == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    if (ctx->pass) {
        size = 0;

        for (cl = in; cl; cl = cl->next) {
            b = cl->buf;

            if (ngx_buf_special(b)) {
                continue;
            }

            if (ctx->check && ngx_http_nixcache_upstream_hash(r, ctx, b)
                              != NGX_OK)
            {
                return NGX_ERROR;
            }

            size += ngx_buf_size(b);
        }

        /*
         * The last bytes are passed on only once the whole NAR is known
         * to be its FileHash's: a client never gets all of a wrong one.
         */

        if (ctx->check && size > 0 && ctx->passed + size == ctx->length) {
            nixcache_sha256_final(&ctx->sha, digest);

            if (ngx_memcmp(digest, ctx->file_hash, sizeof(digest)) != 0) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "nixcache: upstream \"%V\" NAR \"%V\" is not "
                              "its narinfo's FileHash: the client's "
                              "connection is closed before its last bytes",
                              &ctx->up->name, &r->uri);
                ctx->mismatch = 1;
                return NGX_ERROR;
            }
        }

        ctx->passed += size;

        return ngx_http_next_body_filter(r, in);
    }

    /* a narinfo is captured, anything else swallowed */

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (!ctx->nar && ctx->status == NGX_HTTP_OK
            && ngx_http_nixcache_upstream_capture(r, ctx, b) != NGX_OK)
        {
            return NGX_ERROR;
        }

        b->pos = b->last;

        if (b->in_file) {
            b->file_pos = b->file_last;
        }
    }

    return NGX_OK;
}


/*
 * Hashes a buffer of the NAR; a part nginx put in the proxy's temporary
 * file is read back from it (what was just written), a window at a time.
 */

static ngx_int_t
ngx_http_nixcache_upstream_hash(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx, ngx_buf_t *b)
{
    off_t    pos;
    size_t   n;
    ssize_t  got;

    if (ngx_buf_in_memory(b)) {
        nixcache_sha256_update(&ctx->sha, b->pos, b->last - b->pos);
        return NGX_OK;
    }

    if (ctx->rbuf == NULL) {
        ctx->rbuf = ngx_palloc(r->pool, NGX_HTTP_NIXCACHE_UPSTREAM_READ);
        if (ctx->rbuf == NULL) {
            return NGX_ERROR;
        }
    }

    for (pos = b->file_pos; pos < b->file_last; pos += n) {
        n = (size_t) ngx_min(b->file_last - pos,
                             NGX_HTTP_NIXCACHE_UPSTREAM_READ);

        got = ngx_read_file(b->file, ctx->rbuf, n, pos);

        if (got != (ssize_t) n) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "nixcache: upstream \"%V\": the NAR's temporary "
                          "file \"%V\" could not be read back",
                          &ctx->up->name, &b->file->name);
            return NGX_ERROR;
        }

        nixcache_sha256_update(&ctx->sha, ctx->rbuf, n);
    }

    return NGX_OK;
}


/*
 * Appends a buffer of a narinfo answer to ctx->buf.  With proxy_buffering
 * on, nginx may have put part of a large answer in its temporary file:
 * that part (at most the 64 KiB kept) is read back from it, a read of
 * what was just written.
 */

static ngx_int_t
ngx_http_nixcache_upstream_capture(ngx_http_request_t *r,
    ngx_http_nixcache_upstream_ctx_t *ctx, ngx_buf_t *b)
{
    off_t    size;
    size_t   room, n;
    ssize_t  got;

    if (ngx_buf_special(b)) {
        return NGX_OK;
    }

    size = ngx_buf_size(b);
    room = NIXCACHE_NARINFO_MAX_LEN - ctx->len;

    if (size > (off_t) room) {
        ctx->overflow = 1;
        return NGX_OK;
    }

    n = (size_t) size;

    if (ngx_buf_in_memory(b)) {
        ngx_memcpy(ctx->buf + ctx->len, b->pos, n);
        ctx->len += n;
        return NGX_OK;
    }

    got = ngx_read_file(b->file, ctx->buf + ctx->len, n, b->file_pos);

    if (got != (ssize_t) n) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: upstream \"%V\": the narinfo's temporary "
                      "file \"%V\" could not be read back", &ctx->up->name,
                      &b->file->name);
        return NGX_ERROR;
    }

    ctx->len += n;

    return NGX_OK;
}
