#!/usr/bin/env bash
# release/cross.sh [cross build args...]: builds the static release binaries with cross-rs inside
# the container images pinned in Cross.toml, for contributors with a working Docker or Podman
# engine (used by `make cross`). Without arguments: both musl targets, --release --locked.
#
#   release/cross.sh
#   release/cross.sh --target aarch64-unknown-linux-musl
#
# It refuses to run unless a Docker engine answers `docker info`: a docker CLI without a reachable
# daemon is not enough. (Podman users: expose the Podman socket as the Docker one.)
# The toolchain is pinned from rust-toolchain.toml through RUSTUP_TOOLCHAIN, because cross 0.2.5
# can misread `rustup toolchain list` and reinstall/upgrade the host's `stable` toolchain.
# Install cross itself with: cargo install cross --locked --version 0.2.5
# The official release binaries do not use cross: see release/dist.sh and the cargo-dist workflow.
set -euo pipefail
LOG_TAG=cross
# shellcheck source=release/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$REPO_ROOT"
command -v docker >/dev/null 2>&1 || die "docker not found: cross needs a Docker engine. Build the static binaries with release/dist.sh instead."
if ! info_err=$(docker info 2>&1 >/dev/null); then
  die "no Docker engine reachable ('docker info' failed: $(printf '%s' "$info_err" | tail -n 1)).
  cross runs every build inside a container, so it needs a running Docker daemon; a docker CLI
  alone is not enough. Build the same static binaries with release/dist.sh instead."
fi
export CROSS_CONTAINER_ENGINE=docker
command -v cross >/dev/null 2>&1 || die "cross not found: cargo install cross --locked --version 0.2.5"

channel=$(awk -F'"' '/^channel[[:space:]]*=/ { print $2; exit }' rust-toolchain.toml 2>/dev/null || true)
[ -n "$channel" ] || die "no channel in rust-toolchain.toml"
export RUSTUP_TOOLCHAIN=$channel
rustup toolchain list | grep -q "^$channel" || die "toolchain $channel not installed: rustup toolchain install $channel"
default_before=$(rustup default 2>/dev/null || true)

if [ $# -eq 0 ]; then
  set -- --release --locked --target x86_64-unknown-linux-musl
  log "cross build $* (toolchain $channel, images from Cross.toml)"
  cross build "$@"
  set -- --release --locked --target aarch64-unknown-linux-musl
fi
log "cross build $* (toolchain $channel, images from Cross.toml)"
cross build "$@"

default_after=$(rustup default 2>/dev/null || true)
[ "$default_before" = "$default_after" ] || log "WARNING: rustup's default toolchain changed during the build: '$default_before' -> '$default_after'"
log "binaries: target/<target>/release/$BIN_NAME"
