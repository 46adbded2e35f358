/*
 * AWS Signature Version 4: see nixcache_sigv4.h.  SHA-256 and HMAC come
 * from OpenSSL (EVP digests and the HMAC() one-shot, neither deprecated in
 * OpenSSL 3).
 */

#include <limits.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "nixcache_sigv4.h"


#define NIXCACHE_SIGV4_TERMINATOR   "aws4_request"
#define NIXCACHE_SIGV4_DAY_LEN      8

/* "AWS4-HMAC-SHA256\n<date>\n<day>/<region>/<service>/aws4_request\n<hex>" */
#define NIXCACHE_SIGV4_STS_MAX                                               \
    (sizeof(NIXCACHE_SIGV4_ALGORITHM) + NIXCACHE_SIGV4_DATE_LEN + 1          \
     + NIXCACHE_SIGV4_DAY_LEN + 1 + 2 * (NIXCACHE_SIGV4_MAX_SCOPE_PART + 1)  \
     + sizeof(NIXCACHE_SIGV4_TERMINATOR) + NIXCACHE_SIGV4_HEX_LEN)


/*
 * Where text goes: a buffer (truncated at cap, len counts everything), a
 * running SHA-256, or both.
 */
typedef struct {
    char                      *dst;
    size_t                     cap;
    size_t                     len;
    EVP_MD_CTX                *md;
    int                        failed;
} nixcache_sigv4_out_t;


static int nixcache_sigv4_unreserved(unsigned char c);
static int nixcache_sigv4_space(unsigned char c);
static int nixcache_sigv4_token(const nixcache_sigv4_str_t *s,
    const char *forbidden);
static int nixcache_sigv4_check(const nixcache_sigv4_request_t *req);
static void nixcache_sigv4_put(nixcache_sigv4_out_t *out, const void *p,
    size_t n);
static void nixcache_sigv4_put_str(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_str_t *s);
static void nixcache_sigv4_put_encoded(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_str_t *s, unsigned flags);
static void nixcache_sigv4_put_lower(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_str_t *s);
static void nixcache_sigv4_put_trimmed(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_str_t *s);
static ssize_t nixcache_sigv4_result(const nixcache_sigv4_out_t *out);
static int nixcache_sigv4_byte_cmp(unsigned char a, unsigned char b);
static int nixcache_sigv4_encoded_cmp(const nixcache_sigv4_str_t *a,
    const nixcache_sigv4_str_t *b);
static int nixcache_sigv4_param_cmp(const nixcache_sigv4_pair_t *params,
    size_t i, size_t j);
static int nixcache_sigv4_name_cmp(const nixcache_sigv4_str_t *a,
    const nixcache_sigv4_str_t *b);
static ssize_t nixcache_sigv4_next_header(const nixcache_sigv4_request_t *req,
    ssize_t prev);
static void nixcache_sigv4_put_canonical_request(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_request_t *req);
static void nixcache_sigv4_put_signed_headers(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_request_t *req);
static void nixcache_sigv4_put_scope(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_request_t *req);
static int nixcache_sigv4_put_string_to_sign(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_request_t *req);
static int nixcache_sigv4_hmac(unsigned char *mac, const void *key,
    size_t key_len, const void *p, size_t n);
static void nixcache_sigv4_hex(char *dst, const unsigned char *p, size_t n);


static const char  nixcache_sigv4_hex_digits[] = "0123456789abcdef";
static const char  nixcache_sigv4_pct_digits[] = "0123456789ABCDEF";


int
nixcache_sigv4_amz_date(char *dst, time_t t)
{
    char       buf[NIXCACHE_SIGV4_DATE_LEN + 1];
    struct tm  tm;

    if (gmtime_r(&t, &tm) == NULL
        || tm.tm_year < 0 - 1900 || tm.tm_year > 9999 - 1900)
    {
        return -1;
    }

    if (strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm)
        != NIXCACHE_SIGV4_DATE_LEN)
    {
        return -1;
    }

    memcpy(dst, buf, NIXCACHE_SIGV4_DATE_LEN);

    return 0;
}


