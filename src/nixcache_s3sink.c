/*
 * The S3 chunk sink (see nixcache_s3sink.h): slots of in-flight chunks,
 * each one a small state machine HEAD -> (PUT | GET -> compare) -> free.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "nixcache_s3sink.h"
#include "nixcache_cid.h"
#include "nixcache_frame.h"
#include "nixcache_hash.h"


typedef enum {
    NIXCACHE_S3SINK_FREE = 0,
    NIXCACHE_S3SINK_HEAD,
    NIXCACHE_S3SINK_PUT,
    NIXCACHE_S3SINK_GET
} nixcache_s3sink_state_e;


typedef struct {
    nixcache_s3_req_t          req;
    nixcache_s3sink_t         *ss;
    unsigned char             *frame;
    unsigned char             *cmp;         /* GET of a stored object */
    size_t                     len;
    nixcache_s3sink_state_e    state;
    unsigned char              digest[NIXCACHE_SHA256_LEN];
    char                       md5[2 * 16 + 1];
} nixcache_s3sink_slot_t;


struct nixcache_s3sink_s {
    nixcache_s3_t                *s3;
    const nixcache_chunk_sink_t  *local;
    size_t                        frame_cap;
    nixcache_s3sink_slot_t       *slots;
    unsigned                      nslots;
    unsigned                      failures;
    uint64_t                      uploaded;
    uint64_t                      uploaded_bytes;
    uint64_t                      present;
    unsigned char                *plain;      /* checks local frames */
    size_t                        plain_cap;
    char                          error[NIXCACHE_S3_KEY_MAX + 512];
};


static int nixcache_s3sink_has(void *data, const unsigned char *digest);
static int nixcache_s3sink_put(void *data, const unsigned char *digest,
    const void *frame, size_t len);
static ssize_t nixcache_s3sink_read_stored(void *data,
    const unsigned char *digest, void *buf, size_t cap);
static int nixcache_s3sink_sync(void *data);
static int nixcache_s3sink_drain(nixcache_s3sink_t *ss);
static int nixcache_s3sink_enqueue(nixcache_s3sink_t *ss,
    const unsigned char *digest, const void *frame, size_t len);
static int nixcache_s3sink_valid(nixcache_s3sink_t *ss,
    const unsigned char *digest, const void *frame, size_t len);
static void nixcache_s3sink_done(nixcache_s3_req_t *req);
static void nixcache_s3sink_mismatch(nixcache_s3sink_slot_t *slot,
    uint64_t stored_len);
static void nixcache_s3sink_fail(nixcache_s3sink_slot_t *slot,
    const char *msg);
static int nixcache_s3sink_is_md5(const char *etag);
static void nixcache_s3sink_error(nixcache_s3sink_t *ss, const char *msg);


nixcache_s3sink_t *
nixcache_s3sink_create(nixcache_chunk_sink_t *sink, nixcache_s3_t *s3,
    const nixcache_chunk_sink_t *local, size_t frame_cap, char *err,
    size_t errlen)
{
    unsigned            i;
    nixcache_s3sink_t  *ss;

    ss = calloc(1, sizeof(nixcache_s3sink_t));
    if (ss == NULL) {
        goto nomem;
    }

    ss->s3 = s3;
    ss->local = local;
    ss->frame_cap = frame_cap;
    ss->nslots = nixcache_s3_max_inflight(s3);

    ss->slots = calloc(ss->nslots, sizeof(nixcache_s3sink_slot_t));
    if (ss->slots == NULL) {
        goto nomem;
    }

    for (i = 0; i < ss->nslots; i++) {
        ss->slots[i].ss = ss;
        ss->slots[i].frame = malloc(frame_cap);
        if (ss->slots[i].frame == NULL) {
            goto nomem;
        }
    }

    sink->data = ss;
    sink->has = nixcache_s3sink_has;
    sink->put = nixcache_s3sink_put;
    sink->read_stored = nixcache_s3sink_read_stored;
    sink->sync = nixcache_s3sink_sync;

    return ss;

nomem:

    snprintf(err, errlen, "out of memory");
    nixcache_s3sink_destroy(ss);
    return NULL;
}


