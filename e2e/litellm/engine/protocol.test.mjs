// Unit tests of protocol.mjs (no database needed). They need the npm modules that harness.sh
// installs, so run them where it installed the engine:
//   e2e/litellm/harness.sh install && (cd "${LITELLM_LAB:-/tmp/vault-plugin-litellm-lab}/engine" && node --test)
import test from 'node:test';
import assert from 'node:assert/strict';
import { Translator, reshape, legacyRawResult, untag } from './protocol.mjs';

const schema = `
datasource client {
  provider = "postgresql"
  url      = env("DATABASE_URL")
}
model Budget {
  budget_id  String   @id
  max_budget Float?
  created_at DateTime @default(now())
  tokens     Token[]
}
model Token {
  token      String    @id
  metadata   Json      @default("{}")
  expires    DateTime?
  spend_big  BigInt    @default(0)
  budget_id  String?
  budget     Budget?   @relation(fields: [budget_id], references: [budget_id])
}
`;
const t = new Translator(schema);
const json = (x) => JSON.parse(JSON.stringify(x));

test('root fields map to JSON-protocol actions and models', () => {
  const { request, alias } = t.translate('query { result: findUniqueTokenOrThrow(where: {token: "a"}) { token } }');
  assert.equal(alias, 'result');
  assert.deepEqual(json(request), {
    action: 'findUniqueOrThrow', modelName: 'Token',
    query: { arguments: { where: { token: 'a' } }, selection: { token: true } },
  });
  assert.equal(t.translate('mutation { result: deleteManyToken { count } }').request.action, 'deleteMany');
});

test('Json, DateTime and BigInt values are tagged by the schema, other strings are not', () => {
  const { request } = t.translate(`mutation { result: upsertOneToken(
      where: {token: "a"},
      create: {token: "a", metadata: "{\\"k\\": 1}", expires: "2030-01-01T00:00:00+00:00", spend_big: 5},
      update: {metadata: {set: "{}"}, expires: {set: null}}) { token } }`);
  const args = json(request).query.arguments;
  assert.deepEqual(args.create, {
    token: 'a',
    metadata: { $type: 'Json', value: '{"k": 1}' },
    expires: { $type: 'DateTime', value: '2030-01-01T00:00:00+00:00' },
    spend_big: { $type: 'BigInt', value: '5' },
  });
  assert.deepEqual(args.update, { metadata: { set: { $type: 'Json', value: '{}' } }, expires: { set: null } });
});

test('filters: operators, AND/OR, relations and enum literals', () => {
  const { request } = t.translate(`query { result: findManyToken(
      where: {OR: [{expires: {lt: "2030-01-01T00:00:00Z"}}, {metadata: {equals: JsonNull}}],
              budget: {is: {created_at: {gt: "2020-01-01T00:00:00Z"}}}},
      orderBy: [{expires: desc}, {spend_big: "asc"}]) { token budget { budget_id } } }`);
  const { where, orderBy } = json(request).query.arguments;
  assert.deepEqual(where.OR, [
    { expires: { lt: { $type: 'DateTime', value: '2030-01-01T00:00:00Z' } } },
    { metadata: { equals: { $type: 'Enum', value: 'JsonNull' } } },
  ]);
  assert.deepEqual(where.budget, { is: { created_at: { gt: { $type: 'DateTime', value: '2020-01-01T00:00:00Z' } } } });
  assert.deepEqual(orderBy, [{ expires: 'desc' }, { spend_big: 'asc' }]);
  assert.deepEqual(json(request).query.selection.budget, { arguments: {}, selection: { budget_id: true } });
});

test('raw queries keep their parameters and select all scalars', () => {
  const { request } = t.translate('mutation { result: queryRaw(query: "SELECT 1", parameters: "[1]") }');
  assert.deepEqual(json(request), { action: 'queryRaw', query: { arguments: { query: 'SELECT 1', parameters: '[1]' }, selection: { $scalars: true } } });
});

test('results: untagged, renamed to the alias; raw results in the legacy cell format', () => {
  const plan = { alias: 'result', action: 'findFirst' };
  assert.deepEqual(
    reshape({ data: { findFirstToken: { expires: { $type: 'DateTime', value: '2030-01-01T00:00:00.000Z' }, metadata: { $type: 'Json', value: '{}' } } } }, plan),
    { data: { result: { expires: '2030-01-01T00:00:00.000Z', metadata: '{}' } } },
  );
  assert.deepEqual(untag([{ a: { $type: 'BigInt', value: '1' } }]), [{ a: '1' }]);
  assert.deepEqual(
    legacyRawResult({ columns: ['n', 'tags', 'x'], types: ['bigint', 'string-array', 'unknown'], rows: [['1', ['a'], null]] }),
    [{
      n: { prisma__type: 'bigint', prisma__value: '1' },
      tags: { prisma__type: 'array', prisma__value: [{ prisma__type: 'string', prisma__value: 'a' }] },
      x: { prisma__type: 'null', prisma__value: null },
    }],
  );
});
