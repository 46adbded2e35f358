/*
 * nixcache: fill an ngx_nixcache cache (chunks on disk, manifests and
 * narinfos in Redis) from store paths or from a flat binary cache.
 */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "cli.h"
#include "gc.h"
#include "keygen.h"
#include "verify.h"
#include "nixcache_nix32.h"


#define NIXCACHE_PROGRESS_INTERVAL  0.5

#define NIXCACHE_STRINGIFY_(x)      #x
#define NIXCACHE_STRINGIFY(x)       NIXCACHE_STRINGIFY_(x)


enum {
    NIXCACHE_OPT_REDIS = 256,
    NIXCACHE_OPT_REDIS_AUTH,
    NIXCACHE_OPT_CHUNKS,
    NIXCACHE_OPT_PREFIX,
    NIXCACHE_OPT_STORE,
    NIXCACHE_OPT_LEVEL,
    NIXCACHE_OPT_CHUNK_MIN,
    NIXCACHE_OPT_CHUNK_AVG,
    NIXCACHE_OPT_CHUNK_MAX,
    NIXCACHE_OPT_FORCE,
    NIXCACHE_OPT_SIGN_KEY,
    NIXCACHE_OPT_S3_ENDPOINT,
    NIXCACHE_OPT_S3_BUCKET,
    NIXCACHE_OPT_S3_REGION,
    NIXCACHE_OPT_S3_PREFIX,
    NIXCACHE_OPT_S3_CREDENTIALS,
    NIXCACHE_OPT_S3_PATH_STYLE,
    NIXCACHE_OPT_S3_VIRTUAL_HOST,
    NIXCACHE_OPT_S3_INFLIGHT,
    NIXCACHE_OPT_S3_ATTEMPTS,
    NIXCACHE_OPT_URL,
    NIXCACHE_OPT_TOKEN,
    NIXCACHE_OPT_TOKEN_FILE,
    NIXCACHE_OPT_EXCLUDE,
    NIXCACHE_OPT_SKIP_UPSTREAM,
    NIXCACHE_OPT_FROM_URL,
    NIXCACHE_OPT_TRUSTED_KEY,
    NIXCACHE_OPT_NO_CHECK_SIGS,
    NIXCACHE_OPT_CACERT,
    NIXCACHE_OPT_HELP
};


typedef int (*nixcache_command_pt)(nixcache_opts_t *o, int argc,
    char **argv);


typedef struct {
    const char                *name;
    nixcache_command_pt        handler;
    const char                *shortopts;
    const struct option       *longopts;
    const char                *usage;
    int                        min_args;
} nixcache_command_t;


typedef struct {
    const char                *name;
    int                      (*handler)(int argc, char **argv);
} nixcache_own_command_t;


static void nixcache_usage(FILE *f);
static int nixcache_parse_size(const char *name, const char *s, size_t *v);
static int nixcache_parse_count(const char *name, const char *s,
    unsigned max, unsigned *v);
static int nixcache_run(const nixcache_command_t *cmd, int argc,
    char **argv);
static void nixcache_human(char *dst, size_t cap, double bytes);


#define NIXCACHE_COMMON_OPTIONS                                              \
    { "redis",     required_argument, NULL, NIXCACHE_OPT_REDIS },            \
    { "redis-auth", required_argument, NULL, NIXCACHE_OPT_REDIS_AUTH },      \
    { "chunks",    required_argument, NULL, NIXCACHE_OPT_CHUNKS },           \
    { "prefix",    required_argument, NULL, NIXCACHE_OPT_PREFIX },           \
    { "level",     required_argument, NULL, NIXCACHE_OPT_LEVEL },            \
    { "jobs",      required_argument, NULL, 'j' },                           \
    { "chunk-min", required_argument, NULL, NIXCACHE_OPT_CHUNK_MIN },        \
    { "chunk-avg", required_argument, NULL, NIXCACHE_OPT_CHUNK_AVG },        \
    { "chunk-max", required_argument, NULL, NIXCACHE_OPT_CHUNK_MAX },        \
    { "force",     no_argument,       NULL, NIXCACHE_OPT_FORCE },            \
    { "sign-key",  required_argument, NULL, NIXCACHE_OPT_SIGN_KEY },         \
    { "s3-endpoint", required_argument, NULL, NIXCACHE_OPT_S3_ENDPOINT },    \
    { "s3-bucket", required_argument, NULL, NIXCACHE_OPT_S3_BUCKET },        \
    { "s3-region", required_argument, NULL, NIXCACHE_OPT_S3_REGION },        \
    { "s3-prefix", required_argument, NULL, NIXCACHE_OPT_S3_PREFIX },        \
    { "s3-credentials", required_argument, NULL,                             \
      NIXCACHE_OPT_S3_CREDENTIALS },                                         \
    { "s3-path-style", no_argument, NULL, NIXCACHE_OPT_S3_PATH_STYLE },      \
    { "s3-virtual-host", no_argument, NULL, NIXCACHE_OPT_S3_VIRTUAL_HOST },  \
    { "s3-inflight", required_argument, NULL, NIXCACHE_OPT_S3_INFLIGHT },    \
    { "s3-attempts", required_argument, NULL, NIXCACHE_OPT_S3_ATTEMPTS },    \
    { "quiet",     no_argument,       NULL, 'q' },                           \
    { "verbose",   no_argument,       NULL, 'v' },                           \
    { "help",      no_argument,       NULL, NIXCACHE_OPT_HELP }

