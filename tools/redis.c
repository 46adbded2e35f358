/*
 * Redis from the CLI: synchronous hiredis, one connection per run.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/time.h>

#include "cli.h"
#include "nixcache_gc.h"
#include "nixcache_redis_addr.h"
#include "nixcache_redis_auth.h"


static int nixcache_redis_connect(nixcache_redis_t *r, const char *addr,
    const char *auth_file);
static int nixcache_redis_ok(nixcache_redis_t *r, redisReply *reply,
    const char *what);
static int nixcache_redis_auth(nixcache_redis_t *r, const char *addr,
    const char *file);


int
nixcache_redis_open(nixcache_redis_t *r, const char *addr,
    const char *auth_file, const char *prefix)
{
    r->ctx = NULL;
    r->prefix = prefix;
    r->addr = addr;
    strcpy(r->gen, NIXCACHE_GC_GEN_LOCKED);

    return nixcache_redis_connect(r, addr, auth_file);
}


/* Address forms: nixcache_redis_addr.h. */

static int
nixcache_redis_connect(nixcache_redis_t *r, const char *addr,
    const char *auth_file)
{
    const char             *err;
    redisReply             *reply;
    struct timeval          tv;
    nixcache_redis_addr_t   a;

    tv.tv_sec = NIXCACHE_CLI_REDIS_TIMEOUT;
    tv.tv_usec = 0;

    if (nixcache_redis_addr_parse(&a, addr, strlen(addr), &err) != 0) {
        nixcache_error("Redis address \"%s\": %s", addr, err);
        return -1;
    }

    if (a.port == 0) {
        r->ctx = redisConnectUnixWithTimeout(a.host, tv);

    } else {
        r->ctx = redisConnectWithTimeout(a.host, a.port, tv);
    }

    if (r->ctx == NULL) {
        nixcache_error("cannot connect to Redis at %s: out of memory", addr);
        return -1;
    }

    if (r->ctx->err) {
        nixcache_error("cannot connect to Redis at %s: %s", addr,
                       r->ctx->errstr);
        goto failed;
    }

    if (redisSetTimeout(r->ctx, tv) != REDIS_OK) {
        nixcache_error("Redis at %s: cannot set timeout", addr);
        goto failed;
    }

    if (auth_file != NULL && nixcache_redis_auth(r, addr, auth_file) != 0) {
        goto failed;
    }

    if (a.db >= 0) {
        reply = redisCommand(r->ctx, "SELECT %d", a.db);
        if (nixcache_redis_ok(r, reply, "SELECT") != 0) {
            goto failed;
        }
    }

    reply = redisCommand(r->ctx, "PING");

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        nixcache_error("cannot connect to Redis at %s: %s", addr,
                       reply ? reply->str : r->ctx->errstr);
        if (reply != NULL) {
            freeReplyObject(reply);
        }
        goto failed;
    }

    freeReplyObject(reply);

    return 0;

failed:

    redisFree(r->ctx);
    r->ctx = NULL;

    return -1;
}


/*
 * --redis-auth FILE (default $NIXCACHE_REDIS_AUTH): "password" or "user
 * password" (nixcache_redis_auth.h, the module's format), sent as AUTH
 * before SELECT.  The password is never printed.
 */

static int
nixcache_redis_auth(nixcache_redis_t *r, const char *addr, const char *file)
{
    int                     argc;
    size_t                  argvlen[3];
    const char             *err, *argv[3];
    redisReply             *reply;
    nixcache_redis_auth_t   auth;

    if (nixcache_redis_auth_file(&auth, file, &err) != 0) {
        nixcache_error("Redis credentials %s: %s", file, err);
        return -1;
    }

    argc = 0;
    argv[argc] = "AUTH";
    argvlen[argc++] = 4;

    if (auth.user_len > 0) {
        argv[argc] = auth.user;
        argvlen[argc++] = auth.user_len;
    }

    argv[argc] = auth.pass;
    argvlen[argc++] = auth.pass_len;

    reply = redisCommandArgv(r->ctx, argc, argv, argvlen);

    nixcache_redis_auth_wipe(&auth);

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        nixcache_error("Redis at %s: AUTH failed: %s", addr,
                       reply ? reply->str : r->ctx->errstr);
        if (reply != NULL) {
            freeReplyObject(reply);
        }
        return -1;
    }

    freeReplyObject(reply);

    return 0;
}


void
nixcache_redis_close(nixcache_redis_t *r)
{
    if (r->ctx != NULL) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
}


