/*
 * Chunk IDs.  The expected strings were computed independently with
 * python3:
 *
 *   'b' + base64.b32encode(bytes([1, 0x55, 0x12, 0x20])
 *                          + hashlib.sha256(M).digest()).decode().lower()
 *                          .rstrip('=')
 *
 * for M = b"", b"abc", b"hello" (the first is also the well-known IPFS
 * CID of an empty raw block).
 */

#include "unit.h"

#include "nixcache_cid.h"
#include "nixcache_hash.h"


typedef struct {
    const char  *msg;
    const char  *cid;
} vector_t;


static const vector_t  vectors[] = {
    { "", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku" },
    { "abc", "bafkreif2pall7dybz7vecqka3zo24irdwabwdi4wc55jznaq75q7eaavvu" },
    { "hello", "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq" },
};


int
main(void)
{
    char           cid[NIXCACHE_CID_LEN + 1], s[128];
    char           rel[NIXCACHE_CHUNK_RELPATH_LEN + 1];
    size_t         i;
    unsigned char  d[32], back[32];

    is_u64(NIXCACHE_CID_LEN, 59, "CID length");
    is_u64(NIXCACHE_CHUNK_RELPATH_LEN, 63, "relpath length");

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        nixcache_sha256(d, vectors[i].msg, strlen(vectors[i].msg));

        memset(cid, '#', sizeof(cid));
        nixcache_cid_encode(cid, d);
        is_str(cid, NIXCACHE_CID_LEN, vectors[i].cid,
               "CID of sha256(\"%s\")", vectors[i].msg);
        ok(cid[NIXCACHE_CID_LEN] == '#', "nothing written past the CID");

        memset(back, 0, 32);
        ok(nixcache_cid_decode(back, vectors[i].cid, NIXCACHE_CID_LEN) == 0
           && memcmp(back, d, 32) == 0, "decode %s", vectors[i].cid);

        memset(rel, '#', sizeof(rel));
        nixcache_chunk_relpath(rel, d);
        snprintf(s, sizeof(s), "/%s/%s",
                 vectors[i].cid + NIXCACHE_CID_LEN - 2, vectors[i].cid);
        is_str(rel, NIXCACHE_CHUNK_RELPATH_LEN, s, "relpath %s", s);
        ok(rel[NIXCACHE_CHUNK_RELPATH_LEN] == '#',
           "nothing written past the relpath");
    }

    /* every digest round-trips */

    {
        int  good = 1;

        for (i = 0; i < 1000; i++) {
            nixcache_sha256(d, &i, sizeof(i));
            nixcache_cid_encode(cid, d);

            if (nixcache_cid_decode(back, cid, NIXCACHE_CID_LEN) != 0
                || memcmp(back, d, 32) != 0 || memcmp(cid, "bafkrei", 7))
            {
                good = 0;
            }
        }

        ok(good, "1000 digests round-trip, all start with bafkrei");
    }

    /* rejects */

    strcpy(s, vectors[1].cid);
    ok(nixcache_cid_decode(d, s, NIXCACHE_CID_LEN - 1) == -1,
       "rejects a short CID");
    s[0] = 'B';
    ok(nixcache_cid_decode(d, s, NIXCACHE_CID_LEN) == -1,
       "rejects another multibase");

    strcpy(s, vectors[1].cid);
    s[20] = 'A';
    ok(nixcache_cid_decode(d, s, NIXCACHE_CID_LEN) == -1,
       "rejects upper case");
    s[20] = '1';
    ok(nixcache_cid_decode(d, s, NIXCACHE_CID_LEN) == -1, "rejects '1'");
    s[20] = '8';
    ok(nixcache_cid_decode(d, s, NIXCACHE_CID_LEN) == -1, "rejects '8'");

    /* "bafkqe..." is CIDv1 raw with identity multihash, not ours */
    strcpy(s, vectors[1].cid);
    s[5] = 'q';
    ok(nixcache_cid_decode(d, s, NIXCACHE_CID_LEN) == -1,
       "rejects another multihash");

    /* the last character carries 3 bits of data and 2 zero bits */
    strcpy(s, vectors[1].cid);
    ok(s[58] == 'u', "last character of the abc CID is 'u' (10100)");
    s[58] = 'v';
    ok(nixcache_cid_decode(d, s, NIXCACHE_CID_LEN) == -1,
       "rejects non-zero padding bits");

    return done_testing();
}
