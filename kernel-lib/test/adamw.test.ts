import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { AdamW, decayMatrices } from '../src/train/adamw';
import { Rng } from '../src/util/rng';
import { checkSchedule, learningRateAt } from '../src/train/schedule';
import type { ParamInfo } from '../src/types';

before(async () => {
  await tf.setBackend('cpu');
});

function param(name: string, values: number[], shape: number[]): ParamInfo {
  return { name, variable: tf.tidy(() => tf.variable(tf.tensor(values, shape), true)), group: 'head', kind: 'head' };
}

/** AdamW by hand in float64 (Loshchilov & Hutter, Alg. 2, with bias correction). */
function reference(theta: number[], grads: number[][], lrs: number[], b1: number, b2: number, eps: number, wd: number): number[] {
  const th = [...theta];
  const m = th.map(() => 0);
  const v = th.map(() => 0);
  grads.forEach((g, s) => {
    const t = s + 1;
    for (let i = 0; i < th.length; i++) {
      m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
      v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
      const mh = m[i]! / (1 - b1 ** t);
      const vh = v[i]! / (1 - b2 ** t);
      th[i] = th[i]! - lrs[s]! * (mh / (Math.sqrt(vh) + eps) + wd * th[i]!);
    }
  });
  return th;
}

for (const backend of ['cpu', 'wasm']) {
  test(`AdamW (${backend}) matches a hand computation over three steps (bias correction, decoupled decay)`, async () => {
    await tf.setBackend(backend);
    const theta = [0.5, -1.5, 2, 0];
    const grads = [[0.1, -0.2, 0.3, 0], [0.05, 0.4, -0.3, 1e-3], [-0.2, 0.1, 0.0, 2]];
    const lrs = [0.01, 0.02, 0.005];
    const p = param('w', theta, [2, 2]);
    const opt = new AdamW([p], { beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1 });
    for (let s = 0; s < 3; s++) {
      const g = tf.tensor(grads[s]!, [2, 2]);
      opt.apply(new Map([['w', g]]), lrs[s]!);
      g.dispose();
    }
    const expected = reference(theta, grads, lrs, 0.8, 0.95, 1e-6, 0.1);
    const got = Array.from(p.variable.dataSync());
    got.forEach((x, i) => assert.ok(Math.abs(x - expected[i]!) < 1e-6, `θ[${i}] = ${x}, expected ${expected[i]}`));
    // The first step moves every nonzero-gradient entry by ≈ lr (Adam's sign-like first step) plus decay.
    assert.ok(Math.abs(got[0]! - 0.5) > 0.01);
    opt.dispose();
    p.variable.dispose();
  });

  test(`AdamW (${backend}): decay predicate spares 1-D tensors; update mask leaves entries bit-identical`, async () => {
    await tf.setBackend(backend);
    const w = param('w', [1, 1, 1, 1], [2, 2]);
    const b = param('b', [1, 1], [2]);
    const opt = new AdamW([w, b], { weightDecay: 0.5 }, decayMatrices);
    const zeros = new Map([['w', tf.zeros([2, 2])], ['b', tf.zeros([2])]]);
    opt.apply(zeros, 0.1);
    assert.deepEqual(Array.from(b.variable.dataSync()), [1, 1], 'no decay on a bias');
    assert.ok(Math.abs(w.variable.dataSync()[0]! - (1 - 0.1 * 0.5)) < 1e-7, 'decoupled decay on a matrix');
    // Build momentum, then step with a mask: masked entries must not move, unmasked must.
    const g = new Map([['w', tf.tensor([[1, -1], [2, 3]])], ['b', tf.tensor([1, 1])]]);
    opt.apply(g, 0.1);
    const before = Float32Array.from(w.variable.dataSync());
    const mask = new Map([['w', tf.tensor([[1, 0], [0, 1]])]]);
    const zeroGrad = new Map([['w', tf.zeros([2, 2])], ['b', tf.zeros([2])]]);
    opt.apply(zeroGrad, 0.1, mask);
    const after = w.variable.dataSync();
    assert.ok(Object.is(after[1], before[1]) && Object.is(after[2], before[2]), 'masked entries unchanged');
    assert.notEqual(after[0], before[0], 'momentum moves unmasked entries');
    assert.throws(() => opt.apply(new Map([['w', tf.zeros([2, 2])]]), 0.1), /no gradient for parameter "b"/);
    assert.throws(() => new AdamW([w], { beta1: 1 }), /beta1 must be in \[0, 1\), got 1/);
    assert.throws(() => new AdamW([w], { momentum: 0.9 } as never), /unknown option "momentum"/);
    for (const t of [...zeros.values(), ...g.values(), ...mask.values(), ...zeroGrad.values()]) t.dispose();
    opt.dispose();
    w.variable.dispose();
    b.variable.dispose();
  });

  test(`AdamW (${backend}) keeps the tensor count and bytes flat`, async () => {
    await tf.setBackend(backend);
    const w = param('w', [1, 2, 3], [3]);
    const opt = new AdamW([w]);
    const g = new Map([['w', tf.tensor([0.1, 0.2, 0.3])]]);
    opt.apply(g, 0.01);
    const n = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    for (let i = 0; i < 5; i++) opt.apply(g, 0.01);
    assert.equal(tf.memory().numTensors, n);
    assert.equal(tf.memory().numBytes, bytes);
    g.get('w')!.dispose();
    opt.dispose();
    w.variable.dispose();
  });
}

