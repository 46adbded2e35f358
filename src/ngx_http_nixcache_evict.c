/*
 * The disk tier's size limit (nixcache_chunks_max_size): a simple
 * equivalent of nginx's cache manager for the chunk directory of a
 * location with an S3 tier, where an evicted chunk is fetched again.
 *
 * Worker 0 alone (so workers do not race) runs a timer per chunk
 * directory.  Each time it fires, a thread pool task walks the directory
 * (the fan-out directories, lstat of each file), sums the sizes and, when
 * above the limit, removes the least recently used chunks until the total
 * is under a low-water mark (90% of the limit).  The task touches no
 * nginx structure; its result is logged back on the event loop, and the
 * timer is re-armed only then, so walks never overlap.
 *
 * Recency is max(atime, mtime) of the file, in nanoseconds.  atime alone
 * is unreliable (relatime, noatime), so the serving path, which has the
 * chunk open and fstat'ed already, bumps both times with futimens() on
 * that descriptor when they are older than a minute.
 *
 * Removing a chunk never breaks a response: a descriptor already open
 * keeps the file readable, and a chunk missing when a request opens it
 * is fetched from S3.
 *
 * Nor does it lose one: before a chunk is removed the task asks S3 (a
 * HEAD of its object, with the location's S3 tier, 16 in flight) and
 * removes it only when the object is there with the file's size.  A chunk
 * that is not (written by a push without S3, or to another bucket) is
 * kept, remembered for an hour so that it does not block the eviction of
 * others, and counted in the log line.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif

#include "ngx_http_nixcache.h"
#include "nixcache_cid.h"
#include "nixcache_s3.h"


#define NGX_HTTP_NIXCACHE_EVICT_MIN        (16 * 1024 * 1024)
#define NGX_HTTP_NIXCACHE_EVICT_INTERVAL   10000
#define NGX_HTTP_NIXCACHE_EVICT_TOUCH      60          /* seconds */
#define NGX_HTTP_NIXCACHE_EVICT_TMP_AGE    3600        /* seconds */
#define NGX_HTTP_NIXCACHE_EVICT_HEAP_MAX   65536       /* files per pass */
#define NGX_HTTP_NIXCACHE_EVICT_PASSES     16
#define NGX_HTTP_NIXCACHE_EVICT_HEADS      16          /* in flight */
#define NGX_HTTP_NIXCACHE_EVICT_KEPT_MAX   16384       /* remembered */
#define NGX_HTTP_NIXCACHE_EVICT_KEPT_AGE   3600        /* seconds */
#define NGX_HTTP_NIXCACHE_EVICT_YOUNG      60          /* seconds */


/* a candidate for removal: 80 bytes, at most HEAP_MAX of them per task */

typedef struct {
    int64_t                    used;       /* max(atime, mtime), ns */
    off_t                      size;
    u_char                     fan[NIXCACHE_CHUNK_FANOUT_LEN];
    u_char                     name[NIXCACHE_CID_LEN];
} ngx_http_nixcache_evict_file_t;


/* a chunk found not to be in S3: skipped by the walks for a while */

typedef struct {
    time_t                     until;      /* skipped until then */
    ngx_uint_t                 task;       /* and during this task */
    u_char                     name[NIXCACHE_CID_LEN];
    u_char                     taken;      /* 0: a free entry */
} ngx_http_nixcache_evict_kept_t;


typedef struct ngx_http_nixcache_evict_job_s  ngx_http_nixcache_evict_job_t;


/* one HEAD in flight: is the candidate heap[index] in S3? */

typedef struct {
    nixcache_s3_req_t               req;
    ngx_http_nixcache_evict_job_t  *job;
    ngx_http_nixcache_evict_file_t *file;
    int                             fan;       /* its fan-out directory */
    char                           *name;      /* in path */
    unsigned                        busy:1;
    char                            path[NGX_MAX_PATH];
} ngx_http_nixcache_evict_head_t;


/* the task's input and result: written by the thread, read after it */

struct ngx_http_nixcache_evict_job_s {
    u_char                    *dir;        /* NUL-terminated */
    off_t                      max_size;
    off_t                      low;        /* low-water mark */
    nixcache_s3_conf_t         s3;         /* the S3 tier asked */
    nixcache_s3_credentials_t  cred;       /* copied at each post: the
                                              worker may read the file
                                              again meanwhile */
    ngx_http_nixcache_evict_kept_t  *kept; /* KEPT_MAX, or NULL */
    ngx_uint_t                 task;       /* tasks run so far */

    off_t                      before;
    off_t                      after;
    ngx_uint_t                 files;      /* chunk files found */
    ngx_uint_t                 evicted;
    off_t                      evicted_bytes;
    ngx_uint_t                 tmp_removed;
    ngx_uint_t                 not_in_s3;  /* kept: not in S3 */
    ngx_uint_t                 errors;
    ngx_err_t                  err;        /* the first error */
    const char                *what;
    u_char                     path[NGX_MAX_PATH];
    ngx_uint_t                 s3_errors;  /* HEADs that failed */
    u_char                     s3_error[NIXCACHE_S3_ERROR_MAX];

