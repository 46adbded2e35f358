/*
 * nixcache push --url: the HTTP side.  A cache with `nixcache_upload on`
 * takes what `nix copy --to http://...` sends; this sends the same:
 *
 *   HEAD <url><hash>.narinfo           200: present, skipped
 *   PUT  <url>nar/<NarHash>.nar.zst    the NAR, compressed as it is read
 *                                      from `nix store dump-path`, sent
 *                                      chunked (one 64 KiB buffer each way)
 *   PUT  <url><hash>.narinfo           after the NAR was accepted
 *
 * The token goes in "Authorization: Bearer"; it is never printed.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli.h"


#define NIXCACHE_PUSHURL_LEVEL      3
#define NIXCACHE_PUSHURL_BODY_MAX   2048
#define NIXCACHE_PUSHURL_TOKEN_MAX  4096


struct nixcache_pushurl_s {
    CURL                      *curl;
    char                      *auth;        /* the header line, or NULL */
    char                      *base;        /* ends in '/' */
    char                       body[NIXCACHE_PUSHURL_BODY_MAX];
    size_t                     body_len;
    char                       errbuf[CURL_ERROR_SIZE];
};


typedef struct {
    int                        fd;
    const char                *path;
    ZSTD_CCtx                 *cctx;
    nixcache_sha256_t          sha;
    uint64_t                   nar_size;
    uint64_t                   sent;
    ZSTD_outBuffer             out;
    size_t                     out_pos;     /* handed to curl so far */
    size_t                     in_pos;
    size_t                     in_len;
    unsigned                   eof:1;
    unsigned                   done:1;
    unsigned                   failed:1;
    unsigned char              in[NIXCACHE_CLI_IO_SIZE];
    unsigned char              obuf[NIXCACHE_CLI_IO_SIZE];
} nixcache_pushurl_body_t;


static struct curl_slist *nixcache_pushurl_headers(nixcache_pushurl_t *h,
    const char *type, int chunked);
static int nixcache_pushurl_request(nixcache_pushurl_t *h, const char *name,
    const char *method, long *status);
static int nixcache_pushurl_check(nixcache_pushurl_t *h, const char *name,
    const char *method, long status);
static size_t nixcache_pushurl_write(char *p, size_t size, size_t n,
    void *data);
static size_t nixcache_pushurl_read_nar(char *p, size_t size, size_t n,
    void *data);
static size_t nixcache_pushurl_read_text(char *p, size_t size, size_t n,
    void *data);


nixcache_pushurl_t *
nixcache_pushurl_open(const char *url, const char *option,
    const nixcache_opts_t *o)
{
    char                 token[NIXCACHE_PUSHURL_TOKEN_MAX];
    char                *hdr;
    size_t               len;
    nixcache_pushurl_t  *h;

    len = strlen(url);

    if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        || len < 9)
    {
        nixcache_error("%s \"%s\": not an http:// or https:// URL", option,
                       url);
        return NULL;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        nixcache_error("cannot initialize libcurl");
        return NULL;
    }

    h = calloc(1, sizeof(nixcache_pushurl_t));
    if (h == NULL) {
        nixcache_error("out of memory");
        return NULL;
    }

    h->base = malloc(len + 2);
    h->curl = curl_easy_init();

    if (h->base == NULL || h->curl == NULL) {
        nixcache_error("out of memory");
        goto failed;
    }

    memcpy(h->base, url, len + 1);

    if (h->base[len - 1] != '/') {
        h->base[len] = '/';
        h->base[len + 1] = '\0';
    }

    if (o == NULL) {
        return h;
    }

    switch (nixcache_pushurl_token(o, token, sizeof(token))) {

    case 1:
        len = sizeof("Authorization: Bearer ") - 1 + strlen(token);
        hdr = malloc(len + 1);
        if (hdr == NULL) {
            explicit_bzero(token, sizeof(token));
            nixcache_error("out of memory");
            goto failed;
        }

        snprintf(hdr, len + 1, "Authorization: Bearer %s", token);
        explicit_bzero(token, sizeof(token));

        h->auth = hdr;

        break;

    case 0:
        break;

    default:
        goto failed;
    }

    return h;

failed:

    nixcache_pushurl_close(h);

    return NULL;
}


void
nixcache_pushurl_close(nixcache_pushurl_t *h)
{
    if (h->curl != NULL) {
        curl_easy_cleanup(h->curl);
    }

    if (h->auth != NULL) {
        explicit_bzero(h->auth, strlen(h->auth));
        free(h->auth);
    }

    free(h->base);
    free(h);
}


