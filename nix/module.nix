# services.nixcache: Nix binary caches served by nginx with ngx_nixcache.
#
# The caches are locations of one services.nginx virtual host; their
# nginx text comes from nix/nginx-conf.nix (a pure function, also checked
# with `nginx -t` by t/120-nix.t).  Secret files (signing keys, token
# files, S3 credentials) reach nginx through systemd's LoadCredential:
# NixOS runs the nginx master as the nginx user, and a credential is a
# private copy owned by it, mode 0400, which the module's "readable by
# its owner only" check accepts.  Credentials are copied when nginx
# starts: after editing a token file, restart nginx (a reload keeps the
# old copies).

{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkPackageOption mkIf types;

  cfg = config.services.nixcache;
  nginx = config.services.nginx;

  credentialsDirectory = "/run/credentials/nginx.service";

  # services.redis.servers.nixcache: a unix socket, group redis-nixcache
  redisGroup = "redis-nixcache";
  localRedis = config.services.redis.servers.nixcache or { };

  redisAddress =
    if cfg.redis.address != null then cfg.redis.address
    else "unix:${localRedis.unixSocket or "/run/redis-nixcache/redis.sock"}";

  conf = import ./nginx-conf.nix {
    settings = cfg // { redis = cfg.redis // { address = redisAddress; }; };
    inherit credentialsDirectory;
  };

  caches = lib.attrValues cfg.caches;
  cacheNames = lib.attrNames cfg.caches;

  secretFiles = map (c: c.file) conf.credentials;

  allUnique = l: lib.length (lib.unique l) == lib.length l;

  cacheOptions = { name, ... }: {
    options = {
      location = mkOption {
        type = types.str;
        default = "/${name}/";
        example = "/";
        description = ''
          The nginx location (a prefix) this cache is served at.
          Clients use `substituters = http://HOST''${location}`.
        '';
      };

      redisPrefix = mkOption {
        type = types.str;
        default = "${name}:";
        description = ''
          Prefix of this cache's Redis keys (`nixcache_redis_prefix`): one
          per cache.  `nixcache push` and `import` need the same
          `--prefix`.
        '';
      };

      priority = mkOption {
        type = types.ints.between 0 65535;
        default = 30;
        description = ''
          `Priority:` in `nix-cache-info` (lower wins; cache.nixos.org
          is 40).
        '';
      };

      narCompression = mkOption {
        type = types.enum [ "zstd" "none" ];
        default = "zstd";
        description = "Which NAR URL narinfos advertise: `.nar.zst` or `.nar`.";
      };

      signKeyFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        example = "/var/lib/secrets/nixcache-main.sk";
        description = ''
          A Nix secret key file (`nixcache keygen` or
          `nix-store --generate-binary-cache-key`): every narinfo served
          gets a signature by it.  Given to nginx as a systemd credential;
          must not be in the Nix store.
        '';
      };

      readTokensFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = ''
          Makes the cache private: every request needs one of these tokens
          (one a line), a push or an admin token.  `null`: public.
        '';
      };

      upload = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Accept `nix copy --to http://…` and `nixcache push --url`
          uploads.  Needs {option}`pushTokensFile` (or
          {option}`allowAnonymousUpload`).
        '';
      };

      pushTokensFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = "Tokens that may upload, one a line.";
      };

      allowAnonymousUpload = mkOption {
        type = types.bool;
        default = false;
        description = ''
          With {option}`upload` and no {option}`pushTokensFile`: accept
          uploads from anyone (`nixcache_push_tokens off`).  Refused for a
          private cache.
        '';
      };

      adminTokensFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = ''
          Tokens that may also replace a stored narinfo (logged); they
          grant push and read too.
        '';
      };

      uploadMaxNarSize = mkOption {
        type = types.str;
        default = "8g";
        description = ''
          Largest uncompressed NAR an upload may decode to
          (`nixcache_upload_max_nar_size`); also the location's
          `client_max_body_size`.  `"0"`: no limit.
        '';
      };

      extraConfig = mkOption {
        type = types.lines;
        default = "";
        description = "nginx directives added to this cache's location.";
      };
    };
  };

