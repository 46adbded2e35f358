/*
 * Content-defined chunking: normalized Gear hashing (FastCDC, normalization
 * level 2) over the uncompressed NAR.  A boundary depends only on the bytes
 * since the previous boundary, so the same bytes always give the same
 * chunks, and an edit disturbs only the chunks around it.
 *
 * Gear table: gear[i] = splitmix64 output number i + 1 seeded with
 * NIXCACHE_GEAR_SEED (docs/FORMAT.md); fingerprint fp = (fp << 1) + gear[b].
 * With avg = 2^k, the strict mask has the top k + 2 bits set and the loose
 * mask the top k - 2 bits; a cut follows byte i when (fp & mask) == 0.
 * The first min bytes of a chunk are not hashed; the strict mask applies up
 * to avg bytes, the loose one up to max bytes, and max is a forced cut.
 */

#ifndef NIXCACHE_CHUNKER_H
#define NIXCACHE_CHUNKER_H

#include <stddef.h>
#include <stdint.h>


#define NIXCACHE_GEAR_SEED  0x6e6978636163686bULL      /* "nixcachk" */


/* the gear table, gear[i] as above (constant, computed offline) */
extern const uint64_t  nixcache_gear[256];


typedef struct {
    size_t                     min;
    size_t                     avg;
    size_t                     max;
    uint64_t                   mask_strict;
    uint64_t                   mask_loose;
} nixcache_chunker_t;


/*
 * avg must be a power of two, 64 <= min < avg < max <= NIXCACHE_CHUNK_MAX_LIMIT.
 * Returns 0, or -1 with the parameters rejected.
 */
int nixcache_chunker_init(nixcache_chunker_t *ck, size_t min, size_t avg,
    size_t max);

/*
 * Length of the chunk that starts at p, given len bytes available.
 * Returns 0 when more input is needed to decide (len < max and eof == 0
 * and no cut point found yet).  With eof != 0 every byte is accounted for:
 * the result is min(len, the cut) and is never 0 unless len is 0.
 */
size_t nixcache_chunker_cut(const nixcache_chunker_t *ck,
    const unsigned char *p, size_t len, int eof);


#endif /* NIXCACHE_CHUNKER_H */
