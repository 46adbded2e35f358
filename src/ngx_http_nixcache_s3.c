/*
 * The S3 tier: GETs of chunk objects with libcurl's multi interface
 * driven by nginx's event loop, and the nixcache_s3_* configuration.
 *
 * One CURLM per worker.  Its sockets are wrapped in nginx connections
 * (level-triggered events calling curl_multi_socket_action), its single
 * timer is an nginx timer, and finished transfers are collected with
 * curl_multi_info_read after every action.  Easy handles are kept on a
 * per-worker free list; the multi keeps the connections alive between
 * transfers.  libcurl's threaded resolver keeps DNS off the event loop.
 * Requests are signed with the core's SigV4 (never CURLOPT_AWS_SIGV4).
 *
 * Why not one nginx subrequest per chunk: subrequests allocate from the
 * main request's pool and nothing is freed before the main request ends,
 * so memory would grow with the number of chunks of the NAR.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif

#include <curl/curl.h>

#include "ngx_http_nixcache.h"
#include "nixcache_cid.h"
#include "nixcache_sigv4.h"


#define NGX_HTTP_NIXCACHE_S3_KEY_MAX      1024
#define NGX_HTTP_NIXCACHE_S3_FREE_MAX     64


struct ngx_http_nixcache_s3_worker_s {
    CURLM                     *multi;
    ngx_event_t                timer;
    ngx_log_t                 *log;
    ngx_array_t                free;       /* CURL *, reusable */
    ngx_array_t                conns;      /* ngx_connection_t *, curl's */
};


static int ngx_http_nixcache_s3_socket(CURL *easy, curl_socket_t s,
    int what, void *userp, void *socketp);
static int ngx_http_nixcache_s3_timer(CURLM *multi, long timeout_ms,
    void *userp);
static void ngx_http_nixcache_s3_event_handler(ngx_event_t *ev);
static void ngx_http_nixcache_s3_timer_handler(ngx_event_t *ev);
static void ngx_http_nixcache_s3_release(ngx_connection_t *c);
static ngx_connection_t *ngx_http_nixcache_s3_conn(
    ngx_http_nixcache_s3_worker_t *w, curl_socket_t s, ngx_uint_t remove);
static int ngx_http_nixcache_s3_close_socket(void *clientp,
    curl_socket_t s);
static void ngx_http_nixcache_s3_done(ngx_http_nixcache_s3_worker_t *w);
static void ngx_http_nixcache_s3_finish(ngx_http_nixcache_s3_fetch_t *f,
    CURLcode code);
static ngx_int_t ngx_http_nixcache_s3_send(ngx_http_nixcache_s3_fetch_t *f);
static void ngx_http_nixcache_s3_put_easy(ngx_http_nixcache_s3_fetch_t *f);
static size_t ngx_http_nixcache_s3_write(char *ptr, size_t size,
    size_t nmemb, void *userdata);
static void ngx_http_nixcache_s3_error_code(ngx_http_nixcache_s3_fetch_t *f);
static ngx_uint_t ngx_http_nixcache_s3_cause(ngx_http_nixcache_s3_fetch_t *f);


ngx_int_t
ngx_http_nixcache_s3_start(ngx_http_nixcache_s3_fetch_t *f)
{
    ngx_http_nixcache_main_conf_t  *nmcf;

    nmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_nixcache_module);

    f->worker = nmcf->s3_worker;
    f->retried = 0;
    f->start = ngx_http_nixcache_metrics_now();

    if (f->worker == NULL || f->worker->multi == NULL) {
        f->curl_code = CURLE_FAILED_INIT;
        ngx_cpystrn(f->errtext, (u_char *) "no S3 client in this worker",
                    sizeof(f->errtext));
        return NGX_ERROR;
    }

    return ngx_http_nixcache_s3_send(f);
}


