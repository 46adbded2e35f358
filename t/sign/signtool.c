/*
 * Test driver for t/070-sign-nix.t: exposes the core's signing code (and
 * "nixcache keygen") to the shell, so the test can compare it with Nix.
 *
 *   signtool keygen [--force] NAME SK-FILE PK-FILE
 *   signtool secret SK-FILE          prints name, then the key re-rendered
 *   signtool public PK-FILE          the same for a public key
 *   signtool sign SK-FILE FINGERPRINT          prints the Sig: value
 *   signtool verify PK-FILE SIG FINGERPRINT    exit 0 valid, 1 not
 *
 * Exit status 3 means a usage or I/O error, 4 a key the core refused (its
 * message on stderr).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nixcache_sign.h"
#include "keygen.h"


static size_t read_file(const char *path, char *buf, size_t cap);


int
main(int argc, char **argv)
{
    int                      rc;
    char                     text[4096], out[NIXCACHE_SIGN_TEXT_MAX + 1];
    size_t                   len, n;
    const char              *err;
    nixcache_sign_public_t   pk;
    nixcache_sign_secret_t   sk;

    if (argc < 2) {
        fprintf(stderr, "usage: signtool keygen|secret|public|sign|verify\n");
        return 3;
    }

    if (strcmp(argv[1], "keygen") == 0) {
        return nixcache_cmd_keygen(argc - 1, argv + 1);
    }

    if (nixcache_sign_init() != 0 || argc < 3) {
        return 3;
    }

    len = read_file(argv[2], text, sizeof(text));
    err = NULL;

    if (strcmp(argv[1], "secret") == 0 || strcmp(argv[1], "sign") == 0) {
        if (nixcache_sign_secret_parse(&sk, text, len, &err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 4;
        }

        if (strcmp(argv[1], "secret") == 0) {
            n = nixcache_sign_secret_format(out, sizeof(out), &sk);
            printf("%s\n%.*s\n", sk.name, (int) n, out);

        } else if (argc == 4) {
            n = nixcache_sign_fingerprint(out, sizeof(out), &sk, argv[3],
                                          strlen(argv[3]));
            printf("%.*s\n", (int) n, out);

        } else {
            return 3;
        }

        nixcache_sign_secret_wipe(&sk);
        return 0;
    }

    if (strcmp(argv[1], "public") == 0 || strcmp(argv[1], "verify") == 0) {
        if (nixcache_sign_public_parse(&pk, text, len, &err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 4;
        }

        if (strcmp(argv[1], "public") == 0) {
            n = nixcache_sign_public_format(out, sizeof(out), &pk);
            printf("%s\n%.*s\n", pk.name, (int) n, out);
            return 0;
        }

        if (argc != 5) {
            return 3;
        }

        rc = nixcache_sign_verify(&pk, argv[3], strlen(argv[3]), argv[4],
                                  strlen(argv[4]));
        return rc == 1 ? 0 : 1;
    }

    fprintf(stderr, "signtool: unknown command %s\n", argv[1]);
    return 3;
}


static size_t
read_file(const char *path, char *buf, size_t cap)
{
    FILE    *f;
    size_t   n;

    f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(3);
    }

    n = fread(buf, 1, cap, f);
    if (ferror(f) || n == cap) {
        fprintf(stderr, "%s: unreadable or too long\n", path);
        exit(3);
    }

    fclose(f);

    return n;
}
