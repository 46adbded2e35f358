/*
 * Unit tests of nixcache_sign: key parsing, signing, verifying, and
 * signatures byte-identical to the ones Nix makes.
 */

#include <stdlib.h>

#include "unit.h"
#include "nixcache_narinfo.h"
#include "nixcache_sign.h"


/*
 * Fixed vectors made by the real Nix 2.8.0 (Debian nix-bin) on a private
 * store, as root without a daemon:
 *
 *   NIX_CONF_DIR=$T/conf   (build-users-group =, experimental-features =
 *                           nix-command, sandbox = false, substituters =)
 *   nix-store --generate-binary-cache-key test-1 sk pk
 *   nix-store --store $T/store --add hello.txt    (contents "hello-nixcache\n")
 *   nix-build --store $T/store --option extra-sandbox-paths \
 *       "/bin /lib /lib64 /usr" d.nix
 *     (d.nix, builder /bin/sh: "sig-leaf" runs echo leaf > $out;
 *      "sig-top" echo ${sig-leaf} > $out; "sig-multi" /bin/mkdir $out;
 *      echo ${sig-leaf} ${sig-top} > $out/refs; echo $out > $out/self)
 *   nix store sign --store $T/store --key-file sk -r PATH
 *   nix path-info --json --store $T/store -r PATH     (signatures, narSize,
 *                                                      references)
 *   nix-store --store $T/store -q --hash PATH         (NarHash in nix32)
 *   nix copy --store $T/store --to file://$T/bc PATH  (the narinfo texts)
 *
 * The key texts are sk and pk verbatim (Nix writes no trailing newline);
 * each fingerprint is assembled by hand from the path-info fields in Nix's
 * format "1;<path>;<NarHash>;<NarSize>;<references, comma separated>".
 */

#define NIX_SK                                                               \
    "test-1:/+LFqZVKyHK0DYYgCsFfrOUz2nk2DB1CkOGm93CGDA8li8B83XqrJIdqF/CBwf8J" \
    "rsHLRT6lc0klC+Oon+RqTQ=="
#define NIX_PK  "test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0="


typedef struct {
    const char  *name;
    const char  *narinfo;     /* as nix copy --to file:// wrote it */
    const char  *fingerprint;
    const char  *sig;
} vector_t;


