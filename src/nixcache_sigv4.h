/*
 * AWS Signature Version 4 (header form, "AWS4-HMAC-SHA256") as pure
 * functions over byte strings: the S3 tier signs its requests with it.
 *
 * Results go to caller-supplied buffers and the canonical request is
 * hashed as it is produced, so no scratch buffer is needed (OpenSSL only
 * allocates its short-lived digest contexts).  Functions that write text
 * behave like snprintf without the NUL: they return the length of the
 * whole result and write at most cap bytes of it (dst may be NULL when cap
 * is 0, to learn the length), or return -1 when the request is invalid.
 *
 * What the caller provides, and how it must match the request it sends:
 *
 *   uri      the path exactly as it goes on the request line, already
 *            encoded: for S3 "/" bucket "/" key (path style) or "/" key
 *            (virtual-host style), the key passed through
 *            nixcache_sigv4_uri_encode(..., NIXCACHE_SIGV4_PATH).
 *            It is signed verbatim: S3 wants it encoded once and not
 *            normalised ("//" and "/../" stay), unlike other AWS services.
 *   query    the canonical query string made by nixcache_sigv4_query(); it
 *            is also a valid query string to send after "?".
 *   headers  every header to sign, in any order and letter case, each also
 *            sent: at least "host" and "x-amz-date" (equal to amz_date),
 *            for S3 "x-amz-content-sha256" (equal to payload_hash), and
 *            "x-amz-security-token" with temporary credentials.  Names are
 *            lowercased, values trimmed with inner runs of white space
 *            folded to one space, repeated names joined by "," in the given
 *            order, names sorted.  Sorting is quadratic: meant for the
 *            handful of headers a request signs.
 *
 * A GET of an object, in short (error checks left out):
 *
 *     nixcache_sigv4_amz_date(date, time(NULL));
 *     uri[0] = '/';  copy bucket, '/', then
 *     n = nixcache_sigv4_uri_encode(uri + 1 + blen + 1, key, klen,
 *                                   NIXCACHE_SIGV4_PATH);
 *     headers: { "host", "<bucket host>" },
 *              { "x-amz-content-sha256", NIXCACHE_SIGV4_EMPTY_SHA256 },
 *              { "x-amz-date", date }
 *     req.method = "GET", req.uri = uri, req.query = "" (or the result of
 *     nixcache_sigv4_query()), req.payload_hash = EMPTY_SHA256,
 *     req.region, req.service = "s3", req.amz_date = date
 *     len = nixcache_sigv4_sign(auth, sizeof(auth), &req, &cred);
 *     if (len == -1 || (size_t) len > sizeof(auth)) -> fail
 *     send "GET <uri>[?<query>]" with those headers and
 *     "Authorization: <auth>".
 */

#ifndef NIXCACHE_SIGV4_H
#define NIXCACHE_SIGV4_H

#include <stddef.h>
#include <time.h>
#include <sys/types.h>


#define NIXCACHE_SIGV4_ALGORITHM        "AWS4-HMAC-SHA256"
#define NIXCACHE_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define NIXCACHE_SIGV4_EMPTY_SHA256                                          \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#define NIXCACHE_SIGV4_DATE_LEN         16  /* "YYYYMMDDTHHMMSSZ" */
#define NIXCACHE_SIGV4_KEY_LEN          32  /* signing key, binary */
#define NIXCACHE_SIGV4_HEX_LEN          64  /* signature or hash, hex */

/* Limits that keep every intermediate string on the stack. */
#define NIXCACHE_SIGV4_MAX_SECRET       128
#define NIXCACHE_SIGV4_MAX_SCOPE_PART   64  /* region, service */

/* nixcache_sigv4_uri_encode() flags */
#define NIXCACHE_SIGV4_PATH             1   /* keep '/' */


typedef struct {
    size_t                     len;
    const char                *data;
} nixcache_sigv4_str_t;


/* A header (name, value) or a query parameter (raw name, raw value). */
typedef struct {
    nixcache_sigv4_str_t       name;
    nixcache_sigv4_str_t       value;
} nixcache_sigv4_pair_t;