static ngx_int_t
ngx_http_nixcache_s3_send(ngx_http_nixcache_s3_fetch_t *f)
{
    u_char                       *p, *url, *uri, *key;
    CURL                         *easy, **pe;
    CURLMcode                     mc;
    struct curl_slist            *h, *hl;
    ngx_http_nixcache_s3_conf_t  *s3;
    u_char                        buf[2 * NGX_HTTP_NIXCACHE_S3_KEY_MAX];

    s3 = f->conf;

    f->len = 0;
    f->status = NGX_HTTP_BAD_GATEWAY;
    f->http_status = 0;
    f->curl_code = CURLE_OK;
    f->code_len = 0;
    f->code[0] = '\0';
    f->errbody_len = 0;
    f->errtext[0] = '\0';
    f->overflow = 0;

    /* the URL and the signed path: both end with the key */

    url = buf;
    p = ngx_cpymem(url, s3->url.data, s3->url.len);
    key = p;
    nixcache_chunk_relpath((char *) p - 1, f->digest);
    p[-1] = s3->url.data[s3->url.len - 1];
    p += NIXCACHE_CHUNK_RELPATH_LEN - 1;
    *p++ = '\0';

    uri = p;
    p = ngx_cpymem(uri, s3->uri.data, s3->uri.len);
    p = ngx_cpymem(p, key, NIXCACHE_CHUNK_RELPATH_LEN - 1);
    *p = '\0';

    hl = nixcache_s3_signed_headers(s3->ep, "GET", (char *) uri, p - uri,
                                    (char *) s3->region.data, s3->region.len,
                                    s3->cred, NULL, ngx_time(),
                                    (char *) f->errtext, sizeof(f->errtext));
    if (hl == NULL) {
        return NGX_ERROR;
    }

    h = curl_slist_append(hl, "Accept:");
    if (h == NULL) {
        goto nomem;
    }

    if (f->easy == NULL) {
        if (f->worker->free.nelts) {
            pe = f->worker->free.elts;
            easy = pe[--f->worker->free.nelts];

        } else {
            easy = curl_easy_init();
            if (easy == NULL) {
                goto nomem;
            }
        }

        f->easy = easy;

    } else {
        easy = f->easy;
    }

    if (f->headers != NULL) {
        curl_slist_free_all(f->headers);
    }

    f->headers = hl;

    curl_easy_reset(easy);

    (void) curl_easy_setopt(easy, CURLOPT_URL, (char *) url);
    (void) curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hl);
    (void) curl_easy_setopt(easy, CURLOPT_PRIVATE, f);
    (void) curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                            ngx_http_nixcache_s3_write);
    (void) curl_easy_setopt(easy, CURLOPT_WRITEDATA, f);
    (void) curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, f->errtext);
    (void) curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    (void) curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) s3->timeout);
    (void) curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                            (long) s3->timeout);
    (void) curl_easy_setopt(easy, CURLOPT_HTTP_VERSION,
                            (long) CURL_HTTP_VERSION_1_1);
    (void) curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    (void) curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    (void) curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION,
                            ngx_http_nixcache_s3_close_socket);
    (void) curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, f->worker);

    mc = curl_multi_add_handle(f->worker->multi, easy);
    if (mc != CURLM_OK) {
        ngx_cpystrn(f->errtext, (u_char *) curl_multi_strerror(mc),
                    sizeof(f->errtext));
        ngx_http_nixcache_s3_put_easy(f);
        return NGX_ERROR;
    }

    f->active = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, f->log, 0,
                   "nixcache s3: GET %s", url);

    return NGX_OK;

nomem:

    if (hl != NULL) {
        curl_slist_free_all(hl);
    }

    ngx_cpystrn(f->errtext, (u_char *) "out of memory", sizeof(f->errtext));

    return NGX_ERROR;
}


void
ngx_http_nixcache_s3_cancel(ngx_http_nixcache_s3_fetch_t *f)
{
    if (f->active) {
        (void) curl_multi_remove_handle(f->worker->multi, f->easy);
        f->active = 0;
    }

    ngx_http_nixcache_s3_put_easy(f);
}