    /* during a removal */
    off_t                      freed;
};


typedef struct {
    ngx_str_t                  dir;        /* NUL-terminated */
    off_t                      max_size;
    ngx_msec_t                 interval;
    void                      *pool;       /* ngx_thread_pool_t */
    ngx_http_nixcache_s3_conf_t  *s3;
    ngx_event_t                timer;
#if (NGX_THREADS)
    ngx_thread_task_t         *task;
#endif
} ngx_http_nixcache_evict_t;


#if (NGX_THREADS)
static void ngx_http_nixcache_evict_timer(ngx_event_t *ev);
static void ngx_http_nixcache_evict_done(ngx_event_t *ev);
static void ngx_http_nixcache_evict_thread(void *data, ngx_log_t *log);
static off_t ngx_http_nixcache_evict_walk(ngx_http_nixcache_evict_job_t *job,
    ngx_http_nixcache_evict_file_t *heap, ngx_uint_t *nheap, off_t excess);
static void ngx_http_nixcache_evict_consider(
    ngx_http_nixcache_evict_file_t *heap, ngx_uint_t *nheap, off_t *sum,
    off_t excess, ngx_http_nixcache_evict_file_t *f);
static void ngx_http_nixcache_evict_sift_down(
    ngx_http_nixcache_evict_file_t *heap, ngx_uint_t n, ngx_uint_t i);
static off_t ngx_http_nixcache_evict_remove(
    ngx_http_nixcache_evict_job_t *job, ngx_http_nixcache_evict_file_t *heap,
    ngx_uint_t n);
static void ngx_http_nixcache_evict_error(ngx_http_nixcache_evict_job_t *job,
    ngx_err_t err, const char *what, const char *path);
static void ngx_http_nixcache_evict_head_done(nixcache_s3_req_t *req);
static void ngx_http_nixcache_evict_unlink(
    ngx_http_nixcache_evict_job_t *job, ngx_http_nixcache_evict_head_t *h,
    off_t s3_size);
static ngx_http_nixcache_evict_kept_t *ngx_http_nixcache_evict_kept(
    ngx_http_nixcache_evict_job_t *job, const u_char *name, time_t now,
    ngx_uint_t add, int64_t used);
#endif
static int64_t ngx_http_nixcache_evict_used(struct stat *st);
static DIR *ngx_http_nixcache_evict_opendir(int at, const char *name);
static ngx_int_t ngx_http_nixcache_evict_same_s3(
    ngx_http_nixcache_s3_conf_t *a, ngx_http_nixcache_s3_conf_t *b);


char *
ngx_http_nixcache_evict_max_size(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_nixcache_loc_conf_t *nlcf = conf;

    off_t       size;
    ngx_str_t  *value;

    if (nlcf->chunks_max_size != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        nlcf->chunks_max_size = 0;
        return NGX_CONF_OK;
    }

    size = ngx_parse_offset(&value[1]);

    if (size == NGX_ERROR) {
        return "invalid value";
    }

    if (size < NGX_HTTP_NIXCACHE_EVICT_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_chunks_max_size\" %V is too small: "
                           "at least 16m (or off)", &value[1]);
        return NGX_CONF_ERROR;
    }

    nlcf->chunks_max_size = size;

    return NGX_CONF_OK;
}


void
ngx_http_nixcache_evict_create_conf(ngx_http_nixcache_loc_conf_t *conf)
{
    conf->chunks_max_size = NGX_CONF_UNSET;
    conf->chunks_evict_interval = NGX_CONF_UNSET_MSEC;
}


/*
 * Checks the limit of a location and registers its chunk directory's
 * evictor: one per directory, however many locations share it.
 */

