import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import {
  GradientMasker,
  dropCount,
  maskStatistics,
  scopeSegments,
  selectAbsBits,
  thresholdForRatio,
  type MaskParam,
  type MaskResult,
  type MaskScope,
} from '../src/tuning/mask';
import { fusedKernels } from '../src/backend/engine';
import { ConfigError } from '../src/util/config';
import { Rng } from '../src/util/rng';

/** The contract by brute force: sort |x|, T = sorted[m] (m = ⌊k·n⌋), −∞ when m = 0. */
function referenceThreshold(values: number[], ratio: number): number {
  const n = values.length;
  const m = Math.min(n - 1, Math.floor(ratio * n + 1e-9));
  if (m === 0) return -Infinity;
  const sorted = values.map((v) => Math.abs(v)).sort((a, b) => a - b);
  return sorted[m] as number;
}

type Kind = 'continuous' | 'ties' | 'wide' | 'constant';
function randomValues(rng: Rng, n: number, kind: Kind): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const sign = rng.bernoulli(0.5) ? -1 : 1;
    if (kind === 'continuous') out[i] = sign * rng.next();
    else if (kind === 'ties') out[i] = sign * rng.int(0, 4) * 0.25; // many exact ties, zeros, ±0
    else if (kind === 'wide') out[i] = sign * Math.exp((rng.next() - 0.5) * 80); // exponents far apart
    else out[i] = sign * 0.5;
  }
  return out;
}

test('dropCount: m = floor(k n), never all entries', () => {
  assert.equal(dropCount(0.29, 100), 29);
  assert.equal(dropCount(0.3, 10), 3);
  assert.equal(dropCount(0, 1000), 0);
  assert.equal(dropCount(0.5, 1), 0);
  assert.equal(dropCount(0.999999, 10), 9);
});

test('thresholdForRatio matches a sorted reference (ties, ±0, wide exponents, constants)', () => {
  const rng = new Rng(7);
  for (const kind of ['continuous', 'ties', 'wide', 'constant'] as Kind[]) {
    for (const n of [1, 2, 3, 17, 256, 5000]) {
      for (const ratio of [0, 0.1, 0.3, 0.5, 0.75, 0.99]) {
        const values = randomValues(rng, n, kind);
        const expected = referenceThreshold(Array.from(values), ratio);
        const got = thresholdForRatio(values, ratio);
        assert.equal(got, expected, `${kind} n=${n} k=${ratio}`);
        // Kept = |x| ≥ T: at least n − m kept, and fewer than n − m + (#ties at T) + 1.
        const m = dropCount(ratio, n);
        const kept = Array.from(values).filter((v) => Math.abs(v) >= got).length;
        assert.ok(kept >= n - m, `${kind} n=${n} k=${ratio}: kept ${kept} < ${n - m}`);
        if (kind === 'continuous' && n > 1) assert.equal(kept, n - m);
      }
    }
  }
});

test('selectAbsBits finds every rank of a segment', () => {
  const rng = new Rng(11);
  const values = randomValues(rng, 300, 'ties');
  const wide = randomValues(rng, 300, 'wide');
  for (const v of [values, wide]) {
    const bits = new Uint32Array(v.buffer);
    const sorted = Array.from(v.subarray(50, 250)).map(Math.abs).sort((a, b) => a - b);
    const scratch = new Uint32Array(200);
    for (let r = 0; r < 200; r++) assert.equal(selectAbsBits(bits, 50, 250, r, scratch), sorted[r]);
  }
  assert.throws(() => selectAbsBits(new Uint32Array(4), 0, 4, 4, new Uint32Array(4)), RangeError);
});

const PARAMS: { param: MaskParam; shape: number[] }[] = [
  { param: { name: 'tok', group: 'embed' }, shape: [12, 5] },
  { param: { name: 'pos', group: 'embed' }, shape: [7, 5] },
  { param: { name: 'b0.ln', group: 'block.0' }, shape: [5] },
  { param: { name: 'b0.w', group: 'block.0' }, shape: [5, 9] },
  { param: { name: 'b1.w', group: 'block.1' }, shape: [9, 5] },
  { param: { name: 'b1.ln', group: 'block.1' }, shape: [5] },
  { param: { name: 'head.ln', group: 'head' }, shape: [5] },
  // A group split across the parameter order: layer scope must still treat it as one segment.
  { param: { name: 'b0.late', group: 'block.0' }, shape: [3, 3] },
  { param: { name: 'head.out', group: 'head' }, shape: [5, 12] },
];

