/**
 * The native engine: gpt-kernels.c compiled for this CPU (scripts/build-native.mjs), checked
 * kernel by kernel against naive references and against the wasm engine, model by model against
 * the wasm fused path and tfjs autodiff, and for thread-count independence and tensor leaks.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { engineChoice, fusedKernels, setEngine } from '../src/backend/engine';
import { loadNative, nativeKernels } from '../src/backend/native';
import { wasmKernels, type FusedKernels, type WasmHeapBackend } from '../src/backend/wasm-kernels';
import { GPT, generate, gptPreset, weightsSha256, type GPTConfig } from '../src/model';
import { train } from '../src/train';
import { listStrategies } from '../src/tuning';
import type { HostBatch } from '../src/types';
import { Rng } from '../src/util/rng';

const repo = path.join(__dirname, '..', '..');

function hostBatch(V: number, B: number, T: number, seed: number): HostBatch {
  const rng = new Rng(seed);
  return {
    batchSize: B,
    seqLen: T,
    inputs: Int32Array.from({ length: B * T }, () => rng.int(0, V - 1)),
    targets: Int32Array.from({ length: B * T }, () => rng.int(0, V - 1)),
    weights: Float32Array.from({ length: B * T }, (_, i) => (i % 3 === 0 ? 0 : 1)),
  };
}

/** Both engines' kernels on one tfjs-wasm heap, with allocation helpers. */
async function engines(): Promise<{ be: WasmHeapBackend; wasm: FusedKernels; native: FusedKernels; put: (a: ArrayLike<number>, int?: boolean) => number; get: (at: number, n: number) => Float32Array; free: () => void }> {
  await tf.setBackend('wasm');
  const wk = wasmKernels();
  assert.ok(wk, 'wasm kernels unavailable');
  const nat = loadNative();
  assert.ok(nat.ok, `native engine unavailable: ${nat.ok ? '' : nat.reason}`);
  const be = wk.backend;
  const blocks: number[] = [];
  const put = (a: ArrayLike<number>, int = false): number => {
    const at = be.wasm._malloc(4 * Math.max(1, a.length) + 64);
    blocks.push(at);
    if (int) new Int32Array(be.wasm.HEAPU8.buffer, at, a.length).set(a);
    else new Float32Array(be.wasm.HEAPU8.buffer, at, a.length).set(a);
    return at;
  };
  const get = (at: number, n: number) => new Float32Array(be.wasm.HEAPU8.buffer, at, n).slice();
  return { be, wasm: wk.kernels, native: nativeKernels(nat.addon, be), put, get, free: () => blocks.splice(0).forEach((b) => be.wasm._free(b)) };
}

/** A standard normal draw (Box–Muller) from the seeded stream. */
function gauss(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / Math.max(den, 1e-30);
}

test('the native engine builds here, loads, passes its self-test, and is the default', () => {
  const nat = loadNative();
  assert.ok(nat.ok, nat.ok ? '' : nat.reason);
  assert.match(nat.build.isa, /^(avx512|avx2|neon)$/);
  assert.match(nat.build.buildId, /^[0-9a-f]{12}$/);
  const saved = process.env.GMT_ENGINE;
  try {
    delete process.env.GMT_ENGINE;
    assert.equal(engineChoice().engine, 'native');
    process.env.GMT_ENGINE = 'wasm';
    assert.equal(engineChoice().engine, 'wasm');
    assert.match(engineChoice().otherNotUsed, /native: not asked for/);
    process.env.GMT_ENGINE = 'avx';
    assert.throws(() => engineChoice(), /GMT_ENGINE must be native, wasm or auto, got "avx"/);
  } finally {
    if (saved === undefined) delete process.env.GMT_ENGINE;
    else process.env.GMT_ENGINE = saved;
  }
});

