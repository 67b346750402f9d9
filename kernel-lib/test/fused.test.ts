import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { GPT, weightsSha256, type GPTConfig } from '../src/model';
import { GPT_KERNELS_WASM, kernelVariant, relaxedSimdSupport, setKernelVariant, wasmKernels, type KernelVariant } from '../src/backend/wasm-kernels';
import { setEngine } from '../src/backend/engine';
import { train } from '../src/train';
import type { HostBatch } from '../src/types';
import { Rng } from '../src/util/rng';

// This file tests the wasm engine (native.test.ts the native one, against this one).
setEngine('wasm');

// Shapes chosen to hit every edge of the kernels: rows not a multiple of the 4-row GEMM panel,
// a vocabulary not a multiple of the 8-column strip, T below the context, head size 8, and
// zero loss weights. TINY has widths that are not multiples of the 4-lane vectors (d = 6,
// head size 3), so the scalar tails of LayerNorm, softmax and the GEMM edges run too.
const ODD: Partial<GPTConfig> = { vocabSize: 99, contextLength: 16, dModel: 24, nLayers: 2, nHeads: 3, seed: 11 };
const TINY: Partial<GPTConfig> = { vocabSize: 13, contextLength: 11, dModel: 6, nLayers: 1, nHeads: 2, seed: 7 };

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

/** Loss and gradients through tfjs autodiff of `model.loss` (fast or plain path). */
function autodiff(model: GPT, b: HostBatch): { loss: number; grads: Map<string, Float32Array> } {
  const shape: [number, number] = [b.batchSize, b.seqLen];
  const tb = { inputs: tf.tensor2d(b.inputs, shape, 'int32'), targets: tf.tensor2d(b.targets, shape, 'int32'), weights: tf.tensor2d(b.weights, shape) };
  const { value, grads } = tf.variableGrads(() => model.loss(tb), model.params.map((p) => p.variable));
  const out = { loss: value.dataSync()[0] as number, grads: new Map(model.params.map((p) => [p.name, grads[p.variable.name]!.dataSync() as Float32Array])) };
  tf.dispose([value, tb.inputs, tb.targets, tb.weights, ...Object.values(grads)]);
  return out;
}

function fused(model: GPT, b: HostBatch): { loss: number; grads: Map<string, Float32Array> } {
  const r = model.lossAndGradients(b);
  assert.ok(r, `fused path unavailable: ${model.fusedReason()}`);
  const out = { loss: r.loss.dataSync()[0] as number, grads: new Map([...r.grads].map(([n, g]) => [n, g.dataSync() as Float32Array])) };
  tf.dispose([r.loss, ...r.grads.values()]);
  return out;
}

/** ‖a − b‖ / ‖b‖ per parameter must stay under `tol`. */
function assertGradsClose(a: Map<string, Float32Array>, b: Map<string, Float32Array>, tol: number): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [name, ga] of a) {
    const gb = b.get(name)!;
    assert.equal(ga.length, gb.length, name);
    let num = 0, den = 0;
    for (let i = 0; i < ga.length; i++) {
      assert.ok(Number.isFinite(ga[i]), `${name}[${i}] is not finite`);
      num += (ga[i]! - gb[i]!) ** 2;
      den += gb[i]! ** 2;
    }
    const rel = Math.sqrt(num / Math.max(den, 1e-30));
    assert.ok(rel < tol, `${name}: relative difference ${rel.toExponential(2)} ≥ ${tol}`);
  }
}

const VARIANTS: KernelVariant[] = ['simd128', 'relaxed-simd'];

