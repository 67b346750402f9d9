import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  GPT, loadCheckpoint, loadSafetensors, saveCheckpoint, saveSafetensors, weightsSha256, SafetensorsError,
} from '../src/model';
import { CHECKPOINT_SHA256_KEY, tensorDataSha256 } from '../src/model/safetensors';
import { spawn } from 'node:child_process';
import { CRASH_MODEL } from './helpers/crash-model';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-safetensors-'));
const file = (name: string) => path.join(dir, name);

/** Builds a file by hand, exactly per the format: u64 LE header length, JSON, raw data. */
function handMade(header: string, data: Uint8Array): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
  return Buffer.concat([len, Buffer.from(header, 'utf8'), data]);
}

test('a file laid out by hand per the format loads, and our writer produces the same bytes', () => {
  // Two tensors, sorted by name, the header padded with spaces to an 8-byte boundary.
  const a = new Float32Array([1.5, -2, 3.25]);
  const b = new Int32Array([7, -8]);
  let header = '{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"I32","shape":[1,2],"data_offsets":[12,20]}}';
  header += ' '.repeat((8 - ((8 + header.length) % 8)) % 8);
  const bytes = handMade(header, Buffer.concat([Buffer.from(a.buffer), Buffer.from(b.buffer)]));
  assert.equal(bytes.readBigUInt64LE(0) % 8n, 0n);
  fs.writeFileSync(file('hand.safetensors'), bytes);
  const loaded = loadSafetensors(file('hand.safetensors'));
  assert.deepEqual(loaded.metadata, { k: 'v' });
  assert.deepEqual(Array.from(loaded.tensors.a!.data as Float32Array), [1.5, -2, 3.25]);
  assert.deepEqual(loaded.tensors.b!.shape, [1, 2]);
  assert.deepEqual(Array.from(loaded.tensors.b!.data as Int32Array), [7, -8]);
  // Writing the same content (given in reverse order) reproduces the hand-made file byte for byte.
  saveSafetensors(file('ours.safetensors'), { b: { dtype: 'I32', shape: [1, 2], data: b }, a: { dtype: 'F32', shape: [3], data: a } }, { k: 'v' });
  assert.deepEqual(fs.readFileSync(file('ours.safetensors')), bytes);
});

test('round trip is bit exact for every float, including NaN payloads and -0', () => {
  const f = new Float32Array([0, -0, NaN, Infinity, -Infinity, 1e-45, 3.4028235e38, Math.PI]);
  const u = new Uint8Array([0, 255, 1]);
  const big = new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]);
  saveSafetensors(file('rt.safetensors'), { f: { dtype: 'F32', shape: [2, 4], data: f }, u: { dtype: 'U8', shape: [3], data: u }, i: { dtype: 'I64', shape: [2], data: big }, e: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) } });
  const back = loadSafetensors(file('rt.safetensors'));
  assert.deepEqual(new Uint8Array((back.tensors.f!.data as Float32Array).buffer), new Uint8Array(f.buffer));
  assert.deepEqual(back.tensors.u!.data, u);
  assert.deepEqual(back.tensors.i!.data, big);
  assert.deepEqual(back.tensors.e!.shape, [0, 3]);
});