static void
ngx_http_nixcache_s3_put_easy(ngx_http_nixcache_s3_fetch_t *f)
{
    CURL  **pe;

    if (f->headers != NULL) {
        curl_slist_free_all(f->headers);
        f->headers = NULL;
    }

    if (f->easy == NULL) {
        return;
    }

    if (f->worker->free.nelts < NGX_HTTP_NIXCACHE_S3_FREE_MAX) {
        pe = ngx_array_push(&f->worker->free);
        if (pe != NULL) {
            *pe = f->easy;
            f->easy = NULL;
            return;
        }
    }

    curl_easy_cleanup(f->easy);
    f->easy = NULL;
}


static size_t
ngx_http_nixcache_s3_write(char *ptr, size_t size, size_t nmemb,
    void *userdata)
{
    ngx_http_nixcache_s3_fetch_t *f = userdata;

    long    status;
    size_t  n, room;

    n = size * nmemb;
    status = 0;

    (void) curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);

    if (status != 200) {
        room = sizeof(f->errbody) - f->errbody_len;
        room = ngx_min(room, n);
        ngx_memcpy(f->errbody + f->errbody_len, ptr, room);
        f->errbody_len += room;
        return n;
    }

    if (n > f->cap - f->len) {
        f->overflow = 1;
        return 0;
    }

    ngx_memcpy(f->buf + f->len, ptr, n);
    f->len += n;

    return n;
}


/* socket hooks: each curl socket is an nginx connection */

static int
ngx_http_nixcache_s3_socket(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    ngx_connection_t               *c, **pc;
    ngx_http_nixcache_s3_worker_t  *w;

    w = userp;

    /*
     * The worker's list, not socketp, says which sockets have a connection:
     * curl may close a socket without a CURL_POLL_REMOVE first (seen with
     * idle cached connections the server had closed), after which socketp
     * can name a connection already released.
     */

    if (what == CURL_POLL_REMOVE) {
        c = ngx_http_nixcache_s3_conn(w, s, 1);
        if (c != NULL) {
            ngx_http_nixcache_s3_release(c);
            (void) curl_multi_assign(w->multi, s, NULL);
        }

        return 0;
    }

    c = ngx_http_nixcache_s3_conn(w, s, 0);

    if (c == NULL) {
        pc = ngx_array_push(&w->conns);
        if (pc == NULL) {
            return -1;
        }

        c = ngx_get_connection(s, w->log);
        if (c == NULL) {
            w->conns.nelts--;
            return -1;
        }

        *pc = c;

        c->data = w;
        c->read->handler = ngx_http_nixcache_s3_event_handler;
        c->write->handler = ngx_http_nixcache_s3_event_handler;
        c->read->log = w->log;
        c->write->log = w->log;

        (void) curl_multi_assign(w->multi, s, c);
    }

    /*
     * Level-triggered, as for Redis: curl asks again whenever it wants a
     * direction, and deleting one direction re-registers the other with
     * the flags given.
     */

    if (what & CURL_POLL_IN) {
        if (!c->read->active
            && ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
               != NGX_OK)
        {
            return -1;
        }

    } else if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }

    if (what & CURL_POLL_OUT) {
        if (!c->write->active
            && ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
               != NGX_OK)
        {
            return -1;
        }

    } else if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }

    return 0;
}


/* curl closes the socket itself: only the nginx connection goes here */

static void
ngx_http_nixcache_s3_release(ngx_connection_t *c)
{
    ngx_uint_t  flags;

    /*
     * A transfer removed while connecting has its socket closed by curl
     * before the CURL_POLL_REMOVE arrives; the kernel has dropped a closed
     * descriptor from epoll already, and asking again fails with EBADF.
     */

    flags = NGX_LEVEL_EVENT;

    if (fcntl(c->fd, F_GETFD) == -1 && ngx_errno == NGX_EBADF) {
        flags = NGX_CLOSE_EVENT;
    }

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, flags);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);

    c->fd = (ngx_socket_t) -1;
}


/* the connection of a curl socket; with remove, also dropped from the list */

