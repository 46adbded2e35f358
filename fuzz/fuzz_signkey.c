/*
 * libFuzzer target: Nix key files (nixcache_sign.h) and Sig: values.
 *
 * Invariants: a key that parses formats to a text that parses to the same
 * key; verifying an arbitrary Sig: value against a parsed public key (or
 * a fixed one) answers 0 or 1 and never reads past it.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nixcache_sign.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                      rc;
    char                    *text;
    char                     out[NIXCACHE_SIGN_TEXT_MAX + 1];
    size_t                   len;
    const char              *err;
    nixcache_sign_secret_t   sk, sk2;
    nixcache_sign_public_t   pk, pk2;

    static int               inited;
    static nixcache_sign_public_t  fixed;
    static nixcache_sign_secret_t  fixed_sk;

    if (!inited) {
        if (nixcache_sign_init() != 0
            || nixcache_sign_keypair(&fixed_sk, &fixed, "fuzz-1", 6, &err)
               != 0)
        {
            abort();
        }
        inited = 1;
    }

    text = malloc(size ? size : 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);

    if (nixcache_sign_secret_parse(&sk, text, size, &err) == 0) {
        len = nixcache_sign_secret_format(out, sizeof(out), &sk);
        if (len >= sizeof(out)
            || nixcache_sign_secret_parse(&sk2, out, len, &err) != 0
            || sk2.name_len != sk.name_len
            || memcmp(sk2.name, sk.name, sk.name_len) != 0
            || memcmp(sk2.key, sk.key, sizeof(sk.key)) != 0)
        {
            abort();
        }
        nixcache_sign_secret_wipe(&sk2);
        nixcache_sign_secret_wipe(&sk);

    } else if (err == NULL) {
        abort();
    }

    if (nixcache_sign_public_parse(&pk, text, size, &err) == 0) {
        len = nixcache_sign_public_format(out, sizeof(out), &pk);
        if (len >= sizeof(out)
            || nixcache_sign_public_parse(&pk2, out, len, &err) != 0
            || pk2.name_len != pk.name_len
            || memcmp(pk2.name, pk.name, pk.name_len) != 0
            || memcmp(pk2.key, pk.key, sizeof(pk.key)) != 0)
        {
            abort();
        }

    } else if (err == NULL) {
        abort();
    }

    (void) nixcache_sign_name_check(text, size, &err);

    rc = nixcache_sign_verify(&fixed, text, size, "fp", 2);
    if (rc != 0 && rc != 1) {
        abort();
    }

    free(text);

    return 0;
}