void
nixcache_s3sink_destroy(nixcache_s3sink_t *ss)
{
    unsigned  i;

    if (ss == NULL) {
        return;
    }

    (void) nixcache_s3_wait(ss->s3);

    if (ss->slots != NULL) {
        for (i = 0; i < ss->nslots; i++) {
            free(ss->slots[i].frame);
            free(ss->slots[i].cmp);
        }
    }

    free(ss->slots);
    free(ss->plain);
    free(ss);
}


uint64_t
nixcache_s3sink_uploaded(nixcache_s3sink_t *ss)
{
    return ss->uploaded;
}


uint64_t
nixcache_s3sink_uploaded_bytes(nixcache_s3sink_t *ss)
{
    return ss->uploaded_bytes;
}


uint64_t
nixcache_s3sink_present(nixcache_s3sink_t *ss)
{
    return ss->present;
}


/* In the bucket?  A synchronous HEAD (the pipeline does not ask this). */

static int
nixcache_s3sink_has(void *data, const unsigned char *digest)
{
    nixcache_s3sink_t  *ss;
    nixcache_s3_req_t   req;

    ss = data;

    memset(&req, 0, sizeof(nixcache_s3_req_t));
    req.method = "HEAD";

    if (nixcache_s3_chunk_key(ss->s3, req.key, sizeof(req.key), digest) != 0
        || nixcache_s3_run_one(ss->s3, &req) != 0)
    {
        nixcache_s3sink_error(ss, nixcache_s3_error(ss->s3));
        errno = EIO;
        return -1;
    }

    if (req.failed) {
        nixcache_s3sink_error(ss, req.error);
        errno = EIO;
        return -1;
    }

    return req.status != 404;
}


/*
 * A new frame: into the local tier first (write-through), then a slot.
 * Returns 1 at once; the upload's outcome comes with sync().
 */

static int
nixcache_s3sink_put(void *data, const unsigned char *digest,
    const void *frame, size_t len)
{
    int                 rc;
    nixcache_s3sink_t  *ss;

    ss = data;

    if (ss->failures > 0) {
        /* this NAR fails: stop uploading its chunks */
        (void) nixcache_s3sink_drain(ss);
        errno = EIO;
        return -1;
    }

    if (len > ss->frame_cap) {
        errno = EFBIG;
        return -1;
    }

    if (ss->local != NULL) {
        rc = ss->local->put(ss->local->data, digest, frame, len);

        if (rc != 1) {
            /*
             * -1: failed; 0: a concurrent writer stored it first, and the
             * pipeline reads that frame back (then uploaded from there)
             */
            return rc;
        }
    }

    if (nixcache_s3sink_enqueue(ss, digest, frame, len) != 0) {
        errno = EIO;
        return -1;
    }

    return 1;
}


/*
 * Only the local tier is read: the bucket is checked asynchronously.  A
 * frame found there is uploaded too unless it is already in the bucket.
 */

static ssize_t
nixcache_s3sink_read_stored(void *data, const unsigned char *digest,
    void *buf, size_t cap)
{
    ssize_t             n;
    nixcache_s3sink_t  *ss;

    ss = data;

    if (ss->local == NULL) {
        return 0;
    }

    if (ss->failures > 0) {
        (void) nixcache_s3sink_drain(ss);
        errno = EIO;
        return -1;
    }

    n = ss->local->read_stored(ss->local->data, digest, buf, cap);

    if (n <= 0) {
        return n;
    }

    /* a bad file: the pipeline says so; never copy it to the bucket */
    if (!nixcache_s3sink_valid(ss, digest, buf, n)) {
        return n;
    }

    if (nixcache_s3sink_enqueue(ss, digest, buf, n) != 0) {
        errno = EIO;
        return -1;
    }

    return n;
}


/* Every upload confirmed (2xx), or -1: the NAR must not be published. */

static int
nixcache_s3sink_sync(void *data)
{
    nixcache_s3sink_t  *ss;

    ss = data;

    if (nixcache_s3sink_drain(ss) != 0) {
        errno = EIO;
        return -1;
    }

    if (ss->local != NULL && ss->local->sync(ss->local->data) != 0) {
        return -1;
    }

    ss->error[0] = '\0';

    return 0;
}


/* Waits for every slot; -1 if an upload failed (the count is reset). */