/*
 * <prefix><kind><name> (nixcache_key.h), NUL-terminated, in memory the
 * caller frees; NULL (printed) when out of memory.
 */

char *
nixcache_redis_key(const nixcache_redis_t *r, nixcache_key_kind_e kind,
    const char *name, size_t name_len, size_t *len)
{
    char    *key;
    size_t   plen;

    plen = strlen(r->prefix);
    *len = nixcache_key_len(plen, kind, name_len);

    key = malloc(*len + 1);
    if (key == NULL) {
        nixcache_error("out of memory");
        return NULL;
    }

    *nixcache_key_build(key, r->prefix, plen, kind, name, name_len) = '\0';

    return key;
}


/* 1 if the narinfo of a store hash is present, 0 if not, -1 on error. */

int
nixcache_redis_has_narinfo(nixcache_redis_t *r, const char *store_hash)
{
    int          rc;
    char        *key;
    size_t       klen;
    redisReply  *reply;

    key = nixcache_redis_key(r, NIXCACHE_KEY_KIND_NARINFO, store_hash,
                             NIXCACHE_STORE_HASH_NIX32_LEN, &klen);
    if (key == NULL) {
        return -1;
    }

    reply = redisCommand(r->ctx, "EXISTS %b", key, klen);
    free(key);

    if (reply == NULL) {
        nixcache_error("Redis at %s: %s", r->addr, r->ctx->errstr);
        return -1;
    }

    if (reply->type != REDIS_REPLY_INTEGER) {
        nixcache_error("Redis at %s: EXISTS: %s", r->addr,
                       reply->type == REDIS_REPLY_ERROR ? reply->str
                                                        : "unexpected reply");
        freeReplyObject(reply);
        return -1;
    }

    rc = reply->integer > 0;

    freeReplyObject(reply);

    return rc;
}


/*
 * The gc generation (nixcache_gc.h) into r->gen, read before the chunks
 * of a NAR are checked: 0, or -1 on error.
 */

int
nixcache_redis_gen(nixcache_redis_t *r)
{
    int          waited;
    redisReply  *reply;

    for (waited = 0; ; waited += 100) {
        reply = redisCommand(r->ctx, "EVAL %s 2 %s %s",
                             NIXCACHE_GC_SCRIPT_GEN, NIXCACHE_GC_KEY_GEN,
                             NIXCACHE_GC_KEY_LOCK);

        /* a gc's batch lasts half a lease; one that died, a lease */

        if (reply == NULL || reply->type != REDIS_REPLY_STRING
            || strcmp(reply->str, NIXCACHE_GC_GEN_LOCKED) != 0
            || waited > NIXCACHE_GC_LEASE_MS)
        {
            break;
        }

        freeReplyObject(reply);
        usleep(100 * 1000);
    }

    if (reply == NULL || reply->type != REDIS_REPLY_STRING
        || reply->len >= sizeof(r->gen))
    {
        if (nixcache_redis_ok(r, reply, "EVAL gen") == 0) {
            nixcache_error("Redis at %s: EVAL gen: unexpected reply",
                           r->addr);
        }

        return -1;
    }

    memcpy(r->gen, reply->str, reply->len + 1);
    freeReplyObject(reply);

    return 0;
}


/*
 * Stores a manifest unless one is there already (replace == 0): a manifest
 * is named by its NarHash, and narinfos of other store paths with the
 * same NAR may carry the FileHash and FileSize of the one in place.  The
 * gc protocol's script refuses while a gc runs or when the generation
 * read before the chunk checks (r->gen) moved.  Returns 0 when stored, 1
 * when one was there (its header is copied to header,
 * NIXCACHE_MANIFEST_HEADER_LEN bytes), NIXCACHE_GC_REFUSED, or -1 on
 * error.
 */