/* --token, --token-file, $NIXCACHE_TOKEN (cli.h) */

int
nixcache_pushurl_token(const nixcache_opts_t *o, char *buf, size_t cap)
{
    FILE        *f;
    size_t       n;
    const char  *t;

    if (o->token_file != NULL) {
        f = fopen(o->token_file, "r");
        if (f == NULL) {
            nixcache_error("token file %s: %s", o->token_file,
                           strerror(errno));
            return -1;
        }

        n = fread(buf, 1, cap, f);
        fclose(f);

        if (n == cap) {
            explicit_bzero(buf, cap);
            nixcache_error("token file %s: too long", o->token_file);
            return -1;
        }

        buf[n] = '\0';

    } else {
        t = o->token;

        if (t == NULL) {
            t = getenv("NIXCACHE_TOKEN");
        }

        if (t == NULL || t[0] == '\0') {
            return 0;
        }

        n = strlen(t);

        if (n >= cap) {
            nixcache_error("token too long");
            return -1;
        }

        memcpy(buf, t, n + 1);
    }

    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'
                     || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
    {
        buf[--n] = '\0';
    }

    for (t = buf; *t != '\0'; t++) {
        if ((unsigned char) *t < 0x21 || *t == 0x7f) {
            explicit_bzero(buf, cap);
            nixcache_error("the token has spaces or control characters");
            return -1;
        }
    }

    if (n == 0) {
        if (o->token_file != NULL) {
            nixcache_error("token file %s: empty", o->token_file);
            return -1;
        }

        return 0;
    }

    return 1;
}


/* 1: the narinfo is there, 0: absent, -1: error (printed) */

int
nixcache_pushurl_has(nixcache_pushurl_t *h, const char *store_hash)
{
    int                 rc;
    long                status;
    char                name[NIXCACHE_STORE_HASH_NIX32_LEN
                             + sizeof(".narinfo")];
    struct curl_slist  *hdrs;

    snprintf(name, sizeof(name), "%.*s.narinfo",
             NIXCACHE_STORE_HASH_NIX32_LEN, store_hash);

    hdrs = nixcache_pushurl_headers(h, NULL, 0);
    if (hdrs == NULL) {
        return -1;
    }

    curl_easy_reset(h->curl);
    curl_easy_setopt(h->curl, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, 60L);

    rc = nixcache_pushurl_request(h, name, "HEAD", &status);

    curl_slist_free_all(hdrs);

    if (rc != 0) {
        return -1;
    }

    if (status == 200) {
        return 1;
    }

    if (status == 404) {
        return 0;
    }

    (void) nixcache_pushurl_check(h, name, "HEAD", status);

    return -1;
}


/* GET <url>name: its body (NUL-terminated, the first 2 KiB) or NULL. */

const char *
nixcache_pushurl_get(nixcache_pushurl_t *h, const char *name)
{
    int                 rc;
    long                status;
    struct curl_slist  *hdrs;

    hdrs = nixcache_pushurl_headers(h, NULL, 0);
    if (hdrs == NULL) {
        return NULL;
    }

    curl_easy_reset(h->curl);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, 60L);

    rc = nixcache_pushurl_request(h, name, "GET", &status);

    curl_slist_free_all(hdrs);

    if (rc != 0 || nixcache_pushurl_check(h, name, "GET", status) != 0) {
        return NULL;
    }

    h->body[h->body_len] = '\0';

    return h->body;
}


/*
 * Sends the NAR read from fd.  got_hash and got_size are those of what was
 * read: the caller compares them with the store's before the narinfo.
 */

