// End-to-end tests of scripts/notebooks.mjs: real tslab kernels driven by nbclient, on notebooks
// written here into a temp folder. Each test starts one kernel (a few seconds each).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { repoRoot } from '../lib/env.mjs';

const runner = path.join(repoRoot, 'scripts', 'notebooks.mjs');
let dir;

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'gmt-runner-test-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Write an nbformat 4 notebook with one code cell per source string; returns its path. */
function writeNotebook(name, sources) {
  const nb = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: 'tslab', display_name: 'TypeScript', language: 'typescript' } },
    cells: sources.map((source, i) => ({
      cell_type: 'code',
      id: `cell-${i}`,
      metadata: {},
      execution_count: null,
      outputs: [],
      source,
    })),
  };
  const file = path.join(dir, 'nb', name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(nb, null, 1));
  return file;
}

/** Run the runner CLI; returns exit status and stdout+stderr together. */
function runRunner(args) {
  const r = spawnSync(process.execPath, [runner, '--out', path.join(dir, 'out'), ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, GMT_MODE: 'should-be-overridden' },
    timeout: 120_000,
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function executedCopy(name) {
  return JSON.parse(readFileSync(path.join(dir, 'out', name), 'utf8'));
}

function streamText(cell) {
  return cell.outputs
    .filter((o) => o.output_type === 'stream')
    .map((o) => (Array.isArray(o.text) ? o.text.join('') : o.text))
    .join('');
}

describe('notebook runner', () => {
  test('a passing notebook exits 0, runs in its folder with GMT_MODE, and leaves the source alone', () => {
    const file = writeNotebook('pass.ipynb', [
      'const answer: number = 6 * 7;\nconsole.log(`answer=${answer}`);',
      'console.log(`cwd=${process.cwd()}`);\nconsole.log(`mode=${process.env.GMT_MODE}`);',
    ]);
    const before = readFileSync(file, 'utf8');
    const { status, output } = runRunner(['--mode', 'full', file]);
    assert.equal(status, 0, output);
    assert.match(output, /^ok {3}nb\/pass\.ipynb \(\d+\.\d s\)$/m);
    const nb = executedCopy('pass.ipynb');
    assert.equal(streamText(nb.cells[0]), 'answer=42\n');
    assert.equal(streamText(nb.cells[1]), `cwd=${path.dirname(file)}\nmode=full\n`);
    assert.equal(readFileSync(file, 'utf8'), before, 'source notebook must not be rewritten');
  });

  test('a thrown error fails, naming notebook, cell index and the stderr; later cells do not run', () => {
    const file = writeNotebook('throw.ipynb', ['1 + 1', "throw new Error('boom')", "console.log('after')"]);
    const { status, output } = runRunner([file]);
    assert.notEqual(status, 0, output);
    assert.match(output, /FAIL nb\/throw\.ipynb cell 1: the cell failed/);
    assert.match(output, /Error: boom/);
    const nb = executedCopy('throw.ipynb');
    assert.match(streamText(nb.cells[1]), /Error: boom/, 'the executed copy keeps the failure');
    assert.equal(streamText(nb.cells[2]), '');
  });

  test('a TypeScript type error fails, naming the cell and the diagnostic', () => {
    const file = writeNotebook('types.ipynb', ['let ok = 1;', "const n: number = 'not a number';"]);
    const { status, output } = runRunner([file]);
    assert.notEqual(status, 0, output);
    assert.match(output, /FAIL nb\/types\.ipynb cell 1: the cell failed/);
    assert.match(output, /Type 'string' is not assignable to type 'number'/);
  });

  test('an unawaited rejected promise fails the cell that started it, even though tslab says ok', () => {
    const file = writeNotebook('reject.ipynb', ['1', "Promise.reject(new Error('late'));\n2", '3']);
    const { status, output } = runRunner([file]);
    assert.notEqual(status, 0, output);
    assert.match(output, /FAIL nb\/reject\.ipynb cell 1: UnhandledPromiseRejection/);
    assert.match(output, /Error: late/);
  });

  test('a throw inside a callback fails, also when it is the last cell', () => {
    const file = writeNotebook('callback.ipynb', ['1', "setTimeout(() => { throw new Error('in a timer'); }, 0);"]);
    const { status, output } = runRunner([file]);
    assert.notEqual(status, 0, output);
    assert.match(output, /FAIL nb\/callback\.ipynb cell 1: UncaughtException/);
    assert.match(output, /Error: in a timer/);
    assert.match(streamText(executedCopy('callback.ipynb').cells[1]), /UncaughtException/);
  });

  test('a cell running past --timeout fails, naming the cell', () => {
    const file = writeNotebook('slow.ipynb', ['1', 'await new Promise((resolve) => setTimeout(resolve, 60_000));']);
    const { status, output } = runRunner(['--timeout', '2', file]);
    assert.notEqual(status, 0, output);
    assert.match(output, /FAIL nb\/slow\.ipynb cell 1: timed out after 2 s/);
    assert.ok(existsSync(path.join(dir, 'out', 'slow.ipynb')), 'executed copy written on timeout');
  });

  test('a dying kernel fails, naming the cell', () => {
    const file = writeNotebook('die.ipynb', ['1', 'process.exit(3);']);
    const { status, output } = runRunner([file]);
    assert.notEqual(status, 0, output);
    assert.match(output, /FAIL nb\/die\.ipynb cell 1: the kernel died/);
  });

  test('executing a notebook in place twice writes the same bytes: no timestamps, figure ids from content', () => {
    // Inside the checkout (build/ is git-ignored), so that the kernel resolves @gmt-lab/kernel-lib.
    mkdirSync(path.join(repoRoot, 'build'), { recursive: true });
    const work = mkdtempSync(path.join(repoRoot, 'build', 'gmt-runner-inplace-'));
    try {
      const file = path.join(work, 'same.ipynb');
      const nb = JSON.parse(readFileSync(writeNotebook('same.ipynb', [
        "import * as gmt from '@gmt-lab/kernel-lib';\nconst fig = gmt.lineFigure({ title: 't', series: [{ name: 'a', x: [1, 2], y: [3, 4] }] });",
        // The live figure's number of redraws depends on timing; the ids saved must not.
        "const live = gmt.liveFigure({ minIntervalMs: 0, png: false, plotlyJs: 'never' });\nfor (let i = 0; i < 3 + Math.floor(Math.random() * 5); i++) live.update(fig);\nawait live.close();",
        "await gmt.showFigure(fig, { png: false, plotlyJs: 'never' });\nawait gmt.showFigure(gmt.lineFigure({ title: 'u', series: [{ name: 'b', x: [1], y: [2] }] }), { png: false, plotlyJs: 'never' });",
        // With a PNG, a committed figure is the PNG alone: no HTML copy of it.
        "await gmt.showFigure(fig, { plotlyJs: 'never' });",
        "const bar = gmt.progress(3, { label: 'work' });\nfor (let i = 1; i <= 3; i++) { await new Promise((r) => setTimeout(r, 30 * Math.random())); bar.update(i); }\nbar.finish();",
      ]), 'utf8'));
      // A source saved by an older runner carries nbclient's timestamps; they must go.
      nb.cells[0].metadata.execution = { 'iopub.status.busy': '2026-01-01T00:00:00.000000Z' };
      writeFileSync(file, JSON.stringify(nb, null, 1));
      const execute = () => {
        const r = spawnSync(process.execPath, [runner, '--inplace', file], {
          cwd: work, encoding: 'utf8', timeout: 180_000, env: { ...process.env, GMT_STABLE_OUTPUT: '1', GMT_PLOTLYJS: 'never' },
        });
        assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
        return readFileSync(file, 'utf8');
      };
      const first = execute();
      const second = execute();
      const saved = JSON.parse(first);
      assert.deepEqual(saved.cells.map((c) => c.metadata.execution), saved.cells.map(() => undefined), 'no execution timestamps');
      const ids = [...first.matchAll(/id=\\"(gmt-fig-[^\\"]*)\\"/g)].map((m) => m[1]);
      assert.equal(ids.length, 3, 'three figure outputs (the live one, then two)');
      for (const id of ids) assert.match(id, /^gmt-fig-[0-9a-f]{16}$/);
      assert.equal(ids[0], ids[1], 'the same figure shown twice gets the same id');
      assert.notEqual(ids[1], ids[2]);
      const committed = saved.cells[3].outputs.filter((o) => o.output_type === 'display_data');
      assert.equal(committed.length, 1, JSON.stringify(saved.cells[3].outputs).slice(0, 500));
      assert.deepEqual(Object.keys(committed[0].data).sort(), ['application/vnd.plotly.v1+json', 'image/png', 'text/plain']);
      assert.match(streamText(saved.cells[4]) + JSON.stringify(saved.cells[4].outputs), /work \[#{24}\] 3\/3 100%/);
      assert.doesNotMatch(JSON.stringify(saved.cells[4].outputs), /\d\.\ds|\d+ms/, 'no elapsed time with GMT_STABLE_OUTPUT=1');
      assert.equal(second, first, 'the second execution changed the notebook');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  test('bad arguments are rejected with a usage message', () => {
    const missing = runRunner([path.join(dir, 'nb', 'missing.ipynb')]);
    assert.equal(missing.status, 2);
    assert.match(missing.output, /notebook not found: .*missing\.ipynb/);
    const mode = runRunner(['--mode', 'quick']);
    assert.equal(mode.status, 2);
    assert.match(mode.output, /--mode must be fast or full, got "quick"/);
  });
});
