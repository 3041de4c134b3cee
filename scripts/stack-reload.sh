#!/usr/bin/env bash
# `make reload`: apply an edited camera list (CAMERAS_FILE) to the running stack of this machine without
# a restart.
#   1. scripts/stack-config.sh checks the list and writes .camrelay/ again. A bad list stops here with
#      one line naming the key path; the running containers keep the list they have.
#   2. `up -d` for the services running now: Compose recreates only a container whose settings changed,
#      i.e. the relay when a camera's published port was added or removed (Docker cannot publish a port
#      on a running container), the tunnel-server when the permitted tunnel ports changed (the agent
#      reconnects within about a second). A change of anything else (max_fps, public, a LAN address,
#      archive...) recreates nothing.
#   3. SIGHUP to the relay and the tunnel-agent: they re-read the list and apply it camera by camera;
#      unchanged cameras keep running and their viewers stay connected.
# Environment: as for make (COMPOSE, COMPOSE_PROJECT_NAME, CAMERAS_FILE, CAMRELAY_TAG); for the compose
# test: STACK_DIR [.camrelay], COMPOSE_FILE [docker-compose.yml:STACK_DIR/compose.yml], STACK_ANY_HOST_PORT.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

log() { printf 'reload: %s\n' "$*" >&2; }
if [[ -z ${CAMERAS_FILE:-} ]]; then
  log "CAMERAS_FILE is not set (environment or .env): there is no camera list to reload"
  exit 2
fi
if [[ -n ${COMPOSE:-} ]]; then read -r -a compose <<<"$COMPOSE"
elif docker compose version >/dev/null 2>&1; then compose=(docker compose)
else compose=(docker-compose); fi
dir=${STACK_DIR:-.camrelay}
# The compose test runs its own stack: its own files (COMPOSE_FILE), its own directory and host ports.
export COMPOSE_PATH_SEPARATOR=${COMPOSE_PATH_SEPARATOR:-:}
export COMPOSE_FILE=${COMPOSE_FILE:-docker-compose.yml:$dir/compose.yml}
# Compose interpolates every service: fill the value only the other machine needs (see the Makefile).
export SSH_HOST_KEY=${SSH_HOST_KEY:-unused-by-this-command} GRAFANA_ADMIN_PASSWORD=${GRAFANA_ADMIN_PASSWORD:-unused-by-this-command}
tag=${CAMRELAY_TAG:-local}

base=("${compose[@]}" -f docker-compose.yml --profile home --profile vps --profile demo)
mapfile -t running < <("${base[@]}" ps --services --filter status=running 2>/dev/null)
if ((${#running[@]} == 0)); then
  log "no service of project ${COMPOSE_PROJECT_NAME:-camrelay} is running here: start it with make up-home / make up-vps / make demo"
  exit 1
fi
image=
for s in "${running[@]}"; do
  case $s in relay) image=camrelay/relay:$tag ;; tunnel-agent | tunnel-agent-demo) image=${image:-camrelay/tunnel-agent:$tag} ;; esac
done
[[ -n $image ]] || { log "neither the relay nor a tunnel-agent runs here: nothing reads the camera list"; exit 1; }

before=$(cat "$dir/compose.yml" 2>/dev/null || true)
"$ROOT/scripts/stack-config.sh" --image "$image" --out-dir "$dir" ${STACK_ANY_HOST_PORT:+--any-host-port}
if [[ $before != "$(cat "$dir/compose.yml")" ]]; then
  log "published or permitted ports changed: recreating what must change"
fi
# Only the services the camera list reaches (the rest, e.g. Caddy, may have been started with settings
# this shell does not have, such as the demo's HTTPS_PORT).
affected=()
for s in relay tunnel-server tunnel-agent tunnel-agent-demo; do
  [[ " ${running[*]} " == *" $s "* ]] && affected+=("$s")
done
((${#affected[@]} == 0)) || "${compose[@]}" --profile home --profile vps --profile demo up -d --no-build --no-deps "${affected[@]}"
for s in relay tunnel-agent tunnel-agent-demo; do
  if [[ " ${running[*]} " == *" $s "* ]]; then
    "${compose[@]}" --profile home --profile vps --profile demo kill -s HUP "$s" >/dev/null
    log "SIGHUP sent to $s: it re-reads the list (its log says what was added, removed, changed, or why the list was refused)"
  fi
done
