/*
 * Shared declarations of ngx_http_nixcache_module: configuration, request
 * context, and the interfaces between its files.
 *
 *   ngx_http_nixcache_module.c   directives, routing, nix-cache-info,
 *                                narinfo
 *   ngx_http_nixcache_redis.c    non-blocking Redis (hiredis async API on
 *                                an nginx event adapter), one persistent
 *                                connection per worker
 *   ngx_http_nixcache_nar.c      /nar/: manifest windows, Range, .nar.zst
 *                                by sendfile, .nar decompressed on the fly,
 *                                chunks missing on disk fetched from S3
 *   ngx_http_nixcache_s3.c       S3 GETs with libcurl's multi interface
 *                                on nginx events, one CURLM per worker;
 *                                the S3 directives
 *   ngx_http_nixcache_upload.c   PUT/HEAD of `nix copy --to`: NARs ingested
 *                                in a thread pool, narinfos checked and
 *                                rewritten
 *   ngx_http_nixcache_auth.c     tokens (push, read) and narinfo signing
 *                                keys
 *   ngx_http_nixcache_evict.c    the disk tier's size limit: least
 *                                recently used chunks removed by a
 *                                thread pool task of worker 0
 */

#ifndef NGX_HTTP_NIXCACHE_H
#define NGX_HTTP_NIXCACHE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "nixcache_format.h"
#include "nixcache_narinfo.h"
#include "nixcache_s3.h"


#define NGX_HTTP_NIXCACHE_COMPRESSION_ZSTD  0
#define NGX_HTTP_NIXCACHE_COMPRESSION_NONE  1


typedef struct ngx_http_nixcache_redis_s  ngx_http_nixcache_redis_t;
typedef struct ngx_http_nixcache_s3_worker_s  ngx_http_nixcache_s3_worker_t;
typedef struct ngx_http_nixcache_s3_fetch_s  ngx_http_nixcache_s3_fetch_t;


/* The S3 tier of a location: off unless nixcache_s3_endpoint is set. */
typedef struct {
    ngx_str_t                  endpoint;       /* http(s)://host[:port] */
    ngx_str_t                  bucket;
    ngx_str_t                  region;
    ngx_str_t                  prefix;         /* key prefix, "chunks/" */
    ngx_flag_t                 path_style;
    ngx_str_t                  credentials;    /* file name */
    ngx_msec_t                 timeout;
    ngx_uint_t                 prefetch;       /* K: fetches in flight */
    ngx_str_t                  thread_pool_name;

    /* made at configuration time */
    ngx_str_t                  url;            /* up to the key, NUL */
    ngx_str_t                  uri;            /* the same, path only */
    ngx_str_t                  host;           /* Host header value */
    nixcache_s3_credentials_t *cred;           /* key id, secret, token */
    void                      *thread_pool;    /* ngx_thread_pool_t */
} ngx_http_nixcache_s3_conf_t;


typedef struct {
    ngx_str_t                  redis;          /* "host:port" or "unix:path" */
    ngx_msec_t                 redis_timeout;
    ngx_uint_t                 manifest_window;    /* entries per GETRANGE */

    /* nixcache_redis, parsed at configuration time */
    u_char                    *redis_host;     /* IP or socket path, NUL */
    ngx_int_t                  redis_port;     /* 0 for a unix socket */

    ngx_http_nixcache_redis_t *redis_worker;   /* per-worker state */

    ngx_uint_t                 s3_max_connections;     /* per worker */
    size_t                     s3_write_bytes; /* write-through in flight */
    ngx_http_nixcache_s3_worker_t *s3_worker;  /* per-worker state */

    ngx_array_t               *evict;  /* one evictor per chunk directory */
} ngx_http_nixcache_main_conf_t;


typedef struct {
    ngx_flag_t                 enable;
    ngx_str_t                  prefix;         /* Redis key prefix */
    ngx_str_t                  chunks;         /* disk tier directory:
                                                  absolute, no trailing
                                                  slash, NUL-terminated */
    ngx_uint_t                 priority;
    ngx_uint_t                 compression;    /* what narinfo advertises */

    /* uploads (ngx_http_nixcache_upload.c) */
    ngx_flag_t                 upload;
    off_t                      upload_max_nar_size;    /* 0: no limit */
    ngx_str_t                  upload_thread_pool;
#if (NGX_THREADS)
    ngx_thread_pool_t         *upload_pool;
#endif

    /* access and signing (ngx_http_nixcache_auth.c) */
    ngx_array_t               *sign_keys;      /* nixcache_sign_secret_t * */
    ngx_array_t               *push_tokens;    /* token digests */
    ngx_array_t               *read_tokens;    /* token digests */

    /* the S3 tier (ngx_http_nixcache_s3.c) */
    ngx_http_nixcache_s3_conf_t  s3;

    /* the disk tier's size limit (ngx_http_nixcache_evict.c) */
    off_t                      chunks_max_size;        /* 0: no limit */
    ngx_msec_t                 chunks_evict_interval;
} ngx_http_nixcache_loc_conf_t;


