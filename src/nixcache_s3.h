/*
 * A small blocking S3 client: PUT, HEAD and GET of objects over libcurl's
 * multi interface, many requests in flight at once, each signed with the
 * core's SigV4 (nixcache_sigv4.h).  Used by the CLI and by the module's
 * thread-pool tasks (uploads, eviction), never on nginx's event loop.
 *
 * A request is submitted and completes later: its done handler runs from
 * nixcache_s3_submit(), nixcache_s3_wait() or nixcache_s3_run_one(), in
 * the thread that called them.  A client belongs to one thread at a time.
 * Nothing is printed: nixcache_s3_open() fills an error buffer, the other
 * calls leave their message in nixcache_s3_error().
 *
 * Failures that may pass (connection errors, timeouts, 5xx, 408, 429) are
 * retried with exponential backoff and full jitter; other statuses are
 * final.  The caller keeps a PUT body and a GET
 * buffer alive until the request is done.
 */

#ifndef NIXCACHE_S3_H
#define NIXCACHE_S3_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "nixcache_format.h"


#define NIXCACHE_S3_REGION_DEFAULT      "us-east-1"
#define NIXCACHE_S3_INFLIGHT_DEFAULT    16
#define NIXCACHE_S3_ATTEMPTS_DEFAULT    5
#define NIXCACHE_S3_TIMEOUT_DEFAULT     60      /* seconds per attempt */

#define NIXCACHE_S3_KEY_MAX             1024
#define NIXCACHE_S3_ERROR_MAX           512
#define NIXCACHE_S3_CRED_MAX            1024
#define NIXCACHE_S3_CRED_FILE_MAX       (16 * 1024)


#define NIXCACHE_S3_BUCKET_MAX          63      /* S3's naming rules */
#define NIXCACHE_S3_HOST_MAX            384     /* [bucket.]host[:port] */


typedef struct nixcache_s3_s      nixcache_s3_t;
typedef struct nixcache_s3_req_s  nixcache_s3_req_t;

typedef void (*nixcache_s3_done_pt)(nixcache_s3_req_t *req);


/*
 * Access key id, secret and, for temporary (STS, instance role)
 * credentials, the session token sent as x-amz-security-token; each
 * NUL-terminated, token[0] == '\0' when there is none.
 */
typedef struct {
    char                       key_id[NIXCACHE_S3_CRED_MAX];
    char                       secret[NIXCACHE_S3_CRED_MAX];
    char                       token[4 * NIXCACHE_S3_CRED_MAX];
} nixcache_s3_credentials_t;


/*
 * Where a bucket's requests go, from an endpoint http(s)://host[:port][/]:
 * path style (http://host/bucket/key, Host: host) or virtual-host style
 * (http://bucket.host/key, Host: bucket.host).  Each NUL-terminated.
 */
typedef struct {
    char                       base[8 + NIXCACHE_S3_HOST_MAX + 1];
                                             /* scheme://Host, no path */
    char                       host[NIXCACHE_S3_HOST_MAX + 1];
    char                       path[1 + NIXCACHE_S3_BUCKET_MAX + 1];
                                             /* "/bucket" or "" */
    int                        path_style;
} nixcache_s3_endpoint_t;


/* What the options give; strings must outlive the client. */
typedef struct {
    const char                *endpoint;     /* http(s)://host[:port] */
    const char                *bucket;
    const char                *region;       /* NULL: us-east-1 */
    const char                *prefix;       /* NULL: "chunks/" */
    const char                *credentials;  /* file, or NULL: env */
    const nixcache_s3_credentials_t  *cred;  /* read already: used instead
                                                of the file or env */
    unsigned                   inflight;     /* 0: default */
    unsigned                   attempts;     /* 0: default */
    unsigned                   timeout;      /* 0: default */
    int                        path_style;   /* 1, 0, or -1: by host */
} nixcache_s3_conf_t;


struct nixcache_s3_req_s {
    /* set by the caller */
    const char                *method;       /* "PUT", "HEAD", "GET" */
    char                       key[NIXCACHE_S3_KEY_MAX];
    const unsigned char       *body;         /* PUT */
    size_t                     body_len;
    unsigned char             *out;          /* GET: room for the body */
    size_t                     out_cap;
    nixcache_s3_done_pt        done;
    void                      *data;

    /* results, valid in done */
    long                       status;       /* HTTP status, 0: none */
    int                        failed;       /* not 2xx after retries
                                                (HEAD/GET: 404 is not a
                                                failure, status says it) */
    size_t                     out_len;
    uint64_t                   content_length;
    char                       etag[80];     /* without quotes */
    unsigned                   attempts;
    char                       error[NIXCACHE_S3_ERROR_MAX];

