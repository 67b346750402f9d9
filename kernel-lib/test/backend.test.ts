import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { BACKEND_ORDER, doctor, formatDoctor, initBackend, parseBackendName, probeBackend, WEBGPU_OPT_IN_REASON } from '../src/backend';
import { ConfigError } from '../src/util/config';

/** Runs `fn` with GMT_BACKEND set (or unset), restoring the previous value. */
async function withEnv<T>(value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.GMT_BACKEND;
  if (value === undefined) delete process.env.GMT_BACKEND;
  else process.env.GMT_BACKEND = value;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.GMT_BACKEND;
    else process.env.GMT_BACKEND = saved;
  }
}

const notInstalled = (pkg: string): boolean => {
  try {
    require.resolve(pkg);
    return false;
  } catch {
    return true;
  }
};

test('default selection takes the first available backend in order, wasm or cpu here', async () => {
  const report = await withEnv(undefined, () => initBackend({ quiet: true }));
  // webgpu is opt-in (GMT_BACKEND=webgpu) until the GPU path is complete.
  const firstAvailable = BACKEND_ORDER.find((n) => n !== 'webgpu' && probeBackend(n).available);
  assert.equal(report.skipped.find((s) => s.name === 'webgpu')?.reason, WEBGPU_OPT_IN_REASON);
  assert.equal(report.backend, firstAvailable);
  assert.equal(report.source, 'default');
  assert.equal(tf.getBackend(), report.tfjsBackend);
  if (notInstalled('@tensorflow/tfjs-node') && notInstalled('@tensorflow/tfjs-node-gpu')) {
    assert.ok(report.backend === 'wasm' || report.backend === 'cpu', `got ${report.backend}`);
    // Everything tried before the chosen one is listed with a reason.
    const skippedNames = report.skipped.map((s) => s.name);
    assert.deepEqual(skippedNames, BACKEND_ORDER.slice(0, BACKEND_ORDER.indexOf(report.backend)));
    for (const s of report.skipped) assert.ok(s.reason.length > 10, `${s.name} needs a reason`);
  }
});

test('a missing optional package is a reason, not an error', () => {
  if (!notInstalled('@tensorflow/tfjs-node')) return;
  const probe = probeBackend('tfjs-node');
  assert.equal(probe.available, false);
  assert.match(probe.reason ?? '', /not installed/);
  assert.match(probe.reason ?? '', /npm install @tensorflow\/tfjs-node/);
});

test('prefer narrows and orders the candidates', async () => {
  const cpu = await withEnv(undefined, () => initBackend({ prefer: 'cpu', quiet: true }));
  assert.equal(cpu.backend, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  const fallback = await withEnv(undefined, () => initBackend({ prefer: ['tfjs-node-gpu', 'cpu'], quiet: true }));
  if (notInstalled('@tensorflow/tfjs-node-gpu')) {
    assert.equal(fallback.backend, 'cpu');
    assert.equal(fallback.skipped[0].name, 'tfjs-node-gpu');
  }
  await assert.rejects(
    withEnv(undefined, () => initBackend({ prefer: ['cpu', 'tpu' as never], quiet: true })),
    (e: Error) => e instanceof ConfigError && /prefer\[1\]/.test(e.message) && /"tpu"/.test(e.message),
  );
});

test('GMT_BACKEND forces a backend, and names itself in errors', async () => {
  const forced = await withEnv('cpu', () => initBackend({ prefer: 'wasm', quiet: true }));
  assert.equal(forced.backend, 'cpu');
  assert.equal(forced.source, 'GMT_BACKEND');
  await assert.rejects(
    withEnv('tensorflow-tpu', () => initBackend({ quiet: true })),
    (e: Error) => e instanceof ConfigError && /GMT_BACKEND/.test(e.message) && /tensorflow-tpu/.test(e.message) && /wasm/.test(e.message),
  );
  // An unavailable backend asked for by name is an error that carries the probe's reason.
  if (notInstalled('@tensorflow/tfjs-node-gpu')) {
    await assert.rejects(
      withEnv('tfjs-node-gpu', () => initBackend({ quiet: true })),
      (e: Error) => e instanceof ConfigError && /GMT_BACKEND=tfjs-node-gpu/.test(e.message) && /not installed/.test(e.message),
    );
  }
});

test('parseBackendName accepts known names case-insensitively and rejects the rest', () => {
  assert.equal(parseBackendName(' WASM ', 'x'), 'wasm');
  assert.throws(() => parseBackendName('gpu', 'opt'), /opt: unknown backend "gpu"/);
  assert.throws(() => parseBackendName(3, 'opt'), /unknown backend 3/);
});

test('doctor reports versions, wasm flags and a reason for every backend not in use', async () => {
  await withEnv(undefined, () => initBackend({ quiet: true }));
  const report = await doctor();
  assert.deepEqual(report.backends.map((b) => b.name), [...BACKEND_ORDER]);
  const inUse = report.backends.filter((b) => b.status === 'in use');
  assert.equal(inUse.length, 1);
  assert.equal(inUse[0].name, report.backend);
  for (const row of report.backends) {
    if (row.status !== 'in use') assert.ok((row.reason ?? '').length > 10, `${row.name} has no reason`);
  }
  // Every backend faster than the chosen one says why it is not in use.
  const faster = report.backends.slice(0, BACKEND_ORDER.indexOf(report.backend));
  for (const row of faster) assert.ok(row.status === 'not available' || (row.name === 'webgpu' && row.reason?.includes('GMT_BACKEND=webgpu')), `${row.name}: ${row.status}`);
  assert.equal(report.versions.node, process.version);
  assert.equal(report.versions.tfjs, tf.version.tfjs);
  assert.match(report.versions['kernel-lib'], /^\d+\.\d+\.\d+/);
  assert.match(report.versions['tfjs-backend-wasm'] ?? '', /^\d+\.\d+\.\d+/);
  assert.ok(report.wasm !== null && typeof report.wasm.simd === 'boolean' && typeof report.wasm.threads === 'boolean');
  assert.ok(report.cpus >= 1);
  assert.deepEqual(JSON.parse(JSON.stringify(report)), report);

  const text = formatDoctor(report);
  for (const name of BACKEND_ORDER) assert.match(text, new RegExp(`^${name}\\s`, 'm'));
  assert.match(text, new RegExp(`^backend\\s+${report.backend} `, 'm'));
});
