/*
 * Metrics: counters in a shared memory zone (nixcache_metrics_zone),
 * updated with atomics in the log phase, read by the nixcache_metrics
 * handler (Prometheus text 0.0.4, or JSON).  The nixcache_health handler
 * is in ngx_http_nixcache_health.c.
 *
 * The zone holds one fixed block of counters per cache (the Redis key
 * prefix of a "nixcache on" location), laid out when the zone is
 * initialized, so that every series exists, at 0, from startup.  A reload
 * that leaves the zone's name and size and the list of caches unchanged
 * keeps the counters.
 */

#include "ngx_http_nixcache.h"

#include "nixcache_route.h"


typedef enum {
    NGX_HTTP_NIXCACHE_M_OTHER = 0,
    NGX_HTTP_NIXCACHE_M_CACHE_INFO,
    NGX_HTTP_NIXCACHE_M_NARINFO,
    NGX_HTTP_NIXCACHE_M_NAR,
    NGX_HTTP_NIXCACHE_M_NAR_ZST,
    NGX_HTTP_NIXCACHE_M_UPLOAD,
    NGX_HTTP_NIXCACHE_M_ROUTES
} ngx_http_nixcache_metrics_route_e;


#define NGX_HTTP_NIXCACHE_M_CLASSES      5       /* 1xx .. 5xx */

#define NGX_HTTP_NIXCACHE_M_HIT          0
#define NGX_HTTP_NIXCACHE_M_MISS         1
#define NGX_HTTP_NIXCACHE_M_ERROR        2


/* The counters of one cache. */
typedef struct {
    ngx_atomic_t               requests[NGX_HTTP_NIXCACHE_M_ROUTES]
                                       [NGX_HTTP_NIXCACHE_M_CLASSES];
    ngx_atomic_t               narinfo[3];     /* hit, miss, error */
    ngx_atomic_t               nar_bytes[2];   /* nar, nar_zst */
    ngx_atomic_t               upload_nars;
    ngx_atomic_t               upload_bytes;
    ngx_atomic_t               chunks[2];      /* disk, s3 */
    ngx_atomic_t               chunk_bytes[2];
} ngx_http_nixcache_metrics_cache_t;


/* What the zone holds: the caches' names (in the zone too) and counters. */
typedef struct {
    ngx_atomic_t                       redis[NGX_HTTP_NIXCACHE_METRICS_REDIS_N];
    ngx_uint_t                         ncaches;
    ngx_str_t                         *names;
    ngx_http_nixcache_metrics_cache_t *caches;
} ngx_http_nixcache_metrics_shm_t;


/* shm_zone->data */
typedef struct {
    ngx_http_nixcache_main_conf_t       *nmcf;
    ngx_http_nixcache_metrics_shm_t     *sh;
} ngx_http_nixcache_metrics_zone_t;


static ngx_int_t ngx_http_nixcache_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_http_nixcache_metrics_same(
    ngx_http_nixcache_metrics_shm_t *sh, ngx_array_t *names);
