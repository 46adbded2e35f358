/*
 * Nix-compatible ed25519 narinfo signatures: see nixcache_sign.h.
 */

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nixcache_sign.h"


/* Room to decode any base64 text that could still be a key or signature. */
#define NIXCACHE_SIGN_DECODE_MAX     96


/* The header's sizes are libsodium's: refuse to compile otherwise. */

#define nixcache_sign_b64_len(n)                                             \
    (sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL) - 1)

typedef char nixcache_sign_sizes_check_t[
    (NIXCACHE_SIGN_SECRET_LEN == crypto_sign_SECRETKEYBYTES
     && NIXCACHE_SIGN_PUBLIC_LEN == crypto_sign_PUBLICKEYBYTES
     && NIXCACHE_SIGN_SIG_LEN == crypto_sign_BYTES
     && NIXCACHE_SIGN_SECRET_B64_LEN
        == nixcache_sign_b64_len(NIXCACHE_SIGN_SECRET_LEN)
     && NIXCACHE_SIGN_PUBLIC_B64_LEN
        == nixcache_sign_b64_len(NIXCACHE_SIGN_PUBLIC_LEN)
     && NIXCACHE_SIGN_SIG_B64_LEN
        == nixcache_sign_b64_len(NIXCACHE_SIGN_SIG_LEN)) ? 1 : -1];


static int nixcache_sign_split(const char **name, size_t *name_len,
    const char **b64, size_t *b64_len, const char *text, size_t len,
    const char **err);
static int nixcache_sign_decode(unsigned char *bin, size_t want,
    const char *b64, size_t b64_len, const char **err);
static size_t nixcache_sign_format(char *dst, size_t cap, const char *name,
    size_t name_len, const unsigned char *bin, size_t n);


int
nixcache_sign_init(void)
{
    /* 0: initialized now, 1: already was, -1: failure */
    return sodium_init() < 0 ? -1 : 0;
}


int
nixcache_sign_name_check(const char *name, size_t len, const char **err)
{
    size_t  i;

    if (len == 0) {
        *err = "key name is empty";
        return -1;
    }

    if (len > NIXCACHE_SIGN_NAME_MAX) {
        *err = "key name is longer than 255 characters";
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (name[i] <= ' ' || name[i] >= 0x7f || name[i] == ':') {
            *err = "key name has a character other than printable ASCII "
                   "(no space, no ':')";
            return -1;
        }
    }

    return 0;
}


int
nixcache_sign_secret_parse(nixcache_sign_secret_t *sk, const char *text,
    size_t len, const char **err)
{
    size_t          name_len, b64_len;
    const char     *name, *b64;
    unsigned char   seed[crypto_sign_SEEDBYTES];
    unsigned char   pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char   check[crypto_sign_SECRETKEYBYTES];

    if (nixcache_sign_split(&name, &name_len, &b64, &b64_len, text, len, err)
        != 0)
    {
        return -1;
    }

    if (nixcache_sign_decode(sk->key, NIXCACHE_SIGN_SECRET_LEN, b64, b64_len,
                             err)
        != 0)
    {
        *err = (*err != NULL) ? *err : "secret key is not 64 bytes";
        goto failed;
    }

    /*
     * An ed25519 secret key is seed || public key.  Nix does not check that
     * the halves belong together, but a key whose halves do not makes
     * signatures nobody can verify: refuse it here.
     */

    crypto_sign_ed25519_sk_to_seed(seed, sk->key);
    crypto_sign_seed_keypair(pk, check, seed);

    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(check, sizeof(check));

    if (sodium_memcmp(pk, sk->key + crypto_sign_SEEDBYTES, sizeof(pk)) != 0) {
        *err = "secret key's public half does not match its seed";
        goto failed;
    }

    memcpy(sk->name, name, name_len);
    sk->name[name_len] = '\0';
    sk->name_len = name_len;

    return 0;

failed:

    sodium_memzero(sk->key, sizeof(sk->key));
    return -1;
}