#define NGX_HTTP_NIXCACHE_AUTH_READ   1
#define NGX_HTTP_NIXCACHE_AUTH_PUSH   2


typedef enum {
    NGX_HTTP_NIXCACHE_ROUTE_INFO = 1,
    NGX_HTTP_NIXCACHE_ROUTE_NARINFO,
    NGX_HTTP_NIXCACHE_ROUTE_NAR,           /* .nar */
    NGX_HTTP_NIXCACHE_ROUTE_NAR_ZST        /* .nar.zst */
} ngx_http_nixcache_route_e;


/*
 * Called exactly once per accepted command, from the Redis connection's
 * event handler, unless the request was finalized first.  reply is NULL
 * when Redis failed, closed the connection, answered with an error reply
 * (-ERR, -WRONGTYPE...) or did not answer within nixcache_redis_timeout;
 * the cause is already logged at error level, and the caller answers 503.
 * reply is freed after the handler returns: copy what must outlive it
 * into memory the request reuses (never a fresh r->pool allocation per
 * reply of a long stream).  The handler runs with the request's counter held by the
 * caller; after it the Redis code runs the posted requests.
 */
typedef void (*ngx_http_nixcache_redis_pt)(ngx_http_request_t *r,
    redisReply *reply, void *data);


/*
 * Queues one command (binary-safe argv).  NGX_OK: the handler will be
 * called.  NGX_ERROR: Redis cannot be reached now (the reason is logged);
 * the caller answers 503.  Connects lazily and reconnects after failures.
 */
ngx_int_t ngx_http_nixcache_redis_command(ngx_http_request_t *r,
    ngx_http_nixcache_redis_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen);

/* Per-worker setup and teardown, called from the module's process hooks. */
ngx_int_t ngx_http_nixcache_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_nixcache_redis_exit_process(ngx_cycle_t *cycle);


/*
 * Serves GET/HEAD /nar/<hash>.nar[.zst]: hash is the 52-char nix32
 * NarHash from the URI, already validated.  Returns what a content handler
 * returns (NGX_DONE while Redis or the client is awaited).
 */
ngx_int_t ngx_http_nixcache_nar_handler(ngx_http_request_t *r,
    ngx_str_t *hash, ngx_http_nixcache_route_e route);


/*
 * One GET of a chunk object.  The caller owns the structure (it lives in
 * the request) and fills conf, log, digest, csize, buf/cap, handler and
 * data; ngx_http_nixcache_s3_start() sends it.  The handler is called
 * exactly once, from the event loop, unless the fetch is cancelled first:
 * then status is NGX_OK and len bytes are in buf (a 200 of exactly what
 * fitted in cap; the caller checks the length and the content), or the
 * HTTP status to answer (502 a bad answer, 503 unreachable, 504 timed
 * out) with the cause in the fields below, for
 * ngx_http_nixcache_s3_log_error().  One retry is made inside for a
 * connection error or a 5xx.
 */
typedef void (*ngx_http_nixcache_s3_pt)(ngx_http_nixcache_s3_fetch_t *f);

struct ngx_http_nixcache_s3_fetch_s {
    ngx_http_nixcache_s3_conf_t   *conf;
    ngx_log_t                     *log;
    u_char                        *buf;
    size_t                         cap;
    size_t                         len;
    size_t                         csize;          /* expected size */
    u_char                         digest[32];
    ngx_http_nixcache_s3_pt        handler;
    void                          *data;

    ngx_int_t                      status;
    long                           http_status;
    int                            curl_code;
    u_char                         code[64];       /* S3 <Code>, NUL */
    size_t                         code_len;
    u_char                         errbody[512];   /* a non-200 body */
    size_t                         errbody_len;
    u_char                         errtext[256];   /* curl's, NUL */

    void                          *easy;           /* CURL */
    void                          *headers;        /* curl_slist */
    ngx_http_nixcache_s3_worker_t *worker;
    unsigned                       active:1;
    unsigned                       retried:1;
    unsigned                       overflow:1;
};

ngx_int_t ngx_http_nixcache_s3_start(ngx_http_nixcache_s3_fetch_t *f);
void ngx_http_nixcache_s3_cancel(ngx_http_nixcache_s3_fetch_t *f);
/* Writes the object key of a chunk (NUL-terminated) to dst. */
size_t ngx_http_nixcache_s3_key(ngx_http_nixcache_s3_conf_t *s3, u_char *dst,
    size_t cap, const u_char *digest);