static ngx_int_t ngx_http_nixcache_metrics_log(ngx_http_request_t *r);
static ngx_http_nixcache_metrics_cache_t *ngx_http_nixcache_metrics_cache(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_nixcache_metrics_handler(ngx_http_request_t *r);
static u_char *ngx_http_nixcache_metrics_escape(u_char *p, ngx_str_t *s);
static size_t ngx_http_nixcache_metrics_size(
    ngx_http_nixcache_metrics_shm_t *sh, ngx_uint_t json);
static u_char *ngx_http_nixcache_metrics_text(u_char *p,
    ngx_http_nixcache_metrics_shm_t *sh);
static u_char *ngx_http_nixcache_metrics_json(u_char *p,
    ngx_http_nixcache_metrics_shm_t *sh);


static const char  *ngx_http_nixcache_metrics_routes[] = {
    "other", "cache_info", "narinfo", "nar", "nar_zst", "upload"
};

static const char  *ngx_http_nixcache_metrics_results[] = {
    "hit", "miss", "error"
};

/* causes of a failed Redis command, NGX_HTTP_NIXCACHE_METRICS_REDIS_* */
static const char  *ngx_http_nixcache_metrics_redis_causes[] = {
    NULL, "unreachable", "timeout", "closed", "error_reply"
};

static const char  *ngx_http_nixcache_metrics_tiers[] = {
    "disk", "s3"
};

static const char  *ngx_http_nixcache_metrics_nar_routes[] = {
    "nar", "nar_zst"
};


/*
 * The per-cache counters after requests: one family each, n counters from
 * offset in ngx_http_nixcache_metrics_cache_t, told apart by label (n 1:
 * the cache label only; in JSON a number instead of an object).
 */
typedef struct {
    const char                *name;
    const char                *help;
    const char                *json;
    const char                *label;
    const char               **values;
    ngx_uint_t                 n;
    size_t                     offset;
} ngx_http_nixcache_metrics_family_t;


#define ngx_http_nixcache_metrics_at(field)                                  \
    offsetof(ngx_http_nixcache_metrics_cache_t, field)

static const ngx_http_nixcache_metrics_family_t
    ngx_http_nixcache_metrics_families[] =
{
    { "nixcache_narinfo_lookups_total",
      "narinfo GET/HEAD answered: hit (200), miss (404, absent), error "
      "(5xx).", "narinfo", "result", ngx_http_nixcache_metrics_results, 3,
      ngx_http_nixcache_metrics_at(narinfo) },

    { "nixcache_nar_sent_bytes_total",
      "NAR response body bytes sent, by route.", "nar_sent_bytes", "route",
      ngx_http_nixcache_metrics_nar_routes, 2,
      ngx_http_nixcache_metrics_at(nar_bytes) },

    { "nixcache_chunks_served_total",
      "Chunks of NAR responses, by where they came from: the disk tier or "
      "S3.", "chunks_served", "tier", ngx_http_nixcache_metrics_tiers, 2,
      ngx_http_nixcache_metrics_at(chunks) },

    { "nixcache_chunks_served_bytes_total",
      "Stored (compressed) bytes of those chunks.", "chunks_served_bytes",
      "tier", ngx_http_nixcache_metrics_tiers, 2,
      ngx_http_nixcache_metrics_at(chunk_bytes) },

    { "nixcache_upload_nars_total",
      "NARs uploaded (PUT /nar/... answered 2xx).", "upload_nars", NULL,
      NULL, 1, ngx_http_nixcache_metrics_at(upload_nars) },

    { "nixcache_upload_received_bytes_total",
      "Request body bytes of uploads answered 2xx.", "upload_received_bytes",
      NULL, NULL, 1, ngx_http_nixcache_metrics_at(upload_bytes) },
};

#undef ngx_http_nixcache_metrics_at

#define NGX_HTTP_NIXCACHE_M_FAMILIES                                         \
    (sizeof(ngx_http_nixcache_metrics_families)                              \
     / sizeof(ngx_http_nixcache_metrics_family_t))


static ngx_atomic_uint_t
ngx_http_nixcache_metrics_value(ngx_http_nixcache_metrics_cache_t *mc,
    const ngx_http_nixcache_metrics_family_t *f, ngx_uint_t k)
{
    return ((ngx_atomic_t *) ((u_char *) mc + f->offset))[k];
}


/* The longest line of the text format, label values excluded. */
#define NGX_HTTP_NIXCACHE_M_LINE  (128 + NGX_ATOMIC_T_LEN)


char *
ngx_http_nixcache_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_nixcache_main_conf_t *nmcf = conf;

    ssize_t                            size;
    ngx_str_t                         *value;
    ngx_shm_zone_t                    *shm_zone;
    ngx_http_nixcache_metrics_zone_t  *zone;

    if (nmcf->metrics_zone != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR || size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_metrics_zone\": invalid size \"%V\" "
                           "(at least %uz)", &value[2], 8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_nixcache_metrics_zone_t));
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    zone->nmcf = nmcf;

    shm_zone = ngx_shared_memory_add(cf, &value[1], size,
                                     &ngx_http_nixcache_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &value[1]);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_nixcache_metrics_init_zone;
    shm_zone->data = zone;

    nmcf->metrics_zone = shm_zone;

    return NGX_CONF_OK;
}


