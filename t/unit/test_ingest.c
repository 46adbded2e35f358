/*
 * The ingest pipeline and the decoders, on an in-memory chunk sink: the
 * manifest and hashes of a NAR, the manifest written to a file, dedup, a
 * chunk stored by a concurrent writer with another frame, sink failures,
 * and the decoders' verdicts on good, truncated, trailing and oversized
 * input.
 */

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <bzlib.h>
#include <lzma.h>
#include <zstd.h>

#include "unit.h"

#include "nixcache_decompress.h"
#include "nixcache_hash.h"
#include "nixcache_ingest.h"
#include "nixcache_manifest.h"

#include "mem_sink.h"


#define NAR_LEN     (3 * 1024 * 1024 + 12345)


/* a NAR-like input: text-ish runs and noise, reproducible */

static void
fill(unsigned char *p, size_t len, uint64_t seed)
{
    size_t    i;
    uint64_t  x;

    x = seed;

    for (i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (i / 4096) % 3 == 0 ? (unsigned char) ('a' + i % 23)
                                   : (unsigned char) x;
    }
}


/* SHA-256 over the stored frames in manifest order: FileHash */

static void
frames_hash(mem_sink_t *m, const nixcache_nar_t *nar, unsigned char *out)
{
    uint32_t                    i;
    mem_chunk_t                *c;
    nixcache_sha256_t           sha;
    nixcache_manifest_entry_t   e;

    nixcache_sha256_init(&sha);

    for (i = 0; i < nar->chunk_count; i++) {
        nixcache_manifest_entry_decode(&e, nar->manifest
                                          + nixcache_manifest_entry_offset(i));
        c = mem_find(m, e.chunk);
        if (c == NULL || c->len != e.csize) {
            memset(out, 0, NIXCACHE_SHA256_LEN);
            nixcache_sha256_free(&sha);
            return;
        }

        nixcache_sha256_update(&sha, c->frame, c->len);
    }

    nixcache_sha256_final(&sha, out);
    nixcache_sha256_free(&sha);
}


static int
ingest_all(nixcache_ingest_t *ing, const unsigned char *p, size_t len,
    size_t piece, int fd)
{
    size_t  k;

    if (nixcache_ingest_begin(ing, fd) != 0) {
        return -1;
    }

    while (len > 0) {
        k = len < piece ? len : piece;

        if (nixcache_ingest_write(ing, p, k) != 0) {
            return -1;
        }

        p += k;
        len -= k;
    }

    return nixcache_ingest_finish(ing);
}


static int
decomp_buf(nixcache_ingest_t *ing, nixcache_decomp_e kind,
    const unsigned char *p, size_t len, uint64_t limit,
    nixcache_decomp_err_e *err)
{
    int                 rc;
    size_t              k;
    nixcache_decomp_t  *d;

    *err = NIXCACHE_DECOMP_OK;

    if (nixcache_ingest_begin(ing, -1) != 0) {
        return -1;
    }

    d = nixcache_decomp_create(kind, limit, nixcache_ingest_out, ing);

    rc = 0;

    while (len > 0 && rc == 0) {
        k = len < 7777 ? len : 7777;
        rc = nixcache_decomp_feed(d, p, k, 0);
        p += k;
        len -= k;
    }

    if (rc == 0) {
        rc = nixcache_decomp_feed(d, NULL, 0, 1);
    }

    if (rc == 0) {
        rc = nixcache_ingest_finish(ing);

    } else {
        *err = nixcache_decomp_error(d);
    }

    nixcache_decomp_destroy(d);

    return rc;
}


