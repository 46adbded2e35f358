/*
 * ngx_http_nixcache_module: access tokens and narinfo signing keys.
 *
 * Tokens (nixcache_admin_tokens, nixcache_push_tokens,
 * nixcache_read_tokens) are read from their files at configuration load,
 * so revoking one is an edit of the file and "nginx -s reload"; "off"
 * says a level is open on purpose, and overrides an enclosing level's
 * file.  Only their SHA-256 digests are kept: a
 * presented token is hashed and compared with every configured digest by
 * sodium_memcmp(), without an early exit, so neither the position of the
 * first wrong byte nor the length of a token shows in the time taken.
 *
 * The check runs from the content handler, not the access phase: the
 * nixcache routes are only ever main requests (the access phase is
 * skipped for subrequests, the content handler is not), the check must
 * come before Redis or the body is touched, which the content handler
 * controls, and the routing that decides what a request is (a PUT, a
 * read) lives there too.
 *
 * Signing keys (nixcache_sign_key) are parsed by the core at
 * configuration load and wiped when the configuration's pool is
 * destroyed.  Signing one narinfo is one ed25519 signature per key over a
 * fingerprint of a few hundred bytes (tens of microseconds): done on the
 * event loop.
 */

#include "ngx_http_nixcache.h"

#include <sodium.h>

#include "nixcache_sign.h"
#include "nixcache_token.h"


#define NGX_HTTP_NIXCACHE_TOKENS_MAX_SIZE  (1024 * 1024)
#define NGX_HTTP_NIXCACHE_KEY_MAX_SIZE     4096
#define NGX_HTTP_NIXCACHE_SIGN_KEYS_MAX    4
#define NGX_HTTP_NIXCACHE_DIGEST_LEN       crypto_hash_sha256_BYTES


typedef struct {
    u_char                     digest[NGX_HTTP_NIXCACHE_DIGEST_LEN];
} ngx_http_nixcache_token_t;


static ngx_int_t ngx_http_nixcache_auth_digest(ngx_http_request_t *r,
    u_char *digest);
static ngx_uint_t ngx_http_nixcache_auth_match(ngx_array_t *tokens,
    u_char *digest);
static ngx_int_t ngx_http_nixcache_auth_challenge(ngx_http_request_t *r);
static size_t ngx_http_nixcache_auth_sig_find(nixcache_narinfo_t *ni,
    nixcache_sign_secret_t *sk);
static size_t ngx_http_nixcache_auth_sig_foreign(nixcache_narinfo_t *ni,
    ngx_array_t *sign_keys);
static void ngx_http_nixcache_sign_key_cleanup(void *data);


static ngx_str_t  ngx_http_nixcache_challenges[] = {
    ngx_string("Basic realm=\"nixcache\""),
    ngx_string("Bearer realm=\"nixcache\""),
    ngx_null_string
};


ngx_int_t
ngx_http_nixcache_auth_check(ngx_http_request_t *r, ngx_uint_t level)
{
    u_char                         digest[NGX_HTTP_NIXCACHE_DIGEST_LEN];
    ngx_int_t                      rc;
    ngx_uint_t                     ok;
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    /*
     * Open unless tokens are configured for that level: uploads only
     * with "nixcache_push_tokens off" (merge refuses "nixcache_upload on"
     * otherwise), reads without nixcache_read_tokens or with "off".
     */

    if (level == NGX_HTTP_NIXCACHE_AUTH_PUSH) {
        if (!ngx_http_nixcache_tokens_set(nlcf->push_tokens)) {
            return NGX_OK;
        }

    } else if (!ngx_http_nixcache_tokens_set(nlcf->read_tokens)) {
        return NGX_OK;
    }

    rc = ngx_http_nixcache_auth_digest(r, digest);

    if (rc == NGX_DECLINED) {
        return ngx_http_nixcache_auth_challenge(r);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * Every list is compared in full, no early exit: an admin token also
     * grants push, a push token also grants read.
     */

    ok = ngx_http_nixcache_auth_match(nlcf->admin_tokens, digest);
    ok |= ngx_http_nixcache_auth_match(nlcf->push_tokens, digest);

    if (level == NGX_HTTP_NIXCACHE_AUTH_READ) {
        ok |= ngx_http_nixcache_auth_match(nlcf->read_tokens, digest);
    }

    sodium_memzero(digest, sizeof(digest));

    if (ok) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "nixcache: wrong %s token",
                  level == NGX_HTTP_NIXCACHE_AUTH_PUSH ? "push" : "read");

    return NGX_HTTP_FORBIDDEN;
}


