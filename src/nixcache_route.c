/*
 * Request paths to routes (see nixcache_route.h).
 */

#include <string.h>

#include "nixcache_format.h"
#include "nixcache_nix32.h"
#include "nixcache_route.h"


#define nixcache_route_lit(s)       (sizeof(s) - 1)


static int nixcache_route_suffix(const char *s, size_t len,
    const char *suffix, size_t suffix_len);
static void nixcache_route_hash(nixcache_route_t *rt, nixcache_route_e route,
    const char *rel, size_t off, size_t len, size_t want);
static void nixcache_route_upstream(nixcache_route_t *rt, const char *rel,
    size_t len);
static int nixcache_route_name_char(char c);


int
nixcache_route_rel(const char *uri, size_t len, const char *prefix,
    size_t prefix_len, size_t *off, size_t *rel_len)
{
    size_t  p;

    if (prefix != NULL
        && prefix_len > 0
        && len >= prefix_len
        && memcmp(uri, prefix, prefix_len) == 0)
    {
        p = prefix_len;

        if (prefix[prefix_len - 1] != '/') {

            /* "location /cache" serves "/cache/...", not "/cachefoo" */

            if (p == len || uri[p] != '/') {
                return -1;
            }

            p++;
        }

        *off = p;
        *rel_len = len - p;

        return 0;
    }

    for (p = len; p > 0 && uri[p - 1] != '/'; p--) {
        /* void */
    }

    if (p >= nixcache_route_lit("/nar/")
        && memcmp(uri + p - nixcache_route_lit("/nar/"), "/nar/",
                  nixcache_route_lit("/nar/"))
           == 0)
    {
        p -= nixcache_route_lit("nar/");
    }

    *off = p;
    *rel_len = len - p;

    return 0;
}


void
nixcache_route_match(nixcache_route_t *rt, const char *rel, size_t len)
{
    size_t  n;

    rt->route = NIXCACHE_ROUTE_NONE;
    rt->hash_off = 0;
    rt->hash_len = 0;
    rt->name_off = 0;
    rt->name_len = 0;
    rt->url_off = 0;

    if (len == nixcache_route_lit("nix-cache-info")
        && memcmp(rel, "nix-cache-info", len) == 0)
    {
        rt->route = NIXCACHE_ROUTE_INFO;
        return;
    }

    if (len > nixcache_route_lit("nar/")
        && memcmp(rel, "nar/", nixcache_route_lit("nar/")) == 0)
    {
        n = len - nixcache_route_lit("nar/");

        if (memchr(rel + nixcache_route_lit("nar/"), '/', n) != NULL) {
            return;
        }

        if (nixcache_route_suffix(rel, len, ".nar.zst",
                                  nixcache_route_lit(".nar.zst")))
        {
            nixcache_route_hash(rt, NIXCACHE_ROUTE_NAR_ZST, rel,
                                nixcache_route_lit("nar/"),
                                n - nixcache_route_lit(".nar.zst"),
                                NIXCACHE_SHA256_NIX32_LEN);

        } else if (nixcache_route_suffix(rel, len, ".nar",
                                         nixcache_route_lit(".nar")))
        {
            nixcache_route_hash(rt, NIXCACHE_ROUTE_NAR, rel,
                                nixcache_route_lit("nar/"),
                                n - nixcache_route_lit(".nar"),
                                NIXCACHE_SHA256_NIX32_LEN);
        }

        return;
    }

    if (len > nixcache_route_lit("upstream/")
        && memcmp(rel, "upstream/", nixcache_route_lit("upstream/")) == 0)
    {
        nixcache_route_upstream(rt, rel, len);
        return;
    }

    if (memchr(rel, '/', len) != NULL) {
        return;
    }

    if (nixcache_route_suffix(rel, len, ".narinfo",
                              nixcache_route_lit(".narinfo")))
    {
        nixcache_route_hash(rt, NIXCACHE_ROUTE_NARINFO, rel, 0,
                            len - nixcache_route_lit(".narinfo"),
                            NIXCACHE_STORE_HASH_NIX32_LEN);
        return;
    }

    /* "<hash>.ls" (Nix's file listings): only exact ones, never a 400 */

    if (len == NIXCACHE_STORE_HASH_NIX32_LEN + nixcache_route_lit(".ls")
        && nixcache_route_suffix(rel, len, ".ls", nixcache_route_lit(".ls"))
        && nixcache_nix32_valid(rel, NIXCACHE_STORE_HASH_NIX32_LEN))
    {
        rt->route = NIXCACHE_ROUTE_LS;
        rt->hash_len = NIXCACHE_STORE_HASH_NIX32_LEN;
    }
}


