/**
 * One table-driven suite over every registered tuning method (peft style), on the `nano` GPT
 * (real variables and gradients, the real parameter layout), through the real trainer. Each method's row states what its
 * masks promise; a method without a row fails the suite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { describeStrategies, getStrategy, listStrategies } from '../src/tuning/registry';
import { dropCount, scopeSegments } from '../src/tuning/mask';
import { hftGroups } from '../src/tuning/hft';
import { ConfigError } from '../src/util/config';
import { toTensorBatch, train, type UpdateRecord } from '../src/train/trainer';
import { tinyBatches } from './helpers/tiny-model';
import { GPT, gptPreset } from '../src/model';
import type { TrainableModel } from '../src/types';
import { RecordingStrategy, type RecordedUpdate } from './helpers/recording-strategy';

const STEPS = 4;

interface Row {
  options: Record<string, unknown>;
  check(updates: RecordedUpdate[], model: TrainableModel, history: UpdateRecord[]): void;
}

const fraction = (m: Float32Array): number => m.reduce((a, b) => a + b, 0) / m.length;
function overallKept(u: RecordedUpdate): number {
  let kept = 0;
  let total = 0;
  for (const m of u.masks!.values()) {
    kept += m.reduce((a, b) => a + b, 0);
    total += m.length;
  }
  return kept / total;
}
function sameMasks(a: RecordedUpdate, b: RecordedUpdate): boolean {
  for (const [name, m] of a.masks!) {
    const other = b.masks!.get(name)!;
    for (let i = 0; i < m.length; i++) if (m[i] !== other[i]) return false;
  }
  return true;
}
/**
 * The record's keptFraction, keptByTensor and maskJaccard, recomputed on the host from the
 * recorded masks: whether the trainer counted them or the strategy handed them over precomputed
 * (`MaskedUpdate.stats`), they must mean the same.
 */
function assertRecordedStats(updates: RecordedUpdate[], history: UpdateRecord[]): void {
  let previous: Map<string, Float32Array> | undefined;
  updates.forEach((u, t) => {
    const h = history[t]!;
    let kept = 0;
    let total = 0;
    let inter = 0;
    let prevKept = 0;
    for (const [name, m] of u.masks!) {
      const k = m.reduce((a, b) => a + b, 0);
      assert.equal(h.keptByTensor![name], k / m.length, `update ${t + 1} keptByTensor[${name}]`);
      kept += k;
      total += m.length;
      const p = previous?.get(name);
      if (p) m.forEach((x, i) => {
        inter += x * p[i]!;
        prevKept += p[i]!;
      });
    }
    assert.equal(h.keptFraction, kept / total, `update ${t + 1} keptFraction`);
    const union = kept + prevKept - inter;
    assert.equal(h.maskJaccard, previous ? (union === 0 ? 1 : inter / union) : undefined, `update ${t + 1} maskJaccard`);
    previous = u.masks;
  });
}

function assertBinary(u: RecordedUpdate): void {
  for (const [name, m] of u.masks!) for (const x of m) assert.ok(x === 0 || x === 1, `${name}: mask entry ${x}`);
}

/** GMT's contract on the recorded Γ: M = [|Γ| ≥ (m+1)-th smallest |Γ| of the segment]. */
function checkGmtMask(u: RecordedUpdate, model: TrainableModel, ratio: number, scope: 'tensor' | 'layer' | 'global'): void {
  for (const segment of scopeSegments(model.params, scope)) {
    const all = segment.flatMap((n) => Array.from(u.gamma.get(n)!, Math.abs)).sort((a, b) => a - b);
    const m = dropCount(ratio, all.length);
    const threshold = m === 0 ? -Infinity : (all[m] as number);
    let kept = 0;
    for (const n of segment) {
      const g = u.gamma.get(n)!;
      const mask = u.masks!.get(n)!;
      g.forEach((x, i) => {
        assert.equal(mask[i], Math.abs(x) >= threshold ? 1 : 0, `${scope} ${n}[${i}]`);
        kept += mask[i]!;
      });
    }
    assert.ok(kept >= all.length - m, `${scope}: kept ${kept} of ${all.length}, promised ≥ ${all.length - m}`);
    const ties = all.filter((x) => x === threshold).length;
    assert.ok(kept <= all.length - m + ties, 'only ties with T_k exceed 1 − k');
  }
}

