/*
 * Shared declarations of ngx_http_nixcache_module: configuration, request
 * context, and the interfaces between its files.
 *
 *   ngx_http_nixcache_module.c   directives, routing, nix-cache-info,
 *                                narinfo
 *   ngx_http_nixcache_util.c     small shared helpers: the URI under the
 *                                location, response headers, Redis keys
 *   ngx_http_nixcache_redis.c    non-blocking Redis (hiredis async API on
 *                                an nginx event adapter), one persistent
 *                                connection per worker
 *   ngx_http_nixcache_nar.c      /nar/: the response: Range, headers, the
 *                                output ring
 *   ngx_http_nixcache_nar_manifest.c   /nar/: manifest windows (GETRANGE)
 *   ngx_http_nixcache_nar_chunk.c      /nar/: the chunk source: .nar.zst
 *                                by sendfile, .nar decompressed and
 *                                checked, chunks missing on disk fetched
 *                                from S3 and written through
 *   ngx_http_nixcache_s3.c       S3 GETs with libcurl's multi interface
 *                                on nginx events, one CURLM per worker;
 *                                the S3 directives
 *   ngx_http_nixcache_s3_cred.c  S3 credentials: read at load, read again
 *                                when the file changes
 *   ngx_http_nixcache_upload.c   PUT/HEAD of `nix copy --to`: the routes,
 *                                narinfos checked and rewritten
 *   ngx_http_nixcache_publish.c  the publish pipeline: a NAR body ingested
 *                                in a thread pool, its manifest published
 *                                in Redis (ngx_http_nixcache_upload.h)
 *   ngx_http_nixcache_auth.c     tokens (push, read) and narinfo signing
 *                                keys
 *   ngx_http_nixcache_upstream.c pull-through: narinfos asked of the
 *                                upstream caches, their NARs proxied
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
#include <zstd.h>

#include "nixcache_format.h"
#include "nixcache_key.h"
#include "nixcache_manifest.h"
#include "nixcache_narinfo.h"
#include "nixcache_redis_auth.h"
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
    nixcache_s3_endpoint_t    *ep;             /* base URL, Host, path */
    ngx_str_t                  url;            /* up to the key, NUL */
    ngx_str_t                  uri;            /* the same, path only */
    nixcache_s3_credentials_t *cred;           /* key id, secret, token */
    void                      *thread_pool;    /* ngx_thread_pool_t */
} ngx_http_nixcache_s3_conf_t;


typedef struct {
    ngx_str_t                  redis;          /* as written, for logs */
    ngx_msec_t                 redis_timeout;
    ngx_uint_t                 manifest_window;    /* entries per GETRANGE */

    /* nixcache_redis, parsed and resolved at configuration time */
    u_char                    *redis_host;     /* IP or socket path, NUL */
    ngx_int_t                  redis_port;     /* 0 for a unix socket */
    ngx_int_t                  redis_db;       /* -1: none (SELECT 0) */
    nixcache_redis_auth_t     *redis_auth;     /* NULL: no AUTH */

    ngx_http_nixcache_redis_t *redis_worker;   /* per-worker state */

    ngx_uint_t                 s3_max_connections;     /* per worker */
    ngx_array_t               *s3_creds;       /* nixcache_s3_credentials
                                                  files (_s3_cred.c) */
    ngx_msec_t                 s3_creds_interval;      /* 0: read once */
    size_t                     s3_write_bytes; /* write-through in flight */
    ngx_http_nixcache_s3_worker_t *s3_worker;  /* per-worker state */

    ngx_array_t               *evict;  /* one evictor per chunk directory */

    ngx_shm_zone_t            *metrics_zone;   /* nixcache_metrics_zone */
    ngx_array_t               *metrics_caches; /* ngx_str_t: key prefixes */

    ngx_shm_zone_t            *upstream_zone;  /* upstreams' health */
    ngx_uint_t                 upstream_count; /* nixcache_upstream given */

    ngx_uint_t                 upload_jobs;    /* ingests at once, per
                                                  worker */
    ngx_uint_t                 upload_running; /* per-worker state */
    ngx_queue_t                upload_waiting;
} ngx_http_nixcache_main_conf_t;