static int
nixcache_s3sink_drain(nixcache_s3sink_t *ss)
{
    unsigned  failures;

    if (nixcache_s3_wait(ss->s3) != 0) {
        nixcache_s3sink_error(ss, nixcache_s3_error(ss->s3));
        ss->failures++;
    }

    failures = ss->failures;
    ss->failures = 0;

    return failures ? -1 : 0;
}


static int
nixcache_s3sink_enqueue(nixcache_s3sink_t *ss, const unsigned char *digest,
    const void *frame, size_t len)
{
    unsigned                 i, k;
    unsigned char            md[EVP_MAX_MD_SIZE];
    unsigned int             mdlen;
    nixcache_s3sink_slot_t  *slot;

    static const char        hex[] = "0123456789abcdef";

    if (len > ss->frame_cap) {
        nixcache_s3sink_error(ss, "S3: a frame larger than expected");
        return -1;
    }

    /* the same chunk twice in a row (repeated content): one upload */
    for (i = 0; i < ss->nslots; i++) {
        if (ss->slots[i].state != NIXCACHE_S3SINK_FREE
            && memcmp(ss->slots[i].digest, digest, NIXCACHE_SHA256_LEN) == 0
            && ss->slots[i].len == len
            && memcmp(ss->slots[i].frame, frame, len) == 0)
        {
            return 0;
        }
    }

    for ( ;; ) {
        for (i = 0; i < ss->nslots; i++) {
            if (ss->slots[i].state == NIXCACHE_S3SINK_FREE) {
                break;
            }
        }

        if (i < ss->nslots) {
            break;
        }

        if (nixcache_s3_wait_room(ss->s3) != 0) {
            nixcache_s3sink_error(ss, nixcache_s3_error(ss->s3));
            return -1;
        }
    }

    slot = &ss->slots[i];

    if (EVP_Digest(frame, len, md, &mdlen, EVP_md5(), NULL) != 1
        || mdlen != 16)
    {
        nixcache_s3sink_error(ss, "S3: MD5 failed");
        return -1;
    }

    for (k = 0; k < 16; k++) {
        slot->md5[2 * k] = hex[md[k] >> 4];
        slot->md5[2 * k + 1] = hex[md[k] & 0xf];
    }

    slot->md5[32] = '\0';

    memcpy(slot->frame, frame, len);
    memcpy(slot->digest, digest, NIXCACHE_SHA256_LEN);
    slot->len = len;

    memset(&slot->req, 0, sizeof(nixcache_s3_req_t));
    slot->req.method = "HEAD";
    slot->req.done = nixcache_s3sink_done;
    slot->req.data = slot;

    if (nixcache_s3_chunk_key(ss->s3, slot->req.key, sizeof(slot->req.key),
                              digest)
        != 0)
    {
        nixcache_s3sink_error(ss, "S3: key too long");
        return -1;
    }

    slot->state = NIXCACHE_S3SINK_HEAD;

    if (nixcache_s3_submit(ss->s3, &slot->req) != 0) {
        nixcache_s3sink_error(ss, nixcache_s3_error(ss->s3));
        slot->state = NIXCACHE_S3SINK_FREE;
        return -1;
    }

    return 0;
}


/* One zstd frame that decompresses to the chunk named by digest? */

static int
nixcache_s3sink_valid(nixcache_s3sink_t *ss, const unsigned char *digest,
    const void *frame, size_t len)
{
    uint64_t        usize;
    unsigned char  *p;

    if (nixcache_frame_shape(frame, len, NIXCACHE_FRAME_ANY_SIZE, &usize)
        != NIXCACHE_FRAME_OK)
    {
        return 0;
    }

    if (usize > ss->plain_cap) {
        p = realloc(ss->plain, usize ? usize : 1);
        if (p == NULL) {
            return 0;
        }

        ss->plain = p;
        ss->plain_cap = usize;
    }

    return nixcache_frame_check(NULL, frame, len, usize, digest, ss->plain,
                                ss->plain_cap, NULL)
           == NIXCACHE_FRAME_OK;
}


