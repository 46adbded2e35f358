/*
 * nixcache gc: mark and sweep over a chunk directory shared by every
 * cache of a Redis database, under the protocol of docs/FORMAT.md
 * ("Garbage collection"): manifests no narinfo names are dropped unless
 * recently published; the chunks of every other manifest (SCAN, plus what
 * nixcache-gc:recent names, read again under the lock before each batch)
 * are live; each fan-out directory is one batch, deleted under the lock.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "gc.h"
#include "nixcache_cid.h"
#include "nixcache_gc.h"
#include "nixcache_manifest.h"


#define NIXCACHE_GC_SCAN_COUNT      "1000"
#define NIXCACHE_GC_MAX_RUN         (86400 - 3600)     /* seconds */


typedef struct {
    unsigned char              digest[NIXCACHE_SHA256_LEN];
    uint64_t                   size;
} nixcache_gc_cand_t;


typedef struct {
    nixcache_gc_opts_t        *o;
    nixcache_redis_t           r;
    nixcache_gcset_t           live;        /* chunk digests */
    nixcache_gcset_t           named;       /* SHA-256 of manifest keys */
    long long                  start;       /* Redis TIME: M */
    double                     clock;       /* monotonic, at start */
    double                     last;        /* last progress line */
    double                     locked;      /* monotonic, lock taken */
    char                       token[64];
    nixcache_gc_cand_t        *cand;
    size_t                     ncand;
    size_t                     cand_cap;
    uint64_t                   narinfos;
    uint64_t                   expired;
    uint64_t                   manifests;
    uint64_t                   dropped;
    uint64_t                   files;
    uint64_t                   young;
    uint64_t                   deleted;
    uint64_t                   deleted_bytes;
    unsigned                   dirs;
} nixcache_gc_t;


typedef int (*nixcache_gc_key_pt)(nixcache_gc_t *gc, const char *key,
    size_t len);


static int nixcache_gc_time(nixcache_gc_t *gc, long long *now);
static int nixcache_gc_scan(nixcache_gc_t *gc, const char *match,
    nixcache_gc_key_pt handler);
static int nixcache_gc_narinfo(nixcache_gc_t *gc, const char *key,
    size_t len);
static int nixcache_gc_manifest(nixcache_gc_t *gc, const char *key,
    size_t len);
static int nixcache_gc_mark_key(nixcache_gc_t *gc, const char *key,
    size_t len);
static int nixcache_gc_sweep(nixcache_gc_t *gc);
static int nixcache_gc_sweep_dir(nixcache_gc_t *gc, const char *dir);
static int nixcache_gc_batch(nixcache_gc_t *gc, const char *dir);
static int nixcache_gc_lock(nixcache_gc_t *gc);
static void nixcache_gc_unlock(nixcache_gc_t *gc);
static int nixcache_gc_recent(nixcache_gc_t *gc);
static void nixcache_gc_progress(nixcache_gc_t *gc, int final);
static void nixcache_gc_metrics(nixcache_gc_t *gc, int ok);
static double nixcache_gc_metrics_last_success(const char *path);
static redisReply *nixcache_gc_command(nixcache_gc_t *gc, int type,
    const char *what, const char *fmt, ...);


