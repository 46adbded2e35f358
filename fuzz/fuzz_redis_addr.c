/*
 * libFuzzer target: Redis addresses, as nixcache_redis and --redis take
 * them (nixcache_redis_addr_parse).
 *
 * Invariants: a refusal carries an error text; an accepted address has a
 * NUL-terminated host of host_len bytes, not empty, within its limit, a
 * port from 0 (a socket) to 65535 and a database from -1 (none) up; and
 * the address written back in one canonical form ("redis://[h]:p/db",
 * "/path?db=N", "unix:relative?db=N") parses to the same.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nixcache_redis_addr.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
check_same(const nixcache_redis_addr_t *a, const nixcache_redis_addr_t *b)
{
    if (a->host_len != b->host_len
        || memcmp(a->host, b->host, a->host_len + 1) != 0
        || a->port != b->port
        || a->db != b->db)
    {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                     n;
    char                   *s, text[NIXCACHE_REDIS_HOST_MAX + 64];
    const char             *err;
    nixcache_redis_addr_t   a, b;

    s = malloc(size ? size : 1);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data, size);

    err = NULL;

    if (nixcache_redis_addr_parse(&a, s, size, &err) != 0) {
        if (err == NULL || err[0] == '\0') {
            abort();
        }

        free(s);
        return 0;
    }

    if (a.host_len == 0
        || a.host_len > NIXCACHE_REDIS_HOST_MAX
        || strlen(a.host) != a.host_len
        || a.port < 0 || a.port > 65535
        || (a.port == 0 && a.host_len > NIXCACHE_REDIS_SOCKET_MAX)
        || a.db < -1)
    {
        abort();
    }

    if (a.port == 0) {
        n = snprintf(text, sizeof(text), a.host[0] == '/' ? "%s" : "unix:%s",
                     a.host);
        if (a.db >= 0) {
            n += snprintf(text + n, sizeof(text) - n, "?db=%d", a.db);
        }

    } else {
        n = snprintf(text, sizeof(text),
                     strchr(a.host, ':') ? "redis://[%s]:%d" : "redis://%s:%d",
                     a.host, a.port);
        if (a.db >= 0) {
            n += snprintf(text + n, sizeof(text) - n, "/%d", a.db);
        }
    }

    if (n < 0 || (size_t) n >= sizeof(text)) {
        abort();
    }

    if (nixcache_redis_addr_parse(&b, text, (size_t) n, &err) != 0) {
        abort();
    }

    check_same(&a, &b);

    free(s);

    return 0;
}
