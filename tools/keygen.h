/*
 * nixcache keygen: a binary cache signing key pair in Nix's format.
 */

#ifndef NIXCACHE_KEYGEN_H
#define NIXCACHE_KEYGEN_H


/*
 * "keygen [--force] NAME SECRET-FILE PUBLIC-FILE"; argv[0] is the
 * subcommand's name.  Returns the process exit status: 0, 1 on failure,
 * 2 on a usage error.
 */
int nixcache_cmd_keygen(int argc, char **argv);


#endif /* NIXCACHE_KEYGEN_H */
