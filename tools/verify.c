/*
 * nixcache verify: walks every narinfo of a cache (SCAN, never KEYS) and
 * checks what serving it needs: the narinfo parses and names its own key,
 * its manifest exists, is well formed and agrees with it (NarHash, NarSize,
 * FileHash, FileSize), and every chunk the manifest lists is on disk with
 * the listed size.  Without --quick each chunk is also decompressed and
 * hashed against its ID, and FileHash and NarHash are recomputed over the
 * whole NAR.
 *
 * With --s3-endpoint and --s3-bucket the chunks are looked for in the
 * bucket instead (one request at a time: HEAD with --quick, else GET).
 *
 * It reports, never repairs.  Memory is bounded whatever the cache or NAR
 * size: one SCAN batch of keys, one window of manifest entries, one
 * compressed frame and one decompressed chunk.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli.h"
#include "verify.h"
#include "nixcache_cid.h"
#include "nixcache_frame.h"
#include "nixcache_manifest.h"
#include "nixcache_nix32.h"


#define NIXCACHE_VERIFY_SCAN_COUNT  "1000"
#define NIXCACHE_VERIFY_WINDOW      1024        /* manifest entries */

#define NIXCACHE_VERIFY_USAGE                                                \
    "usage: nixcache verify [OPTIONS]\n"                                     \
    "\n"                                                                     \
    "Checks every narinfo of the cache: its manifest, and every chunk the\n" \
    "manifest lists (present, size; unless --quick also decompressed and\n"  \
    "hashed, and the NAR's FileHash and NarHash recomputed).  Problems are\n" \
    "printed on stdout, one a line; nothing is changed.  Exit status: 0\n"   \
    "sound, 1 problems found, 2 usage or Redis error.\n"                     \
    "\n"                                                                     \
    "      --redis ADDR     Redis: host:port, [IPv6]:port,\n"              \
    "                       redis://host[:port][/db], unix:/path[?db=N]\n"  \
    "                       (default $NIXCACHE_REDIS, else\n"               \
    "                       " NIXCACHE_CLI_REDIS_DEFAULT ")\n"               \
    "      --redis-auth FILE  Redis AUTH: FILE holds \"password\" or\n"     \
    "                       \"user password\"\n"                             \
    "                       (default $NIXCACHE_REDIS_AUTH)\n"                \
    "      --chunks DIR     chunk directory (default $NIXCACHE_CHUNKS)\n"    \
    "      --prefix P       Redis key prefix (default \""                    \
    NIXCACHE_DEFAULT_PREFIX "\")\n"                                         \
    "      --quick          chunk sizes only: no decompression or hashing\n" \
    "      --s3-endpoint URL, --s3-bucket NAME, --s3-region R,\n"            \
    "      --s3-prefix P, --s3-credentials FILE, --s3-path-style,\n"         \
    "      --s3-virtual-host\n"                                              \
    "                       check the chunks in S3 instead (as for push)\n"  \
    "      --help           this help\n"


enum {
    NIXCACHE_VERIFY_OPT_REDIS = 256,
    NIXCACHE_VERIFY_OPT_REDIS_AUTH,
    NIXCACHE_VERIFY_OPT_CHUNKS,
    NIXCACHE_VERIFY_OPT_PREFIX,
    NIXCACHE_VERIFY_OPT_QUICK,
    NIXCACHE_VERIFY_OPT_S3_ENDPOINT,
    NIXCACHE_VERIFY_OPT_S3_BUCKET,
    NIXCACHE_VERIFY_OPT_S3_REGION,
    NIXCACHE_VERIFY_OPT_S3_PREFIX,
    NIXCACHE_VERIFY_OPT_S3_CREDENTIALS,
    NIXCACHE_VERIFY_OPT_S3_PATH_STYLE,
    NIXCACHE_VERIFY_OPT_S3_VIRTUAL_HOST,
    NIXCACHE_VERIFY_OPT_HELP
};


typedef struct {
    nixcache_redis_t           redis;
    nixcache_s3_t             *s3;          /* NULL: the disk tier */
    const char                *chunks;
    char                      *path;        /* chunks + "/xx/CID" */
    size_t                     path_dir_len;
    char                      *key;         /* nixcache_verify_key() */
    size_t                     prefix_len;
    unsigned char             *window;
    unsigned char             *frame;
    size_t                     frame_cap;
    unsigned char             *plain;
    size_t                     plain_cap;
    ZSTD_DCtx                 *dctx;
    nixcache_sha256_t          nar_ctx;
    nixcache_sha256_t          file_ctx;
    uint64_t                   narinfos;
    uint64_t                   refs;
    uint64_t                   bytes;
    uint64_t                   problems;
    unsigned                   quick:1;
} nixcache_verify_t;


/* What one manifest is checked against, and what it names in reports. */
typedef struct {
    const char                *name;        /* NarHash, nix32 */
    nixcache_manifest_header_t header;
    uint64_t                   usize;
    uint64_t                   csize;
    uint64_t                   bad_chunks;
} nixcache_verify_nar_t;