int
nixcache_sign_public_parse(nixcache_sign_public_t *pk, const char *text,
    size_t len, const char **err)
{
    size_t       name_len, b64_len;
    const char  *name, *b64;

    if (nixcache_sign_split(&name, &name_len, &b64, &b64_len, text, len, err)
        != 0)
    {
        return -1;
    }

    if (nixcache_sign_decode(pk->key, NIXCACHE_SIGN_PUBLIC_LEN, b64, b64_len,
                             err)
        != 0)
    {
        *err = (*err != NULL) ? *err : "public key is not 32 bytes";
        return -1;
    }

    memcpy(pk->name, name, name_len);
    pk->name[name_len] = '\0';
    pk->name_len = name_len;

    return 0;
}


size_t
nixcache_sign_secret_format(char *dst, size_t cap,
    const nixcache_sign_secret_t *sk)
{
    return nixcache_sign_format(dst, cap, sk->name, sk->name_len, sk->key,
                                NIXCACHE_SIGN_SECRET_LEN);
}


size_t
nixcache_sign_public_format(char *dst, size_t cap,
    const nixcache_sign_public_t *pk)
{
    return nixcache_sign_format(dst, cap, pk->name, pk->name_len, pk->key,
                                NIXCACHE_SIGN_PUBLIC_LEN);
}


void
nixcache_sign_secret_to_public(nixcache_sign_public_t *pk,
    const nixcache_sign_secret_t *sk)
{
    memcpy(pk->name, sk->name, sk->name_len + 1);
    pk->name_len = sk->name_len;

    crypto_sign_ed25519_sk_to_pk(pk->key, sk->key);
}


int
nixcache_sign_keypair(nixcache_sign_secret_t *sk,
    nixcache_sign_public_t *pk, const char *name, size_t name_len,
    const char **err)
{
    if (nixcache_sign_name_check(name, name_len, err) != 0) {
        return -1;
    }

    if (crypto_sign_keypair(pk->key, sk->key) != 0) {
        *err = "ed25519 key generation failed";
        return -1;
    }

    memcpy(sk->name, name, name_len);
    sk->name[name_len] = '\0';
    sk->name_len = name_len;

    memcpy(pk->name, name, name_len);
    pk->name[name_len] = '\0';
    pk->name_len = name_len;

    return 0;
}


size_t
nixcache_sign_fingerprint(char *dst, size_t cap,
    const nixcache_sign_secret_t *sk, const char *fp, size_t fp_len)
{
    size_t          len;
    unsigned char   sig[crypto_sign_BYTES];

    len = sk->name_len + 1 + NIXCACHE_SIGN_SIG_B64_LEN;

    if (len + 1 > cap) {
        return len;
    }

    crypto_sign_detached(sig, NULL, (const unsigned char *) fp, fp_len,
                         sk->key);

    return nixcache_sign_format(dst, cap, sk->name, sk->name_len, sig,
                                sizeof(sig));
}


int
nixcache_sign_verify(const nixcache_sign_public_t *pk, const char *sig,
    size_t sig_len, const char *fp, size_t fp_len)
{
    const char     *colon;
    unsigned char   bin[crypto_sign_BYTES];

    colon = memchr(sig, ':', sig_len);

    if (colon == NULL
        || (size_t) (colon - sig) != pk->name_len
        || memcmp(sig, pk->name, pk->name_len) != 0)
    {
        return 0;
    }

    if (sig_len - pk->name_len - 1 != NIXCACHE_SIGN_SIG_B64_LEN
        || nixcache_sign_decode(bin, sizeof(bin), colon + 1,
                                NIXCACHE_SIGN_SIG_B64_LEN, NULL)
           != 0)
    {
        return 0;
    }

    return crypto_sign_verify_detached(bin, (const unsigned char *) fp,
                                       fp_len, pk->key)
           == 0;
}


