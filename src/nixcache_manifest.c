/*
 * The manifest codec.  Integers are read and written byte by byte in
 * little-endian order, so the layout does not depend on the host.
 */

#include <string.h>

#include "nixcache_manifest.h"


static void nixcache_put_u16(unsigned char *p, uint16_t v);
static void nixcache_put_u32(unsigned char *p, uint32_t v);
static void nixcache_put_u64(unsigned char *p, uint64_t v);
static uint16_t nixcache_get_u16(const unsigned char *p);
static uint32_t nixcache_get_u32(const unsigned char *p);
static uint64_t nixcache_get_u64(const unsigned char *p);


void
nixcache_manifest_header_encode(unsigned char *p,
    const nixcache_manifest_header_t *h)
{
    memcpy(p, NIXCACHE_MANIFEST_MAGIC, 4);
    nixcache_put_u16(p + 4, NIXCACHE_MANIFEST_VERSION);
    nixcache_put_u16(p + 6, (uint16_t) h->flags);
    nixcache_put_u32(p + 8, h->chunk_count);
    nixcache_put_u32(p + 12, 0);
    nixcache_put_u64(p + 16, h->nar_size);
    nixcache_put_u64(p + 24, h->file_size);
    memcpy(p + 32, h->nar_hash, NIXCACHE_SHA256_LEN);
    memcpy(p + 64, h->file_hash, NIXCACHE_SHA256_LEN);
}


int
nixcache_manifest_header_decode(nixcache_manifest_header_t *h,
    const unsigned char *p, size_t len)
{
    if (len < NIXCACHE_MANIFEST_HEADER_LEN
        || memcmp(p, NIXCACHE_MANIFEST_MAGIC, 4) != 0
        || nixcache_get_u16(p + 4) != NIXCACHE_MANIFEST_VERSION
        || nixcache_get_u16(p + 6) != 0
        || nixcache_get_u32(p + 12) != 0)
    {
        return -1;
    }

    h->flags = 0;
    h->chunk_count = nixcache_get_u32(p + 8);
    h->nar_size = nixcache_get_u64(p + 16);
    h->file_size = nixcache_get_u64(p + 24);
    memcpy(h->nar_hash, p + 32, NIXCACHE_SHA256_LEN);
    memcpy(h->file_hash, p + 64, NIXCACHE_SHA256_LEN);

    return 0;
}


void
nixcache_manifest_entry_encode(unsigned char *p,
    const nixcache_manifest_entry_t *e)
{
    memcpy(p, e->chunk, NIXCACHE_SHA256_LEN);
    nixcache_put_u32(p + 32, e->usize);
    nixcache_put_u32(p + 36, e->csize);
}


void
nixcache_manifest_entry_decode(nixcache_manifest_entry_t *e,
    const unsigned char *p)
{
    memcpy(e->chunk, p, NIXCACHE_SHA256_LEN);
    e->usize = nixcache_get_u32(p + 32);
    e->csize = nixcache_get_u32(p + 36);
}


int
nixcache_manifest_check(const unsigned char *p, size_t len)
{
    uint32_t                    i;
    uint64_t                    usum, csum;
    nixcache_manifest_entry_t   e;
    nixcache_manifest_header_t  h;

    if (nixcache_manifest_header_decode(&h, p, len) != 0) {
        return -1;
    }

    if ((uint64_t) len != nixcache_manifest_entry_offset(h.chunk_count)) {
        return -1;
    }

    usum = 0;
    csum = 0;

    for (i = 0; i < h.chunk_count; i++) {
        nixcache_manifest_entry_decode(&e,
                                       p + nixcache_manifest_entry_offset(i));

        if (e.usize == 0 || e.csize == 0) {
            return -1;
        }

        usum += e.usize;
        csum += e.csize;
    }

    if (usum != h.nar_size || csum != h.file_size) {
        return -1;
    }

    return 0;
}


static void
nixcache_put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
}


static void
nixcache_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
    p[2] = (unsigned char) (v >> 16);
    p[3] = (unsigned char) (v >> 24);
}


static void
nixcache_put_u64(unsigned char *p, uint64_t v)
{
    nixcache_put_u32(p, (uint32_t) v);
    nixcache_put_u32(p + 4, (uint32_t) (v >> 32));
}


static uint16_t
nixcache_get_u16(const unsigned char *p)
{
    return (uint16_t) (p[0] | p[1] << 8);
}


static uint32_t
nixcache_get_u32(const unsigned char *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8
           | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}


static uint64_t
nixcache_get_u64(const unsigned char *p)
{
    return (uint64_t) nixcache_get_u32(p)
           | (uint64_t) nixcache_get_u32(p + 4) << 32;
}