ngx_uint_t
ngx_http_nixcache_auth_admin(ngx_http_request_t *r)
{
    u_char                         digest[NGX_HTTP_NIXCACHE_DIGEST_LEN];
    ngx_uint_t                     ok;
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    if (!ngx_http_nixcache_tokens_set(nlcf->admin_tokens)
        || ngx_http_nixcache_auth_digest(r, digest) != NGX_OK)
    {
        return 0;
    }

    ok = ngx_http_nixcache_auth_match(nlcf->admin_tokens, digest);

    sodium_memzero(digest, sizeof(digest));

    return ok;
}


/*
 * The SHA-256 of the presented token (nixcache_token_from_header()):
 * only digests are compared.  NGX_DECLINED when there is none.  Decoded
 * Basic credentials go to r->pool and are wiped.
 */

static ngx_int_t
ngx_http_nixcache_auth_digest(ngx_http_request_t *r, u_char *digest)
{
    u_char      *buf;
    size_t       cap, len;
    ngx_str_t   *auth;
    const char  *tok;

    if (r->headers_in.authorization == NULL) {
        return NGX_DECLINED;
    }

    auth = &r->headers_in.authorization->value;

    cap = nixcache_token_buf_len(auth->len);

    buf = ngx_pnalloc(r->pool, cap);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    if (nixcache_token_from_header((const char *) auth->data, auth->len,
                                   buf, cap, &tok, &len)
        != 0)
    {
        return NGX_DECLINED;
    }

    crypto_hash_sha256(digest, (const u_char *) tok, len);

    sodium_memzero(buf, cap);

    return NGX_OK;
}


/* Whether digest is one of tokens' (none: a list unset or "off"). */

static ngx_uint_t
ngx_http_nixcache_auth_match(ngx_array_t *tokens, u_char *digest)
{
    ngx_uint_t                  i, ok;
    ngx_http_nixcache_token_t  *t;

    if (!ngx_http_nixcache_tokens_set(tokens)) {
        return 0;
    }

    ok = 0;
    t = tokens->elts;

    for (i = 0; i < tokens->nelts; i++) {
        ok |= (sodium_memcmp(t[i].digest, digest,
                             NGX_HTTP_NIXCACHE_DIGEST_LEN)
               == 0);
    }

    return ok;
}


static ngx_int_t
ngx_http_nixcache_auth_challenge(ngx_http_request_t *r)
{
    ngx_str_t        *c;
    ngx_table_elt_t  *h;

    for (c = ngx_http_nixcache_challenges; c->len; c++) {
        if (ngx_http_nixcache_add_header(r, "WWW-Authenticate", c, &h)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (r->headers_out.www_authenticate == NULL) {
            r->headers_out.www_authenticate = h;
        }
    }

    return NGX_HTTP_UNAUTHORIZED;
}


ngx_int_t
ngx_http_nixcache_auth_sign(ngx_http_request_t *r, nixcache_narinfo_t *ni)
{
    char                          *fp, *sig;
    size_t                         fp_len, sig_len, j;
    ngx_uint_t                     i;
    nixcache_sign_secret_t       **keys;
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    if (nlcf->sign_keys == NULL) {
        return NGX_OK;
    }

    fp_len = nixcache_narinfo_fingerprint(NULL, 0, ni);

    if (fp_len == 0) {

        /*
         * Served unsigned: Nix then refuses this one path ("lacks a valid
         * signature") and tries its other substituters, where a 5xx
         * would make it give up on this cache for the whole run.
         */

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "nixcache: narinfo of \"%*s\" cannot be "
                      "fingerprinted, served unsigned",
                      ni->store_path.len, ni->store_path.data);
        return NGX_OK;
    }

    fp = ngx_pnalloc(r->pool, fp_len + 1);
    if (fp == NULL) {
        return NGX_ERROR;
    }

    nixcache_narinfo_fingerprint(fp, fp_len + 1, ni);

    keys = nlcf->sign_keys->elts;

    for (i = 0; i < nlcf->sign_keys->nelts; i++) {

        sig = ngx_pnalloc(r->pool, NIXCACHE_SIGN_TEXT_MAX + 1);
        if (sig == NULL) {
            return NGX_ERROR;
        }

        sig_len = nixcache_sign_fingerprint(sig, NIXCACHE_SIGN_TEXT_MAX + 1,
                                            keys[i], fp, fp_len);

        /* a stored Sig by a key of the same name is replaced */

        j = ngx_http_nixcache_auth_sig_find(ni, keys[i]);

        if (j == ni->nsigs) {

            if (ni->nsigs == NIXCACHE_NARINFO_MAX_SIGS) {

                /* full: the cache's own keys win over stored ones */

                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "nixcache: narinfo of \"%*s\" has too many "
                              "Sig lines, a stored one is dropped",
                              ni->store_path.len, ni->store_path.data);

                j = ngx_http_nixcache_auth_sig_foreign(ni, nlcf->sign_keys);

            } else {
                ni->nsigs++;
            }
        }

        ni->sigs[j].data = sig;
        ni->sigs[j].len = sig_len;
    }

    return NGX_OK;
}


