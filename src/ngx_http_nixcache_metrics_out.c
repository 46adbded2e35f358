/*
 * The nixcache_metrics handler: the metrics zone's counters as the
 * Prometheus text exposition format 0.0.4, or as JSON with ?format=json.
 * The zone and the counting are in ngx_http_nixcache_metrics.c.
 *
 * A scrape reads the counters without a lock: each value is one atomic
 * word, so a scrape may see a request counted in one family and not yet
 * in the next, never a torn value.  A histogram's _count is the sum of
 * the buckets read, so it always agrees with its +Inf bucket.
 */

#include "ngx_http_nixcache_metrics.h"


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


/* A disk tier's values: offset in ngx_http_nixcache_metrics_dir_t. */
typedef struct {
    const char                *name;
    const char                *type;
    const char                *help;
    const char                *json;
    size_t                     offset;
} ngx_http_nixcache_metrics_dir_family_t;


static ngx_int_t ngx_http_nixcache_metrics_handler(ngx_http_request_t *r);
static ngx_atomic_uint_t ngx_http_nixcache_metrics_value(
    ngx_http_nixcache_metrics_cache_t *mc,
    const ngx_http_nixcache_metrics_family_t *f, ngx_uint_t k);
static size_t ngx_http_nixcache_metrics_size(
    ngx_http_nixcache_metrics_shm_t *sh, ngx_uint_t json);
static u_char *ngx_http_nixcache_metrics_escape(u_char *p, ngx_str_t *s);
static u_char *ngx_http_nixcache_metrics_seconds(u_char *p, uint64_t us);
static u_char *ngx_http_nixcache_metrics_text(u_char *p,
    ngx_http_nixcache_metrics_shm_t *sh);
static u_char *ngx_http_nixcache_metrics_text_global(u_char *p,
    ngx_http_nixcache_metrics_shm_t *sh);
static u_char *ngx_http_nixcache_metrics_text_hist(u_char *p,
    const char *name, const char *help,
    ngx_http_nixcache_metrics_hist_t *h, const ngx_uint_t *bounds);
static u_char *ngx_http_nixcache_metrics_json(u_char *p,
    ngx_http_nixcache_metrics_shm_t *sh);
static u_char *ngx_http_nixcache_metrics_json_global(u_char *p,
    ngx_http_nixcache_metrics_shm_t *sh);
static u_char *ngx_http_nixcache_metrics_json_hist(u_char *p,
    ngx_http_nixcache_metrics_hist_t *h, const ngx_uint_t *bounds);


static const char  *ngx_http_nixcache_metrics_results[] = {
    "hit", "miss", "error"
};

static const char  *ngx_http_nixcache_metrics_tiers[] = {
    "disk", "s3"
};

static const char  *ngx_http_nixcache_metrics_nar_routes[] = {
    "nar", "nar_zst"
};

static const char  *ngx_http_nixcache_metrics_upload_causes[] = {
    "bad_request", "denied", "conflict", "too_large", "server_error"
};


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

    { "nixcache_upload_new_chunks_total",
      "Chunks that uploaded NARs stored anew (the others were already "
      "stored: deduplicated).", "upload_new_chunks", NULL, NULL, 1,
      ngx_http_nixcache_metrics_at(upload_new_chunks) },

    { "nixcache_upload_new_chunk_bytes_total",
      "Stored (compressed) bytes of those new chunks.",
      "upload_new_chunk_bytes", NULL, NULL, 1,
      ngx_http_nixcache_metrics_at(upload_new_bytes) },

    { "nixcache_upload_failures_total",
      "Uploads (PUT) refused, by cause: bad_request (other 4xx: malformed, "
      "hash mismatch, unknown NAR), denied (401, 403), conflict (409: a "
      "different narinfo is in place), too_large (413), server_error "
      "(5xx: Redis, storage).", "upload_failures", "cause",
      ngx_http_nixcache_metrics_upload_causes,
      NGX_HTTP_NIXCACHE_M_UPLOAD_FAILURES,
      ngx_http_nixcache_metrics_at(upload_failures) },
};

#undef ngx_http_nixcache_metrics_at

#define NGX_HTTP_NIXCACHE_M_FAMILIES                                         \
    (sizeof(ngx_http_nixcache_metrics_families)                              \
     / sizeof(ngx_http_nixcache_metrics_family_t))


