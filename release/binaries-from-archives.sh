#!/usr/bin/env bash
# release/binaries-from-archives.sh ARCHIVE_DIR [OUT_DIR]: turns cargo-dist's release archives into
# the bare binaries Vault/OpenBao users need, because dist checksums archives only while the
# plugin catalog wants the sha256 of the binary itself.
#
# From ARCHIVE_DIR/vault-plugin-secrets-litellm-<triple>.tar.xz (+ its .sha256, checked first),
# for triple = x86_64/aarch64-unknown-linux-musl, writes to OUT_DIR (default ./dist):
#   vault-plugin-secrets-litellm_<version>_linux_<arch>           the binary (same bytes as in the archive)
#   vault-plugin-secrets-litellm_<version>_linux_<arch>.sha256    "<hex>  <name>"
#   SHA256SUMS                                                    both binaries
#   linux_<arch>/vault-plugin-secrets-litellm (+ .sha256)         plain-named copy (for image-context.sh)
# For local use after `dist build` (see release/README.md); the release workflow builds its bare
# binaries with release/dist.sh instead. VERSION defaults to Cargo.toml's.
set -euo pipefail
LOG_TAG=binaries
# shellcheck source=release/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 1 ] || { echo "usage: $0 ARCHIVE_DIR [OUT_DIR]" >&2; exit 2; }
ARCHIVE_DIR=$(cd "$1" && pwd)
OUT=${2:-$REPO_ROOT/dist}
VERSION=${VERSION:-$(crate_version)}
read -r -a ARCHES <<< "${ARCHES:-${ALL_ARCHES[*]}}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

names=()
for a in "${ARCHES[@]}"; do
  target=${TARGET_OF_ARCH[$a]}
  archive=$ARCHIVE_DIR/$BIN_NAME-$target.tar.xz
  [ -f "$archive" ] || die "$archive missing"
  if [ -f "$archive.sha256" ]; then
    want=$(awk '{print $1}' "$archive.sha256")
    got=$(sha256sum "$archive" | cut -d' ' -f1)
    [ "$want" = "$got" ] || die "$archive: sha256 $got does not match $archive.sha256 ($want)"
  fi
  mkdir -p "$tmp/$a"
  tar -xJf "$archive" -C "$tmp/$a"
  bin=$(find "$tmp/$a" -type f -name "$BIN_NAME" | head -n 1)
  [ -n "$bin" ] || die "no $BIN_NAME inside $archive"
  name=$(release_binary_name "$VERSION" "$a")
  install -m 0755 "$bin" "$OUT/$name"
  sha256_file "$OUT/$name"
  mkdir -p "$OUT/linux_$a"
  install -m 0755 "$bin" "$OUT/linux_$a/$BIN_NAME"
  sha256_file "$OUT/linux_$a/$BIN_NAME"
  names+=("$name")
  log "$name <- $(basename "$archive"): $(cut -d' ' -f1 "$OUT/$name.sha256")"
done

(cd "$OUT" && for n in "${names[@]}"; do cat "$n.sha256"; done | sort -k2 > SHA256SUMS && sha256sum -c SHA256SUMS >&2)
