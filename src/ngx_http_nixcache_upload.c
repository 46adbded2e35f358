/*
 * Uploads through the binary cache protocol, as `nix copy --to
 * http://...` sends them (nixcache_upload on):
 *
 *   PUT nar/<name>.nar[.xz|.zst|.bz2]  the body goes to a temporary file
 *       and to the publish pipeline (ngx_http_nixcache_publish.c): ingested
 *       in a thread pool, its manifest stored in Redis as
 *       <prefix>manifest:<NarHash>, and <prefix>upload:<name> records
 *       which NarHash that file name carried
 *   HEAD nar/<name>.nar.xz|.bz2        200 when that name was uploaded
 *   PUT <hash>.narinfo                 checked against the manifest of its
 *       NarHash (there must be one, of NarSize bytes), rewritten to this
 *       cache's NAR URL and stored: only now is the path visible
 *   PUT <hash>.ls, PUT nix-cache-info  accepted and discarded
 *
 * Nothing is visible before the narinfo is stored, and the narinfo is only
 * accepted when a NAR with its NarHash was ingested: a NAR whose bytes do
 * not match the narinfo was stored under the hash it really has.
 */

#include "ngx_http_nixcache_upload.h"

#include "nixcache_decompress.h"
#include "nixcache_gc.h"
#include "nixcache_hash.h"
#include "nixcache_manifest.h"
#include "nixcache_narinfo.h"
#include "nixcache_nix32.h"
#include "nixcache_route.h"


/*
 * Defaults of nixcache_upload_max_nar_size and _max_chunks: the largest
 * NARs of nixpkgs are a few GiB; 262144 chunks (a 10 MiB manifest) hold
 * 8 GiB even when chunks come out at half the chunker's 64 KiB average.
 */
#define NGX_HTTP_NIXCACHE_UPLOAD_MAX_NAR_SIZE  ((off_t) 8 << 30)
#define NGX_HTTP_NIXCACHE_UPLOAD_MAX_CHUNKS    262144


static ngx_int_t ngx_http_nixcache_upload_nar(ngx_http_request_t *r,
    ngx_str_t *name);