int
main(void)
{
    int                      fd;
    char                     tmpl[] = "/tmp/nixcache-unit-ingest-XXXXXX";
    size_t                   clen, flen;
    ssize_t                  n;
    uint64_t                 new_before, chunks_before;
    unsigned char           *nar, *comp, *mf;
    unsigned char            want[NIXCACHE_SHA256_LEN];
    unsigned char            fh[NIXCACHE_SHA256_LEN];
    unsigned char            file_hash[NIXCACHE_SHA256_LEN];
    unsigned int             blen;
    nixcache_nar_t           first;
    nixcache_decomp_e        kind;
    nixcache_ingest_t        ing;
    mem_sink_t              *m;
    nixcache_chunk_sink_t    sink;
    nixcache_ingest_conf_t   conf;
    nixcache_decomp_err_e    derr;

    m = calloc(1, sizeof(mem_sink_t));
    nar = malloc(NAR_LEN);
    comp = malloc(2 * NAR_LEN);
    fill(nar, NAR_LEN, 42);
    nixcache_sha256(want, nar, NAR_LEN);

    sink.data = m;
    sink.has = mem_has;
    sink.put = mem_put;
    sink.read_stored = mem_read;
    sink.sync = mem_sync;

    conf.chunk_min = NIXCACHE_CHUNK_MIN_DEFAULT;
    conf.chunk_avg = NIXCACHE_CHUNK_AVG_DEFAULT;
    conf.chunk_max = NIXCACHE_CHUNK_MAX_DEFAULT;
    conf.level = 3;
    conf.sink = &sink;

    /* parameters */

    conf.chunk_avg = 1000;
    ok(nixcache_ingest_init(&ing, &conf) == -1
       && ing.error == NIXCACHE_INGEST_ERR_PARAMS
       && strstr(ing.errmsg, "invalid chunking parameters") != NULL,
       "avg not a power of two refused: %s", ing.errmsg);
    nixcache_ingest_free(&ing);
    conf.chunk_avg = NIXCACHE_CHUNK_AVG_DEFAULT;

    conf.level = 99;
    ok(nixcache_ingest_init(&ing, &conf) == -1
       && ing.error == NIXCACHE_INGEST_ERR_PARAMS,
       "zstd level 99 refused: %s", ing.errmsg);
    nixcache_ingest_free(&ing);
    conf.level = 3;

    ok(nixcache_ingest_init(&ing, &conf) == 0, "init");

    /* one NAR, in odd-sized pieces */

    ok(ingest_all(&ing, nar, NAR_LEN, 1000, -1) == 0, "ingest: %s",
       ing.errmsg);
    is_u64(ing.nar.nar_size, NAR_LEN, "NarSize");
    is_mem(ing.nar.nar_hash, want, NIXCACHE_SHA256_LEN, "NarHash");
    ok(nixcache_manifest_check(ing.nar.manifest, ing.nar.manifest_len) == 0,
       "manifest valid");
    is_u64(ing.nar.manifest_len,
           nixcache_manifest_entry_offset(ing.nar.chunk_count),
           "manifest length");
    ok(ing.nar.chunk_count > 20, "%u chunks", ing.nar.chunk_count);
    is_u64(m->n, ing.stats.new_chunks, "every new chunk counted");
    frames_hash(m, &ing.nar, fh);
    is_mem(ing.nar.file_hash, fh, NIXCACHE_SHA256_LEN,
           "FileHash is over the stored frames");
    ok(nixcache_ingest_sync(&ing) == 0 && m->syncs == 1, "sync reaches the "
       "sink");

    first = ing.nar;
    first.manifest = malloc(ing.nar.manifest_len);
    memcpy(first.manifest, ing.nar.manifest, ing.nar.manifest_len);

    /* the same NAR again, in one piece: nothing new, same result */

    new_before = ing.stats.new_chunks;
    chunks_before = ing.stats.chunks;
    ok(ingest_all(&ing, nar, NAR_LEN, NAR_LEN, -1) == 0, "again");
    is_u64(ing.stats.new_chunks, new_before, "again: no new chunk");
    is_u64(ing.stats.chunks - chunks_before, first.chunk_count,
           "again: as many chunks");
    ok(ing.nar.manifest_len == first.manifest_len
       && memcmp(ing.nar.manifest, first.manifest, first.manifest_len) == 0,
       "again: the same manifest whatever the piece sizes");

    /* the manifest to a file */

    fd = mkstemp(tmpl);
    ok(fd != -1, "temporary file");
    unlink(tmpl);
    ok(ingest_all(&ing, nar, NAR_LEN, 65536, fd) == 0, "manifest to a file");
    is_u64(ing.nar.manifest_len, first.manifest_len, "file: length");
    mf = malloc(first.manifest_len + 1);
    n = pread(fd, mf, first.manifest_len + 1, 0);
    is_u64(n, first.manifest_len, "file: size");
    is_mem(mf, first.manifest, first.manifest_len, "file: same bytes");
    free(mf);
    close(fd);

    /* the manifest back in memory after a file */

    ok(ingest_all(&ing, nar, NAR_LEN, 4096, -1) == 0
       && memcmp(ing.nar.manifest, first.manifest, first.manifest_len) == 0,
       "memory again after a file");

    nixcache_ingest_free(&ing);

    /* a concurrent writer stored other frames of the same chunks */

    mem_clear(m);
    m->racy = 1;
    ok(nixcache_ingest_init(&ing, &conf) == 0
       && ingest_all(&ing, nar, NAR_LEN, 100000, -1) == 0,
       "racy sink: ingest");
    is_u64(ing.stats.new_chunks, 0, "racy sink: no chunk counted as ours");
    frames_hash(m, &ing.nar, fh);
    is_mem(ing.nar.file_hash, fh, NIXCACHE_SHA256_LEN,
           "racy sink: FileHash over the frames stored by the other writer");
    ok(ing.nar.file_size != first.file_size, "racy sink: their sizes");
    ok(nixcache_manifest_check(ing.nar.manifest, ing.nar.manifest_len) == 0,
       "racy sink: manifest valid");
    nixcache_ingest_free(&ing);
    m->racy = 0;

    /* a failing sink */

    mem_clear(m);
    m->fail_put = ENOSPC;
    ok(nixcache_ingest_init(&ing, &conf) == 0, "init");
    ok(ingest_all(&ing, nar, NAR_LEN, 65536, -1) == -1
       && ing.error == NIXCACHE_INGEST_ERR_SINK
       && ing.sys_errno == ENOSPC
       && strstr(ing.errmsg, "cannot write chunk bafkrei") != NULL
       && strstr(ing.errmsg, "No space left on device") != NULL,
       "sink failure: %s", ing.errmsg);
    m->fail_put = 0;

    /* a stored frame that is not what its name says */

    mem_clear(m);
    ok(ingest_all(&ing, nar, NAR_LEN, 65536, -1) == 0, "ingest");
    m->chunks[3].frame[0] ^= 0xff;
    ok(ingest_all(&ing, nar, NAR_LEN, 65536, -1) == -1
       && ing.error == NIXCACHE_INGEST_ERR_STORED,
       "corrupt stored frame: %s", ing.errmsg);

    /* decoders */

    mem_clear(m);

    ok(nixcache_decomp_kind_ext("", 0, &kind) == 0
       && kind == NIXCACHE_DECOMP_NONE
       && nixcache_decomp_kind_ext(".xz", 3, &kind) == 0
       && kind == NIXCACHE_DECOMP_XZ
       && nixcache_decomp_kind_ext(".zst", 4, &kind) == 0
       && kind == NIXCACHE_DECOMP_ZSTD
       && nixcache_decomp_kind_ext(".bz2", 4, &kind) == 0
       && kind == NIXCACHE_DECOMP_BZIP2
       && nixcache_decomp_kind_ext(".br", 3, &kind) == -1
       && nixcache_decomp_kind_ext(".gz", 3, &kind) == -1,
       "extensions");

    ok(decomp_buf(&ing, NIXCACHE_DECOMP_NONE, nar, NAR_LEN, NAR_LEN, &derr)
       == 0 && memcmp(ing.nar.nar_hash, want, NIXCACHE_SHA256_LEN) == 0,
       "none");
    ok(decomp_buf(&ing, NIXCACHE_DECOMP_NONE, nar, NAR_LEN, NAR_LEN - 1,
                  &derr)
       == -1 && derr == NIXCACHE_DECOMP_ERR_INPUT, "none: over the limit");

    clen = ZSTD_compress(comp, 2 * NAR_LEN, nar, NAR_LEN, 3);
    ok(decomp_buf(&ing, NIXCACHE_DECOMP_ZSTD, comp, clen, UINT64_MAX, &derr)
       == 0 && memcmp(ing.nar.nar_hash, want, NIXCACHE_SHA256_LEN) == 0,
       "zstd");
    ok(decomp_buf(&ing, NIXCACHE_DECOMP_ZSTD, comp, clen - 10, UINT64_MAX,
                  &derr)
       == -1 && derr == NIXCACHE_DECOMP_ERR_INPUT, "zstd: truncated");
    ok(decomp_buf(&ing, NIXCACHE_DECOMP_ZSTD, nar, 100000, UINT64_MAX, &derr)
       == -1 && derr == NIXCACHE_DECOMP_ERR_INPUT, "zstd: garbage");

    flen = 0;
    ok(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL, nar, NAR_LEN, comp,
                               &flen, 2 * NAR_LEN)
       == LZMA_OK, "xz encode");
    ok(decomp_buf(&ing, NIXCACHE_DECOMP_XZ, comp, flen, UINT64_MAX, &derr)
       == 0 && memcmp(ing.nar.nar_hash, want, NIXCACHE_SHA256_LEN) == 0,
       "xz");
    ok(decomp_buf(&ing, NIXCACHE_DECOMP_XZ, comp, flen / 2, UINT64_MAX,
                  &derr)
       == -1 && derr == NIXCACHE_DECOMP_ERR_INPUT, "xz: truncated");
    memcpy(comp + flen, "trailing", 8);
    ok(decomp_buf(&ing, NIXCACHE_DECOMP_XZ, comp, flen + 8, UINT64_MAX,
                  &derr)
       == -1 && derr == NIXCACHE_DECOMP_ERR_INPUT, "xz: trailing garbage");
    ok(decomp_buf(&ing, NIXCACHE_DECOMP_XZ, comp, flen, 1000, &derr)
       == -1 && derr == NIXCACHE_DECOMP_ERR_INPUT, "xz: over the limit");

    blen = 2 * NAR_LEN;
    ok(BZ2_bzBuffToBuffCompress((char *) comp, &blen, (char *) nar, NAR_LEN,
                                9, 0, 0)
       == BZ_OK, "bzip2 encode");
    ok(decomp_buf(&ing, NIXCACHE_DECOMP_BZIP2, comp, blen, UINT64_MAX, &derr)
       == 0 && memcmp(ing.nar.nar_hash, want, NIXCACHE_SHA256_LEN) == 0,
       "bzip2");
    ok(decomp_buf(&ing, NIXCACHE_DECOMP_BZIP2, comp, blen - 100, UINT64_MAX,
                  &derr)
       == -1 && derr == NIXCACHE_DECOMP_ERR_INPUT, "bzip2: truncated");

    /* the output failing: the decoder says so, the sink's error stays */

    mem_clear(m);
    m->fail_put = EIO;
    ok(decomp_buf(&ing, NIXCACHE_DECOMP_BZIP2, comp, blen, UINT64_MAX, &derr)
       == -1 && derr == NIXCACHE_DECOMP_ERR_OUTPUT
       && ing.error == NIXCACHE_INGEST_ERR_SINK, "output failure: %s",
       ing.errmsg);
    m->fail_put = 0;

    /* the fd reader hashes the compressed input */

    fd = mkstemp(strcpy(tmpl, "/tmp/nixcache-unit-ingest-XXXXXX"));
    unlink(tmpl);
    ok(write(fd, comp, blen) == (ssize_t) blen, "write");
    lseek(fd, 0, SEEK_SET);
    {
        uint64_t            size;
        nixcache_decomp_t  *d;

        nixcache_ingest_begin(&ing, -1);
        d = nixcache_decomp_create(NIXCACHE_DECOMP_BZIP2, NAR_LEN,
                                   nixcache_ingest_out, &ing);
        ok(nixcache_decomp_fd(d, fd, file_hash, &size) == 0
           && nixcache_ingest_finish(&ing) == 0
           && memcmp(ing.nar.nar_hash, want, NIXCACHE_SHA256_LEN) == 0,
           "fd: decoded");
        nixcache_sha256(fh, comp, blen);
        is_u64(size, blen, "fd: file size");
        is_mem(file_hash, fh, NIXCACHE_SHA256_LEN, "fd: file hash");
        is_u64(nixcache_decomp_total(d), NAR_LEN, "fd: total");
        nixcache_decomp_destroy(d);
    }
    close(fd);

    nixcache_ingest_free(&ing);
    mem_clear(m);
    free(m);
    free(first.manifest);
    free(comp);
    free(nar);

    return done_testing();
}
