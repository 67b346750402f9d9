/**
 * Property-based tests (fast-check, fixed seeds): random bytes and random JSON thrown at the
 * readers of user files. Each reader either returns a result or throws its documented error
 * type; anything else (TypeError, RangeError, a crash) fails the property.
 *
 * - JSONL (`parseJsonl`, `decodeText`): `JsonlError`, or `UnknownCharacterError` with a strict tokenizer.
 * - safetensors (`decodeSafetensors`): `SafetensorsError`; a valid file round-trips.
 * - sweep grids (`expandGrid`, `loadGrid`): `ConfigError`.
 * - the result store (`ResultStore`): `read` never throws; bad lines are reported, records survive.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { decodeText, parseJsonl, JsonlError, type JsonlOptions } from '../src/data/jsonl';
import { CharTokenizer, TextStats, UnknownCharacterError } from '../src/data/tokenizer';
import {
  decodeSafetensors, encodeSafetensors, SafetensorsError, type SafetensorsDtype, type SafetensorsTensor,
} from '../src/model/safetensors';
import { EXAMPLE_GRID, expandGrid, loadGrid, type ExecutionContext } from '../src/sweep/grid';
import { ResultStore, serializeRecord, type RunRecord } from '../src/sweep/store';
import { resolveFinetuneConfig } from '../src/sweep/finetune';
import { ConfigError } from '../src/util/config';

const SEED = 42;
const tmp = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix));
type ErrorClass = abstract new (...args: never[]) => Error;

/** Runs `fn`; returns its result or the error it threw, failing when that error is not one of `allowed`. */
function only<T>(fn: () => T, allowed: ErrorClass[], what: string): { ok: true; value: T } | { ok: false; error: Error } {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    if (allowed.some((c) => e instanceof c)) return { ok: false, error: e as Error };
    const err = e as Error;
    assert.fail(`${what}: undocumented ${err?.name ?? typeof e} escaped: ${String(err?.message ?? e).slice(0, 300)}\n${err?.stack ?? ''}`);
  }
}

/** JSON text nested `depth` levels deep: parses fine, but recursive `JSON.stringify` overflows the stack on it. */
const deepArray = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const DEEP = 20_000;

/** `o[k] = v` as an own property, as `JSON.parse` makes it (`o.__proto__ = v` would set the prototype instead). */
const setOwn = (o: object, k: string | number, v: unknown): void => { Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true }); };

/** Names that are special on plain objects (`obj[name] = v` misbehaves or hits the prototype). */
const SPECIAL_KEYS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', ''];

// ---------------------------------------------------------------------------------------------
// JSONL
// ---------------------------------------------------------------------------------------------

const FILE = 'prop/data.jsonl';
const JSONL_KEYS = ['question', 'answer', 'instruction', 'input', 'output', 'prompt', 'completion', 'text', 'meta', ...SPECIAL_KEYS];

/** Strings that look like the fields of real files, and some that do not. */
const textArb = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.tuple(fc.string({ maxLength: 30 }), fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 8 }))).map(([a, n]) => `${a}\n#### ${n}`),
  fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })).map(([a, b]) => `${a}<<${b}>>#### 3`),
  fc.constantFrom('#### 42', '#### ', '####', '<<48/2=24>>24\n#### 24', 'caf\u00e9 \u20ac \u00bd', '\uFEFF', '\u0000', '\ud800', '\r\n'),
);
const fieldValueArb = fc.oneof({ weight: 8, arbitrary: textArb }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) }, { weight: 1, arbitrary: fc.constant(null) });

const FORMAT_KEYS = [['question', 'answer'], ['instruction', 'input', 'output'], ['instruction', 'output'], ['prompt', 'completion']];

/**
 * An object with the keys of the `kind`-th format (sometimes one dropped), values mostly strings,
 * and a few extra keys drawn from the gsm8k / alpaca / prompt-completion field names.
 */