static void ngx_http_nixcache_upload_nar_body(ngx_http_request_t *r);
static void ngx_http_nixcache_upload_nar_gen(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_upload_head(ngx_http_request_t *r,
    ngx_str_t *name);
static void ngx_http_nixcache_upload_head_reply(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_upload_narinfo(ngx_http_request_t *r,
    ngx_str_t *hash);
static void ngx_http_nixcache_upload_narinfo_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_nixcache_upload_narinfo_check(
    ngx_http_request_t *r, ngx_http_nixcache_upload_ctx_t *ctx);
static void ngx_http_nixcache_upload_narinfo_manifest(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_nixcache_upload_narinfo_stored(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_nixcache_upload_discard(ngx_http_request_t *r);
static ngx_int_t ngx_http_nixcache_upload_bounded(ngx_http_request_t *r,
    ngx_str_t *name, off_t max, ngx_uint_t chunked);


ngx_int_t
ngx_http_nixcache_upload_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      rel, tail;
    nixcache_route_t               rt;
    nixcache_decomp_e              kind;
    ngx_http_nixcache_loc_conf_t  *nlcf;

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    if (!nlcf->upload) {
        return NGX_DECLINED;
    }

    if (ngx_http_nixcache_route_rel(r, &rel) != NGX_OK) {
        return (r->method & NGX_HTTP_PUT) ? NGX_HTTP_NOT_FOUND
                                          : NGX_DECLINED;
    }

    if (rel.len > sizeof("nar/") - 1
        && ngx_strncmp(rel.data, "nar/", sizeof("nar/") - 1) == 0)
    {
        tail.data = rel.data + sizeof("nar/") - 1;
        tail.len = rel.len - (sizeof("nar/") - 1);

        if (r->method & NGX_HTTP_PUT) {
            return ngx_http_nixcache_upload_nar(r, &tail);
        }

        /* HEAD: the names the ordinary /nar/ routes do not serve */

        if (nixcache_route_nar_name((const char *) tail.data, tail.len,
                                    &kind)
            == 0
            && (kind == NIXCACHE_DECOMP_XZ || kind == NIXCACHE_DECOMP_BZIP2))
        {
            /* only a pusher asks this: it needs a push token */

            rc = ngx_http_nixcache_auth_check(r, NGX_HTTP_NIXCACHE_AUTH_PUSH);
            if (rc != NGX_OK) {
                return rc;
            }

            return ngx_http_nixcache_upload_head(r, &tail);
        }

        return NGX_DECLINED;
    }

    if (!(r->method & NGX_HTTP_PUT)) {
        return NGX_DECLINED;
    }

    nixcache_route_match(&rt, (const char *) rel.data, rel.len);

    switch (rt.route) {

    case NIXCACHE_ROUTE_INFO:
    case NIXCACHE_ROUTE_LS:
        return ngx_http_nixcache_upload_discard(r);

    case NIXCACHE_ROUTE_NARINFO:
        tail.data = rel.data + rt.hash_off;
        tail.len = rt.hash_len;

        return ngx_http_nixcache_upload_narinfo(r, &tail);

    case NIXCACHE_ROUTE_BAD_HASH:
        return NGX_HTTP_BAD_REQUEST;

    default:
        return NGX_HTTP_NOT_FOUND;
    }
}


/* NAR uploads ------------------------------------------------------------ */


static ngx_int_t
ngx_http_nixcache_upload_nar(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_int_t                        rc;
    nixcache_decomp_e                kind;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ngx_str_t                        esc;
    ngx_http_nixcache_loc_conf_t    *nlcf;

    if (nixcache_route_nar_name((const char *) name->data, name->len, &kind)
        != 0)
    {
        /* the decoded URI may hold anything, newlines too: escaped */

        esc.data = ngx_pnalloc(r->pool, 3 * name->len + 1);
        if (esc.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        esc.len = (u_char *) ngx_escape_uri(esc.data, name->data, name->len,
                                            NGX_ESCAPE_URI_COMPONENT)
                  - esc.data;

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload: \"nar/%V\" is not "
                      "<name>.nar[.xz|.zst|.bz2]", &esc);
        return NGX_HTTP_BAD_REQUEST;
    }

    nlcf = ngx_http_get_module_loc_conf(r, ngx_http_nixcache_module);

    /*
     * Compressed, a NAR is hardly larger than itself (xz and zstd add
     * well under 1/64 to incompressible input): a body past that is
     * refused before any of it is spooled.  A chunked one (`nixcache
     * push --url` streams its NARs) is bounded by client_max_body_size
     * as nginx reads it.
     */

    rc = ngx_http_nixcache_upload_bounded(r, name,
                                   nlcf->upload_max_nar_size == 0
                                   ? 0
                                   : nlcf->upload_max_nar_size
                                     + nlcf->upload_max_nar_size / 64
                                     + 65536,
                                   1);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_nixcache_upload_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->name = *name;

    ctx->job = ngx_pcalloc(r->pool, sizeof(ngx_http_nixcache_upload_job_t));
    if (ctx->job == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->job->kind = kind;
    ctx->job->manifest_fd = NGX_INVALID_FILE;

    ngx_http_nixcache_set_ctx(r, ctx, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    /* the body never stays in memory: a temporary file, removed at the end */

    r->request_body_in_file_only = 1;
    r->request_body_in_persistent_file = 1;
    r->request_body_in_clean_file = 1;
    r->request_body_file_log_level = 0;

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_nixcache_upload_nar_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* The body is in its temporary file: the publish pipeline takes it. */

static void
ngx_http_nixcache_upload_nar_body(ngx_http_request_t *r)
{
    size_t                           argvlen[5];
    ngx_int_t                        rc;
    const char                      *argv[5];
    ngx_http_request_body_t         *rb;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    static const char  gen_script[] = NIXCACHE_GC_SCRIPT_GEN;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);
    rb = r->request_body;

    if (rb == NULL || rb->temp_file == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\": empty body", &ctx->name);
        ngx_http_finalize_request(r, NGX_HTTP_BAD_REQUEST);
        return;
    }

    /*
     * The gc generation first, before the ingest checks which chunks
     * exist (docs/FORMAT.md, "Garbage collection": the writers' check)
     */

    argv[0] = "EVAL";
    argv[1] = gen_script;
    argv[2] = "2";
    argv[3] = NIXCACHE_GC_KEY_GEN;
    argv[4] = NIXCACHE_GC_KEY_LOCK;

    argvlen[0] = sizeof("EVAL") - 1;
    argvlen[1] = sizeof(gen_script) - 1;
    argvlen[2] = 1;
    argvlen[3] = sizeof(NIXCACHE_GC_KEY_GEN) - 1;
    argvlen[4] = sizeof(NIXCACHE_GC_KEY_LOCK) - 1;

    rc = ngx_http_nixcache_upload_command(r, ngx_http_nixcache_upload_nar_gen,
                                          5, argv, argvlen);
    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    /* the body handler's hold ends; the command holds the request */

    ngx_http_finalize_request(r, NGX_DONE);
}


/*
 * While a gc holds its lock, 503 at once: a batch holds it for at most
 * half its lease, and Nix retries a 503; waiting here would hold the
 * spooled body and a connection for as long.
 */

static void
ngx_http_nixcache_upload_nar_gen(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_int_t                        rc;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    if (ctx->done) {
        ngx_http_finalize_request(r, NGX_DONE);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_STRING
        || reply->len == 0 || reply->len > NGX_INT64_LEN)
    {
        ngx_http_nixcache_upload_finalize(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    if (reply->len == sizeof(NIXCACHE_GC_GEN_LOCKED) - 1
        && ngx_memcmp(reply->str, NIXCACHE_GC_GEN_LOCKED, reply->len) == 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused (503): gc holds "
                      "its lock", &ctx->name);
        ngx_http_nixcache_upload_finalize(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    ngx_memcpy(ctx->gen, reply->str, reply->len);
    ctx->gen_len = reply->len;

    rc = ngx_http_nixcache_publish_nar(r, ctx,
                                       &r->request_body->temp_file->file.name);

    /* NGX_OK: the command's hold is the pipeline's now */

    if (rc != NGX_OK) {
        ngx_http_nixcache_upload_finalize(r, rc);
    }
}



/* HEAD nar/<name>: was that file name uploaded, and is its NAR still? */

static ngx_int_t
ngx_http_nixcache_upload_head(ngx_http_request_t *r, ngx_str_t *name)
{
    size_t                           argvlen[5];
    ngx_str_t                        manifests;
    nixcache_decomp_e                kind;
    const char                      *argv[5];
    ngx_http_nixcache_upload_ctx_t  *ctx;

    static const char  head_script[] = NIXCACHE_GC_SCRIPT_UPLOAD_HEAD;

    if (nixcache_route_nar_name((const char *) name->data, name->len, &kind)
        != 0)
    {
        return NGX_HTTP_NOT_FOUND;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_nixcache_upload_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_nixcache_set_ctx(r, ctx, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    if (ngx_http_nixcache_key(r, &ctx->upload_key, NIXCACHE_KEY_KIND_UPLOAD,
                              name->data, name->len)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_nixcache_key(r, &manifests, NIXCACHE_KEY_KIND_MANIFEST,
                              NULL, 0)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "EVAL";
    argvlen[0] = sizeof("EVAL") - 1;
    argv[1] = head_script;
    argvlen[1] = sizeof(head_script) - 1;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (const char *) ctx->upload_key.data;
    argvlen[3] = ctx->upload_key.len;
    argv[4] = (const char *) manifests.data;
    argvlen[4] = manifests.len;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_BAD_REQUEST;
    }

    if (ngx_http_nixcache_upload_command(r,
                                         ngx_http_nixcache_upload_head_reply,
                                         5, argv, argvlen)
        != NGX_OK)
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    return NGX_DONE;
}


static void
ngx_http_nixcache_upload_head_reply(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    if (reply->integer != 1) {
        ngx_http_finalize_request(r, NGX_HTTP_NOT_FOUND);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_nixcache_upload_reply(r,
                                                              NGX_HTTP_OK));
}


/* narinfo uploads -------------------------------------------------------- */


static ngx_int_t
ngx_http_nixcache_upload_narinfo(ngx_http_request_t *r, ngx_str_t *hash)
{
    ngx_int_t                        rc;
    ngx_str_t                        name;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    /* the URI goes on with ".narinfo" */

    name.data = hash->data;
    name.len = hash->len + sizeof(".narinfo") - 1;

    rc = ngx_http_nixcache_upload_bounded(r, &name,
                                          NIXCACHE_NARINFO_MAX_LEN, 0);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_nixcache_upload_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->hash = *hash;
    ctx->name = name;
    ctx->admin = ngx_http_nixcache_auth_admin(r);

    ngx_http_nixcache_set_ctx(r, ctx, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    rc = ngx_http_read_client_request_body(r,
                                       ngx_http_nixcache_upload_narinfo_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_nixcache_upload_narinfo_body(ngx_http_request_t *r)
{
    off_t                            len;
    u_char                          *p;
    ssize_t                          n;
    ngx_int_t                        rc;
    ngx_buf_t                       *b;
    ngx_chain_t                     *cl;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\": empty body", &ctx->name);
        ngx_http_finalize_request(r, NGX_HTTP_BAD_REQUEST);
        return;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl != NULL; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > NIXCACHE_NARINFO_MAX_LEN) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\": larger than %d bytes",
                      &ctx->name, NIXCACHE_NARINFO_MAX_LEN);
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE);
        return;
    }

    ctx->text = ngx_pnalloc(r->pool, len + 1);
    if (ctx->text == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = ctx->text;

    /* small (at most 64 KiB): memory, or a file the body spilled to */

    for (cl = r->request_body->bufs; cl != NULL; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            p += n;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    /* a last line without its newline is taken as it is meant */

    if (p > ctx->text && p[-1] != '\n') {
        *p++ = '\n';
    }

    ctx->text_len = p - ctx->text;

    rc = ngx_http_nixcache_upload_narinfo_check(r, ctx);

    /* NGX_DONE: the body handler's hold ends, the command holds it */

    ngx_http_finalize_request(r, rc == NGX_OK ? NGX_DONE : rc);
}


static ngx_int_t
ngx_http_nixcache_upload_narinfo_check(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx)
{
    size_t               argvlen[4];
    const char          *err, *argv[4];
    unsigned char        digest[NIXCACHE_SHA256_LEN];
    nixcache_narinfo_t  *ni;

    ni = &ctx->ni;

    if (nixcache_narinfo_parse(ni, (const char *) ctx->text, ctx->text_len,
                               &err)
        != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: %s", &ctx->name,
                      err);
        return NGX_HTTP_BAD_REQUEST;
    }

    if (!nixcache_narinfo_is_path(ni, (const char *) ctx->hash.data,
                                  ctx->hash.len))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: StorePath "
                      "\"%*s\" is not that path", &ctx->name,
                      ni->store_path.len, ni->store_path.data);
        return NGX_HTTP_BAD_REQUEST;
    }

    if (nixcache_hash_parse(digest, ni->nar_hash.data, ni->nar_hash.len)
        != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: NarHash is not "
                      "sha256", &ctx->name);
        return NGX_HTTP_BAD_REQUEST;
    }

    nixcache_nix32_encode((char *) ctx->nar32, digest, NIXCACHE_SHA256_LEN);

    if (ngx_http_nixcache_key(r, &ctx->manifest_key,
                              NIXCACHE_KEY_KIND_MANIFEST, ctx->nar32,
                              NIXCACHE_SHA256_NIX32_LEN)
        != NGX_OK
        || ngx_http_nixcache_key(r, &ctx->narinfo_key,
                                 NIXCACHE_KEY_KIND_NARINFO, ctx->hash.data,
                                 ctx->hash.len)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "GETRANGE";
    argv[1] = (const char *) ctx->manifest_key.data;
    argv[2] = "0";
    argv[3] = "95";

    argvlen[0] = sizeof("GETRANGE") - 1;
    argvlen[1] = ctx->manifest_key.len;
    argvlen[2] = 1;
    argvlen[3] = 2;

    if (ngx_http_nixcache_upload_command(r,
                                 ngx_http_nixcache_upload_narinfo_manifest,
                                 4, argv, argvlen)
        != NGX_OK)
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    return NGX_OK;
}


static void
ngx_http_nixcache_upload_narinfo_manifest(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    size_t                           n, argvlen[10];
    ngx_str_t                        access_key;
    const char                      *argv[10];
    unsigned char                    digest[NIXCACHE_SHA256_LEN];
    nixcache_narinfo_t              *ni;
    nixcache_narinfo_point_t         point;
    nixcache_manifest_header_t       h;

    /*
     * First writer wins, as `nix copy` expects (it skips paths the cache
     * has): the same text again is a success, another text is stored
     * only for an admin token.
     */

    static const char  store_script[] = NIXCACHE_GC_SCRIPT_NARINFO_STORE;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);
    ni = &ctx->ni;

    if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    nixcache_hash_parse(digest, ni->nar_hash.data, ni->nar_hash.len);

    if (nixcache_manifest_header_decode(&h, (unsigned char *) reply->str,
                                        reply->len)
        != 0
        || h.nar_size != ni->nar_size
        || ngx_memcmp(h.nar_hash, digest, NIXCACHE_SHA256_LEN) != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: NAR not uploaded "
                      "or NarHash mismatch (no NAR of %uL bytes with "
                      "NarHash %*s here)", &ctx->name, ni->nar_size,
                      ni->nar_hash.len, ni->nar_hash.data);

        ngx_http_finalize_request(r, NGX_HTTP_BAD_REQUEST);
        return;
    }

    /* the cache's own URL and compression, the stored frames' hash */

    nixcache_narinfo_point(ni, &point,
                           NIXCACHE_NARINFO_ZSTD|NIXCACHE_NARINFO_NAR_HASH,
                           h.nar_hash, h.file_hash, h.file_size);

    n = nixcache_narinfo_render(NULL, 0, ni);

    ctx->rendered = ngx_pnalloc(r->pool, n + 1);
    if (ctx->rendered == NULL
        || nixcache_narinfo_render((char *) ctx->rendered, n + 1, ni) != n)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->rendered_len = n;

    if (ngx_http_nixcache_key(r, &access_key, NIXCACHE_KEY_KIND_ACCESS,
                              NULL, 0)
        != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    argv[0] = "EVAL";
    argv[1] = store_script;
    argv[2] = "4";
    argv[3] = (const char *) ctx->narinfo_key.data;
    argv[4] = (const char *) ctx->manifest_key.data;
    argv[5] = (const char *) access_key.data;
    argv[6] = NIXCACHE_GC_KEY_RECENT;
    argv[7] = (const char *) ctx->rendered;
    argv[8] = ctx->admin ? "1" : "0";
    argv[9] = (const char *) ctx->hash.data;

    argvlen[0] = sizeof("EVAL") - 1;
    argvlen[1] = sizeof(store_script) - 1;
    argvlen[2] = 1;
    argvlen[3] = ctx->narinfo_key.len;
    argvlen[4] = ctx->manifest_key.len;
    argvlen[5] = access_key.len;
    argvlen[6] = sizeof(NIXCACHE_GC_KEY_RECENT) - 1;
    argvlen[7] = ctx->rendered_len;
    argvlen[8] = 1;
    argvlen[9] = ctx->hash.len;

    if (ngx_http_nixcache_upload_command(r,
                                    ngx_http_nixcache_upload_narinfo_stored,
                                    10, argv, argvlen)
        != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    ngx_http_finalize_request(r, NGX_DONE);
}


static void
ngx_http_nixcache_upload_narinfo_stored(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    ngx_uint_t                       status;
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    switch (reply->integer) {

    case NIXCACHE_GC_NO_MANIFEST:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: its NAR is gone "
                      "(removed by a gc since it was uploaded)", &ctx->name);
        ngx_http_finalize_request(r, NGX_HTTP_BAD_REQUEST);
        return;

    case NIXCACHE_NARINFO_STORED:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: uploaded \"%V\": %*s", &ctx->name,
                      ctx->ni.store_path.len, ctx->ni.store_path.data);
        status = NGX_HTTP_CREATED;
        break;

    case NIXCACHE_NARINFO_SAME:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "nixcache upload: \"%V\" was there already",
                       &ctx->name);
        status = NGX_HTTP_OK;
        break;

    case NIXCACHE_NARINFO_REPLACED:
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "nixcache: narinfo \"%V\" of %*s replaced with an "
                      "admin token", &ctx->name, ctx->ni.store_path.len,
                      ctx->ni.store_path.data);
        status = NGX_HTTP_CREATED;
        break;

    default:
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: another narinfo "
                      "of %*s is stored, and replacing it needs one of "
                      "nixcache_admin_tokens", &ctx->name,
                      ctx->ni.store_path.len, ctx->ni.store_path.data);
        status = NGX_HTTP_CONFLICT;
        break;
    }

    if (status == NGX_HTTP_CONFLICT) {
        ngx_http_finalize_request(r, status);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_nixcache_upload_reply(r, status));
}


/* helpers ---------------------------------------------------------------- */


/*
 * `nix copy` names a NAR file by its FileHash, the nix32 SHA-256 of the
 * file as sent, and a HEAD of a .nar.xz or .nar.bz2 name is answered from
 * the upload records: such a name of that form must be the body's hash.
 * Otherwise one pusher could claim the name another's file will have,
 * whose HEAD would then answer 200, so Nix would skip the upload and its
 * narinfo be refused.  A HEAD of a .nar or .nar.zst name is answered by
 * the NarHash routes from what is stored (`nixcache push --url` names
 * its frames by the NarHash); other names are the client's own affair.
 */

ngx_int_t
ngx_http_nixcache_upload_name_hash(ngx_http_request_t *r,
    ngx_http_nixcache_upload_ctx_t *ctx)
{
    u_char  claimed[NIXCACHE_SHA256_LEN];
    u_char  actual[NIXCACHE_SHA256_NIX32_LEN];

    if ((ctx->job->kind != NIXCACHE_DECOMP_XZ
         && ctx->job->kind != NIXCACHE_DECOMP_BZIP2)
        || ctx->name.len <= NIXCACHE_SHA256_NIX32_LEN
        || ctx->name.data[NIXCACHE_SHA256_NIX32_LEN] != '.'
        || nixcache_nix32_decode(claimed, NIXCACHE_SHA256_LEN,
                                 (const char *) ctx->name.data,
                                 NIXCACHE_SHA256_NIX32_LEN)
           != 0)
    {
        return NGX_OK;
    }

    if (ngx_memcmp(claimed, ctx->job->body_hash, NIXCACHE_SHA256_LEN) == 0) {
        return NGX_OK;
    }

    nixcache_nix32_encode((char *) actual, ctx->job->body_hash,
                          NIXCACHE_SHA256_LEN);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "nixcache: upload of \"%V\" refused: the name is a "
                  "FileHash, the body's is %*s", &ctx->name,
                  (size_t) NIXCACHE_SHA256_NIX32_LEN, actual);

    return NGX_HTTP_BAD_REQUEST;
}


