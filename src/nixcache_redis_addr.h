/*
 * Redis addresses, as nixcache_redis (the module) and --redis (the CLI)
 * take them: one parser for both, pure, over (pointer, length), no
 * allocation.  It names the server; it connects to nothing and resolves
 * nothing (the module resolves host names when its configuration is
 * loaded, the CLI lets hiredis do it).  Fuzzed by fuzz/fuzz_redis_addr.c.
 *
 *   host:port, host           a host name or IPv4 address; port 6379
 *   [v6]:port, [v6]           an IPv6 address, always in brackets
 *   redis://host[:port][/db]  the same, with a database number
 *   unix:/path, /path         a unix socket (unix:path: relative to the
 *   unix:///path                working directory)
 *   any unix form + ?db=N     a unix socket with a database number
 */

#ifndef NIXCACHE_REDIS_ADDR_H
#define NIXCACHE_REDIS_ADDR_H

#include <stddef.h>


#define NIXCACHE_REDIS_PORT_DEFAULT     6379
#define NIXCACHE_REDIS_HOST_MAX         255     /* a DNS name is 253 */
#define NIXCACHE_REDIS_SOCKET_MAX       107     /* sun_path, its NUL out */
#define NIXCACHE_REDIS_DB_MAX           2147483647


typedef struct {
    char    host[NIXCACHE_REDIS_HOST_MAX + 1];  /* host name, IP without
                                                   brackets, or socket
                                                   path; NUL-terminated */
    size_t  host_len;
    int     port;                               /* 0: host is a socket */
    int     db;                                 /* -1: none given */
} nixcache_redis_addr_t;


/*
 * Parses len bytes of s (no NUL needed; a NUL in them is refused).
 * Returns 0 with *addr filled, or -1 with *err set to a static text
 * saying what is wrong, to be printed after the address, for example
 * "invalid Redis port (1 to 65535)".
 */
int nixcache_redis_addr_parse(nixcache_redis_addr_t *addr, const char *s,
    size_t len, const char **err);


#endif /* NIXCACHE_REDIS_ADDR_H */
