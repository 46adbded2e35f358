/*
 * The S3 client (see nixcache_s3.h): libcurl multi, SigV4 from the core.
 *
 * Every attempt is signed anew (the date is part of the signature).  The
 * payload hash of a PUT is the SHA-256 of its body, sent as
 * x-amz-content-sha256, so S3 checks the body it received.
 */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include <curl/curl.h>

#include "nixcache_s3.h"
#include "nixcache_cid.h"
#include "nixcache_sigv4.h"


#define NIXCACHE_S3_BACKOFF_BASE    0.1     /* seconds */
#define NIXCACHE_S3_BACKOFF_MAX     10.0
#define NIXCACHE_S3_CONNECT_TIMEOUT 10L


struct nixcache_s3_s {
    CURLM                     *multi;
    nixcache_s3_endpoint_t     ep;
    const char                *bucket;
    const char                *region;
    const char                *prefix;
    nixcache_s3_credentials_t  cred;
    unsigned                   max_inflight;
    unsigned                   max_attempts;
    unsigned                   timeout;
    unsigned                   inflight;    /* submitted, not done */
    nixcache_s3_req_t         *delayed;     /* waiting to retry */
    uint64_t                   requests;
    uint64_t                   retries;
    char                       describe[512];
    char                       error[NIXCACHE_S3_ERROR_MAX];
};


static int nixcache_s3_start(nixcache_s3_t *s3, nixcache_s3_req_t *req);
static int nixcache_s3_step(nixcache_s3_t *s3, int timeout_ms);
static void nixcache_s3_finish(nixcache_s3_t *s3, nixcache_s3_req_t *req,
    CURLcode cc);
static void nixcache_s3_release(nixcache_s3_t *s3,
    nixcache_s3_req_t *req);
static size_t nixcache_s3_write(char *p, size_t size, size_t n, void *data);
static size_t nixcache_s3_header(char *p, size_t size, size_t n,
    void *data);
static void nixcache_s3_xml_code(const char *body, size_t len, char *dst,
    size_t cap);
static double nixcache_s3_now(void);
static void nixcache_s3_copy(char *dst, size_t cap, const char *src,
    size_t len);


nixcache_s3_t *
nixcache_s3_open(const nixcache_s3_conf_t *conf, char *err, size_t errlen)
{
    char            reason[NIXCACHE_S3_ERROR_MAX];
    nixcache_s3_t  *s3;

    if (conf->endpoint == NULL || conf->bucket == NULL
        || conf->bucket[0] == '\0')
    {
        nixcache_s3_message(err, errlen,
                            "S3: --s3-endpoint and --s3-bucket go together");
        return NULL;
    }

    if (!nixcache_s3_bucket_valid(conf->bucket, strlen(conf->bucket))) {
        nixcache_s3_message(err, errlen, "S3: invalid bucket name \"%s\" "
                            "(1 to 63 of a-z, 0-9, '.' and '-')",
                            conf->bucket);
        return NULL;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        nixcache_s3_message(err, errlen, "S3: cannot initialise libcurl");
        return NULL;
    }

    s3 = calloc(1, sizeof(nixcache_s3_t));
    if (s3 == NULL) {
        nixcache_s3_message(err, errlen, "out of memory");
        return NULL;
    }

    s3->bucket = conf->bucket;
    s3->region = conf->region ? conf->region : NIXCACHE_S3_REGION_DEFAULT;
    s3->prefix = conf->prefix ? conf->prefix : NIXCACHE_S3_PREFIX_DEFAULT;
    s3->max_inflight = conf->inflight ? conf->inflight
                                      : NIXCACHE_S3_INFLIGHT_DEFAULT;
    s3->max_attempts = conf->attempts ? conf->attempts
                                      : NIXCACHE_S3_ATTEMPTS_DEFAULT;
    s3->timeout = conf->timeout ? conf->timeout : NIXCACHE_S3_TIMEOUT_DEFAULT;

    if (strlen(s3->region) > NIXCACHE_SIGV4_MAX_SCOPE_PART) {
        nixcache_s3_message(err, errlen, "S3: region name too long");
        goto failed;
    }

    if (strlen(s3->prefix) > NIXCACHE_S3_KEY_MAX / 2) {
        nixcache_s3_message(err, errlen, "S3: key prefix too long");
        goto failed;
    }

    if (nixcache_s3_endpoint_parse(&s3->ep, conf->endpoint,
                                   strlen(conf->endpoint), conf->bucket,
                                   conf->path_style, reason, sizeof(reason))
        != 0)
    {
        nixcache_s3_message(err, errlen, "S3: endpoint \"%s\": %s",
                            conf->endpoint, reason);
        goto failed;
    }

    if (conf->cred != NULL) {
        s3->cred = *conf->cred;

    } else if (conf->credentials != NULL) {
        if (nixcache_s3_credentials_file(&s3->cred, conf->credentials,
                                         err, errlen)
            != 0)
        {
            goto failed;
        }

    } else if (nixcache_s3_credentials_env(&s3->cred, err, errlen) != 0) {
        goto failed;
    }

    s3->multi = curl_multi_init();
    if (s3->multi == NULL) {
        nixcache_s3_message(err, errlen,
                            "S3: cannot create a curl multi handle");
        goto failed;
    }

    curl_multi_setopt(s3->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long) s3->max_inflight);

    snprintf(s3->describe, sizeof(s3->describe), "%s%s/%s",
             s3->ep.base, s3->ep.path, s3->prefix);

    srandom((unsigned) (time(NULL) ^ getpid()));

    return s3;