/* The index of the Sig by a key named as sk, or ni->nsigs. */

static size_t
ngx_http_nixcache_auth_sig_find(nixcache_narinfo_t *ni,
    nixcache_sign_secret_t *sk)
{
    size_t  j;

    for (j = 0; j < ni->nsigs; j++) {
        if (ni->sigs[j].len > sk->name_len
            && ni->sigs[j].data[sk->name_len] == ':'
            && ngx_strncmp(ni->sigs[j].data, sk->name, sk->name_len) == 0)
        {
            break;
        }
    }

    return j;
}


/*
 * The index of the last Sig by none of our keys (there is one: a narinfo
 * holds up to NIXCACHE_NARINFO_MAX_SIGS, a location fewer keys).
 */

static size_t
ngx_http_nixcache_auth_sig_foreign(nixcache_narinfo_t *ni,
    ngx_array_t *sign_keys)
{
    size_t                    j;
    ngx_uint_t                i;
    nixcache_sign_secret_t  **keys;

    keys = sign_keys->elts;

    for (j = ni->nsigs; j > 0; j--) {

        for (i = 0; i < sign_keys->nelts; i++) {
            if (ni->sigs[j - 1].len > keys[i]->name_len
                && ni->sigs[j - 1].data[keys[i]->name_len] == ':'
                && ngx_strncmp(ni->sigs[j - 1].data, keys[i]->name,
                               keys[i]->name_len)
                   == 0)
            {
                break;
            }
        }

        if (i == sign_keys->nelts) {
            return j - 1;
        }
    }

    return ni->nsigs - 1;
}