static ngx_connection_t *
ngx_http_nixcache_s3_conn(ngx_http_nixcache_s3_worker_t *w, curl_socket_t s,
    ngx_uint_t remove)
{
    ngx_uint_t         i;
    ngx_connection_t  *c, **pc;

    pc = w->conns.elts;

    for (i = 0; i < w->conns.nelts; i++) {
        c = pc[i];

        if (c->fd != s) {
            continue;
        }

        if (remove) {
            pc[i] = pc[--w->conns.nelts];
        }

        return c;
    }

    return NULL;
}


/*
 * Every socket curl closes comes through here: its connection, if it
 * still has one, is released while the descriptor is open, so no event of
 * it is left on a number the kernel may hand to a client next.
 */

static int
ngx_http_nixcache_s3_close_socket(void *clientp, curl_socket_t s)
{
    ngx_connection_t               *c;
    ngx_http_nixcache_s3_worker_t  *w;

    w = clientp;

    c = ngx_http_nixcache_s3_conn(w, s, 1);
    if (c != NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, w->log, 0,
                       "nixcache s3: socket %d closed without a remove", s);
        ngx_http_nixcache_s3_release(c);
    }

    return close(s);
}


static int
ngx_http_nixcache_s3_timer(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_http_nixcache_s3_worker_t *w = userp;

    if (timeout_ms < 0) {
        if (w->timer.timer_set) {
            ngx_del_timer(&w->timer);
        }

        return 0;
    }

    ngx_add_timer(&w->timer, (ngx_msec_t) timeout_ms);

    return 0;
}


static void
ngx_http_nixcache_s3_event_handler(ngx_event_t *ev)
{
    int                             running, action;
    ngx_socket_t                    fd;
    ngx_connection_t               *c;
    ngx_http_nixcache_s3_worker_t  *w;

    c = ev->data;
    w = c->data;
    fd = c->fd;

    action = ev->write ? CURL_CSELECT_OUT : CURL_CSELECT_IN;

    /* c may be released inside: not touched after */

    (void) curl_multi_socket_action(w->multi, fd, action, &running);

    ngx_http_nixcache_s3_done(w);
}


static void
ngx_http_nixcache_s3_timer_handler(ngx_event_t *ev)
{
    int                             running;
    ngx_http_nixcache_s3_worker_t  *w;

    w = ev->data;

    (void) curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0,
                                    &running);

    ngx_http_nixcache_s3_done(w);
}


static void
ngx_http_nixcache_s3_done(ngx_http_nixcache_s3_worker_t *w)
{
    int                            left;
    CURL                          *easy;
    CURLcode                       code;
    CURLMsg                       *msg;
    ngx_http_nixcache_s3_fetch_t  *f;

    while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        easy = msg->easy_handle;
        code = msg->data.result;
        f = NULL;

        (void) curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &f);
        (void) curl_multi_remove_handle(w->multi, easy);

        if (f == NULL) {
            continue;
        }

        f->active = 0;

        ngx_http_nixcache_s3_finish(f, code);
    }
}


static void
ngx_http_nixcache_s3_finish(ngx_http_nixcache_s3_fetch_t *f, CURLcode code)
{
    long        status;
    ngx_uint_t  retry;

    status = 0;
    (void) curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);

    f->http_status = status;
    f->curl_code = code;

    if (code == CURLE_OK && status == 200) {
        f->status = NGX_OK;
        goto done;
    }

    switch (code) {

    case CURLE_OK:
        retry = (status >= 500);
        break;

    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        retry = 1;
        break;

    default:
        retry = 0;
    }

    if (retry && !f->retried) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, f->log, 0,
                       "nixcache s3: retry after curl %d, HTTP %l",
                       (int) code, status);

        f->retried = 1;

        if (ngx_http_nixcache_s3_send(f) == NGX_OK) {
            f->retried = 1;
            return;
        }

        f->curl_code = code;
        f->http_status = status;
    }

    if (code == CURLE_OPERATION_TIMEDOUT) {
        f->status = NGX_HTTP_GATEWAY_TIME_OUT;

    } else if (code == CURLE_COULDNT_CONNECT
               || code == CURLE_COULDNT_RESOLVE_HOST
               || (code == CURLE_OK && status == 503))
    {
        f->status = NGX_HTTP_SERVICE_UNAVAILABLE;

    } else {
        f->status = NGX_HTTP_BAD_GATEWAY;
    }

    if (code == CURLE_WRITE_ERROR && f->overflow) {
        ngx_cpystrn(f->errtext, (u_char *) "object larger than the chunk",
                    sizeof(f->errtext));
    }

    ngx_http_nixcache_s3_error_code(f);

    if (!f->probe) {
        ngx_http_nixcache_metrics_s3(ngx_http_nixcache_s3_cause(f));
    }