const recordArb = (kind: number): fc.Arbitrary<Record<string, unknown>> => fc
  .tuple(
    fc.oneof({ weight: 4, arbitrary: fc.constant(kind) }, { weight: 1, arbitrary: fc.nat(FORMAT_KEYS.length - 1) }),
    fc.array(fieldValueArb, { minLength: 3, maxLength: 3 }),
    fc.oneof({ weight: 5, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.nat() }),
    fc.array(fc.tuple(fc.constantFrom(...JSONL_KEYS), fieldValueArb), { maxLength: 2 }),
  )
  .map(([k, values, drop, extra]) => {
    const keys = FORMAT_KEYS[k] as string[];
    const o: Record<string, unknown> = {};
    keys.forEach((key, i) => { if (drop === null || drop % keys.length !== i) setOwn(o, key, values[i]); });
    for (const [key, v] of extra) setOwn(o, key, v);
    return o;
  });
/** A file's records: mostly of one format. */
const recordsArb = fc.nat(FORMAT_KEYS.length - 1).chain((kind) => fc.array(recordArb(kind), { minLength: 1, maxLength: 4 }));

const optionsArb: fc.Arbitrary<Partial<JsonlOptions> & { strict: boolean }> = fc.record({
  format: fc.oneof({ weight: 3, arbitrary: fc.constant('auto') }, { weight: 1, arbitrary: fc.constantFrom('gsm8k', 'alpaca', 'prompt-completion') }) as fc.Arbitrary<JsonlOptions['format']>,
  strict: fc.boolean(),
  stripCalculator: fc.boolean(),
  stats: fc.boolean().map((b) => (b ? new TextStats() : undefined)),
});

/** parseJsonl on `text`: Example[] or a short JsonlError naming the file (UnknownCharacterError only when strict). */
function checkParse(text: string, options: Partial<JsonlOptions> & { strict: boolean } = { strict: false }): void {
  const { strict, ...rest } = options;
  const r = only(() => parseJsonl(text, FILE, { ...rest, tokenizer: new CharTokenizer({ unknown: strict ? 'error' : 'unk' }) }), [JsonlError, UnknownCharacterError], 'parseJsonl');
  if (r.ok) {
    assert.ok(Array.isArray(r.value) && r.value.length > 0);
    for (const ex of r.value) {
      assert.equal(typeof ex.prompt, 'string');
      assert.equal(typeof ex.completion, 'string');
      assert.ok(ex.meta.source?.startsWith(`${FILE}:`));
    }
    return;
  }
  if (r.error instanceof UnknownCharacterError) assert.ok(strict, `UnknownCharacterError without a strict tokenizer: ${r.error.message}`);
  assert.ok(r.error.message.includes(FILE), `the message names the file: ${r.error.message}`);
  assert.ok(r.error.message.length < 500, `the message stays short (${r.error.message.length} chars)`);
}

/** Well-formed lines of each format, so that mutations start from files that parse. */
const goodLineArb = fc.oneof(
  fc.record({ question: fc.string({ maxLength: 20 }), answer: fc.integer().map((n) => `steps\n#### ${n}`) }),
  fc.record({ instruction: fc.string({ maxLength: 20 }), input: fc.string({ maxLength: 10 }), output: fc.string({ maxLength: 20 }) }),
  fc.record({ prompt: fc.string({ maxLength: 20 }), completion: fc.string({ maxLength: 20 }) }),
).map((o) => JSON.stringify(o));

/** Bytes of a good JSONL file with a few bytes flipped, inserted or cut off. */
const mutatedJsonlBytesArb = fc
  .tuple(fc.array(goodLineArb, { minLength: 1, maxLength: 4 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'insert', 'cut')), { minLength: 1, maxLength: 4 }))
  .map(([lines, edits]) => {
    let bytes = Array.from(Buffer.from(lines.join('\n'), 'utf8'));
    for (const [at, byte, op] of edits) {
      const i = bytes.length === 0 ? 0 : at % bytes.length;
      if (op === 'flip') bytes[i] = byte;
      else if (op === 'insert') bytes.splice(i, 0, byte);
      else bytes = bytes.slice(0, i);
    }
    return Uint8Array.from(bytes);
  });

test('JSONL: random strings either parse or throw a short JsonlError naming the file', () => {
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 }), fc.array(fc.string({ maxLength: 30 }), { maxLength: 6 }).map((l) => l.join('\n'))), optionsArb, (text, options) => {
    checkParse(text, options);
  }), { seed: SEED, numRuns: 300 });
});

