/*
 * Access tokens in headers and token files (see nixcache_token.h).
 */

#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "nixcache_token.h"


#define nixcache_token_lit(s)       (sizeof(s) - 1)


static int nixcache_token_scheme(const char *value, size_t len,
    const char *scheme, size_t scheme_len);


int
nixcache_token_from_header(const char *value, size_t len,
    unsigned char *buf, size_t cap, const char **tok, size_t *tok_len)
{
    int          variant;
    size_t       n, decoded;
    const char  *p, *colon;

    if (nixcache_token_scheme(value, len, "Bearer ",
                              nixcache_token_lit("Bearer ")))
    {
        p = value + nixcache_token_lit("Bearer ");
        n = len - nixcache_token_lit("Bearer ");

    } else if (nixcache_token_scheme(value, len, "Basic ",
                                     nixcache_token_lit("Basic ")))
    {
        p = value + nixcache_token_lit("Basic ");
        n = len - nixcache_token_lit("Basic ");

        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }

        if (cap < nixcache_token_buf_len(n)) {
            return -1;
        }

        /* padded or not, as long as it is all base64 */

        variant = (n % 4 == 0) ? sodium_base64_VARIANT_ORIGINAL
                               : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;

        if (sodium_base642bin(buf, cap, p, n, NULL, &decoded, NULL, variant)
            != 0)
        {
            return -1;
        }

        /* "user:token": the user (Nix's netrc login) is not checked */

        colon = memchr(buf, ':', decoded);
        if (colon == NULL) {
            return -1;
        }

        p = colon + 1;
        n = (const char *) buf + decoded - p;

    } else {
        return -1;
    }

    while (n > 0 && *p == ' ') {
        p++;
        n--;
    }

    while (n > 0 && p[n - 1] == ' ') {
        n--;
    }

    if (n == 0) {
        return -1;
    }

    *tok = p;
    *tok_len = n;

    return 0;
}


int
nixcache_token_next(const char *text, size_t len, size_t *pos, size_t *off,
    size_t *tok_len)
{
    size_t       s, e, end;
    const char  *nl;

    for (s = *pos; s < len; s = e + 1) {

        nl = memchr(text + s, '\n', len - s);
        e = (nl != NULL) ? (size_t) (nl - text) : len;

        *pos = (e < len) ? e + 1 : len;

        while (s < e && (text[s] == ' ' || text[s] == '\t')) {
            s++;
        }

        end = e;

        while (end > s
               && (text[end - 1] == ' ' || text[end - 1] == '\t'
                   || text[end - 1] == '\r'))
        {
            end--;
        }

        if (end == s || text[s] == '#') {
            continue;
        }

        *off = s;
        *tok_len = end - s;

        return 1;
    }

    *pos = len;

    return 0;
}


/* "Scheme " at the start of value, any letter case, with more after it. */

static int
nixcache_token_scheme(const char *value, size_t len, const char *scheme,
    size_t scheme_len)
{
    return len > scheme_len && strncasecmp(value, scheme, scheme_len) == 0;
}
