/*
 * The publish pipeline: a NAR body in a file becomes a manifest in Redis.
 *
 *   a thread-pool task decompresses, chunks, hashes and stores the body
 *       (the core's ingest pipeline; with an S3 tier every chunk is also
 *       stored there) and writes the manifest to a second, unlinked
 *       temporary file; at most nixcache_upload_jobs of them per worker,
 *       the others wait in order
 *   back on the event loop the manifest is streamed to Redis in windows
 *       under a temporary key, renamed to <prefix>manifest:<NarHash>
 *       atomically, and <prefix>upload:<name> records which NarHash that
 *       file name carried
 *
 * Used by PUT nar/<name> (ngx_http_nixcache_upload.c) today.
 */

#include "ngx_http_nixcache_upload.h"

#include "nixcache_chunkstore.h"
#include "nixcache_decompress.h"
#include "nixcache_gc.h"
#include "nixcache_hash.h"
#include "nixcache_ingest.h"
#include "nixcache_manifest.h"
#include "nixcache_nix32.h"
#include "nixcache_s3.h"
#include "nixcache_s3sink.h"


#define NGX_HTTP_NIXCACHE_UPLOAD_KEY_TTL    "86400"
#define NGX_HTTP_NIXCACHE_UPLOAD_TMP_TTL    "3600"


#if (NGX_THREADS)
static ngx_int_t ngx_http_nixcache_publish_post(
    ngx_http_nixcache_upload_ctx_t *ctx);
static void ngx_http_nixcache_publish_next(
    ngx_http_nixcache_main_conf_t *nmcf);
#endif
static void ngx_http_nixcache_publish_thread(void *data, ngx_log_t *log);
static ngx_int_t ngx_http_nixcache_publish_s3(
    ngx_http_nixcache_upload_job_t *job, nixcache_chunk_sink_t *sink,
    nixcache_chunk_sink_t *disk, size_t frame_cap, nixcache_s3_t **s3,
    nixcache_s3sink_t **ss);
static int ngx_http_nixcache_publish_out(void *data, const void *p,
    size_t n);
static void ngx_http_nixcache_publish_fail(
    ngx_http_nixcache_upload_job_t *job, ngx_uint_t status, ngx_err_t err,
    const char *fmt, const char *arg);
static void ngx_http_nixcache_publish_stored_fail(
    ngx_http_nixcache_upload_job_t *job, nixcache_s3sink_t *ss,
    nixcache_ingest_t *ing);