// On wasm the masker reads tfjs' heap in place and masks with one wasm kernel; on cpu it uses
// tfjs ops. Both must meet the same contract bit for bit.
for (const [backend, scope] of ['cpu', 'wasm'].flatMap((b) => (['tensor', 'layer', 'global'] as MaskScope[]).map((s) => [b, s] as const))) {
  test(`GradientMasker (${scope} scope, ${backend}) equals the brute-force contract, ties included`, async () => {
    await tf.setBackend(backend);
    const rng = new Rng(scope.length * 31);
    const before = tf.memory().numTensors;
    for (const kind of ['continuous', 'ties', 'wide'] as Kind[]) {
      for (const ratio of [0, 0.3, 0.5, 0.9]) {
        const host = new Map<string, Float32Array>();
        const grads = new Map<string, tf.Tensor>();
        for (const { param, shape } of PARAMS) {
          const v = randomValues(rng, shape.reduce((a, b) => a * b, 1), kind);
          host.set(param.name, v);
          grads.set(param.name, tf.tensor(v, shape));
        }
        const masker = new GradientMasker(PARAMS.map((p) => p.param), { ratio, scope });
        const result = await masker.apply(grads);
        for (const segment of scopeSegments(PARAMS.map((p) => p.param), scope)) {
          const all = segment.flatMap((name) => Array.from(host.get(name)!));
          const expected = referenceThreshold(all, ratio);
          let kept = 0;
          for (const name of segment) {
            assert.equal(result.thresholds.get(name), expected, `${scope}/${kind}/k=${ratio}/${name}`);
            const g = host.get(name)!;
            const mask = result.masks.get(name)!.dataSync();
            const masked = result.grads.get(name)!.dataSync();
            for (let i = 0; i < g.length; i++) {
              const keep = Math.abs(g[i]!) >= expected ? 1 : 0;
              assert.equal(mask[i], keep, `${scope}/${kind}/k=${ratio}/${name}[${i}]`);
              // Γ ⊙ M exactly: −0 where a negative entry is dropped.
              assert.ok(Object.is(masked[i], keep ? g[i] : g[i]! * 0), `${backend}/${scope}/${kind}/k=${ratio}/${name}[${i}]: ${masked[i]} vs ${g[i]}·${keep}`);
              kept += keep;
            }
          }
          const m = dropCount(ratio, all.length);
          assert.ok(kept >= all.length - m);
          if (kind === 'continuous') assert.equal(kept, all.length - m, `${scope} k=${ratio}: kept fraction is 1 − k`);
        }
        for (const t of [...grads.values(), ...result.grads.values(), ...result.masks.values()]) t.dispose();
      }
    }
    assert.equal(tf.memory().numTensors, before, 'no tensors leak');
    await tf.setBackend('cpu');
  });
}

test('layer scope groups by ParamInfo.group, in first-seen order', () => {
  const segs = scopeSegments(PARAMS.map((p) => p.param), 'layer');
  assert.deepEqual(segs, [['tok', 'pos'], ['b0.ln', 'b0.w', 'b0.late'], ['b1.w', 'b1.ln'], ['head.ln', 'head.out']]);
});

test('GradientMasker rejects bad options and missing gradients', async () => {
  const params = [{ name: 'a', group: 'g' }];
  assert.throws(() => new GradientMasker(params, { ratio: 1, scope: 'tensor' }), ConfigError);
  assert.throws(() => new GradientMasker(params, { ratio: -0.1, scope: 'tensor' }), ConfigError);
  assert.throws(() => new GradientMasker(params, { ratio: 0.3, scope: 'block' as MaskScope }), /scope must be one of/);
  assert.throws(() => new GradientMasker([...params, ...params], { ratio: 0.3, scope: 'tensor' }), /duplicate/);
  const masker = new GradientMasker(params, { ratio: 0.3, scope: 'tensor' });
  await assert.rejects(masker.apply(new Map()), /no gradient for parameter "a"/);
  const [g2, s3, i2] = [tf.zeros([2]), tf.zeros([3]), tf.zeros([2], 'int32')];
  await assert.rejects(masker.apply(new Map([['a', g2]]), new Map([['a', s3]])), /gradient of "a" is float32 \[2\], its score float32 \[3\]; they must match/);
  await assert.rejects(masker.apply(new Map([['a', i2]]), new Map([['a', g2]])), /gradient of "a" is int32/);
  for (const t of [g2, s3, i2]) t.dispose();
});