int
nixcache_sigv4_payload_hash(char *hex, const void *body, size_t len)
{
    unsigned int   n;
    unsigned char  digest[EVP_MAX_MD_SIZE];

    if (EVP_Digest(body, len, digest, &n, EVP_sha256(), NULL) != 1
        || n * 2 != NIXCACHE_SIGV4_HEX_LEN)
    {
        return -1;
    }

    nixcache_sigv4_hex(hex, digest, n);

    return 0;
}


size_t
nixcache_sigv4_uri_encode(char *dst, const char *src, size_t len,
    unsigned flags)
{
    size_t         i, n;
    unsigned char  c;

    n = 0;

    for (i = 0; i < len; i++) {
        c = (unsigned char) src[i];

        if (nixcache_sigv4_unreserved(c)
            || (c == '/' && (flags & NIXCACHE_SIGV4_PATH)))
        {
            if (dst != NULL) {
                dst[n] = (char) c;
            }

            n++;
            continue;
        }

        if (dst != NULL) {
            dst[n] = '%';
            dst[n + 1] = nixcache_sigv4_pct_digits[c >> 4];
            dst[n + 2] = nixcache_sigv4_pct_digits[c & 0x0f];
        }

        n += 3;
    }

    return n;
}


ssize_t
nixcache_sigv4_query(char *dst, size_t cap,
    const nixcache_sigv4_pair_t *params, size_t n)
{
    size_t                 i, k, best, prev;
    nixcache_sigv4_out_t   out;

    memset(&out, 0, sizeof(out));
    out.dst = dst;
    out.cap = cap;

    /* selection by (encoded name, encoded value, position): n is small */

    prev = n;

    for (k = 0; k < n; k++) {
        best = n;

        for (i = 0; i < n; i++) {
            if (prev != n && nixcache_sigv4_param_cmp(params, i, prev) <= 0) {
                continue;
            }

            if (best == n || nixcache_sigv4_param_cmp(params, i, best) < 0) {
                best = i;
            }
        }

        if (k > 0) {
            nixcache_sigv4_put(&out, "&", 1);
        }

        nixcache_sigv4_put_encoded(&out, &params[best].name, 0);
        nixcache_sigv4_put(&out, "=", 1);
        nixcache_sigv4_put_encoded(&out, &params[best].value, 0);

        prev = best;
    }

    return nixcache_sigv4_result(&out);
}


ssize_t
nixcache_sigv4_canonical_request(char *dst, size_t cap,
    const nixcache_sigv4_request_t *req)
{
    nixcache_sigv4_out_t  out;

    if (nixcache_sigv4_check(req) != 0) {
        return -1;
    }

    memset(&out, 0, sizeof(out));
    out.dst = dst;
    out.cap = cap;

    nixcache_sigv4_put_canonical_request(&out, req);

    return nixcache_sigv4_result(&out);
}


ssize_t
nixcache_sigv4_string_to_sign(char *dst, size_t cap,
    const nixcache_sigv4_request_t *req)
{
    nixcache_sigv4_out_t  out;

    if (nixcache_sigv4_check(req) != 0) {
        return -1;
    }

    memset(&out, 0, sizeof(out));
    out.dst = dst;
    out.cap = cap;

    if (nixcache_sigv4_put_string_to_sign(&out, req) != 0) {
        return -1;
    }

    return nixcache_sigv4_result(&out);
}


int
nixcache_sigv4_signing_key(unsigned char *key,
    const nixcache_sigv4_request_t *req, const nixcache_sigv4_str_t *secret)
{
    int            rc;
    unsigned char  k[NIXCACHE_SIGV4_KEY_LEN];
    unsigned char  kdate[4 + NIXCACHE_SIGV4_MAX_SECRET];

    if (nixcache_sigv4_check(req) != 0
        || secret->len > NIXCACHE_SIGV4_MAX_SECRET)
    {
        return -1;
    }

    memcpy(kdate, "AWS4", 4);
    memcpy(kdate + 4, secret->data, secret->len);

    rc = nixcache_sigv4_hmac(k, kdate, 4 + secret->len,
                             req->amz_date.data, NIXCACHE_SIGV4_DAY_LEN);

    if (rc == 0) {
        rc = nixcache_sigv4_hmac(k, k, sizeof(k),
                                 req->region.data, req->region.len);
    }

    if (rc == 0) {
        rc = nixcache_sigv4_hmac(k, k, sizeof(k),
                                 req->service.data, req->service.len);
    }

    if (rc == 0) {
        rc = nixcache_sigv4_hmac(key, k, sizeof(k),
                                 NIXCACHE_SIGV4_TERMINATOR,
                                 sizeof(NIXCACHE_SIGV4_TERMINATOR) - 1);
    }

    OPENSSL_cleanse(kdate, sizeof(kdate));
    OPENSSL_cleanse(k, sizeof(k));

    return rc;
}


