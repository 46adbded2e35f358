/*
 * Uploads through the binary cache protocol, as `nix copy --to
 * http://...` sends them (nixcache_upload on):
 *
 *   PUT nar/<name>.nar[.xz|.zst|.bz2]  the body goes to a temporary file;
 *       a thread-pool task decompresses, chunks, hashes and stores it
 *       (the core's ingest pipeline) and writes the manifest to a second,
 *       unlinked temporary file; back on the event loop the manifest is
 *       streamed to Redis in windows under a temporary key, renamed to
 *       <prefix>manifest:<NarHash> atomically, and <prefix>upload:<name>
 *       records which NarHash that file name carried
 *   HEAD nar/<name>.nar.xz|.bz2        200 when that name was uploaded
 *   PUT <hash>.narinfo                 checked against the manifest of its
 *       NarHash (there must be one, of NarSize bytes), rewritten to this
 *       cache's NAR URL and stored: only now is the path visible
 *   PUT <hash>.ls, PUT nix-cache-info  accepted and discarded
 *
 * Nothing is visible before the narinfo is stored, and the narinfo is only
 * accepted when a NAR with its NarHash was ingested: a NAR whose bytes do
 * not match the narinfo was stored under the hash it really has.
 */

#include "ngx_http_nixcache.h"

#include "nixcache_chunkstore.h"
#include "nixcache_decompress.h"
#include "nixcache_hash.h"
#include "nixcache_ingest.h"
#include "nixcache_manifest.h"
#include "nixcache_narinfo.h"
#include "nixcache_nix32.h"
#include "nixcache_route.h"
#include "nixcache_s3.h"
#include "nixcache_s3sink.h"


#define NGX_HTTP_NIXCACHE_UPLOAD_KEY_TTL    "86400"
#define NGX_HTTP_NIXCACHE_UPLOAD_TMP_TTL    "3600"
#define NGX_HTTP_NIXCACHE_UPLOAD_ERR_LEN    (NIXCACHE_INGEST_ERR_LEN + 128)

/*
 * Defaults of nixcache_upload_max_nar_size and _max_chunks: the largest
 * NARs of nixpkgs are a few GiB; 262144 chunks (a 10 MiB manifest) hold
 * 8 GiB even when chunks come out at half the chunker's 64 KiB average.
 */
#define NGX_HTTP_NIXCACHE_UPLOAD_MAX_NAR_SIZE  ((off_t) 8 << 30)
#define NGX_HTTP_NIXCACHE_UPLOAD_MAX_CHUNKS    262144

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
    u_char                     head[NGX_HTTP_NIXCACHE_NAR_MAGIC_LEN];
    size_t                     head_len;
    nixcache_ingest_t         *ingest;
    u_char                     err[NGX_HTTP_NIXCACHE_UPLOAD_ERR_LEN];
    size_t                     err_len;

    /*
     * the location's S3 tier (endpoint NULL: none): every chunk is stored
     * there, and on the disk tier, before the task returns
     */
    nixcache_s3_conf_t         s3;
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


static ngx_int_t ngx_http_nixcache_upload_nar(ngx_http_request_t *r,
    ngx_str_t *name);
static void ngx_http_nixcache_upload_nar_body(ngx_http_request_t *r);
static void ngx_http_nixcache_upload_thread(void *data, ngx_log_t *log);
static int ngx_http_nixcache_upload_out(void *data, const void *p,
    size_t n);
static void ngx_http_nixcache_upload_fail(ngx_http_nixcache_upload_job_t *job,
    ngx_uint_t status, ngx_err_t err, const char *fmt, const char *arg);
#if (NGX_THREADS)
static ngx_int_t ngx_http_nixcache_upload_post(
    ngx_http_nixcache_upload_ctx_t *ctx);
static void ngx_http_nixcache_upload_next(ngx_http_nixcache_main_conf_t *nmcf);
#endif
static void ngx_http_nixcache_upload_stored_fail(
    ngx_http_nixcache_upload_job_t *job, nixcache_s3sink_t *ss,
    nixcache_ingest_t *ing);