test('AdamW on wasm: the kernel gives the tfjs ops\' bits, and never writes a shared buffer', async () => {
  await tf.setBackend('wasm');
  const rng = new Rng(4);
  const values = (n: number) => Array.from({ length: n }, () => 2 * rng.next() - 1);
  const make = () => [param('w', values(35), [5, 7]), param('b', values(3), [3])];
  const thetaW = values(35), thetaB = values(3);
  const init = (ps: ParamInfo[]) => { ps[0]!.variable.assign(tf.tensor(thetaW, [5, 7])); ps[1]!.variable.assign(tf.tensor(thetaB, [3])); };
  const [kw, kb] = make();
  const [tw, tb] = make();
  init([kw!, kb!]);
  init([tw!, tb!]);
  // A tensor sharing its buffer with the kernel path's variable must keep its values.
  const shared = tf.tidy(() => tf.variable(kw!.variable, false));
  const sharedBefore = shared.dataSync().slice();
  const kernel = new AdamW([kw!, kb!], { weightDecay: 0.1 }, decayMatrices);
  const ops = new AdamW([tw!, tb!], { weightDecay: 0.1 }, decayMatrices);
  ops.useKernels = false;
  try {
    for (let s = 0; s < 4; s++) {
      const g = new Map([['w', tf.tensor(values(35), [5, 7])], ['b', tf.tensor(values(3), [3])]]);
      const mask = s % 2 ? new Map([['w', tf.tensor(values(35).map((x) => (x > 0 ? 1 : 0)), [5, 7])]]) : undefined;
      kernel.apply(g, 1e-2 * (s + 1), mask);
      ops.apply(g, 1e-2 * (s + 1), mask);
      tf.dispose([...g.values(), ...(mask ? mask.values() : [])]);
      for (const [a, b] of [[kw!, tw!], [kb!, tb!]] as const) {
        const x = a.variable.dataSync(), y = b.variable.dataSync();
        for (let i = 0; i < x.length; i++) assert.ok(Object.is(x[i], y[i]), `step ${s}: ${a.name}[${i}] = ${x[i]} (kernel) vs ${y[i]} (tfjs ops)`);
      }
      for (const name of ['w', 'b']) assert.deepEqual(kernel.firstMoment(name)!.dataSync(), ops.firstMoment(name)!.dataSync());
    }
    assert.notDeepEqual(kw!.variable.dataSync(), Float32Array.from(thetaW), 'the parameters moved');
    assert.deepEqual(shared.dataSync(), sharedBefore, 'a tensor sharing the old buffer was overwritten');
    const wrong = new Map([['w', tf.zeros([7, 5])], ['b', tf.zeros([3])]]);
    assert.throws(() => kernel.apply(wrong, 0.1), /"w" needs float32 \[5,7\], got float32 \[7,5\]/);
    tf.dispose([...wrong.values()]);
  } finally {
    kernel.dispose();
    ops.dispose();
    for (const p of [kw!, kb!, tw!, tb!]) p.variable.dispose();
    shared.dispose();
    await tf.setBackend('cpu');
  }
});

test('schedule: linear warmup to the peak, cosine to minLrRatio at the end', () => {
  const s = checkSchedule({ lr: 1e-3, warmup: 10, steps: 110, minLrRatio: 0.1 });
  assert.equal(learningRateAt(s, 0), 1e-4);
  assert.equal(learningRateAt(s, 9), 1e-3, 'last warmup update uses the full lr');
  assert.equal(learningRateAt(s, 10), 1e-3, 'first decay update uses the full lr');
  assert.ok(Math.abs(learningRateAt(s, 60) - (1e-4 + 0.9e-3 * 0.5)) < 1e-15, 'half-way: midpoint');
  assert.ok(Math.abs(learningRateAt(s, 110) - 1e-4) < 1e-15, 'the end: lr · minLrRatio');
  const last = learningRateAt(s, 109);
  assert.ok(last > 1e-4 && last < 1.01e-4);
  for (let t = 10; t < 110; t++) assert.ok(learningRateAt(s, t + 1) <= learningRateAt(s, t), 'monotone decay');
  const flat = { lr: 2e-3, warmup: 0, steps: 5, minLrRatio: 1 };
  for (let t = 0; t < 5; t++) assert.equal(learningRateAt(flat, t), 2e-3);
  assert.throws(() => checkSchedule({ lr: 1e-3, warmup: 20, steps: 10, minLrRatio: 0 }), /warmup \(20\) must not exceed steps/);
  assert.throws(() => checkSchedule({ lr: 1e-3, warmup: 0, steps: 10, minLrRatio: 2 }), /minLrRatio must be in \[0, 1\], got 2/);
});