int
nixcache_sigv4_signature(char *hex, const nixcache_sigv4_request_t *req,
    const unsigned char *key)
{
    char                   sts[NIXCACHE_SIGV4_STS_MAX];
    unsigned char          mac[EVP_MAX_MD_SIZE];
    nixcache_sigv4_out_t   out;

    if (nixcache_sigv4_check(req) != 0) {
        return -1;
    }

    memset(&out, 0, sizeof(out));
    out.dst = sts;
    out.cap = sizeof(sts);

    if (nixcache_sigv4_put_string_to_sign(&out, req) != 0
        || out.failed
        || out.len > out.cap)
    {
        return -1;
    }

    if (nixcache_sigv4_hmac(mac, key, NIXCACHE_SIGV4_KEY_LEN, sts, out.len)
        != 0)
    {
        return -1;
    }

    nixcache_sigv4_hex(hex, mac, NIXCACHE_SIGV4_KEY_LEN);

    return 0;
}


ssize_t
nixcache_sigv4_authorization(char *dst, size_t cap,
    const nixcache_sigv4_request_t *req,
    const nixcache_sigv4_str_t *access_key_id, const unsigned char *key)
{
    char                   sig[NIXCACHE_SIGV4_HEX_LEN];
    nixcache_sigv4_out_t   out;

    if (!nixcache_sigv4_token(access_key_id, "/,=")) {
        return -1;
    }

    if (nixcache_sigv4_signature(sig, req, key) != 0) {
        return -1;
    }

    memset(&out, 0, sizeof(out));
    out.dst = dst;
    out.cap = cap;

    nixcache_sigv4_put(&out, NIXCACHE_SIGV4_ALGORITHM " Credential=",
                       sizeof(NIXCACHE_SIGV4_ALGORITHM " Credential=") - 1);
    nixcache_sigv4_put_str(&out, access_key_id);
    nixcache_sigv4_put(&out, "/", 1);
    nixcache_sigv4_put_scope(&out, req);
    nixcache_sigv4_put(&out, ", SignedHeaders=",
                       sizeof(", SignedHeaders=") - 1);
    nixcache_sigv4_put_signed_headers(&out, req);
    nixcache_sigv4_put(&out, ", Signature=", sizeof(", Signature=") - 1);
    nixcache_sigv4_put(&out, sig, sizeof(sig));

    return nixcache_sigv4_result(&out);
}


ssize_t
nixcache_sigv4_sign(char *dst, size_t cap,
    const nixcache_sigv4_request_t *req,
    const nixcache_sigv4_credentials_t *cred)
{
    ssize_t        n;
    unsigned char  key[NIXCACHE_SIGV4_KEY_LEN];

    if (nixcache_sigv4_signing_key(key, req, &cred->secret_access_key) != 0) {
        return -1;
    }

    n = nixcache_sigv4_authorization(dst, cap, req, &cred->access_key_id,
                                     key);

    OPENSSL_cleanse(key, sizeof(key));

    return n;
}


static int
nixcache_sigv4_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~';
}


static int
nixcache_sigv4_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v'
           || c == '\f';
}


/*
 * 1 if s is non-empty printable ASCII without white space and without any
 * of the forbidden characters.
 */

static int
nixcache_sigv4_token(const nixcache_sigv4_str_t *s, const char *forbidden)
{
    size_t         i;
    unsigned char  c;

    if (s->len == 0) {
        return 0;
    }

    for (i = 0; i < s->len; i++) {
        c = (unsigned char) s->data[i];

        if (c <= ' ' || c >= 0x7f || strchr(forbidden, c) != NULL) {
            return 0;
        }
    }

    return 1;
}


