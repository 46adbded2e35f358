/*
 * nixcache_file_read_small(): the reader of the CLI's secret files (S3
 * credentials, the Redis password).  A file that fills the buffer is
 * refused (EFBIG) and the buffer wiped; a missing one gives ENOENT.
 */

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "unit.h"

#include "nixcache_file.h"


static void
spew(const char *path, const char *text, size_t len)
{
    FILE  *f;

    f = fopen(path, "w");
    if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}


int
main(void)
{
    char         dir[256], path[300], buf[8];
    size_t       i, wiped;
    ssize_t      n;
    const char  *tmp;

    tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/nixcache-test-file-XXXXXX",
             (tmp != NULL && tmp[0] != '\0') ? tmp : "/tmp");

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    snprintf(path, sizeof(path), "%s/f", dir);

    spew(path, "secret\n", 7);
    n = nixcache_file_read_small(path, buf, sizeof(buf));
    ok(n == 7 && memcmp(buf, "secret\n", 7) == 0, "7 bytes into 8: read");

    spew(path, "", 0);
    ok(nixcache_file_read_small(path, buf, sizeof(buf)) == 0, "empty: 0");

    spew(path, "12345678", 8);
    errno = 0;
    n = nixcache_file_read_small(path, buf, sizeof(buf));
    ok(n == -1 && errno == EFBIG, "8 bytes into 8: EFBIG");

    for (wiped = 1, i = 0; i < sizeof(buf); i++) {
        wiped &= (buf[i] == '\0');
    }

    ok(wiped, "... and the buffer wiped");

    spew(path, "123456789abc", 12);
    ok(nixcache_file_read_small(path, buf, sizeof(buf)) == -1
       && errno == EFBIG, "12 bytes into 8: EFBIG");

    unlink(path);
    errno = 0;
    ok(nixcache_file_read_small(path, buf, sizeof(buf)) == -1
       && errno == ENOENT, "missing: ENOENT");

    rmdir(dir);

    return done_testing();
}
