/*
 * ngx_http_nixcache_module: directives, routing, nix-cache-info and
 * narinfo.  Redis I/O is in ngx_http_nixcache_redis.c, /nar/ in
 * ngx_http_nixcache_nar.c, shared helpers in ngx_http_nixcache_util.c.
 */

#include "ngx_http_nixcache.h"

#include "nixcache_hash.h"
#include "nixcache_narinfo.h"
#include "nixcache_nix32.h"
#include "nixcache_route.h"
#include "nixcache_sign.h"


#define NGX_HTTP_NIXCACHE_PRIORITY_MAX  65535
#define NGX_HTTP_NIXCACHE_WINDOW_MAX    65536


/* ngx_http_nixcache_route() results besides ngx_http_nixcache_route_e */
#define NGX_HTTP_NIXCACHE_NO_ROUTE      0
#define NGX_HTTP_NIXCACHE_BAD_HASH      (-1)


static ngx_int_t ngx_http_nixcache_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_nixcache_route(ngx_http_request_t *r,
    ngx_str_t *hash, ngx_str_t *up);
static ngx_int_t ngx_http_nixcache_not_allowed(ngx_http_request_t *r);
static ngx_int_t ngx_http_nixcache_info(ngx_http_request_t *r);
static ngx_int_t ngx_http_nixcache_narinfo(ngx_http_request_t *r,
    ngx_str_t *hash);