#define NIXCACHE_COMMON_USAGE                                                \
    "      --redis ADDR     Redis: host:port, [IPv6]:port,\n"              \
    "                       redis://host[:port][/db], unix:/path[?db=N]\n"  \
    "                       (default $NIXCACHE_REDIS, else "                 \
    NIXCACHE_CLI_REDIS_DEFAULT ")\n"                                        \
    "      --redis-auth FILE  Redis AUTH: FILE holds \"password\" or\n"     \
    "                       \"user password\"\n"                             \
    "                       (default $NIXCACHE_REDIS_AUTH)\n"                \
    "      --chunks DIR     chunk directory (default $NIXCACHE_CHUNKS);\n"   \
    "                       with --s3-*, optional: a write-through copy\n"  \
    "      --prefix P       Redis key prefix (default \""                    \
    NIXCACHE_DEFAULT_PREFIX "\")\n"                                         \
    "      --level N        zstd level of new chunks (default "            \
    NIXCACHE_STRINGIFY(NIXCACHE_ZSTD_LEVEL_DEFAULT) ")\n"                    \
    "  -j, --jobs N         threads hashing and compressing chunks (default\n"\
    "                       the online CPUs, at most "                       \
    NIXCACHE_STRINGIFY(NIXCACHE_CLI_JOBS_DEFAULT_MAX) "; 1: serial)\n"        \
    "      --chunk-min N    chunking parameters in bytes (default 16384,\n"  \
    "      --chunk-avg N    65536 and 262144; avg a power of two)\n"         \
    "      --chunk-max N\n"                                                  \
    "      --force          write narinfos that are already present\n"       \
    "      --sign-key FILE  sign each narinfo with this secret key (made by\n"\
    "                       nixcache keygen or nix-store\n"                 \
    "                       --generate-binary-cache-key)\n"                 \
    "      --s3-endpoint URL  store chunks in S3: http(s)://host[:port]\n"  \
    "      --s3-bucket NAME   the bucket (with --s3-endpoint)\n"            \
    "      --s3-region R      SigV4 region (default "                    \
    NIXCACHE_S3_REGION_DEFAULT ")\n"                                        \
    "      --s3-prefix P      object key prefix (default \""                \
    NIXCACHE_S3_PREFIX_DEFAULT "\"): keys P<xx>/<CID>\n"                    \
    "      --s3-credentials FILE  key id and secret: two lines, or\n"       \
    "                       AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...\n"\
    "                       [AWS_SESSION_TOKEN=...] lines (default: those\n"\
    "                       environment variables)\n"                      \
    "      --s3-path-style    http://host/bucket/key (the default for an IP\n"\
    "                       or localhost endpoint)\n"                      \
    "      --s3-virtual-host  http://bucket.host/key (the default otherwise)\n"\
    "      --s3-inflight N    requests in flight (default "                \
    NIXCACHE_STRINGIFY(NIXCACHE_S3_INFLIGHT_DEFAULT) ")\n"                   \
    "      --s3-attempts N    tries per request on 5xx, 408, 429, timeouts\n"\
    "                       and connection errors (default "               \
    NIXCACHE_STRINGIFY(NIXCACHE_S3_ATTEMPTS_DEFAULT) ")\n"                   \
    "  -q, --quiet          no progress or summary (errors still shown)\n"   \
    "  -v, --verbose        one line per path, max RSS in the summary\n"     \
    "      --help           this help\n"


