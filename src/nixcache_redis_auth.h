/*
 * Redis credentials, as nixcache_redis_auth (the module) and --redis-auth
 * or $NIXCACHE_REDIS_AUTH (the CLI) read them: one parser for both, pure,
 * over (pointer, length), no allocation.  Passwords never go in a Redis
 * address: configuration files are often world-readable.
 *
 * The file holds one line, its trailing newline optional:
 *
 *   password            AUTH password (requirepass, or the default user)
 *   user password       AUTH user password (a Redis 6+ ACL user)
 *
 * Fields are separated by spaces or tabs; neither may contain one.
 */

#ifndef NIXCACHE_REDIS_AUTH_H
#define NIXCACHE_REDIS_AUTH_H

#include <stddef.h>


#define NIXCACHE_REDIS_AUTH_USER_MAX    255
#define NIXCACHE_REDIS_AUTH_PASS_MAX    511
#define NIXCACHE_REDIS_AUTH_FILE_MAX    1024


typedef struct {
    char    user[NIXCACHE_REDIS_AUTH_USER_MAX + 1];  /* "": none */
    size_t  user_len;
    char    pass[NIXCACHE_REDIS_AUTH_PASS_MAX + 1];
    size_t  pass_len;
} nixcache_redis_auth_t;


/*
 * Parses len bytes of s.  Returns 0 with *auth filled, or -1 with *err
 * set to a static text (which never quotes the file's bytes) and *auth
 * wiped.
 */
int nixcache_redis_auth_parse(nixcache_redis_auth_t *auth, const char *s,
    size_t len, const char **err);

/*
 * Reads and parses a file (the CLI's way; the module reads the file with
 * its own checks).  Returns 0, or -1 with *err a static text.
 */
int nixcache_redis_auth_file(nixcache_redis_auth_t *auth, const char *file,
    const char **err);

void nixcache_redis_auth_wipe(nixcache_redis_auth_t *auth);


#endif /* NIXCACHE_REDIS_AUTH_H */
