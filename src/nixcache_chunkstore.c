/*
 * The disk tier's writer.  A chunk appears under its final name only
 * complete: it is written to a temporary name in its fan-out directory,
 * then renamed without replacing, so an existing chunk (perhaps already
 * counted in a manifest, with its own compressed size) is never touched.
 *
 * Everything below the chunk directory is reached without following a
 * symlink (the fan-out directory is opened O_NOFOLLOW, the files by name
 * relative to it): a symlinked fan-out directory is ENOTDIR (or ELOOP),
 * so nothing is written, read or found through it.  The chunk directory
 * itself may be a symlink.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* renameat2(), syncfs() */
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "nixcache_chunkstore.h"
#include "nixcache_cid.h"


#define NIXCACHE_TMP_SUFFIX_MAX  (sizeof(".tmp.") + 2 * 20 + 1)


static unsigned long  nixcache_chunkstore_counter;


static int nixcache_chunkstore_path(char *path, const char *dir,
    const unsigned char *digest);
static int nixcache_chunkstore_write(int fd, const void *p, size_t len);
static int nixcache_chunkstore_fanout(char *path, size_t dirlen,
    int create);
static int nixcache_chunkstore_link(int dfd, const char *tmp,
    const char *cid);
static int nixcache_chunkstore_sink_has(void *data,
    const unsigned char *digest);
static int nixcache_chunkstore_sink_put(void *data,
    const unsigned char *digest, const void *frame, size_t len);
static ssize_t nixcache_chunkstore_sink_read(void *data,
    const unsigned char *digest, void *buf, size_t cap);
static int nixcache_chunkstore_sink_sync(void *data);


int
nixcache_chunkstore_has(const char *dir, const unsigned char *digest)
{
    int          dfd, rc, err;
    char         path[PATH_MAX];
    size_t       dirlen;
    struct stat  st;

    if (nixcache_chunkstore_path(path, dir, digest) != 0) {
        return -1;
    }

    dirlen = strlen(dir);

    dfd = nixcache_chunkstore_fanout(path, dirlen, 0);
    if (dfd == -1) {
        return errno == ENOENT ? 0 : -1;
    }

    rc = fstatat(dfd, path + dirlen + 1 + NIXCACHE_CHUNK_FANOUT_LEN + 1,
                 &st, AT_SYMLINK_NOFOLLOW);
    err = errno;
    (void) close(dfd);

    if (rc == 0) {
        if (S_ISREG(st.st_mode)) {
            return 1;
        }

        errno = ELOOP;
        return -1;
    }

    errno = err;

    return err == ENOENT ? 0 : -1;
}


int
nixcache_chunkstore_put(const char *dir, const unsigned char *digest,
    const void *frame, size_t len)
{
    return nixcache_chunkstore_store(dir, digest, frame, len) == -1 ? -1 : 0;
}


int
nixcache_chunkstore_store(const char *dir, const unsigned char *digest,
    const void *frame, size_t len)
{
    int            fd, dfd, rc, err, tries;
    char          *cid;
    char           path[PATH_MAX], tmp[PATH_MAX];
    size_t         dirlen;
    unsigned long  n;

    if (nixcache_chunkstore_path(path, dir, digest) != 0) {
        return -1;
    }

    rc = nixcache_chunkstore_has(dir, digest);
    if (rc != 0) {
        return rc == 1 ? 0 : -1;
    }

    dirlen = strlen(dir);
    cid = path + dirlen + 1 + NIXCACHE_CHUNK_FANOUT_LEN + 1;

    /* the fan-out directory; another writer may create it at the same time */

    dfd = nixcache_chunkstore_fanout(path, dirlen, 1);
    if (dfd == -1) {
        return -1;
    }

    /* ".<CID>.tmp.<pid>.<counter>" next to the chunk */

    fd = -1;

    for (tries = 0; tries < 16; tries++) {
        n = __atomic_fetch_add(&nixcache_chunkstore_counter, 1,
                               __ATOMIC_RELAXED);

        if (snprintf(tmp, sizeof(tmp), ".%.*s.tmp.%ld.%lu",
                     NIXCACHE_CID_LEN, cid, (long) getpid(), n)
            >= (int) sizeof(tmp))
        {
            errno = ENAMETOOLONG;
            goto failed_dir;
        }

        fd = openat(dfd, tmp,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0644);

        if (fd != -1 || errno != EEXIST) {
            break;
        }
    }

    if (fd == -1) {
        goto failed_dir;
    }

    if (fchmod(fd, 0644) != 0 || nixcache_chunkstore_write(fd, frame, len)
        != 0)
    {
        goto failed;
    }

    if (close(fd) != 0) {
        fd = -1;
        goto failed;
    }

    fd = -1;

    rc = nixcache_chunkstore_link(dfd, tmp, cid);
    if (rc == -1) {
        goto failed;
    }

    (void) close(dfd);

    return rc;

failed:

    err = errno;

    if (fd != -1) {
        (void) close(fd);
    }

    (void) unlinkat(dfd, tmp, 0);
    (void) close(dfd);

    errno = err;

    return -1;

failed_dir:

    err = errno;
    (void) close(dfd);
    errno = err;

    return -1;
}


int
nixcache_chunkstore_sync(const char *dir)
{
    int  fd, rc, err;

    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        return -1;
    }

    rc = syncfs(fd);
    err = errno;

    (void) close(fd);

    errno = err;

    return rc == 0 ? 0 : -1;
}


