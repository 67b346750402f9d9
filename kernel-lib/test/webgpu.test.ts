/**
 * WebGPU through Dawn on whatever adapter this machine has: a GPU's Vulkan driver, or Mesa's
 * lavapipe on the CPU, which `npm run setup` installs — so these tests run everywhere, CI
 * included. Every strategy's update path must give wasm's results within float tolerance.
 */
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { describeAdapter, doctor, formatDoctor, initBackend, probeWebgpu, releaseWebgpu, type WebgpuProbe } from '../src/backend';
import { currentExecutionContext } from '../src/sweep/grid';
import { gpuAblationPlan } from '../src/findings/gpu';
import { finetune, greedyComplete } from '../src/sweep/finetune';
import { GPT } from '../src/model/gpt';
import { loadCheckpoint } from '../src/model/safetensors';
import { pretrain } from '../src/sweep/pretrain';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CharTokenizer } from '../src/data/tokenizer';
import { listStrategies } from '../src/tuning/registry';
import { GradientMasker, thresholdForRatio } from '../src/tuning/mask';

let probe: WebgpuProbe;

before(async () => {
  await initBackend({ quiet: true });
  probe = await probeWebgpu();
});

// Dawn keeps the process alive while it is referenced.
after(() => releaseWebgpu());

test('Dawn offers a WebGPU adapter here (npm run setup installs a software one), and doctor reports it', async () => {
  assert.ok(probe.available, `no WebGPU adapter: ${'reason' in probe ? probe.reason : ''}`);
  const a = probe.adapter;
  assert.ok(a.vendor.length > 0 || a.description.length > 0, 'the adapter names itself');
  assert.ok(a.limits.maxBufferSize! > 0 && a.limits.maxComputeInvocationsPerWorkgroup! >= 64);
  const report = await doctor();
  assert.deepEqual(report.webgpu, { adapter: a });
  const row = report.backends.find((b) => b.name === 'webgpu');
  assert.equal(row?.status, 'available');
  assert.match(row?.reason ?? '', /GMT_BACKEND=webgpu/);
  assert.match(formatDoctor(report), /^webgpu adapter\s+\S/m);
  // The default order still trains on wasm (so run keys do not change); asking for webgpu gets it.
  assert.notEqual(report.backend, 'webgpu');
  const asked = await initBackend({ prefer: 'webgpu', quiet: true });
  assert.equal(asked.backend, 'webgpu');
  assert.equal(tf.getBackend(), 'webgpu');
});

/** Three updates of `method` on the nano base on `backend`: losses, the first Γ, the final weights. */
async function threeUpdates(backend: string, method: string) {
  await tf.setBackend(backend);
  await tf.ready();
  const gamma = new Map<string, Float32Array>();
  const before = tf.memory().numTensors;
  const r = await finetune({ base: 'nano', method, steps: 3, warmup: 1, accum: 2, batchSize: 4, seed: 0, testSize: 0, valSize: 4 }, {
    keepModel: true,
    onGradients: async ({ step, accumulated }) => {
      if (step === 1) for (const [name, g] of accumulated) gamma.set(name, (await g.data()).slice() as Float32Array);
    },
  });
  const weights = new Map<string, Float32Array>();
  for (const p of r.model!.params) weights.set(p.name, (await p.variable.data()).slice() as Float32Array);
  r.model!.dispose();
  return { losses: r.train.history.map((h) => h.loss), valLoss: r.metrics.valLoss as number, gamma, weights, path: r.train.gradientPath ?? '', leaked: tf.memory().numTensors - before };
}

/** max |a − b| over max |a| (0 for two zero tensors). */
function relMaxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]!));
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
  }
  return m === 0 ? d : d / m;
}

