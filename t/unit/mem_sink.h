/*
 * An in-memory chunk sink for the ingest unit tests: stores frames by
 * digest, counts its calls, can fail puts or reads after a number of
 * them, can play a concurrent writer that stores another frame first
 * (racy), and counts calls made from another thread than m->caller.
 */

#ifndef NIXCACHE_UNIT_MEM_SINK_H
#define NIXCACHE_UNIT_MEM_SINK_H

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "nixcache_hash.h"


typedef struct {
    unsigned char              digest[NIXCACHE_SHA256_LEN];
    unsigned char             *frame;
    size_t                     len;
} mem_chunk_t;


typedef struct {
    mem_chunk_t               *chunks;
    size_t                     n;
    size_t                     cap;
    size_t                     puts;
    size_t                     reads;
    size_t                     fail_put_after;   /* puts before failing */
    size_t                     fail_read_after;  /* reads before failing */
    int                        fail_put;         /* errno */
    int                        fail_read;        /* errno */
    int                        racy;       /* put finds another frame */
    size_t                     syncs;
    size_t                     off_thread;  /* calls not from the caller */
    pthread_t                  caller;
} mem_sink_t;


static mem_chunk_t *
mem_find(mem_sink_t *m, const unsigned char *digest)
{
    size_t  i;

    for (i = 0; i < m->n; i++) {
        if (memcmp(m->chunks[i].digest, digest, NIXCACHE_SHA256_LEN) == 0) {
            return &m->chunks[i];
        }
    }

    return NULL;
}


static void
mem_add(mem_sink_t *m, const unsigned char *digest, const void *frame,
    size_t len)
{
    mem_chunk_t  *c;

    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 256;
        m->chunks = realloc(m->chunks, m->cap * sizeof(mem_chunk_t));
    }

    c = &m->chunks[m->n++];
    memcpy(c->digest, digest, NIXCACHE_SHA256_LEN);
    c->frame = malloc(len);
    memcpy(c->frame, frame, len);
    c->len = len;
}


static void
mem_check_thread(mem_sink_t *m)
{
    if (!pthread_equal(pthread_self(), m->caller)) {
        __atomic_fetch_add(&m->off_thread, 1, __ATOMIC_RELAXED);
    }
}


static int
mem_has(void *data, const unsigned char *digest)
{
    mem_check_thread(data);

    return mem_find(data, digest) != NULL;
}


static int
mem_put(void *data, const unsigned char *digest, const void *frame,
    size_t len)
{
    size_t              ulen, clen;
    mem_sink_t         *m = data;
    unsigned char      *plain, *other;

    mem_check_thread(m);

    if (m->fail_put && m->puts >= m->fail_put_after) {
        errno = m->fail_put;
        return -1;
    }

    m->puts++;

    if (mem_find(m, digest) != NULL) {
        return 0;
    }

    if (!m->racy) {
        mem_add(m, digest, frame, len);
        return 1;
    }

    /* another writer got there first, with a level 1 frame */

    ulen = ZSTD_getFrameContentSize(frame, len);
    plain = malloc(ulen + 1);
    ZSTD_decompress(plain, ulen, frame, len);

    other = malloc(ZSTD_compressBound(ulen));
    clen = ZSTD_compress(other, ZSTD_compressBound(ulen), plain, ulen, 1);

    mem_add(m, digest, other, clen);

    free(plain);
    free(other);

    return 0;
}


static ssize_t
mem_read(void *data, const unsigned char *digest, void *buf, size_t cap)
{
    mem_sink_t   *m = data;
    mem_chunk_t  *c;

    mem_check_thread(m);

    if (m->fail_read && m->reads >= m->fail_read_after) {
        errno = m->fail_read;
        return -1;
    }

    m->reads++;

    c = mem_find(m, digest);
    if (c == NULL) {
        return 0;
    }

    if (c->len < cap) {
        cap = c->len;
    }

    memcpy(buf, c->frame, cap);

    return (ssize_t) cap;
}


static int
mem_sync(void *data)
{
    mem_sink_t  *m = data;

    mem_check_thread(m);
    m->syncs++;

    return 0;
}


static void
mem_clear(mem_sink_t *m)
{
    size_t  i;

    for (i = 0; i < m->n; i++) {
        free(m->chunks[i].frame);
    }

    free(m->chunks);
    memset(m, 0, sizeof(mem_sink_t));
    m->caller = pthread_self();
}


#endif /* NIXCACHE_UNIT_MEM_SINK_H */
