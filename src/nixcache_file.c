/*
 * Small files read whole (see nixcache_file.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "nixcache_file.h"


ssize_t
nixcache_file_read_small(const char *file, char *buf, size_t cap)
{
    int      fd, e;
    size_t   len;
    ssize_t  n;

    fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return -1;
    }

    len = 0;

    while (len < cap) {
        n = read(fd, buf + len, cap - len);

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1) {
            e = errno;
            close(fd);
            explicit_bzero(buf, cap);
            errno = e;
            return -1;
        }

        if (n == 0) {
            break;
        }

        len += n;
    }

    close(fd);

    if (len == cap) {
        explicit_bzero(buf, cap);
        errno = EFBIG;
        return -1;
    }

    return len;
}
