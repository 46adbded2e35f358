/*
 * /nar/ routes: a placeholder until the NAR streaming lands (branch
 * modnar replaces this file).
 */

#include "ngx_http_nixcache.h"


ngx_int_t
ngx_http_nixcache_nar_handler(ngx_http_request_t *r, ngx_str_t *hash,
    ngx_http_nixcache_route_e route)
{
    return NGX_HTTP_NOT_IMPLEMENTED;
}
