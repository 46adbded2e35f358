# The NixOS VM test (the flake's checks.<system>.vm): a server with
# services.nixcache pushes a path to itself with `nix copy --to`, and a
# second machine that trusts the cache's key substitutes it.  Needs
# nixpkgs and KVM: `nix build .#checks.x86_64-linux.vm`.  Not run on the
# project's Debian machines (no nixpkgs there); see README "On NixOS".
#
# The signing key is t/auth/a.sk, a test key: copied to /etc with mode
# 0600 (the module refuses secrets in the store).

{ nixosModule }:

{ pkgs, lib, ... }:

let
  pushed = pkgs.writeText "nixcache-vm-test" "pushed through ngx_nixcache\n";
  publicKey = lib.fileContents ../t/auth/a.pk;
  pushToken = "vm-push-token";
in
{
  name = "nixcache";

  nodes.server = { ... }: {
    imports = [ nixosModule ];

    environment.etc."nixcache/main.sk" = {
      source = ../t/auth/a.sk;
      mode = "0600";
    };
    environment.etc."nixcache/push.tokens" = {
      text = "${pushToken}\n";
      mode = "0600";
    };

    services.nixcache = {
      enable = true;
      caches.main = {
        location = "/";
        signKeyFile = "/etc/nixcache/main.sk";
        upload = true;
        pushTokensFile = "/etc/nixcache/push.tokens";
      };
    };
    services.nginx.virtualHosts.nixcache.default = true;
    networking.firewall.allowedTCPPorts = [ 80 ];

    # the path to push, present on the server only
    system.extraDependencies = [ pushed ];
    nix.settings = {
      experimental-features = [ "nix-command" ];
      netrc-file = "/etc/nix/netrc";
    };
    environment.etc."nix/netrc".text =
      "machine localhost login any password ${pushToken}\n";
  };

  nodes.client = { ... }: {
    nix.settings = {
      substituters = lib.mkForce [ "http://server/" ];
      trusted-public-keys = lib.mkForce [ publicKey ];
    };
  };

  testScript = ''
    start_all()

    server.wait_for_unit("redis-nixcache.service")
    server.wait_for_unit("nginx.service")
    server.wait_for_open_port(80)
    server.succeed("curl -sf http://localhost/nix-cache-info | grep -q 'StoreDir: /nix/store'")

    # an upload without the token is refused
    server.fail("curl -sf -X PUT --data x http://localhost/nar/x.nar")

    server.succeed("nix copy --to http://localhost/ ${pushed}")
    server.succeed("curl -sf http://localhost/$(basename ${pushed} | cut -c1-32).narinfo | grep -q '^Sig: cache-a-1:'")

    client.wait_for_unit("multi-user.target")
    client.fail("test -e ${pushed}")
    client.succeed("nix-store --realise ${pushed}")
    client.succeed("grep -q 'pushed through ngx_nixcache' ${pushed}")
  '';
}