static void ngx_http_nixcache_publish_cleanup(void *data);
static void ngx_http_nixcache_publish_ingested(ngx_event_t *ev);
static void ngx_http_nixcache_publish_exists(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_publish_window(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx);
static ngx_int_t ngx_http_nixcache_publish_rename(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx);
static void ngx_http_nixcache_publish_appended(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_nixcache_publish_renamed(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_nixcache_publish_recorded(ngx_http_request_t *r,
    redisReply *reply, void *data);


static ngx_uint_t  ngx_http_nixcache_publish_counter;


static const u_char  ngx_http_nixcache_nar_magic[] =
    "\x0d\0\0\0\0\0\0\0nix-archive-1\0\0\0";


/*
 * The body is a NUL-terminated file name (the caller's: it removes the
 * file); the rest of the ingest is the thread pool's and the
 * publication's.
 */

ngx_int_t
ngx_http_nixcache_publish_nar(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx, ngx_str_t *path)
{
    u_char                          *p;
    ngx_thread_task_t               *task;
    ngx_pool_cleanup_t              *cln;
    ngx_http_nixcache_upload_job_t  *job;
    ngx_http_nixcache_loc_conf_t    *nlcf;
    ngx_http_nixcache_main_conf_t   *nmcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);
    job = ctx->job;

    job->body_path = path->data;                /* NUL-terminated */
    job->chunks = nlcf->chunks.data;
    job->max_nar_size = nlcf->upload_max_nar_size;
    job->max_chunks = nlcf->upload_max_chunks;

    if (nlcf->s3.endpoint.len != 0) {
        /* every string NUL-terminated: directive arguments or literals */
        job->s3.endpoint = (const char *) nlcf->s3.endpoint.data;
        job->s3.bucket = (const char *) nlcf->s3.bucket.data;
        job->s3.region = (const char *) nlcf->s3.region.data;
        job->s3.prefix = (const char *) nlcf->s3.prefix.data;
        job->cred = *nlcf->s3.cred;
        job->s3.cred = &job->cred;
        job->s3.path_style = nlcf->s3.path_style ? 1 : 0;
        job->s3.timeout = ngx_max(nlcf->s3.timeout / 1000, 1);
    }

    job->manifest_path = ngx_pnalloc(r->pool,
                                     path->len + sizeof(".manifest"));
    if (job->manifest_path == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(job->manifest_path, path->data, path->len);
    ngx_memcpy(p, ".manifest", sizeof(".manifest"));

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_nixcache_publish_cleanup;
    cln->data = job;

#if (NGX_THREADS)

    task = ngx_thread_task_alloc(r->pool, 0);
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    task->ctx = job;
    task->handler = ngx_http_nixcache_publish_thread;
    task->event.data = r;
    task->event.handler = ngx_http_nixcache_publish_ingested;

    ctx->request = r;
    ctx->task = task;
    ctx->pool = nlcf->upload_pool;

    nmcf = ngx_http_get_module_main_conf(r, ngx_http_nixcache_module);

    /*
     * At most nixcache_upload_jobs ingests of this worker in the pool,
     * which S3 write-through and eviction share: the others wait their
     * turn, in order, holding nothing but their spooled body.
     */

    if (nmcf->upload_running >= nmcf->upload_jobs) {
        ngx_queue_insert_tail(&nmcf->upload_waiting, &ctx->queue);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "nixcache upload: ingest of \"%V\" waits",
                       &ctx->name);

    } else if (ngx_http_nixcache_publish_post(ctx) != NGX_OK) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    /* the request waits for the task: it cannot be freed before */

    r->main->blocked++;
    r->aio = 1;

    return NGX_OK;

#else

    (void) task;
    (void) nmcf;
    return NGX_HTTP_INTERNAL_SERVER_ERROR;

#endif
}


#if (NGX_THREADS)

static ngx_int_t
ngx_http_nixcache_publish_post(ngx_http_nixcache_upload_ctx_t *ctx)
{
    ngx_http_request_t             *r;
    ngx_http_nixcache_main_conf_t  *nmcf;

    r = ctx->request;

    if (ngx_thread_task_post(ctx->pool, ctx->task) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: upload of \"%V\": the thread pool's queue "
                      "is full", &ctx->name);
        return NGX_ERROR;
    }

    nmcf = ngx_http_get_module_main_conf(r, ngx_http_nixcache_module);
    nmcf->upload_running++;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "nixcache upload: ingest of \"%V\" posted", &ctx->name);

    return NGX_OK;
}


/* An ingest ended: the next waiting one, if any, gets its place. */

static void
ngx_http_nixcache_publish_next(ngx_http_nixcache_main_conf_t *nmcf)
{
    ngx_queue_t                     *q;
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    while (nmcf->upload_running < nmcf->upload_jobs
           && !ngx_queue_empty(&nmcf->upload_waiting))
    {
        q = ngx_queue_head(&nmcf->upload_waiting);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_http_nixcache_upload_ctx_t, queue);

        if (ngx_http_nixcache_publish_post(ctx) == NGX_OK) {
            continue;
        }

        r = ctx->request;
        c = r->connection;

        r->main->blocked--;
        r->aio = 0;

        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        ngx_http_run_posted_requests(c);
    }
}

#endif


/*
 * In a thread-pool thread: no request, no pool, no log; everything it
 * needs is in the job, and what it found goes back there.
 */