char *
ngx_http_nixcache_evict_merge_conf(ngx_conf_t *cf,
    ngx_http_nixcache_loc_conf_t *prev, ngx_http_nixcache_loc_conf_t *conf)
{
    ngx_uint_t                      i;
    ngx_http_nixcache_evict_t      *ev;
    ngx_http_nixcache_main_conf_t  *nmcf;

    ngx_conf_merge_off_value(conf->chunks_max_size, prev->chunks_max_size, 0);
    ngx_conf_merge_msec_value(conf->chunks_evict_interval,
                              prev->chunks_evict_interval,
                              NGX_HTTP_NIXCACHE_EVICT_INTERVAL);

    if (conf->chunks_max_size == 0) {
        return NGX_CONF_OK;
    }

    if (conf->s3.endpoint.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_chunks_max_size\" needs an S3 tier "
                           "(\"nixcache_s3_endpoint\"): chunks removed from "
                           "the disk tier must be in S3 to be served again");
        return NGX_CONF_ERROR;
    }

    if (conf->chunks.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_chunks_max_size\" needs "
                           "\"nixcache_chunks\"");
        return NGX_CONF_ERROR;
    }

    if (conf->chunks_evict_interval < 100) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_chunks_evict_interval\" must be at "
                           "least 100ms");
        return NGX_CONF_ERROR;
    }

    if (conf->chunks.len + NIXCACHE_CHUNK_RELPATH_LEN + 64 >= NGX_MAX_PATH) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_chunks\" \"%V\" is too long",
                           &conf->chunks);
        return NGX_CONF_ERROR;
    }

    nmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_nixcache_module);

    if (nmcf->evict == NULL) {
        nmcf->evict = ngx_array_create(cf->pool, 1,
                                       sizeof(ngx_http_nixcache_evict_t));
        if (nmcf->evict == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    ev = nmcf->evict->elts;

    for (i = 0; i < nmcf->evict->nelts; i++) {
        if (ev[i].dir.len != conf->chunks.len
            || ngx_strncmp(ev[i].dir.data, conf->chunks.data,
                           conf->chunks.len) != 0)
        {
            continue;
        }

        if (!ngx_http_nixcache_evict_same_s3(ev[i].s3, &conf->s3)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "conflicting S3 tiers for the chunk directory "
                               "\"%V\" with \"nixcache_chunks_max_size\": "
                               "its evictor checks every chunk in one bucket "
                               "before removing it", &conf->chunks);
            return NGX_CONF_ERROR;
        }

        if (ev[i].max_size != conf->chunks_max_size) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "conflicting \"nixcache_chunks_max_size\" for "
                               "the chunk directory \"%V\" (%O and %O)",
                               &conf->chunks, ev[i].max_size,
                               conf->chunks_max_size);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    ev = ngx_array_push(nmcf->evict);
    if (ev == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(ev, sizeof(ngx_http_nixcache_evict_t));

    ev->dir = conf->chunks;
    ev->max_size = conf->chunks_max_size;
    ev->interval = conf->chunks_evict_interval;
    ev->pool = conf->s3.thread_pool;
    ev->s3 = &conf->s3;

    return NGX_CONF_OK;
}


ngx_str_t *
ngx_http_nixcache_evict_dir(ngx_http_nixcache_main_conf_t *nmcf,
    ngx_uint_t index)
{
    ngx_http_nixcache_evict_t  *ev;

    ev = nmcf->evict->elts;

    return &ev[index].dir;
}


/* A fan-out directory, opened only if it is one (not through a symlink). */

static DIR *
ngx_http_nixcache_evict_opendir(int at, const char *name)
{
    int   fd;
    DIR  *d;

    fd = openat(at, name, O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC);
    if (fd == -1) {
        return NULL;
    }

    d = fdopendir(fd);
    if (d == NULL) {
        (void) close(fd);
    }

    return d;
}


static ngx_int_t
ngx_http_nixcache_evict_same_s3(ngx_http_nixcache_s3_conf_t *a,
    ngx_http_nixcache_s3_conf_t *b)
{
    return a->endpoint.len == b->endpoint.len
           && ngx_strncmp(a->endpoint.data, b->endpoint.data,
                          a->endpoint.len) == 0
           && a->bucket.len == b->bucket.len
           && ngx_strncmp(a->bucket.data, b->bucket.data, a->bucket.len) == 0
           && a->prefix.len == b->prefix.len
           && ngx_strncmp(a->prefix.data, b->prefix.data, a->prefix.len) == 0;
}


/*
 * Worker 0 only (also with master_process off); not the cache manager or
 * loader processes, which run init_process too.  After a reload the new
 * worker 0 takes over; the old one stops arming its timer once exiting.
 */

ngx_int_t
ngx_http_nixcache_evict_init_process(ngx_cycle_t *cycle)
{
#if (NGX_THREADS)
    ngx_uint_t                      i;
    ngx_http_nixcache_evict_t      *ev;
    ngx_http_nixcache_evict_job_t  *job;
    ngx_http_nixcache_main_conf_t  *nmcf;

    if ((ngx_process != NGX_PROCESS_WORKER
         && ngx_process != NGX_PROCESS_SINGLE)
        || ngx_worker != 0)
    {
        return NGX_OK;
    }

    nmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_nixcache_module);
    if (nmcf == NULL || nmcf->evict == NULL) {
        return NGX_OK;
    }

    ev = nmcf->evict->elts;

    for (i = 0; i < nmcf->evict->nelts; i++) {
        ev[i].task = ngx_thread_task_alloc(cycle->pool,
                                        sizeof(ngx_http_nixcache_evict_job_t));
        if (ev[i].task == NULL) {
            return NGX_ERROR;
        }

        job = ev[i].task->ctx;
        job->dir = ev[i].dir.data;
        job->max_size = ev[i].max_size;
        job->low = ev[i].max_size / 10 * 9;

        /* every string NUL-terminated: directive arguments or literals */
        job->s3.endpoint = (const char *) ev[i].s3->endpoint.data;
        job->s3.bucket = (const char *) ev[i].s3->bucket.data;
        job->s3.region = (const char *) ev[i].s3->region.data;
        job->s3.prefix = (const char *) ev[i].s3->prefix.data;
        job->s3.cred = &job->cred;
        job->s3.path_style = ev[i].s3->path_style ? 1 : 0;
        job->s3.timeout = ngx_max(ev[i].s3->timeout / 1000, 1);
        job->s3.inflight = NGX_HTTP_NIXCACHE_EVICT_HEADS;

        ev[i].task->handler = ngx_http_nixcache_evict_thread;
        ev[i].task->event.handler = ngx_http_nixcache_evict_done;
        ev[i].task->event.data = &ev[i];
        ev[i].task->event.log = cycle->log;

        ev[i].timer.handler = ngx_http_nixcache_evict_timer;
        ev[i].timer.data = &ev[i];
        ev[i].timer.log = cycle->log;
        ev[i].timer.cancelable = 1;

        ngx_add_timer(&ev[i].timer, ev[i].interval);
    }
#endif

    return NGX_OK;
}


