/*
 * Redis addresses (see nixcache_redis_addr.h).
 */

#include <string.h>
#include <sys/un.h>

#include "nixcache_redis_addr.h"


#define nixcache_redis_addr_lit(s)      (sizeof(s) - 1)

#define NIXCACHE_REDIS_ADDR_BAD_DB                                           \
    "invalid Redis database (0 to 2147483647)"


_Static_assert(sizeof(((struct sockaddr_un *) 0)->sun_path)
               == NIXCACHE_REDIS_SOCKET_MAX + 1,
               "NIXCACHE_REDIS_SOCKET_MAX is sun_path less its NUL");


static int nixcache_redis_addr_prefix(const char *s, size_t len,
    const char *prefix, size_t prefix_len);
static int nixcache_redis_addr_socket(nixcache_redis_addr_t *addr,
    const char *p, size_t len, const char **err);
static int nixcache_redis_addr_host(nixcache_redis_addr_t *addr,
    const char *p, size_t len, const char **err);
static int nixcache_redis_addr_host_char(int c, int v6);
static int nixcache_redis_addr_number(const char *p, size_t len,
    long long max, long long *n);


int
nixcache_redis_addr_parse(nixcache_redis_addr_t *addr, const char *s,
    size_t len, const char **err)
{
    long long    n;
    const char  *p, *end, *slash;

    addr->host[0] = '\0';
    addr->host_len = 0;
    addr->port = NIXCACHE_REDIS_PORT_DEFAULT;
    addr->db = -1;

    end = s + len;

    if (len == 0) {
        *err = "empty Redis address";
        return -1;
    }

    if (memchr(s, '\0', len) != NULL) {
        *err = "NUL byte in Redis address";
        return -1;
    }

    if (nixcache_redis_addr_prefix(s, len, "unix://",
                                   nixcache_redis_addr_lit("unix://")))
    {
        p = s + nixcache_redis_addr_lit("unix://");

        if (p == end || *p != '/') {
            *err = "unix:// takes an absolute path, as in "
                   "unix:///run/redis.sock";
            return -1;
        }

        return nixcache_redis_addr_socket(addr, p, end - p, err);
    }

    if (nixcache_redis_addr_prefix(s, len, "unix:",
                                   nixcache_redis_addr_lit("unix:")))
    {
        p = s + nixcache_redis_addr_lit("unix:");
        return nixcache_redis_addr_socket(addr, p, end - p, err);
    }

    if (s[0] == '/') {
        return nixcache_redis_addr_socket(addr, s, len, err);
    }

    if (nixcache_redis_addr_prefix(s, len, "redis://",
                                   nixcache_redis_addr_lit("redis://")))
    {
        p = s + nixcache_redis_addr_lit("redis://");

        if (memchr(p, '@', end - p) != NULL) {
            *err = "user names and passwords in a Redis address are not "
                   "supported (give them in a file: nixcache_redis_auth, "
                   "nixcache --redis-auth)";
            return -1;
        }

        if (memchr(p, '?', end - p) != NULL) {
            *err = "a query in a redis:// address is not supported "
                   "(the database is its path: redis://host:6379/1)";
            return -1;
        }

        slash = memchr(p, '/', end - p);

        if (nixcache_redis_addr_host(addr, p,
                                     (slash != NULL ? slash : end) - p, err)
            != 0)
        {
            return -1;
        }

        /* "redis://host/" names no database, as "redis://host" */

        if (slash != NULL && slash + 1 < end) {
            if (nixcache_redis_addr_number(slash + 1, end - (slash + 1),
                                           NIXCACHE_REDIS_DB_MAX, &n)
                != 0)
            {
                *err = NIXCACHE_REDIS_ADDR_BAD_DB;
                return -1;
            }

            addr->db = (int) n;
        }

        return 0;
    }

    if (nixcache_redis_addr_prefix(s, len, "rediss://",
                                   nixcache_redis_addr_lit("rediss://")))
    {
        *err = "TLS (rediss://) is not supported";
        return -1;
    }

    for (p = s; p + 3 <= end; p++) {
        if (memcmp(p, "://", 3) == 0) {
            *err = "unknown Redis address scheme (redis:// or unix: only)";
            return -1;
        }
    }

    if (memchr(s, '/', len) != NULL) {
        *err = "a database number needs the redis:// form, as in "
               "redis://host:6379/1";
        return -1;
    }

    return nixcache_redis_addr_host(addr, s, len, err);
}


static int
nixcache_redis_addr_prefix(const char *s, size_t len, const char *prefix,
    size_t prefix_len)
{
    return len >= prefix_len && memcmp(s, prefix, prefix_len) == 0;
}


