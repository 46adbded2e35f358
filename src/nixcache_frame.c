/*
 * The chunk frame check (nixcache_frame.h), on libzstd's frame API.
 */

#include <string.h>

#include <zstd.h>

#include "nixcache_format.h"
#include "nixcache_frame.h"
#include "nixcache_hash.h"


nixcache_frame_e
nixcache_frame_shape(const void *frame, size_t len, uint64_t usize,
    uint64_t *content_size)
{
    size_t              n;
    unsigned long long  content;

    n = ZSTD_findFrameCompressedSize(frame, len);

    if (ZSTD_isError(n) || n != len) {
        return NIXCACHE_FRAME_NOT_ONE;
    }

    content = ZSTD_getFrameContentSize(frame, len);

    if (content == ZSTD_CONTENTSIZE_UNKNOWN
        || content == ZSTD_CONTENTSIZE_ERROR
        || content > NIXCACHE_CHUNK_MAX_LIMIT
        || (usize != NIXCACHE_FRAME_ANY_SIZE && content != usize))
    {
        return NIXCACHE_FRAME_SIZE;
    }

    if (content_size != NULL) {
        *content_size = content;
    }

    return NIXCACHE_FRAME_OK;
}


nixcache_frame_e
nixcache_frame_check(void *dctx, const void *frame, size_t len,
    uint64_t usize, const unsigned char *digest, void *out, size_t out_cap,
    uint64_t *content_size)
{
    size_t             n;
    uint64_t           content;
    ZSTD_DCtx         *own;
    nixcache_frame_e   rc;
    unsigned char      sha[NIXCACHE_SHA256_LEN];

    rc = nixcache_frame_shape(frame, len, usize, &content);
    if (rc != NIXCACHE_FRAME_OK) {
        return rc;
    }

    if (content_size != NULL) {
        *content_size = content;
    }

    if (content > out_cap) {
        return NIXCACHE_FRAME_NOMEM;
    }

    own = NULL;

    if (dctx == NULL) {
        own = ZSTD_createDCtx();
        if (own == NULL) {
            return NIXCACHE_FRAME_NOMEM;
        }

        dctx = own;
    }

    n = ZSTD_decompressDCtx(dctx, out, out_cap, frame, len);

    ZSTD_freeDCtx(own);

    if (ZSTD_isError(n) || n != content) {
        return NIXCACHE_FRAME_CORRUPT;
    }

    nixcache_sha256(sha, out, n);

    if (memcmp(sha, digest, NIXCACHE_SHA256_LEN) != 0) {
        return NIXCACHE_FRAME_MISMATCH;
    }

    return NIXCACHE_FRAME_OK;
}


const char *
nixcache_frame_strerror(nixcache_frame_e rc)
{
    switch (rc) {

    case NIXCACHE_FRAME_OK:
        return "is the chunk";

    case NIXCACHE_FRAME_NOT_ONE:
        return "is not one zstd frame";

    case NIXCACHE_FRAME_SIZE:
        return "has the wrong content size";

    case NIXCACHE_FRAME_CORRUPT:
        return "does not decompress";

    case NIXCACHE_FRAME_MISMATCH:
        return "does not match its ID";

    default:
        return "cannot be checked: out of memory";
    }
}