int
nixcache_pushurl_nar(nixcache_pushurl_t *h, int fd,
    const unsigned char *nar_hash, const char *path,
    unsigned char *got_hash, uint64_t *got_size, uint64_t *sent)
{
    int                       rc;
    long                      status;
    char                      hash[NIXCACHE_HASH_STR_LEN + 1];
    char                      name[sizeof("nar/.nar.zst")
                                   + NIXCACHE_SHA256_NIX32_LEN];
    struct curl_slist        *hdrs;
    nixcache_pushurl_body_t  *b;

    nixcache_hash_format(hash, nar_hash);
    hash[NIXCACHE_HASH_STR_LEN] = '\0';
    snprintf(name, sizeof(name), "nar/%s.nar.zst",
             hash + sizeof("sha256:") - 1);

    b = calloc(1, sizeof(nixcache_pushurl_body_t));
    if (b == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    rc = -1;
    hdrs = NULL;

    b->fd = fd;
    b->path = path;
    b->out.dst = b->obuf;
    b->out.size = sizeof(b->obuf);
    b->cctx = ZSTD_createCCtx();

    if (b->cctx == NULL || nixcache_sha256_init(&b->sha) != 0) {
        nixcache_error("out of memory");
        ZSTD_freeCCtx(b->cctx);
        free(b);
        return -1;
    }

    ZSTD_CCtx_setParameter(b->cctx, ZSTD_c_compressionLevel,
                           NIXCACHE_PUSHURL_LEVEL);
    ZSTD_CCtx_setParameter(b->cctx, ZSTD_c_checksumFlag, 1);

    hdrs = nixcache_pushurl_headers(h, "application/x-nix-nar", 1);
    if (hdrs == NULL) {
        goto done;
    }

    curl_easy_reset(h->curl);
    curl_easy_setopt(h->curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h->curl, CURLOPT_READFUNCTION,
                     nixcache_pushurl_read_nar);
    curl_easy_setopt(h->curl, CURLOPT_READDATA, b);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);

    if (nixcache_pushurl_request(h, name, "PUT", &status) != 0) {
        goto done;
    }

    if (b->failed || nixcache_pushurl_check(h, name, "PUT", status) != 0) {
        goto done;
    }

    if (!b->done) {
        nixcache_error("PUT %s%s: HTTP %ld before the whole NAR was sent",
                       h->base, name, status);
        goto done;
    }

    nixcache_sha256_final(&b->sha, got_hash);
    *got_size = b->nar_size;
    *sent = b->sent;

    rc = 0;

done:

    if (rc != 0) {
        nixcache_sha256_free(&b->sha);
    }

    curl_slist_free_all(hdrs);
    ZSTD_freeCCtx(b->cctx);
    free(b);

    return rc;
}


int
nixcache_pushurl_narinfo(nixcache_pushurl_t *h, const char *store_hash,
    const char *text, size_t len)
{
    long                 status;
    char                 name[NIXCACHE_STORE_HASH_NIX32_LEN
                              + sizeof(".narinfo")];
    nixcache_str_t       body;
    struct curl_slist   *hdrs;

    snprintf(name, sizeof(name), "%.*s.narinfo",
             NIXCACHE_STORE_HASH_NIX32_LEN, store_hash);

    hdrs = nixcache_pushurl_headers(h, "text/x-nix-narinfo", 0);
    if (hdrs == NULL) {
        return -1;
    }

    body.data = text;
    body.len = len;

    curl_easy_reset(h->curl);
    curl_easy_setopt(h->curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t) len);
    curl_easy_setopt(h->curl, CURLOPT_READFUNCTION,
                     nixcache_pushurl_read_text);
    curl_easy_setopt(h->curl, CURLOPT_READDATA, &body);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);

    if (nixcache_pushurl_request(h, name, "PUT", &status) != 0) {
        curl_slist_free_all(hdrs);
        return -1;
    }

    curl_slist_free_all(hdrs);

    return nixcache_pushurl_check(h, name, "PUT", status);
}


/* Content-Type, chunked or not, no 100-continue wait, the token. */

static struct curl_slist *
nixcache_pushurl_headers(nixcache_pushurl_t *h, const char *type,
    int chunked)
{
    char               line[128];
    struct curl_slist  *l, *hdrs;

    hdrs = curl_slist_append(NULL, "Expect:");
    l = hdrs;

    if (l != NULL && type != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", type);
        l = curl_slist_append(hdrs, line);
    }

    if (l != NULL && chunked) {
        l = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
    }

    if (l != NULL && h->auth != NULL) {
        l = curl_slist_append(hdrs, h->auth);
    }

    if (l == NULL) {
        curl_slist_free_all(hdrs);
        nixcache_error("out of memory");
        return NULL;
    }

    return hdrs;
}


/* The options common to every request, then the request; -1: printed. */

