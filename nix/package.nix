# nixcache: the CLI, built and unit-tested with the Makefile, and the nginx
# module in the shape nixpkgs' nginx takes modules (the pkgs.nginxModules
# convention: { name, src, inputs, meta }), as passthru.nginxModule.
# nixpkgs builds its nginx with every module compiled in (--add-module):
# services.nginx.additionalModules = [ pkgs.nixcache.nginxModule ], or
# nginx.override { modules = [ pkgs.nixcache.nginxModule ]; }, which is
# passthru.nginx (the flake's packages.ngx_nixcache).  Our `config` file
# serves that static build as it serves Debian's dynamic one.
#
#   callPackage ./nix/package.nix { }

{ lib
, stdenv
, hiredis
, zstd
, xz
, bzip2
, libsodium
, openssl
, curl
, json-c
, perl
, nginxStable
}:

let
  fs = lib.fileset;

  # the module's build reads only `config` and src/
  moduleSrc = fs.toSource {
    root = ../.;
    fileset = fs.unions [ ../config ../src ];
  };

  meta = {
    description = "Nix binary cache served by nginx: chunked, deduplicated NARs in Redis and on disk or S3";
    platforms = lib.platforms.linux;
  };

  nginxModule = {
    name = "nixcache";
    src = moduleSrc;
    # what `config` links (ngx_module_libs)
    inputs = [ hiredis zstd xz bzip2 libsodium openssl curl ];
    inherit meta;
  };
in
stdenv.mkDerivation {
  pname = "nixcache";
  version = "0-unstable";

  src = fs.toSource {
    root = ../.;
    fileset = fs.unions [
      ../Makefile ../src ../tools ../t/unit ../t/run-unit ../docs
    ];
  };

  # the same libraries as `make deps` (tools/deps.sh)
  buildInputs = [ hiredis zstd xz bzip2 libsodium openssl curl json-c ];
  nativeCheckInputs = [ perl ];   # prove, for t/run-unit

  # the Makefile's SHELL is /bin/bash, absent in the build sandbox
  makeFlags = [ "SHELL=${stdenv.shell}" ];
  buildFlags = [ "cli" ];

  doCheck = true;
  checkTarget = "unit";
  preCheck = ''
    patchShebangs t/run-unit
  '';

  installPhase = ''
    runHook preInstall
    install -Dm755 build/nixcache $out/bin/nixcache
    install -Dm644 -t $out/share/doc/nixcache docs/CLI.md docs/FORMAT.md
    install -Dm644 docs/nixcache.1 $out/share/man/man1/nixcache.1
    install -Dm644 tools/nixcache.bash \
      $out/share/bash-completion/completions/nixcache
    runHook postInstall
  '';

  passthru = {
    inherit nginxModule;
    nginx = nginxStable.override { modules = [ nginxModule ]; };
  };

  meta = meta // { mainProgram = "nixcache"; };
}
