#!/usr/bin/env bash
# release/version.sh: bump the version, move the changelog, commit and tag.
#
#   release/version.sh patch|minor|major     # v0.1.0 -> v0.1.1 | v0.2.0 | v1.0.0
#   release/version.sh X.Y.Z                 # an explicit version (e.g. the very first release)
#   release/version.sh dry-run [patch|minor|major|X.Y.Z]   # default patch; changes nothing
#   release/version.sh --dry-run patch       # same as above
#
# The new version is computed from the latest release tag (the highest vX.Y.Z tag); with no tag
# yet, from the version in Cargo.toml. The script then
#   1. sets [package] version in Cargo.toml and the crate's entry in Cargo.lock (checked with
#      `cargo metadata --locked --offline`, falling back to `cargo update -p <crate> --offline`),
#   2. renames CHANGELOG.md's "## [Unreleased]" section to "## [X.Y.Z] - YYYY-MM-DD" and opens a
#      new empty "## [Unreleased]" above it (compare links at the bottom are updated if present),
#   3. commits the three files ("Release vX.Y.Z") and creates the annotated tag vX.Y.Z.
# It pushes nothing: push with `git push origin main vX.Y.Z`; the tag starts the release workflow.
#
# Refuses to run on a dirty working tree (tracked or untracked changes), on a branch other than
# main (RELEASE_BRANCH), when the tag exists, or when the Unreleased section is missing or empty
# (ALLOW_EMPTY_CHANGELOG=1 allows an empty one).
# RELEASE_DATE=YYYY-MM-DD overrides today's date (for tests).
set -euo pipefail
LOG_TAG=version
# shellcheck source=release/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

DRY_RUN=${DRY_RUN:-0}
BUMP=
for arg in "$@"; do
  case $arg in
    dry-run | --dry-run | -n) DRY_RUN=1 ;;
    patch | minor | major) BUMP=$arg ;;
    v[0-9]*.[0-9]*.[0-9]* | [0-9]*.[0-9]*.[0-9]*) BUMP=${arg#v} ;;
    -h | --help) usage ;;
    *) echo "unknown argument: $arg" >&2; usage ;;
  esac
done
if [ -z "$BUMP" ]; then
  if [ "$DRY_RUN" = 1 ]; then BUMP="patch"; else usage; fi
fi

cd "$REPO_ROOT"
CARGO=${CARGO:-cargo}
RELEASE_BRANCH=${RELEASE_BRANCH:-main}
TODAY=${RELEASE_DATE:-$(date +%F)}
SEMVER_RE='^[0-9]+\.[0-9]+\.[0-9]+$'

# ------------------------------------------------------------------------- preconditions
problems=()
branch=$(git symbolic-ref --quiet --short HEAD || echo "(detached HEAD)")
[ "$branch" = "$RELEASE_BRANCH" ] || problems+=("on branch '$branch', releases are cut from '$RELEASE_BRANCH'")
dirty=$(git status --porcelain)
[ -z "$dirty" ] || problems+=("the working tree is not clean:"$'\n'"$dirty")

# ------------------------------------------------------------------------- versions
cargo_version=$(crate_version)
[[ $cargo_version =~ $SEMVER_RE ]] || die "Cargo.toml version '$cargo_version' is not X.Y.Z"
latest_tag=$(git tag --list 'v[0-9]*.[0-9]*.[0-9]*' | grep -E '^v[0-9]+\.[0-9]+\.[0-9]+$' | sort -V | tail -n 1 || true)
if [ -n "$latest_tag" ]; then
  base=${latest_tag#v}
  base_from="latest tag $latest_tag"
  [ "$base" = "$cargo_version" ] || log "note: Cargo.toml says $cargo_version, the latest tag is $latest_tag; bumping from the tag"
else
  base=$cargo_version
  base_from="Cargo.toml (no vX.Y.Z tag yet)"
fi

IFS=. read -r major minor patch <<< "$base"
case $BUMP in
  patch) new="$major.$minor.$((patch + 1))" ;;
  minor) new="$major.$((minor + 1)).0" ;;
  major) new="$((major + 1)).0.0" ;;
  *)
    [[ $BUMP =~ $SEMVER_RE ]] || die "'$BUMP' is not X.Y.Z"
    new=$BUMP
    if [ -n "$latest_tag" ]; then
      highest=$(printf '%s\n%s\n' "$base" "$new" | sort -V | tail -n 1)
      { [ "$new" != "$base" ] && [ "$highest" = "$new" ]; } || die "$new is not newer than $latest_tag"
    fi
    ;;
esac
tag=v$new
git rev-parse -q --verify "refs/tags/$tag" >/dev/null && problems+=("tag $tag exists already")

