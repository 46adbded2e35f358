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
#include "nixcache_gc.h"


typedef struct {
    nixcache_opts_t           *opts;
    nixcache_stats_t           stats;
    nixcache_redis_t           redis;
    nixcache_cli_ingest_t      ingest;
    const char                *source;
    char                     **names;
    size_t                     nnames;
    char                      *text;
} nixcache_import_t;


static int nixcache_import_list(nixcache_import_t *im);
static int nixcache_import_cmp(const void *a, const void *b);
static int nixcache_import_one(nixcache_import_t *im, const char *name);
static int nixcache_import_nar(nixcache_import_t *im, const char *file,
    nixcache_narinfo_t *ni, const char *base);
static int nixcache_import_read(const char *path, char *buf, size_t cap,
    size_t *len);
static char *nixcache_path_join(const char *dir, const char *name,
    size_t len);


int
nixcache_import(nixcache_opts_t *o, int argc, char **argv)
{
    int                 rc;
    size_t              i;
    nixcache_import_t   im;

    if (argc != 1) {
        nixcache_error("import: exactly one SOURCE-DIR expected");
        return 2;
    }

    memset(&im, 0, sizeof(nixcache_import_t));

    im.opts = o;
    im.source = argv[0];
    im.stats.command = "import";
    im.stats.quiet = o->quiet;
    im.stats.verbose = o->verbose;
    im.stats.start = nixcache_now();
    im.stats.last = im.stats.start;

    rc = 1;

    im.text = malloc(NIXCACHE_NARINFO_MAX_LEN + 1);
    if (im.text == NULL) {
        nixcache_error("out of memory");
        goto done;
    }

    if (nixcache_import_list(&im) != 0
        || nixcache_cli_ingest_init(&im.ingest, o, &im.stats) != 0
        || (o->chunks != NULL
            && nixcache_prepare_chunks_dir(o->chunks) != 0)
        || nixcache_redis_open(&im.redis, o->redis, o->redis_auth,
                               o->prefix) != 0)
    {
        goto done;
    }

    im.stats.paths_total = im.nnames;

    for (i = 0; i < im.nnames; i++) {
        switch (nixcache_import_one(&im, im.names[i])) {

        case 0:
            break;

        case 1:
            im.stats.paths_skipped++;
            break;

        default:
            im.stats.paths_failed++;

            if (im.redis.ctx == NULL || im.redis.ctx->err) {
                /* Redis is gone: the rest would fail the same way */
                goto done;
            }

            break;
        }

        im.stats.paths_done++;
        nixcache_progress(&im.stats, 0);
    }

    rc = (im.stats.paths_failed > 0) ? 1 : 0;

    if (im.nnames == 0) {
        nixcache_info(&im.stats, "%s: no *.narinfo files", im.source);
    }

done:

    if (im.stats.paths_total > 0) {
        nixcache_progress(&im.stats, 1);
    }

    nixcache_cli_ingest_summary(&im.ingest);

    for (i = 0; i < im.nnames; i++) {
        free(im.names[i]);
    }

    free(im.names);
    free(im.text);

    nixcache_redis_close(&im.redis);
    nixcache_cli_ingest_free(&im.ingest);

    return rc;
}


/* The *.narinfo names of the source directory, sorted. */

