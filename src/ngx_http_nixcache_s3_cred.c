/*
 * S3 credentials: nixcache_s3_credentials FILE, read as the configuration
 * is loaded (by root, before workers drop privileges), and read again by
 * every worker when the file changes (nixcache_s3_credentials_interval),
 * so that an external refresher (a sidecar writing instance-role or
 * web-identity credentials, which expire within hours) keeps the cache
 * working without a reload.
 *
 * The file must not be readable or writable by group or others, at load
 * and at every re-read; to be read again it must be the workers' user's
 * (nginx's "user", e.g. nobody or www-data), mode 0600.  It is parsed by the core
 * (nixcache_s3_credentials_parse(), the CLI's parser): KEY=VALUE lines
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or bare
 * lines (key id, secret, optional token).
 *
 * Each worker checks the file's identity (inode, size, modification and
 * change times) on a timer: one stat(2) of a local file per interval,
 * never on a request's path; only a changed file is read (a few hundred
 * bytes).  New credentials replace the old ones in place, in the worker's
 * event loop; the tasks of the thread pools (uploads, eviction) sign with
 * a copy taken when they are posted, so a re-read never races a thread.
 * A file that cannot be read, is open to others or does not parse is
 * logged once per change, and the credentials in use are kept.  A file
 * the workers cannot read from the start (root's own) works as read at
 * load and is not followed, said once at notice level.  The copy
 * in memory is wiped when the configuration goes away.
 */

#include "ngx_http_nixcache.h"


/* one nixcache_s3_credentials directive */
typedef struct {
    ngx_str_t                  name;
    nixcache_s3_credentials_t *cred;       /* what the locations sign with */
    ngx_file_uniq_t            uniq;       /* the file as last read */
    off_t                      size;
    struct timespec            mtime;
    struct timespec            ctime;
    ngx_uint_t                 checked;    /* by this worker, once or more */
    ngx_uint_t                 unfollowed; /* the workers cannot read it */
} ngx_http_nixcache_s3_cred_t;


static ngx_int_t ngx_http_nixcache_s3_cred_read(ngx_str_t *name,
    nixcache_s3_credentials_t *cred, ngx_file_info_t *fi, char *err,
    size_t errlen, ngx_err_t *errn);
static void ngx_http_nixcache_s3_cred_note(ngx_http_nixcache_s3_cred_t *c,
    ngx_file_info_t *fi);
static ngx_uint_t ngx_http_nixcache_s3_cred_same(
    ngx_http_nixcache_s3_cred_t *c, ngx_file_info_t *fi);
static ngx_uint_t ngx_http_nixcache_s3_cred_first(
    ngx_http_nixcache_s3_cred_t *c, ngx_log_t *log);
static void ngx_http_nixcache_s3_cred_timer(ngx_event_t *ev);
static void ngx_http_nixcache_s3_cred_wipe(void *data);


static ngx_event_t  ngx_http_nixcache_s3_cred_event;