test('maskStatistics: kept fractions and Jaccard from one readback', async () => {
  const a = new Map([['x', tf.tensor([1, 1, 0, 0])], ['y', tf.tensor([1, 0])]]);
  const b = new Map([['x', tf.tensor([1, 0, 1, 0])], ['y', tf.tensor([1, 1])]]);
  const loss = tf.scalar(2.5);
  const s = await maskStatistics(b, a, [loss]);
  assert.deepEqual(s.keptByTensor, { x: 0.5, y: 1 });
  assert.equal(s.keptFraction, 4 / 6);
  // ∩ = {x0, y0} = 2; ∪ = 3 + 4 − 2 = 5.
  assert.equal(s.jaccard, 2 / 5);
  assert.deepEqual(s.extras, [2.5]);
  const none = await maskStatistics(undefined, undefined, [loss]);
  assert.equal(none.keptFraction, 1);
  assert.equal(none.jaccard, undefined);
  for (const t of [...a.values(), ...b.values(), loss]) t.dispose();
});

/** Drops `extras` so host-counted statistics compare with `maskStatistics` field by field. */
function withoutExtras(s: { keptFraction: number; keptByTensor: Record<string, number>; jaccard?: number }): object {
  return { keptFraction: s.keptFraction, keptByTensor: s.keptByTensor, ...(s.jaccard === undefined ? {} : { jaccard: s.jaccard }) };
}

// Sizes that straddle 32-bit words and exceed the quickselect cutoff, so every path of the
// host bitset (partial words shared by two tensors, radix select, whole-segment keep) runs.
const LARGE: { param: MaskParam; shape: number[] }[] = [
  { param: { name: 'tok', group: 'embed' }, shape: [37, 41] },
  { param: { name: 'b0.ln', group: 'block.0' }, shape: [3] },
  { param: { name: 'b0.w', group: 'block.0' }, shape: [45, 47] },
  { param: { name: 'b1.w', group: 'block.1' }, shape: [1025] },
  { param: { name: 'head.out', group: 'head' }, shape: [19, 61] },
];

// On wasm the selection and the bitset run in wasm kernels (select_abs_parts, mask_apply, mark_bits).
for (const [backend, scope] of ['cpu', 'wasm'].flatMap((b) => (['tensor', 'layer', 'global'] as MaskScope[]).map((s) => [b, s] as const))) {
  test(`GradientMasker (${backend}, ${scope}): host-counted stats equal maskStatistics on the returned masks`, async () => {
    await tf.setBackend(backend);
    const rng = new Rng(scope.length * 7 + 1);
    const before = tf.memory().numTensors;
    for (const kind of ['continuous', 'ties', 'wide'] as Kind[]) {
      for (const ratio of [0.3, 0.9]) {
        const masker = new GradientMasker(LARGE.map((p) => p.param), { ratio, scope });
        let previous: Map<string, tf.Tensor> | undefined;
        for (let update = 0; update < 3; update++) {
          const host = new Map<string, Float32Array>();
          const grads = new Map<string, tf.Tensor>();
          for (const { param, shape } of LARGE) {
            const v = randomValues(rng, shape.reduce((a, b) => a * b, 1), kind);
            host.set(param.name, v);
            grads.set(param.name, tf.tensor(v, shape));
          }
          const result = await masker.apply(grads);
          const where = `${scope}/${kind}/k=${ratio}/update ${update}`;
          // The exact contract still holds on these sizes (radix path included).
          for (const segment of scopeSegments(LARGE.map((p) => p.param), scope)) {
            const expected = referenceThreshold(segment.flatMap((n) => Array.from(host.get(n)!)), ratio);
            for (const n of segment) assert.equal(result.thresholds.get(n), expected, `${where} ${n}`);
          }
          const reference = await maskStatistics(result.masks, previous);
          assert.deepEqual(withoutExtras(result.stats!), withoutExtras(reference), where);
          assert.equal(result.stats!.jaccard === undefined, update === 0, `${where}: Jaccard from the second update on`);
          for (const t of [...grads.values(), ...result.grads.values()]) t.dispose();
          for (const t of previous?.values() ?? []) t.dispose();
          previous = result.masks;
        }
        for (const t of previous?.values() ?? []) t.dispose();
      }
    }
    assert.equal(tf.memory().numTensors, before, 'no tensors leak');
    await tf.setBackend('cpu');
  });
}

