/*
 * narinfo parsing, rendering and signature fingerprints, following
 * libstore/nar-info.cc: "Key: value\n" lines, unknown keys ignored, every
 * line (the last one too) ends with '\n'.
 */

#include <string.h>

#include "nixcache_hash.h"
#include "nixcache_narinfo.h"
#include "nixcache_nix32.h"


/* an output that only counts when dst is NULL */

typedef struct {
    char                      *dst;
    size_t                     len;
} nixcache_out_t;


static void nixcache_narinfo_render_out(nixcache_out_t *o,
    const nixcache_narinfo_t *ni);
static int nixcache_narinfo_fingerprint_out(nixcache_out_t *o,
    const nixcache_narinfo_t *ni);
static int nixcache_narinfo_number(uint64_t *v, const char *p, size_t len);
static int nixcache_narinfo_store_path(const char *p, size_t len);
static int nixcache_narinfo_basename(const char *p, size_t len);
static int nixcache_narinfo_refs(const char *p, size_t len);
static int nixcache_narinfo_key(const char *p, size_t len, const char *key);
static void nixcache_out(nixcache_out_t *o, const char *p, size_t len);
static void nixcache_out_str(nixcache_out_t *o, const char *s);
static void nixcache_out_u64(nixcache_out_t *o, uint64_t v);
static void nixcache_out_field(nixcache_out_t *o, const char *key,
    const nixcache_str_t *v);
static int nixcache_ref_cmp(const char *a, size_t alen, const char *b,
    size_t blen);


int
nixcache_narinfo_parse(nixcache_narinfo_t *ni, const char *text,
    size_t len, const char **err)
{
    int             have_nar_size;
    size_t          i, klen, vlen;
    const char     *p, *end, *eol, *colon, *v;
    nixcache_str_t  value;
    unsigned char   digest[NIXCACHE_SHA256_LEN];

    memset(ni, 0, sizeof(nixcache_narinfo_t));

    if (len > NIXCACHE_NARINFO_MAX_LEN) {
        *err = "narinfo too long";
        return -1;
    }

    have_nar_size = 0;
    p = text;
    end = text + len;

    while (p < end) {
        eol = memchr(p, '\n', end - p);
        if (eol == NULL) {
            *err = "line without '\\n'";
            return -1;
        }

        colon = memchr(p, ':', eol - p);
        if (colon == NULL || colon + 1 == eol || colon[1] != ' ') {
            *err = "line without ': '";
            return -1;
        }

        klen = colon - p;
        v = colon + 2;
        vlen = eol - v;

        value.data = v;
        value.len = vlen;

        if (nixcache_narinfo_key(p, klen, "StorePath")) {
            if (!nixcache_narinfo_store_path(v, vlen)) {
                *err = "bad StorePath";
                return -1;
            }

            ni->store_path = value;

        } else if (nixcache_narinfo_key(p, klen, "URL")) {
            ni->url = value;

        } else if (nixcache_narinfo_key(p, klen, "Compression")) {
            ni->compression = value;

        } else if (nixcache_narinfo_key(p, klen, "FileHash")) {
            if (nixcache_hash_parse(digest, v, vlen) != 0) {
                *err = "bad FileHash";
                return -1;
            }

            ni->file_hash = value;

        } else if (nixcache_narinfo_key(p, klen, "FileSize")) {
            if (nixcache_narinfo_number(&ni->file_size, v, vlen) != 0) {
                *err = "bad FileSize";
                return -1;
            }

        } else if (nixcache_narinfo_key(p, klen, "NarHash")) {
            if (nixcache_hash_parse(digest, v, vlen) != 0) {
                *err = "bad NarHash";
                return -1;
            }

            ni->nar_hash = value;

        } else if (nixcache_narinfo_key(p, klen, "NarSize")) {
            if (nixcache_narinfo_number(&ni->nar_size, v, vlen) != 0) {
                *err = "bad NarSize";
                return -1;
            }

            have_nar_size = 1;

        } else if (nixcache_narinfo_key(p, klen, "References")) {
            if (!nixcache_narinfo_refs(v, vlen)) {
                *err = "bad References";
                return -1;
            }

            ni->references = value;

        } else if (nixcache_narinfo_key(p, klen, "Deriver")) {
            ni->deriver = value;

        } else if (nixcache_narinfo_key(p, klen, "Sig")) {

            /* Nix keeps a set of signatures: a repeated one counts once */

            for (i = 0; i < ni->nsigs; i++) {
                if (ni->sigs[i].len == vlen
                    && memcmp(ni->sigs[i].data, v, vlen) == 0)
                {
                    break;
                }
            }

            if (i == ni->nsigs) {
                if (ni->nsigs == NIXCACHE_NARINFO_MAX_SIGS) {
                    *err = "too many Sig lines";
                    return -1;
                }

                ni->sigs[ni->nsigs++] = value;
            }

        } else if (nixcache_narinfo_key(p, klen, "CA")) {
            ni->ca = value;
        }

        p = eol + 1;
    }

    if (ni->store_path.len == 0) {
        *err = "StorePath missing";
        return -1;
    }

    if (ni->url.len == 0) {
        *err = "URL missing";
        return -1;
    }

    if (ni->nar_hash.len == 0) {
        *err = "NarHash missing";
        return -1;
    }

    if (!have_nar_size || ni->nar_size == 0) {
        *err = "NarSize missing or zero";
        return -1;
    }

    return 0;
}


