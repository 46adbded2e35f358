/*
 * nixcache rm, pin, unpin, the options of those and of gc, and gc's
 * retention (--keep-days): paths by narinfo, in Redis only; chunks go at
 * the next gc (gc.c) when no manifest names them.
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc.h"
#include "nixcache_gc.h"
#include "nixcache_nix32.h"


#define NIXCACHE_GC_EXPIRE_PAGE     "1000"


enum {
    NIXCACHE_GC_OPT_REDIS = 256,
    NIXCACHE_GC_OPT_REDIS_AUTH,
    NIXCACHE_GC_OPT_PREFIX,
    NIXCACHE_GC_OPT_CHUNKS,
    NIXCACHE_GC_OPT_DRY_RUN,
    NIXCACHE_GC_OPT_GRACE,
    NIXCACHE_GC_OPT_KEEP_DAYS,
    NIXCACHE_GC_OPT_METRICS_FILE,
    NIXCACHE_GC_OPT_HELP
};


typedef enum {
    NIXCACHE_GC_PATH_RM = 0,
    NIXCACHE_GC_PATH_PIN,
    NIXCACHE_GC_PATH_UNPIN
} nixcache_gc_path_e;


static int nixcache_gc_path_cmd(nixcache_gc_path_e what, int argc,
    char **argv);
static int nixcache_gc_path_one(nixcache_redis_t *r, nixcache_gc_path_e what,
    const char *arg, const nixcache_gc_opts_t *o);
static int nixcache_gc_path_hash(const char *arg, char *hash);
static int nixcache_gc_number(const char *name, const char *s, long max,
    long *v);
static long long nixcache_gc_reply_int(nixcache_redis_t *r,
    redisReply *reply, const char *what);


#define NIXCACHE_GC_PATH_OPTIONS                                             \
    { "redis",     required_argument, NULL, NIXCACHE_GC_OPT_REDIS },         \
    { "redis-auth", required_argument, NULL, NIXCACHE_GC_OPT_REDIS_AUTH },   \
    { "prefix",    required_argument, NULL, NIXCACHE_GC_OPT_PREFIX },        \
    { "quiet",     no_argument,       NULL, 'q' },                           \
    { "verbose",   no_argument,       NULL, 'v' },                           \
    { "help",      no_argument,       NULL, NIXCACHE_GC_OPT_HELP }

#define NIXCACHE_GC_PATH_USAGE                                               \
    "      --redis ADDR     Redis (default $NIXCACHE_REDIS, else "           \
    NIXCACHE_CLI_REDIS_DEFAULT ")\n"                                        \
    "      --redis-auth FILE  Redis AUTH (default $NIXCACHE_REDIS_AUTH)\n"   \
    "      --prefix P       Redis key prefix (default \""                    \
    NIXCACHE_DEFAULT_PREFIX "\")\n"                                         \
    "  -q, --quiet          no summary (errors still shown)\n"              \
    "  -v, --verbose        one line per path\n"                            \
    "      --help           this help\n"


static const struct option  nixcache_gc_path_options[] = {
    NIXCACHE_GC_PATH_OPTIONS,
    { NULL, 0, NULL, 0 }
};


static const struct option  nixcache_gc_options_all[] = {
    NIXCACHE_GC_PATH_OPTIONS,
    { "chunks",    required_argument, NULL, NIXCACHE_GC_OPT_CHUNKS },
    { "dry-run",   no_argument,       NULL, NIXCACHE_GC_OPT_DRY_RUN },
    { "grace",     required_argument, NULL, NIXCACHE_GC_OPT_GRACE },
    { "keep-days", required_argument, NULL, NIXCACHE_GC_OPT_KEEP_DAYS },
    { "metrics-file", required_argument, NULL, NIXCACHE_GC_OPT_METRICS_FILE },
    { NULL, 0, NULL, 0 }
};


static const char  *nixcache_gc_path_usage[] = {
    "usage: nixcache rm [OPTIONS] PATH...\n"
    "\n"
    "Removes the narinfos of store paths (/nix/store/<hash>-<name>, or the\n"
    "hash) from the cache; their chunks go at the next gc when no manifest\n"
    "names them.\n"
    "\n"
    NIXCACHE_GC_PATH_USAGE,

    "usage: nixcache pin [OPTIONS] PATH...\n"
    "\n"
    "Pins store paths of the cache: gc --keep-days never removes them.\n"
    "\n"
    NIXCACHE_GC_PATH_USAGE,

    "usage: nixcache unpin [OPTIONS] PATH...\n"
    "\n"
    "Unpins store paths (retention applies to them again).\n"
    "\n"
    NIXCACHE_GC_PATH_USAGE
};


static const char  nixcache_gc_usage[] =
    "usage: nixcache gc [OPTIONS]\n"
    "\n"
    "Deletes the manifests no narinfo names and the chunks no manifest of\n"
    "any cache of the Redis database names, safely while pushes and\n"
    "uploads run.\n"
    "\n"
    "      --chunks DIR     chunk directory (default $NIXCACHE_CHUNKS)\n"
    "      --dry-run        print what would be deleted, delete nothing\n"
    "      --grace SECONDS  keep chunk files and unnamed manifests younger\n"
    "                       than this (default 3600)\n"
    "      --keep-days N    first remove the paths of this cache (--prefix)\n"
    "                       not pushed for N days, unless pinned\n"
    "      --metrics-file FILE  write the run's figures there for\n"
    "                       node_exporter's textfile collector (not on a\n"
    "                       dry run)\n"
    NIXCACHE_GC_PATH_USAGE;


int
nixcache_cmd_rm(int argc, char **argv)
{
    return nixcache_gc_path_cmd(NIXCACHE_GC_PATH_RM, argc, argv);
}


int
nixcache_cmd_pin(int argc, char **argv)
{
    return nixcache_gc_path_cmd(NIXCACHE_GC_PATH_PIN, argc, argv);
}


int
nixcache_cmd_unpin(int argc, char **argv)
{
    return nixcache_gc_path_cmd(NIXCACHE_GC_PATH_UNPIN, argc, argv);
}


int
nixcache_cmd_gc(int argc, char **argv)
{
    int                  rc, first;
    nixcache_gc_opts_t   o;

    rc = nixcache_gc_options("gc", argc, argv, &o, &first);
    if (rc != -1) {
        return rc;
    }

    if (first != argc) {
        nixcache_error("gc: no arguments expected");
        fputs(nixcache_gc_usage, stderr);
        return 2;
    }

    if (o.chunks == NULL) {
        nixcache_error("gc: no chunk directory: give --chunks DIR or set "
                       "NIXCACHE_CHUNKS");
        return 2;
    }

    return nixcache_gc_run(&o);
}


/*
 * Parses the options of gc (cmd "gc") or of rm, pin and unpin.  Returns
 * -1 to go on, with *first the index of the first argument, or the exit
 * status (0 after --help, 2 on a usage error).
 */

