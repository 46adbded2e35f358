/*
 * nix32 against vectors made by Nix itself:
 *   printf abc | sha256sum   ->  hex
 *   nix-hash --type sha256 --to-base32 <hex>
 *   nix-hash --type sha1 --to-base32 <hex>      (20 bytes, a store hash)
 */

#include "unit.h"

#include "nixcache_nix32.h"


typedef struct {
    const char  *hex;
    const char  *nix32;
} vector_t;


static const vector_t  vectors[] = {
    /* sha256("") */
    { "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73" },
    /* sha256("abc") */
    { "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s" },
    { "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
      "1vydmf4nfi9307pwvaw9cx2j60ggrnmqjrs54c0yzkdbi5kla8q1" },
    { "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
      "1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz" },
    { "0000000000000000000000000000000000000000000000000000000000000000",
      "0000000000000000000000000000000000000000000000000000" },
    /* sha1("abc") */
    { "a9993e364706816aba3e25717850c26c9cd0d89d",
      "kpcd173cq987hw957sx6m0868wv3x6d9" },
};


static void
unhex(unsigned char *dst, const char *hex)
{
    unsigned int  b;

    while (*hex) {
        sscanf(hex, "%2x", &b);
        *dst++ = (unsigned char) b;
        hex += 2;
    }
}


int
main(void)
{
    char           out[64], s[64];
    size_t         i, n;
    unsigned char  bin[32], back[32];

    is_u64(nixcache_nix32_len(32), 52, "32 bytes take 52 characters");
    is_u64(nixcache_nix32_len(20), 32, "20 bytes take 32 characters");
    is_u64(nixcache_nix32_len(1), 2, "1 byte takes 2 characters");

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        n = strlen(vectors[i].hex) / 2;
        unhex(bin, vectors[i].hex);

        nixcache_nix32_encode(out, bin, n);
        is_str(out, nixcache_nix32_len(n), vectors[i].nix32,
               "encode %s", vectors[i].hex);

        memset(back, 0xaa, sizeof(back));
        ok(nixcache_nix32_decode(back, n, vectors[i].nix32,
                                 strlen(vectors[i].nix32)) == 0
           && memcmp(back, bin, n) == 0,
           "decode %s", vectors[i].nix32);

        ok(nixcache_nix32_valid(vectors[i].nix32, strlen(vectors[i].nix32)),
           "valid %s", vectors[i].nix32);
    }

    /* round trips over many byte patterns, every length up to 32 */

    for (n = 1; n <= 32; n++) {
        int  good = 1;

        for (i = 0; i < 256; i++) {
            size_t  k;

            for (k = 0; k < n; k++) {
                bin[k] = (unsigned char) (i * 31 + k * 7 + (i >> 3) * k);
            }

            nixcache_nix32_encode(out, bin, n);

            if (nixcache_nix32_decode(back, n, out, nixcache_nix32_len(n))
                != 0 || memcmp(back, bin, n) != 0)
            {
                good = 0;
            }
        }

        ok(good, "round trip of 256 patterns of %zu bytes", n);
    }

    /* rejects */

    strcpy(s, vectors[1].nix32);

    s[10] = 'e';
    ok(nixcache_nix32_decode(bin, 32, s, 52) == -1, "rejects 'e'");
    ok(!nixcache_nix32_valid(s, 52), "'e' is not valid");
    s[10] = 'o';
    ok(nixcache_nix32_decode(bin, 32, s, 52) == -1, "rejects 'o'");
    ok(!nixcache_nix32_valid(s, 52), "'o' is not valid");
    s[10] = 'u';
    ok(nixcache_nix32_decode(bin, 32, s, 52) == -1, "rejects 'u'");
    ok(!nixcache_nix32_valid(s, 52), "'u' is not valid");
    s[10] = 't';
    ok(nixcache_nix32_decode(bin, 32, s, 52) == -1, "rejects 't'");
    ok(!nixcache_nix32_valid(s, 52), "'t' is not valid");
    s[10] = 'B';
    ok(nixcache_nix32_decode(bin, 32, s, 52) == -1, "rejects upper case");
    s[10] = '\0';
    ok(nixcache_nix32_decode(bin, 32, s, 52) == -1, "rejects NUL");
    ok(!nixcache_nix32_valid(s, 52), "NUL is not valid");

    ok(nixcache_nix32_decode(bin, 32, vectors[1].nix32, 51) == -1,
       "rejects 51 characters");
    ok(nixcache_nix32_decode(bin, 20, vectors[1].nix32, 52) == -1,
       "rejects 52 characters for 20 bytes");
    ok(nixcache_nix32_decode(bin, 0, "", 0) == -1, "rejects 0 bytes");

    /* 52 characters carry 260 bits: the top 4 must be 0 ("2..." is 2^256) */

    strcpy(s, vectors[3].nix32);
    ok(nixcache_nix32_decode(bin, 32, s, 52) == 0, "accepts 1zzz...");
    s[0] = '2';
    ok(nixcache_nix32_decode(bin, 32, s, 52) == -1,
       "rejects overflow bits (nix-hash says invalid too)");
    s[0] = 'z';
    ok(nixcache_nix32_decode(bin, 32, s, 52) == -1, "rejects overflow z...");

    /* 32 characters carry 160 bits: exact, no overflow possible; 2 chars
     * for 1 byte carry 10 bits */

    ok(nixcache_nix32_decode(bin, 1, "7z", 2) == 0 && bin[0] == 0xff,
       "\"7z\" is 0xff");
    ok(nixcache_nix32_decode(bin, 1, "80", 2) == -1,
       "\"80\" overflows one byte");

    ok(nixcache_nix32_valid("0123456789abcdfghijklmnpqrsvwxyz", 32),
       "the whole alphabet is valid");

    return done_testing();
}
