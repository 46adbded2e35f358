/*
 * SHA-256 (OpenSSL EVP, which uses the CPU's SHA extensions) and Nix's
 * textual hash forms.
 */

#ifndef NIXCACHE_HASH_H
#define NIXCACHE_HASH_H

#include <stddef.h>

#include "nixcache_format.h"


typedef struct {
    void                      *evp;     /* EVP_MD_CTX */
} nixcache_sha256_t;


int nixcache_sha256_init(nixcache_sha256_t *ctx);        /* 0 or -1 */
void nixcache_sha256_update(nixcache_sha256_t *ctx, const void *p, size_t n);
void nixcache_sha256_final(nixcache_sha256_t *ctx, unsigned char *digest);
void nixcache_sha256_free(nixcache_sha256_t *ctx);
void nixcache_sha256(unsigned char *digest, const void *p, size_t n);

/*
 * Parses "sha256:<52 nix32>" or "sha256:<64 hex>" (the forms narinfo files
 * carry).  Returns 0, or -1 if the string is not one of them.
 */
int nixcache_hash_parse(unsigned char *digest, const char *s, size_t len);

/* Writes "sha256:<52 nix32>" (NIXCACHE_HASH_STR_LEN chars, no NUL). */
void nixcache_hash_format(char *dst, const unsigned char *digest);


#endif /* NIXCACHE_HASH_H */