done:

    if (!f->probe) {
        ngx_http_nixcache_metrics_s3_time(ngx_http_nixcache_metrics_now()
                                          - f->start);
    }

    ngx_http_nixcache_s3_put_easy(f);

    f->handler(f);
}


/* why a fetch failed, for the metrics */

static ngx_uint_t
ngx_http_nixcache_s3_cause(ngx_http_nixcache_s3_fetch_t *f)
{
    switch (f->curl_code) {

    case CURLE_OK:
        break;

    case CURLE_OPERATION_TIMEDOUT:
        return NGX_HTTP_NIXCACHE_METRICS_S3_TIMEOUT;

    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return NGX_HTTP_NIXCACHE_METRICS_S3_CONNECT;

    case CURLE_WRITE_ERROR:
        if (f->overflow) {
            return NGX_HTTP_NIXCACHE_METRICS_S3_TOO_LARGE;
        }

        /* fall through */

    default:
        return NGX_HTTP_NIXCACHE_METRICS_S3_TRANSFER;
    }

    if (f->http_status == 404) {
        return NGX_HTTP_NIXCACHE_METRICS_S3_NOT_FOUND;
    }

    if (f->http_status == 401 || f->http_status == 403) {
        return NGX_HTTP_NIXCACHE_METRICS_S3_DENIED;
    }

    return f->http_status >= 500 ? NGX_HTTP_NIXCACHE_METRICS_S3_HTTP_5XX
                                 : NGX_HTTP_NIXCACHE_METRICS_S3_HTTP_OTHER;
}


/* the <Code> of an S3 error document, if the body has one */

static void
ngx_http_nixcache_s3_error_code(ngx_http_nixcache_s3_fetch_t *f)
{
    u_char  *p, *q, *last;

    last = f->errbody + f->errbody_len;

    p = ngx_strlcasestrn(f->errbody, last, (u_char *) "<Code>", 6 - 1);
    if (p == NULL) {
        return;
    }

    p += 6;

    q = ngx_strlcasestrn(p, last, (u_char *) "</Code>", 7 - 1);
    if (q == NULL) {
        return;
    }

    f->code_len = ngx_min((size_t) (q - p), sizeof(f->code) - 1);
    ngx_memcpy(f->code, p, f->code_len);
    f->code[f->code_len] = '\0';
}


size_t
ngx_http_nixcache_s3_key(ngx_http_nixcache_s3_conf_t *s3, u_char *dst,
    size_t cap, const u_char *digest)
{
    u_char  *p;
    u_char   rel[NIXCACHE_CHUNK_RELPATH_LEN];

    if (cap < s3->prefix.len + NIXCACHE_CHUNK_RELPATH_LEN) {
        return 0;
    }

    nixcache_chunk_relpath((char *) rel, digest);

    p = ngx_cpymem(dst, s3->prefix.data, s3->prefix.len);
    p = ngx_cpymem(p, rel + 1, NIXCACHE_CHUNK_RELPATH_LEN - 1);
    *p = '\0';

    return p - dst;
}


