/*
 * libFuzzer target: the narinfo parser, and its renderer as a round trip.
 *
 * Invariants: whatever the text, parsing returns 0 or -1 with a message;
 * a narinfo that parses renders to a text that parses again to the same
 * fields (parse(render(parse(x))) == parse(x)), and that text renders to
 * itself; the fingerprint fits the length it announces.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nixcache_narinfo.h"


static int nixcache_fuzz_str_eq(const nixcache_str_t *a,
    const nixcache_str_t *b);
static int nixcache_fuzz_narinfo_eq(const nixcache_narinfo_t *a,
    const nixcache_narinfo_t *b);


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int
nixcache_fuzz_str_eq(const nixcache_str_t *a, const nixcache_str_t *b)
{
    return a->len == b->len
           && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}


static int
nixcache_fuzz_narinfo_eq(const nixcache_narinfo_t *a,
    const nixcache_narinfo_t *b)
{
    size_t  i;

    if (!nixcache_fuzz_str_eq(&a->store_path, &b->store_path)
        || !nixcache_fuzz_str_eq(&a->url, &b->url)
        || !nixcache_fuzz_str_eq(&a->compression, &b->compression)
        || !nixcache_fuzz_str_eq(&a->file_hash, &b->file_hash)
        || !nixcache_fuzz_str_eq(&a->nar_hash, &b->nar_hash)
        || !nixcache_fuzz_str_eq(&a->references, &b->references)
        || !nixcache_fuzz_str_eq(&a->deriver, &b->deriver)
        || !nixcache_fuzz_str_eq(&a->ca, &b->ca)
        || a->nsigs != b->nsigs
        || a->file_size != b->file_size
        || a->nar_size != b->nar_size)
    {
        return 0;
    }

    for (i = 0; i < a->nsigs; i++) {
        if (!nixcache_fuzz_str_eq(&a->sigs[i], &b->sigs[i])) {
            return 0;
        }
    }

    return 1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                *text, *out, *out2, *fp;
    size_t               len, len2, fp_len;
    const char          *err;
    nixcache_narinfo_t   ni, ni2;

    /* an exact-size copy, so a read past the end is caught */
    text = malloc(size ? size : 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);

    err = NULL;
    if (nixcache_narinfo_parse(&ni, text, size, &err) != 0) {
        if (err == NULL) {
            abort();
        }
        free(text);
        return 0;
    }

    len = nixcache_narinfo_render(NULL, 0, &ni);
    out = malloc(len ? len : 1);
    if (out == NULL) {
        free(text);
        return 0;
    }

    if (nixcache_narinfo_render(out, len, &ni) != len) {
        abort();
    }

    if (nixcache_narinfo_parse(&ni2, out, len, &err) != 0) {
        abort();
    }

    if (!nixcache_fuzz_narinfo_eq(&ni, &ni2)) {
        abort();
    }

    len2 = nixcache_narinfo_render(NULL, 0, &ni2);
    out2 = malloc(len2 ? len2 : 1);
    if (out2 == NULL) {
        abort();
    }

    if (len2 != len || nixcache_narinfo_render(out2, len2, &ni2) != len2
        || memcmp(out, out2, len) != 0)
    {
        abort();
    }

    fp_len = nixcache_narinfo_fingerprint(NULL, 0, &ni);
    if (fp_len != 0) {
        fp = malloc(fp_len);
        if (fp == NULL) {
            abort();
        }
        if (nixcache_narinfo_fingerprint(fp, fp_len, &ni) != fp_len) {
            abort();
        }
        free(fp);
    }

    /* a buffer one byte short must be left alone, not overrun */
    if (len > 0) {
        (void) nixcache_narinfo_render(out2, len - 1, &ni);
    }

    free(out2);
    free(out);
    free(text);

    return 0;
}
