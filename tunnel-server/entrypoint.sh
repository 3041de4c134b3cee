#!/usr/bin/env bash
# camrelay tunnel-server entrypoint.
#
#   entrypoint.sh            prepare host key + authorized_keys, render sshd_config, check it with
#                            `sshd -t`, print the host key fingerprint, then exec sshd -D -e as the
#                            tunnel user (never as root; see "Why sshd does not run as root" below).
#   entrypoint.sh render     print the rendered sshd_config to stdout (needs SSHD_HOST_KEY_FILE,
#                            SSHD_AUTHORIZED_KEYS_FILE, SSHD_PID_FILE); used by the tests as well.
#
# Environment (defaults in brackets). Invalid values exit 2 naming the variable, the value and what
# is allowed.
#   TUNNEL_USER                  [tunnel]    the one account allowed to log in
#   TUNNEL_PERMIT_LISTEN_PORTS   [1234,9101] ports the account may bind with -R (camera, agent metrics)
#   SSHD_PORT                    [2222]      port sshd listens on inside the container
#   SSHD_LISTEN_ADDRESS          [0.0.0.0]   address sshd listens on
#   SSHD_CLIENT_ALIVE_INTERVAL   [10]        seconds between probes of an idle client
#   SSHD_CLIENT_ALIVE_COUNT_MAX  [3]         unanswered probes before the session (and its port) is dropped
#   SSHD_LOG_LEVEL               [INFO]      QUIET FATAL ERROR INFO VERBOSE DEBUG
#   AUTHORIZED_KEYS_SOURCE       [/run/secrets/tunnel_authorized_keys] mounted file with the client key(s)
#   HOST_KEY_SOURCE              [/run/secrets/tunnel_host_key] optional mounted ed25519 host key
#                                (from `make keys`); when absent one is generated once in the state dir
#   TUNNEL_SERVER_STATE_DIR      [/var/lib/tunnel-server]  volume; host key kept in hostkeys/
#   TUNNEL_SERVER_CONF_DIR       [/etc/tunnel-server]      rendered sshd_config + authorized_keys (root-owned)
#   TUNNEL_SERVER_RUN_DIR        [/run/tunnel-server]      pid file, copy of a mounted host key
#   SSHD_CONFIG_TEMPLATE         [sshd_config next to this script]
#
# Why sshd does not run as root: an sshd started by an unprivileged user can only ever authenticate
# that same user, so running it as the tunnel user makes "log in as anyone else" impossible rather
# than merely forbidden by config, and a bug in sshd never yields root. The entrypoint itself starts
# as root only to copy the mounted secrets (which keep the host's ownership) into place with the
# ownership StrictModes wants; it then execs sshd through setpriv with no capabilities, an empty
# bounding set and no_new_privs. sshd listens on 2222 (no privileged port needed); publish it as 22.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

TUNNEL_USER=${TUNNEL_USER:-tunnel}
TUNNEL_PERMIT_LISTEN_PORTS=${TUNNEL_PERMIT_LISTEN_PORTS:-1234,9101}
SSHD_PORT=${SSHD_PORT:-2222}
SSHD_LISTEN_ADDRESS=${SSHD_LISTEN_ADDRESS:-0.0.0.0}
SSHD_CLIENT_ALIVE_INTERVAL=${SSHD_CLIENT_ALIVE_INTERVAL:-10}
SSHD_CLIENT_ALIVE_COUNT_MAX=${SSHD_CLIENT_ALIVE_COUNT_MAX:-3}
SSHD_LOG_LEVEL=${SSHD_LOG_LEVEL:-INFO}
AUTHORIZED_KEYS_SOURCE=${AUTHORIZED_KEYS_SOURCE:-/run/secrets/tunnel_authorized_keys}
HOST_KEY_SOURCE=${HOST_KEY_SOURCE:-/run/secrets/tunnel_host_key}
TUNNEL_SERVER_STATE_DIR=${TUNNEL_SERVER_STATE_DIR:-/var/lib/tunnel-server}
TUNNEL_SERVER_CONF_DIR=${TUNNEL_SERVER_CONF_DIR:-/etc/tunnel-server}
TUNNEL_SERVER_RUN_DIR=${TUNNEL_SERVER_RUN_DIR:-/run/tunnel-server}
SSHD_CONFIG_TEMPLATE=${SSHD_CONFIG_TEMPLATE:-$SCRIPT_DIR/sshd_config}
SSHD_BIN=${SSHD_BIN:-/usr/sbin/sshd}

