/*
 * Access tokens as they arrive: in an Authorization header value, and in
 * the token files of nixcache_push_tokens / nixcache_read_tokens.  Pure
 * parsing over (pointer, length), no allocation: the module keeps only
 * SHA-256 digests of what these return (ngx_http_nixcache_auth.c).
 * Fuzzed by fuzz/fuzz_token.c.
 */

#ifndef NIXCACHE_TOKEN_H
#define NIXCACHE_TOKEN_H

#include <stddef.h>


/* Room nixcache_token_from_header() needs to decode a value of len bytes. */
#define nixcache_token_buf_len(len)     ((len) / 4 * 3 + 3)


/*
 * The token presented by an Authorization header value: "Bearer TOKEN",
 * or "Basic base64(USER:TOKEN)" (Nix sends its netrc login and password
 * so; the user is not looked at).  Scheme names match in any letter
 * case; spaces around the token are dropped.  buf (cap bytes, at least
 * nixcache_token_buf_len(len)) receives decoded Basic credentials.
 * Returns 0 with *tok and *tok_len pointing into value or buf, or -1 when
 * the value holds no token: another scheme, malformed base64, no ":",
 * nothing after it.
 */
int nixcache_token_from_header(const char *value, size_t len,
    unsigned char *buf, size_t cap, const char **tok, size_t *tok_len);

/*
 * The next token of a token file's text from *pos on: one token a line;
 * spaces and tabs around it and a CR before the newline are dropped;
 * blank lines and lines starting with "#" are skipped.  Returns 1 with
 * the token at text + *off, *tok_len bytes, and *pos past its line, or 0
 * when there is none left.  Start with *pos = 0.
 */
int nixcache_token_next(const char *text, size_t len, size_t *pos,
    size_t *off, size_t *tok_len);


#endif /* NIXCACHE_TOKEN_H */