failed:

    nixcache_s3_close(s3);
    return NULL;
}


void
nixcache_s3_close(nixcache_s3_t *s3)
{
    if (s3 == NULL) {
        return;
    }

    if (s3->multi != NULL) {
        curl_multi_cleanup(s3->multi);
    }

    nixcache_s3_credentials_wipe(&s3->cred);

    free(s3);
}


void
nixcache_s3_message(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  args;

    if (errlen == 0) {
        return;
    }

    va_start(args, fmt);
    vsnprintf(err, errlen, fmt, args);
    va_end(args);
}


int
nixcache_s3_chunk_key(nixcache_s3_t *s3, char *dst, size_t cap,
    const unsigned char *digest)
{
    char    rel[NIXCACHE_CHUNK_RELPATH_LEN + 1];
    size_t  n;

    n = strlen(s3->prefix);

    if (n + NIXCACHE_CHUNK_RELPATH_LEN > cap) {
        return -1;
    }

    /* "/xx/CID" without its leading slash */
    nixcache_chunk_relpath(rel, digest);
    rel[NIXCACHE_CHUNK_RELPATH_LEN] = '\0';

    memcpy(dst, s3->prefix, n);
    memcpy(dst + n, rel + 1, NIXCACHE_CHUNK_RELPATH_LEN);

    return 0;
}


int
nixcache_s3_submit(nixcache_s3_t *s3, nixcache_s3_req_t *req)
{
    while (s3->inflight >= s3->max_inflight) {
        if (nixcache_s3_step(s3, 100) != 0) {
            return -1;
        }
    }

    req->status = 0;
    req->failed = 0;
    req->attempts = 0;
    req->out_len = 0;
    req->content_length = 0;
    req->etag[0] = '\0';
    req->error[0] = '\0';
    req->finished = 0;
    req->next = NULL;
    req->not_before = 0;

    s3->inflight++;

    if (nixcache_s3_start(s3, req) != 0) {
        s3->inflight--;
        return -1;
    }

    return 0;
}


int
nixcache_s3_wait(nixcache_s3_t *s3)
{
    while (s3->inflight > 0) {
        if (nixcache_s3_step(s3, 100) != 0) {
            return -1;
        }
    }

    return 0;
}


int
nixcache_s3_wait_room(nixcache_s3_t *s3)
{
    unsigned  n;

    n = s3->inflight;

    while (s3->inflight >= n && s3->inflight > 0) {
        if (nixcache_s3_step(s3, 100) != 0) {
            return -1;
        }
    }

    return 0;
}


int
nixcache_s3_run_one(nixcache_s3_t *s3, nixcache_s3_req_t *req)
{
    if (nixcache_s3_submit(s3, req) != 0) {
        return -1;
    }

    while (!req->finished) {
        if (nixcache_s3_step(s3, 100) != 0) {
            return -1;
        }
    }

    return 0;
}