void ngx_http_nixcache_s3_log_error(ngx_http_nixcache_s3_fetch_t *f,
    ngx_log_t *log, const char *what);

/* Directives and configuration, called from the module's. */
char *ngx_http_nixcache_s3_credentials(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_nixcache_s3_create_conf(ngx_http_nixcache_s3_conf_t *s3);
char *ngx_http_nixcache_s3_merge_conf(ngx_conf_t *cf,
    ngx_http_nixcache_s3_conf_t *prev, ngx_http_nixcache_s3_conf_t *conf);
ngx_int_t ngx_http_nixcache_s3_init_process(ngx_cycle_t *cycle);
void ngx_http_nixcache_s3_exit_process(ngx_cycle_t *cycle);


/*
 * The disk tier's size limit (nixcache_chunks_max_size): directives,
 * merge (registers one evictor per chunk directory), the evictor's timer
 * in worker 0, and the serving path's note that a chunk was used (bumps
 * its mtime through the open fd at most once a minute).
 */
char *ngx_http_nixcache_evict_max_size(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_nixcache_evict_create_conf(ngx_http_nixcache_loc_conf_t *conf);
char *ngx_http_nixcache_evict_merge_conf(ngx_conf_t *cf,
    ngx_http_nixcache_loc_conf_t *prev, ngx_http_nixcache_loc_conf_t *conf);
ngx_int_t ngx_http_nixcache_evict_init_process(ngx_cycle_t *cycle);
void ngx_http_nixcache_evict_touch(ngx_http_request_t *r, ngx_fd_t fd,
    ngx_file_info_t *fi);


/*
 * The part of the URI the routes match: the location's prefix stripped
 * (see ngx_http_nixcache_route()).  NGX_OK, or NGX_DECLINED when the URI
 * is not under the location (404).
 */
ngx_int_t ngx_http_nixcache_route_rel(ngx_http_request_t *r, ngx_str_t *rel);


/*
 * PUT, and HEAD of uploaded NAR names, when nixcache_upload is on.
 * Returns NGX_DECLINED when the request is not one it handles (uploads
 * off, or a HEAD for the ordinary routes); otherwise what a content
 * handler returns.
 */
ngx_int_t ngx_http_nixcache_upload_handler(ngx_http_request_t *r);

/* Merges the upload directives; resolves the thread pool. */
char *ngx_http_nixcache_upload_merge_conf(ngx_conf_t *cf,
    ngx_http_nixcache_loc_conf_t *prev, ngx_http_nixcache_loc_conf_t *conf);


/*
 * Checks the request's credentials (Authorization: Bearer TOKEN, or
 * Basic with the token as password) for NGX_HTTP_NIXCACHE_AUTH_READ or
 * NGX_HTTP_NIXCACHE_AUTH_PUSH against the location's nixcache_read_tokens
 * and nixcache_push_tokens; a push token also grants read.  Without
 * tokens configured for that level the request passes.  Returns NGX_OK,
 * NGX_HTTP_UNAUTHORIZED (no credentials; WWW-Authenticate is set),
 * NGX_HTTP_FORBIDDEN (wrong ones) or NGX_HTTP_INTERNAL_SERVER_ERROR.
 * Call it before anything else touches the request (Redis, the body).
 */
ngx_int_t ngx_http_nixcache_auth_check(ngx_http_request_t *r,
    ngx_uint_t level);

/*
 * Adds one response header (key must outlive the request): NGX_OK or
 * NGX_ERROR.  With elt, the new element is stored there.
 */
ngx_int_t ngx_http_nixcache_add_header(ngx_http_request_t *r, char *key,
    ngx_str_t *value, ngx_table_elt_t **elt);

/* nixcache_sign_key; nixcache_push_tokens and nixcache_read_tokens */
char *ngx_http_nixcache_sign_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_nixcache_tokens(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/*
 * Adds a Sig: for each of the location's nixcache_sign_key to a narinfo
 * about to be served, replacing a stored Sig of the same key name.  The
 * signature texts are allocated from r->pool.  NGX_OK, or NGX_ERROR (no
 * memory).  A narinfo that cannot be fingerprinted is logged and left
 * unsigned.
 */
ngx_int_t ngx_http_nixcache_auth_sign(ngx_http_request_t *r,
    nixcache_narinfo_t *ni);


extern ngx_module_t  ngx_http_nixcache_module;


#endif /* NGX_HTTP_NIXCACHE_H */