for (const [label, cfg, shapes] of [
  ['ODD', ODD, [[3, 7, 1], [2, 16, 2], [1, 1, 3], [2, 13, 4]]],
  ['TINY', TINY, [[2, 11, 5], [3, 5, 6]]],
] as const) test(`fused wasm kernels (both builds) give the fast and plain paths' loss and gradients (${label})`, async () => {
  await tf.setBackend('wasm');
  const weights = new GPT(cfg);
  const values = Object.fromEntries(weights.params.map((p) => [p.name, p.variable]));
  const fast = new GPT(cfg, { fused: false }, values);
  const plain = new GPT(cfg, { fast: false }, values);
  const model = new GPT(cfg, {}, values);
  try {
    for (const variant of VARIANTS) for (const [B, T, seed] of shapes) {
      setKernelVariant(variant);
      assert.equal(wasmKernels()?.variant, variant);
      const b = hostBatch(cfg.vocabSize!, B, T, seed);
      const f = fused(model, b);
      const ref = autodiff(fast, b);
      const pl = autodiff(plain, b);
      assert.ok(Math.abs(f.loss - ref.loss) < 1e-5 * Math.max(1, ref.loss), `loss ${f.loss} vs fast ${ref.loss} (B=${B}, T=${T})`);
      assert.ok(Math.abs(f.loss - pl.loss) < 1e-5 * Math.max(1, pl.loss), `loss ${f.loss} vs plain ${pl.loss}`);
      assertGradsClose(f.grads, ref.grads, 1e-4);
      assertGradsClose(f.grads, pl.grads, 1e-4);
    }
  } finally {
    setKernelVariant('auto');
    for (const m of [weights, fast, plain, model]) m.dispose();
    await tf.setBackend('cpu');
  }
});

test('fused attention past one GEMM K block (T > 256): causal skipping stays exact', async () => {
  await tf.setBackend('wasm');
  const cfg: Partial<GPTConfig> = { vocabSize: 11, contextLength: 300, dModel: 8, nLayers: 1, nHeads: 1, seed: 5 };
  const model = new GPT(cfg);
  const fast = new GPT(cfg, { fused: false }, Object.fromEntries(model.params.map((p) => [p.name, p.variable])));
  try {
    for (const variant of VARIANTS) {
      setKernelVariant(variant);
      const b = hostBatch(11, 1, 299, 9);
      const f = fused(model, b);
      const ref = autodiff(fast, b);
      assert.ok(Math.abs(f.loss - ref.loss) < 1e-5 * Math.max(1, ref.loss), `${variant}: loss ${f.loss} vs fast ${ref.loss}`);
      assertGradsClose(f.grads, ref.grads, 1e-4);
    }
  } finally {
    setKernelVariant('auto');
    fast.dispose();
    model.dispose();
    await tf.setBackend('cpu');
  }
});