static void ngx_http_nixcache_upload_ingested(ngx_event_t *ev);
static void ngx_http_nixcache_upload_cleanup(void *data);
static void ngx_http_nixcache_upload_exists(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_upload_window(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx);
static void ngx_http_nixcache_upload_appended(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_nixcache_upload_renamed(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_nixcache_upload_recorded(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_upload_head(ngx_http_request_t *r,
    ngx_str_t *name);
static void ngx_http_nixcache_upload_head_reply(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_upload_narinfo(ngx_http_request_t *r,
    ngx_str_t *hash);
static void ngx_http_nixcache_upload_narinfo_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_nixcache_upload_narinfo_check(
    ngx_http_request_t *r, ngx_http_nixcache_upload_ctx_t *ctx);
static void ngx_http_nixcache_upload_narinfo_manifest(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_nixcache_upload_narinfo_stored(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_upload_discard(ngx_http_request_t *r);
static ngx_int_t ngx_http_nixcache_upload_command(ngx_http_request_t *r,
    ngx_http_nixcache_redis_pt handler, int argc, const char **argv,
    const size_t *argvlen);
static ngx_int_t ngx_http_nixcache_upload_reply(ngx_http_request_t *r,
    ngx_uint_t status);
static void ngx_http_nixcache_upload_finalize(ngx_http_request_t *r,
    ngx_int_t rc);
static ngx_int_t ngx_http_nixcache_upload_rename(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx);
static ngx_int_t ngx_http_nixcache_upload_name_hash(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx);
static ngx_int_t ngx_http_nixcache_upload_bounded(ngx_http_request_t *r,
    ngx_str_t *name, off_t max, ngx_uint_t chunked);


static ngx_uint_t  ngx_http_nixcache_upload_counter;


static const u_char  ngx_http_nixcache_nar_magic[] =
    "\x0d\0\0\0\0\0\0\0nix-archive-1\0\0\0";


ngx_int_t
ngx_http_nixcache_upload_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      rel, tail;
    nixcache_route_t               rt;
    nixcache_decomp_e              kind;
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    if (!nlcf->upload) {
        return NGX_DECLINED;
    }

    if (ngx_http_nixcache_route_rel(r, &rel) != NGX_OK) {
        return (r->method & NGX_HTTP_PUT) ? NGX_HTTP_NOT_FOUND
                                          : NGX_DECLINED;
    }

    if (rel.len > sizeof("nar/") - 1
        && ngx_strncmp(rel.data, "nar/", sizeof("nar/") - 1) == 0)
    {
        tail.data = rel.data + sizeof("nar/") - 1;
        tail.len = rel.len - (sizeof("nar/") - 1);

        if (r->method & NGX_HTTP_PUT) {
            return ngx_http_nixcache_upload_nar(r, &tail);
        }

        /* HEAD: the names the ordinary /nar/ routes do not serve */

        if (nixcache_route_nar_name((const char *) tail.data, tail.len,
                                    &kind)
            == 0
            && (kind == NIXCACHE_DECOMP_XZ || kind == NIXCACHE_DECOMP_BZIP2))
        {
            /* only a pusher asks this: it needs a push token */

            rc = ngx_http_nixcache_auth_check(r, NGX_HTTP_NIXCACHE_AUTH_PUSH);
            if (rc != NGX_OK) {
                return rc;
            }

            return ngx_http_nixcache_upload_head(r, &tail);
        }

        return NGX_DECLINED;
    }

    if (!(r->method & NGX_HTTP_PUT)) {
        return NGX_DECLINED;
    }

    nixcache_route_match(&rt, (const char *) rel.data, rel.len);

    switch (rt.route) {

    case NIXCACHE_ROUTE_INFO:
    case NIXCACHE_ROUTE_LS:
        return ngx_http_nixcache_upload_discard(r);

    case NIXCACHE_ROUTE_NARINFO:
        tail.data = rel.data + rt.hash_off;
        tail.len = rt.hash_len;

        return ngx_http_nixcache_upload_narinfo(r, &tail);

    case NIXCACHE_ROUTE_BAD_HASH:
        return NGX_HTTP_BAD_REQUEST;

    default:
        return NGX_HTTP_NOT_FOUND;
    }
}


/* NAR uploads ------------------------------------------------------------ */


static ngx_int_t
ngx_http_nixcache_upload_nar(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_int_t                        rc;
    nixcache_decomp_e                kind;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ngx_str_t                        esc;
    ngx_http_nixcache_loc_conf_t    *nlcf;

    if (nixcache_route_nar_name((const char *) name->data, name->len, &kind)
        != 0)
    {
        /* the decoded URI may hold anything, newlines too: escaped */

        esc.data = ngx_pnalloc(r->pool, 3 * name->len + 1);
        if (esc.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        esc.len = (u_char *) ngx_escape_uri(esc.data, name->data, name->len,
                                            NGX_ESCAPE_URI_COMPONENT)
                  - esc.data;

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload: \"nar/%V\" is not "
                      "<name>.nar[.xz|.zst|.bz2]", &esc);
        return NGX_HTTP_BAD_REQUEST;
    }

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    /*
     * Compressed, a NAR is hardly larger than itself (xz and zstd add
     * well under 1/64 to incompressible input): a body past that is
     * refused before any of it is spooled.  A chunked one (`nixcache
     * push --url` streams its NARs) is bounded by client_max_body_size
     * as nginx reads it.
     */

    rc = ngx_http_nixcache_upload_bounded(r, name,
                                   nlcf->upload_max_nar_size == 0
                                   ? 0
                                   : nlcf->upload_max_nar_size
                                     + nlcf->upload_max_nar_size / 64
                                     + 65536,
                                   1);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_nixcache_upload_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->name = *name;

    ctx->job = ngx_pcalloc(r->pool, sizeof(ngx_http_nixcache_upload_job_t));
    if (ctx->job == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->job->kind = kind;
    ctx->job->manifest_fd = NGX_INVALID_FILE;

    ngx_http_nixcache_set_ctx(r, ctx, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    /* the body never stays in memory: a temporary file, removed at the end */

    r->request_body_in_file_only = 1;
    r->request_body_in_persistent_file = 1;
    r->request_body_in_clean_file = 1;
    r->request_body_file_log_level = 0;

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_nixcache_upload_nar_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* The body is in its temporary file: the ingest goes to the thread pool. */

static void
ngx_http_nixcache_upload_nar_body(ngx_http_request_t *r)
{
    u_char                          *p;
    ngx_str_t                       *path;
    ngx_thread_task_t               *task;
    ngx_pool_cleanup_t              *cln;
    ngx_http_request_body_t         *rb;
    ngx_http_nixcache_upload_job_t  *job;
    ngx_http_nixcache_upload_ctx_t  *ctx;
    ngx_http_nixcache_loc_conf_t    *nlcf;
    ngx_http_nixcache_main_conf_t   *nmcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);
    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);
    job = ctx->job;
    rb = r->request_body;

    if (rb == NULL || rb->temp_file == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\": empty body", &ctx->name);
        ngx_http_finalize_request(r, NGX_HTTP_BAD_REQUEST);
        return;
    }

    path = &rb->temp_file->file.name;

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
        job->s3.cred = nlcf->s3.cred;
        job->s3.path_style = nlcf->s3.path_style ? 1 : 0;
        job->s3.timeout = ngx_max(nlcf->s3.timeout / 1000, 1);
    }

    job->manifest_path = ngx_pnalloc(r->pool,
                                     path->len + sizeof(".manifest"));
    if (job->manifest_path == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = ngx_cpymem(job->manifest_path, path->data, path->len);
    ngx_memcpy(p, ".manifest", sizeof(".manifest"));

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_http_nixcache_upload_cleanup;
    cln->data = job;

#if (NGX_THREADS)

    task = ngx_thread_task_alloc(r->pool, 0);
    if (task == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    task->ctx = job;
    task->handler = ngx_http_nixcache_upload_thread;
    task->event.data = r;
    task->event.handler = ngx_http_nixcache_upload_ingested;

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

    } else if (ngx_http_nixcache_upload_post(ctx) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    /* the request waits for the task: it cannot be freed before */

    r->main->blocked++;
    r->aio = 1;

#else

    (void) task;
    (void) nmcf;
    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);

#endif
}


#if (NGX_THREADS)

static ngx_int_t
ngx_http_nixcache_upload_post(ngx_http_nixcache_upload_ctx_t *ctx)
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
ngx_http_nixcache_upload_next(ngx_http_nixcache_main_conf_t *nmcf)
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

        if (ngx_http_nixcache_upload_post(ctx) == NGX_OK) {
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
ngx_http_nixcache_upload_thread(void *data, ngx_log_t *log)
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
    char                     msg[NIXCACHE_S3_ERROR_MAX];

    d = NULL;
    s3 = NULL;
    ss = NULL;
    fd = NGX_INVALID_FILE;

    ngx_memzero(&ing, sizeof(nixcache_ingest_t));
    job->ingest = &ing;

    fd = ngx_open_file(job->body_path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_http_nixcache_upload_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      ngx_errno, "cannot open the body %s",
                                      (const char *) job->body_path);
        goto done;
    }

    /* the manifest file is unlinked at once: nothing left behind, ever */

    job->manifest_fd = open((const char *) job->manifest_path,
                            O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0600);
    if (job->manifest_fd == NGX_INVALID_FILE) {
        ngx_http_nixcache_upload_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR,
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
        ngx_http_nixcache_upload_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR, 0,
                                      "ingest: %s", ing.errmsg);
        goto done;
    }

    /*
     * With an S3 tier the chunks go to S3 (HEAD, then PUT if missing) and
     * to the disk tier: the durability `nixcache push --s3-*` gives, and
     * what eviction of the disk tier relies on.  Blocking libcurl is fine
     * here, off the event loop; the pipeline holds &sink, filled in now.
     */

    if (job->s3.endpoint != NULL) {
        s3 = nixcache_s3_open(&job->s3, msg, sizeof(msg));
        if (s3 == NULL) {
            ngx_http_nixcache_upload_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          0, "%s", msg);
            goto done;
        }

        ss = nixcache_s3sink_create(&sink, s3, &disk, ing.frame_cap + 1,
                                    msg, sizeof(msg));
        if (ss == NULL) {
            ngx_http_nixcache_upload_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          0, "%s", msg);
            goto done;
        }
    }

    d = nixcache_decomp_create(job->kind, UINT64_MAX,
                               ngx_http_nixcache_upload_out, job);
    if (d == NULL) {
        ngx_http_nixcache_upload_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR, 0,
                                      "%s", "out of memory");
        goto done;
    }

    rc = nixcache_decomp_fd(d, fd, job->body_hash, &job->body_size);

    if (rc != 0) {
        switch (nixcache_decomp_error(d)) {

        case NIXCACHE_DECOMP_ERR_INPUT:
            ngx_http_nixcache_upload_fail(job, NGX_HTTP_BAD_REQUEST, 0,
                                          "%s", nixcache_decomp_strerror(d));
            break;

        case NIXCACHE_DECOMP_ERR_OUTPUT:
            if (job->status == 0) {
                ngx_http_nixcache_upload_stored_fail(job, ss, &ing);
            }

            break;

        default:
            ngx_http_nixcache_upload_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR,
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
        ngx_http_nixcache_upload_fail(job, NGX_HTTP_BAD_REQUEST, 0, "%s",
                                      "not a NAR (no nix-archive-1 header)");
        goto done;
    }

    if (nixcache_ingest_finish(&ing) != 0 || nixcache_ingest_sync(&ing) != 0)
    {
        ngx_http_nixcache_upload_stored_fail(job, ss, &ing);
        goto done;
    }

    job->nar = ing.nar;
    job->nar.manifest = NULL;

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


/* Decompressed bytes: the NAR's first bytes are kept for the magic check. */

static int
ngx_http_nixcache_upload_out(void *data, const void *p, size_t n)
{
    ngx_http_nixcache_upload_job_t *job = data;

    size_t  k;

    /* a small stream may decompress to anything: the limit is here */

    job->nar_size += n;

    if (job->max_nar_size != 0 && job->nar_size > job->max_nar_size) {
        ngx_http_nixcache_upload_fail(job,
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
            ngx_http_nixcache_upload_fail(job, NGX_HTTP_BAD_REQUEST, 0,
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
        ngx_http_nixcache_upload_fail(job,
                                      NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, 0,
                                      "%s", "the NAR has more chunks than "
                                      "nixcache_upload_max_chunks");
        return -1;
    }

    return 0;
}


static void
ngx_http_nixcache_upload_fail(ngx_http_nixcache_upload_job_t *job,
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
ngx_http_nixcache_upload_stored_fail(ngx_http_nixcache_upload_job_t *job,
    nixcache_s3sink_t *ss, nixcache_ingest_t *ing)
{
    if (ss != NULL && nixcache_s3sink_strerror(ss)[0] != '\0') {
        ngx_http_nixcache_upload_fail(job, NGX_HTTP_BAD_GATEWAY, 0,
                                      "chunks not stored in S3: %s",
                                      nixcache_s3sink_strerror(ss));
        return;
    }

    ngx_http_nixcache_upload_fail(job, NGX_HTTP_INTERNAL_SERVER_ERROR, 0,
                                  "%s", ing->errmsg);
}


static void
ngx_http_nixcache_upload_cleanup(void *data)
{
    ngx_http_nixcache_upload_job_t *job = data;

    if (job->manifest_fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(job->manifest_fd);
        job->manifest_fd = NGX_INVALID_FILE;
    }
}


/* Back on the event loop with the task's result. */

static void
ngx_http_nixcache_upload_ingested(ngx_event_t *ev)
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
    ngx_http_nixcache_upload_next(nmcf);
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
                    ngx_pid, ngx_http_nixcache_upload_counter++);
    ctx->tmp_key.len = p - ctx->tmp_key.data;

    /* a manifest of that NarHash is content-addressed: one is enough */

    argv[0] = "EXISTS";
    argvlen[0] = sizeof("EXISTS") - 1;
    argv[1] = (const char *) ctx->manifest_key.data;
    argvlen[1] = ctx->manifest_key.len;

    rc = ngx_http_nixcache_upload_command(r, ngx_http_nixcache_upload_exists,
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
ngx_http_nixcache_upload_exists(ngx_http_request_t *r, redisReply *reply,
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

    rc = ngx_http_nixcache_upload_window(r, ctx);

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
ngx_http_nixcache_upload_window(ngx_http_request_t *r,
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
                                        ngx_http_nixcache_upload_recorded,
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
                                        ngx_http_nixcache_upload_appended,
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
                                        ngx_http_nixcache_upload_appended,
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

    return ngx_http_nixcache_upload_rename(r, ctx);
}


/*
 * The temporary key becomes the manifest unless one is there already
 * (written by a concurrent upload of the same NAR, or by the CLI: it
 * describes the same stored frames), and loses its TTL; atomically.
 */

static ngx_int_t
ngx_http_nixcache_upload_rename(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx)
{
    size_t       argvlen[5];
    const char  *argv[5];

    static const char  rename_script[] = NIXCACHE_SCRIPT_MANIFEST_RENAME;

    argv[0] = "EVAL";
    argv[1] = rename_script;
    argv[2] = "2";
    argv[3] = (const char *) ctx->tmp_key.data;
    argv[4] = (const char *) ctx->manifest_key.data;

    argvlen[0] = sizeof("EVAL") - 1;
    argvlen[1] = sizeof(rename_script) - 1;
    argvlen[2] = 1;
    argvlen[3] = ctx->tmp_key.len;
    argvlen[4] = ctx->manifest_key.len;

    /* on failure the window command is queued: its handler sees "done" */

    return ngx_http_nixcache_upload_command(r,
                                            ngx_http_nixcache_upload_renamed,
                                            5, argv, argvlen);
}


static void
ngx_http_nixcache_upload_appended(ngx_http_request_t *r, redisReply *reply,
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
        rc = ngx_http_nixcache_upload_window(r, ctx);

        if (rc != NGX_OK) {
            ngx_http_nixcache_upload_finalize(r, rc);
            return;
        }
    }

    /* else the rename is queued behind this APPEND already */

    ngx_http_finalize_request(r, NGX_DONE);
}


static void
ngx_http_nixcache_upload_renamed(ngx_http_request_t *r, redisReply *reply,
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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "nixcache upload: manifest \"%V\" %s", &ctx->manifest_key,
                   reply->integer ? "stored" : "was there already");

    rc = ngx_http_nixcache_upload_window(r, ctx);

    if (rc != NGX_OK) {
        ngx_http_nixcache_upload_finalize(r, rc);
        return;
    }

    ngx_http_finalize_request(r, NGX_DONE);
}


static void
ngx_http_nixcache_upload_recorded(ngx_http_request_t *r, redisReply *reply,
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


/* HEAD nar/<name>: was that file name uploaded? */

static ngx_int_t
ngx_http_nixcache_upload_head(ngx_http_request_t *r, ngx_str_t *name)
{
    size_t                           argvlen[2];
    nixcache_decomp_e                kind;
    const char                      *argv[2];
    ngx_http_nixcache_upload_ctx_t  *ctx;

    if (nixcache_route_nar_name((const char *) name->data, name->len, &kind)
        != 0)
    {
        return NGX_HTTP_NOT_FOUND;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_nixcache_upload_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_nixcache_set_ctx(r, ctx, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    if (ngx_http_nixcache_key(r, &ctx->upload_key, NIXCACHE_KEY_KIND_UPLOAD,
                              name->data, name->len)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "EXISTS";
    argvlen[0] = sizeof("EXISTS") - 1;
    argv[1] = (const char *) ctx->upload_key.data;
    argvlen[1] = ctx->upload_key.len;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_BAD_REQUEST;
    }

    if (ngx_http_nixcache_upload_command(r,
                                         ngx_http_nixcache_upload_head_reply,
                                         2, argv, argvlen)
        != NGX_OK)
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    return NGX_DONE;
}


static void
ngx_http_nixcache_upload_head_reply(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    if (reply->integer != 1) {
        ngx_http_finalize_request(r, NGX_HTTP_NOT_FOUND);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_nixcache_upload_reply(r,
                                                              NGX_HTTP_OK));
}


/* narinfo uploads -------------------------------------------------------- */


static ngx_int_t
ngx_http_nixcache_upload_narinfo(ngx_http_request_t *r, ngx_str_t *hash)
{
    ngx_int_t                        rc;
    ngx_str_t                        name;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    /* the URI goes on with ".narinfo" */

    name.data = hash->data;
    name.len = hash->len + sizeof(".narinfo") - 1;

    rc = ngx_http_nixcache_upload_bounded(r, &name,
                                          NIXCACHE_NARINFO_MAX_LEN, 0);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_nixcache_upload_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->hash = *hash;
    ctx->name = name;
    ctx->admin = ngx_http_nixcache_auth_admin(r);

    ngx_http_nixcache_set_ctx(r, ctx, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    rc = ngx_http_read_client_request_body(r,
                                       ngx_http_nixcache_upload_narinfo_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_nixcache_upload_narinfo_body(ngx_http_request_t *r)
{
    off_t                            len;
    u_char                          *p;
    ssize_t                          n;
    ngx_int_t                        rc;
    ngx_buf_t                       *b;
    ngx_chain_t                     *cl;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\": empty body", &ctx->name);
        ngx_http_finalize_request(r, NGX_HTTP_BAD_REQUEST);
        return;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl != NULL; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > NIXCACHE_NARINFO_MAX_LEN) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\": larger than %d bytes",
                      &ctx->name, NIXCACHE_NARINFO_MAX_LEN);
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE);
        return;
    }

    ctx->text = ngx_pnalloc(r->pool, len + 1);
    if (ctx->text == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = ctx->text;

    /* small (at most 64 KiB): memory, or a file the body spilled to */

    for (cl = r->request_body->bufs; cl != NULL; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            p += n;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    /* a last line without its newline is taken as it is meant */

    if (p > ctx->text && p[-1] != '\n') {
        *p++ = '\n';
    }

    ctx->text_len = p - ctx->text;

    rc = ngx_http_nixcache_upload_narinfo_check(r, ctx);

    /* NGX_DONE: the body handler's hold ends, the command holds it */

    ngx_http_finalize_request(r, rc == NGX_OK ? NGX_DONE : rc);
}


static ngx_int_t
ngx_http_nixcache_upload_narinfo_check(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx)
{
    size_t               argvlen[4];
    const char          *err, *argv[4];
    unsigned char        digest[NIXCACHE_SHA256_LEN];
    nixcache_narinfo_t  *ni;

    ni = &ctx->ni;

    if (nixcache_narinfo_parse(ni, (const char *) ctx->text, ctx->text_len,
                               &err)
        != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: %s", &ctx->name,
                      err);
        return NGX_HTTP_BAD_REQUEST;
    }

    if (!nixcache_narinfo_is_path(ni, (const char *) ctx->hash.data,
                                  ctx->hash.len))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: StorePath "
                      "\"%*s\" is not that path", &ctx->name,
                      ni->store_path.len, ni->store_path.data);
        return NGX_HTTP_BAD_REQUEST;
    }

    if (nixcache_hash_parse(digest, ni->nar_hash.data, ni->nar_hash.len)
        != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: NarHash is not "
                      "sha256", &ctx->name);
        return NGX_HTTP_BAD_REQUEST;
    }

    nixcache_nix32_encode((char *) ctx->nar32, digest, NIXCACHE_SHA256_LEN);

    if (ngx_http_nixcache_key(r, &ctx->manifest_key,
                              NIXCACHE_KEY_KIND_MANIFEST, ctx->nar32,
                              NIXCACHE_SHA256_NIX32_LEN)
        != NGX_OK
        || ngx_http_nixcache_key(r, &ctx->narinfo_key,
                                 NIXCACHE_KEY_KIND_NARINFO, ctx->hash.data,
                                 ctx->hash.len)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "GETRANGE";
    argv[1] = (const char *) ctx->manifest_key.data;
    argv[2] = "0";
    argv[3] = "95";

    argvlen[0] = sizeof("GETRANGE") - 1;
    argvlen[1] = ctx->manifest_key.len;
    argvlen[2] = 1;
    argvlen[3] = 2;

    if (ngx_http_nixcache_upload_command(r,
                                 ngx_http_nixcache_upload_narinfo_manifest,
                                 4, argv, argvlen)
        != NGX_OK)
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    return NGX_OK;
}


static void
ngx_http_nixcache_upload_narinfo_manifest(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    size_t                           n, argvlen[6];
    const char                      *argv[6];
    unsigned char                    digest[NIXCACHE_SHA256_LEN];
    nixcache_narinfo_t              *ni;
    nixcache_narinfo_point_t         point;
    nixcache_manifest_header_t       h;

    /*
     * First writer wins, as `nix copy` expects (it skips paths the cache
     * has): the same text again is a success, another text is stored
     * only for an admin token.
     */

    static const char  store_script[] = NIXCACHE_SCRIPT_NARINFO_STORE;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);
    ni = &ctx->ni;

    if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    nixcache_hash_parse(digest, ni->nar_hash.data, ni->nar_hash.len);

    if (nixcache_manifest_header_decode(&h, (unsigned char *) reply->str,
                                        reply->len)
        != 0
        || h.nar_size != ni->nar_size
        || ngx_memcmp(h.nar_hash, digest, NIXCACHE_SHA256_LEN) != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: NAR not uploaded "
                      "or NarHash mismatch (no NAR of %uL bytes with "
                      "NarHash %*s here)", &ctx->name, ni->nar_size,
                      ni->nar_hash.len, ni->nar_hash.data);

        ngx_http_finalize_request(r, NGX_HTTP_BAD_REQUEST);
        return;
    }

    /* the cache's own URL and compression, the stored frames' hash */

    nixcache_narinfo_point(ni, &point,
                           NIXCACHE_NARINFO_ZSTD|NIXCACHE_NARINFO_NAR_HASH,
                           h.nar_hash, h.file_hash, h.file_size);

    n = nixcache_narinfo_render(NULL, 0, ni);

    ctx->rendered = ngx_pnalloc(r->pool, n + 1);
    if (ctx->rendered == NULL
        || nixcache_narinfo_render((char *) ctx->rendered, n + 1, ni) != n)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->rendered_len = n;

    argv[0] = "EVAL";
    argv[1] = store_script;
    argv[2] = "1";
    argv[3] = (const char *) ctx->narinfo_key.data;
    argv[4] = (const char *) ctx->rendered;
    argv[5] = ctx->admin ? "1" : "0";

    argvlen[0] = sizeof("EVAL") - 1;
    argvlen[1] = sizeof(store_script) - 1;
    argvlen[2] = 1;
    argvlen[3] = ctx->narinfo_key.len;
    argvlen[4] = ctx->rendered_len;
    argvlen[5] = 1;

    if (ngx_http_nixcache_upload_command(r,
                                    ngx_http_nixcache_upload_narinfo_stored,
                                    6, argv, argvlen)
        != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    ngx_http_finalize_request(r, NGX_DONE);
}


static void
ngx_http_nixcache_upload_narinfo_stored(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    ngx_uint_t                       status;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    switch (reply->integer) {

    case NIXCACHE_NARINFO_STORED:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: uploaded \"%V\": %*s", &ctx->name,
                      ctx->ni.store_path.len, ctx->ni.store_path.data);
        status = NGX_HTTP_CREATED;
        break;

    case NIXCACHE_NARINFO_SAME:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "nixcache upload: \"%V\" was there already",
                       &ctx->name);
        status = NGX_HTTP_OK;
        break;

    case NIXCACHE_NARINFO_REPLACED:
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "nixcache: narinfo \"%V\" of %*s replaced with an "
                      "admin token", &ctx->name, ctx->ni.store_path.len,
                      ctx->ni.store_path.data);
        status = NGX_HTTP_CREATED;
        break;

    default:
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: another narinfo "
                      "of %*s is stored, and replacing it needs one of "
                      "nixcache_admin_tokens", &ctx->name,
                      ctx->ni.store_path.len, ctx->ni.store_path.data);
        status = NGX_HTTP_CONFLICT;
        break;
    }

    if (status == NGX_HTTP_CONFLICT) {
        ngx_http_finalize_request(r, status);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_nixcache_upload_reply(r, status));
}