static int nixcache_verify_scan(nixcache_verify_t *v, const char *prefix);
static int nixcache_verify_narinfo(nixcache_verify_t *v, const char *key,
    size_t key_len, size_t prefix_len);
static int nixcache_verify_manifest(nixcache_verify_t *v,
    const char *store_hash, const nixcache_narinfo_t *ni,
    const unsigned char *nar_hash);
static int nixcache_verify_entries(nixcache_verify_t *v,
    nixcache_verify_nar_t *nar);
static void nixcache_verify_chunk(nixcache_verify_t *v,
    nixcache_verify_nar_t *nar, const nixcache_manifest_entry_t *e);
static int nixcache_verify_fetch(nixcache_verify_t *v,
    nixcache_verify_nar_t *nar, const nixcache_manifest_entry_t *e,
    const char *cid);
static int nixcache_verify_read(int fd, unsigned char *buf, size_t len);
static int nixcache_verify_grow(unsigned char **buf, size_t *cap,
    size_t len);
static redisReply *nixcache_verify_command(nixcache_verify_t *v,
    const char *fmt, ...);
static int nixcache_verify_string(nixcache_verify_t *v, redisReply *reply,
    const char *what, const char *name);
static size_t nixcache_verify_key(nixcache_verify_t *v,
    nixcache_key_kind_e kind, const char *name, size_t len);
static int nixcache_verify_exists(nixcache_verify_t *v,
    nixcache_key_kind_e kind, const char *name, size_t len);