test('JSONL: random bytes through decodeText, then parseJsonl, throw only JsonlError', () => {
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), mutatedJsonlBytesArb), optionsArb, (bytes, options) => {
    const r = only(() => decodeText(bytes, FILE), [JsonlError], 'decodeText');
    if (!r.ok) {
      assert.ok(r.error.message.startsWith(`${FILE}:`) && r.error.message.length < 500, r.error.message);
      return;
    }
    checkParse(r.value, options);
  }), { seed: SEED, numRuns: 300 });
  // A view into a larger buffer decodes only its own bytes.
  const big = Buffer.from(`xx${JSON.stringify({ prompt: 'p', completion: 'c' })}yy`);
  assert.equal(decodeText(big.subarray(2, big.length - 2), FILE), JSON.stringify({ prompt: 'p', completion: 'c' }));
});

test('JSONL: random JSON values, one per line, throw only JsonlError', () => {
  fc.assert(fc.property(fc.array(fc.jsonValue({ maxDepth: 3 }), { minLength: 1, maxLength: 5 }), optionsArb, (values, options) => {
    checkParse(values.map((v) => JSON.stringify(v)).join('\n'), options);
  }), { seed: SEED, numRuns: 300 });
});

test('JSONL: random records with gsm8k / alpaca / prompt-completion keys throw only JsonlError', () => {
  fc.assert(fc.property(recordsArb, optionsArb, fc.constantFrom('\n', '\r\n', '\n\n'), (records, options, eol) => {
    checkParse(records.map((r) => JSON.stringify(r)).join(eol), options);
  }), { seed: SEED, numRuns: 400 });
});

test('JSONL: well-formed files parse into one example per line', () => {
  fc.assert(fc.property(fc.constantFrom(0, 1, 2), fc.array(fc.nat(), { minLength: 1, maxLength: 5 }), (kind, seeds) => {
    const lines = seeds.map((n) => JSON.stringify([
      { question: `q${n}`, answer: `a <<1+1=2>>\n#### ${n}` },
      { instruction: `i${n}`, input: n % 2 ? '' : `x${n}`, output: `o${n}` },
      { prompt: `p${n}`, completion: `c${n}` },
    ][kind]));
    const exs = parseJsonl(lines.join('\n'), FILE);
    assert.equal(exs.length, seeds.length);
    exs.forEach((e, i) => assert.equal(e.meta.source, `${FILE}:${i + 1}`));
  }), { seed: SEED, numRuns: 50 });
});

test('JSONL: deeply nested lines are a JsonlError, not a stack overflow', () => {
  for (const text of [deepArray(DEEP), `{"prompt": ${deepArray(DEEP)}, "completion": "c"}`, `{"question": "q", "answer": "#### 1", "x": ${deepArray(DEEP)}}\n${deepArray(DEEP)}`]) {
    checkParse(text);
  }
});

// ---------------------------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------------------------

const ST_FILE = 'prop/model.safetensors';
const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1 };
const DTYPE_NAMES = Object.keys(DTYPE_BYTES) as SafetensorsDtype[];

function typedArray(dtype: SafetensorsDtype, bytes: Uint8Array): SafetensorsTensor['data'] {
  const b = Uint8Array.from(bytes).buffer;
  switch (dtype) {
    case 'F64': return new Float64Array(b);
    case 'F32': return new Float32Array(b);
    case 'F16': case 'BF16': case 'U16': return new Uint16Array(b);
    case 'I64': return new BigInt64Array(b);
    case 'I32': return new Int32Array(b);
    case 'I16': return new Int16Array(b);
    case 'I8': return new Int8Array(b);
    case 'U64': return new BigUint64Array(b);
    case 'U32': return new Uint32Array(b);
    case 'U8': case 'BOOL': return new Uint8Array(b);
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength))));
}

/** A file: u64 LE header length, the header bytes, the data area. */
function withHeader(header: Uint8Array | string, data: Uint8Array = new Uint8Array(0), declared?: bigint): Uint8Array {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(declared ?? BigInt(h.length));
  return concat([len, h, data]);
}

/** decodeSafetensors: a result or a SafetensorsError naming the file. */
function checkDecode(bytes: Uint8Array): ReturnType<typeof decodeSafetensors> | undefined {
  const r = only(() => decodeSafetensors(bytes, ST_FILE), [SafetensorsError], 'decodeSafetensors');
  if (r.ok) return r.value;
  assert.ok(r.error.message.startsWith(`safetensors file ${ST_FILE}: `), r.error.message);
  return undefined;
}