/* helpers ---------------------------------------------------------------- */


/*
 * `nix copy` names a NAR file by its FileHash, the nix32 SHA-256 of the
 * file as sent, and a HEAD of a .nar.xz or .nar.bz2 name is answered from
 * the upload records: such a name of that form must be the body's hash.
 * Otherwise one pusher could claim the name another's file will have,
 * whose HEAD would then answer 200, so Nix would skip the upload and its
 * narinfo be refused.  A HEAD of a .nar or .nar.zst name is answered by
 * the NarHash routes from what is stored (`nixcache push --url` names
 * its frames by the NarHash); other names are the client's own affair.
 */

static ngx_int_t
ngx_http_nixcache_upload_name_hash(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx)
{
    u_char  claimed[NIXCACHE_SHA256_LEN];
    u_char  actual[NIXCACHE_SHA256_NIX32_LEN];

    if ((ctx->job->kind != NIXCACHE_DECOMP_XZ
         && ctx->job->kind != NIXCACHE_DECOMP_BZIP2)
        || ctx->name.len <= NIXCACHE_SHA256_NIX32_LEN
        || ctx->name.data[NIXCACHE_SHA256_NIX32_LEN] != '.'
        || nixcache_nix32_decode(claimed, NIXCACHE_SHA256_LEN,
                                 (const char *) ctx->name.data,
                                 NIXCACHE_SHA256_NIX32_LEN)
           != 0)
    {
        return NGX_OK;
    }

    if (ngx_memcmp(claimed, ctx->job->body_hash, NIXCACHE_SHA256_LEN) == 0) {
        return NGX_OK;
    }

    nixcache_nix32_encode((char *) actual, ctx->job->body_hash,
                          NIXCACHE_SHA256_LEN);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "nixcache: upload of \"%V\" refused: the name is a "
                  "FileHash, the body's is %*s", &ctx->name,
                  (size_t) NIXCACHE_SHA256_NIX32_LEN, actual);

    return NGX_HTTP_BAD_REQUEST;
}


