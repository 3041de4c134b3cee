#!/usr/bin/env bash
# `make keys`: generates the tunnel's key material into ./secrets (git-ignored; never commit it) and
# prints the host key pin for the tunnel-agent's .env.
#
#   secrets/tunnel_client_key        the tunnel-agent's ed25519 private key (mode 600)   -> home machine
#   secrets/tunnel_client_key.pub    its public key
#   secrets/tunnel_authorized_keys   that public key as an authorized_keys line           -> VPS
#   secrets/tunnel_host_key          the tunnel-server's ed25519 HOST key (mode 600)      -> VPS
#   secrets/tunnel_host_key.pub      its public key (the pin)
#   secrets/tunnel_known_hosts       a known_hosts line for SSH_HOST:SSH_PORT (only when SSH_HOST is known)
#
# Generating the host key here (instead of letting the server make one on first start) means the pin is
# known before the server ever runs. Idempotent: existing keys are kept; FORCE=1 replaces them (key
# rotation: see docs/tunnel.md, "Rotating keys").
#
# Environment: SECRETS_DIR [./secrets]; SSH_HOST / SSH_PORT for the known_hosts line [read from
# $ENV_FILE (.env) when unset; port 2222]; AGENT_UID [1000]: when run as root, the client key is given
# to this uid, the user the tunnel-agent image runs as (`node`), because a compose secret keeps the
# file's host ownership.
set -euo pipefail
cd "$(dirname "$0")/.."

SECRETS_DIR=${SECRETS_DIR:-secrets}
FORCE=${FORCE:-0}
AGENT_UID=${AGENT_UID:-1000}
ENV_FILE=${ENV_FILE:-.env}

die() { printf 'keys: %s\n' "$*" >&2; exit 1; }
command -v ssh-keygen >/dev/null || die "ssh-keygen not found (apt-get install openssh-client)"
[[ $FORCE == 0 || $FORCE == 1 ]] || die "FORCE=$FORCE is invalid; allowed: 0 or 1"
[[ $AGENT_UID =~ ^[0-9]+$ ]] || die "AGENT_UID=$AGENT_UID is invalid; allowed: a numeric uid"

# SSH_HOST / SSH_PORT: the environment wins, else .env (plain KEY=value lines), else unknown / 2222.
env_value() {
  local v=${!1:-}
  if [[ -z $v && -f $ENV_FILE ]]; then
    v=$(sed -n "s/^[[:space:]]*$1=[\"']\{0,1\}\([^\"'#[:space:]]*\).*/\1/p" "$ENV_FILE" | tail -1)
  fi
  printf '%s' "$v"
}
SSH_HOST_VALUE=$(env_value SSH_HOST)
SSH_PORT_VALUE=$(env_value SSH_PORT)
SSH_PORT_VALUE=${SSH_PORT_VALUE:-2222}

umask 077
mkdir -p "$SECRETS_DIR"
chmod 700 "$SECRETS_DIR"

client=$SECRETS_DIR/tunnel_client_key
host=$SECRETS_DIR/tunnel_host_key
authorized=$SECRETS_DIR/tunnel_authorized_keys

# new_key FILE COMMENT: generates an ed25519 key pair unless it exists (or FORCE=1). Prints "new" or "kept".
new_key() {
  if [[ -e $1 && $FORCE != 1 ]]; then
    ssh-keygen -y -f "$1" >/dev/null 2>&1 || die "$1 exists but is not a readable unencrypted private key (FORCE=1 replaces it)"
    echo kept
    return
  fi
  rm -f "$1" "$1.pub"
  ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1" </dev/null >/dev/null
  echo new
}

client_state=$(new_key "$client" "camrelay-tunnel-agent@$(hostname 2>/dev/null || echo home)")
host_state=$(new_key "$host" "camrelay-tunnel-server")
# Re-derive the public halves from the private keys so they can never disagree.
ssh-keygen -y -f "$client" >"$client.pub.tmp" && mv -f "$client.pub.tmp" "$client.pub"
ssh-keygen -y -f "$host" >"$host.pub.tmp" && mv -f "$host.pub.tmp" "$host.pub"
chmod 600 "$client" "$host"
chmod 644 "$client.pub" "$host.pub"

# authorized_keys: `restrict` turns off everything sshd_config might ever allow by mistake (pty, agent,
# X11, user rc, forwarding); `port-forwarding` turns forwarding back on, which sshd_config then limits to
# -R onto the permitted ports.
if [[ $client_state == new || ! -e $authorized || $FORCE == 1 ]]; then
  printf 'restrict,port-forwarding %s\n' "$(cut -d' ' -f1,2 "$client.pub") camrelay-tunnel-agent" >"$authorized.tmp"
  mv -f "$authorized.tmp" "$authorized"
fi
chmod 644 "$authorized"

if [[ $(id -u) == 0 && $AGENT_UID != 0 ]]; then
  chown "$AGENT_UID" "$client"
fi

fp=$(ssh-keygen -l -E sha256 -f "$host.pub" | awk '{print $2}')
pub=$(cut -d' ' -f1,2 "$host.pub")
if [[ $SSH_PORT_VALUE == 22 ]]; then hostpat=$SSH_HOST_VALUE; else hostpat="[$SSH_HOST_VALUE]:$SSH_PORT_VALUE"; fi
if [[ -n $SSH_HOST_VALUE ]]; then
  printf '%s %s\n' "$hostpat" "$pub" >"$SECRETS_DIR/tunnel_known_hosts"
  chmod 644 "$SECRETS_DIR/tunnel_known_hosts"
fi

cat <<EOF
Tunnel keys in $SECRETS_DIR/ (client key: $client_state, host key: $host_state):
  $client            tunnel-agent private key  -> copy to the home machine (./secrets/)
  $authorized   authorized_keys           -> copy to the VPS (./secrets/)
  $host              tunnel-server host key    -> copy to the VPS (./secrets/)

Host key fingerprint: $fp

Put ONE of these in the tunnel-agent's .env (home machine):
  SSH_HOST_KEY=$fp
  SSH_HOST_KEY=$pub
EOF
if [[ -n $SSH_HOST_VALUE ]]; then
  cat <<EOF
or point SSH_KNOWN_HOSTS_FILE at $SECRETS_DIR/tunnel_known_hosts, which holds:
  $hostpat $pub
EOF
else
  cat <<EOF
or use a known_hosts line (set SSH_HOST in .env and re-run to have it written to $SECRETS_DIR/tunnel_known_hosts):
  [<your-vps>]:$SSH_PORT_VALUE $pub
EOF
fi
