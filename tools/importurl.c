/*
 * nixcache import --from-url: an HTTP(S) binary cache in.
 *
 *   GET <url>nix-cache-info      StoreDir must be /nix/store
 *   GET <url><hash>.narinfo      for each PATH; Sig checked (import.c)
 *   GET <url><narinfo URL>       streamed through the decoder into the
 *                                pipeline, 16 KiB at a time: memory is
 *                                bounded whatever the NAR's size
 *
 * Nothing of a path is published unless every check passed.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli.h"
#include "import.h"
#include "nixcache_nix32.h"


typedef struct {
    CURL                      *curl;
    const char                *cacert;      /* NULL: libcurl's default */
    char                      *buf;         /* a text body */
    size_t                     len;
    size_t                     cap;
    nixcache_decomp_t         *d;           /* a NAR body */
    nixcache_sha256_t          sha;
    uint64_t                   size;
    long                       status;
    unsigned                   overflow:1;
    unsigned                   feed_failed:1;
    char                       errbuf[CURL_ERROR_SIZE];
} nixcache_importurl_t;


static void nixcache_importurl_setup(nixcache_importurl_t *h,
    const char *url);
static int nixcache_importurl_perform(nixcache_importurl_t *h,
    const char *url);
static int nixcache_importurl_text(nixcache_importurl_t *h, const char *url,
    char *buf, size_t cap, size_t *len);
static size_t nixcache_importurl_write_text(char *p, size_t size, size_t n,
    void *data);
static size_t nixcache_importurl_write_nar(char *p, size_t size, size_t n,
    void *data);
static int nixcache_importurl_pump(void *data, const char *loc,
    nixcache_decomp_t *d, unsigned char *file_hash, uint64_t *file_size);
static int nixcache_importurl_info(nixcache_importurl_t *h,
    const char *base, char *buf);
static int nixcache_importurl_hash(const char *arg, char *hash);
static int nixcache_importurl_queue(char **queue, size_t *n, size_t *cap,
    const char *hash);
static int nixcache_importurl_refs(nixcache_import_t *im, size_t len,
    char **queue, size_t *n, size_t *cap);


int
nixcache_import_url(nixcache_opts_t *o, int argc, char **argv)
{
    int                    rc, i;
    char                  *base, *url, *queue;
    size_t                 q, nq, capq, ulen;
    char                   hash[NIXCACHE_STORE_HASH_NIX32_LEN + 1];
    size_t                 len;
    const char            *env;
    nixcache_import_t      im;
    nixcache_importurl_t   h;

    if (o->ntrusted == 0 && !o->no_check_sigs) {
        nixcache_error("import --from-url: no --trusted-key NAME:BASE64 "
                       "given: signatures cannot be checked (give the "
                       "upstream's public key, or --no-check-sigs to "
                       "import unsigned paths)");
        return 2;
    }

    if (o->ntrusted > 0 && o->no_check_sigs) {
        nixcache_error("import --from-url: --trusted-key or "
                       "--no-check-sigs, not both");
        return 2;
    }

    len = strlen(o->from_url);

    if (strncmp(o->from_url, "http://", 7) != 0
        && strncmp(o->from_url, "https://", 8) != 0)
    {
        nixcache_error("--from-url \"%s\": not an http:// or https:// URL",
                       o->from_url);
        return 2;
    }

    queue = NULL;
    nq = 0;
    capq = 0;

    for (i = 0; i < argc; i++) {
        if (nixcache_importurl_hash(argv[i], hash) != 0) {
            nixcache_error("import: \"%s\" is neither a store path "
                           NIXCACHE_STORE_DIR "HASH-NAME nor a hash",
                           argv[i]);
            free(queue);
            return 2;
        }

        if (nixcache_importurl_queue(&queue, &nq, &capq, hash) != 0) {
            free(queue);
            return 1;
        }
    }

    memset(&h, 0, sizeof(nixcache_importurl_t));
    memset(&im, 0, sizeof(nixcache_import_t));

    h.cacert = o->cacert;

    if (h.cacert == NULL) {
        env = getenv("NIX_SSL_CERT_FILE");
        if (env == NULL || env[0] == '\0') {
            env = getenv("SSL_CERT_FILE");
        }
        if (env == NULL || env[0] == '\0') {
            env = getenv("CURL_CA_BUNDLE");
        }
        h.cacert = (env != NULL && env[0] != '\0') ? env : NULL;
    }

    rc = 1;
    url = NULL;

    base = malloc(len + 2);
    if (base == NULL) {
        nixcache_error("out of memory");
        free(queue);
        return 1;
    }

    memcpy(base, o->from_url, len + 1);

    if (base[len - 1] != '/') {
        base[len] = '/';
        base[len + 1] = '\0';
    }

    ulen = len + 1 + NIXCACHE_STORE_HASH_NIX32_LEN + sizeof(".narinfo");

    url = malloc(ulen);

    if (url == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        nixcache_error("out of memory");
        goto done;
    }

    h.curl = curl_easy_init();
    if (h.curl == NULL) {
        nixcache_error("out of memory");
        goto done;
    }

    if (nixcache_import_open(&im, o) != 0) {
        goto done;
    }

    im.source = base;
    im.base = base;
    im.pump = nixcache_importurl_pump;
    im.data = &h;

    if (nixcache_importurl_info(&h, base, im.text) != 0) {
        goto done;
    }

    for (q = 0; q < nq; q++) {
        im.stats.paths_total = nq;

        memcpy(hash, queue + q * (NIXCACHE_STORE_HASH_NIX32_LEN + 1),
               NIXCACHE_STORE_HASH_NIX32_LEN + 1);
        snprintf(url, ulen, "%s%s.narinfo", base, hash);

        rc = nixcache_importurl_text(&h, url, im.text,
                                     NIXCACHE_NARINFO_MAX_LEN + 1, &len);

        if (rc == 0 && h.status == 404) {
            nixcache_error("%s: not in the cache at %s (GET %s: 404)",
                           hash, base, url);
            rc = -1;

        } else if (rc == 0) {
            rc = nixcache_import_narinfo(&im, url, len, hash);

            if (rc >= 0 && o->recursive
                && nixcache_importurl_refs(&im, len, &queue, &nq, &capq)
                   != 0)
            {
                rc = 1;
                goto done;
            }

        } else {
            nixcache_error("%s: not imported", hash);
        }

        if (nixcache_import_count(&im, rc) != 0) {
            rc = 1;
            goto done;
        }
    }

    rc = (im.stats.paths_failed > 0) ? 1 : 0;

done:

    nixcache_import_close(&im);

    if (h.curl != NULL) {
        curl_easy_cleanup(h.curl);
    }

    free(url);
    free(base);
    free(queue);

    return rc;
}