int
nixcache_gc_run(nixcache_gc_opts_t *o)
{
    int             rc;
    redisReply     *reply;
    nixcache_gc_t   gc;

    memset(&gc, 0, sizeof(nixcache_gc_t));
    gc.o = o;
    gc.clock = nixcache_now();
    rc = 1;

    snprintf(gc.token, sizeof(gc.token), "%ld.%ld", (long) getpid(),
             (long) time(NULL));

    if (nixcache_gcset_init(&gc.live) != 0
        || nixcache_gcset_init(&gc.named) != 0)
    {
        nixcache_error("out of memory");
        goto done;
    }

    if (nixcache_redis_open(&gc.r, o->redis, o->redis_auth, o->prefix) != 0
        || nixcache_gc_time(&gc, &gc.start) != 0)
    {
        goto done;
    }

    if (o->keep_days > 0
        && nixcache_gc_retention(o, &gc.r, gc.start, &gc.expired) != 0)
    {
        goto done;
    }

    if (nixcache_gc_scan(&gc, "*" NIXCACHE_KEY_NARINFO "*",
                         nixcache_gc_narinfo) != 0
        || nixcache_gc_scan(&gc, "*" NIXCACHE_KEY_MANIFEST "*",
                            nixcache_gc_manifest) != 0
        || nixcache_gc_sweep(&gc) != 0)
    {
        goto done;
    }

    /* what a gc started after this one may still need is kept */

    if (!o->dry_run) {
        reply = nixcache_gc_command(&gc, REDIS_REPLY_INTEGER,
                                    "ZREMRANGEBYSCORE",
                                    "ZREMRANGEBYSCORE %s -inf (%lld",
                                    NIXCACHE_GC_KEY_RECENT,
                                    gc.start - o->grace - 86400);
        if (reply == NULL) {
            goto done;
        }

        freeReplyObject(reply);
    }

    nixcache_gc_progress(&gc, 1);
    rc = 0;

done:

    if (!o->dry_run && o->metrics_file != NULL) {
        nixcache_gc_metrics(&gc, rc == 0);
    }

    nixcache_redis_close(&gc.r);
    nixcache_gcset_free(&gc.live);
    nixcache_gcset_free(&gc.named);
    free(gc.cand);

    return rc;
}


/*
 * One command's reply, of the wanted type (REDIS_REPLY_NIL: any type but
 * an error), for the caller to free; NULL (printed, freed) otherwise.
 */

static redisReply *
nixcache_gc_command(nixcache_gc_t *gc, int type, const char *what,
    const char *fmt, ...)
{
    va_list      ap;
    redisReply  *reply;

    va_start(ap, fmt);
    reply = redisvCommand(gc->r.ctx, fmt, ap);
    va_end(ap);

    if (reply == NULL) {
        nixcache_error("Redis at %s: %s: %s", gc->r.addr, what,
                       gc->r.ctx->errstr);
        return NULL;
    }

    if (reply->type == REDIS_REPLY_ERROR
        || (type != REDIS_REPLY_NIL && reply->type != type))
    {
        nixcache_error("Redis at %s: %s: %s", gc->r.addr, what,
                       reply->type == REDIS_REPLY_ERROR ? reply->str
                                                        : "unexpected reply");
        freeReplyObject(reply);
        return NULL;
    }

    return reply;
}


/* the Redis server's clock, the one the publication scripts use */

static int
nixcache_gc_time(nixcache_gc_t *gc, long long *now)
{
    redisReply  *reply;

    reply = nixcache_gc_command(gc, REDIS_REPLY_ARRAY, "TIME", "TIME");

    if (reply == NULL || reply->elements != 2) {
        if (reply != NULL) {
            nixcache_error("Redis at %s: TIME: unexpected reply", gc->r.addr);
            freeReplyObject(reply);
        }

        return -1;
    }

    *now = strtoll(reply->element[0]->str, NULL, 10);
    freeReplyObject(reply);

    return 0;
}


/*
 * SCAN MATCH over the whole database: every key present for the whole
 * scan is returned at least once (a key twice is harmless here).
 */

static int
nixcache_gc_scan(nixcache_gc_t *gc, const char *match,
    nixcache_gc_key_pt handler)
{
    char         cursor[32];
    size_t       i;
    redisReply  *reply, *keys;

    strcpy(cursor, "0");

    do {
        reply = nixcache_gc_command(gc, REDIS_REPLY_ARRAY, "SCAN",
                                    "SCAN %s MATCH %s COUNT "
                                    NIXCACHE_GC_SCAN_COUNT, cursor, match);
        if (reply == NULL) {
            return -1;
        }

        if (reply->elements != 2
            || reply->element[0]->type != REDIS_REPLY_STRING
            || reply->element[0]->len >= sizeof(cursor)
            || reply->element[1]->type != REDIS_REPLY_ARRAY)
        {
            nixcache_error("Redis at %s: SCAN: unexpected reply", gc->r.addr);
            freeReplyObject(reply);
            return -1;
        }

        memcpy(cursor, reply->element[0]->str, reply->element[0]->len + 1);
        keys = reply->element[1];

        for (i = 0; i < keys->elements; i++) {
            if (keys->element[i]->type == REDIS_REPLY_STRING
                && handler(gc, keys->element[i]->str, keys->element[i]->len)
                   != 0)
            {
                freeReplyObject(reply);
                return -1;
            }
        }

        freeReplyObject(reply);
        nixcache_gc_progress(gc, 0);

    } while (strcmp(cursor, "0") != 0);

    return 0;
}


