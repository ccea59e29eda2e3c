// protocol.mjs: prisma-client-py 0.11 speaks Prisma's GraphQL protocol to the query engine; the
// wasm engine only understands Prisma's JSON protocol. This module translates one into the other
// (requests) and back (responses). Part of the query-engine stand-in (see query-engine.mjs).
import { parse, Kind } from 'graphql';

// Root-field prefixes of the GraphQL protocol, which are also the JSON protocol's action names.
const MODEL_ACTIONS = ['findUnique', 'findFirst', 'findMany', 'createOne', 'createMany', 'createManyAndReturn',
  'updateOne', 'updateMany', 'upsertOne', 'deleteOne', 'deleteMany', 'aggregate', 'groupBy'];
const RAW_ACTIONS = new Set(['queryRaw', 'executeRaw']);
// GraphQL enum literals that the JSON protocol wants tagged (Json null markers); other enum values
// are plain strings in the JSON protocol.
const TAGGED_ENUMS = new Set(['DbNull', 'JsonNull', 'AnyNull']);

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class Translator {
  constructor(datamodel) {
    this.models = readModels(datamodel);
    // e.g. findUniqueLiteLLM_VerificationTokenOrThrow -> findUnique / LiteLLM_VerificationToken / OrThrow
    const names = [...this.models.keys()].map(escape).join('|');
    this.rootField = new RegExp(`^(${MODEL_ACTIONS.join('|')})(${names})(OrThrow)?$`);
  }

  // GraphQL request text -> { request: JSON-protocol request, alias, action }
  translate(text) {
    const ops = parse(text).definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
    if (ops.length !== 1 || ops[0].selectionSet.selections.length !== 1) {
      throw new Error('expected one operation with one root field');
    }
    const field = ops[0].selectionSet.selections[0];
    const name = field.name.value;
    const request = { action: name, query: { arguments: args(field.arguments), selection: selection(field.selectionSet) } };
    if (RAW_ACTIONS.has(name)) {
      request.query.selection = { $scalars: true };
    } else {
      const m = this.rootField.exec(name);
      if (!m) throw new Error(`unknown root field ${name}`);
      request.action = m[1] + (m[3] || '');
      request.modelName = m[2];
      this.typeValues(request.query.arguments, m[2]);
      this.typeSelection(request.query.selection, m[2]);
    }
    return { request, alias: field.alias ? field.alias.value : name, action: request.action };
  }

  // The GraphQL protocol sends Json, DateTime, Decimal, BigInt and Bytes values as strings and
  // the engine reads them by the schema's types; the JSON protocol reads a bare string as a
  // String (a Json field would store a JSON string instead of the object), so such values must be
  // tagged {"$type": T, "value": ...}. This walks an argument tree along the schema, in place:
  // keys that are fields of the current model are typed; relation fields move to the related
  // model; any other key (where, data, AND, some, upsert, a compound unique name, ...) is an
  // operator or wrapper and keeps the current model.
  typeValues(node, model) {
    if (Array.isArray(node)) { node.forEach((x) => this.typeValues(x, model)); return; }
    if (!isPlainObject(node)) return;
    const fields = this.models.get(model);
    for (const [key, v] of Object.entries(node)) {
      const field = fields && fields.get(key);
      if (key === 'orderBy' && !field) continue; // sort orders ("desc", or {sort, nulls}), which clients may send as strings
      if (!field) this.typeValues(v, model);
      else if (this.models.has(field.type)) this.typeValues(v, field.type);
      else if (TAGGED_SCALARS.has(field.type)) node[key] = tagScalar(v, field.type);
    }
  }

  // Relations selected with arguments (include with where / orderBy / take) carry values too.
  typeSelection(selection, model) {
    const fields = this.models.get(model);
    for (const [key, node] of Object.entries(selection)) {
      const field = fields && fields.get(key);
      if (node === true || !field || !this.models.has(field.type)) continue;
      this.typeValues(node.arguments, field.type);
      this.typeSelection(node.selection, field.type);
    }
  }
}

// A GraphQL enum literal (desc, insensitive, JsonNull, ...): never a typed scalar, even under a
// typed field (orderBy: {created_at: desc}). Serialized as a plain string, except the Json null
// markers, which the JSON protocol wants tagged.
class EnumLiteral {
  constructor(name) { this.name = name; }
  toJSON() { return TAGGED_ENUMS.has(this.name) ? { $type: 'Enum', value: this.name } : this.name; }
}

