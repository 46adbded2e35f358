/*
 * nixcache use URL: what a Nix client needs to substitute from a cache,
 * as `cachix use` and `attic use` give it.  GETs URL/nix-cache-info (with
 * the token, for a private cache), takes the cache's signing keys from
 * its PublicKey lines (the module adds one per nixcache_sign_key) or from
 * --key, and prints the nix.conf lines (extra-substituters,
 * extra-trusted-public-keys) and, with a token, the netrc line; with
 * --nix-conf FILE / --netrc FILE it appends them there instead.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "nixcache_sign.h"


#define NIXCACHE_USE_KEYS_MAX  8

#define NIXCACHE_USE_USAGE                                                   \
    "usage: nixcache use [OPTIONS] URL\n"                                    \
    "\n"                                                                     \
    "Prints what a Nix client needs to use the cache at URL: the\n"         \
    "nix.conf lines (extra-substituters, extra-trusted-public-keys: the\n"  \
    "cache's PublicKey lines of nix-cache-info, or --key) and, with a\n"    \
    "token, the netrc line.\n"                                               \
    "\n"                                                                     \
    "      --token TOKEN    read token of a private cache (default\n"       \
    "                       $NIXCACHE_TOKEN)\n"                              \
    "      --token-file FILE  the token, read from FILE\n"                  \
    "      --key NAME:KEY   a public key to trust (repeatable; instead of\n"\
    "                       the cache's own)\n"                              \
    "      --nix-conf FILE  append the nix.conf lines to FILE (e.g.\n"      \
    "                       /etc/nix/nix.conf) instead of printing them\n"   \
    "      --netrc FILE     append the netrc line to FILE (created mode\n"  \
    "                       0600; nix.conf's netrc-file, default\n"         \
    "                       /etc/nix/netrc)\n"                               \
    "      --help           this help\n"


enum {
    NIXCACHE_USE_OPT_TOKEN = 256,
    NIXCACHE_USE_OPT_TOKEN_FILE,
    NIXCACHE_USE_OPT_KEY,
    NIXCACHE_USE_OPT_NIX_CONF,
    NIXCACHE_USE_OPT_NETRC,
    NIXCACHE_USE_OPT_HELP
};


static const struct option  nixcache_use_options[] = {
    { "token",      required_argument, NULL, NIXCACHE_USE_OPT_TOKEN },
    { "token-file", required_argument, NULL, NIXCACHE_USE_OPT_TOKEN_FILE },
    { "key",        required_argument, NULL, NIXCACHE_USE_OPT_KEY },
    { "nix-conf",   required_argument, NULL, NIXCACHE_USE_OPT_NIX_CONF },
    { "netrc",      required_argument, NULL, NIXCACHE_USE_OPT_NETRC },
    { "help",       no_argument,       NULL, NIXCACHE_USE_OPT_HELP },
    { NULL, 0, NULL, 0 }
};


static int nixcache_use_keys(const char *info, char *keys, size_t cap);
static int nixcache_use_write(const nixcache_opts_t *o, const char *url,
    const char *conf, const char *host, const char *nix_conf,
    const char *netrc_file);
static int nixcache_use_append(const char *file, const char *text,
    mode_t mode);


int
nixcache_cmd_use(int argc, char **argv)
{
    int                      c, nkeys;
    char                     keys[NIXCACHE_USE_KEYS_MAX
                                  * (NIXCACHE_SIGN_TEXT_MAX + 1) + 1];
    char                     conf[sizeof(keys) + 8192];
    char                     host[256];
    size_t                   klen, hlen;
    const char              *url, *info, *h, *err, *given[NIXCACHE_USE_KEYS_MAX];
    const char              *nix_conf, *netrc_file;
    nixcache_opts_t          o;
    nixcache_pushurl_t      *http;
    nixcache_sign_public_t   pk;

    memset(&o, 0, sizeof(nixcache_opts_t));
    nkeys = 0;
    nix_conf = NULL;
    netrc_file = NULL;

    optind = 1;
    opterr = 0;

    for ( ;; ) {
        c = getopt_long(argc, argv, "", nixcache_use_options, NULL);
        if (c == -1) {
            break;
        }

        switch (c) {

        case NIXCACHE_USE_OPT_TOKEN:
            o.token = optarg;
            break;

        case NIXCACHE_USE_OPT_TOKEN_FILE:
            o.token_file = optarg;
            break;

        case NIXCACHE_USE_OPT_KEY:
            if (nixcache_sign_public_parse(&pk, optarg, strlen(optarg), &err)
                != 0)
            {
                nixcache_error("use: --key \"%s\": not a Nix public key "
                               "(NAME:base64): %s", optarg, err);
                return 2;
            }

            if (nkeys == NIXCACHE_USE_KEYS_MAX) {
                nixcache_error("use: at most %d --key",
                               NIXCACHE_USE_KEYS_MAX);
                return 2;
            }

            given[nkeys++] = optarg;
            break;

        case NIXCACHE_USE_OPT_NIX_CONF:
            nix_conf = optarg;
            break;

        case NIXCACHE_USE_OPT_NETRC:
            netrc_file = optarg;
            break;

        case NIXCACHE_USE_OPT_HELP:
            fputs(NIXCACHE_USE_USAGE, stdout);
            return 0;

        default:
            nixcache_error("use: unknown option or missing argument \"%s\"",
                           argv[optind - 1]);
            fputs(NIXCACHE_USE_USAGE, stderr);
            return 2;
        }
    }

    if (argc - optind != 1) {
        fputs(NIXCACHE_USE_USAGE, stderr);
        return 2;
    }

    url = argv[optind];

    if (o.token != NULL && o.token_file != NULL) {
        nixcache_error("use: --token or --token-file, not both");
        return 2;
    }

    /* the host the netrc line names: curl matches it without the port */

    h = strstr(url, "://");
    h = (h != NULL) ? h + 3 : url;
    if (*h == '[') {
        h++;
        hlen = strcspn(h, "]");
    } else {
        hlen = strcspn(h, ":/");
    }

    if (hlen == 0 || hlen >= sizeof(host)) {
        nixcache_error("use: \"%s\": no host", url);
        return 2;
    }

    memcpy(host, h, hlen);
    host[hlen] = '\0';

    http = nixcache_pushurl_open(url, "use", &o);
    if (http == NULL) {
        return 1;
    }

    info = nixcache_pushurl_get(http, "nix-cache-info");

    if (info == NULL) {
        nixcache_pushurl_close(http);
        return 1;
    }

    if (strstr(info, "StoreDir: /nix/store") == NULL) {
        nixcache_error("use: %s/nix-cache-info is not a binary cache's for "
                       "/nix/store", url);
        nixcache_pushurl_close(http);
        return 1;
    }

    /* --key instead of the cache's own */

    if (nkeys > 0) {
        klen = 0;
        keys[0] = '\0';

        for (c = 0; c < nkeys; c++) {
            klen += snprintf(keys + klen, sizeof(keys) - klen, "%s%s",
                             c ? " " : "", given[c]);
        }

    } else if (nixcache_use_keys(info, keys, sizeof(keys)) == 0) {
        nixcache_error("use: %s publishes no signing key (the module's "
                       "nixcache_sign_key) and none was given with --key: "
                       "Nix will take only content-addressed paths from it",
                       url);
    }

    nixcache_pushurl_close(http);

    snprintf(conf, sizeof(conf), "extra-substituters = %s\n%s%s%s", url,
             keys[0] ? "extra-trusted-public-keys = " : "", keys,
             keys[0] ? "\n" : "");

    return nixcache_use_write(&o, url, conf, host, nix_conf, netrc_file);
}