test('GradientMasker.reset forgets the previous mask; an unchanged mask has Jaccard 1', async () => {
  const masker = new GradientMasker(LARGE.map((p) => p.param), { ratio: 0.5, scope: 'global' });
  const rng = new Rng(5);
  const grads = new Map(LARGE.map(({ param, shape }) => [param.name, tf.tensor(randomValues(rng, shape.reduce((a, b) => a * b, 1), 'continuous'), shape)]));
  const dispose = (r: { grads: Map<string, tf.Tensor>; masks: Map<string, tf.Tensor> }): void => {
    for (const t of [...r.grads.values(), ...r.masks.values()]) t.dispose();
  };
  const first = await masker.apply(grads);
  assert.equal(first.stats!.jaccard, undefined);
  const second = await masker.apply(grads);
  assert.equal(second.stats!.jaccard, 1);
  masker.reset();
  const third = await masker.apply(grads);
  assert.equal(third.stats!.jaccard, undefined);
  assert.deepEqual(third.stats!.keptByTensor, first.stats!.keptByTensor);
  for (const r of [first, second, third]) dispose(r);
  for (const t of grads.values()) t.dispose();
});

/** Entries with structure like real gradients: rows and columns of different scales, a few zero rows. */
function gradientLike(rng: Rng, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const colScale = Array.from({ length: cols }, () => Math.exp((rng.next() - 0.5) * 6));
  for (let r = 0; r < rows; r++) {
    const rowScale = rng.bernoulli(0.1) ? 0 : Math.exp((rng.next() - 0.5) * 4);
    for (let c = 0; c < cols; c++) out[r * cols + c] = (rng.next() - 0.5) * rowScale * colScale[c]!;
  }
  return out;
}

// The select kernel on its own, against a sort, on every path it has: quickselect on a copy
// (≤ 1024 entries), radix select alone (no sample, or < 4096 entries), within the bounds of a
// sample, and after those bounds missed (forced with a sample margin of 0.01 σ, which leaves
// the bounds one or two sample values apart, so most ranks fall outside). On the engine of the
// run (the suite runs this file on the native engine, where it built, and on wasm), whose
// vector paths (wasm 4 lanes, AVX2 8, AVX-512 16) each pack the gathered entries their own way.
test('select_abs_parts (engine in use) finds the exact rank on every path, over one part or several', async () => {
  await tf.setBackend('wasm');
  try {
    const wk = fusedKernels();
    assert.ok(wk, 'fused kernels are available');
    const { kernels: k, backend: be } = wk;
    const rng = new Rng(2024);
    const paths = [0, 0, 0, 0];
    const cases: { name: string; values: Float32Array }[] = [];
    for (const n of [700, 1025, 4095, 4096, 9001, 70000]) {
      for (const kind of ['continuous', 'ties', 'wide', 'constant'] as Kind[]) cases.push({ name: `${kind} n=${n}`, values: randomValues(rng, n, kind) });
    }
    cases.push({ name: 'gradient-like 300×257', values: gradientLike(rng, 300, 257) });
    const sorted = Float32Array.from({ length: 20000 }, (_, i) => i / 3 - 2000);
    cases.push({ name: 'sorted ramp', values: sorted });
    cases.push({ name: 'reversed ramp', values: sorted.slice().reverse() });
    const special = randomValues(rng, 12000, 'continuous');
    special.set([NaN, Infinity, -Infinity, -0, 0, NaN], 5000);
    cases.push({ name: 'NaN, ±∞ and ±0', values: special });
    for (const { name, values } of cases) {
      const n = values.length;
      const reference = new Uint32Array(values.buffer.slice(0)).map((u) => u & 0x7fffffff).sort();
      // Three uneven parts (the last may be empty) or one.
      for (const cuts of [[n], [Math.floor(n / 5), Math.floor(n / 2), n]]) {
        const base = be.wasm._malloc(4 * (2 * n + k.select_work_words() + 4 + 6));
        try {
          const data = base, scratch = data + 4 * n, work = scratch + 4 * n, info = work + 4 * k.select_work_words(), parts = info + 16;
          new Float32Array(be.wasm.HEAPU8.buffer, data, n).set(values);
          const table = new Int32Array(be.wasm.HEAPU8.buffer, parts, 2 * cuts.length);
          cuts.forEach((end, p) => {
            const start = p === 0 ? 0 : cuts[p - 1]!;
            table[2 * p] = data + 4 * start;
            table[2 * p + 1] = end - start;
          });
          for (const sigmas of [0, 4, 0.01]) {
            for (const rank of [0, 1, Math.floor(0.3 * n), Math.floor(0.9 * n), n - 1]) {
              const got = k.select_abs_parts(parts, cuts.length, rank, sigmas, scratch, work, info) >>> 0;
              const path = new Int32Array(be.wasm.HEAPU8.buffer, info, 1)[0]!;
              paths[path]!++;
              assert.equal(got, reference[rank], `${name}, ${cuts.length} part(s), σ=${sigmas}, rank ${rank}: path ${path}`);
            }
          }
        } finally {
          be.wasm._free(base);
        }
      }
    }
    assert.ok(paths[0]! > 0 && paths[1]! > 0 && paths[2]! > 0 && paths[3]! > 0, `every path ran (radix, sampled, missed, small): ${paths}`);
  } finally {
    await tf.setBackend('cpu');
  }
});

