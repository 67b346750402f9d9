/**
 * Sweeps: grid expansion and run keys, the append-only store (torn lines, concurrent writers),
 * and the runner (resume, failures, worker processes, kill -9 mid-sweep) with real processes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { canonicalJson, contextEngine, expandGrid, experimentKey, recordExperiment, resolveGrid, runKey, type ExecutionContext } from '../src/sweep/grid';
import { gridResults, gridSummary } from '../src/findings/grid-results';
import { ResultStore, parseRecordLine, serializeRecord, type RunRecord } from '../src/sweep/store';
import { gridStatus, gridTimeLeftMs, runSweep, summarizeStore } from '../src/sweep/runner';
import { formatDuration, parseDuration } from '../src/util/format';
import { gitCommitOf } from '../src/sweep/execute';
import { gridStatusText } from '../src/cli/commands/sweep';
import { finetune, resolveFinetuneConfig, type FinetuneConfig } from '../src/sweep/finetune';
import { ConfigError } from '../src/util/config';
import { tinyGrid } from './helpers/tiny-grid';

const repoRoot = path.resolve(__dirname, '..', '..');
const ctx: ExecutionContext = { kernelLib: '0.0.0-test', backend: 'wasm', gradientPath: 'fused wasm kernels (test), 1 thread' };
const tmp = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix));


test('a grid expands methods × option lists × tasks × vary × seeds, in a stable order', () => {
  const runs = expandGrid({
    name: 'g', base: { base: 'nano', steps: 10, warmup: 2 },
    methods: ['sft', { method: 'gmt', options: { ratio: [0.1, 0.5], scope: ['tensor', 'global'] } }],
    tasks: ['math', 'code'], vary: { lr: [1e-3, 2e-3] }, seeds: { count: 3, from: 5 },
  }, ctx, 'full');
  assert.equal(runs.length, (1 + 4) * 2 * 2 * 3);
  assert.deepEqual([...new Set(runs.map((r) => r.config.seed))], [5, 6, 7]);
  assert.deepEqual([...new Set(runs.map((r) => r.methodLabel))], ['sft', 'gmt ratio=0.1 scope=tensor', 'gmt ratio=0.1 scope=global', 'gmt ratio=0.5 scope=tensor', 'gmt ratio=0.5 scope=global']);
  assert.equal(new Set(runs.map((r) => r.key)).size, runs.length, 'every run has its own key');
  const again = expandGrid({
    name: 'g', base: { warmup: 2, steps: 10, base: 'nano' },
    methods: ['sft', { method: 'gmt', options: { scope: ['tensor', 'global'], ratio: [0.1, 0.5] } }],
    tasks: ['math', 'code'], vary: { lr: [1e-3, 2e-3] }, seeds: { count: 3, from: 5 },
  }, ctx, 'full');
  assert.deepEqual(new Set(again.map((r) => r.key)), new Set(runs.map((r) => r.key)), 'keys do not depend on the order fields are written in');
  const gmt = runs.filter((r) => r.config.method === 'gmt' && r.config.task === 'code' && r.config.lr === 2e-3 && r.config.seed === 7);
  assert.deepEqual(gmt.map((r) => r.config.methodOptions), [
    { ratio: 0.1, scope: 'tensor' }, { ratio: 0.1, scope: 'global' }, { ratio: 0.5, scope: 'tensor' }, { ratio: 0.5, scope: 'global' },
  ]);
  assert.equal(gmt[3]!.label, 'gmt ratio=0.5 scope=global · code · nano · lr=0.002 · seed 7');
});

test('per-method seeds, fast mode and duplicate runs', () => {
  const grid = {
    name: 'g', base: { base: 'nano', steps: 100, warmup: 10 },
    methods: ['sft', { method: 'hft', seeds: { count: 2 } }, 'sft'],
    seeds: { count: 4 },
    fast: { base: { steps: 5, warmup: 1 }, seeds: [0] },
  };
  const full = expandGrid(grid, ctx, 'full');
  assert.equal(full.length, 4 + 2, 'the repeated sft entry adds nothing');
  const fast = expandGrid(grid, ctx, 'fast');
  assert.equal(fast.length, 1 + 1);
  assert.ok(fast.every((r) => r.config.steps === 5 && r.config.base === 'nano'));

  // Per-task seeds: a noisier task gets more; a method's own seeds win; fast-mode seeds replace both.
  const perTask = {
    name: 'g', base: { base: 'nano', steps: 100, warmup: 10 },
    methods: ['sft', { method: 'hft', seeds: { count: 2 } }],
    tasks: [{ task: 'math', seeds: { count: 3 } }, { task: 'code', seeds: { count: 6, from: 10 } }, { task: 'math', taskOptions: { steps: [1, 2] } }],
    seeds: { count: 4 },
    fast: { seeds: [0] },
  };
  const runs = expandGrid(perTask, ctx, 'full');
  const seedsOf = (method: string, task: string, options: boolean) => runs.filter((r) => r.config.method === method && r.config.task === task && (JSON.stringify(r.config.taskOptions ?? {}) !== '{}') === options).map((r) => r.config.seed).sort((a, b) => a - b);
  assert.deepEqual(seedsOf('sft', 'math', false), [0, 1, 2]);
  assert.deepEqual(seedsOf('sft', 'code', false), [10, 11, 12, 13, 14, 15]);
  assert.deepEqual(seedsOf('sft', 'math', true), [0, 1, 2, 3], 'a task without seeds takes the grid\'s');
  assert.deepEqual(seedsOf('hft', 'code', false), [0, 1], 'the method\'s own seeds win');
  assert.ok(expandGrid(perTask, ctx, 'fast').every((r) => r.config.seed === 0));
  assert.throws(() => expandGrid({ ...perTask, tasks: [{ task: 'math', seeds: { count: 2, to: 3 } }] }, ctx, 'full'), /tasks\[0\]\.seeds: unknown field "to"/);
});

test('run keys change with the config, the inputs and the execution context', () => {
  const config = resolveFinetuneConfig({ base: 'nano', steps: 10, warmup: 2 });
  const key = runKey(config, ctx, { base: 'a' });
  assert.match(key, /^[0-9a-f]{32}$/);
  assert.equal(runKey({ ...config }, { ...ctx }, { base: 'a' }), key);
  assert.notEqual(runKey({ ...config, seed: 1 }, ctx, { base: 'a' }), key);
  assert.notEqual(runKey(config, ctx, { base: 'b' }), key, 'another base checkpoint');
  assert.notEqual(runKey(config, { ...ctx, gradientPath: 'fused wasm kernels (test), 2 threads' }, { base: 'a' }), key, 'another thread count');
  assert.notEqual(runKey(config, { ...ctx, kernelLib: '9.9.9' }, { base: 'a' }), key, 'another kernel-lib version');
  assert.equal(canonicalJson({ b: 1, a: { d: 2, c: 3 } }), '{"a":{"c":3,"d":2},"b":1}');
});

test('an experiment is a run key less the kernel build, ISA and threads; engine, version and config stay in it', () => {
  const config = resolveFinetuneConfig({ base: 'nano', steps: 10, warmup: 2 });
  const native: ExecutionContext = { kernelLib: '0.0.0-test', backend: 'wasm', gradientPath: 'fused native kernels (avx512, build 4197b61a2bf5)' };
  const id = experimentKey(config, native, { base: 'a' });
  assert.match(id, /^[0-9a-f]{32}$/);
  assert.notEqual(id, runKey(config, native, { base: 'a' }));
  for (const gradientPath of ['fused native kernels (avx2, build 09fa1d1745bd)', 'fused native kernels (neon, build 0123456789ab), 2 threads, batch shards']) {
    const other = { ...native, gradientPath };
    assert.notEqual(runKey(config, other, { base: 'a' }), runKey(config, native, { base: 'a' }), gradientPath);
    assert.equal(experimentKey(config, other, { base: 'a' }), id, `${gradientPath}: the same experiment`);
  }
  assert.equal(contextEngine(native), 'native');
  assert.equal(contextEngine(ctx), 'wasm');
  assert.equal(contextEngine({ gradientPath: 'fast path (tfjs ops; fused skipped: GMT_FUSED=0)' }), 'tfjs');
  assert.notEqual(experimentKey(config, ctx, { base: 'a' }), id, 'the wasm engine is another experiment');
  assert.equal(experimentKey(config, { ...ctx, gradientPath: 'fused wasm kernels (simd), 2 threads' }, { base: 'a' }), experimentKey(config, ctx, { base: 'a' }));
  assert.notEqual(experimentKey(config, { ...native, kernelLib: '9.9.9' }, { base: 'a' }), id, 'another kernel-lib version');
  assert.notEqual(experimentKey(config, { ...native, backend: 'webgpu' }, { base: 'a' }), id, 'another backend');
  assert.notEqual(experimentKey({ ...config, seed: 1 }, native, { base: 'a' }), id);
  assert.notEqual(experimentKey(config, native, { base: 'b' }), id, 'another base checkpoint');
  // A stored record's experiment is the one its planned run had.
  const records = fs.readFileSync(path.join(repoRoot, 'data/results/findings.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as RunRecord);
  for (const r of records.slice(-20)) {
    const p = r.provenance;
    assert.equal(recordExperiment(r), experimentKey(resolveFinetuneConfig(r.config), { kernelLib: p.kernelLib, backend: p.backend, gradientPath: p.gradientPath }, r.inputs), r.label);
  }
});

test('a record\'s commit is -dirty when code differs from it, not when only the evidence (store, figures) does', () => {
  const dir = tmp('gmt-commit-');
  const git = (...args: string[]): string => spawnSync('git', args, { cwd: dir, encoding: 'utf8' }).stdout.trim();
  git('init', '-q');
  for (const f of ['data/results/findings.jsonl', 'figures/CLAIMS.md', 'kernel-lib/src/a.ts']) {
    fs.mkdirSync(path.join(dir, path.dirname(f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), 'one\n');
  }
  git('add', '.');
  git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'one');
  const head = git('rev-parse', 'HEAD');
  const sub = path.join(dir, 'kernel-lib', 'src');
  assert.equal(gitCommitOf(sub), head);
  fs.appendFileSync(path.join(dir, 'data/results/findings.jsonl'), 'two\n');
  fs.appendFileSync(path.join(dir, 'figures/CLAIMS.md'), 'two\n');
  assert.equal(gitCommitOf(sub), head, 'a growing store and new figures are not code changes');
  fs.appendFileSync(path.join(dir, 'kernel-lib/src/a.ts'), 'two\n');
  assert.equal(gitCommitOf(sub), `${head}-dirty`);
  assert.equal(gitCommitOf(os.tmpdir()), null, 'outside a checkout');
});

test('method options at their defaults are the same experiment as options left out (and the same weights); runs keep their keys', async () => {
  const gmt = (methodOptions: Record<string, unknown>) => resolveFinetuneConfig({ base: 'nano', steps: 10, warmup: 2, method: 'gmt', methodOptions });
  const spelled = gmt({ ratio: 0.3, scope: 'tensor', signal: 'grad', maskUpdate: false });
  const id = experimentKey(spelled, ctx, { base: 'a' });
  for (const o of [{}, { ratio: 0.3 }, { scope: 'tensor', ratio: 0.3 }, { maskUpdate: false }]) assert.equal(experimentKey(gmt(o), ctx, { base: 'a' }), id, JSON.stringify(o));
  for (const o of [{ ratio: 0.5 }, { scope: 'global' }, { signal: 'grad-weight' }, { maskUpdate: true }]) assert.notEqual(experimentKey(gmt(o), ctx, { base: 'a' }), id, JSON.stringify(o));
  assert.notEqual(experimentKey(resolveFinetuneConfig({ base: 'nano', steps: 10, warmup: 2, method: 'random-mask', methodOptions: { ratio: 0.3 } }), ctx, { base: 'a' }), id, 'another method with the same options');
  assert.notEqual(runKey(spelled, ctx, { base: 'a' }), runKey(gmt({ ratio: 0.3 }), ctx, { base: 'a' }), 'run keys are as before (stored runs keep theirs)');
  // The claim behind it: spelling out a default changes nothing in the run.
  await initBackend({ quiet: true });
  const store = path.join(tmp('gmt-defaults-'), 'r.jsonl');
  const methods = [{ method: 'gmt', options: { ratio: 0.3 } }, { method: 'gmt', options: { ratio: 0.3, scope: 'tensor', signal: 'grad', maskUpdate: false } }];
  const runs = [...(await runSweep(tinyGrid({ methods, seeds: [0] }), { store, jobs: 0, exact: true })).records.values()];
  assert.equal(runs.length, 2, 'two runs (two run keys), one experiment');
  assert.ok(runs.every((r) => r.status === 'done'));
  assert.equal(runs[0].weightsSha256, runs[1].weightsSha256, 'the same weights');
  assert.equal(recordExperiment(runs[0]), recordExperiment(runs[1]));
});

test('GMT ranking by Γ² gives |Γ|\'s weights on one build (notebook 06\'s check): only pairs across builds can differ', async () => {
  await initBackend({ quiet: true });
  const store = path.join(tmp('gmt-signal-'), 'r.jsonl');
  const methods = [{ method: 'gmt', options: { ratio: 0.3, signal: ['grad', 'grad-squared', 'grad-weight'] } }];
  const runs = [...(await runSweep(tinyGrid({ methods, seeds: [0], base: { ...tinyGrid().base, steps: 6 } }), { store, jobs: 0 })).records.values()];
  const sha = new Map(runs.map((r) => [String(r.config.methodOptions.signal), r.weightsSha256]));
  assert.equal(sha.size, 3);
  assert.equal(sha.get('grad-squared'), sha.get('grad'));
  assert.notEqual(sha.get('grad-weight'), sha.get('grad'), 'a signal that ranks otherwise gives other weights');
});

test('the committed store\'s protocol 2 runs count on this machine\'s kernel build too', async () => {
  await initBackend({ quiet: true });
  const claim1 = await gridResults(path.join(repoRoot, 'notebooks/grids/p2_gmt_vs_sft.json'), path.join(repoRoot, 'data/results/findings.jsonl'), 'full');
  assert.equal(claim1.planned.length, 32);
  assert.equal(claim1.missing, 0, 'claim 1\'s 32 runs are found whichever build this machine has');
  assert.ok(claim1.records.every((r) => /^fused native kernels/.test(r.provenance.gradientPath)));
});

test('fields added later keep the keys of stored runs: a neutral value, or a field that decides nothing for the run', () => {
  const config = resolveFinetuneConfig({ base: 'nano', steps: 10, warmup: 2 });
  const without = (c: object, ...fields: string[]): FinetuneConfig => Object.fromEntries(Object.entries(c).filter(([k]) => !fields.includes(k))) as FinetuneConfig;
  const stored = runKey(without(config, 'maskTrace', 'maskTraceOf', 'strictText', 'context', 'contextInit'), ctx, { base: 'a' });
  assert.equal(runKey(config, ctx, { base: 'a' }), stored, 'defaults of later fields leave an untraced run\'s key alone');
  assert.equal(runKey({ ...config, maskTraceOf: 'nonzero' }, ctx, { base: 'a' }), stored, 'what a trace reads decides nothing without a trace');
  const traced = { ...config, maskTrace: 5 };
  const storedTrace = runKey(without(traced, 'maskTraceOf'), ctx, { base: 'a' });
  assert.notEqual(storedTrace, stored, 'a traced run is another run');
  assert.equal(runKey({ ...traced, maskTraceOf: 'nonzero' }, ctx, { base: 'a' }), storedTrace, 'traces stored before maskTraceOf existed read nonzero entries');
  assert.notEqual(runKey(traced, ctx, { base: 'a' }), storedTrace, 'a trace of the masks is not a stored trace of nonzero entries');
  assert.throws(() => resolveFinetuneConfig({ maskTraceOf: 'grad' as 'mask' }), /maskTraceOf must be "mask" or "nonzero"/);
  // A longer context is another run, and so is each way of starting its new positions; without
  // one, how they would start decides nothing.
  assert.equal(runKey({ ...config, contextInit: 'tile' }, ctx, { base: 'a' }), stored, 'contextInit decides nothing without a context');
  const long = runKey({ ...config, context: 1024 }, ctx, { base: 'a' });
  assert.notEqual(long, stored);
  assert.notEqual(runKey({ ...config, context: 1024, contextInit: 'tile' }, ctx, { base: 'a' }), long);
  assert.throws(() => resolveFinetuneConfig({ context: 5000 }), /finetune config context must be in \[2, 4096\], got 5000/);
  assert.throws(() => resolveFinetuneConfig({ contextInit: 'zeros' as 'tile' }), /contextInit must be one of normal, tile; got "zeros"/);
  // Every record of the committed findings store keys the same with today's fields as without them.
  const records = fs.readFileSync(path.join(repoRoot, 'data/results/findings.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as RunRecord);
  assert.ok(records.length > 100);
  for (const r of records) {
    const p = r.provenance;
    const context: ExecutionContext = { kernelLib: p.kernelLib, backend: p.backend, gradientPath: p.gradientPath, ...(p.adapter ? { adapter: p.adapter } : {}) };
    const resolved = resolveFinetuneConfig(r.config);
    assert.equal(runKey(resolved, context, r.inputs), runKey(without(resolved, 'context', 'contextInit'), context, r.inputs), `${r.label}: its key is kept`);
  }
});

test('the mask trace reads the method\'s own mask: SIFT\'s fixed mask overlaps itself exactly, kept fractions match the method\'s', async () => {
  await initBackend({ quiet: true });
  const run = (method: string, maskTraceOf: FinetuneConfig['maskTraceOf']) => finetune({
    base: 'nano', method, methodOptions: method === 'sft' ? {} : { ratio: 0.3 }, steps: 4, warmup: 1, accum: 1, batchSize: 2, seed: 0, testSize: 0, valSize: 4, maskTrace: 1, maskTraceOf,
  });
  const before = tf.memory().numTensors;
  for (const method of ['sift', 'gmt', 'random-mask']) {
    const r = await run(method, 'mask');
    const t = r.maskTrace!;
    assert.deepEqual(t.step, [1, 2, 3, 4]);
    assert.deepEqual(t.keptFraction, r.train.history.map((h) => h.keptFraction), `${method}: the trace counts what the method's mask keeps`);
    if (method === 'sift') {
      assert.deepEqual(t.jaccardToFirst, [1, 1, 1, 1]);
      assert.deepEqual(t.jaccardToPrevious, [null, 1, 1, 1]);
    }
    // nano's embedding: two short examples use few of the vocabulary's rows, whose gradients are 0.
    const nonzero = (await run(method, 'nonzero')).maskTrace!;
    assert.ok(nonzero.keptByLayer.embed![0]! < t.keptByLayer.embed![0]!, `${method}: nonzero entries undercount the kept embedding rows (${nonzero.keptByLayer.embed![0]} vs ${t.keptByLayer.embed![0]})`);
  }
  const sft = (await run('sft', 'mask')).maskTrace!;
  assert.deepEqual(sft.keptFraction, [1, 1, 1, 1], 'a method without a mask keeps everything');
  assert.deepEqual(sft.jaccardToPrevious, [null, 1, 1, 1]);
  assert.equal(tf.memory().numTensors, before, 'tracing leaves no tensors');
});

test('bad grids and bad run configs are rejected before any work, naming the field', () => {
  const bad: [unknown, RegExp][] = [
    [[], /expected a JSON object/],
    [{ name: 'g', methodz: [] }, /unknown option "methodz"/],
    [{ name: 'g', seeds: { count: 0 } }, /seeds.count must be an integer in 1..10000/],
    [{ name: 'g', seeds: [0.5] }, /seeds\[0\] must be an integer/],
    [{ name: 'g', methods: [{ method: 'gmt', option: {} }] }, /methods\[0\]: unknown field "option"/],
    [{ name: 'g', vary: { lr: [] } }, /vary.lr must be a non-empty list/],
    [{ name: 'bad name!' }, /name must be letters/],
    [{ name: 'g', fast: { fast: {} } }, /cannot hold another "fast"/],
  ];
  for (const [grid, re] of bad) assert.throws(() => resolveGrid(grid), (e: unknown) => e instanceof ConfigError && re.test(e.message), JSON.stringify(grid));
  assert.throws(() => expandGrid({ name: 'g', base: { base: 'nano' }, methods: [{ method: 'gmt', options: { ratio: 1.5 } }] }, ctx, 'full'), /ratio/);
  assert.throws(() => expandGrid({ name: 'g', base: { base: 'nano', stepz: 3 } }, ctx, 'full'), /unknown option "stepz"/);
  assert.throws(() => expandGrid({ name: 'g', base: { base: 'nano', steps: 5, warmup: 20 } }, ctx, 'full'), /warmup \(20\) must not exceed steps \(5\)/);
  assert.throws(() => expandGrid({ name: 'g', base: { base: 'nano' }, methods: ['nope'] }, ctx, 'full'), /unknown tuning method "nope"/);
  assert.throws(() => expandGrid({ name: 'g', presets: ['zzz'] }, ctx, 'full'), /base "zzz" is neither a model preset/);
  assert.throws(() => expandGrid({ name: 'g', base: { base: 'nano', task: 'gsm9k' } }, ctx, 'full'), /task must be "math", "code" or a path to a \.jsonl file, got "gsm9k"/);
});

function fakeRecord(key: string, status: RunRecord['status'] = 'done', pad = 0): RunRecord {
  return {
    kind: 'gmt-lab/run', v: 1, key, status, label: key, methodLabel: 'sft', grid: 'g', config: resolveFinetuneConfig({ base: 'nano', steps: 10, warmup: 1 }),
    inputs: { base: 'x' }, metrics: { testAccuracy: 0.5 }, weightsSha256: 'w'.repeat(pad),
    provenance: { ...ctx, node: 'v', machine: { cpu: 'c', cores: 1, platform: 'linux', arch: 'x64', host: 'h' }, commit: null, date: '2026-01-01T00:00:00Z', threads: 1, jobs: 1 },
  };
}

test('the store: records round-trip; a torn or edited line is reported and skipped, never merged', () => {
  const dir = tmp('gmt-store-');
  const store = new ResultStore(path.join(dir, 'r.jsonl'));
  assert.deepEqual(store.read(), { records: [], bad: [] });
  store.append(fakeRecord('a'));
  store.append(fakeRecord('b', 'failed'));
  // A crash mid-write: half of a record and no newline.
  const half = serializeRecord(fakeRecord('c'));
  fs.appendFileSync(store.file, half.slice(0, Math.floor(half.length / 2)));
  let c = store.read();
  assert.deepEqual(c.records.map((r) => r.key), ['a', 'b']);
  assert.equal(c.bad.length, 1);
  assert.match(c.bad[0]!.reason, /last line without a newline/);
  store.append(fakeRecord('d'));
  c = store.read();
  assert.deepEqual(c.records.map((r) => r.key), ['a', 'b', 'd'], 'the record after the torn line is whole');
  assert.equal(c.bad.length, 1);
  // A line cut so that what is left still parses as JSON fails its digest.
  const whole = JSON.parse(serializeRecord(fakeRecord('e')));
  delete whole.metrics;
  assert.match(parseRecordLine(JSON.stringify(whole)) as string, /digest mismatch/);
  assert.match(parseRecordLine('{"kind":"other"}') as string, /not a gmt-lab run record/);
  assert.ok(typeof parseRecordLine(serializeRecord(fakeRecord('e')).trim()) === 'object');
  // `failed` is superseded by a later `done`, never the other way round.
  store.append(fakeRecord('b', 'done'));
  store.append(fakeRecord('b', 'failed'));
  assert.equal(store.latest().get('b')!.status, 'done');
  assert.deepEqual([...store.finishedKeys()].sort(), ['a', 'b', 'd']);
  assert.throws(() => new ResultStore(dir), /is a directory/);
});

test('two processes appending to one store at once never interleave or lose records', () => {
  const dir = tmp('gmt-store-');
  const file = path.join(dir, 'r.jsonl');
  const script = `
    const { ResultStore } = require(${JSON.stringify(path.join(repoRoot, 'kernel-lib/src/sweep/store.ts'))});
    const { resolveFinetuneConfig } = require(${JSON.stringify(path.join(repoRoot, 'kernel-lib/src/sweep/finetune.ts'))});
    const config = resolveFinetuneConfig({ base: 'nano', steps: 10, warmup: 1 });
    const store = new ResultStore(process.argv[1]);
    for (let i = 0; i < 150; i++) {
      store.append({ kind: 'gmt-lab/run', v: 1, key: process.argv[2] + i, status: 'done', label: '', methodLabel: '', grid: 'g', config,
        inputs: { base: 'x' }, weightsSha256: 'x'.repeat(1000 + (i % 7) * 9000), provenance: {} });
    }`;
  const procs = ['p', 'q'].map((tag) => spawn(process.execPath, ['--import', 'tsx', '-e', script, file, tag], { cwd: repoRoot, stdio: 'inherit' }));
  return Promise.all(procs.map((p) => new Promise<void>((res, rej) => p.on('exit', (code) => (code === 0 ? res() : rej(new Error(`writer exited ${code}`))))))).then(() => {
    const c = new ResultStore(file).read();
    assert.equal(c.bad.length, 0, JSON.stringify(c.bad.slice(0, 3)));
    assert.equal(c.records.length, 300);
    assert.equal(new Set(c.records.map((r) => r.key)).size, 300);
  });
});

test('a sweep runs what the store lacks, records failures, and a re-run skips finished runs', async () => {
  await initBackend({ quiet: true });
  const dir = tmp('gmt-sweep-');
  const badTask = path.join(dir, 'bad.jsonl');
  // A JSONL file with a broken last line: fails when the run loads it.
  fs.writeFileSync(badTask, `${Array.from({ length: 5 }, (_, i) => JSON.stringify({ prompt: `p${i}`, completion: 'c' })).join('\n')}\n{"prompt": "p5"`);
  const store = path.join(dir, 'r.jsonl');
  const before = tf.memory().numTensors;
  const grid = tinyGrid({ tasks: ['math', badTask], seeds: [0] });
  const progress: number[] = [];
  const first = await runSweep(grid, { store, jobs: 0, onProgress: (p) => progress.push(p.done + p.failed) });
  assert.equal(tf.memory().numTensors, before, 'in-process runs leave no tensors');
  assert.equal(first.planned.length, 4);
  assert.equal(first.ran, 4);
  assert.equal(first.failed, 2);
  assert.ok(progress.includes(4));
  const failed = [...first.records.values()].filter((r) => r.status === 'failed');
  assert.equal(failed.length, 2);
  assert.ok(failed.every((r) => r.config.task === badTask && /bad\.jsonl/.test(r.error!.message)), failed.map((r) => r.error?.message).join('; '));
  const done = [...first.records.values()].filter((r) => r.status === 'done');
  assert.ok(done.every((r) => /^[0-9a-f]{64}$/.test(r.weightsSha256!) && typeof r.metrics!.testAccuracy === 'number' && r.history!.step.length === 3));
  const second = await runSweep(grid, { store, jobs: 0 });
  assert.equal(second.skipped, 2, 'finished runs are skipped');
  assert.equal(second.ran, 2, 'failed runs are retried');
  const onlyMath = await runSweep(tinyGrid({ seeds: [0] }), { store, jobs: 0 });
  assert.equal(onlyMath.ran, 0);
  assert.equal(onlyMath.skipped, 2);
});

test('sweep GRID --status: finished of planned per method and task, failed runs named, the time left at the measured pace', async () => {
  await initBackend({ quiet: true });
  const dir = tmp('gmt-sweep-status-');
  const badTask = path.join(dir, 'bad.jsonl');
  fs.writeFileSync(badTask, `${JSON.stringify({ prompt: 'p', completion: 'c' })}\n{"prompt": "p5"`);
  const store = path.join(dir, 'r.jsonl');
  const made = await runSweep(tinyGrid({ tasks: ['math', badTask], seeds: [0] }), { store, jobs: 0 });
  assert.deepEqual([made.ran, made.failed], [4, 2]);
  const wider = tinyGrid({ tasks: ['math', badTask], seeds: [0, 1, 2] });
  const s = await gridStatus(wider, store, { mode: 'full' });
  assert.deepEqual([s.grid, s.planned, s.finished, s.missing], ['tiny', 12, 2, 10]);
  const cell = (method: string, task: string) => s.cells.find((c) => c.method === method && c.task === task)!;
  assert.deepEqual(cell('sft', 'math'), { method: 'sft', task: 'math', planned: 3, finished: 1, failed: 0, cancelled: 0, missing: 2 });
  assert.deepEqual(cell('gmt ratio=0.3', badTask), { method: 'gmt ratio=0.3', task: badTask, planned: 3, finished: 0, failed: 1, cancelled: 0, missing: 3 });
  const times = [...made.records.values()].filter((r) => r.status === 'done').map((r) => r.timings!.totalMs);
  assert.equal(s.medianRunMs, (times[0]! + times[1]!) / 2, 'the median of the two finished runs');
  assert.deepEqual([s.timedRuns, s.timedHere], [2, true]);
  assert.equal(gridTimeLeftMs(s), 10 * s.medianRunMs!, 'ten runs at the median, one job at a time');
  assert.equal(gridTimeLeftMs({ ...s, jobs: 2 }), 5 * s.medianRunMs!);
  assert.equal(gridTimeLeftMs({ ...s, missing: 0, medianRunMs: null }), 0);
  assert.ok(Number.isNaN(gridTimeLeftMs({ ...s, medianRunMs: null })));
  assert.deepEqual([formatDuration(45_400), formatDuration(725_000), formatDuration(3_725_000), formatDuration(NaN)], ['45s', '12m05s', '1h02m', '?']);
  const text = gridStatusText(s, store);
  assert.match(text, /^tiny \(full mode\) in .*r\.jsonl: 2 of 12 runs finished, 10 missing\n/);
  assert.match(text, /\n {2}sft +math +1\/3 {2}\(2 missing\)\n/);
  assert.match(text, /gmt ratio=0\.3 .*bad\.jsonl +0\/3 {2}\(3 missing: 1 failed\)\n/);
  assert.match(text, /\n10 runs left: about \S+ with 1 job at a time, at the median of 2 finished runs made with this machine's engine and build/);
  const none = gridStatusText(await gridStatus(wider, path.join(dir, 'empty.jsonl'), { mode: 'full' }), 'empty.jsonl');
  assert.match(none, /12 runs left; no finished run of this grid to estimate their time from\n$/);
  assert.match(gridStatusText(await gridStatus(tinyGrid({ seeds: [0] }), store, { mode: 'full' }), store), /nothing left to run\n$/);
});

test('a sweep continues a store made on another kernel build: its runs count as done, unless --exact', async () => {
  await initBackend({ quiet: true });
  const dir = tmp('gmt-sweep-build-');
  const mine = path.join(dir, 'here.jsonl');
  const grid = tinyGrid({ seeds: [0] });
  const made = await runSweep(grid, { store: mine, jobs: 0 });
  assert.equal(made.ran, 2);
  // The same runs as another machine's build would have stored them: another gradient path,
  // so another run key, the same experiment.
  const elsewhere = new ResultStore(path.join(dir, 'elsewhere.jsonl'));
  const fromOther = [...made.records.values()].map((r) => {
    const provenance = { ...r.provenance, gradientPath: `${r.provenance.gradientPath} [another build]` };
    const { digest: _digest, ...rest } = r;
    return { ...rest, provenance, key: runKey(resolveFinetuneConfig(r.config), provenance, r.inputs) } as RunRecord;
  });
  for (const r of fromOther) elsewhere.append(r);
  assert.ok(fromOther.every((r) => !made.records.has(r.key)), 'other run keys');
  const before = await gridStatus(grid, elsewhere, { mode: 'full' });
  assert.deepEqual([before.finished, before.missing, before.timedRuns, before.timedHere], [2, 0, 2, false], 'finished on another build; timed from those runs');
  assert.deepEqual([(await gridStatus(grid, elsewhere, { mode: 'full', exact: true })).missing], [2], 'with exact, none is finished on this build');
  const resumed = await runSweep(grid, { store: elsewhere, jobs: 0 });
  assert.equal(resumed.ran, 0, 'nothing is made again');
  assert.equal(resumed.skipped, 2);
  assert.equal(resumed.missing, 0);
  assert.deepEqual([...resumed.records.values()].map((r) => r.provenance.gradientPath).sort(), fromOther.map((r) => r.provenance.gradientPath).sort());
  const read = await gridResults(grid, elsewhere.file, 'full');
  assert.equal(read.records.length, 2);
  assert.equal(read.missing, 0);
  const exact = await runSweep(grid, { store: elsewhere, jobs: 0, exact: true });
  assert.equal(exact.ran, 2, '--exact makes them on this build');
  assert.deepEqual([...exact.records.values()].map((r) => r.weightsSha256).sort(), [...made.records.values()].map((r) => r.weightsSha256).sort(), 'the last finished run counts: this build\'s');
  const status = summarizeStore(elsewhere);
  assert.equal(status.records, 4);
  assert.equal(status.keys, 2, 'the status counts each experiment once');
  assert.equal(status.rows.reduce((a, r) => a + r.done, 0), 2);
});

test('a grid\'s summary line counts finished runs, and names the cancelled and failed ones a sweep makes again', async () => {
  await initBackend({ quiet: true });
  const dir = tmp('gmt-summary-');
  const made = await runSweep(tinyGrid({ seeds: [0] }), { store: path.join(dir, 'all.jsonl'), jobs: 0 });
  const [first, second] = [...made.records.values()];
  const partial = new ResultStore(path.join(dir, 'partial.jsonl'));
  partial.append(first!);
  const { digest: _digest, ...rest } = second!;
  partial.append({ ...rest, status: 'cancelled' } as RunRecord);
  const res = await gridResults(tinyGrid({ seeds: [0] }), partial.file, 'full');
  assert.equal(res.records.length, 2, 'the cancelled run has a record');
  assert.equal(res.missing, 1);
  assert.equal(res.summary(0), '1 of 2 planned runs finished; 1 missing (1 cancelled part-way; made again by the next sweep); 0 made now');
  assert.equal((await gridResults(tinyGrid({ seeds: [0] }), path.join(dir, 'all.jsonl'), 'full')).summary(), '2 of 2 planned runs finished');
  const statuses = (...s: RunRecord['status'][]): Pick<RunRecord, 'status'>[] => s.map((status) => ({ status }));
  assert.equal(gridSummary(5, statuses('done', 'diverged', 'failed', 'cancelled'), 3),
    '2 of 5 planned runs finished (1 diverged); 3 missing (1 cancelled part-way, 1 failed; made again by the next sweep); 3 made now');
  assert.equal(gridSummary(3, []), '0 of 3 planned runs finished; 3 missing');
});

test('a sweep estimates its time left from the grid\'s stored runs of this build before its own first run ends', async () => {
  await initBackend({ quiet: true });
  const store = path.join(tmp('gmt-eta-'), 'r.jsonl');
  const first: number[] = [];
  const made = await runSweep(tinyGrid({ seeds: [0] }), { store, jobs: 0, onProgress: (p) => first.push(p.etaMs) });
  assert.ok(Number.isNaN(first[0]), 'an empty store gives no estimate');
  const ms = [...made.records.values()].map((r) => r.timings!.totalMs).sort((a, b) => a - b);
  const resumed: number[] = [];
  await runSweep(tinyGrid({ seeds: [0, 1] }), { store, jobs: 0, onProgress: (p) => resumed.push(p.etaMs) });
  assert.ok(Math.abs(resumed[0]! - 2 * ((ms[0]! + ms[1]!) / 2)) < 1e-6, `2 runs left at the median of the 2 stored ones: ${resumed[0]} ms`);
  assert.equal(resumed.at(-1), 0);
});

test('worker processes give the same weights as a run in this process', async () => {
  await initBackend({ quiet: true });
  const dir = tmp('gmt-sweep-');
  const grid = tinyGrid();
  const local = await runSweep(grid, { store: path.join(dir, 'local.jsonl'), jobs: 0 });
  const workers = await runSweep(grid, { store: path.join(dir, 'workers.jsonl'), jobs: 2 });
  assert.equal(workers.ran, 4);
  for (const [key, r] of local.records) {
    assert.equal(r.status, 'done');
    assert.equal(workers.records.get(key)?.weightsSha256, r.weightsSha256, `run ${r.label}: same seed, same weights in a worker`);
  }
});

test('kill -9 of a sweep (parent and workers) mid-way loses no finished run and repeats none', async () => {
  const dir = tmp('gmt-kill-');
  const gridFile = path.join(dir, 'grid.json');
  fs.writeFileSync(gridFile, JSON.stringify(tinyGrid({ seeds: [0, 1, 2, 3] })));
  const store = path.join(dir, 'r.jsonl');
  const cli = ['--import', 'tsx', path.join(repoRoot, 'kernel-lib/src/cli/main.ts'), 'sweep', gridFile, '--store', store, '--jobs', '2'];
  const lines = (): number => (fs.existsSync(store) ? fs.readFileSync(store, 'utf8').split('\n').filter((l) => l.trim()).length : 0);
  for (let round = 0; round < 3; round++) {
    const have = lines();
    const child = spawn(process.execPath, cli, { cwd: repoRoot, detached: true, stdio: 'ignore' });
    // Kill the whole process group as soon as one more record is durable (or after 60 s).
    const t0 = Date.now();
    while (lines() <= have && Date.now() - t0 < 60000 && child.exitCode === null) await new Promise((r) => setTimeout(r, 50 + round * 40));
    const workers = spawnSync('ps', ['-o', 'pid=', '--ppid', String(child.pid)], { encoding: 'utf8' }).stdout.split('\n').map((l) => Number(l.trim())).filter((n) => n > 0);
    try {
      // Round 0 kills the parent alone: its workers must notice and exit by themselves.
      process.kill(round === 0 ? child.pid! : -child.pid!, 'SIGKILL');
    } catch {
      /* already finished */
    }
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.on('exit', r)));
    if (round === 0) {
      const alive = (pid: number): boolean => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      const t1 = Date.now();
      while (workers.some(alive) && Date.now() - t1 < 20000) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(workers.filter(alive), [], 'workers exit when their parent is killed');
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* group already gone */
      }
    }
  }
  const finish = spawnSync(process.execPath, cli, { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(finish.status, 0, finish.stderr);
  const c = new ResultStore(store).read();
  const done = c.records.filter((r) => r.status === 'done');
  assert.equal(done.length, 8, 'every run of the grid is done');
  assert.equal(new Set(done.map((r) => r.key)).size, 8, 'and none twice');
});

