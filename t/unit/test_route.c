/*
 * Request paths to routes: nixcache_route_rel(), nixcache_route_match()
 * and nixcache_route_nar_name(), table-driven.  The module's routing
 * through nginx is tested by t/010 and t/090 (hostile requests).
 */

#include "unit.h"

#include "nixcache_route.h"


#define H32   "0c6kzph7l0dcbfmjap64f0czdafn3b7x"
#define H52   "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"


typedef struct {
    const char        *rel;
    nixcache_route_e   route;
    const char        *hash;        /* NULL: no hash */
} match_t;


static const match_t  matches[] = {
    { "nix-cache-info", NIXCACHE_ROUTE_INFO, NULL },
    { H32 ".narinfo", NIXCACHE_ROUTE_NARINFO, H32 },
    { H32 ".ls", NIXCACHE_ROUTE_LS, NULL },
    { "nar/" H52 ".nar", NIXCACHE_ROUTE_NAR, H52 },
    { "nar/" H52 ".nar.zst", NIXCACHE_ROUTE_NAR_ZST, H52 },

    /* the shape of a route, a bad hash: 400 */
    { "e" H32 ".narinfo", NIXCACHE_ROUTE_BAD_HASH, NULL },
    { "0c6kzph7l0dcbfmjap64f0czdafn3b7.narinfo", NIXCACHE_ROUTE_BAD_HASH,
      NULL },
    { "0c6kzph7l0dcbfmjap64f0czdafn3b7e.narinfo", NIXCACHE_ROUTE_BAD_HASH,
      NULL },                                         /* 'e' not nix32 */
    { ".narinfo", NIXCACHE_ROUTE_BAD_HASH, NULL },
    { "nar/" H32 ".nar", NIXCACHE_ROUTE_BAD_HASH, NULL },
    { "nar/.nar", NIXCACHE_ROUTE_BAD_HASH, NULL },
    { "nar/.nar.zst", NIXCACHE_ROUTE_BAD_HASH, NULL },
    { "nar/" H52 "u.nar.zst", NIXCACHE_ROUTE_BAD_HASH, NULL },
    { "nar/1B8M03R63ZQHNJF7L5WNLDHH7C134AP5VPJ0850YMKQ1IYZICY5S.nar",
      NIXCACHE_ROUTE_BAD_HASH, NULL },

    /* not ours: 404 */
    { "", NIXCACHE_ROUTE_NONE, NULL },
    { "nix-cache-info/", NIXCACHE_ROUTE_NONE, NULL },
    { "nix-cache-inf", NIXCACHE_ROUTE_NONE, NULL },
    { "x/" H32 ".narinfo", NIXCACHE_ROUTE_NONE, NULL },
    { "nar/", NIXCACHE_ROUTE_NONE, NULL },
    { "nar", NIXCACHE_ROUTE_NONE, NULL },
    { "nar/" H52 ".nar.xz", NIXCACHE_ROUTE_NONE, NULL },
    { "nar/" H52 ".nar.bz2", NIXCACHE_ROUTE_NONE, NULL },
    { "nar/x/" H52 ".nar", NIXCACHE_ROUTE_NONE, NULL },
    { "nar/" H52, NIXCACHE_ROUTE_NONE, NULL },
    { H32 ".narinfo.", NIXCACHE_ROUTE_NONE, NULL },
    { H32 ".ls.", NIXCACHE_ROUTE_NONE, NULL },
    { "e" H32 ".ls", NIXCACHE_ROUTE_NONE, NULL },
    { "0c6kzph7l0dcbfmjap64f0czdafn3b7e.ls", NIXCACHE_ROUTE_NONE, NULL },
    { "log/" H32 "-hello", NIXCACHE_ROUTE_NONE, NULL },
    { "realisations/sha256:x!out.doi", NIXCACHE_ROUTE_NONE, NULL },

    /* upstream/<name>/<store hash>/<the upstream narinfo's URL> */
    { "upstream/cno/" H32 "/nar/" H52 ".nar.xz", NIXCACHE_ROUTE_UPSTREAM,
      H32 },
    { "upstream/a_b-1/" H32 "/x", NIXCACHE_ROUTE_UPSTREAM, H32 },
    { "upstream/cno/e" H32 "/nar/x.nar", NIXCACHE_ROUTE_BAD_HASH, NULL },
    { "upstream/cno/" H32 "/", NIXCACHE_ROUTE_NONE, NULL },
    { "upstream/cno/" H32, NIXCACHE_ROUTE_NONE, NULL },
    { "upstream/cno/" H32 "/nar/../x", NIXCACHE_ROUTE_NONE, NULL },
    { "upstream/cno/" H32 "/nar//x", NIXCACHE_ROUTE_NONE, NULL },
    { "upstream/cno/" H32 "/./x", NIXCACHE_ROUTE_NONE, NULL },
    { "upstream/cno/" H32 "/nar/x?y", NIXCACHE_ROUTE_NONE, NULL },
    { "upstream/cno/" H32 "/nar/x%2f", NIXCACHE_ROUTE_NONE, NULL },
    { "upstream/c.o/" H32 "/nar/x", NIXCACHE_ROUTE_NONE, NULL },
    { "upstream//" H32 "/nar/x", NIXCACHE_ROUTE_NONE, NULL },
    { "upstream/", NIXCACHE_ROUTE_NONE, NULL },
};


