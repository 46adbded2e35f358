/*
 * narinfo parse, render and fingerprint.
 *
 * The texts REFS_TEST and DEP_TEXT were written by Nix 2.8 itself:
 *
 *   nix-store --generate-binary-cache-key test-key-1 sk pk   (and key 2)
 *   nix-build a derivation whose output refers to itself and to a
 *     nix-store --add'ed file (dep.txt), in a chroot store
 *   nix store sign --key-file sk ... (both keys), then
 *   nix copy --to 'file://DIR?compression=xz'
 *
 * so their Sig lines are real ed25519 signatures over Nix's own
 * fingerprint: checking them with libsodium against the public keys checks
 * our fingerprint byte for byte.
 */

#include <stdlib.h>

#include <sodium.h>

#include "unit.h"

#include "nixcache_narinfo.h"


#define REFS_TEST                                                            \
    "StorePath: /nix/store/nhnwsw5w3pbx1zlhx2v6pas42q607qn5-refs-test\n"     \
    "URL: nar/117jp8dkbgz5nf5i37r9mgyrf689spbw3aqnvw0gcn18n0cvvc1f.nar.xz\n" \
    "Compression: xz\n"                                                      \
    "FileHash: sha256:117jp8dkbgz5nf5i37r9mgyrf689spbw3aqnvw0gcn18n0cvvc1f\n"\
    "FileSize: 216\n"                                                        \
    "NarHash: sha256:0amivkr9jsqah68iwisw9dkpkmbml5m0p90znd2xws2b27anjnqy\n" \
    "NarSize: 224\n"                                                         \
    "References: nhnwsw5w3pbx1zlhx2v6pas42q607qn5-refs-test "                \
    "xi3f2pz4v48y7ixc8ziasr88svp006jj-dep.txt\n"                             \
    "Deriver: ljaca4cf8w3srlm16nc064samkmp8plw-refs-test.drv\n"              \
    "Sig: other-key-2:6HSXPvCX9pn+Ck2YypCEqaDpR05QtmtSHdJJaz6a21dXlc0aI3Yr1z"\
    "DYaIoabmdJHgB7VVpeI4AY3vZu1aeKDQ==\n"                                   \
    "Sig: test-key-1:facuRUPvcKfs03Z6E6cpDrVPGudD3g4Fr46s54aovmxVfvbuaCWGYZt"\
    "+RFoxpPvjfm7Jeb2OobB4ysjTtMdXAA==\n"

#define REFS_TEST_FP                                                         \
    "1;/nix/store/nhnwsw5w3pbx1zlhx2v6pas42q607qn5-refs-test;"               \
    "sha256:0amivkr9jsqah68iwisw9dkpkmbml5m0p90znd2xws2b27anjnqy;224;"       \
    "/nix/store/nhnwsw5w3pbx1zlhx2v6pas42q607qn5-refs-test,"                 \
    "/nix/store/xi3f2pz4v48y7ixc8ziasr88svp006jj-dep.txt"

#define DEP_TXT                                                              \
    "StorePath: /nix/store/xi3f2pz4v48y7ixc8ziasr88svp006jj-dep.txt\n"       \
    "URL: nar/1m2gmy3s4fx383yx3bks3y4sf3f3mx3055f8bwbc8spgrwrshfdf.nar.xz\n" \
    "Compression: xz\n"                                                      \
    "FileHash: sha256:1m2gmy3s4fx383yx3bks3y4sf3f3mx3055f8bwbc8spgrwrshfdf\n"\
    "FileSize: 136\n"                                                        \
    "NarHash: sha256:1c174hx52y9pmql9903b83ri2jgvpbir4bwh36r21j5d45ng6hcc\n" \
    "NarSize: 128\n"                                                         \
    "References: \n"                                                         \
    "Sig: test-key-1:fmTqSlV8H6m67pF6Q2HabdZ8nho1LIsJaHLdsJNheiBSlntpCVxXKf"\
    "I4fYpxbHppg66JoVtHnNq5rPpPQk2FAw==\n"                                   \
    "CA: fixed:r:sha256:1c174hx52y9pmql9903b83ri2jgvpbir4bwh36r21j5d45ng6hcc"\
    "\n"