static const struct option  nixcache_push_options[] = {
    NIXCACHE_COMMON_OPTIONS,
    { "store",     required_argument, NULL, NIXCACHE_OPT_STORE },
    { "recursive", no_argument,       NULL, 'r' },
    { "url",       required_argument, NULL, NIXCACHE_OPT_URL },
    { "token",     required_argument, NULL, NIXCACHE_OPT_TOKEN },
    { "token-file", required_argument, NULL, NIXCACHE_OPT_TOKEN_FILE },
    { "exclude",   required_argument, NULL, NIXCACHE_OPT_EXCLUDE },
    { "skip-upstream", required_argument, NULL, NIXCACHE_OPT_SKIP_UPSTREAM },
    { NULL, 0, NULL, 0 }
};


static const struct option  nixcache_import_options[] = {
    NIXCACHE_COMMON_OPTIONS,
    { "from-url",  required_argument, NULL, NIXCACHE_OPT_FROM_URL },
    { "trusted-key", required_argument, NULL, NIXCACHE_OPT_TRUSTED_KEY },
    { "no-check-sigs", no_argument,   NULL, NIXCACHE_OPT_NO_CHECK_SIGS },
    { "cacert",    required_argument, NULL, NIXCACHE_OPT_CACERT },
    { "recursive", no_argument,       NULL, 'r' },
    { NULL, 0, NULL, 0 }
};


static const nixcache_command_t  nixcache_commands[] = {

    { "push", nixcache_push, "rqvj:", nixcache_push_options,
      "usage: nixcache push [OPTIONS] PATH...   (PATH - : paths read from stdin)\n"
      "\n"
      "Adds store paths (with -r, their closures) to the cache: NARs from\n"
      "`nix store dump-path`, metadata from `nix path-info --json`.\n"
      "\n"
      "      --store STORE    the Nix store to read (default: Nix's own)\n"
      "  -r, --recursive      push the closures of the paths\n"
      "      --url URL        upload through a cache's upload routes\n"
      "                       (nixcache_upload on) instead: no --redis,\n"
      "                       --chunks or --s3-* with it\n"
      "      --token TOKEN    push token for --url (default $NIXCACHE_TOKEN)\n"
      "      --token-file FILE  the push token, read from FILE\n"
      "      --exclude REGEX  do not push paths whose store path matches\n"
      "                       the extended regular expression (e.g.\n"
      "                       '-source$'); may be given up to "
      NIXCACHE_STRINGIFY(NIXCACHE_CLI_EXCLUDE_MAX) " times\n"
      "      --skip-upstream URL  do not push paths the binary cache at URL\n"
      "                       has (e.g. https://cache.nixos.org)\n"
      NIXCACHE_COMMON_USAGE,
      1 },

    { "import", nixcache_import, "rqvj:", nixcache_import_options,
      "usage: nixcache import [OPTIONS] SOURCE-DIR\n"
      "       nixcache import [OPTIONS] --from-url URL [--trusted-key K]...\n"
      "                       [--no-check-sigs] [--cacert FILE] [-r] PATH...\n"
      "\n"
      "Adds every *.narinfo of a flat binary cache directory (as made by\n"
      "`nix copy --to file://DIR`; compression none, xz, zstd or bzip2),\n"
      "or with --from-url the store paths PATH (/nix/store/HASH-NAME or\n"
      "HASH) of the binary cache at URL (http:// or https://).\n"
      "\n"
      "      --from-url URL   fetch from this binary cache over HTTP(S)\n"
      "      --trusted-key NAME:BASE64  a path needs a valid Sig by one of\n"
      "                       these keys (repeatable, up to "
      NIXCACHE_STRINGIFY(NIXCACHE_CLI_TRUSTED_MAX) "); --from-url\n"
      "                       needs one, or --no-check-sigs\n"
      "      --no-check-sigs  --from-url: import unsigned paths (no\n"
      "                       --trusted-key given)\n"
      "      --cacert FILE    CA certificates for https:// (default\n"
      "                       $NIX_SSL_CERT_FILE, $SSL_CERT_FILE,\n"
      "                       $CURL_CA_BUNDLE, else the system's)\n"
      "  -r, --recursive      --from-url: the closures of the paths\n"
      NIXCACHE_COMMON_USAGE,
      1 },

    { NULL, NULL, NULL, NULL, NULL, 0 }
};


