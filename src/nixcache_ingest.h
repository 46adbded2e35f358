/*
 * The ingest pipeline: the bytes of one NAR in, in pieces of any size;
 * content-defined chunks out, each one zstd frame handed to a chunk sink,
 * plus the manifest and the NAR's hashes (NarHash, NarSize, FileHash,
 * FileSize).  Used by the CLI (push, import) and by the module's uploads in
 * a thread-pool thread: no nginx types, no Redis, nothing printed.  Errors
 * come back as a code and a message in the ingest struct.
 *
 * Memory is bounded by the chunking parameters: an input window of
 * 4 x chunk max and one compressed frame, whatever the NAR size.  The
 * manifest grows with the NAR (40 bytes per chunk): in memory, or written
 * to a file descriptor the caller gives.
 *
 * FileHash is the SHA-256 of the frames as they are stored.  A chunk that
 * is already stored may have been compressed at another level (or by
 * another zstd version, or by a concurrent writer a moment ago), so its
 * frame is read back and hashed, never recompressed: the FileHash and
 * FileSize are always those of the bytes the cache will serve.
 *
 * Not thread-safe per struct; one struct per thread, any number of them.
 *
 * Threads (nixcache_ingest_threads(), the CLI's --jobs): with n > 1, n - 1
 * worker threads hash and compress chunks while the caller's thread reads,
 * chunks, computes NarHash and talks to the sink.  Every sink callback is
 * still made from the caller's thread only, and in the serial order where
 * it matters: a chunk is looked up as soon as it is hashed, but one equal
 * to an earlier chunk still in flight is looked up only once that one is
 * stored, and frames are stored, hashed into FileHash and entered in the
 * manifest strictly in chunk order.  So the manifest, the hashes, the
 * chunks stored and the counters are those of the serial pipeline.  At
 * most 2 x n chunks are in flight (a chunk and a frame buffer each), and
 * each worker has its own zstd context: memory grows with n, not with the
 * NAR size.  The progress callback runs in the caller's thread too.
 */

#ifndef NIXCACHE_INGEST_H
#define NIXCACHE_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "nixcache_format.h"
#include "nixcache_chunker.h"
#include "nixcache_hash.h"


#define NIXCACHE_INGEST_ERR_LEN     256
#define NIXCACHE_INGEST_THREADS_MAX 64


/*
 * Where chunk frames go.  Every callback gets data; -1 means failure with
 * errno set.  The disk tier's sink is nixcache_chunkstore_sink().
 *
 *   has          1 stored, 0 not stored
 *   put          1 stored by this call, 0 a frame for that digest was
 *                there already (then it was not replaced), never replaces
 *   read_stored  copies the stored frame into buf, at most cap bytes:
 *                its length (cap when it is cap or longer), 0 when absent
 *   sync         makes every put before it durable (before a manifest
 *                naming them is published)
 */
typedef struct {
    void                      *data;
    int                      (*has)(void *data, const unsigned char *digest);
    int                      (*put)(void *data, const unsigned char *digest,
                                    const void *frame, size_t len);
    ssize_t                  (*read_stored)(void *data,
                                    const unsigned char *digest, void *buf,
                                    size_t cap);
    int                      (*sync)(void *data);
} nixcache_chunk_sink_t;


typedef enum {
    NIXCACHE_INGEST_OK = 0,
    NIXCACHE_INGEST_ERR_PARAMS,     /* invalid chunking parameters, level */
    NIXCACHE_INGEST_ERR_NOMEM,
    NIXCACHE_INGEST_ERR_SINK,       /* the chunk sink failed (sys_errno) */
    NIXCACHE_INGEST_ERR_STORED,     /* a stored chunk is not a valid frame */
    NIXCACHE_INGEST_ERR_MANIFEST,   /* writing the manifest file (sys_errno) */
    NIXCACHE_INGEST_ERR_INTERNAL    /* zstd, SHA-256, chunker, too many */
} nixcache_ingest_err_e;