test('GEMM: every transpose, stride, accumulate and edge shape equals the naive product (property, both engines)', async () => {
  const { wasm, native, put, get, free } = await engines();
  try {
    fc.assert(fc.property(
      fc.record({
        M: fc.integer({ min: 1, max: 40 }), N: fc.integer({ min: 1, max: 75 }), K: fc.integer({ min: 0, max: 300 }),
        ta: fc.boolean(), tb: fc.boolean(), acc: fc.boolean(),
        padA: fc.integer({ min: 0, max: 3 }), padB: fc.integer({ min: 0, max: 3 }), padC: fc.integer({ min: 0, max: 3 }), seed: fc.integer(),
      }),
      ({ M, N, K, ta, tb, acc, padA, padB, padC, seed }) => {
        const rng = new Rng(seed);
        // Multiples of 1/4 below 2 in magnitude: every product and partial sum is exact, so any
        // summation order gives the same bits and the engines must match the reference exactly.
        const q = () => rng.int(-7, 7) / 4;
        const lda = (ta ? M : K) + padA, ldb = (tb ? K : N) + padB, ldc = N + padC;
        const A = Float32Array.from({ length: (ta ? K : M) * lda }, q);
        const B = Float32Array.from({ length: (tb ? N : K) * ldb }, q);
        const C0 = Float32Array.from({ length: M * ldc }, q);
        const ref = C0.slice();
        for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
          let s = acc ? C0[i * ldc + j]! : 0;
          for (let k = 0; k < K; k++) s += A[ta ? k * lda + i : i * lda + k]! * B[tb ? j * ldb + k : k * ldb + j]!;
          ref[i * ldc + j] = s;
        }
        for (const [name, k] of [['native', native], ['wasm', wasm]] as const) {
          const a = put(A), b = put(B), c = put(C0), s = put(new Float32Array(k.gemm_scratch_floats(N)));
          k.gemm(a, lda, ta ? 1 : 0, b, ldb, tb ? 1 : 0, c, ldc, M, N, K, acc ? 1 : 0, s);
          const got = get(c, M * ldc);
          for (let i = 0; i < got.length; i++) {
            if (got[i] !== ref[i]) throw new Error(`${name} gemm ${M}×${N}×${K} ta=${ta} tb=${tb} acc=${acc}: C[${i}] = ${got[i]}, expected ${ref[i]}`);
          }
        }
        free();
      },
    ), { seed: 20261206, numRuns: 150 });
  } finally {
    free();
    await tf.setBackend('cpu');
  }
});

