# Shell helpers shared by the scripts that run the stack the way the Makefile does (source it).
#
# env_file_value NAME   the value of NAME in .env ($ENV_FILE), read the way Compose reads it: the last
#                       `NAME=` line, `export` and surrounding quotes and blanks (CRLF too) stripped;
#                       empty when there is none
# env_value NAME        the environment's NAME when set and not empty, else env_file_value NAME
# compose_cmd           sets the array COMPOSE_CMD: $COMPOSE when given (the Makefile's), else
#                       `docker compose` (v2) when present, else `docker-compose` (v1)
env_file_value() {
  local file=${ENV_FILE:-.env}
  [[ -f $file ]] || return 0
  sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?$1[[:space:]]*=[[:space:]]*//; T; s/[[:space:]]+\$//; s/^\"(.*)\"\$/\\1/; s/^'(.*)'\$/\\1/; p" "$file" | tail -n 1
}

env_value() {
  if [[ -n ${!1:-} ]]; then printf '%s\n' "${!1}"; else env_file_value "$1"; fi
}

compose_cmd() {
  if [[ -n ${COMPOSE:-} ]]; then read -r -a COMPOSE_CMD <<<"$COMPOSE"
  elif docker compose version >/dev/null 2>&1; then COMPOSE_CMD=(docker compose)
  else COMPOSE_CMD=(docker-compose); fi
}

# env_or NAME DEFAULT   env_value NAME, or DEFAULT when that is empty
env_or() {
  local v
  v=$(env_value "$1")
  printf '%s\n' "${v:-$2}"
}
