/*
 * Redis key names, in nixcache_format.h's terms: <prefix><kind><name>,
 * the one way the module and the CLI build them and read them back.
 * Pure, over (pointer, length), no allocation, no NUL written or needed.
 */

#ifndef NIXCACHE_KEY_H
#define NIXCACHE_KEY_H

#include <stddef.h>


typedef enum {
    NIXCACHE_KEY_KIND_NARINFO = 0,      /* name: store hash, 32 nix32 */
    NIXCACHE_KEY_KIND_MANIFEST,         /* name: NarHash, 52 nix32 */
    NIXCACHE_KEY_KIND_UPLOAD,           /* name: an uploaded NAR's file
                                           name */
    NIXCACHE_KEY_KIND_ACCESS,           /* no name (nixcache_gc.h) */
    NIXCACHE_KEY_KIND_PIN,              /* no name (nixcache_gc.h) */
    NIXCACHE_KEY_KIND_ABSENT,           /* name: store hash, 32 nix32 */
    NIXCACHE_KEY_KIND_UPSTREAM          /* name: store hash, 32 nix32 */
} nixcache_key_kind_e;


/* The length of <prefix><kind><name>. */
size_t nixcache_key_len(size_t prefix_len, nixcache_key_kind_e kind,
    size_t name_len);

/*
 * Writes <prefix><kind><name> at dst, which has room for
 * nixcache_key_len() bytes; returns the end of what it wrote.
 */
char *nixcache_key_build(char *dst, const char *prefix, size_t prefix_len,
    nixcache_key_kind_e kind, const char *name, size_t name_len);

/*
 * The name in a key of that kind under that prefix: 0 with *name and
 * *name_len inside key, or -1 when the key is not <prefix><kind>...
 */
int nixcache_key_name(const char *key, size_t key_len, const char *prefix,
    size_t prefix_len, nixcache_key_kind_e kind, const char **name,
    size_t *name_len);


#endif /* NIXCACHE_KEY_H */
