/*
 * nixcache import: a flat binary cache directory in (what
 * `nix copy --to file://DIR` writes: <hash>.narinfo files and the NAR
 * files their URL names, compressed with none, xz, zstd or bzip2).
 *
 * Every path is checked before anything about it is published: the source
 * file against FileHash/FileSize (when the narinfo has them), the NAR
 * against NarHash/NarSize.  A bad path is reported and skipped, the others
 * go on, and the exit status says whether any failed.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli.h"
#include "import.h"
#include "nixcache_gc.h"


/* a NAR that failed its checks: not tried again as a gc refusal is */
#define NIXCACHE_IMPORT_BAD         (-3)


typedef struct {
    char                     **names;
    size_t                     nnames;
} nixcache_import_dir_t;


static int nixcache_import_list(const char *source,
    nixcache_import_dir_t *d);
static int nixcache_import_cmp(const void *a, const void *b);
static int nixcache_import_file(nixcache_import_t *im, const char *name);
static int nixcache_import_sigs(nixcache_import_t *im, const char *where,
    nixcache_narinfo_t *ni);
static int nixcache_import_nar(nixcache_import_t *im, const char *loc,
    nixcache_narinfo_t *ni, const char *base);
static int nixcache_import_pump_file(void *data, const char *loc,
    nixcache_decomp_t *d, unsigned char *file_hash, uint64_t *file_size);
static int nixcache_import_read(const char *path, char *buf, size_t cap,
    size_t *len);
static char *nixcache_path_join(const char *dir, const char *name,
    size_t len);


int
nixcache_import(nixcache_opts_t *o, int argc, char **argv)
{
    int                     rc;
    size_t                  i;
    nixcache_import_t       im;
    nixcache_import_dir_t   dir;

    if (o->from_url != NULL) {
        return nixcache_import_url(o, argc, argv);
    }

    if (argc != 1) {
        nixcache_error("import: exactly one SOURCE-DIR expected (or "
                       "--from-url URL PATH...)");
        return 2;
    }

    if (o->recursive || o->cacert != NULL || o->no_check_sigs) {
        nixcache_error("import: -r, --cacert and --no-check-sigs go with "
                       "--from-url");
        return 2;
    }

    memset(&im, 0, sizeof(nixcache_import_t));
    memset(&dir, 0, sizeof(nixcache_import_dir_t));

    rc = 1;

    if (nixcache_import_list(argv[0], &dir) != 0
        || nixcache_import_open(&im, o) != 0)
    {
        goto done;
    }

    im.source = argv[0];
    im.base = argv[0];
    im.pump = nixcache_import_pump_file;

    im.stats.paths_total = dir.nnames;

    for (i = 0; i < dir.nnames; i++) {
        if (nixcache_import_count(&im, nixcache_import_file(&im,
                                                           dir.names[i]))
            != 0)
        {
            goto done;
        }
    }

    rc = (im.stats.paths_failed > 0) ? 1 : 0;

    if (dir.nnames == 0) {
        nixcache_info(&im.stats, "%s: no *.narinfo files", im.source);
    }

done:

    for (i = 0; i < dir.nnames; i++) {
        free(dir.names[i]);
    }

    free(dir.names);

    nixcache_import_close(&im);

    return rc;
}


