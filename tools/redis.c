/*
 * Redis from the CLI: synchronous hiredis, one connection per run.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cli.h"
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
 * Stores a manifest unless one is there already (replace == 0): a manifest
 * is named by its NarHash, and narinfos of other store paths with the
 * same NAR may carry the FileHash and FileSize of the one in place.
 * Returns 0 when stored, 1 when one was there (its header is copied to
 * header, NIXCACHE_MANIFEST_HEADER_LEN bytes), -1 on error.
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

    reply = redisCommand(r->ctx, replace ? "SET %b %b" : "SET %b %b NX",
                         key, klen, manifest, manifest_len);

    if (reply == NULL || reply->type != REDIS_REPLY_NIL) {
        rc = nixcache_redis_ok(r, reply, "SET manifest");
        goto done;
    }

    freeReplyObject(reply);

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
 * nixcache_format.h): a narinfo never points at a missing manifest.
 */

int
nixcache_redis_put_narinfo(nixcache_redis_t *r, const char *store_hash,
    const char *narinfo, size_t narinfo_len, int replace)
{
    char        *key;
    size_t       klen;
    long long    stored;
    redisReply  *reply;

    key = nixcache_redis_key(r, NIXCACHE_KEY_KIND_NARINFO, store_hash,
                             NIXCACHE_STORE_HASH_NIX32_LEN, &klen);
    if (key == NULL) {
        return -1;
    }

    reply = redisCommand(r->ctx, "EVAL %s 1 %b %b %s",
                         NIXCACHE_SCRIPT_NARINFO_STORE, key, klen,
                         narinfo, narinfo_len, replace ? "1" : "0");
    free(key);

    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        stored = reply->integer;
        freeReplyObject(reply);

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