typedef struct {
    size_t                     chunk_min;
    size_t                     chunk_avg;
    size_t                     chunk_max;
    int                        level;       /* zstd level of new frames */
    const nixcache_chunk_sink_t  *sink;
} nixcache_ingest_conf_t;


/* Counters since nixcache_ingest_init(), over every NAR. */
typedef struct {
    uint64_t                   nar_bytes;
    uint64_t                   chunks;
    uint64_t                   new_chunks;
    uint64_t                   new_usize;
    uint64_t                   new_csize;
} nixcache_ingest_stats_t;


/*
 * What a NAR became: the manifest (header included; NULL when it went to
 * a file) and its hashes.
 */
typedef struct {
    unsigned char             *manifest;
    size_t                     manifest_len;
    uint32_t                   chunk_count;
    uint64_t                   nar_size;
    uint64_t                   file_size;
    unsigned char              nar_hash[NIXCACHE_SHA256_LEN];
    unsigned char              file_hash[NIXCACHE_SHA256_LEN];
} nixcache_nar_t;


typedef struct nixcache_ingest_pool_s  nixcache_ingest_pool_t;


typedef struct {
    const nixcache_chunk_sink_t  *sink;
    nixcache_chunker_t         chunker;
    void                      *cctx;        /* ZSTD_CCtx */

    /* called after each chunk and at the end of a NAR (may be NULL) */
    void                     (*progress)(void *data);
    void                      *progress_data;

    nixcache_ingest_stats_t    stats;
    nixcache_nar_t             nar;

    nixcache_ingest_err_e      error;
    int                        sys_errno;
    char                       errmsg[NIXCACHE_INGEST_ERR_LEN];

    /* input window: at most 4 x chunk max bytes */
    unsigned char             *buf;
    size_t                     size;
    size_t                     start;
    size_t                     end;

    /* one compressed frame, ours or a stored one read back */
    unsigned char             *frame;
    size_t                     frame_cap;

    nixcache_sha256_t          nar_ctx;
    nixcache_sha256_t          file_ctx;
    size_t                     manifest_cap;

    /* manifest to a file: entries buffered in mbuf, written at mbuf_off */
    int                        manifest_fd;
    unsigned char             *mbuf;
    size_t                     mbuf_len;
    uint64_t                   mbuf_off;

    int                        level;
    nixcache_ingest_pool_t    *pool;        /* NULL: serial */

    unsigned                   started:1;
} nixcache_ingest_t;


/* 0, or -1 with ing->error and ing->errmsg set (then call _free). */
int nixcache_ingest_init(nixcache_ingest_t *ing,
    const nixcache_ingest_conf_t *conf);

/*
 * Hashes and compresses chunks on n threads: n - 1 workers plus the
 * caller's (see above); 1, the default, is serial.  Call it between NARs.
 * 0, or -1 with ing->error and ing->errmsg set.
 */
int nixcache_ingest_threads(nixcache_ingest_t *ing, unsigned n);

/*
 * Starts a new NAR; buffers of the previous one are reused.  With
 * manifest_fd >= 0 the manifest is written to that file from offset 0
 * (header at finish) instead of being kept in memory; pass -1 otherwise.
 */
int nixcache_ingest_begin(nixcache_ingest_t *ing, int manifest_fd);

/* n more bytes of the NAR: 0 or -1. */
int nixcache_ingest_write(nixcache_ingest_t *ing, const void *p, size_t n);

/* The end of the NAR: the last chunks, the hashes, the header: 0 or -1. */
int nixcache_ingest_finish(nixcache_ingest_t *ing);

/* Syncs the sink (chunks durable before a manifest names them): 0 or -1. */
int nixcache_ingest_sync(nixcache_ingest_t *ing);

void nixcache_ingest_free(nixcache_ingest_t *ing);

/* nixcache_ingest_write() as a nixcache_decomp_out_pt (data: the ingest) */
int nixcache_ingest_out(void *data, const void *p, size_t n);


#endif /* NIXCACHE_INGEST_H */
