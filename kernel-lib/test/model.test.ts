import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { GPT, generate, gptPreset, paramSpecs, weightsSha256, type GPTConfig } from '../src/model';
import { setCustomKernelsEnabled } from '../src/model/kernels';
import type { TensorBatch } from '../src/types';
import { Rng } from '../src/util/rng';

const TINY: Partial<GPTConfig> = { vocabSize: 16, contextLength: 12, dModel: 16, nLayers: 2, nHeads: 2, seed: 7 };

function batchOf(V: number, B: number, T: number, seed: number, weighted = true): TensorBatch {
  const rng = new Rng(seed);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(0, V - 1));
  const tg = Int32Array.from({ length: B * T }, () => rng.int(0, V - 1));
  const w = Float32Array.from({ length: B * T }, (_, i) => (weighted && i % 4 === 0 ? 0 : 1));
  return { inputs: tf.tensor2d(ids, [B, T], 'int32'), targets: tf.tensor2d(tg, [B, T], 'int32'), weights: tf.tensor2d(w, [B, T]) };
}

function gradsOf(model: GPT, batch: TensorBatch): { loss: number; grads: Float32Array[] } {
  const { value, grads } = tf.variableGrads(() => model.loss(batch), model.params.map((p) => p.variable));
  const out = { loss: value.dataSync()[0] as number, grads: model.params.map((p) => grads[p.variable.name]!.dataSync() as Float32Array) };
  value.dispose();
  tf.dispose(grads);
  return out;
}

function assertClose(a: Float32Array, b: Float32Array, rtol: number, what: string): void {
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs((a[i] as number) - (b[i] as number)) <= rtol * scale + 1e-7, `${what}[${i}]: ${a[i]} vs ${b[i]} (scale ${scale})`);
  }
}

test('presets have the documented sizes and every spec shape', async () => {
  await tf.setBackend('cpu');
  const sizes = { nano: [0.1e6, 0.3e6], micro: [0.7e6, 1.3e6], mini: [8e6, 12e6] } as const;
  for (const [name, [lo, hi]] of Object.entries(sizes)) {
    const cfg = gptPreset(name as 'nano', { vocabSize: 80 });
    const n = paramSpecs(cfg).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
    assert.ok(n >= lo && n <= hi, `${name}: ${n} params`);
  }
  const model = new GPT(gptPreset('nano', { vocabSize: 40 }));
  assert.equal(model.numParams, paramSpecs(model.config).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0));
  const names = model.params.map((p) => p.name);
  assert.deepEqual(names.slice(0, 4), ['wte', 'wpe', 'blocks.0.ln1.gamma', 'blocks.0.ln1.beta']);
  assert.equal(names.at(-1), 'head.w');
  assert.deepEqual(model.params.find((p) => p.name === 'blocks.1.mlp.w1')!.variable.shape, [64, 256]);
  assert.equal(model.params.find((p) => p.name === 'blocks.1.attn.wo')!.group, 'block.1');
  assert.equal(model.params.find((p) => p.name === 'lnf.gamma')!.group, 'head');
  assert.equal(model.params.find((p) => p.name === 'wpe')!.kind, 'embed');
  const logits = tf.tidy(() => model.logits(tf.zeros([3, 5], 'int32')));
  assert.deepEqual(logits.shape, [3, 5, 40]);
  logits.dispose();
  model.dispose();
  assert.throws(() => new GPT({ vocabSize: 10, dModel: 30, nHeads: 4 }), /divisible/);
  assert.throws(() => new GPT({ vocabSize: 10, dropout: 0.1 } as never), /unknown option "dropout"/);
  const stray = tf.zeros([2]);
  assert.throws(() => new GPT({ vocabSize: 10 }, {}, { 'blocks.9.ln1.gamma': stray }), /unknown parameter name\(s\) blocks\.9\.ln1\.gamma/);
  assert.throws(() => new GPT({ vocabSize: 10, dModel: 8, nHeads: 2 }, {}, { 'lnf.gamma': stray }), /"lnf\.gamma" has shape \[2\], expected \[8\]/);
  stray.dispose();
});

