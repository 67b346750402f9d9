import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { train, type TrainResult } from '../src/train/trainer';
import { weightsSha256 } from '../src/model/hash';
import { GPT } from '../src/model/gpt';
import { getStrategy } from '../src/tuning/registry';
import type { HostBatch, ParamInfo, TensorBatch, TrainableModel } from '../src/types';
import { ConfigError } from '../src/util/config';
import { TinyModel, tinyBatches } from './helpers/tiny-model';
import { RecordingStrategy } from './helpers/recording-strategy';

before(async () => {
  await tf.setBackend('cpu');
});

/**
 * loss(w) = Σ wᵢ cᵢ with c carried in the batch's `weights` row, so ∇w = c exactly: lets a test
 * choose each micro-batch's gradient.
 */
class LinearModel implements TrainableModel {
  readonly params: ParamInfo[];
  constructor(init: number[]) {
    const variable = tf.tidy(() => tf.variable(tf.tensor1d(init), true));
    this.params = [{ name: 'w', variable, group: 'head', kind: 'head' }];
  }
  loss(batch: TensorBatch): tf.Scalar {
    return tf.tidy(() => tf.sum(tf.mul(this.params[0]!.variable, tf.reshape(batch.weights, [-1]))) as tf.Scalar);
  }
  dispose(): void {
    this.params[0]!.variable.dispose();
  }
}
const gradBatch = (c: number[]): HostBatch => ({
  batchSize: 1,
  seqLen: c.length,
  inputs: new Int32Array(c.length),
  targets: new Int32Array(c.length),
  weights: Float32Array.from(c),
});

async function runTiny(options: Record<string, unknown>, modelSeed = 1, dataSeed = 2): Promise<TrainResult> {
  const model = new TinyModel({ seed: modelSeed });
  try {
    return await train(model, { steps: 5, accum: 2, lr: 1e-2, nextBatch: tinyBatches(dataSeed), ...options });
  } finally {
    model.dispose();
  }
}

test('gmt with ratio 0 gives weights bit-identical to sft', async () => {
  const sft = await runTiny({ strategy: 'sft' });
  const gmt0 = await runTiny({ strategy: { name: 'gmt', options: { ratio: 0 } } });
  const gmt3 = await runTiny({ strategy: { name: 'gmt', options: { ratio: 0.3 } } });
  assert.equal(gmt0.weightsSha256, sft.weightsSha256);
  assert.notEqual(gmt3.weightsSha256, sft.weightsSha256, 'a real mask changes the weights');
  assert.deepEqual(gmt0.history.map((h) => h.loss), sft.history.map((h) => h.loss));
});

test('the mask is computed from the averaged Γ, not per micro-batch', async () => {
  // Micro-batch gradients A = [3, 2, 1, 0], B = [−3, 0, 1, 2]; Γ = [0, 1, 1, 1].
  // GMT k = 0.5 on Γ: T = 1 (ties kept) → keeps entries 1, 2, 3.
  // Masking each micro-batch first would keep A{0,1}, B{0,3} → mean [0, 1, 0, 1]: entry 2 frozen.
  const model = new LinearModel([1, 1, 1, 1]);
  const batches = [gradBatch([3, 2, 1, 0]), gradBatch([-3, 0, 1, 2])];
  let i = 0;
  const recorder = new RecordingStrategy(getStrategy('gmt', { ratio: 0.5 }));
  const result = await train(model, {
    strategy: recorder,
    steps: 1,
    accum: 2,
    lr: 0.1,
    weightDecay: 0,
    nextBatch: () => batches[i++ % 2]!,
  });
  assert.deepEqual(Array.from(recorder.updates[0]!.gamma.get('w')!), [0, 1, 1, 1]);
  assert.deepEqual(Array.from(recorder.updates[0]!.masks!.get('w')!), [0, 1, 1, 1]);
  const w = model.params[0]!.variable.dataSync();
  assert.equal(w[0], 1, 'Γ₀ = 0: no move');
  for (const j of [1, 2, 3]) assert.ok(Math.abs(w[j]! - 0.9) < 1e-5, `entry ${j} stepped by lr: ${w[j]}`);
  // Loss = mean of the micro-batch losses (Σc·w at w = 1): (6 + 0) / 2; ‖Γ‖ = √3.
  assert.equal(result.history[0]!.loss, 3);
  assert.ok(Math.abs(result.history[0]!.gradNorm - Math.sqrt(3)) < 1e-6);
  recorder.dispose();
  model.dispose();
});

