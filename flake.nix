# ngx_nixcache for Nix users: the package (CLI + nginx module), an overlay,
# the NixOS module services.nixcache, a development shell, and checks (the
# package with its unit tests, and a NixOS VM test).  See README "On NixOS"
# for what is and is not checked on the project's own machines.
{
  description = "ngx_nixcache: a Nix binary cache served by nginx";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems
        (system: f nixpkgs.legacyPackages.${system});
    in
    {
      overlays.default = final: prev: {
        nixcache = final.callPackage ./nix/package.nix { };
        nginxModules = prev.nginxModules // {
          nixcache = final.nixcache.nginxModule;
        };
      };

      packages = forAllSystems (pkgs:
        let nixcache = pkgs.callPackage ./nix/package.nix { };
        in {
          inherit nixcache;
          default = nixcache;
          # nixpkgs' nginx with the module compiled in
          ngx_nixcache = nixcache.nginx;
        });

      # The module's package defaults to this flake's, without overlaying
      # the system's nixpkgs.
      nixosModules.default = { lib, pkgs, ... }: {
        imports = [ ./nix/module.nix ];
        services.nixcache.package = lib.mkDefault
          self.packages.${pkgs.stdenv.hostPlatform.system}.nixcache;
      };

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.nixcache ];
          packages = with pkgs; [
            gnumake redis zstd xz bzip2 curl perl nix
            self.packages.${pkgs.stdenv.hostPlatform.system}.ngx_nixcache
          ];
        };
      });

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.nixcache;
        vm = pkgs.testers.runNixOSTest (import ./nix/vm-test.nix {
          nixosModule = self.nixosModules.default;
        });
      });
    };
}