test('malformed files are rejected with the file name and the problem', () => {
  const good = fs.readFileSync(file('hand.safetensors'));
  const cases: [string, Buffer, RegExp][] = [
    ['short', Buffer.from([1, 2, 3]), /shorter than the 8-byte header length/],
    ['truncated', good.subarray(0, good.length - 4), /outside the 16-byte data area/],
    ['huge-header', (() => { const b = Buffer.from(good); b.writeBigUInt64LE(200_000_000n, 0); return b; })(), /exceeds the 100000000-byte limit/],
    ['past-end', (() => { const b = Buffer.from(good); b.writeBigUInt64LE(BigInt(good.length), 0); return b; })(), /runs past the end/],
    ['bad-json', handMade('{"a": {"dtype": "F32",', new Uint8Array(0)), /not valid UTF-8 JSON/],
    ['not-object', handMade('[1, 2]  ', new Uint8Array(0)), /must be a JSON object/],
    ['bad-dtype', handMade('{"a":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)), /unknown dtype "F7"/],
    ['bad-shape', handMade('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', new Uint8Array(4)), /non-negative integers/],
    ['shape-mismatch', handMade('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', new Uint8Array(4)), /hold 4 bytes, but F32 \[2\] needs 8/],
    ['overlap', handMade('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)), /overlap/],
    ['hole', handMade('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)), /bytes 0\.\.4 of the data area belong to no tensor/],
    ['trailing', handMade('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(8)), /tensors cover only 4/],
    ['bad-metadata', handMade('{"__metadata__":{"n":3}}', new Uint8Array(0)), /must be a string/],
  ];
  for (const [name, bytes, pattern] of cases) {
    const p = file(`${name}.safetensors`);
    fs.writeFileSync(p, bytes);
    assert.throws(() => loadSafetensors(p), (e: Error) => {
      assert.ok(e instanceof SafetensorsError, `${name}: ${e}`);
      assert.ok(e.message.includes(p), `${name}: message lacks the file name: ${e.message}`);
      assert.match(e.message, pattern, name);
      return true;
    });
  }
  assert.throws(() => loadSafetensors(file('missing.safetensors')), /missing\.safetensors: cannot read/);
});

test('checkpoints restore bit-identical weights and config, and reject files that do not fit', async () => {
  await tf.setBackend('cpu');
  const cfg = { vocabSize: 12, contextLength: 8, dModel: 8, nLayers: 2, nHeads: 2, seed: 4 };
  const model = new GPT(cfg);
  saveCheckpoint(file('ckpt.safetensors'), model, { note: 'test' });
  const back = loadCheckpoint(file('ckpt.safetensors'));
  assert.deepEqual(back.config, model.config);
  assert.equal(weightsSha256(back.params), weightsSha256(model.params));
  assert.equal(loadSafetensors(file('ckpt.safetensors')).metadata.note, 'test');
  back.dispose();

  const { tensors, metadata: withSum } = loadSafetensors(file('ckpt.safetensors'));
  assert.equal(withSum[CHECKPOINT_SHA256_KEY], tensorDataSha256(tensors), 'the checkpoint carries the sha256 of its tensor data');
  // The structural variants below drop the checksum so that each reaches its own check.
  const metadata = { ...withSum };
  delete metadata[CHECKPOINT_SHA256_KEY];
  const variants: [string, Record<string, unknown>, Record<string, string>, RegExp][] = [
    ['missing', (() => { const t = { ...tensors }; delete t['head.w']; return t; })(), metadata, /missing tensor\(s\) head\.w/],
    ['extra', { ...tensors, stray: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }, metadata, /unexpected tensor\(s\) stray/],
    ['wrong-shape', { ...tensors, wpe: { dtype: 'F32', shape: [4, 16], data: tensors.wpe!.data } }, metadata, /"wpe" has shape \[4,16\], but the config needs \[8,8\]/],
    ['bad-config', tensors, { ...metadata, 'gmt.config': JSON.stringify({ ...cfg, nHeads: 3 }) }, /invalid model config.*divisible/],
    ['not-checkpoint', tensors, {}, /not a gmt-lab GPT checkpoint/],
    ['wrong-dtype', { ...tensors, wpe: { dtype: 'F64', shape: [8, 8], data: new Float64Array(64) } }, metadata, /"wpe" has dtype F64, expected F32/],
    ['bad-sum', tensors, { ...metadata, [CHECKPOINT_SHA256_KEY]: '0'.repeat(64) }, /records 0{64}: the file is corrupted/],
  ];
  for (const [name, t, meta, pattern] of variants) {
    const p = file(`ckpt-${name}.safetensors`);
    saveSafetensors(p, t as never, meta);
    assert.throws(() => loadCheckpoint(p), (e: Error) => e.message.includes(p) && pattern.test(e.message));
  }

  // One flipped bit in the tensor data still parses as safetensors, but the checksum catches it.
  const bytes = fs.readFileSync(file('ckpt.safetensors'));
  bytes[bytes.length - 3]! ^= 0x10;
  fs.writeFileSync(file('ckpt-flipped.safetensors'), bytes);
  assert.ok(loadSafetensors(file('ckpt-flipped.safetensors')));
  assert.throws(() => loadCheckpoint(file('ckpt-flipped.safetensors')), /ckpt-flipped\.safetensors: tensor data has sha256 [0-9a-f]{64}, but the checkpoint records [0-9a-f]{64}: the file is corrupted/);
  // Truncated and zero-length files are named with the problem.
  fs.writeFileSync(file('ckpt-truncated.safetensors'), bytes.subarray(0, bytes.length - 100));
  assert.throws(() => loadCheckpoint(file('ckpt-truncated.safetensors')), /ckpt-truncated\.safetensors: .*(outside|cover only)/);
  fs.writeFileSync(file('ckpt-empty.safetensors'), '');
  assert.throws(() => loadCheckpoint(file('ckpt-empty.safetensors')), /ckpt-empty\.safetensors: file is 0 bytes/);
  model.dispose();
});

test('kill -9 while a checkpoint is being written leaves the previous file intact, never a mix', async () => {
  // A child overwrites one checkpoint again and again with models of seeds 1, 2, 3, ...; each
  // round it is killed at a random moment (seeded), and the file must load as one whole model.
  const target = file('crash.safetensors');
  const writer = path.join(__dirname, 'helpers', 'checkpoint-writer.ts');
  const expected = await (async () => {
    await tf.setBackend('cpu');
    return [1, 2].map((seed) => {
      const m = new GPT({ ...CRASH_MODEL, seed });
      const sha = weightsSha256(m.params);
      m.dispose();
      return sha;
    });
  })();
  let state = 7;
  const rand = (): number => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);
  let loads = 0;
  let midWrite = 0;
  for (let round = 0; round < 8; round++) {
    const child = spawn(process.execPath, ['--import', 'tsx', writer, target], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    await new Promise((r) => setTimeout(r, 20 + rand() * 400));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    if (fs.readdirSync(dir).some((n) => n.startsWith('.crash.safetensors.'))) midWrite += 1;
    if (!fs.existsSync(target)) continue; // killed before the first rename
    const back = loadCheckpoint(target);
    assert.ok(expected.includes(weightsSha256(back.params)), `round ${round}: the file holds one of the two models`);
    back.dispose();
    loads += 1;
  }
  assert.ok(loads >= 6, `the checkpoint existed after most kills (${loads}/8)`);
  assert.ok(midWrite >= 1, `some kills landed mid-write, leaving a temporary file (${midWrite}/8)`);
  // Stray temporary files of the killed writers are removed by the next write.
  const m = new GPT({ ...CRASH_MODEL, seed: 1 });
  saveCheckpoint(target, m);
  m.dispose();
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('.crash.safetensors.')), []);
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