    /* private */
    void                      *easy;
    void                      *headers;
    nixcache_s3_req_t         *next;
    double                     not_before;
    char                      *url;
    char                       errbody[1024];
    char                       reason[64];
    size_t                     errbody_len;
    unsigned                   overflow:1;
    unsigned                   finished:1;
};


/*
 * Credentials from the text of a file: either lines "KEY=VALUE"
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, in any
 * letter case, spaces around "=" allowed, "#" comments and "[section]"
 * lines ignored, as in ~/.aws/credentials), or bare lines: key id, secret
 * and an optional session token.  0, or -1 and a message in err (which
 * never quotes a secret).  The one parser of the CLI and the module.
 */
int nixcache_s3_credentials_parse(nixcache_s3_credentials_t *cred,
    const char *text, size_t len, char *err, size_t errlen);

/* The same from a file (name for messages), or from AWS_* variables. */
int nixcache_s3_credentials_file(nixcache_s3_credentials_t *cred,
    const char *file, char *err, size_t errlen);
int nixcache_s3_credentials_env(nixcache_s3_credentials_t *cred,
    char *err, size_t errlen);
void nixcache_s3_credentials_wipe(nixcache_s3_credentials_t *cred);

/* snprintf into err (errlen 0: nothing), for the messages of this API. */
void nixcache_s3_message(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1 if S3 takes the name: 1 to 63 of a-z, 0-9, '.' and '-'. */
int nixcache_s3_bucket_valid(const char *bucket, size_t len);

/*
 * Parses endpoint (len bytes) for bucket (valid); path_style is 1, 0, or
 * -1 for the default: path style when the host is an IP address or
 * localhost (no DNS name per bucket there), virtual-host style otherwise.
 * 0, or -1 with the reason in err (the caller names the endpoint).
 */
int nixcache_s3_endpoint_parse(nixcache_s3_endpoint_t *ep,
    const char *endpoint, size_t len, const char *bucket, int path_style,
    char *err, size_t errlen);

/*
 * The headers that make one request signed (SigV4): Host,
 * x-amz-content-sha256, x-amz-date, Authorization and, with temporary
 * credentials, x-amz-security-token, as a curl header list the caller
 * appends to and frees (curl_slist_free_all).  uri is the path as sent,
 * already encoded; payload_hash the body's SHA-256 in hex (NULL: an empty
 * body).  NULL with the reason in err on failure.
 */
struct curl_slist *nixcache_s3_signed_headers(const nixcache_s3_endpoint_t *ep,
    const char *method, const char *uri, size_t uri_len, const char *region,
    size_t region_len, const nixcache_s3_credentials_t *cred,
    const char *payload_hash, time_t now, char *err, size_t errlen);

/*
 * Reads credentials (conf->cred, the file or the environment), checks the
 * endpoint; NULL and a message in err on failure.
 */
nixcache_s3_t *nixcache_s3_open(const nixcache_s3_conf_t *conf, char *err,
    size_t errlen);
void nixcache_s3_close(nixcache_s3_t *s3);

/* Why the last call that returned -1 failed. */
const char *nixcache_s3_error(nixcache_s3_t *s3);

/* The object key of a chunk: <prefix><last 2 chars of CID>/<CID>. */
int nixcache_s3_chunk_key(nixcache_s3_t *s3, char *dst, size_t cap,
    const unsigned char *digest);

/* Starts req; first waits while the configured number is in flight. */
int nixcache_s3_submit(nixcache_s3_t *s3, nixcache_s3_req_t *req);

/* Runs until every submitted request is done. */
int nixcache_s3_wait(nixcache_s3_t *s3);

/* Runs until at least one request in flight is done (if any). */
int nixcache_s3_wait_room(nixcache_s3_t *s3);

/* Submits req and runs until it is done. */
int nixcache_s3_run_one(nixcache_s3_t *s3, nixcache_s3_req_t *req);

unsigned nixcache_s3_inflight(nixcache_s3_t *s3);
unsigned nixcache_s3_max_inflight(nixcache_s3_t *s3);
const char *nixcache_s3_describe(nixcache_s3_t *s3);

/* Counters for the summary line. */
uint64_t nixcache_s3_requests(nixcache_s3_t *s3);
uint64_t nixcache_s3_retries(nixcache_s3_t *s3);


#endif /* NIXCACHE_S3_H */
