/**
 * Real data fits: a base model's context extended at load (`context`), so that GSM8K's worked
 * answers, longer than the 128 positions of `nano` and `micro`, are trained on. The extended
 * model computes short sequences exactly as the base; the new positions start as stated and
 * seeded; the command line counts what is used, left out and cut. Checked on a committed excerpt
 * of the published GSM8K train file, and on the whole file where it is present
 * (`build/gsm8k/train.jsonl`, or `GMT_GSM8K_TRAIN`; README, "Real data").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { main } from '../src/cli/main';
import { completionFits, makeBatch } from '../src/data/batching';
import { CharTokenizer } from '../src/data/tokenizer';
import { extendPositionTable, loadCheckpointWithContext } from '../src/model/context';
import { loadCheckpoint } from '../src/model/safetensors';
import { toTensorBatch } from '../src/train/trainer';
import { finetune, loadTaskData } from '../src/sweep/finetune';
import { resolveBaseCheckpoint } from '../src/sweep/paths';
import { ConfigError } from '../src/util/config';

const repoRoot = path.resolve(__dirname, '..', '..');
const excerpt = path.join(repoRoot, 'data/samples/gsm8k-train-excerpt.jsonl');
const realFile = process.env.GMT_GSM8K_TRAIN || path.join(repoRoot, 'build/gsm8k/train.jsonl');
/** sha256 of grade_school_math/data/train.jsonl in openai/grade-school-math. */
const REAL_SHA256 = '17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465';

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; } });
  return { code, stdout, stderr };
}

