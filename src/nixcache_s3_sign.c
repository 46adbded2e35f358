/*
 * Where an S3 request goes and what makes it signed (see nixcache_s3.h):
 * bucket names, the endpoint and its addressing style, the credentials
 * files and environment, the SigV4 headers of a request.  The CLI's client
 * (nixcache_s3.c) and the module's fetches (ngx_http_nixcache_s3.c) both
 * use these; nothing here does I/O but reading a credentials file.
 */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "nixcache_file.h"
#include "nixcache_s3.h"
#include "nixcache_sigv4.h"


int
nixcache_s3_bucket_valid(const char *bucket, size_t len)
{
    size_t  i;

    if (len == 0 || len > NIXCACHE_S3_BUCKET_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((bucket[i] >= 'a' && bucket[i] <= 'z')
              || (bucket[i] >= '0' && bucket[i] <= '9')
              || bucket[i] == '-' || bucket[i] == '.'))
        {
            return 0;
        }
    }

    return 1;
}


int
nixcache_s3_endpoint_parse(nixcache_s3_endpoint_t *ep, const char *endpoint,
    size_t len, const char *bucket, int path_style, char *err, size_t errlen)
{
    int          ip;
    size_t       scheme_len, host_len, blen, n;
    const char  *host, *end, *last, *p;

    last = endpoint + len;
    blen = strlen(bucket);

    if (len > 7 && strncmp(endpoint, "http://", 7) == 0) {
        scheme_len = 7;

    } else if (len > 8 && strncmp(endpoint, "https://", 8) == 0) {
        scheme_len = 8;

    } else {
        nixcache_s3_message(err, errlen, "not http(s)://host[:port]");
        return -1;
    }

    host = endpoint + scheme_len;

    for (end = host; end < last && *end != '/'; end++) {
        if ((unsigned char) *end <= ' ' || *end == '@' || *end == '?'
            || *end == '#')
        {
            nixcache_s3_message(err, errlen, "not http(s)://host[:port] "
                                "(no user, query or fragment)");
            return -1;
        }
    }

    if (end < last && end + 1 != last) {
        nixcache_s3_message(err, errlen, "an endpoint has no path (keys go "
                            "under the prefix)");
        return -1;
    }

    host_len = end - host;

    if (host_len == 0 || host_len + 1 + blen > NIXCACHE_S3_HOST_MAX) {
        nixcache_s3_message(err, errlen, "the host is empty or too long");
        return -1;
    }

    /* IP addresses and localhost cannot take the bucket as a subdomain */

    ip = 1;

    if (host[0] != '[') {
        p = memchr(host, ':', host_len);
        n = (p != NULL) ? (size_t) (p - host) : host_len;

        for (p = host; p < host + n; p++) {
            if ((*p < '0' || *p > '9') && *p != '.') {
                ip = 0;
                break;
            }
        }

        if (n == 9 && strncasecmp(host, "localhost", 9) == 0) {
            ip = 1;
        }
    }

    ep->path_style = (path_style == -1) ? ip : path_style;

    if (!ep->path_style && ip) {
        nixcache_s3_message(err, errlen, "virtual-host addressing needs a "
                            "DNS name, not \"%.*s\"", (int) host_len, host);
        return -1;
    }

    if (ep->path_style) {
        snprintf(ep->host, sizeof(ep->host), "%.*s", (int) host_len, host);
        snprintf(ep->path, sizeof(ep->path), "/%s", bucket);

    } else {
        snprintf(ep->host, sizeof(ep->host), "%s.%.*s", bucket,
                 (int) host_len, host);
        ep->path[0] = '\0';
    }

    snprintf(ep->base, sizeof(ep->base), "%.*s%s", (int) scheme_len,
             endpoint, ep->host);

    return 0;
}