# ------------------------------------------------------------------------- changelog
[ -f CHANGELOG.md ] || die "CHANGELOG.md not found"
unreleased_body=$(awk '
  /^## \[Unreleased\]/ { on = 1; next }
  on && /^## \[/ { exit }
  on && /^\[[^]]+\]: / { exit }
  on { print }
' CHANGELOG.md)
grep -q '^## \[Unreleased\]' CHANGELOG.md || problems+=("CHANGELOG.md has no '## [Unreleased]' section")
if ! grep -q '[^[:space:]]' <<< "$unreleased_body" && [ "${ALLOW_EMPTY_CHANGELOG:-0}" != 1 ]; then
  problems+=("CHANGELOG.md's Unreleased section is empty: nothing to release (ALLOW_EMPTY_CHANGELOG=1 to release anyway)")
fi

# Writes the new changelog to stdout.
new_changelog() {
  awk -v ver="$new" -v date="$TODAY" -v tag="$tag" -v prev="${latest_tag}" '
    !done && /^## \[Unreleased\]/ {
      print "## [Unreleased]"; print ""; print "## [" ver "] - " date; done = 1; next
    }
    # Keep a Changelog compare links, if the file has them:
    #   [Unreleased]: https://github.com/o/r/compare/v0.1.0...HEAD
    /^\[Unreleased\]: / && match($0, /compare\/[^.]+(\.[^.]+)*\.\.\.HEAD$/) {
      url = $2; sub(/compare\/.*$/, "", url)
      print "[Unreleased]: " url "compare/" tag "...HEAD"
      if (prev != "") print "[" ver "]: " url "compare/" prev "..." tag
      else print "[" ver "]: " url "releases/tag/" tag
      next
    }
    { print }
  ' CHANGELOG.md
}

# Sets the [package] version in Cargo.toml (stdout).
new_cargo_toml() {
  awk -v ver="$new" '
    /^\[/ { in_pkg = ($0 == "[package]") }
    in_pkg && !done && /^version[[:space:]]*=/ { print "version = \"" ver "\""; done = 1; next }
    { print }
  ' Cargo.toml
}

# Sets this crate's version in Cargo.lock (stdout).
new_cargo_lock() {
  awk -v name="$BIN_NAME" -v ver="$new" '
    /^\[\[package\]\]/ { mine = 0 }
    $0 == "name = \"" name "\"" { mine = 1 }
    mine && /^version = / { print "version = \"" ver "\""; mine = 0; next }
    { print }
  ' Cargo.lock
}

# ------------------------------------------------------------------------- report / act
log "version: $base (from $base_from) -> $new ($BUMP); tag $tag; date $TODAY; branch $branch"

if [ "$DRY_RUN" = 1 ]; then
  for p in "${problems[@]}"; do log "would refuse: $p"; done
  log "dry run: would change Cargo.toml, Cargo.lock and CHANGELOG.md as follows (nothing is written):"
  diff -u --label a/Cargo.toml --label b/Cargo.toml Cargo.toml <(new_cargo_toml) || true
  diff -u --label a/Cargo.lock --label b/Cargo.lock Cargo.lock <(new_cargo_lock) || true
  diff -u --label a/CHANGELOG.md --label b/CHANGELOG.md CHANGELOG.md <(new_changelog) || true
  log "dry run: would then run: git commit -m 'Release $tag' Cargo.toml Cargo.lock CHANGELOG.md && git tag -a $tag -m 'Release $tag'"
  exit 0
fi

if [ ${#problems[@]} -gt 0 ]; then
  for p in "${problems[@]}"; do log "refusing: $p"; done
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
new_cargo_toml > "$tmp/Cargo.toml"
new_cargo_lock > "$tmp/Cargo.lock"
new_changelog > "$tmp/CHANGELOG.md"
cp "$tmp/Cargo.toml" Cargo.toml
cp "$tmp/Cargo.lock" Cargo.lock
cp "$tmp/CHANGELOG.md" CHANGELOG.md

if ! "$CARGO" metadata --locked --offline --format-version 1 >/dev/null 2>"$tmp/metadata.err"; then
  log "Cargo.lock edit not accepted ($(head -n 1 "$tmp/metadata.err")); running cargo update -p $BIN_NAME --offline"
  "$CARGO" update -p "$BIN_NAME" --offline
  "$CARGO" metadata --locked --offline --format-version 1 >/dev/null
fi
[ "$(crate_version)" = "$new" ] || die "Cargo.toml still says $(crate_version)"

git add Cargo.toml Cargo.lock CHANGELOG.md
git commit -q -m "Release $tag" -m "$(printf 'Changes:\n%s' "$unreleased_body")"
git tag -a "$tag" -m "Release $tag"
log "committed $(git rev-parse --short HEAD) and tagged $tag"
git --no-pager show --stat --format='%h %s' HEAD >&2
log "next: git push origin $RELEASE_BRANCH $tag   (the tag starts .github/workflows/release.yml)"
