/*
 * Garbage collection and the publication protocol that makes it safe
 * (docs/FORMAT.md, "Garbage collection"): key names and Lua scripts, the
 * one definition read by the CLI's writers, its gc, and the module.
 *
 * Keys shared by every cache of a Redis database (a chunk space is shared
 * by all of them; none of these match "*manifest:*" or "*narinfo:*"):
 *
 *   nixcache-gc:gen      integer, INCR by gc when it takes the lock
 *   nixcache-gc:lock     string, a gc's token, SET NX PX (a lease)
 *   nixcache-gc:recent   sorted set: manifest key -> Redis TIME of its
 *                        last publication (manifest or narinfo)
 *
 * Per cache (under its prefix):
 *
 *   <prefix>pin          set of store hashes retention never removes
 *   <prefix>access       sorted set: store hash -> Redis TIME of its last
 *                        narinfo publication
 */

#ifndef NIXCACHE_GC_H
#define NIXCACHE_GC_H


#define NIXCACHE_GC_KEY_GEN              "nixcache-gc:gen"
#define NIXCACHE_GC_KEY_LOCK             "nixcache-gc:lock"
#define NIXCACHE_GC_KEY_RECENT           "nixcache-gc:recent"
#define NIXCACHE_KEY_PIN                 "pin"
#define NIXCACHE_KEY_ACCESS              "access"

/* a writer's generation when the lock is held: never equal to a gen */
#define NIXCACHE_GC_GEN_LOCKED           "locked"

#define NIXCACHE_GC_LEASE_MS             30000
#define NIXCACHE_GC_PUBLISH_TRIES        3    /* through the pipeline */
#define NIXCACHE_GC_RECHECK_TRIES        20   /* chunks checked again */

/*
 * NIXCACHE_GC_SCRIPT_GEN, EVAL with KEYS = gen, lock: the generation a
 * writer records before it checks which chunks exist, or "locked".
 */
#define NIXCACHE_GC_SCRIPT_GEN                                              \
    "if redis.call('EXISTS', KEYS[2]) == 1 then return 'locked' end "        \
    "return tostring(redis.call('GET', KEYS[1]) or '0')"

/*
 * NIXCACHE_GC_SCRIPT_MANIFEST_PUT, EVAL with KEYS = manifest, gen, lock,
 * recent, ARGV = the manifest, the writer's gen, "1" to replace: refused
 * (NIXCACHE_GC_REFUSED) while a gc holds the lock or when the gen moved;
 * else the manifest is stored (1) or the one in place kept (0), and it is
 * recorded in recent with the server's time.
 */
#define NIXCACHE_GC_SCRIPT_MANIFEST_PUT                                     \
    "if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end "              \
    "if tostring(redis.call('GET', KEYS[2]) or '0') ~= ARGV[2] then "        \
    "return -1 end "                                                         \
    "redis.call('ZADD', KEYS[4], redis.call('TIME')[1], KEYS[1]) "           \
    "if ARGV[3] == '1' then redis.call('SET', KEYS[1], ARGV[1]) "            \
    "return 1 end "                                                          \
    "return redis.call('SETNX', KEYS[1], ARGV[1])"

#define NIXCACHE_GC_REFUSED              (-1)

/*
 * NIXCACHE_GC_SCRIPT_MANIFEST_RENAME, EVAL with KEYS = the temporary key,
 * the manifest key, recent, gen, lock, ARGV = the writer's gen: the
 * module's publication (a manifest written in windows under a temporary
 * key), with the writers' check: refused (NIXCACHE_GC_REFUSED) while a gc
 * holds the lock or when the gen moved, the temporary key deleted then;
 * else the temporary key becomes the manifest unless one is there (same
 * NarHash, same NAR: the one in place is kept), loses its TTL, is gone,
 * and the manifest is recorded in recent with the server's time;
 * atomically.  Returns 1 renamed, 0 kept.
 */
#define NIXCACHE_GC_SCRIPT_MANIFEST_RENAME                                  \
    "if redis.call('EXISTS', KEYS[5]) == 1 "                                 \
    "or tostring(redis.call('GET', KEYS[4]) or '0') ~= ARGV[1] then "        \
    "redis.call('DEL', KEYS[1]) return -1 end "                              \
    "local ok = redis.call('RENAMENX', KEYS[1], KEYS[2]) "                   \
    "redis.call('PERSIST', KEYS[2]) "                                        \
    "redis.call('DEL', KEYS[1]) "                                            \
    "redis.call('ZADD', KEYS[3], redis.call('TIME')[1], KEYS[2]) "           \
    "return ok"

