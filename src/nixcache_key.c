/*
 * Redis key names (see nixcache_key.h).
 */

#include <string.h>

#include "nixcache_format.h"
#include "nixcache_gc.h"
#include "nixcache_key.h"


typedef struct {
    const char  *text;
    size_t       len;
} nixcache_key_kind_t;


#define nixcache_key_kind(s)        { s, sizeof(s) - 1 }


/* indexed by nixcache_key_kind_e */

static const nixcache_key_kind_t  nixcache_key_kinds[] = {
    nixcache_key_kind(NIXCACHE_KEY_NARINFO),
    nixcache_key_kind(NIXCACHE_KEY_MANIFEST),
    nixcache_key_kind(NIXCACHE_KEY_UPLOAD),
    nixcache_key_kind(NIXCACHE_KEY_ACCESS),
    nixcache_key_kind(NIXCACHE_KEY_PIN),
    nixcache_key_kind(NIXCACHE_KEY_ABSENT),
    nixcache_key_kind(NIXCACHE_KEY_UPSTREAM)
};


size_t
nixcache_key_len(size_t prefix_len, nixcache_key_kind_e kind,
    size_t name_len)
{
    return prefix_len + nixcache_key_kinds[kind].len + name_len;
}


char *
nixcache_key_build(char *dst, const char *prefix, size_t prefix_len,
    nixcache_key_kind_e kind, const char *name, size_t name_len)
{
    const nixcache_key_kind_t  *k;

    k = &nixcache_key_kinds[kind];

    if (prefix_len > 0) {
        memcpy(dst, prefix, prefix_len);
        dst += prefix_len;
    }

    memcpy(dst, k->text, k->len);
    dst += k->len;

    if (name_len > 0) {
        memcpy(dst, name, name_len);
        dst += name_len;
    }

    return dst;
}


int
nixcache_key_name(const char *key, size_t key_len, const char *prefix,
    size_t prefix_len, nixcache_key_kind_e kind, const char **name,
    size_t *name_len)
{
    const nixcache_key_kind_t  *k;

    k = &nixcache_key_kinds[kind];

    if (key_len < prefix_len + k->len
        || (prefix_len > 0 && memcmp(key, prefix, prefix_len) != 0)
        || memcmp(key + prefix_len, k->text, k->len) != 0)
    {
        return -1;
    }

    *name = key + prefix_len + k->len;
    *name_len = key_len - prefix_len - k->len;

    return 0;
}