/* the serving path: a chunk opened from the disk tier is being used */

void
ngx_http_nixcache_evict_touch(ngx_http_request_t *r, ngx_fd_t fd,
    ngx_file_info_t *fi)
{
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    if (nlcf->chunks_max_size <= 0) {
        return;
    }

    if (ngx_http_nixcache_evict_used(fi) / 1000000000
        > (int64_t) ngx_time() - NGX_HTTP_NIXCACHE_EVICT_TOUCH)
    {
        return;
    }

    /* a file not ours (EPERM) keeps its age: it is evicted by it */

    if (futimens(fd, NULL) == -1) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, ngx_errno,
                       "nixcache evict: futimens() of fd %d failed", fd);
    }
}


static int64_t
ngx_http_nixcache_evict_used(struct stat *st)
{
    int64_t  a, m;

    a = (int64_t) st->st_atim.tv_sec * 1000000000 + st->st_atim.tv_nsec;
    m = (int64_t) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;

    return ngx_max(a, m);
}


#if (NGX_THREADS)

static void
ngx_http_nixcache_evict_timer(ngx_event_t *ev)
{
    ngx_http_nixcache_evict_t      *e;
    ngx_http_nixcache_evict_job_t  *job;

    e = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (e->s3 != NULL) {
        job = e->task->ctx;
        job->cred = *e->s3->cred;
    }

    if (ngx_thread_task_post(e->pool, e->task) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "nixcache: disk tier \"%V\": cannot post the eviction "
                      "task", &e->dir);
        ngx_add_timer(&e->timer, e->interval);
    }

    /* the timer is armed again when the task is done */
}


static void
ngx_http_nixcache_evict_done(ngx_event_t *ev)
{
    ngx_http_nixcache_evict_t      *e;
    ngx_http_nixcache_evict_job_t  *job;
    ngx_http_nixcache_main_conf_t  *nmcf;

    e = ev->data;
    job = e->task->ctx;

    nmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_nixcache_module);

    ngx_http_nixcache_metrics_evict(nmcf,
                          e - (ngx_http_nixcache_evict_t *) nmcf->evict->elts,
                          job->after, job->max_size, job->evicted,
                          job->evicted_bytes);

    if (job->evicted || job->tmp_removed || job->not_in_s3) {
        ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                      "nixcache: disk tier \"%V\": %O bytes in %ui chunks, "
                      "limit %O: %ui chunks (%O bytes) evicted, "
                      "%ui stale temporary files removed, now %O bytes",
                      &e->dir, job->before, job->files, job->max_size,
                      job->evicted, job->evicted_bytes, job->tmp_removed,
                      job->after);

    } else {
        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                       "nixcache evict: \"%V\": %O bytes in %ui chunks, "
                       "limit %O", &e->dir, job->before, job->files,
                       job->max_size);
    }

    if (job->errors) {
        ngx_log_error(NGX_LOG_ERR, ev->log, job->err,
                      "nixcache: disk tier \"%V\": %ui errors while "
                      "evicting, the first: %s \"%s\"", &e->dir,
                      job->errors, job->what, job->path);
    }

    if (job->not_in_s3) {
        ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                      "nixcache: disk tier \"%V\": %ui chunks kept: not "
                      "in S3 bucket \"%V\" (written without the S3 tier?); "
                      "the disk tier may stay above its limit", &e->dir,
                      job->not_in_s3, &e->s3->bucket);
    }

    if (job->s3_errors) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "nixcache: disk tier \"%V\": %ui chunks kept: "
                      "cannot check them in S3, the first: %s", &e->dir,
                      job->s3_errors, job->s3_error);
    }

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_add_timer(&e->timer, e->interval);
}


/*
 * In a thread: nothing of nginx but this job.  Memory: the job, one path
 * buffer on the stack and, when above the limit, a heap of at most
 * HEAP_MAX candidates (5 MiB), freed before returning.
 */

