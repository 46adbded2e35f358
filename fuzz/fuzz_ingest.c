/*
 * libFuzzer target: the streaming decompressors and the ingest pipeline
 * fed arbitrary bytes as a compressed NAR, as an upload or an import
 * would be.
 *
 * The first input byte picks the compression (none, xz, zstd, bzip2) and
 * how the rest is cut into feeds; the rest is the file.  The chunks go to
 * a sink that stores nothing.  Invariants: no crash, no leak, memory
 * bounded by the decoder limit; a failure is an error code with a
 * message; a success gives a manifest that passes nixcache_manifest_check
 * and whose NarSize is the decoded byte count.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nixcache_decompress.h"
#include "nixcache_ingest.h"
#include "nixcache_manifest.h"


/* what one input may decode to: a bomb stops here */
#define NIXCACHE_FUZZ_LIMIT   (1024 * 1024)


static int nixcache_fuzz_has(void *data, const unsigned char *digest);
static int nixcache_fuzz_put(void *data, const unsigned char *digest,
    const void *frame, size_t len);
static ssize_t nixcache_fuzz_read(void *data, const unsigned char *digest,
    void *buf, size_t cap);
static int nixcache_fuzz_sync(void *data);


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int
nixcache_fuzz_has(void *data, const unsigned char *digest)
{
    return 0;
}


static int
nixcache_fuzz_put(void *data, const unsigned char *digest,
    const void *frame, size_t len)
{
    return 1;
}


static ssize_t
nixcache_fuzz_read(void *data, const unsigned char *digest, void *buf,
    size_t cap)
{
    return 0;
}


static int
nixcache_fuzz_sync(void *data)
{
    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                      rc;
    size_t                   off, step, n;
    unsigned char           *in;
    nixcache_decomp_t       *d;
    nixcache_ingest_t        ing;
    nixcache_decomp_e        kind;
    nixcache_chunk_sink_t    sink;
    nixcache_ingest_conf_t   conf;

    if (size < 1) {
        return 0;
    }

    kind = (nixcache_decomp_e) (data[0] & 3);
    step = (size_t) 1 << ((data[0] >> 2) & 15);     /* 1 .. 32 KiB */
    data++;
    size--;

    sink.data = NULL;
    sink.has = nixcache_fuzz_has;
    sink.put = nixcache_fuzz_put;
    sink.read_stored = nixcache_fuzz_read;
    sink.sync = nixcache_fuzz_sync;

    /* small chunks, so short inputs still cross chunk boundaries */
    conf.chunk_min = 64;
    conf.chunk_avg = 256;
    conf.chunk_max = 1024;
    conf.level = 1;
    conf.sink = &sink;

    memset(&ing, 0, sizeof(ing));

    if (nixcache_ingest_init(&ing, &conf) != 0) {
        abort();
    }

    if (nixcache_ingest_begin(&ing, -1) != 0) {
        abort();
    }

    d = nixcache_decomp_create(kind, NIXCACHE_FUZZ_LIMIT,
                               nixcache_ingest_out, &ing);
    if (d == NULL) {
        nixcache_ingest_free(&ing);
        return 0;
    }

    /* each feed its own exact-size copy, so an over-read is caught */

    rc = 0;
    off = 0;

    do {
        n = size - off < step ? size - off : step;

        in = malloc(n ? n : 1);
        if (in == NULL) {
            abort();
        }
        memcpy(in, data + off, n);

        off += n;
        rc = nixcache_decomp_feed(d, in, n, off == size);
        free(in);

    } while (rc == 0 && off < size);

    if (rc != 0) {
        if (nixcache_decomp_error(d) == NIXCACHE_DECOMP_OK
            || nixcache_decomp_strerror(d) == NULL)
        {
            abort();
        }

    } else {
        if (nixcache_ingest_finish(&ing) != 0) {
            abort();
        }

        if (ing.nar.nar_size != nixcache_decomp_total(d)
            || nixcache_manifest_check(ing.nar.manifest,
                                       ing.nar.manifest_len) != 0)
        {
            abort();
        }
    }

    nixcache_decomp_destroy(d);
    nixcache_ingest_free(&ing);

    return 0;
}