test('every strategy trains on WebGPU as on wasm: losses, the first update\'s Γ and the weights after 3 updates agree within float tolerance; no tensors left', { timeout: 600_000 }, async () => {
  assert.ok(probe.available, 'needs the adapter of the test above');
  for (const method of listStrategies()) {
    const wasm = await threeUpdates('wasm', method);
    const gpu = await threeUpdates('webgpu', method);
    assert.match(wasm.path, /fused (wasm|native) kernels/);
    assert.match(gpu.path, /tfjs ops/);
    assert.equal(gpu.leaked, 0, `${method}: tensors left on webgpu`);
    assert.equal(gpu.losses.length, 3);
    gpu.losses.forEach((l, i) => assert.ok(Math.abs(l - wasm.losses[i]!) <= 1e-5 * Math.abs(wasm.losses[i]!), `${method} update ${i + 1}: loss ${l} on webgpu vs ${wasm.losses[i]} on wasm`));
    assert.ok(Math.abs(gpu.valLoss - wasm.valLoss) <= 1e-5 * wasm.valLoss, `${method}: validation loss ${gpu.valLoss} vs ${wasm.valLoss}`);
    assert.equal(gpu.gamma.size, wasm.gamma.size);
    for (const [name, g] of wasm.gamma) assert.ok(relMaxDiff(g, gpu.gamma.get(name)!) <= 1e-4, `${method}: Γ of ${name} differs by ${relMaxDiff(g, gpu.gamma.get(name)!)}`);
    for (const [name, w] of wasm.weights) {
      const other = gpu.weights.get(name)!;
      let worst = 0;
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(w[i]! - other[i]!));
      assert.ok(worst <= 5e-4, `${method}: weights of ${name} differ by up to ${worst}`);
    }
  }
  await tf.setBackend('wasm');
});

test('GMT\'s threshold on WebGPU is selected on the device and is exact: the same T_k and masks as the host selection, at every scope, with ties', { timeout: 300_000 }, async () => {
  assert.ok(probe.available, 'needs the adapter of the first test');
  const params = [
    { name: 'a', group: 'layer0', shape: [37, 11] },
    { name: 'b', group: 'layer0', shape: [300] },
    { name: 'c', group: 'layer1', shape: [64, 64] },
    // Several histogram chunks (4,096 entries each), not a multiple of one, over 30 binades.
    { name: 'd', group: 'layer1', shape: [97, 211] },
  ];
  // a–c on a coarse grid, so that many entries tie with the threshold; d spread over magnitudes
  // (with ±0 and subnormals), so every byte of the bit pattern decides somewhere.
  let s = 12345;
  const next = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  const draw = (): number => (next() % 41) / 8 - 2.5;
  const wide = (): number => {
    const r = next();
    if (r % 97 === 0) return r % 2 ? 0 : -0;
    if (r % 89 === 0) return (r % 2 ? 1 : -1) * 1e-40;
    return (r % 2 ? 1 : -1) * (1 + (next() % 1000) / 1000) * 2 ** ((next() % 30) - 15);
  };
  const host = new Map(params.map((p) => [p.name, Float32Array.from({ length: p.shape.reduce((x, y) => x * y, 1) }, p.name === 'd' ? wide : draw)]));
  for (const scope of ['tensor', 'layer', 'global'] as const) {
    for (const ratio of [0, 0.001, 0.1, 0.3, 0.5, 0.9, 0.9999]) {
      await tf.setBackend('webgpu');
      const before = tf.memory().numTensors;
      const masker = new GradientMasker(params, { ratio, scope });
      const grads = new Map(params.map((p) => [p.name, tf.tensor(host.get(p.name)!, p.shape)]));
      const result = await masker.apply(grads);
      assert.equal(result.stats, undefined, 'the device path leaves the counts on the device');
      const segments = scope === 'tensor' ? params.map((p) => [p.name]) : scope === 'layer' ? [['a', 'b'], ['c', 'd']] : [['a', 'b', 'c', 'd']];
      for (const segment of segments) {
        const values = Float32Array.from(segment.flatMap((n) => Array.from(host.get(n)!)));
        const expected = thresholdForRatio(values, ratio);
        for (const n of segment) {
          assert.equal(result.thresholds.get(n), expected, `${scope} ${ratio} ${n}`);
          const mask = await result.masks.get(n)!.data();
          const want = Array.from(host.get(n)!, (v) => (Math.abs(v) >= expected ? 1 : 0));
          assert.deepEqual(Array.from(mask), want, `${scope} ${ratio} ${n}: mask`);
          const masked = await result.grads.get(n)!.data();
          assert.deepEqual(Array.from(masked), Array.from(host.get(n)!, (v, i) => v * want[i]!), `${scope} ${ratio} ${n}: Γ ⊙ M`);
        }
      }
      // Without the thresholds' readback: the same masks, no thresholds.
      const silent = await new GradientMasker(params, { ratio, scope, readThresholds: false }).apply(grads);
      assert.equal(silent.thresholds.size, 0);
      for (const p of params) assert.deepEqual(await silent.masks.get(p.name)!.data(), await result.masks.get(p.name)!.data(), `${scope} ${ratio} ${p.name}: mask without readback`);
      tf.dispose([...grads.values(), ...result.grads.values(), ...result.masks.values(), ...silent.grads.values(), ...silent.masks.values()]);
      assert.equal(tf.memory().numTensors, before, 'no tensors left');
    }
  }
  await tf.setBackend('wasm');
});

