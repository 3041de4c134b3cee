#!/usr/bin/env bash
# Prints the prefix of a Node.js >= NODE_MAJOR (default 24, the LTS the project runs on) with its
# headers (<prefix>/bin/node, <prefix>/include/node/node.h) and npm, installing one when needed:
#
#   scripts/ensure-node.sh              the `node` on PATH if it is new enough and has its headers,
#                                       else the copy in .cache/node<MAJOR> (installed once from the
#                                       npm registry: node-linux-<arch>@<MAJOR> + npm@<NPM_MAJOR>)
#   scripts/ensure-node.sh --install D  installs that registry copy into D regardless (base-images.sh)
#
# The Makefile puts <prefix>/bin first on PATH and sets npm_config_nodedir=<prefix>, so native addons
# (ssh2's crypto binding, cpu-features) are compiled against the Node that runs them: a binding built
# against other headers fails to load and ssh2 silently falls back to its slower pure-JS crypto.
# Progress goes to stderr; stdout is only the prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_MAJOR=${NODE_MAJOR:-24}
NPM_MAJOR=${NPM_MAJOR:-11}
CACHE=${NODE_CACHE_DIR:-$PWD/.cache/node$NODE_MAJOR}

log() { printf '[ensure-node] %s\n' "$*" >&2; }

# <prefix> of the node on PATH when it is >= NODE_MAJOR and has headers and npm beside it.
system_prefix() {
  command -v node >/dev/null 2>&1 || return 1
  local major prefix
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || return 1
  (( major >= NODE_MAJOR )) || return 1
  prefix=$(node -p 'require("path").resolve(process.execPath, "../..")')
  [[ -f $prefix/include/node/node.h ]] || return 1
  command -v npm >/dev/null 2>&1 || return 1
  printf '%s\n' "$prefix"
}

# npm pack <spec> into $2 (a directory), with npm if there is one, else straight from the registry.
fetch_tarball() {
  local spec=$1 dir=$2 name=${1%@*} range=${1##*@}
  if command -v npm >/dev/null 2>&1; then
    (cd "$dir" && npm pack --silent "$spec" >/dev/null) && return
  fi
  command -v curl >/dev/null && command -v python3 >/dev/null \
    || { log "need npm, or curl and python3, to fetch $spec"; return 1; }
  local url
  url=$(curl -fsSL "https://registry.npmjs.org/$name" | python3 -c '
import json, sys
doc, major = json.load(sys.stdin), int(sys.argv[1])
vs = [v for v in doc["versions"] if "-" not in v and int(v.split(".")[0]) == major]
best = max(vs, key=lambda v: tuple(map(int, v.split("."))))
print(doc["versions"][best]["dist"]["tarball"])' "$range")
  curl -fsSL -o "$dir/$name.tgz" "$url"
}

install_into() {
  local dest=$1 arch tmp
  case $(uname -m) in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) log "no node-linux-* package for $(uname -m)"; return 1 ;;
  esac
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  log "installing Node $NODE_MAJOR (node-linux-$arch@$NODE_MAJOR) and npm@$NPM_MAJOR from the npm registry into $dest"
  fetch_tarball "node-linux-$arch@$NODE_MAJOR" "$tmp"
  fetch_tarball "npm@$NPM_MAJOR" "$tmp"
  mkdir -p "$tmp/node" "$tmp/npm"
  tar -xzf "$tmp"/node-linux-*.tgz -C "$tmp/node" --strip-components=1
  tar -xzf "$tmp"/npm-*.tgz -C "$tmp/npm" --strip-components=1
  [[ -x $tmp/node/bin/node && -f $tmp/node/include/node/node.h ]] || { log "unexpected node-linux-$arch layout"; return 1; }
  rm -rf "$dest.new"; mkdir -p "$dest.new/bin" "$dest.new/include" "$dest.new/lib/node_modules"
  cp "$tmp/node/bin/node" "$dest.new/bin/node"
  cp -a "$tmp/node/include/node" "$dest.new/include/node"
  cp -a "$tmp/npm" "$dest.new/lib/node_modules/npm"
  # Same layout as the official image: bin/npm and bin/npx link into lib/node_modules/npm.
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$dest.new/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$dest.new/bin/npx"
  "$dest.new/bin/node" "$dest.new/bin/npm" --version >/dev/null
  rm -rf "$dest"; mv "$dest.new" "$dest"
  log "Node $("$dest/bin/node" --version), npm $("$dest/bin/node" "$dest/bin/npm" --version) in $dest"
}

if [[ ${1:-} == --install ]]; then
  [[ -n ${2:-} ]] || { log "usage: $0 --install DIR"; exit 2; }
  install_into "$2"
  exit
fi
if system_prefix; then exit 0; fi
if [[ ! -x $CACHE/bin/node ]] || ! "$CACHE/bin/node" -e "process.exit(+process.versions.node.split('.')[0] >= $NODE_MAJOR ? 0 : 1)"; then
  log "node on PATH is $(node --version 2>/dev/null || echo missing); Node >= $NODE_MAJOR with headers and npm is needed"
  install_into "$CACHE" >&2
fi
printf '%s\n' "$CACHE"
