# nix/package.nix called with stand-ins for nixpkgs (stdenv.mkDerivation
# returns its attributes; a library is its name): what t/120-nix.t checks
# of it without nixpkgs, as JSON.  A file set naming a file that does not
# exist fails the evaluation, as lib.fileset would.

let
  unions = paths: builtins.concatLists (map (p:
    if builtins.pathExists p then [ (toString p) ]
    else throw "nix/package.nix names ${toString p}, which does not exist")
    paths);

  lib = {
    fileset = {
      inherit unions;
      toSource = { root, fileset }: { root = toString root; files = fileset; };
    };
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  };

  dep = name: { inherit name; };

  drv = import ../../nix/package.nix {
    inherit lib;
    stdenv = { mkDerivation = attrs: attrs; shell = "/stub/bash"; };
    hiredis = dep "hiredis";
    zstd = dep "zstd";
    xz = dep "xz";
    bzip2 = dep "bzip2";
    libsodium = dep "libsodium";
    openssl = dep "openssl";
    curl = dep "curl";
    json-c = dep "json-c";
    perl = dep "perl";
    nginxStable = { override = args: { nginxOverride = args; }; };
  };

  names = map (d: d.name);
  strip = root: map (f: builtins.substring (builtins.stringLength root + 1)
                                            (-1) f);
in
{
  inherit (drv) pname buildFlags checkTarget doCheck makeFlags;
  buildInputs = names drv.buildInputs;
  srcFiles = strip drv.src.root drv.src.files;
  module = {
    inherit (drv.passthru.nginxModule) name;
    inputs = names drv.passthru.nginxModule.inputs;
    srcFiles = strip drv.passthru.nginxModule.src.root
                     drv.passthru.nginxModule.src.files;
  };
  nginxModules = map (m: m.name) drv.passthru.nginx.nginxOverride.modules;
  mainProgram = drv.meta.mainProgram;
}