int
nixcache_redis_put_manifest(nixcache_redis_t *r, const char *nar_hash32,
    const unsigned char *manifest, size_t manifest_len, int replace,
    unsigned char *header)
{
    int          rc;
    char        *key;
    size_t       klen;
    redisReply  *reply;

    key = nixcache_redis_key(r, NIXCACHE_KEY_KIND_MANIFEST, nar_hash32,
                             NIXCACHE_SHA256_NIX32_LEN, &klen);
    if (key == NULL) {
        return -1;
    }

    reply = redisCommand(r->ctx, "EVAL %s 4 %b %s %s %s %b %s %s",
                         NIXCACHE_GC_SCRIPT_MANIFEST_PUT, key, klen,
                         NIXCACHE_GC_KEY_GEN, NIXCACHE_GC_KEY_LOCK,
                         NIXCACHE_GC_KEY_RECENT, manifest, manifest_len,
                         r->gen, replace ? "1" : "0");

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        if (nixcache_redis_ok(r, reply, "EVAL manifest") == 0) {
            nixcache_error("Redis at %s: EVAL manifest: unexpected reply",
                           r->addr);
        }

        rc = -1;
        goto done;
    }

    rc = (int) reply->integer;
    freeReplyObject(reply);

    if (rc == 1 || rc == NIXCACHE_GC_REFUSED) {
        rc = (rc == 1) ? 0 : NIXCACHE_GC_REFUSED;
        goto done;
    }

    reply = redisCommand(r->ctx, "GETRANGE %b 0 %d", key, klen,
                         NIXCACHE_MANIFEST_HEADER_LEN - 1);

    if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
        if (nixcache_redis_ok(r, reply, "GETRANGE manifest") == 0) {
            nixcache_error("Redis at %s: GETRANGE manifest: unexpected "
                           "reply", r->addr);
        }

        rc = -1;
        goto done;
    }

    rc = (reply->len == NIXCACHE_MANIFEST_HEADER_LEN) ? 1 : -1;

    if (rc == 1) {
        memcpy(header, reply->str, NIXCACHE_MANIFEST_HEADER_LEN);

    } else {
        nixcache_error("Redis at %s: the manifest in place for NarHash %.*s "
                       "is too short", r->addr, NIXCACHE_SHA256_NIX32_LEN,
                       nar_hash32);
    }

    freeReplyObject(reply);

done:

    free(key);

    return rc;
}


/*
 * Called once the manifest is in place (the write order of
 * nixcache_format.h): a narinfo never points at a missing manifest, the
 * script checks it in the same step.  Returns 0, NIXCACHE_GC_NO_MANIFEST
 * (a gc dropped the manifest meanwhile: publish again) or -1.
 */

int
nixcache_redis_put_narinfo(nixcache_redis_t *r, const char *store_hash,
    const char *nar_hash32, const char *narinfo, size_t narinfo_len,
    int replace)
{
    char        *key, *mkey, *akey;
    size_t       klen, mlen, alen;
    long long    stored;
    redisReply  *reply;

    key = nixcache_redis_key(r, NIXCACHE_KEY_KIND_NARINFO, store_hash,
                             NIXCACHE_STORE_HASH_NIX32_LEN, &klen);
    mkey = nixcache_redis_key(r, NIXCACHE_KEY_KIND_MANIFEST, nar_hash32,
                              NIXCACHE_SHA256_NIX32_LEN, &mlen);
    akey = nixcache_redis_key(r, NIXCACHE_KEY_KIND_ACCESS, NULL, 0, &alen);

    if (key == NULL || mkey == NULL || akey == NULL) {
        free(key);
        free(mkey);
        free(akey);
        return -1;
    }

    reply = redisCommand(r->ctx, "EVAL %s 4 %b %b %b %s %b %s %b",
                         NIXCACHE_GC_SCRIPT_NARINFO_STORE, key, klen,
                         mkey, mlen, akey, alen, NIXCACHE_GC_KEY_RECENT,
                         narinfo, narinfo_len, replace ? "1" : "0",
                         store_hash, (size_t) NIXCACHE_STORE_HASH_NIX32_LEN);
    free(key);
    free(mkey);
    free(akey);

    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        stored = reply->integer;
        freeReplyObject(reply);

        if (stored == NIXCACHE_GC_NO_MANIFEST) {
            return NIXCACHE_GC_NO_MANIFEST;
        }

        if (stored != NIXCACHE_NARINFO_KEPT) {
            return 0;
        }

        nixcache_error("narinfo %.*s: another text was stored meanwhile, "
                       "and is kept (--force replaces it)",
                       NIXCACHE_STORE_HASH_NIX32_LEN, store_hash);
        return -1;
    }

    if (nixcache_redis_ok(r, reply, "EVAL narinfo") == 0) {
        nixcache_error("Redis at %s: EVAL narinfo: unexpected reply",
                       r->addr);
    }

    return -1;
}


static int
nixcache_redis_ok(nixcache_redis_t *r, redisReply *reply, const char *what)
{
    if (reply == NULL) {
        nixcache_error("Redis at %s: %s: %s", r->addr, what, r->ctx->errstr);
        return -1;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        nixcache_error("Redis at %s: %s: %s", r->addr, what, reply->str);
        freeReplyObject(reply);
        return -1;
    }

    freeReplyObject(reply);

    return 0;
}