static const vector_t  vectors[] = {

    { "content-addressed path, no references",
      "StorePath: /nix/store/7i15is0z08y2p0rck85fkp5s7w2jb7jd-hello.txt\n"
      "URL: nar/1vmjrk9zlkfr8kriiw76v02blpifs2xspm2rnd4h04hc0am1gwd2.nar.xz\n"
      "Compression: xz\n"
      "FileHash: sha256:1vmjrk9zlkfr8kriiw76v02blpifs2xspm2rnd4h04hc0am1gwd2\n"
      "FileSize: 140\n"
      "NarHash: sha256:01mdg50aamf9yn1s4138vihq9jyp0k0x345b7d9s452h5habfh5d\n"
      "NarSize: 128\n"
      "References: \n"
      "Sig: test-1:jFFQzK4AU8M6MZEJsyqPRpBqYM/YWaJcEuO8fhLT1Kwx9f3Emz7h8V/Ez+u"
      "IpBy1iZ7K2fi6D+zxkVxTu/ybAg==\n"
      "CA: fixed:r:sha256:01mdg50aamf9yn1s4138vihq9jyp0k0x345b7d9s452h5habfh5d"
      "\n",
      "1;/nix/store/7i15is0z08y2p0rck85fkp5s7w2jb7jd-hello.txt;"
      "sha256:01mdg50aamf9yn1s4138vihq9jyp0k0x345b7d9s452h5habfh5d;128;",
      "test-1:jFFQzK4AU8M6MZEJsyqPRpBqYM/YWaJcEuO8fhLT1Kwx9f3Emz7h8V/Ez+uIpBy1"
      "iZ7K2fi6D+zxkVxTu/ybAg==" },

    { "built path, no references",
      "StorePath: /nix/store/dhxzlvbv472khzk287yfcr1q8iyvla6k-sig-leaf\n"
      "URL: nar/12w77wliagban4ik8d820sqkdl3vzknaqh925faczgn4kpnd20bm.nar.xz\n"
      "Compression: xz\n"
      "FileHash: sha256:12w77wliagban4ik8d820sqkdl3vzknaqh925faczgn4kpnd20bm\n"
      "FileSize: 128\n"
      "NarHash: sha256:0l1v2mjy9ivhn9njfz2szzh7whr0vj02cysj0xhng9mdi3zfcnpa\n"
      "NarSize: 120\n"
      "References: \n"
      "Deriver: 0s59bk69x5k80mawkzan37wv38iqfh8m-sig-leaf.drv\n"
      "Sig: test-1:1htGVKtoShsTj/1h5/rmNBTmknNhizZfNRa6YKLL5rNEhXV824I4JX+jxfC"
      "ZVmVKjne5TlthWUNMFOcyB120DA==\n",
      "1;/nix/store/dhxzlvbv472khzk287yfcr1q8iyvla6k-sig-leaf;"
      "sha256:0l1v2mjy9ivhn9njfz2szzh7whr0vj02cysj0xhng9mdi3zfcnpa;120;",
      "test-1:1htGVKtoShsTj/1h5/rmNBTmknNhizZfNRa6YKLL5rNEhXV824I4JX+jxfCZVmVK"
      "jne5TlthWUNMFOcyB120DA==" },

    { "built path with a reference",
      "StorePath: /nix/store/csmgaxw46ls33bf5hr8prp4b19z4r5rs-sig-top\n"
      "URL: nar/1dl4rdyw3djk1isprvydffxvmbr356ajmwhz5347lbxd984yk6mv.nar.xz\n"
      "Compression: xz\n"
      "FileHash: sha256:1dl4rdyw3djk1isprvydffxvmbr356ajmwhz5347lbxd984yk6mv\n"
      "FileSize: 176\n"
      "NarHash: sha256:1sdiw42qr015mrz5vd8c3pldhwhmslfyvqmni83r3h736dxmndqs\n"
      "NarSize: 168\n"
      "References: dhxzlvbv472khzk287yfcr1q8iyvla6k-sig-leaf\n"
      "Deriver: lxk4xpanj2v7r868c808jb77jq3kw107-sig-top.drv\n"
      "Sig: test-1:rJPKGyLPWoum6R/KM72n86Z8NylMcKSddXEMeGp7Ei0263vrDgIkF9Xtem4"
      "ohFQnEhvRWkYS4FVqYkHcojSiBg==\n",
      "1;/nix/store/csmgaxw46ls33bf5hr8prp4b19z4r5rs-sig-top;"
      "sha256:1sdiw42qr015mrz5vd8c3pldhwhmslfyvqmni83r3h736dxmndqs;168;"
      "/nix/store/dhxzlvbv472khzk287yfcr1q8iyvla6k-sig-leaf",
      "test-1:rJPKGyLPWoum6R/KM72n86Z8NylMcKSddXEMeGp7Ei0263vrDgIkF9Xtem4ohFQn"
      "EhvRWkYS4FVqYkHcojSiBg==" },

    { "built path with references, one to itself",
      "StorePath: /nix/store/5nciv39lz6551m69a96b6vg7533z2n7v-sig-multi\n"
      "URL: nar/17h5js4cxfcszyxij5cj3ksgy85sj8wh5b0015gp2a7qw9m6zpg0.nar.xz\n"
      "Compression: xz\n"
      "FileHash: sha256:17h5js4cxfcszyxij5cj3ksgy85sj8wh5b0015gp2a7qw9m6zpg0\n"
      "FileSize: 296\n"
      "NarHash: sha256:1gm6c7anw4yyd01q584hmmdgmlpip74g20y18mij41xyvfn563vf\n"
      "NarSize: 632\n"
      "References: 5nciv39lz6551m69a96b6vg7533z2n7v-sig-multi csmgaxw46ls33bf5"
      "hr8prp4b19z4r5rs-sig-top dhxzlvbv472khzk287yfcr1q8iyvla6k-sig-leaf\n"
      "Deriver: vvjvma4q17q3arijajd2fn7axzan2g1h-sig-multi.drv\n"
      "Sig: test-1:DaL+23nIza7SIEVObvxozUriNOmDrmBkIm5foGgIZlW0ZM8YraHDWcIM5Jm"
      "G5GJ4vSM+TDEzQOlUvQCBzFACCA==\n",
      "1;/nix/store/5nciv39lz6551m69a96b6vg7533z2n7v-sig-multi;"
      "sha256:1gm6c7anw4yyd01q584hmmdgmlpip74g20y18mij41xyvfn563vf;632;"
      "/nix/store/5nciv39lz6551m69a96b6vg7533z2n7v-sig-multi,"
      "/nix/store/csmgaxw46ls33bf5hr8prp4b19z4r5rs-sig-top,"
      "/nix/store/dhxzlvbv472khzk287yfcr1q8iyvla6k-sig-leaf",
      "test-1:DaL+23nIza7SIEVObvxozUriNOmDrmBkIm5foGgIZlW0ZM8YraHDWcIM5JmG5GJ4"
      "vSM+TDEzQOlUvQCBzFACCA==" },
};


