/*
 * nixcache push: store paths in.  Metadata comes from
 * `nix path-info --json`, each NAR from `nix store dump-path` through a
 * pipe; both work on any store Nix can open (--store).
 *
 * Paths are pushed references first, so a narinfo is never visible before
 * those of the paths it refers to (within one run), and the first failure
 * stops the run.
 *
 * With --url the same paths, in the same order, go to a cache's upload
 * routes instead (pushurl.c): no Redis, chunk directory or S3 here.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <json-c/json.h>
#include <sodium.h>

#include "cli.h"
#include "nixcache_gc.h"


#define NIXCACHE_PATH_INFO_MAX      (512 * 1024 * 1024)


typedef struct {
    const char                *path;
    const char                *base;
    unsigned char              nar_hash[NIXCACHE_SHA256_LEN];
    uint64_t                   nar_size;
    char                      *references;
    const char                *deriver;
    const char                *ca;
    const char                *sigs[NIXCACHE_NARINFO_MAX_SIGS];
    size_t                     nsigs;
    json_object               *refs;       /* array of full paths */
    int                        mark;
} nixcache_path_t;


typedef struct {
    nixcache_opts_t           *opts;
    nixcache_stats_t           stats;
    nixcache_redis_t           redis;
    nixcache_cli_ingest_t      ingest;
    nixcache_pushurl_t        *http;       /* --url */
    nixcache_pushurl_t        *upstream;   /* --skip-upstream */
    json_object               *json;
    nixcache_path_t           *paths;
    size_t                     npaths;
    nixcache_path_t          **order;
    size_t                     norder;

    /* the next path's dump, started while this one is published */
    nixcache_path_t           *ahead;
    pid_t                      ahead_pid;
    int                        ahead_fd;
} nixcache_push_t;


#define NIXCACHE_PUSH_STDIN_MAX     (64 * 1024 * 1024)


extern char **environ;


static int nixcache_push_path_info(nixcache_push_t *pu, int argc,
    char **argv);
static int nixcache_push_parse_path(nixcache_path_t *pi, json_object *obj);
static int nixcache_push_parse_nar_hash(unsigned char *digest,
    const char *s);
static int nixcache_push_stdin(char **buf, size_t *n);
static int nixcache_push_sort(nixcache_push_t *pu);
static int nixcache_push_exclude(nixcache_push_t *pu);
static int nixcache_push_cmp(const void *a, const void *b);
static int nixcache_push_visit(nixcache_push_t *pu, nixcache_path_t *pi);
static int nixcache_push_one_try(nixcache_push_t *pu, nixcache_path_t *pi,
    nixcache_path_t *next);
static int nixcache_push_one(nixcache_push_t *pu, nixcache_path_t *pi,
    nixcache_path_t *next);
static int nixcache_push_one_url(nixcache_push_t *pu, nixcache_path_t *pi);
static int nixcache_push_dump(nixcache_push_t *pu, nixcache_path_t *pi,
    pid_t *pid, int *fd);
static void nixcache_push_ahead(nixcache_push_t *pu, nixcache_path_t *next);
static void nixcache_push_ahead_stop(nixcache_push_t *pu);
static void nixcache_push_narinfo(nixcache_path_t *pi,
    nixcache_narinfo_t *ni);
static void nixcache_push_cleanup(nixcache_push_t *pu);