/*
 * A narinfo names the manifest <its prefix>manifest:<its NarHash>.  The
 * paths of this cache without a publication time (pushed before there
 * was one) get the start of this run.
 */

static int
nixcache_gc_narinfo(nixcache_gc_t *gc, const char *key, size_t len)
{
    int                  rc;
    char                 mkey[1024];
    size_t               plen, mlen;
    const char          *err, *name;
    redisReply          *reply;
    unsigned char        digest[NIXCACHE_SHA256_LEN];
    nixcache_narinfo_t   ni;

    plen = len - NIXCACHE_STORE_HASH_NIX32_LEN - sizeof(NIXCACHE_KEY_NARINFO)
           + 1;

    if (len < NIXCACHE_STORE_HASH_NIX32_LEN + sizeof(NIXCACHE_KEY_NARINFO)
        || plen + sizeof(NIXCACHE_KEY_MANIFEST) + NIXCACHE_SHA256_NIX32_LEN
           > sizeof(mkey)
        || nixcache_key_name(key, len, key, plen, NIXCACHE_KEY_KIND_NARINFO,
                             &name, &mlen) != 0)
    {
        return 0;   /* not a narinfo key: a prefix that has "narinfo:" */
    }

    reply = nixcache_gc_command(gc, REDIS_REPLY_NIL, "GET", "GET %b", key,
                                len);
    if (reply == NULL) {
        return -1;
    }

    rc = 0;

    if (reply->type == REDIS_REPLY_STRING
        && nixcache_narinfo_parse(&ni, reply->str, reply->len, &err) == 0
        && ni.nar_hash.len == NIXCACHE_HASH_STR_LEN)
    {
        mlen = nixcache_key_build(mkey, key, plen, NIXCACHE_KEY_KIND_MANIFEST,
                                  ni.nar_hash.data + sizeof("sha256:") - 1,
                                  NIXCACHE_SHA256_NIX32_LEN)
               - mkey;
        nixcache_sha256(digest, mkey, mlen);
        rc = nixcache_gcset_add(&gc->named, digest);
        gc->narinfos++;
    }

    freeReplyObject(reply);

    if (rc != 0) {
        nixcache_error("out of memory");
        return -1;
    }

    if (gc->o->dry_run || plen != strlen(gc->r.prefix)
        || memcmp(key, gc->r.prefix, plen) != 0)
    {
        return 0;
    }

    reply = nixcache_gc_command(gc, REDIS_REPLY_INTEGER, "ZADD access",
                                "ZADD %s" NIXCACHE_KEY_ACCESS " NX %lld %b",
                                gc->r.prefix, gc->start, name,
                                (size_t) NIXCACHE_STORE_HASH_NIX32_LEN);
    if (reply == NULL) {
        return -1;
    }

    freeReplyObject(reply);

    return 0;
}


/*
 * A manifest no narinfo named when the narinfos were scanned is dropped
 * unless it was published since start - grace (a writer between its
 * manifest and its narinfo; the narinfo script also refuses a missing
 * manifest).  Temporary keys (".tmp.") are the module's uploads in
 * progress: not manifests yet.
 */

