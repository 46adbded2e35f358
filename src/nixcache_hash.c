/*
 * SHA-256 through OpenSSL's EVP interface, and the "sha256:..." strings
 * of narinfo files.
 */

#include <string.h>

#include <openssl/evp.h>

#include "nixcache_hash.h"
#include "nixcache_nix32.h"


#define NIXCACHE_HASH_PREFIX      "sha256:"
#define NIXCACHE_HASH_PREFIX_LEN  (sizeof(NIXCACHE_HASH_PREFIX) - 1)


static int nixcache_hex_digit(unsigned char c);


int
nixcache_sha256_init(nixcache_sha256_t *ctx)
{
    EVP_MD_CTX  *md;

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        ctx->evp = NULL;
        return -1;
    }

    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        ctx->evp = NULL;
        return -1;
    }

    ctx->evp = md;

    return 0;
}


void
nixcache_sha256_update(nixcache_sha256_t *ctx, const void *p, size_t n)
{
    EVP_DigestUpdate(ctx->evp, p, n);
}


void
nixcache_sha256_final(nixcache_sha256_t *ctx, unsigned char *digest)
{
    unsigned int  len;

    EVP_DigestFinal_ex(ctx->evp, digest, &len);
}


void
nixcache_sha256_free(nixcache_sha256_t *ctx)
{
    if (ctx->evp != NULL) {
        EVP_MD_CTX_free(ctx->evp);
        ctx->evp = NULL;
    }
}


void
nixcache_sha256(unsigned char *digest, const void *p, size_t n)
{
    unsigned int  len;

    EVP_Digest(p, n, digest, &len, EVP_sha256(), NULL);
}


int
nixcache_hash_parse(unsigned char *digest, const char *s, size_t len)
{
    int     hi, lo;
    size_t  i;

    if (len < NIXCACHE_HASH_PREFIX_LEN
        || memcmp(s, NIXCACHE_HASH_PREFIX, NIXCACHE_HASH_PREFIX_LEN) != 0)
    {
        return -1;
    }

    s += NIXCACHE_HASH_PREFIX_LEN;
    len -= NIXCACHE_HASH_PREFIX_LEN;

    if (len == NIXCACHE_SHA256_NIX32_LEN) {
        return nixcache_nix32_decode(digest, NIXCACHE_SHA256_LEN, s, len);
    }

    if (len != NIXCACHE_SHA256_HEX_LEN) {
        return -1;
    }

    for (i = 0; i < NIXCACHE_SHA256_LEN; i++) {
        hi = nixcache_hex_digit((unsigned char) s[2 * i]);
        lo = nixcache_hex_digit((unsigned char) s[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        digest[i] = (unsigned char) (hi << 4 | lo);
    }

    return 0;
}


void
nixcache_hash_format(char *dst, const unsigned char *digest)
{
    memcpy(dst, NIXCACHE_HASH_PREFIX, NIXCACHE_HASH_PREFIX_LEN);
    nixcache_nix32_encode(dst + NIXCACHE_HASH_PREFIX_LEN, digest,
                          NIXCACHE_SHA256_LEN);
}


static int
nixcache_hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;                  /* Nix accepts upper case too */

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}