static void ngx_http_nixcache_narinfo_reply(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_narinfo_send(ngx_http_request_t *r,
    ngx_str_t *key, ngx_str_t *hash, const char *text, size_t len);
static ngx_int_t ngx_http_nixcache_send(ngx_http_request_t *r,
    ngx_str_t *type, u_char *body, size_t len);

static char *ngx_http_nixcache_chunks(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_nixcache_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_nixcache_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_nixcache_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_nixcache_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_nixcache_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_nixcache_init_process(ngx_cycle_t *cycle);
static void ngx_http_nixcache_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_nixcache_priority_bounds = {
    ngx_conf_check_num_bounds, 0, NGX_HTTP_NIXCACHE_PRIORITY_MAX
};


static ngx_conf_num_bounds_t  ngx_http_nixcache_window_bounds = {
    ngx_conf_check_num_bounds, 1, NGX_HTTP_NIXCACHE_WINDOW_MAX
};


static ngx_conf_num_bounds_t  ngx_http_nixcache_jobs_bounds = {
    ngx_conf_check_num_bounds, 1, 1024
};


static ngx_conf_enum_t  ngx_http_nixcache_compressions[] = {
    { ngx_string("zstd"), NGX_HTTP_NIXCACHE_COMPRESSION_ZSTD },
    { ngx_string("none"), NGX_HTTP_NIXCACHE_COMPRESSION_NONE },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_nixcache_commands[] = {

    { ngx_string("nixcache"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, enable),
      NULL },

    { ngx_string("nixcache_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_nixcache_redis_address,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("nixcache_redis_auth"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_nixcache_redis_auth,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("nixcache_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_nixcache_main_conf_t, redis_timeout),
      NULL },

    { ngx_string("nixcache_manifest_window"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_nixcache_main_conf_t, manifest_window),
      &ngx_http_nixcache_window_bounds },

    { ngx_string("nixcache_upload_jobs"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_nixcache_main_conf_t, upload_jobs),
      &ngx_http_nixcache_jobs_bounds },

    { ngx_string("nixcache_redis_prefix"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, prefix),
      NULL },

    { ngx_string("nixcache_chunks"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_nixcache_chunks,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, chunks),
      NULL },

    { ngx_string("nixcache_priority"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, priority),
      &ngx_http_nixcache_priority_bounds },

    { ngx_string("nixcache_nar_compression"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, compression),
      &ngx_http_nixcache_compressions },

    /* metrics and health: ngx_http_nixcache_metrics.c */

    { ngx_string("nixcache_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_nixcache_metrics_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("nixcache_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_nixcache_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("nixcache_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_nixcache_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* the S3 tier: ngx_http_nixcache_s3.c */

    { ngx_string("nixcache_s3_endpoint"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, s3.endpoint),
      NULL },

    { ngx_string("nixcache_s3_bucket"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, s3.bucket),
      NULL },

    { ngx_string("nixcache_s3_region"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, s3.region),
      NULL },

    { ngx_string("nixcache_s3_prefix"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, s3.prefix),
      NULL },

    { ngx_string("nixcache_s3_path_style"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, s3.path_style),
      NULL },

    { ngx_string("nixcache_s3_credentials"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_nixcache_s3_credentials,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, s3.credentials),
      NULL },

    { ngx_string("nixcache_s3_timeout"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, s3.timeout),
      NULL },

    { ngx_string("nixcache_s3_prefetch"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, s3.prefetch),
      NULL },

    { ngx_string("nixcache_s3_thread_pool"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, s3.thread_pool_name),
      NULL },

    { ngx_string("nixcache_s3_credentials_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_nixcache_main_conf_t, s3_creds_interval),
      NULL },

    { ngx_string("nixcache_s3_max_connections"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_nixcache_main_conf_t, s3_max_connections),
      NULL },

    /* the disk tier's size limit: ngx_http_nixcache_evict.c */

    { ngx_string("nixcache_chunks_max_size"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_nixcache_evict_max_size,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("nixcache_chunks_evict_interval"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, chunks_evict_interval),
      NULL },

    /* access and signing: ngx_http_nixcache_auth.c */

    { ngx_string("nixcache_upstream"),
      NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_nixcache_upstream,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("nixcache_upstream_negative_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF
      |NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, upstream_negative_ttl),
      NULL },

    { ngx_string("nixcache_sign_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF
      |NGX_CONF_TAKE1,
      ngx_http_nixcache_sign_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("nixcache_push_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF
      |NGX_CONF_TAKE1,
      ngx_http_nixcache_tokens,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, push_tokens),
      NULL },

    { ngx_string("nixcache_admin_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF
      |NGX_CONF_TAKE1,
      ngx_http_nixcache_tokens,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, admin_tokens),
      NULL },

    { ngx_string("nixcache_read_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF
      |NGX_CONF_TAKE1,
      ngx_http_nixcache_tokens,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, read_tokens),
      NULL },

    /* uploads: ngx_http_nixcache_upload.c */

    { ngx_string("nixcache_upload"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, upload),
      NULL },

    { ngx_string("nixcache_upload_max_nar_size"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, upload_max_nar_size),
      NULL },

    { ngx_string("nixcache_upload_max_chunks"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, upload_max_chunks),
      NULL },

    { ngx_string("nixcache_upload_thread_pool"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_nixcache_loc_conf_t, upload_thread_pool),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_nixcache_module_ctx = {
    ngx_http_nixcache_add_variables,       /* preconfiguration */
    ngx_http_nixcache_postconfiguration,   /* postconfiguration */

    ngx_http_nixcache_create_main_conf,    /* create main configuration */
    ngx_http_nixcache_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_nixcache_create_loc_conf,     /* create location configuration */
    ngx_http_nixcache_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_nixcache_module = {
    NGX_MODULE_V1,
    &ngx_http_nixcache_module_ctx,         /* module context */
    ngx_http_nixcache_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_nixcache_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_nixcache_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_nixcache_info_type =
    ngx_string("text/x-nix-cache-info");
static ngx_str_t  ngx_http_nixcache_narinfo_type =
    ngx_string("text/x-nix-narinfo");


static ngx_int_t
ngx_http_nixcache_handler(ngx_http_request_t *r)
{
    ngx_int_t   rc, route;
    ngx_str_t   hash, up[2];

    /*
     * Credentials before anything else (Redis, the body): a PUT needs a
     * push token when nixcache_push_tokens is set, everything else a read
     * token when nixcache_read_tokens is (see ngx_http_nixcache_auth.c
     * for why this is here and not in the access phase).
     */

    rc = ngx_http_nixcache_auth_check(r, (r->method & NGX_HTTP_PUT)
                                         ? NGX_HTTP_NIXCACHE_AUTH_PUSH
                                         : NGX_HTTP_NIXCACHE_AUTH_READ);
    if (rc != NGX_OK) {
        return rc;
    }

    if (r->method & (NGX_HTTP_PUT|NGX_HTTP_HEAD)) {
        rc = ngx_http_nixcache_upload_handler(r);

        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_nixcache_not_allowed(r);
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    route = ngx_http_nixcache_route(r, &hash, up);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "nixcache route: %i \"%V\"", route, &hash);

    switch (route) {

    case NGX_HTTP_NIXCACHE_ROUTE_INFO:
        return ngx_http_nixcache_info(r);

    case NGX_HTTP_NIXCACHE_ROUTE_NARINFO:
        return ngx_http_nixcache_narinfo(r, &hash);

    case NGX_HTTP_NIXCACHE_ROUTE_NAR:
    case NGX_HTTP_NIXCACHE_ROUTE_NAR_ZST:
        return ngx_http_nixcache_nar_handler(r, &hash,
                                             (ngx_http_nixcache_route_e)
                                             route);

    case NGX_HTTP_NIXCACHE_ROUTE_UPSTREAM:
        return ngx_http_nixcache_upstream_nar(r, &hash, &up[0], &up[1]);

    case NGX_HTTP_NIXCACHE_BAD_HASH:
        return NGX_HTTP_BAD_REQUEST;

    default:
        return NGX_HTTP_NOT_FOUND;
    }
}


/*
 * Returns a route, NGX_HTTP_NIXCACHE_NO_ROUTE (404) or
 * NGX_HTTP_NIXCACHE_BAD_HASH (a known route shape with a malformed hash:
 * 400); the matching is nixcache_route_rel() and nixcache_route_match().
 * For the upstream route, up[0] is the upstream's name, up[1] the URL.
 */

static ngx_int_t
ngx_http_nixcache_route(ngx_http_request_t *r, ngx_str_t *hash,
    ngx_str_t *up)
{
    ngx_str_t         rel;
    nixcache_route_t  rt;

    ngx_str_null(hash);

    if (ngx_http_nixcache_route_rel(r, &rel) != NGX_OK) {
        return NGX_HTTP_NIXCACHE_NO_ROUTE;
    }

    nixcache_route_match(&rt, (const char *) rel.data, rel.len);

    hash->data = rel.data + rt.hash_off;
    hash->len = rt.hash_len;

    switch (rt.route) {

    case NIXCACHE_ROUTE_INFO:
        return NGX_HTTP_NIXCACHE_ROUTE_INFO;

    case NIXCACHE_ROUTE_NARINFO:
        return NGX_HTTP_NIXCACHE_ROUTE_NARINFO;

    case NIXCACHE_ROUTE_NAR:
        return NGX_HTTP_NIXCACHE_ROUTE_NAR;

    case NIXCACHE_ROUTE_NAR_ZST:
        return NGX_HTTP_NIXCACHE_ROUTE_NAR_ZST;

    case NIXCACHE_ROUTE_UPSTREAM:
        up[0].data = rel.data + rt.name_off;
        up[0].len = rt.name_len;
        up[1].data = rel.data + rt.url_off;
        up[1].len = rel.len - rt.url_off;
        return NGX_HTTP_NIXCACHE_ROUTE_UPSTREAM;

    case NIXCACHE_ROUTE_BAD_HASH:
        return NGX_HTTP_NIXCACHE_BAD_HASH;

    default:
        return NGX_HTTP_NIXCACHE_NO_ROUTE;
    }
}


static ngx_int_t
ngx_http_nixcache_not_allowed(ngx_http_request_t *r)
{
    ngx_str_t  allow = ngx_string("GET, HEAD");

    if (ngx_http_nixcache_add_header(r, "Allow", &allow, NULL) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_HTTP_NOT_ALLOWED;
}


static ngx_int_t
ngx_http_nixcache_info(ngx_http_request_t *r)
{
    u_char                        *body, *last;
    size_t                         len;
    ngx_uint_t                     i, n;
    nixcache_sign_public_t         pk;
    nixcache_sign_secret_t       **keys;
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    /*
     * PublicKey: the keys the module signs with, for `nixcache use` (Nix
     * reads StoreDir, WantMassQuery and Priority and passes over the rest)
     */

    n = (nlcf->sign_keys != NULL) ? nlcf->sign_keys->nelts : 0;
    keys = (n != 0) ? nlcf->sign_keys->elts : NULL;

    len = sizeof("StoreDir: /nix/store\n"
                 "WantMassQuery: 1\n"
                 "Priority: \n") - 1
          + NGX_INT_T_LEN
          + n * (sizeof("PublicKey: \n") - 1 + NIXCACHE_SIGN_TEXT_MAX);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = ngx_sprintf(body, "StoreDir: /nix/store\n"
                             "WantMassQuery: 1\n"
                             "Priority: %ui\n",
                       nlcf->priority);

    for (i = 0; i < n; i++) {
        nixcache_sign_secret_to_public(&pk, keys[i]);
        last = ngx_cpymem(last, "PublicKey: ", sizeof("PublicKey: ") - 1);
        last += nixcache_sign_public_format((char *) last,
                                            NIXCACHE_SIGN_TEXT_MAX, &pk);
        *last++ = '\n';
    }

    return ngx_http_nixcache_send(r, &ngx_http_nixcache_info_type, body,
                                  last - body);
}


/*
 * GET <prefix>narinfo:<hash>; with upstreams and a negative cache, MGET
 * of it and <prefix>absent:<hash> (one round trip either way).
 */

static ngx_int_t
ngx_http_nixcache_narinfo(ngx_http_request_t *r, ngx_str_t *hash)
{
    int                            argc;
    size_t                         argvlen[3];
    ngx_str_t                     *key, absent;
    const char                    *argv[3];
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    /* the key outlives the command: the reply handler logs it */

    key = ngx_palloc(r->pool, sizeof(ngx_str_t));
    if (key == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_nixcache_key(r, key, NIXCACHE_KEY_KIND_NARINFO, hash->data,
                              hash->len)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "GET";
    argvlen[0] = sizeof("GET") - 1;
    argv[1] = (const char *) key->data;
    argvlen[1] = key->len;
    argc = 2;

    if (nlcf->upstreams != NULL && nlcf->upstream_negative_ttl != 0) {
        if (ngx_http_nixcache_key(r, &absent, NIXCACHE_KEY_KIND_ABSENT,
                                  hash->data, hash->len)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        argv[0] = "MGET";
        argvlen[0] = sizeof("MGET") - 1;
        argv[2] = (const char *) absent.data;
        argvlen[2] = absent.len;
        argc = 3;
    }

    if (ngx_http_nixcache_redis_command(r, ngx_http_nixcache_narinfo_reply,
                                        key, argc, argv, argvlen)
        != NGX_OK)
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_nixcache_narinfo_reply(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_str_t  *key = data;

    ngx_int_t                      rc;
    ngx_str_t                      hash;
    redisReply                    *absent;
    ngx_http_nixcache_loc_conf_t  *nlcf;

    if (reply == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    hash.len = NIXCACHE_STORE_HASH_NIX32_LEN;
    hash.data = key->data + key->len - hash.len;

    absent = NULL;

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        /* MGET narinfo absent */
        absent = reply->element[1];
        reply = reply->element[0];
    }

    if (reply->type == REDIS_REPLY_NIL) {
        nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

        if (absent != NULL && absent->type != REDIS_REPLY_NIL) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "nixcache: \"%V\" absent upstream, not asked "
                           "again yet", &hash);
            ngx_http_finalize_request(r, NGX_HTTP_NOT_FOUND);
            return;
        }

        rc = (nlcf->upstreams != NULL)
             ? ngx_http_nixcache_upstream_narinfo(r, &hash)
             : NGX_HTTP_NOT_FOUND;

        if (rc != NGX_DONE) {
            ngx_http_finalize_request(r, rc);
        }

        return;
    }

    if (reply->type != REDIS_REPLY_STRING) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: redis key \"%V\": unexpected reply type %d",
                      key, reply->type);
        ngx_http_finalize_request(r, NGX_HTTP_BAD_GATEWAY);
        return;
    }

    rc = ngx_http_nixcache_narinfo_send(r, key, &hash, reply->str,
                                        reply->len);

    ngx_http_finalize_request(r, rc);
}


/*
 * Renders the stored narinfo for the location's nixcache_nar_compression:
 * the URL always points at this cache's /nar/ route for the NarHash.
 */

static ngx_int_t
ngx_http_nixcache_narinfo_send(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *hash, const char *text, size_t len)
{
    const char                    *err;
    unsigned char                  digest[NIXCACHE_SHA256_LEN];
    nixcache_narinfo_t             ni;
    nixcache_narinfo_point_t       point;
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    if (nixcache_narinfo_parse(&ni, text, len, &err) != 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: narinfo in redis key \"%V\" does not parse: "
                      "%s", key, err);
        return NGX_HTTP_BAD_GATEWAY;
    }

    if (nixcache_hash_parse(digest, ni.nar_hash.data, ni.nar_hash.len) != 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: narinfo in redis key \"%V\" has a bad "
                      "NarHash", key);
        return NGX_HTTP_BAD_GATEWAY;
    }

    /* a narinfo stored under another path's key must not be served */

    if (!nixcache_narinfo_is_path(&ni, (const char *) hash->data, hash->len))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: narinfo in redis key \"%V\" is for another "
                      "store path \"%*s\"", key, ni.store_path.len,
                      ni.store_path.data);
        return NGX_HTTP_BAD_GATEWAY;
    }

    /* stored narinfos carry the stored frames' FileHash already */

    nixcache_narinfo_point(&ni, &point,
                           nlcf->compression
                           == NGX_HTTP_NIXCACHE_COMPRESSION_NONE
                           ? NIXCACHE_NARINFO_NONE : NIXCACHE_NARINFO_ZSTD,
                           digest, NULL, 0);

    return ngx_http_nixcache_narinfo_serve(r, &ni);
}


ngx_int_t
ngx_http_nixcache_narinfo_serve(ngx_http_request_t *r, nixcache_narinfo_t *ni)
{
    size_t   n;
    u_char  *body;

    if (ngx_http_nixcache_auth_sign(r, ni) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = nixcache_narinfo_render(NULL, 0, ni);

    body = ngx_pnalloc(r->pool, n);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (nixcache_narinfo_render((char *) body, n, ni) != n) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_nixcache_send(r, &ngx_http_nixcache_narinfo_type, body, n);
}


static ngx_int_t
ngx_http_nixcache_send(ngx_http_request_t *r, ngx_str_t *type, u_char *body,
    size_t len)
{
    ngx_buf_t    *b;
    ngx_int_t     rc;
    ngx_chain_t   out;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static char *
ngx_http_nixcache_chunks(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_nixcache_loc_conf_t *nlcf = conf;

    ngx_str_t  *value, path;

    if (nlcf->chunks.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];

    while (path.len > 1 && path.data[path.len - 1] == '/') {
        path.len--;
    }

    if (path.len == 0) {
        return "is empty";
    }

    if (ngx_conf_full_name(cf->cycle, &path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* a copy, NUL-terminated for open() */

    nlcf->chunks.len = path.len;
    nlcf->chunks.data = ngx_pnalloc(cf->pool, path.len + 1);
    if (nlcf->chunks.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(nlcf->chunks.data, path.data, path.len + 1);

    return NGX_CONF_OK;
}


static void *
ngx_http_nixcache_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_nixcache_main_conf_t  *nmcf;

    nmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_nixcache_main_conf_t));
    if (nmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     nmcf->redis = { 0, NULL };
     *     nmcf->redis_host = NULL;
     *     nmcf->redis_port = 0;
     *     nmcf->redis_db = 0;
     *     nmcf->redis_auth = NULL;
     *     nmcf->redis_worker = NULL;
     */

    nmcf->redis_timeout = NGX_CONF_UNSET_MSEC;
    nmcf->manifest_window = NGX_CONF_UNSET_UINT;
    nmcf->s3_max_connections = NGX_CONF_UNSET_UINT;
    nmcf->s3_creds_interval = NGX_CONF_UNSET_MSEC;
    nmcf->upload_jobs = NGX_CONF_UNSET_UINT;

    ngx_queue_init(&nmcf->upload_waiting);

    return nmcf;
}


static char *
ngx_http_nixcache_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_nixcache_main_conf_t *nmcf = conf;

    if (nmcf->redis.data == NULL) {
        ngx_str_set(&nmcf->redis, "127.0.0.1:6379");
        nmcf->redis_host = (u_char *) "127.0.0.1";
        nmcf->redis_port = 6379;
        nmcf->redis_db = -1;
    }

    ngx_conf_init_msec_value(nmcf->redis_timeout, 2000);
    ngx_conf_init_uint_value(nmcf->manifest_window, 1024);
    ngx_conf_init_uint_value(nmcf->s3_max_connections, 64);
    ngx_conf_init_msec_value(nmcf->s3_creds_interval, 10000);
    ngx_conf_init_uint_value(nmcf->upload_jobs, 4);

    if (nmcf->redis_timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_redis_timeout\" must be positive");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_nixcache_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_nixcache_loc_conf_t));
    if (nlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     nlcf->prefix = { 0, NULL };
     *     nlcf->chunks = { 0, NULL };
     *     nlcf->sign_keys = NULL;
     */

    nlcf->enable = NGX_CONF_UNSET;
    nlcf->priority = NGX_CONF_UNSET_UINT;
    nlcf->compression = NGX_CONF_UNSET_UINT;
    nlcf->admin_tokens = NGX_CONF_UNSET_PTR;
    nlcf->push_tokens = NGX_CONF_UNSET_PTR;
    nlcf->read_tokens = NGX_CONF_UNSET_PTR;
    nlcf->upload = NGX_CONF_UNSET;
    nlcf->upload_max_nar_size = NGX_CONF_UNSET;
    nlcf->upload_max_chunks = NGX_CONF_UNSET_UINT;
    nlcf->upstream_negative_ttl = NGX_CONF_UNSET_MSEC;

    ngx_http_nixcache_s3_create_conf(&nlcf->s3);
    ngx_http_nixcache_evict_create_conf(nlcf);

    return nlcf;
}


static char *
ngx_http_nixcache_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_nixcache_loc_conf_t *prev = parent;
    ngx_http_nixcache_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_str_value(conf->prefix, prev->prefix,
                             NIXCACHE_DEFAULT_PREFIX);
    ngx_conf_merge_uint_value(conf->priority, prev->priority, 30);
    ngx_conf_merge_uint_value(conf->compression, prev->compression,
                              NGX_HTTP_NIXCACHE_COMPRESSION_ZSTD);

    if (conf->chunks.data == NULL) {
        conf->chunks = prev->chunks;
    }

    if (ngx_http_nixcache_s3_merge_conf(cf, &prev->s3, &conf->s3)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_nixcache_evict_merge_conf(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->sign_keys == NULL) {
        conf->sign_keys = prev->sign_keys;
    }

    if (conf->upstreams == NULL) {
        conf->upstreams = prev->upstreams;
    }

    ngx_conf_merge_msec_value(conf->upstream_negative_ttl,
                              prev->upstream_negative_ttl, 5000);

    /* unset stays unset: the upload merge tells it from "off" */

    ngx_conf_merge_ptr_value(conf->admin_tokens, prev->admin_tokens,
                             NGX_CONF_UNSET_PTR);
    ngx_conf_merge_ptr_value(conf->push_tokens, prev->push_tokens,
                             NGX_CONF_UNSET_PTR);
    ngx_conf_merge_ptr_value(conf->read_tokens, prev->read_tokens,
                             NGX_CONF_UNSET_PTR);

    if (ngx_http_nixcache_upload_merge_conf(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->chunks.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache on\" in location \"%V\" requires "
                           "\"nixcache_chunks\"", &clcf->name);
        return NGX_CONF_ERROR;
    }

    /*
     * A location inside this one inherits "nixcache on"; one with a
     * handler of its own (nixcache_health, nixcache_metrics, proxy_pass)
     * keeps it.
     */

    if (clcf->handler == NULL) {
        clcf->handler = ngx_http_nixcache_handler;
    }

    if (ngx_http_nixcache_metrics_register(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_nixcache_postconfiguration(ngx_conf_t *cf)
{
    if (ngx_http_nixcache_upstream_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_nixcache_metrics_init(cf);
}


static ngx_int_t
ngx_http_nixcache_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_nixcache_redis_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_nixcache_s3_init_process(cycle) != NGX_OK
        || ngx_http_nixcache_s3_cred_init_process(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_nixcache_evict_init_process(cycle);
}


static void
ngx_http_nixcache_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_nixcache_redis_exit_process(cycle);
    ngx_http_nixcache_s3_exit_process(cycle);
}