const TAGGED_SCALARS = new Set(['Json', 'DateTime', 'Decimal', 'BigInt', 'Bytes']);
// Operators under a typed field whose operands are not of the field's type (Json path filters).
const UNTYPED_OPERATORS = new Set(['path', 'mode', 'string_contains', 'string_starts_with', 'string_ends_with']);
const isPlainObject = (v) => v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype && typeof v.$type !== 'string';

// A typed field's value: the value itself, a list of values, or filter / update operators
// ({equals: v}, {in: [..]}, {not: {gt: v}}, {set: v}, {increment: n}, ...).
function tagScalar(v, type) {
  if (typeof v === 'string') return { $type: type, value: v };
  if (typeof v === 'number' && type === 'BigInt') return { $type: type, value: String(v) };
  if (Array.isArray(v)) return v.map((x) => tagScalar(x, type));
  if (!isPlainObject(v)) return v;
  return Object.fromEntries(Object.entries(v).map(([op, x]) => [op, UNTYPED_OPERATORS.has(op) ? x : tagScalar(x, type)]));
}

// model name -> Map(field name -> {type}) from the Prisma schema text. A block runs from
// `model Name {` to a line that is only `}` (attributes such as @default("{}") hold braces);
// field lines are `name Type`, `name Type?` or `name Type[]`, then attributes.
function readModels(datamodel) {
  const models = new Map();
  let fields = null;
  for (const line of datamodel.split('\n')) {
    const start = /^\s*model\s+(\w+)\s*\{/.exec(line);
    if (start) models.set(start[1], (fields = new Map()));
    else if (/^\s*\}\s*$/.test(line)) fields = null;
    else if (fields) {
      const m = /^\s*(\w+)\s+(\w+)/.exec(line);
      if (m) fields.set(m[1], { type: m[2] });
    }
  }
  return models;
}

function value(node) {
  switch (node.kind) {
    case Kind.NULL: return null;
    case Kind.BOOLEAN:
    case Kind.STRING: return node.value;
    case Kind.FLOAT: return Number(node.value);
    case Kind.INT: return Number.isSafeInteger(Number(node.value)) ? Number(node.value) : { $type: 'BigInt', value: node.value };
    case Kind.ENUM: return new EnumLiteral(node.value);
    case Kind.LIST: return node.values.map(value);
    case Kind.OBJECT: return Object.fromEntries(node.fields.map((f) => [f.name.value, value(f.value)]));
    default: throw new Error(`unsupported GraphQL value ${node.kind}`);
  }
}

const args = (list) => Object.fromEntries((list || []).map((a) => [a.name.value, value(a.value)]));

// GraphQL selection set -> JSON-protocol selection: scalars are `true`, relations and
// aggregates are nested { arguments, selection }.
function selection(set) {
  const out = {};
  for (const node of set ? set.selections : []) {
    if (node.kind !== Kind.FIELD) throw new Error('fragments are not supported');
    const nested = node.selectionSet || (node.arguments && node.arguments.length);
    out[node.name.value] = nested ? { arguments: args(node.arguments), selection: selection(node.selectionSet) } : true;
  }
  return out;
}

// The JSON protocol wraps typed output values as {"$type": ..., "value": ...}; the GraphQL
// protocol gives the bare value (Json as its text, DateTime as ISO text, BigInt/Decimal as text).
export function untag(v) {
  if (Array.isArray(v)) return v.map(untag);
  if (v === null || typeof v !== 'object') return v;
  if (typeof v.$type === 'string' && 'value' in v && Object.keys(v).length === 2) return v.value;
  const out = {};
  for (const [k, x] of Object.entries(v)) out[k] = untag(x);
  return out;
}

// queryRaw: the 5.17 engine answers {columns, types, rows}; prisma-client-py 0.11 (written for
// the 5.4 engine) reads a list of rows of {prisma__type, prisma__value} cells.
function rawCell(type, v) {
  if (v === null || v === undefined) return { prisma__type: 'null', prisma__value: null };
  if (type.endsWith('-array') && Array.isArray(v)) {
    return { prisma__type: 'array', prisma__value: v.map((x) => rawCell(type.slice(0, -'-array'.length), x)) };
  }
  return { prisma__type: type === 'unknown' ? 'string' : type, prisma__value: v };
}
export function legacyRawResult(r) {
  if (!r || !Array.isArray(r.columns)) return r;
  return r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, rawCell(r.types[i], row[i])])));
}

// One JSON-protocol result {data: {<action>: x}} -> the GraphQL one {data: {<alias>: x'}}.
export function reshape(result, { alias, action }) {
  if (!result || !result.data || typeof result.data !== 'object') return result;
  const [only] = Object.values(result.data);
  const data = action === 'queryRaw' ? legacyRawResult(only) : untag(only);
  return { ...result, data: { [alias]: data } };
}