test('extendPositionTable keeps the trained rows and starts new ones as stated: tile (row p mod L plus seeded noise) or normal (seeded N(0, 0.02²))', () => {
  const L = 16;
  const d = 8;
  const wpe = Float32Array.from({ length: L * d }, (_, i) => Math.sin(i) * 0.3);
  for (const init of ['tile', 'normal'] as const) {
    const out = extendPositionTable(wpe, L, 4096, d, init, 7);
    assert.equal(out.length, 4096 * d);
    assert.deepEqual(out.subarray(0, L * d), wpe, `${init}: trained rows unchanged`);
    const noise: number[] = [];
    for (let p = L; p < 4096; p++) for (let j = 0; j < d; j++) noise.push(out[p * d + j]! - (init === 'tile' ? wpe[(p % L) * d + j]! : 0));
    const mean = noise.reduce((a, b) => a + b, 0) / noise.length;
    const std = Math.sqrt(noise.reduce((a, b) => a + (b - mean) ** 2, 0) / noise.length);
    assert.ok(Math.abs(mean) < 0.001 && Math.abs(std - 0.02) < 0.001, `${init}: noise N(0, 0.02²), got mean ${mean}, std ${std}`);
    assert.deepEqual(extendPositionTable(wpe, L, 4096, d, init, 7), out, `${init}: the same seed gives the same table`);
    assert.notDeepEqual(extendPositionTable(wpe, L, 4096, d, init, 8), out, `${init}: another seed another table`);
  }
  assert.deepEqual(extendPositionTable(wpe, L, L, d, 'tile', 0), wpe, 'the same context: the same table');
  assert.throws(() => extendPositionTable(wpe, L, L - 1, d, 'tile', 0), /context 15 is shorter than the model's 16/);
  assert.throws(() => extendPositionTable(wpe, L, 32, d, 'zeros' as 'tile', 0), /context init must be one of normal, tile; got "zeros"/);
});

test('a nano base extended to 1024 positions computes sequences that fit in 128 exactly as the base, and trains on longer ones; no tensors leak', async () => {
  await initBackend({ quiet: true });
  const before = tf.memory().numTensors;
  const file = resolveBaseCheckpoint('nano').path;
  const base = loadCheckpoint(file);
  const { model: long, baseContextLength } = loadCheckpointWithContext(file, { context: 1024, seed: 3 });
  try {
    assert.equal(baseContextLength, 128);
    assert.equal(long.config.contextLength, 1024);
    for (const p of base.params) {
      const a = p.variable.dataSync();
      const b = long.param(p.name).dataSync();
      if (p.name === 'wpe') assert.deepEqual(b.subarray(0, a.length), a);
      else assert.deepEqual(b, a, p.name);
    }
    const tokenizer = new CharTokenizer();
    const examples = [{ prompt: 'Q: 2 + 3 = ?\nA: ', completion: '5', meta: { task: 'math', source: 't' } }, { prompt: 'Q: 4 + 1 = ?\nA: ', completion: '5', meta: { task: 'math', source: 't' } }] as never;
    const batch = toTensorBatch(makeBatch(examples, tokenizer, { seqLen: 128, padTo: 'longest' }));
    const lossOf = (m: typeof base): number => {
      const l = tf.tidy(() => m.loss(batch));
      const v = l.dataSync()[0]!;
      l.dispose();
      return v;
    };
    assert.equal(lossOf(long), lossOf(base), 'the same loss, bit for bit');
    tf.dispose([batch.inputs, batch.targets, batch.weights]);
  } finally {
    base.dispose();
    long.dispose();
  }
  assert.throws(() => loadCheckpointWithContext(file, { context: 64 }), (e: Error) => e instanceof ConfigError && /context 64 is shorter than the 128 positions of .*nano\.safetensors/.test(e.message));
  // A short fine-tune on the excerpt's long problems.
  const r = await finetune({ base: 'nano', task: excerpt, context: 1024, steps: 2, warmup: 1, accum: 1, batchSize: 2, testSize: 0, valSize: 2, seed: 0 });
  assert.equal(r.data.train + r.data.validation + r.data.test, 39);
  assert.equal(r.data.tooLong, 3);
  assert.equal(r.data.promptCut, 1);
  assert.deepEqual(r.data.context, { base: 128, extended: 1024, init: 'normal' });
  assert.equal(r.base.model.contextLength, 1024);
  assert.ok(r.train.history.every((h) => Number.isFinite(h.loss)));
  assert.equal(tf.memory().numTensors, before, 'no tensor is left');
});

test('gmt-lab train --context on the GSM8K excerpt: counts used, left out and cut in one line; without it, the base\'s 128 positions', async () => {
  const common = ['train', '--task', excerpt, '--preset', 'nano', '--steps', '1', '--warmup', '0', '--accum', '1', '--batch', '2', '--test-size', '0', '--val-size', '2', '--json'];
  const short = await run(common);
  assert.equal(short.code, 0, short.stderr);
  assert.match(short.stderr, /gsm8k-train-excerpt\.jsonl: 10 of 42 examples used \(23\.8%\) at context 128; 32 left out; 10 with the start of the prompt cut to fit/);
  const long = await run([...common, '--context', '1024']);
  assert.equal(long.code, 0, long.stderr);
  assert.match(long.stderr, /gsm8k-train-excerpt\.jsonl: 39 of 42 examples used \(92\.8%\) at context 1024 \(the base's 128, extended: normal\); 3 left out; 1 with the start of the prompt cut to fit/);
  const record = JSON.parse(long.stdout);
  assert.equal(record.config.context, 1024);
  assert.equal(record.config.contextInit, 'normal');
  assert.equal(record.data.tooLong, 3);
  const tile = await run([...common, '--context=1024', '--context-init=tile']);
  assert.equal(tile.code, 0, tile.stderr);
  assert.match(tile.stderr, /at context 1024 \(the base's 128, extended: tile\)/);
  for (const [argv, pattern] of [
    [['--context', '64'], /context 64 is shorter than the 128 positions of/],
    [['--context', '5000'], /--context must be in \[2, 4096\], got 5000/],
    [['--context-init', 'zeros'], /--context-init must be one of normal, tile; got "zeros"/],
  ] as const) {
    const bad = await run([...common, ...argv]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, pattern);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  }
});

const realPresent = fs.existsSync(realFile) ? false : `the published GSM8K train file is not at ${realFile} (README, "Real data", says how to get it)`;

test('the published GSM8K train file: 1,205 of 7,473 problems fit the base\'s 128 positions; at context 1024, 7,470 (99.96%), 112 with the question cut', { skip: realPresent }, () => {
  assert.equal(createHash('sha256').update(fs.readFileSync(realFile)).digest('hex'), REAL_SHA256, `${realFile} is the published file`);
  const tokenizer = new CharTokenizer();
  const counts = (seqLen: number): { used: number; tooLong: number | undefined } => {
    const data = loadTaskData({ task: realFile, taskOptions: {}, dataSeed: 0, valSize: 200, testSize: 500 }, { fits: (e) => completionFits(e, tokenizer, seqLen) });
    return { used: data.train.length + data.validation.length + data.test.length, tooLong: data.tooLong };
  };
  assert.deepEqual(counts(128), { used: 1205, tooLong: 6268 });
  assert.deepEqual(counts(1024), { used: 7470, tooLong: 3 });
});

test('gmt-lab train on the published GSM8K train file at --context 1024 reports ≥ 95% used and trains', { skip: realPresent, timeout: 600_000 }, async () => {
  const r = await run(['train', '--task', realFile, '--preset', 'nano', '--context', '1024', '--steps', '2', '--warmup', '0', '--accum', '1', '--batch', '4', '--test-size', '0', '--val-size', '8', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /train\.jsonl: 7,470 of 7,473 examples used \(99\.9%\) at context 1024 \(the base's 128, extended: normal\); 3 left out; 112 with the start of the prompt cut to fit/);
  const record = JSON.parse(r.stdout);
  assert.ok(record.train.history.every((h: { loss: number }) => Number.isFinite(h.loss)));
});