void
ngx_http_nixcache_s3_log_error(ngx_http_nixcache_s3_fetch_t *f,
    ngx_log_t *log, const char *what)
{
    u_char  cid[NIXCACHE_CID_LEN + 1];
    u_char  key[NGX_HTTP_NIXCACHE_S3_KEY_MAX];
    u_char  cause[512], *p, *last;

    nixcache_cid_encode((char *) cid, f->digest);
    cid[NIXCACHE_CID_LEN] = '\0';

    (void) ngx_http_nixcache_s3_key(f->conf, key, sizeof(key), f->digest);

    p = cause;
    last = cause + sizeof(cause) - 1;

    if (what != NULL) {
        p = ngx_slprintf(p, last, "%s", what);

    } else if (f->curl_code != CURLE_OK) {
        p = ngx_slprintf(p, last, "%s",
                         f->errtext[0] ? (char *) f->errtext
                         : curl_easy_strerror(f->curl_code));

    } else {
        p = ngx_slprintf(p, last, "HTTP %l", f->http_status);

        if (f->code_len) {
            p = ngx_slprintf(p, last, " %s", f->code);
        }
    }

    if (f->retried) {
        p = ngx_slprintf(p, last, " (after one retry)");
    }

    *p = '\0';

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "nixcache: S3 chunk %s, key \"%s\" in bucket \"%V\": %s",
                  cid, key, &f->conf->bucket, cause);
}


/* configuration */

void
ngx_http_nixcache_s3_create_conf(ngx_http_nixcache_s3_conf_t *s3)
{
    s3->path_style = NGX_CONF_UNSET;
    s3->timeout = NGX_CONF_UNSET_MSEC;
    s3->prefetch = NGX_CONF_UNSET_UINT;
}