static void
ngx_http_nixcache_evict_thread(void *data, ngx_log_t *log)
{
    ngx_http_nixcache_evict_job_t *job = data;

    off_t                            total, freed;
    ngx_uint_t                       n, pass, kept;
    ngx_http_nixcache_evict_file_t  *heap;

    job->before = 0;
    job->after = 0;
    job->files = 0;
    job->evicted = 0;
    job->evicted_bytes = 0;
    job->tmp_removed = 0;
    job->task++;
    job->not_in_s3 = 0;
    job->s3_errors = 0;
    job->s3_error[0] = '\0';
    job->errors = 0;
    job->err = 0;
    job->what = "";
    job->path[0] = '\0';

    total = ngx_http_nixcache_evict_walk(job, NULL, NULL, 0);

    job->before = total;
    job->after = total;

    if (total <= job->max_size) {
        return;
    }

    heap = malloc(NGX_HTTP_NIXCACHE_EVICT_HEAP_MAX
                  * sizeof(ngx_http_nixcache_evict_file_t));
    if (heap == NULL) {
        ngx_http_nixcache_evict_error(job, NGX_ENOMEM, "cannot allocate",
                                      "the candidates");
        return;
    }

    /* each pass removes at most HEAP_MAX files: a huge excess takes more */

    for (pass = 0;
         pass < NGX_HTTP_NIXCACHE_EVICT_PASSES && total > job->low;
         pass++)
    {
        n = 0;
        (void) ngx_http_nixcache_evict_walk(job, heap, &n, total - job->low);

        if (n == 0) {
            break;
        }

        kept = job->not_in_s3;

        freed = ngx_http_nixcache_evict_remove(job, heap, n);

        /* chunks kept as not in S3 are skipped by the next pass */
        if (freed == 0 && job->not_in_s3 == kept) {
            break;
        }

        total -= freed;
    }

    free(heap);

    job->after = total;
}


/*
 * Walks the fan-out directories.  Without a heap: returns the bytes used
 * by chunks and young temporary files, and removes temporary files older
 * than an hour (left by a crash).  With one: keeps in it the oldest
 * chunks whose sizes add up to at least excess (or HEAP_MAX of them).
 */

static off_t
ngx_http_nixcache_evict_walk(ngx_http_nixcache_evict_job_t *job,
    ngx_http_nixcache_evict_file_t *heap, ngx_uint_t *nheap, off_t excess)
{
    DIR                             *root, *fan;
    off_t                            total, size, sum;
    size_t                           dlen, len;
    time_t                           now;
    ngx_err_t                        err;
    struct stat                      st;
    struct dirent                   *de, *fe;
    ngx_http_nixcache_evict_file_t   f;
    char                             path[NGX_MAX_PATH];

    total = 0;
    sum = 0;
    now = time(NULL);

    dlen = ngx_strlen(job->dir);

    root = opendir((char *) job->dir);
    if (root == NULL) {
        err = ngx_errno;

        if (err != NGX_ENOENT) {
            ngx_http_nixcache_evict_error(job, err, "cannot open",
                                          (char *) job->dir);
        }

        return 0;
    }

    ngx_memcpy(path, job->dir, dlen);
    path[dlen] = '/';

    for ( ;; ) {
        ngx_set_errno(0);

        de = readdir(root);
        if (de == NULL) {
            err = ngx_errno;

            if (err != 0) {
                ngx_http_nixcache_evict_error(job, err, "cannot read",
                                              (char *) job->dir);
            }

            break;
        }

        if (ngx_strlen(de->d_name) != NIXCACHE_CHUNK_FANOUT_LEN
            || de->d_name[0] == '.')
        {
            continue;
        }

        ngx_memcpy(path + dlen + 1, de->d_name, NIXCACHE_CHUNK_FANOUT_LEN);
        path[dlen + 1 + NIXCACHE_CHUNK_FANOUT_LEN] = '\0';

        /* never through a symlink: it may lead to CID-named files elsewhere */

        fan = ngx_http_nixcache_evict_opendir(dirfd(root), de->d_name);
        if (fan == NULL) {
            err = ngx_errno;

            if ((err == NGX_ELOOP || err == NGX_ENOTDIR)
                && fstatat(dirfd(root), de->d_name, &st, AT_SYMLINK_NOFOLLOW)
                   == 0
                && S_ISLNK(st.st_mode))
            {
                ngx_http_nixcache_evict_error(job, 0, "not entering the "
                                              "symlink", path);

            } else if (err != NGX_ENOENT && err != NGX_ENOTDIR) {
                ngx_http_nixcache_evict_error(job, err, "cannot open", path);
            }

            continue;
        }

        path[dlen + 1 + NIXCACHE_CHUNK_FANOUT_LEN] = '/';

        while ((fe = readdir(fan)) != NULL) {

            len = ngx_strlen(fe->d_name);

            if (len > NGX_MAX_PATH - (dlen + 5)) {
                continue;
            }

            ngx_memcpy(path + dlen + 2 + NIXCACHE_CHUNK_FANOUT_LEN,
                       fe->d_name, len + 1);

            if (fe->d_name[0] == '.') {

                /* ".<CID>.tmp.<pid>.<n>": a write in progress, or a crash's */

                if (len < NIXCACHE_CID_LEN + 6
                    || ngx_strstr(fe->d_name, ".tmp.") == NULL)
                {
                    continue;
                }

                if (fstatat(dirfd(fan), fe->d_name, &st, AT_SYMLINK_NOFOLLOW)
                    == -1 || !S_ISREG(st.st_mode))
                {
                    continue;
                }

                if (st.st_mtime < now - NGX_HTTP_NIXCACHE_EVICT_TMP_AGE) {
                    if (unlinkat(dirfd(fan), fe->d_name, 0) == 0) {
                        job->tmp_removed++;

                    } else if (ngx_errno != NGX_ENOENT) {
                        ngx_http_nixcache_evict_error(job, ngx_errno,
                                                      "cannot remove", path);
                    }

                    continue;
                }

                if (heap == NULL) {
                    total += ngx_max(st.st_size, st.st_blocks * 512);
                }

                continue;
            }

            if (len != NIXCACHE_CID_LEN) {
                continue;
            }

            if (fstatat(dirfd(fan), fe->d_name, &st, AT_SYMLINK_NOFOLLOW)
                == -1)
            {
                err = ngx_errno;

                if (err != NGX_ENOENT) {
                    ngx_http_nixcache_evict_error(job, err, "cannot stat",
                                                  path);
                }

                continue;
            }

            if (!S_ISREG(st.st_mode)) {
                continue;
            }

            size = ngx_max(st.st_size, st.st_blocks * 512);

            if (heap == NULL) {
                total += size;
                job->files++;
                continue;
            }

            /* known not to be in S3: not a candidate for a while */
            if (job->kept != NULL
                && ngx_http_nixcache_evict_kept(job, (u_char *) fe->d_name,
                                                now, 0, 0)
                   != NULL)
            {
                continue;
            }

            f.used = ngx_http_nixcache_evict_used(&st);
            f.size = size;
            ngx_memcpy(f.fan, de->d_name, NIXCACHE_CHUNK_FANOUT_LEN);
            ngx_memcpy(f.name, fe->d_name, NIXCACHE_CID_LEN);

            ngx_http_nixcache_evict_consider(heap, nheap, &sum, excess, &f);
        }

        (void) closedir(fan);
    }

    (void) closedir(root);

    return total;
}