static void
ngx_http_nixcache_publish_thread(void *data, ngx_log_t *log)
{
    ngx_http_nixcache_upload_job_t *job = data;

    int                      rc;
    ngx_fd_t                 fd;
    nixcache_s3_t           *s3;
    nixcache_decomp_t       *d;
    nixcache_ingest_t        ing;
    nixcache_s3sink_t       *ss;
    nixcache_chunk_sink_t    sink, disk;
    nixcache_ingest_conf_t   conf;

    d = NULL;
    s3 = NULL;
    ss = NULL;
    fd = NGX_INVALID_FILE;

    ngx_memzero(&ing, sizeof(nixcache_ingest_t));
    job->ingest = &ing;

    fd = ngx_open_file(job->body_path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_http_nixcache_publish_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       ngx_errno, "cannot open the body %s",
                                       (const char *) job->body_path);
        goto done;
    }

    /* the manifest file is unlinked at once: nothing left behind, ever */

    job->manifest_fd = open((const char *) job->manifest_path,
                            O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0600);
    if (job->manifest_fd == NGX_INVALID_FILE) {
        ngx_http_nixcache_publish_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       ngx_errno, "cannot create %s",
                                       (const char *) job->manifest_path);
        goto done;
    }

    (void) ngx_delete_file(job->manifest_path);

    nixcache_chunkstore_sink(&disk, (const char *) job->chunks);
    sink = disk;

    conf.chunk_min = NIXCACHE_CHUNK_MIN_DEFAULT;
    conf.chunk_avg = NIXCACHE_CHUNK_AVG_DEFAULT;
    conf.chunk_max = NIXCACHE_CHUNK_MAX_DEFAULT;
    conf.level = NIXCACHE_ZSTD_LEVEL_DEFAULT;
    conf.sink = &sink;

    if (nixcache_ingest_init(&ing, &conf) != 0
        || nixcache_ingest_begin(&ing, job->manifest_fd) != 0)
    {
        ngx_http_nixcache_publish_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR, 0,
                                       "ingest: %s", ing.errmsg);
        goto done;
    }

    if (job->s3.endpoint != NULL
        && ngx_http_nixcache_publish_s3(job, &sink, &disk, ing.frame_cap,
                                        &s3, &ss)
           != NGX_OK)
    {
        goto done;
    }

    d = nixcache_decomp_create(job->kind, UINT64_MAX,
                               ngx_http_nixcache_publish_out, job);
    if (d == NULL) {
        ngx_http_nixcache_publish_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR, 0,
                                       "%s", "out of memory");
        goto done;
    }

    rc = nixcache_decomp_fd(d, fd, job->body_hash, &job->body_size);

    if (rc != 0) {
        switch (nixcache_decomp_error(d)) {

        case NIXCACHE_DECOMP_ERR_INPUT:
            ngx_http_nixcache_publish_fail(job, NGX_HTTP_BAD_REQUEST, 0,
                                           "%s", nixcache_decomp_strerror(d));
            break;

        case NIXCACHE_DECOMP_ERR_OUTPUT:
            if (job->status == 0) {
                ngx_http_nixcache_publish_stored_fail(job, ss, &ing);
            }

            break;

        default:
            ngx_http_nixcache_publish_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                           0, "%s",
                                           nixcache_decomp_strerror(d));
            break;
        }

        goto done;
    }

    if (job->head_len < NGX_HTTP_NIXCACHE_NAR_MAGIC_LEN
        || ngx_memcmp(job->head, ngx_http_nixcache_nar_magic,
                      NGX_HTTP_NIXCACHE_NAR_MAGIC_LEN)
           != 0)
    {
        ngx_http_nixcache_publish_fail(job, NGX_HTTP_BAD_REQUEST, 0, "%s",
                                       "not a NAR (no nix-archive-1 header)");
        goto done;
    }

    if (nixcache_ingest_finish(&ing) != 0 || nixcache_ingest_sync(&ing) != 0)
    {
        ngx_http_nixcache_publish_stored_fail(job, ss, &ing);
        goto done;
    }

    job->nar = ing.nar;
    job->nar.manifest = NULL;
    job->stats = ing.stats;

done:

    nixcache_decomp_destroy(d);
    nixcache_ingest_free(&ing);
    job->ingest = NULL;

    if (ss != NULL) {
        nixcache_s3sink_destroy(ss);
    }

    if (s3 != NULL) {
        nixcache_s3_close(s3);
    }

    if (fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(fd);
    }
}


