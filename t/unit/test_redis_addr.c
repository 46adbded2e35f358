/*
 * Redis addresses: nixcache_redis_addr_parse(), table-driven.  What the
 * module does with them is tested by t/041-redis-addr.t and
 * t/040-redis-faults.t, what the CLI does by t/030-cli.t.
 */

#include "unit.h"

#include "nixcache_redis_addr.h"


typedef struct {
    const char  *in;
    const char  *host;          /* NULL: refused, err contains it */
    int          port;
    int          db;
    const char  *err;
} addr_t;


#define S107                                                                 \
    "/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

#define H255                                                                 \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


static const addr_t  addrs[] = {

    /* what the module took before: IP:port, [IPv6]:port, unix:path */
    { "127.0.0.1:6379", "127.0.0.1", 6379, -1, NULL },
    { "10.1.2.3:1", "10.1.2.3", 1, -1, NULL },
    { "[::1]:6380", "::1", 6380, -1, NULL },
    { "[fe80::1%eth0]:6379", "fe80::1%eth0", 6379, -1, NULL },
    { "[::ffff:10.0.0.1]", "::ffff:10.0.0.1", 6379, -1, NULL },
    { "unix:/run/redis/redis.sock", "/run/redis/redis.sock", 0, -1, NULL },
    { "unix:redis.sock", "redis.sock", 0, -1, NULL },

    /* what the CLI took besides: host names, no port, redis:// */
    { "localhost:6379", "localhost", 6379, -1, NULL },
    { "redis.example.org", "redis.example.org", 6379, -1, NULL },
    { "127.0.0.1", "127.0.0.1", 6379, -1, NULL },
    { "[::1]", "::1", 6379, -1, NULL },
    { "redis://localhost", "localhost", 6379, -1, NULL },
    { "redis://localhost/", "localhost", 6379, -1, NULL },
    { "redis://localhost:6380", "localhost", 6380, -1, NULL },
    { "redis://127.0.0.1:6380/1", "127.0.0.1", 6380, 1, NULL },
    { "redis://h/0", "h", 6379, 0, NULL },
    { "redis://[::1]:7000/15", "::1", 7000, 15, NULL },
    { "redis://h:1/2147483647", "h", 1, 2147483647, NULL },
    { "redis://my_host-1.local:65535/007", "my_host-1.local", 65535, 7,
      NULL },
    { H255 ":1", H255, 1, -1, NULL },

    /* new: bare paths, unix:///path, ?db=N on sockets */
    { "/run/redis.sock", "/run/redis.sock", 0, -1, NULL },
    { "unix:///run/redis.sock", "/run/redis.sock", 0, -1, NULL },
    { "unix:/run/redis.sock?db=3", "/run/redis.sock", 0, 3, NULL },
    { "unix:///run/redis.sock?db=0", "/run/redis.sock", 0, 0, NULL },
    { "/s?db=12", "/s", 0, 12, NULL },
    { S107, S107, 0, -1, NULL },

    /* refused */
    { "", NULL, 0, 0, "empty Redis address" },
    { "unix:", NULL, 0, 0, "empty Redis socket path" },
    { "unix:?db=1", NULL, 0, 0, "empty Redis socket path" },
    { "unix://", NULL, 0, 0, "absolute path" },
    { "unix://run/redis.sock", NULL, 0, 0, "absolute path" },
    { S107 "a", NULL, 0, 0, "socket path too long" },
    { "unix:" S107 "a", NULL, 0, 0, "socket path too long" },
    { "/s?db=", NULL, 0, 0, "invalid Redis database" },
    { "/s?db=x", NULL, 0, 0, "invalid Redis database" },
    { "/s?db=-1", NULL, 0, 0, "invalid Redis database" },
    { "/s?database=1", NULL, 0, 0, "no query but ?db=N" },
    { "/s?", NULL, 0, 0, "no query but ?db=N" },
    { "127.0.0.1:", NULL, 0, 0, "invalid Redis port" },
    { "127.0.0.1:0", NULL, 0, 0, "invalid Redis port" },
    { "127.0.0.1:65536", NULL, 0, 0, "invalid Redis port" },
    { "127.0.0.1:99999999999", NULL, 0, 0, "invalid Redis port" },
    { "127.0.0.1:+1", NULL, 0, 0, "invalid Redis port" },
    { "127.0.0.1: 1", NULL, 0, 0, "invalid Redis port" },
    { "host:notaport", NULL, 0, 0, "invalid Redis port" },
    { "::1:6379", NULL, 0, 0, "needs brackets" },
    { "::1", NULL, 0, 0, "needs brackets" },
    { "[::1", NULL, 0, 0, "closing" },
    { "[::1]6379", NULL, 0, 0, "may follow the IPv6 address" },
    { "[]:6379", NULL, 0, 0, "empty Redis host" },
    { "[::1]:0", NULL, 0, 0, "invalid Redis port" },
    { ":6379", NULL, 0, 0, "empty Redis host" },
    { "redis://", NULL, 0, 0, "empty Redis host" },
    { "redis:///1", NULL, 0, 0, "empty Redis host" },
    { "redis://h:6379/x", NULL, 0, 0, "invalid Redis database" },
    { "redis://h/1/2", NULL, 0, 0, "invalid Redis database" },
    { "redis://h/2147483648", NULL, 0, 0, "invalid Redis database" },
    { "redis://h/-1", NULL, 0, 0, "invalid Redis database" },
    { "redis://h:0/1", NULL, 0, 0, "invalid Redis port" },
    { "redis://user:pw@h:6379", NULL, 0, 0, "passwords" },
    { "redis://:pw@h", NULL, 0, 0, "passwords" },
    { "redis://h?db=1", NULL, 0, 0, "query" },
    { "rediss://h:6379", NULL, 0, 0, "TLS" },
    { "http://h:6379", NULL, 0, 0, "unknown Redis address scheme" },
    { "h:6379/1", NULL, 0, 0, "needs the redis:// form" },
    { "h/1", NULL, 0, 0, "needs the redis:// form" },
    { "h st:6379", NULL, 0, 0, "invalid character" },
    { "h\t:6379", NULL, 0, 0, "invalid character" },
    { "[::1 ]:6379", NULL, 0, 0, "invalid character" },
    { "[::g]:6379", NULL, 0, 0, "invalid character" },
    { "[fe80::1%eth 0]", NULL, 0, 0, "invalid character" },
    { "[localhost]:6379", NULL, 0, 0, "IPv6 addresses only" },
    { "redis://[%e]/0", NULL, 0, 0, "IPv6 addresses only" },
    { "[1.2.3.4]", NULL, 0, 0, "IPv6 addresses only" },
    { H255 "a:1", NULL, 0, 0, "too long" },
};