#define ngx_http_nixcache_metrics_at(field)                                  \
    offsetof(ngx_http_nixcache_metrics_dir_t, field)

static const ngx_http_nixcache_metrics_dir_family_t
    ngx_http_nixcache_metrics_dir_families[] =
{
    { "nixcache_disk_tier_used_bytes", "gauge",
      "Bytes in the disk tier's chunk directory at the end of the last "
      "eviction pass.", "used_bytes",
      ngx_http_nixcache_metrics_at(used) },

    { "nixcache_disk_tier_limit_bytes", "gauge",
      "The disk tier's nixcache_chunks_max_size.", "limit_bytes",
      ngx_http_nixcache_metrics_at(limit) },

    { "nixcache_disk_tier_passes_total", "counter",
      "Eviction passes over the disk tier.", "passes",
      ngx_http_nixcache_metrics_at(passes) },

    { "nixcache_disk_tier_evictions_total", "counter",
      "Chunks removed from the disk tier (each is in S3).", "evictions",
      ngx_http_nixcache_metrics_at(evictions) },

    { "nixcache_disk_tier_evicted_bytes_total", "counter",
      "Bytes of those chunks.", "evicted_bytes",
      ngx_http_nixcache_metrics_at(evicted_bytes) },
};

#undef ngx_http_nixcache_metrics_at

#define NGX_HTTP_NIXCACHE_M_DIR_FAMILIES                                     \
    (sizeof(ngx_http_nixcache_metrics_dir_families)                          \
     / sizeof(ngx_http_nixcache_metrics_dir_family_t))


/* The longest line of the text format, label values excluded. */
#define NGX_HTTP_NIXCACHE_M_LINE  (128 + NGX_ATOMIC_T_LEN)


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


static ngx_atomic_uint_t
ngx_http_nixcache_metrics_value(ngx_http_nixcache_metrics_cache_t *mc,
    const ngx_http_nixcache_metrics_family_t *f, ngx_uint_t k)
{
    return ((ngx_atomic_t *) ((u_char *) mc + f->offset))[k];
}


/* An upper bound of the body: lines times the longest line. */

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

    size = lines * (sh->ncaches * NGX_HTTP_NIXCACHE_M_LINE + names);

    names = 0;

    for (i = 0; i < sh->ndirs; i++) {
        names += 2 * sh->dir_names[i].len;
    }

    size += NGX_HTTP_NIXCACHE_M_DIR_FAMILIES
            * (sh->ndirs * NGX_HTTP_NIXCACHE_M_LINE + names);

    /* the global families: HELP and TYPE lines, Redis, S3, histograms */

    size += 8192 + (NGX_HTTP_NIXCACHE_METRICS_REDIS_N
                    + NGX_HTTP_NIXCACHE_METRICS_S3_N
                    + 2 * (NGX_HTTP_NIXCACHE_M_BUCKETS + 3))
                   * NGX_HTTP_NIXCACHE_M_LINE;

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


/* Microseconds as seconds, without trailing zeros: 2500000 is "2.5". */

static u_char *
ngx_http_nixcache_metrics_seconds(u_char *p, uint64_t us)
{
    uint64_t  frac;
    u_char    digits[6];
    ngx_int_t  i, last;

    p = ngx_sprintf(p, "%uL", (unsigned long long) (us / 1000000));

    frac = us % 1000000;

    if (frac == 0) {
        return p;
    }

    last = 0;

    for (i = 5; i >= 0; i--) {
        digits[i] = (u_char) ('0' + frac % 10);
        frac /= 10;

        if (last == 0 && digits[i] != '0') {
            last = i + 1;
        }
    }

    *p++ = '.';

    return ngx_cpymem(p, digits, last);
}


#define ngx_http_nixcache_metrics_head(p, name, type, help)                   \
    ngx_cpymem(p, "# HELP " name " " help "\n# TYPE " name " " type "\n",     \
               sizeof("# HELP " name " " help "\n# TYPE " name " " type "\n") \
               - 1)


