/** The notebook cells `trainCell` and `compareCell`, outside a kernel (their text output). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend';
import { compareCell, lastResult, resultSummary, trainCell } from '../src/notebook/cells';

const quick = { base: 'nano', task: 'math', steps: 4, warmup: 1, accum: 1, batchSize: 4, testSize: 4, valSize: 4, maxNewTokens: 8 };

test('trainCell returns the result record, shows a summary, and keeps it as lastResult', async () => {
  await initBackend({ quiet: true });
  const before = tf.memory().numTensors;
  const r = await trainCell({ ...quick, method: 'gmt', methodOptions: { ratio: 0.3 } });
  assert.equal(r.train.updates, 4);
  assert.equal(lastResult(), r);
  assert.equal(tf.memory().numTensors, before);
  const rows = resultSummary(r);
  assert.deepEqual(rows.map((x) => x.metric).slice(0, 3), ['method', 'updates', 'validation loss (base → after)']);
  assert.equal(rows[1]!.value, '4 of 4');
  assert.ok(rows.some((x) => x.metric.startsWith('test accuracy')));
  await assert.rejects(trainCell({ ...quick, steps: 0 }), /steps must be >= 1/);
});

test('compareCell runs the methods on the same seeds through the store; re-running it makes nothing', async () => {
  await initBackend({ quiet: true });
  const store = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-compare-')), 'compare.jsonl');
  const methods = ['sft', { method: 'gmt', options: { ratio: 0.3 } }];
  const first = await compareCell({ methods, base: quick, seeds: [0, 1], store, jobs: 0 });
  assert.equal(first.outcome.ran, 4);
  assert.deepEqual(first.summary.map((r) => (r as { methodLabel: string }).methodLabel).sort(), ['gmt ratio=0.3', 'sft']);
  for (const row of first.summary as { n: number; mean: number }[]) {
    assert.equal(row.n, 2);
    assert.ok(Number.isFinite(row.mean));
  }
  const again = await compareCell({ methods, base: quick, seeds: [0, 1], store, jobs: 0 });
  assert.equal(again.outcome.ran, 0);
  assert.equal(again.outcome.skipped, 4);
  assert.deepEqual(again.summary, first.summary);
  await assert.rejects(compareCell({ methods: [], store }), /methods must be a non-empty list/);
});

test('cell results print as one line in a notebook and keep their fields and JSON', async () => {
  const { inspect } = await import('node:util');
  const r = lastResult()!;
  assert.match(inspect(r), /^\[trainCell result\] gmt k=0\.3: 4\/4 updates, validation loss \d+\.\d+ → \d+\.\d+, test accuracy \d+\.\d%/);
  assert.equal(JSON.parse(JSON.stringify(r)).train.updates, 4, 'JSON unchanged');
});