test('row kernels equal the wasm engine: LayerNorm, GELU, cross-entropy, embedding, attention (property)', async () => {
  const { wasm, native, put, get, free } = await engines();
  try {
    fc.assert(fc.property(
      fc.record({ B: fc.integer({ min: 1, max: 3 }), T: fc.integer({ min: 1, max: 40 }), H: fc.integer({ min: 1, max: 3 }), hd: fc.integer({ min: 1, max: 20 }), V: fc.integer({ min: 2, max: 70 }), seed: fc.integer() }),
      ({ B, T, H, hd, V, seed }) => {
        const rng = new Rng(seed);
        const r = () => gauss(rng);
        const d = H * hd, N = B * T;
        const x = Float32Array.from({ length: N * d }, r), g = Float32Array.from({ length: d }, () => 1 + 0.1 * r()), bb = Float32Array.from({ length: d }, r);
        const dy = Float32Array.from({ length: N * d }, r);
        const qkv = Float32Array.from({ length: N * 3 * d }, r), dout = Float32Array.from({ length: N * d }, r);
        const logits = Float32Array.from({ length: N * V }, () => 3 * r());
        const targets = Int32Array.from({ length: N }, () => rng.int(0, V - 1)), w = Float32Array.from({ length: N }, (_, i) => (i % 4 === 1 ? 0 : 1));
        const tokens = Int32Array.from({ length: N }, () => rng.int(0, V - 1));
        const wteV = Float32Array.from({ length: V * d }, r), wpeV = Float32Array.from({ length: T * d }, r);
        const out: Record<string, Float32Array[]> = {};
        const add = (name: string, v: Float32Array) => (out[name] ??= []).push(v);
        for (const k of [wasm, native]) {
          const [px, pg, pb, py, pm, pr] = [put(x), put(g), put(bb), put(new Float32Array(N * d)), put(new Float32Array(N)), put(new Float32Array(N))];
          k.layernorm_fwd(px, pg, pb, py, pm, pr, N, d, 1e-5);
          add('layernorm_fwd', get(py, N * d));
          const [pdy, pdx, pdg, pdb] = [put(dy), put(new Float32Array(N * d).fill(0.5)), put(new Float32Array(d).fill(0.25)), put(new Float32Array(d))];
          k.layernorm_bwd(pdy, px, pm, pr, pg, pdx, pdg, pdb, N, d);
          add('layernorm_bwd dx', get(pdx, N * d));
          add('layernorm_bwd dgamma', get(pdg, d));
          add('layernorm_bwd dbeta', get(pdb, d));
          const pgo = put(new Float32Array(N * d));
          k.gelu_fwd(px, pgo, N * d);
          add('gelu_fwd', get(pgo, N * d));
          k.gelu_bwd(px, pdy, pgo, N * d);
          add('gelu_bwd', get(pgo, N * d));
          const pl = put(logits);
          const loss = k.xent_fwd_bwd(pl, put(targets, true), put(w), N, V);
          add('xent loss', Float32Array.of(loss));
          add('xent dlogits', get(pl, N * V));
          const wte = put(wteV), wpe = put(wpeV);
          const pt = put(tokens, true), pe = put(new Float32Array(N * d));
          k.embed_fwd(pt, wte, wpe, pe, N, T, d);
          add('embed_fwd', get(pe, N * d));
          const dwte = put(new Float32Array(V * d)), dwpe = put(new Float32Array(T * d));
          k.embed_bwd(pt, pdy, dwte, dwpe, N, T, d);
          add('embed_bwd wte', get(dwte, V * d));
          add('embed_bwd wpe', get(dwpe, T * d));
          const pq = put(qkv), pat = put(new Float32Array(N * d)), pP = put(new Float32Array(B * H * T * T));
          const S = put(new Float32Array(k.gemm_scratch_floats(Math.max(T, hd)) + T * T));
          k.attention_fwd(pq, pat, pP, B, T, H, hd, S);
          add('attention_fwd', get(pat, N * d));
          const pdq = put(new Float32Array(N * 3 * d)), pdP = put(new Float32Array(T * T));
          k.attention_bwd(pq, pP, put(dout), pdq, pdP, B, T, H, hd, S);
          add('attention_bwd', get(pdq, N * 3 * d));
        }
        for (const [name, [a, b]] of Object.entries(out)) {
          const rel = maxRelDiff(b!, a!);
          if (!(rel < 2e-5)) throw new Error(`${name} (B ${B}, T ${T}, H ${H}, hd ${hd}, V ${V}): native differs from wasm by ${rel.toExponential(2)}`);
        }
        free();
      },
    ), { seed: 61206, numRuns: 60 });
  } finally {
    free();
    await tf.setBackend('cpu');
  }
});

test('AdamW, the gradient norm, GMT\'s select and mask: the native engine gives the wasm engine\'s bits', async () => {
  const { wasm, native, put, get, free } = await engines();
  try {
    const rng = new Rng(5);
    for (const n of [1, 17, 1000, 70001]) {
      const theta = Float32Array.from({ length: n }, () => gauss(rng)), g = Float32Array.from({ length: n }, () => gauss(rng) * 1e-2);
      const m = Float32Array.from({ length: n }, () => gauss(rng) * 1e-3), v = Float32Array.from({ length: n }, () => rng.next() * 1e-4);
      const mask = Float32Array.from({ length: n }, () => (rng.next() < 0.7 ? 1 : 0));
      const res: Float32Array[][] = [];
      const norms: number[] = [];
      const selects: number[] = [];
      for (const k of [wasm, native]) {
        const outs = [put(new Float32Array(n)), put(new Float32Array(n)), put(new Float32Array(n))];
        const pg = put(g);
        k.adamw(put(theta), pg, put(m), put(v), put(mask), outs[0]!, outs[1]!, outs[2]!, n, 0.9, 0.1, 0.999, 0.001, 1 / 0.1, 1 / 0.001, 1e-8, 2e-3, 0.01, 1, 1);
        const parts = put(Int32Array.of(pg, n), true);
        const words = Math.ceil(n / 32);
        const scratch = put(new Float32Array(n)), work = put(new Float32Array(k.select_work_words())), info = put(new Int32Array(4), true);
        const t = k.select_abs_parts(parts, 1, Math.floor(0.3 * n), 3, scratch, work, info) >>> 0;
        const pm = put(new Float32Array(n)), po = put(new Float32Array(n)), pw = put(new Int32Array(words + 1), true);
        const kept = k.mask_apply(pg, pg, n, t, 0x7f7fffff, pm, po, pw, 0);
        res.push([...outs.map((o) => get(o, n)), get(pm, n), get(po, n), get(pw, words)]);
        norms.push(k.sum_squares(pg, n));
        selects.push(t, kept);
      }
      const [a, b] = res as [Float32Array[], Float32Array[]];
      a.forEach((x, i) => assert.deepEqual(b[i], x, `n=${n}: output ${i} differs`));
      assert.deepEqual(selects.slice(2), selects.slice(0, 2), `n=${n}: threshold or kept count differs`);
      assert.ok(Math.abs(norms[1]! - norms[0]!) <= 1e-12 * norms[0]!, `n=${n}: Σg² ${norms[1]} vs ${norms[0]}`);
      free();
    }
  } finally {
    free();
    await tf.setBackend('cpu');
  }
});