ssize_t
nixcache_chunkstore_read(const char *dir, const unsigned char *digest,
    void *buf, size_t cap)
{
    int             fd, dfd, err;
    char            path[PATH_MAX];
    size_t          len, dirlen;
    ssize_t         n;
    unsigned char  *p;

    if (nixcache_chunkstore_path(path, dir, digest) != 0) {
        return -1;
    }

    dirlen = strlen(dir);

    dfd = nixcache_chunkstore_fanout(path, dirlen, 0);
    if (dfd == -1) {
        return errno == ENOENT ? 0 : -1;
    }

    fd = openat(dfd, path + dirlen + 1 + NIXCACHE_CHUNK_FANOUT_LEN + 1,
                O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    err = errno;
    (void) close(dfd);

    if (fd == -1) {
        errno = err;
        return err == ENOENT ? 0 : -1;
    }

    p = buf;
    len = 0;

    while (len < cap) {
        n = read(fd, p + len, cap - len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            err = errno;
            (void) close(fd);
            errno = err;

            return -1;
        }

        if (n == 0) {
            break;
        }

        len += (size_t) n;
    }

    (void) close(fd);

    if (len == 0) {
        /* an empty file is not a frame, and not "absent" either */
        errno = EBADMSG;
        return -1;
    }

    return (ssize_t) len;
}


void
nixcache_chunkstore_sink(nixcache_chunk_sink_t *sink, const char *dir)
{
    sink->data = (void *) dir;
    sink->has = nixcache_chunkstore_sink_has;
    sink->put = nixcache_chunkstore_sink_put;
    sink->read_stored = nixcache_chunkstore_sink_read;
    sink->sync = nixcache_chunkstore_sink_sync;
}


static int
nixcache_chunkstore_sink_has(void *data, const unsigned char *digest)
{
    return nixcache_chunkstore_has(data, digest);
}


static int
nixcache_chunkstore_sink_put(void *data, const unsigned char *digest,
    const void *frame, size_t len)
{
    return nixcache_chunkstore_store(data, digest, frame, len);
}


static ssize_t
nixcache_chunkstore_sink_read(void *data, const unsigned char *digest,
    void *buf, size_t cap)
{
    return nixcache_chunkstore_read(data, digest, buf, cap);
}


static int
nixcache_chunkstore_sink_sync(void *data)
{
    return nixcache_chunkstore_sync(data);
}


static int
nixcache_chunkstore_path(char *path, const char *dir,
    const unsigned char *digest)
{
    size_t  dirlen;

    dirlen = strlen(dir);

    if (dirlen + NIXCACHE_CHUNK_RELPATH_LEN + NIXCACHE_TMP_SUFFIX_MAX
        >= PATH_MAX)
    {
        errno = ENAMETOOLONG;
        return -1;
    }

    memcpy(path, dir, dirlen);
    nixcache_chunk_relpath(path + dirlen, digest);
    path[dirlen + NIXCACHE_CHUNK_RELPATH_LEN] = '\0';

    return 0;
}


static int
nixcache_chunkstore_write(int fd, const void *p, size_t len)
{
    ssize_t               n;
    const unsigned char  *b;

    b = p;

    while (len > 0) {
        n = write(fd, b, len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            return -1;
        }

        b += n;
        len -= (size_t) n;
    }

    return 0;
}


/*
 * Moves tmp to path unless path exists: 1 when moved, 0 when path was
 * already there (tmp is then removed), -1 on error.
 */

static int
nixcache_chunkstore_link(int dfd, const char *tmp, const char *cid)
{
    if (renameat2(dfd, tmp, dfd, cid, RENAME_NOREPLACE) == 0) {
        return 1;
    }

    if (errno == EEXIST) {
        (void) unlinkat(dfd, tmp, 0);
        return 0;
    }

    if (errno != EINVAL && errno != ENOSYS) {
        return -1;
    }

    /* a file system without RENAME_NOREPLACE: link() does not replace */

    if (linkat(dfd, tmp, dfd, cid, 0) == 0) {
        (void) unlinkat(dfd, tmp, 0);
        return 1;
    }

    if (errno == EEXIST) {
        (void) unlinkat(dfd, tmp, 0);
        return 0;
    }

    return -1;
}


/*
 * Opens the fan-out directory of a chunk path (dir/xx/CID) without
 * following a symlink there (ENOTDIR), creating it (mode 0755 whatever the
 * umask) first if asked.  The descriptor, or -1 (errno set).
 */

static int
nixcache_chunkstore_fanout(char *path, size_t dirlen, int create)
{
    int    fd, err, made;
    char  *end;

    end = path + dirlen + 1 + NIXCACHE_CHUNK_FANOUT_LEN;
    *end = '\0';
    made = 0;

    if (create) {
        if (mkdir(path, 0755) == 0) {
            made = 1;

        } else if (errno != EEXIST) {
            err = errno;
            *end = '/';
            errno = err;
            return -1;
        }
    }

    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    err = errno;

    *end = '/';

    /* 0755 whatever the umask */
    if (fd != -1 && made && fchmod(fd, 0755) != 0) {
        err = errno;
        (void) close(fd);
        fd = -1;
    }

    errno = err;

    return fd;
}