static void test_nix_vectors(void);
static void test_parse(void);
static void test_format(void);
static void test_round_trip(void);
static void test_trusted(void);
static int secret_ok(const char *text, size_t len);
static const char *secret_err(const char *text);
static const char *public_err(const char *text);


int
main(void)
{
    if (nixcache_sign_init() != 0) {
        printf("Bail out! sodium_init failed\n");
        return 1;
    }

    test_nix_vectors();
    test_parse();
    test_format();
    test_round_trip();
    test_trusted();

    return done_testing();
}


static void
test_nix_vectors(void)
{
    char                     sig[NIXCACHE_SIGN_TEXT_MAX + 1], fp[1024];
    char                     text[1024];
    size_t                   i, n, len;
    const char              *err, *refs;
    const vector_t          *v;
    nixcache_narinfo_t       ni;
    nixcache_sign_public_t   pk, derived;
    nixcache_sign_secret_t   sk;

    err = NULL;
    ok(nixcache_sign_secret_parse(&sk, NIX_SK, strlen(NIX_SK), &err) == 0,
       "Nix secret key parses (%s)", err ? err : "no error");
    is_str(sk.name, sk.name_len, "test-1", "secret key name");

    err = NULL;
    ok(nixcache_sign_public_parse(&pk, NIX_PK, strlen(NIX_PK), &err) == 0,
       "Nix public key parses (%s)", err ? err : "no error");
    is_str(pk.name, pk.name_len, "test-1", "public key name");

    nixcache_sign_secret_to_public(&derived, &sk);
    is_str(derived.name, derived.name_len, "test-1", "derived public name");
    is_mem(derived.key, pk.key, NIXCACHE_SIGN_PUBLIC_LEN,
           "public half of Nix's secret key is Nix's public key");

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        v = &vectors[i];

        /* the core's fingerprint of Nix's narinfo is the hand-made one */
        err = NULL;
        ok(nixcache_narinfo_parse(&ni, v->narinfo, strlen(v->narinfo), &err)
           == 0, "%s: Nix's narinfo parses (%s)", v->name,
           err ? err : "no error");
        n = nixcache_narinfo_fingerprint(fp, sizeof(fp), &ni);
        is_str(fp, n, v->fingerprint, "%s: fingerprint", v->name);
        ok(ni.nsigs == 1 && nixcache_sign_verify(&pk, ni.sigs[0].data,
                                                 ni.sigs[0].len, fp, n)
                            == 1,
           "%s: the narinfo's Sig verifies over that fingerprint", v->name);

        /* Nix's signature checks out: our fingerprint format is Nix's. */
        ok(nixcache_sign_verify(&pk, v->sig, strlen(v->sig), v->fingerprint,
                                strlen(v->fingerprint)) == 1,
           "%s: Nix's signature verifies", v->name);

        /* ed25519 is deterministic: our signature is byte-identical. */
        memset(sig, 'X', sizeof(sig));
        n = nixcache_sign_fingerprint(sig, sizeof(sig), &sk, v->fingerprint,
                                      strlen(v->fingerprint));
        is_str(sig, n, v->sig, "%s: our signature equals Nix's", v->name);
        ok(sig[n] == '\0', "%s: signature is NUL-terminated", v->name);
    }

    /*
     * Nix signs the references as a sorted set: a narinfo listing them in
     * another order has the same fingerprint, so Nix's signature holds.
     */

    refs = "References: dhxzlvbv472khzk287yfcr1q8iyvla6k-sig-leaf "
           "5nciv39lz6551m69a96b6vg7533z2n7v-sig-multi "
           "csmgaxw46ls33bf5hr8prp4b19z4r5rs-sig-top\n";
    len = snprintf(text, sizeof(text),
                   "StorePath: /nix/store/5nciv39lz6551m69a96b6vg7533z2n7v-"
                   "sig-multi\nURL: nar/x.nar\nCompression: none\n"
                   "NarHash: sha256:1gm6c7anw4yyd01q584hmmdgmlpip74g20y18mij41"
                   "xyvfn563vf\nNarSize: 632\n%s", refs);
    err = NULL;
    ok(nixcache_narinfo_parse(&ni, text, len, &err) == 0,
       "narinfo with unsorted references parses (%s)",
       err ? err : "no error");
    n = nixcache_narinfo_fingerprint(fp, sizeof(fp), &ni);
    v = &vectors[3];
    is_str(fp, n, v->fingerprint, "unsorted references: same fingerprint");
    ok(nixcache_sign_verify(&pk, v->sig, strlen(v->sig), fp, n) == 1,
       "unsorted references: Nix's signature verifies");
}


