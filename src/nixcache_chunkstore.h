/*
 * The disk tier seen from a writer: one zstd frame per file under
 * <dir>/<xx>/<CID>.  Used by the CLI and by the module's uploads (off the
 * event loop), through the ingest pipeline's chunk sink interface.
 */

#ifndef NIXCACHE_CHUNKSTORE_H
#define NIXCACHE_CHUNKSTORE_H

#include <stddef.h>
#include <sys/types.h>

#include "nixcache_ingest.h"


/* 1 if the chunk file exists, 0 if not, -1 on another error (errno set). */
int nixcache_chunkstore_has(const char *dir, const unsigned char *digest);

/*
 * Writes a compressed frame for digest: creates the fan-out directory
 * (mode 0755), writes a temporary file ".<CID>.tmp.<pid>.<n>" in it (mode
 * 0644, whatever the umask), renames it into place without replacing.  An
 * existing chunk is left as it is.  Returns 0, or -1 (errno set) with no
 * partial file left visible.  Durability before the manifest is written
 * is the caller's: nixcache_chunkstore_sync() once per NAR.
 */
int nixcache_chunkstore_put(const char *dir, const unsigned char *digest,
    const void *frame, size_t len);

/*
 * The same, telling what happened: 1 when this call stored the frame, 0
 * when a chunk of that digest was already there (possibly put there by a
 * concurrent writer, possibly a different frame of the same content: the
 * caller must then describe the stored file, not its own frame, in a
 * manifest), -1 on error (errno set).
 */
int nixcache_chunkstore_store(const char *dir, const unsigned char *digest,
    const void *frame, size_t len);

/* syncfs() on the chunk directory's file system: 0 or -1 (errno set). */
int nixcache_chunkstore_sync(const char *dir);

/*
 * Reads the stored frame of digest into buf, at most cap bytes: its length
 * (cap when the file is cap bytes or longer), 0 when there is no such
 * chunk, -1 on another error (errno set).
 */
ssize_t nixcache_chunkstore_read(const char *dir, const unsigned char *digest,
    void *buf, size_t cap);

/*
 * The disk tier as the ingest pipeline's chunk sink (the default one).
 * dir must outlive the sink.
 */
void nixcache_chunkstore_sink(nixcache_chunk_sink_t *sink, const char *dir);


#endif /* NIXCACHE_CHUNKSTORE_H */
