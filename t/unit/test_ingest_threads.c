/*
 * The threaded ingest pipeline against the serial one: for NARs of many
 * sizes (empty, one byte, around chunk min and max, around the input
 * window, larger) and contents (noise, text, zeros and a short period,
 * whose chunks repeat while earlier copies are still in flight), on 2, 3
 * and 8 threads, the manifest, NarHash, NarSize, FileHash, FileSize, the
 * counters, the frames stored (in the order stored) and the number of sink
 * calls are the serial pipeline's.  The sink is called from the caller's
 * thread only.  Sink failures, a corrupt stored frame, a racy sink and a
 * manifest file behave as in the serial pipeline, and an ingest that
 * failed is usable again.
 */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <zstd.h>

#include "unit.h"

#include "nixcache_hash.h"
#include "nixcache_ingest.h"
#include "nixcache_manifest.h"

#include "mem_sink.h"


typedef struct {
    int                        rc;
    nixcache_ingest_err_e      error;
    nixcache_nar_t             nar;
    nixcache_ingest_stats_t    stats;
    unsigned char             *manifest;
} result_t;


/*
 * The same frames, stored in the same order, and as many calls (reads:
 * after a failure, the threaded pipeline may have looked up more).
 */

static int
mem_equal(mem_sink_t *a, mem_sink_t *b, int reads)
{
    size_t  i;

    if (a->n != b->n || a->puts != b->puts
        || (reads && a->reads != b->reads))
    {
        printf("#   chunks %zu/%zu puts %zu/%zu reads %zu/%zu\n", a->n, b->n,
               a->puts, b->puts, a->reads, b->reads);
        return 0;
    }

    for (i = 0; i < a->n; i++) {
        if (memcmp(a->chunks[i].digest, b->chunks[i].digest,
                   NIXCACHE_SHA256_LEN)
            != 0
            || a->chunks[i].len != b->chunks[i].len
            || memcmp(a->chunks[i].frame, b->chunks[i].frame,
                      a->chunks[i].len)
               != 0)
        {
            printf("#   chunk %zu differs\n", i);
            return 0;
        }
    }

    return 1;
}


enum { NOISE = 0, TEXT, ZEROS, PERIOD };


static void
fill(unsigned char *p, size_t len, int kind, uint64_t seed)
{
    size_t    i;
    uint64_t  x;

    x = seed;

    for (i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;

        switch (kind) {
        case NOISE:
            p[i] = (unsigned char) x;
            break;
        case TEXT:
            p[i] = (i / 4096) % 3 == 0 ? (unsigned char) ('a' + i % 23)
                                       : (unsigned char) x;
            break;
        case ZEROS:
            p[i] = 0;
            break;
        default:
            /* a 3000-byte block over and over: equal chunks in flight */
            p[i] = (unsigned char) ((i % 3000) * 2654435761u >> 13);
            break;
        }
    }
}


static void
run(nixcache_ingest_conf_t *conf, unsigned threads, mem_sink_t *m,
    const unsigned char *nar, size_t len, size_t piece, int fd,
    result_t *r)
{
    size_t                  k;
    nixcache_ingest_t       ing;
    nixcache_chunk_sink_t   sink;

    sink.data = m;
    sink.has = mem_has;
    sink.put = mem_put;
    sink.read_stored = mem_read;
    sink.sync = mem_sync;
    conf->sink = &sink;

    memset(r, 0, sizeof(result_t));

    r->rc = -1;

    if (nixcache_ingest_init(&ing, conf) != 0
        || nixcache_ingest_threads(&ing, threads) != 0
        || nixcache_ingest_begin(&ing, fd) != 0)
    {
        printf("#   %s\n", ing.errmsg);
        r->error = ing.error;
        nixcache_ingest_free(&ing);
        return;
    }

    while (len > 0) {
        k = len < piece ? len : piece;

        if (nixcache_ingest_write(&ing, nar, k) != 0) {
            goto done;
        }

        nar += k;
        len -= k;
    }

    if (nixcache_ingest_finish(&ing) != 0
        || nixcache_ingest_sync(&ing) != 0)
    {
        goto done;
    }

    r->rc = 0;

done:

    r->error = ing.error;
    r->nar = ing.nar;
    r->stats = ing.stats;

    if (r->rc == 0 && fd == -1) {
        r->manifest = malloc(ing.nar.manifest_len);
        memcpy(r->manifest, ing.nar.manifest, ing.nar.manifest_len);
    }

    r->nar.manifest = r->manifest;

    nixcache_ingest_free(&ing);
}