static void nixcache_verify_problem(nixcache_verify_t *v,
    const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void nixcache_verify_free(nixcache_verify_t *v);


static const struct option  nixcache_verify_options[] = {
    { "redis",  required_argument, NULL, NIXCACHE_VERIFY_OPT_REDIS },
    { "redis-auth", required_argument, NULL,
      NIXCACHE_VERIFY_OPT_REDIS_AUTH },
    { "chunks", required_argument, NULL, NIXCACHE_VERIFY_OPT_CHUNKS },
    { "prefix", required_argument, NULL, NIXCACHE_VERIFY_OPT_PREFIX },
    { "quick",  no_argument,       NULL, NIXCACHE_VERIFY_OPT_QUICK },
    { "s3-endpoint", required_argument, NULL,
      NIXCACHE_VERIFY_OPT_S3_ENDPOINT },
    { "s3-bucket", required_argument, NULL, NIXCACHE_VERIFY_OPT_S3_BUCKET },
    { "s3-region", required_argument, NULL, NIXCACHE_VERIFY_OPT_S3_REGION },
    { "s3-prefix", required_argument, NULL, NIXCACHE_VERIFY_OPT_S3_PREFIX },
    { "s3-credentials", required_argument, NULL,
      NIXCACHE_VERIFY_OPT_S3_CREDENTIALS },
    { "s3-path-style", no_argument, NULL,
      NIXCACHE_VERIFY_OPT_S3_PATH_STYLE },
    { "s3-virtual-host", no_argument, NULL,
      NIXCACHE_VERIFY_OPT_S3_VIRTUAL_HOST },
    { "help",   no_argument,       NULL, NIXCACHE_VERIFY_OPT_HELP },
    { NULL, 0, NULL, 0 }
};


int
nixcache_cmd_verify(int argc, char **argv)
{
    int                  c, rc;
    char                 err[NIXCACHE_S3_ERROR_MAX];
    size_t               len;
    double               start;
    const char          *redis, *redis_auth, *prefix, *env;
    struct stat          sb;
    nixcache_verify_t    v;
    nixcache_s3_conf_t   s3;

    memset(&v, 0, sizeof(nixcache_verify_t));
    memset(&s3, 0, sizeof(nixcache_s3_conf_t));
    s3.path_style = -1;
    s3.inflight = 1;

    env = getenv("NIXCACHE_REDIS");
    redis = (env != NULL && env[0] != '\0') ? env : NIXCACHE_CLI_REDIS_DEFAULT;
    env = getenv("NIXCACHE_REDIS_AUTH");
    redis_auth = (env != NULL && env[0] != '\0') ? env : NULL;
    env = getenv("NIXCACHE_CHUNKS");
    v.chunks = (env != NULL && env[0] != '\0') ? env : NULL;
    prefix = NIXCACHE_DEFAULT_PREFIX;

    optind = 1;
    opterr = 0;

    for ( ;; ) {
        c = getopt_long(argc, argv, "", nixcache_verify_options, NULL);
        if (c == -1) {
            break;
        }

        switch (c) {

        case NIXCACHE_VERIFY_OPT_REDIS:
            redis = optarg;
            break;

        case NIXCACHE_VERIFY_OPT_REDIS_AUTH:
            redis_auth = optarg;
            break;

        case NIXCACHE_VERIFY_OPT_CHUNKS:
            v.chunks = optarg;
            break;

        case NIXCACHE_VERIFY_OPT_PREFIX:
            prefix = optarg;
            break;

        case NIXCACHE_VERIFY_OPT_QUICK:
            v.quick = 1;
            break;

        case NIXCACHE_VERIFY_OPT_S3_ENDPOINT:
            s3.endpoint = optarg;
            break;

        case NIXCACHE_VERIFY_OPT_S3_BUCKET:
            s3.bucket = optarg;
            break;

        case NIXCACHE_VERIFY_OPT_S3_REGION:
            s3.region = optarg;
            break;

        case NIXCACHE_VERIFY_OPT_S3_PREFIX:
            s3.prefix = optarg;
            break;

        case NIXCACHE_VERIFY_OPT_S3_CREDENTIALS:
            s3.credentials = optarg;
            break;

        case NIXCACHE_VERIFY_OPT_S3_PATH_STYLE:
            s3.path_style = 1;
            break;

        case NIXCACHE_VERIFY_OPT_S3_VIRTUAL_HOST:
            s3.path_style = 0;
            break;

        case NIXCACHE_VERIFY_OPT_HELP:
            fputs(NIXCACHE_VERIFY_USAGE, stdout);
            return 0;

        default:
            nixcache_error("verify: unknown option or missing argument "
                           "\"%s\"", argv[optind - 1]);
            fputs(NIXCACHE_VERIFY_USAGE, stderr);
            return 2;
        }
    }

    if (optind < argc) {
        nixcache_error("verify: unexpected argument \"%s\"", argv[optind]);
        fputs(NIXCACHE_VERIFY_USAGE, stderr);
        return 2;
    }

    if ((s3.endpoint == NULL) != (s3.bucket == NULL)) {
        nixcache_error("verify: --s3-endpoint and --s3-bucket go together");
        return 2;
    }

    if (s3.endpoint != NULL) {
        v.s3 = nixcache_s3_open(&s3, err, sizeof(err));
        if (v.s3 == NULL) {
            nixcache_error("%s", err);
            return 2;
        }

        /* the disk tier is not looked at */
        v.chunks = "";

    } else if (v.chunks == NULL) {
        nixcache_error("verify: no chunk directory: give --chunks DIR or "
                       "set NIXCACHE_CHUNKS");
        return 2;
    }

    errno = 0;

    /*
     * A chunk directory that does not exist yet is consistent with a cache
     * that references no chunk (a push killed before its first chunk): any
     * chunk a manifest names is then reported missing, one by one.
     */

    if (v.s3 == NULL
        && (stat(v.chunks, &sb) == -1 || !S_ISDIR(sb.st_mode)))
    {
        if (errno != ENOENT) {
            nixcache_error("verify: chunk directory %s: %s", v.chunks,
                           errno != 0 ? strerror(errno) : "not a directory");
            return 2;
        }

        nixcache_error("verify: chunk directory %s does not exist",
                       v.chunks);
    }

    len = strlen(v.chunks);

    v.path = malloc(len + NIXCACHE_CHUNK_RELPATH_LEN + 1);
    v.window = malloc(NIXCACHE_VERIFY_WINDOW * NIXCACHE_MANIFEST_ENTRY_LEN);
    v.dctx = ZSTD_createDCtx();

    /* the longest key looked up: a manifest's (a NarHash is the longer) */

    v.prefix_len = strlen(prefix);
    v.key = malloc(nixcache_key_len(v.prefix_len, NIXCACHE_KEY_KIND_MANIFEST,
                                    NIXCACHE_SHA256_NIX32_LEN));

    if (v.path == NULL || v.window == NULL || v.dctx == NULL
        || v.key == NULL)
    {
        nixcache_error("out of memory");
        nixcache_verify_free(&v);
        return 2;
    }

    memcpy(v.path, v.chunks, len);
    v.path_dir_len = len;

    if (nixcache_redis_open(&v.redis, redis, redis_auth, prefix) != 0) {
        nixcache_verify_free(&v);
        return 2;
    }

    start = nixcache_now();

    rc = nixcache_verify_scan(&v, prefix);

    fprintf(stderr, "nixcache: verify%s: %llu narinfos, %llu chunk "
            "references (%llu bytes), %llu problems%s, %.1f s\n",
            rc == 0 ? " done" : " stopped",
            (unsigned long long) v.narinfos, (unsigned long long) v.refs,
            (unsigned long long) v.bytes, (unsigned long long) v.problems,
            v.quick ? " (quick: chunk sizes only)" : "",
            nixcache_now() - start);

    nixcache_verify_free(&v);

    if (rc != 0) {
        return 2;
    }

    return v.problems ? 1 : 0;
}


static void
nixcache_verify_free(nixcache_verify_t *v)
{
    nixcache_redis_close(&v->redis);
    nixcache_s3_close(v->s3);
    ZSTD_freeDCtx(v->dctx);
    free(v->plain);
    free(v->frame);
    free(v->window);
    free(v->path);
    free(v->key);

    v->s3 = NULL;
    v->dctx = NULL;
    v->plain = NULL;
    v->frame = NULL;
    v->window = NULL;
    v->path = NULL;
    v->key = NULL;
}


/*
 * SCAN may return a key twice (while Redis rehashes) and misses keys added
 * during the walk: both are fine for a report of what was there.  The
 * prefix is escaped, since MATCH takes a glob.
 */

static int
nixcache_verify_scan(nixcache_verify_t *v, const char *prefix)
{
    int          rc;
    char        *pattern, *p, cursor[32];
    size_t       i, n, plen;
    redisReply  *reply, *keys, *cur;

    plen = strlen(prefix);

    pattern = malloc(2 * plen + nixcache_key_len(0, NIXCACHE_KEY_KIND_NARINFO,
                                                 1));
    if (pattern == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    p = pattern;

    for (i = 0; i < plen; i++) {
        if (strchr("*?[]\\", prefix[i]) != NULL) {
            *p++ = '\\';
        }

        *p++ = prefix[i];
    }

    p = nixcache_key_build(p, "", 0, NIXCACHE_KEY_KIND_NARINFO, "*", 1);
    n = (size_t) (p - pattern);

    memcpy(cursor, "0", 2);
    rc = -1;

    do {
        reply = nixcache_verify_command(v, "SCAN %s MATCH %b COUNT "
                                        NIXCACHE_VERIFY_SCAN_COUNT,
                                        cursor, pattern, n);
        if (reply == NULL) {
            goto failed;
        }

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
            || reply->element[0]->type != REDIS_REPLY_STRING
            || reply->element[0]->len >= sizeof(cursor)
            || reply->element[1]->type != REDIS_REPLY_ARRAY)
        {
            nixcache_error("Redis at %s: SCAN: unexpected reply",
                           v->redis.addr);
            freeReplyObject(reply);
            goto failed;
        }

        cur = reply->element[0];
        memcpy(cursor, cur->str, cur->len);
        cursor[cur->len] = '\0';

        keys = reply->element[1];

        for (i = 0; i < keys->elements; i++) {
            if (keys->element[i]->type != REDIS_REPLY_STRING) {
                continue;
            }

            if (nixcache_verify_narinfo(v, keys->element[i]->str,
                                        keys->element[i]->len, plen)
                != 0)
            {
                freeReplyObject(reply);
                goto failed;
            }
        }

        freeReplyObject(reply);

    } while (strcmp(cursor, "0") != 0);

    rc = 0;

failed:

    free(pattern);

    return rc;
}


/*
 * One narinfo key.  Returns 0 when it was checked (problems reported),
 * -1 when Redis failed.
 */

static int
nixcache_verify_narinfo(nixcache_verify_t *v, const char *key,
    size_t key_len, size_t prefix_len)
{
    int                  rc;
    char                       hash[NIXCACHE_STORE_HASH_NIX32_LEN + 1];
    size_t                     len;
    const char                *name, *err;
    redisReply                *reply;
    nixcache_narinfo_t         ni, want;
    unsigned char              nar_hash[NIXCACHE_SHA256_LEN];
    nixcache_narinfo_point_t   point;

    v->narinfos++;

    if (nixcache_key_name(key, key_len, v->redis.prefix, prefix_len,
                          NIXCACHE_KEY_KIND_NARINFO, &name, &len)
        != 0
        || len != NIXCACHE_STORE_HASH_NIX32_LEN
        || !nixcache_nix32_valid(name, len))
    {
        nixcache_verify_problem(v, "narinfo key %.*s: not a store hash",
                                (int) key_len, key);
        return 0;
    }

    memcpy(hash, name, len);
    hash[len] = '\0';

    /* one byte past the limit tells an oversized text */

    reply = nixcache_verify_command(v, "GETRANGE %b 0 %d", key, key_len,
                                    NIXCACHE_NARINFO_MAX_LEN);

    rc = nixcache_verify_string(v, reply, "narinfo", hash);
    if (rc != 1) {
        return rc;
    }

    if (reply->len == 0) {
        freeReplyObject(reply);

        rc = nixcache_verify_exists(v, NIXCACHE_KEY_KIND_NARINFO, hash,
                                    len);
        if (rc == -1) {
            return -1;
        }

        if (rc == 0) {
            /* deleted since SCAN returned it */
            v->narinfos--;
            return 0;
        }

        nixcache_verify_problem(v, "narinfo %s: empty", hash);
        return 0;
    }

    if (reply->len > NIXCACHE_NARINFO_MAX_LEN) {
        nixcache_verify_problem(v, "narinfo %s: longer than %d bytes", hash,
                                NIXCACHE_NARINFO_MAX_LEN);
        freeReplyObject(reply);
        return 0;
    }

    rc = 0;

    if (nixcache_narinfo_parse(&ni, reply->str, reply->len, &err) != 0) {
        nixcache_verify_problem(v, "narinfo %s: unparsable: %s", hash, err);
        goto done;
    }

    if (!nixcache_narinfo_is_path(&ni, hash, NIXCACHE_STORE_HASH_NIX32_LEN)) {
        nixcache_verify_problem(v, "narinfo %s: StorePath %.*s does not "
                                "match its key", hash,
                                (int) ni.store_path.len, ni.store_path.data);
    }

    if (ni.compression.len != 4
        || memcmp(ni.compression.data, "zstd", 4) != 0)
    {
        nixcache_verify_problem(v, "narinfo %s: Compression \"%.*s\", not "
                                "zstd", hash, (int) ni.compression.len,
                                ni.compression.data);
    }

    if (nixcache_hash_parse(nar_hash, ni.nar_hash.data, ni.nar_hash.len)
        != 0)
    {
        nixcache_verify_problem(v, "narinfo %s: NarHash %.*s is not a "
                                "sha256", hash, (int) ni.nar_hash.len,
                                ni.nar_hash.data);
        goto done;
    }

    want = ni;
    nixcache_narinfo_point(&want, &point, NIXCACHE_NARINFO_ZSTD, nar_hash,
                           NULL, 0);

    if (ni.url.len != want.url.len
        || memcmp(ni.url.data, want.url.data, want.url.len) != 0)
    {
        nixcache_verify_problem(v, "narinfo %s: URL %.*s, expected %.*s",
                                hash, (int) ni.url.len, ni.url.data,
                                (int) want.url.len, want.url.data);
    }

    rc = nixcache_verify_manifest(v, hash, &ni, nar_hash);

done:

    freeReplyObject(reply);

    return rc;
}


static int
nixcache_verify_manifest(nixcache_verify_t *v, const char *store_hash,
    const nixcache_narinfo_t *ni, const unsigned char *nar_hash)
{
    int                     rc;
    char                    name[NIXCACHE_SHA256_NIX32_LEN + 1];
    char                    hstr[NIXCACHE_HASH_STR_LEN + 1];
    size_t                  klen;
    long long               len;
    redisReply             *reply;
    unsigned char           digest[NIXCACHE_SHA256_LEN];
    nixcache_verify_nar_t   nar;

    nixcache_nix32_encode(name, nar_hash, NIXCACHE_SHA256_LEN);
    name[NIXCACHE_SHA256_NIX32_LEN] = '\0';

    memset(&nar, 0, sizeof(nixcache_verify_nar_t));
    nar.name = name;

    klen = nixcache_verify_key(v, NIXCACHE_KEY_KIND_MANIFEST, name,
                               NIXCACHE_SHA256_NIX32_LEN);
    reply = nixcache_verify_command(v, "GETRANGE %b 0 %d", v->key, klen,
                                    NIXCACHE_MANIFEST_HEADER_LEN - 1);

    rc = nixcache_verify_string(v, reply, "manifest", name);
    if (rc != 1) {
        return rc;
    }

    if (reply->len == 0) {
        freeReplyObject(reply);

        rc = nixcache_verify_exists(v, NIXCACHE_KEY_KIND_MANIFEST, name,
                                    NIXCACHE_SHA256_NIX32_LEN);
        if (rc == -1) {
            return -1;
        }

        if (rc == 0) {
            nixcache_verify_problem(v, "narinfo %s: missing manifest %s",
                                    store_hash, name);

        } else {
            nixcache_verify_problem(v, "manifest %s: empty", name);
        }

        return 0;
    }

    rc = nixcache_manifest_header_decode(&nar.header,
                                         (unsigned char *) reply->str,
                                         reply->len);
    freeReplyObject(reply);

    if (rc != 0) {
        nixcache_verify_problem(v, "manifest %s: invalid header", name);
        return 0;
    }

    klen = nixcache_verify_key(v, NIXCACHE_KEY_KIND_MANIFEST, name,
                               NIXCACHE_SHA256_NIX32_LEN);
    reply = nixcache_verify_command(v, "STRLEN %b", v->key, klen);
    if (reply == NULL) {
        return -1;
    }

    len = (reply->type == REDIS_REPLY_INTEGER) ? reply->integer : -1;
    freeReplyObject(reply);

    if (len < 0
        || (uint64_t) len
           != nixcache_manifest_entry_offset(nar.header.chunk_count))
    {
        nixcache_verify_problem(v, "manifest %s: %lld bytes, %u entries "
                                "need %llu", name, len,
                                nar.header.chunk_count,
                                (unsigned long long)
                                nixcache_manifest_entry_offset(
                                    nar.header.chunk_count));
        return 0;
    }

    /* the narinfo and its manifest must describe the same bytes */

    if (memcmp(nar.header.nar_hash, nar_hash, NIXCACHE_SHA256_LEN) != 0) {
        nixcache_hash_format(hstr, nar.header.nar_hash);
        hstr[NIXCACHE_HASH_STR_LEN] = '\0';
        nixcache_verify_problem(v, "narinfo %s: NarHash %.*s, its manifest "
                                "%s says %s", store_hash,
                                (int) ni->nar_hash.len, ni->nar_hash.data,
                                name, hstr);
    }

    if (ni->nar_size != nar.header.nar_size) {
        nixcache_verify_problem(v, "narinfo %s: NarSize %llu, manifest %s "
                                "says %llu", store_hash,
                                (unsigned long long) ni->nar_size, name,
                                (unsigned long long) nar.header.nar_size);
    }

    if (ni->file_size != nar.header.file_size) {
        nixcache_verify_problem(v, "narinfo %s: FileSize %llu, manifest %s "
                                "says %llu", store_hash,
                                (unsigned long long) ni->file_size, name,
                                (unsigned long long) nar.header.file_size);
    }

    if (ni->file_hash.len == 0) {
        nixcache_verify_problem(v, "narinfo %s: no FileHash", store_hash);

    } else if (nixcache_hash_parse(digest, ni->file_hash.data,
                                   ni->file_hash.len)
               != 0
               || memcmp(digest, nar.header.file_hash, NIXCACHE_SHA256_LEN)
                  != 0)
    {
        nixcache_hash_format(hstr, nar.header.file_hash);
        hstr[NIXCACHE_HASH_STR_LEN] = '\0';
        nixcache_verify_problem(v, "narinfo %s: FileHash %.*s, manifest %s "
                                "says %s", store_hash,
                                (int) ni->file_hash.len, ni->file_hash.data,
                                name, hstr);
    }

    return nixcache_verify_entries(v, &nar);
}


/* The entries, a window at a time, and the chunks they name. */

static int
nixcache_verify_entries(nixcache_verify_t *v, nixcache_verify_nar_t *nar)
{
    int                         rc;
    char                        hstr[NIXCACHE_HASH_STR_LEN + 1];
    size_t                      klen;
    uint32_t                    i, k, n;
    uint64_t                    off;
    redisReply                 *reply;
    unsigned char               digest[NIXCACHE_SHA256_LEN];
    nixcache_manifest_entry_t   e;

    if (!v->quick) {
        if (nixcache_sha256_init(&v->nar_ctx) != 0) {
            nixcache_error("SHA-256: cannot initialise");
            return -1;
        }

        if (nixcache_sha256_init(&v->file_ctx) != 0) {
            nixcache_sha256_free(&v->nar_ctx);
            nixcache_error("SHA-256: cannot initialise");
            return -1;
        }
    }

    rc = -1;

    for (i = 0; i < nar->header.chunk_count; i += n) {
        n = nar->header.chunk_count - i;
        if (n > NIXCACHE_VERIFY_WINDOW) {
            n = NIXCACHE_VERIFY_WINDOW;
        }

        off = nixcache_manifest_entry_offset(i);

        klen = nixcache_verify_key(v, NIXCACHE_KEY_KIND_MANIFEST, nar->name,
                                   NIXCACHE_SHA256_NIX32_LEN);
        reply = nixcache_verify_command(v, "GETRANGE %b %llu %llu", v->key,
                                        klen, (unsigned long long) off,
                                        (unsigned long long)
                                        (off + (uint64_t) n
                                               * NIXCACHE_MANIFEST_ENTRY_LEN
                                         - 1));
        if (reply == NULL) {
            goto done;
        }

        if (reply->type != REDIS_REPLY_STRING
            || reply->len != (size_t) n * NIXCACHE_MANIFEST_ENTRY_LEN)
        {
            /* replaced or deleted under our feet */
            nixcache_verify_problem(v, "manifest %s: changed while read",
                                    nar->name);
            freeReplyObject(reply);
            rc = 0;
            goto done;
        }

        memcpy(v->window, reply->str, reply->len);
        freeReplyObject(reply);

        for (k = 0; k < n; k++) {
            nixcache_manifest_entry_decode(&e, v->window
                                               + (size_t) k
                                                 * NIXCACHE_MANIFEST_ENTRY_LEN);

            nar->usize += e.usize;
            nar->csize += e.csize;

            if (e.usize == 0 || e.csize == 0
                || e.usize > NIXCACHE_CHUNK_MAX_LIMIT
                || e.csize > ZSTD_compressBound(e.usize))
            {
                nixcache_verify_problem(v, "manifest %s: entry %u has usize "
                                        "%u, csize %u", nar->name, i + k,
                                        e.usize, e.csize);
                nar->bad_chunks++;
                continue;
            }

            nixcache_verify_chunk(v, nar, &e);
        }
    }

    rc = 0;

    if (nar->usize != nar->header.nar_size
        || nar->csize != nar->header.file_size)
    {
        nixcache_verify_problem(v, "manifest %s: entries sum to %llu bytes "
                                "(%llu stored), the header says %llu (%llu)",
                                nar->name,
                                (unsigned long long) nar->usize,
                                (unsigned long long) nar->csize,
                                (unsigned long long) nar->header.nar_size,
                                (unsigned long long) nar->header.file_size);
        goto done;
    }

    if (v->quick || nar->bad_chunks > 0) {
        /* a bad chunk is reported already: the sums say nothing more */
        goto done;
    }

    nixcache_sha256_final(&v->file_ctx, digest);

    if (memcmp(digest, nar->header.file_hash, NIXCACHE_SHA256_LEN) != 0) {
        nixcache_hash_format(hstr, digest);
        hstr[NIXCACHE_HASH_STR_LEN] = '\0';
        nixcache_verify_problem(v, "manifest %s: the chunk frames hash to "
                                "FileHash %s, not the manifest's", nar->name,
                                hstr);
    }

    nixcache_sha256_final(&v->nar_ctx, digest);

    if (memcmp(digest, nar->header.nar_hash, NIXCACHE_SHA256_LEN) != 0) {
        nixcache_hash_format(hstr, digest);
        hstr[NIXCACHE_HASH_STR_LEN] = '\0';
        nixcache_verify_problem(v, "manifest %s: the chunks hash to NarHash "
                                "%s, not the manifest's", nar->name, hstr);
    }

done:

    if (!v->quick) {
        nixcache_sha256_free(&v->nar_ctx);
        nixcache_sha256_free(&v->file_ctx);
    }

    return rc;
}


static void
nixcache_verify_chunk(nixcache_verify_t *v, nixcache_verify_nar_t *nar,
    const nixcache_manifest_entry_t *e)
{
    int            fd;
    char           cid[NIXCACHE_CID_LEN + 1];
    struct stat    sb;

    v->refs++;

    nixcache_cid_encode(cid, e->chunk);
    cid[NIXCACHE_CID_LEN] = '\0';

    if (v->s3 != NULL) {
        if (nixcache_verify_fetch(v, nar, e, cid) != 0) {
            nar->bad_chunks++;
            return;
        }

        if (v->quick) {
            return;
        }

        fd = -1;
        goto check;
    }

    nixcache_chunk_relpath(v->path + v->path_dir_len, e->chunk);
    v->path[v->path_dir_len + NIXCACHE_CHUNK_RELPATH_LEN] = '\0';

    fd = open(v->path, O_RDONLY | O_CLOEXEC);

    if (fd == -1) {
        if (errno == ENOENT) {
            nixcache_verify_problem(v, "chunk %s: missing (manifest %s)",
                                    cid, nar->name);

        } else {
            nixcache_verify_problem(v, "chunk %s: cannot open: %s "
                                    "(manifest %s)", cid, strerror(errno),
                                    nar->name);
        }

        nar->bad_chunks++;
        return;
    }

    if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
        nixcache_verify_problem(v, "chunk %s: not a regular file "
                                "(manifest %s)", cid, nar->name);
        goto bad;
    }

    if ((uint64_t) sb.st_size != e->csize) {
        nixcache_verify_problem(v, "chunk %s: %llu bytes, the manifest says "
                                "%u (manifest %s)", cid,
                                (unsigned long long) sb.st_size, e->csize,
                                nar->name);
        goto bad;
    }

    v->bytes += e->csize;

    if (v->quick) {
        close(fd);
        return;
    }

    if (nixcache_verify_grow(&v->frame, &v->frame_cap, e->csize) != 0
        || nixcache_verify_grow(&v->plain, &v->plain_cap, e->usize) != 0)
    {
        nixcache_verify_problem(v, "chunk %s: out of memory (manifest %s)",
                                cid, nar->name);
        goto bad;
    }

    if (nixcache_verify_read(fd, v->frame, e->csize) != 0) {
        nixcache_verify_problem(v, "chunk %s: cannot read: %s (manifest %s)",
                                cid, errno ? strerror(errno) : "short file",
                                nar->name);
        goto bad;
    }

    close(fd);
    fd = -1;

check:

    nixcache_sha256_update(&v->file_ctx, v->frame, e->csize);

    switch (nixcache_frame_check(v->dctx, v->frame, e->csize, e->usize,
                                 e->chunk, v->plain, e->usize, NULL))
    {
    case NIXCACHE_FRAME_OK:
        break;

    case NIXCACHE_FRAME_NOT_ONE:
    case NIXCACHE_FRAME_SIZE:
        nixcache_verify_problem(v, "chunk %s: not one zstd frame of %u "
                                "bytes (manifest %s)", cid, e->usize,
                                nar->name);
        goto bad;

    case NIXCACHE_FRAME_MISMATCH:
        nixcache_verify_problem(v, "chunk %s: hash mismatch (manifest %s)",
                                cid, nar->name);
        nar->bad_chunks++;
        return;

    default:
        nixcache_verify_problem(v, "chunk %s: corrupt: it %s (manifest %s)",
                                cid, "does not decompress", nar->name);
        goto bad;
    }

    nixcache_sha256_update(&v->nar_ctx, v->plain, e->usize);

    return;

bad:

    if (fd != -1) {
        close(fd);
    }

    nar->bad_chunks++;
}


