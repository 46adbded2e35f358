/*
 * Normalized Gear (FastCDC) chunking, see nixcache_chunker.h and
 * docs/FORMAT.md.
 */

#include "nixcache_chunker.h"
#include "nixcache_format.h"


/*
 * gear[i] is output number i + 1 of splitmix64 seeded with
 * NIXCACHE_GEAR_SEED: state += 0x9e3779b97f4a7c15, then the mix.  The
 * table is constant so that nothing is initialised at run time; the unit
 * test recomputes it from the formula.
 */

const uint64_t  nixcache_gear[256] = {
    0x71fdc3fd60e353adULL, 0x51c8eddecb38f5b5ULL, 0x56ee01a9b1e0cd06ULL,
    0x7a0fae0661bc90deULL, 0x7565b1826dae5037ULL, 0x3decc6aa41969bbbULL,
    0xdac71c98341d12f5ULL, 0x8e6da652e18af4cbULL, 0x4543a30365d14ef4ULL,
    0x7093cb1a9891c7bfULL, 0x71b304a4e2dbf717ULL, 0x4257352b8d40dad1ULL,
    0xbe158ebb896f0fcdULL, 0xecd622d846c4fa2aULL, 0x8082ce57daee039dULL,
    0x4f7471cddfbe75c8ULL, 0xb76a775b57abb822ULL, 0x0b6ed54eb043012aULL,
    0xea11acbe2d7538d8ULL, 0xf609e528c8af86a9ULL, 0xa11c088520f55537ULL,
    0x63d170cd4498aa19ULL, 0x9d078f452cb0bfa4ULL, 0x47975eeed8b92334ULL,
    0x490d5f804a8d73b4ULL, 0xf709ae3004a0df81ULL, 0x19fe33cb7d8438e1ULL,
    0x1a32ebd56bbf49dbULL, 0xba2429bd5047d556ULL, 0xdfe2efb4cbfdc63eULL,
    0xab571a6e6ec8390aULL, 0x439dc41b3c23b5dfULL, 0xfda0c0d27a8a1926ULL,
    0xe9ba72479e8f93b2ULL, 0xf4af284090ebd2f0ULL, 0x5a78dab981f7ae60ULL,
    0x6da6cb91bac1cba5ULL, 0x840f0040a52a5bc5ULL, 0xadd0d3dcf7c569b2ULL,
    0x6980e0fc40f0479dULL, 0xe8d65be339e7a941ULL, 0x778122f8ec7020aeULL,
    0xb533a415eeaa45b7ULL, 0x6a8b9c8b0d79857eULL, 0xf1cab19622e59ff8ULL,
    0xa24dab797393f57bULL, 0xa962b0c60ededf14ULL, 0xd77ca648646bd199ULL,
    0x694abbd3b277fca9ULL, 0x3c0c6c6db9c00b77ULL, 0x0eb3c2d03bb6b430ULL,
    0x59de3bcad4b97459ULL, 0x2294d29541d4d299ULL, 0xccf3d2a839ea6e76ULL,
    0x5e6ed543196e5ce8ULL, 0x02d68ad34e5c23deULL, 0x88a12d3240f11e93ULL,
    0xa5b822b8012b974eULL, 0x3328bc3e8dd54843ULL, 0xac548b69de1319f7ULL,
    0x4f602a198f6f541dULL, 0xa1962dffb0d7657cULL, 0x686e082c99d28235ULL,
    0x9a33c21b6e518f37ULL, 0x7f9af6e1fd060194ULL, 0x0a5c053eb1309aefULL,
    0xc8f5e94711e635fdULL, 0x1245ec8d88cf8517ULL, 0x8d4ff6accfca2756ULL,
    0x889d47769148482cULL, 0x49ceab4cd8fdaa52ULL, 0x0388afe5aacff5e2ULL,
    0x00014c07c26b804fULL, 0x25c131515fdbdf57ULL, 0xe6bb3313f49bbe63ULL,
    0x0a5306e862292251ULL, 0x432ec263d3a2569fULL, 0x974938ca760f3af9ULL,
    0x340478427b074384ULL, 0xbd4ce83f6c0cc427ULL, 0x7b48214efb11e7c5ULL,
    0xf570d1e3c35554caULL, 0xc50820d8466810dfULL, 0xbb1c90ab7b473b62ULL,
    0xcd077c4b0c2b632eULL, 0x9e6230cf6b6a43a4ULL, 0xaeda71a9132a24c4ULL,
    0xa125646c1177887aULL, 0xd25ecfc7bc85ab8fULL, 0x68368f52be71593eULL,
    0xb37bfc6151d7da78ULL, 0x5f77fcf9d3f9c3c0ULL, 0x2d17106adb67bbecULL,
    0xf5f4f3e51f00b166ULL, 0xf662067d27af06beULL, 0x9c0adebb16b0ff29ULL,
    0xd52b2a71ccc25090ULL, 0x5ff94bda3b3764ebULL, 0xdd59186eb4dc85a5ULL,
    0x8b66da56587dec7bULL, 0x8ef61707dfdf3f34ULL, 0x67fe1b3d19814a48ULL,
    0xa100d2180c34226cULL, 0x85d893cc29780c71ULL, 0xc693310d9e613c14ULL,
    0x13cbf0c7f297a61eULL, 0x1e0ca06dda0d9788ULL, 0x942c6ad7813c4d54ULL,
    0xc4c9fbf5d22b37dbULL, 0x211fd30d72c44b54ULL, 0x51f498f9dd7eef2cULL,
    0x349bcb88290c5605ULL, 0x746a0eee86e40ad9ULL, 0xf6bf088721b7c2a5ULL,
    0x04f8f504b8b442b0ULL, 0x67da0650f3cdbf35ULL, 0x3b942abb19d35078ULL,
    0xcd65d839c579ab8fULL, 0x70b8ef60649cd35aULL, 0xb4c838195c5144beULL,
    0xba61ea20363f9324ULL, 0x62c75735985fabbcULL, 0x903da679b9bd1059ULL,
    0x7318cce82df4a0b4ULL, 0x3dd1b31233569297ULL, 0xf64873d65d292a2fULL,
    0x8c20596b1200e3f7ULL, 0xa81bc54ac92a3693ULL, 0x7a5913fd89298adfULL,
    0xfc371e6370bc10a4ULL, 0xab36767e329600a1ULL, 0xa822161ad6702abfULL,
    0x9b6a50706b0c2b67ULL, 0x3ad59ae55f9e79aaULL, 0x8228f01a9c35289cULL,
    0xd6328ae4f22898d5ULL, 0xbd3964516e994f3aULL, 0x42821c9bace24353ULL,
    0x07ce9e37cf8bb242ULL, 0x5e5d6e972b5ea6ddULL, 0x1807da857379f024ULL,
    0xbd490cd42602cf59ULL, 0x4dae4a653d593b86ULL, 0x464bc039fe567b70ULL,
    0xe1cad4b59c4d0e7bULL, 0x3d74f3c6f0921afbULL, 0x586341afb82cd75dULL,
    0x5311a18d1b80480fULL, 0x5649d64200f69d06ULL, 0xa37bc0db605c5249ULL,
    0x1fd4d325f67c361aULL, 0x9f296dd68d80d274ULL, 0x12f7043a8caf042bULL,
    0x660add3e755a46efULL, 0x360e3704d65d4698ULL, 0xb0dc47e787cd1bf0ULL,
    0xedc13af6338f258aULL, 0xfee16b847cbd0715ULL, 0xc7de9e49f7c688d8ULL,
    0xd8d5a4d2e4a13c9cULL, 0x9ac6f1475f059081ULL, 0xa0eab62d71742b06ULL,
    0xe9f7b3b4efe39afdULL, 0xe8f758e41ee032d9ULL, 0x3a05432d65437fc2ULL,
    0x19cf024c9965049bULL, 0xb5b280eb8149f715ULL, 0x28d500a25e6d81acULL,
    0xdd22c28e6bfc2833ULL, 0x3f9f8e1993aeb706ULL, 0x4579d5a3f76c1bddULL,
    0x969da5326198a67aULL, 0x6fb98fae7484df53ULL, 0xd7b59d9a534b9190ULL,
    0x7c3409e40edd31a5ULL, 0x6ae9a191b4bf70d5ULL, 0x97cc11f99be4e099ULL,
    0x14f1fcc2a52eb01bULL, 0xb4c5ff621f789a41ULL, 0xb156b71b3c59600eULL,
    0xbfce305b3da258ecULL, 0x810ebfd23b71b477ULL, 0x5df3f772a6662598ULL,
    0xa43060d79db41aa4ULL, 0x63299538832058cbULL, 0x787f4e0eb27b549dULL,
    0x16213058bb93fa2fULL, 0x4560c72f539abe0eULL, 0x79e01674f777ef90ULL,
    0xbe4434f611f271a8ULL, 0x50cec54d65878051ULL, 0xad94fde648820a6dULL,
    0xb80e734865aea92fULL, 0xc31b46c818036d31ULL, 0x089b925c1c9ae428ULL,
    0x7b024e0dda609d50ULL, 0x7f0863b4f35442ccULL, 0xe23f881eef150bfcULL,
    0x8da82e24cba1da17ULL, 0x4e01a9ddcfe7a079ULL, 0x3807e8c58f183ca6ULL,
    0x47ccd795f933f9d9ULL, 0xf28e1a93b8de622fULL, 0x4c382a7d336e237fULL,
    0x22a091c59d8f9464ULL, 0xd20b50df2b093281ULL, 0x6313b7bf02b3d508ULL,
    0x6bd9f178839bb2abULL, 0x5663cf13945926ecULL, 0xd7f8a83a71dc00ffULL,
    0x9c368a9e60dc96b3ULL, 0x6a3bd7d9f0e920b6ULL, 0x2606f3ceee44975dULL,
    0xa7748a41dd450ab6ULL, 0x579e9f821bd22b6bULL, 0xb8055d6902a7527cULL,
    0x10852ff2c3c679d0ULL, 0xf7693f804991d179ULL, 0x3a85c023641106b9ULL,
    0xe1ffe5ac7886f12dULL, 0x566327aa91b18626ULL, 0x3bcbbc058cbc01f5ULL,
    0x719fb63e53149046ULL, 0xf6f76fb5e32ac467ULL, 0x09f784f10da72e9aULL,
    0xa910c6164686cecfULL, 0xc4fa434410a51ad7ULL, 0xbf1e365f3ec5d256ULL,
    0x2f30fccceb17c708ULL, 0x259268fc737c4302ULL, 0x91214e01afb1cef7ULL,
    0x2926c82d61475b6cULL, 0x3aba10155b2ebf3bULL, 0xe00ce73c3d6426edULL,
    0x3128e5fcc9fefc0fULL, 0xd8e85ee4bbd86aedULL, 0x0e4dee211d6dedf2ULL,
    0x09041fd8d4a1eeb8ULL, 0x4c4567937cdcb827ULL, 0xa58fc1024904f661ULL,
    0x23778bf3115672ddULL, 0xb3690c98e49098e0ULL, 0xdea68a30e56eb7acULL,
    0x3746ee73ddf8f7dbULL, 0x07b8a07b45fa6628ULL, 0x453d47f420a1fdf9ULL,
    0x1ac7c30d664d2734ULL, 0x0ed7127c4d207641ULL, 0x61db919170f9edddULL,
    0x7e42e0d27a337091ULL, 0xbf04a7f6e7bcf0b7ULL, 0xdfccc208f3ed74d1ULL,
    0xa98fb8dc70f48f21ULL, 0x97a2c7965bf0b19fULL, 0xbb6d972b77e017c4ULL,
    0x97e321156c931ab0ULL
};