unsigned
nixcache_s3_inflight(nixcache_s3_t *s3)
{
    return s3->inflight;
}


unsigned
nixcache_s3_max_inflight(nixcache_s3_t *s3)
{
    return s3->max_inflight;
}


const char *
nixcache_s3_error(nixcache_s3_t *s3)
{
    return s3->error;
}


const char *
nixcache_s3_describe(nixcache_s3_t *s3)
{
    return s3->describe;
}


uint64_t
nixcache_s3_requests(nixcache_s3_t *s3)
{
    return s3->requests;
}


uint64_t
nixcache_s3_retries(nixcache_s3_t *s3)
{
    return s3->retries;
}


/* One attempt: URL, signed headers, an easy handle in the multi. */

static int
nixcache_s3_start(nixcache_s3_t *s3, nixcache_s3_req_t *req)
{
    CURL                          *easy;
    char                           hash[NIXCACHE_SIGV4_HEX_LEN + 1];
    char                           reason[NIXCACHE_S3_ERROR_MAX];
    char                          *uri;
    size_t                         klen, plen, ulen, n;
    struct curl_slist             *h, *hl;

    easy = NULL;

    klen = strlen(req->key);
    plen = strlen(s3->ep.path);
    ulen = plen + 1 + 3 * klen;

    free(req->url);
    n = strlen(s3->ep.base);
    req->url = malloc(n + ulen + 1);
    if (req->url == NULL) {
        nixcache_s3_message(s3->error, sizeof(s3->error), "out of memory");
        return -1;
    }

    memcpy(req->url, s3->ep.base, n);
    uri = req->url + n;
    memcpy(uri, s3->ep.path, plen);
    uri[plen] = '/';
    ulen = plen + 1 + nixcache_sigv4_uri_encode(uri + plen + 1, req->key,
                                                klen, NIXCACHE_SIGV4_PATH);
    uri[ulen] = '\0';

    if (req->body != NULL) {
        if (nixcache_sigv4_payload_hash(hash, req->body, req->body_len)
            != 0)
        {
            nixcache_s3_message(s3->error, sizeof(s3->error),
                                "S3: cannot hash the payload");
            return -1;
        }

        hash[NIXCACHE_SIGV4_HEX_LEN] = '\0';
    }

    hl = nixcache_s3_signed_headers(&s3->ep, req->method, uri, ulen,
                                    s3->region, strlen(s3->region), &s3->cred,
                                    req->body ? hash : NULL, time(NULL),
                                    reason, sizeof(reason));
    if (hl == NULL) {
        nixcache_s3_message(s3->error, sizeof(s3->error), "S3: %s %s: %s",
                            req->method, req->url, reason);
        return -1;
    }

    /* no "Expect: 100-continue" round trip, no form content type */

    h = curl_slist_append(hl, "Expect:");
    if (h == NULL) {
        goto nomem;
    }

    if (req->body != NULL) {
        h = curl_slist_append(hl, "Content-Type: application/octet-stream");
        if (h == NULL) {
            goto nomem;
        }
    }

    easy = curl_easy_init();
    if (easy == NULL) {
        goto nomem;
    }

    curl_easy_setopt(easy, CURLOPT_URL, req->url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT,
                     NIXCACHE_S3_CONNECT_TIMEOUT);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT, (long) s3->timeout);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, nixcache_s3_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, nixcache_s3_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, req);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, req);

    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);

    } else if (strcmp(req->method, "PUT") == 0) {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) req->body_len);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS,
                         req->body ? (const char *) req->body : "");

    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
    }

    req->easy = easy;
    req->headers = hl;
    req->errbody_len = 0;
    req->out_len = 0;
    req->overflow = 0;
    req->content_length = 0;
    req->etag[0] = '\0';
    req->attempts++;
    s3->requests++;

    if (curl_multi_add_handle(s3->multi, easy) != CURLM_OK) {
        nixcache_s3_message(s3->error, sizeof(s3->error),
                            "S3: cannot add a transfer");
        nixcache_s3_release(s3, req);
        return -1;
    }

    return 0;