static int
nixcache_gc_manifest(nixcache_gc_t *gc, const char *key, size_t len)
{
    long long       n;
    const char     *name;
    size_t          plen, nlen;
    redisReply     *reply;
    unsigned char   digest[NIXCACHE_SHA256_LEN];

    plen = len - NIXCACHE_SHA256_NIX32_LEN - sizeof(NIXCACHE_KEY_MANIFEST)
           + 1;

    if (len < NIXCACHE_SHA256_NIX32_LEN + sizeof(NIXCACHE_KEY_MANIFEST)
        || nixcache_key_name(key, len, key, plen, NIXCACHE_KEY_KIND_MANIFEST,
                             &name, &nlen) != 0
        || memchr(name, '.', nlen) != NULL)
    {
        return 0;
    }

    gc->manifests++;
    nixcache_sha256(digest, key, len);

    if (nixcache_gcset_has(&gc->named, digest)) {
        return nixcache_gc_mark_key(gc, key, len);
    }

    if (gc->o->dry_run) {
        reply = nixcache_gc_command(gc, REDIS_REPLY_NIL, "ZSCORE",
                                    "ZSCORE %s %b", NIXCACHE_GC_KEY_RECENT,
                                    key, len);
        if (reply == NULL) {
            return -1;
        }

        n = (reply->type == REDIS_REPLY_NIL
             || strtoll(reply->str, NULL, 10) < gc->start - gc->o->grace);
        freeReplyObject(reply);

    } else {
        reply = nixcache_gc_command(gc, REDIS_REPLY_INTEGER, "EVAL drop",
                                    "EVAL %s 2 %b %s %lld",
                                    NIXCACHE_GC_SCRIPT_MANIFEST_DROP, key, len,
                                    NIXCACHE_GC_KEY_RECENT,
                                    gc->start - gc->o->grace);
        if (reply == NULL) {
            return -1;
        }

        n = reply->integer;
        freeReplyObject(reply);
    }

    if (n == 0) {
        return nixcache_gc_mark_key(gc, key, len);
    }

    gc->dropped++;

    if (gc->o->verbose) {
        fprintf(stderr, "nixcache: gc: %s manifest %.*s (no narinfo names "
                "it)\n", gc->o->dry_run ? "would drop" : "dropped", (int) len,
                key);
    }

    return 0;
}


/* the chunks of the manifest at key are live (a key gone: nothing) */

static int
nixcache_gc_mark_key(nixcache_gc_t *gc, const char *key, size_t len)
{
    int                         rc;
    uint32_t                    i;
    redisReply                 *reply;
    const unsigned char        *p;
    nixcache_manifest_header_t  h;

    reply = nixcache_gc_command(gc, REDIS_REPLY_NIL, "GET manifest",
                                "GET %b", key, len);
    if (reply == NULL) {
        return -1;
    }

    rc = 0;
    p = (const unsigned char *) reply->str;

    if (reply->type == REDIS_REPLY_STRING) {
        if (nixcache_manifest_check(p, reply->len) != 0
            || nixcache_manifest_header_decode(&h, p, reply->len) != 0)
        {
            /* its chunks cannot be told: nothing may be deleted */
            nixcache_error("manifest %.*s is not valid: gc stops (nixcache "
                           "verify tells more)", (int) len, key);
            rc = -1;

        } else {
            for (i = 0; i < h.chunk_count && rc == 0; i++) {
                rc = nixcache_gcset_add(&gc->live,
                                        p + nixcache_manifest_entry_offset(i));
            }

            if (rc != 0) {
                nixcache_error("out of memory");
            }
        }
    }

    freeReplyObject(reply);

    return rc;
}


/* each fan-out directory <chunks>/<xx> is one batch */

static int
nixcache_gc_sweep(nixcache_gc_t *gc)
{
    DIR            *d;
    struct dirent  *de;

    d = opendir(gc->o->chunks);
    if (d == NULL) {
        nixcache_error("chunk directory %s: %s", gc->o->chunks,
                       strerror(errno));
        return -1;
    }

    while ((de = readdir(d)) != NULL) {
        if (strlen(de->d_name) != NIXCACHE_CHUNK_FANOUT_LEN
            || de->d_name[0] == '.')
        {
            continue;
        }

        if (nixcache_gc_sweep_dir(gc, de->d_name) != 0) {
            closedir(d);
            return -1;
        }

        gc->dirs++;
        nixcache_gc_progress(gc, 0);
    }

    closedir(d);

    return 0;
}


/* candidates: chunk files not live, older than the grace period */