/*
 * Registers the location's cache (its key prefix) for the counters and
 * remembers its index: called from the merge of every "nixcache on".
 */

ngx_int_t
ngx_http_nixcache_metrics_register(ngx_conf_t *cf,
    ngx_http_nixcache_loc_conf_t *conf)
{
    ngx_str_t                      *name;
    ngx_uint_t                      i;
    ngx_http_nixcache_main_conf_t  *nmcf;

    nmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_nixcache_module);

    if (nmcf->metrics_caches == NULL) {
        nmcf->metrics_caches = ngx_array_create(cf->pool, 4,
                                                sizeof(ngx_str_t));
        if (nmcf->metrics_caches == NULL) {
            return NGX_ERROR;
        }
    }

    name = nmcf->metrics_caches->elts;

    for (i = 0; i < nmcf->metrics_caches->nelts; i++) {
        if (name[i].len == conf->prefix.len
            && ngx_strncmp(name[i].data, conf->prefix.data, name[i].len) == 0)
        {
            conf->metrics_cache = i + 1;
            return NGX_OK;
        }
    }

    name = ngx_array_push(nmcf->metrics_caches);
    if (name == NULL) {
        return NGX_ERROR;
    }

    *name = conf->prefix;
    conf->metrics_cache = nmcf->metrics_caches->nelts;

    return NGX_OK;
}


/* The log phase handler: called from the module's postconfiguration. */

ngx_int_t
ngx_http_nixcache_metrics_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt            *h;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_nixcache_main_conf_t  *nmcf;

    /* without a zone the log phase has nothing of ours to run */

    nmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_nixcache_module);

    if (nmcf->metrics_zone == NULL) {
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_nixcache_metrics_log;

    return NGX_OK;
}


static ngx_int_t
ngx_http_nixcache_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_nixcache_metrics_zone_t *ozone = data;

    size_t                             size;
    u_char                            *p;
    ngx_str_t                         *names;
    ngx_uint_t                         i, n;
    ngx_slab_pool_t                   *shpool;
    ngx_http_nixcache_metrics_shm_t   *sh;
    ngx_http_nixcache_metrics_zone_t  *zone;

    zone = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    n = zone->nmcf->metrics_caches ? zone->nmcf->metrics_caches->nelts : 0;
    names = n ? zone->nmcf->metrics_caches->elts : NULL;

    if (ozone != NULL) {
        sh = ozone->sh;

        if (ngx_http_nixcache_metrics_same(sh, zone->nmcf->metrics_caches)) {
            zone->sh = sh;
            return NGX_OK;
        }

        /*
         * Other caches: start again at 0.  Old workers still finishing
         * requests may add to the freed block (now perhaps the new one) a
         * few times: a miscount, never a write outside the zone.
         */

        if (sh != NULL) {
            ngx_slab_free(shpool, sh);
        }
    }

    if (shm_zone->shm.exists) {
        /* not reached on Unix: the zone's memory is new or an old one's */
        return NGX_ERROR;
    }

    size = sizeof(ngx_http_nixcache_metrics_shm_t)
           + n * (sizeof(ngx_str_t)
                  + sizeof(ngx_http_nixcache_metrics_cache_t));

    for (i = 0; i < n; i++) {
        size += names[i].len;
    }

    sh = ngx_slab_calloc(shpool, size);
    if (sh == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "nixcache: metrics zone \"%V\" is too small for %ui "
                      "caches (%uz bytes needed)", &shm_zone->shm.name, n,
                      size);
        return NGX_ERROR;
    }

    sh->ncaches = n;
    sh->caches = (ngx_http_nixcache_metrics_cache_t *) (sh + 1);
    sh->names = (ngx_str_t *) (sh->caches + n);

    p = (u_char *) (sh->names + n);

    for (i = 0; i < n; i++) {
        sh->names[i].len = names[i].len;
        sh->names[i].data = p;
        p = ngx_cpymem(p, names[i].data, names[i].len);
    }

    zone->sh = sh;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_nixcache_metrics_same(ngx_http_nixcache_metrics_shm_t *sh,
    ngx_array_t *names)
{
    ngx_str_t   *name;
    ngx_uint_t   i, n;

    n = names ? names->nelts : 0;

    if (sh == NULL || sh->ncaches != n) {
        return 0;
    }

    name = n ? names->elts : NULL;

    for (i = 0; i < n; i++) {
        if (name[i].len != sh->names[i].len
            || ngx_strncmp(name[i].data, sh->names[i].data, name[i].len) != 0)
        {
            return 0;
        }
    }

    return 1;
}


