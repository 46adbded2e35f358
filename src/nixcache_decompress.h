/*
 * Streaming decompression of NAR files as binary caches hold them (none,
 * xz, zstd, bzip2) with fixed-size buffers, the decompressed bytes handed
 * to an output callback (the ingest pipeline: nixcache_ingest_out).  A
 * stream that ends early, carries trailing garbage or decodes to more
 * than a limit is an error.  Nothing printed: errors come back as a code
 * and a message.  Used by the CLI's import and the module's uploads.
 */

#ifndef NIXCACHE_DECOMPRESS_H
#define NIXCACHE_DECOMPRESS_H

#include <stddef.h>
#include <stdint.h>


#define NIXCACHE_DECOMP_ERR_LEN     256

/* the read size of nixcache_decomp_fd() */
#define NIXCACHE_DECOMP_IN_SIZE     (64 * 1024)


typedef enum {
    NIXCACHE_DECOMP_NONE = 0,
    NIXCACHE_DECOMP_XZ,
    NIXCACHE_DECOMP_ZSTD,
    NIXCACHE_DECOMP_BZIP2
} nixcache_decomp_e;


typedef enum {
    NIXCACHE_DECOMP_OK = 0,
    NIXCACHE_DECOMP_ERR_INPUT,      /* corrupt, truncated, trailing data,
                                       over the limit: the input's fault */
    NIXCACHE_DECOMP_ERR_NOMEM,
    NIXCACHE_DECOMP_ERR_READ,       /* reading the fd (sys_errno) */
    NIXCACHE_DECOMP_ERR_OUTPUT,     /* the output callback failed: its own
                                       error says why */
    NIXCACHE_DECOMP_ERR_INTERNAL    /* a decoder would not initialise */
} nixcache_decomp_err_e;


/* Takes n decompressed bytes: 0, or -1 to stop. */
typedef int (*nixcache_decomp_out_pt)(void *data, const void *p, size_t n);


typedef struct nixcache_decomp_s  nixcache_decomp_t;


/*
 * Compression names as narinfo's Compression carries them ("none", "xz",
 * "zstd", "bzip2"): 0, or -1 when unknown.
 */
int nixcache_decomp_kind(const char *s, size_t len, nixcache_decomp_e *kind);

/*
 * File name extensions after ".nar" as Nix writes them ("", ".xz", ".zst",
 * ".bz2"): 0, or -1 when unknown.
 */
int nixcache_decomp_kind_ext(const char *s, size_t len,
    nixcache_decomp_e *kind);

/*
 * A decoder; NULL only when out of memory.  A decoder that could not
 * initialise is returned with its error set, and fails every call.
 */
nixcache_decomp_t *nixcache_decomp_create(nixcache_decomp_e kind,
    uint64_t limit, nixcache_decomp_out_pt out, void *data);

/* n more compressed bytes; eof != 0 with the last (n may be 0): 0 or -1. */
int nixcache_decomp_feed(nixcache_decomp_t *d, const unsigned char *in,
    size_t n, int eof);

/*
 * Reads fd to its end and feeds everything.  file_hash (may be NULL) and
 * *file_size (may be NULL) get the compressed input's SHA-256 and size.
 * Returns 0 or -1.
 */
int nixcache_decomp_fd(nixcache_decomp_t *d, int fd,
    unsigned char *file_hash, uint64_t *file_size);

nixcache_decomp_err_e nixcache_decomp_error(const nixcache_decomp_t *d);
int nixcache_decomp_errno(const nixcache_decomp_t *d);
const char *nixcache_decomp_strerror(const nixcache_decomp_t *d);

/* Decompressed bytes passed on so far. */
uint64_t nixcache_decomp_total(const nixcache_decomp_t *d);

void nixcache_decomp_destroy(nixcache_decomp_t *d);


#endif /* NIXCACHE_DECOMPRESS_H */
