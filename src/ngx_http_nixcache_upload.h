/*
 * The upload context and the publish pipeline's job, shared by
 * ngx_http_nixcache_upload.c (the PUT and HEAD routes) and
 * ngx_http_nixcache_publish.c (ingest task, publication in Redis).
 */

#ifndef NGX_HTTP_NIXCACHE_UPLOAD_H
#define NGX_HTTP_NIXCACHE_UPLOAD_H

#include "ngx_http_nixcache.h"

#include "nixcache_decompress.h"
#include "nixcache_ingest.h"
#include "nixcache_s3.h"


#define NGX_HTTP_NIXCACHE_UPLOAD_ERR_LEN    (NIXCACHE_INGEST_ERR_LEN + 128)

/* "\x0d\0\0\0\0\0\0\0nix-archive-1\0\0\0": every NAR starts so */
#define NGX_HTTP_NIXCACHE_NAR_MAGIC_LEN     24


/* what the thread-pool task gets and gives back */

typedef struct {
    u_char                    *body_path;      /* NUL-terminated */
    u_char                    *manifest_path;  /* NUL-terminated */
    u_char                    *chunks;         /* NUL-terminated */
    nixcache_decomp_e          kind;
    uint64_t                   max_nar_size;   /* 0: no limit */
    uint32_t                   max_chunks;     /* 0: no limit */
    uint64_t                   nar_size;       /* decompressed so far */

    ngx_uint_t                 status;         /* 0, or the HTTP status */
    ngx_fd_t                   manifest_fd;
    uint64_t                   body_size;
    u_char                     body_hash[NIXCACHE_SHA256_LEN];
    nixcache_nar_t             nar;            /* nar.manifest unused */
    nixcache_ingest_stats_t    stats;          /* new chunks among them */
    u_char                     head[NGX_HTTP_NIXCACHE_NAR_MAGIC_LEN];
    size_t                     head_len;
    nixcache_ingest_t         *ingest;
    u_char                     err[NGX_HTTP_NIXCACHE_UPLOAD_ERR_LEN];
    size_t                     err_len;

    /*
     * the location's S3 tier (endpoint NULL: none): every chunk is stored
     * there, and on the disk tier, before the task returns; the thread
     * signs with cred, copied when the task is prepared (the worker may
     * read the credentials file again meanwhile)
     */
    nixcache_s3_conf_t         s3;
    nixcache_s3_credentials_t  cred;
} ngx_http_nixcache_upload_job_t;


typedef struct {
    ngx_uint_t                 kind;           /* ..._CTX_UPLOAD */
    ngx_str_t                  name;           /* "<x>.nar[.ext]" */
    ngx_str_t                  hash;           /* narinfo: store hash */
    ngx_http_nixcache_upload_job_t  *job;

    u_char                     nar32[NIXCACHE_SHA256_NIX32_LEN];
    ngx_str_t                  tmp_key;
    ngx_str_t                  manifest_key;
    ngx_str_t                  upload_key;
    ngx_str_t                  narinfo_key;

    u_char                    *window;
    size_t                     window_size;
    uint64_t                   sent;           /* manifest bytes in Redis */

    /* the gc generation read before the ingest checks the chunks */
    u_char                     gen[NGX_INT64_LEN];
    size_t                     gen_len;

    u_char                    *text;           /* narinfo body */
    size_t                     text_len;
    nixcache_narinfo_t         ni;
    u_char                    *rendered;
    size_t                     rendered_len;

    ngx_queue_t                queue;          /* waiting for its turn */
    ngx_http_request_t        *request;
#if (NGX_THREADS)
    ngx_thread_task_t         *task;
    ngx_thread_pool_t         *pool;
#endif

    unsigned                   done:1;         /* the answer is decided */
    unsigned                   admin:1;        /* may replace a narinfo */
} ngx_http_nixcache_upload_ctx_t;


/*
 * Publishes a NAR: the body, in the file named by path (NUL-terminated;
 * its owner removes it), is ingested in the location's thread pool, its
 * manifest stored as <prefix>manifest:<NarHash> and <prefix>upload:<name>
 * recorded; then 201 is answered (ngx_http_nixcache_upload_reply()).
 * The caller has set the ctx (kind ..._CTX_UPLOAD) with name, and job
 * with kind (the body's compression) and manifest_fd NGX_INVALID_FILE.
 * The caller has read the gc generation (ctx->gen, not "locked") before.
 * NGX_OK: the request is held (r->main->blocked) until the task ends, and
 * the pipeline finalizes it (ngx_http_nixcache_upload_finalize()); else
 * the HTTP status to finalize it with.
 *
 * Pull-through is meant to call this too, with the NAR it fetched spooled
 * to a file: once the publication is done, job->nar holds what was
 * published (NarHash, NarSize, the stored frames' hash and size) and
 * manifest_key the key of the manifest.
 */
ngx_int_t ngx_http_nixcache_publish_nar(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx, ngx_str_t *path);


/* ngx_http_nixcache_upload.c, for the pipeline */

/*
 * Queues a command for this request and holds the request for its reply:
 * each reply handler ends with one ngx_http_finalize_request().
 */
ngx_int_t ngx_http_nixcache_upload_command(ngx_http_request_t *r,
    ngx_http_nixcache_redis_pt handler, int argc, const char **argv,
    const size_t *argvlen);

/* A response without a body. */
ngx_int_t ngx_http_nixcache_upload_reply(ngx_http_request_t *r,
    ngx_uint_t status);

/*
 * The end of a NAR upload, from the task's event handler or a reply
 * handler: one finalization for the body's hold on the request.
 */
void ngx_http_nixcache_upload_finalize(ngx_http_request_t *r, ngx_int_t rc);

/*
 * NGX_OK, or 400 when the name of an .xz or .bz2 upload is a FileHash
 * other than the body's (the reasons are at the definition).
 */
ngx_int_t ngx_http_nixcache_upload_name_hash(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx);


#endif /* NGX_HTTP_NIXCACHE_UPLOAD_H */