int
nixcache_push(nixcache_opts_t *o, int argc, char **argv)
{
    int               rc;
    size_t            i;
    const char       *base;
    nixcache_push_t   pu;

    memset(&pu, 0, sizeof(nixcache_push_t));

    pu.opts = o;
    pu.stats.command = "push";
    pu.stats.quiet = o->quiet;
    pu.stats.verbose = o->verbose;
    pu.stats.start = nixcache_now();
    pu.stats.last = pu.stats.start;

    rc = 1;

    if (o->url != NULL) {
        pu.stats.http = 1;
        pu.http = nixcache_pushurl_open(o->url, "--url", o);
        if (pu.http == NULL
            || (o->sign_key != NULL
                && nixcache_cli_ingest_load_key(&pu.ingest, o->sign_key)
                   != 0))
        {
            goto done;
        }

    } else if (nixcache_cli_ingest_init(&pu.ingest, o, &pu.stats) != 0
               || (o->chunks != NULL
                   && nixcache_prepare_chunks_dir(o->chunks) != 0)
               || nixcache_redis_open(&pu.redis, o->redis,
                                      o->redis_auth, o->prefix) != 0)
    {
        goto done;
    }

    if (o->skip_upstream != NULL) {
        pu.upstream = nixcache_pushurl_open(o->skip_upstream,
                                            "--skip-upstream", NULL);
        if (pu.upstream == NULL) {
            goto done;
        }
    }

    if (nixcache_push_path_info(&pu, argc, argv) != 0
        || nixcache_push_sort(&pu) != 0
        || nixcache_push_exclude(&pu) != 0)
    {
        goto done;
    }

    pu.stats.paths_total = pu.norder;

    for (i = 0; i < pu.norder; i++) {
        base = pu.order[i]->base;

        if (!o->force) {
            switch (pu.http != NULL ? nixcache_pushurl_has(pu.http, base)
                    : nixcache_redis_has_narinfo(&pu.redis, base))
            {

            case 1:
                nixcache_info(&pu.stats, "%s: already present",
                              pu.order[i]->path);
                pu.stats.paths_skipped++;
                pu.stats.paths_done++;
                continue;

            case 0:
                break;

            default:
                goto done;
            }
        }

        /* an upstream that cannot answer costs one timeout, not one each */

        if (pu.upstream != NULL) {
            switch (nixcache_pushurl_has(pu.upstream, base)) {

            case 1:
                nixcache_info(&pu.stats, "%s: in %s", pu.order[i]->path,
                              o->skip_upstream);
                pu.stats.paths_skipped++;
                pu.stats.paths_done++;
                continue;

            case 0:
                break;

            default:
                nixcache_error("--skip-upstream %s: no answer; this path and "
                               "the rest are pushed", o->skip_upstream);
                nixcache_pushurl_close(pu.upstream);
                pu.upstream = NULL;
            }
        }

        if ((pu.http != NULL ? nixcache_push_one_url(&pu, pu.order[i])
                             : nixcache_push_one(&pu, pu.order[i],
                                                 i + 1 < pu.norder
                                                 ? pu.order[i + 1] : NULL))
            != 0)
        {
            pu.stats.paths_failed++;
            goto done;
        }

        pu.stats.paths_done++;
        nixcache_progress(&pu.stats, 0);
    }

    rc = 0;

done:

    if (pu.stats.paths_total > 0) {
        nixcache_progress(&pu.stats, 1);
    }

    nixcache_cli_ingest_summary(&pu.ingest);

    nixcache_push_cleanup(&pu);

    return rc;
}


static void
nixcache_push_cleanup(nixcache_push_t *pu)
{
    size_t  i;

    nixcache_push_ahead_stop(pu);

    if (pu->upstream != NULL) {
        nixcache_pushurl_close(pu->upstream);
    }

    for (i = 0; i < pu->npaths; i++) {
        free(pu->paths[i].references);
    }

    free(pu->paths);
    free(pu->order);

    if (pu->json != NULL) {
        json_object_put(pu->json);
    }

    nixcache_redis_close(&pu->redis);
    nixcache_cli_ingest_free(&pu->ingest);

    if (pu->http != NULL) {
        nixcache_pushurl_close(pu->http);
    }
}


/* Runs `nix path-info --json` and parses every path's metadata. */

