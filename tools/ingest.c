/*
 * The pipeline shared by push and import: the bytes of one NAR in, in
 * pieces of any size; content-defined chunks out, each one zstd frame in
 * the chunk directory, plus the manifest and the NAR's hashes; then
 * publication (manifest, narinfo) in Redis.
 *
 * Memory is bounded by the chunking parameters: an input window of
 * 4 x chunk max and one compressed frame, whatever the NAR size.  Only
 * the manifest grows with the NAR (40 bytes per chunk).
 *
 * FileHash is the SHA-256 of the frames as they are stored.  A chunk that
 * is already in the directory may have been compressed at another level
 * (or by another zstd version), so its frame is read back from disk and
 * hashed, never recompressed: the FileHash and FileSize written to the
 * narinfo are always those of the bytes the cache will serve.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nixcache_chunkstore.h"
#include "nixcache_cid.h"
#include "nixcache_manifest.h"
#include "nixcache_nix32.h"


#define NIXCACHE_INGEST_WINDOW      4


static int nixcache_ingest_chunk(nixcache_ingest_t *ing,
    const unsigned char *p, size_t n);
static ssize_t nixcache_ingest_read_stored(nixcache_ingest_t *ing,
    const char *path, size_t usize);
static int nixcache_ingest_load_key(nixcache_ingest_t *ing,
    const char *path);
static int nixcache_publish_sign(nixcache_ingest_t *ing,
    nixcache_narinfo_t *ni, char *sig, size_t cap);


int
nixcache_ingest_init(nixcache_ingest_t *ing, const nixcache_opts_t *o,
    nixcache_stats_t *st)
{
    size_t  len;

    memset(ing, 0, sizeof(nixcache_ingest_t));

    if (nixcache_chunker_init(&ing->chunker, o->chunk_min, o->chunk_avg,
                              o->chunk_max)
        != 0)
    {
        nixcache_error("invalid chunking parameters min %zu avg %zu max %zu "
                       "(64 <= min < avg < max <= %d, avg a power of two)",
                       o->chunk_min, o->chunk_avg, o->chunk_max,
                       NIXCACHE_CHUNK_MAX_LIMIT);
        return -1;
    }

    ing->stats = st;
    ing->size = NIXCACHE_INGEST_WINDOW * o->chunk_max;
    ing->frame_cap = ZSTD_compressBound(o->chunk_max);

    len = strlen(o->chunks);

    ing->dir = o->chunks;
    ing->path = malloc(len + NIXCACHE_CHUNK_RELPATH_LEN + 1);
    ing->buf = malloc(ing->size);

    /* one byte more than any valid frame, to see an oversized file */
    ing->frame = malloc(ing->frame_cap + 1);

    ing->cctx = ZSTD_createCCtx();

    if (ing->path == NULL || ing->buf == NULL || ing->frame == NULL
        || ing->cctx == NULL)
    {
        nixcache_error("out of memory");
        return -1;
    }

    memcpy(ing->path, o->chunks, len);
    ing->path_dir_len = len;

    if (ZSTD_isError(ZSTD_CCtx_setParameter(ing->cctx,
                                            ZSTD_c_compressionLevel,
                                            o->level))
        || ZSTD_isError(ZSTD_CCtx_setParameter(ing->cctx,
                                               ZSTD_c_contentSizeFlag, 1))
        || ZSTD_isError(ZSTD_CCtx_setParameter(ing->cctx,
                                               ZSTD_c_checksumFlag, 1)))
    {
        nixcache_error("zstd: cannot set compression parameters");
        return -1;
    }

    if (o->sign_key != NULL) {
        return nixcache_ingest_load_key(ing, o->sign_key);
    }

    return 0;
}


