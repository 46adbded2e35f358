/*
 * The Range header: nixcache_range_parse(), table-driven.  The module's
 * use of it (If-Range, Content-Range, 206/416 through nginx) is tested
 * by t/035-range.t.
 */

#include "unit.h"

#include "nixcache_range.h"


#define MAX   "9223372036854775807"         /* NIXCACHE_RANGE_MAX */
#define MAX1  "9223372036854775808"


typedef struct {
    const char        *value;
    uint64_t           size;
    nixcache_range_e   rc;
    uint64_t           start;       /* for NIXCACHE_RANGE_OK */
    uint64_t           end;
} range_t;


#define OK    NIXCACHE_RANGE_OK
#define IGN   NIXCACHE_RANGE_IGNORE
#define UNS   NIXCACHE_RANGE_UNSATISFIABLE


static const range_t  ranges[] = {
    /* a-b, clamped to the body */
    { "bytes=0-0", 20480, OK, 0, 1 },
    { "bytes=20479-20479", 20480, OK, 20479, 20480 },
    { "bytes=4000-4200", 20480, OK, 4000, 4201 },
    { "bytes=0-999999", 20480, OK, 0, 20480 },
    { "bytes=0-20479", 20480, OK, 0, 20480 },
    { "bytes=0-20480", 20480, OK, 0, 20480 },
    { "bytes=5-5", 6, OK, 5, 6 },
    { "bytes=0-0", 1, OK, 0, 1 },
    { "bytes=007-009", 20, OK, 7, 10 },

    /* a-: to the end */
    { "bytes=10000-", 20480, OK, 10000, 20480 },
    { "bytes=0-", 20480, OK, 0, 20480 },
    { "bytes=20479-", 20480, OK, 20479, 20480 },

    /* -n: the last n bytes */
    { "bytes=-100", 20480, OK, 20380, 20480 },
    { "bytes=-999999", 20480, OK, 0, 20480 },
    { "bytes=-20480", 20480, OK, 0, 20480 },
    { "bytes=-1", 20480, OK, 20479, 20480 },
    { "bytes=-1", 1, OK, 0, 1 },
    { "bytes=-" MAX, 20480, OK, 0, 20480 },

    /* unsatisfiable */
    { "bytes=20480-", 20480, UNS, 0, 0 },
    { "bytes=20480-20481", 20480, UNS, 0, 0 },
    { "bytes=99999-", 20480, UNS, 0, 0 },
    { "bytes=-0", 20480, UNS, 0, 0 },
    { "bytes=-000", 20480, UNS, 0, 0 },
    { "bytes=-5", 0, UNS, 0, 0 },
    { "bytes=0-", 0, UNS, 0, 0 },
    { "bytes=0-0", 0, UNS, 0, 0 },
    { "bytes=" MAX "-", 20480, UNS, 0, 0 },
    { "bytes=" MAX "-" MAX, 20480, UNS, 0, 0 },

    /* a first position no body reaches: 416 whatever follows */
    { "bytes=" MAX1 "-", 20480, UNS, 0, 0 },
    { "bytes=" MAX1 "-1", 20480, UNS, 0, 0 },
    { "bytes=99999999999999999999999-x", 20480, UNS, 0, 0 },
    { "bytes=" MAX1 ",junk", 20480, UNS, 0, 0 },

    /* a last position too large: ignored */
    { "bytes=0-" MAX1, 20480, IGN, 0, 0 },
    { "bytes=-" MAX1, 20480, IGN, 0, 0 },
    { "bytes=-99999999999999999999999", 20480, IGN, 0, 0 },
    { "bytes=0-" MAX, 20480, OK, 0, 20480 },

    /* spaces and tabs around the parts, any letter case */
    { "bytes = 8 - 15 ", 20480, OK, 8, 16 },
    { "  bytes=8-15", 20480, OK, 8, 16 },
    { "\tbytes\t=\t8\t-\t15\t", 20480, OK, 8, 16 },
    { "bytes=- 5", 20, OK, 15, 20 },
    { "bytes= -5 ", 20, OK, 15, 20 },
    { "bytes=5 -", 20, OK, 5, 20 },
    { "BYTES=1-2", 20, OK, 1, 3 },
    { "Bytes=1-2", 20, OK, 1, 3 },
    { "bytes=1 2-3", 20, IGN, 0, 0 },
    { "bytes=1-2 3", 20, IGN, 0, 0 },
    { "bytes=1-2\r", 20, IGN, 0, 0 },
    { "bytes=1-2\n", 20, IGN, 0, 0 },
    { "\rbytes=1-2", 20, IGN, 0, 0 },

    /* several ranges: the whole body */
    { "bytes=0-1,5-6", 20480, IGN, 0, 0 },
    { "bytes=0-1, 5-6", 20480, IGN, 0, 0 },
    { "bytes=0-1,", 20480, IGN, 0, 0 },
    { "bytes=,0-1", 20480, IGN, 0, 0 },
    { "bytes=-5,-6", 20480, IGN, 0, 0 },

    /* end before start: the whole body */
    { "bytes=50-10", 20480, IGN, 0, 0 },
    { "bytes=1-0", 20480, IGN, 0, 0 },
    { "bytes=99999-10", 20480, IGN, 0, 0 },

    /* other units, other shapes, junk */
    { "items=0-10", 20480, IGN, 0, 0 },
    { "byte=0-10", 20480, IGN, 0, 0 },
    { "bytesx=0-10", 20480, IGN, 0, 0 },
    { "bytes:0-10", 20480, IGN, 0, 0 },
    { "bytes0-10", 20480, IGN, 0, 0 },
    { "bytes=abc", 20480, IGN, 0, 0 },
    { "bytes=", 20480, IGN, 0, 0 },
    { "bytes= ", 20480, IGN, 0, 0 },
    { "bytes=-", 20480, IGN, 0, 0 },
    { "bytes=--5", 20480, IGN, 0, 0 },
    { "bytes=5", 20480, IGN, 0, 0 },
    { "bytes=5--6", 20480, IGN, 0, 0 },
    { "bytes=+5-6", 20480, IGN, 0, 0 },
    { "bytes=5-+6", 20480, IGN, 0, 0 },
    { "bytes=0x10-20", 20480, IGN, 0, 0 },
    { "bytes=1-2-3", 20480, IGN, 0, 0 },
    { "bytes==1-2", 20480, IGN, 0, 0 },
    { "bytes", 20480, IGN, 0, 0 },
    { "byte", 20480, IGN, 0, 0 },
    { "", 20480, IGN, 0, 0 },
    { "   ", 20480, IGN, 0, 0 },
    { "=0-1", 20480, IGN, 0, 0 },
};