/* A socket path, then "?db=N" or nothing. */

static int
nixcache_redis_addr_socket(nixcache_redis_addr_t *addr, const char *p,
    size_t len, const char **err)
{
    size_t       plen;
    long long    n;
    const char  *q, *end;

    end = p + len;
    q = memchr(p, '?', len);
    plen = (q != NULL) ? (size_t) (q - p) : len;

    if (q != NULL) {
        if ((size_t) (end - q) < nixcache_redis_addr_lit("?db=")
            || memcmp(q, "?db=", nixcache_redis_addr_lit("?db=")) != 0)
        {
            *err = "a Redis socket address takes no query but ?db=N";
            return -1;
        }

        q += nixcache_redis_addr_lit("?db=");

        if (nixcache_redis_addr_number(q, end - q, NIXCACHE_REDIS_DB_MAX, &n)
            != 0)
        {
            *err = NIXCACHE_REDIS_ADDR_BAD_DB;
            return -1;
        }

        addr->db = (int) n;
    }

    if (plen == 0) {
        *err = "empty Redis socket path";
        return -1;
    }

    if (plen > NIXCACHE_REDIS_SOCKET_MAX) {
        *err = "Redis socket path too long (107 bytes at most)";
        return -1;
    }

    memcpy(addr->host, p, plen);
    addr->host[plen] = '\0';
    addr->host_len = plen;
    addr->port = 0;

    return 0;
}


/* "host", "host:port", "[v6]", "[v6]:port" */

static int
nixcache_redis_addr_host(nixcache_redis_addr_t *addr, const char *p,
    size_t len, const char **err)
{
    int          v6;
    size_t       hlen, i;
    long long    n;
    const char  *end, *h, *he, *port, *colon;

    end = p + len;
    v6 = (len > 0 && p[0] == '[');

    if (v6) {
        he = memchr(p, ']', len);
        if (he == NULL) {
            *err = "IPv6 address without its closing \"]\"";
            return -1;
        }

        h = p + 1;
        port = NULL;

        if (he + 1 < end) {
            if (he[1] != ':') {
                *err = "\":port\" or nothing may follow the IPv6 address";
                return -1;
            }

            port = he + 2;
        }

    } else {
        colon = memchr(p, ':', len);

        if (colon != NULL && memchr(colon + 1, ':', end - (colon + 1)) != NULL)
        {
            *err = "an IPv6 address needs brackets, as in [::1]:6379";
            return -1;
        }

        h = p;
        he = (colon != NULL) ? colon : end;
        port = (colon != NULL) ? colon + 1 : NULL;
    }

    hlen = (size_t) (he - h);

    if (hlen == 0) {
        *err = "empty Redis host";
        return -1;
    }

    if (hlen > NIXCACHE_REDIS_HOST_MAX) {
        *err = "Redis host name too long (255 bytes at most)";
        return -1;
    }

    if (v6 && memchr(h, ':', hlen) == NULL) {
        *err = "brackets are for IPv6 addresses only";
        return -1;
    }

    for (i = 0; i < hlen; i++) {
        if (!nixcache_redis_addr_host_char((unsigned char) h[i], v6)) {
            *err = "invalid character in Redis host";
            return -1;
        }

        if (v6 && h[i] == '%') {

            /* a zone index: an interface name or number */

            v6 = 0;
        }
    }

    if (port != NULL) {
        if (nixcache_redis_addr_number(port, end - port, 65535, &n) != 0
            || n == 0)
        {
            *err = "invalid Redis port (1 to 65535)";
            return -1;
        }

        addr->port = (int) n;
    }

    memcpy(addr->host, h, hlen);
    addr->host[hlen] = '\0';
    addr->host_len = hlen;

    return 0;
}


/*
 * Host names and IPv4: letters, digits, "-._".  IPv6: hex digits, ":",
 * "." (an IPv4 tail), "%" before a zone index (a host name's letters).
 */

static int
nixcache_redis_addr_host_char(int c, int v6)
{
    if (v6) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
               || (c >= 'A' && c <= 'F') || c == ':' || c == '.' || c == '%';
    }

    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}


/* Decimal digits only, at most 10 of them, up to max. */

static int
nixcache_redis_addr_number(const char *p, size_t len, long long max,
    long long *n)
{
    size_t     i;
    long long  v;

    if (len == 0 || len > 10) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        v = v * 10 + (p[i] - '0');
    }

    if (v > max) {
        return -1;
    }

    *n = v;

    return 0;
}