const tensorNameArb = fc.oneof({ weight: 3, arbitrary: fc.string({ maxLength: 12 }) }, { weight: 1, arbitrary: fc.constantFrom(...SPECIAL_KEYS.filter((k) => k !== '')) });

/** Random tensors with consistent dtype, shape and data. */
const tensorsArb = fc
  .uniqueArray(
    fc.tuple(tensorNameArb.filter((n) => n !== '__metadata__'), fc.constantFrom(...DTYPE_NAMES), fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }), fc.nat()),
    { selector: ([name]) => name, maxLength: 4 },
  )
  .map((entries) => {
    const tensors: Record<string, SafetensorsTensor> = {};
    for (const [name, dtype, shape, seed] of entries) {
      const n = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
      const bytes = Uint8Array.from({ length: n }, (_, i) => (seed + i * 37) & 0xff);
      setOwn(tensors, name, { dtype, shape, data: typedArray(dtype, bytes) });
    }
    return tensors;
  });
const metadataArb = fc
  .uniqueArray(fc.tuple(fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom(...SPECIAL_KEYS)), fc.string({ maxLength: 20 })), { selector: ([k]) => k, maxLength: 3 })
  .map((entries) => {
    const m: Record<string, string> = {};
    for (const [k, v] of entries) setOwn(m, k, v);
    return m;
  });
const validFileArb = fc.tuple(tensorsArb, metadataArb).map(([tensors, metadata]) => ({ tensors, metadata, bytes: concat(encodeSafetensors(tensors, metadata)) }));

const bytesOf = (d: SafetensorsTensor['data']): Buffer => Buffer.from(d.buffer, d.byteOffset, d.byteLength);

test('safetensors: a valid file round-trips (any tensor and metadata names)', () => {
  fc.assert(fc.property(validFileArb, ({ tensors, metadata, bytes }) => {
    const out = checkDecode(bytes);
    assert.ok(out, 'a file written by encodeSafetensors decodes');
    assert.deepEqual(Object.keys(out.tensors).sort(), Object.keys(tensors).sort());
    for (const name of Object.keys(tensors)) {
      const want = tensors[name] as SafetensorsTensor;
      const got = Object.getOwnPropertyDescriptor(out.tensors, name)?.value as SafetensorsTensor;
      assert.equal(got.dtype, want.dtype);
      assert.deepEqual(got.shape, want.shape);
      assert.deepEqual(bytesOf(got.data), bytesOf(want.data));
    }
    assert.deepEqual(Object.entries(out.metadata).sort(), Object.entries(metadata).sort());
  }), { seed: SEED, numRuns: 200 });
});

test('safetensors: a tensor or metadata key named "__proto__" is kept (regression: the encoder dropped it, the decoder set the prototype)', () => {
  const tensors: Record<string, SafetensorsTensor> = {};
  setOwn(tensors, '__proto__', { dtype: 'F64', shape: [], data: new Float64Array([1.5]) });
  const metadata: Record<string, string> = {};
  setOwn(metadata, '__proto__', 'v');
  const out = checkDecode(concat(encodeSafetensors(tensors, metadata)));
  assert.ok(out, 'the file decodes (it had 8 data bytes that belonged to no tensor)');
  assert.deepEqual(Object.keys(out.tensors), ['__proto__']);
  assert.deepEqual(Array.from(Object.getOwnPropertyDescriptor(out.tensors, '__proto__')?.value.data as Float64Array), [1.5]);
  assert.equal(Object.getPrototypeOf(out.tensors), Object.prototype);
  assert.deepEqual(Object.entries(out.metadata), [['__proto__', 'v']]);
  // The same, laid out by hand.
  const hand = checkDecode(withHeader('{"__metadata__":{"__proto__":"v"},"__proto__":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', Uint8Array.from([7, 9])));
  assert.ok(hand);
  assert.deepEqual(Object.keys(hand.tensors), ['__proto__']);
  assert.deepEqual(Object.keys(hand.metadata), ['__proto__']);
});