/** Loss and gradients through the model's fused path on the engine given. */
function fusedStep(model: GPT, b: HostBatch, engine: 'native' | 'wasm'): { loss: number; grads: Map<string, Float32Array> } {
  setEngine(engine);
  const r = model.lossAndGradients(b);
  assert.ok(r, `fused path unavailable: ${model.fusedReason()}`);
  const out = { loss: r.loss.dataSync()[0] as number, grads: new Map([...r.grads].map(([n, g]) => [n, g.dataSync() as Float32Array])) };
  tf.dispose([r.loss, ...r.grads.values()]);
  return out;
}

function autodiff(model: GPT, b: HostBatch): { loss: number; grads: Map<string, Float32Array> } {
  const shape: [number, number] = [b.batchSize, b.seqLen];
  const tb = { inputs: tf.tensor2d(b.inputs, shape, 'int32'), targets: tf.tensor2d(b.targets, shape, 'int32'), weights: tf.tensor2d(b.weights, shape) };
  const { value, grads } = tf.variableGrads(() => model.loss(tb), model.params.map((p) => p.variable));
  const out = { loss: value.dataSync()[0] as number, grads: new Map(model.params.map((p) => [p.name, grads[p.variable.name]!.dataSync() as Float32Array])) };
  tf.dispose([value, tb.inputs, tb.targets, tb.weights, ...Object.values(grads)]);
  return out;
}

function relL2(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i]! - b[i]!) ** 2; den += b[i]! ** 2; }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

const MODELS: [string, Partial<GPTConfig>, [number, number][]][] = [
  ['nano', gptPreset('nano', { vocabSize: 96, seed: 1 }), [[1, 1], [2, 37], [3, 128]]],
  ['micro', gptPreset('micro', { vocabSize: 96, seed: 2 }), [[1, 13], [4, 64]]],
  ['mini', gptPreset('mini', { vocabSize: 96, seed: 3 }), [[2, 29]]],
  // Widths that are no multiple of any vector: d 24 (head size 8), vocab 37.
  ['odd', { vocabSize: 37, contextLength: 40, dModel: 24, nLayers: 2, nHeads: 3, seed: 4 }, [[1, 40], [5, 7]]],
  ['tiny', { vocabSize: 13, contextLength: 11, dModel: 6, nLayers: 1, nHeads: 2, seed: 7 }, [[2, 11], [1, 1]]],
];

