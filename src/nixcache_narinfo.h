/*
 * narinfo parsing and rendering.  The parser allocates nothing: fields
 * point into the caller's text, which must outlive the struct.
 */

#ifndef NIXCACHE_NARINFO_H
#define NIXCACHE_NARINFO_H

#include <stddef.h>
#include <stdint.h>

#include "nixcache_format.h"


#define NIXCACHE_NARINFO_MAX_SIGS   16
#define NIXCACHE_NARINFO_MAX_LEN    (64 * 1024)


typedef struct {
    const char                *data;
    size_t                     len;
} nixcache_str_t;


typedef struct {
    nixcache_str_t             store_path;     /* required */
    nixcache_str_t             url;            /* required */
    nixcache_str_t             compression;    /* "bzip2" when absent */
    nixcache_str_t             file_hash;      /* optional */
    nixcache_str_t             nar_hash;       /* required */
    nixcache_str_t             references;     /* space separated basenames */
    nixcache_str_t             deriver;        /* optional */
    nixcache_str_t             ca;             /* optional */
    nixcache_str_t             sigs[NIXCACHE_NARINFO_MAX_SIGS];
    size_t                     nsigs;
    uint64_t                   file_size;      /* 0 when absent */
    uint64_t                   nar_size;       /* required */
} nixcache_narinfo_t;


/*
 * Parses "Key: value\n" lines.  Unknown keys are ignored, as Nix does.
 * Returns 0, or -1 with *err set to a static message naming the problem
 * (missing StorePath/URL/NarHash/NarSize, bad number, a line without ": ",
 * too many Sig lines, text over NIXCACHE_NARINFO_MAX_LEN).
 */
int nixcache_narinfo_parse(nixcache_narinfo_t *ni, const char *text,
    size_t len, const char **err);

/*
 * Renders in Nix's field order: StorePath, URL, Compression, FileHash,
 * FileSize, NarHash, NarSize, References, Deriver, Sig..., CA; optional
 * fields only when present (References always).  Returns the length of the
 * full text; writes it only when it fits in cap (call with cap 0 to size).
 */
size_t nixcache_narinfo_render(char *dst, size_t cap,
    const nixcache_narinfo_t *ni);

/*
 * The signature fingerprint "1;<StorePath>;<NarHash>;<NarSize>;<refs as
 * full store paths, comma separated>" (NarHash must be sha256:<nix32>).
 * Returns its length; writes it only when it fits in cap.
 */
size_t nixcache_narinfo_fingerprint(char *dst, size_t cap,
    const nixcache_narinfo_t *ni);


#endif /* NIXCACHE_NARINFO_H */