static ngx_http_nixcache_metrics_cache_t *
ngx_http_nixcache_metrics_cache(ngx_http_request_t *r)
{
    ngx_http_nixcache_loc_conf_t       *nlcf;
    ngx_http_nixcache_main_conf_t      *nmcf;
    ngx_http_nixcache_metrics_zone_t   *zone;

    nmcf = ngx_http_get_module_main_conf(r, ngx_http_nixcache_module);

    if (nmcf->metrics_zone == NULL) {
        return NULL;
    }

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    if (!nlcf->enable || nlcf->metrics_cache == 0) {
        return NULL;
    }

    zone = nmcf->metrics_zone->data;

    if (zone->sh == NULL || nlcf->metrics_cache > zone->sh->ncaches) {
        return NULL;
    }

    return &zone->sh->caches[nlcf->metrics_cache - 1];
}


/*
 * Counts a request of a cache location when it is logged: its route (from
 * the method and the URI, as the handlers dispatch it), its status class,
 * and for narinfo and NAR routes what the status means.
 */

static ngx_int_t
ngx_http_nixcache_metrics_log(ngx_http_request_t *r)
{
    off_t                               sent;
    ngx_str_t                           rel;
    ngx_uint_t                          status, route;
    nixcache_route_t                    rt;
    ngx_http_nixcache_metrics_cache_t  *mc;

    mc = ngx_http_nixcache_metrics_cache(r);
    if (mc == NULL) {
        return NGX_OK;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;

    if (status < 100 || status > 599) {
        return NGX_OK;
    }

    rt.route = NIXCACHE_ROUTE_NONE;
    ngx_str_null(&rel);

    if (ngx_http_nixcache_route_rel(r, &rel) == NGX_OK) {
        nixcache_route_match(&rt, (const char *) rel.data, rel.len);
    }

    if (r->method == NGX_HTTP_PUT) {
        route = NGX_HTTP_NIXCACHE_M_UPLOAD;

    } else {
        switch (rt.route) {
        case NIXCACHE_ROUTE_INFO:
            route = NGX_HTTP_NIXCACHE_M_CACHE_INFO;
            break;
        case NIXCACHE_ROUTE_NARINFO:
            route = NGX_HTTP_NIXCACHE_M_NARINFO;
            break;
        case NIXCACHE_ROUTE_NAR:
            route = NGX_HTTP_NIXCACHE_M_NAR;
            break;
        case NIXCACHE_ROUTE_NAR_ZST:
            route = NGX_HTTP_NIXCACHE_M_NAR_ZST;
            break;
        default:
            route = NGX_HTTP_NIXCACHE_M_OTHER;
        }
    }

    (void) ngx_atomic_fetch_add(&mc->requests[route][status / 100 - 1], 1);

    switch (route) {

    case NGX_HTTP_NIXCACHE_M_NARINFO:
        if (r->method != NGX_HTTP_GET && r->method != NGX_HTTP_HEAD) {
            break;
        }

        if (status == NGX_HTTP_OK) {
            (void) ngx_atomic_fetch_add(&mc->narinfo[NGX_HTTP_NIXCACHE_M_HIT],
                                        1);

        } else if (status == NGX_HTTP_NOT_FOUND) {
            (void) ngx_atomic_fetch_add(
                                  &mc->narinfo[NGX_HTTP_NIXCACHE_M_MISS], 1);

        } else if (status >= 500) {
            (void) ngx_atomic_fetch_add(
                                 &mc->narinfo[NGX_HTTP_NIXCACHE_M_ERROR], 1);
        }

        break;

    case NGX_HTTP_NIXCACHE_M_NAR:
    case NGX_HTTP_NIXCACHE_M_NAR_ZST:
        sent = r->connection->sent - r->header_size;

        if (sent > 0) {
            (void) ngx_atomic_fetch_add(
                &mc->nar_bytes[route - NGX_HTTP_NIXCACHE_M_NAR], sent);
        }

        break;

    case NGX_HTTP_NIXCACHE_M_UPLOAD:
        if (status >= 300) {
            break;
        }

        if (rel.len > 4 && ngx_strncmp(rel.data, "nar/", 4) == 0)
        {
            (void) ngx_atomic_fetch_add(&mc->upload_nars, 1);
        }

        if (r->headers_in.content_length_n > 0) {
            (void) ngx_atomic_fetch_add(&mc->upload_bytes,
                                        r->headers_in.content_length_n);
        }

        break;
    }

    return NGX_OK;
}


/*
 * The chunk source's note: a chunk served from the disk tier (s3 == 0) or
 * fetched from S3, and its stored (compressed) size.
 */

void
ngx_http_nixcache_metrics_chunk(ngx_http_request_t *r, ngx_uint_t s3,
    size_t size)
{
    ngx_http_nixcache_metrics_cache_t  *mc;

    mc = ngx_http_nixcache_metrics_cache(r);
    if (mc == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&mc->chunks[s3 ? 1 : 0], 1);
    (void) ngx_atomic_fetch_add(&mc->chunk_bytes[s3 ? 1 : 0], size);
}


void
ngx_http_nixcache_metrics_redis(ngx_http_nixcache_main_conf_t *nmcf,
    ngx_uint_t what)
{
    ngx_http_nixcache_metrics_zone_t  *zone;

    if (nmcf->metrics_zone == NULL || what >= NGX_HTTP_NIXCACHE_METRICS_REDIS_N)
    {
        return;
    }

    zone = nmcf->metrics_zone->data;

    if (zone->sh != NULL) {
        (void) ngx_atomic_fetch_add(&zone->sh->redis[what], 1);
    }
}


char *
ngx_http_nixcache_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_nixcache_main_conf_t  *nmcf;

    nmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_nixcache_module);

    if (nmcf->metrics_zone == NULL) {
        return "requires \"nixcache_metrics_zone\" before it";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_nixcache_metrics_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_nixcache_metrics_handler(ngx_http_request_t *r)
{
    size_t                             size;
    u_char                            *p;
    ngx_int_t                          rc;
    ngx_buf_t                         *b;
    ngx_str_t                          arg;
    ngx_uint_t                         json;
    ngx_chain_t                        out;
    ngx_http_nixcache_main_conf_t     *nmcf;
    ngx_http_nixcache_metrics_shm_t   *sh;
    ngx_http_nixcache_metrics_zone_t  *zone;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    nmcf = ngx_http_get_module_main_conf(r, ngx_http_nixcache_module);
    zone = nmcf->metrics_zone->data;
    sh = zone->sh;

    json = ngx_http_arg(r, (u_char *) "format", 6, &arg) == NGX_OK
           && arg.len == 4 && ngx_strncmp(arg.data, "json", 4) == 0;

    size = ngx_http_nixcache_metrics_size(sh, json);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = json ? ngx_http_nixcache_metrics_json(b->pos, sh)
             : ngx_http_nixcache_metrics_text(b->pos, sh);

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    if (json) {
        ngx_str_set(&r->headers_out.content_type, "application/json");
    } else {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* An upper bound of the body: lines per cache times the longest line. */

static size_t
ngx_http_nixcache_metrics_size(ngx_http_nixcache_metrics_shm_t *sh,
    ngx_uint_t json)
{
    size_t      size, names;
    ngx_uint_t  i, lines;

    lines = NGX_HTTP_NIXCACHE_M_ROUTES * NGX_HTTP_NIXCACHE_M_CLASSES;

    for (i = 0; i < NGX_HTTP_NIXCACHE_M_FAMILIES; i++) {
        lines += ngx_http_nixcache_metrics_families[i].n;
    }

    names = 0;

    for (i = 0; i < sh->ncaches; i++) {
        /* a label value escaped: at most twice as long */
        names += 2 * sh->names[i].len;
    }

    size = 4096 + lines * (sh->ncaches * NGX_HTTP_NIXCACHE_M_LINE + names);

    return json ? 2 * size : size;
}


/* A label value in the text format and in JSON: \ and " escaped. */

static u_char *
ngx_http_nixcache_metrics_escape(u_char *p, ngx_str_t *s)
{
    ngx_uint_t  i;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] == '\\' || s->data[i] == '"') {
            *p++ = '\\';
            *p++ = s->data[i];

        } else if (s->data[i] < 0x20) {
            *p++ = '_';

        } else {
            *p++ = s->data[i];
        }
    }

    return p;
}


