/*
 * Non-blocking Redis for ngx_http_nixcache_module: hiredis's async API on
 * an nginx event adapter.  Each worker keeps one connection, opened on
 * the first command and again after any failure; every request's commands
 * are pipelined on it and hiredis matches replies to callbacks in order.
 *
 * The socket is wrapped in an nginx connection whose read and write
 * handlers call redisAsyncHandleRead/Write.  Its events are level
 * triggered even under epoll (where nginx otherwise adds EPOLLET),
 * because hiredis reads a single buffer per call and would otherwise
 * leave the rest of a large reply unread until the next edge.
 *
 * A command carries a record from a per-worker free list, never request
 * memory: its reply may arrive after the request is gone.  The request's
 * pool cleanup detaches its pending records, whose late replies are then
 * dropped.  Each record has a timer; when one fires, the connection is
 * torn down (every pending command gets a NULL reply) so that a stuck
 * Redis cannot hold requests, and the next command reconnects.
 *
 * With a database in nixcache_redis, every connection opens with SELECT,
 * queued before any command; if it fails, the connection is torn down
 * before a command can read the wrong database.  With nixcache_redis_auth,
 * AUTH goes first, before SELECT, and is handled the same way: a refused
 * AUTH fails the connection and every command queued on it (the requests
 * answer 503, as with Redis down, never 404), and the next command
 * reconnects and tries again.
 */

#include "ngx_http_nixcache.h"

#include <hiredis/async.h>

#include "nixcache_redis_addr.h"
#include "nixcache_redis_auth.h"


#define NGX_HTTP_NIXCACHE_REDIS_READS  64     /* x 16 KB per read event */


typedef struct ngx_http_nixcache_redis_cmd_s  ngx_http_nixcache_redis_cmd_t;


struct ngx_http_nixcache_redis_s {
    redisAsyncContext                *ac;
    ngx_http_nixcache_main_conf_t    *conf;
    ngx_log_t                        *log;
    ngx_pool_t                       *pool;
    ngx_http_nixcache_redis_cmd_t    *free;
    redisAsyncContext                *timed_out;  /* being torn down */
    ngx_uint_t                        released;   /* contexts freed */
    unsigned                          timed_out_connecting:1;
    unsigned                          exiting:1;
    unsigned                          connected_before:1;
};


struct ngx_http_nixcache_redis_cmd_s {
    ngx_http_nixcache_redis_t        *redis;
    redisAsyncContext                *ac;         /* carrying the command */
    ngx_http_request_t               *request;    /* NULL once detached */
    ngx_http_nixcache_redis_pt        handler;
    void                             *data;
    ngx_queue_t                       queue;      /* in the request's list */
    ngx_event_t                       timer;
    uint64_t                          start;      /* us, monotonic */
    ngx_http_nixcache_redis_cmd_t    *next;       /* in the free list */
};


/* per request, as the data of a cleanup of its pool */

typedef struct {
    ngx_queue_t                       pending;
    ngx_uint_t                        logged;     /* a failure was logged */
    uint64_t                          time;       /* us, replies waited */
} ngx_http_nixcache_redis_req_t;


static ngx_http_nixcache_redis_req_t *ngx_http_nixcache_redis_req(
    ngx_http_request_t *r);
static ngx_http_nixcache_redis_req_t *ngx_http_nixcache_redis_req_find(
    ngx_http_request_t *r);
static void ngx_http_nixcache_redis_req_cleanup(void *data);
static ngx_int_t ngx_http_nixcache_redis_is_ip(nixcache_redis_addr_t *addr);
static char *ngx_http_nixcache_redis_resolve(ngx_conf_t *cf,
    ngx_http_nixcache_main_conf_t *nmcf, nixcache_redis_addr_t *addr);
static ngx_int_t ngx_http_nixcache_redis_connect(
    ngx_http_nixcache_redis_t *redis, ngx_log_t *log);
static void ngx_http_nixcache_redis_auth_wipe(void *data);
static void ngx_http_nixcache_redis_authed(redisAsyncContext *ac,
    void *rep, void *privdata);
static void ngx_http_nixcache_redis_selected(redisAsyncContext *ac,
    void *rep, void *privdata);