static int
nixcache_ingest_load_key(nixcache_ingest_t *ing, const char *path)
{
    int          fd;
    char         text[NIXCACHE_SIGN_TEXT_MAX + 3];
    ssize_t      n;
    const char  *err;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        nixcache_error("signing key %s: %s", path, strerror(errno));
        return -1;
    }

    n = read(fd, text, sizeof(text));
    close(fd);

    if (n == -1) {
        nixcache_error("signing key %s: %s", path, strerror(errno));
        return -1;
    }

    if ((size_t) n == sizeof(text)) {
        nixcache_error("signing key %s: too long for a secret key", path);
        return -1;
    }

    ing->sign_key = malloc(sizeof(nixcache_sign_secret_t));
    if (ing->sign_key == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    if (nixcache_sign_init() != 0
        || nixcache_sign_secret_parse(ing->sign_key, text, n, &err) != 0)
    {
        nixcache_error("signing key %s: %s", path,
                       (n == 0) ? "empty file" : err);
        explicit_bzero(text, sizeof(text));
        return -1;
    }

    explicit_bzero(text, sizeof(text));

    return 0;
}


void
nixcache_ingest_free(nixcache_ingest_t *ing)
{
    if (ing->started) {
        nixcache_sha256_free(&ing->nar_ctx);
        nixcache_sha256_free(&ing->file_ctx);
        ing->started = 0;
    }

    if (ing->sign_key != NULL) {
        nixcache_sign_secret_wipe(ing->sign_key);
        free(ing->sign_key);
        ing->sign_key = NULL;
    }

    ZSTD_freeCCtx(ing->cctx);
    free(ing->nar.manifest);
    free(ing->frame);
    free(ing->buf);
    free(ing->path);

    ing->cctx = NULL;
    ing->nar.manifest = NULL;
    ing->frame = NULL;
    ing->buf = NULL;
    ing->path = NULL;
}


/* Starts a new NAR; the buffers of the previous one are reused. */

int
nixcache_ingest_begin(nixcache_ingest_t *ing)
{
    unsigned char  *m;

    if (ing->started) {
        nixcache_sha256_free(&ing->nar_ctx);
        nixcache_sha256_free(&ing->file_ctx);
        ing->started = 0;
    }

    if (nixcache_sha256_init(&ing->nar_ctx) != 0) {
        nixcache_error("SHA-256: cannot initialise");
        return -1;
    }

    if (nixcache_sha256_init(&ing->file_ctx) != 0) {
        nixcache_sha256_free(&ing->nar_ctx);
        nixcache_error("SHA-256: cannot initialise");
        return -1;
    }

    ing->started = 1;
    ing->start = 0;
    ing->end = 0;

    if (ing->nar.manifest == NULL) {
        ing->manifest_cap = NIXCACHE_MANIFEST_HEADER_LEN
                            + 64 * NIXCACHE_MANIFEST_ENTRY_LEN;
        m = malloc(ing->manifest_cap);
        if (m == NULL) {
            nixcache_error("out of memory");
            return -1;
        }

        ing->nar.manifest = m;
    }

    m = ing->nar.manifest;

    memset(&ing->nar, 0, sizeof(nixcache_nar_t));

    ing->nar.manifest = m;
    ing->nar.manifest_len = NIXCACHE_MANIFEST_HEADER_LEN;

    return 0;
}


/*
 * Takes n more bytes of the NAR.  Whole chunks leave the window as soon as
 * a full chunk max is buffered, since by then a cut is always decided.
 */

int
nixcache_ingest_write(nixcache_ingest_t *ing, const void *data, size_t n)
{
    size_t                k, cut, max;
    const unsigned char  *p;

    p = data;
    max = ing->chunker.max;

    nixcache_sha256_update(&ing->nar_ctx, p, n);
    ing->nar.nar_size += n;
    ing->stats->nar_bytes += n;

    while (n > 0) {
        k = ing->size - ing->end;
        if (k > n) {
            k = n;
        }

        memcpy(ing->buf + ing->end, p, k);
        ing->end += k;
        p += k;
        n -= k;

        while (ing->end - ing->start >= max) {
            cut = nixcache_chunker_cut(&ing->chunker, ing->buf + ing->start,
                                       ing->end - ing->start, 0);
            if (cut == 0 || cut > max) {
                nixcache_error("chunker: no cut within chunk max");
                return -1;
            }

            if (nixcache_ingest_chunk(ing, ing->buf + ing->start, cut) != 0) {
                return -1;
            }

            ing->start += cut;
        }

        if (ing->start > 0) {
            memmove(ing->buf, ing->buf + ing->start, ing->end - ing->start);
            ing->end -= ing->start;
            ing->start = 0;
        }
    }

    return 0;
}