static u_char *
ngx_http_nixcache_metrics_text(u_char *p, ngx_http_nixcache_metrics_shm_t *sh)
{
    ngx_uint_t                          i, j, k;
    ngx_http_nixcache_metrics_cache_t  *mc;
    const ngx_http_nixcache_metrics_family_t  *f;

    p = ngx_cpymem(p, "# HELP nixcache_requests_total Requests to a cache "
                   "location, by route and status class.\n"
                   "# TYPE nixcache_requests_total counter\n",
                   sizeof("# HELP nixcache_requests_total Requests to a cache "
                   "location, by route and status class.\n"
                   "# TYPE nixcache_requests_total counter\n") - 1);

    for (i = 0; i < sh->ncaches; i++) {
        mc = &sh->caches[i];

        for (j = 0; j < NGX_HTTP_NIXCACHE_M_ROUTES; j++) {
            for (k = 0; k < NGX_HTTP_NIXCACHE_M_CLASSES; k++) {
                p = ngx_sprintf(p, "nixcache_requests_total{cache=\"");
                p = ngx_http_nixcache_metrics_escape(p, &sh->names[i]);
                p = ngx_sprintf(p, "\",route=\"%s\",status=\"%uixx\"} %uA\n",
                                ngx_http_nixcache_metrics_routes[j], k + 1,
                                mc->requests[j][k]);
            }
        }
    }

#define ngx_http_nixcache_metrics_head(p, name, type, help)                   \
    ngx_cpymem(p, "# HELP " name " " help "\n# TYPE " name " " type "\n",     \
               sizeof("# HELP " name " " help "\n# TYPE " name " " type "\n") \
               - 1)

    for (j = 0; j < NGX_HTTP_NIXCACHE_M_FAMILIES; j++) {
        f = &ngx_http_nixcache_metrics_families[j];

        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s counter\n", f->name,
                        f->help, f->name);

        for (i = 0; i < sh->ncaches; i++) {
            for (k = 0; k < f->n; k++) {
                p = ngx_sprintf(p, "%s{cache=\"", f->name);
                p = ngx_http_nixcache_metrics_escape(p, &sh->names[i]);

                if (f->label != NULL) {
                    p = ngx_sprintf(p, "\",%s=\"%s", f->label, f->values[k]);
                }

                p = ngx_sprintf(p, "\"} %uA\n",
                                ngx_http_nixcache_metrics_value(
                                    &sh->caches[i], f, k));
            }
        }
    }

    p = ngx_http_nixcache_metrics_head(p, "nixcache_redis_connects_total",
            "counter", "Connections to Redis opened (the first, and "
            "reconnections after a failure), all workers.");

    p = ngx_sprintf(p, "nixcache_redis_connects_total %uA\n",
                    sh->redis[NGX_HTTP_NIXCACHE_METRICS_REDIS_CONNECT]);

    p = ngx_http_nixcache_metrics_head(p, "nixcache_redis_failures_total",
            "counter", "Redis commands that failed, by cause: unreachable "
            "(no connection could be opened), timeout, closed (connection "
            "lost or refused), error_reply.");

    for (k = 1; k < NGX_HTTP_NIXCACHE_METRICS_REDIS_N; k++) {
        p = ngx_sprintf(p, "nixcache_redis_failures_total{cause=\"%s\"} %uA\n",
                        ngx_http_nixcache_metrics_redis_causes[k],
                        sh->redis[k]);
    }

