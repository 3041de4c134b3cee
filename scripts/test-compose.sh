#!/usr/bin/env bash
# `make test-compose`: runs the `demo` stack from the REAL Dockerfiles and docker-compose.yml on the
# local Docker engine and checks it from outside the containers, faults included
# (test/compose/stack.test.ts). Usage: scripts/test-compose.sh [REPORT.json]  (default reports/compose.json)
#
#   1. a Docker engine (scripts/ensure-dockerd.sh) and the pinned base images (scripts/base-images.sh
#      builds stand-ins when no registry is reachable);
#   2. a temp dir with fresh keys (scripts/keys.sh), a copy of prometheus/ scraping every 2 s, an empty
#      env file (a developer's .env must not leak into the test);
#   3. a unique compose project: every published port on 127.0.0.1, picked by Docker; short keepalive
#      and ClientAlive windows (test/compose/docker-compose.test.yml + variables below);
#   4. jest -c jest.compose.config.js writes the report; a stack that does not come up is one failure.
# Everything it started (containers, networks, volumes, temp secrets) is removed on exit, failure and
# Ctrl-C included. KEEP_STACK=1 leaves the stack running for debugging (remove it with the printed command).
# Grafana has no package to build a stand-in from: without its image the stack runs WITHOUT Grafana and
# the output says so (the dashboard's queries are still checked against the live Prometheus).
#
# soak/run.sh (`make soak`) runs its own checks on this same stack, through three variables:
#   CAMRELAY_STACK_NAME      project name prefix [camrelay-test]; the project is <prefix>-<pid>
#   CAMRELAY_STACK_OVERRIDE  one more compose file, on top of the others
#   CAMRELAY_STACK_CHECKS    an executable run as `CHECKS REPORT` in place of the jest run
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REPORT=${1:-reports/compose.json}
mkdir -p "$(dirname "$REPORT")"
rm -f "$REPORT"

log() { printf '[test-compose] %s\n' "$*" >&2; }
report_failure() { # message
  log "FAILED: $1"
  printf '{"passed":0,"failed":1}\n' >"$REPORT"
}

if docker compose version >/dev/null 2>&1; then COMPOSE_CMD=(docker compose); else COMPOSE_CMD=(docker-compose); fi
command -v "${COMPOSE_CMD[0]}" >/dev/null || { report_failure "neither 'docker compose' nor docker-compose is installed"; exit 1; }

scripts/ensure-dockerd.sh || { report_failure "no Docker engine"; exit 1; }
t0=$(date +%s)
scripts/base-images.sh || { report_failure "base images"; exit 1; }

export CAMRELAY_TEST_DIR
CAMRELAY_TEST_DIR=$(mktemp -d /tmp/camrelay-compose.XXXXXX)
chmod 755 "$CAMRELAY_TEST_DIR"
export COMPOSE_PROJECT_NAME="${CAMRELAY_STACK_NAME:-camrelay-test}-$$"
# The demo's camera list, copied so the test can edit it (make reload), put into the stack exactly as
# `make demo` does (scripts/stack-config.sh), every camera port on a host port Docker picks.
export STACK_DIR="$CAMRELAY_TEST_DIR/stack" STACK_ANY_HOST_PORT=1 CAMERAS_FILE="$CAMRELAY_TEST_DIR/cameras.yml"
cp demo/cameras.yml "$CAMERAS_FILE"
export COMPOSE_FILE="$ROOT/docker-compose.yml:$STACK_DIR/compose.yml:$ROOT/compose/https.yml:$ROOT/test/compose/docker-compose.test.yml${CAMRELAY_STACK_OVERRIDE:+:$CAMRELAY_STACK_OVERRIDE}"
export COMPOSE_PATH_SEPARATOR=:
: >"$CAMRELAY_TEST_DIR/empty.env"