/* End of the NAR: the last chunks, the hashes, the manifest header. */

int
nixcache_ingest_finish(nixcache_ingest_t *ing)
{
    size_t                      cut;
    nixcache_manifest_header_t  h;

    while (ing->end > ing->start) {
        cut = nixcache_chunker_cut(&ing->chunker, ing->buf + ing->start,
                                   ing->end - ing->start, 1);
        if (cut == 0) {
            nixcache_error("chunker: no cut at end of input");
            return -1;
        }

        if (nixcache_ingest_chunk(ing, ing->buf + ing->start, cut) != 0) {
            return -1;
        }

        ing->start += cut;
    }

    ing->start = 0;
    ing->end = 0;

    nixcache_sha256_final(&ing->nar_ctx, ing->nar.nar_hash);
    nixcache_sha256_final(&ing->file_ctx, ing->nar.file_hash);
    nixcache_sha256_free(&ing->nar_ctx);
    nixcache_sha256_free(&ing->file_ctx);
    ing->started = 0;

    memset(&h, 0, sizeof(nixcache_manifest_header_t));

    h.chunk_count = ing->nar.chunk_count;
    h.flags = 0;
    h.nar_size = ing->nar.nar_size;
    h.file_size = ing->nar.file_size;
    memcpy(h.nar_hash, ing->nar.nar_hash, NIXCACHE_SHA256_LEN);
    memcpy(h.file_hash, ing->nar.file_hash, NIXCACHE_SHA256_LEN);

    nixcache_manifest_header_encode(ing->nar.manifest, &h);

    return 0;
}


static int
nixcache_ingest_chunk(nixcache_ingest_t *ing, const unsigned char *p,
    size_t n)
{
    size_t                      csize, cap;
    ssize_t                     stored;
    unsigned char              *m;
    unsigned char               digest[NIXCACHE_SHA256_LEN];
    nixcache_manifest_entry_t   e;

    if (ing->nar.chunk_count == UINT32_MAX) {
        nixcache_error("too many chunks in one NAR");
        return -1;
    }

    nixcache_sha256(digest, p, n);

    nixcache_chunk_relpath(ing->path + ing->path_dir_len, digest);
    ing->path[ing->path_dir_len + NIXCACHE_CHUNK_RELPATH_LEN] = '\0';

    stored = nixcache_ingest_read_stored(ing, ing->path, n);

    if (stored == -1) {
        return -1;
    }

    if (stored > 0) {
        csize = (size_t) stored;

    } else {
        csize = ZSTD_compress2(ing->cctx, ing->frame, ing->frame_cap, p, n);

        if (ZSTD_isError(csize)) {
            nixcache_error("zstd: %s", ZSTD_getErrorName(csize));
            return -1;
        }

        if (ZSTD_getFrameContentSize(ing->frame, csize) != n) {
            nixcache_error("zstd: frame without content size");
            return -1;
        }

        if (nixcache_chunkstore_put(ing->dir, digest, ing->frame, csize)
            != 0)
        {
            nixcache_error("cannot write chunk %s: %s", ing->path,
                           strerror(errno));
            return -1;
        }

        ing->stats->new_chunks++;
        ing->stats->new_usize += n;
        ing->stats->new_csize += csize;
    }

    nixcache_sha256_update(&ing->file_ctx, ing->frame, csize);

    if (ing->nar.manifest_len + NIXCACHE_MANIFEST_ENTRY_LEN
        > ing->manifest_cap)
    {
        cap = ing->manifest_cap * 2;
        m = realloc(ing->nar.manifest, cap);
        if (m == NULL) {
            nixcache_error("out of memory");
            return -1;
        }

        ing->nar.manifest = m;
        ing->manifest_cap = cap;
    }

    memcpy(e.chunk, digest, NIXCACHE_SHA256_LEN);
    e.usize = (uint32_t) n;
    e.csize = (uint32_t) csize;

    nixcache_manifest_entry_encode(ing->nar.manifest + ing->nar.manifest_len,
                                   &e);

    ing->nar.manifest_len += NIXCACHE_MANIFEST_ENTRY_LEN;
    ing->nar.chunk_count++;
    ing->nar.file_size += csize;
    ing->stats->chunks++;

    nixcache_progress(ing->stats, 0);

    return 0;
}