const ROWS: Record<string, Row> = {
  sft: {
    options: {},
    check(updates, _model, history) {
      for (const u of updates) {
        assert.equal(u.masks, undefined);
        for (const [n, g] of u.gamma) assert.deepEqual(u.grads.get(n), g, 'identity');
      }
      for (const h of history) assert.equal(h.keptFraction, 1);
    },
  },
  gmt: {
    options: { ratio: 0.3, scope: 'layer' },
    check(updates, model, history) {
      for (const u of updates) checkGmtMask(u, model, 0.3, 'layer');
      for (const h of history) assert.ok(Math.abs(h.keptFraction - 0.7) < 0.05, `kept ${h.keptFraction}`);
      // Re-selected every update: the masks are not all identical and the Jaccard is recorded.
      assert.ok(!sameMasks(updates[0]!, updates[STEPS - 1]!), 'mask changes across updates');
      assert.ok(history.slice(1).every((h) => h.maskJaccard !== undefined && h.maskJaccard < 1));
      assertRecordedStats(updates, history);
    },
  },
  'random-mask': {
    options: { ratio: 0.3, mode: 'per-update' },
    check(updates, _model, history) {
      for (const u of updates) {
        assertBinary(u);
        assert.ok(Math.abs(overallKept(u) - 0.7) < 0.06, `kept ${overallKept(u)} ≈ 0.7`);
        for (const [n, g] of u.gamma) g.forEach((x, i) => assert.equal(u.grads.get(n)![i], x * u.masks!.get(n)![i]!));
      }
      assert.ok(!sameMasks(updates[0]!, updates[1]!), 'per-update masks are re-drawn');
      assert.ok(Math.abs(history[0]!.keptFraction - overallKept(updates[0]!)) < 1e-9);
    },
  },
  'childtuning-f': {
    options: { p: 0.6 },
    check(updates) {
      for (const u of updates) {
        assertBinary(u);
        assert.ok(Math.abs(overallKept(u) - 0.6) < 0.06, `kept ${overallKept(u)} ≈ p`);
        for (const [n, g] of u.gamma) {
          const m = u.masks!.get(n)!;
          g.forEach((x, i) => assert.ok(Math.abs(u.grads.get(n)![i]! - (m[i]! * x) / 0.6) <= 1e-6 * Math.abs(x) + 1e-12, 'scaled by 1/p'));
        }
      }
      assert.ok(!sameMasks(updates[0]!, updates[1]!), 'Bernoulli mask drawn each update');
    },
  },
  'childtuning-d': {
    options: { ratio: 0.3, batches: 3 },
    check(updates, _model, history) {
      for (const u of updates) {
        assertBinary(u);
        assert.ok(overallKept(u) >= 0.7 - 1e-9 && overallKept(u) < 0.75, `global top-p kept ${overallKept(u)}`);
        assert.ok(sameMasks(u, updates[0]!), 'fixed mask');
      }
      assertRecordedStats(updates, history);
    },
  },
  hft: {
    options: { stages: 2 },
    check(updates, model, history) {
      const groups = hftGroups(model.params);
      const frozenSets: string[] = [];
      for (const u of updates) {
        const frozen: string[] = [];
        for (const [key, names] of groups) {
          const f = names.filter((n) => fraction(u.masks!.get(n)!) === 0);
          const k = names.filter((n) => fraction(u.masks!.get(n)!) === 1);
          assert.equal(f.length + k.length, names.length, `${key}: whole tensors only`);
          if (names.length % 2 === 0) assert.equal(f.length, names.length / 2, `${key}: exactly half frozen`);
          else assert.ok(Math.abs(f.length - names.length / 2) === 0.5, `${key}: half of an odd group`);
          frozen.push(...f);
          for (const n of f) assert.ok(u.grads.get(n)!.every((x) => x === 0));
        }
        assert.ok(u.updateMasks !== undefined, 'frozen tensors get no update at all');
        frozenSets.push(frozen.sort().join(','));
      }
      // STEPS = 4, stages = 2: updates 0–1 share one draw, 2–3 another.
      assert.equal(frozenSets[0], frozenSets[1]);
      assert.equal(frozenSets[2], frozenSets[3]);
      assert.notEqual(frozenSets[0], frozenSets[2], 're-drawn at the stage boundary');
      assertRecordedStats(updates, history);
    },
  },
  sift: {
    options: { ratio: 0.4, scope: 'tensor' },
    check(updates, model, history) {
      checkGmtMask(updates[0]!, model, 0.4, 'tensor');
      for (const u of updates) assert.ok(sameMasks(u, updates[0]!), 'fixed after the first update');
      for (const h of history.slice(1)) assert.equal(h.maskJaccard, 1);
      assertRecordedStats(updates, history);
    },
  },
};

test('every registered method has a row in this suite, and describeStrategies lists them', () => {
  assert.deepEqual(Object.keys(ROWS).sort(), listStrategies().sort());
  assert.deepEqual(describeStrategies().map((d) => d.name), listStrategies());
});

