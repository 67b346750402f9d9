#!/usr/bin/env node
// `npm test`: everything a change must pass. `npm run setup` has already run (pretest).
//
//   1. typecheck   tsc --noEmit over kernel-lib and kernel-lib/test
//   2. unit tests  node --test (through tsx) over kernel-lib/test/**/*.test.ts and
//                  scripts/test/**/*.test.mjs on the default engine (native where setup built
//                  it), then the engine-dependent files again on the wasm engine
//   3. notebooks   every notebooks/*.ipynb executed in fast mode (GMT_MODE=fast)
//
// Every step runs even when an earlier one failed, so one run shows every problem. The last
// line is `tests: N passed, M failed` (plus `, K skipped` when some were skipped), counting unit
// tests and notebooks; a failed typecheck counts as one failed test per project.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, tscBin } from './lib/env.mjs';
import { runNotebooks } from './notebooks.mjs';

const counts = { passed: 0, failed: 0, skipped: 0 };
const failures = [];

function heading(text) {
  console.log(`\n== ${text}`);
}

/** Run a command with live output; resolves to its exit status. */
function run(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'], ...options });
    child.on('error', reject);
    child.on('exit', (status, signal) => resolve(status ?? (signal ? 128 : 1)));
  });
}

/** Files under `dir` (recursively) whose name ends with `suffix`, sorted, relative to the repo. */
function findFiles(dir, suffix) {
  const found = [];
  const walk = (d) => {
    if (!existsSync(d)) return;
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory() && entry.name !== 'node_modules') walk(full);
      else if (entry.isFile() && entry.name.endsWith(suffix)) found.push(path.relative(repoRoot, full));
    }
  };
  walk(path.join(repoRoot, dir));
  return found.sort();
}

async function typecheck() {
  for (const project of ['kernel-lib', 'kernel-lib/test']) {
    heading(`typecheck: tsc -p ${project} --noEmit`);
    const status = await run(process.execPath, [tscBin, '-p', project, '--noEmit']);
    if (status === 0) console.log(`typecheck ${project}: ok`);
    else {
      counts.failed += 1;
      failures.push(`typecheck ${project}`);
    }
  }
}

/** Totals from the summary comments at the end of a TAP stream (`# pass 3`, ...). */
function tapTotals(tap) {
  const total = (name) => {
    const matches = [...tap.matchAll(new RegExp(`^# ${name} (\\d+)$`, 'gm'))];
    return matches.length ? Number(matches[matches.length - 1][1]) : null;
  };
  return { pass: total('pass'), fail: total('fail'), cancelled: total('cancelled'), skipped: total('skipped'), todo: total('todo') };
}

/**
 * Test files whose code paths differ per engine: the whole suite runs on the default engine (the
 * native one wherever setup built it), then these again on the wasm engine, so both engines are
 * tested on every run. The second pass sets GMT_TEST_PASS=engine, and tests in these files that do
 * not depend on the engine (sweep processes and signals, the cpu backend) skip it.
 */
const ENGINE_FILES = ['adamw', 'mask', 'model', 'strategies', 'trainer', 'reliability', 'cli-train'].map((f) => `kernel-lib/test/${f}.test.ts`);

async function unitTests(label, files, env = process.env) {
  heading(`unit tests${label}: ${files.length} files`);
  if (files.length === 0) return;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'gmt-test-'));
  const tapFile = path.join(tmp, 'report.tap');
  try {
    // Two reporters: spec for people, live on stdout; TAP to a file for the counts.
    const status = await run(process.execPath, [
      '--import', 'tsx',
      '--test',
      '--test-reporter=spec', '--test-reporter-destination=stdout',
      '--test-reporter=tap', `--test-reporter-destination=${tapFile}`,
      ...files,
    ], { env });
    const totals = tapTotals(existsSync(tapFile) ? readFileSync(tapFile, 'utf8') : '');
    if (totals.pass === null) {
      counts.failed += 1;
      failures.push(`unit tests${label}: node --test exited with ${status} and no report`);
      return;
    }
    counts.passed += totals.pass;
    counts.failed += totals.fail + (totals.cancelled ?? 0);
    counts.skipped += (totals.skipped ?? 0) + (totals.todo ?? 0);
    if (totals.fail + (totals.cancelled ?? 0) > 0) failures.push(`unit tests${label}: ${totals.fail + (totals.cancelled ?? 0)} failed`);
    else if (status !== 0) {
      // All reported tests passed but the run still failed (a file that did not load, ...).
      counts.failed += 1;
      failures.push(`unit tests${label}: node --test exited with ${status}`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function notebooks() {
  heading('notebooks (fast mode)');
  const { results } = await runNotebooks({ mode: 'fast', out: path.join(repoRoot, 'build', 'notebooks') });
  for (const r of results) {
    if (r.ok) counts.passed += 1;
    else {
      counts.failed += 1;
      failures.push(`notebook ${r.notebook}${r.cell === null ? '' : ` cell ${r.cell}`}: ${r.reason}`);
    }
  }
}

/** Which engine the default run uses (what setup built), in one line. */
function defaultEngine() {
  try {
    const m = JSON.parse(readFileSync(path.join(repoRoot, 'kernel-lib', 'native', 'manifest.json'), 'utf8'));
    return m.error ? `wasm (native not built: ${m.error})` : `native (${m.isa}, build ${m.buildId})`;
  } catch {
    return 'wasm (native not built)';
  }
}

await typecheck();
const engine = process.env.GMT_ENGINE?.trim() || defaultEngine();
await unitTests(` (engine: ${engine})`, [...findFiles('kernel-lib/test', '.test.ts'), ...findFiles('scripts/test', '.test.mjs')]);
if (!/^wasm/.test(engine)) await unitTests(' (engine: wasm)', ENGINE_FILES.filter((f) => existsSync(path.join(repoRoot, f))), { ...process.env, GMT_ENGINE: 'wasm', GMT_TEST_PASS: 'engine' });
try {
  await notebooks();
} catch (err) {
  counts.failed += 1;
  failures.push(`notebooks: ${err.message}`);
  console.error(`notebooks: ${err.message}`);
}

console.log('');
if (failures.length) {
  console.log('failures:');
  for (const f of failures) console.log(`  - ${f}`);
}
const skipped = counts.skipped ? `, ${counts.skipped} skipped` : '';
console.log(`tests: ${counts.passed} passed, ${counts.failed} failed${skipped}`);
process.exit(counts.failed > 0 ? 1 : 0);