nomem:

    curl_slist_free_all(hl);
    nixcache_s3_message(s3->error, sizeof(s3->error), "out of memory");
    return -1;
}


/* Runs transfers for at most timeout_ms; starts retries that are due. */

static int
nixcache_s3_step(nixcache_s3_t *s3, int timeout_ms)
{
    int                  running, left, wait_ms;
    double               now, first;
    CURLMsg             *msg;
    CURLMcode            mc;
    nixcache_s3_req_t   *req, **pp;

    now = nixcache_s3_now();
    first = 0;

    for (pp = &s3->delayed; *pp != NULL; ) {
        req = *pp;

        if (req->not_before <= now) {
            *pp = req->next;
            req->next = NULL;

            if (nixcache_s3_start(s3, req) != 0) {
                return -1;
            }

            continue;
        }

        if (first == 0 || req->not_before < first) {
            first = req->not_before;
        }

        pp = &req->next;
    }

    mc = curl_multi_perform(s3->multi, &running);
    if (mc != CURLM_OK) {
        nixcache_s3_message(s3->error, sizeof(s3->error), "S3: curl: %s",
                            curl_multi_strerror(mc));
        return -1;
    }

    while ((msg = curl_multi_info_read(s3->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        req = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &req);

        nixcache_s3_finish(s3, req, msg->data.result);
    }

    if (s3->inflight == 0) {
        return 0;
    }

    wait_ms = timeout_ms;

    if (first != 0) {
        now = nixcache_s3_now();
        if ((first - now) * 1000 < wait_ms) {
            wait_ms = (first > now) ? (int) ((first - now) * 1000) + 1 : 0;
        }
    }

    mc = curl_multi_poll(s3->multi, NULL, 0, wait_ms, NULL);
    if (mc != CURLM_OK) {
        nixcache_s3_message(s3->error, sizeof(s3->error), "S3: curl: %s",
                            curl_multi_strerror(mc));
        return -1;
    }

    return 0;
}


/* An attempt ended: done, or scheduled again after a backoff. */

static void
nixcache_s3_finish(nixcache_s3_t *s3, nixcache_s3_req_t *req, CURLcode cc)
{
    int     retry;
    long    status;
    char    code[128];
    size_t  n;
    double  delay, cap;

    status = 0;
    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);

    req->status = status;
    code[0] = '\0';

    if (cc != CURLE_OK) {
        retry = 1;
        snprintf(req->error, sizeof(req->error), "s3 %s %s: %s",
                 req->method, req->url, curl_easy_strerror(cc));

    } else if (status >= 200 && status < 300) {
        retry = 0;

        if (req->overflow) {
            snprintf(req->error, sizeof(req->error),
                     "s3 %s %s: body larger than %zu bytes",
                     req->method, req->url, req->out_cap);
            req->failed = 1;

        } else {
            req->error[0] = '\0';
        }

    } else {
        retry = (status >= 500 || status == 408 || status == 429);

        nixcache_s3_xml_code(req->errbody, req->errbody_len, code,
                             sizeof(code));

        if (code[0] == '\0') {
            nixcache_s3_copy(code, sizeof(code), req->reason,
                             strlen(req->reason));
        }

        snprintf(req->error, sizeof(req->error), "s3 %s %s: %ld%s%s",
                 req->method, req->url, status, code[0] ? " " : "", code);
    }

    nixcache_s3_release(s3, req);

    if (retry && req->attempts < s3->max_attempts) {
        /* full jitter over an exponentially growing window */
        cap = NIXCACHE_S3_BACKOFF_BASE * (double) (1u << (req->attempts - 1));
        if (cap > NIXCACHE_S3_BACKOFF_MAX) {
            cap = NIXCACHE_S3_BACKOFF_MAX;
        }

        delay = cap / 2 + (cap / 2) * ((double) random() / RAND_MAX);

        req->not_before = nixcache_s3_now() + delay;
        req->next = s3->delayed;
        s3->delayed = req;
        s3->retries++;
        return;
    }

    if (retry) {
        n = strlen(req->error);
        snprintf(req->error + n, sizeof(req->error) - n,
                 " (after %u attempts)", req->attempts);
        req->failed = 1;

    } else if (status < 200 || status >= 300) {
        /* a HEAD or GET of a missing object is an answer, not a failure */
        req->failed = !(status == 404 && strcmp(req->method, "PUT") != 0);
    }

    free(req->url);
    req->url = NULL;
    req->finished = 1;
    s3->inflight--;

    if (req->done != NULL) {
        req->done(req);
    }
}