size_t
nixcache_narinfo_render(char *dst, size_t cap, const nixcache_narinfo_t *ni)
{
    size_t          len;
    nixcache_out_t  o;

    o.dst = NULL;
    o.len = 0;
    nixcache_narinfo_render_out(&o, ni);

    len = o.len;

    if (len <= cap) {
        o.dst = dst;
        o.len = 0;
        nixcache_narinfo_render_out(&o, ni);
    }

    return len;
}


size_t
nixcache_narinfo_fingerprint(char *dst, size_t cap,
    const nixcache_narinfo_t *ni)
{
    size_t          len;
    nixcache_out_t  o;

    o.dst = NULL;
    o.len = 0;

    if (nixcache_narinfo_fingerprint_out(&o, ni) != 0) {
        return 0;
    }

    len = o.len;

    if (len <= cap) {
        o.dst = dst;
        o.len = 0;
        (void) nixcache_narinfo_fingerprint_out(&o, ni);
    }

    return len;
}


int
nixcache_narinfo_is_path(const nixcache_narinfo_t *ni, const char *hash,
    size_t len)
{
    const char  *base, *end;

    end = ni->store_path.data + ni->store_path.len;
    base = end;

    while (base > ni->store_path.data && base[-1] != '/') {
        base--;
    }

    return (size_t) (end - base) > len
           && memcmp(base, hash, len) == 0
           && base[len] == '-';
}


void
nixcache_narinfo_point(nixcache_narinfo_t *ni, nixcache_narinfo_point_t *buf,
    unsigned how, const unsigned char *nar_hash,
    const unsigned char *file_hash, uint64_t file_size)
{
    char  *p;

    p = buf->url;
    memcpy(p, "nar/", sizeof("nar/") - 1);
    p += sizeof("nar/") - 1;

    /* one nix32 encoding per call: the narinfo route runs this per GET */

    if (how & (NIXCACHE_NARINFO_NAR_HASH|NIXCACHE_NARINFO_NONE)) {
        nixcache_hash_format(buf->nar_hash, nar_hash);
        memcpy(p, buf->nar_hash + sizeof("sha256:") - 1,
               NIXCACHE_SHA256_NIX32_LEN);

    } else {
        nixcache_nix32_encode(p, nar_hash, NIXCACHE_SHA256_LEN);
    }

    p += NIXCACHE_SHA256_NIX32_LEN;

    if (how & NIXCACHE_NARINFO_NAR_HASH) {
        ni->nar_hash.data = buf->nar_hash;
        ni->nar_hash.len = NIXCACHE_HASH_STR_LEN;
    }

    if (how & NIXCACHE_NARINFO_NONE) {
        memcpy(p, ".nar", sizeof(".nar") - 1);
        p += sizeof(".nar") - 1;

        ni->compression.data = "none";
        ni->compression.len = sizeof("none") - 1;
        ni->file_hash.data = buf->nar_hash;
        ni->file_hash.len = NIXCACHE_HASH_STR_LEN;
        ni->file_size = ni->nar_size;

    } else {
        memcpy(p, ".nar.zst", sizeof(".nar.zst") - 1);
        p += sizeof(".nar.zst") - 1;

        ni->compression.data = "zstd";
        ni->compression.len = sizeof("zstd") - 1;

        if (file_hash != NULL) {
            nixcache_hash_format(buf->file_hash, file_hash);
            ni->file_hash.data = buf->file_hash;
            ni->file_hash.len = NIXCACHE_HASH_STR_LEN;
            ni->file_size = file_size;
        }
    }

    ni->url.data = buf->url;
    ni->url.len = p - buf->url;
}


