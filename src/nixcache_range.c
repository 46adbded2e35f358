/*
 * The Range header of a NAR request (see nixcache_range.h).
 */

#include <strings.h>

#include "nixcache_range.h"


static size_t nixcache_range_space(const char *p, size_t i, size_t len);
static int nixcache_range_number(const char *p, size_t *i, size_t len,
    uint64_t *n, int *have);


nixcache_range_e
nixcache_range_parse(const char *value, size_t len, uint64_t size,
    uint64_t *start, uint64_t *end)
{
    int       suffix, have_a, have_b;
    size_t    i;
    uint64_t  a, b;

    i = nixcache_range_space(value, 0, len);

    if (len - i < sizeof("bytes") - 1
        || strncasecmp(value + i, "bytes", sizeof("bytes") - 1) != 0)
    {
        return NIXCACHE_RANGE_IGNORE;
    }

    i = nixcache_range_space(value, i + sizeof("bytes") - 1, len);

    if (i == len || value[i] != '=') {
        return NIXCACHE_RANGE_IGNORE;
    }

    i = nixcache_range_space(value, i + 1, len);

    a = 0;
    suffix = (i < len && value[i] == '-');

    if (!suffix) {
        if (nixcache_range_number(value, &i, len, &a, &have_a) != 0) {
            /* a first position no body can reach */
            return NIXCACHE_RANGE_UNSATISFIABLE;
        }

        if (!have_a) {
            return NIXCACHE_RANGE_IGNORE;
        }

        i = nixcache_range_space(value, i, len);

        if (i == len || value[i] != '-') {
            return NIXCACHE_RANGE_IGNORE;
        }
    }

    i = nixcache_range_space(value, i + 1, len);

    if (nixcache_range_number(value, &i, len, &b, &have_b) != 0) {
        return NIXCACHE_RANGE_IGNORE;
    }

    i = nixcache_range_space(value, i, len);

    if (i != len) {
        /* several ranges, or junk: the whole body */
        return NIXCACHE_RANGE_IGNORE;
    }

    if (suffix) {
        if (!have_b) {
            return NIXCACHE_RANGE_IGNORE;
        }

        if (b == 0 || size == 0) {
            return NIXCACHE_RANGE_UNSATISFIABLE;
        }

        *start = size - (b < size ? b : size);
        *end = size;

        return NIXCACHE_RANGE_OK;
    }

    if (have_b && b < a) {
        return NIXCACHE_RANGE_IGNORE;
    }

    if (a >= size) {
        return NIXCACHE_RANGE_UNSATISFIABLE;
    }

    *start = a;
    *end = (have_b && b < size) ? b + 1 : size;

    return NIXCACHE_RANGE_OK;
}


/* The index of the first byte from i on that is not a space or a tab. */

static size_t
nixcache_range_space(const char *p, size_t i, size_t len)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t')) {
        i++;
    }

    return i;
}


/*
 * The decimal digits at *i, *i moved past them; *have says whether there
 * was one.  Returns -1 (with *i inside the digits) when the number
 * exceeds NIXCACHE_RANGE_MAX, 0 otherwise.
 */

static int
nixcache_range_number(const char *p, size_t *i, size_t len, uint64_t *n,
    int *have)
{
    unsigned  d;
    uint64_t  v;

    v = 0;
    *have = 0;

    while (*i < len && p[*i] >= '0' && p[*i] <= '9') {
        d = (unsigned) (p[*i] - '0');

        if (v > (NIXCACHE_RANGE_MAX - d) / 10) {
            return -1;
        }

        v = v * 10 + d;
        (*i)++;
        *have = 1;
    }

    *n = v;

    return 0;
}
