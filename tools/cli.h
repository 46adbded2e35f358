/*
 * The nixcache CLI: shared types of its parts.
 *
 *   nixcache.c   main, options, usage, messages, progress
 *   redis.c      synchronous hiredis connection (address forms and keys
 *                from the core), publication commands
 *   ingest.c     the core's ingest pipeline (src/nixcache_ingest.h) and
 *                decoders (src/nixcache_decompress.h) with messages and
 *                progress; publication of a NAR in Redis
 *   push.c       store paths in (nix path-info, nix store dump-path)
 *   pushurl.c    push --url: store paths sent to a cache's upload routes
 *   import.c     a flat binary cache directory in (import.h)
 *   importurl.c  import --from-url: an HTTP(S) binary cache in
 */

#ifndef NIXCACHE_CLI_H
#define NIXCACHE_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <zstd.h>

#include "nixcache_format.h"
#include "nixcache_chunker.h"
#include "nixcache_decompress.h"
#include "nixcache_hash.h"
#include "nixcache_ingest.h"
#include "nixcache_key.h"
#include "nixcache_narinfo.h"
#include "nixcache_sign.h"
#include "nixcache_s3.h"
#include "nixcache_s3sink.h"


#define NIXCACHE_CLI_REDIS_DEFAULT      "127.0.0.1:6379"
#define NIXCACHE_CLI_REDIS_TIMEOUT      5           /* seconds */
#define NIXCACHE_CLI_IO_SIZE            (64 * 1024)
#define NIXCACHE_CLI_JOBS_DEFAULT_MAX   8

#define NIXCACHE_STORE_DIR              "/nix/store/"

#define NIXCACHE_CLI_EXCLUDE_MAX        16      /* push --exclude */
#define NIXCACHE_CLI_TRUSTED_MAX        16      /* import --trusted-key */


typedef struct {
    const char                *redis;
    const char                *redis_auth;  /* NULL: no AUTH */
    const char                *chunks;
    const char                *prefix;
    const char                *store;
    const char                *sign_key;
    size_t                     chunk_min;
    size_t                     chunk_avg;
    size_t                     chunk_max;
    int                        level;
    unsigned                   jobs;        /* ingest threads */
    nixcache_s3_conf_t         s3;          /* endpoint NULL: no S3 */
    const char                *url;         /* push --url: over HTTP */
    const char                *token;
    const char                *token_file;
    const char                *skip_upstream;  /* push: a cache's URL */
    const char                *exclude[NIXCACHE_CLI_EXCLUDE_MAX];
    unsigned                   nexclude;    /* push --exclude REGEX */
    const char                *from_url;    /* import --from-url */
    const char                *cacert;      /* import --cacert */
    const char                *trusted[NIXCACHE_CLI_TRUSTED_MAX];
    unsigned                   ntrusted;    /* import --trusted-key */
    unsigned                   no_check_sigs:1;
    unsigned                   recursive:1;
    unsigned                   force:1;
    unsigned                   quiet:1;
    unsigned                   verbose:1;
    unsigned                   tier:1;      /* --redis, --chunks, --prefix */
} nixcache_opts_t;


typedef struct {
    const char                *command;
    double                     start;
    double                     last;
    uint64_t                   paths_total;
    uint64_t                   paths_done;
    uint64_t                   paths_skipped;
    uint64_t                   paths_excluded;
    uint64_t                   paths_failed;
    uint64_t                   nar_bytes;
    uint64_t                   chunks;
    uint64_t                   new_chunks;
    uint64_t                   new_usize;
    uint64_t                   new_csize;
    unsigned                   quiet:1;
    unsigned                   verbose:1;
    unsigned                   http:1;      /* push --url: new_csize sent */
} nixcache_stats_t;


typedef struct {
    redisContext              *ctx;
    const char                *prefix;
    const char                *addr;
    char                       gen[32];     /* nixcache_redis_gen() */
} nixcache_redis_t;


/*
 * The core's ingest pipeline (nixcache_ingest.h) as the CLI uses it: on
 * the disk tier, errors printed, progress counted, plus the signing key
 * publication uses.
 */
typedef struct {
    nixcache_ingest_t          core;
    nixcache_chunk_sink_t      sink;
    nixcache_chunk_sink_t      disk;        /* under the S3 sink */
    nixcache_s3_t             *s3;          /* NULL: disk tier only */
    nixcache_s3sink_t         *s3sink;
    const char                *dir;
    nixcache_stats_t          *stats;
    nixcache_sign_secret_t    *sign_key;    /* NULL: no signing */
} nixcache_cli_ingest_t;


