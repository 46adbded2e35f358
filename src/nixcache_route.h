/*
 * Request paths: which of the cache's routes a URI names and where its
 * hash is.  The bytes come from the client (nginx has decoded percent
 * escapes and resolved "/./" and "/../" before), so these are pure
 * functions over (pointer, length) with no NUL expected, shared by the
 * module's GET/HEAD routes and its uploads, and fuzzed by
 * fuzz/fuzz_route.c.  Every position returned lies inside the input.
 */

#ifndef NIXCACHE_ROUTE_H
#define NIXCACHE_ROUTE_H

#include <stddef.h>

#include "nixcache_decompress.h"


/* The longest NAR file name (before ".nar") an upload may use. */
#define NIXCACHE_ROUTE_NAME_MAX     128


typedef enum {
    NIXCACHE_ROUTE_NONE = 0,        /* not a route of ours: 404 */
    NIXCACHE_ROUTE_BAD_HASH,        /* a route's shape with a malformed
                                       hash: 400 */
    NIXCACHE_ROUTE_INFO,            /* nix-cache-info */
    NIXCACHE_ROUTE_NARINFO,         /* <32 nix32>.narinfo */
    NIXCACHE_ROUTE_LS,              /* <32 nix32>.ls (uploads only) */
    NIXCACHE_ROUTE_NAR,             /* nar/<52 nix32>.nar */
    NIXCACHE_ROUTE_NAR_ZST,         /* nar/<52 nix32>.nar.zst */
    NIXCACHE_ROUTE_UPSTREAM         /* upstream/<name>/<32 nix32>/<URL>:
                                       a pulled-through path's file at
                                       the upstream <name>, where its
                                       narinfo's URL was <URL> */
} nixcache_route_e;


/* The longest upstream name (nixcache_upstream NAME). */
#define NIXCACHE_ROUTE_UPSTREAM_NAME_MAX  32


typedef struct {
    nixcache_route_e   route;
    size_t             hash_off;    /* the hash in the path given */
    size_t             hash_len;    /* 0 unless NARINFO, LS, NAR, NAR_ZST,
                                       UPSTREAM */
    size_t             name_off;    /* UPSTREAM: the upstream's name */
    size_t             name_len;
    size_t             url_off;     /* UPSTREAM: the URL, to the end */
} nixcache_route_t;


/*
 * The part of a URI the routes are matched against.  In a plain prefix
 * location (prefix, prefix_len: its name; NULL, 0 for a regex, exact or
 * named location) a URI that starts with the prefix loses it, and a "/"
 * after a prefix without a trailing "/" ("location /cache" serves
 * "/cache/x", not "/cachex").  Otherwise the last path component is kept,
 * with "nar/" before it when the one before is "nar".
 * Returns 0 with *off and *len set, or -1 when the URI is not under the
 * prefix ("/cachex").
 */
int nixcache_route_rel(const char *uri, size_t len, const char *prefix,
    size_t prefix_len, size_t *off, size_t *rel_len);

/* Matches a path relative to the cache (nixcache_route_rel()'s result). */
void nixcache_route_match(nixcache_route_t *rt, const char *rel, size_t len);

/*
 * An uploaded NAR's file name, what follows "nar/": 1 to
 * NIXCACHE_ROUTE_NAME_MAX of [0-9a-zA-Z_+-], then ".nar" and the
 * extension of its compression ("", ".xz", ".zst", ".bz2").  Returns 0
 * with *kind set, or -1.
 */
int nixcache_route_nar_name(const char *name, size_t len,
    nixcache_decomp_e *kind);

/*
 * An upstream narinfo's URL this cache can stand for under
 * "upstream/<name>/<hash>/": relative, 1 to NIXCACHE_ROUTE_URL_MAX bytes
 * of [0-9a-zA-Z._+-/] in non-empty segments other than "." and "..";
 * with query 1 when a "?" and a query of [0-9a-zA-Z._+-=&] may follow
 * (a narinfo's URL may carry one, a request path may not: nginx has
 * split it off).  Returns 1 or 0.
 */
int nixcache_route_upstream_url(const char *url, size_t len, int query);

/* The longest upstream URL stood for. */
#define NIXCACHE_ROUTE_URL_MAX      512

/* An upstream name: 1 to NIXCACHE_ROUTE_UPSTREAM_NAME_MAX [0-9a-zA-Z_-]. */
int nixcache_route_upstream_name(const char *name, size_t len);


#endif /* NIXCACHE_ROUTE_H */