/* -r: the narinfo's References (its own text, parsed again) queued */

static int
nixcache_importurl_refs(nixcache_import_t *im, size_t len, char **queue,
    size_t *n, size_t *cap)
{
    size_t               i;
    const char          *err, *p;
    nixcache_narinfo_t   ni;

    if (nixcache_narinfo_parse(&ni, im->text, len, &err) != 0) {
        return 0;
    }

    p = ni.references.data;

    for (i = 0; i < ni.references.len; i++) {
        if (i > 0 && p[i - 1] != ' ') {
            continue;
        }

        if (ni.references.len - i < NIXCACHE_STORE_HASH_NIX32_LEN) {
            break;
        }

        if (nixcache_importurl_queue(queue, n, cap, p + i) != 0) {
            return -1;
        }
    }

    return 0;
}


/* hash's first 32 characters, unless queued already: 0, or -1 */

static int
nixcache_importurl_queue(char **queue, size_t *n, size_t *cap,
    const char *hash)
{
    char    *q;
    size_t   i, w;

    w = NIXCACHE_STORE_HASH_NIX32_LEN + 1;

    for (i = 0; i < *n; i++) {
        if (memcmp(*queue + i * w, hash, NIXCACHE_STORE_HASH_NIX32_LEN)
            == 0)
        {
            return 0;
        }
    }

    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        q = realloc(*queue, *cap * w);
        if (q == NULL) {
            nixcache_error("out of memory");
            return -1;
        }

        *queue = q;
    }

    memcpy(*queue + *n * w, hash, NIXCACHE_STORE_HASH_NIX32_LEN);
    (*queue)[*n * w + NIXCACHE_STORE_HASH_NIX32_LEN] = '\0';
    (*n)++;

    return 0;
}


/* "/nix/store/<hash>-<name>", "<hash>-<name>" or "<hash>" */

static int
nixcache_importurl_hash(const char *arg, char *hash)
{
    size_t       n, len;
    const char  *base;

    n = sizeof(NIXCACHE_STORE_DIR) - 1;
    base = (strncmp(arg, NIXCACHE_STORE_DIR, n) == 0) ? arg + n : arg;
    len = strlen(base);

    if (len < NIXCACHE_STORE_HASH_NIX32_LEN
        || (len > NIXCACHE_STORE_HASH_NIX32_LEN
            && base[NIXCACHE_STORE_HASH_NIX32_LEN] != '-')
        || !nixcache_nix32_valid(base, NIXCACHE_STORE_HASH_NIX32_LEN)
        || strchr(base, '/') != NULL)
    {
        return -1;
    }

    memcpy(hash, base, NIXCACHE_STORE_HASH_NIX32_LEN);
    hash[NIXCACHE_STORE_HASH_NIX32_LEN] = '\0';

    return 0;
}


/* nix-cache-info: there, and for /nix/store */