for (const name of listStrategies()) {
  test(`strategy ${name}: finite loss, flat tensor count, masks as promised`, async () => {
    await tf.setBackend('cpu');
    const row = ROWS[name];
    assert.ok(row, `no test row for ${name}`);
    const model = new GPT(gptPreset('nano', { vocabSize: 11, seed: 3 }));
    // One forward pass first, so that tensors the model caches for its lifetime (causal masks)
    // exist before the count is taken.
    const warm = toTensorBatch(tinyBatches(99)());
    tf.tidy(() => model.loss(warm));
    for (const t of Object.values(warm)) t.dispose();
    const before = tf.memory().numTensors;
    const recorder = new RecordingStrategy(getStrategy(name, row.options));
    const counts: number[] = [];
    const result = await train(model, {
      strategy: recorder,
      steps: STEPS,
      accum: 2,
      lr: 5e-3,
      seed: 9,
      nextBatch: tinyBatches(4),
      onUpdate: () => {
        counts.push(tf.memory().numTensors);
      },
    });
    recorder.dispose();
    assert.equal(result.history.length, STEPS);
    for (const h of result.history) assert.ok(Number.isFinite(h.loss) && Number.isFinite(h.gradNorm), `loss ${h.loss}`);
    assert.ok(counts.every((c) => c === counts[0]), `tensor count flat across updates: ${counts.join(',')}`);
    assert.equal(tf.memory().numTensors, before, 'nothing left behind after training');
    assert.equal(result.config.strategy.name, name);
    row.check(recorder.updates, model, result.history);
    model.dispose();
  });
}

test('unknown methods and options are clear errors', () => {
  assert.throws(() => getStrategy('gtm'), /unknown tuning method "gtm" \(known: sft, gmt/);
  assert.throws(() => getStrategy('gmt', { ratoi: 0.2 }), /gmt options: unknown option "ratoi"/);
  assert.throws(() => getStrategy('gmt', { ratio: 1 }), ConfigError);
  assert.throws(() => getStrategy('gmt', { scope: 'block' }), /gmt.scope must be one of tensor, layer, global/);
  assert.throws(() => getStrategy('random-mask', { mode: 'sometimes' }), /random-mask.mode/);
  assert.throws(() => getStrategy('childtuning-f', { p: 0 }), /childtuning-f.p must be in \(0, 1\], got 0/);
  assert.throws(() => getStrategy('childtuning-d', { p: 0.5, ratio: 0.5 }), /not both/);
  assert.throws(() => getStrategy('hft', { stages: 0 }), /hft.stages/);
  assert.throws(() => getStrategy('gmt', { signal: 'fisher' }), /gmt.signal must be one of grad, grad-weight, grad-squared, got "fisher"/);
  assert.throws(() => getStrategy('sft', { ratio: 0.3 }), /sft options: unknown option "ratio"/);
});

test('resolved options are complete and JSON-serialisable', () => {
  for (const name of listStrategies()) {
    const s = getStrategy(name);
    assert.deepEqual(JSON.parse(JSON.stringify(s.options)), s.options);
    s.dispose();
  }
  assert.deepEqual(getStrategy('gmt', { ratio: 0.5 }).options, { ratio: 0.5, scope: 'tensor', maskUpdate: false, signal: 'grad' });
  assert.deepEqual(getStrategy('childtuning-d', { p: 0.2 }).options, { p: 0.2, ratio: null, batches: 8 });
});

test('the selection signal: grad-weight ranks |Γ ⊙ θ|, grad-squared keeps the |Γ| mask, for gmt and for sift\'s first mask', async () => {
  const { Rng } = await import('../src/util/rng');
  const rng = new Rng(7);
  const shapes: [string, number[]][] = [['w1', [33, 17]], ['w2', [200]]];
  const params = shapes.map(([name, shape]) => ({ name, group: 'g', kind: 'mlp' as const, variable: tf.variable(tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.next() * 4 - 2), shape)) }));
  const grads = new Map(shapes.map(([name, shape]) => [name, tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rng.next() - 0.5) * 1e-3), shape)]));
  const host = async (t: tf.Tensor) => Array.from(await t.data());
  const expectedMask = (score: number[]): number[] => {
    const a = score.map(Math.abs);
    const t = [...a].sort((x, y) => x - y)[dropCount(0.3, a.length)]!;
    return a.map((v) => (v >= t ? 1 : 0));
  };
  const before = tf.memory().numTensors;
  for (const method of ['gmt', 'sift']) {
    const masks: Record<string, Map<string, number[]>> = {};
    for (const signal of ['grad', 'grad-weight', 'grad-squared']) {
      const s = getStrategy(method, { ratio: 0.3, scope: 'tensor', signal });
      await s.init?.({ params, seed: 0, steps: 1, computeGradients: () => { throw new Error('unused'); }, initBatches: () => [] });
      const u = await s.transform(grads, 1);
      masks[signal] = new Map();
      for (const p of params) {
        const m = await host(u.masks!.get(p.name)!);
        masks[signal]!.set(p.name, m);
        const g = await host(grads.get(p.name)!);
        const w = await host(p.variable);
        const want = expectedMask(signal === 'grad-weight' ? g.map((x, i) => x * w[i]!) : g);
        assert.deepEqual(m, want, `${method} ${signal} ${p.name}`);
      }
      tf.dispose([...u.grads.values(), ...u.masks!.values(), ...(u.updateMasks ? [] : [])]);
      s.dispose();
    }
    for (const p of params) assert.notDeepEqual(masks['grad-weight']!.get(p.name), masks.grad!.get(p.name), `${method}: |Γ ⊙ θ| selects other entries than |Γ| (${p.name})`);
  }
  assert.equal(tf.memory().numTensors, before, 'no tensors left');
  tf.dispose([...grads.values(), ...params.map((p) => p.variable)]);
});