test('initialisation is a pure function of the seed', async () => {
  await tf.setBackend('cpu');
  const a = new GPT({ ...TINY, seed: 1 });
  const b = new GPT({ ...TINY, seed: 1 });
  const c = new GPT({ ...TINY, seed: 2 });
  assert.equal(weightsSha256(a.params), weightsSha256(b.params));
  assert.notEqual(weightsSha256(a.params), weightsSha256(c.params));
  // N(0, 0.02) and the residual scaling are visible in the spread of the weights.
  const std = (n: string, m: GPT) => tf.tidy(() => Math.sqrt(tf.moments(m.param(n)).variance.dataSync()[0] as number));
  const big = new GPT({ ...TINY, dModel: 64, nLayers: 8, nHeads: 4 });
  assert.ok(Math.abs(std('blocks.0.mlp.w1', big) - 0.02) < 0.002);
  assert.ok(Math.abs(std('blocks.0.mlp.w2', big) - 0.02 / 4) < 0.0005);
  [a, b, c, big].forEach((m) => m.dispose());
});

for (const kernels of [true, false]) test(`fast and plain paths give the same loss and gradients (cpu, custom kernels ${kernels ? 'on' : 'off'})`, async () => {
  await tf.setBackend('cpu');
  setCustomKernelsEnabled(kernels);
  const fast = new GPT(TINY);
  const plain = new GPT(TINY, { fast: false });
  assert.equal(weightsSha256(fast.params), weightsSha256(plain.params));
  const batch = batchOf(16, 3, 10, 5);
  const f = gradsOf(fast, batch);
  const p = gradsOf(plain, batch);
  assert.ok(Math.abs(f.loss - p.loss) < 1e-5, `${f.loss} vs ${p.loss}`);
  f.grads.forEach((g, i) => assertClose(g, p.grads[i] as Float32Array, 1e-4, fast.params[i]!.name));
  // Full-context sequences take the no-padding branch of the position-embedding gradient.
  const full = batchOf(16, 2, 12, 6, false);
  const f2 = gradsOf(fast, full);
  const p2 = gradsOf(plain, full);
  f2.grads.forEach((g, i) => assertClose(g, p2.grads[i] as Float32Array, 1e-4, fast.params[i]!.name));
  tf.dispose([batch.inputs, batch.targets, batch.weights, full.inputs, full.targets, full.weights]);
  fast.dispose();
  plain.dispose();
  setCustomKernelsEnabled(true);
});

test('wasm and cpu gradients agree', async () => {
  const results: { loss: number; grads: Float32Array[] }[] = [];
  for (const backend of ['cpu', 'wasm']) {
    await tf.setBackend(backend);
    const model = new GPT(TINY);
    const batch = batchOf(16, 4, 9, 11);
    results.push(gradsOf(model, batch));
    tf.dispose([batch.inputs, batch.targets, batch.weights]);
    model.dispose();
  }
  const [cpu, wasm] = results as [typeof results[0], typeof results[0]];
  assert.ok(Math.abs(cpu.loss - wasm.loss) < 1e-5);
  cpu.grads.forEach((g, i) => assertClose(wasm.grads[i] as Float32Array, g, 1e-3, `grad ${i}`));
  await tf.setBackend('cpu');
});