/* the commands that parse their own options */

static const nixcache_own_command_t  nixcache_own_commands[] = {
    { "keygen", nixcache_cmd_keygen },
    { "verify", nixcache_cmd_verify },
    { "use", nixcache_cmd_use },
    { "gc", nixcache_cmd_gc },
    { "rm", nixcache_cmd_rm },
    { "pin", nixcache_cmd_pin },
    { "unpin", nixcache_cmd_unpin },
    { NULL, NULL }
};


int
main(int argc, char **argv)
{
    const nixcache_command_t      *cmd;
    const nixcache_own_command_t  *own;

    /* a Redis that goes away must give an error, not kill the process */
    signal(SIGPIPE, SIG_IGN);

    if (argc < 2) {
        nixcache_usage(stderr);
        return 2;
    }

    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0
        || strcmp(argv[1], "help") == 0)
    {
        nixcache_usage(stdout);
        return 0;
    }

    for (own = nixcache_own_commands; own->name != NULL; own++) {
        if (strcmp(argv[1], own->name) == 0) {
            return own->handler(argc - 1, argv + 1);
        }
    }

    for (cmd = nixcache_commands; cmd->name != NULL; cmd++) {
        if (strcmp(argv[1], cmd->name) == 0) {
            return nixcache_run(cmd, argc - 1, argv + 1);
        }
    }

    nixcache_error("unknown command \"%s\"", argv[1]);
    nixcache_usage(stderr);

    return 2;
}


static void
nixcache_usage(FILE *f)
{
    fprintf(f,
        "usage: nixcache COMMAND [OPTIONS] ARGS...\n"
        "\n"
        "commands:\n"
        "  push     add store paths (or closures, -r) to the cache\n"
        "  import   add a flat binary cache directory (or, --from-url, the\n"
        "           paths of an HTTP binary cache) to the cache\n"
        "  keygen   make a signing key pair in Nix's format\n"
        "  use      print (or write) what a Nix client needs to use a cache\n"
        "  verify   check every narinfo, manifest and chunk (reports only)\n"
        "  rm       remove store paths from the cache\n"
        "  pin      keep store paths whatever the retention (unpin: undo)\n"
        "  gc       delete manifests and chunks nothing names any more\n"
        "\n"
        "`nixcache COMMAND --help` describes each command.\n");
}


