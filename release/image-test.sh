#!/usr/bin/env bash
# release/image-test.sh [IMAGE]: runs the bao-litellm image (default localhost/bao-litellm:<version>-amd64,
# built by release/images.sh) with podman and issues a real key through it against a real LiteLLM.
#
# Scenarios (TESTS, default "dev server oci"):
#   dev     `podman run IMAGE` as documented (dev server, default CMD): the plugin is registered
#           at start-up from the baked-in declarative stanza; enable, configure, issue, use, renew, revoke.
#   server  the documented non-dev config (`server -config=/openbao/config`, Raft storage):
#           init, unseal, then the same engine flow.
#   oci     the FROM-scratch plugin image: pushed to a throw-away local registry (Debian's
#           docker-registry on loopback), downloaded and registered by OpenBao's OCI plugin support
#           (plugin_auto_download) inside the bao-litellm container; then the same engine flow.
# The engine flow checks the issued key in LiteLLM (/key/info, /key/list), calls a model with it,
# renews the lease, revokes it and checks the key is gone (not listed, refused with 401).
#
# Containers use the host network (--network host), so LiteLLM on the host's loopback is reachable
# and the servers listen on free loopback ports. podman runs with runc and lowered ulimits through a
# private CONTAINERS_CONF (crun does not work on this machine type).
#
# Environment: LITELLM_URL (http://127.0.0.1:4000), LITELLM_MASTER_KEY (sk-master-test),
# LITELLM_TEST_MODEL (gpt-3.5-turbo), TESTS, DIST_DIR (./dist), KEEP=1 (keep the work dir),
# NO_INSTALL=1 (do not apt-get install podman runc docker-registry).
set -euo pipefail
LOG_TAG=image-test
# shellcheck source=release/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$REPO_ROOT"
VERSION=$(crate_version)
IMAGE=${1:-localhost/bao-litellm:$VERSION-amd64}
DIST_DIR=${DIST_DIR:-$REPO_ROOT/dist}
PLUGIN_ARCHIVE=$DIST_DIR/images/${BIN_NAME}_v$VERSION.oci.tar
LITELLM_URL=${LITELLM_URL:-http://127.0.0.1:4000}
LITELLM_MASTER_KEY=${LITELLM_MASTER_KEY:-sk-master-test}
MODEL=${LITELLM_TEST_MODEL:-gpt-3.5-turbo}
read -r -a TESTS <<< "${TESTS:-dev server oci}"
T_ALL=$SECONDS

pkgs=(podman runc jq curl)
[[ " ${TESTS[*]} " == *" oci "* ]] && pkgs+=(docker-registry skopeo)
apt_install "${pkgs[@]}"

WORK=$(mktemp -d /tmp/image-test.XXXXXX)
CONTAINERS=()
REGISTRY_PID=
cleanup() {
  local rc=$? c
  for c in "${CONTAINERS[@]}"; do
    podman container exists "$c" 2>/dev/null || continue
    if [ "$rc" != 0 ]; then
      log "--- last log lines of $c"; podman logs --tail 40 "$c" >&2 2>&1 || true
    fi
    podman rm -f "$c" >/dev/null 2>&1 || true
  done
  [ -n "$REGISTRY_PID" ] && kill "$REGISTRY_PID" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
  [ "$rc" = 0 ] || log "FAILED (exit $rc)"
}
trap cleanup EXIT

cat > "$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF=$WORK/containers.conf

podman image exists "$IMAGE" || die "image $IMAGE not found: run release/images.sh first"

# free_port_pair: a loopback port P with P+1 free too (the dev server's cluster port is P+1).
free_port_pair() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    p = random.randint(20000, 29000)
    socks = []
    try:
        for q in (p, p + 1):
            s = socket.socket(); s.bind(("127.0.0.1", q)); socks.append(s)
        print(p); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
}

# ----------------------------------------------------------------------------- LiteLLM
[ "$(http_code "$LITELLM_URL/health/liveliness")" = 200 ] || die "LiteLLM does not answer at $LITELLM_URL (set LITELLM_URL)"
[ "$(http_code -H "Authorization: Bearer $LITELLM_MASTER_KEY" "$LITELLM_URL/key/list?size=1")" = 200 ] \
  || die "LITELLM_MASTER_KEY is not the master key of $LITELLM_URL"
log "LiteLLM at $LITELLM_URL; model $MODEL; image $IMAGE ($(podman image inspect --format '{{.Architecture}}' "$IMAGE"))"

