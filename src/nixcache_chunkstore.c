/*
 * The disk tier's writer.  A chunk appears under its final name only
 * complete: it is written to a temporary name in its fan-out directory,
 * then renamed without replacing, so an existing chunk (perhaps already
 * counted in a manifest, with its own compressed size) is never touched.
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
static int nixcache_chunkstore_link(const char *tmp, const char *path);
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
    char         path[PATH_MAX];
    struct stat  st;

    if (nixcache_chunkstore_path(path, dir, digest) != 0) {
        return -1;
    }

    if (stat(path, &st) == 0) {
        return 1;
    }

    return errno == ENOENT ? 0 : -1;
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
    int            fd, rc, err, tries;
    char          *fanout_end, *cid;
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
    fanout_end = path + dirlen + 1 + NIXCACHE_CHUNK_FANOUT_LEN;
    cid = fanout_end + 1;

    /* the fan-out directory; another writer may create it at the same time */

    *fanout_end = '\0';

    if (mkdir(path, 0755) == 0) {
        if (chmod(path, 0755) != 0) {       /* whatever the umask */
            return -1;
        }

    } else if (errno != EEXIST) {
        return -1;
    }

    *fanout_end = '/';

    /* ".<CID>.tmp.<pid>.<counter>" next to the chunk */

    fd = -1;

    for (tries = 0; tries < 16; tries++) {
        n = __atomic_fetch_add(&nixcache_chunkstore_counter, 1,
                               __ATOMIC_RELAXED);

        if (snprintf(tmp, sizeof(tmp), "%.*s.%.*s.tmp.%ld.%lu",
                     (int) (cid - path), path, NIXCACHE_CID_LEN, cid,
                     (long) getpid(), n)
            >= (int) sizeof(tmp))
        {
            errno = ENAMETOOLONG;
            return -1;
        }

        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

        if (fd != -1 || errno != EEXIST) {
            break;
        }
    }

    if (fd == -1) {
        return -1;
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

    rc = nixcache_chunkstore_link(tmp, path);
    if (rc == -1) {
        goto failed;
    }

    return rc;

failed:

    err = errno;

    if (fd != -1) {
        (void) close(fd);
    }

    (void) unlink(tmp);

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
    int             fd, err;
    char            path[PATH_MAX];
    size_t          len;
    ssize_t         n;
    unsigned char  *p;

    if (nixcache_chunkstore_path(path, dir, digest) != 0) {
        return -1;
    }

    fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1) {
        return errno == ENOENT ? 0 : -1;
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
nixcache_chunkstore_link(const char *tmp, const char *path)
{
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0) {
        return 1;
    }

    if (errno == EEXIST) {
        (void) unlink(tmp);
        return 0;
    }

    if (errno != EINVAL && errno != ENOSYS) {
        return -1;
    }

    /* a file system without RENAME_NOREPLACE: link() does not replace */

    if (link(tmp, path) == 0) {
        (void) unlink(tmp);
        return 1;
    }

    if (errno == EEXIST) {
        (void) unlink(tmp);
        return 0;
    }

    return -1;
}