/*
 * The nix.conf lines to nix_conf (or stdout), the netrc line with the
 * token to netrc_file (or stdout, the token left out).
 */

static int
nixcache_use_write(const nixcache_opts_t *o, const char *url,
    const char *conf, const char *host, const char *nix_conf,
    const char *netrc_file)
{
    int   c;
    char  netrc[8192];
    char  token[4096];

    switch (nixcache_pushurl_token(o, token, sizeof(token))) {

    case 1:
        snprintf(netrc, sizeof(netrc), "machine %s login nixcache password "
                 "%s\n", host, token);
        explicit_bzero(token, sizeof(token));
        break;

    case 0:
        netrc[0] = '\0';
        break;

    default:
        return 1;
    }

    if (nix_conf != NULL) {
        if (nixcache_use_append(nix_conf, conf, 0644) != 0) {
            explicit_bzero(netrc, sizeof(netrc));
            return 1;
        }

        fprintf(stderr, "nixcache: use: %s: substituter %s added\n",
                nix_conf, url);

    } else {
        printf("# nix.conf (or: nixcache use --nix-conf FILE ...)\n%s", conf);
    }

    if (netrc[0] != '\0') {
        if (netrc_file != NULL) {
            c = nixcache_use_append(netrc_file, netrc, 0600);
            explicit_bzero(netrc, sizeof(netrc));

            if (c != 0) {
                return 1;
            }

            fprintf(stderr, "nixcache: use: %s: token for %s added (nix.conf: "
                    "netrc-file = %s)\n", netrc_file, host, netrc_file);

        } else {
            explicit_bzero(netrc, sizeof(netrc));
            printf("# netrc (nix.conf's netrc-file, default /etc/nix/netrc;"
                   " or: nixcache use --netrc FILE ...)\n"
                   "machine %s login nixcache password <the token>\n", host);
        }

    } else if (netrc_file != NULL) {
        nixcache_error("use: --netrc without a token (--token, --token-file "
                       "or $NIXCACHE_TOKEN)");
        return 2;
    }

    return 0;
}