static void ngx_http_nixcache_redis_fail(redisAsyncContext *ac,
    const char *what, redisReply *reply);
static void ngx_http_nixcache_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_nixcache_redis_disconnected(const redisAsyncContext *ac,
    int status);
static void ngx_http_nixcache_redis_reply(redisAsyncContext *ac, void *rep,
    void *privdata);
static void ngx_http_nixcache_redis_timeout(ngx_event_t *ev);
static void ngx_http_nixcache_redis_read_handler(ngx_event_t *ev);
static void ngx_http_nixcache_redis_write_handler(ngx_event_t *ev);
static void ngx_http_nixcache_redis_add_read(void *privdata);
static void ngx_http_nixcache_redis_del_read(void *privdata);
static void ngx_http_nixcache_redis_add_write(void *privdata);
static void ngx_http_nixcache_redis_del_write(void *privdata);
static void ngx_http_nixcache_redis_add(ngx_event_t *ev, ngx_int_t event);
static void ngx_http_nixcache_redis_del(ngx_event_t *ev, ngx_int_t event);
static void ngx_http_nixcache_redis_cleanup(void *privdata);


/*
 * nixcache_redis ADDR.  A host name is resolved now, as nginx resolves the
 * server names of an upstream block: hiredis would resolve it in the
 * worker, blocking, at every connect.  The first address is used.
 */

char *
ngx_http_nixcache_redis_address(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_nixcache_main_conf_t *nmcf = conf;

    ngx_str_t              *value;
    const char             *err;
    nixcache_redis_addr_t   addr;

    if (nmcf->redis.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (nixcache_redis_addr_parse(&addr, (const char *) value[1].data,
                                  value[1].len, &err)
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "nixcache_redis \"%V\" is not a valid address: %s",
                           &value[1], err);
        return NGX_CONF_ERROR;
    }

    nmcf->redis = value[1];
    nmcf->redis_port = addr.port;
    nmcf->redis_db = addr.db;

    if (addr.port != 0 && !ngx_http_nixcache_redis_is_ip(&addr)) {
        return ngx_http_nixcache_redis_resolve(cf, nmcf, &addr);
    }

    /* a socket path or an IP address: as it is */

    nmcf->redis_host = ngx_pnalloc(cf->pool, addr.host_len + 1);
    if (nmcf->redis_host == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(nmcf->redis_host, addr.host, addr.host_len + 1);

    return NGX_CONF_OK;
}


/*
 * nixcache_redis_auth FILE.  Read once, as the configuration is loaded
 * (by root, before workers drop privileges), with the checks of the other
 * secret files (owner-only mode); parsed by the core, the CLI's parser.
 * The copy in memory is wiped when the configuration goes away.
 */

char *
ngx_http_nixcache_redis_auth(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_nixcache_main_conf_t *nmcf = conf;

    ngx_int_t               rc;
    ngx_str_t              *value, text;
    const char             *err;
    ngx_pool_cleanup_t     *cln;
    nixcache_redis_auth_t  *auth;

    if (nmcf->redis_auth != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    cln = ngx_pool_cleanup_add(cf->pool, sizeof(nixcache_redis_auth_t));
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    auth = cln->data;
    ngx_memzero(auth, sizeof(nixcache_redis_auth_t));
    cln->handler = ngx_http_nixcache_redis_auth_wipe;

    if (ngx_http_nixcache_read_file(cf, &cmd->name, &value[1],
                                    NIXCACHE_REDIS_AUTH_FILE_MAX, &text)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    rc = nixcache_redis_auth_parse(auth, (const char *) text.data, text.len,
                                   &err);

    ngx_explicit_memzero(text.data, text.len);

    if (rc != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V \"%V\": %s",
                           &cmd->name, &value[1], err);
        return NGX_CONF_ERROR;
    }

    nmcf->redis_auth = auth;

    return NGX_CONF_OK;
}


static void
ngx_http_nixcache_redis_auth_wipe(void *data)
{
    nixcache_redis_auth_wipe(data);
}


/* An IP address is handed to hiredis as it is: no lookup then either. */

static ngx_int_t
ngx_http_nixcache_redis_is_ip(nixcache_redis_addr_t *addr)
{
#if (NGX_HAVE_INET6)
    u_char  buf[16];

    if (ngx_inet6_addr((u_char *) addr->host, addr->host_len, buf) == NGX_OK)
    {
        return 1;
    }
#endif

    return ngx_inet_addr((u_char *) addr->host, addr->host_len)
           != INADDR_NONE;
}


/* A host name: redis_host is the text of its first address. */

static char *
ngx_http_nixcache_redis_resolve(ngx_conf_t *cf,
    ngx_http_nixcache_main_conf_t *nmcf, nixcache_redis_addr_t *addr)
{
    size_t     len;
    ngx_url_t  u;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.host.data = (u_char *) addr->host;
    u.host.len = addr->host_len;
    u.port = (in_port_t) addr->port;

    if (ngx_inet_resolve_host(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "nixcache_redis \"%V\": host \"%s\" not found",
                           &nmcf->redis, addr->host);
        return NGX_CONF_ERROR;
    }

    nmcf->redis_host = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (nmcf->redis_host == NULL) {
        return NGX_CONF_ERROR;
    }

    len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                        nmcf->redis_host, NGX_SOCKADDR_STRLEN, 0);
    nmcf->redis_host[len] = '\0';

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_nixcache_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_http_nixcache_redis_t      *redis;
    ngx_http_nixcache_main_conf_t  *nmcf;

    nmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_nixcache_module);
    if (nmcf == NULL) {
        return NGX_OK;
    }

    redis = ngx_pcalloc(cycle->pool, sizeof(ngx_http_nixcache_redis_t));
    if (redis == NULL) {
        return NGX_ERROR;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     redis->ac = NULL;
     *     redis->free = NULL;
     *     redis->timed_out = NULL;
     *     redis->exiting = 0;
     */

    redis->conf = nmcf;
    redis->log = cycle->log;
    redis->pool = cycle->pool;

    nmcf->redis_worker = redis;

    return NGX_OK;
}


void
ngx_http_nixcache_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_nixcache_redis_t      *redis;
    ngx_http_nixcache_main_conf_t  *nmcf;

    nmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_nixcache_module);
    if (nmcf == NULL || nmcf->redis_worker == NULL) {
        return;
    }

    redis = nmcf->redis_worker;

    /* requests still open are being torn down: no handler may run */

    redis->exiting = 1;

    if (redis->ac != NULL) {
        redisAsyncFree(redis->ac);
    }
}


