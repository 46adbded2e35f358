/*
 * libFuzzer target: SigV4's URI encoder, query canonicaliser, canonical
 * request and signing over arbitrary strings.
 *
 * The input is cut at NUL bytes into fields: the first is the key encoded
 * as a path; then, in pairs, query parameters; the last six feed a
 * request (method, uri, region, service, amz_date, secret) with headers
 * taken from the parameters.  Every result is written into a buffer of
 * exactly the announced length (so a write past it is caught), and again
 * into shorter ones, which must not be overrun either.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nixcache_sigv4.h"


#define NIXCACHE_FUZZ_FIELDS   32


static void nixcache_fuzz_uri(const char *s, size_t len, unsigned flags);
static void nixcache_fuzz_text(ssize_t (*fn)(char *, size_t, const void *,
    const void *), const void *a, const void *b);
static ssize_t nixcache_fuzz_query(char *dst, size_t cap, const void *a,
    const void *b);
static ssize_t nixcache_fuzz_canonical(char *dst, size_t cap, const void *a,
    const void *b);
static ssize_t nixcache_fuzz_sts(char *dst, size_t cap, const void *a,
    const void *b);
static ssize_t nixcache_fuzz_sign(char *dst, size_t cap, const void *a,
    const void *b);


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
nixcache_fuzz_uri(const char *s, size_t len, unsigned flags)
{
    char    *dst;
    size_t   i, n;

    n = nixcache_sigv4_uri_encode(NULL, s, len, flags);
    if (n > 3 * len) {
        abort();
    }

    dst = malloc(n ? n : 1);
    if (dst == NULL) {
        abort();
    }

    if (nixcache_sigv4_uri_encode(dst, s, len, flags) != n) {
        abort();
    }

    for (i = 0; i < n; i++) {
        if (!((dst[i] >= 'A' && dst[i] <= 'Z')
              || (dst[i] >= 'a' && dst[i] <= 'z')
              || (dst[i] >= '0' && dst[i] <= '9')
              || strchr("-._~%", dst[i]) != NULL
              || ((flags & NIXCACHE_SIGV4_PATH) && dst[i] == '/')))
        {
            abort();
        }
    }

    free(dst);
}


static void
nixcache_fuzz_text(ssize_t (*fn)(char *, size_t, const void *, const void *),
    const void *a, const void *b)
{
    char     *dst;
    size_t    cap;
    ssize_t   n, n2;

    n = fn(NULL, 0, a, b);
    if (n < 0) {
        return;
    }

    dst = malloc(n ? (size_t) n : 1);
    if (dst == NULL) {
        abort();
    }

    n2 = fn(dst, (size_t) n, a, b);
    if (n2 != n) {
        abort();
    }

    /* shorter buffers: same length announced, nothing written past cap */

    for (cap = (size_t) n / 2; cap < (size_t) n; cap += (size_t) n / 2 + 1) {
        free(dst);
        dst = malloc(cap ? cap : 1);
        if (dst == NULL) {
            abort();
        }

        if (fn(dst, cap, a, b) != n) {
            abort();
        }
    }

    free(dst);
}


static ssize_t
nixcache_fuzz_query(char *dst, size_t cap, const void *a, const void *b)
{
    return nixcache_sigv4_query(dst, cap, a, *(const size_t *) b);
}


static ssize_t
nixcache_fuzz_canonical(char *dst, size_t cap, const void *a, const void *b)
{
    return nixcache_sigv4_canonical_request(dst, cap, a);
}


static ssize_t
nixcache_fuzz_sts(char *dst, size_t cap, const void *a, const void *b)
{
    return nixcache_sigv4_string_to_sign(dst, cap, a);
}


static ssize_t
nixcache_fuzz_sign(char *dst, size_t cap, const void *a, const void *b)
{
    return nixcache_sigv4_sign(dst, cap, a, b);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                          *s, *q, *p, *end;
    size_t                         nf, i, np;
    ssize_t                        qlen;
    nixcache_sigv4_str_t           f[NIXCACHE_FUZZ_FIELDS];
    nixcache_sigv4_pair_t          params[NIXCACHE_FUZZ_FIELDS / 2];
    nixcache_sigv4_request_t       req;
    nixcache_sigv4_credentials_t   cred;

    /* one allocation per field would catch more, but fields are short */

    s = malloc(size ? size : 1);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data, size);

    nf = 0;
    p = s;
    end = s + size;

    while (nf < NIXCACHE_FUZZ_FIELDS) {
        q = memchr(p, '\0', (size_t) (end - p));
        f[nf].data = p;
        f[nf].len = (q != NULL ? q : end) - p;
        nf++;

        if (q == NULL) {
            break;
        }

        p = q + 1;
    }

    nixcache_fuzz_uri(f[0].data, f[0].len, NIXCACHE_SIGV4_PATH);
    nixcache_fuzz_uri(f[0].data, f[0].len, 0);

    np = 0;
    for (i = 1; i + 1 < nf; i += 2) {
        params[np].name = f[i];
        params[np].value = f[i + 1];
        np++;
    }

    nixcache_fuzz_text(nixcache_fuzz_query, params, &np);

    if (nf < 7) {
        free(s);
        return 0;
    }

    /* a canonical query made from the parameters, as a caller would */

    qlen = nixcache_sigv4_query(NULL, 0, params, np);
    q = NULL;
    if (qlen > 0) {
        q = malloc((size_t) qlen);
        if (q == NULL
            || nixcache_sigv4_query(q, (size_t) qlen, params, np) != qlen)
        {
            abort();
        }
    }

    memset(&req, 0, sizeof(req));
    req.method = f[nf - 6];
    req.uri = f[nf - 5];
    req.query.data = q;
    req.query.len = qlen > 0 ? (size_t) qlen : 0;
    req.headers = params;
    req.nheaders = np;
    req.payload_hash.data = NIXCACHE_SIGV4_EMPTY_SHA256;
    req.payload_hash.len = sizeof(NIXCACHE_SIGV4_EMPTY_SHA256) - 1;
    req.region = f[nf - 4];
    req.service = f[nf - 3];
    req.amz_date = f[nf - 2];

    cred.access_key_id = f[0];
    cred.secret_access_key = f[nf - 1];

    nixcache_fuzz_text(nixcache_fuzz_canonical, &req, NULL);
    nixcache_fuzz_text(nixcache_fuzz_sts, &req, NULL);
    nixcache_fuzz_text(nixcache_fuzz_sign, &req, &cred);

    free(q);
    free(s);

    return 0;
}