/*
 * A body that is larger than max (0: no limit) is refused before it is
 * read; so is a chunked one unless allowed, as its size shows only once
 * it is spooled.
 */

static ngx_int_t
ngx_http_nixcache_upload_bounded(ngx_http_request_t *r, ngx_str_t *name,
    off_t max, ngx_uint_t chunked)
{
    if (max == 0) {
        return NGX_OK;
    }

    if (r->headers_in.chunked && !chunked) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: a chunked body "
                      "(send Content-Length)", name);
        return NGX_HTTP_LENGTH_REQUIRED;
    }

    if (r->headers_in.content_length_n > max) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: %O bytes, more "
                      "than %O", name, r->headers_in.content_length_n, max);
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    return NGX_OK;
}


/* PUT of what this cache does not keep: the body is read and dropped. */

static ngx_int_t
ngx_http_nixcache_upload_discard(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_nixcache_upload_reply(r, NGX_HTTP_NO_CONTENT);
}


/*
 * Queues a command for this request and holds the request for its reply:
 * each reply handler ends with one ngx_http_finalize_request().
 */

static ngx_int_t
ngx_http_nixcache_upload_command(ngx_http_request_t *r,
    ngx_http_nixcache_redis_pt handler, int argc, const char **argv,
    const size_t *argvlen)
{
    if (ngx_http_nixcache_redis_command(r, handler, NULL, argc, argv,
                                        argvlen)
        != NGX_OK)
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    r->main->count++;

    return NGX_OK;
}