/* The PublicKey: lines of nix-cache-info, space-separated; their count. */

static int
nixcache_use_keys(const char *info, char *keys, size_t cap)
{
    int                      n;
    size_t                   len, klen;
    const char              *p, *v, *err;
    nixcache_sign_public_t   pk;

    n = 0;
    klen = 0;
    keys[0] = '\0';

    for (p = info; *p != '\0'; p += len + (p[len] == '\n')) {
        len = strcspn(p, "\n");

        if (len <= sizeof("PublicKey:") - 1
            || strncmp(p, "PublicKey:", sizeof("PublicKey:") - 1) != 0)
        {
            continue;
        }

        v = p + sizeof("PublicKey:") - 1;
        v += strspn(v, " ");

        if (nixcache_sign_public_parse(&pk, v, len - (v - p), &err) != 0
            || n == NIXCACHE_USE_KEYS_MAX
            || klen + (len - (v - p)) + 2 > cap)
        {
            continue;
        }

        klen += snprintf(keys + klen, cap - klen, "%s%.*s", n ? " " : "",
                         (int) (len - (v - p)), v);
        n++;
    }

    return n;
}


static int
nixcache_use_append(const char *file, const char *text, mode_t mode)
{
    int      fd;
    size_t   len;
    ssize_t  n;

    fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode);
    if (fd == -1) {
        nixcache_error("use: %s: %s", file, strerror(errno));
        return -1;
    }

    for (len = strlen(text); len > 0; text += n, len -= n) {
        n = write(fd, text, len);

        if (n == -1 && errno == EINTR) {
            n = 0;
            continue;
        }

        if (n == -1) {
            nixcache_error("use: %s: %s", file, strerror(errno));
            close(fd);
            return -1;
        }
    }

    if (close(fd) != 0) {
        nixcache_error("use: %s: %s", file, strerror(errno));
        return -1;
    }

    return 0;
}