static void
test_parse(void)
{
    char                     buf[512];
    size_t                   n;
    const char              *err;
    nixcache_sign_public_t   pk;

    snprintf(buf, sizeof(buf), "%s\n", NIX_SK);
    ok(secret_ok(buf, strlen(buf)), "secret key with trailing \\n accepted");
    snprintf(buf, sizeof(buf), "%s\r\n", NIX_SK);
    ok(secret_ok(buf, strlen(buf)),
       "secret key with trailing \\r\\n accepted");
    snprintf(buf, sizeof(buf), "%s\n", NIX_PK);
    err = NULL;
    ok(nixcache_sign_public_parse(&pk, buf, strlen(buf), &err) == 0,
       "public key with trailing \\n accepted");

    snprintf(buf, sizeof(buf), "%s\n\n", NIX_SK);
    ok(!secret_ok(buf, strlen(buf)), "two trailing newlines rejected");
    snprintf(buf, sizeof(buf), "%s ", NIX_SK);
    ok(!secret_ok(buf, strlen(buf)), "trailing space rejected");
    snprintf(buf, sizeof(buf), " %s", NIX_SK);
    ok(!secret_ok(buf, strlen(buf)), "leading space rejected");

    /* A length bound, not a NUL, ends the text. */
    n = strlen(NIX_SK);
    ok(!secret_ok(NIX_SK, n - 1), "truncated by len rejected");
    memcpy(buf, NIX_SK, n);
    memcpy(buf + n, "AAAA", 4);
    ok(secret_ok(buf, n), "bytes past len ignored");

    is_str(secret_err(""), strlen(secret_err("")), "key is empty",
           "empty text");
    is_str(secret_err("\n"), strlen(secret_err("\n")), "key is empty",
           "only a newline");

#define rejects(text, want, what)                                            \
    do {                                                                     \
        const char  *e_ = secret_err(text);                                  \
        is_str(e_, strlen(e_), want, "secret: %s", what);                    \
    } while (0)

    rejects(":/+LFqZVKyHK0DYYgCsFfrOUz2nk2DB1CkOGm93CGDA8li8B83XqrJIdqF/CBwf8J"
            "rsHLRT6lc0klC+Oon+RqTQ==", "key name is empty", "empty name");
    rejects("test-1/+LFqZVKyHK0DYYgCsFfrOUz2nk2DB1CkOGm93CGDA8li8B83XqrJIdqF/"
            "CBwf8JrsHLRT6lc0klC+Oon+RqTQ==",
            "key has no ':' between its name and its base64 data",
            "missing ':'");
    rejects("test 1:/+LFqZVKyHK0DYYgCsFfrOUz2nk2DB1CkOGm93CGDA8li8B83XqrJIdqF/"
            "CBwf8JrsHLRT6lc0klC+Oon+RqTQ==",
            "key name has a character other than printable ASCII "
            "(no space, no ':')", "space in name");
    rejects("test-1:", "key has no base64 data after ':'", "no data");
    rejects("test-1:/+LFqZVKyHK0DYYgCsFfrOUz2nk2DB1CkOGm93CGDA8li8B83XqrJIdqF"
            "/CBwf8JrsHLRT6lc0klC+Oon+RqTQ",
            "key is not valid base64 (standard alphabet, padded)",
            "padding missing");
    rejects("test-1:_-LFqZVKyHK0DYYgCsFfrOUz2nk2DB1CkOGm93CGDA8li8B83XqrJIdqF"
            "_CBwf8JrsHLRT6lc0klC-Oon-RqTQ==",
            "key is not valid base64 (standard alphabet, padded)",
            "URL-safe alphabet");
    rejects("test-1:/+LFqZVKyHK0DYYgCsFfrOUz2nk2DB1CkOGm93CGDA8li8B83XqrJIdqF"
            "/CBwf8JrsHLRT6lc0klC+Oon+RqTQ==:",
            "key is not valid base64 (standard alphabet, padded)",
            "text after the padding");
    rejects("test-1:/+LFqZVKyHK0DYYgCsFfrOUz2nk2DB1CkOGm93CGDA8li8B83XqrJIdqF"
            "/CBwf8JrsHLRT6lc0klC+Oon+RqTQ==\nx",
            "key is not valid base64 (standard alphabet, padded)",
            "a second line");
    rejects(NIX_PK, "secret key is not 64 bytes", "a public key");
    rejects("test-1:/+LFqZVKyHK0DYYgCsFfrOUz2nk2DB1CkOGm93CGDA8li8B83XqrJIdqF"
            "/CBwf8JrsHLRT6lc0klC+Oon+RqTQ==AAAA",
            "key is not valid base64 (standard alphabet, padded)",
            "data after the padding");
    rejects("test-1:/+LFqZVKyHK0DYYgCsFfrOUz2nk2DB1CkOGm93CGDA8li8B83XqrJIdqF"
            "/CBwf8JrsHLRT6lc0klC+Oon+RqTQA=",
            "secret key is not 64 bytes", "65 bytes");
    rejects("test-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            "AAAAAAAAA",
            "secret key is not 64 bytes", "far too long");
    /* the last byte of the public half changed: 0x4d -> 0x4c */
    rejects("test-1:/+LFqZVKyHK0DYYgCsFfrOUz2nk2DB1CkOGm93CGDA8li8B83XqrJIdqF"
            "/CBwf8JrsHLRT6lc0klC+Oon+RqTA==",
            "secret key's public half does not match its seed",
            "public half does not match the seed");

#undef rejects

#define rejects(text, want, what)                                            \
    do {                                                                     \
        const char  *e_ = public_err(text);                                  \
        is_str(e_, strlen(e_), want, "public: %s", what);                    \
    } while (0)

    rejects(":JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=",
            "key name is empty", "empty name");
    rejects("JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=",
            "key has no ':' between its name and its base64 data",
            "missing ':'");
    rejects("test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0",
            "key is not valid base64 (standard alphabet, padded)",
            "padding missing");
    rejects("test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0=\t",
            "key is not valid base64 (standard alphabet, padded)",
            "trailing tab");
    rejects(NIX_SK, "public key is not 32 bytes", "a secret key");
    rejects("test-1:JYvAfN16qySHahfwgcH/Ca7By0U+pXNJJQvjqJ/kak0A",
            "public key is not 32 bytes", "33 bytes");

#undef rejects
}


