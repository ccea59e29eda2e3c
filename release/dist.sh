#!/usr/bin/env bash
# release/dist.sh: static, stripped release binaries for linux/amd64 and linux/arm64 in ./dist.
#
#   release/dist.sh                  # both arches
#   ARCHES=amd64 release/dist.sh     # one arch (amd64 | arm64)
#
# Produces, for VERSION from Cargo.toml:
#   dist/vault-plugin-secrets-litellm_<VERSION>_linux_<arch>          static musl binary, stripped
#   dist/vault-plugin-secrets-litellm_<VERSION>_linux_<arch>.sha256   "<hex>  <name>"
#   dist/linux_<arch>/vault-plugin-secrets-litellm (+ .sha256)          the same bytes, plain name
#   dist/SHA256SUMS                                                     the versioned binaries
# Vault and OpenBao register the sha256 of the *binary*: use the .sha256 files with
# `plugin register -sha256=...` / `sha256sum = "..."`.
#
# The binaries are built with `cargo auditable` (pinned below; installed from crates.io when
# missing), which embeds the dependency list (`cargo audit bin`, `syft`): the GitHub release runs
# this same script, so its binaries and a local build of the tag are byte for byte the same.
#
# Checks: no `ring` in the dependency tree (aws-lc-rs is the only crypto provider); each binary
# is static (readelf: no INTERP program header, no NEEDED entry) and stripped; each reports
# `v<VERSION>` for --version (arm64 under qemu-aarch64-static); `sha256sum -c` passes.
#
# Installs what is missing (Debian/Ubuntu, as root or via sudo; NO_INSTALL=1 fails instead):
# rustup targets x86_64/aarch64-unknown-linux-musl, and musl-tools gcc-aarch64-linux-gnu
# qemu-user-static binutils file. arm64 links with aarch64-linux-gnu-gcc (.cargo/config.toml).
#
# Environment: DIST_DIR (./dist), CARGO_TARGET_DIR (./target; shared builds lock it), CARGO (cargo),
# ARCHES ("amd64 arm64"), NO_INSTALL=1.
set -euo pipefail
LOG_TAG=dist
# shellcheck source=release/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$REPO_ROOT"
CARGO=${CARGO:-cargo}
DIST_DIR=${DIST_DIR:-$REPO_ROOT/dist}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
read -r -a ARCHES <<< "${ARCHES:-${ALL_ARCHES[*]}}"
VERSION=$(crate_version)
[ -n "$VERSION" ] || die "cannot read the version from Cargo.toml"
T_ALL=$SECONDS

for a in "${ARCHES[@]}"; do
  [ -n "${TARGET_OF_ARCH[$a]:-}" ] || die "unknown arch '$a' (use: ${ALL_ARCHES[*]})"
done

# ----------------------------------------------------------------------------------- tools
t=$SECONDS
pkgs=(binutils file)
for a in "${ARCHES[@]}"; do
  case $a in
    amd64) pkgs+=(musl-tools) ;;
    arm64) pkgs+=(gcc-aarch64-linux-gnu qemu-user-static) ;;
  esac
done
apt_install "${pkgs[@]}"

command -v rustup >/dev/null 2>&1 || die "rustup not found: the musl targets are installed with rustup"
installed_targets=$(rustup target list --installed)
for a in "${ARCHES[@]}"; do
  target=${TARGET_OF_ARCH[$a]}
  if ! grep -qx "$target" <<< "$installed_targets"; then
    [ "${NO_INSTALL:-0}" = 1 ] && die "rust target $target missing (NO_INSTALL=1)"
    log "rustup target add $target"
    rustup target add "$target" >&2
  fi
done
CARGO_AUDITABLE_VERSION=0.7.7   # = CARGO_AUDITABLE_VERSION in .github/workflows/release.yml
# (`cargo auditable --version` prints cargo's version: ask cargo what it installed.)
if ! "$CARGO" install --list | grep -qx "cargo-auditable v$CARGO_AUDITABLE_VERSION:"; then
  [ "${NO_INSTALL:-0}" = 1 ] && die "cargo-auditable $CARGO_AUDITABLE_VERSION missing (NO_INSTALL=1)"
  log "cargo install cargo-auditable --locked --version $CARGO_AUDITABLE_VERSION"
  "$CARGO" install cargo-auditable --locked --version "$CARGO_AUDITABLE_VERSION" >&2
fi
log "tools ready ($(elapsed "$t"))"