/* One nixcache_upstream of a location. */
typedef struct {
    ngx_str_t                  name;
    ngx_str_t                  uri;            /* internal location, '/'
                                                  at the end */
    ngx_array_t               *keys;           /* nixcache_sign_public_t */
    ngx_flag_t                 require_sigs;
    ngx_msec_t                 backoff;        /* skipped this long after
                                                  a failure */
    ngx_msec_t                 narinfo_timeout;    /* a whole narinfo */
    ngx_msec_t                 nar_timeout;        /* a whole NAR, 0 none */
    ngx_uint_t                 index;          /* in the health zone */
} ngx_http_nixcache_upstream_t;


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
    ngx_uint_t                 upload_max_chunks;      /* 0: no limit */
    ngx_str_t                  upload_thread_pool;
#if (NGX_THREADS)
    ngx_thread_pool_t         *upload_pool;
#endif

    /* access and signing (ngx_http_nixcache_auth.c) */
    ngx_array_t               *sign_keys;      /* nixcache_sign_secret_t * */
    ngx_array_t               *admin_tokens;   /* token digests; */
    ngx_array_t               *push_tokens;    /* NULL: "off", */
    ngx_array_t               *read_tokens;    /* NGX_CONF_UNSET_PTR: unset */

    /* the S3 tier (ngx_http_nixcache_s3.c) */
    ngx_http_nixcache_s3_conf_t  s3;

    /* the disk tier's size limit (ngx_http_nixcache_evict.c) */
    off_t                      chunks_max_size;        /* 0: no limit */
    ngx_msec_t                 chunks_evict_interval;

    /* pull-through (ngx_http_nixcache_upstream.c): in order, or NULL */
    ngx_array_t               *upstreams;
    ngx_msec_t                 upstream_negative_ttl;  /* 0: none kept */

    /* the metrics zone's block of this cache: index + 1, 0 for none */
    ngx_uint_t                 metrics_cache;
} ngx_http_nixcache_loc_conf_t;


#define NGX_HTTP_NIXCACHE_AUTH_READ   1
#define NGX_HTTP_NIXCACHE_AUTH_PUSH   2

/* a token list that holds tokens: neither unset nor "off" */
#define ngx_http_nixcache_tokens_set(t)                                    \
    ((t) != NULL && (t) != NGX_CONF_UNSET_PTR)


typedef enum {
    NGX_HTTP_NIXCACHE_ROUTE_INFO = 1,
    NGX_HTTP_NIXCACHE_ROUTE_NARINFO,
    NGX_HTTP_NIXCACHE_ROUTE_NAR,           /* .nar */
    NGX_HTTP_NIXCACHE_ROUTE_NAR_ZST,       /* .nar.zst */
    NGX_HTTP_NIXCACHE_ROUTE_UPSTREAM       /* upstream/<name>/<hash>/<URL> */
} ngx_http_nixcache_route_e;


/*
 * Called exactly once per accepted command, from the Redis connection's
 * event handler, unless the request was finalized first.  reply is NULL
 * when Redis failed, closed the connection, answered with an error reply
 * (-ERR, -WRONGTYPE...) or did not answer within nixcache_redis_timeout;
 * the cause is already logged at error level, and the caller answers 503.
 * reply is freed after the handler returns: copy what must outlive it
 * into memory the request reuses (never a fresh r->pool allocation per
 * reply of a long stream).  The handler runs with the request's counter
 * held by the caller; after it the Redis code runs the posted requests.
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

/*
 * nixcache_redis: the address forms of nixcache_redis_addr.h; a host name
 * is resolved here, when the configuration is loaded.
 */