static int
nixcache_push_path_info(nixcache_push_t *pu, int argc, char **argv)
{
    int                       fd, i, n, first, rc;
    char                     *out, *p, *in, **args;
    size_t                    nin;
    pid_t                     pid;
    size_t                    len, cap, k;
    ssize_t                   got;
    json_object              *obj;
    json_tokener             *tok;
    enum json_tokener_error   jerr;

    /* "-": the paths on stdin, separated by white space */

    in = NULL;
    nin = 0;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-") == 0 && in == NULL
            && nixcache_push_stdin(&in, &nin) != 0)
        {
            return -1;
        }
    }

    args = calloc(argc + nin + 12, sizeof(char *));
    out = NULL;
    rc = -1;

    if (args == NULL) {
        nixcache_error("out of memory");
        free(in);
        return -1;
    }

    n = 0;
    args[n++] = "nix";
    args[n++] = "--extra-experimental-features";
    args[n++] = "nix-command";
    args[n++] = "path-info";
    args[n++] = "--json";

    if (pu->opts->store != NULL) {
        args[n++] = "--store";
        args[n++] = (char *) pu->opts->store;
    }

    if (pu->opts->recursive) {
        args[n++] = "--recursive";
    }

    args[n++] = "--";
    first = n;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-") != 0) {
            args[n++] = argv[i];
        }
    }

    for (p = in, k = 0; k < nin; k++) {
        p += strspn(p, " \t\r\n");
        args[n++] = p;
        p += strlen(p) + 1;
    }

    args[n] = NULL;

    if (n == first) {
        nixcache_error("push: no paths (stdin was empty)");
        free(args);
        free(in);
        return -1;
    }

    rc = nixcache_spawn(args, &pid, &fd);

    free(args);
    free(in);

    if (rc != 0) {
        return -1;
    }

    rc = -1;

    len = 0;
    cap = 64 * 1024;
    out = malloc(cap);

    for ( ;; ) {
        if (out == NULL) {
            nixcache_error("out of memory");
            break;
        }

        if (len == cap) {
            if (cap >= NIXCACHE_PATH_INFO_MAX) {
                nixcache_error("nix path-info: output too large");
                break;
            }

            cap *= 2;
            p = realloc(out, cap);
            if (p == NULL) {
                nixcache_error("out of memory");
                break;
            }

            out = p;
        }

        got = read(fd, out + len, cap - len);

        if (got == -1 && errno == EINTR) {
            continue;
        }

        if (got == -1) {
            nixcache_error("nix path-info: read: %s", strerror(errno));
            break;
        }

        if (got == 0) {
            rc = 0;
            break;
        }

        len += got;
    }

    close(fd);

    if (rc != 0) {
        kill(pid, SIGTERM);
    }

    if (nixcache_wait(pid, "nix path-info") != 0 || rc != 0) {
        free(out);
        return -1;
    }

    rc = -1;

    tok = json_tokener_new();
    if (tok == NULL) {
        nixcache_error("out of memory");
        free(out);
        return -1;
    }

    pu->json = json_tokener_parse_ex(tok, out, (int) len);
    jerr = json_tokener_get_error(tok);
    json_tokener_free(tok);
    free(out);

    if (pu->json == NULL || jerr != json_tokener_success
        || !json_object_is_type(pu->json, json_type_array))
    {
        nixcache_error("nix path-info: unexpected output (%s)",
                       json_tokener_error_desc(jerr));
        return -1;
    }

    k = json_object_array_length(pu->json);

    if (k == 0) {
        nixcache_error("nix path-info: no paths");
        return -1;
    }

    pu->paths = calloc(k, sizeof(nixcache_path_t));
    if (pu->paths == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    for (pu->npaths = 0; pu->npaths < k; pu->npaths++) {
        obj = json_object_array_get_idx(pu->json, pu->npaths);

        if (nixcache_push_parse_path(&pu->paths[pu->npaths], obj) != 0) {
            pu->npaths++;
            return -1;
        }
    }

    return 0;
}


