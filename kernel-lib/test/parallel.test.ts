import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { GPT, weightsSha256, type GPTConfig } from '../src/model';
import { shardRows } from '../src/parallel/pool';
import { train } from '../src/train';
import type { HostBatch } from '../src/types';
import { Rng } from '../src/util/rng';
import { setEngine } from '../src/backend/engine';

// Data-parallel worker threads are the wasm engine's layout (the native engine threads inside
// its kernels; native.test.ts).
setEngine('wasm');

const CFG: Partial<GPTConfig> = { vocabSize: 40, contextLength: 16, dModel: 32, nLayers: 2, nHeads: 4, seed: 5 };

function hostBatch(B: number, T: number, seed: number, weight: (row: number, i: number) => number = (_, i) => (i % 4 === 0 ? 0 : 1)): HostBatch {
  const rng = new Rng(seed);
  return {
    batchSize: B, seqLen: T,
    inputs: Int32Array.from({ length: B * T }, () => rng.int(0, 39)),
    targets: Int32Array.from({ length: B * T }, () => rng.int(0, 39)),
    weights: Float32Array.from({ length: B * T }, (_, i) => weight(Math.floor(i / T), i)),
  };
}

async function grads(model: GPT, b: HostBatch): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const r = await model.lossAndGradientsAsync(b);
  assert.ok(r);
  const out = { loss: r.loss.dataSync()[0] as number, grads: new Map([...r.grads].map(([n, g]) => [n, g.dataSync() as Float32Array])) };
  tf.dispose([r.loss, ...r.grads.values()]);
  return out;
}

test('shardRows splits rows as evenly as possible', () => {
  assert.deepEqual(shardRows(16, 2), [8, 8]);
  assert.deepEqual(shardRows(5, 2), [3, 2]);
  assert.deepEqual(shardRows(7, 3), [3, 2, 2]);
  assert.deepEqual(shardRows(1, 2), [1]);
});

test('two threads give the loss and gradients of one, weighted by each shard\'s loss weights', async () => {
  await tf.setBackend('wasm');
  const one = new GPT(CFG, { workers: 1 });
  const two = new GPT(CFG, { workers: 2 }, Object.fromEntries(one.params.map((p) => [p.name, p.variable])));
  try {
    assert.equal(two.workers, 1);
    const cases: HostBatch[] = [
      hostBatch(4, 16, 1),
      hostBatch(3, 9, 2), // shards of 2 and 1 rows
      hostBatch(4, 8, 3, (row) => (row < 2 ? 1 : 0.25)), // unequal weight sums per shard
      hostBatch(4, 8, 4, (row) => (row >= 2 ? 0 : 1)), // the worker's shard has no loss tokens
    ];
    for (const [c, b] of cases.entries()) {
      const a = await grads(two, b);
      const r = await grads(one, b);
      assert.ok(Math.abs(a.loss - r.loss) < 1e-5 * Math.max(1, r.loss), `case ${c}: loss ${a.loss} vs ${r.loss}`);
      for (const [name, g] of r.grads) {
        const h = a.grads.get(name)!;
        let num = 0, den = 0;
        for (let i = 0; i < g.length; i++) { num += (h[i]! - g[i]!) ** 2; den += g[i]! ** 2; }
        assert.ok(Math.sqrt(num / Math.max(den, 1e-30)) < 1e-5, `case ${c}, ${name}`);
      }
      // Repeats bit for bit.
      const again = await grads(two, b);
      assert.equal(again.loss, a.loss);
      for (const [name, g] of a.grads) assert.deepEqual(again.grads.get(name), g, `case ${c}, ${name} repeat`);
    }
  } finally {
    one.dispose();
    two.dispose();
    await tf.setBackend('cpu');
  }
});

test('a bad token in a worker\'s shard is a clear error, and the pool keeps working', async () => {
  await tf.setBackend('wasm');
  const model = new GPT(CFG, { workers: 2 });
  try {
    const bad = hostBatch(4, 8, 5);
    bad.inputs[3 * 8 + 1] = 77; // row 3 goes to the worker
    await assert.rejects(model.lossAndGradientsAsync(bad), /gradient worker 0: fused step: inputs\[9\] = 77 is not a token id/);
    const before = tf.memory().numTensors;
    const ok = await grads(model, hostBatch(4, 8, 6));
    assert.ok(Number.isFinite(ok.loss));
    assert.equal(tf.memory().numTensors, before);
  } finally {
    model.dispose();
    await tf.setBackend('cpu');
  }
});

test('training with two threads: same seed, same weights; tracks one thread; no tensor growth', async () => {
  await tf.setBackend('wasm');
  const run = async (threads: number) => {
    const model = new GPT(CFG, { workers: threads });
    let i = 0;
    const counts: number[] = [];
    const result = await train(model, {
      strategy: { name: 'gmt', options: { ratio: 0.3 } }, steps: 8, accum: 2, lr: 3e-3, seed: 2,
      nextBatch: () => hostBatch(4, 16, 50 + (i++ % 3)),
      onUpdate: () => { counts.push(tf.memory().numTensors); },
    });
    const sha = weightsSha256(model.params);
    model.dispose();
    return { losses: result.history.map((h) => h.loss), sha, counts };
  };
  try {
    const a = await run(2);
    const b = await run(2);
    const c = await run(1);
    assert.equal(a.sha, b.sha);
    a.losses.forEach((l, k) => assert.ok(Math.abs(l - c.losses[k]!) < 1e-3, `update ${k}: ${l} vs ${c.losses[k]}`));
    assert.equal(new Set(a.counts.slice(1)).size, 1, `tensor count moved: ${a.counts}`);
  } finally {
    await tf.setBackend('cpu');
  }
});

test('workers option and GMT_WORKERS are validated', () => {
  assert.throws(() => new GPT(CFG, { workers: 0 }), /GPT option workers/);
  const saved = process.env.GMT_WORKERS;
  process.env.GMT_WORKERS = 'two';
  try {
    assert.throws(() => new GPT(CFG), /GMT_WORKERS/);
  } finally {
    if (saved === undefined) delete process.env.GMT_WORKERS;
    else process.env.GMT_WORKERS = saved;
  }
});
