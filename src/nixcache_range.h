/*
 * The Range header of a NAR request: one byte range of a body of known
 * size, or nothing (the whole body), or unsatisfiable.  A pure function
 * over (pointer, length) with no NUL expected: the value comes from the
 * client.  The module applies If-Range and the HTTP version around it
 * and renders Content-Range (ngx_http_nixcache_nar.c); fuzzed by
 * fuzz/fuzz_range.c.
 */

#ifndef NIXCACHE_RANGE_H
#define NIXCACHE_RANGE_H

#include <stddef.h>
#include <stdint.h>


/* The largest position a range may name: nginx's off_t. */
#define NIXCACHE_RANGE_MAX      ((uint64_t) INT64_MAX)


typedef enum {
    NIXCACHE_RANGE_IGNORE = 0,      /* not one byte range: the whole
                                       body, 200 */
    NIXCACHE_RANGE_OK,              /* [*start, *end): 206 */
    NIXCACHE_RANGE_UNSATISFIABLE    /* 416 */
} nixcache_range_e;


/*
 * Parses "bytes=a-b", "bytes=a-" or "bytes=-n" against a body of size
 * bytes (at most NIXCACHE_RANGE_MAX).  "bytes" matches in any letter
 * case; spaces and tabs are allowed before it and around "=", "-" and
 * the numbers.
 *
 * NIXCACHE_RANGE_OK with 0 <= *start < *end <= size: b is clamped to the
 * body, a suffix longer than the body is all of it.
 * NIXCACHE_RANGE_UNSATISFIABLE: a >= size, a suffix of 0, a suffix of an
 * empty body, or a first position above NIXCACHE_RANGE_MAX.
 * NIXCACHE_RANGE_IGNORE for anything else: another unit, several ranges,
 * b < a, "bytes=-", a last position above NIXCACHE_RANGE_MAX, junk.
 * *start and *end are written only for NIXCACHE_RANGE_OK.
 */
nixcache_range_e nixcache_range_parse(const char *value, size_t len,
    uint64_t size, uint64_t *start, uint64_t *end);


#endif /* NIXCACHE_RANGE_H */