static int
nixcache_import_list(nixcache_import_t *im)
{
    DIR            *dir;
    char          **names;
    size_t          len, cap;
    struct dirent  *de;

    dir = opendir(im->source);
    if (dir == NULL) {
        nixcache_error("%s: %s", im->source, strerror(errno));
        return -1;
    }

    cap = 0;

    for ( ;; ) {
        errno = 0;
        de = readdir(dir);

        if (de == NULL) {
            if (errno != 0) {
                nixcache_error("%s: %s", im->source, strerror(errno));
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

        if (im->nnames == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(im->names, cap * sizeof(char *));
            if (names == NULL) {
                nixcache_error("out of memory");
                closedir(dir);
                return -1;
            }

            im->names = names;
        }

        im->names[im->nnames] = strdup(de->d_name);
        if (im->names[im->nnames] == NULL) {
            nixcache_error("out of memory");
            closedir(dir);
            return -1;
        }

        im->nnames++;
    }

    closedir(dir);

    qsort(im->names, im->nnames, sizeof(char *), nixcache_import_cmp);

    return 0;
}


static int
nixcache_import_cmp(const void *a, const void *b)
{
    return strcmp(*(char * const *) a, *(char * const *) b);
}


/* 0 imported, 1 already present, -1 failed (reported). */

static int
nixcache_import_one(nixcache_import_t *im, const char *name)
{
    int                  rc, tries;
    char                *path, *file, *sp;
    size_t               len;
    const char          *err, *base;
    nixcache_narinfo_t   ni;

    path = nixcache_path_join(im->source, name, strlen(name));
    if (path == NULL) {
        return -1;
    }

    rc = nixcache_import_read(path, im->text, NIXCACHE_NARINFO_MAX_LEN + 1,
                              &len);
    if (rc != 0) {
        free(path);
        return -1;
    }

    if (nixcache_narinfo_parse(&ni, im->text, len, &err) != 0) {
        nixcache_error("%s: %s", path, err);
        free(path);
        return -1;
    }

    /* StorePath is not NUL-terminated in the text: copy it */

    sp = strndup(ni.store_path.data, ni.store_path.len);
    if (sp == NULL) {
        nixcache_error("out of memory");
        free(path);
        return -1;
    }

    rc = -1;
    file = NULL;

    if (nixcache_store_path_hash(sp, &base) != 0) {
        nixcache_error("%s: StorePath \"%s\" is not a store path under "
                       NIXCACHE_STORE_DIR, path, sp);
        goto done;
    }

    if (strncmp(name, base, NIXCACHE_STORE_HASH_NIX32_LEN) != 0
        || strlen(name) != NIXCACHE_STORE_HASH_NIX32_LEN
                           + sizeof(".narinfo") - 1)
    {
        nixcache_error("%s: file name does not match StorePath %s", path,
                       sp);
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
        nixcache_error("%s: URL \"%.*s\" is not a file in %s", path,
                       (int) ni.url.len, ni.url.data, im->source);
        goto done;
    }

    file = nixcache_path_join(im->source, ni.url.data, ni.url.len);
    if (file == NULL) {
        goto done;
    }

    ni.store_path.data = sp;

    for (tries = 1; ; tries++) {
        rc = nixcache_import_nar(im, file, &ni, base);

        /* a gc ran meanwhile: the chunks are checked (written) again */

        if (rc != NIXCACHE_GC_REFUSED || tries == NIXCACHE_GC_PUBLISH_TRIES) {
            break;
        }
    }

    if (rc != 0) {
        if (rc == NIXCACHE_GC_REFUSED) {
            nixcache_error("%s: refused %d times while gc ran", file, tries);
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

    free(file);
    free(sp);
    free(path);

    return rc;
}


static int
nixcache_import_nar(nixcache_import_t *im, const char *file,
    nixcache_narinfo_t *ni, const char *base)
{
    int                 fd, rc;
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
                       "zstd and bzip2 are)", file,
                       (int) ni->compression.len, ni->compression.data);
        return -1;
    }

    if (nixcache_hash_parse(nar_hash, ni->nar_hash.data, ni->nar_hash.len)
        != 0)
    {
        nixcache_error("%s: unreadable NarHash", file);
        return -1;
    }

    if (ni->file_hash.len > 0
        && nixcache_hash_parse(file_hash, ni->file_hash.data,
                               ni->file_hash.len)
           != 0)
    {
        nixcache_error("%s: unreadable FileHash", file);
        return -1;
    }

    fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        nixcache_error("%s: %s", file, strerror(errno));
        return -1;
    }

    if (nixcache_redis_gen(&im->redis) != 0
        || nixcache_cli_ingest_begin(&im->ingest) != 0)
    {
        close(fd);
        return -1;
    }

    rc = nixcache_cli_decompress_fd(&im->ingest, fd, kind, file,
                                    ni->nar_size, src_hash, &file_size);

    close(fd);

    if (rc != 0) {
        return -1;
    }

    if (nixcache_cli_ingest_finish(&im->ingest) != 0) {
        return -1;
    }

    if ((ni->file_hash.len > 0
         && memcmp(file_hash, src_hash, NIXCACHE_SHA256_LEN) != 0)
        || (ni->file_size != 0 && ni->file_size != file_size))
    {
        nixcache_hash_format(got, src_hash);
        nixcache_error("%s: corrupt source file: %llu bytes with FileHash "
                       "%.*s, the narinfo says %llu bytes, %.*s", file,
                       (unsigned long long) file_size,
                       (int) NIXCACHE_HASH_STR_LEN, got,
                       (unsigned long long) ni->file_size,
                       (int) ni->file_hash.len, ni->file_hash.data);
        return -1;
    }

    if (im->ingest.core.nar.nar_size != ni->nar_size
        || memcmp(im->ingest.core.nar.nar_hash, nar_hash,
                  NIXCACHE_SHA256_LEN)
           != 0)
    {
        nixcache_hash_format(got, im->ingest.core.nar.nar_hash);
        nixcache_hash_format(want, nar_hash);
        nixcache_error("%s: NAR mismatch: %llu bytes with NarHash %.*s, "
                       "the narinfo says %llu bytes, %.*s", file,
                       (unsigned long long)
                           im->ingest.core.nar.nar_size,
                       (int) NIXCACHE_HASH_STR_LEN, got,
                       (unsigned long long) ni->nar_size,
                       (int) NIXCACHE_HASH_STR_LEN, want);
        return -1;
    }

    return nixcache_publish(&im->ingest, &im->redis, ni, base,
                            im->opts->force);
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
    p[dlen] = '/';
    memcpy(p + dlen + 1, name, len);
    p[dlen + 1 + len] = '\0';

    return p;
}