/* A response without a body. */

static ngx_int_t
ngx_http_nixcache_upload_reply(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_int_t  rc;

    r->headers_out.status = status;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    return ngx_http_send_special(r, NGX_HTTP_LAST);
}


/*
 * The end of a NAR upload, from the task's event handler or a reply
 * handler: one finalization for the body's hold on the request.
 */

static void
ngx_http_nixcache_upload_finalize(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    if (ctx->done) {
        ngx_http_finalize_request(r, NGX_DONE);
        return;
    }

    ctx->done = 1;

    ngx_http_finalize_request(r, rc);
}


char *
ngx_http_nixcache_upload_merge_conf(ngx_conf_t *cf,
    ngx_http_nixcache_loc_conf_t *prev, ngx_http_nixcache_loc_conf_t *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_merge_value(conf->upload, prev->upload, 0);
    ngx_conf_merge_off_value(conf->upload_max_nar_size,
                             prev->upload_max_nar_size,
                             NGX_HTTP_NIXCACHE_UPLOAD_MAX_NAR_SIZE);
    ngx_conf_merge_uint_value(conf->upload_max_chunks,
                              prev->upload_max_chunks,
                              NGX_HTTP_NIXCACHE_UPLOAD_MAX_CHUNKS);
    ngx_conf_merge_str_value(conf->upload_thread_pool,
                             prev->upload_thread_pool, "default");

    if (!conf->upload || !conf->enable) {
        return NGX_CONF_OK;
    }

    if (conf->upload_max_chunks > UINT32_MAX) {
        conf->upload_max_chunks = UINT32_MAX;
    }

    /* who may write is said, never assumed */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->push_tokens == NGX_CONF_UNSET_PTR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_upload on\" in location \"%V\" "
                           "requires \"nixcache_push_tokens\": a token "
                           "file, or \"off\" to take uploads from anyone",
                           &clcf->name);
        return NGX_CONF_ERROR;
    }

    if (conf->push_tokens == NULL
        && ngx_http_nixcache_tokens_set(conf->read_tokens))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_push_tokens off\" in location "
                           "\"%V\" would let anyone write to a cache that "
                           "needs nixcache_read_tokens to be read: give it a "
                           "push token file", &clcf->name);
        return NGX_CONF_ERROR;
    }

#if (NGX_THREADS)

    conf->upload_pool = ngx_thread_pool_add(cf, &conf->upload_thread_pool);

    if (conf->upload_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"nixcache_upload on\" requires nginx built with "
                       "threads (--with-threads)");
    return NGX_CONF_ERROR;

#endif
}