#define DEP_TXT_FP                                                           \
    "1;/nix/store/xi3f2pz4v48y7ixc8ziasr88svp006jj-dep.txt;"                 \
    "sha256:1c174hx52y9pmql9903b83ri2jgvpbir4bwh36r21j5d45ng6hcc;128;"

#define KEY1  "test-key-1:pjy4WOM1UfzSwGYYFKz9zfT4o3eY+/8i8eYM1lkBePQ="
#define KEY2  "other-key-2:jJZXtLrxdnoobjDv+Cau1ogIYZuPjYPP9STkVZzMtv0="

/* the shape cache.nixos.org serves, by hand: no Deriver, empty References */
#define NO_DERIVER                                                           \
    "StorePath: /nix/store/0i6ardx43rdg24ab1nc3mq7f5ykyiamb-hello-2.12.1\n"  \
    "URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz\n" \
    "Compression: xz\n"                                                      \
    "FileHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3\n"\
    "FileSize: 50088\n"                                                      \
    "NarHash: sha256:1ddbgq4fzhd5b6a6wwaqv4fl8l2c0g0zk6vkh7jp1b4w3ral5zx6\n" \
    "NarSize: 226552\n"                                                      \
    "References: \n"                                                         \
    "Sig: cache.nixos.org-1:Ql0Jn7u4rIkzDcNd6l5Ns6y0XbyHYc+KVqM9AXSStJQPbg0"\
    "K3mHdd0eTwvtN0lLcsYKT7LU5bN6VvGsOl1bXDA==\n"


static char  buf[NIXCACHE_NARINFO_MAX_LEN + 4096];


static int
verify(const nixcache_narinfo_t *ni, const char *key)
{
    char           fp[1024];
    size_t         i, n, klen, fplen, bin_len;
    const char    *colon;
    unsigned char  pk[32], sig[64];

    colon = strchr(key, ':');
    klen = colon - key + 1;

    if (sodium_base642bin(pk, sizeof(pk), colon + 1, strlen(colon + 1),
                          NULL, &bin_len, NULL, sodium_base64_VARIANT_ORIGINAL)
        != 0 || bin_len != 32)
    {
        return -1;
    }

    fplen = nixcache_narinfo_fingerprint(fp, sizeof(fp), ni);
    if (fplen == 0 || fplen > sizeof(fp)) {
        return -1;
    }

    for (i = 0; i < ni->nsigs; i++) {
        if (ni->sigs[i].len < klen
            || memcmp(ni->sigs[i].data, key, klen) != 0)
        {
            continue;
        }

        n = ni->sigs[i].len - klen;

        if (sodium_base642bin(sig, sizeof(sig), ni->sigs[i].data + klen, n,
                              NULL, &bin_len, NULL,
                              sodium_base64_VARIANT_ORIGINAL)
            != 0 || bin_len != 64)
        {
            return -1;
        }

        return crypto_sign_verify_detached(sig, (unsigned char *) fp, fplen,
                                           pk);
    }

    return -1;
}


static int
parse_err(const char *text, const char *want)
{
    const char          *err;
    nixcache_narinfo_t   ni;

    err = NULL;

    if (nixcache_narinfo_parse(&ni, text, strlen(text), &err) != -1) {
        printf("#   parsed\n");
        return 0;
    }

    if (err == NULL || strcmp(err, want) != 0) {
        printf("#   err '%s', want '%s'\n", err ? err : "(null)", want);
        return 0;
    }

    return 1;
}


static int
parse(nixcache_narinfo_t *ni, const char *text, const char **err)
{
    *err = NULL;
    return nixcache_narinfo_parse(ni, text, strlen(text), err);
}


static const char *
replace(const char *text, const char *from, const char *to)
{
    const char  *p;

    p = strstr(text, from);
    if (p == NULL) {
        return "(no such text)";
    }

    snprintf(buf, sizeof(buf), "%.*s%s%s", (int) (p - text), text, to,
             p + strlen(from));

    return buf;
}


static void test_point(void);