static uint64_t nixcache_chunker_top_bits(unsigned int n);


int
nixcache_chunker_init(nixcache_chunker_t *ck, size_t min, size_t avg,
    size_t max)
{
    unsigned int  k;

    if (min < 64 || min >= avg || avg >= max
        || max > NIXCACHE_CHUNK_MAX_LIMIT || (avg & (avg - 1)) != 0)
    {
        return -1;
    }

    for (k = 0; ((size_t) 1 << k) != avg; k++) {
        /* void */
    }

    ck->min = min;
    ck->avg = avg;
    ck->max = max;
    ck->mask_strict = nixcache_chunker_top_bits(k + 2);
    ck->mask_loose = nixcache_chunker_top_bits(k - 2);

    return 0;
}


size_t
nixcache_chunker_cut(const nixcache_chunker_t *ck, const unsigned char *p,
    size_t len, int eof)
{
    size_t    i, n, barrier;
    uint64_t  fp, mask;

    if (len <= ck->min) {
        return eof ? len : 0;
    }

    n = len < ck->max ? len : ck->max;
    barrier = n < ck->avg ? n : ck->avg;

    fp = 0;
    i = ck->min;

    mask = ck->mask_strict;

    for ( /* void */ ; i < barrier; i++) {
        fp = (fp << 1) + nixcache_gear[p[i]];

        if ((fp & mask) == 0) {
            return i + 1;
        }
    }

    mask = ck->mask_loose;

    for ( /* void */ ; i < n; i++) {
        fp = (fp << 1) + nixcache_gear[p[i]];

        if ((fp & mask) == 0) {
            return i + 1;
        }
    }

    if (n == ck->max || eof) {
        return n;
    }

    return 0;
}


static uint64_t
nixcache_chunker_top_bits(unsigned int n)
{
    if (n == 0) {
        return 0;
    }

    return ~(uint64_t) 0 << (64 - n);
}