static int
nixcache_gc_sweep_dir(nixcache_gc_t *gc, const char *dir)
{
    int                  fd;
    DIR                 *d;
    time_t               cutoff;
    struct stat          sb;
    struct dirent       *de;
    nixcache_gc_cand_t  *c;
    char                 path[4096];

    snprintf(path, sizeof(path), "%s/%s", gc->o->chunks, dir);

    d = opendir(path);
    if (d == NULL) {
        nixcache_error("%s: %s", path, strerror(errno));
        return -1;
    }

    fd = dirfd(d);
    cutoff = time(NULL) - gc->o->grace;
    gc->ncand = 0;

    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }

        if (gc->ncand == gc->cand_cap) {
            gc->cand_cap = gc->cand_cap ? gc->cand_cap * 2 : 1024;
            c = realloc(gc->cand, gc->cand_cap * sizeof(nixcache_gc_cand_t));
            if (c == NULL) {
                nixcache_error("out of memory");
                closedir(d);
                return -1;
            }

            gc->cand = c;
        }

        c = &gc->cand[gc->ncand];

        if (nixcache_cid_decode(c->digest, de->d_name, strlen(de->d_name))
            != 0)
        {
            continue;   /* not a chunk: left alone */
        }

        gc->files++;

        if (nixcache_gcset_has(&gc->live, c->digest)) {
            continue;
        }

        if (fstatat(fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == -1
            || sb.st_mtime > cutoff)
        {
            gc->young++;
            continue;
        }

        c->size = (uint64_t) sb.st_size;
        gc->ncand++;
    }

    closedir(d);

    if (gc->ncand == 0) {
        return 0;
    }

    return nixcache_gc_batch(gc, path);
}


/*
 * Under the lock (which moved the generation), the manifests published
 * since this run started are marked too, then the candidates still not
 * live are deleted, while the lease lasts with a wide margin; what is
 * left goes under the next lease.  A chunk already gone is not an error.
 */

static int
nixcache_gc_batch(nixcache_gc_t *gc, const char *dir)
{
    char                 path[4096];
    size_t               i, n;
    long long            now;
    nixcache_gc_cand_t  *c;

    if (strlen(gc->o->chunks) + NIXCACHE_CHUNK_RELPATH_LEN >= sizeof(path)) {
        nixcache_error("chunk directory %s: name too long", gc->o->chunks);
        return -1;
    }

    i = 0;

    while (i < gc->ncand) {
        if (!gc->o->dry_run) {
            if (nixcache_gc_time(gc, &now) != 0) {
                return -1;
            }

            if (now - gc->start > NIXCACHE_GC_MAX_RUN) {
                nixcache_error("gc: running for a day, stopped (run it "
                               "again)");
                return -1;
            }

            if (nixcache_gc_lock(gc) != 0) {
                return -1;
            }

            if (nixcache_gc_recent(gc) != 0) {
                nixcache_gc_unlock(gc);
                return -1;
            }
        }

        for ( ; i < gc->ncand; i++) {
            if (!gc->o->dry_run
                && nixcache_now() - gc->locked
                   > NIXCACHE_GC_LEASE_MS / 1000.0 / 2)
            {
                break;
            }

            c = &gc->cand[i];

            if (nixcache_gcset_has(&gc->live, c->digest)) {
                continue;
            }

            n = strlen(gc->o->chunks);
            memcpy(path, gc->o->chunks, n);
            nixcache_chunk_relpath(path + n, c->digest);
            path[n + NIXCACHE_CHUNK_RELPATH_LEN] = '\0';

            if (!gc->o->dry_run && unlink(path) == -1) {
                if (errno == ENOENT) {
                    continue;
                }

                nixcache_error("%s: %s", path, strerror(errno));
                nixcache_gc_unlock(gc);
                return -1;
            }

            gc->deleted++;
            gc->deleted_bytes += c->size;

            if (gc->o->verbose) {
                fprintf(stderr, "nixcache: gc: %s %s (%llu bytes)\n",
                        gc->o->dry_run ? "would delete" : "deleted", path,
                        (unsigned long long) c->size);
            }
        }

        if (!gc->o->dry_run) {
            nixcache_gc_unlock(gc);
        }
    }

    return 0;
}


/* the lock, waiting for another gc's batch (a lease at most) */

