/**
 * End to end on the committed base checkpoint: a short SFT run on `math` raises held-out
 * accuracy above the base model's, and the base checkpoints are what their manifest says.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { finetune } from '../src/sweep/finetune';
import { baseCheckpointPath, resolveBaseCheckpoint } from '../src/sweep/paths';
import { pretrain } from '../src/sweep/pretrain';

test('the committed nano base checkpoint matches its sha256 manifest', () => {
  const { path: file, sha256 } = resolveBaseCheckpoint('nano');
  assert.equal(file, baseCheckpointPath('nano'));
  assert.match(sha256, /^[0-9a-f]{64}$/);
});

test('a base checkpoint that differs from the manifest is rejected', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-base-'));
  fs.mkdirSync(path.join(dir, 'base'));
  const bytes = fs.readFileSync(baseCheckpointPath('nano'));
  bytes[bytes.length - 1] ^= 1;
  fs.writeFileSync(path.join(dir, 'base', 'nano.safetensors'), bytes);
  fs.copyFileSync(path.join(path.dirname(baseCheckpointPath('nano')), 'SHA256SUMS'), path.join(dir, 'base', 'SHA256SUMS'));
  assert.throws(() => resolveBaseCheckpoint('nano', { GMT_DATA_DIR: dir }), /does not match .*SHA256SUMS/);
});

test('a base that is neither a preset nor a file is named as such; a preset without its checkpoint says how to make it', () => {
  assert.throws(() => resolveBaseCheckpoint('nope'), /base "nope" is neither a model preset \(nano, micro, mini\) nor a checkpoint file/);
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-base-'));
  assert.throws(() => resolveBaseCheckpoint('mini', { GMT_DATA_DIR: empty }), /no base checkpoint for preset "mini" .*gmt-lab pretrain --preset mini/);
  assert.throws(() => resolveBaseCheckpoint(path.join(empty, 'x.safetensors')), /x\.safetensors does not exist/);
});

test('pre-training is deterministic: same seed, same weights; other seed, other weights', async () => {
  await initBackend({ quiet: true });
  const run = async (seed: number): Promise<string> => {
    const r = await pretrain({ preset: 'nano', steps: 3, warmup: 1, batchSize: 4, evalEvery: 0, seed, corpusOptions: { trainSize: 50, validationSize: 10, testSize: 10 } });
    r.gpt.dispose();
    return r.train.weightsSha256;
  };
  const a = await run(1);
  const b = await run(1);
  const c = await run(2);
  assert.equal(a, b);
  assert.notEqual(a, c);
});

test('a short SFT run from the nano base raises held-out math accuracy above the base model', async () => {
  await initBackend({ quiet: true });
  const before = tf.memory().numTensors;
  const r = await finetune({ base: 'nano', task: 'math', method: 'sft', steps: 40, accum: 1, batchSize: 16, lr: 3e-3, warmup: 20, testSize: 100, valSize: 100, scoreBase: true });
  assert.equal(tf.memory().numTensors, before, 'finetune leaves no tensors behind');
  assert.equal(r.train.updates, 40);
  assert.ok(r.metrics.valLoss < r.metrics.baseValLoss, `validation loss ${r.metrics.valLoss} < base ${r.metrics.baseValLoss}`);
  assert.ok(r.metrics.baseTestAccuracy !== undefined && r.metrics.testAccuracy !== undefined);
  assert.ok(r.metrics.testAccuracy > r.metrics.baseTestAccuracy, `accuracy ${r.metrics.testAccuracy} > base ${r.metrics.baseTestAccuracy}`);
});