/*
 * A max-heap on recency (the most recently used of the kept files on
 * top) holding the fewest oldest files whose sizes add up to excess:
 * a file newer than the top is not needed once the sum is reached, and
 * the top is dropped whenever the others suffice.
 */

static void
ngx_http_nixcache_evict_consider(ngx_http_nixcache_evict_file_t *heap,
    ngx_uint_t *nheap, off_t *sum, off_t excess,
    ngx_http_nixcache_evict_file_t *f)
{
    ngx_uint_t                      i, parent, n;
    ngx_http_nixcache_evict_file_t  t;

    n = *nheap;

    if (n > 0 && f->used >= heap[0].used
        && (*sum >= excess || n == NGX_HTTP_NIXCACHE_EVICT_HEAP_MAX))
    {
        return;
    }

    if (n == NGX_HTTP_NIXCACHE_EVICT_HEAP_MAX) {
        *sum += f->size - heap[0].size;
        heap[0] = *f;
        ngx_http_nixcache_evict_sift_down(heap, n, 0);

    } else {
        i = n++;
        heap[i] = *f;
        *sum += f->size;

        while (i > 0) {
            parent = (i - 1) / 2;

            if (heap[parent].used >= heap[i].used) {
                break;
            }

            t = heap[parent];
            heap[parent] = heap[i];
            heap[i] = t;
            i = parent;
        }
    }

    while (n > 1 && *sum - heap[0].size >= excess) {
        *sum -= heap[0].size;
        heap[0] = heap[--n];
        ngx_http_nixcache_evict_sift_down(heap, n, 0);
    }

    *nheap = n;
}


static void
ngx_http_nixcache_evict_sift_down(ngx_http_nixcache_evict_file_t *heap,
    ngx_uint_t n, ngx_uint_t i)
{
    ngx_uint_t                      l, r, m;
    ngx_http_nixcache_evict_file_t  t;

    for ( ;; ) {
        l = 2 * i + 1;
        r = l + 1;
        m = i;

        if (l < n && heap[l].used > heap[m].used) {
            m = l;
        }

        if (r < n && heap[r].used > heap[m].used) {
            m = r;
        }

        if (m == i) {
            return;
        }

        t = heap[m];
        heap[m] = heap[i];
        heap[i] = t;
        i = m;
    }
}


/*
 * Removes the chosen files that S3 holds: for each, unless it was used
 * since the walk saw it (its times moved), a HEAD of its object; the
 * answer's handler removes the file when the object has the file's size.
 * Returns the bytes freed.
 */