int
nixcache_gc_options(const char *cmd, int argc, char **argv,
    nixcache_gc_opts_t *o, int *first)
{
    int                   c, gc;
    const char           *env, *usage;
    const struct option  *opts;

    gc = (strcmp(cmd, "gc") == 0);
    opts = gc ? nixcache_gc_options_all : nixcache_gc_path_options;
    usage = gc ? nixcache_gc_usage
               : nixcache_gc_path_usage[strcmp(cmd, "rm") == 0 ? 0
                                        : strcmp(cmd, "pin") == 0 ? 1 : 2];

    memset(o, 0, sizeof(nixcache_gc_opts_t));
    env = getenv("NIXCACHE_REDIS");
    o->redis = (env != NULL && env[0] != '\0') ? env
                                               : NIXCACHE_CLI_REDIS_DEFAULT;
    env = getenv("NIXCACHE_REDIS_AUTH");
    o->redis_auth = (env != NULL && env[0] != '\0') ? env : NULL;
    env = getenv("NIXCACHE_CHUNKS");
    o->chunks = (env != NULL && env[0] != '\0') ? env : NULL;
    o->prefix = NIXCACHE_DEFAULT_PREFIX;
    o->grace = NIXCACHE_GC_GRACE_DEFAULT;

    optind = 1;
    opterr = 0;

    while ((c = getopt_long(argc, argv, "qv", opts, NULL)) != -1) {

        switch (c) {

        case NIXCACHE_GC_OPT_REDIS:
            o->redis = optarg;
            break;

        case NIXCACHE_GC_OPT_REDIS_AUTH:
            o->redis_auth = optarg;
            break;

        case NIXCACHE_GC_OPT_PREFIX:
            o->prefix = optarg;
            break;

        case NIXCACHE_GC_OPT_CHUNKS:
            o->chunks = optarg;
            break;

        case NIXCACHE_GC_OPT_DRY_RUN:
            o->dry_run = 1;
            break;

        case NIXCACHE_GC_OPT_GRACE:
            if (nixcache_gc_number("--grace", optarg, 86400L * 365,
                                   &o->grace)
                != 0)
            {
                return 2;
            }
            break;

        case NIXCACHE_GC_OPT_KEEP_DAYS:
            if (nixcache_gc_number("--keep-days", optarg, 36500,
                                   &o->keep_days)
                != 0 || o->keep_days == 0)
            {
                nixcache_error("gc: --keep-days is 1 or more");
                return 2;
            }
            break;

        case NIXCACHE_GC_OPT_METRICS_FILE:
            o->metrics_file = optarg;
            break;

        case 'q':
            o->quiet = 1;
            break;

        case 'v':
            o->verbose = 1;
            break;

        case NIXCACHE_GC_OPT_HELP:
            fputs(usage, stdout);
            return 0;

        default:
            nixcache_error("%s: unknown option or missing argument \"%s\"",
                           cmd, argv[optind - 1]);
            fputs(usage, stderr);
            return 2;
        }
    }

    if (!gc && optind == argc) {
        nixcache_error("%s: missing arguments", cmd);
        fputs(usage, stderr);
        return 2;
    }

    if (o->quiet) {
        o->verbose = 0;
    }

    *first = optind;

    return -1;
}