/*
 * Reads a stored chunk's frame into ing->frame.  Returns its size, 0 when
 * the chunk is not stored, -1 on an error (a file that is not one zstd
 * frame of usize bytes is one: it would make the served NAR wrong).
 */

static ssize_t
nixcache_ingest_read_stored(nixcache_ingest_t *ing, const char *path,
    size_t usize)
{
    int      fd;
    size_t   len;
    ssize_t  n;

    fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1) {
        if (errno == ENOENT) {
            return 0;
        }

        nixcache_error("cannot open chunk %s: %s", path, strerror(errno));
        return -1;
    }

    len = 0;

    for ( ;; ) {
        n = read(fd, ing->frame + len, ing->frame_cap + 1 - len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            nixcache_error("cannot read chunk %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }

        if (n == 0 || len + n == ing->frame_cap + 1) {
            len += n;
            break;
        }

        len += n;
    }

    close(fd);

    if (len > ing->frame_cap
        || ZSTD_getFrameContentSize(ing->frame, len) != usize
        || ZSTD_findFrameCompressedSize(ing->frame, len) != len)
    {
        nixcache_error("stored chunk %s is not one zstd frame of %zu bytes; "
                       "remove it and retry", path, usize);
        return -1;
    }

    return (ssize_t) len;
}


/*
 * Makes the NAR visible: chunks durable, then the manifest, then the
 * narinfo.  The caller fills StorePath, References, Deriver, Sig and CA
 * of ni; the rest is the NAR's as stored here.
 *
 * A manifest already in place for the same NarHash (another store path
 * with the same contents, or a run stopped between the two writes) is
 * kept unless replace is set, and the narinfo then gets its FileHash and
 * FileSize: every narinfo must describe the frames the cache serves.
 */

int
nixcache_publish(nixcache_ingest_t *ing, nixcache_redis_t *r,
    nixcache_narinfo_t *ni, const char *store_hash, int replace)
{
    int                          rc;
    char                        *text;
    char                         nar_hash[NIXCACHE_HASH_STR_LEN];
    char                         file_hash[NIXCACHE_HASH_STR_LEN];
    char                         url[sizeof("nar/.nar.zst")
                                     + NIXCACHE_SHA256_NIX32_LEN];
    char                         sig[NIXCACHE_SIGN_TEXT_MAX + 1];
    size_t                       len, n;
    uint64_t                     file_size;
    unsigned char                header[NIXCACHE_MANIFEST_HEADER_LEN];
    nixcache_manifest_header_t   h;

    if (nixcache_chunkstore_sync(ing->dir) != 0) {
        nixcache_error("cannot sync chunk directory %s: %s", ing->dir,
                       strerror(errno));
        return -1;
    }

    nixcache_hash_format(nar_hash, ing->nar.nar_hash);
    nixcache_hash_format(file_hash, ing->nar.file_hash);
    file_size = ing->nar.file_size;

    n = sizeof("sha256:") - 1;

    rc = nixcache_redis_put_manifest(r, nar_hash + n, ing->nar.manifest,
                                     ing->nar.manifest_len, replace,
                                     header);
    if (rc == -1) {
        return -1;
    }

    if (rc == 1) {
        if (nixcache_manifest_header_decode(&h, header,
                                            NIXCACHE_MANIFEST_HEADER_LEN)
            != 0
            || h.nar_size != ing->nar.nar_size
            || memcmp(h.nar_hash, ing->nar.nar_hash, NIXCACHE_SHA256_LEN)
               != 0)
        {
            nixcache_error("the manifest in place for NarHash %.*s is not "
                           "valid; --force replaces it",
                           (int) NIXCACHE_HASH_STR_LEN, nar_hash);
            return -1;
        }

        nixcache_hash_format(file_hash, h.file_hash);
        file_size = h.file_size;
    }

    memcpy(url, "nar/", 4);
    memcpy(url + 4, nar_hash + n, NIXCACHE_SHA256_NIX32_LEN);
    memcpy(url + 4 + NIXCACHE_SHA256_NIX32_LEN, ".nar.zst",
           sizeof(".nar.zst") - 1);

    ni->url.data = url;
    ni->url.len = 4 + NIXCACHE_SHA256_NIX32_LEN + sizeof(".nar.zst") - 1;
    ni->compression.data = "zstd";
    ni->compression.len = 4;
    ni->file_hash.data = file_hash;
    ni->file_hash.len = NIXCACHE_HASH_STR_LEN;
    ni->file_size = file_size;
    ni->nar_hash.data = nar_hash;
    ni->nar_hash.len = NIXCACHE_HASH_STR_LEN;
    ni->nar_size = ing->nar.nar_size;

    if (ing->sign_key != NULL
        && nixcache_publish_sign(ing, ni, sig, sizeof(sig)) != 0)
    {
        return -1;
    }

    len = nixcache_narinfo_render(NULL, 0, ni);

    text = malloc(len + 1);
    if (text == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    if (nixcache_narinfo_render(text, len + 1, ni) != len) {
        nixcache_error("narinfo: cannot render");
        free(text);
        return -1;
    }

    rc = nixcache_redis_put_narinfo(r, store_hash, text, len);

    free(text);

    return rc;
}


/*
 * Adds our signature to ni (sig holds its text).  A signature by a key of
 * the same name is replaced: the fingerprint covers StorePath, NarHash,
 * NarSize and References only, so ours is the one that verifies.
 */

static int
nixcache_publish_sign(nixcache_ingest_t *ing, nixcache_narinfo_t *ni,
    char *sig, size_t cap)
{
    char    *fp;
    size_t   i, fp_len, sig_len, name_len;

    fp_len = nixcache_narinfo_fingerprint(NULL, 0, ni);
    if (fp_len == 0) {
        nixcache_error("narinfo: cannot make the signature fingerprint");
        return -1;
    }

    fp = malloc(fp_len + 1);
    if (fp == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    nixcache_narinfo_fingerprint(fp, fp_len + 1, ni);

    sig_len = nixcache_sign_fingerprint(sig, cap, ing->sign_key, fp, fp_len);

    free(fp);

    if (sig_len == 0 || sig_len >= cap) {
        nixcache_error("cannot sign the narinfo");
        return -1;
    }

    name_len = ing->sign_key->name_len;

    for (i = 0; i < ni->nsigs; i++) {
        if (ni->sigs[i].len > name_len
            && memcmp(ni->sigs[i].data, ing->sign_key->name, name_len) == 0
            && ni->sigs[i].data[name_len] == ':')
        {
            break;
        }
    }

    if (i == NIXCACHE_NARINFO_MAX_SIGS) {
        nixcache_error("narinfo: already %d signatures",
                       NIXCACHE_NARINFO_MAX_SIGS);
        return -1;
    }

    ni->sigs[i].data = sig;
    ni->sigs[i].len = sig_len;

    if (i == ni->nsigs) {
        ni->nsigs++;
    }

    return 0;
}
