/**
 * safetensors files (https://github.com/huggingface/safetensors, format section of its README):
 * 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}`
 * padded with spaces so the data starts 8-byte aligned, then the raw little-endian tensor
 * bytes, offsets relative to the start of the data area.
 *
 * The reader validates every field and throws one `SafetensorsError` naming the file and the
 * problem; nothing read from a file is ever evaluated (the header goes through `JSON.parse`).
 * Checkpoints store the model config as JSON in `__metadata__["gmt.config"]` and the sha256 of
 * their tensor data in `__metadata__["gmt.sha256"]`, verified on every load; files are written
 * atomically (`util/fsx.ts`), so a crash mid-write leaves the previous file intact.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from '../util/fsx';
import { GPT, paramSpecs, type GPTOptions } from './gpt';
import { resolveGPTConfig, type GPTConfig } from './config';

/** Element types of the format, with the typed array each is read into. */
export type SafetensorsDtype =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

/** Raw data of one tensor. F16 and BF16 come back as their bit patterns in a `Uint16Array`. */
export type SafetensorsData =
  | Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array
  | BigUint64Array | Uint32Array | Uint8Array;

/** One tensor of a safetensors file. */
export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: SafetensorsData;
}

/** Contents of a safetensors file. */
export interface SafetensorsFile {
  tensors: Record<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

/** Thrown for every unreadable or invalid file; the message starts with the file path. */
export class SafetensorsError extends Error {
  constructor(readonly file: string, problem: string) {
    super(`safetensors file ${file}: ${problem}`);
    this.name = 'SafetensorsError';
  }
}

/** Largest header accepted (the reference implementation's bound). */
export const MAX_HEADER_BYTES = 100_000_000;

const DTYPES: Record<SafetensorsDtype, { bytes: number; make: (buf: ArrayBuffer) => SafetensorsData; ctor: string[] }> = {
  F64: { bytes: 8, make: (b) => new Float64Array(b), ctor: ['Float64Array'] },
  F32: { bytes: 4, make: (b) => new Float32Array(b), ctor: ['Float32Array'] },
  F16: { bytes: 2, make: (b) => new Uint16Array(b), ctor: ['Uint16Array'] },
  BF16: { bytes: 2, make: (b) => new Uint16Array(b), ctor: ['Uint16Array'] },
  I64: { bytes: 8, make: (b) => new BigInt64Array(b), ctor: ['BigInt64Array'] },
  I32: { bytes: 4, make: (b) => new Int32Array(b), ctor: ['Int32Array'] },
  I16: { bytes: 2, make: (b) => new Int16Array(b), ctor: ['Int16Array'] },
  I8: { bytes: 1, make: (b) => new Int8Array(b), ctor: ['Int8Array'] },
  U64: { bytes: 8, make: (b) => new BigUint64Array(b), ctor: ['BigUint64Array'] },
  U32: { bytes: 4, make: (b) => new Uint32Array(b), ctor: ['Uint32Array'] },
  U16: { bytes: 2, make: (b) => new Uint16Array(b), ctor: ['Uint16Array'] },
  U8: { bytes: 1, make: (b) => new Uint8Array(b), ctor: ['Uint8Array'] },
  BOOL: { bytes: 1, make: (b) => new Uint8Array(b), ctor: ['Uint8Array'] },
};

function checkLittleEndian(): void {
  if (os.endianness() !== 'LE') throw new Error('safetensors: only little-endian hosts are supported');
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** JSON of a header value for an error message; one nested too deeply for `JSON.stringify` is named as such. */
function show(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return '(a value nested too deeply to print)';
  }
}

/** `obj[key] = value` as an own property, also for a key such as `__proto__` (a valid tensor name). */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Serialises tensors (sorted by name) and string metadata into the bytes of a safetensors file. */
export function encodeSafetensors(tensors: Record<string, SafetensorsTensor>, metadata: Record<string, string> = {}, where = '<memory>'): Uint8Array[] {
  checkLittleEndian();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(where, `metadata value "${k}" must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  const names = Object.keys(tensors).sort();
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') throw new SafetensorsError(where, 'a tensor may not be named "__metadata__"');
    const t = tensors[name] as SafetensorsTensor;
    const info = DTYPES[t.dtype];
    if (!info) throw new SafetensorsError(where, `tensor "${name}": unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!Array.isArray(t.shape) || !t.shape.every((s) => Number.isInteger(s) && s >= 0)) {
      throw new SafetensorsError(where, `tensor "${name}": shape must be an array of non-negative integers, got ${JSON.stringify(t.shape)}`);
    }
    if (!info.ctor.includes(t.data.constructor.name)) {
      throw new SafetensorsError(where, `tensor "${name}": dtype ${t.dtype} needs a ${info.ctor.join('/')}, got ${t.data.constructor.name}`);
    }
    if (t.data.length !== numel(t.shape)) {
      throw new SafetensorsError(where, `tensor "${name}": shape [${t.shape}] has ${numel(t.shape)} elements, data has ${t.data.length}`);
    }
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    setOwn(header, name, { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] });
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  const raw = Buffer.from(json, 'utf8');
  const padded = Math.ceil((8 + raw.length) / 8) * 8 - 8;
  json += ' '.repeat(padded - raw.length);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  return [len, headerBytes, ...chunks];
}

