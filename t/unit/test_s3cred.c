/*
 * S3 credentials files: nixcache_s3_credentials_parse(), the one parser
 * of the CLI (--s3-credentials) and the module (nixcache_s3_credentials).
 * The module's use of the session token is tested by t/110.
 */

#include <stdlib.h>

#include "unit.h"

#include "nixcache_s3.h"


typedef struct {
    const char  *text;
    const char  *id;                /* NULL: refused */
    const char  *secret;
    const char  *token;
} cred_case_t;


static const cred_case_t  cases[] = {
    { "AKID\nSECRET\n", "AKID", "SECRET", "" },
    { "AKID\nSECRET", "AKID", "SECRET", "" },
    { "AKID\r\nSECRET\r\nTOKEN\r\n", "AKID", "SECRET", "TOKEN" },
    { "  AKID  \n\n# c\nSECRET\n", "AKID", "SECRET", "" },
    { "AWS_ACCESS_KEY_ID=AKID\nAWS_SECRET_ACCESS_KEY=SECRET\n",
      "AKID", "SECRET", "" },
    { "[default]\naws_access_key_id = AKID\naws_secret_access_key = S=1\n"
      "aws_session_token = T/o+k==\n", "AKID", "S=1", "T/o+k==" },
    { "AWS_SESSION_TOKEN=TOK\nAWS_ACCESS_KEY_ID=A\nAWS_SECRET_ACCESS_KEY=S",
      "A", "S", "TOK" },
    { "AWS_ACCESS_KEY_ID=AKID\n", NULL, NULL, NULL },
    { "AKID\n", NULL, NULL, NULL },
    { "", NULL, NULL, NULL },
    { "# only a comment\n", NULL, NULL, NULL },
};


int
main(void)
{
    char                        err[NIXCACHE_S3_ERROR_MAX];
    char                       *big;
    size_t                      i;
    const cred_case_t          *c;
    nixcache_s3_credentials_t   cred;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        c = &cases[i];
        err[0] = '\0';

        if (c->id == NULL) {
            ok(nixcache_s3_credentials_parse(&cred, c->text,
                                             strlen(c->text), err,
                                             sizeof(err))
               == -1, "case %zu refused", i);
            ok(strstr(err, "need an access key id") != NULL,
               "case %zu: the message says what is missing", i);
            ok(cred.secret[0] == '\0', "case %zu: nothing kept", i);
            continue;
        }

        ok(nixcache_s3_credentials_parse(&cred, c->text, strlen(c->text),
                                         err, sizeof(err))
           == 0, "case %zu parsed", i);
        is_str(cred.key_id, strlen(cred.key_id), c->id, "case %zu: key id",
               i);
        is_str(cred.secret, strlen(cred.secret), c->secret,
               "case %zu: secret", i);
        is_str(cred.token, strlen(cred.token), c->token, "case %zu: token",
               i);
    }

    /* a secret longer than SigV4 takes is refused, and not quoted */

    big = malloc(4096);
    if (big == NULL) {
        return 1;
    }

    memcpy(big, "AKID\n", 5);
    memset(big + 5, 'x', 4000);
    big[4005] = '\0';

    ok(nixcache_s3_credentials_parse(&cred, big, strlen(big), err,
                                     sizeof(err))
       == -1, "an overlong secret is refused");
    ok(strstr(err, "xxxx") == NULL, "... and not quoted");

    free(big);

    return done_testing();
}