char *
ngx_http_nixcache_sign_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_nixcache_loc_conf_t *nlcf = conf;

    ngx_int_t                 rc;
    ngx_str_t                *value, name, text;
    const char               *err;
    ngx_uint_t                i;
    ngx_pool_cleanup_t       *cln;
    nixcache_sign_secret_t   *sk, **keys;

    value = cf->args->elts;
    name = value[1];

    if (nixcache_sign_init() != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "nixcache_sign_key: libsodium cannot be "
                           "initialized");
        return NGX_CONF_ERROR;
    }

    if (nlcf->sign_keys == NULL) {
        nlcf->sign_keys = ngx_array_create(cf->pool, 2,
                                           sizeof(nixcache_sign_secret_t *));
        if (nlcf->sign_keys == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (nlcf->sign_keys->nelts == NGX_HTTP_NIXCACHE_SIGN_KEYS_MAX) {
        return "is repeated too often";
    }

    cln = ngx_pool_cleanup_add(cf->pool, sizeof(nixcache_sign_secret_t));
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    sk = cln->data;
    ngx_memzero(sk, sizeof(nixcache_sign_secret_t));
    cln->handler = ngx_http_nixcache_sign_key_cleanup;

    if (ngx_http_nixcache_read_file(cf, &cmd->name, &name,
                                    NGX_HTTP_NIXCACHE_KEY_MAX_SIZE, &text)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    rc = nixcache_sign_secret_parse(sk, (const char *) text.data, text.len,
                                    &err);

    sodium_memzero(text.data, text.len);

    if (rc != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "nixcache_sign_key \"%V\" is not a Nix secret "
                           "key (\"name:base64\"): %s", &name, err);
        return NGX_CONF_ERROR;
    }

    keys = nlcf->sign_keys->elts;

    for (i = 0; i < nlcf->sign_keys->nelts; i++) {
        if (keys[i]->name_len == sk->name_len
            && ngx_strncmp(keys[i]->name, sk->name, sk->name_len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "nixcache_sign_key \"%V\": a key named "
                               "\"%s\" is already configured here",
                               &name, sk->name);
            return NGX_CONF_ERROR;
        }
    }

    keys = ngx_array_push(nlcf->sign_keys);
    if (keys == NULL) {
        return NGX_CONF_ERROR;
    }

    *keys = sk;

    return NGX_CONF_OK;
}


static void
ngx_http_nixcache_sign_key_cleanup(void *data)
{
    nixcache_sign_secret_t  *sk = data;

    nixcache_sign_secret_wipe(sk);
}


char *
ngx_http_nixcache_tokens(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    size_t                      pos, off, len;
    ngx_str_t                  *value, name, text;
    ngx_array_t               **tokens;
    ngx_http_nixcache_token_t  *t;

    tokens = (ngx_array_t **) (p + cmd->offset);

    if (*tokens != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    /* "off": no tokens here, whatever an enclosing level has */

    if (name.len == 3 && ngx_strncmp(name.data, "off", 3) == 0) {
        *tokens = NULL;
        return NGX_CONF_OK;
    }

    if (nixcache_sign_init() != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V: libsodium cannot be initialized",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_nixcache_read_file(cf, &cmd->name, &name,
                                    NGX_HTTP_NIXCACHE_TOKENS_MAX_SIZE, &text)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    *tokens = ngx_array_create(cf->pool, 4,
                               sizeof(ngx_http_nixcache_token_t));
    if (*tokens == NULL) {
        return NGX_CONF_ERROR;
    }

    /* one token a line (nixcache_token_next()) */

    pos = 0;

    while (nixcache_token_next((const char *) text.data, text.len, &pos,
                               &off, &len))
    {
        t = ngx_array_push(*tokens);
        if (t == NULL) {
            return NGX_CONF_ERROR;
        }

        crypto_hash_sha256(t->digest, text.data + off, len);
    }

    sodium_memzero(text.data, text.len);

    if ((*tokens)->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V \"%V\" holds no token", &cmd->name, &name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Reads a whole small secret file given in a directive (relative to the
 * prefix) into cf->pool.  Like the S3 credentials, it must be readable
 * by its owner only (it is read by the master, before workers drop
 * privileges): a key or token file that others can read is a key or
 * token others have.  Errors are logged naming the file.
 */

ngx_int_t
ngx_http_nixcache_read_file(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *name, size_t max, ngx_str_t *text)
{
    ssize_t          n;
    ngx_str_t        path;
    ngx_file_t       file;
    ngx_file_info_t  fi;

    path = *name;

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = path;
    file.log = cf->log;

    file.fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &path);
        return NGX_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &path);
        goto failed;
    }

    if (!ngx_is_file(&fi) || (size_t) ngx_file_size(&fi) > max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is not a regular file of at most %uz "
                           "bytes", &path, max);
        goto failed;
    }

    if (fi.st_mode & (S_IRGRP|S_IROTH|S_IWGRP|S_IWOTH)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V \"%V\" is readable or writable by group or "
                           "others (mode %ui%ui%ui): chmod 600 it",
                           directive, &path,
                           (ngx_uint_t) (fi.st_mode >> 6) & 7,
                           (ngx_uint_t) (fi.st_mode >> 3) & 7,
                           (ngx_uint_t) fi.st_mode & 7);
        goto failed;
    }

    text->len = ngx_file_size(&fi);
    text->data = ngx_pnalloc(cf->pool, text->len + 1);
    if (text->data == NULL) {
        goto failed;
    }

    n = ngx_read_file(&file, text->data, text->len, 0);

    if (n == NGX_ERROR) {
        goto failed;
    }

    if ((size_t) n != text->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" changed while read", &path);
        goto failed;
    }

    text->data[text->len] = '\0';

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &path);
    }

    return NGX_OK;

failed:

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &path);
    }

    return NGX_ERROR;
}