test('safetensors: random bytes, with and without a valid length prefix, throw only SafetensorsError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => { checkDecode(bytes); }), { seed: SEED, numRuns: 300 });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 32 }), (header, data) => { checkDecode(withHeader(header, data)); }), { seed: SEED, numRuns: 300 });
  // A length prefix that lies: beyond the file, or over the limit.
  fc.assert(fc.property(fc.uint8Array({ maxLength: 32 }), fc.bigUint({ max: (1n << 64n) - 1n }), (header, declared) => { checkDecode(withHeader(header, undefined, declared)); }), { seed: SEED, numRuns: 200 });
});

/** Values a header field may hold: valid ones, near misses and arbitrary JSON. */
const dtypeArb = fc.oneof(fc.constantFrom(...DTYPE_NAMES), fc.constantFrom('f32', 'F8', 'float32', '', '__proto__', 'constructor', 'toString'), fc.jsonValue({ maxDepth: 1 }));
const shapeArb = fc.oneof(
  fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
  fc.array(fc.oneof(fc.integer(), fc.double(), fc.constant(2 ** 53), fc.constant(1e308), fc.string({ maxLength: 2 })), { maxLength: 3 }),
  fc.jsonValue({ maxDepth: 1 }),
);
const offsetsArb = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 })),
  fc.array(fc.oneof(fc.integer(), fc.double(), fc.constant(Number.MAX_SAFE_INTEGER), fc.constant(2 ** 60)), { maxLength: 3 }),
  fc.jsonValue({ maxDepth: 1 }),
);
const entryArb = fc.oneof(
  { weight: 4, arbitrary: fc.record({ dtype: dtypeArb, shape: shapeArb, data_offsets: offsetsArb }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.record({ dtype: dtypeArb, shape: shapeArb, data_offsets: offsetsArb, extra: fc.jsonValue({ maxDepth: 1 }) }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);
const structuredHeaderArb = fc
  .tuple(
    fc.array(fc.tuple(tensorNameArb, entryArb), { maxLength: 4 }),
    fc.option(fc.oneof(fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 1 }))), fc.jsonValue({ maxDepth: 2 }))),
  )
  .map(([entries, meta]) => {
    const parts = entries.map(([name, entry]) => `${JSON.stringify(name)}:${JSON.stringify(entry)}`);
    if (meta !== null) parts.push(`"__metadata__":${JSON.stringify(meta)}`);
    return `{${parts.join(',')}}`;
  });

test('safetensors: random JSON headers with random data areas throw only SafetensorsError', () => {
  fc.assert(fc.property(fc.oneof(fc.json({ maxDepth: 3 }), fc.object({ maxDepth: 2 }).map((o) => JSON.stringify(o))), fc.uint8Array({ maxLength: 48 }), (header, data) => {
    checkDecode(withHeader(header, data));
  }), { seed: SEED, numRuns: 300 });
  fc.assert(fc.property(structuredHeaderArb, fc.uint8Array({ maxLength: 48 }), fc.constantFrom(0, 1, 7), (header, data, pad) => {
    checkDecode(withHeader(header + ' '.repeat(pad), data));
  }), { seed: SEED, numRuns: 500 });
});

test('safetensors: truncated and bit-flipped valid files throw only SafetensorsError', () => {
  fc.assert(fc.property(validFileArb, fc.nat(), (file, cut) => {
    const n = file.bytes.length;
    checkDecode(file.bytes.subarray(0, cut % n));
    checkDecode(file.bytes.subarray(0, n - 1 - (cut % Math.min(n, 8))));
  }), { seed: SEED, numRuns: 150 });
  fc.assert(fc.property(validFileArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (file, flips) => {
    const bytes = Uint8Array.from(file.bytes);
    for (const [at, b] of flips) bytes[at % bytes.length] = b;
    checkDecode(bytes);
  }), { seed: SEED, numRuns: 300 });
});

test('safetensors: deeply nested header values are a SafetensorsError, not a stack overflow', () => {
  for (const header of [
    `{"__metadata__":{"k":${deepArray(DEEP)}}}`,
    `{"t":{"dtype":${deepArray(DEEP)},"shape":[],"data_offsets":[0,4]}}`,
    `{"t":{"dtype":"F32","shape":${deepArray(DEEP)},"data_offsets":[0,4]}}`,
    `{"t":{"dtype":"F32","shape":[],"data_offsets":${deepArray(DEEP)}}}`,
    `{"t":{"dtype":"F32","shape":[],"data_offsets":[0,4],"x":${deepArray(DEEP)}}}`,
    deepArray(DEEP),
  ]) {
    assert.equal(checkDecode(withHeader(header, new Uint8Array(4))), undefined, header.slice(0, 60));
  }
});

