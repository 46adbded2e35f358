/*
 * libFuzzer target: request paths, as the module routes them
 * (nixcache_route_rel, nixcache_route_match, nixcache_route_nar_name).
 * The first byte chooses the location: its low 4 bits are the length of
 * a prefix taken from the input's start (0: a regex location); the rest
 * is the URI.
 *
 * Invariants: the relative path and the hash lie inside the input; a
 * route with a hash has one of its exact length in the nix32 alphabet,
 * and the relative path is exactly that route's text around it (so
 * matching the rebuilt text gives the same answer); an accepted NAR name
 * has its documented shape.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nixcache_format.h"
#include "nixcache_nix32.h"
#include "nixcache_route.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
check_match(const char *rel, size_t len)
{
    size_t            want;
    nixcache_route_t  rt;
    const char       *before, *after;

    nixcache_route_match(&rt, rel, len);

    switch (rt.route) {

    case NIXCACHE_ROUTE_NARINFO:
        before = "";
        after = ".narinfo";
        want = NIXCACHE_STORE_HASH_NIX32_LEN;
        break;

    case NIXCACHE_ROUTE_LS:
        before = "";
        after = ".ls";
        want = NIXCACHE_STORE_HASH_NIX32_LEN;
        break;

    case NIXCACHE_ROUTE_NAR:
        before = "nar/";
        after = ".nar";
        want = NIXCACHE_SHA256_NIX32_LEN;
        break;

    case NIXCACHE_ROUTE_NAR_ZST:
        before = "nar/";
        after = ".nar.zst";
        want = NIXCACHE_SHA256_NIX32_LEN;
        break;

    case NIXCACHE_ROUTE_UPSTREAM:

        /* upstream/<name>/<32 nix32>/<URL>, each part as checked alone */

        if (len < sizeof("upstream/") - 1
            || memcmp(rel, "upstream/", sizeof("upstream/") - 1) != 0
            || rt.name_off != sizeof("upstream/") - 1
            || !nixcache_route_upstream_name(rel + rt.name_off, rt.name_len)
            || rt.hash_off != rt.name_off + rt.name_len + 1
            || rel[rt.hash_off - 1] != '/'
            || rt.hash_len != NIXCACHE_STORE_HASH_NIX32_LEN
            || !nixcache_nix32_valid(rel + rt.hash_off, rt.hash_len)
            || rt.url_off != rt.hash_off + rt.hash_len + 1
            || rt.url_off > len
            || rel[rt.url_off - 1] != '/'
            || !nixcache_route_upstream_url(rel + rt.url_off,
                                            len - rt.url_off, 0))
        {
            abort();
        }

        return;

    case NIXCACHE_ROUTE_INFO:
        if (len != sizeof("nix-cache-info") - 1
            || memcmp(rel, "nix-cache-info", len) != 0)
        {
            abort();
        }

        /* fall through */

    case NIXCACHE_ROUTE_NONE:
    case NIXCACHE_ROUTE_BAD_HASH:
        if (rt.hash_len != 0) {
            abort();
        }

        return;

    default:
        abort();
    }

    if (rt.hash_len != want
        || rt.hash_off != strlen(before)
        || rt.hash_off + rt.hash_len + strlen(after) != len
        || memcmp(rel, before, strlen(before)) != 0
        || memcmp(rel + rt.hash_off + rt.hash_len, after, strlen(after))
           != 0
        || !nixcache_nix32_valid(rel + rt.hash_off, rt.hash_len))
    {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char               *s;
    size_t              prefix_len, off, len, i;
    nixcache_decomp_e   kind;

    if (size == 0) {
        return 0;
    }

    prefix_len = data[0] & 0x0f;
    data++;
    size--;

    if (prefix_len > size) {
        prefix_len = size;
    }

    s = malloc(size ? size : 1);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data, size);

    /* the prefix is the URI's own start, as for a request in it */

    if (nixcache_route_rel(s, size, prefix_len ? s : NULL, prefix_len, &off,
                           &len)
        == 0)
    {
        if (off > size || len > size - off) {
            abort();
        }

        check_match(s + off, len);
    }

    check_match(s, size);

    if (nixcache_route_nar_name(s, size, &kind) == 0) {
        for (i = 0; i < size && s[i] != '.'; i++) {
            if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')
                  || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_'
                  || s[i] == '-' || s[i] == '+'))
            {
                abort();
            }
        }

        if (i == 0 || i > NIXCACHE_ROUTE_NAME_MAX
            || size - i < sizeof(".nar") - 1
            || memcmp(s + i, ".nar", sizeof(".nar") - 1) != 0
            || kind > NIXCACHE_DECOMP_BZIP2)
        {
            abort();
        }
    }

    free(s);

    return 0;
}