int
main(void)
{
    int                     rc;
    size_t                  i;
    const char             *err;
    const addr_t           *t;
    nixcache_redis_addr_t   a;

    for (i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        t = &addrs[i];
        err = NULL;

        rc = nixcache_redis_addr_parse(&a, t->in, strlen(t->in), &err);

        if (t->host == NULL) {
            ok(rc == -1 && err != NULL && strstr(err, t->err) != NULL,
               "\"%s\" refused: %s", t->in, err ? err : "(no error)");
            continue;
        }

        ok(rc == 0, "\"%s\" parses%s%s", t->in, err ? ": " : "",
           err ? err : "");

        if (rc != 0) {
            continue;
        }

        is_str(a.host, a.host_len, t->host, "\"%s\": host", t->in);
        ok(strlen(a.host) == a.host_len, "\"%s\": host NUL-terminated",
           t->in);
        is_u64(a.port, t->port, "\"%s\": port", t->in);
        is_u64(a.db + 1, t->db + 1, "\"%s\": database", t->in);
    }

    /* only len bytes are read: the rest of a longer buffer is not */

    rc = nixcache_redis_addr_parse(&a, "127.0.0.1:6379/1", 14, &err);
    ok(rc == 0 && a.port == 6379 && a.db == -1, "stops at len");

    rc = nixcache_redis_addr_parse(&a, "unix:/s\0x", 9, &err);
    ok(rc == -1 && strstr(err, "NUL") != NULL, "a NUL byte is refused");

    return done_testing();
}
