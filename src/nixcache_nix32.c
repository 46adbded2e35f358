/*
 * Nix's base-32.  The string is read from its end: character n from the
 * end holds the 5 bits that start at bit n * 5 of the byte string (bit 0
 * being the least significant bit of byte 0).
 */

#include <stdint.h>

#include "nixcache_nix32.h"


static const char  nixcache_nix32_chars[] = "0123456789abcdfghijklmnpqrsvwxyz";


static int nixcache_nix32_digit(unsigned char c);


size_t
nixcache_nix32_len(size_t n)
{
    if (n == 0) {
        return 0;
    }

    return (n * 8 - 1) / 5 + 1;
}


void
nixcache_nix32_encode(char *dst, const unsigned char *src, size_t n)
{
    size_t        len, k, b, i, j;
    unsigned int  c;

    len = nixcache_nix32_len(n);

    for (k = 0; k < len; k++) {
        b = (len - 1 - k) * 5;
        i = b / 8;
        j = b % 8;

        c = src[i] >> j;

        if (i + 1 < n) {
            c |= (unsigned int) src[i + 1] << (8 - j);
        }

        dst[k] = nixcache_nix32_chars[c & 0x1f];
    }
}


int
nixcache_nix32_decode(unsigned char *dst, size_t n, const char *src,
    size_t len)
{
    int     d;
    size_t  k, b, i, j;

    if (n == 0 || len != nixcache_nix32_len(n)) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        dst[i] = 0;
    }

    for (k = 0; k < len; k++) {
        d = nixcache_nix32_digit((unsigned char) src[len - 1 - k]);
        if (d < 0) {
            return -1;
        }

        b = k * 5;
        i = b / 8;
        j = b % 8;

        dst[i] |= (unsigned char) (d << j);

        if (i + 1 < n) {
            dst[i + 1] |= (unsigned char) (d >> (8 - j));

        } else if (d >> (8 - j)) {
            return -1;
        }
    }

    return 0;
}


int
nixcache_nix32_valid(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (nixcache_nix32_digit((unsigned char) s[i]) < 0) {
            return 0;
        }
    }

    return 1;
}


static int
nixcache_nix32_digit(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c < 'a' || c > 'z') {
        return -1;
    }

    switch (c) {
    case 'e':
    case 'o':
    case 'u':
    case 't':
        return -1;
    }

    /* 'a'..'d' are 10..13, then each excluded letter shifts the rest */

    if (c <= 'd') {
        return c - 'a' + 10;
    }

    if (c <= 'n') {
        return c - 'a' + 10 - 1;
    }

    if (c <= 's') {
        return c - 'a' + 10 - 2;
    }

    return c - 'a' + 10 - 4;
}
