/*
 * The manifest codec: see nixcache_format.h for the layout.
 */

#ifndef NIXCACHE_MANIFEST_H
#define NIXCACHE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "nixcache_format.h"


typedef struct {
    uint32_t                   chunk_count;
    uint32_t                   flags;
    uint64_t                   nar_size;
    uint64_t                   file_size;
    unsigned char              nar_hash[NIXCACHE_SHA256_LEN];
    unsigned char              file_hash[NIXCACHE_SHA256_LEN];
} nixcache_manifest_header_t;


typedef struct {
    unsigned char              chunk[NIXCACHE_SHA256_LEN];
    uint32_t                   usize;
    uint32_t                   csize;
} nixcache_manifest_entry_t;


/* Writes NIXCACHE_MANIFEST_HEADER_LEN bytes. */
void nixcache_manifest_header_encode(unsigned char *p,
    const nixcache_manifest_header_t *h);

/*
 * Reads a header from the first len bytes of a manifest.  Returns 0, or -1
 * when len is short, the magic or version is wrong, or flags or the
 * reserved field are set.
 */
int nixcache_manifest_header_decode(nixcache_manifest_header_t *h,
    const unsigned char *p, size_t len);

/* Writes NIXCACHE_MANIFEST_ENTRY_LEN bytes. */
void nixcache_manifest_entry_encode(unsigned char *p,
    const nixcache_manifest_entry_t *e);

/* Reads NIXCACHE_MANIFEST_ENTRY_LEN bytes. */
void nixcache_manifest_entry_decode(nixcache_manifest_entry_t *e,
    const unsigned char *p);

/* Byte offset of entry i within the manifest. */
#define nixcache_manifest_entry_offset(i)                                    \
    (NIXCACHE_MANIFEST_HEADER_LEN + (uint64_t) (i) * NIXCACHE_MANIFEST_ENTRY_LEN)

/*
 * Checks a whole manifest of len bytes: header valid, length matches
 * chunk_count, sizes sum to nar_size and file_size, no entry of size 0.
 * Returns 0 or -1.
 */
int nixcache_manifest_check(const unsigned char *p, size_t len);


#endif /* NIXCACHE_MANIFEST_H */