/*
 * With an S3 tier the chunks go to S3 (HEAD, then PUT if missing) and
 * to the disk tier: the durability `nixcache push --s3-*` gives, and
 * what eviction of the disk tier relies on.  Blocking libcurl is fine
 * here, off the event loop; the pipeline holds sink, filled in now.
 */

static ngx_int_t
ngx_http_nixcache_publish_s3(ngx_http_nixcache_upload_job_t *job,
    nixcache_chunk_sink_t *sink, nixcache_chunk_sink_t *disk,
    size_t frame_cap, nixcache_s3_t **s3, nixcache_s3sink_t **ss)
{
    char  msg[NIXCACHE_S3_ERROR_MAX];

    *s3 = nixcache_s3_open(&job->s3, msg, sizeof(msg));
    if (*s3 == NULL) {
        ngx_http_nixcache_publish_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       0, "%s", msg);
        return NGX_ERROR;
    }

    *ss = nixcache_s3sink_create(sink, *s3, disk, frame_cap + 1, msg,
                                 sizeof(msg));
    if (*ss == NULL) {
        ngx_http_nixcache_publish_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       0, "%s", msg);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* Decompressed bytes: the NAR's first bytes are kept for the magic check. */

static int
ngx_http_nixcache_publish_out(void *data, const void *p, size_t n)
{
    ngx_http_nixcache_upload_job_t *job = data;

    size_t  k;

    /* a small stream may decompress to anything: the limit is here */

    job->nar_size += n;

    if (job->max_nar_size != 0 && job->nar_size > job->max_nar_size) {
        ngx_http_nixcache_publish_fail(job,
                                       NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, 0,
                                       "%s", "the NAR is larger than "
                                       "nixcache_upload_max_nar_size");
        return -1;
    }

    if (job->head_len < NGX_HTTP_NIXCACHE_NAR_MAGIC_LEN) {
        k = ngx_min(n, NGX_HTTP_NIXCACHE_NAR_MAGIC_LEN - job->head_len);
        ngx_memcpy(job->head + job->head_len, p, k);
        job->head_len += k;

        /* garbage is refused before any of it is stored */

        if (ngx_memcmp(job->head, ngx_http_nixcache_nar_magic, job->head_len)
            != 0)
        {
            ngx_http_nixcache_publish_fail(job, NGX_HTTP_BAD_REQUEST, 0,
                                           "%s", "not a NAR (no "
                                           "nix-archive-1 header)");
            return -1;
        }
    }

    if (nixcache_ingest_write(job->ingest, p, n) != 0) {
        return -1;
    }

    /* its manifest is one Redis value, 40 bytes a chunk: bounded too */

    if (job->max_chunks != 0
        && job->ingest->nar.chunk_count > job->max_chunks)
    {
        ngx_http_nixcache_publish_fail(job,
                                       NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, 0,
                                       "%s", "the NAR has more chunks than "
                                       "nixcache_upload_max_chunks");
        return -1;
    }

    return 0;
}


static void
ngx_http_nixcache_publish_fail(ngx_http_nixcache_upload_job_t *job,
    ngx_uint_t status, ngx_err_t err, const char *fmt, const char *arg)
{
    u_char  *p, *last;

    job->status = status;

    last = job->err + NGX_HTTP_NIXCACHE_UPLOAD_ERR_LEN;

    /* fmt is one of the few literal formats above: "%s" or "... %s" */

    p = ngx_snprintf(job->err, last - job->err, fmt, arg);

    if (err != 0 && p < last - 2) {
        *p++ = ':';
        *p++ = ' ';
        p = ngx_strerror(err, p, last - p);
    }

    job->err_len = p - job->err;
}


/*
 * Storing chunks failed: 502 when S3 refused or could not be reached
 * (with S3's own message), 500 for the disk tier.
 */

static void
ngx_http_nixcache_publish_stored_fail(ngx_http_nixcache_upload_job_t *job,
    nixcache_s3sink_t *ss, nixcache_ingest_t *ing)
{
    if (ss != NULL && nixcache_s3sink_strerror(ss)[0] != '\0') {
        ngx_http_nixcache_publish_fail(job, NGX_HTTP_BAD_GATEWAY, 0,
                                       "chunks not stored in S3: %s",
                                       nixcache_s3sink_strerror(ss));
        return;
    }

    ngx_http_nixcache_publish_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR, 0,
                                   "%s", ing->errmsg);
}