/* The value with control characters as \xNN: one TAP line each. */

static const char *
shown(const char *value)
{
    size_t       n;
    static char  buf[256];

    for (n = 0; *value != '\0' && n < sizeof(buf) - 5; value++) {
        if ((unsigned char) *value < 0x20) {
            n += snprintf(buf + n, 5, "\\x%02x", (unsigned char) *value);

        } else {
            buf[n++] = *value;
        }
    }

    buf[n] = '\0';

    return buf;
}


static const char *
rc_name(nixcache_range_e rc)
{
    switch (rc) {
    case NIXCACHE_RANGE_OK:
        return "206";
    case NIXCACHE_RANGE_UNSATISFIABLE:
        return "416";
    default:
        return "200";
    }
}


int
main(void)
{
    size_t             i;
    uint64_t           start, end;
    nixcache_range_e   rc;

    for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        const range_t  *t = &ranges[i];

        start = end = 12345;

        rc = nixcache_range_parse(t->value, strlen(t->value), t->size,
                                  &start, &end);

        ok(rc == t->rc, "\"%s\" of %" PRIu64 ": %s", shown(t->value),
           t->size, rc_name(t->rc));

        if (rc != t->rc) {
            printf("#   got %s\n", rc_name(rc));
        }

        if (t->rc == NIXCACHE_RANGE_OK) {
            is_u64(start, t->start, "\"%s\": start", shown(t->value));
            is_u64(end, t->end, "\"%s\": end", shown(t->value));

        } else {
            ok(start == 12345 && end == 12345,
               "\"%s\": start, end untouched", shown(t->value));
        }
    }

    /* lengths, not NULs: a NUL is a byte like any other */

    rc = nixcache_range_parse("bytes=0-1\0", sizeof("bytes=0-1"), 20,
                              &start, &end);
    ok(rc == NIXCACHE_RANGE_IGNORE, "a NUL after the range: ignored");

    rc = nixcache_range_parse("bytes=0-19", sizeof("bytes=0-1") - 1, 20,
                              &start, &end);
    ok(rc == NIXCACHE_RANGE_OK && start == 0 && end == 2,
       "the value's length, not its NUL, ends it");

    rc = nixcache_range_parse("bytes=0-1", 0, 20, &start, &end);
    ok(rc == NIXCACHE_RANGE_IGNORE, "an empty value: ignored");

    /* the largest body, positions at its end */

    rc = nixcache_range_parse("bytes=" MAX "-", sizeof("bytes=" MAX "-") - 1,
                              NIXCACHE_RANGE_MAX, &start, &end);
    ok(rc == NIXCACHE_RANGE_UNSATISFIABLE, "a = size = MAX: 416");

    rc = nixcache_range_parse("bytes=9223372036854775806-" MAX,
                              sizeof("bytes=9223372036854775806-" MAX) - 1,
                              NIXCACHE_RANGE_MAX, &start, &end);
    ok(rc == NIXCACHE_RANGE_OK && start == NIXCACHE_RANGE_MAX - 1
       && end == NIXCACHE_RANGE_MAX, "the last byte of the largest body");

    rc = nixcache_range_parse("bytes=-1", sizeof("bytes=-1") - 1,
                              NIXCACHE_RANGE_MAX, &start, &end);
    ok(rc == NIXCACHE_RANGE_OK && start == NIXCACHE_RANGE_MAX - 1
       && end == NIXCACHE_RANGE_MAX, "a suffix of the largest body");

    return done_testing();
}