typedef struct {
    const char  *url;
    int          query;
    int          ok;
} url_t;


static const url_t  urls[] = {
    { "nar/" H52 ".nar.xz", 0, 1 },
    { "nar/a/b+c_d-e.f", 0, 1 },
    { "x", 0, 1 },
    { "nar/x.nar?hash=abc&x=1", 1, 1 },
    { "nar/x.nar?hash=abc", 0, 0 },
    { "nar/x.nar?", 1, 1 },
    { "", 0, 0 },
    { "/nar/x", 0, 0 },
    { "nar/", 0, 0 },
    { "nar//x", 0, 0 },
    { "../x", 0, 0 },
    { "nar/..", 0, 0 },
    { "nar/./x", 0, 0 },
    { "http://x/nar", 0, 0 },
    { "nar/x y", 0, 0 },
    { "nar/x?a/b", 1, 0 },
    { "nar/x%20", 0, 0 },
};


typedef struct {
    const char  *uri;
    const char  *prefix;            /* NULL: not a prefix location */
    int          rc;
    const char  *rel;
} rel_t;


static const rel_t  rels[] = {
    { "/nix-cache-info", "/", 0, "nix-cache-info" },
    { "/nar/x.nar", "/", 0, "nar/x.nar" },
    { "/cache/nar/x.nar", "/cache/", 0, "nar/x.nar" },
    { "/cache/nar/x.nar", "/cache", 0, "nar/x.nar" },
    { "/cache", "/cache", -1, NULL },
    { "/cachex/nix-cache-info", "/cache", -1, NULL },
    { "/cache/", "/cache", 0, "" },

    /* not under the prefix (a rewrite elsewhere): the last component */
    { "/other/a/nix-cache-info", "/cache/", 0, "nix-cache-info" },

    /* regex, exact and named locations: the last component(s) */
    { "/anything/here/" H32 ".narinfo", NULL, 0, H32 ".narinfo" },
    { "/deep/nar/" H52 ".nar", NULL, 0, "nar/" H52 ".nar" },
    { "/nar/" H52 ".nar", NULL, 0, "nar/" H52 ".nar" },
    { "nar/" H52 ".nar", NULL, 0, H52 ".nar" },
    { "/xnar/y", NULL, 0, "y" },
    { "/", NULL, 0, "" },
    { "", NULL, 0, "" },
    { "noslash", NULL, 0, "noslash" },
    { "/a/", NULL, 0, "" },
};


typedef struct {
    const char         *name;
    int                 rc;
    nixcache_decomp_e   kind;
} name_t;


static const name_t  names[] = {
    { H52 ".nar", 0, NIXCACHE_DECOMP_NONE },
    { H52 ".nar.xz", 0, NIXCACHE_DECOMP_XZ },
    { H52 ".nar.zst", 0, NIXCACHE_DECOMP_ZSTD },
    { H52 ".nar.bz2", 0, NIXCACHE_DECOMP_BZIP2 },
    { "Some_name-1+2.nar", 0, NIXCACHE_DECOMP_NONE },
    { "x.nar.gz", -1, 0 },
    { "x.narz", -1, 0 },
    { "x.na", -1, 0 },
    { ".nar", -1, 0 },
    { "x", -1, 0 },
    { "", -1, 0 },
    { "a/b.nar", -1, 0 },
    { "a b.nar", -1, 0 },
    { "a%2e.nar", -1, 0 },
    { "x.nar.xz.xz", -1, 0 },
    { "x..nar", -1, 0 },
};