/**
 * Writes `tensors` and string `metadata` to `file` in the safetensors format. Tensors are
 * laid out sorted by name; the write is atomic.
 */
export function saveSafetensors(file: string, tensors: Record<string, SafetensorsTensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata, file));
}

/** Parses and validates the bytes of a safetensors file; `file` names it in errors. */
export function decodeSafetensors(bytes: Uint8Array, file = '<memory>'): SafetensorsFile {
  checkLittleEndian();
  const fail = (problem: string): never => { throw new SafetensorsError(file, problem); };
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLen = Number(n);
  if (8 + headerLen > bytes.length) fail(`header length ${headerLen} runs past the end of the ${bytes.length}-byte file`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header must be a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const spans: { name: string; begin: number; end: number }[] = [];
  const tensors: Record<string, SafetensorsTensor> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__ value "${k}" must be a string, got ${show(v)}`);
        setOwn(metadata, k, v as string);
      }
      continue;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail(`tensor "${name}": entry must be an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    const extra = Object.keys(entry as object).filter((k) => !['dtype', 'shape', 'data_offsets'].includes(k));
    if (extra.length) fail(`tensor "${name}": unexpected field(s) ${extra.join(', ')}`);
    if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(DTYPES, dtype)) fail(`tensor "${name}": unknown dtype ${show(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
      fail(`tensor "${name}": shape must be an array of non-negative integers, got ${show(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`tensor "${name}": data_offsets must be two non-negative integers, got ${show(offsets)}`);
    }
    const info = DTYPES[dtype as SafetensorsDtype];
    const [begin, end] = offsets as [number, number];
    const want = numel(shape as number[]) * info.bytes;
    if (end < begin || end - begin !== want) {
      fail(`tensor "${name}": data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} [${shape}] needs ${want}`);
    }
    if (end > dataLen) fail(`tensor "${name}": data_offsets [${begin}, ${end}] lie outside the ${dataLen}-byte data area`);
    spans.push({ name, begin, end });
    // An owned, aligned copy (Buffer#slice would return a view into a shared pool).
    const copy = new Uint8Array(end - begin);
    copy.set(bytes.subarray(dataStart + begin, dataStart + end));
    setOwn(tensors, name, { dtype: dtype as SafetensorsDtype, shape: [...(shape as number[])], data: info.make(copy.buffer) });
  }
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const s of spans) {
    if (s.begin < cursor) fail(`tensor "${s.name}": data_offsets [${s.begin}, ${s.end}] overlap the previous tensor`);
    if (s.begin > cursor) fail(`bytes ${cursor}..${s.begin} of the data area belong to no tensor`);
    cursor = s.end;
  }
  if (cursor !== dataLen) fail(`data area is ${dataLen} bytes but tensors cover only ${cursor}`);
  return { tensors, metadata };
}

/** Reads and validates a safetensors file. Throws `SafetensorsError` naming the file and the problem. */
export function loadSafetensors(file: string): SafetensorsFile {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new SafetensorsError(file, `cannot read (${(e as Error).message})`);
  }
  return decodeSafetensors(bytes, file);
}

/** Metadata key holding the model config as JSON. */
export const CHECKPOINT_CONFIG_KEY = 'gmt.config';
/** Metadata key holding the sha256 (hex) of the tensor data, verified on load. */
export const CHECKPOINT_SHA256_KEY = 'gmt.sha256';
/** Metadata key identifying the file as a gmt-lab GPT checkpoint. */
export const CHECKPOINT_FORMAT_KEY = 'gmt.format';
const CHECKPOINT_FORMAT = 'gmt-lab-gpt/1';

/**
 * Saves every parameter of `model` (F32, named as in `model.params`) with its config in the
 * metadata. `extraMeta` values must be strings; its keys may not start with `gmt.`. Reads the
 * weights synchronously: on webgpu use {@link saveCheckpointAsync}.
 */
export function saveCheckpoint(file: string, model: GPT, extraMeta: Record<string, string> = {}): void {
  writeCheckpoint(file, model, model.params.map((p) => p.variable.dataSync() as Float32Array), extraMeta);
}