static int
nixcache_sigv4_check(const nixcache_sigv4_request_t *req)
{
    size_t       i;
    const char  *d;

    if (!nixcache_sigv4_token(&req->method, "")
        || !nixcache_sigv4_token(&req->uri, "?#")
        || req->uri.data[0] != '/'
        || !nixcache_sigv4_token(&req->payload_hash, "")
        || !nixcache_sigv4_token(&req->region, "/")
        || !nixcache_sigv4_token(&req->service, "/")
        || req->region.len > NIXCACHE_SIGV4_MAX_SCOPE_PART
        || req->service.len > NIXCACHE_SIGV4_MAX_SCOPE_PART)
    {
        return -1;
    }

    if (req->query.len > 0 && !nixcache_sigv4_token(&req->query, "#")) {
        return -1;
    }

    for (i = 0; i < req->nheaders; i++) {
        if (!nixcache_sigv4_token(&req->headers[i].name, ":;,")) {
            return -1;
        }
    }

    /* YYYYMMDDTHHMMSSZ */

    if (req->amz_date.len != NIXCACHE_SIGV4_DATE_LEN) {
        return -1;
    }

    d = req->amz_date.data;

    for (i = 0; i < NIXCACHE_SIGV4_DATE_LEN; i++) {
        if (i == 8) {
            if (d[i] != 'T') {
                return -1;
            }

        } else if (i == 15) {
            if (d[i] != 'Z') {
                return -1;
            }

        } else if (d[i] < '0' || d[i] > '9') {
            return -1;
        }
    }

    return 0;
}


static void
nixcache_sigv4_put(nixcache_sigv4_out_t *out, const void *p, size_t n)
{
    size_t  room;

    if (n == 0) {
        return;
    }

    if (out->md != NULL && EVP_DigestUpdate(out->md, p, n) != 1) {
        out->failed = 1;
    }

    if (out->dst != NULL && out->len < out->cap) {
        room = out->cap - out->len;
        memcpy(out->dst + out->len, p, n < room ? n : room);
    }

    out->len += n;
}


static void
nixcache_sigv4_put_str(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_str_t *s)
{
    nixcache_sigv4_put(out, s->data, s->len);
}


static void
nixcache_sigv4_put_encoded(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_str_t *s, unsigned flags)
{
    char    pct[3];
    size_t  i, run;

    /* runs of bytes kept as they are go out in one piece */

    i = 0;

    while (i < s->len) {
        run = i;

        while (run < s->len
               && nixcache_sigv4_unreserved((unsigned char) s->data[run]))
        {
            run++;
        }

        nixcache_sigv4_put(out, s->data + i, run - i);

        if (run == s->len) {
            break;
        }

        (void) nixcache_sigv4_uri_encode(pct, s->data + run, 1, flags);
        nixcache_sigv4_put(out, pct, pct[0] == '%' ? 3 : 1);

        i = run + 1;
    }
}


static void
nixcache_sigv4_put_lower(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_str_t *s)
{
    char    buf[64], c;
    size_t  i, n;

    n = 0;

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c >= 'A' && c <= 'Z') {
            c = (char) (c - 'A' + 'a');
        }

        buf[n++] = c;

        if (n == sizeof(buf)) {
            nixcache_sigv4_put(out, buf, n);
            n = 0;
        }
    }

    nixcache_sigv4_put(out, buf, n);
}


/* The value without outer white space, each inner run of it as one space. */

static void
nixcache_sigv4_put_trimmed(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_str_t *s)
{
    int          first;
    size_t       i, word;
    const char  *p;

    p = s->data;
    i = 0;
    first = 1;

    for ( ;; ) {
        while (i < s->len && nixcache_sigv4_space((unsigned char) p[i])) {
            i++;
        }

        if (i == s->len) {
            return;
        }

        word = i;

        while (i < s->len && !nixcache_sigv4_space((unsigned char) p[i])) {
            i++;
        }

        if (!first) {
            nixcache_sigv4_put(out, " ", 1);
        }

        nixcache_sigv4_put(out, p + word, i - word);
        first = 0;
    }
}


static ssize_t
nixcache_sigv4_result(const nixcache_sigv4_out_t *out)
{
    if (out->failed || out->len > (size_t) SSIZE_MAX) {
        return -1;
    }

    return (ssize_t) out->len;
}