log() { printf 'tunnel-server: %s\n' "$*" >&2; }
config_error() { # variable value allowed
  printf 'tunnel-server: config error: %s=%q is invalid; allowed: %s\n' "$1" "$2" "$3" >&2
  exit 2
}

is_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535)); }
is_uint_range() { [[ $1 =~ ^[0-9]{1,6}$ ]] && ((10#$1 >= $2 && 10#$1 <= $3)); }

validate_env() {
  [[ $TUNNEL_USER =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] && [[ $TUNNEL_USER != root ]] ||
    config_error TUNNEL_USER "$TUNNEL_USER" 'a user name ([a-z_][a-z0-9_-]*, at most 32 chars), not root'
  is_port "$SSHD_PORT" || config_error SSHD_PORT "$SSHD_PORT" 'an integer 1..65535'
  [[ $SSHD_LISTEN_ADDRESS =~ ^[0-9A-Za-z.:_-]+$ ]] ||
    config_error SSHD_LISTEN_ADDRESS "$SSHD_LISTEN_ADDRESS" 'an IPv4/IPv6 address or host name'
  is_uint_range "$SSHD_CLIENT_ALIVE_INTERVAL" 1 3600 ||
    config_error SSHD_CLIENT_ALIVE_INTERVAL "$SSHD_CLIENT_ALIVE_INTERVAL" 'an integer 1..3600 (seconds)'
  is_uint_range "$SSHD_CLIENT_ALIVE_COUNT_MAX" 1 100 ||
    config_error SSHD_CLIENT_ALIVE_COUNT_MAX "$SSHD_CLIENT_ALIVE_COUNT_MAX" 'an integer 1..100'
  case $SSHD_LOG_LEVEL in
    QUIET | FATAL | ERROR | INFO | VERBOSE | DEBUG | DEBUG1 | DEBUG2 | DEBUG3) ;;
    *) config_error SSHD_LOG_LEVEL "$SSHD_LOG_LEVEL" 'QUIET, FATAL, ERROR, INFO, VERBOSE, DEBUG, DEBUG1..3' ;;
  esac
  local p ports=()
  for p in ${TUNNEL_PERMIT_LISTEN_PORTS//,/ }; do
    is_port "$p" || config_error TUNNEL_PERMIT_LISTEN_PORTS "$TUNNEL_PERMIT_LISTEN_PORTS" \
      'a comma-separated list of ports 1..65535, e.g. 1234,9101'
    ports+=("$((10#$p))")
  done
  ((${#ports[@]} > 0)) || config_error TUNNEL_PERMIT_LISTEN_PORTS "$TUNNEL_PERMIT_LISTEN_PORTS" \
    'at least one port, e.g. 1234,9101'
  PERMIT_LISTEN="${ports[*]}"
  [[ -r $SSHD_CONFIG_TEMPLATE ]] || config_error SSHD_CONFIG_TEMPLATE "$SSHD_CONFIG_TEMPLATE" 'a readable sshd_config template'
}

# Paths must not contain characters that would change the meaning of an sshd_config line.
check_path() { [[ $2 =~ ^/[A-Za-z0-9._/@+-]+$ ]] || config_error "$1" "$2" 'an absolute path of [A-Za-z0-9._/@+-]'; }

render() {
  check_path SSHD_HOST_KEY_FILE "${SSHD_HOST_KEY_FILE:-}"
  check_path SSHD_AUTHORIZED_KEYS_FILE "${SSHD_AUTHORIZED_KEYS_FILE:-}"
  check_path SSHD_PID_FILE "${SSHD_PID_FILE:-}"
  local out
  out=$(sed \
    -e "s|@PORT@|$SSHD_PORT|g" \
    -e "s|@LISTEN_ADDRESS@|$SSHD_LISTEN_ADDRESS|g" \
    -e "s|@PID_FILE@|$SSHD_PID_FILE|g" \
    -e "s|@HOST_KEY_FILE@|$SSHD_HOST_KEY_FILE|g" \
    -e "s|@AUTHORIZED_KEYS_FILE@|$SSHD_AUTHORIZED_KEYS_FILE|g" \
    -e "s|@LOG_LEVEL@|$SSHD_LOG_LEVEL|g" \
    -e "s|@TUNNEL_USER@|$TUNNEL_USER|g" \
    -e "s|@PERMIT_LISTEN@|$PERMIT_LISTEN|g" \
    -e "s|@CLIENT_ALIVE_INTERVAL@|$SSHD_CLIENT_ALIVE_INTERVAL|g" \
    -e "s|@CLIENT_ALIVE_COUNT_MAX@|$SSHD_CLIENT_ALIVE_COUNT_MAX|g" \
    "$SSHD_CONFIG_TEMPLATE")
  if grep -v '^ *#' <<<"$out" | grep -q '@[A-Z_]*@'; then
    log "template $SSHD_CONFIG_TEMPLATE has an unknown placeholder: $(grep -o '@[A-Z_]*@' <<<"$out" | head -1)"
    exit 2
  fi
  printf '%s\n' "$out"
}

# The host key: a mounted one (from `make keys`) wins; else the one kept in the state volume; else a
# new one generated once into the volume. Prints the path sshd should use.
prepare_host_key() {
  local keydir="$TUNNEL_SERVER_STATE_DIR/hostkeys" key
  if [[ -e $HOST_KEY_SOURCE && ! -f $HOST_KEY_SOURCE ]]; then
    # docker creates an empty directory when a bind-mounted source file is missing
    log "HOST_KEY_SOURCE $HOST_KEY_SOURCE is not a file (a missing secrets/tunnel_host_key?); ignoring it"
  fi
  if [[ -f $HOST_KEY_SOURCE ]]; then
    [[ -r $HOST_KEY_SOURCE ]] || config_error HOST_KEY_SOURCE "$HOST_KEY_SOURCE" 'a readable private key file'
    key="$TUNNEL_SERVER_RUN_DIR/ssh_host_ed25519_key"
    install -m 600 -o "$TUNNEL_USER" -g "$TUNNEL_USER" "$HOST_KEY_SOURCE" "$key"
    log "using the mounted host key $HOST_KEY_SOURCE"
  else
    key="$keydir/ssh_host_ed25519_key"
    install -d -m 700 -o "$TUNNEL_USER" -g "$TUNNEL_USER" "$TUNNEL_SERVER_STATE_DIR" "$keydir"
    if [[ ! -e $key ]]; then
      ssh-keygen -q -t ed25519 -N '' -C "camrelay-tunnel-server" -f "$key" >/dev/null
      log "generated a new host key in $keydir (kept across restarts in the state volume)"
    fi
    chown "$TUNNEL_USER:$TUNNEL_USER" "$key" "$key.pub" 2>/dev/null || chown "$TUNNEL_USER:$TUNNEL_USER" "$key"
    chmod 600 "$key"
  fi
  local pub
  pub=$(ssh-keygen -y -f "$key" 2>/dev/null) || config_error HOST_KEY_SOURCE "$key" 'an unencrypted OpenSSH private key'
  [[ $pub == ssh-ed25519\ * ]] || config_error HOST_KEY_SOURCE "$key" 'an ed25519 key (HostKeyAlgorithms is ssh-ed25519 only)'
  HOST_PUBLIC_KEY=$pub
  SSHD_HOST_KEY_FILE=$key
}

prepare_authorized_keys() {
  [[ -f $AUTHORIZED_KEYS_SOURCE && -r $AUTHORIZED_KEYS_SOURCE ]] ||
    config_error AUTHORIZED_KEYS_SOURCE "$AUTHORIZED_KEYS_SOURCE" 'a readable authorized_keys file (run `make keys`)'
  local dst="$TUNNEL_SERVER_CONF_DIR/authorized_keys" fps
  # Root-owned and read-only for everyone else: StrictModes accepts it, the account cannot change it.
  install -m 644 -o root -g root "$AUTHORIZED_KEYS_SOURCE" "$dst"
  fps=$(ssh-keygen -l -f "$dst" 2>/dev/null) || true
  [[ -n $fps ]] || config_error AUTHORIZED_KEYS_SOURCE "$AUTHORIZED_KEYS_SOURCE" 'a file with at least one public key line'
  while IFS= read -r line; do log "authorized client key: $line"; done <<<"$fps"
  SSHD_AUTHORIZED_KEYS_FILE=$dst
}

# Runs a command as the tunnel user with no capabilities and no way to regain privileges.
as_tunnel_user() {
  setpriv --reuid="$TUNNEL_USER" --regid="$TUNNEL_USER" --init-groups \
    --inh-caps=-all --bounding-set=-all --no-new-privs "$@"
}

start() {
  [[ $(id -u) == 0 ]] || { log "must start as root (it drops to $TUNNEL_USER before sshd starts)"; exit 2; }
  id -u "$TUNNEL_USER" >/dev/null 2>&1 ||
    config_error TUNNEL_USER "$TUNNEL_USER" 'an existing account (the image creates "tunnel")'
  install -d -m 755 -o root -g root "$TUNNEL_SERVER_CONF_DIR"
  install -d -m 755 -o "$TUNNEL_USER" -g "$TUNNEL_USER" "$TUNNEL_SERVER_RUN_DIR"
  prepare_authorized_keys
  prepare_host_key
  SSHD_PID_FILE="$TUNNEL_SERVER_RUN_DIR/sshd.pid"
  local conf="$TUNNEL_SERVER_CONF_DIR/sshd_config"
  render >"$conf.tmp"
  chmod 644 "$conf.tmp"
  mv -f "$conf.tmp" "$conf"
  local err
  if ! err=$(as_tunnel_user "$SSHD_BIN" -t -f "$conf" 2>&1); then
    log "rendered $conf fails sshd -t: $err"
    exit 2
  fi
  local fp
  fp=$(ssh-keygen -l -E sha256 -f <(printf '%s\n' "$HOST_PUBLIC_KEY") | awk '{print $2}')
  log "host key fingerprint: $fp"
  log "put this in the tunnel-agent's .env:  SSH_HOST_KEY=$fp"
  log "or this known_hosts line:  [<vps-address>]:<published-port> $HOST_PUBLIC_KEY"
  log "sshd listening on $SSHD_LISTEN_ADDRESS:$SSHD_PORT for user $TUNNEL_USER; -R allowed on ports: $PERMIT_LISTEN"
  exec setpriv --reuid="$TUNNEL_USER" --regid="$TUNNEL_USER" --init-groups \
    --inh-caps=-all --bounding-set=-all --no-new-privs "$SSHD_BIN" -D -e -f "$conf"
}

validate_env
case "${1:-start}" in
  start | sshd) start ;;
  render)
    : "${SSHD_HOST_KEY_FILE:?render needs SSHD_HOST_KEY_FILE}" "${SSHD_AUTHORIZED_KEYS_FILE:?render needs SSHD_AUTHORIZED_KEYS_FILE}" \
      "${SSHD_PID_FILE:?render needs SSHD_PID_FILE}"
    render
    ;;
  *)
    log "unknown command '$1' (allowed: start, render)"
    exit 2
    ;;
esac