static void
test_format(void)
{
    char                     buf[NIXCACHE_SIGN_TEXT_MAX + 1];
    size_t                   n;
    const char              *err;
    nixcache_sign_public_t   pk;
    nixcache_sign_secret_t   sk;

    err = NULL;
    if (nixcache_sign_secret_parse(&sk, NIX_SK, strlen(NIX_SK), &err) != 0
        || nixcache_sign_public_parse(&pk, NIX_PK, strlen(NIX_PK), &err) != 0)
    {
        ok(0, "parse Nix keys for format tests: %s", err);
        return;
    }

    n = nixcache_sign_secret_format(buf, sizeof(buf), &sk);
    is_str(buf, n, NIX_SK, "secret key renders as Nix wrote it");
    ok(buf[n] == '\0', "secret key text is NUL-terminated");

    n = nixcache_sign_public_format(buf, sizeof(buf), &pk);
    is_str(buf, n, NIX_PK, "public key renders as Nix wrote it");

    memset(buf, 'X', sizeof(buf));
    n = nixcache_sign_public_format(buf, strlen(NIX_PK), &pk);
    is_u64(n, strlen(NIX_PK), "too small a buffer: length still returned");
    ok(buf[0] == 'X', "too small a buffer: nothing written");

    n = nixcache_sign_fingerprint(buf, 0, &sk, "x", 1);
    is_u64(n, 6 + 1 + NIXCACHE_SIGN_SIG_B64_LEN, "sign with cap 0 sizes");

    nixcache_sign_secret_wipe(&sk);
}