/*
 * Orders two different bytes as their encoded forms order: a kept byte is
 * itself, any other is "%XX", and '%' sorts below every kept byte while
 * upper-case hex sorts as the byte's value.  Since no encoded form is a
 * prefix of another, comparing byte by byte this way orders whole encoded
 * strings without writing them out.
 */

static int
nixcache_sigv4_byte_cmp(unsigned char a, unsigned char b)
{
    int  ua, ub;

    ua = nixcache_sigv4_unreserved(a);
    ub = nixcache_sigv4_unreserved(b);

    if (ua && !ub) {
        return (int) a - '%';
    }

    if (!ua && ub) {
        return '%' - (int) b;
    }

    return (int) a - (int) b;
}


static int
nixcache_sigv4_encoded_cmp(const nixcache_sigv4_str_t *a,
    const nixcache_sigv4_str_t *b)
{
    size_t         i, n;
    unsigned char  ca, cb;

    n = a->len < b->len ? a->len : b->len;

    for (i = 0; i < n; i++) {
        ca = (unsigned char) a->data[i];
        cb = (unsigned char) b->data[i];

        if (ca != cb) {
            return nixcache_sigv4_byte_cmp(ca, cb);
        }
    }

    return (a->len > b->len) - (a->len < b->len);
}


static int
nixcache_sigv4_param_cmp(const nixcache_sigv4_pair_t *params, size_t i,
    size_t j)
{
    int  rc;

    rc = nixcache_sigv4_encoded_cmp(&params[i].name, &params[j].name);

    if (rc == 0) {
        rc = nixcache_sigv4_encoded_cmp(&params[i].value, &params[j].value);
    }

    if (rc == 0) {
        rc = (i > j) - (i < j);
    }

    return rc;
}


static int
nixcache_sigv4_name_cmp(const nixcache_sigv4_str_t *a,
    const nixcache_sigv4_str_t *b)
{
    size_t         i, n;
    unsigned char  ca, cb;

    n = a->len < b->len ? a->len : b->len;

    for (i = 0; i < n; i++) {
        ca = (unsigned char) a->data[i];
        cb = (unsigned char) b->data[i];

        if (ca >= 'A' && ca <= 'Z') {
            ca = (unsigned char) (ca - 'A' + 'a');
        }

        if (cb >= 'A' && cb <= 'Z') {
            cb = (unsigned char) (cb - 'A' + 'a');
        }

        if (ca != cb) {
            return (int) ca - (int) cb;
        }
    }

    return (a->len > b->len) - (a->len < b->len);
}


/*
 * The first header whose name sorts right after that of header prev (-1:
 * the first name of all), or -1 when none is left.
 */

static ssize_t
nixcache_sigv4_next_header(const nixcache_sigv4_request_t *req, ssize_t prev)
{
    size_t                        i;
    ssize_t                       best;
    const nixcache_sigv4_pair_t  *h;

    h = req->headers;
    best = -1;

    for (i = 0; i < req->nheaders; i++) {
        if (prev >= 0 && nixcache_sigv4_name_cmp(&h[i].name, &h[prev].name)
                         <= 0)
        {
            continue;
        }

        if (best < 0 || nixcache_sigv4_name_cmp(&h[i].name, &h[best].name)
                        < 0)
        {
            best = (ssize_t) i;
        }
    }

    return best;
}


static void
nixcache_sigv4_put_canonical_request(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_request_t *req)
{
    int                           first;
    size_t                        j;
    ssize_t                       i;
    const nixcache_sigv4_pair_t  *h;

    h = req->headers;

    nixcache_sigv4_put_str(out, &req->method);
    nixcache_sigv4_put(out, "\n", 1);
    nixcache_sigv4_put_str(out, &req->uri);
    nixcache_sigv4_put(out, "\n", 1);
    nixcache_sigv4_put_str(out, &req->query);
    nixcache_sigv4_put(out, "\n", 1);

    for (i = nixcache_sigv4_next_header(req, -1);
         i >= 0;
         i = nixcache_sigv4_next_header(req, i))
    {
        nixcache_sigv4_put_lower(out, &h[i].name);
        nixcache_sigv4_put(out, ":", 1);

        first = 1;

        for (j = (size_t) i; j < req->nheaders; j++) {
            if (nixcache_sigv4_name_cmp(&h[j].name, &h[i].name) != 0) {
                continue;
            }

            if (!first) {
                nixcache_sigv4_put(out, ",", 1);
            }

            nixcache_sigv4_put_trimmed(out, &h[j].value);
            first = 0;
        }

        nixcache_sigv4_put(out, "\n", 1);
    }

    nixcache_sigv4_put(out, "\n", 1);
    nixcache_sigv4_put_signed_headers(out, req);
    nixcache_sigv4_put(out, "\n", 1);
    nixcache_sigv4_put_str(out, &req->payload_hash);
}