static int
nixcache_push_parse_path(nixcache_path_t *pi, json_object *obj)
{
    char          *p;
    size_t         i, n, len;
    const char    *s, *base;
    json_object   *v, *sig;

    if (!json_object_is_type(obj, json_type_object)
        || !json_object_object_get_ex(obj, "path", &v)
        || !json_object_is_type(v, json_type_string))
    {
        nixcache_error("nix path-info: entry without \"path\"");
        return -1;
    }

    pi->path = json_object_get_string(v);

    if (json_object_object_get_ex(obj, "valid", &v)
        && !json_object_get_boolean(v))
    {
        nixcache_error("%s: not a valid store path in this store",
                       pi->path);
        return -1;
    }

    if (nixcache_store_path_hash(pi->path, &pi->base) != 0) {
        nixcache_error("%s: not a store path under " NIXCACHE_STORE_DIR,
                       pi->path);
        return -1;
    }

    if (!json_object_object_get_ex(obj, "narHash", &v)
        || nixcache_push_parse_nar_hash(pi->nar_hash,
                                        json_object_get_string(v))
           != 0)
    {
        nixcache_error("%s: missing or unreadable narHash", pi->path);
        return -1;
    }

    if (!json_object_object_get_ex(obj, "narSize", &v)
        || !json_object_is_type(v, json_type_int)
        || json_object_get_int64(v) <= 0)
    {
        nixcache_error("%s: missing or invalid narSize", pi->path);
        return -1;
    }

    pi->nar_size = (uint64_t) json_object_get_int64(v);

    /* References: full paths in the JSON, basenames in the narinfo */

    len = 0;

    if (json_object_object_get_ex(obj, "references", &v)) {
        if (!json_object_is_type(v, json_type_array)) {
            nixcache_error("%s: invalid references", pi->path);
            return -1;
        }

        pi->refs = v;
        n = json_object_array_length(v);

        for (i = 0; i < n; i++) {
            s = json_object_get_string(json_object_array_get_idx(v, i));

            if (s == NULL || nixcache_store_path_hash(s, &base) != 0) {
                nixcache_error("%s: invalid reference", pi->path);
                return -1;
            }

            len += strlen(base) + 1;
        }
    }

    pi->references = malloc(len + 1);
    if (pi->references == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    p = pi->references;

    if (pi->refs != NULL) {
        n = json_object_array_length(pi->refs);

        for (i = 0; i < n; i++) {
            s = json_object_get_string(json_object_array_get_idx(pi->refs,
                                                                 i));
            (void) nixcache_store_path_hash(s, &base);

            if (p != pi->references) {
                *p++ = ' ';
            }

            len = strlen(base);
            memcpy(p, base, len);
            p += len;
        }
    }

    *p = '\0';

    if (json_object_object_get_ex(obj, "deriver", &v)
        && json_object_is_type(v, json_type_string))
    {
        if (nixcache_store_path_hash(json_object_get_string(v), &base)
            != 0)
        {
            nixcache_error("%s: invalid deriver", pi->path);
            return -1;
        }

        pi->deriver = base;
    }

    if (json_object_object_get_ex(obj, "ca", &v)
        && json_object_is_type(v, json_type_string))
    {
        pi->ca = json_object_get_string(v);
    }

    if (json_object_object_get_ex(obj, "signatures", &v)
        && json_object_is_type(v, json_type_array))
    {
        n = json_object_array_length(v);

        if (n > NIXCACHE_NARINFO_MAX_SIGS) {
            nixcache_error("%s: more than %d signatures", pi->path,
                           NIXCACHE_NARINFO_MAX_SIGS);
            return -1;
        }

        for (i = 0; i < n; i++) {
            sig = json_object_array_get_idx(v, i);

            if (!json_object_is_type(sig, json_type_string)) {
                nixcache_error("%s: invalid signature", pi->path);
                return -1;
            }

            pi->sigs[pi->nsigs++] = json_object_get_string(sig);
        }
    }

    return 0;
}


/*
 * narHash comes as "sha256:<nix32>" (or hex) from older Nix and as SRI
 * "sha256-<base64>" from Nix 2.8 on.
 */

static int
nixcache_push_parse_nar_hash(unsigned char *digest, const char *s)
{
    size_t       len, bin_len;
    const char  *end;

    if (s == NULL) {
        return -1;
    }

    len = strlen(s);

    if (strncmp(s, "sha256-", 7) == 0) {
        if (sodium_base642bin(digest, NIXCACHE_SHA256_LEN, s + 7, len - 7,
                              NULL, &bin_len, &end,
                              sodium_base64_VARIANT_ORIGINAL)
            != 0
            || bin_len != NIXCACHE_SHA256_LEN || *end != '\0')
        {
            return -1;
        }

        return 0;
    }

    return nixcache_hash_parse(digest, s, len);
}


/*
 * push -: reads stdin whole (at most NIXCACHE_PUSH_STDIN_MAX) and cuts it
 * into *n NUL-terminated words, white space before each left in place.
 */

static int
nixcache_push_stdin(char **buf, size_t *n)
{
    char     *b, *p, *e;
    size_t    len, cap;
    ssize_t   got;

    cap = 64 * 1024;
    len = 0;
    b = malloc(cap + 1);

    for ( ;; ) {
        if (b == NULL) {
            nixcache_error("out of memory");
            return -1;
        }

        if (len == cap) {
            if (cap >= NIXCACHE_PUSH_STDIN_MAX) {
                nixcache_error("push -: more than %d MiB of paths on stdin",
                               NIXCACHE_PUSH_STDIN_MAX / (1024 * 1024));
                free(b);
                return -1;
            }

            cap *= 2;
            p = realloc(b, cap + 1);
            if (p == NULL) {
                free(b);
            }

            b = p;
            continue;
        }

        got = read(0, b + len, cap - len);

        if (got == -1 && errno == EINTR) {
            continue;
        }

        if (got == -1) {
            nixcache_error("push -: stdin: %s", strerror(errno));
            free(b);
            return -1;
        }

        if (got == 0) {
            break;
        }

        len += got;
    }

    b[len] = '\0';

    if (memchr(b, '\0', len) != NULL) {
        nixcache_error("push -: a NUL byte on stdin");
        free(b);
        return -1;
    }

    *n = 0;

    for (p = b; ; p = e + 1) {
        p += strspn(p, " \t\r\n");
        if (*p == '\0') {
            break;
        }

        e = p + strcspn(p, " \t\r\n");
        (*n)++;

        if (*e == '\0') {
            break;
        }

        *e = '\0';
    }

    *buf = b;

    return 0;
}


/*
 * Orders the paths so that references come before the paths that refer to
 * them (references outside the set are someone else's business).
 */

static int
nixcache_push_sort(nixcache_push_t *pu)
{
    size_t  i;

    qsort(pu->paths, pu->npaths, sizeof(nixcache_path_t),
          nixcache_push_cmp);

    for (i = 1; i < pu->npaths; i++) {
        if (strcmp(pu->paths[i - 1].path, pu->paths[i].path) == 0) {
            pu->paths[i].mark = 2;
        }
    }

    pu->order = calloc(pu->npaths, sizeof(nixcache_path_t *));
    if (pu->order == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    for (i = 0; i < pu->npaths; i++) {
        if (nixcache_push_visit(pu, &pu->paths[i]) != 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * Drops the paths --exclude names from the order (Cachix's pushFilter): a
 * path pushed without one of its references is still valid in the cache,
 * and Nix takes the reference from another substituter.
 */

static int
nixcache_push_exclude(nixcache_push_t *pu)
{
    int       rc;
    char      msg[256];
    size_t    i, j, k;
    regex_t   re[NIXCACHE_CLI_EXCLUDE_MAX];

    for (k = 0; k < pu->opts->nexclude; k++) {
        rc = regcomp(&re[k], pu->opts->exclude[k], REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            regerror(rc, &re[k], msg, sizeof(msg));
            nixcache_error("--exclude \"%s\": %s", pu->opts->exclude[k],
                           msg);
            while (k-- > 0) {
                regfree(&re[k]);
            }

            return -1;
        }
    }

    for (i = 0, j = 0; i < pu->norder; i++) {
        for (k = 0; k < pu->opts->nexclude; k++) {
            if (regexec(&re[k], pu->order[i]->path, 0, NULL, 0) == 0) {
                break;
            }
        }

        if (k < pu->opts->nexclude) {
            nixcache_info(&pu->stats, "%s: excluded", pu->order[i]->path);
            pu->stats.paths_excluded++;
            continue;
        }

        pu->order[j++] = pu->order[i];
    }

    pu->norder = j;

    for (k = 0; k < pu->opts->nexclude; k++) {
        regfree(&re[k]);
    }

    return 0;
}


static int
nixcache_push_cmp(const void *a, const void *b)
{
    const nixcache_path_t  *x = a, *y = b;

    return strcmp(x->path, y->path);
}


/* Depth-first, references first; mark: 0 new, 1 on the stack, 2 done. */

static int
nixcache_push_visit(nixcache_push_t *pu, nixcache_path_t *pi)
{
    size_t            i, n;
    nixcache_path_t   key, *ref;

    if (pi->mark == 2) {
        return 0;
    }

    if (pi->mark == 1) {
        /* a self-reference, or a cycle Nix would not have let in */
        return 0;
    }

    pi->mark = 1;

    n = (pi->refs != NULL) ? json_object_array_length(pi->refs) : 0;

    for (i = 0; i < n; i++) {
        key.path = json_object_get_string(json_object_array_get_idx(pi->refs,
                                                                    i));

        ref = bsearch(&key, pu->paths, pu->npaths, sizeof(nixcache_path_t),
                      nixcache_push_cmp);

        if (ref != NULL && nixcache_push_visit(pu, ref) != 0) {
            return -1;
        }
    }

    pi->mark = 2;
    pu->order[pu->norder++] = pi;

    return 0;
}


/*
 * One path, again when a gc refused its publication (docs/FORMAT.md,
 * "Garbage collection"): the chunks are checked (written) again.
 */

static int
nixcache_push_one(nixcache_push_t *pu, nixcache_path_t *pi,
    nixcache_path_t *next)
{
    int  rc, tries;

    for (tries = 1; ; tries++) {
        rc = nixcache_push_one_try(pu, pi, next);

        if (rc != NIXCACHE_GC_REFUSED || tries == NIXCACHE_GC_PUBLISH_TRIES) {
            break;
        }
    }

    if (rc == NIXCACHE_GC_REFUSED) {
        nixcache_error("%s: refused %d times while gc ran; not pushed",
                       pi->path, tries);
        return -1;
    }

    return rc;
}


/*
 * One path: NAR through the pipeline, checked, then published.  Once its
 * NAR is read, the next path's dump starts: the start of a `nix` process
 * overlaps this path's last chunks and publication.
 */

static int
nixcache_push_one_try(nixcache_push_t *pu, nixcache_path_t *pi,
    nixcache_path_t *next)
{
    int                  fd, rc;
    pid_t                pid;
    ssize_t              got;
    uint64_t             new_before;
    nixcache_narinfo_t   ni;
    unsigned char        buf[NIXCACHE_CLI_IO_SIZE];

    if (nixcache_redis_gen(&pu->redis) != 0
        || nixcache_cli_ingest_begin(&pu->ingest) != 0)
    {
        return -1;
    }

    if (pu->ahead == pi) {
        pid = pu->ahead_pid;
        fd = pu->ahead_fd;
        pu->ahead = NULL;

    } else {
        nixcache_push_ahead_stop(pu);

        if (nixcache_push_dump(pu, pi, &pid, &fd) != 0) {
            return -1;
        }
    }

    new_before = pu->stats.new_csize;
    rc = -1;

    for ( ;; ) {
        got = read(fd, buf, sizeof(buf));

        if (got == -1 && errno == EINTR) {
            continue;
        }

        if (got == -1) {
            nixcache_error("%s: reading the NAR: %s", pi->path,
                           strerror(errno));
            break;
        }

        if (got == 0) {
            rc = 0;
            break;
        }

        if (nixcache_cli_ingest_write(&pu->ingest, buf, got) != 0) {
            break;
        }
    }

    close(fd);

    if (rc != 0) {
        kill(pid, SIGTERM);
    }

    if (nixcache_wait(pid, "nix store dump-path") != 0 || rc != 0) {
        nixcache_error("%s: not pushed", pi->path);
        return -1;
    }

    nixcache_push_ahead(pu, next);

    if (nixcache_cli_ingest_finish(&pu->ingest) != 0) {
        return -1;
    }

    if (pu->ingest.core.nar.nar_size != pi->nar_size
        || memcmp(pu->ingest.core.nar.nar_hash, pi->nar_hash,
                  NIXCACHE_SHA256_LEN)
           != 0)
    {
        nixcache_error("%s: NAR hash or size mismatch: the store says %llu "
                       "bytes, the dump had %llu bytes with another hash; "
                       "not pushed (is the store corrupt? try "
                       "`nix store verify`)", pi->path,
                       (unsigned long long) pi->nar_size,
                       (unsigned long long)
                           pu->ingest.core.nar.nar_size);
        return -1;
    }

    nixcache_push_narinfo(pi, &ni);

    rc = nixcache_publish(&pu->ingest, &pu->redis, &ni, pi->base,
                          pu->opts->force);
    if (rc != 0) {
        if (rc != NIXCACHE_GC_REFUSED) {
            nixcache_error("%s: not pushed", pi->path);
        }

        return rc;
    }

    if (pu->opts->verbose) {
        nixcache_info(&pu->stats, "%s: pushed, %llu bytes NAR, %u chunks, "
                      "%llu bytes new", pi->path,
                      (unsigned long long)
                          pu->ingest.core.nar.nar_size,
                      pu->ingest.core.nar.chunk_count,
                      (unsigned long long) (pu->stats.new_csize
                                            - new_before));
    }

    return 0;
}


/*
 * One path with --url: the NAR is sent as it is dumped, then the narinfo,
 * only when the dump had the NarHash and NarSize the store records.
 */

static int
nixcache_push_one_url(nixcache_push_t *pu, nixcache_path_t *pi)
{
    int                  fd, rc;
    char                      *text;
    char                       sig[NIXCACHE_SIGN_TEXT_MAX + 1];
    pid_t                      pid;
    size_t                     len;
    uint64_t                   got_size, sent;
    nixcache_narinfo_t         ni;
    unsigned char              got_hash[NIXCACHE_SHA256_LEN];
    nixcache_narinfo_point_t   point;

    if (nixcache_push_dump(pu, pi, &pid, &fd) != 0) {
        return -1;
    }

    rc = nixcache_pushurl_nar(pu->http, fd, pi->nar_hash, pi->path,
                              got_hash, &got_size, &sent);

    close(fd);

    if (rc != 0) {
        /* the reason is printed; the dump's end by SIGTERM is no news */
        kill(pid, SIGTERM);

        while (waitpid(pid, NULL, 0) == -1 && errno == EINTR) {
            /* void */
        }

        nixcache_error("%s: not pushed", pi->path);
        return -1;
    }

    if (nixcache_wait(pid, "nix store dump-path") != 0) {
        nixcache_error("%s: not pushed", pi->path);
        return -1;
    }

    pu->stats.nar_bytes += got_size;
    pu->stats.new_csize += sent;

    if (got_size != pi->nar_size
        || memcmp(got_hash, pi->nar_hash, NIXCACHE_SHA256_LEN) != 0)
    {
        nixcache_error("%s: NAR hash or size mismatch: the store says %llu "
                       "bytes, the dump had %llu bytes with another hash; "
                       "narinfo not sent (is the store corrupt? try "
                       "`nix store verify`)", pi->path,
                       (unsigned long long) pi->nar_size,
                       (unsigned long long) got_size);
        return -1;
    }

    /* the cache fills in FileHash and FileSize of the frames it stored */

    nixcache_push_narinfo(pi, &ni);

    ni.nar_size = pi->nar_size;
    nixcache_narinfo_point(&ni, &point,
                           NIXCACHE_NARINFO_ZSTD|NIXCACHE_NARINFO_NAR_HASH,
                           pi->nar_hash, NULL, 0);

    if (pu->ingest.sign_key != NULL
        && nixcache_narinfo_sign(&pu->ingest, &ni, sig, sizeof(sig)) != 0)
    {
        return -1;
    }

    len = nixcache_narinfo_render(NULL, 0, &ni);

    text = malloc(len + 1);
    if (text == NULL) {
        nixcache_error("out of memory");
        return -1;
    }

    if (nixcache_narinfo_render(text, len + 1, &ni) != len) {
        nixcache_error("narinfo: cannot render");
        free(text);
        return -1;
    }

    rc = nixcache_pushurl_narinfo(pu->http, pi->base, text, len);

    free(text);

    if (rc != 0) {
        nixcache_error("%s: not pushed", pi->path);
        return -1;
    }

    if (pu->opts->verbose) {
        nixcache_info(&pu->stats, "%s: pushed, %llu bytes NAR, %llu bytes "
                      "sent", pi->path, (unsigned long long) got_size,
                      (unsigned long long) sent);
    }

    return 0;
}


/* Starts `nix store dump-path` for one path, the NAR on *fd. */

static int
nixcache_push_dump(nixcache_push_t *pu, nixcache_path_t *pi, pid_t *pid,
    int *fd)
{
    int    n;
    char  *args[10];

    n = 0;
    args[n++] = "nix";
    args[n++] = "--extra-experimental-features";
    args[n++] = "nix-command";
    args[n++] = "store";
    args[n++] = "dump-path";

    if (pu->opts->store != NULL) {
        args[n++] = "--store";
        args[n++] = (char *) pu->opts->store;
    }

    args[n++] = "--";
    args[n++] = (char *) pi->path;
    args[n] = NULL;

    return nixcache_spawn(args, pid, fd);
}


/*
 * Starts the dump of the path pushed next, unless it is already present
 * (it is checked again at its turn).  A failure is left for its turn too.
 */

static void
nixcache_push_ahead(nixcache_push_t *pu, nixcache_path_t *next)
{
    if (next == NULL
        || (!pu->opts->force
            && nixcache_redis_has_narinfo(&pu->redis, next->base) != 0))
    {
        return;
    }

    if (nixcache_push_dump(pu, next, &pu->ahead_pid, &pu->ahead_fd) == 0) {
        pu->ahead = next;
    }
}


/* A dump started ahead and not used: stopped, quietly. */

static void
nixcache_push_ahead_stop(nixcache_push_t *pu)
{
    int  status;

    if (pu->ahead == NULL) {
        return;
    }

    close(pu->ahead_fd);
    kill(pu->ahead_pid, SIGTERM);

    while (waitpid(pu->ahead_pid, &status, 0) == -1 && errno == EINTR) {
        /* void */
    }

    pu->ahead = NULL;
}


/* The narinfo fields path-info gave: all but URL, hashes and sizes. */

static void
nixcache_push_narinfo(nixcache_path_t *pi, nixcache_narinfo_t *ni)
{
    memset(ni, 0, sizeof(nixcache_narinfo_t));

    ni->store_path.data = pi->path;
    ni->store_path.len = strlen(pi->path);
    ni->references.data = pi->references;
    ni->references.len = strlen(pi->references);

    if (pi->deriver != NULL) {
        ni->deriver.data = pi->deriver;
        ni->deriver.len = strlen(pi->deriver);
    }

    if (pi->ca != NULL) {
        ni->ca.data = pi->ca;
        ni->ca.len = strlen(pi->ca);
    }

    for (ni->nsigs = 0; ni->nsigs < pi->nsigs; ni->nsigs++) {
        ni->sigs[ni->nsigs].data = pi->sigs[ni->nsigs];
        ni->sigs[ni->nsigs].len = strlen(pi->sigs[ni->nsigs]);
    }
}


/* Starts argv[0] (from PATH) with its stdout on a pipe returned in *out. */

int
nixcache_spawn(char **argv, pid_t *pid, int *out)
{
    int                          err, p[2];
    sigset_t                     def;
    posix_spawnattr_t            attr;
    posix_spawn_file_actions_t   fa;

    if (pipe2(p, O_CLOEXEC) == -1) {
        nixcache_error("pipe: %s", strerror(errno));
        return -1;
    }

    if (posix_spawn_file_actions_init(&fa) != 0) {
        nixcache_error("out of memory");
        close(p[0]);
        close(p[1]);
        return -1;
    }

    posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);

    /* SIGPIPE is ignored here; the child gets the default back */

    if (posix_spawnattr_init(&attr) != 0) {
        nixcache_error("out of memory");
        posix_spawn_file_actions_destroy(&fa);
        close(p[0]);
        close(p[1]);
        return -1;
    }

    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);

    err = posix_spawnp(pid, argv[0], &fa, &attr, argv, environ);

    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);

    if (err != 0) {
        nixcache_error("cannot run %s: %s", argv[0], strerror(err));
        close(p[0]);
        return -1;
    }

    *out = p[0];

    return 0;
}


int
nixcache_wait(pid_t pid, const char *what)
{
    int  status;

    while (waitpid(pid, &status, 0) == -1) {
        if (errno != EINTR) {
            nixcache_error("%s: waitpid: %s", what, strerror(errno));
            return -1;
        }
    }

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return 0;
    }

    if (WIFEXITED(status)) {
        nixcache_error("%s failed (exit code %d)", what,
                       WEXITSTATUS(status));

    } else {
        nixcache_error("%s killed by signal %d", what, WTERMSIG(status));
    }

    return -1;
}