/*
 * The chunk's object in S3: HEAD with --quick (its size), else GET into
 * v->frame.  0, or -1 with the problem reported.
 */

static int
nixcache_verify_fetch(nixcache_verify_t *v, nixcache_verify_nar_t *nar,
    const nixcache_manifest_entry_t *e, const char *cid)
{
    uint64_t           size;
    nixcache_s3_req_t  req;

    memset(&req, 0, sizeof(nixcache_s3_req_t));

    if (nixcache_s3_chunk_key(v->s3, req.key, sizeof(req.key), e->chunk)
        != 0)
    {
        nixcache_verify_problem(v, "chunk %s: S3 key too long", cid);
        return -1;
    }

    if (v->quick) {
        req.method = "HEAD";

    } else {
        if (nixcache_verify_grow(&v->frame, &v->frame_cap, e->csize + 1)
            != 0
            || nixcache_verify_grow(&v->plain, &v->plain_cap, e->usize) != 0)
        {
            nixcache_verify_problem(v, "chunk %s: out of memory (manifest "
                                    "%s)", cid, nar->name);
            return -1;
        }

        req.method = "GET";
        req.out = v->frame;
        req.out_cap = e->csize + 1;
    }

    if (nixcache_s3_run_one(v->s3, &req) != 0) {
        nixcache_verify_problem(v, "chunk %s: S3 request failed: %s "
                                "(manifest %s)", cid,
                                nixcache_s3_error(v->s3), nar->name);
        return -1;
    }

    if (req.status == 404) {
        nixcache_verify_problem(v, "chunk %s: missing in S3 as %s "
                                "(manifest %s)", cid, req.key, nar->name);
        return -1;
    }

    if (req.failed) {
        nixcache_verify_problem(v, "chunk %s: %s (manifest %s)", cid,
                                req.error, nar->name);
        return -1;
    }

    size = v->quick ? req.content_length : req.out_len;

    if (size != e->csize) {
        nixcache_verify_problem(v, "chunk %s: %llu bytes in S3, the "
                                "manifest says %u (manifest %s)", cid,
                                (unsigned long long) size, e->csize,
                                nar->name);
        return -1;
    }

    v->bytes += e->csize;

    return 0;
}


