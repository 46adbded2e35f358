/*
 * A few TAP macros for the core's unit tests: each test binary prints
 * "ok N - name" / "not ok N - name" lines and a closing "1..N" plan, and
 * exits non-zero when any check failed.
 */

#ifndef NIXCACHE_UNIT_H
#define NIXCACHE_UNIT_H

#include <stdio.h>
#include <string.h>
#include <inttypes.h>


static int  unit_n;
static int  unit_failed;


#define ok(cond, ...)                                                        \
    do {                                                                     \
        int  unit_c_ = (cond) ? 1 : 0;                                       \
        printf("%sok %d - ", unit_c_ ? "" : "not ", ++unit_n);               \
        printf(__VA_ARGS__);                                                 \
        printf("\n");                                                        \
        if (!unit_c_) {                                                      \
            unit_failed++;                                                   \
            printf("#   failed at %s line %d: %s\n", __FILE__, __LINE__,     \
                   #cond);                                                   \
        }                                                                    \
    } while (0)

#define is_u64(got, want, ...)                                               \
    do {                                                                     \
        uint64_t  unit_g_ = (uint64_t) (got), unit_w_ = (uint64_t) (want);   \
        ok(unit_g_ == unit_w_, __VA_ARGS__);                                 \
        if (unit_g_ != unit_w_) {                                            \
            printf("#   got %" PRIu64 ", want %" PRIu64 "\n",                \
                   unit_g_, unit_w_);                                        \
        }                                                                    \
    } while (0)

#define is_mem(got, want, n, ...)                                            \
    ok(memcmp((got), (want), (n)) == 0, __VA_ARGS__)

#define is_str(got, glen, want, ...)                                         \
    do {                                                                     \
        size_t  unit_l_ = strlen(want);                                      \
        int     unit_e_ = (size_t) (glen) == unit_l_                         \
                          && memcmp((got), (want), unit_l_) == 0;            \
        ok(unit_e_, __VA_ARGS__);                                            \
        if (!unit_e_) {                                                      \
            printf("#   got  '%.*s'\n#   want '%s'\n", (int) (glen),         \
                   (const char *) (got), (want));                            \
        }                                                                    \
    } while (0)

#define done_testing()                                                       \
    (printf("1..%d\n", unit_n), unit_failed ? 1 : 0)


#endif /* NIXCACHE_UNIT_H */