ngx_int_t
ngx_http_nixcache_redis_command(ngx_http_request_t *r,
    ngx_http_nixcache_redis_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    ngx_http_nixcache_redis_t      *redis;
    ngx_http_nixcache_redis_cmd_t  *cmd;
    ngx_http_nixcache_redis_req_t  *req;
    ngx_http_nixcache_main_conf_t  *nmcf;

    nmcf = ngx_http_get_module_main_conf(r, ngx_http_nixcache_module);
    redis = nmcf->redis_worker;

    if (redis == NULL || redis->exiting) {
        return NGX_ERROR;
    }

    req = ngx_http_nixcache_redis_req(r);
    if (req == NULL) {
        return NGX_ERROR;
    }

    /*
     * A context whose teardown is under way (its pending callbacks are
     * running) takes no commands: a fresh connection is opened instead.
     */

    if (redis->ac != NULL
        && (redis->ac->c.flags & (REDIS_DISCONNECTING|REDIS_FREEING)))
    {
        redis->ac = NULL;
    }

    if (redis->ac == NULL) {
        if (ngx_http_nixcache_redis_connect(redis, r->connection->log)
            != NGX_OK)
        {
            ngx_http_nixcache_metrics_redis(nmcf,
                                NGX_HTTP_NIXCACHE_METRICS_REDIS_UNREACHABLE);
            return NGX_ERROR;
        }

        ngx_http_nixcache_metrics_redis(nmcf,
                                    NGX_HTTP_NIXCACHE_METRICS_REDIS_CONNECT);

        if (redis->connected_before) {
            ngx_http_nixcache_metrics_redis_reconnect(nmcf);
        }

        redis->connected_before = 1;
    }

    cmd = redis->free;

    if (cmd != NULL) {
        redis->free = cmd->next;

    } else {
        cmd = ngx_pcalloc(redis->pool, sizeof(ngx_http_nixcache_redis_cmd_t));
        if (cmd == NULL) {
            return NGX_ERROR;
        }

        cmd->redis = redis;
        cmd->timer.handler = ngx_http_nixcache_redis_timeout;
        cmd->timer.data = cmd;
        cmd->timer.log = redis->log;
    }

    cmd->ac = redis->ac;
    cmd->request = r;
    cmd->handler = handler;
    cmd->data = data;
    cmd->next = NULL;
    cmd->start = ngx_http_nixcache_metrics_now();

    if (redisAsyncCommandArgv(redis->ac, ngx_http_nixcache_redis_reply, cmd,
                              argc, argv, argvlen)
        != REDIS_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: redis %V: cannot queue a command",
                      &redis->conf->redis);

        cmd->ac = NULL;
        cmd->request = NULL;
        cmd->next = redis->free;
        redis->free = cmd;

        return NGX_ERROR;
    }

    ngx_queue_insert_tail(&req->pending, &cmd->queue);
    ngx_add_timer(&cmd->timer, redis->conf->redis_timeout);

    return NGX_OK;
}


