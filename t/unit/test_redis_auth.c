/*
 * Redis credentials: nixcache_redis_auth_parse(), table-driven.  What
 * the module does with them is tested by t/042-redis-auth.t, what the CLI
 * does by t/033-cli-redis-auth.t.
 */

#include "unit.h"

#include "nixcache_redis_auth.h"


typedef struct {
    const char  *in;
    const char  *user;          /* NULL: refused, err contains err */
    const char  *pass;
    const char  *err;
} auth_t;


static const auth_t  auths[] = {

    { "s3cret", "", "s3cret", NULL },
    { "s3cret\n", "", "s3cret", NULL },
    { "s3cret\r\n", "", "s3cret", NULL },
    { "  s3cret\t ", "", "s3cret", NULL },
    { "cache s3cret\n", "cache", "s3cret", NULL },
    { "cache\ts3cret", "cache", "s3cret", NULL },
    { "cache   p@ss:w/rd#1\n", "cache", "p@ss:w/rd#1", NULL },

    /* refused */
    { "", NULL, NULL, "no password" },
    { "\n", NULL, NULL, "no password" },
    { "   \n", NULL, NULL, "no password" },
    { "a b c\n", NULL, NULL, "more than two fields" },
    { "s3cret\n\n", NULL, NULL, "more than one line" },
    { "cache\ns3cret\n", NULL, NULL, "more than one line" },
    { "s3c\rret", NULL, NULL, "more than one line" },
};


int
main(void)
{
    int                     rc;
    char                    buf[NIXCACHE_REDIS_AUTH_PASS_MAX + 3];
    size_t                  i;
    const char             *err;
    const auth_t           *t;
    nixcache_redis_auth_t   a;

    for (i = 0; i < sizeof(auths) / sizeof(auths[0]); i++) {
        t = &auths[i];
        err = NULL;

        rc = nixcache_redis_auth_parse(&a, t->in, strlen(t->in), &err);

        if (t->user == NULL) {
            ok(rc == -1 && err != NULL && strstr(err, t->err) != NULL,
               "test %zu refused: %s", i, err ? err : "(no error)");
            ok(a.pass_len == 0 && a.pass[0] == '\0',
               "test %zu: nothing kept", i);
            continue;
        }

        ok(rc == 0, "test %zu parses%s%s", i, err ? ": " : "",
           err ? err : "");

        if (rc != 0) {
            continue;
        }

        is_str(a.user, a.user_len, t->user, "test %zu: user", i);
        is_str(a.pass, a.pass_len, t->pass, "test %zu: password", i);
        ok(strlen(a.pass) == a.pass_len, "test %zu: NUL-terminated", i);
    }

    /* the longest password, and one byte more */

    memset(buf, 'p', NIXCACHE_REDIS_AUTH_PASS_MAX);
    rc = nixcache_redis_auth_parse(&a, buf, NIXCACHE_REDIS_AUTH_PASS_MAX,
                                   &err);
    ok(rc == 0 && a.pass_len == NIXCACHE_REDIS_AUTH_PASS_MAX,
       "the longest password");

    memset(buf, 'p', NIXCACHE_REDIS_AUTH_PASS_MAX + 1);
    rc = nixcache_redis_auth_parse(&a, buf, NIXCACHE_REDIS_AUTH_PASS_MAX + 1,
                                   &err);
    ok(rc == -1 && strstr(err, "password too long") != NULL,
       "one byte more: refused");

    rc = nixcache_redis_auth_parse(&a, "s3c\0ret", 7, &err);
    ok(rc == -1 && strstr(err, "NUL") != NULL, "a NUL byte is refused");

    /* only len bytes are read */

    rc = nixcache_redis_auth_parse(&a, "s3cret extra", 6, &err);
    ok(rc == 0 && a.user_len == 0 && a.pass_len == 6, "stops at len");

    nixcache_redis_auth_wipe(&a);
    ok(a.pass[0] == '\0' && a.pass_len == 0, "wiped");

    return done_testing();
}