static int
same(result_t *a, result_t *b)
{
    return a->rc == 0 && b->rc == 0
           && a->nar.manifest_len == b->nar.manifest_len
           && memcmp(a->manifest, b->manifest, a->nar.manifest_len) == 0
           && a->nar.chunk_count == b->nar.chunk_count
           && a->nar.nar_size == b->nar.nar_size
           && a->nar.file_size == b->nar.file_size
           && memcmp(a->nar.nar_hash, b->nar.nar_hash, NIXCACHE_SHA256_LEN)
              == 0
           && memcmp(a->nar.file_hash, b->nar.file_hash, NIXCACHE_SHA256_LEN)
              == 0
           && memcmp(&a->stats, &b->stats, sizeof(nixcache_ingest_stats_t))
              == 0;
}


/*
 * Serial and threaded ingests of nar into empty sinks, then once more of
 * another NAR sharing most chunks with it (into the same sinks): equal.
 */

static void
compare(const char *name, size_t cmin, size_t cavg, size_t cmax,
    unsigned threads, const unsigned char *nar, const unsigned char *nar2,
    size_t len, size_t piece)
{
    int                      pass;
    result_t                 s, t;
    mem_sink_t               ms, mt;
    const unsigned char     *p;
    nixcache_ingest_conf_t   conf;

    memset(&ms, 0, sizeof(mem_sink_t));
    memset(&mt, 0, sizeof(mem_sink_t));
    mem_clear(&ms);
    mem_clear(&mt);

    conf.chunk_min = cmin;
    conf.chunk_avg = cavg;
    conf.chunk_max = cmax;
    conf.level = 1;

    for (pass = 0; pass < 2; pass++) {
        p = pass ? nar2 : nar;

        run(&conf, 1, &ms, p, len, piece, -1, &s);
        run(&conf, threads, &mt, p, len, piece, -1, &t);

        ok(same(&s, &t) && mem_equal(&ms, &mt, 1) && mt.off_thread == 0,
           "%s, %zu bytes, %u threads%s: %u chunks, %" PRIu64 " new, "
           "same manifest, hashes, counters and frames", name, len, threads,
           pass ? ", over the first" : "", t.nar.chunk_count,
           t.stats.new_chunks);

        if (!same(&s, &t)) {
            printf("#   rc %d/%d chunks %u/%u file size %" PRIu64 "/%" PRIu64
                   "\n", s.rc, t.rc, s.nar.chunk_count, t.nar.chunk_count,
                   s.nar.file_size, t.nar.file_size);
        }

        free(s.manifest);
        free(t.manifest);
    }

    mem_clear(&ms);
    mem_clear(&mt);
    free(ms.chunks);
    free(mt.chunks);
}


