/*
 * Nix-compatible ed25519 narinfo signatures (libsodium).
 *
 * Key files are what "nix-store --generate-binary-cache-key NAME sk pk"
 * writes: "NAME:base64(64-byte ed25519 secret key)" and
 * "NAME:base64(32-byte public key)", standard base64 with padding.  A
 * signature, the value of a narinfo "Sig:" line, is
 * "NAME:base64(64-byte detached signature)" over the fingerprint built by
 * nixcache_narinfo_fingerprint().  ed25519 is deterministic: the same key
 * and fingerprint give the same signature as Nix's.
 *
 * Nothing here allocates; secret keys live in caller memory, which the
 * caller should wipe with nixcache_sign_secret_wipe() when done.
 *
 * Signing a narinfo ni (nixcache_narinfo.h):
 *
 *     fp_len = nixcache_narinfo_fingerprint(NULL, 0, &ni);   (0: bad ni)
 *     fp = <fp_len bytes>;
 *     nixcache_narinfo_fingerprint(fp, fp_len, &ni);
 *     sig_len = nixcache_sign_fingerprint(sig, sizeof(sig), &sk, fp, fp_len);
 *
 * with sig[NIXCACHE_SIGN_TEXT_MAX + 1]; sig is then one more ni.sigs[]
 * entry for nixcache_narinfo_render().
 */

#ifndef NIXCACHE_SIGN_H
#define NIXCACHE_SIGN_H

#include <stddef.h>

#include "nixcache_narinfo.h"


#define NIXCACHE_SIGN_NAME_MAX       255
#define NIXCACHE_SIGN_SECRET_LEN     64     /* crypto_sign_SECRETKEYBYTES */
#define NIXCACHE_SIGN_PUBLIC_LEN     32     /* crypto_sign_PUBLICKEYBYTES */
#define NIXCACHE_SIGN_SIG_LEN        64     /* crypto_sign_BYTES */

/* Lengths of the base64 texts, without NUL. */
#define NIXCACHE_SIGN_SECRET_B64_LEN 88
#define NIXCACHE_SIGN_PUBLIC_B64_LEN 44
#define NIXCACHE_SIGN_SIG_B64_LEN    88

/* The longest "NAME:base64" text of any kind, without NUL. */
#define NIXCACHE_SIGN_TEXT_MAX       (NIXCACHE_SIGN_NAME_MAX + 1            \
                                      + NIXCACHE_SIGN_SECRET_B64_LEN)


typedef struct {
    size_t                     name_len;
    char                       name[NIXCACHE_SIGN_NAME_MAX + 1];
    unsigned char              key[NIXCACHE_SIGN_SECRET_LEN];
} nixcache_sign_secret_t;


typedef struct {
    size_t                     name_len;
    char                       name[NIXCACHE_SIGN_NAME_MAX + 1];
    unsigned char              key[NIXCACHE_SIGN_PUBLIC_LEN];
} nixcache_sign_public_t;


/*
 * Initializes libsodium (idempotent, cheap after the first call).  Call
 * once before anything below (the module: at configuration time, before
 * workers start).  Returns 0 or -1.
 */
int nixcache_sign_init(void);

/*
 * Checks a key name: 1..NIXCACHE_SIGN_NAME_MAX printable ASCII characters
 * other than ':' and space.  Returns 0, or -1 with *err set.
 */
int nixcache_sign_name_check(const char *name, size_t len, const char **err);

/*
 * Parses the text of a secret key file; one trailing "\n" or "\r\n" is
 * tolerated, nothing else.  The secret key's public half must match its
 * seed.  Returns 0, or -1 with *err set to a static message: empty name,
 * missing ':', bad name character, bad base64, wrong key length,
 * inconsistent key.
 */
int nixcache_sign_secret_parse(nixcache_sign_secret_t *sk, const char *text,
    size_t len, const char **err);

/* The same for a public key file. */
int nixcache_sign_public_parse(nixcache_sign_public_t *pk, const char *text,
    size_t len, const char **err);

/*
 * Render a key as its file text "NAME:base64" (no newline, as Nix writes
 * it).  Return the text's length; write it, NUL-terminated, only when
 * length + 1 <= cap.
 */
size_t nixcache_sign_secret_format(char *dst, size_t cap,
    const nixcache_sign_secret_t *sk);
size_t nixcache_sign_public_format(char *dst, size_t cap,
    const nixcache_sign_public_t *pk);

/* The public key (same name) of a secret key. */
void nixcache_sign_secret_to_public(nixcache_sign_public_t *pk,
    const nixcache_sign_secret_t *sk);

/* Generates a new key pair named name.  Returns 0, or -1 with *err set. */
int nixcache_sign_keypair(nixcache_sign_secret_t *sk,
    nixcache_sign_public_t *pk, const char *name, size_t name_len,
    const char **err);

/*
 * Signs a fingerprint: "NAME:base64(signature)", the Sig: line value.
 * Returns its length (name_len + 1 + NIXCACHE_SIGN_SIG_B64_LEN); writes
 * it, NUL-terminated, only when length + 1 <= cap.
 */
size_t nixcache_sign_fingerprint(char *dst, size_t cap,
    const nixcache_sign_secret_t *sk, const char *fp, size_t fp_len);

/*
 * Verifies a Sig: value against one public key and a fingerprint.
 * Returns 1 when the signature is by this key (same name) and valid,
 * 0 otherwise (other name, malformed value, bad signature).
 */
int nixcache_sign_verify(const nixcache_sign_public_t *pk, const char *sig,
    size_t sig_len, const char *fp, size_t fp_len);

/*
 * Whether a narinfo is trusted: 1 when one of its Sig values is a valid
 * signature of its fingerprint (nixcache_narinfo_fingerprint()) by one
 * of the n_keys keys, what Nix's require-sigs asks of a substituter's
 * narinfo; 0 when none is (or it cannot be fingerprinted); -1 when out
 * of memory.
 */
int nixcache_sign_trusted(const nixcache_sign_public_t *keys, size_t n_keys,
    const nixcache_narinfo_t *ni);

/* Zeroes a secret key in a way the compiler may not drop. */
void nixcache_sign_secret_wipe(nixcache_sign_secret_t *sk);


#endif /* NIXCACHE_SIGN_H */
