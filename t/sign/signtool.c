/*
 * Test driver for t/070-sign-nix.t: exposes the core's signing code (and
 * "nixcache keygen") to the shell, so the test can compare it with Nix.
 *
 *   signtool keygen [--force] NAME SK-FILE PK-FILE
 *   signtool secret SK-FILE          prints name, then the key re-rendered
 *   signtool public PK-FILE          the same for a public key
 *   signtool sign SK-FILE FINGERPRINT          prints the Sig: value
 *   signtool verify PK-FILE SIG FINGERPRINT    exit 0 valid, 1 not
 *   signtool fingerprint NARINFO-FILE          prints its fingerprint
 *
 * Exit status 3 means a usage or I/O error, 4 a key or narinfo the core
 * refused (its message on stderr).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nixcache_narinfo.h"
#include "nixcache_sign.h"
#include "keygen.h"


static size_t read_file(const char *path, char *buf, size_t cap);


int
main(int argc, char **argv)
{
    int                      rc;
    char                     text[NIXCACHE_NARINFO_MAX_LEN + 1];
    char                     out[NIXCACHE_NARINFO_MAX_LEN];
    size_t                   len, n;
    const char              *err;
    nixcache_narinfo_t       ni;
    nixcache_sign_public_t   pk;
    nixcache_sign_secret_t   sk;

    if (argc < 2) {
        fprintf(stderr, "usage: signtool keygen|secret|public|sign|verify|"
                "fingerprint\n");
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

    if (strcmp(argv[1], "fingerprint") == 0) {
        if (nixcache_narinfo_parse(&ni, text, len, &err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 4;
        }

        n = nixcache_narinfo_fingerprint(out, sizeof(out), &ni);
        if (n == 0 || n > sizeof(out)) {
            fprintf(stderr, "no fingerprint\n");
            return 4;
        }

        printf("%.*s\n", (int) n, out);
        return 0;
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