test('on wasm the trainer\'s norm and AdamW kernels give the tfjs results: ‖Γ‖ and the clipped step', async () => {
  await tf.setBackend('wasm');
  try {
    // Γ = [3, 4, 0, 12] → ‖Γ‖ = 13; clipped to norm 1.3 before an SGD-like first Adam step.
    const model = new LinearModel([1, 1, 1, 1]);
    const result = await train(model, { strategy: 'sft', steps: 1, lr: 0.1, weightDecay: 0, clipNorm: 1.3, nextBatch: () => gradBatch([3, 4, 0, 12]) });
    assert.ok(Math.abs(result.history[0]!.gradNorm - 13) < 1e-5, `‖Γ‖ = ${result.history[0]!.gradNorm}`);
    const w = model.params[0]!.variable.dataSync();
    // Adam's first step is lr·sign(g) (up to ε) whatever the clip scale; g = 0 leaves the entry.
    for (const [j, want] of [[0, 0.9], [1, 0.9], [2, 1], [3, 0.9]] as const) assert.ok(Math.abs(w[j]! - want) < 1e-5, `w[${j}] = ${w[j]}`);
    model.dispose();
  } finally {
    await tf.setBackend('cpu');
  }
});

test('maskUpdate: true leaves masked entries bit-unchanged; false lets momentum and decay move them', async () => {
  const run = async (maskUpdate: boolean) => {
    const model = new TinyModel({ seed: 5 });
    const recorder = new RecordingStrategy(getStrategy('gmt', { ratio: 0.5, maskUpdate }));
    const snapshots: Map<string, Float32Array>[] = [];
    const snap = () => new Map(model.params.map((p) => [p.name, Float32Array.from(p.variable.dataSync())]));
    snapshots.push(snap());
    await train(model, {
      strategy: recorder,
      steps: 6,
      accum: 1,
      lr: 1e-2,
      weightDecay: 0.1,
      nextBatch: tinyBatches(6),
      onUpdate: () => {
        snapshots.push(snap());
      },
    });
    let maskedEntries = 0;
    let movedMasked = 0;
    for (let s = 1; s < 6; s++) {
      // From the second update on, the moments are nonzero for most entries.
      const masks = recorder.updates[s]!.masks!;
      for (const [name, mask] of masks) {
        const before = snapshots[s]!.get(name)!;
        const after = snapshots[s + 1]!.get(name)!;
        mask.forEach((m, i) => {
          if (m === 0) {
            maskedEntries++;
            if (!Object.is(before[i], after[i])) movedMasked++;
          }
        });
      }
    }
    recorder.dispose();
    model.dispose();
    return { maskedEntries, movedMasked };
  };
  const on = await run(true);
  const off = await run(false);
  assert.ok(on.maskedEntries > 100);
  assert.equal(on.movedMasked, 0, 'maskUpdate: true → masked entries bit-identical');
  assert.ok(off.movedMasked > off.maskedEntries / 2, `without the flag masked entries move (${off.movedMasked}/${off.maskedEntries})`);
});

test('same seed → same weights; different seed → different weights', async () => {
  const cfg = { strategy: { name: 'childtuning-f', options: { p: 0.5 } } };
  const a = await runTiny({ ...cfg, seed: 11 });
  const b = await runTiny({ ...cfg, seed: 11 });
  const c = await runTiny({ ...cfg, seed: 12 });
  assert.equal(a.weightsSha256, b.weightsSha256);
  assert.notEqual(a.weightsSha256, c.weightsSha256);
  // The whole pipeline is deterministic for every method that draws at random.
  for (const name of ['random-mask', 'hft', 'childtuning-d']) {
    const x = await runTiny({ strategy: name, seed: 3 });
    const y = await runTiny({ strategy: name, seed: 3 });
    assert.equal(x.weightsSha256, y.weightsSha256, name);
  }
});