// ---------------------------------------------------------------------------------------------
// sweep grids
// ---------------------------------------------------------------------------------------------

const ctx: ExecutionContext = { kernelLib: '0.0.0-test', backend: 'wasm', gradientPath: 'fused wasm kernels (test), 1 thread' };

/** Values a grid field may be set to: JSON, and strings that name real files, folders and presets. */
const gridValueArb = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 2, arbitrary: fc.constantFrom('.', '/', '..', 'data', 'data/base', 'kernel-lib', 'package.json', 'nano', 'micro', 'math', 'code', 'sft', 'gmt', 'tensor', '', 0, -1, 1, 2, 0.3, 1e9, true, null, [], {}, [0], { count: 2 }) },
);

/** Every place in a JSON value a mutation can reach: the path of each object and array inside it. */
function containers(value: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== 'object') return [];
  const inner = Object.entries(value as object).flatMap(([k, v]) => containers(v, [...at, Array.isArray(value) ? Number(k) : k]));
  return [at, ...inner];
}
function get(value: unknown, at: (string | number)[]): unknown {
  return at.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], value);
}

type Mutation = { op: 'drop' | 'set' | 'add'; where: number; pick: number; key: string; value: unknown };
const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('drop', 'set', 'add'),
  where: fc.nat(),
  pick: fc.nat(),
  key: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(...SPECIAL_KEYS)),
  value: gridValueArb,
}) as fc.Arbitrary<Mutation>;

function mutate(grid: unknown, mutations: Mutation[]): unknown {
  const g = structuredClone(grid);
  for (const m of mutations) {
    const places = containers(g);
    const target = get(g, places[m.where % places.length] as (string | number)[]) as Record<string, unknown> | unknown[];
    const keys = Object.keys(target);
    if (m.op === 'add' || keys.length === 0) {
      if (Array.isArray(target)) target.push(m.value);
      else setOwn(target, keys.includes(m.key) ? `${m.key}_x` : m.key, m.value);
      continue;
    }
    const key = keys[m.pick % keys.length] as string;
    if (m.op === 'drop') {
      if (Array.isArray(target)) target.splice(Number(key), 1);
      else delete target[key];
    } else setOwn(target, Array.isArray(target) ? Number(key) : key, m.value);
  }
  return g;
}

/** expandGrid: runs or a ConfigError. */
function checkExpand(grid: unknown, mode: 'fast' | 'full' = 'fast'): ReturnType<typeof expandGrid> | undefined {
  const r = only(() => expandGrid(grid, ctx, mode), [ConfigError], `expandGrid(${JSON.stringify(grid)?.slice(0, 300)})`);
  return r.ok ? r.value : undefined;
}

test('grids: the example grid expands; random JSON values as grids throw only ConfigError', () => {
  assert.equal(checkExpand(EXAMPLE_GRID, 'fast')?.length, 2);
  assert.equal(checkExpand(EXAMPLE_GRID, 'full')?.length, 4);
  fc.assert(fc.property(fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.object({ maxDepth: 2 })), (value) => {
    checkExpand(value);
  }), { seed: SEED, numRuns: 150 });
});

test('grids: mutations of the example grid (drop a key, set a key, add a key) throw only ConfigError', () => {
  fc.assert(fc.property(fc.array(mutationArb, { minLength: 1, maxLength: 3 }), fc.constantFrom('fast', 'full') as fc.Arbitrary<'fast' | 'full'>, (mutations, mode) => {
    const runs = checkExpand(mutate(EXAMPLE_GRID, mutations), mode);
    for (const r of runs ?? []) assert.match(r.key, /^[0-9a-f]{32}$/);
  }), { seed: SEED, numRuns: 200 });
});

test('grids: an unknown key in the grid, its base, seeds, methods or fast part is a ConfigError naming it', () => {
  const places: ((g: Record<string, any>) => object)[] = [(g) => g, (g) => g.base, (g) => g.seeds, (g) => g.methods[1], (g) => g.methods[1].options, (g) => g.fast, (g) => g.fast.base];
  fc.assert(fc.property(fc.nat(places.length - 1), fc.string({ maxLength: 8 }).map((s) => `x-${s}`), gridValueArb, (where, key, value) => {
    const grid = structuredClone(EXAMPLE_GRID) as unknown as Record<string, any>;
    setOwn((places[where] as (g: Record<string, any>) => object)(grid), key, value);
    assert.throws(() => expandGrid(grid, ctx, 'fast'), (e: unknown) => e instanceof ConfigError && e.message.includes(`"${key}"`));
  }), { seed: SEED, numRuns: 50 });
});

