#!/usr/bin/env bash
# Docker HEALTHCHECK for the tunnel-server: healthy when the sshd from the pid file is alive AND a socket
# is listening on SSHD_PORT. Reads /proc only: it never connects to sshd, so it adds no log line, no
# MaxStartups slot and nothing a source-penalty rule could count.
set -u
port=${SSHD_PORT:-2222}
pidfile=${TUNNEL_SERVER_RUN_DIR:-/run/tunnel-server}/sshd.pid
pid=$(cat "$pidfile" 2>/dev/null) || { echo "no pid file $pidfile"; exit 1; }
kill -0 "$pid" 2>/dev/null || { echo "sshd (pid $pid) is not running"; exit 1; }
hex=$(printf '%04X' "$port")
# /proc/net/tcp{,6}: local_address is ADDR:PORT in hex, state 0A is LISTEN
if awk -v p=":$hex" 'NR > 1 && substr($2, length($2) - 4) == p && $4 == "0A" { found = 1 } END { exit !found }' \
  /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
  exit 0
fi
echo "nothing listens on port $port"
exit 1
