#!/usr/bin/env node
// query-engine.mjs: a stand-in for Prisma's native `query-engine` binary, for prisma-client-py
// 0.11 (the `prisma` pip package that LiteLLM uses), built only from npm packages.
//
// prisma-client-py starts `<engine> -p PORT --enable-metrics --enable-raw-queries` with the schema
// in PRISMA_DML_PATH (and the database URL in OVERWRITE_DATASOURCES or the schema's env var), and
// talks to it over HTTP:
//   GET  /status                        readiness probe
//   POST /                              a GraphQL-protocol query, or {"batch": [...]}; header
//                                       X-transaction-id runs it inside an interactive transaction
//   POST /transaction/start             {"max_wait", "timeout"} -> {"id"}
//   POST /transaction/<id>/commit|rollback
//   GET  /metrics                       (empty here: the wasm engine keeps no metrics)
// The native binary cannot be downloaded here, so this server runs the same engine release
// compiled to WebAssembly (database.mjs) and translates the protocol (protocol.mjs).
//
// Environment: PRISMA_DML_PATH (or PRISMA_DML, base64), OVERWRITE_DATASOURCES, DATABASE_URL,
// RUST_LOG (debug/trace: engine logs), LOG_QUERIES, QE_TRACE_FILE (see trace()).
import fs from 'node:fs';
import http from 'node:http';

// Prisma engines 5.17.0, the release of @prisma/query-engine-wasm in package.json.
const ENGINE_COMMIT = '393aa359c9ad4a4bb28630fb5613f9c281cde053';

const argv = process.argv.slice(2);
if (argv.includes('--version') || argv.includes('-V')) {
  console.log(`query-engine ${ENGINE_COMMIT}`);
  process.exit(0);
}
function option(short, long, fallback) {
  const i = argv.findIndex((a) => a === short || a === long);
  if (i >= 0 && i + 1 < argv.length) return argv[i + 1];
  const inline = argv.find((a) => a.startsWith(`${long}=`));
  return inline ? inline.slice(long.length + 1) : fallback;
}

const verbose = /debug|trace/i.test(process.env.RUST_LOG || '');
// Log lines in the native engine's RUST_LOG_FORMAT=json shape, which prisma-client-py relays.
function log(level, message) {
  if (level === 'DEBUG' && !verbose) return;
  process.stderr.write(`${JSON.stringify({ timestamp: new Date().toISOString(), level, fields: { message }, target: 'query_engine_standin' })}\n`);
}

// QE_TRACE_FILE=path: append every request, its translation and the engine's answer (debugging).
function trace(what, data) {
  if (process.env.QE_TRACE_FILE) {
    fs.appendFileSync(process.env.QE_TRACE_FILE, `${what}: ${typeof data === 'string' ? data : JSON.stringify(data)}\n`);
  }
}

function readSchema() {
  if (process.env.PRISMA_DML_PATH) return fs.readFileSync(process.env.PRISMA_DML_PATH, 'utf8');
  if (process.env.PRISMA_DML) return Buffer.from(process.env.PRISMA_DML, 'base64').toString('utf8');
  throw new Error('PRISMA_DML_PATH is not set');
}