char *
ngx_http_nixcache_s3_credentials(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_nixcache_loc_conf_t *nlcf = conf;

    ngx_err_t                       errn;
    ngx_str_t                      *value, name;
    ngx_file_info_t                 fi;
    ngx_pool_cleanup_t             *cln;
    ngx_http_nixcache_s3_cred_t    *c;
    ngx_http_nixcache_main_conf_t  *nmcf;
    char                            err[NIXCACHE_S3_ERROR_MAX];

    if (nlcf->s3.credentials.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    nmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_nixcache_module);

    if (nmcf->s3_creds == NULL) {
        nmcf->s3_creds = ngx_array_create(cf->pool, 2,
                                          sizeof(ngx_http_nixcache_s3_cred_t));
        if (nmcf->s3_creds == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    c = ngx_array_push(nmcf->s3_creds);
    if (c == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(c, sizeof(ngx_http_nixcache_s3_cred_t));
    c->name = name;

    c->cred = ngx_pcalloc(cf->pool, sizeof(nixcache_s3_credentials_t));
    if (c->cred == NULL) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_nixcache_s3_cred_wipe;
    cln->data = c->cred;

    if (ngx_http_nixcache_s3_cred_read(&name, c->cred, &fi, err, sizeof(err),
                                       &errn)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, errn,
                           "nixcache_s3_credentials: %s", err);
        return NGX_CONF_ERROR;
    }

    ngx_http_nixcache_s3_cred_note(c, &fi);

    nlcf->s3.credentials = name;
    nlcf->s3.cred = c->cred;

    return NGX_CONF_OK;
}


/*
 * Reads and parses the file into cred (left as it was on an error, with
 * err and *errn, an errno or 0, saying why); fi is the file as read.
 */

static ngx_int_t
ngx_http_nixcache_s3_cred_read(ngx_str_t *name,
    nixcache_s3_credentials_t *cred, ngx_file_info_t *fi, char *err,
    size_t errlen, ngx_err_t *errn)
{
    ssize_t                    n;
    ngx_fd_t                   fd;
    ngx_int_t                  rc;
    nixcache_s3_credentials_t  tmp;
    char                       perr[NIXCACHE_S3_ERROR_MAX];
    u_char                     buf[NIXCACHE_S3_CRED_FILE_MAX + 1];

    *errn = 0;

    fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        *errn = ngx_errno;
        ngx_snprintf((u_char *) err, errlen, "cannot open \"%V\"%Z", name);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (ngx_fd_info(fd, fi) == NGX_FILE_ERROR) {
        *errn = ngx_errno;
        ngx_snprintf((u_char *) err, errlen, "cannot stat \"%V\"%Z", name);
        goto done;
    }

    if (fi->st_mode & (S_IRGRP | S_IROTH | S_IWGRP | S_IWOTH)) {
        ngx_snprintf((u_char *) err, errlen,
                     "\"%V\" is readable or writable by group or others "
                     "(mode %ui%ui%ui%ui): chmod 600 it%Z", name,
                     (ngx_uint_t) (fi->st_mode >> 9) & 7,
                     (ngx_uint_t) (fi->st_mode >> 6) & 7,
                     (ngx_uint_t) (fi->st_mode >> 3) & 7,
                     (ngx_uint_t) fi->st_mode & 7);
        goto done;
    }

    n = ngx_read_fd(fd, buf, sizeof(buf));

    if (n < 0 || n == sizeof(buf)) {
        *errn = (n < 0) ? ngx_errno : 0;
        ngx_snprintf((u_char *) err, errlen, "cannot read \"%V\"%s%Z", name,
                     n < 0 ? "" : ": too long");
        goto done;
    }

    /* the core's parser, the CLI's too: key id, secret, session token */

    if (nixcache_s3_credentials_parse(&tmp, (char *) buf, n, perr,
                                      sizeof(perr))
        != 0)
    {
        ngx_snprintf((u_char *) err, errlen, "\"%V\": %s%Z", name, perr);
        goto done;
    }

    *cred = tmp;
    rc = NGX_OK;

done:

    nixcache_s3_credentials_wipe(&tmp);
    ngx_explicit_memzero(buf, sizeof(buf));
    (void) ngx_close_file(fd);

    return rc;
}


static void
ngx_http_nixcache_s3_cred_note(ngx_http_nixcache_s3_cred_t *c,
    ngx_file_info_t *fi)
{
    c->uniq = ngx_file_uniq(fi);
    c->size = ngx_file_size(fi);
    c->mtime = fi->st_mtim;
    c->ctime = fi->st_ctim;
}


static ngx_uint_t
ngx_http_nixcache_s3_cred_same(ngx_http_nixcache_s3_cred_t *c,
    ngx_file_info_t *fi)
{
    return c->uniq == ngx_file_uniq(fi)
           && c->size == ngx_file_size(fi)
           && c->mtime.tv_sec == fi->st_mtim.tv_sec
           && c->mtime.tv_nsec == fi->st_mtim.tv_nsec
           && c->ctime.tv_sec == fi->st_ctim.tv_sec
           && c->ctime.tv_nsec == fi->st_ctim.tv_nsec;
}


ngx_int_t
ngx_http_nixcache_s3_cred_init_process(ngx_cycle_t *cycle)
{
    ngx_event_t                    *ev;
    ngx_http_nixcache_main_conf_t  *nmcf;

    nmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_nixcache_module);

    if (nmcf == NULL || nmcf->s3_creds == NULL
        || nmcf->s3_creds_interval == 0)
    {
        return NGX_OK;
    }

    ev = &ngx_http_nixcache_s3_cred_event;
    ngx_memzero(ev, sizeof(ngx_event_t));

    ev->handler = ngx_http_nixcache_s3_cred_timer;
    ev->data = nmcf;
    ev->log = cycle->log;
    ev->cancelable = 1;

    ngx_add_timer(ev, nmcf->s3_creds_interval);

    return NGX_OK;
}


static void
ngx_http_nixcache_s3_cred_timer(ngx_event_t *ev)
{
    ngx_http_nixcache_main_conf_t *nmcf = ev->data;

    ngx_err_t                     errn;
    ngx_uint_t                    i;
    ngx_file_info_t               fi;
    ngx_http_nixcache_s3_cred_t  *c;
    char                          err[NIXCACHE_S3_ERROR_MAX];

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    c = nmcf->s3_creds->elts;

    for (i = 0; i < nmcf->s3_creds->nelts; i++) {

        if (c[i].unfollowed) {
            continue;
        }

        if (ngx_http_nixcache_s3_cred_first(&c[i], ev->log)) {
            continue;
        }

        if (ngx_file_info(c[i].name.data, &fi) == NGX_FILE_ERROR) {
            if (c[i].size != -1) {
                ngx_log_error(NGX_LOG_ERR, ev->log, ngx_errno,
                              "nixcache: S3 credentials \"%V\": cannot "
                              "stat, the credentials read before are kept",
                              &c[i].name);
                c[i].size = -1;        /* logged once until it is back */
            }

            continue;
        }

        if (ngx_http_nixcache_s3_cred_same(&c[i], &fi)) {
            continue;
        }

        if (ngx_http_nixcache_s3_cred_read(&c[i].name, c[i].cred, &fi, err,
                                           sizeof(err), &errn)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, ev->log, errn,
                          "nixcache: S3 credentials: %s; the credentials "
                          "read before are kept%s", err,
                          errn == NGX_EACCES
                          ? " (to be read again, the file must be readable "
                            "by the worker processes' user)" : "");

        } else {
            ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                          "nixcache: S3 credentials \"%V\" read again",
                          &c[i].name);
        }

        ngx_http_nixcache_s3_cred_note(&c[i], &fi);
    }

    ngx_add_timer(ev, nmcf->s3_creds_interval);
}


/*
 * A worker's first check: a file its user cannot open (root's own, as the
 * configuration can read it) is not followed, which is said once, at
 * notice level: such a file works, it only cannot rotate.  Returns 1 then.
 */

static ngx_uint_t
ngx_http_nixcache_s3_cred_first(ngx_http_nixcache_s3_cred_t *c,
    ngx_log_t *log)
{
    ngx_fd_t   fd;
    ngx_err_t  err;

    if (c->checked) {
        return 0;
    }

    c->checked = 1;

    fd = ngx_open_file(c->name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(fd);
        return 0;
    }

    err = ngx_errno;

    if (err != NGX_EACCES) {
        return 0;                   /* gone, for one: the check says so */
    }

    c->unfollowed = 1;

    ngx_log_error(NGX_LOG_NOTICE, log, err,
                  "nixcache: S3 credentials \"%V\": the worker processes' "
                  "user cannot read the file, so its changes are not "
                  "followed (make it that user's, mode 0600, to follow "
                  "them)", &c->name);

    return 1;
}


static void
ngx_http_nixcache_s3_cred_wipe(void *data)
{
    nixcache_s3_credentials_wipe(data);
}
