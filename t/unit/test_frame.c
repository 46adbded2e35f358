/*
 * nixcache_frame_shape() and nixcache_frame_check(): frames made by
 * libzstd itself, then cut, doubled, altered and mislabelled.
 */

#include <stdlib.h>

#include <zstd.h>

#include "unit.h"

#include "nixcache_frame.h"
#include "nixcache_hash.h"


#define PLAIN_LEN  5000


int
main(void)
{
    size_t           n, n2, i;
    uint64_t         got;
    ZSTD_CCtx       *cctx;
    ZSTD_DCtx       *dctx;
    ZSTD_inBuffer    in;
    ZSTD_outBuffer   out;
    unsigned char    plain[PLAIN_LEN], back[PLAIN_LEN], digest[32];
    unsigned char    other[32], frame[2 * PLAIN_LEN], two[4 * PLAIN_LEN];

    for (i = 0; i < PLAIN_LEN; i++) {
        plain[i] = (unsigned char) (i * 7 + i / 13);
    }

    nixcache_sha256(digest, plain, PLAIN_LEN);
    memcpy(other, digest, 32);
    other[0] ^= 1;

    n = ZSTD_compress(frame, sizeof(frame), plain, PLAIN_LEN, 3);
    ok(!ZSTD_isError(n), "libzstd makes a frame of %zu bytes", n);

    dctx = ZSTD_createDCtx();

    ok(nixcache_frame_shape(frame, n, PLAIN_LEN, &got) == NIXCACHE_FRAME_OK,
       "shape: one frame of the declared size");
    is_u64(got, PLAIN_LEN, "shape: its content size");
    ok(nixcache_frame_shape(frame, n, NIXCACHE_FRAME_ANY_SIZE, &got)
       == NIXCACHE_FRAME_OK && got == PLAIN_LEN, "shape: any size");
    ok(nixcache_frame_shape(frame, n, PLAIN_LEN + 1, NULL)
       == NIXCACHE_FRAME_SIZE, "shape: another declared size");
    ok(nixcache_frame_shape(frame, n - 1, PLAIN_LEN, NULL)
       == NIXCACHE_FRAME_NOT_ONE, "shape: a frame cut short");
    ok(nixcache_frame_shape(frame, 0, PLAIN_LEN, NULL)
       == NIXCACHE_FRAME_NOT_ONE, "shape: nothing");

    memcpy(two, frame, n);
    memcpy(two + n, frame, n);
    ok(nixcache_frame_shape(two, 2 * n, PLAIN_LEN, NULL)
       == NIXCACHE_FRAME_NOT_ONE, "shape: two frames are not one");

    ok(nixcache_frame_check(dctx, frame, n, PLAIN_LEN, digest, back,
                            sizeof(back), &got)
       == NIXCACHE_FRAME_OK, "check: the chunk");
    is_mem(back, plain, PLAIN_LEN, "check: its content decoded");
    ok(nixcache_frame_check(NULL, frame, n, NIXCACHE_FRAME_ANY_SIZE, digest,
                            back, sizeof(back), NULL)
       == NIXCACHE_FRAME_OK, "check: without a context, any size");
    ok(nixcache_frame_check(dctx, frame, n, PLAIN_LEN, other, back,
                            sizeof(back), NULL)
       == NIXCACHE_FRAME_MISMATCH, "check: another chunk's ID");
    ok(nixcache_frame_check(dctx, frame, n, PLAIN_LEN, digest, back,
                            PLAIN_LEN - 1, NULL)
       == NIXCACHE_FRAME_NOMEM, "check: no room for the content");

    /* a byte of the compressed data flipped: corrupt or other content */

    frame[n / 2] ^= 0x55;
    i = nixcache_frame_check(dctx, frame, n, PLAIN_LEN, digest, back,
                             sizeof(back), NULL);
    ok(i == NIXCACHE_FRAME_CORRUPT || i == NIXCACHE_FRAME_MISMATCH
       || i == NIXCACHE_FRAME_NOT_ONE,
       "check: a flipped byte is refused (%s)",
       nixcache_frame_strerror((nixcache_frame_e) i));
    frame[n / 2] ^= 0x55;

    /* a streamed frame without a content size in its header */

    cctx = ZSTD_createCCtx();
    in.src = plain;
    in.size = PLAIN_LEN;
    in.pos = 0;
    out.dst = frame;
    out.size = sizeof(frame);
    out.pos = 0;
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
    n2 = ZSTD_compressStream2(cctx, &out, &in, ZSTD_e_end);
    ok(n2 == 0, "libzstd streams a frame without its content size");
    ok(nixcache_frame_shape(frame, out.pos, NIXCACHE_FRAME_ANY_SIZE, NULL)
       == NIXCACHE_FRAME_SIZE, "shape: no declared content size");
    ZSTD_freeCCtx(cctx);

    is_str(nixcache_frame_strerror(NIXCACHE_FRAME_MISMATCH),
           strlen(nixcache_frame_strerror(NIXCACHE_FRAME_MISMATCH)),
           "does not match its ID", "the module's words for a mismatch");

    ZSTD_freeDCtx(dctx);

    return done_testing();
}