static void
nixcache_s3_release(nixcache_s3_t *s3, nixcache_s3_req_t *req)
{
    if (req->easy != NULL) {
        curl_multi_remove_handle(s3->multi, req->easy);
        curl_easy_cleanup(req->easy);
        req->easy = NULL;
    }

    if (req->headers != NULL) {
        curl_slist_free_all(req->headers);
        req->headers = NULL;
    }
}


static size_t
nixcache_s3_write(char *p, size_t size, size_t n, void *data)
{
    long                status;
    size_t              len, k;
    nixcache_s3_req_t  *req;

    req = data;
    len = size * n;
    status = 0;

    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);

    if (status >= 200 && status < 300) {
        if (req->out == NULL) {
            return len;
        }

        if (req->out_len + len > req->out_cap) {
            req->overflow = 1;
            return 0;
        }

        memcpy(req->out + req->out_len, p, len);
        req->out_len += len;

        return len;
    }

    k = sizeof(req->errbody) - 1 - req->errbody_len;
    if (k > len) {
        k = len;
    }

    memcpy(req->errbody + req->errbody_len, p, k);
    req->errbody_len += k;
    req->errbody[req->errbody_len] = '\0';

    return len;
}


static size_t
nixcache_s3_header(char *p, size_t size, size_t n, void *data)
{
    size_t              len, vlen;
    const char         *v;
    nixcache_s3_req_t  *req;

    req = data;
    len = size * n;

    if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* a new response (after a 100 or a redirect): forget the last */
        req->etag[0] = '\0';
        req->content_length = 0;
        req->reason[0] = '\0';

        /* "HTTP/1.1 403 Forbidden": a HEAD's only word on an error */
        v = memchr(p, ' ', len);
        if (v != NULL) {
            v = memchr(v + 1, ' ', p + len - v - 1);
        }

        if (v != NULL) {
            v++;
            vlen = p + len - v;
            while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n')) {
                vlen--;
            }

            nixcache_s3_copy(req->reason, sizeof(req->reason), v, vlen);
        }

        return len;
    }

    v = memchr(p, ':', len);
    if (v == NULL) {
        return len;
    }

    v++;
    while (v < p + len && (*v == ' ' || *v == '\t')) {
        v++;
    }

    vlen = p + len - v;
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'
                        || v[vlen - 1] == ' '))
    {
        vlen--;
    }

    if (v - p >= 5 && strncasecmp(p, "etag:", 5) == 0) {
        if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
            v++;
            vlen -= 2;
        }

        nixcache_s3_copy(req->etag, sizeof(req->etag), v, vlen);

    } else if (v - p >= 15 && strncasecmp(p, "content-length:", 15) == 0) {
        req->content_length = strtoull(v, NULL, 10);
    }

    return len;
}


/* The <Code> of an S3 error document, if any. */

static void
nixcache_s3_xml_code(const char *body, size_t len, char *dst, size_t cap)
{
    const char  *s, *e;

    dst[0] = '\0';

    if (len == 0) {
        return;
    }

    s = strstr(body, "<Code>");
    if (s == NULL) {
        return;
    }

    s += sizeof("<Code>") - 1;

    e = strstr(s, "</Code>");
    if (e == NULL) {
        return;
    }

    nixcache_s3_copy(dst, cap, s, e - s);
}


static void
nixcache_s3_copy(char *dst, size_t cap, const char *src, size_t len)
{
    size_t  i, n;

    n = (len < cap - 1) ? len : cap - 1;

    for (i = 0; i < n; i++) {
        dst[i] = isprint((unsigned char) src[i]) ? src[i] : '?';
    }

    dst[n] = '\0';
}


static double
nixcache_s3_now(void)
{
    struct timeval  tv;

    gettimeofday(&tv, NULL);

    return tv.tv_sec + tv.tv_usec / 1e6;
}
