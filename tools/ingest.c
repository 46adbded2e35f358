/*
 * The CLI's side of the ingest pipeline (src/nixcache_ingest.h): the disk
 * tier as the chunk sink, the core's errors printed, its counters fed to
 * the progress line; then publication (manifest, narinfo) in Redis, which
 * stays here: the module publishes through its own asynchronous Redis.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli.h"
#include "nixcache_chunkstore.h"
#include "nixcache_cid.h"
#include "nixcache_gc.h"
#include "nixcache_manifest.h"
#include "nixcache_nix32.h"


static void nixcache_cli_ingest_progress(void *data);
static void nixcache_cli_ingest_error(nixcache_cli_ingest_t *ing);
static int nixcache_publish_recheck(nixcache_cli_ingest_t *ing,
    nixcache_redis_t *r);


int
nixcache_cli_ingest_init(nixcache_cli_ingest_t *ing, const nixcache_opts_t *o,
    nixcache_stats_t *st)
{
    char                    err[NIXCACHE_S3_ERROR_MAX];
    nixcache_ingest_conf_t  conf;

    memset(ing, 0, sizeof(nixcache_cli_ingest_t));

    ing->dir = o->chunks;
    ing->stats = st;

    if (o->s3.endpoint == NULL) {
        nixcache_chunkstore_sink(&ing->sink, o->chunks);
    }

    conf.chunk_min = o->chunk_min;
    conf.chunk_avg = o->chunk_avg;
    conf.chunk_max = o->chunk_max;
    conf.level = o->level;
    conf.sink = &ing->sink;

    if (nixcache_ingest_init(&ing->core, &conf) != 0) {
        nixcache_error("%s", ing->core.errmsg);
        return -1;
    }

    ing->core.progress = nixcache_cli_ingest_progress;
    ing->core.progress_data = ing;

    if (nixcache_ingest_threads(&ing->core, o->jobs ? o->jobs : 1) != 0) {
        nixcache_error("%s", ing->core.errmsg);
        return -1;
    }

    if (o->s3.endpoint != NULL) {
        /* the pipeline keeps &ing->sink; it is filled in before first use */
        ing->s3 = nixcache_s3_open(&o->s3, err, sizeof(err));
        if (ing->s3 == NULL) {
            nixcache_error("%s", err);
            return -1;
        }

        if (o->chunks != NULL) {
            nixcache_chunkstore_sink(&ing->disk, o->chunks);
        }

        ing->s3sink = nixcache_s3sink_create(&ing->sink, ing->s3,
                                             o->chunks ? &ing->disk : NULL,
                                             ing->core.frame_cap + 1,
                                             err, sizeof(err));
        if (ing->s3sink == NULL) {
            nixcache_error("%s", err);
            return -1;
        }
    }

    if (o->sign_key != NULL) {
        return nixcache_cli_ingest_load_key(ing, o->sign_key);
    }

    return 0;
}


/* The S3 part of the summary: what the bucket got, at the end of a run. */

void
nixcache_cli_ingest_summary(nixcache_cli_ingest_t *ing)
{
    if (ing->s3sink == NULL || nixcache_s3_requests(ing->s3) == 0) {
        return;
    }

    nixcache_info(ing->stats, "s3: %llu uploaded (%llu bytes), %llu already "
                  "in %s, %llu requests, %llu retried",
                  (unsigned long long) nixcache_s3sink_uploaded(ing->s3sink),
                  (unsigned long long)
                      nixcache_s3sink_uploaded_bytes(ing->s3sink),
                  (unsigned long long) nixcache_s3sink_present(ing->s3sink),
                  nixcache_s3_describe(ing->s3),
                  (unsigned long long) nixcache_s3_requests(ing->s3),
                  (unsigned long long) nixcache_s3_retries(ing->s3));
}


static void
nixcache_cli_ingest_progress(void *data)
{
    nixcache_cli_ingest_t  *ing = data;

    ing->stats->nar_bytes = ing->core.stats.nar_bytes;
    ing->stats->chunks = ing->core.stats.chunks;
    ing->stats->new_chunks = ing->core.stats.new_chunks;
    ing->stats->new_usize = ing->core.stats.new_usize;
    ing->stats->new_csize = ing->core.stats.new_csize;

    nixcache_progress(ing->stats, 0);
}