for (const [label, cfg, shapes] of MODELS) test(`native loss and gradients equal the wasm fused path and tfjs autodiff (${label})`, async () => {
  await tf.setBackend('wasm');
  const model = new GPT(cfg);
  const ref = new GPT(cfg, { fused: false }, Object.fromEntries(model.params.map((p) => [p.name, p.variable])));
  try {
    for (const [B, T] of shapes) {
      const b = hostBatch(cfg.vocabSize!, B, T, B * 100 + T);
      const n = fusedStep(model, b, 'native');
      const w = fusedStep(model, b, 'wasm');
      const a = autodiff(ref, b);
      for (const [other, o] of [['wasm', w], ['autodiff', a]] as const) {
        assert.ok(Math.abs(n.loss - o.loss) < 1e-5 * Math.max(1, o.loss), `${label} B=${B} T=${T}: loss ${n.loss} vs ${other} ${o.loss}`);
        for (const [name, g] of n.grads) {
          const rel = relL2(g, o.grads.get(name)!);
          assert.ok(rel < 2e-4, `${label} B=${B} T=${T} ${name}: relative difference to ${other} ${rel.toExponential(2)}`);
        }
      }
      setEngine('native');
      assert.equal(model.lossNative(b), n.loss, 'the forward-only loss differs from the training step\'s');
    }
  } finally {
    setEngine('auto');
    model.dispose();
    ref.dispose();
    await tf.setBackend('cpu');
  }
});

test('every strategy trains to the same weights on 1 and 2 native threads, near the wasm engine\'s', async () => {
  await tf.setBackend('wasm');
  const cfg = gptPreset('nano', { vocabSize: 96, seed: 9 });
  const run = async (engine: 'native' | 'wasm', threads: number, method: string) => {
    setEngine(engine);
    const model = new GPT(cfg, { workers: threads });
    let i = 0;
    await train(model, {
      strategy: { name: method, options: method === 'hft' || method === 'sft' ? {} : method === 'childtuning-f' ? { p: 0.7 } : { ratio: 0.3 } },
      steps: 4, accum: 2, lr: 3e-3, warmup: 0, seed: 3, clipNorm: 1,
      nextBatch: () => hostBatch(96, 4, 24, 200 + (i++ % 6)),
    });
    const sha = weightsSha256(model.params);
    const values = model.params.map((p) => p.variable.dataSync() as Float32Array);
    model.dispose();
    return { sha, values };
  };
  try {
    for (const method of listStrategies()) {
      const one = await run('native', 1, method);
      const two = await run('native', 2, method);
      assert.equal(two.sha, one.sha, `${method}: 2 native threads give other weights than 1`);
      const w = await run('wasm', 1, method);
      let worst = 0;
      one.values.forEach((v, k) => { worst = Math.max(worst, relL2(v, w.values[k]!)); });
      assert.ok(worst < 1e-3, `${method}: native weights differ from wasm by ${worst.toExponential(2)}`);
    }
  } finally {
    setEngine('auto');
    await tf.setBackend('cpu');
  }
});

test('generation on the native kernels gives the tfjs path\'s greedy tokens', async () => {
  await tf.setBackend('wasm');
  const cfg = gptPreset('nano', { vocabSize: 96, contextLength: 24, seed: 12 });
  const model = new GPT(cfg);
  try {
    const rng = new Rng(8);
    // Prompts up to the context and generations past it, so the crop path runs too.
    const prompts = Array.from({ length: 70 }, (_, i) => Array.from({ length: 1 + (i % 24) }, () => rng.int(0, 95)));
    setEngine('native');
    const tensors = tf.memory().numTensors;
    const fast = generate(model, prompts, { maxNewTokens: 12, temperature: 0, batchSize: 50 });
    assert.equal(tf.memory().numTensors, tensors, 'native generation left tensors behind');
    setEngine('wasm');
    const ref = generate(model, prompts, { maxNewTokens: 12, temperature: 0, batchSize: 50 });
    let same = 0;
    fast.forEach((row, i) => { if (row.join() === ref[i]!.join()) same++; });
    // Float rounding may flip a greedy choice between near-equal logits of a random model, rarely.
    assert.ok(same >= 66, `only ${same} of 70 rows generate the same tokens`);
    assert.ok(fast.every((r) => r.length === 12));
    setEngine('native');
    const sampled = generate(model, prompts.slice(0, 5), { maxNewTokens: 6, temperature: 1, seed: 3 });
    assert.deepEqual(generate(model, prompts.slice(0, 5), { maxNewTokens: 6, temperature: 1, seed: 3 }), sampled, 'sampling is not repeatable');
  } finally {
    setEngine('auto');
    model.dispose();
    await tf.setBackend('cpu');
  }
});

