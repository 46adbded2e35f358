/*
 * Nix's base-32 ("nix32"): alphabet 0123456789abcdfghijklmnpqrsvwxyz,
 * least significant 5-bit group last, as libutil/hash.cc does.
 */

#ifndef NIXCACHE_NIX32_H
#define NIXCACHE_NIX32_H

#include <stddef.h>


/* Characters needed to encode n bytes: (n * 8 - 1) / 5 + 1. */
size_t nixcache_nix32_len(size_t n);

/* Writes nixcache_nix32_len(n) characters (no NUL) to dst. */
void nixcache_nix32_encode(char *dst, const unsigned char *src, size_t n);

/*
 * Decodes len characters into n bytes; len must be nixcache_nix32_len(n).
 * Returns 0, or -1 on a character outside the alphabet, a wrong length, or
 * non-zero bits beyond n bytes.
 */
int nixcache_nix32_decode(unsigned char *dst, size_t n, const char *src,
    size_t len);

/* 1 if every one of len characters is in the nix32 alphabet, else 0. */
int nixcache_nix32_valid(const char *s, size_t len);


#endif /* NIXCACHE_NIX32_H */