struct curl_slist *
nixcache_s3_signed_headers(const nixcache_s3_endpoint_t *ep,
    const char *method, const char *uri, size_t uri_len, const char *region,
    size_t region_len, const nixcache_s3_credentials_t *cred,
    const char *payload_hash, time_t now, char *err, size_t errlen)
{
    char                           date[NIXCACHE_SIGV4_DATE_LEN + 1];
    char                           auth[1024];
    char                           line[sizeof("x-amz-security-token: ")
                                        + sizeof(cred->token)];
    ssize_t                        alen;
    struct curl_slist             *hl, *h;
    nixcache_sigv4_pair_t          hdr[4];
    nixcache_sigv4_request_t       sr;
    nixcache_sigv4_credentials_t   sc;

    if (payload_hash == NULL) {
        payload_hash = NIXCACHE_SIGV4_EMPTY_SHA256;
    }

    if (nixcache_sigv4_amz_date(date, now) != 0) {
        nixcache_s3_message(err, errlen, "cannot format the date");
        return NULL;
    }

    date[NIXCACHE_SIGV4_DATE_LEN] = '\0';

    hdr[0].name.data = "host";
    hdr[0].name.len = 4;
    hdr[0].value.data = ep->host;
    hdr[0].value.len = strlen(ep->host);
    hdr[1].name.data = "x-amz-content-sha256";
    hdr[1].name.len = sizeof("x-amz-content-sha256") - 1;
    hdr[1].value.data = payload_hash;
    hdr[1].value.len = NIXCACHE_SIGV4_HEX_LEN;
    hdr[2].name.data = "x-amz-date";
    hdr[2].name.len = sizeof("x-amz-date") - 1;
    hdr[2].value.data = date;
    hdr[2].value.len = NIXCACHE_SIGV4_DATE_LEN;

    /* temporary credentials: the session token is sent and signed */
    hdr[3].name.data = "x-amz-security-token";
    hdr[3].name.len = sizeof("x-amz-security-token") - 1;
    hdr[3].value.data = cred->token;
    hdr[3].value.len = strlen(cred->token);

    memset(&sr, 0, sizeof(nixcache_sigv4_request_t));
    sr.method.data = method;
    sr.method.len = strlen(method);
    sr.uri.data = uri;
    sr.uri.len = uri_len;
    sr.query.data = "";
    sr.query.len = 0;
    sr.headers = hdr;
    sr.nheaders = (hdr[3].value.len != 0) ? 4 : 3;
    sr.payload_hash.data = payload_hash;
    sr.payload_hash.len = NIXCACHE_SIGV4_HEX_LEN;
    sr.region.data = region;
    sr.region.len = region_len;
    sr.service.data = "s3";
    sr.service.len = 2;
    sr.amz_date.data = date;
    sr.amz_date.len = NIXCACHE_SIGV4_DATE_LEN;

    sc.access_key_id.data = cred->key_id;
    sc.access_key_id.len = strlen(cred->key_id);
    sc.secret_access_key.data = cred->secret;
    sc.secret_access_key.len = strlen(cred->secret);

    alen = nixcache_sigv4_sign(auth, sizeof(auth) - 1, &sr, &sc);
    if (alen < 0 || (size_t) alen >= sizeof(auth) - 1) {
        nixcache_s3_message(err, errlen, "cannot sign the request");
        return NULL;
    }

    auth[alen] = '\0';

    hl = NULL;

#define NIXCACHE_S3_HEADER(fmt, arg)                                         \
    snprintf(line, sizeof(line), fmt, arg);                                  \
    h = curl_slist_append(hl, line);                                         \
    if (h == NULL) {                                                         \
        goto nomem;                                                          \
    }                                                                        \
    hl = h

    NIXCACHE_S3_HEADER("Host: %s", ep->host);
    NIXCACHE_S3_HEADER("x-amz-content-sha256: %s", payload_hash);
    NIXCACHE_S3_HEADER("x-amz-date: %s", date);
    NIXCACHE_S3_HEADER("Authorization: %s", auth);

    if (hdr[3].value.len != 0) {
        NIXCACHE_S3_HEADER("x-amz-security-token: %s", cred->token);
    }

#undef NIXCACHE_S3_HEADER

    return hl;

nomem:

    curl_slist_free_all(hl);
    nixcache_s3_message(err, errlen, "out of memory");
    return NULL;
}