char *
ngx_http_nixcache_s3_merge_conf(ngx_conf_t *cf,
    ngx_http_nixcache_s3_conf_t *prev, ngx_http_nixcache_s3_conf_t *conf)
{
    u_char  *p;
    size_t   n;
    char     err[NIXCACHE_S3_ERROR_MAX];

    ngx_conf_merge_str_value(conf->endpoint, prev->endpoint, "");
    ngx_conf_merge_str_value(conf->bucket, prev->bucket, "");
    ngx_conf_merge_str_value(conf->region, prev->region, "us-east-1");
    ngx_conf_merge_str_value(conf->prefix, prev->prefix,
                             NIXCACHE_S3_PREFIX_DEFAULT);
    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 10000);
    ngx_conf_merge_uint_value(conf->prefetch, prev->prefetch, 16);
    ngx_conf_merge_str_value(conf->thread_pool_name, prev->thread_pool_name,
                             "default");

    if (conf->path_style == NGX_CONF_UNSET) {
        conf->path_style = prev->path_style;
    }

    if (conf->credentials.data == NULL) {
        conf->credentials = prev->credentials;
        conf->cred = prev->cred;
    }

    if (conf->endpoint.len == 0) {
        return NGX_CONF_OK;
    }

    if (conf->prefetch == 0 || conf->prefetch > 256) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_s3_prefetch\" must be 1 to 256");
        return NGX_CONF_ERROR;
    }

    if (conf->timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_s3_timeout\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (conf->bucket.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_s3_endpoint\" requires "
                           "\"nixcache_s3_bucket\"");
        return NGX_CONF_ERROR;
    }

    if (conf->cred == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_s3_endpoint\" requires "
                           "\"nixcache_s3_credentials\"");
        return NGX_CONF_ERROR;
    }

    if (!nixcache_s3_bucket_valid((char *) conf->bucket.data,
                                  conf->bucket.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"nixcache_s3_bucket\" \"%V\": 1 to 63 "
                           "of a-z, 0-9, '.' and '-'", &conf->bucket);
        return NGX_CONF_ERROR;
    }

    if (conf->region.len > NIXCACHE_SIGV4_MAX_SCOPE_PART) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_s3_region\" is too long");
        return NGX_CONF_ERROR;
    }

    if (conf->prefix.len > 256) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_s3_prefix\" is too long");
        return NGX_CONF_ERROR;
    }

    conf->ep = ngx_pcalloc(cf->pool, sizeof(nixcache_s3_endpoint_t));
    if (conf->ep == NULL) {
        return NGX_CONF_ERROR;
    }

    if (nixcache_s3_endpoint_parse(conf->ep, (char *) conf->endpoint.data,
                                   conf->endpoint.len,
                                   (char *) conf->bucket.data,
                                   (conf->path_style == NGX_CONF_UNSET)
                                   ? -1 : (int) conf->path_style,
                                   err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"nixcache_s3_endpoint\" \"%V\": %s",
                           &conf->endpoint, err);
        return NGX_CONF_ERROR;
    }

    conf->path_style = conf->ep->path_style;

    /* the URL and the signed path up to the key: [/bucket]/prefix */

    n = ngx_strlen(conf->ep->path);

    conf->uri.data = ngx_pnalloc(cf->pool, n + 1 + 3 * conf->prefix.len + 1);
    if (conf->uri.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(conf->uri.data, conf->ep->path, n);
    *p++ = '/';
    p += nixcache_sigv4_uri_encode((char *) p, (char *) conf->prefix.data,
                                   conf->prefix.len, NIXCACHE_SIGV4_PATH);
    conf->uri.len = p - conf->uri.data;

    n = ngx_strlen(conf->ep->base);

    conf->url.len = n + conf->uri.len;
    conf->url.data = ngx_pnalloc(cf->pool, conf->url.len + 1);
    if (conf->url.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(conf->url.data, "%s%V%Z", conf->ep->base, &conf->uri);

    /* the key is appended after the last character of url: never empty */

#if (NGX_THREADS)
    conf->thread_pool = ngx_thread_pool_add(cf, &conf->thread_pool_name);
    if (conf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }
#else
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"nixcache_s3_endpoint\" needs nginx built with "
                       "threads, for the disk tier's write-through");
    return NGX_CONF_ERROR;
#endif

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_nixcache_s3_init_process(ngx_cycle_t *cycle)
{
    ngx_http_nixcache_s3_worker_t  *w;
    ngx_http_nixcache_main_conf_t  *nmcf;

    nmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_nixcache_module);
    if (nmcf == NULL) {
        return NGX_OK;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "nixcache: curl_global_init() failed");
        return NGX_ERROR;
    }

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_http_nixcache_s3_worker_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    if (ngx_array_init(&w->free, cycle->pool, NGX_HTTP_NIXCACHE_S3_FREE_MAX,
                       sizeof(CURL *))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_array_init(&w->conns, cycle->pool,
                       nmcf->s3_max_connections + 8,
                       sizeof(ngx_connection_t *))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    w->log = cycle->log;
    w->timer.handler = ngx_http_nixcache_s3_timer_handler;
    w->timer.data = w;
    w->timer.log = cycle->log;
    w->timer.cancelable = 1;

    w->multi = curl_multi_init();
    if (w->multi == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "nixcache: curl_multi_init() failed");
        return NGX_ERROR;
    }

    (void) curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION,
                             ngx_http_nixcache_s3_socket);
    (void) curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    (void) curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION,
                             ngx_http_nixcache_s3_timer);
    (void) curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    (void) curl_multi_setopt(w->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                             (long) nmcf->s3_max_connections);
    (void) curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS,
                             (long) nmcf->s3_max_connections);

    nmcf->s3_worker = w;

    return NGX_OK;
}


void
ngx_http_nixcache_s3_exit_process(ngx_cycle_t *cycle)
{
    CURL                          **pe;
    ngx_uint_t                      i;
    ngx_http_nixcache_s3_worker_t  *w;
    ngx_http_nixcache_main_conf_t  *nmcf;

    nmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_nixcache_module);
    if (nmcf == NULL || nmcf->s3_worker == NULL) {
        return;
    }

    w = nmcf->s3_worker;

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }

    pe = w->free.elts;

    for (i = 0; i < w->free.nelts; i++) {
        curl_easy_cleanup(pe[i]);
    }

    w->free.nelts = 0;

    (void) curl_multi_cleanup(w->multi);
    w->multi = NULL;
    nmcf->s3_worker = NULL;
}
