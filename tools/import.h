/*
 * nixcache import: what its two sources share.
 *
 *   import.c     one narinfo's path checked, its NAR through the
 *                pipeline, published; the flat directory source
 *   importurl.c  import --from-url: an HTTP(S) binary cache source
 *
 * A source is a base (a directory, or a URL ending in '/') that a
 * narinfo's URL is joined to, and a pump that feeds the bytes of that
 * file to a decoder.
 */

#ifndef NIXCACHE_IMPORT_H
#define NIXCACHE_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"


typedef struct nixcache_import_s  nixcache_import_t;


struct nixcache_import_s {
    nixcache_opts_t           *opts;
    nixcache_stats_t           stats;
    nixcache_redis_t           redis;
    nixcache_cli_ingest_t      ingest;
    const char                *source;      /* in messages */
    const char                *base;        /* what URLs are joined to */
    nixcache_cli_pump_pt       pump;        /* data: the nixcache_import_t */
    void                      *data;        /* the source's */
    nixcache_sign_public_t    *keys;        /* --trusted-key */
    size_t                     nkeys;
    char                      *text;        /* a narinfo's */
};


/* 0, or -1 (printed): ingest, chunk directory, Redis, trusted keys. */
int nixcache_import_open(nixcache_import_t *im, nixcache_opts_t *o);
void nixcache_import_close(nixcache_import_t *im);

/*
 * The narinfo in im->text (len bytes, from where) of the store path
 * whose hash is hash: 0 imported, 1 already present, -1 failed (reported,
 * the path named).
 */
int nixcache_import_narinfo(nixcache_import_t *im, const char *where,
    size_t len, const char *hash);

/* Counts one path's result; -1 when Redis is gone (stop). */
int nixcache_import_count(nixcache_import_t *im, int rc);

/* importurl.c */
int nixcache_import_url(nixcache_opts_t *o, int argc, char **argv);


#endif /* NIXCACHE_IMPORT_H */
