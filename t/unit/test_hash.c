/*
 * SHA-256 and the "sha256:" forms.  Digests from sha256sum, nix32 from
 * nix-hash --type sha256 --to-base32.
 */

#include <stdlib.h>

#include "unit.h"

#include "nixcache_hash.h"


static const unsigned char  abc_digest[32] = {
    0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
    0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
    0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad
};

#define ABC_NIX32  "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"
#define ABC_HEX                                                              \
    "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

/* printf 'a%.0s' $(seq 1000000) | sha256sum */
#define MILLION_A_HEX                                                        \
    "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"


int
main(void)
{
    char               s[128];
    size_t             i;
    unsigned char      d[32], d2[32], *big;
    nixcache_sha256_t  ctx;

    nixcache_sha256(d, "abc", 3);
    is_mem(d, abc_digest, 32, "one-shot sha256(abc)");

    ok(nixcache_sha256_init(&ctx) == 0, "init");
    nixcache_sha256_update(&ctx, "a", 1);
    nixcache_sha256_update(&ctx, "", 0);
    nixcache_sha256_update(&ctx, "bc", 2);
    nixcache_sha256_final(&ctx, d2);
    nixcache_sha256_free(&ctx);
    is_mem(d2, abc_digest, 32, "streaming sha256(abc) in pieces");
    ok(ctx.evp == NULL, "free clears the context");
    nixcache_sha256_free(&ctx);
    ok(ctx.evp == NULL, "a second free is harmless");

    big = malloc(1000000);
    memset(big, 'a', 1000000);
    nixcache_sha256(d, big, 1000000);
    ok(nixcache_hash_parse(d2, MILLION_A_HEX, strlen(MILLION_A_HEX)) == 0
       && memcmp(d, d2, 32) == 0, "sha256 of a million 'a'");

    ok(nixcache_sha256_init(&ctx) == 0, "init again");
    for (i = 0; i < 1000000; i += 999) {
        nixcache_sha256_update(&ctx, big + i, i + 999 > 1000000
                                              ? 1000000 - i : 999);
    }
    nixcache_sha256_final(&ctx, d);
    nixcache_sha256_free(&ctx);
    is_mem(d, d2, 32, "streaming a million 'a' in 999-byte pieces");
    free(big);

    memset(d, 0, 32);
    ok(nixcache_hash_parse(d, ABC_NIX32, strlen(ABC_NIX32)) == 0
       && memcmp(d, abc_digest, 32) == 0, "parse nix32 form");

    memset(d, 0, 32);
    ok(nixcache_hash_parse(d, ABC_HEX, strlen(ABC_HEX)) == 0
       && memcmp(d, abc_digest, 32) == 0, "parse hex form");

    strcpy(s, ABC_HEX);
    for (i = 7; s[i]; i++) {
        if (s[i] >= 'a' && s[i] <= 'f') {
            s[i] -= 32;
        }
    }
    memset(d, 0, 32);
    ok(nixcache_hash_parse(d, s, strlen(s)) == 0
       && memcmp(d, abc_digest, 32) == 0, "parse upper case hex, as Nix");

    nixcache_hash_format(s, abc_digest);
    is_str(s, NIXCACHE_HASH_STR_LEN, ABC_NIX32, "format");
    is_u64(NIXCACHE_HASH_STR_LEN, 59, "formatted length");

    /* rejects */

    ok(nixcache_hash_parse(d, ABC_NIX32, strlen(ABC_NIX32) - 1) == -1,
       "rejects a short nix32");
    ok(nixcache_hash_parse(d, ABC_HEX, strlen(ABC_HEX) - 1) == -1,
       "rejects a short hex");
    ok(nixcache_hash_parse(d, ABC_NIX32 + 7, 52) == -1,
       "rejects no prefix");
    ok(nixcache_hash_parse(d, "sha1:kpcd173cq987hw957sx6m0868wv3x6d9", 37)
       == -1, "rejects sha1");
    ok(nixcache_hash_parse(d, "sha256:", 7) == -1, "rejects empty");
    ok(nixcache_hash_parse(d, "sha2", 4) == -1, "rejects a short prefix");

    strcpy(s, ABC_HEX);
    s[20] = 'g';
    ok(nixcache_hash_parse(d, s, strlen(s)) == -1, "rejects a bad hex digit");

    strcpy(s, ABC_NIX32);
    s[20] = 'e';
    ok(nixcache_hash_parse(d, s, strlen(s)) == -1,
       "rejects a bad nix32 digit");

    strcpy(s, ABC_NIX32);
    s[7] = '2';
    ok(nixcache_hash_parse(d, s, strlen(s)) == -1,
       "rejects nix32 overflow");

    /* base64 is another Nix form; we do not accept it */
    ok(nixcache_hash_parse(d,
           "sha256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", 51) == -1,
       "rejects base64");

    return done_testing();
}