// The URL the client asked for (OVERWRITE_DATASOURCES), else the schema's datasource url.
function databaseUrl(datamodel) {
  const overrides = process.env.OVERWRITE_DATASOURCES ? JSON.parse(process.env.OVERWRITE_DATASOURCES) : [];
  if (overrides.length && overrides[0].url) return overrides[0].url;
  const url = /datasource\s+\w+\s*\{[^}]*?\burl\s*=\s*(?:env\(\s*"([^"]+)"\s*\)|"([^"]+)")/s.exec(datamodel);
  if (url && url[1]) return process.env[url[1]];
  return (url && url[2]) || process.env.DATABASE_URL;
}

const { openEngine } = await import('./database.mjs');
const { Translator, reshape } = await import('./protocol.mjs');

let datamodel, engine, pool;
try {
  datamodel = readSchema();
  const url = databaseUrl(datamodel);
  if (!url) throw new Error('no database URL (OVERWRITE_DATASOURCES, or the env var the schema names)');
  ({ engine, pool } = await openEngine({
    datamodel, url, logLevel: verbose ? 'debug' : 'error', logQueries: Boolean(process.env.LOG_QUERIES), onLog: log,
  }));
} catch (e) {
  log('ERROR', `cannot start: ${e.message}`);
  process.exit(1);
}
const translator = new Translator(datamodel);

// Errors in the engine's own shape, so that prisma-client-py raises its usual exceptions.
const failure = (message) => ({ errors: [{ error: message, user_facing_error: { is_panic: false, message, meta: {}, error_code: null } }] });

async function runQuery(body, txId) {
  if (Array.isArray(body.batch)) {
    const plans = body.batch.map((q) => translator.translate(q.query));
    const request = { batch: plans.map((p) => p.request) };
    if (body.transaction) request.transaction = body.isolationLevel ? { isolationLevel: body.isolationLevel } : {};
    const out = JSON.parse(await engine.query(JSON.stringify(request), '{}', txId));
    if (Array.isArray(out.batchResult)) out.batchResult = out.batchResult.map((r, i) => reshape(r, plans[i]));
    return out;
  }
  const plan = translator.translate(body.query);
  trace('graphql', body.query);
  trace('json', plan.request);
  const out = JSON.parse(await engine.query(JSON.stringify(plan.request), '{}', txId));
  trace('result', out);
  return reshape(out, plan);
}

// The engine answers transaction calls with "{}" / {"id"} on success, or an error object.
function transactionReply(text) {
  const out = JSON.parse(text || '{}');
  if (out.errors) return [400, out];
  if (out.error || out.user_facing_error) return [400, { errors: [out] }];
  return [200, out];
}

async function route(req, body) {
  const path = new URL(req.url, 'http://localhost').pathname;
  if (req.method === 'GET' && (path === '/status' || path === '/')) return [200, { status: 'ok' }];
  if (path === '/metrics') {
    return new URL(req.url, 'http://localhost').searchParams.get('format') === 'prometheus'
      ? [200, '']
      : [200, { counters: [], gauges: [], histograms: [] }];
  }
  if (req.method !== 'POST') return [404, failure(`no route ${req.method} ${path}`)];
  if (path === '/') return [200, await runQuery(JSON.parse(body), req.headers['x-transaction-id'] || undefined)];
  if (path === '/transaction/start') return transactionReply(await engine.startTransaction(body || '{}', '{}'));
  const tx = /^\/transaction\/([^/]+)\/(commit|rollback)$/.exec(path);
  if (tx) {
    const id = decodeURIComponent(tx[1]);
    return transactionReply(await (tx[2] === 'commit' ? engine.commitTransaction(id, '{}') : engine.rollbackTransaction(id, '{}')));
  }
  return [404, failure(`no route POST ${path}`)];
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    let status, payload;
    try {
      [status, payload] = await route(req, Buffer.concat(chunks).toString('utf8'));
    } catch (e) {
      // Like the native engine: HTTP 200 with {"errors": [...]}, which the client turns into an exception.
      log('ERROR', `request failed: ${e.stack || e}`);
      [status, payload] = [200, failure(String(e.message || e))];
    }
    const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
    res.writeHead(status, { 'content-type': typeof payload === 'string' ? 'text/plain' : 'application/json' });
    res.end(text);
  });
});
server.keepAliveTimeout = 65_000; // longer than the client's pool keeps idle connections

const port = Number(option('-p', '--port', process.env.PORT || '4466'));
const host = option('-H', '--host', '127.0.0.1');
server.listen(port, host, () => log('INFO', `Started query engine http server on http://${host}:${port}`));

// prisma-client-py stops the engine with SIGINT; exit promptly whatever the pool does.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    setTimeout(() => process.exit(0), 500).unref();
    pool.end().finally(() => process.exit(0));
  });
}