/*
 * The request's Redis state is the data of a cleanup of its pool, found
 * by its handler: one small allocation per request, not per command.
 */

static ngx_http_nixcache_redis_req_t *
ngx_http_nixcache_redis_req(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t             *cln;
    ngx_http_nixcache_redis_req_t  *req;

    req = ngx_http_nixcache_redis_req_find(r);
    if (req != NULL) {
        return req;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_nixcache_redis_req_t));
    if (cln == NULL) {
        return NULL;
    }

    req = cln->data;

    ngx_queue_init(&req->pending);
    req->logged = 0;
    req->time = 0;

    cln->handler = ngx_http_nixcache_redis_req_cleanup;

    return req;
}


uint64_t
ngx_http_nixcache_redis_time(ngx_http_request_t *r)
{
    ngx_http_nixcache_redis_req_t  *req;

    req = ngx_http_nixcache_redis_req_find(r);

    return req != NULL ? req->time : 0;
}


static ngx_http_nixcache_redis_req_t *
ngx_http_nixcache_redis_req_find(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;

    for (cln = r->pool->cleanup; cln != NULL; cln = cln->next) {
        if (cln->handler == ngx_http_nixcache_redis_req_cleanup) {
            return cln->data;
        }
    }

    return NULL;
}


static void
ngx_http_nixcache_redis_req_cleanup(void *data)
{
    ngx_http_nixcache_redis_req_t *req = data;

    ngx_queue_t                    *q;
    ngx_http_nixcache_redis_cmd_t  *cmd;

    while (!ngx_queue_empty(&req->pending)) {
        q = ngx_queue_head(&req->pending);
        ngx_queue_remove(q);

        cmd = ngx_queue_data(q, ngx_http_nixcache_redis_cmd_t, queue);
        cmd->request = NULL;

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, cmd->redis->log, 0,
                       "nixcache redis: command detached");
    }
}