static u_char *
ngx_http_nixcache_metrics_text(u_char *p, ngx_http_nixcache_metrics_shm_t *sh)
{
    ngx_uint_t                          i, j, k;
    ngx_http_nixcache_metrics_cache_t  *mc;
    const ngx_http_nixcache_metrics_family_t  *f;

    p = ngx_http_nixcache_metrics_head(p, "nixcache_requests_total",
            "counter", "Requests to a cache location, by route and status "
            "class.");

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

    return ngx_http_nixcache_metrics_text_global(p, sh);
}


/* The families of the whole server: Redis, S3, disk tiers. */

static u_char *
ngx_http_nixcache_metrics_text_global(u_char *p,
    ngx_http_nixcache_metrics_shm_t *sh)
{
    ngx_uint_t                                    i, k;
    ngx_atomic_t                                 *v;
    const ngx_http_nixcache_metrics_dir_family_t *d;

    p = ngx_http_nixcache_metrics_head(p, "nixcache_redis_connects_total",
            "counter", "Connections to Redis opened (the first, and "
            "reconnections after a failure), all workers.");

    p = ngx_sprintf(p, "nixcache_redis_connects_total %uA\n",
                    sh->redis[NGX_HTTP_NIXCACHE_METRICS_REDIS_CONNECT]);

    p = ngx_http_nixcache_metrics_head(p, "nixcache_redis_reconnects_total",
            "counter", "Of those, connections opened by a worker that had "
            "one before (after a failure or a timeout).");

    p = ngx_sprintf(p, "nixcache_redis_reconnects_total %uA\n",
                    sh->redis_reconnects);

    p = ngx_http_nixcache_metrics_head(p, "nixcache_redis_failures_total",
            "counter", "Redis commands that failed, by cause: unreachable "
            "(no connection could be opened), timeout, closed (connection "
            "lost or refused), error_reply.");

    for (k = 1; k < NGX_HTTP_NIXCACHE_METRICS_REDIS_N; k++) {
        p = ngx_sprintf(p, "nixcache_redis_failures_total{cause=\"%s\"} %uA\n",
                        ngx_http_nixcache_metrics_redis_causes[k],
                        sh->redis[k]);
    }

    p = ngx_http_nixcache_metrics_text_hist(p,
            "nixcache_redis_command_duration_seconds",
            "Time from sending a Redis command to its reply (or its "
            "failure).", &sh->redis_time,
            ngx_http_nixcache_metrics_redis_bounds);

    p = ngx_http_nixcache_metrics_head(p, "nixcache_s3_fetch_errors_total",
            "counter", "Chunk fetches from S3 that failed (after the one "
            "retry), by cause; corrupt: the object is not the chunk.");

    for (k = 0; k < NGX_HTTP_NIXCACHE_METRICS_S3_N; k++) {
        p = ngx_sprintf(p, "nixcache_s3_fetch_errors_total{cause=\"%s\"} %uA\n",
                        ngx_http_nixcache_metrics_s3_causes[k],
                        sh->s3_errors[k]);
    }

    p = ngx_http_nixcache_metrics_text_hist(p,
            "nixcache_s3_fetch_duration_seconds",
            "Time of a chunk fetch from S3, retry included, successful or "
            "not.", &sh->s3_time, ngx_http_nixcache_metrics_s3_bounds);

    for (k = 0; k < NGX_HTTP_NIXCACHE_M_DIR_FAMILIES; k++) {
        d = &ngx_http_nixcache_metrics_dir_families[k];

        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help,
                        d->name, d->type);

        for (i = 0; i < sh->ndirs; i++) {
            v = (ngx_atomic_t *) ((u_char *) &sh->dirs[i] + d->offset);

            p = ngx_sprintf(p, "%s{dir=\"", d->name);
            p = ngx_http_nixcache_metrics_escape(p, &sh->dir_names[i]);
            p = ngx_sprintf(p, "\"} %uA\n", *v);
        }
    }

    return p;
}


