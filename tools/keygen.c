/*
 * nixcache keygen NAME SECRET-FILE PUBLIC-FILE: writes an ed25519 key pair
 * exactly as "nix-store --generate-binary-cache-key" does ("NAME:base64",
 * no trailing newline), the secret file with mode 0600.  Existing files are
 * left alone unless --force, which replaces them atomically.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "nixcache_sign.h"
#include "keygen.h"


#define NIXCACHE_KEYGEN_USAGE                                                \
    "usage: nixcache keygen [--force] NAME SECRET-FILE PUBLIC-FILE\n"        \
    "\n"                                                                     \
    "Writes a binary cache signing key pair in Nix's format (as\n"           \
    "nix-store --generate-binary-cache-key does): SECRET-FILE (mode 0600)\n" \
    "for the cache, PUBLIC-FILE for clients' trusted-public-keys.  NAME is\n" \
    "conventionally the cache's host name and a number, e.g.\n"              \
    "cache.example.org-1.  Existing files are kept unless --force.\n"


static int nixcache_keygen_write(const char *path, const char *text,
    size_t len, mode_t mode, int force);
static int nixcache_keygen_write_all(int fd, const char *p, size_t n);


int
nixcache_cmd_keygen(int argc, char **argv)
{
    int                      i, force, nargs, rc;
    char                    *args[3];
    char                     sk_text[NIXCACHE_SIGN_TEXT_MAX + 1];
    char                     pk_text[NIXCACHE_SIGN_TEXT_MAX + 1];
    size_t                   sk_len, pk_len;
    const char              *err;
    struct stat              st;
    nixcache_sign_public_t   pk;
    nixcache_sign_secret_t   sk;

    force = 0;
    nargs = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0) {
            force = 1;

        } else if (strcmp(argv[i], "--help") == 0
                   || strcmp(argv[i], "-h") == 0)
        {
            fputs(NIXCACHE_KEYGEN_USAGE, stdout);
            return 0;

        } else if (strcmp(argv[i], "--") == 0) {
            for (i++; i < argc && nargs < 3; i++) {
                args[nargs++] = argv[i];
            }

            if (i < argc) {
                nargs++;
            }

            break;

        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "nixcache keygen: unknown option \"%s\"\n%s",
                    argv[i], NIXCACHE_KEYGEN_USAGE);
            return 2;

        } else if (nargs < 3) {
            args[nargs++] = argv[i];

        } else {
            nargs++;
        }
    }

    if (nargs != 3) {
        fputs(NIXCACHE_KEYGEN_USAGE, stderr);
        return 2;
    }

    if (nixcache_sign_name_check(args[0], strlen(args[0]), &err) != 0) {
        fprintf(stderr, "nixcache keygen: \"%s\": %s\n", args[0], err);
        return 2;
    }

    if (strcmp(args[1], args[2]) == 0) {
        fprintf(stderr, "nixcache keygen: SECRET-FILE and PUBLIC-FILE are "
                "the same file\n");
        return 2;
    }

    if (!force) {
        for (i = 1; i < 3; i++) {
            if (lstat(args[i], &st) == 0) {
                fprintf(stderr, "nixcache keygen: %s exists (use --force to "
                        "replace it)\n", args[i]);
                return 1;
            }

            if (errno != ENOENT) {
                fprintf(stderr, "nixcache keygen: %s: %s\n", args[i],
                        strerror(errno));
                return 1;
            }
        }
    }

    if (nixcache_sign_init() != 0) {
        fprintf(stderr, "nixcache keygen: libsodium failed to initialize\n");
        return 1;
    }

    if (nixcache_sign_keypair(&sk, &pk, args[0], strlen(args[0]), &err)
        != 0)
    {
        fprintf(stderr, "nixcache keygen: %s\n", err);
        return 1;
    }

    sk_len = nixcache_sign_secret_format(sk_text, sizeof(sk_text), &sk);
    pk_len = nixcache_sign_public_format(pk_text, sizeof(pk_text), &pk);
    nixcache_sign_secret_wipe(&sk);

    rc = 1;

    if (nixcache_keygen_write(args[1], sk_text, sk_len, 0600, force) != 0) {
        goto done;
    }

    if (nixcache_keygen_write(args[2], pk_text, pk_len, 0644, force) != 0) {
        if (!force) {
            /* we created it a moment ago: no half-written pair */
            (void) unlink(args[1]);
        }

        goto done;
    }

    printf("%.*s\n", (int) pk_len, pk_text);
    rc = 0;

done:

    sodium_memzero(sk_text, sizeof(sk_text));
    return rc;
}


/*
 * Without force: creates path exclusively.  With force: writes a temporary
 * file next to it and renames it over path, so a crash leaves either the
 * old file or the new one.  mode is applied before any byte is written.
 */

static int
nixcache_keygen_write(const char *path, const char *text, size_t len,
    mode_t mode, int force)
{
    int      fd;
    char    *tmp;
    size_t   n;
    mode_t   mask;

    tmp = NULL;

    if (!force) {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

        if (fd == -1) {
            fprintf(stderr, "nixcache keygen: cannot create %s: %s\n", path,
                    strerror(errno));
            return -1;
        }

    } else {
        n = strlen(path);
        tmp = malloc(n + sizeof(".XXXXXX"));

        if (tmp == NULL) {
            fprintf(stderr, "nixcache keygen: out of memory\n");
            return -1;
        }

        memcpy(tmp, path, n);
        memcpy(tmp + n, ".XXXXXX", sizeof(".XXXXXX"));

        fd = mkstemp(tmp);

        if (fd == -1) {
            fprintf(stderr, "nixcache keygen: cannot create %s: %s\n", tmp,
                    strerror(errno));
            free(tmp);
            return -1;
        }

        mask = umask(0);
        umask(mask);

        if (fchmod(fd, mode & ~mask) != 0) {
            fprintf(stderr, "nixcache keygen: chmod %s: %s\n", tmp,
                    strerror(errno));
            goto failed;
        }
    }

    if (nixcache_keygen_write_all(fd, text, len) != 0 || fsync(fd) != 0) {
        fprintf(stderr, "nixcache keygen: write %s: %s\n",
                tmp ? tmp : path, strerror(errno));
        goto failed;
    }

    if (close(fd) != 0) {
        fd = -1;
        fprintf(stderr, "nixcache keygen: close %s: %s\n",
                tmp ? tmp : path, strerror(errno));
        goto failed;
    }

    fd = -1;

    if (tmp != NULL) {
        if (rename(tmp, path) != 0) {
            fprintf(stderr, "nixcache keygen: rename %s to %s: %s\n", tmp,
                    path, strerror(errno));
            goto failed;
        }

        free(tmp);
    }

    return 0;

failed:

    if (fd != -1) {
        (void) close(fd);
    }

    (void) unlink(tmp ? tmp : path);
    free(tmp);

    return -1;
}


static int
nixcache_keygen_write_all(int fd, const char *p, size_t n)
{
    ssize_t  w;

    while (n > 0) {
        w = write(fd, p, n);

        if (w == -1) {
            if (errno == EINTR) {
                continue;
            }

            return -1;
        }

        p += w;
        n -= (size_t) w;
    }

    return 0;
}
