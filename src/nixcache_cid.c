/*
 * CIDv1 strings for chunk IDs: multibase 'b' (RFC 4648 base32, lower
 * case, no padding) of 0x01 (CIDv1) 0x55 (raw) 0x12 (sha2-256) 0x20
 * (32 bytes) followed by the digest.
 */

#include <stdint.h>
#include <string.h>

#include "nixcache_cid.h"


#define NIXCACHE_CID_BIN_LEN  (4 + NIXCACHE_SHA256_LEN)


static const unsigned char  nixcache_cid_prefix[4] = { 0x01, 0x55, 0x12, 0x20 };
static const char           nixcache_b32_chars[] =
    "abcdefghijklmnopqrstuvwxyz234567";


static int nixcache_b32_digit(unsigned char c);


void
nixcache_cid_encode(char *dst, const unsigned char *digest)
{
    size_t         i, k;
    uint32_t       acc;
    unsigned int   bits;
    unsigned char  bin[NIXCACHE_CID_BIN_LEN];

    memcpy(bin, nixcache_cid_prefix, 4);
    memcpy(bin + 4, digest, NIXCACHE_SHA256_LEN);

    dst[0] = 'b';
    k = 1;
    acc = 0;
    bits = 0;

    for (i = 0; i < NIXCACHE_CID_BIN_LEN; i++) {
        acc = (acc << 8) | bin[i];
        bits += 8;

        while (bits >= 5) {
            bits -= 5;
            dst[k++] = nixcache_b32_chars[(acc >> bits) & 0x1f];
        }
    }

    if (bits > 0) {
        dst[k] = nixcache_b32_chars[(acc << (5 - bits)) & 0x1f];
    }
}


int
nixcache_cid_decode(unsigned char *digest, const char *cid, size_t len)
{
    int            d;
    size_t         i, k;
    uint32_t       acc;
    unsigned int   bits;
    unsigned char  bin[NIXCACHE_CID_BIN_LEN];

    if (len != NIXCACHE_CID_LEN || cid[0] != 'b') {
        return -1;
    }

    k = 0;
    acc = 0;
    bits = 0;

    for (i = 1; i < len; i++) {
        d = nixcache_b32_digit((unsigned char) cid[i]);
        if (d < 0) {
            return -1;
        }

        acc = (acc << 5) | (uint32_t) d;
        bits += 5;

        if (bits >= 8) {
            bits -= 8;
            bin[k++] = (unsigned char) (acc >> bits);
        }
    }

    /* 58 characters carry 290 bits: the 2 left over must be zero */

    if (acc & ((1u << bits) - 1)) {
        return -1;
    }

    if (memcmp(bin, nixcache_cid_prefix, 4) != 0) {
        return -1;
    }

    memcpy(digest, bin + 4, NIXCACHE_SHA256_LEN);

    return 0;
}


void
nixcache_chunk_relpath(char *dst, const unsigned char *digest)
{
    char  *cid;

    cid = dst + 1 + NIXCACHE_CHUNK_FANOUT_LEN + 1;

    nixcache_cid_encode(cid, digest);

    dst[0] = '/';
    memcpy(dst + 1, cid + NIXCACHE_CID_LEN - NIXCACHE_CHUNK_FANOUT_LEN,
           NIXCACHE_CHUNK_FANOUT_LEN);
    dst[1 + NIXCACHE_CHUNK_FANOUT_LEN] = '/';
}


static int
nixcache_b32_digit(unsigned char c)
{
    if (c >= 'a' && c <= 'z') {
        return c - 'a';
    }

    if (c >= '2' && c <= '7') {
        return c - '2' + 26;
    }

    return -1;
}