int
nixcache_cli_ingest_load_key(nixcache_cli_ingest_t *ing, const char *path)
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
nixcache_cli_ingest_free(nixcache_cli_ingest_t *ing)
{
    if (ing->s3sink != NULL) {
        nixcache_s3sink_destroy(ing->s3sink);
        ing->s3sink = NULL;
    }

    if (ing->s3 != NULL) {
        nixcache_s3_close(ing->s3);
        ing->s3 = NULL;
    }

    nixcache_ingest_free(&ing->core);

    if (ing->sign_key != NULL) {
        nixcache_sign_secret_wipe(ing->sign_key);
        free(ing->sign_key);
        ing->sign_key = NULL;
    }
}


/* The pipeline's message, and the S3 failure behind it if there is one. */

static void
nixcache_cli_ingest_error(nixcache_cli_ingest_t *ing)
{
    if (ing->s3sink != NULL
        && nixcache_s3sink_strerror(ing->s3sink)[0] != '\0')
    {
        nixcache_error("%s", nixcache_s3sink_strerror(ing->s3sink));
    }

    nixcache_error("%s", ing->core.errmsg);
}


int
nixcache_cli_ingest_begin(nixcache_cli_ingest_t *ing)
{
    if (nixcache_ingest_begin(&ing->core, -1) != 0) {
        nixcache_error("%s", ing->core.errmsg);
        return -1;
    }

    return 0;
}


int
nixcache_cli_ingest_write(nixcache_cli_ingest_t *ing, const void *p,
    size_t n)
{
    if (nixcache_ingest_write(&ing->core, p, n) != 0) {
        nixcache_cli_ingest_error(ing);
        return -1;
    }

    return 0;
}


int
nixcache_cli_ingest_finish(nixcache_cli_ingest_t *ing)
{
    if (nixcache_ingest_finish(&ing->core) != 0) {
        nixcache_cli_ingest_error(ing);
        return -1;
    }

    return 0;
}


/*
 * A NAR compressed with kind, fed by pump (a file, an HTTP body: cli.h)
 * to its end, into the pipeline; file_hash and *file_size get the
 * compressed input's.  A NAR longer than limit (NarSize) is refused.
 * Errors are printed prefixed with name.
 */