static int
nixcache_run(const nixcache_command_t *cmd, int argc, char **argv)
{
    int               c, level;
    long              cpus;
    char             *end;
    const char       *env;
    nixcache_opts_t   o;

    memset(&o, 0, sizeof(nixcache_opts_t));

    env = getenv("NIXCACHE_REDIS");
    o.redis = (env != NULL && env[0] != '\0') ? env
                                              : NIXCACHE_CLI_REDIS_DEFAULT;
    env = getenv("NIXCACHE_REDIS_AUTH");
    o.redis_auth = (env != NULL && env[0] != '\0') ? env : NULL;
    env = getenv("NIXCACHE_CHUNKS");
    o.chunks = (env != NULL && env[0] != '\0') ? env : NULL;
    o.prefix = NIXCACHE_DEFAULT_PREFIX;
    o.level = NIXCACHE_ZSTD_LEVEL_DEFAULT;
    o.chunk_min = NIXCACHE_CHUNK_MIN_DEFAULT;
    o.chunk_avg = NIXCACHE_CHUNK_AVG_DEFAULT;
    o.chunk_max = NIXCACHE_CHUNK_MAX_DEFAULT;
    o.s3.path_style = -1;

    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o.jobs = (cpus < 1) ? 1 : (cpus > NIXCACHE_CLI_JOBS_DEFAULT_MAX)
                              ? NIXCACHE_CLI_JOBS_DEFAULT_MAX
                              : (unsigned) cpus;

    optind = 1;
    opterr = 0;

    for ( ;; ) {
        c = getopt_long(argc, argv, cmd->shortopts, cmd->longopts, NULL);
        if (c == -1) {
            break;
        }

        switch (c) {

        case NIXCACHE_OPT_REDIS:
            o.redis = optarg;
            o.tier = 1;
            break;

        case NIXCACHE_OPT_REDIS_AUTH:
            o.redis_auth = optarg;
            o.tier = 1;
            break;

        case NIXCACHE_OPT_CHUNKS:
            o.chunks = optarg;
            o.tier = 1;
            break;

        case NIXCACHE_OPT_PREFIX:
            o.prefix = optarg;
            o.tier = 1;
            break;

        case NIXCACHE_OPT_URL:
            o.url = optarg;
            break;

        case NIXCACHE_OPT_TOKEN:
            o.token = optarg;
            break;

        case NIXCACHE_OPT_TOKEN_FILE:
            o.token_file = optarg;
            break;

        case NIXCACHE_OPT_SKIP_UPSTREAM:
            o.skip_upstream = optarg;
            break;

        case NIXCACHE_OPT_EXCLUDE:
            if (o.nexclude == NIXCACHE_CLI_EXCLUDE_MAX) {
                nixcache_error("%s: at most %d --exclude", cmd->name,
                               NIXCACHE_CLI_EXCLUDE_MAX);
                return 2;
            }

            o.exclude[o.nexclude++] = optarg;
            break;

        case NIXCACHE_OPT_STORE:
            o.store = optarg;
            break;

        case NIXCACHE_OPT_FROM_URL:
            o.from_url = optarg;
            break;

        case NIXCACHE_OPT_TRUSTED_KEY:
            if (o.ntrusted == NIXCACHE_CLI_TRUSTED_MAX) {
                nixcache_error("%s: at most %d --trusted-key", cmd->name,
                               NIXCACHE_CLI_TRUSTED_MAX);
                return 2;
            }

            o.trusted[o.ntrusted++] = optarg;
            break;

        case NIXCACHE_OPT_NO_CHECK_SIGS:
            o.no_check_sigs = 1;
            break;

        case NIXCACHE_OPT_CACERT:
            o.cacert = optarg;
            break;

        case NIXCACHE_OPT_LEVEL:
            errno = 0;
            level = (int) strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0'
                || level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
            {
                nixcache_error("invalid --level \"%s\" (%d..%d)", optarg,
                               ZSTD_minCLevel(), ZSTD_maxCLevel());
                return 2;
            }
            o.level = level;
            break;

        case 'j':
            if (nixcache_parse_count("--jobs", optarg,
                                     NIXCACHE_INGEST_THREADS_MAX, &o.jobs)
                != 0)
            {
                return 2;
            }
            break;

        case NIXCACHE_OPT_CHUNK_MIN:
            if (nixcache_parse_size("--chunk-min", optarg, &o.chunk_min)
                != 0)
            {
                return 2;
            }
            break;

        case NIXCACHE_OPT_CHUNK_AVG:
            if (nixcache_parse_size("--chunk-avg", optarg, &o.chunk_avg)
                != 0)
            {
                return 2;
            }
            break;

        case NIXCACHE_OPT_CHUNK_MAX:
            if (nixcache_parse_size("--chunk-max", optarg, &o.chunk_max)
                != 0)
            {
                return 2;
            }
            break;

        case NIXCACHE_OPT_FORCE:
            o.force = 1;
            break;

        case NIXCACHE_OPT_SIGN_KEY:
            o.sign_key = optarg;
            break;

        case NIXCACHE_OPT_S3_ENDPOINT:
            o.s3.endpoint = optarg;
            break;

        case NIXCACHE_OPT_S3_BUCKET:
            o.s3.bucket = optarg;
            break;

        case NIXCACHE_OPT_S3_REGION:
            o.s3.region = optarg;
            break;

        case NIXCACHE_OPT_S3_PREFIX:
            o.s3.prefix = optarg;
            break;

        case NIXCACHE_OPT_S3_CREDENTIALS:
            o.s3.credentials = optarg;
            break;

        case NIXCACHE_OPT_S3_PATH_STYLE:
            o.s3.path_style = 1;
            break;

        case NIXCACHE_OPT_S3_VIRTUAL_HOST:
            o.s3.path_style = 0;
            break;

        case NIXCACHE_OPT_S3_INFLIGHT:
            if (nixcache_parse_count("--s3-inflight", optarg, 1024,
                                     &o.s3.inflight)
                != 0)
            {
                return 2;
            }
            break;

        case NIXCACHE_OPT_S3_ATTEMPTS:
            if (nixcache_parse_count("--s3-attempts", optarg, 30,
                                     &o.s3.attempts)
                != 0)
            {
                return 2;
            }
            break;

        case 'r':
            o.recursive = 1;
            break;

        case 'q':
            o.quiet = 1;
            break;

        case 'v':
            o.verbose = 1;
            break;

        case NIXCACHE_OPT_HELP:
            fputs(cmd->usage, stdout);
            return 0;

        default:
            if (optopt != 0 && optopt < 256) {
                nixcache_error("%s: unknown option or missing argument "
                               "\"-%c\"", cmd->name, optopt);

            } else {
                nixcache_error("%s: unknown option or missing argument "
                               "\"%s\"", cmd->name, argv[optind - 1]);
            }

            fputs(cmd->usage, stderr);
            return 2;
        }
    }

    if (argc - optind < cmd->min_args) {
        nixcache_error("%s: missing arguments", cmd->name);
        fputs(cmd->usage, stderr);
        return 2;
    }

    if ((o.s3.endpoint == NULL) != (o.s3.bucket == NULL)) {
        nixcache_error("%s: --s3-endpoint and --s3-bucket go together",
                       cmd->name);
        return 2;
    }

    if (o.url != NULL && (o.tier || o.s3.endpoint != NULL)) {
        nixcache_error("%s: --url uploads through the cache's server: "
                       "--redis, --chunks, --prefix and --s3-* do not go "
                       "with it", cmd->name);
        return 2;
    }

    if (o.url == NULL && (o.token != NULL || o.token_file != NULL)) {
        nixcache_error("%s: --token and --token-file go with --url",
                       cmd->name);
        return 2;
    }

    if (o.token != NULL && o.token_file != NULL) {
        nixcache_error("%s: --token or --token-file, not both", cmd->name);
        return 2;
    }

    if (o.url == NULL && o.chunks == NULL && o.s3.endpoint == NULL) {
        nixcache_error("%s: no chunk directory: give --chunks DIR or set "
                       "NIXCACHE_CHUNKS, or --s3-endpoint and --s3-bucket",
                       cmd->name);
        return 2;
    }

    if (o.quiet && o.verbose) {
        o.verbose = 0;
    }

    return cmd->handler(&o, argc - optind, argv + optind);
}


