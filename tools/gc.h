/*
 * nixcache gc, rm, pin, unpin (docs/FORMAT.md, "Garbage collection").
 *
 *   gcpath.c   options, rm, pin, unpin, retention (--keep-days)
 *   gc.c       mark (every manifest of the database) and sweep (chunks)
 *   gcset.c    the set of live chunk digests
 */

#ifndef NIXCACHE_GC_CLI_H
#define NIXCACHE_GC_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"


#define NIXCACHE_GC_GRACE_DEFAULT   3600        /* seconds */


typedef struct {
    const char                *redis;
    const char                *redis_auth;
    const char                *prefix;
    const char                *chunks;
    nixcache_s3_conf_t         s3;
    long                       grace;       /* seconds */
    long                       keep_days;   /* 0: no retention */
    const char                *metrics_file;   /* NULL: none */
    unsigned                   dry_run:1;
    unsigned                   quiet:1;
    unsigned                   verbose:1;
} nixcache_gc_opts_t;


/* a set of 32-byte digests, open addressing; the zero digest is "empty" */
typedef struct {
    unsigned char             *slots;
    size_t                     cap;         /* a power of two */
    size_t                     count;
} nixcache_gcset_t;


int nixcache_cmd_gc(int argc, char **argv);
int nixcache_cmd_rm(int argc, char **argv);
int nixcache_cmd_pin(int argc, char **argv);
int nixcache_cmd_unpin(int argc, char **argv);

/* gcpath.c */
int nixcache_gc_options(const char *cmd, int argc, char **argv,
    nixcache_gc_opts_t *o, int *first);
int nixcache_gc_retention(nixcache_gc_opts_t *o, nixcache_redis_t *r,
    long long now, uint64_t *removed);

/* gc.c */
int nixcache_gc_run(nixcache_gc_opts_t *o);

/* gcset.c: 0 or -1 (out of memory) */
int nixcache_gcset_init(nixcache_gcset_t *s);
int nixcache_gcset_add(nixcache_gcset_t *s, const unsigned char *digest);
int nixcache_gcset_has(const nixcache_gcset_t *s,
    const unsigned char *digest);
void nixcache_gcset_free(nixcache_gcset_t *s);


#endif /* NIXCACHE_GC_CLI_H */