static ngx_int_t
ngx_http_nixcache_redis_connect(ngx_http_nixcache_redis_t *redis,
    ngx_log_t *log)
{
    int                             argc;
    size_t                          argvlen[3];
    const char                     *argv[3];
    ngx_connection_t               *c;
    redisAsyncContext              *ac;
    ngx_http_nixcache_main_conf_t  *nmcf;

    nmcf = redis->conf;

    if (nmcf->redis_port == 0) {
        ac = redisAsyncConnectUnix((const char *) nmcf->redis_host);

    } else {
        ac = redisAsyncConnect((const char *) nmcf->redis_host,
                               (int) nmcf->redis_port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "nixcache: redis %V: out of memory", &nmcf->redis);
        return NGX_ERROR;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "nixcache: redis %V: %s",
                      &nmcf->redis, ac->errstr);
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    c = ngx_get_connection(ac->c.fd, redis->log);
    if (c == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "nixcache: redis %V: no free connection",
                      &nmcf->redis);
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    c->data = ac;
    c->read->handler = ngx_http_nixcache_redis_read_handler;
    c->write->handler = ngx_http_nixcache_redis_write_handler;
    c->read->log = redis->log;
    c->write->log = redis->log;

    ac->data = redis;
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_nixcache_redis_add_read;
    ac->ev.delRead = ngx_http_nixcache_redis_del_read;
    ac->ev.addWrite = ngx_http_nixcache_redis_add_write;
    ac->ev.delWrite = ngx_http_nixcache_redis_del_write;
    ac->ev.cleanup = ngx_http_nixcache_redis_cleanup;

    redis->ac = ac;

    /* hiredis learns the outcome of connect() on the first write event */

    redisAsyncSetConnectCallback(ac, ngx_http_nixcache_redis_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_http_nixcache_redis_disconnected);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, redis->log, 0,
                   "nixcache redis: connecting to %V (%s port %i), fd:%d",
                   &nmcf->redis, nmcf->redis_host, nmcf->redis_port, c->fd);

    /* first in the pipeline: no command may run unauthenticated */

    if (nmcf->redis_auth != NULL) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (nmcf->redis_auth->user_len > 0) {
            argv[argc] = nmcf->redis_auth->user;
            argvlen[argc++] = nmcf->redis_auth->user_len;
        }

        argv[argc] = nmcf->redis_auth->pass;
        argvlen[argc++] = nmcf->redis_auth->pass_len;

        if (redisAsyncCommandArgv(ac, ngx_http_nixcache_redis_authed, redis,
                                  argc, argv, argvlen)
            != REDIS_OK)
        {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "nixcache: redis %V: cannot queue AUTH",
                          &nmcf->redis);
            redisAsyncFree(ac);
            return NGX_ERROR;
        }
    }

    /* then no command may run in database 0 */

    if (nmcf->redis_db > 0
        && redisAsyncCommand(ac, ngx_http_nixcache_redis_selected, redis,
                             "SELECT %d", (int) nmcf->redis_db)
           != REDIS_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "nixcache: redis %V: cannot queue SELECT",
                      &nmcf->redis);
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A refused AUTH (WRONGPASS, or an error when the server has no password
 * for that user: a configuration mistake worth seeing) fails the
 * connection like a failed SELECT: the commands behind it would be
 * refused one by one, or worse, run as the default user.  Each request
 * then logs the cause once and answers 503.
 */

static void
ngx_http_nixcache_redis_authed(redisAsyncContext *ac, void *rep,
    void *privdata)
{
    ngx_http_nixcache_redis_t  *redis = privdata;

    redisReply  *reply;

    reply = rep;

    if (reply == NULL) {

        /* the context is being freed: the commands get NULL replies too */

        return;
    }

    if (reply->type == REDIS_REPLY_STATUS) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, redis->log, 0,
                       "nixcache redis: authenticated");
        return;
    }

    ngx_http_nixcache_redis_fail(ac, "AUTH failed", reply);
}


/*
 * The commands pipelined behind a SELECT that failed would run in
 * database 0: the context is freed (after this callback, by hiredis), and
 * each of them gets a NULL reply, logged with the context's error, set
 * here to say why.
 */

static void
ngx_http_nixcache_redis_selected(redisAsyncContext *ac, void *rep,
    void *privdata)
{
    ngx_http_nixcache_redis_t  *redis = privdata;

    u_char       buf[32];
    u_char      *p;
    redisReply  *reply;

    reply = rep;

    if (reply == NULL) {

        /* the context is being freed: the commands get NULL replies too */

        return;
    }

    if (reply->type == REDIS_REPLY_STATUS) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, redis->log, 0,
                       "nixcache redis: database %i selected",
                       redis->conf->redis_db);
        return;
    }

    p = ngx_snprintf(buf, sizeof(buf) - 1, "SELECT %i",
                     redis->conf->redis_db);
    *p = '\0';

    ngx_http_nixcache_redis_fail(ac, (const char *) buf, reply);
}


/*
 * Sets the context's error to "<what>: <the error reply>" and frees it
 * (hiredis does, after the running callback): every command queued on it
 * gets a NULL reply and logs that error.
 */