static int
nixcache_gc_lock(nixcache_gc_t *gc)
{
    int          tries;
    long long    n;
    redisReply  *reply;

    for (tries = 0; tries < NIXCACHE_GC_LEASE_MS / 100 + 10; tries++) {
        gc->locked = nixcache_now();

        reply = nixcache_gc_command(gc, REDIS_REPLY_INTEGER, "EVAL lock",
                                    "EVAL %s 2 %s %s %s %d",
                                    NIXCACHE_GC_SCRIPT_LOCK,
                                    NIXCACHE_GC_KEY_LOCK, NIXCACHE_GC_KEY_GEN,
                                    gc->token, NIXCACHE_GC_LEASE_MS);
        if (reply == NULL) {
            return -1;
        }

        n = reply->integer;
        freeReplyObject(reply);

        if (n == 1) {
            return 0;
        }

        usleep(100 * 1000);
    }

    nixcache_error("gc: the lock %s stays taken (another gc?)",
                   NIXCACHE_GC_KEY_LOCK);

    return -1;
}


static void
nixcache_gc_unlock(nixcache_gc_t *gc)
{
    redisReply  *reply;

    reply = nixcache_gc_command(gc, REDIS_REPLY_INTEGER, "EVAL unlock",
                                "EVAL %s 1 %s %s", NIXCACHE_GC_SCRIPT_UNLOCK,
                                NIXCACHE_GC_KEY_LOCK, gc->token);

    /* not released: it expires with its lease */

    if (reply != NULL) {
        freeReplyObject(reply);
    }
}


/*
 * The manifests published since this run started (M - 1: TIME is in
 * seconds): SCAN may have missed them, none is published while the lock
 * is held, so after this the live set covers every manifest there is.
 */

static int
nixcache_gc_recent(nixcache_gc_t *gc)
{
    size_t       i;
    redisReply  *reply;

    reply = nixcache_gc_command(gc, REDIS_REPLY_ARRAY, "ZRANGEBYSCORE recent",
                                "ZRANGEBYSCORE %s %lld +inf",
                                NIXCACHE_GC_KEY_RECENT, gc->start - 1);
    if (reply == NULL) {
        return -1;
    }

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type == REDIS_REPLY_STRING
            && nixcache_gc_mark_key(gc, reply->element[i]->str,
                                    reply->element[i]->len)
               != 0)
        {
            freeReplyObject(reply);
            return -1;
        }
    }

    freeReplyObject(reply);

    return 0;
}


static void
nixcache_gc_progress(nixcache_gc_t *gc, int final)
{
    double  now;

    if (gc->o->quiet) {
        return;
    }

    now = nixcache_now();

    if (!final && now - gc->last < 0.5) {
        return;
    }

    gc->last = now;

    fprintf(stderr,
            "nixcache: gc%s%s: %llu narinfos (%llu expired), %llu manifests "
            "(%llu %s), %llu live chunks; %u dirs, %llu chunk files, "
            "%llu %s (%llu bytes), %llu kept as young; %.1f s\n",
            final ? " done" : "", gc->o->dry_run ? " (dry run)" : "",
            (unsigned long long) gc->narinfos,
            (unsigned long long) gc->expired,
            (unsigned long long) gc->manifests,
            (unsigned long long) gc->dropped,
            gc->o->dry_run ? "would drop" : "dropped",
            (unsigned long long) gc->live.count, gc->dirs,
            (unsigned long long) gc->files,
            (unsigned long long) gc->deleted,
            gc->o->dry_run ? "would go" : "deleted",
            (unsigned long long) gc->deleted_bytes,
            (unsigned long long) gc->young, now - gc->clock);
}


/*
 * --metrics-file: the run's figures in the Prometheus text format, for
 * node_exporter's textfile collector (written to FILE.tmp, then renamed,
 * so the collector never reads half a file).  A failed run keeps the
 * last success's time from the file it replaces, so an alert on a gc
 * that has not succeeded for days sees through failures.
 */

typedef struct {
    const char                *name;
    const char                *help;
    size_t                     offset;      /* in nixcache_gc_t */
} nixcache_gc_metric_t;


#define nixcache_gc_metric(name, help, field)                                \
    { name, help, offsetof(nixcache_gc_t, field) }