static void
ngx_http_nixcache_publish_cleanup(void *data)
{
    ngx_http_nixcache_upload_job_t *job = data;

    if (job->manifest_fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(job->manifest_fd);
        job->manifest_fd = NGX_INVALID_FILE;
    }
}


/* Back on the event loop with the task's result. */

static void
ngx_http_nixcache_publish_ingested(ngx_event_t *ev)
{
    u_char                          *p;
    size_t                           argvlen[2];
    ngx_int_t                        rc;
    const char                      *argv[2];
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_nixcache_upload_job_t  *job;
    ngx_http_nixcache_upload_ctx_t  *ctx;
    ngx_http_nixcache_main_conf_t   *nmcf;

    r = ev->data;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    r->main->blocked--;
    r->aio = 0;

    nmcf = ngx_http_get_module_main_conf(r, ngx_http_nixcache_module);

#if (NGX_THREADS)
    nmcf->upload_running--;
    ngx_http_nixcache_publish_next(nmcf);
#endif

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);
    job = ctx->job;

    if (job->status != 0) {
        if (job->status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "nixcache: upload of \"%V\" failed: %*s",
                          &ctx->name, job->err_len, job->err);

        } else {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "nixcache: upload of \"%V\" refused (%ui): %*s",
                          &ctx->name, job->status, job->err_len, job->err);
        }
        rc = job->status;
        goto finalize;
    }

    /* stored and durable, whatever the publication's fate */

    ngx_http_nixcache_metrics_upload(r, job->stats.new_chunks,
                                     job->stats.new_csize);

    rc = ngx_http_nixcache_upload_name_hash(r, ctx);
    if (rc != NGX_OK) {
        goto finalize;
    }

    nixcache_nix32_encode((char *) ctx->nar32, job->nar.nar_hash,
                          NIXCACHE_SHA256_LEN);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "nixcache upload: \"%V\" is NAR %*s, %uL bytes",
                   &ctx->name, (size_t) NIXCACHE_SHA256_NIX32_LEN,
                   ctx->nar32, job->nar.nar_size);

    ctx->window_size = nmcf->manifest_window * NIXCACHE_MANIFEST_ENTRY_LEN;
    ctx->window = ngx_pnalloc(r->pool, ctx->window_size);

    if (ctx->window == NULL
        || ngx_http_nixcache_key(r, &ctx->manifest_key,
                                 NIXCACHE_KEY_KIND_MANIFEST, ctx->nar32,
                                 NIXCACHE_SHA256_NIX32_LEN)
           != NGX_OK
        || ngx_http_nixcache_key(r, &ctx->upload_key,
                                 NIXCACHE_KEY_KIND_UPLOAD, ctx->name.data,
                                 ctx->name.len)
           != NGX_OK)
    {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto finalize;
    }

    /* a unique temporary key: "<manifest key>.tmp.<pid>.<n>" */

    ctx->tmp_key.data = ngx_pnalloc(r->pool, ctx->manifest_key.len
                                             + sizeof(".tmp..")
                                             + 2 * NGX_INT_T_LEN);
    if (ctx->tmp_key.data == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto finalize;
    }

    p = ngx_sprintf(ctx->tmp_key.data, "%V.tmp.%P.%ui", &ctx->manifest_key,
                    ngx_pid, ngx_http_nixcache_publish_counter++);
    ctx->tmp_key.len = p - ctx->tmp_key.data;

    /* a manifest of that NarHash is content-addressed: one is enough */

    argv[0] = "EXISTS";
    argvlen[0] = sizeof("EXISTS") - 1;
    argv[1] = (const char *) ctx->manifest_key.data;
    argvlen[1] = ctx->manifest_key.len;

    rc = ngx_http_nixcache_upload_command(r, ngx_http_nixcache_publish_exists,
                                          2, argv, argvlen);
    if (rc == NGX_OK) {

        /* the body handler's hold ends; the command holds the request */

        ngx_http_finalize_request(r, NGX_DONE);
        goto done;
    }

