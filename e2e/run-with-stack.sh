#!/usr/bin/env bash
# e2e/run-with-stack.sh CMD [ARGS...]
#
# Brings the e2e stack up (e2e/stack.sh up), exports its environment (LITELLM_URL,
# LITELLM_MASTER_KEY, BAO_BIN, VAULT_BIN), runs CMD, and always takes the stack down again
# afterwards, whether CMD passed, failed or was interrupted. KEEP_STACK=1 leaves it running
# (stop it later with `e2e/stack.sh down`). The exit status is CMD's.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "${KEEP_STACK:-0}" = 1 ]; then
    echo "[run-with-stack] KEEP_STACK=1: leaving the stack up (stop it with e2e/stack.sh down)" >&2
  else
    "$HERE/stack.sh" down || echo "[run-with-stack] e2e/stack.sh down failed" >&2
  fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$HERE/stack.sh" up >/dev/null
eval "$("$HERE/stack.sh" env)"
echo "[run-with-stack] LITELLM_URL=$LITELLM_URL BAO_BIN=$BAO_BIN VAULT_BIN=${VAULT_BIN:-<none>}" >&2
echo "[run-with-stack] running: $*" >&2
"$@"
