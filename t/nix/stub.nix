# A stand-in for the pieces of nixpkgs' lib and pkgs that nix/module.nix
# uses, so that t/120-nix.t can evaluate the module with Nix alone (no
# nixpkgs here).  Only what the module calls; each type checks its values
# the way nixpkgs' does for one definition (no merging of several).
# Paths are lists of names: a submodule gets its attribute name from the
# last one.

let
  inherit (builtins) all attrNames concatStringsSep elem filter head
    isAttrs isBool isFunction isInt isList isPath isString length
    listToAttrs mapAttrs substring stringLength tail;

  showPath = concatStringsSep ".";

  last = l: builtins.elemAt l (length l - 1);

  simple = name: check: {
    inherit name check;
    merge = path: v:
      if check v then v
      else throw "${showPath path}: ${builtins.toJSON v} is not a ${name}";
  };

  absent = { __stubAbsent = true; };

  # option declarations + a user's value: defaults filled in, types checked
  fill = path: decl: value:
    if (decl._type or null) == "option" then
      (if !(isAttrs value && value ? __stubAbsent) then decl.type.merge path value
       else if decl ? default then decl.default
       else throw "${showPath path}: used but not defined")
    else if !isAttrs value then
      throw "${showPath path}: expected an attribute set"
    else
      let unknown = filter (n: !(decl ? ${n}) && n != "__stubAbsent")
                           (attrNames value);
      in if unknown != [ ]
         then throw "${showPath (path ++ [ (head unknown) ])}: no such option"
         else mapAttrs (n: d: fill (path ++ [ n ]) d (value.${n} or absent))
                       decl;

  types = {
    str = simple "string" isString;
    lines = simple "string" isString;
    bool = simple "boolean" isBool;
    int = simple "integer" isInt;
    path = simple "path" (v: isPath v
                             || isString v && substring 0 1 v == "/");
    package = simple "package" isAttrs;
    anything = simple "value" (_: true);

    ints.between = lo: hi:
      simple "integer between ${toString lo} and ${toString hi}"
        (v: isInt v && v >= lo && v <= hi);

    enum = vals: simple "one of ${builtins.toJSON vals}" (v: elem v vals);

    nullOr = t: {
      name = "null or ${t.name}";
      check = v: v == null || t.check v;
      merge = path: v: if v == null then null else t.merge path v;
    };

    listOf = t: {
      name = "list of ${t.name}";
      check = isList;
      merge = path: v:
        if isList v then map (t.merge path) v
        else throw "${showPath path}: not a list";
    };

    attrsOf = t: {
      name = "attribute set of ${t.name}";
      check = isAttrs;
      merge = path: v:
        if isAttrs v then mapAttrs (n: x: t.merge (path ++ [ n ]) x) v
        else throw "${showPath path}: not an attribute set";
    };

    submodule = m: {
      name = "submodule";
      check = isAttrs;
      merge = path: v:
        let decl = (if isFunction m then m { name = last path; } else m).options;
        in fill path decl v;
    };
  };

  lib = {
    inherit types;

    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = what: lib.mkOption {
      type = types.bool;
      default = false;
      description = "Whether to enable ${what}.";
    };
    mkPackageOption = pkgs: name: _: lib.mkOption {
      type = types.package;
      default = pkgs.${name};
      description = "The ${name} package to use.";
    };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    literalExpression = text: { _type = "literalExpression"; inherit text; };

    inherit (builtins) attrNames attrValues length;
    all = builtins.all;
    mapAttrs = builtins.mapAttrs;
    optional = cond: x: if cond then [ x ] else [ ];
    hasPrefix = p: s: substring 0 (stringLength p) s == p;
    unique = builtins.foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
  };

  # what `pkgs.nixcache` is to the module: its nginx module for nginx
  pkgs = {
    nixcache = {
      type = "derivation";
      name = "nixcache-stub";
      nginxModule = { name = "nixcache"; src = "/stub/src"; inputs = [ ]; };
    };
  };

  # mkIf, resolved the way the module system does for a single definition
  unwrap = v:
    if isAttrs v && (v._type or null) == "if" then
      (if v.condition then unwrap v.content else { })
    else if isAttrs v && (v.type or null) != "derivation" then
      mapAttrs (_: unwrap) v
    else v;

in
{
  inherit lib pkgs fill unwrap;
}