// Segments big enough that the wasm select samples in every scope (the LARGE layout above only
// reaches the sampled path at global scope): thresholds, masks and stats still equal the host path.
const SAMPLED: { param: MaskParam; shape: number[] }[] = [
  { param: { name: 'tok', group: 'embed' }, shape: [97, 64] },
  { param: { name: 'b0.ln', group: 'block.0' }, shape: [64] },
  { param: { name: 'b0.w', group: 'block.0' }, shape: [64, 193] },
  { param: { name: 'b0.v', group: 'block.0' }, shape: [5000] },
  { param: { name: 'head.out', group: 'head' }, shape: [64, 97] },
];

for (const scope of ['tensor', 'layer', 'global'] as MaskScope[]) {
  test(`GradientMasker (wasm, ${scope}, sampled select) equals the cpu masker bit for bit`, async () => {
    const rng = new Rng(scope.length * 13 + 3);
    const before = tf.memory().numTensors;
    for (const ratio of [0.1, 0.3, 0.7]) {
      const host = SAMPLED.map(({ shape }) => gradientLike(rng, shape[0]!, shape.length > 1 ? shape[1]! : 1));
      const run = async (backend: string): Promise<{ thresholds: Map<string, number>; masks: Float32Array[]; grads: Float32Array[]; stats: object[]; counts?: object }> => {
        await tf.setBackend(backend);
        const masker = new GradientMasker(SAMPLED.map((p) => p.param), { ratio, scope });
        const stats: object[] = [];
        let last: MaskResult | undefined;
        // Twice, so that the second call reports the Jaccard overlap with the first.
        for (let call = 0; call < 2; call++) {
          const grads = new Map(SAMPLED.map(({ param, shape }, i) => [param.name, tf.tensor(call === 0 ? host[i]! : host[i]!.map((x, j) => (j % 7 === 0 ? -x * 3 : x)), shape)]));
          if (last) for (const t of [...last.grads.values(), ...last.masks.values()]) t.dispose();
          last = await masker.apply(grads);
          stats.push(last.stats!);
          for (const t of grads.values()) t.dispose();
        }
        const out = {
          thresholds: last!.thresholds,
          masks: SAMPLED.map((p) => last!.masks.get(p.param.name)!.dataSync() as Float32Array),
          grads: SAMPLED.map((p) => last!.grads.get(p.param.name)!.dataSync() as Float32Array),
          stats,
          counts: { ...masker.selectCounts },
        };
        for (const t of [...last!.grads.values(), ...last!.masks.values()]) t.dispose();
        return out;
      };
      const cpu = await run('cpu');
      const wasm = await run('wasm');
      const where = `${scope} k=${ratio}`;
      assert.ok((wasm.counts as { sampled: number }).sampled > 0, `${where}: the sampled select ran (${JSON.stringify(wasm.counts)})`);
      assert.deepEqual([...wasm.thresholds], [...cpu.thresholds], where);
      SAMPLED.forEach((p, i) => {
        assert.deepEqual(wasm.masks[i], cpu.masks[i], `${where} mask ${p.param.name}`);
        assert.deepEqual(wasm.grads[i], cpu.grads[i], `${where} masked gradient ${p.param.name}`);
      });
      assert.deepEqual(wasm.stats, cpu.stats, `${where}: kept fractions and Jaccard`);
    }
    await tf.setBackend('cpu');
    assert.equal(tf.memory().numTensors, before, 'no tensors leak');
  });
}