/* Reads exactly len bytes: 0, or -1 (errno 0 at a premature end). */

static int
nixcache_verify_read(int fd, unsigned char *buf, size_t len)
{
    ssize_t  n;

    while (len > 0) {
        n = read(fd, buf, len);

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n <= 0) {
            if (n == 0) {
                errno = 0;
            }

            return -1;
        }

        buf += n;
        len -= n;
    }

    return 0;
}


static int
nixcache_verify_grow(unsigned char **buf, size_t *cap, size_t len)
{
    unsigned char  *p;

    if (len <= *cap) {
        return 0;
    }

    p = realloc(*buf, len);
    if (p == NULL) {
        return -1;
    }

    *buf = p;
    *cap = len;

    return 0;
}


/*
 * A command whose failure to get any reply (connection lost, timeout) ends
 * the run; error replies are the caller's to judge.
 */

static redisReply *
nixcache_verify_command(nixcache_verify_t *v, const char *fmt, ...)
{
    va_list      ap;
    redisReply  *reply;

    va_start(ap, fmt);
    reply = redisvCommand(v->redis.ctx, fmt, ap);
    va_end(ap);

    if (reply == NULL) {
        nixcache_error("Redis at %s: %s", v->redis.addr,
                       v->redis.ctx->errstr);
    }

    return reply;
}