for (const backend of ['cpu', 'wasm']) {
  test(`loss falls over 20 Adam steps on a repeated batch and no tensor leaks (${backend})`, async () => {
    await tf.setBackend(backend);
    const model = new GPT(TINY);
    const batch = batchOf(16, 4, 12, 3);
    const opt = tf.train.adam(1e-2);
    const vars = model.params.map((p) => p.variable);
    const losses: number[] = [];
    let before = 0;
    for (let i = 0; i < 20; i++) {
      const { value, grads } = tf.variableGrads(() => model.loss(batch), vars);
      opt.applyGradients(grads as never);
      losses.push(value.dataSync()[0] as number);
      value.dispose();
      tf.dispose(grads);
      if (i === 1) before = tf.memory().numTensors; // after Adam has made its slots
    }
    assert.equal(tf.memory().numTensors, before, 'tensor count grew during training');
    assert.ok((losses.at(-1) as number) < (losses[0] as number) * 0.7, `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
    opt.dispose();
    tf.dispose([batch.inputs, batch.targets, batch.weights]);
    model.dispose();
    await tf.setBackend('cpu');
  });
}

test('loss counts only tokens with weight 1', async () => {
  await tf.setBackend('cpu');
  const model = new GPT(TINY);
  const b = batchOf(16, 2, 6, 9, false);
  const masked = { ...b, weights: tf.tensor2d([0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1], [2, 6]) };
  const perToken = tf.tidy(() => {
    const lp = tf.logSoftmax(model.logits(b.inputs));
    return tf.neg(tf.sum(tf.mul(lp, tf.oneHot(b.targets, 16)), -1)).dataSync();
  });
  const expected = ((perToken[3] as number) + (perToken[4] as number) + (perToken[5] as number) + (perToken[11] as number)) / 4;
  const got = tf.tidy(() => model.loss(masked).dataSync()[0] as number);
  assert.ok(Math.abs(got - expected) < 1e-5, `${got} vs ${expected}`);
  tf.dispose([b.inputs, b.targets, b.weights, masked.weights]);
  model.dispose();
});

/** A model with large random weights so that logits differ clearly (no near-ties in argmax). */
function sharpModel(cfg: Partial<GPTConfig>): GPT {
  const base = new GPT(cfg);
  const weights: Record<string, tf.Tensor> = {};
  base.params.forEach((p, i) => {
    weights[p.name] = p.kind === 'norm' ? p.variable.clone() : tf.randomNormal(p.variable.shape, 0, 0.4, 'float32', 100 + i);
  });
  const model = new GPT(cfg, {}, weights);
  tf.dispose(Object.values(weights));
  base.dispose();
  return model;
}

for (const backend of ['cpu', 'wasm']) {
  test(`generation: cached decoding equals full recomputation, seeded sampling repeats, no leaks (${backend})`, async () => {
    await tf.setBackend(backend);
    const model = sharpModel({ ...TINY, contextLength: 10 });
    const prompts = [[1, 2, 3], [4], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 1], [2, 2]];
    const greedy = generate(model, prompts, { maxNewTokens: 14 });
    const reference = generate(model, prompts, { maxNewTokens: 14, cache: false });
    assert.deepEqual(greedy, reference);
    assert.ok(greedy.every((g) => g.length === 14));
    assert.deepEqual(generate(model, prompts, { maxNewTokens: 14 }), greedy);
    const sampleAll = () => [
      generate(model, prompts, { maxNewTokens: 8, temperature: 1, seed: 5 }),
      generate(model, prompts, { maxNewTokens: 8, temperature: 1, seed: 5, batchSize: 1 }),
      generate(model, prompts, { maxNewTokens: 8, temperature: 1, seed: 6 }),
      generate(model, prompts, { maxNewTokens: 8, temperature: 1, seed: 5, cache: false }),
    ];
    sampleAll(); // the model caches one causal mask per sequence length it has seen
    const before = tf.memory().numTensors;
    const [s1, s2, s3, s1ref] = sampleAll() as [number[][], number[][], number[][], number[][]];
    assert.equal(tf.memory().numTensors, before, 'generate leaked tensors');
    assert.deepEqual(s1, s2);
    assert.deepEqual(s1, s1ref);
    assert.notDeepEqual(s1, s3);
    // A stop token ends a row and is not returned.
    const stopAt = greedy[0]![3] as number;
    const stopped = generate(model, [prompts[0]!], { maxNewTokens: 14, stopToken: stopAt });
    assert.deepEqual(stopped[0], greedy[0]!.slice(0, greedy[0]!.indexOf(stopAt)));
    assert.throws(() => generate(model, [[99]], { maxNewTokens: 1 }), /outside 0\.\.15/);
    assert.throws(() => generate(model, [[]], { maxNewTokens: 1 }), /prompt 0 is empty/);
    model.dispose();
    await tf.setBackend('cpu');
  });
}