in
{
  options.services.nixcache = {
    enable = mkEnableOption "Nix binary caches served by nginx (ngx_nixcache)";

    package = mkPackageOption pkgs "nixcache" { } // {
      description = ''
        The nixcache package: its `nginxModule` is compiled into
        services.nginx, its `nixcache` CLI installed.
      '';
    };

    virtualHost = mkOption {
      type = types.str;
      default = "nixcache";
      description = ''
        The services.nginx.virtualHosts entry the caches' locations are
        added to (set its listen addresses, serverName and TLS there).
      '';
    };

    caches = mkOption {
      type = types.attrsOf (types.submodule cacheOptions);
      default = { };
      example = lib.literalExpression ''
        {
          main = {
            location = "/";
            signKeyFile = "/var/lib/secrets/nixcache-main.sk";
            upload = true;
            pushTokensFile = "/var/lib/secrets/nixcache-push.tokens";
          };
        }
      '';
      description = ''
        The caches, each at its own location with its own Redis prefix,
        keys and tokens; they share Redis and the chunk directory (a chunk
        is stored once).
      '';
    };

    redis = {
      createLocally = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Run services.redis.servers.nixcache (a unix socket) for the
          caches' metadata.
        '';
      };

      address = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "127.0.0.1:6379";
        description = ''
          Redis address, as `nixcache_redis` takes it (`host[:port]`,
          `[IPv6][:port]`, `redis://host[:port][/db]`, `unix:/path`; a
          host name is resolved when nginx loads its configuration).
          `null`: the socket of services.redis.servers.nixcache.
        '';
      };

      timeout = mkOption {
        type = types.str;
        default = "2s";
        description = "Redis connect and reply timeout; past it, 503.";
      };
    };

    chunks = {
      directory = mkOption {
        type = types.path;
        default = "/var/lib/nixcache/chunks";
        description = ''
          The disk tier, shared by all caches; created owned by the nginx
          user.
        '';
      };

      maxSize = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "50g";
        description = ''
          Size limit of the disk tier (`nixcache_chunks_max_size`; needs
          {option}`s3`): least recently used chunks are removed.
        '';
      };
    };

    s3 = mkOption {
      default = null;
      description = ''
        An S3-compatible bucket holding the chunks: those missing on disk
        are fetched from it.
      '';
      type = types.nullOr (types.submodule {
        options = {
          endpoint = mkOption {
            type = types.str;
            example = "https://s3.eu-central-1.amazonaws.com";
            description = "`http(s)://host[:port]` of the S3 server.";
          };
          bucket = mkOption {
            type = types.str;
            description = "The bucket.";
          };
          region = mkOption {
            type = types.str;
            default = "us-east-1";
            description = "SigV4 region.";
          };
          prefix = mkOption {
            type = types.str;
            default = "chunks/";
            description = "Object key prefix, as `nixcache push --s3-*` writes.";
          };
          pathStyle = mkOption {
            type = types.nullOr types.bool;
            default = null;
            description = ''
              Path-style addressing; `null`: on for an IP or localhost
              endpoint, off otherwise.
            '';
          };
          credentialsFile = mkOption {
            type = types.path;
            description = ''
              Access key id, secret and optional session token (lines,
              or `AWS_ACCESS_KEY_ID=`/`AWS_SECRET_ACCESS_KEY=`/
              `AWS_SESSION_TOKEN=` lines), given to nginx with systemd's
              LoadCredential (copied when nginx starts: restart it after
              a change); never in the Nix store.
            '';
          };
        };
      });
    };

    metrics = {
      enable = mkEnableOption ''
        Prometheus metrics (`nixcache_metrics_zone`, every cache's
        counters) at {option}`metrics.location`, and a health check
        (`nixcache_health`: the chunk directory and Redis) at
        {option}`metrics.healthLocation`, on the caches' virtual host
      '';

      location = mkOption {
        type = types.str;
        default = "/nixcache/metrics";
        description = ''
          Where the metrics are served (Prometheus text; `?format=json`
          for JSON), to the addresses of {option}`metrics.allow` only.
        '';
      };

      healthLocation = mkOption {
        type = types.str;
        default = "/nixcache/health";
        description = "Where the health check answers: 200 `ok`, or 503 naming the failing part.";
      };

      allow = mkOption {
        type = types.listOf types.str;
        default = [ "127.0.0.1" "::1" ];
        example = [ "10.0.0.0/8" ];
        description = "Addresses or networks (nginx `allow`) that may read the metrics; others get 403.";
      };
    };

    extraConfig = mkOption {
      type = types.lines;
      default = "";
      description = "nginx directives added to `http {}` (e.g. nixcache_upload_jobs).";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.caches != { };
        message = "services.nixcache.caches: define at least one cache.";
      }
      {
        assertion = lib.all (n: builtins.match "[A-Za-z0-9_-]+" n != null)
          cacheNames;
        message = "services.nixcache.caches: names are letters, digits, - and _.";
      }
      {
        assertion = allUnique (map (c: c.location) caches);
        message = "services.nixcache.caches: two caches share a location.";
      }
      {
        assertion = allUnique (map (c: c.redisPrefix) caches);
        message = "services.nixcache.caches: two caches share a redisPrefix.";
      }
      {
        assertion = lib.all (c: c.upload -> (c.pushTokensFile != null
                                             || c.allowAnonymousUpload))
          caches;
        message = ''
          services.nixcache.caches.<name>.upload needs pushTokensFile, or
          allowAnonymousUpload = true for uploads from anyone.
        '';
      }
      {
        assertion = lib.all (c: c.allowAnonymousUpload
                                -> c.readTokensFile == null) caches;
        message = ''
          services.nixcache.caches.<name>: a private cache (readTokensFile)
          never takes anonymous uploads (allowAnonymousUpload).
        '';
      }
      {
        assertion = cfg.chunks.maxSize != null -> cfg.s3 != null;
        message = "services.nixcache.chunks.maxSize needs services.nixcache.s3.";
      }
      {
        assertion = cfg.redis.address != null || cfg.redis.createLocally;
        message = "services.nixcache.redis: set address, or createLocally.";
      }
      {
        assertion = lib.all (f: !lib.hasPrefix builtins.storeDir f) secretFiles;
        message = ''
          services.nixcache: a key, token or S3 credentials file is
          in the Nix store, readable by every user: give its path as a
          string, outside the store.
        '';
      }
    ];

    environment.systemPackages = [ cfg.package ];

    services.redis.servers.nixcache = mkIf cfg.redis.createLocally {
      enable = true;
    };

    users.users.${nginx.user}.extraGroups =
      lib.optional cfg.redis.createLocally redisGroup;

    systemd.tmpfiles.rules = [
      "d ${toString cfg.chunks.directory} 0750 ${nginx.user} ${nginx.group} - -"
    ];

    services.nginx = {
      enable = true;
      additionalModules = [ cfg.package.nginxModule ];
      appendHttpConfig = conf.http;
      virtualHosts.${cfg.virtualHost}.locations =
        lib.mapAttrs (_: text: { extraConfig = text; }) conf.locations;
    };

    systemd.services.nginx = {
      after = lib.optional cfg.redis.createLocally "redis-nixcache.service";
      wants = lib.optional cfg.redis.createLocally "redis-nixcache.service";
      serviceConfig = {
        LoadCredential = map (c: "${c.name}:${c.file}") conf.credentials;
        # ProtectSystem=strict: uploads, S3 write-through and eviction
        # write the chunk directory
        ReadWritePaths = [ (toString cfg.chunks.directory) ];
      };
    };
  };
}
