# nix/module.nix evaluated against t/nix/stub.nix: the user's
# services.nixcache settings in, what the module gives NixOS out (the
# nginx text, credentials, tmpfiles, failed assertions), as JSON for
# t/120-nix.t.
#
#   nix-instantiate --eval --strict --json t/nix/eval-module.nix \
#       --arg settings '{ enable = true; caches.main = { ... }; }'

{ settings, nginxUser ? "nginx" }:

let
  stub = import ./stub.nix;
  module = import ../../nix/module.nix;

  result = module { inherit (stub) lib pkgs; inherit config; };

  config = {
    services.nixcache = stub.fill [ "services" "nixcache" ]
      result.options.services.nixcache settings;
    # what the module reads of other NixOS modules
    services.nginx = { user = nginxUser; group = nginxUser; };
    services.redis.servers.nixcache.unixSocket =
      "/run/redis-nixcache/redis.sock";
  };

  out = stub.unwrap result.config;
  cfg = config.services.nixcache;
  vhost = out.services.nginx.virtualHosts.${cfg.virtualHost} or { };
in
{
  failedAssertions = map (a: a.message)
    (builtins.filter (a: !a.assertion) (out.assertions or [ ]));
} // (if !cfg.enable then { enabled = false; } else {
  enabled = true;
  http = out.services.nginx.appendHttpConfig;
  locations = builtins.mapAttrs (_: l: l.extraConfig) vhost.locations;
  modules = map (m: m.name) out.services.nginx.additionalModules;
  credentials = out.systemd.services.nginx.serviceConfig.LoadCredential;
  readWritePaths = out.systemd.services.nginx.serviceConfig.ReadWritePaths;
  tmpfiles = out.systemd.tmpfiles.rules;
  redis = out.services.redis.servers.nixcache or { };
  nginxGroups = out.users.users.${nginxUser}.extraGroups;
})
