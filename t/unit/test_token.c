/*
 * Tokens in Authorization header values and token files:
 * nixcache_token_from_header() and nixcache_token_next().  Basic
 * credentials made with base64(1) ("printf 'nix:s3cret' | base64").
 * The module's 401/403 answers are tested by t/057.
 */

#include "unit.h"

#include "nixcache_token.h"


typedef struct {
    const char  *value;
    const char  *token;             /* NULL: no token */
} header_t;


static const header_t  headers[] = {
    { "Bearer s3cret", "s3cret" },
    { "bearer s3cret", "s3cret" },
    { "BEARER   s3cret  ", "s3cret" },
    { "Bearer a b", "a b" },
    { "Basic bml4OnMzY3JldA==", "s3cret" },             /* nix:s3cret */
    { "basic   bml4OnMzY3JldA==", "s3cret" },
    { "Basic bml4OnMzY3JldA", "s3cret" },               /* unpadded */
    { "Basic OnMzY3JldA==", "s3cret" },                 /* :s3cret */
    { "Basic dTp0OnU=", "t:u" },                        /* u:t:u */
    { "Basic dTogIHQgIA==", "t" },                      /* "u:  t  " */

    { "Bearer ", NULL },
    { "Bearer    ", NULL },
    { "Bearer", NULL },
    { "Bearers3cret", NULL },
    { "Token s3cret", NULL },
    { "", NULL },
    { "Basic ", NULL },
    { "Basic bml4", NULL },                             /* "nix", no ':' */
    { "Basic bml4Og==", NULL },                         /* "nix:" */
    { "Basic bml4OnMzY3JldA==x", NULL },                /* after padding */
    { "Basic bml4OnMzY3Jld!A==", NULL },                /* not base64 */
    { "Basic bml4OnMzY3JldA== ", NULL },
    { "Basic b", NULL },                                /* 1 char of 4 */
    { "Basic ====", NULL },
};


typedef struct {
    const char  *text;
    const char  *tokens[4];
} file_t;


static const file_t  files[] = {
    { "one\ntwo\n", { "one", "two", NULL } },
    { "one\r\ntwo", { "one", "two", NULL } },
    { "  one \t\n\n\t\n# a comment\n #x\n two\r\n", { "one", "two", NULL } },
    { "a b\n", { "a b", NULL } },
    { "", { NULL } },
    { "\n\n  \r\n# only\n", { NULL } },
    { "x#y\n", { "x#y", NULL } },
    { "\r", { NULL } },
    { "last", { "last", NULL } },
};


int
main(void)
{
    int             rc;
    size_t          i, j, len, pos, off, tok_len;
    const char     *tok;
    unsigned char   buf[128];

    for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        const header_t  *h = &headers[i];

        len = strlen(h->value);
        tok = NULL;
        tok_len = 0;

        rc = nixcache_token_from_header(h->value, len, buf, sizeof(buf),
                                        &tok, &tok_len);

        if (h->token == NULL) {
            ok(rc == -1, "\"%s\": no token", h->value);
            continue;
        }

        ok(rc == 0, "\"%s\": a token", h->value);

        if (rc == 0) {
            is_str(tok, tok_len, h->token, "\"%s\": the token", h->value);
        }
    }

    /* a buffer too small for the decoded credentials is refused */

    ok(nixcache_token_from_header("Basic bml4OnMzY3JldA==", 22, buf, 4,
                                  &tok, &tok_len)
       == -1, "Basic into a short buffer: refused");

    ok(nixcache_token_buf_len(strlen("Basic bml4OnMzY3JldA=="))
       >= sizeof("nix:s3cret") - 1, "nixcache_token_buf_len covers it");

    /* lengths, not NULs */

    rc = nixcache_token_from_header("Bearer ab\0cd", sizeof("Bearer ab\0cd")
                                    - 1, buf, sizeof(buf), &tok, &tok_len);
    ok(rc == 0 && tok_len == 5 && memcmp(tok, "ab\0cd", 5) == 0,
       "a NUL inside a Bearer token is part of it");

    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        const file_t  *f = &files[i];

        len = strlen(f->text);
        pos = 0;

        for (j = 0; f->tokens[j] != NULL; j++) {
            rc = nixcache_token_next(f->text, len, &pos, &off, &tok_len);

            ok(rc == 1, "file %zu: token %zu found", i, j);

            if (rc == 1) {
                is_str(f->text + off, tok_len, f->tokens[j],
                       "file %zu: token %zu", i, j);
            }
        }

        ok(nixcache_token_next(f->text, len, &pos, &off, &tok_len) == 0,
           "file %zu: %zu tokens, then none", i, j);
        ok(nixcache_token_next(f->text, len, &pos, &off, &tok_len) == 0,
           "file %zu: still none", i);
        is_u64(pos, len, "file %zu: at the end", i);
    }

    return done_testing();
}