test('500 native updates keep the tensor count flat and process memory bounded', async () => {
  await tf.setBackend('wasm');
  setEngine('native');
  const model = new GPT(gptPreset('nano', { vocabSize: 96, seed: 21 }), { workers: 2 });
  try {
    let i = 0, tensors = 0, rss = 0;
    await train(model, {
      strategy: { name: 'gmt', options: { ratio: 0.3 } }, steps: 500, accum: 1, lr: 1e-3, warmup: 0, seed: 1,
      nextBatch: () => hostBatch(96, 2, 16, i++ % 9),
      onUpdate: (u) => {
        if (u.step === 50) { tensors = tf.memory().numTensors; rss = process.memoryUsage().rss; }
        if (u.step > 50) assert.equal(tf.memory().numTensors, tensors, `update ${u.step}: ${tf.memory().numTensors} tensors, ${tensors} at update 50`);
      },
    });
    const grew = process.memoryUsage().rss - rss;
    assert.ok(grew < 64 * 2 ** 20, `process memory grew by ${(grew / 2 ** 20).toFixed(0)} MiB over 450 updates`);
  } finally {
    setEngine('auto');
    model.dispose();
    await tf.setBackend('cpu');
  }
});

test('a build whose kernels compute wrong is refused at load, naming the check that failed', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-native-bad-'));
  try {
    execFileSync(process.execPath, [path.join(repo, 'scripts', 'build-native.mjs'), '--out', out, '--quiet', '--define', 'GMT_SELF_TEST_SABOTAGE'], { stdio: 'pipe' });
    const bad = loadNative(out);
    assert.equal(bad.ok, false);
    assert.match(bad.ok ? '' : bad.reason, /failed its self-test \(gemm \d+x\d+x\d+ .*differs from the naive product.*\); refusing a miscompiled build/);
    const missing = loadNative(path.join(out, 'nowhere'));
    assert.match(missing.ok ? '' : missing.reason, /^not built/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('an AVX2 build of the same source passes its self-test and matches the native default', { skip: process.arch !== 'x64' || !fs.readFileSync('/proc/cpuinfo', 'utf8').includes(' avx2') }, async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-native-avx2-'));
  try {
    execFileSync(process.execPath, [path.join(repo, 'scripts', 'build-native.mjs'), '--out', out, '--quiet', '--isa', 'avx2'], { stdio: 'pipe' });
    const avx2 = loadNative(out);
    assert.ok(avx2.ok, avx2.ok ? '' : avx2.reason);
    assert.equal(avx2.build.isa, 'avx2');
    const { be, native, put, get, free } = await engines();
    const k2 = nativeKernels(avx2.addon, be);
    const rng = new Rng(3);
    const [M, N, K] = [37, 53, 130];
    const A = Float32Array.from({ length: M * K }, () => gauss(rng)), B = Float32Array.from({ length: K * N }, () => gauss(rng));
    const c1 = put(new Float32Array(M * N)), c2 = put(new Float32Array(M * N));
    native.gemm(put(A), K, 0, put(B), N, 0, c1, N, M, N, K, 0, 0);
    k2.gemm(put(A), K, 0, put(B), N, 0, c2, N, M, N, K, 0, 0);
    assert.ok(maxRelDiff(get(c2, M * N), get(c1, M * N)) < 1e-5);
    free();
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
    await tf.setBackend('cpu');
  }
});

test('fusedKernels names the engine in use, and the gradient path carries it', async () => {
  await tf.setBackend('wasm');
  try {
    setEngine('native');
    const n = fusedKernels();
    assert.equal(n?.engine, 'native');
    const model = new GPT({ vocabSize: 13, contextLength: 11, dModel: 6, nLayers: 1, nHeads: 2 });
    assert.match(model.gradientPath(), /^fused native kernels \((avx512|avx2|neon), build [0-9a-f]{12}\)$/);
    setEngine('wasm');
    assert.equal(fusedKernels()?.engine, 'wasm');
    assert.match(model.gradientPath(), /^fused wasm kernels \((relaxed-simd|simd128)\), 1 thread$/);
    model.dispose();
  } finally {
    setEngine('auto');
    await tf.setBackend('cpu');
  }
});
