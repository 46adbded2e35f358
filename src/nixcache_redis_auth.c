/*
 * Redis credentials file: nixcache_redis_auth.h.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "nixcache_file.h"
#include "nixcache_redis_auth.h"


static size_t nixcache_redis_auth_field(const char *s, size_t len,
    size_t *pos);


int
nixcache_redis_auth_parse(nixcache_redis_auth_t *auth, const char *s,
    size_t len, const char **err)
{
    size_t  pos, f1, f1_len, f2, f2_len, f3_len;

    memset(auth, 0, sizeof(nixcache_redis_auth_t));

    /* one line: a single trailing newline (LF or CRLF) is allowed */

    if (len > 0 && s[len - 1] == '\n') {
        len--;

        if (len > 0 && s[len - 1] == '\r') {
            len--;
        }
    }

    if (memchr(s, '\n', len) != NULL || memchr(s, '\r', len) != NULL) {
        *err = "more than one line";
        return -1;
    }

    if (memchr(s, '\0', len) != NULL) {
        *err = "a NUL byte in it";
        return -1;
    }

    pos = 0;

    f1_len = nixcache_redis_auth_field(s, len, &pos);
    f1 = pos - f1_len;
    f2_len = nixcache_redis_auth_field(s, len, &pos);
    f2 = pos - f2_len;
    f3_len = nixcache_redis_auth_field(s, len, &pos);

    if (f1_len == 0) {
        *err = "no password in it";
        return -1;
    }

    if (f3_len != 0) {
        *err = "more than two fields (expected \"password\" or "
               "\"user password\")";
        return -1;
    }

    if (f2_len == 0) {
        f2 = f1;
        f2_len = f1_len;
        f1_len = 0;
    }

    if (f1_len > NIXCACHE_REDIS_AUTH_USER_MAX) {
        *err = "user name too long";
        return -1;
    }

    if (f2_len > NIXCACHE_REDIS_AUTH_PASS_MAX) {
        *err = "password too long";
        return -1;
    }

    memcpy(auth->user, s + f1, f1_len);
    auth->user[f1_len] = '\0';
    auth->user_len = f1_len;

    memcpy(auth->pass, s + f2, f2_len);
    auth->pass[f2_len] = '\0';
    auth->pass_len = f2_len;

    return 0;
}


/* The next field from *pos: its length, *pos just after it. */

static size_t
nixcache_redis_auth_field(const char *s, size_t len, size_t *pos)
{
    size_t  p, start;

    p = *pos;

    while (p < len && (s[p] == ' ' || s[p] == '\t')) {
        p++;
    }

    start = p;

    while (p < len && s[p] != ' ' && s[p] != '\t') {
        p++;
    }

    *pos = p;

    return p - start;
}


int
nixcache_redis_auth_file(nixcache_redis_auth_t *auth, const char *file,
    const char **err)
{
    int      rc;
    char     buf[NIXCACHE_REDIS_AUTH_FILE_MAX + 1];
    size_t   len;
    ssize_t  n;

    memset(auth, 0, sizeof(nixcache_redis_auth_t));

    n = nixcache_file_read_small(file, buf, sizeof(buf));
    if (n == -1) {
        *err = (errno == EFBIG) ? "too long" : strerror(errno);
        return -1;
    }

    len = n;

    rc = nixcache_redis_auth_parse(auth, buf, len, err);
    explicit_bzero(buf, sizeof(buf));

    return rc;
}


void
nixcache_redis_auth_wipe(nixcache_redis_auth_t *auth)
{
    explicit_bzero(auth, sizeof(nixcache_redis_auth_t));
}
