#!/usr/bin/env bash
# release/verify-release.sh VERSION SUMS: rebuilds the tagged release vVERSION with release/dist.sh in
# a fresh clone (under a temporary directory) and compares the sha256 of each binary with the
# published SHA256SUMS file SUMS (lines "<hex>  vault-plugin-secrets-litellm_<VERSION>_linux_<arch>";
# other lines are ignored). Exit 0 only if every binary listed for an arch in ARCHES matches.
#
#   gh release download v0.2.0 --pattern SHA256SUMS
#   make verify-release V=0.2.0 SUMS=SHA256SUMS
#
# A bit-for-bit match needs the same build recipe: release/dist.sh with the toolchain pinned in
# rust-toolchain.toml and the Debian/Ubuntu C compilers it installs (musl-tools,
# gcc-aarch64-linux-gnu). See README.md, "Verifying a release", for what is (and is not) expected
# to match. Environment: ARCHES ("amd64 arm64"), KEEP=1 (keep the clone), TAG (vVERSION).
set -euo pipefail
LOG_TAG=verify-release
# shellcheck source=release/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 2 ] || { echo "usage: $0 VERSION SUMS" >&2; exit 2; }
VERSION=${1#v}
SUMS=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
[ -f "$SUMS" ] || die "$2: no such file"
TAG=${TAG:-v$VERSION}
read -r -a ARCHES <<< "${ARCHES:-${ALL_ARCHES[*]}}"
git -C "$REPO_ROOT" rev-parse --verify --quiet "refs/tags/$TAG^{commit}" >/dev/null \
  || die "tag $TAG not found (git fetch --tags)"
commit=$(git -C "$REPO_ROOT" rev-parse "refs/tags/$TAG^{commit}")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/verify-release.XXXXXX")
cleanup() { if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

log "rebuilding $TAG (${commit:0:12}) in $WORK/src"
git clone --quiet --no-hardlinks --no-checkout "$REPO_ROOT" "$WORK/src"
git -C "$WORK/src" checkout --quiet --detach "$commit"
(
  unset CARGO_TARGET_DIR
  cd "$WORK/src"
  ARCHES="${ARCHES[*]}" DIST_DIR=$WORK/out release/dist.sh
) > "$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log" >&2; KEEP=1; die "build failed (log: $WORK/build.log)"; }

fail=0
for a in "${ARCHES[@]}"; do
  name=$(release_binary_name "$VERSION" "$a")
  want=$(awk -v n="$name" '{ f = $2; sub(/^\*/, "", f) } f == n { print $1; exit }' "$SUMS")
  got=$(cut -d' ' -f1 "$WORK/out/$name.sha256")
  if [ -z "$want" ]; then
    log "$name: not listed in $SUMS"; fail=1
  elif [ "$want" = "$got" ]; then
    log "$name: MATCH $got"
  else
    log "$name: DIFFERS: published $want, rebuilt $got"; fail=1
  fi
done
[ "$fail" = 0 ] || { KEEP=1; die "$TAG does not match $SUMS (rebuilt binaries kept in $WORK/out)"; }
log "$TAG: every binary matches $SUMS"
