#!/usr/bin/env bash
# release/repro.sh: checks that the release binaries are reproducible. Builds them twice with
# release/dist.sh (both arches unless ARCHES says otherwise) and compares the sha256 of each:
#   A: this checkout, its ./target (warm after `make dist`), umask 022, TZ=UTC, SOURCE_DATE_EPOCH
#      as the caller has it (normally unset: setting it reruns aws-lc-sys's C build, and so
#      everything downstream, in a warm target dir)
#   B: a fresh clone of HEAD under a temporary directory (another path, a cold target dir),
#      umask 077, TZ=IST-5:30, SOURCE_DATE_EPOCH = commit time + 1 day
# Fails (exit 1) on any difference, and then keeps both outputs for diffoscope/cmp.
# The tree must be clean (B builds the commit, A the files). Takes two full builds: ~10-20 min on
# 2 cores (B is cold). Environment: ARCHES ("amd64 arm64"), KEEP=1 (keep the temporary clone),
# REPRO_DIR (the temporary directory; default: mktemp -d).
set -euo pipefail
LOG_TAG=repro
# shellcheck source=release/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

[ -z "$(git status --porcelain --untracked-files=no)" ] || die "the tree has uncommitted changes: commit or stash them first"
commit=$(git rev-parse HEAD)
epoch=$(git log -1 --format=%ct "$commit")
WORK=${REPRO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/repro.XXXXXX")}
mkdir -p "$WORK"
ok=0
cleanup() { if [ "$ok" = 1 ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else log "kept $WORK"; fi; }
trap cleanup EXIT
T_ALL=$SECONDS

log "A: $REPO_ROOT at ${commit:0:12} (umask 022, TZ=UTC, SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-unset})"
(umask 022; TZ=UTC DIST_DIR=$WORK/a "$RELEASE_DIR/dist.sh") > "$WORK/a.log" 2>&1 \
  || { tail -n 30 "$WORK/a.log" >&2; die "build A failed (log: $WORK/a.log)"; }

log "B: clone in $WORK/src (umask 077, TZ=IST-5:30, SOURCE_DATE_EPOCH=$((epoch + 86400)), cold target dir)"
git clone --quiet --no-hardlinks --no-checkout "$REPO_ROOT" "$WORK/src"
git -C "$WORK/src" checkout --quiet --detach "$commit"
(
  umask 077
  unset CARGO_TARGET_DIR
  cd "$WORK/src"
  TZ=IST-5:30 SOURCE_DATE_EPOCH=$((epoch + 86400)) DIST_DIR=$WORK/b release/dist.sh
) > "$WORK/b.log" 2>&1 || { tail -n 30 "$WORK/b.log" >&2; die "build B failed (log: $WORK/b.log)"; }

log "SHA256SUMS A:"; sed 's/^/  /' "$WORK/a/SHA256SUMS" >&2
log "SHA256SUMS B:"; sed 's/^/  /' "$WORK/b/SHA256SUMS" >&2
if ! diff -u "$WORK/a/SHA256SUMS" "$WORK/b/SHA256SUMS" >&2; then
  log "binaries differ; compare with: diffoscope $WORK/a/<binary> $WORK/b/<binary>"
  die "NOT reproducible"
fi
ok=1
log "reproducible: $(wc -l < "$WORK/a/SHA256SUMS") binaries identical across both builds ($(elapsed "$T_ALL"))"