int
nixcache_route_nar_name(const char *name, size_t len,
    nixcache_decomp_e *kind)
{
    char        c;
    size_t      i;

    for (i = 0; i < len; i++) {
        c = name[i];

        if (c == '.') {
            break;
        }

        if (!nixcache_route_name_char(c) && c != '+') {
            return -1;
        }
    }

    if (i == 0 || i == len || i > NIXCACHE_ROUTE_NAME_MAX
        || len - i < nixcache_route_lit(".nar")
        || memcmp(name + i, ".nar", nixcache_route_lit(".nar")) != 0)
    {
        return -1;
    }

    i += nixcache_route_lit(".nar");

    return nixcache_decomp_kind_ext(name + i, len - i, kind);
}


int
nixcache_route_upstream_name(const char *name, size_t len)
{
    size_t  i;

    if (len == 0 || len > NIXCACHE_ROUTE_UPSTREAM_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!nixcache_route_name_char(name[i])) {
            return 0;
        }
    }

    return 1;
}


int
nixcache_route_upstream_url(const char *url, size_t len, int query)
{
    char    c;
    size_t  i, seg;

    if (len == 0 || len > NIXCACHE_ROUTE_URL_MAX) {
        return 0;
    }

    seg = 0;            /* where the current segment starts */

    for (i = 0; i < len; i++) {
        c = url[i];

        if (c == '/' || (c == '?' && query)) {
            if (i == seg
                || (i - seg == 1 && url[seg] == '.')
                || (i - seg == 2 && url[seg] == '.' && url[seg + 1] == '.'))
            {
                return 0;
            }

            if (c == '?') {
                break;
            }

            seg = i + 1;
            continue;
        }

        if (!nixcache_route_name_char(c) && c != '.' && c != '+') {
            return 0;
        }
    }

    if (i == len) {

        /* the last segment: not empty, ".", ".." */

        return !(i == seg
                 || (i - seg == 1 && url[seg] == '.')
                 || (i - seg == 2 && url[seg] == '.' && url[seg + 1] == '.'));
    }

    /* the query, after the '?' at i */

    for (i++; i < len; i++) {
        c = url[i];

        if (!nixcache_route_name_char(c)
            && c != '.' && c != '+' && c != '=' && c != '&')
        {
            return 0;
        }
    }

    return 1;
}


/* "upstream/<name>/<32 nix32>/<URL>" */

static void
nixcache_route_upstream(nixcache_route_t *rt, const char *rel, size_t len)
{
    size_t       p, name;
    const char  *slash;

    p = nixcache_route_lit("upstream/");

    slash = memchr(rel + p, '/', len - p);

    if (slash == NULL
        || !nixcache_route_upstream_name(rel + p, slash - (rel + p)))
    {
        return;
    }

    name = p;
    p = slash - rel + 1;

    slash = memchr(rel + p, '/', len - p);

    if (slash == NULL) {
        return;
    }

    nixcache_route_hash(rt, NIXCACHE_ROUTE_UPSTREAM, rel, p,
                        slash - (rel + p), NIXCACHE_STORE_HASH_NIX32_LEN);

    if (rt->route != NIXCACHE_ROUTE_UPSTREAM) {
        return;
    }

    p = slash - rel + 1;

    if (!nixcache_route_upstream_url(rel + p, len - p, 0)) {
        rt->route = NIXCACHE_ROUTE_NONE;
        rt->hash_off = 0;
        rt->hash_len = 0;
        return;
    }

    rt->name_off = name;
    rt->name_len = (rt->hash_off - 1) - name;
    rt->url_off = p;
}


static int
nixcache_route_name_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
           || (c >= 'A' && c <= 'Z') || c == '_' || c == '-';
}


static int
nixcache_route_suffix(const char *s, size_t len, const char *suffix,
    size_t suffix_len)
{
    return len >= suffix_len
           && memcmp(s + len - suffix_len, suffix, suffix_len) == 0;
}


/* A route's shape was seen: its hash makes it the route or a 400. */

static void
nixcache_route_hash(nixcache_route_t *rt, nixcache_route_e route,
    const char *rel, size_t off, size_t len, size_t want)
{
    if (len != want || !nixcache_nix32_valid(rel + off, len)) {
        rt->route = NIXCACHE_ROUTE_BAD_HASH;
        return;
    }

    rt->route = route;
    rt->hash_off = off;
    rt->hash_len = len;
}