test('kernel build: relaxed SIMD where the runtime compiles it, GMT_WASM_KERNELS and setKernelVariant override', async () => {
  const saved = process.env.GMT_WASM_KERNELS;
  try {
    delete process.env.GMT_WASM_KERNELS;
    // Node 20 compiles relaxed SIMD once the V8 flag is set; every Node this project supports does.
    assert.ok(relaxedSimdSupport().ok, relaxedSimdSupport().how);
    assert.equal(kernelVariant().variant, 'relaxed-simd');
    process.env.GMT_WASM_KERNELS = 'simd128';
    assert.equal(kernelVariant().variant, 'simd128');
    assert.match(kernelVariant().reason, /GMT_WASM_KERNELS=simd128/);
    process.env.GMT_WASM_KERNELS = 'avx512';
    assert.throws(() => kernelVariant(), /GMT_WASM_KERNELS must be relaxed-simd, simd128 or auto, got "avx512"/);
    setKernelVariant('simd128');
    assert.equal(kernelVariant().variant, 'simd128');
    assert.throws(() => setKernelVariant('sse' as KernelVariant), /unknown kernel variant "sse"/);
    await tf.setBackend('wasm');
    const model = new GPT(ODD);
    assert.equal(model.gradientPath(), 'fused wasm kernels (simd128), 1 thread');
    model.dispose();
    await tf.setBackend('cpu');
    const cpu = new GPT(ODD);
    assert.match(cpu.gradientPath(), /^fast path \(tfjs ops; fused skipped: the fused kernels need the wasm backend/);
    cpu.dispose();
  } finally {
    setKernelVariant('auto');
    if (saved === undefined) delete process.env.GMT_WASM_KERNELS;
    else process.env.GMT_WASM_KERNELS = saved;
  }
});

for (const variant of VARIANTS) test(`fused step (${variant}): deterministic, no tensor growth, one workspace per batch shape`, async () => {
  await tf.setBackend('wasm');
  setKernelVariant(variant);
  const model = new GPT(ODD);
  try {
    const b = hostBatch(ODD.vocabSize!, 4, 9, 5);
    const first = fused(model, b);
    const tensors = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    for (let i = 0; i < 20; i++) {
      const again = fused(model, b);
      assert.equal(again.loss, first.loss);
      for (const [name, g] of first.grads) assert.deepEqual(again.grads.get(name), g, `${name} differs on call ${i}`);
    }
    assert.equal(tf.memory().numTensors, tensors);
    assert.equal(tf.memory().numBytes, bytes);
  } finally {
    setKernelVariant('auto');
    model.dispose();
    await tf.setBackend('cpu');
  }
});

test('fused step rejects token ids outside the vocabulary and long sequences', async () => {
  await tf.setBackend('wasm');
  const model = new GPT(ODD);
  try {
    const b = hostBatch(ODD.vocabSize!, 2, 4, 6);
    b.targets[3] = 99;
    assert.throws(() => model.lossAndGradients(b), /targets\[3\] = 99 is not a token id of this model \(0\.\.98\)/);
    const long = hostBatch(ODD.vocabSize!, 1, 17, 7);
    assert.throws(() => model.lossAndGradients(long), /sequence length 17 outside 1\.\.contextLength \(16\)/);
  } finally {
    model.dispose();
    await tf.setBackend('cpu');
  }
});

test('fused path is skipped, with a reason, where it cannot run', async () => {
  await tf.setBackend('cpu');
  const model = new GPT(ODD);
  const plain = new GPT(ODD, { fast: false });
  const off = new GPT(ODD, { fused: false });
  try {
    assert.equal(model.lossAndGradients(hostBatch(99, 1, 4, 8)), undefined);
    assert.match(model.fusedReason() ?? '', /need the wasm backend \(active: cpu\)/);
    assert.match(plain.fusedReason() ?? '', /plain reference path/);
    assert.match(off.fusedReason() ?? '', /turned off/);
  } finally {
    for (const m of [model, plain, off]) m.dispose();
  }
});

test('training through the fused path tracks training through tfjs autodiff, and repeats bit for bit', async () => {
  await tf.setBackend('wasm');
  const run = async (fusedOn: boolean) => {
    const model = new GPT(ODD, { fused: fusedOn });
    let i = 0;
    const result = await train(model, {
      strategy: { name: 'gmt', options: { ratio: 0.5 } }, steps: 6, accum: 2, lr: 3e-3, warmup: 0, seed: 1,
      nextBatch: () => hostBatch(ODD.vocabSize!, 4, 12, 100 + (i++ % 5)),
    });
    const sha = weightsSha256(model.params);
    model.dispose();
    return { losses: result.history.map((h) => h.loss), sha };
  };
  try {
    const a = await run(true);
    const b = await run(true);
    const c = await run(false);
    assert.equal(a.sha, b.sha, 'same seed, same batches, fused twice: weights differ');
    assert.equal(a.losses.length, 6);
    a.losses.forEach((l, k) => assert.ok(Math.abs(l - c.losses[k]!) < 1e-3, `update ${k}: fused loss ${l} vs autodiff ${c.losses[k]}`));
    assert.ok(a.losses[5]! < a.losses[0]!, `loss did not fall: ${a.losses}`);
  } finally {
    await tf.setBackend('cpu');
  }
});

test('the committed kernel binaries own no memory and match their source', () => {
  for (const variant of VARIANTS) {
    const bytes = fs.readFileSync(GPT_KERNELS_WASM[variant]);
    const mod = new WebAssembly.Module(bytes);
    assert.deepEqual(WebAssembly.Module.imports(mod).map((i) => `${i.module}.${i.name}:${i.kind}`), ['env.memory:memory'], variant);
    const exported = WebAssembly.Module.exports(mod).map((e) => e.name);
    for (const name of ['gemm', 'layernorm_fwd', 'layernorm_bwd', 'gelu_fwd', 'gelu_bwd', 'attention_fwd', 'attention_bwd', 'xent_fwd_bwd', 'embed_fwd', 'embed_bwd', 'select_abs_parts', 'mask_apply']) {
      assert.ok(exported.includes(name), `${variant}: missing export ${name}`);
    }
  }
  let clang = true;
  try {
    execFileSync('clang-19', ['--version'], { stdio: 'ignore' });
  } catch {
    clang = false;
  }
  if (!clang) return; // Rebuilding needs clang 19; the structural checks above still ran.
  const script = path.join(__dirname, '..', '..', 'scripts', 'build-wasm.mjs');
  const out = execFileSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
  assert.match(out, /committed gpt-kernels\.wasm matches the source/);
  assert.match(out, /committed gpt-kernels-relaxed\.wasm matches the source/);
});
