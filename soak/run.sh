#!/usr/bin/env bash
# `make soak`: the demo stack (every camera) under steady viewers and a fault a minute, sampled every
# 10 s; writes SOAK.md with figures, trends, plots and pass/fail per target. See docs/soak.md.
#
#   SOAK_MINUTES=30 (default)   the run; SOAK.md at the repository root, plots in soak/plots/
#   SOAK_MINUTES < 30           a short run: reports/soak/SOAK.md (never the committed SOAK.md)
#   SOAK_REPORT_ONLY=1          run nothing: re-render the report from the last results
#   KEEP_STACK=1                leave the stack running afterwards (for debugging)
# Every other knob (SOAK_FAULT_PERIOD_S, SOAK_FAULTS, ...) is listed in soak/src/config.ts.
#
# The stack is the compose test's (scripts/test-compose.sh: temp dir, fresh keys, every port on
# 127.0.0.1 at a port Docker picks, everything removed on exit, Ctrl-C included) with
# soak/docker-compose.soak.yml on top, in its own project camrelay-soak-<pid>; the harness
# (soak/src/main.ts) runs in place of the compose test's jest run. Usage: soak/run.sh [REPORT.json]
# (default reports/soak.json: {"passed": targets met, "failed": targets missed}).
#
# Root: the silent link cut edits the firewall inside the tunnel-agent container's network namespace
# (nsenter + iptables), and the tunnel-server's memory and fds are read from /proc. Missing tools are
# installed with apt-get (Debian gnuplot-nox draws the plots).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[soak] %s\n' "$*" >&2; }

if [[ ${SOAK_REPORT_ONLY:-0} == 1 ]]; then
  exec node -r ./bench/register.js soak/src/main.ts --report-only
fi
if [[ $(id -u) != 0 ]]; then
  log "run as root (sudo make soak): the link-cut fault uses nsenter + iptables in a container's network namespace"
  exit 1
fi
need=()
for pair in iptables:iptables nsenter:util-linux ip:iproute2 ss:iproute2 gnuplot:gnuplot-nox; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || log "could not install ${need[*]}: the run goes on, and fails what needs them"
fi
# The viewer storm opens hundreds of sockets at once.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Every published port on 127.0.0.1: test-compose.sh binds the others; the push camera's ingest port
# follows INGEST_BIND, which it leaves at the default 0.0.0.0.
export INGEST_BIND=127.0.0.1
export CAMRELAY_STACK_NAME=camrelay-soak
export CAMRELAY_STACK_OVERRIDE=$PWD/soak/docker-compose.soak.yml
export CAMRELAY_STACK_CHECKS=$PWD/soak/checks.sh
exec scripts/test-compose.sh "${1:-reports/soak.json}"
