/*
 * Test driver for t/060-sigv4-botocore.t: signs requests described on
 * stdin with the core's SigV4 code, so that another signer's output can be
 * compared with ours.
 *
 * Input: one request after another, each a run of lines "field value"
 * ended by a line "end".  Values are "x" followed by the hex of the bytes
 * (so any byte, and the empty string "x", pass), except for "time".
 *
 *   method x..          the method
 *   path x..            the raw path, encoded here (S3 rules, '/' kept)
 *   param x.. x..       a raw query parameter (repeatable)
 *   header x.. x..      a header to sign (repeatable)
 *   payload x..         the payload hash, or
 *   body x..            the body, hashed here
 *   region x..          service x..
 *   date x..            the amz date as text, or
 *   time N              the amz date made from N seconds since the epoch
 *   akid x..            secret x..
 *
 * Output: for each request one line, "<authorization>\t<hex of canonical
 * request>\t<hex of string to sign>", or "ERROR\t<what>".
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nixcache_sigv4.h"


#define DRIVER_MAX_PAIRS  64
#define DRIVER_MAX_LINE   65536


typedef struct {
    char                          *pool;
    size_t                         used;
    size_t                         size;
    size_t                         nparams;
    size_t                         nheaders;
    nixcache_sigv4_str_t           path;
    nixcache_sigv4_str_t           body;
    char                           hash[NIXCACHE_SIGV4_HEX_LEN];
    nixcache_sigv4_pair_t          params[DRIVER_MAX_PAIRS];
    nixcache_sigv4_pair_t          headers[DRIVER_MAX_PAIRS];
    nixcache_sigv4_request_t       req;
    nixcache_sigv4_credentials_t   cred;
    char                           date[NIXCACHE_SIGV4_DATE_LEN];
} driver_case_t;


static int driver_unhex(driver_case_t *c, nixcache_sigv4_str_t *dst,
    const char *word);
static int driver_line(driver_case_t *c, char *line);
static void driver_put_hex(const char *p, size_t n);
static void driver_sign(driver_case_t *c);


int
main(void)
{
    char           *line;
    driver_case_t   c;

    line = malloc(DRIVER_MAX_LINE);
    memset(&c, 0, sizeof(c));
    c.size = 4 * DRIVER_MAX_LINE;
    c.pool = malloc(c.size);

    if (line == NULL || c.pool == NULL) {
        return 2;
    }

    while (fgets(line, DRIVER_MAX_LINE, stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';

        if (strcmp(line, "end") == 0) {
            driver_sign(&c);
            memset(&c.req, 0, sizeof(c.req));
            memset(&c.cred, 0, sizeof(c.cred));
            memset(&c.path, 0, sizeof(c.path));
            c.used = 0;
            c.nparams = 0;
            c.nheaders = 0;
            continue;
        }

        if (driver_line(&c, line) != 0) {
            printf("ERROR\tbad input line: %.60s\n", line);
            return 2;
        }
    }

    free(line);
    free(c.pool);

    return 0;
}


static int
driver_unhex(driver_case_t *c, nixcache_sigv4_str_t *dst, const char *word)
{
    size_t         i, n;
    unsigned int   byte;

    if (word == NULL || word[0] != 'x') {
        return -1;
    }

    word++;
    n = strlen(word);

    if (n % 2 != 0 || c->used + n / 2 > c->size) {
        return -1;
    }

    dst->data = c->pool + c->used;
    dst->len = n / 2;

    for (i = 0; i < n / 2; i++) {
        if (sscanf(word + 2 * i, "%2x", &byte) != 1) {
            return -1;
        }

        c->pool[c->used++] = (char) byte;
    }

    return 0;
}


static int
driver_line(driver_case_t *c, char *line)
{
    char                   *field, *a, *b;
    long long               t;
    nixcache_sigv4_pair_t  *pair;

    field = strtok(line, " ");
    a = strtok(NULL, " ");
    b = strtok(NULL, " ");

    if (field == NULL) {
        return -1;
    }

    if (strcmp(field, "param") == 0 || strcmp(field, "header") == 0) {
        if (field[0] == 'p') {
            if (c->nparams == DRIVER_MAX_PAIRS) {
                return -1;
            }

            pair = &c->params[c->nparams++];

        } else {
            if (c->nheaders == DRIVER_MAX_PAIRS) {
                return -1;
            }

            pair = &c->headers[c->nheaders++];
        }

        if (driver_unhex(c, &pair->name, a) != 0) {
            return -1;
        }

        return driver_unhex(c, &pair->value, b);
    }

    if (strcmp(field, "time") == 0) {
        if (a == NULL || sscanf(a, "%lld", &t) != 1
            || nixcache_sigv4_amz_date(c->date, (time_t) t) != 0)
        {
            return -1;
        }

        c->req.amz_date.data = c->date;
        c->req.amz_date.len = NIXCACHE_SIGV4_DATE_LEN;
        return 0;
    }

    if (strcmp(field, "method") == 0) {
        return driver_unhex(c, &c->req.method, a);
    }

    if (strcmp(field, "path") == 0) {
        return driver_unhex(c, &c->path, a);
    }

    if (strcmp(field, "payload") == 0) {
        return driver_unhex(c, &c->req.payload_hash, a);
    }

    if (strcmp(field, "body") == 0) {
        if (driver_unhex(c, &c->body, a) != 0
            || nixcache_sigv4_payload_hash(c->hash, c->body.data,
                                           c->body.len)
               != 0)
        {
            return -1;
        }

        c->req.payload_hash.data = c->hash;
        c->req.payload_hash.len = NIXCACHE_SIGV4_HEX_LEN;
        return 0;
    }

    if (strcmp(field, "region") == 0) {
        return driver_unhex(c, &c->req.region, a);
    }

    if (strcmp(field, "service") == 0) {
        return driver_unhex(c, &c->req.service, a);
    }

    if (strcmp(field, "date") == 0) {
        return driver_unhex(c, &c->req.amz_date, a);
    }

    if (strcmp(field, "akid") == 0) {
        return driver_unhex(c, &c->cred.access_key_id, a);
    }

    if (strcmp(field, "secret") == 0) {
        return driver_unhex(c, &c->cred.secret_access_key, a);
    }

    return -1;
}


static void
driver_put_hex(const char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        printf("%02x", (unsigned char) p[i]);
    }
}


static void
driver_sign(driver_case_t *c)
{
    char     *uri, *query, *auth, *creq, *sts;
    ssize_t   na, nc, ns, nq;

    uri = malloc(3 * c->path.len + 1);
    query = malloc(DRIVER_MAX_LINE);
    auth = malloc(DRIVER_MAX_LINE);
    creq = malloc(DRIVER_MAX_LINE);
    sts = malloc(DRIVER_MAX_LINE);

    if (uri == NULL || query == NULL || auth == NULL || creq == NULL
        || sts == NULL)
    {
        printf("ERROR\tout of memory\n");
        goto done;
    }

    c->req.uri.len = nixcache_sigv4_uri_encode(uri, c->path.data,
                                               c->path.len,
                                               NIXCACHE_SIGV4_PATH);
    c->req.uri.data = uri;

    nq = nixcache_sigv4_query(query, DRIVER_MAX_LINE, c->params, c->nparams);
    if (nq < 0 || nq > DRIVER_MAX_LINE) {
        printf("ERROR\tquery\n");
        goto done;
    }

    c->req.query.data = query;
    c->req.query.len = (size_t) nq;
    c->req.headers = c->headers;
    c->req.nheaders = c->nheaders;

    na = nixcache_sigv4_sign(auth, DRIVER_MAX_LINE, &c->req, &c->cred);
    nc = nixcache_sigv4_canonical_request(creq, DRIVER_MAX_LINE, &c->req);
    ns = nixcache_sigv4_string_to_sign(sts, DRIVER_MAX_LINE, &c->req);

    if (na < 0 || na > DRIVER_MAX_LINE || nc < 0 || nc > DRIVER_MAX_LINE
        || ns < 0 || ns > DRIVER_MAX_LINE)
    {
        printf("ERROR\tsigning refused the request\n");
        goto done;
    }

    printf("%.*s\t", (int) na, auth);
    driver_put_hex(creq, (size_t) nc);
    printf("\t");
    driver_put_hex(sts, (size_t) ns);
    printf("\n");

done:

    fflush(stdout);
    free(uri);
    free(query);
    free(auth);
    free(creq);
    free(sts);
}