/** {@link saveCheckpoint} through asynchronous reads (any backend, webgpu included); the same file. */
export async function saveCheckpointAsync(file: string, model: GPT, extraMeta: Record<string, string> = {}): Promise<void> {
  const values: Float32Array[] = [];
  for (const p of model.params) values.push((await p.variable.data()) as Float32Array);
  writeCheckpoint(file, model, values, extraMeta);
}

function writeCheckpoint(file: string, model: GPT, values: readonly Float32Array[], extraMeta: Record<string, string>): void {
  checkLittleEndian();
  for (const k of Object.keys(extraMeta)) {
    if (k.startsWith('gmt.')) throw new SafetensorsError(file, `metadata key "${k}" is reserved`);
  }
  const tensors: Record<string, SafetensorsTensor> = {};
  model.params.forEach((p, i) => {
    tensors[p.name] = { dtype: 'F32', shape: [...p.variable.shape], data: values[i]! };
  });
  saveSafetensors(file, tensors, {
    ...extraMeta,
    [CHECKPOINT_FORMAT_KEY]: CHECKPOINT_FORMAT,
    [CHECKPOINT_CONFIG_KEY]: JSON.stringify(model.config),
    [CHECKPOINT_SHA256_KEY]: tensorDataSha256(tensors),
  });
}

/**
 * sha256 (hex) of tensors as stored: for each tensor in name order, its name, dtype, shape and
 * raw little-endian bytes. Independent of the header's layout and metadata.
 */
export function tensorDataSha256(tensors: Record<string, SafetensorsTensor>): string {
  const h = createHash('sha256');
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name] as SafetensorsTensor;
    h.update(`${name}\u0000${t.dtype}\u0000${t.shape.join(',')}\u0000`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}

/** Reads the config and metadata of a checkpoint without building a model. */
export function readCheckpointConfig(file: string): { config: GPTConfig; metadata: Record<string, string>; tensors: Record<string, SafetensorsTensor> } {
  const { tensors, metadata } = loadSafetensors(file);
  const fail = (problem: string): never => { throw new SafetensorsError(file, problem); };
  if (metadata[CHECKPOINT_FORMAT_KEY] !== CHECKPOINT_FORMAT) {
    fail(`not a gmt-lab GPT checkpoint (metadata "${CHECKPOINT_FORMAT_KEY}" is ${JSON.stringify(metadata[CHECKPOINT_FORMAT_KEY])}, expected "${CHECKPOINT_FORMAT}")`);
  }
  let config!: GPTConfig;
  try {
    config = resolveGPTConfig(JSON.parse(metadata[CHECKPOINT_CONFIG_KEY] ?? 'null') as Partial<GPTConfig>);
  } catch (e) {
    fail(`invalid model config in metadata "${CHECKPOINT_CONFIG_KEY}": ${(e as Error).message}`);
  }
  // Checkpoints written before the checksum existed (the committed base models) carry none;
  // those are verified against data/base/SHA256SUMS instead (sweep/paths.ts).
  const stored = metadata[CHECKPOINT_SHA256_KEY];
  if (stored !== undefined) {
    const actual = tensorDataSha256(tensors);
    if (actual !== stored) fail(`tensor data has sha256 ${actual}, but the checkpoint records ${stored}: the file is corrupted`);
  }
  const specs = paramSpecs(config);
  const expected = new Set(specs.map((s) => s.name));
  const missing = specs.filter((s) => !(s.name in tensors)).map((s) => s.name);
  if (missing.length) fail(`missing tensor(s) ${missing.join(', ')}`);
  const extra = Object.keys(tensors).filter((n) => !expected.has(n));
  if (extra.length) fail(`unexpected tensor(s) ${extra.join(', ')}`);
  for (const s of specs) {
    const t = tensors[s.name] as SafetensorsTensor;
    if (t.dtype !== 'F32') fail(`tensor "${s.name}" has dtype ${t.dtype}, expected F32`);
    if (t.shape.join(',') !== s.shape.join(',')) fail(`tensor "${s.name}" has shape [${t.shape}], but the config needs [${s.shape}]`);
  }
  return { config, metadata, tensors };
}

/** Loads a checkpoint written by `saveCheckpoint` into a new `GPT` (validated against its config). */
export function loadCheckpoint(file: string, options: GPTOptions = {}): GPT {
  const { config, tensors } = readCheckpointConfig(file);
  const weights: Record<string, tf.Tensor> = {};
  try {
    for (const [name, t] of Object.entries(tensors)) weights[name] = tf.tensor(t.data as Float32Array, t.shape, 'float32');
    return new GPT(config, options, weights);
  } finally {
    tf.dispose(Object.values(weights));
  }
}