static off_t
ngx_http_nixcache_evict_remove(ngx_http_nixcache_evict_job_t *job,
    ngx_http_nixcache_evict_file_t *heap, ngx_uint_t n)
{
    int                              root;
    u_char                          *p;
    size_t                           dlen;
    ngx_uint_t                       i, k;
    nixcache_s3_t                   *s3;
    struct stat                      st;
    ngx_http_nixcache_evict_head_t  *heads, *h;
    unsigned char                    digest[NIXCACHE_SHA256_LEN];

    job->freed = 0;
    dlen = ngx_strlen(job->dir);
    heads = NULL;
    s3 = NULL;

    root = open((char *) job->dir, O_RDONLY|O_DIRECTORY|O_CLOEXEC);
    if (root == -1) {
        ngx_http_nixcache_evict_error(job, ngx_errno, "cannot open",
                                      (char *) job->dir);
        return 0;
    }

    s3 = nixcache_s3_open(&job->s3, (char *) job->s3_error,
                          sizeof(job->s3_error));
    if (s3 == NULL) {
        job->s3_errors += n;
        goto done;
    }

    heads = calloc(NGX_HTTP_NIXCACHE_EVICT_HEADS,
                   sizeof(ngx_http_nixcache_evict_head_t));
    if (heads == NULL) {
        ngx_http_nixcache_evict_error(job, NGX_ENOMEM, "cannot allocate",
                                      "the S3 requests");
        goto done;
    }

    for (k = 0; k < NGX_HTTP_NIXCACHE_EVICT_HEADS; k++) {
        heads[k].job = job;
        heads[k].fan = -1;
        p = ngx_cpymem(heads[k].path, job->dir, dlen);
        *p = '/';
        heads[k].name = (char *) p + 1 + NIXCACHE_CHUNK_FANOUT_LEN + 1;
    }

    for (i = 0; i < n; i++) {

        for ( ;; ) {
            for (k = 0; k < NGX_HTTP_NIXCACHE_EVICT_HEADS; k++) {
                if (!heads[k].busy) {
                    break;
                }
            }

            if (k < NGX_HTTP_NIXCACHE_EVICT_HEADS) {
                break;
            }

            if (nixcache_s3_wait_room(s3) != 0) {
                goto failed;
            }
        }

        h = &heads[k];

        p = (u_char *) h->path + dlen + 1;
        ngx_memcpy(p, heap[i].fan, NIXCACHE_CHUNK_FANOUT_LEN);
        p[NIXCACHE_CHUNK_FANOUT_LEN] = '\0';
        ngx_memcpy(h->name, heap[i].name, NIXCACHE_CID_LEN);
        h->name[NIXCACHE_CID_LEN] = '\0';

        /* names relative to a fan-out directory that is not a symlink */

        h->fan = openat(root, (char *) p,
                        O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC);
        p[NIXCACHE_CHUNK_FANOUT_LEN] = '/';

        if (h->fan == -1) {
            continue;
        }

        if (fstatat(h->fan, h->name, &st, AT_SYMLINK_NOFOLLOW) == -1
            || !S_ISREG(st.st_mode)
            || ngx_http_nixcache_evict_used(&st) > heap[i].used
            || nixcache_cid_decode(digest, h->name, NIXCACHE_CID_LEN) != 0)
        {
            goto next;
        }

        ngx_memzero(&h->req, sizeof(nixcache_s3_req_t));
        h->req.method = "HEAD";
        h->req.done = ngx_http_nixcache_evict_head_done;
        h->req.data = h;
        h->file = &heap[i];

        if (nixcache_s3_chunk_key(s3, h->req.key, sizeof(h->req.key),
                                  digest)
            != 0)
        {
            goto next;
        }

        h->busy = 1;

        if (nixcache_s3_submit(s3, &h->req) != 0) {
            h->busy = 0;
            (void) close(h->fan);
            h->fan = -1;
            goto failed;
        }

        continue;

    next:

        (void) close(h->fan);
        h->fan = -1;
    }

    if (nixcache_s3_wait(s3) == 0) {
        goto done;
    }

failed:

    if (job->s3_errors++ == 0) {
        ngx_cpystrn(job->s3_error, (u_char *) nixcache_s3_error(s3),
                    sizeof(job->s3_error));
    }

    /*
     * S3 or curl failed us: nothing more is removed this time; requests
     * still in flight are waited for (their files may go) before the
     * client is closed
     */
    (void) nixcache_s3_wait(s3);

done:

    if (heads != NULL) {
        for (k = 0; k < NGX_HTTP_NIXCACHE_EVICT_HEADS; k++) {
            if (heads[k].fan != -1) {
                (void) close(heads[k].fan);
            }
        }

        free(heads);
    }

    if (s3 != NULL) {
        nixcache_s3_close(s3);
    }

    (void) close(root);

    return job->freed;
}