int
main(void)
{
    char                 out[4096], fp[1024];
    size_t               n, i;
    const char          *err;
    nixcache_narinfo_t   ni;

    if (sodium_init() < 0) {
        printf("Bail out! sodium_init\n");
        return 1;
    }

    /* a real narinfo with references, a deriver, two signatures */

    err = NULL;
    ok(nixcache_narinfo_parse(&ni, REFS_TEST, strlen(REFS_TEST), &err) == 0,
       "parse refs-test (%s)", err ? err : "no error");
    is_str(ni.store_path.data, ni.store_path.len,
           "/nix/store/nhnwsw5w3pbx1zlhx2v6pas42q607qn5-refs-test",
           "StorePath");
    is_str(ni.url.data, ni.url.len,
           "nar/117jp8dkbgz5nf5i37r9mgyrf689spbw3aqnvw0gcn18n0cvvc1f.nar.xz",
           "URL");
    is_str(ni.compression.data, ni.compression.len, "xz", "Compression");
    is_str(ni.file_hash.data, ni.file_hash.len,
           "sha256:117jp8dkbgz5nf5i37r9mgyrf689spbw3aqnvw0gcn18n0cvvc1f",
           "FileHash");
    is_u64(ni.file_size, 216, "FileSize");
    is_str(ni.nar_hash.data, ni.nar_hash.len,
           "sha256:0amivkr9jsqah68iwisw9dkpkmbml5m0p90znd2xws2b27anjnqy",
           "NarHash");
    is_u64(ni.nar_size, 224, "NarSize");
    is_str(ni.references.data, ni.references.len,
           "nhnwsw5w3pbx1zlhx2v6pas42q607qn5-refs-test "
           "xi3f2pz4v48y7ixc8ziasr88svp006jj-dep.txt", "References");
    is_str(ni.deriver.data, ni.deriver.len,
           "ljaca4cf8w3srlm16nc064samkmp8plw-refs-test.drv", "Deriver");
    is_u64(ni.nsigs, 2, "two Sig lines");
    ok(ni.sigs[0].len > 12 && memcmp(ni.sigs[0].data, "other-key-2:", 12) == 0
       && memcmp(ni.sigs[1].data, "test-key-1:", 11) == 0,
       "Sig lines in order");
    is_u64(ni.ca.len, 0, "no CA");

    n = nixcache_narinfo_render(out, sizeof(out), &ni);
    is_str(out, n, REFS_TEST, "render(parse(refs-test)) is the text");
    is_u64(nixcache_narinfo_render(NULL, 0, &ni), strlen(REFS_TEST),
           "render with cap 0 sizes");

    memset(out, '#', sizeof(out));
    n = nixcache_narinfo_render(out, strlen(REFS_TEST) - 1, &ni);
    ok(n == strlen(REFS_TEST) && out[0] == '#',
       "render writes nothing when it does not fit");

    n = nixcache_narinfo_fingerprint(fp, sizeof(fp), &ni);
    is_str(fp, n, REFS_TEST_FP, "fingerprint of refs-test");
    ok(verify(&ni, KEY1) == 0, "Nix's signature by key 1 verifies");
    ok(verify(&ni, KEY2) == 0, "Nix's signature by key 2 verifies");

    memset(fp, '#', sizeof(fp));
    ok(nixcache_narinfo_fingerprint(fp, 10, &ni) == strlen(REFS_TEST_FP)
       && fp[0] == '#', "fingerprint writes nothing when it does not fit");

    /* references given out of order are signed sorted, as Nix does */

    ok(parse(&ni,
           replace(REFS_TEST,
                   "References: nhnwsw5w3pbx1zlhx2v6pas42q607qn5-refs-test "
                   "xi3f2pz4v48y7ixc8ziasr88svp006jj-dep.txt",
                   "References: xi3f2pz4v48y7ixc8ziasr88svp006jj-dep.txt  "
                   "nhnwsw5w3pbx1zlhx2v6pas42q607qn5-refs-test"),
           &err) == 0, "parse with unsorted references");
    n = nixcache_narinfo_fingerprint(fp, sizeof(fp), &ni);
    is_str(fp, n, REFS_TEST_FP, "fingerprint sorts references");

    /* a hex NarHash (nix-hash --to-base16 of the nix32 one) is
     * fingerprinted in nix32 */

    ok(parse(&ni,
           replace(REFS_TEST,
                   "sha256:0amivkr9jsqah68iwisw9dkpkmbml5m0p"
                   "90znd2xws2b27anjnqy",
                   "sha256:1e5b69d5114b68de45b31fa40b6aa175"
                   "d579674b5c471e91810a6b99f2dcb12a"),
           &err) == 0, "parse with a hex NarHash");
    n = nixcache_narinfo_fingerprint(fp, sizeof(fp), &ni);
    is_str(fp, n, REFS_TEST_FP, "hex NarHash written as nix32");
    ok(verify(&ni, KEY1) == 0, "and the signature verifies");

    /* the store directory comes from StorePath */

    ok(parse(&ni,
           "StorePath: /gnu/st/xi3f2pz4v48y7ixc8ziasr88svp006jj-a\n"
           "URL: x\n"
           "NarHash: sha256:1c174hx52y9pmql9903b83ri2jgvpbir4bw"
           "h36r21j5d45ng6hcc\n"
           "NarSize: 1\n"
           "References: xi3f2pz4v48y7ixc8ziasr88svp006jj-a "
           "0i6ardx43rdg24ab1nc3mq7f5ykyiamb-b\n", &err) == 0,
       "parse with another store directory (%s)", err);
    n = nixcache_narinfo_fingerprint(fp, sizeof(fp), &ni);
    is_str(fp, n, "1;/gnu/st/xi3f2pz4v48y7ixc8ziasr88svp006jj-a;"
           "sha256:1c174hx52y9pmql9903b83ri2jgvpbir4bwh36r21j5d45ng6hcc;1;"
           "/gnu/st/0i6ardx43rdg24ab1nc3mq7f5ykyiamb-b,"
           "/gnu/st/xi3f2pz4v48y7ixc8ziasr88svp006jj-a",
           "references take StorePath's directory");

    /* no References line at all (found by fuzz/fuzz_narinfo.c: the
     * fingerprint did arithmetic on its NULL data, which UBSan flags) */

    ok(parse(&ni,
           "StorePath: /nix/store/xi3f2pz4v48y7ixc8ziasr88svp006jj-a\n"
           "URL: x\n"
           "NarHash: sha256:1c174hx52y9pmql9903b83ri2jgvpbir4bw"
           "h36r21j5d45ng6hcc\n"
           "NarSize: 1\n", &err) == 0,
       "parse without a References line (%s)", err);
    n = nixcache_narinfo_fingerprint(fp, sizeof(fp), &ni);
    is_str(fp, n, "1;/nix/store/xi3f2pz4v48y7ixc8ziasr88svp006jj-a;"
           "sha256:1c174hx52y9pmql9903b83ri2jgvpbir4bwh36r21j5d45ng6hcc;1;",
           "fingerprint without a References line");

    /* a real CA path: empty References, Sig, CA */

    ok(nixcache_narinfo_parse(&ni, DEP_TXT, strlen(DEP_TXT), &err) == 0,
       "parse dep.txt");
    is_u64(ni.references.len, 0, "empty References");
    is_u64(ni.deriver.len, 0, "no Deriver");
    is_str(ni.ca.data, ni.ca.len,
           "fixed:r:sha256:1c174hx52y9pmql9903b83ri2jgvpbir4bw"
           "h36r21j5d45ng6hcc",
           "CA");
    n = nixcache_narinfo_render(out, sizeof(out), &ni);
    is_str(out, n, DEP_TXT, "render(parse(dep.txt)) is the text");
    n = nixcache_narinfo_fingerprint(fp, sizeof(fp), &ni);
    is_str(fp, n, DEP_TXT_FP, "fingerprint with no references");
    ok(verify(&ni, KEY1) == 0, "Nix's signature of dep.txt verifies");
    ok(verify(&ni, KEY2) == -1, "no signature by key 2");

    /* a tampered narinfo fails verification: the test can fail */

    ok(parse(&ni, replace(REFS_TEST, "NarSize: 224",
                                           "NarSize: 225"),
                              &err) == 0,
       "parse a tampered NarSize");
    ok(verify(&ni, KEY1) != 0, "tampered narinfo does not verify");

    /* cache.nixos.org's shape */

    ok(nixcache_narinfo_parse(&ni, NO_DERIVER, strlen(NO_DERIVER), &err)
       == 0, "parse a narinfo without Deriver");
    n = nixcache_narinfo_render(out, sizeof(out), &ni);
    is_str(out, n, NO_DERIVER, "render(parse(no deriver)) is the text");
    is_u64(ni.file_size, 50088, "FileSize");
    is_u64(ni.nar_size, 226552, "NarSize");

    /* optional fields, defaults, unknown keys */

    ok(parse(&ni,
           "StorePath: /nix/store/xi3f2pz4v48y7ixc8ziasr88svp006jj-a\n"
           "URL: nar/x.nar\n"
           "System: x86_64-linux\n"
           "NarHash: sha256:1c174hx52y9pmql9903b83ri2jgvpbir4bw"
           "h36r21j5d45ng6hcc\n"
           "NarSize: 18446744073709551615\n", &err) == 0,
       "parse a minimal narinfo with an unknown key (%s)", err);
    is_u64(ni.compression.len, 0, "no Compression: left empty (bzip2)");
    is_u64(ni.file_hash.len + ni.file_size, 0, "no FileHash, FileSize");
    is_u64(ni.nar_size, UINT64_MAX, "NarSize of 2^64 - 1");
    n = nixcache_narinfo_render(out, sizeof(out), &ni);
    is_str(out, n,
           "StorePath: /nix/store/xi3f2pz4v48y7ixc8ziasr88svp006jj-a\n"
           "URL: nar/x.nar\n"
           "NarHash: sha256:1c174hx52y9pmql9903b83ri2jgvpbir4bw"
           "h36r21j5d45ng6hcc\n"
           "NarSize: 18446744073709551615\n"
           "References: \n", "render a minimal narinfo");

    ok(parse(&ni,
           replace(REFS_TEST, "Sig: test-key-1", "Sig: other-key-2:6HSXPvCX9pn+"
                   "Ck2YypCEqaDpR05QtmtSHdJJaz6a21dXlc0aI3Yr1zDYaIoabmdJHgB7V"
                   "VpeI4AY3vZu1aeKDQ==\nSig: test-key-1"),
           &err) == 0 && ni.nsigs == 2,
       "a repeated Sig counts once");

    /* errors */

    ok(parse_err(replace(REFS_TEST,
                 "StorePath: /nix/store/nhnwsw5w3pbx1zlhx2v6pas42q607qn5"
                 "-refs-test\n", ""), "StorePath missing"),
       "missing StorePath");
    ok(parse_err(replace(REFS_TEST, "URL: nar/117jp8dkbgz5nf5i37r9mgyrf689spbw"
                         "3aqnvw0gcn18n0cvvc1f.nar.xz\n", ""), "URL missing"),
       "missing URL");
    ok(parse_err(replace(REFS_TEST, "NarHash: sha256:0amivkr9jsqah68iwisw9dkp"
                         "kmbml5m0p90znd2xws2b27anjnqy\n", ""),
                 "NarHash missing"), "missing NarHash");
    ok(parse_err(replace(REFS_TEST, "NarSize: 224\n", ""),
                 "NarSize missing or zero"), "missing NarSize");
    ok(parse_err(replace(REFS_TEST, "NarSize: 224", "NarSize: 0"),
                 "NarSize missing or zero"), "NarSize 0");
    ok(parse_err(replace(REFS_TEST, "NarSize: 224", "NarSize: 22x"),
                 "bad NarSize"), "NarSize 22x");
    ok(parse_err(replace(REFS_TEST, "NarSize: 224", "NarSize: -224"),
                 "bad NarSize"), "NarSize -224");
    ok(parse_err(replace(REFS_TEST, "NarSize: 224", "NarSize: +224"),
                 "bad NarSize"), "NarSize +224");
    ok(parse_err(replace(REFS_TEST, "NarSize: 224", "NarSize: "),
                 "bad NarSize"), "NarSize empty");
    ok(parse_err(replace(REFS_TEST, "NarSize: 224", "NarSize:  224"),
                 "bad NarSize"), "NarSize with a leading space");
    ok(parse_err(replace(REFS_TEST, "NarSize: 224",
                         "NarSize: 18446744073709551616"), "bad NarSize"),
       "NarSize of 2^64 overflows");
    ok(parse_err(replace(REFS_TEST, "NarSize: 224",
                         "NarSize: 99999999999999999999"), "bad NarSize"),
       "NarSize of 20 nines overflows");
    ok(parse_err(replace(REFS_TEST, "FileSize: 216", "FileSize: 2 16"),
                 "bad FileSize"), "bad FileSize");
    ok(parse_err(replace(REFS_TEST, "sha256:0amivk", "sha256:0amivt"),
                 "bad NarHash"), "bad NarHash");
    ok(parse_err(replace(REFS_TEST, "FileHash: sha256:", "FileHash: md5:"),
                 "bad FileHash"), "bad FileHash");
    ok(parse_err(replace(REFS_TEST, "StorePath: /nix/store/nhnwsw5w3pbx1zlhx2v6"
                         "pas42q607qn5-refs-test", "StorePath: nix"),
                 "bad StorePath"), "relative StorePath");
    ok(parse_err(replace(REFS_TEST, "StorePath: /nix/store/nhnwsw5w3pbx1zlhx2v6"
                         "pas42q607qn5-refs-test",
                         "StorePath: /nix/store/nhnwsw5w3pbx1zlhx2v6"
                         "pas42q607qn5"), "bad StorePath"),
       "StorePath without a name");
    ok(parse_err(replace(REFS_TEST, "StorePath: /nix/store/nhnwsw5w3pbx1zlhx2v6"
                         "pas42q607qn5-refs-test",
                         "StorePath: /nix/store/nhnwsw5w3pbx1zlhx2v6"
                         "pas42q607qne-refs-test"), "bad StorePath"),
       "StorePath with a bad hash");
    ok(parse_err(replace(REFS_TEST, " xi3f2pz4v48y7ixc8ziasr88svp006jj-dep.txt",
                         " xi3f2pz4v48y7ixc8ziasr88svp006jj/dep.txt"),
                 "bad References"), "bad reference");
    ok(parse_err(replace(REFS_TEST, "Compression: xz", "Compression xz"),
                 "line without ': '"), "a line without ': '");
    ok(parse_err(replace(REFS_TEST, "Compression: xz", "Compression:xz"),
                 "line without ': '"), "a line with ':' but no space");
    ok(parse_err(replace(REFS_TEST, "Compression: xz\n", "\n"),
                 "line without ': '"), "an empty line");

    snprintf(buf, sizeof(buf), "%.*s", (int) strlen(REFS_TEST) - 1,
             REFS_TEST);
    ok(parse_err(buf, "line without '\\n'"), "a last line without '\\n'");

    ok(nixcache_narinfo_parse(&ni, REFS_TEST, 0, &err) == -1,
       "empty text: %s", err);

    n = snprintf(buf, sizeof(buf), "%s", REFS_TEST);
    for (i = 0; i < NIXCACHE_NARINFO_MAX_SIGS - 2; i++) {
        n += snprintf(buf + n, sizeof(buf) - n, "Sig: k:%zu\n", i);
    }
    ok(nixcache_narinfo_parse(&ni, buf, n, &err) == 0
       && ni.nsigs == NIXCACHE_NARINFO_MAX_SIGS,
       "%d Sig lines are accepted", NIXCACHE_NARINFO_MAX_SIGS);
    n += snprintf(buf + n, sizeof(buf) - n, "Sig: k:last\n");
    ok(parse_err(buf, "too many Sig lines"),
       "%d Sig lines are too many", NIXCACHE_NARINFO_MAX_SIGS + 1);

    /* exactly the limit is fine, one byte more is not */

    n = snprintf(buf, sizeof(buf), "%sX: ", REFS_TEST);
    memset(buf + n, 'x', NIXCACHE_NARINFO_MAX_LEN - 1 - n);
    buf[NIXCACHE_NARINFO_MAX_LEN - 1] = '\n';
    buf[NIXCACHE_NARINFO_MAX_LEN] = '\0';
    ok(nixcache_narinfo_parse(&ni, buf, NIXCACHE_NARINFO_MAX_LEN, &err) == 0,
       "a narinfo of exactly %d bytes parses (%s)", NIXCACHE_NARINFO_MAX_LEN,
       err);
    buf[NIXCACHE_NARINFO_MAX_LEN] = '\n';
    buf[NIXCACHE_NARINFO_MAX_LEN + 1] = '\0';
    ok(parse_err(buf, "narinfo too long"), "one byte more is too long");

    test_point();

    return done_testing();
}