int
nixcache_import_open(nixcache_import_t *im, nixcache_opts_t *o)
{
    size_t       i;
    const char  *err;

    memset(im, 0, sizeof(nixcache_import_t));

    im->opts = o;
    im->stats.command = "import";
    im->stats.quiet = o->quiet;
    im->stats.verbose = o->verbose;
    im->stats.start = nixcache_now();
    im->stats.last = im->stats.start;

    im->text = malloc(NIXCACHE_NARINFO_MAX_LEN + 1);
    if (im->text == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    if (o->ntrusted > 0) {
        if (nixcache_sign_init() != 0) {
            nixcache_error("cannot initialise libsodium");
            return -1;
        }

        im->keys = calloc(o->ntrusted, sizeof(nixcache_sign_public_t));
        if (im->keys == NULL) {
            nixcache_error("out of memory");
            return -1;
        }

        for (i = 0; i < o->ntrusted; i++) {
            if (nixcache_sign_public_parse(&im->keys[i], o->trusted[i],
                                           strlen(o->trusted[i]), &err)
                != 0)
            {
                nixcache_error("--trusted-key \"%s\": %s (NAME:BASE64 "
                               "expected, as in trusted-public-keys)",
                               o->trusted[i], err);
                return -1;
            }
        }

        im->nkeys = o->ntrusted;
    }

    if (nixcache_cli_ingest_init(&im->ingest, o, &im->stats) != 0
        || (o->chunks != NULL
            && nixcache_prepare_chunks_dir(o->chunks) != 0)
        || nixcache_redis_open(&im->redis, o->redis, o->redis_auth,
                               o->prefix) != 0)
    {
        return -1;
    }

    return 0;
}


void
nixcache_import_close(nixcache_import_t *im)
{
    if (im->stats.paths_total > 0) {
        nixcache_progress(&im->stats, 1);
    }

    nixcache_cli_ingest_summary(&im->ingest);

    free(im->keys);
    free(im->text);

    nixcache_redis_close(&im->redis);
    nixcache_cli_ingest_free(&im->ingest);
}


int
nixcache_import_count(nixcache_import_t *im, int rc)
{
    switch (rc) {

    case 0:
        break;

    case 1:
        im->stats.paths_skipped++;
        break;

    default:
        im->stats.paths_failed++;

        if (im->redis.ctx == NULL || im->redis.ctx->err) {
            /* Redis is gone: the rest would fail the same way */
            return -1;
        }

        break;
    }

    im->stats.paths_done++;
    nixcache_progress(&im->stats, 0);

    return 0;
}


/* The *.narinfo names of the source directory, sorted. */

static int
nixcache_import_list(const char *source, nixcache_import_dir_t *d)
{
    DIR            *dir;
    char          **names;
    size_t          len, cap;
    struct dirent  *de;

    dir = opendir(source);
    if (dir == NULL) {
        nixcache_error("%s: %s", source, strerror(errno));
        return -1;
    }

    cap = 0;

    for ( ;; ) {
        errno = 0;
        de = readdir(dir);

        if (de == NULL) {
            if (errno != 0) {
                nixcache_error("%s: %s", source, strerror(errno));
                closedir(dir);
                return -1;
            }

            break;
        }

        len = strlen(de->d_name);

        if (len <= sizeof(".narinfo") - 1
            || strcmp(de->d_name + len - (sizeof(".narinfo") - 1),
                      ".narinfo") != 0)
        {
            continue;
        }

        if (d->nnames == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(d->names, cap * sizeof(char *));
            if (names == NULL) {
                nixcache_error("out of memory");
                closedir(dir);
                return -1;
            }

            d->names = names;
        }

        d->names[d->nnames] = strdup(de->d_name);
        if (d->names[d->nnames] == NULL) {
            nixcache_error("out of memory");
            closedir(dir);
            return -1;
        }

        d->nnames++;
    }

    closedir(dir);

    qsort(d->names, d->nnames, sizeof(char *), nixcache_import_cmp);

    return 0;
}


static int
nixcache_import_cmp(const void *a, const void *b)
{
    return strcmp(*(char * const *) a, *(char * const *) b);
}


/* A file of the directory: 0 imported, 1 present, -1 failed. */

static int
nixcache_import_file(nixcache_import_t *im, const char *name)
{
    int      rc;
    char    *path;
    size_t   len;

    path = nixcache_path_join(im->source, name, strlen(name));
    if (path == NULL) {
        return -1;
    }

    rc = nixcache_import_read(path, im->text, NIXCACHE_NARINFO_MAX_LEN + 1,
                              &len);

    if (rc == 0) {
        rc = nixcache_import_narinfo(im, path, len, name);
    }

    free(path);

    return rc;
}


/* import.h */

int
nixcache_import_narinfo(nixcache_import_t *im, const char *where, size_t len,
    const char *hash)
{
    int                  rc, tries;
    char                *loc, *sp;
    const char          *err, *base;
    nixcache_narinfo_t   ni;

    if (nixcache_narinfo_parse(&ni, im->text, len, &err) != 0) {
        nixcache_error("%s: %s", where, err);
        return -1;
    }

    /* StorePath is not NUL-terminated in the text: copy it */

    sp = strndup(ni.store_path.data, ni.store_path.len);
    if (sp == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    rc = -1;
    loc = NULL;

    if (nixcache_store_path_hash(sp, &base) != 0) {
        nixcache_error("%s: StorePath \"%s\" is not a store path under "
                       NIXCACHE_STORE_DIR, where, sp);
        goto done;
    }

    if (strncmp(hash, base, NIXCACHE_STORE_HASH_NIX32_LEN) != 0
        || (hash[NIXCACHE_STORE_HASH_NIX32_LEN] != '\0'
            && strcmp(hash + NIXCACHE_STORE_HASH_NIX32_LEN, ".narinfo")
               != 0))
    {
        nixcache_error("%s: file name does not match StorePath %s", where,
                       sp);
        goto done;
    }

    if (nixcache_import_sigs(im, where, &ni) != 0) {
        goto done;
    }

    if (!im->opts->force) {
        switch (nixcache_redis_has_narinfo(&im->redis, base)) {

        case 1:
            nixcache_info(&im->stats, "%s: already present", sp);
            rc = 1;
            goto done;

        case 0:
            break;

        default:
            goto done;
        }
    }

    if (ni.url.len == 0 || ni.url.data[0] == '/'
        || memmem(ni.url.data, ni.url.len, "..", 2) != NULL)
    {
        nixcache_error("%s: URL \"%.*s\" is not a file in %s", where,
                       (int) ni.url.len, ni.url.data, im->source);
        goto done;
    }

    loc = nixcache_path_join(im->base, ni.url.data, ni.url.len);
    if (loc == NULL) {
        goto done;
    }

    ni.store_path.data = sp;

    for (tries = 1; ; tries++) {
        rc = nixcache_import_nar(im, loc, &ni, base);

        /* a gc ran meanwhile: the chunks are checked (written) again */

        if (rc != NIXCACHE_GC_REFUSED || tries == NIXCACHE_GC_PUBLISH_TRIES) {
            break;
        }
    }

    if (rc != 0) {
        if (rc == NIXCACHE_GC_REFUSED) {
            nixcache_error("%s: refused %d times while gc ran", loc, tries);
        }

        rc = -1;
        goto done;
    }

    if (im->opts->verbose) {
        nixcache_info(&im->stats, "%s: imported, %llu bytes NAR, %u chunks",
                      sp,
                      (unsigned long long) im->ingest.core.nar.nar_size,
                      im->ingest.core.nar.chunk_count);
    }

    rc = 0;

done:

    if (rc == -1) {
        nixcache_error("%s: not imported", sp);
    }

    free(loc);
    free(sp);

    return rc;
}


/*
 * With --trusted-key: one Sig line must verify with one of the keys, as
 * Nix's require-sigs wants.  Without, nothing is checked (--from-url
 * wants --no-check-sigs then).
 */

static int
nixcache_import_sigs(nixcache_import_t *im, const char *where,
    nixcache_narinfo_t *ni)
{
    if (im->nkeys == 0) {
        return 0;
    }

    if (ni->nsigs == 0) {
        nixcache_error("%s: unsigned (no Sig line), and --trusted-key is "
                       "given", where);
        return -1;
    }

    if (nixcache_narinfo_fingerprint(NULL, 0, ni) == 0) {
        nixcache_error("%s: no signature fingerprint (NarHash not sha256?)",
                       where);
        return -1;
    }

    switch (nixcache_sign_trusted(im->keys, im->nkeys, ni)) {

    case 1:
        return 0;

    case -1:
        nixcache_error("out of memory");
        return -1;
    }

    nixcache_error("%s: no valid signature by a trusted key (%zu Sig "
                   "lines, none verifies with --trusted-key)", where,
                   ni->nsigs);

    return -1;
}


/*
 * One NAR from loc through the pipeline, checked, published: 0, -1 or
 * NIXCACHE_GC_REFUSED from the publication, NIXCACHE_IMPORT_BAD when the
 * NAR or its source failed (nothing published; not worth a retry).
 */

static int
nixcache_import_nar(nixcache_import_t *im, const char *loc,
    nixcache_narinfo_t *ni, const char *base)
{
    int                 rc;
    char                got[NIXCACHE_HASH_STR_LEN];
    char                want[NIXCACHE_HASH_STR_LEN];
    uint64_t            file_size;
    nixcache_decomp_e   kind;
    unsigned char       nar_hash[NIXCACHE_SHA256_LEN];
    unsigned char       file_hash[NIXCACHE_SHA256_LEN];
    unsigned char       src_hash[NIXCACHE_SHA256_LEN];

    if (ni->compression.len == 0) {
        kind = NIXCACHE_DECOMP_BZIP2;

    } else if (nixcache_decomp_kind(ni->compression.data,
                                    ni->compression.len, &kind)
               != 0)
    {
        nixcache_error("%s: unsupported Compression \"%.*s\" (none, xz, "
                       "zstd and bzip2 are)", loc,
                       (int) ni->compression.len, ni->compression.data);
        return NIXCACHE_IMPORT_BAD;
    }

    if (nixcache_hash_parse(nar_hash, ni->nar_hash.data, ni->nar_hash.len)
        != 0)
    {
        nixcache_error("%s: unreadable NarHash", loc);
        return NIXCACHE_IMPORT_BAD;
    }

    if (ni->file_hash.len > 0
        && nixcache_hash_parse(file_hash, ni->file_hash.data,
                               ni->file_hash.len)
           != 0)
    {
        nixcache_error("%s: unreadable FileHash", loc);
        return NIXCACHE_IMPORT_BAD;
    }

    if (nixcache_redis_gen(&im->redis) != 0
        || nixcache_cli_ingest_begin(&im->ingest) != 0)
    {
        return -1;
    }

    rc = nixcache_cli_decompress(&im->ingest, kind, loc, ni->nar_size,
                                 im->pump, im,
                                 src_hash, &file_size);
    if (rc != 0) {
        return NIXCACHE_IMPORT_BAD;
    }

    if (nixcache_cli_ingest_finish(&im->ingest) != 0) {
        return NIXCACHE_IMPORT_BAD;
    }

    if ((ni->file_hash.len > 0
         && memcmp(file_hash, src_hash, NIXCACHE_SHA256_LEN) != 0)
        || (ni->file_size != 0 && ni->file_size != file_size))
    {
        nixcache_hash_format(got, src_hash);
        nixcache_error("%s: corrupt source file: %llu bytes with FileHash "
                       "%.*s, the narinfo says %llu bytes, %.*s", loc,
                       (unsigned long long) file_size,
                       (int) NIXCACHE_HASH_STR_LEN, got,
                       (unsigned long long) ni->file_size,
                       (int) ni->file_hash.len, ni->file_hash.data);
        return NIXCACHE_IMPORT_BAD;
    }

    if (im->ingest.core.nar.nar_size != ni->nar_size
        || memcmp(im->ingest.core.nar.nar_hash, nar_hash,
                  NIXCACHE_SHA256_LEN)
           != 0)
    {
        nixcache_hash_format(got, im->ingest.core.nar.nar_hash);
        nixcache_hash_format(want, nar_hash);
        nixcache_error("%s: NAR mismatch: %llu bytes with NarHash %.*s, "
                       "the narinfo says %llu bytes, %.*s", loc,
                       (unsigned long long)
                           im->ingest.core.nar.nar_size,
                       (int) NIXCACHE_HASH_STR_LEN, got,
                       (unsigned long long) ni->nar_size,
                       (int) NIXCACHE_HASH_STR_LEN, want);
        return NIXCACHE_IMPORT_BAD;
    }

    return nixcache_publish(&im->ingest, &im->redis, ni, base,
                            im->opts->force);
}


static int
nixcache_import_pump_file(void *data, const char *loc, nixcache_decomp_t *d,
    unsigned char *file_hash, uint64_t *file_size)
{
    int  fd, rc;

    fd = open(loc, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        nixcache_error("%s: %s", loc, strerror(errno));
        return -1;
    }

    rc = nixcache_decomp_fd(d, fd, file_hash, file_size);

    close(fd);

    return rc;
}


static int
nixcache_import_read(const char *path, char *buf, size_t cap, size_t *len)
{
    int      fd;
    size_t   total;
    ssize_t  n;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        nixcache_error("%s: %s", path, strerror(errno));
        return -1;
    }

    total = 0;

    while (total < cap) {
        n = read(fd, buf + total, cap - total);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            nixcache_error("%s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }

        if (n == 0) {
            break;
        }

        total += n;
    }

    close(fd);

    if (total == cap) {
        nixcache_error("%s: larger than %d bytes", path,
                       NIXCACHE_NARINFO_MAX_LEN);
        return -1;
    }

    *len = total;

    return 0;
}


static char *
nixcache_path_join(const char *dir, const char *name, size_t len)
{
    char    *p;
    size_t   dlen;

    dlen = strlen(dir);

    p = malloc(dlen + 1 + len + 1);
    if (p == NULL) {
        nixcache_error("out of memory");
        return NULL;
    }

    memcpy(p, dir, dlen);

    if (dlen == 0 || dir[dlen - 1] != '/') {
        p[dlen++] = '/';
    }

    memcpy(p + dlen, name, len);
    p[dlen + len] = '\0';

    return p;
}