/*
 * A body that is larger than max (0: no limit) is refused before it is
 * read; so is a chunked one unless allowed, as its size shows only once
 * it is spooled.
 */

static ngx_int_t
ngx_http_nixcache_upload_bounded(ngx_http_request_t *r, ngx_str_t *name,
    off_t max, ngx_uint_t chunked)
{
    if (max == 0) {
        return NGX_OK;
    }

    if (r->headers_in.chunked && !chunked) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: a chunked body "
                      "(send Content-Length)", name);
        return NGX_HTTP_LENGTH_REQUIRED;
    }

    if (r->headers_in.content_length_n > max) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "nixcache: upload of \"%V\" refused: %O bytes, more "
                      "than %O", name, r->headers_in.content_length_n, max);
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    return NGX_OK;
}


/* PUT of what this cache does not keep: the body is read and dropped. */

static ngx_int_t
ngx_http_nixcache_upload_discard(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_nixcache_upload_reply(r, NGX_HTTP_NO_CONTENT);
}


/*
 * Queues a command for this request and holds the request for its reply:
 * each reply handler ends with one ngx_http_finalize_request().
 */

ngx_int_t
ngx_http_nixcache_upload_command(ngx_http_request_t *r,
    ngx_http_nixcache_redis_pt handler, int argc, const char **argv,
    const size_t *argvlen)
{
    if (ngx_http_nixcache_redis_command(r, handler, NULL, argc, argv,
                                        argvlen)
        != NGX_OK)
    {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    r->main->count++;

    return NGX_OK;
}


/* A response without a body. */

ngx_int_t
ngx_http_nixcache_upload_reply(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_int_t  rc;

    r->headers_out.status = status;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    return ngx_http_send_special(r, NGX_HTTP_LAST);
}


/*
 * The end of a NAR upload, from the task's event handler or a reply
 * handler: one finalization for the body's hold on the request.
 */

void
ngx_http_nixcache_upload_finalize(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_nixcache_upload_ctx_t  *ctx;

    ctx = ngx_http_nixcache_get_ctx(r, NGX_HTTP_NIXCACHE_CTX_UPLOAD);

    if (ctx->done) {
        ngx_http_finalize_request(r, NGX_DONE);
        return;
    }

    ctx->done = 1;

    ngx_http_finalize_request(r, rc);
}


char *
ngx_http_nixcache_upload_merge_conf(ngx_conf_t *cf,
    ngx_http_nixcache_loc_conf_t *prev, ngx_http_nixcache_loc_conf_t *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_merge_value(conf->upload, prev->upload, 0);
    ngx_conf_merge_off_value(conf->upload_max_nar_size,
                             prev->upload_max_nar_size,
                             NGX_HTTP_NIXCACHE_UPLOAD_MAX_NAR_SIZE);
    ngx_conf_merge_uint_value(conf->upload_max_chunks,
                              prev->upload_max_chunks,
                              NGX_HTTP_NIXCACHE_UPLOAD_MAX_CHUNKS);
    ngx_conf_merge_str_value(conf->upload_thread_pool,
                             prev->upload_thread_pool, "default");

    if (!conf->upload || !conf->enable) {
        return NGX_CONF_OK;
    }

    if (conf->upload_max_chunks > UINT32_MAX) {
        conf->upload_max_chunks = UINT32_MAX;
    }

    /* who may write is said, never assumed */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->push_tokens == NGX_CONF_UNSET_PTR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_upload on\" in location \"%V\" "
                           "requires \"nixcache_push_tokens\": a token "
                           "file, or \"off\" to take uploads from anyone",
                           &clcf->name);
        return NGX_CONF_ERROR;
    }

    if (conf->push_tokens == NULL
        && ngx_http_nixcache_tokens_set(conf->read_tokens))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"nixcache_push_tokens off\" in location "
                           "\"%V\" would let anyone write to a cache that "
                           "needs nixcache_read_tokens to be read: give it a "
                           "push token file", &clcf->name);
        return NGX_CONF_ERROR;
    }

#if (NGX_THREADS)

    conf->upload_pool = ngx_thread_pool_add(cf, &conf->upload_thread_pool);

    if (conf->upload_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"nixcache_upload on\" requires nginx built with "
                       "threads (--with-threads)");
    return NGX_CONF_ERROR;

#endif
}