static void
ngx_http_nixcache_redis_fail(redisAsyncContext *ac, const char *what,
    redisReply *reply)
{
    u_char  *p;

    p = ngx_snprintf((u_char *) ac->c.errstr, sizeof(ac->c.errstr) - 1,
                     "%s: %*s", what,
                     (size_t) (reply->type == REDIS_REPLY_ERROR
                               ? reply->len : 0),
                     reply->str);
    *p = '\0';

    ac->c.err = REDIS_ERR_OTHER;
    ac->err = ac->c.err;
    ac->errstr = ac->c.errstr;

    redisAsyncFree(ac);
}


static void
ngx_http_nixcache_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_nixcache_redis_t  *redis = ac->data;

    if (status == REDIS_OK) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, redis->log, 0,
                       "nixcache redis: connected to %V",
                       &redis->conf->redis);
    }

    /* on failure, hiredis fails the pending commands and frees the context */
}


static void
ngx_http_nixcache_redis_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_http_nixcache_redis_t  *redis = ac->data;

    if (status != REDIS_OK && ac != redis->timed_out && !redis->exiting) {
        ngx_log_error(NGX_LOG_WARN, redis->log, 0,
                      "nixcache: redis %V: connection lost: %s",
                      &redis->conf->redis, ac->errstr);
    }
}


static void
ngx_http_nixcache_redis_reply(redisAsyncContext *ac, void *rep, void *privdata)
{
    ngx_http_nixcache_redis_cmd_t  *cmd = privdata;

    void                           *data;
    uint64_t                        us;
    redisReply                     *reply;
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_http_nixcache_redis_t      *redis;
    ngx_http_nixcache_redis_req_t  *rq;
    ngx_http_nixcache_redis_pt      handler;

    redis = cmd->redis;
    reply = rep;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    r = cmd->request;
    handler = cmd->handler;
    data = cmd->data;

    us = ngx_http_nixcache_metrics_now() - cmd->start;
    ngx_http_nixcache_metrics_redis_time(redis->conf, us);

    if (r != NULL) {
        ngx_queue_remove(&cmd->queue);
    }

    /* back to the free list first: the handler may queue a command */

    cmd->ac = NULL;
    cmd->request = NULL;
    cmd->next = redis->free;
    redis->free = cmd;

    if (r == NULL || redis->exiting) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, redis->log, 0,
                       "nixcache redis: reply dropped");
        return;
    }

    rq = ngx_http_nixcache_redis_req(r);

    if (rq != NULL) {
        rq->time += us;
    }

    if (reply == NULL) {
        ngx_http_nixcache_metrics_redis(redis->conf, ac == redis->timed_out
                                ? NGX_HTTP_NIXCACHE_METRICS_REDIS_TIMEOUT
                                : NGX_HTTP_NIXCACHE_METRICS_REDIS_CLOSED);

        if (rq == NULL || !rq->logged) {
            if (ac == redis->timed_out && redis->timed_out_connecting) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "nixcache: redis %V: not connected within "
                              "%M ms", &redis->conf->redis,
                              redis->conf->redis_timeout);

            } else if (ac == redis->timed_out) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "nixcache: redis %V: no reply within %M ms",
                              &redis->conf->redis,
                              redis->conf->redis_timeout);

            } else {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "nixcache: redis %V: %s", &redis->conf->redis,
                              ac->err ? ac->errstr : "connection closed");
            }
        }

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_nixcache_metrics_redis(redis->conf,
                                  NGX_HTTP_NIXCACHE_METRICS_REDIS_ERROR_REPLY);

        if (rq == NULL || !rq->logged) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "nixcache: redis %V: %*s", &redis->conf->redis,
                          reply->len, reply->str);
        }

        reply = NULL;
    }

    if (reply == NULL && rq != NULL) {
        rq->logged = 1;
    }

    c = r->connection;

    handler(r, reply, data);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_nixcache_redis_timeout(ngx_event_t *ev)
{
    ngx_http_nixcache_redis_cmd_t  *cmd = ev->data;

    redisAsyncContext          *ac;
    ngx_http_nixcache_redis_t  *redis;

    redis = cmd->redis;
    ac = cmd->ac;

    /*
     * The timer is deleted when the command's callback runs, and hiredis
     * runs every pending callback before it frees a context: ac is alive.
     */

    if (cmd->request == NULL) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "nixcache: redis %V: no reply within %M ms",
                      &redis->conf->redis, redis->conf->redis_timeout);
    }

    redis->timed_out = ac;
    redis->timed_out_connecting = (ac->c.flags & REDIS_CONNECTED) ? 0 : 1;

    redisAsyncFree(ac);

    redis->timed_out = NULL;
}


