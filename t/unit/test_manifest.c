/*
 * The manifest codec: exact bytes of a small manifest (the worked example
 * of docs/FORMAT.md), round trips, and what nixcache_manifest_check()
 * refuses.
 */

#include "unit.h"

#include "nixcache_manifest.h"


#define N  3


static unsigned char  buf[NIXCACHE_MANIFEST_HEADER_LEN
                          + N * NIXCACHE_MANIFEST_ENTRY_LEN];


static void
build(void)
{
    size_t                      i;
    nixcache_manifest_entry_t   e;
    nixcache_manifest_header_t  h;

    memset(&h, 0, sizeof(h));
    h.chunk_count = N;
    h.nar_size = 0;
    h.file_size = 0;
    memset(h.nar_hash, 0x11, 32);
    memset(h.file_hash, 0x22, 32);

    for (i = 0; i < N; i++) {
        memset(e.chunk, (int) (0xa0 + i), 32);
        e.usize = 0x10000 + (uint32_t) i;
        e.csize = 0x4000 + (uint32_t) i * 0x100;
        h.nar_size += e.usize;
        h.file_size += e.csize;
        nixcache_manifest_entry_encode(buf + nixcache_manifest_entry_offset(i),
                                       &e);
    }

    nixcache_manifest_header_encode(buf, &h);
}


int
main(void)
{
    size_t                      i;
    unsigned char               save;
    nixcache_manifest_entry_t   e;
    nixcache_manifest_header_t  h;

    /* header bytes: "NXCM", 01 00, 00 00, 03 00 00 00, 00 00 00 00,
     * nar_size 0x30003 LE, file_size 0xc300 LE */

    static const unsigned char  head[32] = {
        'N', 'X', 'C', 'M', 0x01, 0x00, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0xc3, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00
    };

    static const unsigned char  entry1_tail[8] = {
        0x01, 0x00, 0x01, 0x00, 0x00, 0x41, 0x00, 0x00
    };

    build();

    is_mem(buf, head, 32, "header bytes, little-endian");
    ok(buf[32] == 0x11 && buf[63] == 0x11 && buf[64] == 0x22
       && buf[95] == 0x22, "nar_hash at 32, file_hash at 64");
    ok(buf[96] == 0xa0 && buf[127] == 0xa0 && buf[136] == 0xa1,
       "entry 0 at 96, entry 1 at 136");
    is_mem(buf + 136 + 32, entry1_tail, 8, "entry 1 usize, csize");
    is_u64(nixcache_manifest_entry_offset(2), 176, "entry offset");
    is_u64(sizeof(buf), 216, "manifest of 3 chunks is 216 bytes");

    ok(nixcache_manifest_header_decode(&h, buf, sizeof(buf)) == 0,
       "header decodes");
    is_u64(h.chunk_count, 3, "chunk_count");
    is_u64(h.nar_size, 0x30003, "nar_size");
    is_u64(h.file_size, 0xc300, "file_size");
    is_u64(h.flags, 0, "flags");
    ok(h.nar_hash[0] == 0x11 && h.nar_hash[31] == 0x11
       && h.file_hash[0] == 0x22 && h.file_hash[31] == 0x22, "hashes");

    for (i = 0; i < N; i++) {
        nixcache_manifest_entry_decode(&e,
                                       buf + nixcache_manifest_entry_offset(i));
        ok(e.chunk[0] == 0xa0 + i && e.chunk[31] == 0xa0 + i
           && e.usize == 0x10000 + i && e.csize == 0x4000 + i * 0x100,
           "entry %zu round-trips", i);
    }

    ok(nixcache_manifest_check(buf, sizeof(buf)) == 0, "check accepts");

    /* header decode rejects */

    ok(nixcache_manifest_header_decode(&h, buf, 95) == -1,
       "rejects a short header");

    buf[0] = 'X';
    ok(nixcache_manifest_header_decode(&h, buf, sizeof(buf)) == -1,
       "rejects wrong magic");
    ok(nixcache_manifest_check(buf, sizeof(buf)) == -1,
       "check rejects wrong magic");
    build();

    buf[4] = 2;
    ok(nixcache_manifest_header_decode(&h, buf, sizeof(buf)) == -1,
       "rejects version 2");
    ok(nixcache_manifest_check(buf, sizeof(buf)) == -1,
       "check rejects version 2");
    build();

    buf[5] = 1;
    ok(nixcache_manifest_check(buf, sizeof(buf)) == -1,
       "check rejects version 257");
    build();

    buf[6] = 1;
    ok(nixcache_manifest_header_decode(&h, buf, sizeof(buf)) == -1,
       "rejects flags");
    build();

    buf[12] = 1;
    ok(nixcache_manifest_header_decode(&h, buf, sizeof(buf)) == -1,
       "rejects a non-zero reserved field");
    build();

    /* check rejects */

    ok(nixcache_manifest_check(buf, sizeof(buf) - 1) == -1,
       "check rejects a short manifest");
    ok(nixcache_manifest_check(buf, sizeof(buf) - 40) == -1,
       "check rejects a missing entry");

    buf[8] = 4;
    ok(nixcache_manifest_check(buf, sizeof(buf)) == -1,
       "check rejects a chunk_count too large for the length");
    build();

    buf[16]++;
    ok(nixcache_manifest_check(buf, sizeof(buf)) == -1,
       "check rejects nar_size != sum of usize");
    build();

    buf[24]--;
    ok(nixcache_manifest_check(buf, sizeof(buf)) == -1,
       "check rejects file_size != sum of csize");
    build();

    /* entry 1 usize 0x10001 -> 0: move its bytes into entry 0 so the
     * sums still match, and only the zero size is wrong */

    save = buf[136 + 32];
    buf[136 + 32] = 0;
    buf[136 + 34] = 0;
    buf[96 + 32] = (unsigned char) (buf[96 + 32] + save);
    buf[96 + 34] = 2;
    ok(nixcache_manifest_check(buf, sizeof(buf)) == -1,
       "check rejects an entry of usize 0");
    build();

    /* csize 0x4100 of entry 1 -> 0, entry 0 takes it */

    buf[136 + 37] = 0;
    buf[96 + 37] = 0x81;
    ok(nixcache_manifest_check(buf, sizeof(buf)) == -1,
       "check rejects an entry of csize 0");
    build();

    ok(nixcache_manifest_check(buf, sizeof(buf)) == 0,
       "the rebuilt manifest is accepted again");

    return done_testing();
}