test('cancellation between updates returns the partial result', async () => {
  const controller = new AbortController();
  let evalCalls = 0;
  const result = await runTiny({
    strategy: 'gmt',
    steps: 50,
    signal: controller.signal,
    evaluate: () => {
      evalCalls++;
      return { score: 1 };
    },
    onUpdate: (info: { step: number }) => {
      if (info.step === 3) controller.abort();
    },
  });
  assert.equal(result.stoppedEarly, true);
  assert.equal(result.updates, 3);
  assert.equal(result.history.length, 3);
  assert.equal(evalCalls, 0, 'no final evaluation after an interrupt');
  assert.equal(result.final.trainLoss, result.history[2]!.loss);
  // A timer firing while training also stops it: the trainer yields between updates.
  const timed = new AbortController();
  setTimeout(() => timed.abort(), 0);
  const partial = await runTiny({ strategy: 'sft', steps: 500, accum: 1, signal: timed.signal });
  assert.equal(partial.stoppedEarly, true);
  assert.ok(partial.updates < 500);
});

test('the result record is complete and survives JSON round trips; evaluation cadence and callbacks', async () => {
  const evalSteps: number[] = [];
  let ended: TrainResult | undefined;
  const result = await runTiny({
    strategy: { name: 'gmt', options: { ratio: 0.2, scope: 'global' } },
    steps: 5,
    evalEvery: 2,
    warmup: 2,
    clipNorm: 0.5,
    clipOrder: 'after-mask',
    seed: 4,
    evaluate: async () => ({ accuracy: evalSteps.length / 10 }),
    onEval: (e: { step: number }) => {
      evalSteps.push(e.step);
    },
    onEnd: (r: TrainResult) => {
      ended = r;
    },
  });
  assert.deepEqual(evalSteps, [2, 4, 5]);
  assert.equal(ended, result);
  assert.deepEqual(JSON.parse(JSON.stringify(result)), result);
  assert.deepEqual(result.config.strategy, { name: 'gmt', options: { ratio: 0.2, scope: 'global', maskUpdate: false, signal: 'grad' } });
  assert.equal(result.config.clipOrder, 'after-mask');
  assert.equal(result.seed, 4);
  assert.equal(result.backend, 'cpu');
  assert.equal(result.final.accuracy, 0.2);
  assert.equal(result.history[0]!.lr, 5e-3, 'warmup: half the peak at update 1 of 2');
  assert.ok(result.history.every((h) => h.keptFraction >= 0.8 && h.keptFraction < 0.81));
  assert.ok(result.history.slice(1).every((h) => typeof h.maskJaccard === 'number'));
  assert.ok(result.history[0]!.keptByTensor && Object.keys(result.history[0]!.keptByTensor).length === 16);
  assert.match(result.weightsSha256, /^[0-9a-f]{64}$/);
  assert.ok(result.timings.msPerUpdate > 0 && result.timings.totalMs >= result.timings.msPerUpdate);
  // Weights, AdamW's two moments and Γ are alive after a step: at least four copies of the parameters.
  const paramBytes = new TinyModel({ seed: 1 }).params.reduce((n, p) => { const b = p.variable.size * 4; p.variable.dispose(); return n + b; }, 0);
  assert.ok(result.peakTensorBytes >= 4 * paramBytes, `peak ${result.peakTensorBytes} B for ${paramBytes} B of parameters`);
});

test('gradient clipping bounds the norm the optimizer sees (before-mask)', async () => {
  const model = new LinearModel([0, 0]);
  const recorder = new RecordingStrategy(getStrategy('sft'));
  const result = await train(model, {
    strategy: recorder,
    steps: 1,
    accum: 1,
    clipNorm: 1,
    nextBatch: () => gradBatch([30, 40]),
  });
  const g = recorder.updates[0]!.gamma.get('w')!;
  assert.ok(Math.abs(Math.hypot(g[0]!, g[1]!) - 1) < 1e-5, 'clipped to norm 1 before the strategy');
  assert.ok(Math.abs(g[0]! / g[1]! - 0.75) < 1e-6, 'direction kept');
  assert.ok(Math.abs(result.history[0]!.gradNorm - 50) < 1e-4, 'recorded norm is the unclipped ‖Γ‖');
  model.dispose();
});

test('bad options are clear errors', async () => {
  const model = new TinyModel();
  const nextBatch = tinyBatches(1);
  await assert.rejects(train(model, { nextBatch, stpes: 3 } as never), /unknown option "stpes"/);
  await assert.rejects(train(model, { nextBatch, clipOrder: 'sometimes' } as never), /clipOrder must be one of before-mask, after-mask/);
  await assert.rejects(train(model, { nextBatch, accum: 0 }), /accum must be >= 1/);
  await assert.rejects(train(model, { nextBatch, strategy: 'gtm' }), /unknown tuning method "gtm"/);
  await assert.rejects(train(model, { steps: 2 } as never), /nextBatch .* is required/);
  await assert.rejects(train(model, { nextBatch, warmup: 500, steps: 10 }), ConfigError);
  const short = [tinyBatches(1)()];
  await assert.rejects(train(model, { nextBatch: short, steps: 2, accum: 1 }), /ran out of batches/);
  assert.equal(weightsSha256(model.params), weightsSha256(model.params));
  model.dispose();
});

