#!/usr/bin/env bash
# release/vault-image-test.sh IMAGE: runs the vault-litellm image (docker/vault) with docker and
# issues a real key through it against a real LiteLLM. Needs a Docker engine, so it runs in CI
# (.github/workflows/e2e.yml), not on a machine without one; release/image-test.sh is the
# bao-litellm counterpart.
#
# Scenarios (TESTS, default "dev server mlock-refused mlock-allowed"), one container at a time on
# the host network (ports 8200/8201):
#   dev            the documented `docker run IMAGE` (dev server, -dev-plugin-dir registration)
#   server         the documented non-dev /vault/litellm/server.hcl (disable_mlock = true):
#                  init, unseal, register-litellm, then the engine flow
#   mlock-refused  server.hcl WITHOUT disable_mlock: Vault asks the plugin to mlock
#                  (VAULT_PLUGIN_MLOCK_ENABLED=true), the plugin may not (no CAP_IPC_LOCK, small
#                  RLIMIT_MEMLOCK): the mount fails and Vault logs the plugin's instructions at ERROR
#   mlock-allowed  the same with `--ulimit memlock=-1:-1`: the plugin locks its memory and works
# The engine flow: enable, configure, issue a key, check it in LiteLLM and use it, renew, revoke,
# check LiteLLM no longer lists it.
#
# Environment: LITELLM_URL (http://127.0.0.1:4000), LITELLM_MASTER_KEY (sk-master-test),
# LITELLM_TEST_MODEL (gpt-3.5-turbo), TESTS.
set -euo pipefail
LOG_TAG="vault-image-test"
# shellcheck source=release/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE=${1:?usage: $0 IMAGE}
VERSION=$(crate_version)
LITELLM_URL=${LITELLM_URL:-http://127.0.0.1:4000}
LITELLM_MASTER_KEY=${LITELLM_MASTER_KEY:-sk-master-test}
MODEL=${LITELLM_TEST_MODEL:-gpt-3.5-turbo}
read -r -a TESTS <<< "${TESTS:-dev server mlock-refused mlock-allowed}"
ADDR=http://127.0.0.1:8200
WORK=$(mktemp -d)
NAME=vault-litellm-test-$$

cleanup() {
  local rc=$?
  if [ "$rc" != 0 ] && docker container inspect "$NAME" >/dev/null 2>&1; then
    log "--- last log lines of $NAME"; docker logs --tail 60 "$NAME" >&2 2>&1 || true
  fi
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  docker volume rm -f "vault-image-test-$$" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  [ "$rc" = 0 ] || log "FAILED (exit $rc)"
}
trap cleanup EXIT

start() {  # start [docker run args...] IMAGE [command...]: docker run -d on the host network
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  docker run -d --name "$NAME" --network host "$@" >/dev/null
}

keys_with_alias() {
  curl -s -m 10 -G -H "Authorization: Bearer $LITELLM_MASTER_KEY" "$LITELLM_URL/key/list" \
    --data-urlencode "key_alias=$1" --data-urlencode return_full_object=true | jq '.keys | length'
}

chat() {  # chat KEY: the HTTP status of a one-message completion
  http_code -X POST "$LITELLM_URL/chat/completions" -H "Authorization: Bearer $1" \
    -H 'Content-Type: application/json' \
    -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}]}"
}

# engine_flow LABEL TOKEN: the secrets-engine lifecycle through the image's own vault CLI.
engine_flow() {
  local label=$1 token=$2 creds key lease alias
  local -a vault=(docker exec -e "VAULT_TOKEN=$token" "$NAME" vault)
  "${vault[@]}" plugin list secret | grep -E "^litellm +v$VERSION" >&2 \
    || die "[$label] litellm v$VERSION is not in the catalog"
  "${vault[@]}" secrets enable -plugin-version="v$VERSION" litellm >&2
  "${vault[@]}" write litellm/config base_url="$LITELLM_URL" master_key="$LITELLM_MASTER_KEY" >&2
  "${vault[@]}" write litellm/roles/image-test models="$MODEL" ttl=10m max_ttl=1h >&2
  creds=$("${vault[@]}" read -format=json litellm/creds/image-test)
  key=$(jq -r .data.key <<< "$creds"); lease=$(jq -r .lease_id <<< "$creds")
  alias=$(jq -r .data.key_alias <<< "$creds")
  [[ $key == sk-* ]] || die "[$label] no key in the creds response"
  [ "$(keys_with_alias "$alias")" = 1 ] || die "[$label] LiteLLM does not list alias $alias"
  [ "$(chat "$key")" = 200 ] || die "[$label] chat completion with the issued key failed"
  "${vault[@]}" lease renew "$lease" >/dev/null
  "${vault[@]}" lease revoke -sync "$lease" >&2
  [ "$(keys_with_alias "$alias")" = 0 ] || die "[$label] key $alias still listed after revoke"
  [ "$(chat "$key")" != 200 ] || die "[$label] the revoked key still works"
  log "[$label] issued, used, renewed and revoked a key (alias $alias)"
}