# ----------------------------------------------------------------------------- engine flow
# keys_with_alias ALIAS: how many live keys LiteLLM lists with exactly this alias.
keys_with_alias() {
  curl -s -m 10 -G -H "Authorization: Bearer $LITELLM_MASTER_KEY" "$LITELLM_URL/key/list" \
    --data-urlencode "key_alias=$1" --data-urlencode return_full_object=true | jq '.keys | length'
}

# engine_flow LABEL CONTAINER [podman exec args]: the whole secrets-engine lifecycle through the
# image's own bao CLI (podman exec), checked against LiteLLM's API.
engine_flow() {
  local label=$1 c=$2 t=$SECONDS; shift 2
  local -a bao=(podman exec "$@" "$c" bao)
  local sha_expected info creds key lease alias code body

  info=$("${bao[@]}" plugin info -format=json -version="v$VERSION" secret litellm)
  sha_expected=$(cut -d' ' -f1 "$DIST_DIR/linux_amd64/$BIN_NAME.sha256")
  [ "$(jq -r .sha256 <<< "$info")" = "$sha_expected" ] || die "[$label] catalog sha256 $(jq -r .sha256 <<< "$info") != $sha_expected"
  log "[$label] catalog: litellm $(jq -r .version <<< "$info") sha256 $(jq -r .sha256 <<< "$info" | cut -c1-16)..."

  "${bao[@]}" secrets enable litellm >&2
  "${bao[@]}" write litellm/config base_url="$LITELLM_URL" master_key="$LITELLM_MASTER_KEY" >&2
  "${bao[@]}" write litellm/roles/image-test models="$MODEL" ttl=10m max_ttl=1h >&2
  creds=$("${bao[@]}" read -format=json litellm/creds/image-test)
  key=$(jq -r .data.key <<< "$creds"); lease=$(jq -r .lease_id <<< "$creds"); alias=$(jq -r .data.key_alias <<< "$creds")
  [[ $key == sk-* ]] || die "[$label] no key in creds response"
  log "[$label] issued key ${key:0:6}... alias $alias lease $lease ($(jq -r .lease_duration <<< "$creds")s)"

  body=$(curl -s -m 10 -H "Authorization: Bearer $LITELLM_MASTER_KEY" "$LITELLM_URL/key/info?key=$key")
  [ "$(jq -r '.info.key_alias // empty' <<< "$body")" = "$alias" ] || die "[$label] LiteLLM /key/info does not know the key: $body"
  code=$(http_code -X POST "$LITELLM_URL/chat/completions" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}]}")
  [ "$code" = 200 ] || die "[$label] chat completion with the issued key: HTTP $code"
  log "[$label] LiteLLM knows the key (alias $alias, models $(jq -c .info.models <<< "$body")); chat completion on $MODEL: HTTP 200"

  [ "$(keys_with_alias "$alias")" = 1 ] || die "[$label] /key/list does not list alias $alias"

  "${bao[@]}" lease renew "$lease" >/dev/null
  "${bao[@]}" lease revoke -sync "$lease" >&2
  # /key/info may still answer from LiteLLM's cache; /key/list never lists deleted keys.
  [ "$(keys_with_alias "$alias")" = 0 ] || die "[$label] key $alias still listed by LiteLLM after revoke"
  code=$(http_code -X POST "$LITELLM_URL/chat/completions" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}]}")
  [ "$code" != 200 ] || die "[$label] revoked key still works"
  log "[$label] renewed and revoked; LiteLLM: key no longer listed, chat with it now HTTP $code ($(elapsed "$t"))"
}

# start NAME [podman run args...] -- [command...]: podman run -d on the host network.
start() {
  local name=$1; shift
  podman rm -f "$name" >/dev/null 2>&1 || true
  CONTAINERS+=("$name")
  podman run -d --name "$name" --network host --pull never "$@" >/dev/null
}

# ----------------------------------------------------------------------------- scenarios
test_dev() {
  local t=$SECONDS port name=bao-litellm-test-dev-$$
  port=$(free_port_pair)
  # Exactly the documented `docker run IMAGE` (default CMD), on a free port instead of 8200.
  start "$name" -e "BAO_DEV_LISTEN_ADDRESS=127.0.0.1:$port" -e "BAO_ADDR=http://127.0.0.1:$port" "$IMAGE"
  wait_http "http://127.0.0.1:$port/v1/sys/health" 200 60
  log "[dev] dev server up on 127.0.0.1:$port ($(elapsed "$t")); plugin list: $(podman exec -e BAO_TOKEN=root "$name" bao plugin list secret | grep litellm | tr -s ' ')"
  # The documented `docker exec ... bao secrets enable litellm` needs no token: the dev server
  # stored it in $HOME/.vault-token; the root token is "root" (BAO_DEV_ROOT_TOKEN_ID).
  engine_flow dev "$name"
  podman rm -f "$name" >/dev/null
  log "[dev] passed ($(elapsed "$t"))"
}