static int
nixcache_gc_number(const char *name, const char *s, long max, long *v)
{
    char  *end;
    long   n;

    errno = 0;
    n = strtol(s, &end, 10);

    if (errno != 0 || end == s || *end != '\0' || n < 0 || n > max) {
        nixcache_error("invalid %s \"%s\" (0..%ld)", name, s, max);
        return -1;
    }

    *v = n;

    return 0;
}


static int
nixcache_gc_path_cmd(nixcache_gc_path_e what, int argc, char **argv)
{
    int                  i, rc, first, failed, done;
    nixcache_redis_t     r;
    nixcache_gc_opts_t   o;

    static const char  *names[] = { "rm", "pin", "unpin" };
    static const char  *verbs[] = { "removed", "pinned", "unpinned" };

    rc = nixcache_gc_options(names[what], argc, argv, &o, &first);
    if (rc != -1) {
        return rc;
    }

    if (nixcache_redis_open(&r, o.redis, o.redis_auth, o.prefix) != 0) {
        return 1;
    }

    failed = 0;
    done = 0;

    for (i = first; i < argc; i++) {
        rc = nixcache_gc_path_one(&r, what, argv[i], &o);

        if (rc == -1) {
            failed++;

        } else {
            done += rc;
        }
    }

    nixcache_redis_close(&r);

    if (!o.quiet) {
        fprintf(stderr, "nixcache: %s done: %d of %d paths %s, %d failed\n",
                names[what], done, argc - first, verbs[what], failed);
    }

    return failed ? 1 : 0;
}


/* 1 done, 0 nothing to do (said why with -v, or an error for pin), -1 */

static int
nixcache_gc_path_one(nixcache_redis_t *r, nixcache_gc_path_e what,
    const char *arg, const nixcache_gc_opts_t *o)
{
    char          hash[NIXCACHE_STORE_HASH_NIX32_LEN + 1];
    char         *key, *set;
    size_t        klen, slen;
    long long     n;
    redisReply   *reply;

    if (nixcache_gc_path_hash(arg, hash) != 0) {
        nixcache_error("\"%s\" is not a store path nor a store hash", arg);
        return -1;
    }

    key = nixcache_redis_key(r, NIXCACHE_KEY_KIND_NARINFO, hash,
                             NIXCACHE_STORE_HASH_NIX32_LEN, &klen);
    set = nixcache_redis_key(r, what == NIXCACHE_GC_PATH_RM
                                ? NIXCACHE_KEY_KIND_ACCESS
                                : NIXCACHE_KEY_KIND_PIN, NULL, 0, &slen);
    if (key == NULL || set == NULL) {
        free(key);
        free(set);
        return -1;
    }

    switch (what) {

    case NIXCACHE_GC_PATH_RM:
        reply = redisCommand(r->ctx, "ZREM %b %s", set, slen, hash);
        n = nixcache_gc_reply_int(r, reply, "ZREM");
        reply = (n < 0) ? NULL : redisCommand(r->ctx, "DEL %b", key, klen);
        break;

    case NIXCACHE_GC_PATH_PIN:
        n = nixcache_redis_has_narinfo(r, hash);

        if (n == 0) {
            nixcache_error("%s: not in the cache (prefix \"%s\"), not pinned",
                           arg, r->prefix);
            free(key);
            free(set);
            return -1;
        }

        reply = (n < 0) ? NULL
                        : redisCommand(r->ctx, "SADD %b %s", set, slen, hash);
        break;

    default:
        reply = redisCommand(r->ctx, "SREM %b %s", set, slen, hash);
        break;
    }

    free(key);
    free(set);

    n = (reply == NULL && r->ctx->err == 0) ? -1
        : nixcache_gc_reply_int(r, reply, "Redis");

    if (n < 0) {
        return -1;
    }

    if (o->verbose) {
        fprintf(stderr, "nixcache: %s: %s\n", arg,
                n > 0 ? "done"
                      : what == NIXCACHE_GC_PATH_RM ? "not in the cache"
                      : what == NIXCACHE_GC_PATH_PIN ? "pinned already"
                      : "was not pinned");
    }

    return n > 0;
}


/* "/nix/store/<hash>-<name>", "<hash>-<name>" or "<hash>" */