typedef struct {
    nixcache_sigv4_str_t          method;        /* "GET", upper case */
    nixcache_sigv4_str_t          uri;           /* encoded path */
    nixcache_sigv4_str_t          query;         /* canonical, or empty */
    const nixcache_sigv4_pair_t  *headers;
    size_t                        nheaders;
    nixcache_sigv4_str_t          payload_hash;  /* hex SHA-256 of the
                                                    body, or
                                                    UNSIGNED-PAYLOAD */
    nixcache_sigv4_str_t          region;        /* "us-east-1" */
    nixcache_sigv4_str_t          service;       /* "s3" */
    nixcache_sigv4_str_t          amz_date;      /* "YYYYMMDDTHHMMSSZ" */
} nixcache_sigv4_request_t;


typedef struct {
    nixcache_sigv4_str_t       access_key_id;
    nixcache_sigv4_str_t       secret_access_key;
} nixcache_sigv4_credentials_t;


/*
 * Writes NIXCACHE_SIGV4_DATE_LEN characters (no NUL): t in UTC as
 * "YYYYMMDDTHHMMSSZ".  Returns 0, or -1 if t has no such form.
 */
int nixcache_sigv4_amz_date(char *dst, time_t t);

/*
 * Writes the payload hash of a body: NIXCACHE_SIGV4_HEX_LEN lower-case hex
 * characters (no NUL) of its SHA-256.  Returns 0 or -1.
 */
int nixcache_sigv4_payload_hash(char *hex, const void *body, size_t len);

/*
 * Percent-encodes len bytes the AWS way: A-Z a-z 0-9 - . _ ~ are kept,
 * every other byte becomes %XX (upper-case hex); with NIXCACHE_SIGV4_PATH
 * '/' is kept too.  Returns the encoded length (at most 3 * len); with dst
 * NULL only counts.
 */
size_t nixcache_sigv4_uri_encode(char *dst, const char *src, size_t len,
    unsigned flags);

/*
 * The canonical query string of n raw (unencoded) parameters: each name and
 * value encoded, pairs sorted by encoded name then encoded value, written
 * as "name=value" joined by "&" (an empty value gives "name=").
 */
ssize_t nixcache_sigv4_query(char *dst, size_t cap,
    const nixcache_sigv4_pair_t *params, size_t n);

/* The canonical request (step 1), as AWS documents and tests it. */
ssize_t nixcache_sigv4_canonical_request(char *dst, size_t cap,
    const nixcache_sigv4_request_t *req);

/* The string to sign (step 2). */
ssize_t nixcache_sigv4_string_to_sign(char *dst, size_t cap,
    const nixcache_sigv4_request_t *req);

/*
 * The signing key (step 3), NIXCACHE_SIGV4_KEY_LEN bytes: it depends only
 * on the secret, the day of amz_date, region and service, so a caller may
 * keep it for the day.  Returns 0 or -1.
 */
int nixcache_sigv4_signing_key(unsigned char *key,
    const nixcache_sigv4_request_t *req, const nixcache_sigv4_str_t *secret);

/*
 * The signature (step 4): NIXCACHE_SIGV4_HEX_LEN lower-case hex characters
 * (no NUL).  Returns 0 or -1.
 */
int nixcache_sigv4_signature(char *hex, const nixcache_sigv4_request_t *req,
    const unsigned char *key);

/*
 * The Authorization header value made with a signing key:
 * "AWS4-HMAC-SHA256 Credential=<id>/<day>/<region>/<service>/aws4_request,
 * SignedHeaders=<names>, Signature=<hex>".
 */
ssize_t nixcache_sigv4_authorization(char *dst, size_t cap,
    const nixcache_sigv4_request_t *req,
    const nixcache_sigv4_str_t *access_key_id, const unsigned char *key);

/* All steps: the Authorization header value for a request. */
ssize_t nixcache_sigv4_sign(char *dst, size_t cap,
    const nixcache_sigv4_request_t *req,
    const nixcache_sigv4_credentials_t *cred);


#endif /* NIXCACHE_SIGV4_H */