int
nixcache_sign_trusted(const nixcache_sign_public_t *keys, size_t n_keys,
    const nixcache_narinfo_t *ni)
{
    int      trusted;
    char    *fp;
    size_t   i, k, fp_len;

    fp_len = nixcache_narinfo_fingerprint(NULL, 0, ni);

    if (fp_len == 0 || n_keys == 0 || ni->nsigs == 0) {
        return 0;
    }

    fp = malloc(fp_len + 1);
    if (fp == NULL) {
        return -1;
    }

    nixcache_narinfo_fingerprint(fp, fp_len + 1, ni);

    trusted = 0;

    for (i = 0; i < ni->nsigs && !trusted; i++) {
        for (k = 0; k < n_keys; k++) {
            if (nixcache_sign_verify(&keys[k], ni->sigs[i].data,
                                     ni->sigs[i].len, fp, fp_len))
            {
                trusted = 1;
                break;
            }
        }
    }

    free(fp);

    return trusted;
}


void
nixcache_sign_secret_wipe(nixcache_sign_secret_t *sk)
{
    sodium_memzero(sk, sizeof(nixcache_sign_secret_t));
}


/*
 * Splits a key file text at its first ':' (as Nix does) after dropping one
 * trailing "\n" or "\r\n", and checks the name.
 */

static int
nixcache_sign_split(const char **name, size_t *name_len, const char **b64,
    size_t *b64_len, const char *text, size_t len, const char **err)
{
    const char  *colon;

    if (len > 0 && text[len - 1] == '\n') {
        len--;

        if (len > 0 && text[len - 1] == '\r') {
            len--;
        }
    }

    if (len == 0) {
        *err = "key is empty";
        return -1;
    }

    colon = memchr(text, ':', len);

    if (colon == NULL) {
        *err = "key has no ':' between its name and its base64 data";
        return -1;
    }

    if (nixcache_sign_name_check(text, colon - text, err) != 0) {
        return -1;
    }

    *name = text;
    *name_len = colon - text;
    *b64 = colon + 1;
    *b64_len = len - *name_len - 1;

    return 0;
}


/*
 * Decodes standard padded base64 that must give exactly want bytes.
 * Returns 0, or -1 with *err set for malformed base64 and left NULL for a
 * well-formed text of the wrong length (the caller names the length).
 */

static int
nixcache_sign_decode(unsigned char *bin, size_t want, const char *b64,
    size_t b64_len, const char **err)
{
    int             rc;
    size_t          n;
    const char     *end;
    unsigned char   buf[NIXCACHE_SIGN_DECODE_MAX];

    if (err != NULL) {
        *err = NULL;
    }

    if (b64_len == 0) {
        if (err != NULL) {
            *err = "key has no base64 data after ':'";
        }

        return -1;
    }

    if (b64_len > sodium_base64_ENCODED_LEN(sizeof(buf),
                                            sodium_base64_VARIANT_ORIGINAL)
                  - 1)
    {
        return -1;
    }

    rc = sodium_base642bin(buf, sizeof(buf), b64, b64_len, NULL, &n, &end,
                           sodium_base64_VARIANT_ORIGINAL);

    if (rc != 0 || end != b64 + b64_len) {
        if (err != NULL) {
            *err = "key is not valid base64 (standard alphabet, padded)";
        }

        sodium_memzero(buf, sizeof(buf));
        return -1;
    }

    if (n != want) {
        sodium_memzero(buf, sizeof(buf));
        return -1;
    }

    memcpy(bin, buf, want);
    sodium_memzero(buf, sizeof(buf));

    return 0;
}


static size_t
nixcache_sign_format(char *dst, size_t cap, const char *name,
    size_t name_len, const unsigned char *bin, size_t n)
{
    size_t  len, b64_cap;

    b64_cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    len = name_len + 1 + b64_cap - 1;

    if (len + 1 > cap) {
        return len;
    }

    memcpy(dst, name, name_len);
    dst[name_len] = ':';

    sodium_bin2base64(dst + name_len + 1, b64_cap, bin, n,
                      sodium_base64_VARIANT_ORIGINAL);

    return len;
}
