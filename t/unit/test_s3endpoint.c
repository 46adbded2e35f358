/*
 * Where S3 requests go and how they are signed: nixcache_s3_bucket_valid(),
 * nixcache_s3_endpoint_parse() and nixcache_s3_signed_headers(), the one
 * definition the CLI's client and the module's fetches both use.  The
 * expected Authorization values were computed by botocore's S3SigV4Auth
 * (python3-botocore) for the same request, time and credentials.
 */

#include <stdlib.h>

#include <curl/curl.h>

#include "unit.h"

#include "nixcache_s3.h"


typedef struct {
    const char  *endpoint;
    const char  *bucket;
    int          path_style;
    const char  *base;              /* NULL: refused */
    const char  *host;
    const char  *path;
} ep_case_t;


static const ep_case_t  cases[] = {
    { "http://127.0.0.1:4568", "b", -1,
      "http://127.0.0.1:4568", "127.0.0.1:4568", "/b" },
    { "http://localhost:4568/", "b", -1,
      "http://localhost:4568", "localhost:4568", "/b" },
    { "http://[::1]:4568", "b", -1, "http://[::1]:4568", "[::1]:4568", "/b" },
    { "https://s3.example.com", "cache", -1,
      "https://cache.s3.example.com", "cache.s3.example.com", "" },
    { "https://s3.example.com", "cache", 1,
      "https://s3.example.com", "s3.example.com", "/cache" },
    { "http://localhost:4568", "b", 0, NULL, NULL, NULL },
    { "ftp://s3.example.com", "b", -1, NULL, NULL, NULL },
    { "https://s3.example.com/path", "b", -1, NULL, NULL, NULL },
    { "https://user@s3.example.com", "b", -1, NULL, NULL, NULL },
    { "https://s3.example.com?x", "b", -1, NULL, NULL, NULL },
    { "https://", "b", -1, NULL, NULL, NULL },
    { "https:///", "b", -1, NULL, NULL, NULL },
};


static const char *
header(struct curl_slist *hl, const char *name)
{
    size_t  n;

    n = strlen(name);

    for ( /* void */ ; hl != NULL; hl = hl->next) {
        if (strncmp(hl->data, name, n) == 0 && hl->data[n] == ':') {
            return hl->data + n + 2;
        }
    }

    return NULL;
}


int
main(void)
{
    char                        err[NIXCACHE_S3_ERROR_MAX];
    int                         n;
    size_t                      i;
    const char                 *v;
    const ep_case_t            *c;
    struct curl_slist          *hl;
    nixcache_s3_endpoint_t      ep;
    nixcache_s3_credentials_t   cred;

    ok(nixcache_s3_bucket_valid("my-cache.2", 10), "bucket a-z 0-9 . -");
    ok(!nixcache_s3_bucket_valid("My", 2), "bucket: upper case refused");
    ok(!nixcache_s3_bucket_valid("a/b", 3), "bucket: '/' refused");
    ok(!nixcache_s3_bucket_valid("", 0), "bucket: empty refused");
    ok(!nixcache_s3_bucket_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                 "aaaaaaaaaaaaaaaaaaaa", 64),
       "bucket: 64 characters refused");

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        c = &cases[i];
        err[0] = '\0';

        n = nixcache_s3_endpoint_parse(&ep, c->endpoint, strlen(c->endpoint),
                                       c->bucket, c->path_style, err,
                                       sizeof(err));
        if (c->base == NULL) {
            ok(n != 0 && err[0] != '\0', "%s (path style %d) refused: %s",
               c->endpoint, c->path_style, err);
            continue;
        }

        ok(n == 0, "%s (path style %d) parsed", c->endpoint, c->path_style);
        is_str(ep.base, strlen(ep.base), c->base, "%s: base", c->endpoint);
        is_str(ep.host, strlen(ep.host), c->host, "%s: Host", c->endpoint);
        is_str(ep.path, strlen(ep.path), c->path, "%s: path", c->endpoint);
    }

    ok(nixcache_s3_endpoint_parse(&ep, "http://127.0.0.1", 16, "b", 0, err,
                                  sizeof(err))
       != 0 && strstr(err, "virtual-host addressing needs a DNS name"),
       "virtual-host with an IP: the message says why");

    /* signed headers, against botocore for the same request */

    if (nixcache_s3_endpoint_parse(&ep, "https://s3.amazonaws.com", 24,
                                   "examplebucket", -1, err, sizeof(err))
        != 0)
    {
        ok(0, "endpoint for signing: %s", err);
        return done_testing();
    }

    memset(&cred, 0, sizeof(cred));
    strcpy(cred.key_id, "AKIAIOSFODNN7EXAMPLE");
    strcpy(cred.secret, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");

    hl = nixcache_s3_signed_headers(&ep, "GET", "/chunks/ab/bafk", 15,
                                    "us-east-1", 9, &cred, NULL, 1369353600,
                                    err, sizeof(err));
    ok(hl != NULL, "signed headers: %s", hl ? "made" : err);

    v = header(hl, "Host");
    ok(v && strcmp(v, "examplebucket.s3.amazonaws.com") == 0, "Host");
    v = header(hl, "x-amz-date");
    ok(v && strcmp(v, "20130524T000000Z") == 0, "x-amz-date");
    v = header(hl, "x-amz-content-sha256");
    ok(v && strcmp(v, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934c"
                      "a495991b7852b855") == 0,
       "x-amz-content-sha256 of an empty body");
    ok(header(hl, "x-amz-security-token") == NULL, "no token header");
    v = header(hl, "Authorization");
    ok(v && strcmp(v, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"
                      "20130524/us-east-1/s3/aws4_request, SignedHeaders="
                      "host;x-amz-content-sha256;x-amz-date, Signature="
                      "0aa8448b7a4abd87a1fdf6f52d2569b7cff660c3d37e074ed1"
                      "3bb9a984a7f50d") == 0,
       "Authorization is botocore's");
    curl_slist_free_all(hl);

    /* temporary credentials: the token is sent and signed */

    strcpy(cred.token, "FQoGZXIvYXdzEJr//TOKEN+x=");

    hl = nixcache_s3_signed_headers(&ep, "GET", "/chunks/ab/bafk", 15,
                                    "us-east-1", 9, &cred, NULL, 1369353600,
                                    err, sizeof(err));
    v = header(hl, "x-amz-security-token");
    ok(v && strcmp(v, "FQoGZXIvYXdzEJr//TOKEN+x=") == 0,
       "x-amz-security-token sent");
    v = header(hl, "Authorization");
    ok(v && strcmp(v, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"
                      "20130524/us-east-1/s3/aws4_request, SignedHeaders="
                      "host;x-amz-content-sha256;x-amz-date;"
                      "x-amz-security-token, Signature="
                      "861353c183eb58f87831fc7964063d71cd4c45b38121eaea29"
                      "17fd05b84e4652") == 0,
       "Authorization with the token is botocore's");
    curl_slist_free_all(hl);

    return done_testing();
}