test_server() {
  local t=$SECONDS port name=bao-litellm-test-server-$$ init unseal token
  port=$(free_port_pair)
  # The image's server.hcl with the ports moved off 8200/8201 (host network).
  sed -e "s/:8200\"/:$port\"/g" -e "s/:8201\"/:$((port + 1))\"/g" docker/openbao/server.hcl > "$WORK/server.hcl"
  chmod 0644 "$WORK/server.hcl"
  start "$name" -e "BAO_ADDR=http://127.0.0.1:$port" -v "$WORK/server.hcl:/openbao/config/server.hcl:ro" \
    "$IMAGE" server -config=/openbao/config
  wait_http "http://127.0.0.1:$port/v1/sys/health" "501" 60   # up, not initialised
  init=$(podman exec "$name" bao operator init -key-shares=1 -key-threshold=1 -format=json)
  unseal=$(jq -r '.unseal_keys_b64[0]' <<< "$init"); token=$(jq -r .root_token <<< "$init")
  podman exec "$name" bao operator unseal "$unseal" >/dev/null
  wait_http "http://127.0.0.1:$port/v1/sys/health" 200 60
  log "[server] non-dev server initialised and unsealed on 127.0.0.1:$port ($(elapsed "$t"))"
  engine_flow server "$name" -e "BAO_TOKEN=$token"
  podman rm -f "$name" >/dev/null
  log "[server] passed ($(elapsed "$t"))"
}

test_oci() {
  local t=$SECONDS regport port name=bao-litellm-test-oci-$$ sha ref
  [ -f "$PLUGIN_ARCHIVE" ] || die "$PLUGIN_ARCHIVE missing: run release/images.sh first"
  regport=$(free_port_pair)
  mkdir -p "$WORK/registry"
  cat > "$WORK/registry.yml" <<EOF
version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: $WORK/registry } }
http: { addr: 127.0.0.1:$regport }
EOF
  docker-registry serve "$WORK/registry.yml" > "$WORK/registry.log" 2>&1 &
  REGISTRY_PID=$!
  wait_http "http://127.0.0.1:$regport/v2/" 200 30
  ref=127.0.0.1:$regport/$BIN_NAME
  skopeo copy --quiet --all --dest-tls-verify=false "oci-archive:$PLUGIN_ARCHIVE" "docker://$ref:v$VERSION"
  log "[oci] pushed the plugin image (all arches) to a throw-away registry: $ref:v$VERSION"

  sha=$(cut -d' ' -f1 "$DIST_DIR/linux_amd64/$BIN_NAME.sha256")
  mkdir -p "$WORK/oci-plugins"
  chown 100:1000 "$WORK/oci-plugins"
  cat > "$WORK/oci.hcl" <<EOF
plugin_directory     = "/openbao/oci-plugins"
plugin_auto_download = true
plugin_auto_register = true
plugin "secret" "litellm" {
  image     = "$ref"
  version   = "v$VERSION"
  sha256sum = "$sha"
}
EOF
  chmod 0644 "$WORK/oci.hcl"
  port=$(free_port_pair)
  # Only the OCI declaration: the baked-in plugins.hcl is not loaded here.
  start "$name" -e "BAO_DEV_LISTEN_ADDRESS=127.0.0.1:$port" -e "BAO_ADDR=http://127.0.0.1:$port" \
    -v "$WORK/oci.hcl:/openbao/oci.hcl:ro" -v "$WORK/oci-plugins:/openbao/oci-plugins" \
    "$IMAGE" server -dev -config=/openbao/oci.hcl
  wait_http "http://127.0.0.1:$port/v1/sys/health" 200 90
  log "[oci] OpenBao downloaded the plugin: $(cd "$WORK/oci-plugins" && find . -mindepth 1 | sort | paste -sd' ')"
  engine_flow oci "$name"
  podman rm -f "$name" >/dev/null
  log "[oci] passed ($(elapsed "$t"))"
}

for t in "${TESTS[@]}"; do
  case $t in
    dev) test_dev ;;
    server) test_server ;;
    oci) test_oci ;;
    *) die "unknown test '$t' (dev, server, oci)" ;;
  esac
done
log "all passed (${TESTS[*]}) in $(elapsed "$T_ALL")"
