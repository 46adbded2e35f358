/*
 * libFuzzer target: the manifest header decoder and nixcache_manifest_check
 * over arbitrary bytes (what Redis hands the module).
 *
 * Invariants: a header that decodes encodes back to the same 96 bytes;
 * every entry of a manifest that passes the check decodes and encodes
 * back to its bytes, none has size 0, and their sizes sum to the header's.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nixcache_manifest.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t                     i;
    uint64_t                     usum, csum;
    unsigned char               *p;
    unsigned char                buf[NIXCACHE_MANIFEST_HEADER_LEN];
    nixcache_manifest_entry_t    e;
    nixcache_manifest_header_t   h;

    p = malloc(size ? size : 1);
    if (p == NULL) {
        return 0;
    }
    memcpy(p, data, size);

    if (nixcache_manifest_header_decode(&h, p, size) == 0) {
        nixcache_manifest_header_encode(buf, &h);
        if (memcmp(buf, p, NIXCACHE_MANIFEST_HEADER_LEN) != 0) {
            abort();
        }
    }

    if (nixcache_manifest_check(p, size) == 0) {
        if (nixcache_manifest_header_decode(&h, p, size) != 0) {
            abort();
        }

        if (nixcache_manifest_entry_offset(h.chunk_count) != size) {
            abort();
        }

        usum = 0;
        csum = 0;

        for (i = 0; i < h.chunk_count; i++) {
            nixcache_manifest_entry_decode(&e,
                                p + nixcache_manifest_entry_offset(i));
            nixcache_manifest_entry_encode(buf, &e);

            if (memcmp(buf, p + nixcache_manifest_entry_offset(i),
                       NIXCACHE_MANIFEST_ENTRY_LEN) != 0
                || e.usize == 0 || e.csize == 0)
            {
                abort();
            }

            usum += e.usize;
            csum += e.csize;
        }

        if (usum != h.nar_size || csum != h.file_size) {
            abort();
        }
    }

    free(p);

    return 0;
}
