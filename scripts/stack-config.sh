#!/usr/bin/env bash
# Puts the cameras of CAMERAS_FILE into the compose stack (`make up-home`, `make up-vps`, `make demo`,
# `make reload`, `make stack-config` run it). Usage:
#
#   CAMERAS_FILE=cameras.yml scripts/stack-config.sh [--image IMAGE] [--out-dir DIR] [--any-host-port]
#
# It checks the list (exit 2 with one line naming the key path, the value and what is allowed; nothing
# is written then, so running containers keep the list they have), and writes into DIR [.camrelay]:
#   DIR/compose.yml         the compose file that goes on top of docker-compose.yml
#                           (common/src/stack.ts: the relay's published raw/ingest ports, the
#                           tunnel-server's permitted ports, the list mounted into relay and agent);
#   DIR/cameras/<name>      the checked copy of the list that the containers read (mounted read-only).
# The containers read the copy, not your file: edit your file, then `make reload` (or make up-*).
#
# The check runs on this machine's Node (>= 20, with `make build` done) or, with --image, in one of the
# stack's own images (camrelay/relay: every value checked as the relay reads it; camrelay/tunnel-agent:
# the key names, as the agent reads them): a VPS needs nothing but Docker.
# --any-host-port publishes every camera port on a port Docker picks (the compose test).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd) # the checkout (the generator); paths below are relative to the caller's directory

log() { printf 'stack-config: %s\n' "$*" >&2; }
image= out=.camrelay any=
while (($#)); do
  case $1 in
    --image) image=$2; shift 2 ;;
    --out-dir) out=$2; shift 2 ;;
    --any-host-port) any=--any-host-port; shift ;;
    *) log "unknown argument $1"; exit 2 ;;
  esac
done

list=${CAMERAS_FILE:-}
if [[ -z $list ]]; then
  rm -f "$out/compose.yml"
  exit 0
fi
if [[ ! -f $list || ! -r $list ]]; then
  log "CAMERAS_FILE=$list is not a readable file"
  exit 2
fi
name=$(basename "$list")
[[ $name =~ ^[A-Za-z0-9._-]+$ ]] || { log "CAMERAS_FILE=$list: name the file with letters, digits, '.', '_' or '-'"; exit 2; }
mkdir -p "$out/cameras"
chmod 755 "$out" "$out/cameras"
dir=$(cd "$out/cameras" && pwd)

args=(--cameras-dir "$dir" --file-name "$name" --source "$list" $any)
tmp=$(mktemp "$out/compose.yml.XXXXXX")
trap 'rm -f "$tmp" "$out/cameras/.$name.new"' EXIT
# The relay's check where the relay's code is (its image, a built checkout): every value as the relay
# reads it. Else (the tunnel-agent's image) the key names, all that the agent itself reads.
pick='if [ -f relay/dist/stack-cli.js ]; then exec node relay/dist/stack-cli.js "$@"; else exec node common/dist/stack-cli.js "$@"; fi'
if [[ -n $image ]]; then
  # The image's own Node and code; no network, not root, the list on stdin.
  docker run --rm -i --network none --user 1000:1000 --entrypoint sh "$image" -c "$pick" stack-cli "${args[@]}" <"$list" >"$tmp"
else
  [[ -f $ROOT/common/dist/stack-cli.js ]] || { log "$ROOT/common/dist/stack-cli.js is missing: run make build, or pass --image"; exit 2; }
  (cd "$ROOT" && sh -c "$pick" stack-cli "${args[@]}") <"$list" >"$tmp"
fi
# Both files replaced by rename: a container re-reading the list (SIGHUP) never sees half a file.
cp "$list" "$out/cameras/.$name.new"
chmod 644 "$out/cameras/.$name.new" "$tmp"
mv -f "$out/cameras/.$name.new" "$out/cameras/$name"
mv -f "$tmp" "$out/compose.yml"
log "$list -> $out/compose.yml ($(grep -c -E -- '- \$\{(RELAY|INGEST)_BIND' "$out/compose.yml") published camera ports)"