/*
 * NIXCACHE_GC_SCRIPT_NARINFO_STORE, EVAL with KEYS = narinfo, manifest,
 * access, recent, ARGV = text, "1" to replace, store hash: the core store
 * script's answers (nixcache_format.h), or NIXCACHE_GC_NO_MANIFEST when
 * the manifest is gone (a gc dropped it: publish it again).  A stored or
 * unchanged narinfo records the path in access and its manifest in
 * recent, in the same step.
 */
#define NIXCACHE_GC_SCRIPT_NARINFO_STORE                                    \
    "if redis.call('EXISTS', KEYS[2]) == 0 then return -2 end "              \
    "local t = redis.call('TIME')[1] "                                       \
    "local cur = redis.call('GET', KEYS[1]) "                                \
    "local rc = 0 "                                                          \
    "if not cur then redis.call('SET', KEYS[1], ARGV[1]) rc = 1 "            \
    "elseif cur == ARGV[1] then rc = 2 "                                     \
    "elseif ARGV[2] == '1' then redis.call('SET', KEYS[1], ARGV[1]) rc = 3 " \
    "end "                                                                   \
    "if rc ~= 0 then redis.call('ZADD', KEYS[3], t, ARGV[3]) "               \
    "redis.call('ZADD', KEYS[4], t, KEYS[2]) end "                           \
    "return rc"

#define NIXCACHE_GC_NO_MANIFEST          (-2)

/*
 * NIXCACHE_GC_SCRIPT_LOCK, EVAL with KEYS = lock, gen, ARGV = token,
 * lease in ms: 1 and the gen moved, or 0 (another gc holds it).
 */
#define NIXCACHE_GC_SCRIPT_LOCK                                             \
    "if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then "  \
    "return 0 end "                                                          \
    "redis.call('INCR', KEYS[2]) "                                           \
    "return 1"

/* NIXCACHE_GC_SCRIPT_UNLOCK, KEYS = lock, ARGV = token: only our lock */
#define NIXCACHE_GC_SCRIPT_UNLOCK                                           \
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "                         \
    "return redis.call('DEL', KEYS[1]) end "                                 \
    "return 0"

/*
 * NIXCACHE_GC_SCRIPT_MANIFEST_DROP, EVAL with KEYS = manifest, recent,
 * ARGV = cutoff (Redis time): a manifest no narinfo named when gc looked
 * is deleted unless it was published at or after cutoff: 1 deleted, 0 kept.
 */
#define NIXCACHE_GC_SCRIPT_MANIFEST_DROP                                    \
    "local s = redis.call('ZSCORE', KEYS[2], KEYS[1]) "                      \
    "if s and tonumber(s) >= tonumber(ARGV[1]) then return 0 end "           \
    "redis.call('ZREM', KEYS[2], KEYS[1]) "                                  \
    "return redis.call('DEL', KEYS[1])"

/*
 * NIXCACHE_GC_SCRIPT_EXPIRE, EVAL with KEYS = narinfo, access, pin, ARGV
 * = store hash, cutoff: retention removes a path last published before
 * cutoff unless it is pinned, checked in the same step (a push of it
 * meanwhile moved its time): 1 removed, 0 kept.
 */
#define NIXCACHE_GC_SCRIPT_EXPIRE                                           \
    "if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return 0 end "   \
    "local s = redis.call('ZSCORE', KEYS[2], ARGV[1]) "                      \
    "if not s or tonumber(s) >= tonumber(ARGV[2]) then return 0 end "        \
    "redis.call('ZREM', KEYS[2], ARGV[1]) "                                  \
    "redis.call('DEL', KEYS[1]) "                                            \
    "return 1"

/*
 * NIXCACHE_GC_SCRIPT_UPLOAD_HEAD, EVAL with KEYS = <prefix>upload:<name>,
 * ARGV = "<prefix>manifest:": 1 when the upload record is there and the
 * manifest it names still is (a gc may have dropped it: then Nix must
 * upload the NAR again), else 0.
 */
#define NIXCACHE_GC_SCRIPT_UPLOAD_HEAD                                      \
    "local h = redis.call('GET', KEYS[1]) "                                  \
    "if not h then return 0 end "                                            \
    "return redis.call('EXISTS', ARGV[1] .. h)"


#endif /* NIXCACHE_GC_H */
