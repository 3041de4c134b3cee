#!/bin/sh
# camrelay Node daemons' entrypoint (relay, tunnel-agent, fake-camera; the root Dockerfile installs it as
# /usr/local/bin/camrelay-entrypoint). POSIX sh.
#
# Why: Compose file secrets (and `docker run -v key:/run/secrets/...`) are bind mounts that keep the host
# file's owner and mode. A key copied with `cp` as root is root:root 0600 on the host, so a daemon running
# as uid 1000 cannot read it (EACCES) and its container restarts forever.
#
# Started as root (the image's default), it:
#   1. copies every regular file in /run/secrets into $CAMRELAY_SECRETS_DIR [/run/camrelay-secrets]
#      (docker-compose.yml mounts a tmpfs there), owner node, mode 0400, the directory 0700 owner node;
#   2. points every *_FILE variable whose value is /run/secrets/<name> at the copy (SSH_PRIVATE_KEY_FILE,
#      VIEWER_TOKEN_FILE, VIEWER_PASSWORD_FILE, ...);
#   3. execs the command as node (uid/gid 1000) through setpriv: no capabilities, empty bounding set,
#      no_new_privs. exec all the way down, so the daemon is PID 1 and gets SIGTERM/SIGHUP itself.
# Started as any other user (`user: "1000:1000"`, Kubernetes runAsUser), it execs the command unchanged:
# a secret that user cannot read is then reported by the daemon itself, naming the file.
# A secret that even root cannot read (rootless Docker, user namespaces), or no writable $DST, leaves
# the secrets where they are, with a warning, for the same reason.
set -eu

SRC=/run/secrets
DST=${CAMRELAY_SECRETS_DIR:-/run/camrelay-secrets}
RUN_AS=node

log() { printf 'camrelay-entrypoint: %s\n' "$*" >&2; }

[ "$#" -gt 0 ] || { log 'no command given'; exit 2; }

if [ "$(id -u)" != 0 ]; then
  exec "$@"
fi

# The copies need a writable directory (a tmpfs: docker-compose.yml mounts one). Without one (a
# read-only root from an older compose file) the secrets stay where they are, with a warning: a key
# already readable by uid 1000 keeps working, any other gives the daemon's own error naming the file.
writable() {
  install -d -m 700 -o "$RUN_AS" -g "$RUN_AS" "$DST" 2>/dev/null &&
    (: >"$DST/.probe") 2>/dev/null && rm -f "$DST/.probe"
}

if [ -d "$SRC" ]; then
  checked=0
  for f in "$SRC"/*; do
    [ -f "$f" ] || continue
    if [ "$checked" = 0 ]; then
      checked=1
      if ! writable; then
        log "cannot write to $DST (read-only root without a tmpfs there?): using $SRC as mounted; mount a tmpfs at $DST (or set CAMRELAY_SECRETS_DIR to a writable tmpfs directory) so that secrets owned by any user work"
        break
      fi
    fi
    name=${f##*/}
    if ! cat "$f" >/dev/null 2>&1; then
      log "cannot read secret $f even as root (rootless Docker, user namespaces?): leaving it in place for the daemon to report"
    elif ! install -m 400 -o "$RUN_AS" -g "$RUN_AS" "$f" "$DST/$name"; then
      log "cannot copy secret $f to $DST: leaving it in place"
      rm -f "$DST/$name"
    fi
  done

  # *_FILE variables pointing into /run/secrets now point at the copies. Names are validated before
  # eval, and only direct children of /run/secrets that were copied are rewritten.
  for var in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*_FILE\)=.*/\1/p'); do
    eval "val=\${$var:-}"
    case $val in
      "$SRC"/*/*) ;;
      "$SRC"/?*)
        name=${val#"$SRC"/}
        if [ -f "$DST/$name" ]; then
          export "$var=$DST/$name"
        fi
        ;;
    esac
  done
fi

exec setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups \
  --inh-caps=-all --bounding-set=-all --no-new-privs "$@"