static void
nixcache_sigv4_put_signed_headers(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_request_t *req)
{
    ssize_t  i, first;

    first = nixcache_sigv4_next_header(req, -1);

    for (i = first; i >= 0; i = nixcache_sigv4_next_header(req, i)) {
        if (i != first) {
            nixcache_sigv4_put(out, ";", 1);
        }

        nixcache_sigv4_put_lower(out, &req->headers[i].name);
    }
}


static void
nixcache_sigv4_put_scope(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_request_t *req)
{
    nixcache_sigv4_put(out, req->amz_date.data, NIXCACHE_SIGV4_DAY_LEN);
    nixcache_sigv4_put(out, "/", 1);
    nixcache_sigv4_put_str(out, &req->region);
    nixcache_sigv4_put(out, "/", 1);
    nixcache_sigv4_put_str(out, &req->service);
    nixcache_sigv4_put(out, "/" NIXCACHE_SIGV4_TERMINATOR,
                       sizeof("/" NIXCACHE_SIGV4_TERMINATOR) - 1);
}


static int
nixcache_sigv4_put_string_to_sign(nixcache_sigv4_out_t *out,
    const nixcache_sigv4_request_t *req)
{
    int                    rc;
    char                   hex[NIXCACHE_SIGV4_HEX_LEN];
    unsigned int           n;
    unsigned char          digest[EVP_MAX_MD_SIZE];
    nixcache_sigv4_out_t   hash;

    memset(&hash, 0, sizeof(hash));

    hash.md = EVP_MD_CTX_new();
    if (hash.md == NULL) {
        return -1;
    }

    rc = -1;

    if (EVP_DigestInit_ex(hash.md, EVP_sha256(), NULL) != 1) {
        goto failed;
    }

    nixcache_sigv4_put_canonical_request(&hash, req);

    if (hash.failed || EVP_DigestFinal_ex(hash.md, digest, &n) != 1
        || n * 2 != NIXCACHE_SIGV4_HEX_LEN)
    {
        goto failed;
    }

    nixcache_sigv4_hex(hex, digest, n);

    nixcache_sigv4_put(out, NIXCACHE_SIGV4_ALGORITHM "\n",
                       sizeof(NIXCACHE_SIGV4_ALGORITHM "\n") - 1);
    nixcache_sigv4_put_str(out, &req->amz_date);
    nixcache_sigv4_put(out, "\n", 1);
    nixcache_sigv4_put_scope(out, req);
    nixcache_sigv4_put(out, "\n", 1);
    nixcache_sigv4_put(out, hex, sizeof(hex));

    rc = 0;

failed:

    EVP_MD_CTX_free(hash.md);

    return rc;
}


static int
nixcache_sigv4_hmac(unsigned char *mac, const void *key, size_t key_len,
    const void *p, size_t n)
{
    unsigned int   len;
    unsigned char  buf[EVP_MAX_MD_SIZE];

    /* HMAC() may not write its result over its own key */

    if (key_len > (size_t) 0x7fffffff
        || HMAC(EVP_sha256(), key, (int) key_len, p, n, buf, &len) == NULL
        || len != NIXCACHE_SIGV4_KEY_LEN)
    {
        return -1;
    }

    memcpy(mac, buf, NIXCACHE_SIGV4_KEY_LEN);
    OPENSSL_cleanse(buf, sizeof(buf));

    return 0;
}


static void
nixcache_sigv4_hex(char *dst, const unsigned char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        dst[2 * i] = nixcache_sigv4_hex_digits[p[i] >> 4];
        dst[2 * i + 1] = nixcache_sigv4_hex_digits[p[i] & 0x0f];
    }
}
