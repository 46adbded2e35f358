/*
 * Redis key names: nixcache_key_len(), nixcache_key_build() and
 * nixcache_key_name() against the texts of nixcache_format.h.
 */

#include "unit.h"

#include "nixcache_format.h"
#include "nixcache_key.h"


#define H32   "0c6kzph7l0dcbfmjap64f0czdafn3b7x"
#define H52   "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"


typedef struct {
    const char           *prefix;
    nixcache_key_kind_e   kind;
    const char           *name;
    const char           *key;
} key_case_t;


static const key_case_t  keys[] = {
    { "nixcache:", NIXCACHE_KEY_KIND_NARINFO, H32, "nixcache:narinfo:" H32 },
    { "nixcache:", NIXCACHE_KEY_KIND_MANIFEST, H52,
      "nixcache:manifest:" H52 },
    { "nixcache:", NIXCACHE_KEY_KIND_UPLOAD, H52 ".nar.xz",
      "nixcache:upload:" H52 ".nar.xz" },
    { "", NIXCACHE_KEY_KIND_NARINFO, H32, "narinfo:" H32 },
    { "a b:", NIXCACHE_KEY_KIND_MANIFEST, H52, "a b:manifest:" H52 },
    { "p:", NIXCACHE_KEY_KIND_NARINFO, "*", "p:narinfo:*" },
    { "p:", NIXCACHE_KEY_KIND_UPLOAD, "", "p:upload:" },
    { "nixcache:", NIXCACHE_KEY_KIND_ACCESS, "", "nixcache:access" },
    { "c:", NIXCACHE_KEY_KIND_PIN, "", "c:pin" },
    { "nixcache:", NIXCACHE_KEY_KIND_ABSENT, H32, "nixcache:absent:" H32 },
    { "p:", NIXCACHE_KEY_KIND_UPSTREAM, H32, "p:upstream:" H32 },
};


int
main(void)
{
    char               buf[256], *end;
    size_t             i, len, plen, nlen;
    const char        *name;
    const key_case_t  *t;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        t = &keys[i];
        plen = strlen(t->prefix);
        nlen = strlen(t->name);

        len = nixcache_key_len(plen, t->kind, nlen);
        is_u64(len, strlen(t->key), "%s: length", t->key);

        memset(buf, 'x', sizeof(buf));
        end = nixcache_key_build(buf, t->prefix, plen, t->kind, t->name,
                                 nlen);
        is_str(buf, end - buf, t->key, "%s: built", t->key);
        ok(*end == 'x', "%s: nothing written past it", t->key);

        ok(nixcache_key_name(t->key, strlen(t->key), t->prefix, plen,
                             t->kind, &name, &len)
           == 0, "%s: read back", t->key);
        is_str(name, len, t->name, "%s: its name", t->key);
    }

    /* the texts are the format header's */

    end = nixcache_key_build(buf, NIXCACHE_DEFAULT_PREFIX,
                             sizeof(NIXCACHE_DEFAULT_PREFIX) - 1,
                             NIXCACHE_KEY_KIND_MANIFEST, H52,
                             NIXCACHE_SHA256_NIX32_LEN);
    is_str(buf, end - buf, NIXCACHE_DEFAULT_PREFIX NIXCACHE_KEY_MANIFEST H52,
           "default prefix, manifest");

    /* keys of another kind or prefix are not read */

    ok(nixcache_key_name("nixcache:manifest:" H52,
                         sizeof("nixcache:manifest:" H52) - 1, "nixcache:",
                         9, NIXCACHE_KEY_KIND_NARINFO, &name, &len)
       == -1, "another kind");
    ok(nixcache_key_name("other:narinfo:" H32,
                         sizeof("other:narinfo:" H32) - 1, "nixcache:",
                         9, NIXCACHE_KEY_KIND_NARINFO, &name, &len)
       == -1, "another prefix");
    ok(nixcache_key_name("nixcache:narinfo", 16, "nixcache:", 9,
                         NIXCACHE_KEY_KIND_NARINFO, &name, &len)
       == -1, "too short");

    return done_testing();
}