static void
nixcache_narinfo_render_out(nixcache_out_t *o, const nixcache_narinfo_t *ni)
{
    size_t  i;

    nixcache_out_field(o, "StorePath", &ni->store_path);
    nixcache_out_field(o, "URL", &ni->url);

    if (ni->compression.len) {
        nixcache_out_field(o, "Compression", &ni->compression);
    }

    if (ni->file_hash.len) {
        nixcache_out_field(o, "FileHash", &ni->file_hash);
    }

    if (ni->file_hash.len || ni->file_size) {
        nixcache_out_str(o, "FileSize: ");
        nixcache_out_u64(o, ni->file_size);
        nixcache_out_str(o, "\n");
    }

    nixcache_out_field(o, "NarHash", &ni->nar_hash);

    nixcache_out_str(o, "NarSize: ");
    nixcache_out_u64(o, ni->nar_size);
    nixcache_out_str(o, "\n");

    nixcache_out_field(o, "References", &ni->references);

    if (ni->deriver.len) {
        nixcache_out_field(o, "Deriver", &ni->deriver);
    }

    for (i = 0; i < ni->nsigs; i++) {
        nixcache_out_field(o, "Sig", &ni->sigs[i]);
    }

    if (ni->ca.len) {
        nixcache_out_field(o, "CA", &ni->ca);
    }
}


static int
nixcache_narinfo_fingerprint_out(nixcache_out_t *o,
    const nixcache_narinfo_t *ni)
{
    int            first;
    char           hash[NIXCACHE_HASH_STR_LEN];
    size_t         dirlen, rlen, blen, llen;
    const char    *refs, *end, *p, *q, *best, *last;
    unsigned char  digest[NIXCACHE_SHA256_LEN];

    if (nixcache_hash_parse(digest, ni->nar_hash.data, ni->nar_hash.len)
        != 0)
    {
        return -1;
    }

    nixcache_hash_format(hash, digest);

    /* the store directory: StorePath up to its last '/' */

    dirlen = ni->store_path.len;
    while (dirlen > 0 && ni->store_path.data[dirlen - 1] != '/') {
        dirlen--;
    }

    if (dirlen == 0) {
        return -1;
    }

    nixcache_out_str(o, "1;");
    nixcache_out(o, ni->store_path.data, ni->store_path.len);
    nixcache_out_str(o, ";");
    nixcache_out(o, hash, NIXCACHE_HASH_STR_LEN);
    nixcache_out_str(o, ";");
    nixcache_out_u64(o, ni->nar_size);
    nixcache_out_str(o, ";");

    /*
     * Nix signs the references as a sorted set: emit them in order,
     * each time the smallest one greater than the last, without copying
     * (a narinfo has few references, and Nix writes them sorted anyway).
     */

    /* an absent References line leaves data NULL: no arithmetic on it */
    refs = ni->references.len ? ni->references.data : "";
    end = refs + ni->references.len;
    last = NULL;
    llen = 0;
    first = 1;

    for ( ;; ) {
        best = NULL;
        blen = 0;

        for (p = refs; p < end; p = q + 1) {
            q = memchr(p, ' ', end - p);
            if (q == NULL) {
                q = end;
            }

            rlen = q - p;

            if (rlen == 0) {
                continue;
            }

            if (last != NULL && nixcache_ref_cmp(p, rlen, last, llen) <= 0) {
                continue;
            }

            if (best == NULL || nixcache_ref_cmp(p, rlen, best, blen) < 0) {
                best = p;
                blen = rlen;
            }
        }

        if (best == NULL) {
            break;
        }

        if (!first) {
            nixcache_out_str(o, ",");
        }

        nixcache_out(o, ni->store_path.data, dirlen);
        nixcache_out(o, best, blen);

        first = 0;
        last = best;
        llen = blen;
    }

    return 0;
}


