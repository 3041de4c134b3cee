#!/usr/bin/env bash
# `make bench` (after `make build`): installs what the benchmarks need when missing (Debian
# openssh-server/-client, autossh, gcc), compiles the C load generator, runs every suite on loopback
# and writes BENCHMARKS.md. Whole run: about 8-9 minutes (the 3 + 30 + 120 s sshd outages are most
# of it); BENCH_QUICK=1 for a ~2-minute smoke run. See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "bench: run as root (sudo make bench): the tunnel benchmarks start a real sshd as a dedicated user, and missing tools are installed with apt-get" >&2
  exit 1
fi
need=()
for pair in /usr/sbin/sshd:openssh-server ssh:openssh-client autossh:autossh gcc:gcc ip:iproute2 unshare:util-linux; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" libc6-dev >/dev/null
fi

mkdir -p bench/build
gcc -O2 -Wall -Wextra -Werror -o bench/build/loadgen bench/loadgen.c

# Hundreds of viewers plus their relay-side sockets: lift the open-file limit for this run.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Every benchmark runs in a private network namespace with its own loopback: hundreds of thousands of
# short connections must not reach the host's connection tracking (nf_conntrack, loaded once Docker
# runs, fills up and then drops packets for every process on the machine), and nothing can collide
# with services on the host's loopback.
exec unshare --net -- bash -c 'ip link set lo up && exec node -r ./bench/register.js bench/src/run.ts'
