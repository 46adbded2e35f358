/*
 * libFuzzer target: tokens from the outside, an Authorization header
 * value (nixcache_token_from_header) and a token file
 * (nixcache_token_next).
 *
 * Invariants: a token is not empty, has no space at either end, and lies
 * inside the value or the decode buffer; a Bearer token is the value's
 * tail; the token file walk moves forward, each token inside the text,
 * not empty, with no space, tab or CR at its ends and no newline inside,
 * not a comment, and ends at the end of the text.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nixcache_token.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int
inside(const char *p, size_t n, const void *base, size_t cap)
{
    return p >= (const char *) base
           && (size_t) (p - (const char *) base) <= cap
           && n <= cap - (size_t) (p - (const char *) base);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             found;
    char           *s;
    size_t          cap, tok_len, pos, last, off, n;
    const char     *tok;
    unsigned char  *buf;

    s = malloc(size ? size : 1);
    cap = nixcache_token_buf_len(size);
    buf = malloc(cap);

    if (s == NULL || buf == NULL) {
        free(s);
        free(buf);
        return 0;
    }

    memcpy(s, data, size);

    if (nixcache_token_from_header(s, size, buf, cap, &tok, &tok_len) == 0) {
        if (tok_len == 0 || tok[0] == ' ' || tok[tok_len - 1] == ' ') {
            abort();
        }

        if (inside(tok, tok_len, s, size)) {

            /* Bearer: only spaces after it */

            for (n = tok - s + tok_len; n < size; n++) {
                if (s[n] != ' ') {
                    abort();
                }
            }

        } else if (!inside(tok, tok_len, buf, cap)) {
            abort();
        }
    }

    /* the same bytes as a token file */

    pos = 0;
    last = 0;
    found = 0;

    while (nixcache_token_next(s, size, &pos, &off, &n)) {
        if (pos < last || pos > size || off < last || !inside(s + off, n, s,
                                                               size)
            || n == 0 || s[off] == '#'
            || memchr(s + off, '\n', n) != NULL
            || s[off] == ' ' || s[off] == '\t'
            || s[off + n - 1] == ' ' || s[off + n - 1] == '\t'
            || s[off + n - 1] == '\r')
        {
            abort();
        }

        last = pos;

        if (++found > (int) size) {
            abort();                    /* no progress */
        }
    }

    if (pos != size) {
        abort();
    }

    free(s);
    free(buf);

    return 0;
}