test('a run on WebGPU is scored on a host copy of its weights, one copy before and one after training: test accuracy, forgetting and samples as the host generates them from those weights; webgpu active again, no tensors left', { timeout: 300_000 }, async () => {
  assert.ok(probe.available, 'needs the adapter of the first test');
  await tf.setBackend('webgpu');
  const before = tf.memory().numTensors;
  // Counts the switches to the host backend, one per host copy of the weights.
  const engine = tf.engine();
  const setBackend = engine.setBackend.bind(engine);
  let hostSwitches = 0;
  engine.setBackend = (name: string) => {
    if (name === 'wasm') hostSwitches += 1;
    return setBackend(name);
  };
  let r: Awaited<ReturnType<typeof finetune>>;
  try {
    r = await finetune({ base: 'nano', method: 'gmt', steps: 2, warmup: 1, batchSize: 4, seed: 3, testSize: 6, valSize: 4, forgetting: true, scoreBase: true }, { keepModel: true });
  } finally {
    engine.setBackend = setBackend;
  }
  assert.equal(hostSwitches, 2, 'base scoring and the base probe share one copy; the run\'s scoring and probe another');
  assert.equal(tf.getBackend(), 'webgpu');
  assert.equal(typeof r.metrics.baseTestAccuracy, 'number');
  assert.equal(typeof r.metrics.baseFactsAccuracy, 'number');
  assert.equal(r.scoredOn, 'wasm');
  assert.equal(typeof r.metrics.testAccuracy, 'number');
  assert.equal(typeof r.metrics.factsAccuracy, 'number');
  assert.ok(Number.isFinite(r.metrics.generalValLoss));
  assert.ok(r.samples.length > 0);
  // The same prompts, generated on wasm from weights read off the device by hand.
  const values = await Promise.all(r.model!.params.map(async (p) => [p.name, (await p.variable.data()).slice() as Float32Array, p.variable.shape] as const));
  const config = r.model!.config;
  r.model!.dispose();
  await tf.setBackend('wasm');
  const weights = Object.fromEntries(values.map(([name, v, shape]) => [name, tf.tensor(v, shape)]));
  const host = new GPT(config, {}, weights);
  tf.dispose(Object.values(weights));
  const generated = greedyComplete(host, new CharTokenizer(), r.samples.map((s) => s.prompt), r.config.maxNewTokens);
  host.dispose();
  assert.deepEqual(generated, r.samples.map((s) => s.generated));
  // And on wasm a model is scored as it is: no copy, no `scoredOn`.
  const w = await finetune({ base: 'nano', method: 'sft', steps: 1, warmup: 0, batchSize: 4, seed: 3, testSize: 2, valSize: 4 });
  assert.equal(w.scoredOn, undefined);
  await tf.setBackend('webgpu');
  assert.equal(tf.memory().numTensors, before, 'no tensors left');
  await tf.setBackend('wasm');
});

