# The nginx configuration of services.nixcache, as a pure function of its
# settings: nix/module.nix calls it, and t/120-nix.t calls it directly
# (builtins only, no nixpkgs) and runs `nginx -t` on the text.
#
# Settings (the shape of config.services.nixcache after defaults):
#   redis.address, redis.timeout, chunks.directory, chunks.maxSize,
#   s3 (null or { endpoint, bucket, region, prefix, pathStyle,
#   credentialsFile }), caches.<name>.{ location, redisPrefix, priority,
#   narCompression, signKeyFile, readTokensFile, pushTokensFile,
#   allowAnonymousUpload, adminTokensFile, upload, uploadMaxNarSize,
#   extraConfig }, metrics.{ enable, location, healthLocation, allow },
#   extraConfig;
# credentialsDirectory: where the service finds the secret files (systemd's
# $CREDENTIALS_DIRECTORY, /run/credentials/nginx.service).
#
# Returns { http, locations, credentials }: the text for http {}, one
# location body per cache (keyed by its location), and the secret files
# as [ { name, file } ] for systemd's LoadCredential.

{ settings, credentialsDirectory }:

let
  inherit (builtins) attrNames concatLists concatStringsSep
    filter listToAttrs map replaceStrings toString;

  # nginx's double-quoted string: the parser removes the quotes.
  quote = s: "\"" + replaceStrings [ "\\" "\"" ] [ "\\\\" "\\\"" ] s + "\"";

  # One credential per secret file: <cache name>-<kind>.
  secretsOf = name: cache:
    filter (s: s.file != null) [
      { kind = "sign-key"; directive = "nixcache_sign_key";
        file = cache.signKeyFile; }
      { kind = "read-tokens"; directive = "nixcache_read_tokens";
        file = cache.readTokensFile; }
      { kind = "push-tokens"; directive = "nixcache_push_tokens";
        file = cache.pushTokensFile; }
      { kind = "admin-tokens"; directive = "nixcache_admin_tokens";
        file = cache.adminTokensFile; }
    ];

  credName = name: kind: "nixcache-${name}-${kind}";
  credPath = cred: "${credentialsDirectory}/${cred}";

  s3 = settings.s3;
  s3Cred = "nixcache-s3-credentials";

  s3Lines =
    if s3 == null then [ ]
    else [
      "nixcache_s3_endpoint ${quote s3.endpoint};"
      "nixcache_s3_bucket ${quote s3.bucket};"
      "nixcache_s3_region ${quote s3.region};"
      "nixcache_s3_prefix ${quote s3.prefix};"
      "nixcache_s3_credentials ${quote (credPath s3Cred)};"
    ] ++ (if s3.pathStyle == null then [ ]
          else [ "nixcache_s3_path_style ${if s3.pathStyle then "on" else "off"};" ]);

  location = name: cache:
    concatStringsSep "\n" ([
      "nixcache on;"
      "nixcache_redis_prefix ${quote cache.redisPrefix};"
      "nixcache_chunks ${quote (toString settings.chunks.directory)};"
      "nixcache_priority ${toString cache.priority};"
      "nixcache_nar_compression ${cache.narCompression};"
      # .nar.zst leaves by sendfile(2); set here rather than in http {}
      # so that it never collides with services.nginx's own sendfile.
      "sendfile on;"
    ]
    ++ map (s: "${s.directive} ${quote (credPath (credName name s.kind))};")
           (secretsOf name cache)
    ++ (if cache.upload then [
          "nixcache_upload on;"
          "nixcache_upload_max_nar_size ${cache.uploadMaxNarSize};"
          # a NAR body is as large as the NAR it decodes to, at most
          "client_max_body_size ${cache.uploadMaxNarSize};"
        ] ++ (if cache.pushTokensFile == null && cache.allowAnonymousUpload
              then [ "nixcache_push_tokens off;" ] else [ ])
        else [ ])
    ++ s3Lines
    ++ (if settings.chunks.maxSize == null then [ ]
        else [ "nixcache_chunks_max_size ${settings.chunks.maxSize};" ])
    ++ (if cache.extraConfig == "" then [ ] else [ cache.extraConfig ]))
    + "\n";

  names = attrNames settings.caches;

  # counters in shared memory, served at metrics.location to the
  # addresses metrics.allow names; the health check at healthLocation
  metrics = settings.metrics or { enable = false; };

  metricsLocations =
    if !metrics.enable then { }
    else {
      ${metrics.location} = concatStringsSep "\n"
        (map (a: "allow ${a};") metrics.allow
         ++ [ "deny all;" "nixcache_metrics;" ]) + "\n";
      ${metrics.healthLocation} = concatStringsSep "\n" [
        "nixcache_chunks ${quote (toString settings.chunks.directory)};"
        "nixcache_health;"
      ] + "\n";
    };

in
{
  http = concatStringsSep "\n" ([
    "nixcache_redis ${settings.redis.address};"
    "nixcache_redis_timeout ${settings.redis.timeout};"
  ] ++ (if metrics.enable then [ "nixcache_metrics_zone nixcache 1m;" ]
        else [ ])
    ++ (if settings.extraConfig == "" then [ ] else [ settings.extraConfig ]))
  + "\n";

  locations = listToAttrs (map (name: {
    name = settings.caches.${name}.location;
    value = location name settings.caches.${name};
  }) names) // metricsLocations;

  credentials =
    concatLists (map (name:
      map (s: { name = credName name s.kind; file = toString s.file; })
          (secretsOf name settings.caches.${name})) names)
    ++ (if s3 == null then [ ]
        else [ { name = s3Cred; file = toString s3.credentialsFile; } ]);
}