static int
nixcache_narinfo_number(uint64_t *v, const char *p, size_t len)
{
    size_t    i;
    uint64_t  n, d;

    if (len == 0) {
        return -1;
    }

    n = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        d = (uint64_t) (p[i] - '0');

        if (n > (UINT64_MAX - d) / 10) {
            return -1;
        }

        n = n * 10 + d;
    }

    *v = n;

    return 0;
}


static int
nixcache_narinfo_store_path(const char *p, size_t len)
{
    size_t  n;

    if (len == 0 || p[0] != '/') {
        return 0;
    }

    n = len;
    while (p[n - 1] != '/') {
        n--;
    }

    if (n == 1) {
        return 0;       /* a store directory is not "/" */
    }

    return nixcache_narinfo_basename(p + n, len - n);
}


/* "<32 nix32 chars>-<name of at most 211 chars>", as Nix checks */

static int
nixcache_narinfo_basename(const char *p, size_t len)
{
    size_t  i;

    if (len < NIXCACHE_STORE_HASH_NIX32_LEN + 2
        || len > NIXCACHE_STORE_HASH_NIX32_LEN + 1 + 211
        || p[NIXCACHE_STORE_HASH_NIX32_LEN] != '-'
        || !nixcache_nix32_valid(p, NIXCACHE_STORE_HASH_NIX32_LEN))
    {
        return 0;
    }

    for (i = NIXCACHE_STORE_HASH_NIX32_LEN + 1; i < len; i++) {
        if ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')
            || (p[i] >= '0' && p[i] <= '9'))
        {
            continue;
        }

        if (strchr("+-._?=", p[i]) == NULL) {
            return 0;
        }
    }

    return 1;
}


static int
nixcache_narinfo_refs(const char *p, size_t len)
{
    const char  *end, *q;

    end = p + len;

    for ( /* void */ ; p < end; p = q + 1) {
        q = memchr(p, ' ', end - p);
        if (q == NULL) {
            q = end;
        }

        if (q > p && !nixcache_narinfo_basename(p, q - p)) {
            return 0;
        }
    }

    return 1;
}


static int
nixcache_narinfo_key(const char *p, size_t len, const char *key)
{
    return strlen(key) == len && memcmp(p, key, len) == 0;
}


static void
nixcache_out(nixcache_out_t *o, const char *p, size_t len)
{
    if (o->dst != NULL && len > 0) {
        memcpy(o->dst + o->len, p, len);
    }

    o->len += len;
}


static void
nixcache_out_str(nixcache_out_t *o, const char *s)
{
    nixcache_out(o, s, strlen(s));
}


static void
nixcache_out_u64(nixcache_out_t *o, uint64_t v)
{
    char    buf[20];
    size_t  n;

    n = sizeof(buf);

    do {
        buf[--n] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    nixcache_out(o, buf + n, sizeof(buf) - n);
}


static void
nixcache_out_field(nixcache_out_t *o, const char *key,
    const nixcache_str_t *v)
{
    nixcache_out_str(o, key);
    nixcache_out_str(o, ": ");
    nixcache_out(o, v->data, v->len);
    nixcache_out_str(o, "\n");
}


static int
nixcache_ref_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int  rc;

    rc = memcmp(a, b, alen < blen ? alen : blen);
    if (rc != 0) {
        return rc;
    }

    return (alen > blen) - (alen < blen);
}