static int
nixcache_gc_path_hash(const char *arg, char *hash)
{
    size_t       n, len;
    const char  *base;

    n = sizeof(NIXCACHE_STORE_DIR) - 1;
    base = (strncmp(arg, NIXCACHE_STORE_DIR, n) == 0) ? arg + n : arg;
    len = strlen(base);

    if (len < NIXCACHE_STORE_HASH_NIX32_LEN
        || (len > NIXCACHE_STORE_HASH_NIX32_LEN
            && base[NIXCACHE_STORE_HASH_NIX32_LEN] != '-')
        || !nixcache_nix32_valid(base, NIXCACHE_STORE_HASH_NIX32_LEN)
        || strchr(base, '/') != NULL)
    {
        return -1;
    }

    memcpy(hash, base, NIXCACHE_STORE_HASH_NIX32_LEN);
    hash[NIXCACHE_STORE_HASH_NIX32_LEN] = '\0';

    return 0;
}


/* an integer reply, freed; -1 (printed) for anything else */

static long long
nixcache_gc_reply_int(nixcache_redis_t *r, redisReply *reply,
    const char *what)
{
    long long  n;

    if (reply == NULL) {
        nixcache_error("Redis at %s: %s: %s", r->addr, what, r->ctx->errstr);
        return -1;
    }

    if (reply->type != REDIS_REPLY_INTEGER) {
        nixcache_error("Redis at %s: %s: %s", r->addr, what,
                       reply->type == REDIS_REPLY_ERROR ? reply->str
                                                        : "unexpected reply");
        freeReplyObject(reply);
        return -1;
    }

    n = reply->integer;
    freeReplyObject(reply);

    return n;
}


/*
 * --keep-days: the paths of this cache last published before now - N
 * days, unless pinned, each checked again by the expire script.  Paged:
 * what is removed leaves the range, what is kept (pinned) is skipped.
 */

int
nixcache_gc_retention(nixcache_gc_opts_t *o, nixcache_redis_t *r,
    long long now, uint64_t *removed)
{
    int          rc;
    char        *akey, *pkey, *nkey;
    size_t       i, alen, plen, nlen;
    long long    cutoff, offset, n;
    redisReply  *page, *reply;

    cutoff = now - (long long) o->keep_days * 86400;
    akey = nixcache_redis_key(r, NIXCACHE_KEY_KIND_ACCESS, NULL, 0, &alen);
    pkey = nixcache_redis_key(r, NIXCACHE_KEY_KIND_PIN, NULL, 0, &plen);
    rc = -1;
    offset = 0;

    if (akey == NULL || pkey == NULL) {
        goto done;
    }

    for ( ;; ) {
        page = redisCommand(r->ctx, "ZRANGEBYSCORE %b -inf (%lld LIMIT %lld "
                            NIXCACHE_GC_EXPIRE_PAGE, akey, alen, cutoff,
                            offset);

        if (page == NULL || page->type != REDIS_REPLY_ARRAY) {
            nixcache_gc_reply_int(r, page, "ZRANGEBYSCORE access");
            goto done;
        }

        if (page->elements == 0) {
            freeReplyObject(page);
            break;
        }

        for (i = 0; i < page->elements; i++) {
            nkey = nixcache_redis_key(r, NIXCACHE_KEY_KIND_NARINFO,
                                      page->element[i]->str,
                                      page->element[i]->len, &nlen);
            if (nkey == NULL) {
                freeReplyObject(page);
                goto done;
            }

            if (o->dry_run) {
                reply = redisCommand(r->ctx, "SISMEMBER %b %b", pkey, plen,
                                     page->element[i]->str,
                                     page->element[i]->len);
                n = nixcache_gc_reply_int(r, reply, "SISMEMBER") == 0;

            } else {
                reply = redisCommand(r->ctx, "EVAL %s 3 %b %b %b %b %lld",
                                     NIXCACHE_GC_SCRIPT_EXPIRE, nkey, nlen,
                                     akey, alen, pkey, plen,
                                     page->element[i]->str,
                                     page->element[i]->len, cutoff);
                n = nixcache_gc_reply_int(r, reply, "EVAL expire");
            }

            free(nkey);

            if (n < 0) {
                freeReplyObject(page);
                goto done;
            }

            if (n > 0) {
                (*removed)++;

                if (o->verbose) {
                    fprintf(stderr, "nixcache: gc: %s %s%.*s (not pushed for "
                            "%ld days)\n", o->dry_run ? "would remove"
                                                      : "removed",
                            r->prefix, (int) page->element[i]->len,
                            page->element[i]->str, o->keep_days);
                }
            }

            if (n == 0 || o->dry_run) {
                offset++;
            }
        }

        freeReplyObject(page);
    }

    rc = 0;

done:

    free(akey);
    free(pkey);

    return rc;
}