/*
 * nixcache_narinfo_is_path() and nixcache_narinfo_point().  The nix32
 * strings were made by Nix: nix-hash --type sha256 --to-base32 of
 * abab...ab and 1111...11.
 */

static void
test_point(void)
{
    char                       out[4096];
    size_t                     n;
    const char                *err;
    unsigned char              nar_hash[32], file_hash[32];
    nixcache_narinfo_t         ni, back;
    nixcache_narinfo_point_t   point;

    ok(nixcache_narinfo_parse(&ni, REFS_TEST, strlen(REFS_TEST), &err) == 0,
       "parse refs-test for pointing");

    ok(nixcache_narinfo_is_path(&ni, "nhnwsw5w3pbx1zlhx2v6pas42q607qn5", 32),
       "is_path: its own hash");
    ok(!nixcache_narinfo_is_path(&ni, "nhnwsw5w3pbx1zlhx2v6pas42q607qn6", 32),
       "is_path: another hash");
    ok(!nixcache_narinfo_is_path(&ni, "nhnwsw5w3pbx1zlhx2v6pas42q607qn", 31),
       "is_path: a prefix of the hash is not the path");
    ni.store_path.data = "/nix/store/nhnwsw5w3pbx1zlhx2v6pas42q607qn5";
    ni.store_path.len = strlen(ni.store_path.data);
    ok(!nixcache_narinfo_is_path(&ni, "nhnwsw5w3pbx1zlhx2v6pas42q607qn5", 32),
       "is_path: a hash without \"-name\" is no store path");

    ok(nixcache_narinfo_parse(&ni, REFS_TEST, strlen(REFS_TEST), &err) == 0,
       "parse again");

    memset(nar_hash, 0xab, sizeof(nar_hash));
    memset(file_hash, 0x11, sizeof(file_hash));

    nixcache_narinfo_point(&ni, &point,
                           NIXCACHE_NARINFO_ZSTD|NIXCACHE_NARINFO_NAR_HASH,
                           nar_hash, file_hash, 1234);
    n = nixcache_narinfo_render(out, sizeof(out), &ni);
    ok(nixcache_narinfo_parse(&back, out, n, &err) == 0,
       "a pointed narinfo renders and parses (%s)", err ? err : "ok");
    is_str(back.url.data, back.url.len,
           "nar/1axbmfmspaxbmfmspaxbmfmspaxbmfmspaxbmfmspaxbmfmspaxb.nar.zst",
           "zstd: URL is nar/<NarHash>.nar.zst");
    is_str(back.compression.data, back.compression.len, "zstd",
           "zstd: Compression");
    is_str(back.nar_hash.data, back.nar_hash.len,
           "sha256:1axbmfmspaxbmfmspaxbmfmspaxbmfmspaxbmfmspaxbmfmspaxb",
           "zstd: NarHash");
    is_str(back.file_hash.data, back.file_hash.len,
           "sha256:048i248i248i248i248i248i248i248i248i248i248i248i248i",
           "zstd: FileHash of the frames");
    is_u64(back.file_size, 1234, "zstd: FileSize of the frames");
    is_u64(back.nar_size, 224, "NarSize is the caller's");
    is_str(back.references.data, back.references.len,
           "nhnwsw5w3pbx1zlhx2v6pas42q607qn5-refs-test "
           "xi3f2pz4v48y7ixc8ziasr88svp006jj-dep.txt", "References kept");
    is_u64(back.nsigs, 2, "Sig lines kept");

    ni = back;
    nixcache_narinfo_point(&ni, &point, NIXCACHE_NARINFO_ZSTD, file_hash,
                           NULL, 0);
    is_u64(ni.file_size, 1234, "zstd without a file hash: FileSize kept");
    is_str(ni.nar_hash.data, ni.nar_hash.len,
           "sha256:1axbmfmspaxbmfmspaxbmfmspaxbmfmspaxbmfmspaxbmfmspaxb",
           "without NIXCACHE_NARINFO_NAR_HASH the NarHash text is kept");

    nixcache_narinfo_point(&ni, &point, NIXCACHE_NARINFO_NONE, nar_hash,
                           file_hash, 99);
    is_str(ni.url.data, ni.url.len,
           "nar/1axbmfmspaxbmfmspaxbmfmspaxbmfmspaxbmfmspaxbmfmspaxb.nar",
           "none: URL is nar/<NarHash>.nar");
    is_str(ni.compression.data, ni.compression.len, "none",
           "none: Compression");
    is_str(ni.file_hash.data, ni.file_hash.len,
           "sha256:1axbmfmspaxbmfmspaxbmfmspaxbmfmspaxbmfmspaxbmfmspaxb",
           "none: FileHash is the NarHash");
    is_u64(ni.file_size, 224, "none: FileSize is the NarSize");
}
