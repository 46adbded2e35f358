/*
 * The disk tier writer, in a fresh temporary directory.  Tests run as
 * root, so an unwritable place is made with a path under a regular file
 * (ENOTDIR) rather than with permissions.
 */

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>

#include "unit.h"

#include "nixcache_chunkstore.h"
#include "nixcache_cid.h"
#include "nixcache_hash.h"


static char  root[64];


static size_t
slurp(const char *path, char *buf, size_t cap)
{
    FILE    *f;
    size_t   n;

    f = fopen(path, "rb");
    if (f == NULL) {
        return (size_t) -1;
    }

    n = fread(buf, 1, cap, f);
    fclose(f);

    return n;
}


/* entries of a directory other than "." and "..", and how many are temp */

static int
count(const char *path, int *temps)
{
    int             n;
    DIR            *d;
    struct dirent  *de;

    d = opendir(path);
    if (d == NULL) {
        return -1;
    }

    n = 0;
    *temps = 0;

    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }

        n++;

        if (strstr(de->d_name, ".tmp.") != NULL) {
            (*temps)++;
        }
    }

    closedir(d);

    return n;
}


int
main(void)
{
    int            temps, good;
    char           path[256], fan[256], buf[256], cid[NIXCACHE_CID_LEN + 1];
    char           rel[NIXCACHE_CHUNK_RELPATH_LEN + 1], cmd[128];
    size_t         i;
    struct stat    st;
    unsigned char  d[32], d2[32];

    strcpy(root, "/tmp/nixcache-unit-XXXXXX");
    if (mkdtemp(root) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }

    umask(077);

    nixcache_sha256(d, "chunk one", 9);
    nixcache_chunk_relpath(rel, d);
    rel[NIXCACHE_CHUNK_RELPATH_LEN] = '\0';
    snprintf(path, sizeof(path), "%s%s", root, rel);
    snprintf(fan, sizeof(fan), "%s/%.2s", root, rel + 1);

    is_u64(nixcache_chunkstore_has(root, d), 0, "absent at first");

    ok(nixcache_chunkstore_put(root, d, "frame-one", 9) == 0, "put");
    is_u64(nixcache_chunkstore_has(root, d), 1, "present after put");
    ok(slurp(path, buf, sizeof(buf)) == 9 && memcmp(buf, "frame-one", 9) == 0,
       "the file at <dir>/<xx>/<CID> holds the frame");
    ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644,
       "chunk mode 0644 despite umask 077 (%o)", st.st_mode & 07777);
    ok(stat(fan, &st) == 0 && S_ISDIR(st.st_mode)
       && (st.st_mode & 07777) == 0755,
       "fan-out directory mode 0755 despite umask 077 (%o)",
       st.st_mode & 07777);
    ok(count(fan, &temps) == 1 && temps == 0,
       "one file in the fan-out directory, no temporary file");

    /* an existing chunk is left alone */

    ok(nixcache_chunkstore_store(root, d, "other-frame", 11) == 0,
       "store of a present chunk says 0");
    ok(nixcache_chunkstore_put(root, d, "other-frame", 11) == 0,
       "put of a present chunk succeeds");
    ok(slurp(path, buf, sizeof(buf)) == 9 && memcmp(buf, "frame-one", 9) == 0,
       "and leaves its content untouched");

    /* a second chunk in a fan-out directory that already exists */

    good = 1;
    for (i = 0; i < 2000 && good; i++) {
        nixcache_sha256(d2, &i, sizeof(i));
        nixcache_cid_encode(cid, d2);

        if (memcmp(cid + NIXCACHE_CID_LEN - 2, rel + 1, 2) == 0) {
            break;
        }
    }
    ok(i < 2000, "found another digest with the same fan-out");
    ok(nixcache_chunkstore_store(root, d2, "frame-two", 9) == 1,
       "store into an existing fan-out directory says 1");
    ok(count(fan, &temps) == 2 && temps == 0,
       "two files in the fan-out directory, no temporary file");

    /* many chunks: each file is its frame */

    good = 1;
    for (i = 0; i < 300; i++) {
        nixcache_sha256(d2, &i, sizeof(i));

        snprintf(buf, sizeof(buf), "frame %zu", i);
        if (nixcache_chunkstore_put(root, d2, buf, strlen(buf)) != 0
            || nixcache_chunkstore_has(root, d2) != 1)
        {
            good = 0;
        }
    }
    for (i = 0; i < 300; i++) {
        char  want[64];

        nixcache_sha256(d2, &i, sizeof(i));
        nixcache_chunk_relpath(rel, d2);
        snprintf(path, sizeof(path), "%s%s", root, rel);
        snprintf(want, sizeof(want), "frame %zu", i);

        if (slurp(path, buf, sizeof(buf)) != strlen(want)
            || memcmp(buf, want, strlen(want)) != 0)
        {
            good = 0;
        }
    }
    ok(good, "300 chunks written and read back");

    snprintf(cmd, sizeof(cmd), "find %s -name '*.tmp.*' | grep -q .", root);
    ok(system(cmd) != 0, "no temporary file anywhere");

    /* a larger frame */

    {
        static unsigned char  big[3 * 1024 * 1024], back[3 * 1024 * 1024];

        for (i = 0; i < sizeof(big); i++) {
            big[i] = (unsigned char) (i * 2654435761u >> 13);
        }

        nixcache_sha256(d2, big, sizeof(big));
        ok(nixcache_chunkstore_store(root, d2, big, sizeof(big)) == 1,
           "store 3 MiB");
        nixcache_chunk_relpath(rel, d2);
        snprintf(path, sizeof(path), "%s%s", root, rel);
        ok(slurp(path, (char *) back, sizeof(back)) == sizeof(big)
           && memcmp(back, big, sizeof(big)) == 0, "3 MiB read back");
    }

    ok(nixcache_chunkstore_sync(root) == 0, "sync");

    /* errors */

    snprintf(path, sizeof(path), "%s/plain-file", root);
    fclose(fopen(path, "w"));
    snprintf(path, sizeof(path), "%s/plain-file/chunks", root);

    errno = 0;
    ok(nixcache_chunkstore_put(path, d, "x", 1) == -1 && errno == ENOTDIR,
       "put under a regular file fails with ENOTDIR (%s)", strerror(errno));
    errno = 0;
    ok(nixcache_chunkstore_has(path, d) == -1 && errno == ENOTDIR,
       "has under a regular file fails with ENOTDIR");
    ok(nixcache_chunkstore_sync(path) == -1, "sync under a regular file fails");

    snprintf(path, sizeof(path), "%s/missing/chunks", root);
    is_u64(nixcache_chunkstore_has(path, d), 0,
           "has in a missing directory: 0");
    errno = 0;
    ok(nixcache_chunkstore_put(path, d, "x", 1) == -1 && errno == ENOENT,
       "put into a missing directory fails with ENOENT");

    /* the fan-out name is taken by a regular file */

    for (i = 10000; i < 20000; i++) {
        nixcache_sha256(d, &i, sizeof(i));
        nixcache_chunk_relpath(rel, d);
        snprintf(path, sizeof(path), "%s/%.2s", root, rel + 1);

        if (stat(path, &st) != 0) {
            break;
        }
    }
    fclose(fopen(path, "w"));
    errno = 0;
    ok(nixcache_chunkstore_put(root, d, "x", 1) == -1,
       "put fails when the fan-out name is a file (%s)", strerror(errno));

    {
        static char  longdir[5000];

        memset(longdir, 'a', sizeof(longdir) - 1);
        errno = 0;
        ok(nixcache_chunkstore_put(longdir, d, "x", 1) == -1
           && errno == ENAMETOOLONG, "a directory name too long");
    }

    /*
     * a fan-out directory that is a symlink (to a directory elsewhere,
     * holding a file of the chunk's name): never followed
     */

    {
        char  other[128], victim[256], rmfan[300], *cidp;

        snprintf(other, sizeof(other), "%s/elsewhere", root);
        ok(mkdir(other, 0755) == 0, "a directory outside the fan-out");

        nixcache_sha256(d2, "behind a symlink", 16);
        nixcache_chunk_relpath(rel, d2);
        rel[NIXCACHE_CHUNK_RELPATH_LEN] = '\0';
        cidp = rel + 1 + NIXCACHE_CHUNK_FANOUT_LEN + 1;
        snprintf(victim, sizeof(victim), "%s/%s", other, cidp);
        fclose(fopen(victim, "w"));
        snprintf(fan, sizeof(fan), "%s/%.2s", root, rel + 1);
        snprintf(rmfan, sizeof(rmfan), "rm -rf %s", fan);
        ok(system(rmfan) == 0 && symlink(other, fan) == 0,
           "a fan-out name that is a symlink");

        errno = 0;
        ok(nixcache_chunkstore_has(root, d2) == -1
           && (errno == ELOOP || errno == ENOTDIR),
           "has: not followed (%s)", strerror(errno));
        errno = 0;
        ok(nixcache_chunkstore_read(root, d2, buf, sizeof(buf)) == -1
           && (errno == ELOOP || errno == ENOTDIR), "read: not followed");
        errno = 0;
        ok(nixcache_chunkstore_put(root, d2, "x", 1) == -1
           && (errno == ELOOP || errno == ENOTDIR),
           "put: not followed (%s)", strerror(errno));
        ok(count(other, &temps) == 1 && temps == 0
           && stat(victim, &st) == 0 && st.st_size == 0,
           "nothing written behind the symlink");
    }

    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", root);
    }

    return done_testing();
}
