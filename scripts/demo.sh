#!/usr/bin/env bash
# `make demo`: the whole system on one machine. The fake camera stands in for the ESP32-CAM, the
# tunnel-agent tunnels to the local tunnel-server over the `vps` network, the relay fetches through the
# tunnel, Prometheus scrapes both sides and Grafana shows them.
#
#   - keys: generated into ./secrets by scripts/keys.sh when missing (kept for later runs);
#   - SSH_HOST_KEY: always the pin of ./secrets/tunnel_host_key (the demo's own server), whatever .env says;
#   - GRAFANA_ADMIN_PASSWORD: from the environment or .env, else generated once into
#     ./secrets/grafana_admin_password (mode 600; the script prints where, never the password itself);
#   - SSH is published on 127.0.0.1 only (SSH_BIND), 8080/8081 on all interfaces as in production.
# Images: compose builds ours and pulls Prometheus/Grafana. On a machine without a registry run
# scripts/base-images.sh first; then (or with CAMRELAY_NO_PULL=1) nothing is pulled, and a Grafana image
# that is not present is left out, with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'demo: %s\n' "$*" >&2; }
# shellcheck source=lib/env.sh
. scripts/lib/env.sh
compose_cmd
COMPOSE=("${COMPOSE_CMD[@]}")
docker info >/dev/null 2>&1 || { log "no Docker engine answers (start it, or scripts/ensure-dockerd.sh)"; exit 1; }
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-camrelay}

if [[ ! -f secrets/tunnel_client_key || ! -f secrets/tunnel_host_key || ! -f secrets/tunnel_authorized_keys ]]; then
  log "no tunnel keys in ./secrets yet: running scripts/keys.sh"
  scripts/keys.sh >/dev/null
fi
SSH_HOST_KEY=$(ssh-keygen -l -E sha256 -f secrets/tunnel_host_key.pub | awk '{print $2}')
export SSH_HOST_KEY

if [[ -z ${GRAFANA_ADMIN_PASSWORD:-} && -z $(env_file_value GRAFANA_ADMIN_PASSWORD) ]]; then
  pw_file=secrets/grafana_admin_password
  if [[ ! -s $pw_file ]]; then
    (umask 077 && od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$pw_file")
    log "generated a Grafana admin password into $pw_file"
  fi
  GRAFANA_ADMIN_PASSWORD=$(cat "$pw_file")
  export GRAFANA_ADMIN_PASSWORD
  pw_hint="the password in $pw_file"
else
  pw_hint="GRAFANA_ADMIN_PASSWORD from your environment / .env"
fi
export SSH_BIND=${SSH_BIND:-127.0.0.1}

no_pull=${CAMRELAY_NO_PULL:-0}
if [[ $(docker image inspect -f '{{index .Config.Labels "org.camrelay.standin"}}' node:24-trixie-slim 2>/dev/null) == true ]]; then
  no_pull=1 # base images are local stand-ins: this machine has no registry
fi
services=(tunnel-server relay caddy prometheus grafana fake-camera fake-camera-flaky fake-camera-push tunnel-agent-demo)
grafana_image=$("${COMPOSE[@]}" --profile demo config 2>/dev/null | sed -n 's/^[[:space:]]*image:[[:space:]]*\(grafana\/grafana:.*\)$/\1/p' | head -1)
if ! docker image inspect "$grafana_image" >/dev/null 2>&1; then
  if [[ $no_pull == 1 ]] || ! docker pull -q "$grafana_image" >/dev/null 2>&1; then
    services=(tunnel-server relay caddy prometheus fake-camera fake-camera-flaky fake-camera-push tunnel-agent-demo)
    log "WITHOUT GRAFANA: image $grafana_image is not available (no registry). Everything else runs."
  fi
fi

# The demo's camera list: front (healthy) and garden (flaky) pulled through ONE tunnel, printer pushing.
# scripts/stack-config.sh turns it into .camrelay/compose.yml (ports, forwards, permitted tunnel ports),
# checked in the relay image just built, exactly as `make up-vps` does with your own list. Viewers come
# in over HTTPS (compose/https.yml): Caddy's local CA for localhost on 8443, plain HTTP on 8081 redirects
# there, no HSTS for localhost (it would stick to every localhost site in the browser).
export CAMERAS_FILE=demo/cameras.yml
export DOMAIN=${DOMAIN:-localhost} HTTPS_PORT=${HTTPS_PORT:-8443} HTTP_REDIRECT_PORT=${HTTP_REDIRECT_PORT:-8081} HSTS_MAX_AGE=${HSTS_MAX_AGE:-0}
log "building: ${services[*]}"
COMPOSE_FILE=docker-compose.yml "${COMPOSE[@]}" --profile demo build
scripts/stack-config.sh --image "camrelay/relay:$(env_or CAMRELAY_TAG local)"
export COMPOSE_PATH_SEPARATOR=: COMPOSE_FILE=docker-compose.yml:.camrelay/compose.yml:compose/https.yml
log "starting: ${services[*]}"
"${COMPOSE[@]}" --profile demo up -d "${services[@]}"

grafana_port=$(env_or GRAFANA_PORT 3000)
# Asked inside the relay's container (its HTTP port is published nowhere; no curl needed on the host).
# The front camera is healthy: its snapshot answers once the tunnel is up (the flaky garden camera
# makes the relay-wide /readyz come and go, which is what it is for).
relay_serves() {
  "${COMPOSE[@]}" --profile demo exec -T relay node -e \
    "fetch('http://127.0.0.1:8081/cam/front/snapshot.jpg').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" >/dev/null 2>&1
}
for _ in $(seq 1 90); do
  if relay_serves; then
    ready=1
    break
  fi
  sleep 1
done
if [[ -z ${ready:-} ]]; then
  log "the relay serves no frame of the front camera after 90 s; see: make logs"
  exit 1
fi
# Caddy's local CA root, for curl --cacert and browsers (Caddy creates it at its first start).
root=/data/caddy/pki/authorities/local/root.crt
for _ in $(seq 1 30); do
  if "${COMPOSE[@]}" --profile demo exec -T caddy cat "$root" >secrets/https-root.crt.tmp 2>/dev/null && [[ -s secrets/https-root.crt.tmp ]]; then
    mv -f secrets/https-root.crt.tmp secrets/https-root.crt
    break
  fi
  sleep 1
done
rm -f secrets/https-root.crt.tmp
[[ -s secrets/https-root.crt ]] || { log "Caddy wrote no local CA root ($root); see: make logs"; exit 1; }
base="https://localhost:$HTTPS_PORT"
cat <<EOF

camrelay demo is up: three fake cameras (demo/cameras.yml) -> ONE tunnel / push -> relay -> HTTPS:
  overview         $base/        (trust secrets/https-root.crt in the browser, or accept the warning)
  one camera       $base/cam/front/   (also garden: flaky, printer: pushing)
  with curl        curl --cacert secrets/https-root.crt $base/cam/front/snapshot.jpg > front.jpg
  one frame        nc localhost 8080 < /dev/null > front.jpg     (raw TCP, no TLS; garden 8082, printer 8083)
  MJPEG            $base/cam/front/stream.mjpg
  reload the list  edit demo/cameras.yml, then: CAMERAS_FILE=demo/cameras.yml make reload
EOF
if [[ " ${services[*]} " == *" grafana "* ]]; then
  echo "  Grafana          http://127.0.0.1:$grafana_port/grafana/  (user admin, $pw_hint)"
else
  echo "  Grafana          not started: image $grafana_image is not available on this machine"
fi
cat <<EOF
  logs / status    make logs    make ps        stop: make down
EOF
