#!/usr/bin/env bash
# e2e/demo.sh: from a fresh clone, a working LiteLLM secrets engine on loopback.
#
#   make demo        # this script: build, start LiteLLM + OpenBao, register, configure, issue,
#                    # call a model with the key, revoke it, show it rejected; leaves the stack up
#   make down        # (e2e/demo.sh down) stops everything the demo started, by PID
#
# Knobs: DEMO_PORT (8200), and the stack's own (LITELLM_URL/LITELLM_MASTER_KEY to use your proxy).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=$REPO/.e2e/demo
PORT=${DEMO_PORT:-8200}
ADDR=http://127.0.0.1:$PORT
BIN=vault-plugin-secrets-litellm
VERSION=v$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -1)
T0=$(date +%s.%N)

step() { printf '\n\033[1m[demo +%ss] %s\033[0m\n' "$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN{printf "%5.1f", a-b}')" "$*"; }
show() { printf '  $ %s\n' "$*"; "$@"; }

stop_server() {
  if [ -f "$STATE/bao.pid" ] && kill -0 "$(cat "$STATE/bao.pid")" 2>/dev/null; then
    echo "[demo] stopping the demo OpenBao server (process group $(cat "$STATE/bao.pid"))"
    kill -TERM -- "-$(cat "$STATE/bao.pid")" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$(cat "$STATE/bao.pid")" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$(cat "$STATE/bao.pid")" 2>/dev/null || true
  fi
  rm -f "$STATE/bao.pid"
}

if [ "${1:-up}" = down ]; then
  stop_server
  "$REPO/e2e/stack.sh" down
  exit 0
fi

step "building the plugin (release)"
(cd "$REPO" && cargo build --release --quiet)

step "starting LiteLLM + Postgres (first run installs it: ~3 min) and finding OpenBao"
"$REPO/e2e/stack.sh" up >/dev/null
eval "$("$REPO/e2e/stack.sh" env)"
echo "  LiteLLM at $LITELLM_URL, OpenBao binary $BAO_BIN"
PATH="$(dirname "$BAO_BIN"):$PATH"; export PATH

step "starting an OpenBao dev server on $ADDR with the plugin directory $STATE/plugins"
stop_server
rm -rf "$STATE" && mkdir -p "$STATE/plugins"
cp "$REPO/target/release/$BIN" "$STATE/plugins/$BIN"
SHA=$(sha256sum "$STATE/plugins/$BIN" | cut -d' ' -f1)
echo "plugin_directory = \"$STATE/plugins\"" > "$STATE/config.hcl"
# A new session (pid = process group id), so `down` stops the server and its plugins together.
(cd "$STATE" && HOME=$STATE LOG="$STATE/bao.log" python3 -c '
import os, subprocess, sys
log = open(os.environ["LOG"], "w")
p = subprocess.Popen(sys.argv[1:], start_new_session=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
print(p.pid)' "$BAO_BIN" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$PORT" \
  -config="$STATE/config.hcl" >"$STATE/bao.pid")
export BAO_ADDR=$ADDR BAO_TOKEN=root
for _ in $(seq 1 100); do
  kill -0 "$(cat "$STATE/bao.pid")" 2>/dev/null || { cat "$STATE/bao.log"; exit 1; }
  curl -sf -o /dev/null "$ADDR/v1/sys/health" && break
  sleep 0.1
done
curl -sf -o /dev/null "$ADDR/v1/sys/health" || { tail -20 "$STATE/bao.log"; exit 1; }
echo "  OpenBao pid $(cat "$STATE/bao.pid"), log $STATE/bao.log"

step "registering the plugin by sha256 and version, and enabling it"
show bao plugin register -sha256="$SHA" -version="$VERSION" -command="$BIN" secret litellm
show bao secrets enable -path=litellm -plugin-version="$VERSION" litellm

step "configuring the LiteLLM connection (verified against the proxy) and a role"
show bao write litellm/config base_url="$LITELLM_URL" admin_key="$LITELLM_MASTER_KEY"
show bao read litellm/config
show bao write litellm/roles/demo models=gpt-3.5-turbo max_budget=0.5 ttl=1h max_ttl=24h rpm_limit=60

step "issuing a key"
echo "  \$ bao read -format=json litellm/creds/demo"
bao read -format=json litellm/creds/demo | tee "$STATE/creds.json"
KEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"]["key"])' "$STATE/creds.json")
LEASE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lease_id"])' "$STATE/creds.json")

chat() {
  curl -s -w '\n  HTTP %{http_code}\n' "$LITELLM_URL/chat/completions" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' \
    -d "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}" | sed 's/^/  /'
}
step "calling gpt-3.5-turbo with the key (allowed)"
chat gpt-3.5-turbo
step "calling gpt-4o with the key (not in the role: LiteLLM answers 403)"
chat gpt-4o

step "revoking the lease: the key is deleted in LiteLLM"
show bao lease revoke -sync "$LEASE"
chat gpt-3.5-turbo

step "done; the stack is still up"
cat <<EOT

  Try next (in this shell):
    export BAO_ADDR=$ADDR BAO_TOKEN=root PATH="$(dirname "$BAO_BIN"):\$PATH"
    bao read litellm/creds/demo                 # a new key, leased for 1h
    bao lease renew -increment=2h <lease_id>    # extends the key in LiteLLM
    bao lease revoke -prefix litellm/creds/demo # deletes every demo key
    bao write litellm/roles/big models=gpt-4o,claude-mock max_budget=5 tpm_limit=10000
    bao path-help litellm/roles/demo

  Stop everything with:  make down
EOT