static void
test_round_trip(void)
{
    char                     sig[NIXCACHE_SIGN_TEXT_MAX + 1], bad[sizeof(sig)];
    char                     text[NIXCACHE_SIGN_TEXT_MAX + 1];
    size_t                   n, i, m;
    const char              *err, *fp, *e;
    nixcache_sign_public_t   pk, pk2, nixpk, parsed;
    nixcache_sign_secret_t   sk, sk2, sk3;

    fp = "1;/nix/store/csmgaxw46ls33bf5hr8prp4b19z4r5rs-sig-top;"
         "sha256:1sdiw42qr015mrz5vd8c3pldhwhmslfyvqmni83r3h736dxmndqs;168;"
         "/nix/store/dhxzlvbv472khzk287yfcr1q8iyvla6k-sig-leaf";

    err = NULL;
    ok(nixcache_sign_keypair(&sk, &pk, "cache.example.org-1", 19, &err) == 0,
       "keypair generated");
    ok(nixcache_sign_keypair(&sk2, &pk2, "cache.example.org-1", 19, &err)
       == 0, "second keypair generated");
    ok(memcmp(pk.key, pk2.key, sizeof(pk.key)) != 0, "two keys differ");

    e = NULL;
    ok(nixcache_sign_keypair(&sk3, &parsed, "", 0, &e) == -1 && e != NULL,
       "keypair refuses an empty name");
    e = NULL;
    ok(nixcache_sign_keypair(&sk3, &parsed, "a:b", 3, &e) == -1 && e != NULL,
       "keypair refuses a name with ':'");

    /* the generated secret key survives its own text form */
    n = nixcache_sign_secret_format(text, sizeof(text), &sk);
    ok(nixcache_sign_secret_parse(&sk3, text, n, &err) == 0,
       "generated secret key parses back");
    is_mem(sk3.key, sk.key, sizeof(sk.key), "same secret key bytes");
    n = nixcache_sign_public_format(text, sizeof(text), &pk);
    ok(nixcache_sign_public_parse(&parsed, text, n, &err) == 0,
       "generated public key parses back");
    is_mem(parsed.key, pk.key, sizeof(pk.key), "same public key bytes");
    nixcache_sign_secret_to_public(&parsed, &sk);
    is_mem(parsed.key, pk.key, sizeof(pk.key), "public half matches");

    n = nixcache_sign_fingerprint(sig, sizeof(sig), &sk, fp, strlen(fp));
    ok(n == 19 + 1 + NIXCACHE_SIGN_SIG_B64_LEN
       && memcmp(sig, "cache.example.org-1:", 20) == 0,
       "signature is NAME:88 base64 chars");
    ok(nixcache_sign_verify(&pk, sig, n, fp, strlen(fp)) == 1,
       "round trip verifies");

    ok(nixcache_sign_verify(&pk2, sig, n, fp, strlen(fp)) == 0,
       "other key of the same name rejects");
    (void) nixcache_sign_public_parse(&nixpk, NIX_PK, strlen(NIX_PK), &err);
    ok(nixcache_sign_verify(&nixpk, sig, n, fp, strlen(fp)) == 0,
       "key of another name rejects");
    ok(nixcache_sign_verify(&pk, sig, n, fp, strlen(fp) - 1) == 0,
       "shorter fingerprint rejects");
    ok(nixcache_sign_verify(&pk, sig, n, "1;x", 3) == 0,
       "other fingerprint rejects");

    /* every byte of the signature matters */
    m = 0;
    for (i = 0; i < NIXCACHE_SIGN_SIG_B64_LEN - 2; i++) {
        memcpy(bad, sig, n);
        bad[20 + i] = (bad[20 + i] == 'A') ? 'B' : 'A';
        if (nixcache_sign_verify(&pk, bad, n, fp, strlen(fp)) != 0) {
            m++;
        }
    }
    is_u64(m, 0, "no changed base64 character verifies");

    /* flipping one bit of the fingerprint */
    memcpy(text, fp, strlen(fp));
    text[10] ^= 1;
    ok(nixcache_sign_verify(&pk, sig, n, text, strlen(fp)) == 0,
       "fingerprint with a flipped bit rejects");

    memcpy(bad, sig, n);
    bad[19] = ';';
    ok(nixcache_sign_verify(&pk, bad, n, fp, strlen(fp)) == 0,
       "mangled separator rejects");
    ok(nixcache_sign_verify(&pk, sig, n - 1, fp, strlen(fp)) == 0,
       "truncated signature rejects");
    ok(nixcache_sign_verify(&pk, sig, 20, fp, strlen(fp)) == 0,
       "name only rejects");
    ok(nixcache_sign_verify(&pk, "", 0, fp, strlen(fp)) == 0,
       "empty signature rejects");

    nixcache_sign_secret_wipe(&sk);
    nixcache_sign_secret_wipe(&sk2);
    nixcache_sign_secret_wipe(&sk3);
}