char *ngx_http_nixcache_redis_address(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/*
 * nixcache_redis_auth FILE: "password" or "user password" (the core's
 * parser, nixcache_redis_auth.h), read now, sent as AUTH on every connect.
 */
char *ngx_http_nixcache_redis_auth(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

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
    uint64_t                       start;          /* us, monotonic */
    unsigned                       active:1;
    unsigned                       retried:1;
    unsigned                       overflow:1;
    unsigned                       probe:1;        /* not in the metrics */
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
ngx_int_t ngx_http_nixcache_s3_cred_init_process(ngx_cycle_t *cycle);
void ngx_http_nixcache_s3_exit_process(ngx_cycle_t *cycle);


/*
 * The NAR response's state, shared by its files: ngx_http_nixcache_nar.c
 * (the handler, Range, headers, the output ring), _nar_manifest.c (the
 * manifest's windows from Redis) and _nar_chunk.c (the chunk source: the
 * disk tier, S3 fetch slots, write-through).
 */

typedef enum {
    NGX_HTTP_NIXCACHE_FETCH_FREE = 0,
    NGX_HTTP_NIXCACHE_FETCH_BUSY,          /* GET in flight */
    NGX_HTTP_NIXCACHE_FETCH_DONE,          /* answered, not used yet */
    NGX_HTTP_NIXCACHE_FETCH_SENDING        /* .nar.zst: queued for output */
} ngx_http_nixcache_fetch_state_e;


typedef struct {
    ngx_http_nixcache_s3_fetch_t   f;      /* first: f is the slot */
    ngx_http_request_t            *r;
    ngx_uint_t                     index;  /* manifest entry */
    nixcache_manifest_entry_t      e;
    u_char                        *mem;    /* the frame */
    size_t                         mem_size;
    ngx_http_nixcache_fetch_state_e  state;
} ngx_http_nixcache_nar_fetch_t;


typedef struct {
    ngx_buf_t                  buf;
    ngx_chain_t                chain;
    ngx_file_t                 file;       /* .nar.zst: the chunk file */
    u_char                    *mem;        /* .nar: the decompressed chunk */
    size_t                     mem_size;
    ngx_http_nixcache_nar_fetch_t  *fetch; /* .nar.zst: a frame from S3 */
} ngx_http_nixcache_nar_slot_t;


typedef struct {
    ngx_uint_t                 kind;       /* first: ..._CTX_NAR */
    ngx_str_t                  key;        /* <prefix>manifest:<hash> */
    ngx_str_t                  etag;

    u_char                    *path;       /* chunk dir + relpath + NUL */
    size_t                     dir_len;

    nixcache_manifest_header_t header;

    u_char                    *window;     /* header + window entries */
    u_char                    *entries;    /* first entry in window */
    ngx_uint_t                 window_size;    /* entries per GETRANGE */
    ngx_uint_t                 window_first;   /* index of entries[0] */
    ngx_uint_t                 window_count;
    ngx_uint_t                 fetch_first;    /* the GETRANGE in flight */
    ngx_uint_t                 fetch_count;

    ngx_uint_t                 index;      /* next manifest entry */
    off_t                      offset;     /* body offset of that entry */
    off_t                      length;     /* whole body */
    off_t                      start;      /* bytes sent: [start, end) */
    off_t                      end;
    ngx_uint_t                 status;

    ngx_http_nixcache_nar_slot_t  *slots;
    ngx_uint_t                 nslots;
    ngx_uint_t                 head;       /* oldest slot in flight */
    ngx_uint_t                 used;

    ngx_chain_t               *out;        /* queued, not yet passed on */
    ngx_chain_t              **last_out;
    ngx_buf_t                 *last;       /* the last_buf */
    size_t                     budget;

    ngx_file_t                 file;       /* .nar: chunk being read */
    u_char                    *in;         /* .nar: compressed chunk */
    size_t                     in_size;
    ZSTD_DCtx                 *dctx;

    ngx_http_nixcache_s3_conf_t    *s3;    /* NULL: no S3 tier */
    ngx_http_nixcache_nar_fetch_t  *fetches;   /* made at the first miss */
    ngx_uint_t                 nfetches;
    ngx_uint_t                 probed;     /* next entry to prefetch */
    off_t                      probe_offset;   /* its body offset */
    u_char                    *scratch;    /* .nar.zst: checked content */
    size_t                     scratch_size;
    ngx_int_t                  fail_status;
    const u_char              *chunks;     /* disk tier dir, NUL */
    ngx_uint_t                 chunks_sent[2];     /* from disk, S3 */

    unsigned                   zst:1;
    unsigned                   head_only:1;
    unsigned                   have_header:1;
    unsigned                   waiting:1;  /* for Redis */
    unsigned                   s3_waiting:1;   /* for the next chunk */
    unsigned                   done:1;
} ngx_http_nixcache_nar_ctx_t;


/* ngx_http_nixcache_nar.c */
void ngx_http_nixcache_nar_run(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx);
ngx_int_t ngx_http_nixcache_nar_send_header(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx);
ngx_int_t ngx_http_nixcache_nar_range(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx);
void ngx_http_nixcache_nar_fail(ngx_http_request_t *r, ngx_int_t status);

/* ngx_http_nixcache_nar_manifest.c: GETRANGE of the next window */
ngx_int_t ngx_http_nixcache_nar_fetch(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx);

/* ngx_http_nixcache_nar_chunk.c */
ngx_int_t ngx_http_nixcache_nar_chunk(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *e,
    off_t lo, off_t hi);
ngx_http_nixcache_nar_fetch_t *ngx_http_nixcache_nar_s3_find(
    ngx_http_nixcache_nar_ctx_t *ctx, ngx_uint_t index);
void ngx_http_nixcache_nar_prefetch(ngx_http_request_t *r,
    ngx_http_nixcache_nar_ctx_t *ctx, nixcache_manifest_entry_t *cur);
void ngx_http_nixcache_nar_s3_stop(ngx_http_nixcache_nar_ctx_t *ctx);


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
 * Pull-through (ngx_http_nixcache_upstream.c): the nixcache_upstream
 * directive; its filters (postconfiguration); a narinfo missing in Redis
 * asked of the upstreams (NGX_DONE while asked, else the status to
 * answer); the upstream/<name>/<hash>/<URL> route.
 */
char *ngx_http_nixcache_upstream(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_nixcache_upstream_init(ngx_conf_t *cf);
ngx_int_t ngx_http_nixcache_upstream_source(ngx_http_request_t *r,
    ngx_str_t *name);
ngx_int_t ngx_http_nixcache_upstream_narinfo(ngx_http_request_t *r,
    ngx_str_t *hash);
ngx_int_t ngx_http_nixcache_upstream_nar(ngx_http_request_t *r,
    ngx_str_t *hash, ngx_str_t *name, ngx_str_t *url);

/*
 * Serves a narinfo (ngx_http_nixcache_module.c): signed with the
 * location's nixcache_sign_key, rendered, sent.  Returns what the
 * request is finalized with.
 */
ngx_int_t ngx_http_nixcache_narinfo_serve(ngx_http_request_t *r,
    nixcache_narinfo_t *ni);


/* ngx_http_nixcache_util.c: small helpers of the module's files */

/*
 * The part of the URI the routes match: the location's prefix stripped
 * (see ngx_http_nixcache_route()).  NGX_OK, or NGX_DECLINED when the URI
 * is not under the location (404).
 */
ngx_int_t ngx_http_nixcache_route_rel(ngx_http_request_t *r, ngx_str_t *rel);

/*
 * Adds one response header (key must outlive the request): NGX_OK or
 * NGX_ERROR.  With elt, the new element is stored there.
 */
ngx_int_t ngx_http_nixcache_add_header(ngx_http_request_t *r, char *key,
    ngx_str_t *value, ngx_table_elt_t **elt);

/*
 * The Redis key <prefix><kind><name> of the location (nixcache_key.h),
 * NUL-terminated (key->len does not count the NUL), in r->pool: NGX_OK
 * or NGX_ERROR.
 */
ngx_int_t ngx_http_nixcache_key(ngx_http_request_t *r, ngx_str_t *key,
    nixcache_key_kind_e kind, u_char *name, size_t len);


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
 * and nixcache_push_tokens; an admin token (nixcache_admin_tokens) also
 * grants push, a push token also grants read.  Without tokens configured
 * for that level (unset, or "off") the request passes.  Returns NGX_OK,
 * NGX_HTTP_UNAUTHORIZED (no credentials; WWW-Authenticate is set),
 * NGX_HTTP_FORBIDDEN (wrong ones) or NGX_HTTP_INTERNAL_SERVER_ERROR.
 * Call it before anything else touches the request (Redis, the body).
 */
ngx_int_t ngx_http_nixcache_auth_check(ngx_http_request_t *r,
    ngx_uint_t level);

/*
 * Whether the request carries one of nixcache_admin_tokens: the privilege
 * to replace a stored narinfo.
 */
ngx_uint_t ngx_http_nixcache_auth_admin(ngx_http_request_t *r);

/*
 * Reads a whole secret file named in a directive (relative to the prefix,
 * at most max bytes, readable by its owner only) into cf->pool; errors
 * are logged.  The caller wipes text when done with it.
 */
ngx_int_t ngx_http_nixcache_read_file(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *name, size_t max, ngx_str_t *text);

/* nixcache_sign_key; nixcache_admin_tokens, _push_tokens, _read_tokens */
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


/*
 * Metrics and health (ngx_http_nixcache_metrics.c, _health.c): the
 * directives nixcache_metrics_zone, nixcache_metrics and nixcache_health; the
 * registration of a "nixcache on" location's cache (at merge time); the
 * log phase handler (postconfiguration); the chunk source's note of a
 * chunk served from the disk tier or from S3.
 */
char *ngx_http_nixcache_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_nixcache_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_nixcache_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_nixcache_metrics_register(ngx_conf_t *cf,
    ngx_http_nixcache_loc_conf_t *conf);
ngx_int_t ngx_http_nixcache_metrics_init(ngx_conf_t *cf);
void ngx_http_nixcache_metrics_chunk(ngx_http_request_t *r, ngx_uint_t s3,
    size_t size);

/* The Redis layer's notes: a connection opened, a command that failed. */
#define NGX_HTTP_NIXCACHE_METRICS_REDIS_CONNECT      0
#define NGX_HTTP_NIXCACHE_METRICS_REDIS_UNREACHABLE  1  /* connect failed */
#define NGX_HTTP_NIXCACHE_METRICS_REDIS_TIMEOUT      2
#define NGX_HTTP_NIXCACHE_METRICS_REDIS_CLOSED       3
#define NGX_HTTP_NIXCACHE_METRICS_REDIS_ERROR_REPLY  4
#define NGX_HTTP_NIXCACHE_METRICS_REDIS_N            5

void ngx_http_nixcache_metrics_redis(ngx_http_nixcache_main_conf_t *nmcf,
    ngx_uint_t what);
/* A reply (or a failure) came after us microseconds. */
void ngx_http_nixcache_metrics_redis_time(
    ngx_http_nixcache_main_conf_t *nmcf, uint64_t us);
/* A connection opened by a worker that had one before. */
void ngx_http_nixcache_metrics_redis_reconnect(
    ngx_http_nixcache_main_conf_t *nmcf);

/* The S3 fetches' notes: a fetch's time, and why one failed. */
#define NGX_HTTP_NIXCACHE_METRICS_S3_TIMEOUT      0
#define NGX_HTTP_NIXCACHE_METRICS_S3_CONNECT      1  /* connect, resolve */
#define NGX_HTTP_NIXCACHE_METRICS_S3_NOT_FOUND    2  /* HTTP 404 */
#define NGX_HTTP_NIXCACHE_METRICS_S3_DENIED       3  /* HTTP 401, 403 */
#define NGX_HTTP_NIXCACHE_METRICS_S3_HTTP_5XX     4
#define NGX_HTTP_NIXCACHE_METRICS_S3_HTTP_OTHER   5
#define NGX_HTTP_NIXCACHE_METRICS_S3_TRANSFER     6  /* cut, other curl */
#define NGX_HTTP_NIXCACHE_METRICS_S3_TOO_LARGE    7  /* beyond the chunk */
#define NGX_HTTP_NIXCACHE_METRICS_S3_CORRUPT      8  /* not chunk X */
#define NGX_HTTP_NIXCACHE_METRICS_S3_N            9

void ngx_http_nixcache_metrics_s3(ngx_uint_t cause);
void ngx_http_nixcache_metrics_s3_time(uint64_t us);

/* An upload's ingest: the chunks it stored anew, and their stored size. */
void ngx_http_nixcache_metrics_upload(ngx_http_request_t *r,
    uint64_t new_chunks, uint64_t new_bytes);

/*
 * A disk tier's evictor pass (worker 0): the tier's size after it, its
 * limit, the chunks removed.  index: the evictor's, in nmcf->evict.
 */
void ngx_http_nixcache_metrics_evict(ngx_http_nixcache_main_conf_t *nmcf,
    ngx_uint_t index, off_t used, off_t limit, ngx_uint_t evicted,
    off_t evicted_bytes);
/* The directory of evictor index (for the zone's labels). */
ngx_str_t *ngx_http_nixcache_evict_dir(ngx_http_nixcache_main_conf_t *nmcf,
    ngx_uint_t index);

/* Microseconds of a monotonic clock, for the histograms. */
uint64_t ngx_http_nixcache_metrics_now(void);

/*
 * The variables $nixcache_route, $nixcache_source, $nixcache_chunks and
 * $nixcache_redis_time (ngx_http_nixcache_variables.c), added at
 * preconfiguration.
 */
ngx_int_t ngx_http_nixcache_add_variables(ngx_conf_t *cf);
/* The time the request's Redis commands took, in microseconds. */
uint64_t ngx_http_nixcache_redis_time(ngx_http_request_t *r);


extern ngx_module_t  ngx_http_nixcache_module;


/*
 * Per-request contexts.  The module has one ctx slot per request and
 * several kinds of context for it, so every context struct starts with
 * "ngx_uint_t kind;", one of these, set by ngx_http_nixcache_set_ctx();
 * handlers fetch theirs with ngx_http_nixcache_get_ctx(), which answers
 * NULL (and logs an alert) for a context of another kind rather than let
 * a handler cast it.  0 is no kind: a context set without its tag is
 * refused too.
 */
typedef enum {
    NGX_HTTP_NIXCACHE_CTX_NAR = 1,     /* ngx_http_nixcache_nar.c */
    NGX_HTTP_NIXCACHE_CTX_UPLOAD,      /* ngx_http_nixcache_upload.c and
                                          _publish.c: PUT of a NAR or
                                          narinfo, HEAD of an uploaded NAR
                                          name */
    NGX_HTTP_NIXCACHE_CTX_UPSTREAM     /* ngx_http_nixcache_upstream.c: the
                                          main request and its upstream
                                          subrequest share it */
} ngx_http_nixcache_ctx_kind_e;


static ngx_inline void
ngx_http_nixcache_set_ctx(ngx_http_request_t *r, void *ctx,
    ngx_http_nixcache_ctx_kind_e kind)
{
    *(ngx_uint_t *) ctx = kind;

    ngx_http_set_ctx(r, ctx, ngx_http_nixcache_module);
}


static ngx_inline void *
ngx_http_nixcache_get_ctx(ngx_http_request_t *r,
    ngx_http_nixcache_ctx_kind_e kind)
{
    ngx_uint_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_nixcache_module);

    if (ctx == NULL || *ctx == (ngx_uint_t) kind) {
        return ctx;
    }

    ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                  "nixcache: request context of kind %ui where %ui was "
                  "expected", *ctx, (ngx_uint_t) kind);

    return NULL;
}


#endif /* NGX_HTTP_NIXCACHE_H */
