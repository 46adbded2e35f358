/*
 * libFuzzer target: nix32 decoding, Nix's hash strings and chunk CIDs,
 * the text forms that come from URLs, narinfos and the disk tier.
 *
 * Invariants: nix32 text that decodes is exactly what encoding its bytes
 * gives back (there is one nix32 text per byte string); a hash string
 * that parses formats to a string that parses to the same digest; a CID
 * that decodes encodes to the same CID (letter case aside) and its chunk
 * path ends in it.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nixcache_nix32.h"
#include "nixcache_hash.h"
#include "nixcache_cid.h"


#define NIXCACHE_FUZZ_NIX32_MAX   64


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char           *s;
    char            enc[NIXCACHE_FUZZ_NIX32_MAX * 2];
    char            hs[NIXCACHE_HASH_STR_LEN];
    char            cid[NIXCACHE_CID_LEN];
    char            rel[NIXCACHE_CHUNK_RELPATH_LEN];
    size_t          n, len;
    unsigned char   bin[NIXCACHE_FUZZ_NIX32_MAX];
    unsigned char   digest[NIXCACHE_SHA256_LEN];
    unsigned char   digest2[NIXCACHE_SHA256_LEN];

    s = malloc(size ? size : 1);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data, size);

    /* nix32: every byte count whose text length is the input's */

    for (n = 1; n <= NIXCACHE_FUZZ_NIX32_MAX; n++) {
        len = nixcache_nix32_len(n);

        if (len != size) {
            continue;
        }

        if (nixcache_nix32_decode(bin, n, s, size) == 0) {
            if (!nixcache_nix32_valid(s, size)) {
                abort();
            }

            nixcache_nix32_encode(enc, bin, n);

            if (memcmp(enc, s, size) != 0) {
                abort();
            }
        }
    }

    (void) nixcache_nix32_valid(s, size);

    /* a decode with a length that does not match must fail, not overrun */

    if (size > 0 && nixcache_nix32_decode(bin, NIXCACHE_SHA256_LEN, s, size)
                    == 0
        && size != nixcache_nix32_len(NIXCACHE_SHA256_LEN))
    {
        abort();
    }

    if (nixcache_hash_parse(digest, s, size) == 0) {
        nixcache_hash_format(hs, digest);

        if (nixcache_hash_parse(digest2, hs, sizeof(hs)) != 0
            || memcmp(digest, digest2, sizeof(digest)) != 0)
        {
            abort();
        }
    }

    if (nixcache_cid_decode(digest, s, size) == 0) {
        nixcache_cid_encode(cid, digest);

        if (size != sizeof(cid) || strncasecmp(cid, s, size) != 0) {
            abort();
        }

        if (nixcache_cid_decode(digest2, cid, sizeof(cid)) != 0
            || memcmp(digest, digest2, sizeof(digest)) != 0)
        {
            abort();
        }

        nixcache_chunk_relpath(rel, digest);

        if (memcmp(rel + sizeof(rel) - sizeof(cid), cid, sizeof(cid)) != 0) {
            abort();
        }
    }

    free(s);

    return 0;
}
