/*
 * The set of live chunk digests of a gc run: 32 bytes a slot, at most
 * half full, so 1M chunks take 64 MiB (96 MiB while it grows).  Digests
 * are SHA-256 outputs: their first bytes are a good hash already.
 */

#include <stdlib.h>
#include <string.h>

#include "gc.h"


#define NIXCACHE_GCSET_INITIAL      (1 << 16)


static size_t nixcache_gcset_slot(const nixcache_gcset_t *s,
    const unsigned char *digest);
static int nixcache_gcset_grow(nixcache_gcset_t *s);


static const unsigned char  nixcache_gcset_zero[NIXCACHE_SHA256_LEN];


int
nixcache_gcset_init(nixcache_gcset_t *s)
{
    s->cap = NIXCACHE_GCSET_INITIAL;
    s->count = 0;
    s->slots = calloc(s->cap, NIXCACHE_SHA256_LEN);

    return (s->slots != NULL) ? 0 : -1;
}


void
nixcache_gcset_free(nixcache_gcset_t *s)
{
    free(s->slots);
    s->slots = NULL;
}


/* the slot holding digest, or the empty slot where it would go */

static size_t
nixcache_gcset_slot(const nixcache_gcset_t *s, const unsigned char *digest)
{
    size_t          i;
    uint64_t        h;
    unsigned char  *p;

    memcpy(&h, digest, sizeof(uint64_t));

    for (i = (size_t) h & (s->cap - 1); ; i = (i + 1) & (s->cap - 1)) {
        p = s->slots + i * NIXCACHE_SHA256_LEN;

        if (memcmp(p, digest, NIXCACHE_SHA256_LEN) == 0
            || memcmp(p, nixcache_gcset_zero, NIXCACHE_SHA256_LEN) == 0)
        {
            return i;
        }
    }
}


int
nixcache_gcset_add(nixcache_gcset_t *s, const unsigned char *digest)
{
    size_t          i;
    unsigned char  *p;

    if (memcmp(digest, nixcache_gcset_zero, NIXCACHE_SHA256_LEN) == 0) {
        return 0;
    }

    if ((s->count + 1) * 2 > s->cap && nixcache_gcset_grow(s) != 0) {
        return -1;
    }

    i = nixcache_gcset_slot(s, digest);
    p = s->slots + i * NIXCACHE_SHA256_LEN;

    if (memcmp(p, nixcache_gcset_zero, NIXCACHE_SHA256_LEN) == 0) {
        memcpy(p, digest, NIXCACHE_SHA256_LEN);
        s->count++;
    }

    return 0;
}


int
nixcache_gcset_has(const nixcache_gcset_t *s, const unsigned char *digest)
{
    size_t  i;

    i = nixcache_gcset_slot(s, digest);

    return memcmp(s->slots + i * NIXCACHE_SHA256_LEN, nixcache_gcset_zero,
                  NIXCACHE_SHA256_LEN)
           != 0;
}


static int
nixcache_gcset_grow(nixcache_gcset_t *s)
{
    size_t             i;
    unsigned char     *p;
    nixcache_gcset_t   n;

    n.cap = s->cap * 2;
    n.count = 0;
    n.slots = calloc(n.cap, NIXCACHE_SHA256_LEN);

    if (n.slots == NULL) {
        return -1;
    }

    for (i = 0; i < s->cap; i++) {
        p = s->slots + i * NIXCACHE_SHA256_LEN;

        if (memcmp(p, nixcache_gcset_zero, NIXCACHE_SHA256_LEN) != 0) {
            memcpy(n.slots + nixcache_gcset_slot(&n, p) * NIXCACHE_SHA256_LEN,
                   p, NIXCACHE_SHA256_LEN);
            n.count++;
        }
    }

    free(s->slots);
    *s = n;

    return 0;
}