test('grids: a base or task that is a folder is a ConfigError (regression: EISDIR escaped from the sha256 of the input)', () => {
  const folder = tmp('gmt-prop-folder-');
  const dirTask = path.join(folder, 'a.jsonl');
  fs.mkdirSync(dirTask);
  for (const [grid, re] of [
    [{ ...EXAMPLE_GRID, presets: ['.'] }, /cannot read base checkpoint \.: EISDIR/],
    [{ ...EXAMPLE_GRID, base: { ...EXAMPLE_GRID.base, base: folder } }, /cannot read base checkpoint .*: EISDIR/],
    // A task path is checked for its form (math, code or a .jsonl file) before it is read.
    [{ ...EXAMPLE_GRID, tasks: [folder] }, /task must be "math", "code" or a path to a \.jsonl file, got ".*gmt-prop-folder-/],
    [{ ...EXAMPLE_GRID, tasks: [dirTask] }, /cannot read task file .*a\.jsonl: EISDIR/],
  ] as [unknown, RegExp][]) {
    assert.throws(() => expandGrid(grid, ctx, 'fast'), (e: unknown) => e instanceof ConfigError && re.test(e.message));
  }
  fs.rmSync(folder, { recursive: true, force: true });
});

test('grids: deeply nested values are a ConfigError, not a stack overflow (regression: RangeError from JSON.stringify)', () => {
  const deep = JSON.parse(deepArray(DEEP)) as unknown;
  for (const grid of [
    { ...EXAMPLE_GRID, name: deep },
    { ...EXAMPLE_GRID, seeds: [deep] },
    { ...EXAMPLE_GRID, base: { ...EXAMPLE_GRID.base, steps: deep } },
    { ...EXAMPLE_GRID, vary: { lr: [deep] } },
    { ...EXAMPLE_GRID, methods: [{ method: 'gmt', options: { ratio: deep } }] },
  ]) {
    assert.throws(() => expandGrid(grid, ctx, 'full'), (e: unknown) => e instanceof ConfigError && /nested more than \d+ levels deep/.test(e.message));
  }
  // 20 levels are not refused for their depth.
  const r = only(() => expandGrid({ ...EXAMPLE_GRID, vary: { taskOptions: [JSON.parse(`${'{"a":'.repeat(20)}1${'}'.repeat(20)}`)] } }, ctx, 'full'), [ConfigError], 'expandGrid');
  assert.ok(r.ok || !/nested more than/.test(r.error.message), r.ok ? '' : r.error.message);
});

test('grids: loadGrid on random file contents throws only ConfigError', () => {
  const dir = tmp('gmt-prop-grid-');
  const file = path.join(dir, 'grid.json');
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.json({ maxDepth: 2 }).map((s) => Buffer.from(s)), fc.array(mutationArb, { maxLength: 2 }).map((m) => Buffer.from(JSON.stringify(mutate(EXAMPLE_GRID, m))))), (bytes) => {
    fs.writeFileSync(file, bytes);
    const r = only(() => loadGrid(file), [ConfigError], 'loadGrid');
    if (r.ok) checkExpand(r.value);
  }), { seed: SEED, numRuns: 100 });
  assert.throws(() => loadGrid(dir), ConfigError);
  assert.throws(() => loadGrid(path.join(dir, 'missing.json')), ConfigError);
  fs.rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// the result store
// ---------------------------------------------------------------------------------------------

const CONFIG = resolveFinetuneConfig({ base: 'nano', steps: 10, warmup: 1 });
function record(key: string, status: RunRecord['status'] = 'done'): RunRecord {
  return {
    kind: 'gmt-lab/run', v: 1, key, status, label: key, methodLabel: 'sft', grid: 'g', config: CONFIG,
    inputs: { base: 'x' }, metrics: { testAccuracy: 0.5 },
    provenance: { ...ctx, node: 'v', machine: { cpu: 'c', cores: 1, platform: 'linux', arch: 'x64', host: 'h' }, commit: null, date: '2026-01-01T00:00:00Z', threads: 1, jobs: 1 },
  };
}

