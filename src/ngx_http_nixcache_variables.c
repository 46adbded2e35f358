/*
 * Variables for the access log, of a request to a "nixcache on" location:
 *
 *   $nixcache_route       cache_info, narinfo, nar, nar_zst, upload, other
 *   $nixcache_source      where a NAR's chunks came from: disk, s3 or
 *                         disk+s3; "upstream:<name>" for a narinfo or
 *                         NAR answered from that nixcache_upstream (not
 *                         found for other routes)
 *   $nixcache_chunks      how many chunks a NAR response read
 *   $nixcache_redis_time  seconds its Redis commands took, summed, with
 *                         microseconds ("0.000412")
 *
 * Elsewhere they are not found (logged as "-").  None is cached: the log
 * phase reads them once, after the response.
 */

#include "ngx_http_nixcache_metrics.h"


static ngx_int_t ngx_http_nixcache_variable_route(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_nixcache_variable_source(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_nixcache_variable_chunks(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_nixcache_variable_redis_time(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_nixcache_variable_found(
    ngx_http_variable_value_t *v);
static ngx_uint_t ngx_http_nixcache_variable_enabled(ngx_http_request_t *r);
static ngx_http_nixcache_nar_ctx_t *ngx_http_nixcache_variable_nar(
    ngx_http_request_t *r);


static ngx_http_variable_t  ngx_http_nixcache_vars[] = {

    { ngx_string("nixcache_route"), NULL,
      ngx_http_nixcache_variable_route, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("nixcache_source"), NULL,
      ngx_http_nixcache_variable_source, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("nixcache_chunks"), NULL,
      ngx_http_nixcache_variable_chunks, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("nixcache_redis_time"), NULL,
      ngx_http_nixcache_variable_redis_time, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_nixcache_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_nixcache_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_nixcache_variable_route(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  rel;

    if (!ngx_http_nixcache_variable_enabled(r)) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) ngx_http_nixcache_metrics_routes[
                  ngx_http_nixcache_metrics_route(r, &rel)];
    v->len = ngx_strlen(v->data);
    return ngx_http_nixcache_variable_found(v);
}


static ngx_int_t
ngx_http_nixcache_variable_source(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                       *p;
    ngx_str_t                     name;
    ngx_http_nixcache_nar_ctx_t  *ctx;

    if (ngx_http_nixcache_variable_enabled(r)
        && ngx_http_nixcache_upstream_source(r, &name) == NGX_OK)
    {
        p = ngx_pnalloc(r->pool, sizeof("upstream:") - 1 + name.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        p = ngx_cpymem(p, "upstream:", sizeof("upstream:") - 1);
        v->len = ngx_cpymem(p, name.data, name.len) - v->data;

        return ngx_http_nixcache_variable_found(v);
    }

    ctx = ngx_http_nixcache_variable_nar(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (ctx->chunks_sent[0] && ctx->chunks_sent[1]) {
        ngx_str_set(v, "disk+s3");

    } else if (ctx->chunks_sent[1]) {
        ngx_str_set(v, "s3");

    } else if (ctx->chunks_sent[0]) {
        ngx_str_set(v, "disk");

    } else {
        v->len = 0;
        v->data = (u_char *) "";
    }

    return ngx_http_nixcache_variable_found(v);
}


static ngx_int_t
ngx_http_nixcache_variable_chunks(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                       *p;
    ngx_http_nixcache_nar_ctx_t  *ctx;

    ctx = ngx_http_nixcache_variable_nar(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;
    v->len = ngx_sprintf(p, "%ui", ctx->chunks_sent[0] + ctx->chunks_sent[1])
             - p;
    return ngx_http_nixcache_variable_found(v);
}


static ngx_int_t
ngx_http_nixcache_variable_redis_time(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char    *p;
    uint64_t   us;

    if (!ngx_http_nixcache_variable_enabled(r)) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + sizeof(".000000") - 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    us = ngx_http_nixcache_redis_time(r);

    v->data = p;
    v->len = ngx_sprintf(p, "%uL.%06uL", us / 1000000, us % 1000000) - p;
    return ngx_http_nixcache_variable_found(v);
}


static ngx_int_t
ngx_http_nixcache_variable_found(ngx_http_variable_value_t *v)
{
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_nixcache_variable_enabled(ngx_http_request_t *r)
{
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    return nlcf->enable;
}


/* The request's NAR context, without the alert of another kind. */

static ngx_http_nixcache_nar_ctx_t *
ngx_http_nixcache_variable_nar(ngx_http_request_t *r)
{
    ngx_uint_t  *ctx;

    if (!ngx_http_nixcache_variable_enabled(r)) {
        return NULL;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_nixcache_module);

    if (ctx == NULL || *ctx != NGX_HTTP_NIXCACHE_CTX_NAR) {
        return NULL;
    }

    return (ngx_http_nixcache_nar_ctx_t *) ctx;
}