int
main(void)
{
    int                      fd, kind;
    char                     tmpl[] = "/tmp/nixcache-unit-threads-XXXXXX";
    size_t                   i, k, len, big;
    ssize_t                  n;
    result_t                 s, t;
    mem_sink_t               ms, mt;
    unsigned char           *nar, *nar2, *mf;
    nixcache_ingest_t        ing;
    nixcache_chunk_sink_t    sink;
    nixcache_ingest_conf_t   conf;

    static const size_t      sizes[] = {
        0, 1, 63, 64, 65, 1023, 1024, 1025, 4095, 4096, 4097, 5000, 65536,
        300007
    };

    static const char       *kinds[] = { "noise", "text", "zeros",
                                         "period" };

    static const unsigned    threads[] = { 2, 3, 8 };

    big = 3 * 1024 * 1024 + 12345;
    nar = malloc(big);
    nar2 = malloc(big);

    memset(&ms, 0, sizeof(mem_sink_t));
    memset(&mt, 0, sizeof(mem_sink_t));
    mem_clear(&ms);
    mem_clear(&mt);

    /* the number of threads */

    sink.data = &ms;
    sink.has = mem_has;
    sink.put = mem_put;
    sink.read_stored = mem_read;
    sink.sync = mem_sync;

    conf.chunk_min = 64;
    conf.chunk_avg = 256;
    conf.chunk_max = 1024;
    conf.level = 1;
    conf.sink = &sink;

    ok(nixcache_ingest_init(&ing, &conf) == 0, "init");
    ok(nixcache_ingest_threads(&ing, 0) == -1
       && ing.error == NIXCACHE_INGEST_ERR_PARAMS, "0 threads refused: %s",
       ing.errmsg);
    ok(nixcache_ingest_threads(&ing, NIXCACHE_INGEST_THREADS_MAX + 1) == -1
       && ing.error == NIXCACHE_INGEST_ERR_PARAMS, "%d threads refused",
       NIXCACHE_INGEST_THREADS_MAX + 1);
    ok(nixcache_ingest_threads(&ing, 4) == 0 && ing.pool != NULL,
       "4 threads");
    ok(nixcache_ingest_threads(&ing, 1) == 0 && ing.pool == NULL,
       "back to serial");
    nixcache_ingest_free(&ing);

    /* small chunks (64/256/1024): every size, kind, thread count */

    for (kind = NOISE; kind <= PERIOD; kind++) {
        for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            len = sizes[i];
            fill(nar, len, kind, 42 + len);
            memcpy(nar2, nar, len);

            /* the second NAR: a change in the middle */
            for (k = len / 2; k < len / 2 + 100 && k < len; k++) {
                nar2[k] ^= 0x5a;
            }

            for (k = 0; k < sizeof(threads) / sizeof(threads[0]); k++) {
                compare(kinds[kind], 64, 256, 1024, threads[k], nar, nar2,
                        len, len < 5000 ? 7 : 1000);
            }
        }
    }

    /* the default chunking, a NAR of 3 MiB in pieces of 64 KiB */

    for (kind = NOISE; kind <= PERIOD; kind++) {
        fill(nar, big, kind, 7);
        memcpy(nar2, nar, big);
        memset(nar2 + big / 3, 'x', 100000);

        compare(kinds[kind], NIXCACHE_CHUNK_MIN_DEFAULT,
                NIXCACHE_CHUNK_AVG_DEFAULT, NIXCACHE_CHUNK_MAX_DEFAULT, 2,
                nar, nar2, big, 65536);
    }

    fill(nar, big, TEXT, 99);

    conf.chunk_min = 64;
    conf.chunk_avg = 256;
    conf.chunk_max = 1024;
    conf.level = 1;

    /* the manifest to a file */

    mem_clear(&ms);
    mem_clear(&mt);
    fd = mkstemp(tmpl);
    ok(fd != -1, "temporary file");
    unlink(tmpl);
    run(&conf, 1, &ms, nar, 200000, 4096, -1, &s);
    run(&conf, 3, &mt, nar, 200000, 4096, fd, &t);
    mf = malloc(s.nar.manifest_len + 1);
    n = pread(fd, mf, s.nar.manifest_len + 1, 0);
    ok(t.rc == 0 && n == (ssize_t) s.nar.manifest_len
       && memcmp(mf, s.manifest, s.nar.manifest_len) == 0
       && memcmp(t.nar.file_hash, s.nar.file_hash, NIXCACHE_SHA256_LEN) == 0,
       "manifest file: the serial manifest's bytes (%zd)", n);
    free(mf);
    free(s.manifest);
    close(fd);

    /* a concurrent writer stored other frames of the same chunks */

    mem_clear(&ms);
    mem_clear(&mt);
    ms.racy = 1;
    mt.racy = 1;
    run(&conf, 1, &ms, nar, 200000, 4096, -1, &s);
    run(&conf, 2, &mt, nar, 200000, 4096, -1, &t);
    ok(same(&s, &t) && mem_equal(&ms, &mt, 1) && t.stats.new_chunks == 0,
       "racy sink: the other writer's frames described, as serially");
    free(s.manifest);
    free(t.manifest);

    /* sink failures, reported in chunk order as serially */

    mem_clear(&ms);
    mem_clear(&mt);
    ms.fail_put = ENOSPC;
    ms.fail_put_after = 10;
    mt.fail_put = ENOSPC;
    mt.fail_put_after = 10;
    run(&conf, 1, &ms, nar, 200000, 4096, -1, &s);
    run(&conf, 2, &mt, nar, 200000, 4096, -1, &t);
    ok(s.rc == -1 && t.rc == -1 && t.error == NIXCACHE_INGEST_ERR_SINK
       && t.nar.chunk_count == s.nar.chunk_count && mem_equal(&ms, &mt, 0),
       "put failing after 10 chunks: the same error after the same "
       "%u chunks", t.nar.chunk_count);

    mem_clear(&mt);
    mt.fail_read = EIO;
    mt.fail_read_after = 25;
    run(&conf, 8, &mt, nar, 200000, 4096, -1, &t);
    ok(t.rc == -1 && t.error == NIXCACHE_INGEST_ERR_SINK
       && mt.off_thread == 0, "read failing: an error, sink in the caller's "
       "thread only");

    /* an ingest that failed is usable again: nothing of it left over */

    mem_clear(&ms);
    mem_clear(&mt);
    mt.fail_put = ENOSPC;
    mt.fail_put_after = 5;

    sink.data = &mt;
    conf.sink = &sink;

    ok(nixcache_ingest_init(&ing, &conf) == 0
       && nixcache_ingest_threads(&ing, 3) == 0
       && nixcache_ingest_begin(&ing, -1) == 0, "init, 3 threads");
    ok(nixcache_ingest_write(&ing, nar, 200000) == -1
       && ing.error == NIXCACHE_INGEST_ERR_SINK
       && ing.sys_errno == ENOSPC
       && strstr(ing.errmsg, "cannot write chunk bafkrei") != NULL
       && strstr(ing.errmsg, "No space left on device") != NULL,
       "put failing: %s", ing.errmsg);

    mem_clear(&mt);
    run(&conf, 1, &ms, nar2, 200000, 4096, -1, &s);

    ok(nixcache_ingest_begin(&ing, -1) == 0
       && nixcache_ingest_write(&ing, nar2, 200000) == 0
       && nixcache_ingest_finish(&ing) == 0
       && ing.nar.manifest_len == s.nar.manifest_len
       && memcmp(ing.nar.manifest, s.manifest, s.nar.manifest_len) == 0
       && memcmp(ing.nar.file_hash, s.nar.file_hash, NIXCACHE_SHA256_LEN)
          == 0
       && mem_equal(&ms, &mt, 1),
       "the next NAR after a failure: the serial result");
    free(s.manifest);

    /* a stored frame that is not what its name says */

    mt.chunks[3].frame[0] ^= 0xff;
    ok(nixcache_ingest_begin(&ing, -1) == 0
       && (nixcache_ingest_write(&ing, nar2, 200000) == -1
           || nixcache_ingest_finish(&ing) == -1)
       && ing.error == NIXCACHE_INGEST_ERR_STORED,
       "corrupt stored frame: %s", ing.errmsg);

    nixcache_ingest_free(&ing);

    mem_clear(&ms);
    mem_clear(&mt);
    free(nar);
    free(nar2);

    return done_testing();
}