static int
nixcache_parse_size(const char *name, const char *s, size_t *v)
{
    char                *end;
    unsigned long long   n;

    errno = 0;
    n = strtoull(s, &end, 10);

    if (errno != 0 || end == s || *end != '\0' || s[0] == '-'
        || n > NIXCACHE_CHUNK_MAX_LIMIT)
    {
        nixcache_error("invalid %s \"%s\"", name, s);
        return -1;
    }

    *v = (size_t) n;

    return 0;
}


static int
nixcache_parse_count(const char *name, const char *s, unsigned max,
    unsigned *v)
{
    char           *end;
    unsigned long   n;

    errno = 0;
    n = strtoul(s, &end, 10);

    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || n == 0
        || n > max)
    {
        nixcache_error("invalid %s \"%s\" (1..%u)", name, s, max);
        return -1;
    }

    *v = (unsigned) n;

    return 0;
}


void
nixcache_error(const char *fmt, ...)
{
    va_list  ap;

    fputs("nixcache: ", stderr);

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);

    fputc('\n', stderr);
}


void
nixcache_info(const nixcache_stats_t *st, const char *fmt, ...)
{
    va_list  ap;

    if (st->quiet) {
        return;
    }

    fputs("nixcache: ", stderr);

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);

    fputc('\n', stderr);
}


double
nixcache_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


/*
 * One progress line at most every NIXCACHE_PROGRESS_INTERVAL seconds, and
 * the summary line at the end (final != 0) whatever the time.  The dedup
 * figure is the share of NAR bytes that did not need a new chunk.
 */