/** One line of a store file, and whether it is a whole record (its key) or must be reported. */
type Segment = { bytes: Buffer; key?: string };
const segmentArb: fc.Arbitrary<Segment> = fc.oneof(
  fc.tuple(fc.string({ maxLength: 8 }), fc.constantFrom('done', 'failed', 'diverged') as fc.Arbitrary<RunRecord['status']>).map(([key, status]) => ({ bytes: Buffer.from(serializeRecord(record(key, status)).trimEnd()), key })),
  fc.tuple(fc.string({ maxLength: 8 }), fc.nat()).map(([key, cut]) => {
    const line = serializeRecord(record(key)).trimEnd();
    return { bytes: Buffer.from(line.slice(0, 1 + (cut % (line.length - 1)))) };
  }),
  fc.jsonValue({ maxDepth: 2 }).map((v) => ({ bytes: Buffer.from(JSON.stringify(v)) })),
  fc.record({ kind: fc.constant('gmt-lab/run'), key: fc.jsonValue({ maxDepth: 1 }), status: fc.jsonValue({ maxDepth: 1 }), digest: fc.oneof(fc.string({ maxLength: 16 }), fc.jsonValue({ maxDepth: 1 })) }, { requiredKeys: ['kind'] }).map((v) => ({ bytes: Buffer.from(JSON.stringify(v)) })),
  fc.uint8Array({ maxLength: 40 }).map((b) => ({ bytes: Buffer.from(b.filter((x) => x !== 0x0a)) })),
);

test('the result store: random lines are reported and skipped, whole records read back, appends after them survive', () => {
  const dir = tmp('gmt-prop-store-');
  let n = 0;
  fc.assert(fc.property(fc.array(segmentArb, { maxLength: 6 }), fc.boolean(), (segments, trailingNewline) => {
    const file = path.join(dir, `r${n++}.jsonl`);
    const body = Buffer.concat(segments.flatMap((s, i) => (i ? [Buffer.from('\n'), s.bytes] : [s.bytes])));
    fs.writeFileSync(file, trailingNewline && segments.length ? Buffer.concat([body, Buffer.from('\n')]) : body);
    const store = new ResultStore(file);
    const before = only(() => store.read(), [], 'ResultStore.read');
    assert.ok(before.ok);
    const wantKeys = segments.filter((s) => s.key !== undefined).map((s) => s.key);
    const wantBad = segments.flatMap((s, i) => (s.key === undefined && new TextDecoder().decode(s.bytes).trim() !== '' ? [i + 1] : []));
    assert.deepEqual(before.value.records.map((r) => r.key), wantKeys);
    assert.deepEqual(before.value.bad.map((b) => b.line), wantBad);
    for (const b of before.value.bad) assert.ok(b.reason.length > 0 && b.reason.length < 300, b.reason);
    only(() => store.latest(before.value), [], 'ResultStore.latest');
    only(() => store.finishedKeys(before.value), [], 'ResultStore.finishedKeys');
    // A record appended after whatever was there reads back whole, after the others.
    store.append(record('appended'));
    const after = only(() => store.read(), [], 'ResultStore.read after append');
    assert.ok(after.ok);
    assert.deepEqual(after.value.records.map((r) => r.key), [...wantKeys, 'appended']);
    assert.equal(after.value.bad.length, wantBad.length);
    fs.rmSync(file);
  }), { seed: SEED, numRuns: 150 });
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the result store: a deeply nested line is reported, not a stack overflow', () => {
  const file = path.join(tmp('gmt-prop-store-'), 'deep.jsonl');
  fs.writeFileSync(file, `{"kind":"gmt-lab/run","digest":"0","x":${deepArray(DEEP)}}\n${deepArray(DEEP)}\n`);
  const store = new ResultStore(file);
  const r = only(() => store.read(), [], 'ResultStore.read');
  assert.ok(r.ok);
  assert.deepEqual(r.value.records, []);
  assert.deepEqual(r.value.bad.map((b) => b.line), [1, 2]);
  store.append(record('after'));
  assert.deepEqual(store.read().records.map((x) => x.key), ['after']);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});