static const nixcache_gc_metric_t  nixcache_gc_metrics_list[] = {
    nixcache_gc_metric("nixcache_gc_last_expired_narinfos",
        "narinfos the last gc removed by retention", expired),
    nixcache_gc_metric("nixcache_gc_last_dropped_manifests",
        "manifests no narinfo named that the last gc dropped", dropped),
    nixcache_gc_metric("nixcache_gc_last_deleted_chunks",
        "chunk files the last gc deleted", deleted),
    nixcache_gc_metric("nixcache_gc_last_deleted_bytes",
        "bytes of the chunk files the last gc deleted", deleted_bytes),
    nixcache_gc_metric("nixcache_gc_last_young_chunks",
        "unnamed chunk files the last gc kept as younger than the grace",
        young),
    nixcache_gc_metric("nixcache_gc_manifests",
        "manifests of the database at the last gc", manifests),
    nixcache_gc_metric("nixcache_gc_chunk_files",
        "chunk files of the chunk directory at the last gc", files)
};


static void
nixcache_gc_metrics(nixcache_gc_t *gc, int ok)
{
    char          tmp[4096], prefix[512];
    FILE         *f;
    double        now, success;
    size_t        i, n;
    const char   *path, *p;

    path = gc->o->metrics_file;
    now = (double) time(NULL);

    /* the label value, escaped as the text format wants */

    for (p = gc->o->prefix, n = 0; *p != '\0' && n < sizeof(prefix) - 3;
         p++)
    {
        if (*p == '\\' || *p == '"' || *p == '\n') {
            prefix[n++] = '\\';
        }

        prefix[n++] = (*p == '\n') ? 'n' : *p;
    }

    prefix[n] = '\0';

    success = ok ? now : nixcache_gc_metrics_last_success(path);

    if ((size_t) snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        nixcache_error("gc: --metrics-file %s: name too long", path);
        return;
    }

    f = fopen(tmp, "w");
    if (f == NULL) {
        nixcache_error("gc: --metrics-file %s: %s", tmp, strerror(errno));
        return;
    }

    fprintf(f, "# HELP nixcache_gc_last_run_timestamp_seconds when the last "
               "gc ended\n"
               "# TYPE nixcache_gc_last_run_timestamp_seconds gauge\n"
               "nixcache_gc_last_run_timestamp_seconds{cache=\"%s\"} %.0f\n"
               "# HELP nixcache_gc_last_run_success 1 when the last gc "
               "completed, 0 when it failed\n"
               "# TYPE nixcache_gc_last_run_success gauge\n"
               "nixcache_gc_last_run_success{cache=\"%s\"} %d\n"
               "# HELP nixcache_gc_last_success_timestamp_seconds when a "
               "gc last completed (0: never)\n"
               "# TYPE nixcache_gc_last_success_timestamp_seconds gauge\n"
               "nixcache_gc_last_success_timestamp_seconds{cache=\"%s\"} "
               "%.0f\n"
               "# HELP nixcache_gc_last_run_duration_seconds how long the "
               "last gc ran\n"
               "# TYPE nixcache_gc_last_run_duration_seconds gauge\n"
               "nixcache_gc_last_run_duration_seconds{cache=\"%s\"} %.3f\n",
            prefix, now, prefix, ok, prefix, success, prefix,
            nixcache_now() - gc->clock);

    for (i = 0; i < sizeof(nixcache_gc_metrics_list)
                    / sizeof(nixcache_gc_metrics_list[0]); i++)
    {
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s{cache=\"%s\"} %llu\n",
                nixcache_gc_metrics_list[i].name,
                nixcache_gc_metrics_list[i].help,
                nixcache_gc_metrics_list[i].name,
                nixcache_gc_metrics_list[i].name, prefix,
                (unsigned long long) *(uint64_t *)
                    ((char *) gc + nixcache_gc_metrics_list[i].offset));
    }

    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        nixcache_error("gc: --metrics-file %s: %s", path, strerror(errno));
        unlink(tmp);
    }
}


/* The success time in an earlier metrics file, 0 when there is none. */

static double
nixcache_gc_metrics_last_success(const char *path)
{
    char     line[512], *p;
    FILE    *f;
    double   t;

    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }

    t = 0;

    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "nixcache_gc_last_success_timestamp_seconds{",
                    sizeof("nixcache_gc_last_success_timestamp_seconds{") - 1)
            == 0)
        {
            p = strrchr(line, ' ');
            t = (p != NULL) ? strtod(p + 1, NULL) : 0;
            break;
        }
    }

    fclose(f);

    return t;
}
