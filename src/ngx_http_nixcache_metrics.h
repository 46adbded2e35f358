/*
 * The metrics zone's layout, shared by ngx_http_nixcache_metrics.c (the
 * zone, and the counting) and ngx_http_nixcache_metrics_out.c (the
 * nixcache_metrics handler: Prometheus text and JSON), and the route
 * names, which ngx_http_nixcache_variables.c uses too.  The rest of the
 * module counts through the functions declared in ngx_http_nixcache.h.
 */

#ifndef NGX_HTTP_NIXCACHE_METRICS_H
#define NGX_HTTP_NIXCACHE_METRICS_H

#include "ngx_http_nixcache.h"


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

/* why an upload was refused, from its status (metrics_upload_causes) */
#define NGX_HTTP_NIXCACHE_M_UPLOAD_BAD_REQUEST   0   /* other 4xx */
#define NGX_HTTP_NIXCACHE_M_UPLOAD_DENIED        1   /* 401, 403 */
#define NGX_HTTP_NIXCACHE_M_UPLOAD_CONFLICT      2   /* 409 */
#define NGX_HTTP_NIXCACHE_M_UPLOAD_TOO_LARGE     3   /* 413 */
#define NGX_HTTP_NIXCACHE_M_UPLOAD_SERVER_ERROR  4   /* 5xx */
#define NGX_HTTP_NIXCACHE_M_UPLOAD_FAILURES      5

/* histogram buckets, upper bounds in microseconds; one more for +Inf */
#define NGX_HTTP_NIXCACHE_M_BUCKETS      13


typedef struct {
    ngx_atomic_t               bucket[NGX_HTTP_NIXCACHE_M_BUCKETS + 1];
    ngx_atomic_t               sum_us;
} ngx_http_nixcache_metrics_hist_t;


/* The counters of one cache. */
typedef struct {
    ngx_atomic_t               requests[NGX_HTTP_NIXCACHE_M_ROUTES]
                                       [NGX_HTTP_NIXCACHE_M_CLASSES];
    ngx_atomic_t               narinfo[3];     /* hit, miss, error */
    ngx_atomic_t               nar_bytes[2];   /* nar, nar_zst */
    ngx_atomic_t               upload_nars;
    ngx_atomic_t               upload_bytes;
    ngx_atomic_t               upload_new_chunks;
    ngx_atomic_t               upload_new_bytes;
    ngx_atomic_t               upload_failures
                                   [NGX_HTTP_NIXCACHE_M_UPLOAD_FAILURES];
    ngx_atomic_t               chunks[2];      /* disk, s3 */
    ngx_atomic_t               chunk_bytes[2];
} ngx_http_nixcache_metrics_cache_t;


/* One disk tier with a size limit, as its evictor last saw it. */
typedef struct {
    ngx_atomic_t               used;           /* a gauge: bytes */
    ngx_atomic_t               limit;          /* a gauge: bytes */
    ngx_atomic_t               passes;
    ngx_atomic_t               evictions;
    ngx_atomic_t               evicted_bytes;
} ngx_http_nixcache_metrics_dir_t;


/* What the zone holds: names (in the zone too) and counters. */
typedef struct {
    ngx_atomic_t                       redis[NGX_HTTP_NIXCACHE_METRICS_REDIS_N];
    ngx_atomic_t                       redis_reconnects;
    ngx_http_nixcache_metrics_hist_t   redis_time;
    ngx_atomic_t                       s3_errors[NGX_HTTP_NIXCACHE_METRICS_S3_N];
    ngx_http_nixcache_metrics_hist_t   s3_time;

    ngx_uint_t                         ncaches;
    ngx_str_t                         *names;
    ngx_http_nixcache_metrics_cache_t *caches;

    ngx_uint_t                         ndirs;
    ngx_str_t                         *dir_names;
    ngx_http_nixcache_metrics_dir_t   *dirs;
} ngx_http_nixcache_metrics_shm_t;


/* shm_zone->data */
typedef struct {
    ngx_http_nixcache_main_conf_t       *nmcf;
    ngx_http_nixcache_metrics_shm_t     *sh;
} ngx_http_nixcache_metrics_zone_t;


extern const char  *ngx_http_nixcache_metrics_routes[];
extern const char  *ngx_http_nixcache_metrics_redis_causes[];
extern const char  *ngx_http_nixcache_metrics_s3_causes[];
extern const ngx_uint_t  ngx_http_nixcache_metrics_redis_bounds[];
extern const ngx_uint_t  ngx_http_nixcache_metrics_s3_bounds[];


ngx_uint_t ngx_http_nixcache_metrics_route(ngx_http_request_t *r,
    ngx_str_t *rel);


#endif /* NGX_HTTP_NIXCACHE_METRICS_H */