int
nixcache_s3_credentials_parse(nixcache_s3_credentials_t *cred,
    const char *text, size_t len, char *err, size_t errlen)
{
    char         line[4 * NIXCACHE_S3_CRED_MAX + 64];
    char        *p, *v, *end, *dst;
    size_t       cap, n;
    unsigned     bare;
    const char  *t, *last, *nl;

    memset(cred, 0, sizeof(nixcache_s3_credentials_t));

    bare = 0;
    last = text + len;

    for (t = text; t < last; t = nl + 1) {
        nl = memchr(t, '\n', last - t);
        if (nl == NULL) {
            nl = last;
        }

        n = nl - t;
        if (n >= sizeof(line)) {
            nixcache_s3_message(err, errlen, "a line is too long");
            goto failed;
        }

        memcpy(line, t, n);
        line[n] = '\0';

        if (memchr(line, '\0', n) != NULL) {
            nixcache_s3_message(err, errlen, "a line holds a NUL byte");
            goto failed;
        }

        end = line + n;
        while (end > line && isspace((unsigned char) end[-1])) {
            *--end = '\0';
        }

        p = line;
        while (isspace((unsigned char) *p)) {
            p++;
        }

        if (*p == '\0' || *p == '#' || *p == '[') {
            continue;
        }

        v = strchr(p, '=');

        if (v != NULL && bare == 0) {
            end = v;
            while (end > p && isspace((unsigned char) end[-1])) {
                end--;
            }
            *end = '\0';

            v++;
            while (isspace((unsigned char) *v)) {
                v++;
            }

            if (strcasecmp(p, "aws_access_key_id") == 0) {
                dst = cred->key_id;
                cap = sizeof(cred->key_id);

            } else if (strcasecmp(p, "aws_secret_access_key") == 0) {
                dst = cred->secret;
                cap = NIXCACHE_SIGV4_MAX_SECRET + 1;

            } else if (strcasecmp(p, "aws_session_token") == 0) {
                dst = cred->token;
                cap = sizeof(cred->token);

            } else {
                continue;
            }

        } else {
            if (bare == 0) {
                dst = cred->key_id;
                cap = sizeof(cred->key_id);

            } else if (bare == 1) {
                dst = cred->secret;
                cap = NIXCACHE_SIGV4_MAX_SECRET + 1;

            } else if (bare == 2) {
                dst = cred->token;
                cap = sizeof(cred->token);

            } else {
                break;
            }

            bare++;
            v = p;
        }

        if (strlen(v) >= cap) {
            nixcache_s3_message(err, errlen, "a value is too long");
            goto failed;
        }

        strcpy(dst, v);
    }

    explicit_bzero(line, sizeof(line));

    if (cred->key_id[0] == '\0' || cred->secret[0] == '\0') {
        nixcache_s3_message(err, errlen, "need an access key id and a "
                            "secret access key (two lines, or "
                            "AWS_ACCESS_KEY_ID=... and "
                            "AWS_SECRET_ACCESS_KEY=...)");
        nixcache_s3_credentials_wipe(cred);
        return -1;
    }

    return 0;

failed:

    explicit_bzero(line, sizeof(line));
    nixcache_s3_credentials_wipe(cred);
    return -1;
}


int
nixcache_s3_credentials_file(nixcache_s3_credentials_t *cred,
    const char *file, char *err, size_t errlen)
{
    int      rc;
    char     buf[NIXCACHE_S3_CRED_FILE_MAX + 1];
    char     msg[NIXCACHE_S3_ERROR_MAX];
    size_t   len;
    ssize_t  n;

    n = nixcache_file_read_small(file, buf, sizeof(buf));

    if (n == -1 && errno == EFBIG) {
        nixcache_s3_message(err, errlen, "S3: credentials %s: larger than %d "
                            "bytes", file, NIXCACHE_S3_CRED_FILE_MAX);
        return -1;
    }

    if (n == -1) {
        nixcache_s3_message(err, errlen, "S3: credentials %s: %s", file,
                            strerror(errno));
        return -1;
    }

    len = n;

    rc = nixcache_s3_credentials_parse(cred, buf, len, msg, sizeof(msg));
    explicit_bzero(buf, sizeof(buf));

    if (rc != 0) {
        nixcache_s3_message(err, errlen, "S3: credentials %s: %s", file, msg);
    }

    return rc;
}


int
nixcache_s3_credentials_env(nixcache_s3_credentials_t *cred, char *err,
    size_t errlen)
{
    const char  *id, *secret, *token;

    memset(cred, 0, sizeof(nixcache_s3_credentials_t));

    id = getenv("AWS_ACCESS_KEY_ID");
    secret = getenv("AWS_SECRET_ACCESS_KEY");
    token = getenv("AWS_SESSION_TOKEN");

    if (id == NULL || id[0] == '\0' || secret == NULL || secret[0] == '\0') {
        nixcache_s3_message(err, errlen, "S3: no credentials: set "
                            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                            "or --s3-credentials FILE");
        return -1;
    }

    if (strlen(id) >= sizeof(cred->key_id)
        || strlen(secret) > NIXCACHE_SIGV4_MAX_SECRET
        || (token != NULL && strlen(token) >= sizeof(cred->token)))
    {
        nixcache_s3_message(err, errlen, "S3: credentials too long");
        return -1;
    }

    strcpy(cred->key_id, id);
    strcpy(cred->secret, secret);
    if (token != NULL) {
        strcpy(cred->token, token);
    }

    return 0;
}


void
nixcache_s3_credentials_wipe(nixcache_s3_credentials_t *cred)
{
    explicit_bzero(cred, sizeof(nixcache_s3_credentials_t));
}
