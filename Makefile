# vault-plugin-secrets-litellm: developer and CI entry points. `make help` lists the targets.
#
# Integration tests run against real servers: e2e/run-with-stack.sh brings up LiteLLM (the
# project's harness e2e/litellm/harness.sh, Docker compose where a Docker engine answers, or your
# own via LITELLM_URL + LITELLM_MASTER_KEY) and finds OpenBao/Vault, runs the tests with that
# environment, and always takes down what it started (KEEP_STACK=1 keeps it).
# Engines: ENGINES="vault openbao" by default; a missing one is skipped with a loud SKIPPED line,
# unless REQUIRE_ENGINES names it. `make test` requires OpenBao (REQUIRE_ENGINES defaults to
# "openbao" there), so a run that could not start it fails instead of passing with nothing tested;
# Vault is tested when VAULT_BIN (or `vault` on PATH) gives one, and skipped loudly otherwise.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
BIN := vault-plugin-secrets-litellm
# Unit tests live in the libraries (the plugin and crates/vault-plugin-sdk) and the binary.
UNIT_TARGETS := --workspace --lib --bins
# Integration-test output is not captured, so SKIPPED lines and step timings are visible.
IT_ARGS := -- --nocapture --test-threads=1

.PHONY: help build fmt lint lint-ci unit test e2e e2e-openbao e2e-vault up down status demo bench bench-quick bench-ab soak clean \
	dist dist-plan cross images image-test patch minor major release-dry-run deny repro verify-release

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "; print "Targets:"} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Release build; copies the binary and its sha256 into ./dist
	$(CARGO) build --release
	mkdir -p dist
	cp target/release/$(BIN) dist/
	cd dist && sha256sum $(BIN) > $(BIN).sha256 && cat $(BIN).sha256

fmt: ## Format the code (cargo fmt)
	$(CARGO) fmt --all

lint: ## cargo fmt --check, clippy -D warnings (with and without test features), then lint-ci
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --all-targets --features fault-injection -- -D warnings
	.ci/lint.sh

lint-ci: ## zizmor (workflows, offline), hadolint (Containerfiles), shellcheck (all scripts); tools in .venv
	.ci/lint.sh

deny: ## cargo-deny: licenses, bans, sources and advisories (deny.toml); needs cargo-deny
	@command -v cargo-deny >/dev/null || { echo "deny: cargo-deny not found: cargo install cargo-deny --locked" >&2; exit 1; }
	$(CARGO) deny --locked check $(or $(DENY_CHECKS),advisories licenses bans sources)

unit: ## Unit tests only (no servers needed)
	$(CARGO) test $(UNIT_TARGETS)

test: lint unit ## Lint, unit tests, then all integration tests (tests/*.rs, the SDK's example engine); OpenBao required, Vault if found
	REQUIRE_ENGINES="$${REQUIRE_ENGINES-openbao}" \
	  e2e/run-with-stack.sh bash -c '$(CARGO) test --features fault-injection --test "*" $(IT_ARGS) && \
	  $(CARGO) build -p vault-plugin-sdk --example notes && \
	  $(CARGO) test -p vault-plugin-sdk --test "*" $(IT_ARGS)'

e2e: ## End-to-end lifecycle test (tests/e2e.rs) on every engine in ENGINES
	e2e/run-with-stack.sh $(CARGO) test --test e2e $(IT_ARGS)

e2e-openbao: ## End-to-end test on OpenBao only (fails if OpenBao is missing)
	ENGINES=openbao REQUIRE_ENGINES=openbao e2e/run-with-stack.sh $(CARGO) test --test e2e $(IT_ARGS)

e2e-vault: ## End-to-end test on Vault only (fails if Vault is missing: set VAULT_BIN)
	@if [ -z "$${VAULT_BIN:-}" ] && ! command -v vault >/dev/null; then \
	  echo "e2e-vault: no Vault binary: set VAULT_BIN=/path/to/vault or put vault on PATH" >&2; exit 1; fi
	ENGINES=vault REQUIRE_ENGINES=vault e2e/run-with-stack.sh $(CARGO) test --test e2e $(IT_ARGS)

up: ## Bring the e2e stack up and leave it running (e2e/stack.sh up)
	e2e/stack.sh up

down: ## Stop the demo server and what the e2e stack started (by PID)
	e2e/demo.sh down

status: ## Show the e2e stack (e2e/stack.sh status)
	e2e/stack.sh status

demo: ## Build, start LiteLLM + OpenBao, issue/use/revoke a key; leaves the stack up (make down)
	e2e/demo.sh

bench: ## Benchmarks against real OpenBao + LiteLLM, then the 20-minute soak; writes bench/RESULTS.md (~30 min)
	e2e/run-with-stack.sh sh -c 'python3 bench/bench.py && python3 bench/soak.py'

bench-quick: ## Smaller bench and a 3-minute soak for development (BENCH_MODE=quick); prints the tables, leaves RESULTS.md
	BENCH_MODE=quick e2e/run-with-stack.sh sh -c 'python3 bench/bench.py && python3 bench/soak.py'

soak: ## Only the soak: steady issue/renew/revoke with plugin reloads, LiteLLM restarts, plugin kills (SOAK_MINUTES=20)
	e2e/run-with-stack.sh python3 bench/soak.py

bench-ab: ## Issue path A/B (latency, plugin CPU) against a baseline build: BASE_BIN=<release plugin binary> [NEW_BIN=...]; updates bench/RESULTS.md
	@[ -n "$${BASE_BIN:-}" ] || { echo "bench-ab: set BASE_BIN to a release build of the baseline commit" >&2; exit 2; }
	e2e/run-with-stack.sh python3 bench/ab_issue.py

dist: ## Static musl binaries (amd64, arm64) + .sha256 files + SHA256SUMS into ./dist
	release/dist.sh

repro: ## Build the dist binaries twice (this tree, and a clone in a temp dir: umask/TZ/SOURCE_DATE_EPOCH differ) and compare sha256
	release/repro.sh

verify-release: ## Rebuild tag vV with release/dist.sh and compare with a published SHA256SUMS: V=x.y.z SUMS=file
	@[ -n "$${V:-}" ] && [ -n "$${SUMS:-}" ] || { echo "verify-release: usage: make verify-release V=x.y.z SUMS=path/to/SHA256SUMS" >&2; exit 2; }
	release/verify-release.sh "$$V" "$$SUMS"

dist-plan: ## cargo-dist release plan (needs `dist`, see release/README.md)
	dist plan

cross: ## Build the musl binaries with cross (needs a Docker engine; refuses otherwise)
	release/cross.sh

images: ## Multi-arch bao-litellm and FROM-scratch plugin images with buildah (dist first)
	release/images.sh

image-test: ## Run the amd64 bao-litellm image with podman and issue a real key
	release/image-test.sh

patch: ## Release: bump the patch version, update CHANGELOG, commit and tag (on a clean main)
	release/version.sh patch

minor: ## Release: bump the minor version (see patch)
	release/version.sh minor

major: ## Release: bump the major version (see patch)
	release/version.sh major

release-dry-run: ## Show what `make patch` (BUMP=minor|major) would do; changes nothing
	release/version.sh dry-run $(or $(BUMP),patch)

clean: ## Remove build outputs, ./dist and the e2e state in ./.e2e (the .venv stays)
	$(CARGO) clean
	rm -rf dist .e2e
