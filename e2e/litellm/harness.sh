#!/usr/bin/env bash
# e2e/litellm/harness.sh: a real LiteLLM proxy with its Postgres key store, for the project's
# tests, installed from package registries only (PyPI, npm, Debian): no Docker, no GitHub.
#
#   e2e/litellm/harness.sh install              # venv, query-engine stand-in, Prisma client
#   e2e/litellm/harness.sh up                   # install, then start Postgres and the proxy
#   e2e/litellm/harness.sh status               # what runs, and whether it answers
#   e2e/litellm/harness.sh down [proxy|postgres] # stop what runs from $LITELLM_LAB (default: both)
#
# Settings (environment):
#   LITELLM_LAB        state directory (/tmp/vault-plugin-litellm-lab): venv, engine, Postgres
#                      cluster, logs. Everything is reused by the next `up`; delete it to reinstall.
#   LITELLM_PORT       proxy port on 127.0.0.1 (4000)
#   LITELLM_PGPORT     Postgres port on 127.0.0.1 (55432)
#   LITELLM_MASTER_KEY master key (sk-master-test); written into the proxy's copy of the config
#   LITELLM_CONFIG     proxy config (e2e/litellm-config.yaml)
#   PYTHON             interpreter for the venv (python3)
#
# Why it is built like this: LiteLLM keeps its keys in Postgres through prisma-client-py, which
# wants Prisma's native query-engine and schema-engine binaries, downloaded from a host that is
# not a package registry. So:
#   * LiteLLM's own SQL migrations (shipped in litellm-proxy-extras) are applied with psql, with
#     a ledger in Prisma's _prisma_migrations format, and LiteLLM runs with
#     DISABLE_SCHEMA_UPDATE=true: no schema engine is needed;
#   * `prisma generate` runs with PRISMA_QUERY_ENGINE_BINARY / PRISMA_SCHEMA_ENGINE_BINARY set to
#     local stand-ins (the Prisma 5 CLI needs no engine to generate the Python client);
#   * the query engine is engine/query-engine.mjs: a Node HTTP server that runs Prisma's query
#     engine compiled to WebAssembly (npm @prisma/query-engine-wasm) on the pg driver adapter, and
#     speaks to prisma-client-py the protocol of the native binary (see that file).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=${LITELLM_LAB:-/tmp/vault-plugin-litellm-lab}
case $LAB in /*) ;; *) LAB=$PWD/$LAB ;; esac  # the proxy runs from its own directory
PORT=${LITELLM_PORT:-4000}
PGPORT=${LITELLM_PGPORT:-55432}
MASTER_KEY=${LITELLM_MASTER_KEY:-sk-master-test}
CONFIG=${LITELLM_CONFIG:-$HERE/../litellm-config.yaml}
PYTHON=${PYTHON:-python3}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

# LiteLLM 1.106.12 is the release the project is tested against; its code drives prisma-client-py
# 0.11.0 internals (newer prisma-client-py releases break it).
LITELLM_VERSION=1.106.12
PRISMA_PY_VERSION=0.11.0
DB=litellm DB_USER=litellm DB_PASSWORD=litellm

VENV=$LAB/venv
ENGINE=$LAB/engine
PG=$LAB/pg
PROXY=$LAB/proxy
DB_URL="postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PGPORT/$DB"

say() { printf '[litellm-harness] %s\n' "$*" >&2; }
die() { printf '[litellm-harness] ERROR: %s\n' "$*" >&2; exit 1; }
sha() { cat "$@" | sha256sum | cut -c1-16; }

site_packages() { "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

# ------------------------------------------------------------------------------------ install

# The system packages it needs (Debian names). As root with apt-get they are installed, so that a
# fresh Debian/Ubuntu machine needs nothing else; elsewhere the missing ones are named.
check_tools() {
  local missing=()
  [ -x "$PG_BIN/initdb" ] || missing+=(postgresql)
  command -v psql >/dev/null || missing+=(postgresql-client)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  command -v curl >/dev/null || missing+=(curl)
  { command -v runuser && command -v setsid; } >/dev/null || missing+=(util-linux)
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "apt-get install ${missing[*]}"
    apt-get update -q >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
  else
    die "missing system packages (Debian names): ${missing[*]}; Postgres 15 is expected in $PG_BIN (PG_BIN)"
  fi
}

# The venv is rebuilt only when the pinned dependency set changes (a stamp inside it says which).
install_python() {
  local want; want=$(sha "$HERE/constraints.txt" <("$PYTHON" --version))
  if [ -f "$VENV/.harness-$want" ] && [ -x "$VENV/bin/litellm" ]; then return; fi
  say "installing litellm[proxy]==$LITELLM_VERSION + prisma==$PRISMA_PY_VERSION into $VENV (~2 min)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -c "$HERE/constraints.txt" \
    "litellm[proxy]==$LITELLM_VERSION" "prisma==$PRISMA_PY_VERSION" >&2
  touch "$VENV/.harness-$want"
}

# The Node stand-in: its npm dependencies come from the committed lockfile (npm ci), its code is
# copied on every run so that edits to engine/*.mjs take effect without a reinstall.
install_engine() {
  mkdir -p "$ENGINE/bin"
  local want; want=$(sha "$HERE/engine/package-lock.json")
  if [ ! -f "$ENGINE/node_modules/.harness-$want" ]; then
    say "npm ci (query-engine stand-in dependencies) in $ENGINE"
    cp "$HERE/engine/package.json" "$HERE/engine/package-lock.json" "$ENGINE/"
    (cd "$ENGINE" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >&2)
    touch "$ENGINE/node_modules/.harness-$want"
  fi
  cp "$HERE"/engine/*.mjs "$ENGINE/"
  printf '#!/bin/sh\nexec node "%s/query-engine.mjs" "$@"\n' "$ENGINE" > "$ENGINE/bin/query-engine"
  # Migrations are applied with psql, so nothing may call the schema engine; say so if it happens.
  cat > "$ENGINE/bin/schema-engine" <<'EOF'
#!/bin/sh
[ "$1" = --version ] && { echo "schema-engine-cli none (e2e/litellm/harness.sh applies migrations with psql)"; exit 0; }
echo "schema engine not available here; migrations are applied by e2e/litellm/harness.sh" >&2
exit 1
EOF
  chmod +x "$ENGINE/bin/query-engine" "$ENGINE/bin/schema-engine"
}

# Environment of everything that runs Prisma or LiteLLM.
prisma_env() {
  export PATH="$VENV/bin:$PATH"
  export PRISMA_BINARY_CACHE_DIR=$LAB/prisma-cli         # prisma-client-py npm-installs the CLI here
  export PRISMA_QUERY_ENGINE_BINARY=$ENGINE/bin/query-engine
  export PRISMA_SCHEMA_ENGINE_BINARY=$ENGINE/bin/schema-engine
  export PRISMA_HIDE_UPDATE_MESSAGE=1 CHECKPOINT_DISABLE=1  # the CLI would phone home otherwise
}

# Generates prisma-client-py's client for LiteLLM's schema into the venv (once per schema).
generate_client() {
  prisma_env
  local schema want
  schema=$(site_packages)/litellm/proxy/schema.prisma
  want=$(sha "$schema" <(echo "$PRISMA_PY_VERSION"))
  if [ -f "$VENV/.client-$want" ]; then return; fi
  say "prisma generate (LiteLLM's schema; the Prisma CLI comes from npm)"
  mkdir -p "$LAB/client"
  cp "$schema" "$LAB/client/schema.prisma"
  (cd "$LAB/client" && prisma generate --schema schema.prisma >&2)
  # Compile once now: the generated client is large and LiteLLM imports it at every start.
  "$VENV/bin/python" -m compileall -q "$(site_packages)/prisma" >&2 || true
  touch "$VENV/.client-$want"
}

cmd_install() {
  check_tools
  mkdir -p "$LAB"
  install_python
  install_engine
  generate_client
}

# ------------------------------------------------------------------------------------ Postgres

# Postgres refuses to run as root: as root the cluster belongs to the `postgres` user.
pg_user() { if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_running() { [ -f "$PG/data/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG/data" status >/dev/null 2>&1; }
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres "$@"; }

postgres_up() {
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
  fi
  mkdir -p "$PG"
  chown "$(pg_user)" "$PG"
  as_pg test -w "$PG" || die "user $(pg_user) cannot write $PG: choose a LITELLM_LAB outside private directories"
  if [ ! -f "$PG/data/PG_VERSION" ]; then
    say "creating a throwaway Postgres cluster in $PG/data"
    as_pg "$PG_BIN/initdb" -D "$PG/data" -U postgres --auth=trust -E UTF8 --no-instructions >/dev/null
  fi
  if pg_running; then
    say "Postgres already running ($PG/data)"
  else
    if (exec 3<>"/dev/tcp/127.0.0.1/$PGPORT") 2>/dev/null; then
      die "port $PGPORT is taken by another program: choose another LITELLM_PGPORT"
    fi
    say "starting Postgres on 127.0.0.1:$PGPORT"
    as_pg "$PG_BIN/pg_ctl" -D "$PG/data" -l "$PG/server.log" -w -s \
      -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PG" start ||
      die "Postgres did not start; see $PG/server.log"
  fi
  if [ -z "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" ]; then
    psql_admin -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD'"
  fi
  if [ -z "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
    psql_admin -c "CREATE DATABASE $DB OWNER $DB_USER"
  fi
}

# Applies litellm-proxy-extras' migrations that the ledger does not list yet, in Prisma's order
# (byte-wise by folder name). Each file runs in psql's autocommit mode, as Prisma runs it (some use
# CREATE INDEX CONCURRENTLY), and then gets its row in _prisma_migrations, so a real
# `prisma migrate deploy` would later see it as applied.
migrate() {
  local dir; dir=$(site_packages)/litellm_proxy_extras/migrations
  [ -d "$dir" ] || die "no migrations in $dir"
  local db=(psql -X -q -v ON_ERROR_STOP=1 "$DB_URL")
  PGOPTIONS='--client-min-messages=warning' "${db[@]}" -c '
    CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" VARCHAR(36) PRIMARY KEY NOT NULL,
      "checksum" VARCHAR(64) NOT NULL,
      "finished_at" TIMESTAMPTZ,
      "migration_name" VARCHAR(255) NOT NULL,
      "logs" TEXT,
      "rolled_back_at" TIMESTAMPTZ,
      "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
      "applied_steps_count" INTEGER NOT NULL DEFAULT 0)'
  local applied name n=0
  applied=$("${db[@]}" -tAc 'SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL')
  while IFS= read -r name; do
    [ -f "$dir/$name/migration.sql" ] || continue
    grep -qxF -- "$name" <<<"$applied" && continue
    PGOPTIONS='--client-min-messages=warning' "${db[@]}" -v name="$name" \
      -v sum="$(sha256sum "$dir/$name/migration.sql" | cut -d' ' -f1)" -v t0="$(date -u '+%F %T.%N+00')" \
      -f "$dir/$name/migration.sql" -f - >/dev/null <<'SQL' ||
INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
VALUES (gen_random_uuid()::text, :'sum', :'name', :'t0', now(), 1);
SQL
      die "migration $name failed (to start over: $0 down && rm -rf $PG)"
    n=$((n + 1))
  done < <(find "$dir" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort)
  [ "$n" = 0 ] || say "applied $n LiteLLM migrations"
}

# ------------------------------------------------------------------------------------ proxy

proxy_pid() {
  local pid
  pid=$(cat "$PROXY/litellm.pid" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}
alive() { [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health/liveliness")" = 200 ]; }

proxy_up() {
  local pid
  if pid=$(proxy_pid); then
    say "proxy already started (pid $pid)"
  else
    alive && die "something else answers on 127.0.0.1:$PORT: choose another LITELLM_PORT"
    mkdir -p "$PROXY"
    # The proxy's copy of the config carries the master key it runs with.
    sed "s|^\(  master_key:\).*|\1 $MASTER_KEY|" "$CONFIG" > "$PROXY/config.yaml"
    prisma_env
    say "starting LiteLLM on 127.0.0.1:$PORT (~40 s); log: $PROXY/litellm.log"
    # setsid: the proxy and its query-engine child form their own process group, which `down`
    # stops as a whole.
    (cd "$PROXY" && DATABASE_URL=$DB_URL DISABLE_SCHEMA_UPDATE=true LITELLM_LOCAL_MODEL_COST_MAP=True \
      LITELLM_MASTER_KEY=$MASTER_KEY exec setsid litellm --config config.yaml --host 127.0.0.1 --port "$PORT" \
      </dev/null >"$PROXY/litellm.log" 2>&1) &
    echo $! > "$PROXY/litellm.pid"
  fi
  local i
  for ((i = 0; i < 600; i++)); do
    alive && { say "LiteLLM answers on http://127.0.0.1:$PORT"; return; }
    proxy_pid >/dev/null || { tail -30 "$PROXY/litellm.log" >&2; die "the proxy exited; see $PROXY/litellm.log"; }
    sleep 0.5
  done
  die "LiteLLM did not answer within 300 s; see $PROXY/litellm.log"
}

proxy_down() {
  local pid i
  if pid=$(proxy_pid); then
    say "stopping the proxy (process group $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$PROXY/litellm.pid"
}

postgres_down() {
  if pg_running; then
    say "stopping Postgres ($PG/data)"
    as_pg "$PG_BIN/pg_ctl" -D "$PG/data" -m fast -w -s stop
  fi
}

# ------------------------------------------------------------------------------------ commands

cmd_status() {
  local pid
  if pid=$(proxy_pid); then
    echo "proxy:    pid $pid on 127.0.0.1:$PORT, liveliness $(alive && echo ok || echo 'not answering')"
  else
    echo "proxy:    not running"
  fi
  if pg_running; then
    echo "postgres: running on 127.0.0.1:$PGPORT (pid $(head -1 "$PG/data/postmaster.pid"))"
  else
    echo "postgres: not running"
  fi
  echo "lab:      $LAB"
}

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_install; postgres_up; migrate; proxy_up ;;
  down)
    case "${2:-all}" in
      proxy) proxy_down ;;
      postgres) postgres_down ;;
      all) proxy_down; postgres_down ;;
      *) die "usage: $0 down [proxy|postgres]" ;;
    esac ;;
  status) cmd_status ;;
  *) echo "usage: $0 install|up|down [proxy|postgres]|status" >&2; exit 2 ;;
esac
