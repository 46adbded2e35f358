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

#include "ngx_http_nixcache_metrics.h"

#include "nixcache_route.h"


static ngx_int_t ngx_http_nixcache_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_http_nixcache_metrics_same(
    ngx_http_nixcache_metrics_shm_t *sh, ngx_http_nixcache_main_conf_t *nmcf);
static ngx_uint_t ngx_http_nixcache_metrics_same_names(ngx_str_t *a,
    ngx_uint_t na, ngx_array_t *b);
static void ngx_http_nixcache_metrics_observe(
    ngx_http_nixcache_metrics_hist_t *h, const ngx_uint_t *bounds,
    uint64_t us);
static ngx_http_nixcache_metrics_shm_t *ngx_http_nixcache_metrics_shm(
    ngx_http_nixcache_main_conf_t *nmcf);
static ngx_int_t ngx_http_nixcache_metrics_log(ngx_http_request_t *r);
static ngx_http_nixcache_metrics_cache_t *ngx_http_nixcache_metrics_cache(
    ngx_http_request_t *r);
static ngx_uint_t ngx_http_nixcache_metrics_upload_cause(ngx_uint_t status);


const char  *ngx_http_nixcache_metrics_routes[] = {
    "other", "cache_info", "narinfo", "nar", "nar_zst", "upload"
};

/* causes of a failed Redis command, NGX_HTTP_NIXCACHE_METRICS_REDIS_* */
const char  *ngx_http_nixcache_metrics_redis_causes[] = {
    NULL, "unreachable", "timeout", "closed", "error_reply"
};

/* causes of a failed S3 fetch, NGX_HTTP_NIXCACHE_METRICS_S3_* */
const char  *ngx_http_nixcache_metrics_s3_causes[] = {
    "timeout", "connect", "not_found", "denied", "http_5xx", "http_other",
    "transfer", "too_large", "corrupt"
};

/*
 * Histogram bounds, in microseconds: a Redis command on a LAN takes a
 * fraction of a millisecond, a chunk from S3 tens to hundreds.
 */
const ngx_uint_t  ngx_http_nixcache_metrics_redis_bounds[] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
    500000, 1000000
};

