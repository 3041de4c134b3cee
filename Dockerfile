# camrelay Node daemons: ONE Dockerfile, the build argument WORKSPACE picks the npm workspace.
# Build from the repository root:
#   docker build --build-arg WORKSPACE=relay        --build-arg PORTS="8080 8081 9100" -t camrelay/relay .
#   docker build --build-arg WORKSPACE=tunnel-agent --build-arg PORTS=9101             -t camrelay/tunnel-agent .
#   docker build --build-arg WORKSPACE=fake-camera  --build-arg PORTS=1234             -t camrelay/fake-camera .
# docker-compose.yml passes the same arguments. A new workspace is added here in ONE place (the health
# table below) plus its service in docker-compose.yml.
# Legacy-builder compatible (Compose v1, no BuildKit-only syntax). Base image pinned by tag; without a
# registry, scripts/base-images.sh builds a local stand-in with the same name.
ARG NODE_IMAGE=node:24-trixie-slim

# ---- build: identical for every workspace up to `npm ci`, so those layers are shared by all images
FROM ${NODE_IMAGE} AS build
# python3/make/g++ build ssh2's optional native crypto binding (tunnel-agent) against the image's own
# Node headers (npm_config_nodedir): a binding built for another Node ABI silently falls back to JS crypto.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 make g++ >/dev/null \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
WORKDIR /app
COPY package.json package-lock.json tsconfig.base.json ./
COPY common/package.json common/
COPY fake-camera/package.json fake-camera/
COPY relay/package.json relay/
COPY tunnel-agent/package.json tunnel-agent/
RUN npm ci --no-audit --no-fund
# ---- end of the shared part
ARG WORKSPACE
RUN case "$WORKSPACE" in relay|tunnel-agent|fake-camera) ;; \
      *) echo "build argument WORKSPACE='$WORKSPACE': expected relay, tunnel-agent or fake-camera" >&2; exit 2;; esac
COPY common/tsconfig.json common/
COPY common/src common/src
COPY ${WORKSPACE}/tsconfig.json ${WORKSPACE}/
COPY ${WORKSPACE}/src ${WORKSPACE}/src
RUN npx tsc -b "$WORKSPACE" && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: compiled JS and production dependencies only; the daemon runs as node (uid 1000)
FROM ${NODE_IMAGE}
ARG WORKSPACE
# The ports the workspace listens on (documentation for `docker run -P`; compose lists them itself).
ARG PORTS
ENV NODE_ENV=production WORKSPACE=${WORKSPACE}
# glibc malloc: allocations of 32 KiB and more (Node's 64 KiB socket read buffers among them) get their
# own mappings, given back to the kernel when freed. glibc's default threshold rises to the largest block
# freed, so after a burst (a viewer storm, a 4 MiB oversize frame) freed memory stays in the heap and the
# daemon's memory steps up for good; the soak measured it (docs/soak.md).
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=32768
# V8 heap flags for the workspace's node, from the compose file's build args (relay: a fixed young
# generation, docs/relay.md); empty for the others.
ARG NODE_FLAGS=
ENV CAMRELAY_NODE_FLAGS=${NODE_FLAGS}
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/common/package.json common/
COPY --from=build /app/common/dist common/dist
COPY --from=build /app/${WORKSPACE}/package.json ${WORKSPACE}/
COPY --from=build /app/${WORKSPACE}/dist ${WORKSPACE}/dist
# relay: the snapshot archive volume is mounted here; a fresh named volume takes this owner.
RUN if [ "$WORKSPACE" = relay ]; then mkdir -p /var/lib/camrelay/snapshots && chown node:node /var/lib/camrelay/snapshots; fi
# No `USER node`: the container starts as root only so that scripts/docker-entrypoint.sh can copy the
# mounted secrets (bind mounts keep the host file's owner and mode: a root-owned 0600 key) into a tmpfs
# for node; it then execs the daemon as node with no capabilities. Started as another user it execs
# the daemon directly.
COPY scripts/docker-entrypoint.sh /usr/local/bin/camrelay-entrypoint
RUN chmod 755 /usr/local/bin/camrelay-entrypoint && install -d -m 700 -o node -g node /run/camrelay-secrets
# fake-camera only (the others ignore them): its control endpoint on container loopback answers the
# healthcheck. Never the camera port: like the ESP32 it serves one connection at a time and a probe
# would steal a frame.
ENV FAKE_CAMERA_CONTROL_PORT=9102 FAKE_CAMERA_CONTROL_HOST=127.0.0.1
EXPOSE ${PORTS}
# Health table, one row per workspace: the variable that moves its health endpoint, and its default.
#   relay METRICS_PORT 9100 · tunnel-agent METRICS_PORT 9101 · fake-camera FAKE_CAMERA_CONTROL_PORT 9102
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "const e=process.env,p={relay:e.METRICS_PORT||9100,'tunnel-agent':e.METRICS_PORT||9101,'fake-camera':e.FAKE_CAMERA_CONTROL_PORT||9102}[e.WORKSPACE];fetch('http://127.0.0.1:'+p+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# exec (entrypoint, setpriv, sh -c): node is PID 1 and gets SIGTERM itself.
ENTRYPOINT ["/usr/local/bin/camrelay-entrypoint"]
CMD ["sh", "-c", "exec node $CAMRELAY_NODE_FLAGS \"$WORKSPACE/dist/main.js\""]