test('draining a sweep: the runs in progress finish and are stored, no new one starts, and the next sweep makes the rest', async () => {
  await initBackend({ quiet: true });
  const dir = tmp('gmt-drain-');
  const grid = tinyGrid({ seeds: [0, 1, 2] });
  for (const jobs of [0, 1]) {
    const store = path.join(dir, `r${jobs}.jsonl`);
    const drain = new AbortController();
    const first = await runSweep(grid, { store, jobs, drain: drain.signal, onProgress: (p) => { if (p.last) drain.abort(); } });
    assert.deepEqual([first.ran, first.drained, first.cancelled, first.missing], [1, true, false, 5], `jobs ${jobs}: one run, then no more`);
    const c = new ResultStore(store).read().records;
    assert.deepEqual(c.map((r) => r.status), ['done'], 'nothing cancelled or partial');
    const rest = await runSweep(grid, { store, jobs });
    assert.deepEqual([rest.ran, rest.skipped, rest.drained, rest.missing], [5, 1, false, 0]);
  }
  await assert.rejects(runSweep(grid, { store: path.join(dir, 'q.jsonl'), queue: 'redis://127.0.0.1:1', drain: new AbortController().signal }), /drain cannot be used with queue/);
});

test('gmt-lab sweep --for and SIGUSR2: the sweep stops starting runs, keeps those in progress, exits 0; a bad duration is refused', async () => {
  const dir = tmp('gmt-drain-cli-');
  const gridFile = path.join(dir, 'grid.json');
  fs.writeFileSync(gridFile, JSON.stringify(tinyGrid({ seeds: [0, 1, 2, 3] })));
  const cli = (store: string, ...extra: string[]): string[] => ['--import', 'tsx', path.join(repoRoot, 'kernel-lib/src/cli/main.ts'), 'sweep', gridFile, '--store', store, '--jobs', '1', ...extra];
  const records = (store: string): RunRecord[] => (fs.existsSync(store) ? new ResultStore(store).read().records : []);
  const timed = spawnSync(process.execPath, cli(path.join(dir, 'for.jsonl'), '--for', '1s'), { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(timed.status, 0, timed.stderr);
  assert.match(timed.stderr, /--for 1s is up: starting no more runs; the runs in progress finish and are stored/);
  assert.match(timed.stderr, /stopped starting runs; \d+ of the grid's runs are missing, and the same command makes them/);
  // A worker may not have started a run within 1 s: what it made is done, and not all of it.
  const made = records(path.join(dir, 'for.jsonl'));
  assert.ok(made.length < 8 && made.every((r) => r.status === 'done'), made.map((r) => r.status).join());
  const store = path.join(dir, 'usr2.jsonl');
  const child = spawn(process.execPath, cli(store), { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((r) => child.on('exit', (c) => r(c)));
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  // Once the first run is stored, the worker is on the next one.
  const t0 = Date.now();
  while (!/: done, /.test(err) && child.exitCode === null && Date.now() - t0 < 60000) await new Promise((r) => setTimeout(r, 20));
  child.kill('SIGUSR2');
  const code = await exited;
  assert.equal(code, 0, err);
  assert.match(err, /SIGUSR2: starting no more runs/);
  const kept = records(store);
  assert.ok(kept.length >= 1 && kept.length < 8 && kept.every((r) => r.status === 'done'), `the run in progress finished: ${kept.map((r) => r.status).join()}`);
  const rest = spawnSync(process.execPath, cli(store), { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(rest.status, 0, rest.stderr);
  assert.equal(records(store).filter((r) => r.status === 'done').length, 8, 'the same command makes the rest');
  const bad = spawnSync(process.execPath, cli(path.join(dir, 'bad.jsonl'), '--for', 'soon'), { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--for must be a duration such as 90m, 1h30m, 45s or a number of seconds, got "soon"/);
  assert.equal(parseDuration('1h30m'), 5.4e6);
  assert.deepEqual(['90m', '45s', '2h', '30', '1.5h'].map((t) => parseDuration(t)), [5.4e6, 45e3, 7.2e6, 30e3, 5.4e6]);
  for (const t of ['', '0', 'm', '5 min', '-3']) assert.throws(() => parseDuration(t), /must be a duration/, t);
});

test('notebook 06\'s grid has protocol 2\'s base, so its SFT cell and its |Γ| cells are protocol 2\'s runs', () => {
  const load = (f: string): unknown => JSON.parse(fs.readFileSync(path.join(repoRoot, 'notebooks', 'grids', f), 'utf8'));
  const ablations = expandGrid(load('06_gpu_ablations.json'), ctx, 'full');
  const claim2Runs = expandGrid(load('p2_mask_ratio.json'), ctx, 'full');
  const claim2 = new Set(claim2Runs.map((r) => r.experiment));
  const claim2Keys = new Set(claim2Runs.map((r) => r.key));
  const shared = ablations.filter((r) => claim2.has(r.experiment));
  // SFT, and GMT with |Γ| and no maskUpdate at k = 0.1, 0.3, 0.5 in both scopes, on seeds 0–4 of
  // math: notebook 06 names signal and maskUpdate at their defaults, protocol 2 leaves them out.
  assert.equal(shared.length, 5 * 7, shared.map((r) => r.label).join('\n'));
  assert.ok(shared.every((r) => r.config.task === 'math' && r.config.seed < 5));
  assert.ok(shared.every((r) => r.config.method === 'sft' || (r.config.methodOptions.signal === 'grad' && r.config.methodOptions.maskUpdate === false)));
  assert.equal(new Set(shared.filter((r) => r.config.method === 'gmt').map((r) => `${r.config.methodOptions.ratio} ${r.config.methodOptions.scope}`)).size, 6);
  assert.deepEqual(ablations.filter((r) => claim2Keys.has(r.key)).map((r) => r.config.method), Array(5).fill('sft'), 'GMT\'s run keys stay apart (the stored records keep theirs) stay apart (the stored records keep theirs)');
});