int
nixcache_cli_decompress(nixcache_cli_ingest_t *ing, nixcache_decomp_e kind,
    const char *name, uint64_t limit, nixcache_cli_pump_pt pump, void *data,
    unsigned char *file_hash, uint64_t *file_size)
{
    int                 rc;
    nixcache_decomp_t  *d;

    d = nixcache_decomp_create(kind, limit, nixcache_ingest_out, &ing->core);
    if (d == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    rc = pump(data, name, d, file_hash, file_size);

    if (rc != 0) {
        if (nixcache_decomp_error(d) == NIXCACHE_DECOMP_ERR_OUTPUT) {
            nixcache_cli_ingest_error(ing);

        } else if (nixcache_decomp_error(d) != NIXCACHE_DECOMP_OK) {
            nixcache_error("%s: %s", name, nixcache_decomp_strerror(d));
        }
    }

    nixcache_decomp_destroy(d);

    return rc;
}


/*
 * A gc ran since the generation was read (docs/FORMAT.md, "Garbage
 * collection"): with the generation read again, every chunk of the
 * manifest is checked again on disk.  0 when all are there (publish
 * again), NIXCACHE_GC_REFUSED when one is gone or the chunks are in S3
 * (the NAR must go through the pipeline again), -1 on error.
 */

static int
nixcache_publish_recheck(nixcache_cli_ingest_t *ing, nixcache_redis_t *r)
{
    char                        path[4096];
    size_t                      n;
    uint32_t                    i;
    struct stat                 sb;
    const unsigned char        *m;
    nixcache_manifest_entry_t   e;

    n = strlen(ing->dir);

    if (ing->s3 != NULL || n + NIXCACHE_CHUNK_RELPATH_LEN >= sizeof(path)) {
        return NIXCACHE_GC_REFUSED;
    }

    if (nixcache_redis_gen(r) != 0) {
        return -1;
    }

    m = ing->core.nar.manifest;
    memcpy(path, ing->dir, n);

    /* the same frame: the manifest counts its csize */

    for (i = 0; i < ing->core.nar.chunk_count; i++) {
        nixcache_manifest_entry_decode(&e,
                                       m + nixcache_manifest_entry_offset(i));
        nixcache_chunk_relpath(path + n, e.chunk);
        path[n + NIXCACHE_CHUNK_RELPATH_LEN] = '\0';

        if (stat(path, &sb) == -1) {
            if (errno != ENOENT) {
                nixcache_error("%s: %s", path, strerror(errno));
                return -1;
            }

            return NIXCACHE_GC_REFUSED;
        }

        if ((uint64_t) sb.st_size != e.csize) {
            return NIXCACHE_GC_REFUSED;
        }
    }

    return 0;
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
nixcache_publish(nixcache_cli_ingest_t *ing, nixcache_redis_t *r,
    nixcache_narinfo_t *ni, const char *store_hash, int replace)
{
    int                          rc, tries;
    char                        *text;
    char                         nar_hash[NIXCACHE_HASH_STR_LEN];
    char                         sig[NIXCACHE_SIGN_TEXT_MAX + 1];
    size_t                       len, n;
    uint64_t                     file_size;
    unsigned char                header[NIXCACHE_MANIFEST_HEADER_LEN];
    const unsigned char         *file_hash;
    nixcache_narinfo_point_t     point;
    nixcache_manifest_header_t   h;

    if (nixcache_ingest_sync(&ing->core) != 0) {
        if (ing->s3 != NULL) {
            if (nixcache_s3sink_strerror(ing->s3sink)[0] != '\0') {
                nixcache_error("%s", nixcache_s3sink_strerror(ing->s3sink));
            }

            nixcache_error("S3 %s: not every chunk is stored, not "
                           "published", nixcache_s3_describe(ing->s3));

        } else {
            nixcache_error("chunk directory %s: %s", ing->dir,
                           ing->core.errmsg);
        }

        return -1;
    }

    nixcache_hash_format(nar_hash, ing->core.nar.nar_hash);
    file_hash = ing->core.nar.file_hash;
    file_size = ing->core.nar.file_size;

    n = sizeof("sha256:") - 1;

    for (tries = 1; ; tries++) {
        rc = nixcache_redis_put_manifest(r, nar_hash + n,
                                         ing->core.nar.manifest,
                                         ing->core.nar.manifest_len, replace,
                                         header);

        if (rc != NIXCACHE_GC_REFUSED || tries == NIXCACHE_GC_RECHECK_TRIES) {
            break;
        }

        rc = nixcache_publish_recheck(ing, r);

        if (ing->stats->verbose) {
            nixcache_info(ing->stats, "NarHash %.*s: publication refused "
                          "(a gc ran), chunks checked again: %s",
                          (int) NIXCACHE_HASH_STR_LEN, nar_hash,
                          rc == 0 ? "all there" : "some gone");
        }

        if (rc != 0) {
            break;
        }
    }

    if (rc == -1 || rc == NIXCACHE_GC_REFUSED) {
        return rc;
    }

    if (rc == 1) {
        if (nixcache_manifest_header_decode(&h, header,
                                            NIXCACHE_MANIFEST_HEADER_LEN)
            != 0
            || h.nar_size != ing->core.nar.nar_size
            || memcmp(h.nar_hash, ing->core.nar.nar_hash, NIXCACHE_SHA256_LEN)
               != 0)
        {
            nixcache_error("the manifest in place for NarHash %.*s is not "
                           "valid; --force replaces it",
                           (int) NIXCACHE_HASH_STR_LEN, nar_hash);
            return -1;
        }

        file_hash = h.file_hash;
        file_size = h.file_size;
    }

    ni->nar_size = ing->core.nar.nar_size;
    nixcache_narinfo_point(ni, &point,
                           NIXCACHE_NARINFO_ZSTD|NIXCACHE_NARINFO_NAR_HASH,
                           ing->core.nar.nar_hash, file_hash, file_size);

    if (ing->sign_key != NULL
        && nixcache_narinfo_sign(ing, ni, sig, sizeof(sig)) != 0)
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

    rc = nixcache_redis_put_narinfo(r, store_hash, nar_hash + n, text, len,
                                    replace);
    if (rc == NIXCACHE_GC_NO_MANIFEST) {
        rc = NIXCACHE_GC_REFUSED;
    }

    free(text);

    return rc;
}


/*
 * Adds our signature to ni (sig holds its text).  A signature by a key of
 * the same name is replaced: the fingerprint covers StorePath, NarHash,
 * NarSize and References only, so ours is the one that verifies.
 */

int
nixcache_narinfo_sign(nixcache_cli_ingest_t *ing, nixcache_narinfo_t *ni,
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