const ngx_uint_t  ngx_http_nixcache_metrics_s3_bounds[] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
    2500000, 5000000, 10000000
};


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
    ngx_str_t                         *names, *dir;
    ngx_uint_t                         i, n, ndirs;
    ngx_slab_pool_t                   *shpool;
    ngx_http_nixcache_main_conf_t     *nmcf;
    ngx_http_nixcache_metrics_shm_t   *sh;
    ngx_http_nixcache_metrics_zone_t  *zone;

    zone = shm_zone->data;
    nmcf = zone->nmcf;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    n = nmcf->metrics_caches ? nmcf->metrics_caches->nelts : 0;
    names = n ? nmcf->metrics_caches->elts : NULL;
    ndirs = nmcf->evict ? nmcf->evict->nelts : 0;

    if (ozone != NULL) {
        sh = ozone->sh;

        if (ngx_http_nixcache_metrics_same(sh, nmcf)) {
            zone->sh = sh;
            return NGX_OK;
        }

        /*
         * Other caches or disk tiers: start again at 0.  Old workers still
         * finishing requests may add to the freed block (now perhaps the
         * new one) a few times: a miscount, never a write outside the zone.
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
                  + sizeof(ngx_http_nixcache_metrics_cache_t))
           + ndirs * (sizeof(ngx_str_t)
                      + sizeof(ngx_http_nixcache_metrics_dir_t));

    for (i = 0; i < n; i++) {
        size += names[i].len;
    }

    for (i = 0; i < ndirs; i++) {
        size += ngx_http_nixcache_evict_dir(nmcf, i)->len;
    }

    sh = ngx_slab_calloc(shpool, size);
    if (sh == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "nixcache: metrics zone \"%V\" is too small for %ui "
                      "caches and %ui disk tiers (%uz bytes needed)",
                      &shm_zone->shm.name, n, ndirs, size);
        return NGX_ERROR;
    }

    /* the atomics first, then the names: every counter stays aligned */

    sh->ncaches = n;
    sh->caches = (ngx_http_nixcache_metrics_cache_t *) (sh + 1);
    sh->ndirs = ndirs;
    sh->dirs = (ngx_http_nixcache_metrics_dir_t *) (sh->caches + n);
    sh->names = (ngx_str_t *) (sh->dirs + ndirs);
    sh->dir_names = sh->names + n;

    p = (u_char *) (sh->dir_names + ndirs);

    for (i = 0; i < n; i++) {
        sh->names[i].len = names[i].len;
        sh->names[i].data = p;
        p = ngx_cpymem(p, names[i].data, names[i].len);
    }

    for (i = 0; i < ndirs; i++) {
        dir = ngx_http_nixcache_evict_dir(nmcf, i);

        sh->dir_names[i].len = dir->len;
        sh->dir_names[i].data = p;
        p = ngx_cpymem(p, dir->data, dir->len);
    }

    zone->sh = sh;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_nixcache_metrics_same(ngx_http_nixcache_metrics_shm_t *sh,
    ngx_http_nixcache_main_conf_t *nmcf)
{
    ngx_uint_t  i, ndirs;
    ngx_str_t  *dir;

    if (sh == NULL
        || !ngx_http_nixcache_metrics_same_names(sh->names, sh->ncaches,
                                                 nmcf->metrics_caches))
    {
        return 0;
    }

    ndirs = nmcf->evict ? nmcf->evict->nelts : 0;

    if (sh->ndirs != ndirs) {
        return 0;
    }

    for (i = 0; i < ndirs; i++) {
        dir = ngx_http_nixcache_evict_dir(nmcf, i);

        if (dir->len != sh->dir_names[i].len
            || ngx_strncmp(dir->data, sh->dir_names[i].data, dir->len) != 0)
        {
            return 0;
        }
    }

    return 1;
}


static ngx_uint_t
ngx_http_nixcache_metrics_same_names(ngx_str_t *a, ngx_uint_t na,
    ngx_array_t *b)
{
    ngx_str_t   *name;
    ngx_uint_t   i, n;

    n = b ? b->nelts : 0;

    if (na != n) {
        return 0;
    }

    name = n ? b->elts : NULL;

    for (i = 0; i < n; i++) {
        if (name[i].len != a[i].len
            || ngx_strncmp(name[i].data, a[i].data, name[i].len) != 0)
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
    ngx_http_nixcache_metrics_cache_t  *mc;

    mc = ngx_http_nixcache_metrics_cache(r);
    if (mc == NULL) {
        return NGX_OK;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;

    if (status < 100 || status > 599) {
        return NGX_OK;
    }

    route = ngx_http_nixcache_metrics_route(r, &rel);

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
        if (status >= 400) {
            (void) ngx_atomic_fetch_add(&mc->upload_failures[
                ngx_http_nixcache_metrics_upload_cause(status)], 1);
            break;
        }

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
 * The request's route (ngx_http_nixcache_metrics_route_e), from the method
 * and the URI as the handlers dispatch them; rel is set to the URI after
 * the location's prefix (empty if it has none).
 */

ngx_uint_t
ngx_http_nixcache_metrics_route(ngx_http_request_t *r, ngx_str_t *rel)
{
    nixcache_route_t  rt;

    rt.route = NIXCACHE_ROUTE_NONE;
    ngx_str_null(rel);

    if (ngx_http_nixcache_route_rel(r, rel) == NGX_OK) {
        nixcache_route_match(&rt, (const char *) rel->data, rel->len);
    }

    if (r->method == NGX_HTTP_PUT) {
        return NGX_HTTP_NIXCACHE_M_UPLOAD;
    }

    switch (rt.route) {
    case NIXCACHE_ROUTE_INFO:
        return NGX_HTTP_NIXCACHE_M_CACHE_INFO;
    case NIXCACHE_ROUTE_NARINFO:
        return NGX_HTTP_NIXCACHE_M_NARINFO;
    case NIXCACHE_ROUTE_NAR:
        return NGX_HTTP_NIXCACHE_M_NAR;
    case NIXCACHE_ROUTE_NAR_ZST:
        return NGX_HTTP_NIXCACHE_M_NAR_ZST;
    default:
        return NGX_HTTP_NIXCACHE_M_OTHER;
    }
}


/* The index in upload_failures of a refusal's status (>= 400). */

static ngx_uint_t
ngx_http_nixcache_metrics_upload_cause(ngx_uint_t status)
{
    if (status >= 500) {
        return NGX_HTTP_NIXCACHE_M_UPLOAD_SERVER_ERROR;
    }

    switch (status) {
    case NGX_HTTP_UNAUTHORIZED:
    case NGX_HTTP_FORBIDDEN:
        return NGX_HTTP_NIXCACHE_M_UPLOAD_DENIED;
    case NGX_HTTP_CONFLICT:
        return NGX_HTTP_NIXCACHE_M_UPLOAD_CONFLICT;
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        return NGX_HTTP_NIXCACHE_M_UPLOAD_TOO_LARGE;
    default:
        return NGX_HTTP_NIXCACHE_M_UPLOAD_BAD_REQUEST;
    }
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


static ngx_http_nixcache_metrics_shm_t *
ngx_http_nixcache_metrics_shm(ngx_http_nixcache_main_conf_t *nmcf)
{
    ngx_http_nixcache_metrics_zone_t  *zone;

    if (nmcf == NULL || nmcf->metrics_zone == NULL) {
        return NULL;
    }

    zone = nmcf->metrics_zone->data;

    return zone->sh;
}


void
ngx_http_nixcache_metrics_redis(ngx_http_nixcache_main_conf_t *nmcf,
    ngx_uint_t what)
{
    ngx_http_nixcache_metrics_shm_t  *sh;

    sh = ngx_http_nixcache_metrics_shm(nmcf);

    if (sh != NULL && what < NGX_HTTP_NIXCACHE_METRICS_REDIS_N) {
        (void) ngx_atomic_fetch_add(&sh->redis[what], 1);
    }
}


void
ngx_http_nixcache_metrics_redis_reconnect(ngx_http_nixcache_main_conf_t *nmcf)
{
    ngx_http_nixcache_metrics_shm_t  *sh;

    sh = ngx_http_nixcache_metrics_shm(nmcf);

    if (sh != NULL) {
        (void) ngx_atomic_fetch_add(&sh->redis_reconnects, 1);
    }
}


void
ngx_http_nixcache_metrics_redis_time(ngx_http_nixcache_main_conf_t *nmcf,
    uint64_t us)
{
    ngx_http_nixcache_metrics_shm_t  *sh;

    sh = ngx_http_nixcache_metrics_shm(nmcf);

    if (sh != NULL) {
        ngx_http_nixcache_metrics_observe(&sh->redis_time,
                                   ngx_http_nixcache_metrics_redis_bounds, us);
    }
}


/* S3 fetches know no main conf: the cycle's is the one */

void
ngx_http_nixcache_metrics_s3(ngx_uint_t cause)
{
    ngx_http_nixcache_metrics_shm_t  *sh;

    sh = ngx_http_nixcache_metrics_shm(ngx_http_cycle_get_module_main_conf(
                                     ngx_cycle, ngx_http_nixcache_module));

    if (sh != NULL && cause < NGX_HTTP_NIXCACHE_METRICS_S3_N) {
        (void) ngx_atomic_fetch_add(&sh->s3_errors[cause], 1);
    }
}


void
ngx_http_nixcache_metrics_s3_time(uint64_t us)
{
    ngx_http_nixcache_metrics_shm_t  *sh;

    sh = ngx_http_nixcache_metrics_shm(ngx_http_cycle_get_module_main_conf(
                                     ngx_cycle, ngx_http_nixcache_module));

    if (sh != NULL) {
        ngx_http_nixcache_metrics_observe(&sh->s3_time,
                                      ngx_http_nixcache_metrics_s3_bounds, us);
    }
}


void
ngx_http_nixcache_metrics_upload(ngx_http_request_t *r, uint64_t new_chunks,
    uint64_t new_bytes)
{
    ngx_http_nixcache_metrics_cache_t  *mc;

    mc = ngx_http_nixcache_metrics_cache(r);
    if (mc == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&mc->upload_new_chunks, new_chunks);
    (void) ngx_atomic_fetch_add(&mc->upload_new_bytes, new_bytes);
}


void
ngx_http_nixcache_metrics_evict(ngx_http_nixcache_main_conf_t *nmcf,
    ngx_uint_t index, off_t used, off_t limit, ngx_uint_t evicted,
    off_t evicted_bytes)
{
    ngx_http_nixcache_metrics_dir_t  *d;
    ngx_http_nixcache_metrics_shm_t  *sh;

    sh = ngx_http_nixcache_metrics_shm(nmcf);

    if (sh == NULL || index >= sh->ndirs) {
        return;
    }

    d = &sh->dirs[index];

    /* worker 0 alone writes the gauges */

    d->used = (ngx_atomic_uint_t) used;
    d->limit = (ngx_atomic_uint_t) limit;

    (void) ngx_atomic_fetch_add(&d->passes, 1);
    (void) ngx_atomic_fetch_add(&d->evictions, evicted);
    (void) ngx_atomic_fetch_add(&d->evicted_bytes, evicted_bytes);
}


static void
ngx_http_nixcache_metrics_observe(ngx_http_nixcache_metrics_hist_t *h,
    const ngx_uint_t *bounds, uint64_t us)
{
    ngx_uint_t  k;

    for (k = 0; k < NGX_HTTP_NIXCACHE_M_BUCKETS; k++) {
        if (us <= bounds[k]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->bucket[k], 1);
    (void) ngx_atomic_fetch_add(&h->sum_us, us);
}


uint64_t
ngx_http_nixcache_metrics_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
