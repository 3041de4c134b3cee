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
# shellcheck source=lib/env.sh
. "$ROOT/scripts/lib/env.sh"
if [[ -z ${CAMERAS_FILE:-} ]]; then
  log "CAMERAS_FILE is not set (environment or .env): there is no camera list to reload"
  exit 2
fi
compose_cmd
compose=("${COMPOSE_CMD[@]}")
dir=${STACK_DIR:-.camrelay}
# The compose test runs its own stack: its own files (COMPOSE_FILE), its own directory and host ports.
export COMPOSE_PATH_SEPARATOR=${COMPOSE_PATH_SEPARATOR:-:}
export COMPOSE_FILE=${COMPOSE_FILE:-docker-compose.yml:$dir/compose.yml:compose/https.yml}
tag=$(env_or CAMRELAY_TAG local)

base=("${compose[@]}" -f docker-compose.yml --profile home --profile vps --profile demo)
mapfile -t running < <(SSH_HOST_KEY=$(env_or SSH_HOST_KEY unused) GRAFANA_ADMIN_PASSWORD=$(env_or GRAFANA_ADMIN_PASSWORD unused) \
  "${base[@]}" ps --services --filter status=running 2>/dev/null)
if ((${#running[@]} == 0)); then
  log "no service of project ${COMPOSE_PROJECT_NAME:-camrelay} is running here: start it with make up-home / make up-vps / make demo"
  exit 1
fi
# Compose interpolates every service, so both required values must be there; the real ones for the
# services this recreates (an agent with a placeholder pin would refuse to start). The demo's agent pins
# the demo's own server, as make demo does, whatever .env says.
if [[ " ${running[*]} " == *" tunnel-agent-demo "* && -z ${SSH_HOST_KEY:-} && -f secrets/tunnel_host_key.pub ]]; then
  SSH_HOST_KEY=$(ssh-keygen -l -E sha256 -f secrets/tunnel_host_key.pub | awk '{print $2}')
fi
SSH_HOST_KEY=$(env_or SSH_HOST_KEY unused-by-this-command)
GRAFANA_ADMIN_PASSWORD=$(env_or GRAFANA_ADMIN_PASSWORD unused-by-this-command)
export SSH_HOST_KEY GRAFANA_ADMIN_PASSWORD CAMRELAY_TAG=$tag
if [[ $SSH_HOST_KEY == unused-by-this-command && ( " ${running[*]} " == *" tunnel-agent "* ) ]]; then
  log "SSH_HOST_KEY is not set (environment or .env): the tunnel-agent needs its pin"
  exit 2
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
