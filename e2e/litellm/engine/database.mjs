// database.mjs: the Prisma query engine compiled to WebAssembly, connected to Postgres through
// the pg driver adapter. Part of the query-engine stand-in (see query-engine.mjs).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import pg from 'pg';
import { PrismaPg } from '@prisma/adapter-pg';
import { bindAdapter } from '@prisma/driver-adapter-utils';

const require = createRequire(import.meta.url);
const { builtins } = pg.types;

// Column types @prisma/adapter-pg 5.17 can map to Prisma's column types (its conversion.ts).
// A result column of any other type (name, regclass, interval, void, timestamptz[], ...) makes
// the adapter fail the whole query, where the native engine returns it; LiteLLM's raw queries
// select some of those. They are handed to the adapter as text (or text[]) instead.
const ADAPTER_OIDS = new Set([
  ...['INT2', 'INT4', 'INT8', 'FLOAT4', 'FLOAT8', 'BOOL', 'DATE', 'TIME', 'TIMETZ', 'TIMESTAMP',
    'TIMESTAMPTZ', 'NUMERIC', 'MONEY', 'JSON', 'JSONB', 'UUID', 'OID', 'BPCHAR', 'TEXT', 'VARCHAR',
    'BIT', 'VARBIT', 'INET', 'CIDR', 'XML', 'BYTEA'].map((name) => builtins[name]),
  1561, 1000, 1001, 1014, 1002, 651, 1182, 1021, 1022, 1041, 1005, 1007, 1016, 3807, 199, 791,
  1231, 1028, 1009, 1115, 1183, 2951, 1563, 1015, 143,
]);
const TEXT = builtins.TEXT;
const TEXT_ARRAY = 1009;
const VOID = 2278;

// Types outside that set that node-postgres would parse into objects: keep their Postgres text
// (arrays as arrays of text), so that they can be passed on as text.
const textArray = pg.types.getTypeParser(TEXT_ARRAY);
for (const oid of [builtins.INTERVAL, builtins.POINT, builtins.CIRCLE]) pg.types.setTypeParser(oid, (s) => s);
for (const oid of [1185 /* timestamptz[] */, 1187 /* interval[] */, 1017 /* point[] */, 1270 /* timetz[] */]) {
  pg.types.setTypeParser(oid, textArray);
}

function asText(v) {
  if (v === null || v === undefined || typeof v === 'string') return v ?? null;
  if (v instanceof Date) return v.toISOString();
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

// Rewrites, in place, the columns of a node-postgres result that the adapter cannot map.
function relabelColumns(result) {
  if (!result || !Array.isArray(result.fields) || !Array.isArray(result.rows)) return result;
  result.fields.forEach((field, i) => {
    if (ADAPTER_OIDS.has(field.dataTypeID) || field.dataTypeID >= 10000) return; // >= 10000: user types, read as text by the adapter
    const wasVoid = field.dataTypeID === VOID;
    const isArray = result.rows.some((row) => Array.isArray(row[i]));
    field.dataTypeID = isArray ? TEXT_ARRAY : TEXT;
    for (const row of result.rows) {
      if (wasVoid) row[i] = null;
      else if (Array.isArray(row[i])) row[i] = row[i].map(asText);
      else row[i] = asText(row[i]);
    }
  });
  return result;
}

// Every query of the adapter goes through Pool#query (which checks out a client with a callback)
// or through a client checked out for a transaction: wrapping the clients' query covers both.
const WRAPPED = Symbol('relabel');
function wrapClient(client) {
  if (client[WRAPPED]) return client;
  client[WRAPPED] = true;
  const query = client.query.bind(client);
  client.query = (...args) => {
    const cb = args.findIndex((a) => typeof a === 'function');
    if (cb >= 0) {
      const done = args[cb];
      args[cb] = (err, res) => done(err, err ? res : relabelColumns(res));
      return query(...args);
    }
    const out = query(...args);
    return out && typeof out.then === 'function' ? out.then(relabelColumns) : out;
  };
  return client;
}

class RelabelingPool extends pg.Pool {
  connect(callback) {
    if (callback) return super.connect((err, client, release) => callback(err, client && wrapClient(client), release));
    return super.connect().then(wrapClient);
  }
}

// node-postgres settings from a Prisma datasource URL (Prisma's own query parameters are not
// libpq's, so they are translated rather than passed through).
export function poolConfig(url) {
  const u = new URL(url);
  const q = u.searchParams;
  const seconds = (name) => (q.has(name) ? Number(q.get(name)) * 1000 : undefined);
  const options = [q.get('options'), q.has('schema') ? `-c search_path=${q.get('schema')}` : null].filter(Boolean);
  const sslmode = q.get('sslmode');
  return {
    host: q.get('host') || decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, '$1') || 'localhost',
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.slice(1)) || 'postgres',
    max: Number(q.get('connection_limit') || 10),
    connectionTimeoutMillis: seconds('connect_timeout') ?? seconds('pool_timeout'),
    query_timeout: seconds('socket_timeout'),
    application_name: q.get('application_name') || undefined,
    options: options.length ? options.join(' ') : undefined,
    ssl: sslmode && !['disable', 'prefer'].includes(sslmode) ? { rejectUnauthorized: sslmode === 'verify-full' } : undefined,
  };
}

// Loads the wasm query engine for Postgres and returns a connected QueryEngine instance.
export async function openEngine({ datamodel, url, logLevel, logQueries, onLog }) {
  const glue = await import('@prisma/query-engine-wasm/postgresql/query_engine_bg.js');
  const module = new WebAssembly.Module(fs.readFileSync(require.resolve('@prisma/query-engine-wasm/postgresql/query_engine_bg.wasm')));
  // The module imports its wasm-bindgen glue under one module name; give it the glue we loaded.
  const imports = Object.fromEntries(WebAssembly.Module.imports(module).map(({ module: name }) => [name, glue]));
  glue.__wbg_set_wasm((await WebAssembly.instantiate(module, imports)).exports);

  const pool = new RelabelingPool(poolConfig(url));
  pool.on('error', (e) => onLog('WARN', `idle Postgres connection failed: ${e.message}`));
  const engine = new glue.QueryEngine({ datamodel, logLevel, logQueries }, (line) => onLog('DEBUG', String(line)), bindAdapter(new PrismaPg(pool)));
  await engine.connect('{}');
  return { engine, pool };
}