static void
nixcache_s3sink_done(nixcache_s3_req_t *req)
{
    nixcache_s3sink_t       *ss;
    nixcache_s3sink_slot_t  *slot;

    slot = req->data;
    ss = slot->ss;

    if (req->failed) {
        nixcache_s3sink_fail(slot, req->error);
        return;
    }

    switch (slot->state) {

    case NIXCACHE_S3SINK_HEAD:

        if (req->status == 404) {
            goto put;
        }

        if (req->content_length != slot->len) {
            nixcache_s3sink_mismatch(slot, req->content_length);
            return;
        }

        if (nixcache_s3sink_is_md5(req->etag)) {
            if (strcmp(req->etag, slot->md5) != 0) {
                nixcache_s3sink_mismatch(slot, req->content_length);
                return;
            }

            ss->present++;
            slot->state = NIXCACHE_S3SINK_FREE;
            return;
        }

        /* no MD5 ETag (e.g. SSE-KMS): compare the bytes */
        if (slot->cmp == NULL) {
            slot->cmp = malloc(ss->frame_cap + 1);
            if (slot->cmp == NULL) {
                nixcache_s3sink_fail(slot, "out of memory");
                return;
            }
        }

        req->method = "GET";
        req->out = slot->cmp;
        req->out_cap = ss->frame_cap + 1;
        slot->state = NIXCACHE_S3SINK_GET;

        if (nixcache_s3_submit(ss->s3, req) != 0) {
            nixcache_s3sink_fail(slot, "S3: cannot start a GET");
        }

        return;

    case NIXCACHE_S3SINK_GET:

        if (req->status == 404) {
            goto put;
        }

        if (req->out_len != slot->len
            || memcmp(slot->cmp, slot->frame, slot->len) != 0)
        {
            nixcache_s3sink_mismatch(slot, req->out_len);
            return;
        }

        ss->present++;
        slot->state = NIXCACHE_S3SINK_FREE;
        return;

    case NIXCACHE_S3SINK_PUT:

        ss->uploaded++;
        ss->uploaded_bytes += slot->len;
        slot->state = NIXCACHE_S3SINK_FREE;
        return;

    default:
        nixcache_s3sink_fail(slot, "S3: request done in a free slot");
        return;
    }

put:

    req->method = "PUT";
    req->body = slot->frame;
    req->body_len = slot->len;
    req->out = NULL;
    req->out_cap = 0;
    slot->state = NIXCACHE_S3SINK_PUT;

    /* cannot wait: this slot's request was the one in flight, now done */
    if (nixcache_s3_submit(ss->s3, req) != 0) {
        nixcache_s3sink_fail(slot, "S3: cannot start a PUT");
    }
}


static void
nixcache_s3sink_mismatch(nixcache_s3sink_slot_t *slot, uint64_t stored_len)
{
    char  cid[NIXCACHE_CID_LEN + 1];
    char  msg[NIXCACHE_S3_KEY_MAX + 512];

    nixcache_cid_encode(cid, slot->digest);
    cid[NIXCACHE_CID_LEN] = '\0';

    snprintf(msg, sizeof(msg),
             "chunk %s: the bucket holds another frame of it (%s, %llu "
             "bytes, ours %zu bytes), stored with another --level or zstd "
             "version; it is kept (published manifests name it): push "
             "with the level it was stored with",
             cid, slot->req.key, (unsigned long long) stored_len, slot->len);

    nixcache_s3sink_fail(slot, msg);
}


static void
nixcache_s3sink_fail(nixcache_s3sink_slot_t *slot, const char *msg)
{
    nixcache_s3sink_error(slot->ss, msg);

    slot->ss->failures++;
    slot->state = NIXCACHE_S3SINK_FREE;
}


/* The first failure since the last sync is the one reported. */

static void
nixcache_s3sink_error(nixcache_s3sink_t *ss, const char *msg)
{
    if (ss->failures == 0) {
        snprintf(ss->error, sizeof(ss->error), "%s", msg);
    }
}


const char *
nixcache_s3sink_strerror(nixcache_s3sink_t *ss)
{
    return ss->error;
}


static int
nixcache_s3sink_is_md5(const char *etag)
{
    size_t  i;

    for (i = 0; etag[i] != '\0'; i++) {
        if (!((etag[i] >= '0' && etag[i] <= '9')
              || (etag[i] >= 'a' && etag[i] <= 'f')))
        {
            return 0;
        }
    }

    return i == 32;
}