test('pretraining runs on WebGPU: the same losses and evaluation as on wasm within float tolerance, and its checkpoint holds the device\'s weights', { timeout: 300_000 }, async () => {
  assert.ok(probe.available, 'needs the adapter of the first test');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-webgpu-pretrain-'));
  const config = { preset: 'nano' as const, steps: 3, batchSize: 2, warmup: 1, evalEvery: 0 };
  const runOn = async (backend: string) => {
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const out = path.join(dir, `${backend}.safetensors`);
    const r = await pretrain(config, { out });
    assert.equal(tf.getBackend(), backend);
    const weights = new Map<string, Float32Array>();
    for (const p of r.gpt.params) weights.set(p.name, ((await p.variable.data()) as Float32Array).slice());
    r.gpt.dispose();
    assert.equal(tf.memory().numTensors, before, `${backend}: no tensors left`);
    return { r, out, weights };
  };
  const wasm = await runOn('wasm');
  const gpu = await runOn('webgpu');
  gpu.r.train.history.forEach((u, i) => assert.ok(Math.abs(u.loss - wasm.r.train.history[i]!.loss) <= 1e-5 * wasm.r.train.history[i]!.loss, `update ${i + 1}: loss ${u.loss} vs ${wasm.r.train.history[i]!.loss}`));
  assert.ok(Math.abs(gpu.r.metrics.valLoss - wasm.r.metrics.valLoss) <= 1e-5 * wasm.r.metrics.valLoss);
  assert.equal(gpu.r.metrics.arithAccuracy, wasm.r.metrics.arithAccuracy);
  await tf.setBackend('wasm');
  const saved = loadCheckpoint(gpu.out);
  for (const p of saved.params) assert.deepEqual(p.variable.dataSync(), gpu.weights.get(p.name), `${p.name}: the file holds what the device trained`);
  saved.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('runs on webgpu name their adapter in the execution context (so in their key); other backends\' contexts are unchanged', () => {
  assert.ok(probe.available, 'needs the adapter of the first test');
  const gpu = currentExecutionContext('webgpu');
  assert.equal(gpu.adapter, describeAdapter(probe.adapter));
  assert.match(gpu.adapter!, /software adapter|\S/);
  assert.equal('adapter' in currentExecutionContext('wasm'), false);
});

// Last: it releases WebGPU in this process when the adapter is not a GPU's.
test('notebook 06\'s plan: a GPU\'s adapter trains on webgpu in the asked mode; a software adapter leaves it to the CPU engine in the asked mode, saying so', async () => {
  const before = process.env.GMT_BACKEND;
  const plan = await gpuAblationPlan('full');
  if (probe.available && !probe.adapter.software) {
    assert.equal(plan.backend, 'webgpu');
    assert.equal(plan.mode, 'full');
    assert.equal(process.env.GMT_BACKEND, 'webgpu');
    if (before === undefined) delete process.env.GMT_BACKEND;
    else process.env.GMT_BACKEND = before;
  } else {
    assert.equal(plan.mode, 'full');
    assert.equal(plan.backend, 'wasm');
    assert.equal(plan.paths.mode, 'full');
    assert.match(plan.note, /^No GPU \(.*(software|no WebGPU adapter).*\): the ablations ran on the (native|wasm) kernels \(.*\), in full mode; the results are the CPU engine's, not a GPU's$/);
    assert.equal(process.env.GMT_BACKEND, before, 'the environment is left alone');
  }
});