test('ema: the moving average of the weights follows θ̄ ← d·θ̄ + (1 − d)·θ after every update and leaves training unchanged', async () => {
  await tf.setBackend('wasm');
  const cfg = { vocabSize: 20, contextLength: 8, dModel: 8, nLayers: 1, nHeads: 2, seed: 3 };
  const batches = (i: number) => ({ batchSize: 2, seqLen: 8, inputs: Int32Array.from({ length: 16 }, (_, k) => (k * 3 + i) % 20), targets: Int32Array.from({ length: 16 }, (_, k) => (k * 5 + i) % 20), weights: new Float32Array(16).fill(1) });
  const run = async (ema: number) => {
    const model = new GPT(cfg);
    const seen: Float32Array[][] = [model.params.map((p) => p.variable.dataSync().slice() as Float32Array)];
    let i = 0;
    let average: Float32Array[] | undefined;
    await train(model, {
      strategy: 'sft', steps: 5, accum: 1, lr: 1e-2, warmup: 0, seed: 1, ema,
      nextBatch: () => batches(i++),
      onUpdate: () => { seen.push(model.params.map((p) => p.variable.dataSync().slice() as Float32Array)); },
      onAveraged: (w) => { average = model.params.map((p) => w.get(p.name)!.dataSync().slice() as Float32Array); },
    });
    const sha = weightsSha256(model.params);
    model.dispose();
    return { sha, seen, average };
  };
  try {
    const plain = await run(0);
    const tensors = tf.memory().numTensors;
    const averaged = await run(0.5);
    assert.equal(tf.memory().numTensors, tensors, 'the average left tensors behind');
    assert.equal(averaged.sha, plain.sha, 'keeping an average changed training');
    assert.equal(plain.average, undefined);
    const expected = averaged.seen[0]!.map((w) => Float32Array.from(w));
    for (const step of averaged.seen.slice(1)) {
      step.forEach((w, p) => { for (let k = 0; k < w.length; k++) expected[p]![k] = Math.fround(Math.fround(0.5 * expected[p]![k]!) + Math.fround(0.5 * w[k]!)); });
    }
    averaged.average!.forEach((a, p) => assert.deepEqual(a, expected[p], `parameter ${p}`));
  } finally {
    await tf.setBackend('cpu');
  }
});

test('GMT builds no mask tensors when nothing reads them: same weights, kept fractions and overlaps as with a hook that reads them', async () => {
  const run = async (hook: boolean) => {
    const model = new TinyModel({ seed: 5 });
    let maskTensors = 0;
    const result = await train(model, {
      strategy: { name: 'gmt', options: { ratio: 0.4 } }, steps: 6, accum: 2, lr: 1e-2, seed: 2, nextBatch: tinyBatches(3),
      ...(hook ? { onGradients: (info: { masks?: ReadonlyMap<string, unknown> }) => { maskTensors += info.masks?.size ?? 0; } } : {}),
    });
    const sha = weightsSha256(model.params);
    model.dispose();
    return { sha, maskTensors, kept: result.history.map((h) => h.keptFraction), jaccard: result.history.map((h) => h.maskJaccard), byTensor: result.history.map((h) => h.keptByTensor) };
  };
  for (const backend of ['cpu', 'wasm']) {
    await tf.setBackend(backend);
    const withHook = await run(true);
    const without = await run(false);
    check(withHook, without);
  }
  await tf.setBackend('cpu');
});

function check(withHook: { sha: string; maskTensors: number; kept: number[]; jaccard: unknown[]; byTensor: unknown[] }, without: typeof withHook): void {
  assert.ok(withHook.maskTensors > 0, 'the hook saw no masks');
  assert.equal(without.sha, withHook.sha);
  assert.deepEqual(without.kept, withHook.kept);
  assert.deepEqual(without.jaccard, withHook.jaccard);
  assert.deepEqual(without.byTensor, withHook.byTensor);
  assert.ok(without.kept.every((k) => k < 1), `kept fractions ${without.kept}`);
}