void
nixcache_progress(nixcache_stats_t *st, int final)
{
    char            in[32], stored[32], rate[32], rss[64], excl[48];
    double          now, elapsed, dedup;
    struct rusage   ru;

    if (st->quiet) {
        return;
    }

    now = nixcache_now();

    if (!final && now - st->last < NIXCACHE_PROGRESS_INTERVAL) {
        return;
    }

    st->last = now;
    elapsed = now - st->start;

    dedup = st->nar_bytes ? 100.0 * (1.0 - (double) st->new_usize
                                           / (double) st->nar_bytes)
                          : 0.0;

    nixcache_human(in, sizeof(in), (double) st->nar_bytes);
    nixcache_human(stored, sizeof(stored), (double) st->new_csize);
    nixcache_human(rate, sizeof(rate),
                   elapsed > 0 ? st->nar_bytes / elapsed : 0);

    rss[0] = '\0';

    if (final && st->verbose && getrusage(RUSAGE_SELF, &ru) == 0) {
        snprintf(rss, sizeof(rss), ", max RSS %ld KiB", ru.ru_maxrss);
    }

    excl[0] = '\0';

    if (st->paths_excluded > 0) {
        snprintf(excl, sizeof(excl), ", %llu excluded",
                 (unsigned long long) st->paths_excluded);
    }

    if (st->http) {
        fprintf(stderr,
                "nixcache: %s%s: %llu/%llu paths (%llu skipped, %llu "
                "failed%s), %s NAR in, %s sent, %s/s, %.1f s%s\n",
                st->command, final ? " done" : "",
                (unsigned long long) st->paths_done,
                (unsigned long long) st->paths_total,
                (unsigned long long) st->paths_skipped,
                (unsigned long long) st->paths_failed, excl,
                in, stored, rate, elapsed, rss);
        return;
    }

    fprintf(stderr,
            "nixcache: %s%s: %llu/%llu paths (%llu skipped, %llu failed%s), "
            "%s NAR in, %s new stored, %llu/%llu chunks new "
            "(%llu new NAR bytes), dedup %.1f%%, %s/s, %.1f s%s\n",
            st->command, final ? " done" : "",
            (unsigned long long) st->paths_done,
            (unsigned long long) st->paths_total,
            (unsigned long long) st->paths_skipped,
            (unsigned long long) st->paths_failed, excl,
            in, stored,
            (unsigned long long) st->new_chunks,
            (unsigned long long) st->chunks,
            (unsigned long long) st->new_usize,
            dedup, rate, elapsed, rss);
}


static void
nixcache_human(char *dst, size_t cap, double bytes)
{
    if (bytes < 1024) {
        snprintf(dst, cap, "%.0f B", bytes);

    } else if (bytes < 1024 * 1024) {
        snprintf(dst, cap, "%.1f KiB", bytes / 1024);

    } else if (bytes < 1024.0 * 1024 * 1024) {
        snprintf(dst, cap, "%.1f MiB", bytes / (1024 * 1024));

    } else {
        snprintf(dst, cap, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    }
}


/*
 * The chunk directory must be a writable directory before any work is
 * done; a missing one is created (its parent must exist).
 */

int
nixcache_prepare_chunks_dir(const char *dir)
{
    struct stat  sb;

    if (stat(dir, &sb) == -1) {
        if (errno != ENOENT || mkdir(dir, 0755) == -1) {
            nixcache_error("chunk directory %s: %s", dir, strerror(errno));
            return -1;
        }

        return 0;
    }

    if (!S_ISDIR(sb.st_mode)) {
        nixcache_error("chunk directory %s: not a directory", dir);
        return -1;
    }

    if (access(dir, W_OK | X_OK) == -1) {
        nixcache_error("chunk directory %s: not writable: %s", dir,
                       strerror(errno));
        return -1;
    }

    return 0;
}


/*
 * Checks "/nix/store/<32 nix32>-<name>" and points *base at the basename.
 * Returns 0 or -1.
 */

int
nixcache_store_path_hash(const char *path, const char **base)
{
    size_t       n;
    const char  *b, *p;

    n = sizeof(NIXCACHE_STORE_DIR) - 1;

    if (strncmp(path, NIXCACHE_STORE_DIR, n) != 0) {
        return -1;
    }

    b = path + n;

    if (strlen(b) < NIXCACHE_STORE_HASH_NIX32_LEN + 2
        || b[NIXCACHE_STORE_HASH_NIX32_LEN] != '-'
        || !nixcache_nix32_valid(b, NIXCACHE_STORE_HASH_NIX32_LEN))
    {
        return -1;
    }

    for (p = b; *p != '\0'; p++) {
        if (*p == '/') {
            return -1;
        }
    }

    *base = b;

    return 0;
}