# init_unseal: initialises and unseals the non-dev server; prints the root token and keeps the
# unseal key in $WORK/unseal.key.
init_unseal() {
  local init
  wait_http "$ADDR/v1/sys/health" 501 60
  init=$(docker exec -e "VAULT_ADDR=$ADDR" "$NAME" vault operator init -key-shares=1 -key-threshold=1 -format=json)
  jq -r '.unseal_keys_b64[0]' <<< "$init" > "$WORK/unseal.key"
  unseal
  jq -r .root_token <<< "$init"
}

unseal() {
  docker exec -e "VAULT_ADDR=$ADDR" "$NAME" vault operator unseal "$(cat "$WORK/unseal.key")" >/dev/null
  wait_http "$ADDR/v1/sys/health" 200 60
}

test_dev() {
  start "$IMAGE"
  wait_http "$ADDR/v1/sys/health" 200 60
  engine_flow dev root
}

# server_with CONFIG_FILE [docker run args...]: the non-dev server with this config.
server_with() {
  local config=$1; shift
  chmod 0644 "$config"
  start --cap-add IPC_LOCK -v "$config:/vault/test.hcl:ro" "$@" "$IMAGE" server -config=/vault/test.hcl
}

test_server() {
  local token
  cp "$REPO_ROOT/docker/vault/server.hcl" "$WORK/server.hcl"
  server_with "$WORK/server.hcl"
  token=$(init_unseal)
  docker exec -e "VAULT_TOKEN=$token" "$NAME" register-litellm >&2
  engine_flow server "$token"
}

test_mlock_refused() {
  local token out volume=vault-image-test-$$
  # Registration runs the plugin too (version check), but Vault gives that run no logger; so
  # register with mlock off, then restart the same storage with mlock on and mount.
  docker volume create "$volume" >/dev/null
  cp "$REPO_ROOT/docker/vault/server.hcl" "$WORK/server.hcl"
  server_with "$WORK/server.hcl" -v "$volume:/vault/file"
  token=$(init_unseal)
  docker exec -e "VAULT_TOKEN=$token" "$NAME" register-litellm >&2
  docker rm -f "$NAME" >/dev/null
  sed '/^disable_mlock/d' "$REPO_ROOT/docker/vault/server.hcl" > "$WORK/mlock.hcl"
  server_with "$WORK/mlock.hcl" -v "$volume:/vault/file" --ulimit memlock=65536:65536
  wait_http "$ADDR/v1/sys/health" 503 60
  unseal
  if out=$(docker exec -e "VAULT_TOKEN=$token" "$NAME" vault secrets enable -plugin-version="v$VERSION" litellm 2>&1); then
    docker volume rm -f "$volume" >/dev/null
    die "[mlock-refused] the mount succeeded although the plugin may not lock memory: $out"
  fi
  log "[mlock-refused] the mount failed as expected: $out"
  sleep 1
  if ! docker logs "$NAME" 2>&1 | grep -F '[ERROR]' | grep -F 'mlockall failed' | grep -F 'disable_mlock = true' >&2; then
    docker volume rm -f "$volume" >/dev/null
    die "[mlock-refused] no ERROR line with the plugin's mlock instructions in Vault's log"
  fi
  docker rm -f "$NAME" >/dev/null
  docker volume rm -f "$volume" >/dev/null
  log "[mlock-refused] Vault logged the plugin's instructions at ERROR"
}

test_mlock_allowed() {
  local token
  sed '/^disable_mlock/d' "$REPO_ROOT/docker/vault/server.hcl" > "$WORK/mlock.hcl"
  server_with "$WORK/mlock.hcl" --ulimit memlock=-1:-1
  token=$(init_unseal)
  docker exec -e "VAULT_TOKEN=$token" "$NAME" register-litellm >&2
  engine_flow mlock-allowed "$token"
}

[ "$(http_code "$LITELLM_URL/health/liveliness")" = 200 ] || die "LiteLLM does not answer at $LITELLM_URL"
for t in "${TESTS[@]}"; do
  log "== $t ($IMAGE)"
  case $t in
    dev) test_dev ;;
    server) test_server ;;
    mlock-refused) test_mlock_refused ;;
    mlock-allowed) test_mlock_allowed ;;
    *) die "unknown test '$t' (dev, server, mlock-refused, mlock-allowed)" ;;
  esac
  docker rm -f "$NAME" >/dev/null
done
log "all passed (${TESTS[*]})"
