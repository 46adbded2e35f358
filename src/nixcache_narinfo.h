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
    nixcache_str_t             compression;    /* empty when absent: bzip2 */
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
 * a last line without '\n', too many Sig lines, text over
 * NIXCACHE_NARINFO_MAX_LEN).
 *
 * Like Nix: NarSize 0 counts as missing; an absent Compression means
 * bzip2 (left empty here); a repeated Sig counts once; of another
 * repeated key the last line wins.  Also checked: StorePath and the
 * References are store paths (32 nix32 chars, '-', a name), NarHash and
 * FileHash are sha256 in nix32 or hex, numbers are plain decimal without
 * overflow.
 */
int nixcache_narinfo_parse(nixcache_narinfo_t *ni, const char *text,
    size_t len, const char **err);

/*
 * Renders in Nix's field order: StorePath, URL, Compression, FileHash,
 * FileSize, NarHash, NarSize, References, Deriver, Sig..., CA; optional
 * fields only when present (References always; FileSize when FileHash is
 * there or the size is not 0), Sig lines in parse order.  Returns the
 * length of the full text; writes it only when it fits in cap (call with
 * cap 0 to size).
 */
size_t nixcache_narinfo_render(char *dst, size_t cap,
    const nixcache_narinfo_t *ni);

/*
 * The signature fingerprint "1;<StorePath>;<NarHash>;<NarSize>;<refs as
 * full store paths, comma separated>": NarHash written as sha256:<nix32>
 * (a hex NarHash is converted), the references sorted and prefixed with
 * StorePath's directory, as Nix does.  Returns its length, or 0 when
 * NarHash is not a sha256 or StorePath has no '/'; writes it only when it
 * fits in cap.
 */
size_t nixcache_narinfo_fingerprint(char *dst, size_t cap,
    const nixcache_narinfo_t *ni);

/*
 * 1 when StorePath is the path of the store hash hash (its 32 nix32
 * characters): "<dir>/<hash>-<name>"; else 0.  A narinfo stored or sent
 * under one path's key must describe that path.
 */
int nixcache_narinfo_is_path(const nixcache_narinfo_t *ni, const char *hash,
    size_t len);


/*
 * nixcache_narinfo_point()'s how: the stored frames, or the NAR served
 * decompressed; and whether NarHash is written too.
 */
#define NIXCACHE_NARINFO_ZSTD       0x0     /* nar/<NarHash>.nar.zst */
#define NIXCACHE_NARINFO_NONE       0x1     /* nar/<NarHash>.nar */
#define NIXCACHE_NARINFO_NAR_HASH   0x2


/* The strings nixcache_narinfo_point() makes; must outlive the narinfo. */
typedef struct {
    char                       url[sizeof("nar/.nar.zst") - 1
                                   + NIXCACHE_SHA256_NIX32_LEN];
    char                       nar_hash[NIXCACHE_HASH_STR_LEN];
    char                       file_hash[NIXCACHE_HASH_STR_LEN];
} nixcache_narinfo_point_t;

/*
 * Points ni at this cache's stored NAR of NarHash nar_hash (the one
 * definition of the URL a narinfo here carries): URL and Compression,
 * with NIXCACHE_NARINFO_NAR_HASH also NarHash (as sha256:<nix32>; else the
 * narinfo's own text is kept).  For NIXCACHE_NARINFO_ZSTD, FileHash and
 * FileSize are those of the stored frames (file_hash, file_size; with
 * file_hash NULL the narinfo's own are kept); for NIXCACHE_NARINFO_NONE
 * they are the NarHash and NarSize.  NarSize is the caller's.
 */
void nixcache_narinfo_point(nixcache_narinfo_t *ni,
    nixcache_narinfo_point_t *buf, unsigned how,
    const unsigned char *nar_hash, const unsigned char *file_hash,
    uint64_t file_size);


#endif /* NIXCACHE_NARINFO_H */