/*
 * hiredis reads at most 16 KB per call.  Behind busy event-loop turns (many
 * NAR streams) one read per turn leaves replies unread until they time
 * out, so the socket is drained, within a bound, while it holds data.
 * c and the context may be freed inside a call: the cleanup hook counts
 * releases, and nothing of theirs is touched after one.
 */

static void
ngx_http_nixcache_redis_read_handler(ngx_event_t *ev)
{
    int                         avail;
    ngx_uint_t                  i, released;
    ngx_socket_t                fd;
    ngx_connection_t           *c = ev->data;
    redisAsyncContext          *ac;
    ngx_http_nixcache_redis_t  *redis;

    ac = c->data;
    redis = ac->data;
    fd = c->fd;
    released = redis->released;

    for (i = 0; i < NGX_HTTP_NIXCACHE_REDIS_READS; i++) {
        redisAsyncHandleRead(ac);

        if (redis->released != released
            || redis->ac != ac
            || (ac->c.flags & (REDIS_DISCONNECTING|REDIS_FREEING)))
        {
            return;
        }

        if (ioctl(fd, FIONREAD, &avail) == -1 || avail <= 0) {
            return;
        }
    }
}


static void
ngx_http_nixcache_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleWrite(c->data);
}


static void
ngx_http_nixcache_redis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c != NULL) {
        ngx_http_nixcache_redis_add(c->read, NGX_READ_EVENT);
    }
}


static void
ngx_http_nixcache_redis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c != NULL) {
        ngx_http_nixcache_redis_del(c->read, NGX_READ_EVENT);
    }
}


static void
ngx_http_nixcache_redis_add_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c != NULL) {
        ngx_http_nixcache_redis_add(c->write, NGX_WRITE_EVENT);
    }
}


static void
ngx_http_nixcache_redis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c != NULL) {
        ngx_http_nixcache_redis_del(c->write, NGX_WRITE_EVENT);
    }
}


/*
 * hiredis calls the hooks repeatedly; nginx's epoll module must not see
 * an ADD for an active event.  NGX_LEVEL_EVENT (no EPOLLET) is passed
 * both when adding and when deleting, since deleting one direction
 * re-registers the other with the flags given.
 */

static void
ngx_http_nixcache_redis_add(ngx_event_t *ev, ngx_int_t event)
{
    ngx_connection_t  *c = ev->data;

    if (ev->active) {
        return;
    }

    if (ngx_add_event(ev, event, NGX_LEVEL_EVENT) != NGX_OK) {

        /* logged by the event module; the command timers end it */

        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "nixcache: redis: cannot add event on fd:%d", c->fd);
    }
}


static void
ngx_http_nixcache_redis_del(ngx_event_t *ev, ngx_int_t event)
{
    if (!ev->active) {
        return;
    }

    (void) ngx_del_event(ev, event, NGX_LEVEL_EVENT);
}


/*
 * Called by hiredis once, while freeing the context and before it closes
 * the socket: the nginx connection is released here and only here.
 */

static void
ngx_http_nixcache_redis_cleanup(void *privdata)
{
    ngx_connection_t  *c = privdata;

    redisAsyncContext          *ac;
    ngx_http_nixcache_redis_t  *redis;

    if (c == NULL) {
        return;
    }

    ac = c->data;
    redis = ac->data;

    ac->ev.data = NULL;

    ngx_http_nixcache_redis_del(c->read, NGX_READ_EVENT);
    ngx_http_nixcache_redis_del(c->write, NGX_WRITE_EVENT);

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, redis->log, 0,
                   "nixcache redis: connection released, fd:%d", c->fd);

    ngx_free_connection(c);

    /* hiredis closes the socket itself, right after this hook */

    c->fd = (ngx_socket_t) -1;

    redis->released++;

    if (redis->ac == ac) {
        redis->ac = NULL;
    }
}