# A wrapper the jest test calls for every compose command: same files, project, env file, profile.
cat >"$CAMRELAY_TEST_DIR/compose" <<EOF
#!/usr/bin/env bash
exec ${COMPOSE_CMD[*]} --env-file "$CAMRELAY_TEST_DIR/empty.env" --profile demo "\$@"
EOF
chmod 755 "$CAMRELAY_TEST_DIR/compose"
compose() { "$CAMRELAY_TEST_DIR/compose" "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ ${KEEP_STACK:-0} == 1 ]]; then
    local l="--filter label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"
    log "KEEP_STACK=1: stack $COMPOSE_PROJECT_NAME left running (files in $CAMRELAY_TEST_DIR); remove it with:"
    log "  docker rm -f \$(docker ps -aq $l); docker network rm \$(docker network ls -q $l); docker volume rm \$(docker volume ls -q $l); rm -rf $CAMRELAY_TEST_DIR"
    exit "$rc"
  fi
  log "cleaning up project $COMPOSE_PROJECT_NAME"
  compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1
  # Belt and braces: anything labelled with this project that `down` missed.
  local label="label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" ids
  ids=$(docker ps -aq --filter "$label"); [[ -n $ids ]] && docker rm -f $ids >/dev/null 2>&1
  ids=$(docker network ls -q --filter "$label"); [[ -n $ids ]] && docker network rm $ids >/dev/null 2>&1
  ids=$(docker volume ls -q --filter "$label"); [[ -n $ids ]] && docker volume rm -f $ids >/dev/null 2>&1
  rm -rf "$CAMRELAY_TEST_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- keys, Prometheus config, variables
SECRETS_DIR="$CAMRELAY_TEST_DIR/secrets" scripts/keys.sh >/dev/null || { report_failure "scripts/keys.sh"; exit 1; }
SSH_HOST_KEY=$(ssh-keygen -l -E sha256 -f "$CAMRELAY_TEST_DIR/secrets/tunnel_host_key.pub" | awk '{print $2}')
export SSH_HOST_KEY
cp -r prometheus "$CAMRELAY_TEST_DIR/prometheus"
sed -i -E 's/^(  scrape_interval:).*/\1 2s/; s/^(  scrape_timeout:).*/\1 2s/; s/^(  evaluation_interval:).*/\1 2s/' \
  "$CAMRELAY_TEST_DIR/prometheus/prometheus.yml"
chmod -R a+rX "$CAMRELAY_TEST_DIR/prometheus"

export GRAFANA_ADMIN_PASSWORD
GRAFANA_ADMIN_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export RELAY_BIND=127.0.0.1 INGEST_BIND=127.0.0.1 RELAY_HTTP_PORT=0
export SSH_BIND=127.0.0.1 SSH_PUBLISH_PORT=0
export GRAFANA_BIND=127.0.0.1 GRAFANA_PORT=0
export SSH_KEEPALIVE_INTERVAL_MS=2000 SSH_KEEPALIVE_COUNT_MAX=2 RECONNECT_MAX_MS=5000
export SSHD_CLIENT_ALIVE_INTERVAL=2 SSHD_CLIENT_ALIVE_COUNT_MAX=2
export SNAPSHOT_CRON='*/5 * * * * *' SNAPSHOT_KEEP=20
export LOG_LEVEL=info
# HTTPS as `make demo` has it (compose/https.yml, Caddy's local CA for localhost), on free host ports
# (Caddy's port is the same inside and outside), its `edge` network on a prefix of its own so that other
# stacks on this engine cannot clash with it.
export DOMAIN=localhost HTTPS_BIND=127.0.0.1 HTTPS_PORT HTTP_REDIRECT_PORT PROXY_NET_PREFIX
read -r HTTPS_PORT HTTP_REDIRECT_PORT < <(python3 -c 'import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
PROXY_NET_PREFIX="10.213.$((RANDOM % 250 + 1))"
# Private cameras need the viewer password (the sign-in cookie test); ALLOW_CIDRS lets in every address
# but Caddy's own: a request through Caddy is served only because the relay uses the client address
# Caddy forwards.
export VIEWER_PASSWORD ALLOW_CIDRS
VIEWER_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
ALLOW_CIDRS=$(python3 -c 'import ipaddress,sys; print(",".join(str(n) for n in sorted(ipaddress.ip_network("0.0.0.0/0").address_exclude(ipaddress.ip_network(sys.argv[1]+".14/32")))) + ",::/0")' "$PROXY_NET_PREFIX")

scripts/stack-config.sh --out-dir "$STACK_DIR" --any-host-port || { report_failure "scripts/stack-config.sh (the demo camera list)"; exit 1; }

GRAFANA_IMAGE=$(compose config 2>/dev/null | sed -n 's/^[[:space:]]*image:[[:space:]]*\(grafana\/grafana:.*\)$/\1/p' | head -1)
SERVICES=(tunnel-server relay caddy prometheus fake-camera fake-camera-flaky fake-camera-push tunnel-agent-demo)
if [[ -n $GRAFANA_IMAGE ]] && docker image inspect "$GRAFANA_IMAGE" >/dev/null 2>&1; then
  SERVICES+=(grafana)
  export CAMRELAY_TEST_GRAFANA=1
else
  export CAMRELAY_TEST_GRAFANA=0
  log "======================================================================================="
  log "GRAFANA NOT TESTED: image ${GRAFANA_IMAGE:-grafana/grafana} is not available locally and no registry"
  log "can be reached. The stack runs WITHOUT Grafana; every dashboard panel's query is still"
  log "checked against the live Prometheus."
  log "======================================================================================="
fi
export CAMRELAY_TEST_SERVICES="${SERVICES[*]}"

# ---- build and start
log "project $COMPOSE_PROJECT_NAME: building images"
if ! compose build tunnel-server relay fake-camera fake-camera-flaky fake-camera-push tunnel-agent-demo >"$CAMRELAY_TEST_DIR/build.log" 2>&1; then
  tail -40 "$CAMRELAY_TEST_DIR/build.log" >&2
  report_failure "compose build"
  exit 1
fi
log "starting: ${SERVICES[*]}"
if ! compose up -d "${SERVICES[@]}" >"$CAMRELAY_TEST_DIR/up.log" 2>&1; then
  cat "$CAMRELAY_TEST_DIR/up.log" >&2
  compose ps >&2
  compose logs --tail=40 >&2
  report_failure "compose up"
  exit 1
fi
# Caddy's local CA root, as `make demo` exports it: the checks trust it (with the system's CAs).
root=/data/caddy/pki/authorities/local/root.crt
for _ in $(seq 1 30); do
  compose exec -T caddy cat "$root" >"$CAMRELAY_TEST_DIR/https-root.crt" 2>/dev/null && [[ -s $CAMRELAY_TEST_DIR/https-root.crt ]] && break
  sleep 1
done
if [[ ! -s $CAMRELAY_TEST_DIR/https-root.crt ]]; then
  compose logs --tail=40 caddy >&2
  report_failure "Caddy wrote no local CA root"
  exit 1
fi
cat /etc/ssl/certs/ca-certificates.crt "$CAMRELAY_TEST_DIR/https-root.crt" >"$CAMRELAY_TEST_DIR/ca.pem" 2>/dev/null ||
  cp "$CAMRELAY_TEST_DIR/https-root.crt" "$CAMRELAY_TEST_DIR/ca.pem"
export NODE_EXTRA_CA_CERTS="$CAMRELAY_TEST_DIR/ca.pem"
log "stack up after $(($(date +%s) - t0)) s; running checks"

status=0
if [[ -n ${CAMRELAY_STACK_CHECKS:-} ]]; then
  "$CAMRELAY_STACK_CHECKS" "$REPORT" || status=1
else
  node_modules/.bin/jest -c jest.compose.config.js --ci --json --outputFile="$REPORT" || status=1
fi
if [[ ! -s $REPORT ]]; then report_failure "jest wrote no report"; status=1; fi
if [[ $status != 0 ]]; then
  log "checks failed; last log lines of every service:"
  compose ps >&2
  compose logs --no-color --tail=30 >&2
fi
log "done in $(($(date +%s) - t0)) s"
exit $status
