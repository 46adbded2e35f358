/*
 * nixcache verify: reads a cache back and reports every narinfo a client
 * could not be served correctly.
 */

#ifndef NIXCACHE_VERIFY_H
#define NIXCACHE_VERIFY_H


/*
 * "verify [--redis ADDR] --chunks DIR [--prefix P] [--quick]"; argv[0] is
 * the subcommand's name.  Problems go to stdout, one a line, a summary to
 * stderr.  Returns the process exit status: 0 when the cache is sound, 1
 * when a problem was found, 2 on a usage error or when Redis cannot be
 * reached or fails.
 */
int nixcache_cmd_verify(int argc, char **argv);


#endif /* NIXCACHE_VERIFY_H */
