/*
 * libFuzzer target: the Range header of a NAR request
 * (nixcache_range_parse).  The first 8 bytes are the body's size (big
 * endian, at most NIXCACHE_RANGE_MAX; with the top bit set, only the
 * low 16 bits count, so small bodies come up often); the rest is the
 * header value.
 *
 * Invariants: a range lies in the body and is not empty
 * (start < end <= size), and start and end are written only then; the
 * range rendered back as "bytes=start-last" parses to itself; whether
 * a value is ignored (200) does not depend on the body's size, only
 * 206 or 416 do; an empty body never gives a range.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nixcache_range.h"


#define FUZZ_RANGE_UNSET    0xa5a5a5a5a5a5a5a5ULL


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                n;
    char              *s, again[64];
    size_t             i;
    uint64_t           body, start, end, start2, end2;
    nixcache_range_e   rc;

    if (size < 8) {
        return 0;
    }

    body = 0;

    for (i = 0; i < 8; i++) {
        body = body << 8 | data[i];
    }

    body = (data[0] & 0x80) ? (body & 0xffff) : (body & NIXCACHE_RANGE_MAX);

    data += 8;
    size -= 8;

    s = malloc(size ? size : 1);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data, size);

    start = end = FUZZ_RANGE_UNSET;

    rc = nixcache_range_parse(s, size, body, &start, &end);

    switch (rc) {

    case NIXCACHE_RANGE_OK:
        if (!(start < end && end <= body)) {
            abort();
        }

        n = snprintf(again, sizeof(again), "bytes=%llu-%llu",
                     (unsigned long long) start,
                     (unsigned long long) (end - 1));

        if (n < 0 || (size_t) n >= sizeof(again)
            || nixcache_range_parse(again, (size_t) n, body, &start2, &end2)
               != NIXCACHE_RANGE_OK
            || start2 != start || end2 != end)
        {
            abort();
        }

        break;

    case NIXCACHE_RANGE_UNSATISFIABLE:
    case NIXCACHE_RANGE_IGNORE:
        if (start != FUZZ_RANGE_UNSET || end != FUZZ_RANGE_UNSET) {
            abort();
        }

        break;

    default:
        abort();
    }

    /* whether a header is ignored depends on its bytes, not on the body */

    if ((nixcache_range_parse(s, size, 0, &start2, &end2)
         == NIXCACHE_RANGE_IGNORE)
        != (rc == NIXCACHE_RANGE_IGNORE)
        || (nixcache_range_parse(s, size, NIXCACHE_RANGE_MAX, &start2, &end2)
            == NIXCACHE_RANGE_IGNORE)
           != (rc == NIXCACHE_RANGE_IGNORE))
    {
        abort();
    }

    free(s);

    return 0;
}
