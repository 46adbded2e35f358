/*
 * The S3 tier as the ingest pipeline's chunk sink (nixcache_ingest.h):
 * every chunk of a NAR ends up as the object <prefix><xx>/<CID> in the
 * bucket, optionally also in a local disk tier (write-through).
 *
 * Puts are asynchronous: put() copies the frame into one of N slots
 * (N = the number of requests in flight, --s3-inflight) and returns; the
 * slot's HEAD, then PUT if the object is missing, run while the pipeline
 * chunks and compresses the next ones.  So memory is N frames, whatever
 * the NAR size.  sync() waits for every slot and fails if any upload
 * failed: the caller publishes the manifest only after it succeeds.
 *
 * Dedup: the bucket itself is the index (a HEAD per chunk, in parallel),
 * so any number of writers and a bucket filled by another machine work;
 * nothing is remembered between runs.  A chunk already in the local tier
 * is read from there (its frame is the one to hash) and still checked in
 * the bucket, so a disk tier filled before S3 was configured gets
 * uploaded too.
 *
 * An object already in the bucket is kept, never replaced (published
 * manifests name its size).  It must be the same frame as ours: equal
 * size and ETag (the MD5 of a single-part upload), or, when the ETag is
 * no MD5 (e.g. SSE-KMS), equal bytes fetched with a GET.  A different
 * frame of the same chunk (pushed with another --level or zstd version)
 * fails the NAR with a clear error: its FileHash would otherwise not
 * describe the frames served.
 */

#ifndef NIXCACHE_S3SINK_H
#define NIXCACHE_S3SINK_H

#include "nixcache_ingest.h"
#include "nixcache_s3.h"


typedef struct nixcache_s3sink_s  nixcache_s3sink_t;


/*
 * local: the disk tier's sink for write-through, or NULL; it must outlive
 * the S3 sink, as must s3.  frame_cap: the largest frame put.  NULL and a
 * message in err on failure.
 */
nixcache_s3sink_t *nixcache_s3sink_create(nixcache_chunk_sink_t *sink,
    nixcache_s3_t *s3, const nixcache_chunk_sink_t *local,
    size_t frame_cap, char *err, size_t errlen);
void nixcache_s3sink_destroy(nixcache_s3sink_t *ss);

/*
 * Why the sink last failed (a put, read_stored or sync that returned -1):
 * the first S3 error since the previous sync, e.g. "s3 PUT URL: 403
 * AccessDenied (after 5 attempts)".  Nothing is printed by the sink.
 */
const char *nixcache_s3sink_strerror(nixcache_s3sink_t *ss);

/* Objects uploaded, and chunks found already in the bucket. */
uint64_t nixcache_s3sink_uploaded(nixcache_s3sink_t *ss);
uint64_t nixcache_s3sink_present(nixcache_s3sink_t *ss);
uint64_t nixcache_s3sink_uploaded_bytes(nixcache_s3sink_t *ss);


#endif /* NIXCACHE_S3SINK_H */