static u_char *
ngx_http_nixcache_metrics_text_hist(u_char *p, const char *name,
    const char *help, ngx_http_nixcache_metrics_hist_t *h,
    const ngx_uint_t *bounds)
{
    ngx_uint_t         k;
    ngx_atomic_uint_t  total;

    p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s histogram\n", name, help,
                    name);

    total = 0;

    for (k = 0; k <= NGX_HTTP_NIXCACHE_M_BUCKETS; k++) {
        total += h->bucket[k];

        p = ngx_sprintf(p, "%s_bucket{le=\"", name);

        if (k < NGX_HTTP_NIXCACHE_M_BUCKETS) {
            p = ngx_http_nixcache_metrics_seconds(p, bounds[k]);
        } else {
            p = ngx_cpymem(p, "+Inf", 4);
        }

        p = ngx_sprintf(p, "\"} %uA\n", total);
    }

    p = ngx_sprintf(p, "%s_sum ", name);
    p = ngx_http_nixcache_metrics_seconds(p, h->sum_us);
    p = ngx_sprintf(p, "\n%s_count %uA\n", name, total);

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

    *p++ = '}';

    p = ngx_http_nixcache_metrics_json_global(p, sh);

    return ngx_cpymem(p, "}\n", 2);
}


static u_char *
ngx_http_nixcache_metrics_json_global(u_char *p,
    ngx_http_nixcache_metrics_shm_t *sh)
{
    ngx_uint_t                                    i, k;
    ngx_atomic_t                                 *v;
    const ngx_http_nixcache_metrics_dir_family_t *d;

    p = ngx_sprintf(p, ",\"redis\":{\"connects\":%uA,\"reconnects\":%uA,"
                    "\"failures\":{",
                    sh->redis[NGX_HTTP_NIXCACHE_METRICS_REDIS_CONNECT],
                    sh->redis_reconnects);

    for (k = 1; k < NGX_HTTP_NIXCACHE_METRICS_REDIS_N; k++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA", k > 1 ? "," : "",
                        ngx_http_nixcache_metrics_redis_causes[k],
                        sh->redis[k]);
    }

    p = ngx_sprintf(p, "},\"command_duration\":");
    p = ngx_http_nixcache_metrics_json_hist(p, &sh->redis_time,
                                   ngx_http_nixcache_metrics_redis_bounds);

    p = ngx_sprintf(p, "},\"s3\":{\"fetch_errors\":{");

    for (k = 0; k < NGX_HTTP_NIXCACHE_METRICS_S3_N; k++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA", k ? "," : "",
                        ngx_http_nixcache_metrics_s3_causes[k],
                        sh->s3_errors[k]);
    }

    p = ngx_sprintf(p, "},\"fetch_duration\":");
    p = ngx_http_nixcache_metrics_json_hist(p, &sh->s3_time,
                                   ngx_http_nixcache_metrics_s3_bounds);

    p = ngx_sprintf(p, "},\"disk_tiers\":{");

    for (i = 0; i < sh->ndirs; i++) {
        p = ngx_sprintf(p, "%s\"", i ? "," : "");
        p = ngx_http_nixcache_metrics_escape(p, &sh->dir_names[i]);
        p = ngx_sprintf(p, "\":{");

        for (k = 0; k < NGX_HTTP_NIXCACHE_M_DIR_FAMILIES; k++) {
            d = &ngx_http_nixcache_metrics_dir_families[k];
            v = (ngx_atomic_t *) ((u_char *) &sh->dirs[i] + d->offset);

            p = ngx_sprintf(p, "%s\"%s\":%uA", k ? "," : "", d->json, *v);
        }

        *p++ = '}';
    }

    *p++ = '}';

    return p;
}


/* {"buckets":{"<le>":cumulative count,...,"+Inf":n},"sum":s,"count":n} */

static u_char *
ngx_http_nixcache_metrics_json_hist(u_char *p,
    ngx_http_nixcache_metrics_hist_t *h, const ngx_uint_t *bounds)
{
    ngx_uint_t         k;
    ngx_atomic_uint_t  total;

    p = ngx_sprintf(p, "{\"buckets\":{");

    total = 0;

    for (k = 0; k <= NGX_HTTP_NIXCACHE_M_BUCKETS; k++) {
        total += h->bucket[k];

        p = ngx_sprintf(p, "%s\"", k ? "," : "");

        if (k < NGX_HTTP_NIXCACHE_M_BUCKETS) {
            p = ngx_http_nixcache_metrics_seconds(p, bounds[k]);
        } else {
            p = ngx_cpymem(p, "+Inf", 4);
        }

        p = ngx_sprintf(p, "\":%uA", total);
    }

    p = ngx_sprintf(p, "},\"sum_seconds\":");
    p = ngx_http_nixcache_metrics_seconds(p, h->sum_us);

    return ngx_sprintf(p, ",\"count\":%uA}", total);
}
