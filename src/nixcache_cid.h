/*
 * Chunk IDs as CIDv1 strings and the disk tier's chunk paths.
 */

#ifndef NIXCACHE_CID_H
#define NIXCACHE_CID_H

#include <stddef.h>

#include "nixcache_format.h"


/* Writes NIXCACHE_CID_LEN characters (no NUL) for a SHA-256 digest. */
void nixcache_cid_encode(char *dst, const unsigned char *digest);

/* Parses a CID string back to its digest: 0, or -1 if it is not ours. */
int nixcache_cid_decode(unsigned char *digest, const char *cid, size_t len);

/*
 * Writes "/<xx>/<CID>" (NIXCACHE_CHUNK_RELPATH_LEN characters, no NUL) for
 * a digest: appended to the chunk directory it names the chunk's file.
 */
void nixcache_chunk_relpath(char *dst, const unsigned char *digest);


#endif /* NIXCACHE_CID_H */