/* The HEAD of a candidate is answered: in S3, or kept. */

static void
ngx_http_nixcache_evict_head_done(nixcache_s3_req_t *req)
{
    ngx_http_nixcache_evict_head_t  *h;
    ngx_http_nixcache_evict_job_t   *job;

    h = req->data;
    job = h->job;
    h->busy = 0;

    if (req->failed) {
        if (job->s3_errors++ == 0) {
            ngx_cpystrn(job->s3_error, (u_char *) req->error,
                        sizeof(job->s3_error));
        }

    } else if (req->status == 404) {
        job->not_in_s3++;
        (void) ngx_http_nixcache_evict_kept(job, h->file->name, time(NULL),
                                            1, h->file->used);

    } else {
        ngx_http_nixcache_evict_unlink(job, h, (off_t) req->content_length);
    }

    (void) close(h->fan);
    h->fan = -1;
}


/*
 * Removes a chunk S3 holds as an object of s3_size bytes, if the file is
 * that size and was not used since the walk.
 */

static void
ngx_http_nixcache_evict_unlink(ngx_http_nixcache_evict_job_t *job,
    ngx_http_nixcache_evict_head_t *h, off_t s3_size)
{
    ngx_err_t                        err;
    struct stat                      st;
    ngx_http_nixcache_evict_file_t  *f;

    f = h->file;

    if (fstatat(h->fan, h->name, &st, AT_SYMLINK_NOFOLLOW) == -1
        || !S_ISREG(st.st_mode)
        || ngx_http_nixcache_evict_used(&st) > f->used)
    {
        return;
    }

    if (st.st_size != s3_size) {
        /* another frame, or a truncated object: not what this file holds */
        job->not_in_s3++;
        (void) ngx_http_nixcache_evict_kept(job, f->name, time(NULL), 1,
                                            f->used);
        return;
    }

    if (unlinkat(h->fan, h->name, 0) == -1) {
        err = ngx_errno;

        if (err != NGX_ENOENT) {
            ngx_http_nixcache_evict_error(job, err, "cannot remove",
                                          h->path);
        }

        return;
    }

    job->freed += f->size;
    job->evicted++;
    job->evicted_bytes += f->size;
}


/*
 * The chunks found not in S3, by name, in an open-addressing table of
 * KEPT_MAX entries (1.2 MiB, allocated at the first one): add, or look up
 * one to skip.  One is skipped for the rest of the task (so it does not
 * stop the eviction of others) and, unless it is young (an upload may be
 * storing it in S3 right now), for KEPT_AGE after.  A full table starts
 * again empty.
 */

static ngx_http_nixcache_evict_kept_t *
ngx_http_nixcache_evict_kept(ngx_http_nixcache_evict_job_t *job,
    const u_char *name, time_t now, ngx_uint_t add, int64_t used)
{
    uint32_t                         hash;
    ngx_uint_t                       i, n;
    ngx_http_nixcache_evict_kept_t  *e;

    if (job->kept == NULL) {
        if (!add) {
            return NULL;
        }

        job->kept = calloc(NGX_HTTP_NIXCACHE_EVICT_KEPT_MAX,
                           sizeof(ngx_http_nixcache_evict_kept_t));
        if (job->kept == NULL) {
            return NULL;
        }
    }

    hash = 2166136261u;
    for (i = 0; i < NIXCACHE_CID_LEN; i++) {
        hash = (hash ^ name[i]) * 16777619u;
    }

    for (n = 0; n < NGX_HTTP_NIXCACHE_EVICT_KEPT_MAX; n++) {
        e = &job->kept[(hash + n) % NGX_HTTP_NIXCACHE_EVICT_KEPT_MAX];

        if (e->taken && ngx_memcmp(e->name, name, NIXCACHE_CID_LEN) != 0) {
            continue;
        }

        if (!add) {
            if (!e->taken || (e->task != job->task && e->until <= now)) {
                return NULL;
            }

            return e;
        }

        e->taken = 1;
        e->task = job->task;
        e->until = (used / 1000000000 < now - NGX_HTTP_NIXCACHE_EVICT_YOUNG)
                   ? now + NGX_HTTP_NIXCACHE_EVICT_KEPT_AGE : 0;
        ngx_memcpy(e->name, name, NIXCACHE_CID_LEN);

        return e;
    }

    if (add) {
        ngx_memzero(job->kept, NGX_HTTP_NIXCACHE_EVICT_KEPT_MAX
                               * sizeof(ngx_http_nixcache_evict_kept_t));
        return ngx_http_nixcache_evict_kept(job, name, now, 1, used);
    }

    return NULL;
}


static void
ngx_http_nixcache_evict_error(ngx_http_nixcache_evict_job_t *job,
    ngx_err_t err, const char *what, const char *path)
{
    if (job->errors++ == 0) {
        job->err = err;
        job->what = what;
        ngx_cpystrn(job->path, (u_char *) path, sizeof(job->path));
    }
}

#endif
