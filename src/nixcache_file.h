/*
 * Small files read whole: secrets (S3 credentials, Redis passwords) the
 * CLI reads before it starts.  No nginx types; the module reads its files
 * through nginx (ngx_http_nixcache_read_file(), which also checks their
 * mode).
 */

#ifndef NIXCACHE_FILE_H
#define NIXCACHE_FILE_H

#include <stddef.h>
#include <sys/types.h>


/*
 * Reads file into buf (cap bytes): its length, or -1 with errno set
 * (EFBIG: the file holds cap bytes or more).  On failure buf is wiped.
 */
ssize_t nixcache_file_read_small(const char *file, char *buf, size_t cap);


#endif /* NIXCACHE_FILE_H */
