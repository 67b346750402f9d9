import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import { enableWasmThreads } from '../src/backend/wasm-threads';
import { ConfigError } from '../src/util/config';
import { Rng } from '../src/util/rng';

// One process runs the stock single-threaded wasm backend first, then the threaded one.

/** Seeded host data, so both backends multiply exactly the same numbers. */
function hostMatrix(rows: number, cols: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = rng.next() * 2 - 1;
  return out;
}

const CASES: Array<[number, number, number]> = [
  [1024, 128, 384],
  [1024, 384, 128],
  [64, 1024, 128],
];

interface Results {
  products: Float32Array[];
  /** Gradients of sum(tanh(A·B)) with explicit transposes, as the model's fast path computes them. */
  gradA: Float32Array;
  gradB: Float32Array;
}

function compute(): Results {
  const products = CASES.map(([m, k, n], i) => {
    const c = tf.tidy(() => tf.matMul(tf.tensor2d(hostMatrix(m, k, 10 + i), [m, k]), tf.tensor2d(hostMatrix(k, n, 20 + i), [k, n])));
    const values = c.dataSync() as Float32Array;
    c.dispose();
    return values.slice();
  });
  const [gA, gB] = tf.tidy(() => {
    const a = tf.tensor2d(hostMatrix(256, 128, 30), [256, 128]);
    const b = tf.tensor2d(hostMatrix(128, 384, 31), [128, 384]);
    const dy = tf.sub(1, tf.square(tf.tanh(tf.matMul(a, b))));
    return [tf.matMul(dy, tf.transpose(b)), tf.matMul(tf.transpose(a), dy)];
  });
  const out = { products, gradA: (gA.dataSync() as Float32Array).slice(), gradB: (gB.dataSync() as Float32Array).slice() };
  tf.dispose([gA, gB]);
  return out;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] as number) - (b[i] as number)) / Math.max(1, Math.abs(a[i] as number));
    if (!(d <= worst)) worst = d; // NaN propagates as a failure
  }
  return worst;
}

test('threads must be an integer in 1..8', async () => {
  for (const bad of [0, 9, 1.5, Number.NaN]) {
    await assert.rejects(enableWasmThreads({ threads: bad }), ConfigError, `threads: ${bad}`);
  }
});

test('threads: 1 leaves the stock backend in place', async () => {
  const r = await enableWasmThreads({ threads: 1 });
  assert.equal(r.enabled, false);
  assert.equal(r.threads, 1);
  assert.match(r.reason ?? '', /threads: 1/);
});

test('matmul results are the same with threads on and off', async () => {
  assert.ok(await tf.setBackend('wasm'));
  assert.equal(tfwasm.getThreadsCount(), 1);
  const single = compute();

  // Refuses to swap a backend that is already running.
  const refused = await enableWasmThreads({ threads: 2 });
  assert.equal(refused.enabled, false);
  assert.match(refused.reason ?? '', /already initialized/);

  tf.removeBackend('wasm');
  const r = await enableWasmThreads({ threads: 2 });
  assert.deepEqual(r, { enabled: true, threads: 2 }, r.reason);
  assert.ok(await tf.setBackend('wasm'));
  assert.equal(tf.getBackend(), 'wasm');
  assert.equal(tfwasm.getThreadsCount(), 2);

  const before = tf.memory().numTensors;
  const threaded = compute();
  assert.equal(tf.memory().numTensors, before, 'compute() leaks no tensors');

  CASES.forEach(([m, k, n], i) => {
    const d = maxRelDiff(single.products[i] as Float32Array, threaded.products[i] as Float32Array);
    assert.ok(d <= 1e-5, `${m}x${k} · ${k}x${n}: max relative difference ${d}`);
  });
  assert.ok(maxRelDiff(single.gradA, threaded.gradA) <= 1e-5, 'dA');
  assert.ok(maxRelDiff(single.gradB, threaded.gradB) <= 1e-5, 'dB');
  // Sanity: the products are not trivially zero.
  assert.ok(Math.abs((threaded.products[0] as Float32Array)[7] as number) > 1e-3);

  // A second call reports the active configuration instead of re-registering.
  assert.deepEqual(await enableWasmThreads({ threads: 2 }), r);
  await tf.setBackend('cpu');
});