# ------------------------------------------------------------------------- crypto provider
# Only aws-lc-rs may be compiled in (ring cannot verify the server's P-521 AutoMTLS cert, and two
# providers make rustls's default ambiguous). Normal and build dependencies, every target.
t=$SECONDS
tree_err=$(mktemp)
if ! tree_out=$("$CARGO" tree --locked -i ring --target all -e normal,build 2> "$tree_err"); then
  # Older cargo: "package ID specification `ring` did not match any packages" when ring is absent.
  grep -q 'did not match any packages' "$tree_err" || { cat "$tree_err" >&2; rm -f "$tree_err"; die "cargo tree failed"; }
fi
rm -f "$tree_err"
if [ -n "$tree_out" ]; then
  printf '%s\n' "$tree_out" >&2
  die "ring is in the normal dependency tree (see above): only aws-lc-rs is allowed"
fi
log "cargo tree -i ring --target all -e normal,build: nothing (no ring) ($(elapsed "$t"))"

# ------------------------------------------------------------------------------ build
# Reproducibility: no absolute build paths in the binary (panic locations, debug strings).
# SOURCE_DATE_EPOCH is passed through when set, not defaulted: nothing in these binaries embeds a
# date, and the cc crate reruns aws-lc-sys's C build (~100 s per target) whenever it changes.
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
REMAP="--remap-path-prefix=$REPO_ROOT=/build/$BIN_NAME --remap-path-prefix=$CARGO_HOME_DIR=/cargo"
for a in "${ARCHES[@]}"; do
  target=${TARGET_OF_ARCH[$a]}
  t=$SECONDS
  log "cargo auditable build --release --locked --target $target"
  # Only this target's rustflags change (build scripts and proc-macros stay shared).
  env "CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<< "$target")_RUSTFLAGS=$REMAP" \
    "$CARGO" auditable build --release --locked --target "$target" --bin "$BIN_NAME"
  log "built $target ($(elapsed "$t"))"
done

# ---------------------------------------------------------------- copy, check, checksum
mkdir -p "$DIST_DIR"
rm -f "$DIST_DIR/${BIN_NAME}"_*_linux_* "$DIST_DIR/SHA256SUMS"
strip_tool() { case $1 in amd64) echo strip ;; arm64) echo aarch64-linux-gnu-strip ;; esac; }

for a in "${ARCHES[@]}"; do
  target=${TARGET_OF_ARCH[$a]}
  name=$(release_binary_name "$VERSION" "$a")
  src=$CARGO_TARGET_DIR/$target/release/$BIN_NAME
  out=$DIST_DIR/$name
  [ -x "$src" ] || die "build output missing: $src"
  cp "$src" "$out"
  chmod 0755 "$out"

  info=$(file -b "$out")
  if grep -q 'not stripped' <<< "$info"; then   # the release profile strips; belt and braces
    "$(strip_tool "$a")" "$out"
    info=$(file -b "$out")
  fi
  grep -q 'stripped' <<< "$info" || die "$name: not stripped ($info)"
  readelf -lW "$out" | grep -q 'INTERP' && die "$name: has a program interpreter (dynamically linked)"
  readelf -dW "$out" | grep -q '(NEEDED)' && die "$name: needs shared libraries: $(readelf -dW "$out" | grep NEEDED)"
  case $a in
    amd64) grep -q 'x86-64' <<< "$info" || die "$name: not an x86-64 binary ($info)" ;;
    arm64) grep -q 'aarch64\|ARM aarch64' <<< "$info" || die "$name: not an aarch64 binary ($info)" ;;
  esac

  case $a in
    amd64) reported=$("$out" --version) ;;
    arm64) reported=$(qemu-aarch64-static "$out" --version) ;;
  esac
  [ "$reported" = "$BIN_NAME v$VERSION" ] || die "$name --version printed '$reported', expected '$BIN_NAME v$VERSION'"

  sha256_file "$out"
  mkdir -p "$DIST_DIR/linux_$a"
  cp "$out" "$DIST_DIR/linux_$a/$BIN_NAME"
  sha256_file "$DIST_DIR/linux_$a/$BIN_NAME"
  log "$name: $(stat -c %s "$out") bytes; $info"
  log "$name --version: $reported"
done

(
  cd "$DIST_DIR"
  cat "${BIN_NAME}"_"${VERSION}"_linux_*.sha256 | sort -k2 > SHA256SUMS
  sha256sum -c SHA256SUMS >&2
  for a in "${ARCHES[@]}"; do (cd "linux_$a" && sha256sum -c "$BIN_NAME.sha256" >&2); done
)
log "done in $(elapsed "$T_ALL"):"
(cd "$DIST_DIR" && cat SHA256SUMS)