/*
 * Judges a GETRANGE reply: 1 a string (maybe empty: the key is gone or
 * empty), 0 an error reply, reported as a problem of "<what> <name>", -1
 * no reply or an unexpected one (the run ends).  The reply is freed
 * unless 1 is returned.
 */

static int
nixcache_verify_string(nixcache_verify_t *v, redisReply *reply,
    const char *what, const char *name)
{
    if (reply == NULL) {
        return -1;
    }

    if (reply->type == REDIS_REPLY_STRING) {
        return 1;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        nixcache_verify_problem(v, "%s %s: unreadable: %s", what, name,
                                reply->str);
        freeReplyObject(reply);
        return 0;
    }

    nixcache_error("Redis at %s: GETRANGE: unexpected reply", v->redis.addr);
    freeReplyObject(reply);

    return -1;
}


/* 1 if <prefix><kind><name> exists, 0 if not, -1 on a Redis failure. */

/* <prefix><kind><name> in v->key, made for the longest; its length. */

static size_t
nixcache_verify_key(nixcache_verify_t *v, nixcache_key_kind_e kind,
    const char *name, size_t len)
{
    return (size_t) (nixcache_key_build(v->key, v->redis.prefix,
                                        v->prefix_len, kind, name, len)
                     - v->key);
}


static int
nixcache_verify_exists(nixcache_verify_t *v, nixcache_key_kind_e kind,
    const char *name, size_t len)
{
    int          rc;
    size_t       klen;
    redisReply  *reply;

    klen = nixcache_verify_key(v, kind, name, len);
    reply = nixcache_verify_command(v, "EXISTS %b", v->key, klen);
    if (reply == NULL) {
        return -1;
    }

    if (reply->type != REDIS_REPLY_INTEGER) {
        nixcache_error("Redis at %s: EXISTS: %s", v->redis.addr,
                       reply->type == REDIS_REPLY_ERROR ? reply->str
                                                        : "unexpected reply");
        freeReplyObject(reply);
        return -1;
    }

    rc = reply->integer > 0;

    freeReplyObject(reply);

    return rc;
}


static void
nixcache_verify_problem(nixcache_verify_t *v, const char *fmt, ...)
{
    va_list  ap;

    v->problems++;

    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);

    fputc('\n', stdout);
}
