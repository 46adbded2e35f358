/*
 * The on-disk and in-Redis formats of ngx_nixcache, version 1.
 *
 * This header is the one definition read by the nginx module and by the
 * nixcache CLI; docs/FORMAT.md describes the same in prose.  Changing a
 * layout means bumping NIXCACHE_FORMAT_VERSION.
 */

#ifndef NIXCACHE_FORMAT_H
#define NIXCACHE_FORMAT_H


#define NIXCACHE_FORMAT_VERSION          1

#define NIXCACHE_SHA256_LEN              32
#define NIXCACHE_STORE_HASH_BYTES        20
#define NIXCACHE_STORE_HASH_NIX32_LEN    32   /* store path hash part */
#define NIXCACHE_SHA256_NIX32_LEN        52
#define NIXCACHE_SHA256_HEX_LEN          64
#define NIXCACHE_HASH_STR_LEN            (sizeof("sha256:") - 1             \
                                          + NIXCACHE_SHA256_NIX32_LEN)

/*
 * Redis keys, all under a per-cache prefix (default "nixcache:"):
 *
 *   <prefix>narinfo:<store hash, 32 nix32 chars>   narinfo text (string)
 *   <prefix>manifest:<NarHash, 52 nix32 chars>     manifest (binary string)
 *   <prefix>upload:<NAR file name>                 NarHash of an uploaded
 *                                                  file (module, 1 day TTL)
 *   <prefix>absent:<store hash>                    every upstream said it
 *                                                  has no such path
 *                                                  (module, pull-through's
 *                                                  negative cache, a TTL
 *                                                  of seconds)
 *   <prefix>upstream:<store hash>                  "<upstream name>\n" and
 *                                                  the narinfo it sent
 *                                                  (module, pull-through,
 *                                                  1 day TTL)
 *
 * The narinfo text is stored as the cache serves it with
 * "Compression: zstd" and "URL: nar/<NarHash nix32>.nar.zst"; FileHash and
 * FileSize are those of the concatenated chunk frames (see manifest).
 * Keys are built and read back by nixcache_key.h, nowhere else.
 */
#define NIXCACHE_DEFAULT_PREFIX          "nixcache:"
#define NIXCACHE_KEY_NARINFO             "narinfo:"
#define NIXCACHE_KEY_MANIFEST            "manifest:"
#define NIXCACHE_KEY_UPLOAD              "upload:"
#define NIXCACHE_KEY_ABSENT              "absent:"
#define NIXCACHE_KEY_UPSTREAM            "upstream:"

/*
 * Write order is the durability contract: every chunk file is durable
 * (written to a temporary name, synced, renamed) before the manifest is
 * written, and the manifest before the narinfo.  A narinfo never points at
 * a missing manifest, a manifest never at a missing chunk.
 */

/*
 * Publication, as both writers do it (docs/FORMAT.md, "Write order and
 * durability", says what a reader may see at each step).
 *
 * The module's manifest, written in windows under a temporary key (with
 * a TTL), is renamed into place by NIXCACHE_GC_SCRIPT_MANIFEST_RENAME
 * (nixcache_gc.h), under the writers' generation check.
 *
 * The narinfo is stored by NIXCACHE_GC_SCRIPT_NARINFO_STORE
 * (nixcache_gc.h): first writer wins, and only while its manifest exists.
 * Returns 1 stored, 2 the same text was there, 3 replaced, 0 another text
 * is there and was kept.
 */
#define NIXCACHE_NARINFO_STORED          1
#define NIXCACHE_NARINFO_SAME            2
#define NIXCACHE_NARINFO_REPLACED        3
#define NIXCACHE_NARINFO_KEPT            0

/*
 * Manifest: a fixed header followed by chunk_count fixed-size entries, all
 * integers little-endian.  Fixed sizes let a reader fetch any window of
 * entries with GETRANGE, so memory is bounded whatever the NAR size.
 *
 *   header (96 bytes)
 *     0  magic        "NXCM"
 *     4  version      u16  = 1
 *     6  flags        u16  = 0
 *     8  chunk_count  u32
 *    12  reserved     u32  = 0
 *    16  nar_size     u64  (sum of entry usize)
 *    24  file_size    u64  (sum of entry csize)
 *    32  nar_hash     [32] SHA-256 of the uncompressed NAR
 *    64  file_hash    [32] SHA-256 of the concatenated chunk frames
 *
 *   entry (40 bytes), in NAR order
 *     0  chunk        [32] SHA-256 of the uncompressed chunk (the chunk ID)
 *    32  usize        u32  uncompressed size
 *    36  csize        u32  size of the stored zstd frame
 */
#define NIXCACHE_MANIFEST_MAGIC          "NXCM"
#define NIXCACHE_MANIFEST_VERSION        1
#define NIXCACHE_MANIFEST_HEADER_LEN     96
#define NIXCACHE_MANIFEST_ENTRY_LEN      40

/*
 * Chunks: content-defined (normalized Gear/FastCDC, see nixcache_chunker.h)
 * over the uncompressed NAR.  Each chunk is stored as exactly one zstd
 * frame with the content size in its header, so concatenated frames are a
 * valid .nar.zst.
 *
 * Chunk ID: CIDv1, raw codec (0x55), sha2-256 multihash (0x12 0x20), in
 * multibase base32 lower ('b' prefix): always 59 characters, "bafkrei...".
 *
 * Disk tier: <dir>/<last 2 chars of the CID>/<CID>, written to a temporary
 * name in the same directory and renamed into place.
 */
#define NIXCACHE_CID_LEN                 59
#define NIXCACHE_CHUNK_FANOUT_LEN        2
#define NIXCACHE_CHUNK_RELPATH_LEN       (1 + NIXCACHE_CHUNK_FANOUT_LEN + 1   \
                                          + NIXCACHE_CID_LEN)  /* "/xx/CID" */

/*
 * S3 tier: the same frames as objects "<key prefix><relpath without its
 * leading '/'>", i.e. "<key prefix><last 2 chars of the CID>/<CID>", key
 * prefix "chunks/" by default; never replaced once stored.
 */
#define NIXCACHE_S3_PREFIX_DEFAULT       "chunks/"

#define NIXCACHE_CHUNK_MIN_DEFAULT       (16 * 1024)
#define NIXCACHE_CHUNK_AVG_DEFAULT       (64 * 1024)
#define NIXCACHE_CHUNK_MAX_DEFAULT       (256 * 1024)
#define NIXCACHE_CHUNK_MAX_LIMIT         (16 * 1024 * 1024)

/*
 * Default zstd level of chunk frames (the writer's choice; readers accept
 * any level).  Measured in bench/README.md, "zstd level for chunk
 * frames": level 6 makes frames 7-8% smaller than level 3 at about
 * 100 MB/s per core; higher levels gain 1-3% more for 1.5x to 30x the time.
 */
#define NIXCACHE_ZSTD_LEVEL_DEFAULT      6


#endif /* NIXCACHE_FORMAT_H */