static int
nixcache_importurl_info(nixcache_importurl_t *h, const char *base,
    char *buf)
{
    char    *url, *p, *e;
    size_t   len, n;

    n = strlen(base) + sizeof("nix-cache-info");

    url = malloc(n);
    if (url == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    snprintf(url, n, "%snix-cache-info", base);

    if (nixcache_importurl_text(h, url, buf, NIXCACHE_NARINFO_MAX_LEN + 1,
                                &len)
        != 0)
    {
        free(url);
        return -1;
    }

    if (h->status != 200) {
        nixcache_error("GET %s: HTTP %ld: not a binary cache", url,
                       h->status);
        free(url);
        return -1;
    }

    buf[len] = '\0';

    for (p = buf; p != NULL && *p != '\0'; p = (e != NULL) ? e + 1 : NULL) {
        e = strchr(p, '\n');

        if (strncmp(p, "StoreDir:", sizeof("StoreDir:") - 1) != 0) {
            continue;
        }

        p += sizeof("StoreDir:") - 1;

        while (*p == ' ') {
            p++;
        }

        n = (e != NULL) ? (size_t) (e - p) : strlen(p);

        while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' ')) {
            n--;
        }

        if (n != sizeof(NIXCACHE_STORE_DIR) - 2
            || strncmp(p, NIXCACHE_STORE_DIR, n) != 0)
        {
            nixcache_error("%s: StoreDir %.*s, not /nix/store", url,
                           (int) n, p);
            free(url);
            return -1;
        }
    }

    free(url);

    return 0;
}


static void
nixcache_importurl_setup(nixcache_importurl_t *h, const char *url)
{
    curl_easy_reset(h->curl);
    curl_easy_setopt(h->curl, CURLOPT_URL, url);
    curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h->curl, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h->curl, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "nixcache-import");

    if (h->cacert != NULL) {
        curl_easy_setopt(h->curl, CURLOPT_CAINFO, h->cacert);
    }

    h->errbuf[0] = '\0';
    h->status = 0;
}


/* 0 with h->status, or -1 (printed) when no HTTP answer came */

static int
nixcache_importurl_perform(nixcache_importurl_t *h, const char *url)
{
    CURLcode  cc;

    cc = curl_easy_perform(h->curl);

    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &h->status);

    if (cc == CURLE_OK) {
        return 0;
    }

    if (cc == CURLE_WRITE_ERROR && h->status != 0 && h->status != 200) {
        /* the write callback stopped a body that is not the file */
        return 0;
    }

    if (cc == CURLE_WRITE_ERROR && h->feed_failed) {
        return -1;
    }

    nixcache_error("GET %s: %s", url,
                   h->errbuf[0] != '\0' ? h->errbuf : curl_easy_strerror(cc));

    return -1;
}


/* GET url into buf (at most cap - 1 bytes): 0 with h->status, or -1 */

static int
nixcache_importurl_text(nixcache_importurl_t *h, const char *url, char *buf,
    size_t cap, size_t *len)
{
    h->buf = buf;
    h->len = 0;
    h->cap = cap - 1;
    h->overflow = 0;
    h->feed_failed = 0;

    nixcache_importurl_setup(h, url);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION,
                     nixcache_importurl_write_text);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, 120L);

    if (nixcache_importurl_perform(h, url) != 0) {
        return -1;
    }

    if (h->overflow) {
        nixcache_error("GET %s: larger than %zu bytes", url, h->cap);
        return -1;
    }

    if (h->status != 200 && h->status != 404) {
        nixcache_error("GET %s: HTTP %ld", url, h->status);
        return -1;
    }

    *len = h->len;

    return 0;
}


static size_t
nixcache_importurl_write_text(char *p, size_t size, size_t n, void *data)
{
    nixcache_importurl_t  *h = data;

    n *= size;

    if (n > h->cap - h->len) {
        h->overflow = 1;
        return 0;
    }

    memcpy(h->buf + h->len, p, n);
    h->len += n;

    return n;
}


/* cli.h's pump: the NAR file's body fed to d as it arrives */

static int
nixcache_importurl_pump(void *data, const char *loc, nixcache_decomp_t *d,
    unsigned char *file_hash, uint64_t *file_size)
{
    int                    rc;
    nixcache_import_t     *im = data;
    nixcache_importurl_t  *h = im->data;

    if (nixcache_sha256_init(&h->sha) != 0) {
        nixcache_error("SHA-256: cannot initialise");
        return -1;
    }

    h->d = d;
    h->size = 0;
    h->feed_failed = 0;

    nixcache_importurl_setup(h, loc);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION,
                     nixcache_importurl_write_nar);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);

    rc = -1;

    if (nixcache_importurl_perform(h, loc) != 0) {
        goto done;
    }

    if (h->status != 200) {
        nixcache_error("GET %s: HTTP %ld", loc, h->status);
        goto done;
    }

    if (nixcache_decomp_feed(d, NULL, 0, 1) != 0) {
        goto done;
    }

    rc = 0;

done:

    nixcache_sha256_final(&h->sha, file_hash);
    nixcache_sha256_free(&h->sha);
    *file_size = h->size;
    h->d = NULL;

    return rc;
}


static size_t
nixcache_importurl_write_nar(char *p, size_t size, size_t n, void *data)
{
    long                   status;
    nixcache_importurl_t  *h = data;

    n *= size;

    status = 0;
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);

    if (status != 200) {
        return 0;
    }

    nixcache_sha256_update(&h->sha, p, n);
    h->size += n;

    if (nixcache_decomp_feed(h->d, (const unsigned char *) p, n, 0) != 0) {
        h->feed_failed = 1;
        return 0;
    }

    return n;
}