int
main(void)
{
    size_t            i, off, len;
    char              name[NIXCACHE_ROUTE_NAME_MAX + 16];
    nixcache_route_t  rt;
    nixcache_decomp_e kind;

    for (i = 0; i < sizeof(matches) / sizeof(matches[0]); i++) {
        const match_t  *m = &matches[i];

        nixcache_route_match(&rt, m->rel, strlen(m->rel));

        is_u64(rt.route, m->route, "match \"%s\": route", m->rel);

        if (m->hash != NULL) {
            is_str(m->rel + rt.hash_off, rt.hash_len, m->hash,
                   "match \"%s\": hash", m->rel);
        }

        if (rt.route == NIXCACHE_ROUTE_LS) {
            is_u64(rt.hash_len, 32, "match \"%s\": .ls hash length", m->rel);
        }
    }

    for (i = 0; i < sizeof(rels) / sizeof(rels[0]); i++) {
        const rel_t  *t = &rels[i];

        off = len = 12345;

        is_u64(nixcache_route_rel(t->uri, strlen(t->uri), t->prefix,
                                  t->prefix ? strlen(t->prefix) : 0,
                                  &off, &len),
               (uint64_t) (int64_t) t->rc, "rel \"%s\" in \"%s\"", t->uri,
               t->prefix ? t->prefix : "(regex)");

        if (t->rc == 0) {
            is_str(t->uri + off, len, t->rel, "rel \"%s\": the part",
                   t->uri);
        }
    }

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const name_t  *t = &names[i];

        kind = (nixcache_decomp_e) 99;

        is_u64(nixcache_route_nar_name(t->name, strlen(t->name), &kind),
               (uint64_t) (int64_t) t->rc, "nar name \"%s\"", t->name);

        if (t->rc == 0) {
            is_u64(kind, t->kind, "nar name \"%s\": compression", t->name);
        }
    }

    for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        const url_t  *t = &urls[i];

        is_u64(nixcache_route_upstream_url(t->url, strlen(t->url), t->query),
               t->ok, "upstream URL \"%s\" (query %d)", t->url, t->query);
    }

    /* the upstream route's parts */

    nixcache_route_match(&rt, "upstream/cno/" H32 "/nar/x.nar.xz",
                         sizeof("upstream/cno/" H32 "/nar/x.nar.xz") - 1);
    is_u64(rt.route, NIXCACHE_ROUTE_UPSTREAM, "upstream route");
    is_str("upstream/cno/" H32 "/nar/x.nar.xz" + rt.name_off, rt.name_len,
           "cno", "upstream route: the name");
    is_str("upstream/cno/" H32 "/nar/x.nar.xz" + rt.url_off,
           sizeof("upstream/cno/" H32 "/nar/x.nar.xz") - 1 - rt.url_off,
           "nar/x.nar.xz", "upstream route: the URL");

    memset(name, 'a', NIXCACHE_ROUTE_UPSTREAM_NAME_MAX + 1);
    ok(nixcache_route_upstream_name(name, NIXCACHE_ROUTE_UPSTREAM_NAME_MAX)
       == 1, "upstream name of %d characters",
       NIXCACHE_ROUTE_UPSTREAM_NAME_MAX);
    ok(nixcache_route_upstream_name(name,
                                    NIXCACHE_ROUTE_UPSTREAM_NAME_MAX + 1)
       == 0, "upstream name of %d characters: refused",
       NIXCACHE_ROUTE_UPSTREAM_NAME_MAX + 1);
    ok(nixcache_route_upstream_name("", 0) == 0, "empty upstream name");

    /* the longest name allowed, and one more */

    memset(name, 'a', NIXCACHE_ROUTE_NAME_MAX);
    memcpy(name + NIXCACHE_ROUTE_NAME_MAX, ".nar.xz", sizeof(".nar.xz"));

    ok(nixcache_route_nar_name(name, strlen(name), &kind) == 0,
       "nar name of %d characters", NIXCACHE_ROUTE_NAME_MAX);

    memset(name, 'a', NIXCACHE_ROUTE_NAME_MAX + 1);
    memcpy(name + NIXCACHE_ROUTE_NAME_MAX + 1, ".nar", sizeof(".nar"));

    ok(nixcache_route_nar_name(name, strlen(name), &kind) == -1,
       "nar name of %d characters: refused", NIXCACHE_ROUTE_NAME_MAX + 1);

    /* lengths, not NULs: a NUL inside is just a byte that matches nothing */

    nixcache_route_match(&rt, "nix-cache-info\0x", sizeof("nix-cache-info"));
    is_u64(rt.route, NIXCACHE_ROUTE_NONE, "\"nix-cache-info\\0\": none");

    nixcache_route_match(&rt, H32 ".narinfo", sizeof(H32) - 1);
    is_u64(rt.route, NIXCACHE_ROUTE_NONE, "a hash without .narinfo: none");

    return done_testing();
}
