/*
 * Small helpers shared by the module's files: the URI relative to the
 * location, response headers, Redis key names.
 */

#include "ngx_http_nixcache.h"

#include "nixcache_key.h"
#include "nixcache_route.h"


/* The path relative to the cache's location (see nixcache_route_rel()). */

ngx_int_t
ngx_http_nixcache_route_rel(ngx_http_request_t *r, ngx_str_t *rel)
{
    size_t                     off;
    u_char                    *prefix;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    prefix = clcf->name.data;

    if (clcf->named
        || clcf->exact_match
#if (NGX_PCRE)
        || clcf->regex != NULL
#endif
       )
    {
        prefix = NULL;
    }

    if (nixcache_route_rel((const char *) r->uri.data, r->uri.len,
                           (const char *) prefix, clcf->name.len,
                           &off, &rel->len)
        != 0)
    {
        return NGX_DECLINED;
    }

    rel->data = r->uri.data + off;

    return NGX_OK;
}


ngx_int_t
ngx_http_nixcache_add_header(ngx_http_request_t *r, char *key,
    ngx_str_t *value, ngx_table_elt_t **elt)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(h, sizeof(ngx_table_elt_t));

    h->hash = 1;
    h->key.len = ngx_strlen(key);
    h->key.data = (u_char *) key;
    h->value = *value;

    if (elt != NULL) {
        *elt = h;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_nixcache_key(ngx_http_request_t *r, ngx_str_t *key,
    nixcache_key_kind_e kind, u_char *name, size_t len)
{
    u_char                        *p;
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    key->len = nixcache_key_len(nlcf->prefix.len, kind, len);
    key->data = ngx_pnalloc(r->pool, key->len + 1);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    p = (u_char *) nixcache_key_build((char *) key->data,
                                      (const char *) nlcf->prefix.data,
                                      nlcf->prefix.len, kind,
                                      (const char *) name, len);
    *p = '\0';

    return NGX_OK;
}