#undef ngx_http_nixcache_metrics_head

    return p;
}


static u_char *
ngx_http_nixcache_metrics_json(u_char *p, ngx_http_nixcache_metrics_shm_t *sh)
{
    ngx_uint_t                          i, j, k;
    ngx_http_nixcache_metrics_cache_t  *mc;
    const ngx_http_nixcache_metrics_family_t  *f;

    p = ngx_sprintf(p, "{\"caches\":{");

    for (i = 0; i < sh->ncaches; i++) {
        mc = &sh->caches[i];

        p = ngx_sprintf(p, "%s\"", i ? "," : "");
        p = ngx_http_nixcache_metrics_escape(p, &sh->names[i]);
        p = ngx_sprintf(p, "\":{\"requests\":{");

        for (j = 0; j < NGX_HTTP_NIXCACHE_M_ROUTES; j++) {
            p = ngx_sprintf(p, "%s\"%s\":{", j ? "," : "",
                            ngx_http_nixcache_metrics_routes[j]);

            for (k = 0; k < NGX_HTTP_NIXCACHE_M_CLASSES; k++) {
                p = ngx_sprintf(p, "%s\"%uixx\":%uA", k ? "," : "", k + 1,
                                mc->requests[j][k]);
            }

            *p++ = '}';
        }

        *p++ = '}';

        for (j = 0; j < NGX_HTTP_NIXCACHE_M_FAMILIES; j++) {
            f = &ngx_http_nixcache_metrics_families[j];

            if (f->label == NULL) {
                p = ngx_sprintf(p, ",\"%s\":%uA", f->json,
                                ngx_http_nixcache_metrics_value(mc, f, 0));
                continue;
            }

            p = ngx_sprintf(p, ",\"%s\":{", f->json);

            for (k = 0; k < f->n; k++) {
                p = ngx_sprintf(p, "%s\"%s\":%uA", k ? "," : "", f->values[k],
                                ngx_http_nixcache_metrics_value(mc, f, k));
            }

            *p++ = '}';
        }

        *p++ = '}';
    }

    p = ngx_sprintf(p, "},\"redis\":{\"connects\":%uA,\"failures\":{",
                    sh->redis[NGX_HTTP_NIXCACHE_METRICS_REDIS_CONNECT]);

    for (k = 1; k < NGX_HTTP_NIXCACHE_METRICS_REDIS_N; k++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA", k > 1 ? "," : "",
                        ngx_http_nixcache_metrics_redis_causes[k],
                        sh->redis[k]);
    }

    p = ngx_sprintf(p, "}}}\n");

    return p;
}
