/*
 * "Is this frame chunk X": the one check every reader of a stored chunk
 * makes (the module's .nar route, the S3 sink, the ingest pipeline's
 * look-up of a stored chunk, verify).  A chunk is stored as exactly one
 * zstd frame with its content size in the header (nixcache_format.h);
 * its ID is the SHA-256 of that content.
 */

#ifndef NIXCACHE_FRAME_H
#define NIXCACHE_FRAME_H

#include <stddef.h>
#include <stdint.h>


/* usize for a frame whose content size is not known beforehand */
#define NIXCACHE_FRAME_ANY_SIZE     UINT64_MAX


typedef enum {
    NIXCACHE_FRAME_OK = 0,
    NIXCACHE_FRAME_NOT_ONE,         /* not exactly one zstd frame of len */
    NIXCACHE_FRAME_SIZE,            /* no content size, another one, or
                                       over NIXCACHE_CHUNK_MAX_LIMIT */
    NIXCACHE_FRAME_CORRUPT,         /* does not decompress to it */
    NIXCACHE_FRAME_MISMATCH,        /* decompresses to other bytes */
    NIXCACHE_FRAME_NOMEM
} nixcache_frame_e;


/*
 * The frame's shape only, as far as its header tells without decoding:
 * exactly one frame of len bytes whose declared content size is usize
 * (or any up to the limit: NIXCACHE_FRAME_ANY_SIZE); *content_size (may
 * be NULL) gets it.
 */
nixcache_frame_e nixcache_frame_shape(const void *frame, size_t len,
    uint64_t usize, uint64_t *content_size);

/*
 * The whole check: the shape, then the content decoded into out (room
 * for out_cap bytes, at least the content size) and its SHA-256 compared
 * with digest.  dctx is a ZSTD_DCtx to reuse, or NULL; *content_size (may
 * be NULL) gets the content's size when the shape is right.
 */
nixcache_frame_e nixcache_frame_check(void *dctx, const void *frame,
    size_t len, uint64_t usize, const unsigned char *digest, void *out,
    size_t out_cap, uint64_t *content_size);

/* What went wrong, as the module's error log says it ("is not ..."). */
const char *nixcache_frame_strerror(nixcache_frame_e rc);


#endif /* NIXCACHE_FRAME_H */