/*
 * A compressed file's bytes fed to d, to its end (eof included):
 * file_hash and *file_size get the SHA-256 and size of what was fed.
 * 0, or -1 with its own errors printed and those of d
 * (nixcache_decomp_error) left to the caller.
 */
typedef int (*nixcache_cli_pump_pt)(void *data, const char *name,
    nixcache_decomp_t *d, unsigned char *file_hash, uint64_t *file_size);


/* nixcache.c */
void nixcache_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void nixcache_info(const nixcache_stats_t *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
double nixcache_now(void);
void nixcache_progress(nixcache_stats_t *st, int final);
int nixcache_prepare_chunks_dir(const char *dir);
int nixcache_store_path_hash(const char *path, const char **base);

/* redis.c */
int nixcache_redis_open(nixcache_redis_t *r, const char *addr,
    const char *auth_file, const char *prefix);
char *nixcache_redis_key(const nixcache_redis_t *r, nixcache_key_kind_e kind,
    const char *name, size_t name_len, size_t *len);
void nixcache_redis_close(nixcache_redis_t *r);
int nixcache_redis_has_narinfo(nixcache_redis_t *r, const char *store_hash);
int nixcache_redis_gen(nixcache_redis_t *r);
int nixcache_redis_put_manifest(nixcache_redis_t *r, const char *nar_hash32,
    const unsigned char *manifest, size_t manifest_len, int replace,
    unsigned char *header);
int nixcache_redis_put_narinfo(nixcache_redis_t *r, const char *store_hash,
    const char *nar_hash32, const char *narinfo, size_t narinfo_len,
    int replace);

/* pushurl.c: one HTTP client for a run (nixcache_pushurl_open) */
typedef struct nixcache_pushurl_s  nixcache_pushurl_t;

/* url named by option in messages; o: its token options (NULL: none) */
nixcache_pushurl_t *nixcache_pushurl_open(const char *url,
    const char *option, const nixcache_opts_t *o);
void nixcache_pushurl_close(nixcache_pushurl_t *h);
int nixcache_pushurl_has(nixcache_pushurl_t *h, const char *store_hash);
const char *nixcache_pushurl_get(nixcache_pushurl_t *h, const char *name);

/* --token, --token-file, $NIXCACHE_TOKEN into buf: 1 found, 0 none, -1
 * error (printed) */
int nixcache_pushurl_token(const nixcache_opts_t *o, char *buf, size_t cap);

/* use.c: nixcache use URL */
int nixcache_cmd_use(int argc, char **argv);
int nixcache_pushurl_nar(nixcache_pushurl_t *h, int fd,
    const unsigned char *nar_hash, const char *path,
    unsigned char *got_hash, uint64_t *got_size, uint64_t *sent);
int nixcache_pushurl_narinfo(nixcache_pushurl_t *h, const char *store_hash,
    const char *text, size_t len);

/* ingest.c */
int nixcache_cli_ingest_init(nixcache_cli_ingest_t *ing,
    const nixcache_opts_t *o, nixcache_stats_t *st);
int nixcache_cli_ingest_begin(nixcache_cli_ingest_t *ing);
int nixcache_cli_ingest_write(nixcache_cli_ingest_t *ing, const void *p,
    size_t n);
int nixcache_cli_ingest_finish(nixcache_cli_ingest_t *ing);
void nixcache_cli_ingest_free(nixcache_cli_ingest_t *ing);
void nixcache_cli_ingest_summary(nixcache_cli_ingest_t *ing);
int nixcache_cli_decompress(nixcache_cli_ingest_t *ing,
    nixcache_decomp_e kind, const char *name, uint64_t limit,
    nixcache_cli_pump_pt pump, void *data, unsigned char *file_hash,
    uint64_t *file_size);
int nixcache_publish(nixcache_cli_ingest_t *ing, nixcache_redis_t *r,
    nixcache_narinfo_t *ni, const char *store_hash, int replace);

int nixcache_cli_ingest_load_key(nixcache_cli_ingest_t *ing,
    const char *path);
int nixcache_narinfo_sign(nixcache_cli_ingest_t *ing, nixcache_narinfo_t *ni,
    char *sig, size_t cap);

/* push.c, import.c */
int nixcache_push(nixcache_opts_t *o, int argc, char **argv);
int nixcache_spawn(char **argv, pid_t *pid, int *out);
int nixcache_wait(pid_t pid, const char *what);
int nixcache_import(nixcache_opts_t *o, int argc, char **argv);


#endif /* NIXCACHE_CLI_H */
