/**
 * The update benchmark's record (gmt-lab bench): the figures it derives from the timings hang
 * together. No assertion about speed here (timing goals live in `npm run bench`), only about
 * what the numbers mean.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { benchUpdates, DEFAULT_BENCH_METHODS } from '../src/train/bench';
import { median } from '../src/util/stats';

test('benchUpdates: paired and extra overheads with intervals that hold them, a control, no leaks', async () => {
  await tf.setBackend('wasm');
  try {
    const before = tf.memory().numTensors;
    const methods = DEFAULT_BENCH_METHODS.filter((m) => ['sft', 'sft (repeat)', 'gmt (tensor)', 'childtuning-f'].includes(m.label));
    const r = await benchUpdates({
      model: { vocabSize: 13, dModel: 16, nLayers: 1, nHeads: 2, contextLength: 8 },
      batchSize: 4, steps: 10, warmup: 1, methods, seed: 3,
    });
    assert.equal(tf.memory().numTensors, before, 'no tensors leak');
    assert.deepEqual(r.rows.map((x) => x.label), ['sft', 'sft (repeat)', 'gmt (tensor)', 'childtuning-f']);
    const [sft, repeat, gmt] = r.rows;
    // SFT against itself, round by round: exactly no overhead, and a degenerate interval.
    assert.equal(sft!.pairedOverVsSft, 1);
    assert.deepEqual(sft!.pairedCi95, [1, 1]);
    assert.equal(sft!.extraOverSft, 0);
    for (const row of r.rows) {
      assert.equal(row.msPerStep.length, 10);
      assert.ok(row.pairedCi95[0] <= row.pairedOverVsSft && row.pairedOverVsSft <= row.pairedCi95[1], `${row.label}: paired outside its interval`);
      assert.ok(row.extraCi95[0] <= row.extraOverSft && row.extraOverSft <= row.extraCi95[1], `${row.label}: extra outside its interval`);
      assert.ok(row.outsideGradientsMs > 0 && row.outsideGradientsMs < row.medianMs, `${row.label}: time outside the gradients ${row.outsideGradientsMs} of ${row.medianMs}`);
      assert.equal(row.medianMs, median(row.msPerStep));
    }
    // The control runs the same work as SFT; GMT's transform is where its mask is timed.
    assert.equal(repeat!.strategy.name, 'sft');
    assert.ok(repeat!.transformMedianMs < gmt!.transformMedianMs, 'the mask takes time in gmt, none in sft');
  } finally {
    await tf.setBackend('cpu');
  }
});

test('notebook 04\'s cached benchmark: one file per engine, reused when options and engine match, both side by side', async () => {
  const { cachedBench, enginesTable, readCachedBench } = await import('../src/findings/bench');
  const { findingsPaths } = await import('../src/findings/paths');
  const { setEngine } = await import('../src/backend/engine');
  const { loadNative } = await import('../src/backend/native');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-bench-cache-'));
  const paths = findingsPaths('fast', { ...process.env, GMT_RESULTS_DIR: dir });
  assert.notEqual(paths.bench.wasm, paths.bench.native);
  const options = { preset: 'nano' as const, batchSize: 2, steps: 10, warmup: 0, seed: 0 };
  const engines = loadNative().ok ? (['wasm', 'native'] as const) : (['wasm'] as const);
  try {
    for (const engine of engines) {
      setEngine(engine);
      const first = await cachedBench(options, paths.bench[engine]);
      assert.equal(first.cached, false);
      assert.match(first.context.gradientPath, new RegExp(engine));
      const again = await cachedBench(options, paths.bench[engine]);
      assert.equal(again.cached, true, 'same options, same engine: from the file');
      assert.equal(again.date, first.date);
    }
    // Timing one engine never replaced the other's file.
    assert.match(readCachedBench(paths.bench.wasm)!.context.gradientPath, /wasm/);
    const rows = enginesTable(paths.bench);
    assert.deepEqual([...new Set(rows.map((r) => r.engine.split(' ')[0]))], [...engines]);
    assert.ok(rows.every((r) => r.medianMs > 0 && Number.isFinite(r.overSft)));
    assert.deepEqual(enginesTable({ wasm: path.join(dir, 'none.json') }), []);
  } finally {
    setEngine('auto');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