static int
nixcache_pushurl_request(nixcache_pushurl_t *h, const char *name,
    const char *method, long *status)
{
    char      *url;
    size_t     len;
    CURLcode   rc;

    len = strlen(h->base) + strlen(name) + 1;

    url = malloc(len);
    if (url == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    snprintf(url, len, "%s%s", h->base, name);

    h->body_len = 0;
    h->errbuf[0] = '\0';

    curl_easy_setopt(h->curl, CURLOPT_URL, url);
    curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, nixcache_pushurl_write);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "nixcache");

    rc = curl_easy_perform(h->curl);

    if (rc != CURLE_OK) {
        if (rc != CURLE_ABORTED_BY_CALLBACK) {
            nixcache_error("%s %s: %s", method, url,
                           h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
        }

        free(url);
        return -1;
    }

    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, status);

    free(url);

    return 0;
}


/* 0 on 2xx; otherwise the status and the body's first line, and -1. */

static int
nixcache_pushurl_check(nixcache_pushurl_t *h, const char *name,
    const char *method, long status)
{
    char    *p, *e;
    size_t   n;

    if (status >= 200 && status < 300) {
        return 0;
    }

    if (status == 401) {
        nixcache_error("%s: 401 Unauthorized: a push token is needed "
                       "(--token)", h->base);
        return -1;
    }

    if (status == 403) {
        nixcache_error("%s: 403: token refused", h->base);
        return -1;
    }

    /* nginx's own error pages: their title ("413 Request Entity ...") */

    p = NULL;

    if (h->body_len > 0 && h->body[0] == '<') {
        p = memmem(h->body, h->body_len, "<title>", 7);
    }

    if (p != NULL) {
        p += 7;
        e = memmem(p, h->body + h->body_len - p, "</title>", 8);

        if (e != NULL) {
            nixcache_error("%s %s%s: HTTP %.*s (the server's error log "
                           "says why)", method, h->base, name,
                           (int) (e - p), p);
            return -1;
        }
    }

    for (n = 0; n < h->body_len; n++) {
        if (h->body[n] == '\n' || h->body[n] == '\r') {
            break;
        }
    }

    nixcache_error("%s %s%s: HTTP %ld%s%.*s", method, h->base, name, status,
                   n ? ": " : "", (int) n, h->body);

    return -1;
}


static size_t
nixcache_pushurl_write(char *p, size_t size, size_t n, void *data)
{
    size_t               k;
    nixcache_pushurl_t  *h = data;

    k = sizeof(h->body) - 1 - h->body_len;

    if (k > n) {
        k = n;
    }

    memcpy(h->body + h->body_len, p, k);
    h->body_len += k;

    return n;
}


/*
 * curl's read side: dump-path output, hashed, through zstd.  One input and
 * one output buffer: the output is handed to curl before more is made.
 */

static size_t
nixcache_pushurl_read_nar(char *p, size_t size, size_t n, void *data)
{
    size_t                    k, r;
    ssize_t                   got;
    ZSTD_inBuffer             in;
    nixcache_pushurl_body_t  *b = data;

    n *= size;

    while (b->out_pos == b->out.pos) {
        if (b->done) {
            return 0;
        }

        b->out.pos = 0;
        b->out_pos = 0;

        if (b->in_pos == b->in_len && !b->eof) {
            got = read(b->fd, b->in, sizeof(b->in));

            if (got == -1 && errno == EINTR) {
                continue;
            }

            if (got == -1) {
                nixcache_error("%s: reading the NAR: %s", b->path,
                               strerror(errno));
                b->failed = 1;
                return CURL_READFUNC_ABORT;
            }

            if (got == 0) {
                b->eof = 1;

            } else {
                nixcache_sha256_update(&b->sha, b->in, got);
                b->nar_size += got;
                b->in_pos = 0;
                b->in_len = got;
            }
        }

        in.src = b->in;
        in.size = b->in_len;
        in.pos = b->in_pos;

        r = ZSTD_compressStream2(b->cctx, &b->out, &in,
                                 b->eof ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(r)) {
            nixcache_error("%s: zstd: %s", b->path, ZSTD_getErrorName(r));
            b->failed = 1;
            return CURL_READFUNC_ABORT;
        }

        b->in_pos = in.pos;

        if (b->eof && r == 0) {
            b->done = 1;
        }
    }

    k = b->out.pos - b->out_pos;

    if (k > n) {
        k = n;
    }

    memcpy(p, b->obuf + b->out_pos, k);
    b->out_pos += k;
    b->sent += k;

    return k;
}


static size_t
nixcache_pushurl_read_text(char *p, size_t size, size_t n, void *data)
{
    nixcache_str_t  *s = data;

    n *= size;

    if (n > s->len) {
        n = s->len;
    }

    memcpy(p, s->data, n);
    s->data += n;
    s->len -= n;

    return n;
}