static int
secret_ok(const char *text, size_t len)
{
    int                      rc;
    const char              *err;
    nixcache_sign_secret_t   sk;

    err = NULL;
    rc = nixcache_sign_secret_parse(&sk, text, len, &err);
    if (rc != 0) {
        printf("#   (%s)\n", err);
    }

    return rc == 0;
}


static const char *
secret_err(const char *text)
{
    const char              *err;
    nixcache_sign_secret_t   sk;

    err = NULL;
    if (nixcache_sign_secret_parse(&sk, text, strlen(text), &err) == 0) {
        return "(accepted)";
    }

    return err ? err : "(no message)";
}


static const char *
public_err(const char *text)
{
    const char              *err;
    nixcache_sign_public_t   pk;

    err = NULL;
    if (nixcache_sign_public_parse(&pk, text, strlen(text), &err) == 0) {
        return "(accepted)";
    }

    return err ? err : "(no message)";
}


/* nixcache_sign_trusted(): require-sigs over a narinfo and a key list */

static void
test_trusted(void)
{
    char                     text[2048];
    size_t                   len;
    const char              *err, *p;
    const vector_t          *v;
    nixcache_narinfo_t       ni;
    nixcache_sign_public_t   keys[2];
    nixcache_sign_secret_t   other;

    v = &vectors[0];

    err = NULL;
    ok(nixcache_sign_public_parse(&keys[1], NIX_PK, strlen(NIX_PK), &err)
       == 0, "trusted: Nix public key parses");
    ok(nixcache_sign_keypair(&other, &keys[0], "other-1", 7, &err) == 0,
       "trusted: another key pair");

    ok(nixcache_narinfo_parse(&ni, v->narinfo, strlen(v->narinfo), &err)
       == 0, "trusted: narinfo parses");

    ok(nixcache_sign_trusted(keys, 2, &ni) == 1,
       "trusted: signed by the second key of two");
    ok(nixcache_sign_trusted(keys, 1, &ni) == 0,
       "trusted: not by a key that did not sign it");
    ok(nixcache_sign_trusted(keys, 0, &ni) == 0, "trusted: no keys");

    /* one byte of the narinfo changed: the signature no longer holds */

    len = strlen(v->narinfo);
    memcpy(text, v->narinfo, len);
    p = strstr(text, "NarSize: 128");
    text[p - text + sizeof("NarSize: 12") - 1] = '9';

    ok(nixcache_narinfo_parse(&ni, text, len, &err) == 0,
       "trusted: changed narinfo parses");
    ok(nixcache_sign_trusted(keys, 2, &ni) == 0,
       "trusted: NarSize changed: refused");

    /* unsigned */

    ok(nixcache_narinfo_parse(&ni, v->narinfo, strlen(v->narinfo), &err)
       == 0, "trusted: narinfo parses again");
    ni.nsigs = 0;
    ok(nixcache_sign_trusted(keys, 2, &ni) == 0, "trusted: no Sig: refused");

    nixcache_sign_secret_wipe(&other);
}