finalize:

    ngx_http_nixcache_upload_finalize(r, rc);

done:

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_nixcache_publish_exists(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_int_t                        rc;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    if (ctx->done) {
        ngx_http_finalize_request(r, NGX_DONE);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_nixcache_upload_finalize(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    if (reply->integer == 1) {
        ctx->sent = ctx->job->nar.manifest_len;
    }

    rc = ngx_http_nixcache_publish_window(r, ctx);

    if (rc != NGX_OK) {
        ngx_http_nixcache_upload_finalize(r, rc);
        return;
    }

    ngx_http_finalize_request(r, NGX_DONE);
}


/*
 * The next manifest window to the temporary key (SET with a TTL for the
 * first, so an abandoned upload's key expires, APPEND for the others);
 * after the last one, the atomic rename; once the manifest is in place,
 * the upload record.
 */

static ngx_int_t
ngx_http_nixcache_publish_window(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx)
{
    size_t                           n, argvlen[5];
    ssize_t                          got;
    const char                      *argv[5];
    ngx_http_nixcache_upload_job_t  *job;

    job = ctx->job;

    if (ctx->sent == job->nar.manifest_len) {

        /* in place: "upload:<name>" says which NAR that file was */

        argv[0] = "SET";
        argv[1] = (const char *) ctx->upload_key.data;
        argv[2] = (const char *) ctx->nar32;
        argv[3] = "EX";
        argv[4] = NGX_HTTP_NIXCACHE_UPLOAD_KEY_TTL;

        argvlen[0] = sizeof("SET") - 1;
        argvlen[1] = ctx->upload_key.len;
        argvlen[2] = NIXCACHE_SHA256_NIX32_LEN;
        argvlen[3] = sizeof("EX") - 1;
        argvlen[4] = sizeof(NGX_HTTP_NIXCACHE_UPLOAD_KEY_TTL) - 1;

        ctx->sent++;        /* past the end: the next reply is the last */

        return ngx_http_nixcache_upload_command(r,
                                        ngx_http_nixcache_publish_recorded,
                                        5, argv, argvlen);
    }

    n = job->nar.manifest_len - ctx->sent;

    if (n == 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (n > ctx->window_size) {
        n = ctx->window_size;
    }

    got = pread(job->manifest_fd, ctx->window, n, (off_t) ctx->sent);

    if (got != (ssize_t) n) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log,
                      got == -1 ? ngx_errno : 0,
                      "nixcache: upload of \"%V\": cannot read the manifest "
                      "file", &ctx->name);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->sent == 0) {
        argv[0] = "SET";
        argv[1] = (const char *) ctx->tmp_key.data;
        argv[2] = (const char *) ctx->window;
        argv[3] = "EX";
        argv[4] = NGX_HTTP_NIXCACHE_UPLOAD_TMP_TTL;

        argvlen[0] = sizeof("SET") - 1;
        argvlen[1] = ctx->tmp_key.len;
        argvlen[2] = n;
        argvlen[3] = sizeof("EX") - 1;
        argvlen[4] = sizeof(NGX_HTTP_NIXCACHE_UPLOAD_TMP_TTL) - 1;

        ctx->sent = n;

        if (ngx_http_nixcache_upload_command(r,
                                        ngx_http_nixcache_publish_appended,
                                        5, argv, argvlen)
            != NGX_OK)
        {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

    } else {
        argv[0] = "APPEND";
        argv[1] = (const char *) ctx->tmp_key.data;
        argv[2] = (const char *) ctx->window;

        argvlen[0] = sizeof("APPEND") - 1;
        argvlen[1] = ctx->tmp_key.len;
        argvlen[2] = n;

        ctx->sent += n;

        if (ngx_http_nixcache_upload_command(r,
                                        ngx_http_nixcache_publish_appended,
                                        3, argv, argvlen)
            != NGX_OK)
        {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }
    }

    if (ctx->sent < job->nar.manifest_len) {
        return NGX_OK;
    }

    /* after the last window the rename, pipelined: replies come in order */

    return ngx_http_nixcache_publish_rename(r, ctx);
}


/*
 * The temporary key becomes the manifest unless one is there already
 * (written by a concurrent upload of the same NAR, or by the CLI: it
 * describes the same stored frames), and loses its TTL; atomically.
 */

static ngx_int_t
ngx_http_nixcache_publish_rename(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx)
{
    size_t       argvlen[9];
    const char  *argv[9];

    static const char  rename_script[] = NIXCACHE_GC_SCRIPT_MANIFEST_RENAME;

    argv[0] = "EVAL";
    argv[1] = rename_script;
    argv[2] = "5";
    argv[3] = (const char *) ctx->tmp_key.data;
    argv[4] = (const char *) ctx->manifest_key.data;
    argv[5] = NIXCACHE_GC_KEY_RECENT;
    argv[6] = NIXCACHE_GC_KEY_GEN;
    argv[7] = NIXCACHE_GC_KEY_LOCK;
    argv[8] = (const char *) ctx->gen;

    argvlen[0] = sizeof("EVAL") - 1;
    argvlen[1] = sizeof(rename_script) - 1;
    argvlen[2] = 1;
    argvlen[3] = ctx->tmp_key.len;
    argvlen[4] = ctx->manifest_key.len;
    argvlen[5] = sizeof(NIXCACHE_GC_KEY_RECENT) - 1;
    argvlen[6] = sizeof(NIXCACHE_GC_KEY_GEN) - 1;
    argvlen[7] = sizeof(NIXCACHE_GC_KEY_LOCK) - 1;
    argvlen[8] = ctx->gen_len;

    /* on failure the window command is queued: its handler sees "done" */

    return ngx_http_nixcache_upload_command(r,
                                            ngx_http_nixcache_publish_renamed,
                                            9, argv, argvlen);
}


static void
ngx_http_nixcache_publish_appended(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_int_t                        rc;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    if (ctx->done) {
        ngx_http_finalize_request(r, NGX_DONE);
        return;
    }

    if (reply == NULL) {
        ngx_http_nixcache_upload_finalize(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    if (ctx->sent < ctx->job->nar.manifest_len) {
        rc = ngx_http_nixcache_publish_window(r, ctx);

        if (rc != NGX_OK) {
            ngx_http_nixcache_upload_finalize(r, rc);
            return;
        }
    }

    /* else the rename is queued behind this APPEND already */

    ngx_http_finalize_request(r, NGX_DONE);
}


static void
ngx_http_nixcache_publish_renamed(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_int_t                        rc;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    if (ctx->done) {
        ngx_http_finalize_request(r, NGX_DONE);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_nixcache_upload_finalize(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    /*
     * A gc took its lock since the generation was read: a chunk the
     * ingest found in place may be gone.  The script deleted the
     * temporary key; nothing was published, the client uploads again.
     */

    if (reply->integer == NIXCACHE_GC_REFUSED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused (503): gc ran "
                      "during the upload", &ctx->name);
        ngx_http_nixcache_upload_finalize(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "nixcache upload: manifest \"%V\" %s", &ctx->manifest_key,
                   reply->integer ? "stored" : "was there already");

    rc = ngx_http_nixcache_publish_window(r, ctx);

    if (rc != NGX_OK) {
        ngx_http_nixcache_upload_finalize(r, rc);
        return;
    }

    ngx_http_finalize_request(r, NGX_DONE);
}


static void
ngx_http_nixcache_publish_recorded(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    if (ctx->done) {
        ngx_http_finalize_request(r, NGX_DONE);
        return;
    }

    if (reply == NULL) {
        ngx_http_nixcache_upload_finalize(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "nixcache: uploaded \"%V\": NAR %*s, %uL bytes, "
                  "%uD chunks", &ctx->name,
                  (size_t) NIXCACHE_SHA256_NIX32_LEN, ctx->nar32,
                  ctx->job->nar.nar_size, ctx->job->nar.chunk_count);

    ngx_http_nixcache_upload_finalize(r,
                                ngx_http_nixcache_upload_reply(r,
                                                         NGX_HTTP_CREATED));
}
