/**
 * A `gmt-lab worker` stops when asked, whatever Redis does: on SIGTERM or SIGINT it hands back
 * what it can and exits within its stop bound (`--stop-timeout`), also while the Redis it
 * talks to has been killed. Real processes: Debian's redis-server killed with SIGKILL, workers
 * started as a user starts them, signals sent to their process group as a service manager or
 * a terminal would.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { DEFAULT_STOP_MS, enqueueRuns, queueName, type RunJobData } from '../src/sweep/queue';
import { planSweep } from '../src/sweep/runner';
import type { RunRecord } from '../src/sweep/store';
import { startRedis } from './helpers/redis';
import { tinyGrid } from './helpers/tiny-grid';

const repoRoot = path.resolve(__dirname, '..', '..');
const cliMain = path.join(repoRoot, 'kernel-lib/src/cli/main.ts');
const tmp = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** What a stop may take beyond the bound here: Node and the signal's delivery on a loaded 2-core machine. */
const SLACK_MS = 3000;

/** A run long enough to be stopped in its middle (nano, thousands of updates). */
const longGrid = tinyGrid({ name: 'worker-stop', methods: ['sft'], seeds: [0], base: { base: 'nano', steps: 5000, warmup: 1, accum: 1, batchSize: 4, testSize: 4, valSize: 4, maxNewTokens: 8 } });

interface Spawned {
  child: ChildProcess;
  log(): string;
  waitFor(re: RegExp, ms: number): Promise<RegExpExecArray>;
  /** Resolves to the exit status and the time of the exit. */
  exit: Promise<{ code: number | null; at: number }>;
}

function spawnWorker(url: string, name: string, dir: string, extra: string[] = []): Spawned {
  const child = spawn(process.execPath, ['--import', 'tsx', cliMain, 'worker', '--queue', url, '--jobs', '1', '--stall-timeout', '3', '--name', name, '--cache', path.join(dir, `cache-${name}.jsonl`), ...extra], {
    cwd: repoRoot, detached: true, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let text = '';
  child.stderr?.on('data', (d: Buffer) => {
    text += d.toString();
  });
  const exit = new Promise<{ code: number | null; at: number }>((r) => child.once('exit', (code) => r({ code, at: Date.now() })));
  return {
    child,
    log: () => text,
    async waitFor(re, ms) {
      const deadline = Date.now() + ms;
      for (;;) {
        const m = re.exec(text);
        if (m) return m;
        if (Date.now() > deadline) throw new Error(`worker ${name}: no ${re} within ${ms} ms; log:\n${text}`);
        await sleep(50);
      }
    },
    exit,
  };
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits (bounded) for every process of the group to end; true when none is left. */
async function groupGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (groupAlive(pgid) && Date.now() < deadline) await sleep(100);
  return !groupAlive(pgid);
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`an idle worker whose Redis was killed exits on ${signal} within its stop bound, leaving no process`, { timeout: 120_000 }, async (t) => {
    const dir = tmp('gmt-worker-stop-idle-');
    const redis = await startRedis(path.join(dir, 'redis'));
    const w = spawnWorker(redis.url, 'idle', dir);
    t.after(() => {
      if (groupAlive(w.child.pid as number)) process.kill(-(w.child.pid as number), 'SIGKILL');
    });
    await w.waitFor(/waiting for runs/, 60_000);
    await redis.kill();
    // It has noticed: it is reconnecting, as users saw before it would stop.
    await w.waitFor(/ECONNREFUSED .*; retrying/, 30_000);
    const sent = Date.now();
    process.kill(-(w.child.pid as number), signal); // the whole group, as a terminal or service manager does
    const { code, at } = await Promise.race([w.exit, sleep(DEFAULT_STOP_MS + 10_000).then(() => ({ code: -1, at: Date.now() }))]);
    assert.notEqual(code, -1, `still running ${(DEFAULT_STOP_MS + 10_000) / 1000} s after ${signal}:\n${w.log()}`);
    assert.equal(code, 130, w.log());
    assert.ok(at - sent <= DEFAULT_STOP_MS + SLACK_MS, `exited ${at - sent} ms after ${signal}, bound ${DEFAULT_STOP_MS} ms`);
    assert.match(w.log(), new RegExp(`${signal}: stopping within ${DEFAULT_STOP_MS / 1000} s`));
    assert.match(w.log(), /stopped; 0 runs made/);
    assert.ok(await groupGone(w.child.pid as number, 5000), 'no process of the worker is left');
    t.diagnostic(`${signal}: idle worker, Redis killed: exited ${at - sent} ms after the signal`);
  });
}

test('a worker in the middle of a run whose Redis was killed exits on SIGTERM within --stop-timeout, its run process too; the run stays in Redis for another worker', { timeout: 180_000 }, async (t) => {
  const dir = tmp('gmt-worker-stop-run-');
  // Persistence on, so the run's job is still there when Redis comes back.
  const redisDir = path.join(dir, 'redis');
  const redis = await startRedis(redisDir);
  const { context, runs } = await planSweep(longGrid);
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  connection.on('error', () => undefined);
  const queue = new Queue<RunJobData, RunRecord>(queueName(context), { connection });
  queue.on('error', () => undefined);
  await enqueueRuns(queue, runs, longGrid.name);
  const w = spawnWorker(redis.url, 'busy', dir, ['--stop-timeout', '8']);
  t.after(async () => {
    if (groupAlive(w.child.pid as number)) process.kill(-(w.child.pid as number), 'SIGKILL');
    await queue.close().catch(() => undefined);
    connection.disconnect();
  });
  await w.waitFor(/: started/, 60_000);
  await sleep(1000);
  await connection.save(); // a snapshot: the run active, held by this worker's lock
  await redis.kill();
  await sleep(500);
  const sent = Date.now();
  process.kill(-(w.child.pid as number), 'SIGTERM');
  const { code, at } = await Promise.race([w.exit, sleep(40_000).then(() => ({ code: -1, at: Date.now() }))]);
  assert.notEqual(code, -1, `still running 40 s after SIGTERM:\n${w.log()}`);
  assert.equal(code, 130, w.log());
  assert.ok(at - sent <= 8000 + SLACK_MS, `exited ${at - sent} ms after SIGTERM, bound 8000 ms`);
  assert.match(w.log(), /SIGTERM: stopping within 8 s/);
  assert.match(w.log(), /1 run could not be handed back within 8 s \(Redis at .* is unreachable\); another worker takes it over after the stall timeout \(3 s\)/);
  assert.ok(await groupGone(w.child.pid as number, 5000), 'no process of the worker (nor its run) is left');
  t.diagnostic(`worker mid-run, Redis killed: exited ${at - sent} ms after SIGTERM (--stop-timeout 8)`);
  assert.doesNotMatch(w.log(), /: done/, 'the worker did not finish it');
  // Redis back with its snapshot (the run active under the stopped worker's lock): once the lock
  // has expired another worker takes the run over, as after a kill -9.
  const again = await startRedis(redisDir, { port: redis.port });
  const other = spawnWorker(again.url, 'other', dir);
  t.after(async () => {
    if (groupAlive(other.child.pid as number)) process.kill(-(other.child.pid as number), 'SIGKILL');
    await again.stop();
  });
  await other.waitFor(new RegExp(`${runs[0]!.label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: started`), 60_000);
});

for (const moment of ['as its run starts', 'in the middle of its run'] as const) {
  test(`a worker with Redis up, stopped by SIGINT ${moment}, hands the run back without using an attempt and exits within its bound`, { timeout: 180_000 }, async (t) => {
    const dir = tmp('gmt-worker-stop-up-');
    const redis = await startRedis(path.join(dir, 'redis'));
    const { context, runs } = await planSweep(longGrid);
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue<RunJobData, RunRecord>(queueName(context), { connection });
    const w = spawnWorker(redis.url, 'up', dir);
    t.after(async () => {
      if (groupAlive(w.child.pid as number)) process.kill(-(w.child.pid as number), 'SIGKILL');
      await queue.close();
      connection.disconnect();
      await redis.stop();
    });
    await w.waitFor(/waiting for runs/, 60_000);
    await enqueueRuns(queue, runs, longGrid.name);
    await w.waitFor(/: started/, 60_000);
    if (moment === 'in the middle of its run') {
      // The worker reports progress every 2 s: wait for updates to have been made.
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && !((await queue.getJob(runs[0]!.key))?.progress as { step?: number } | undefined)?.step) await sleep(200);
      assert.ok(((await queue.getJob(runs[0]!.key))?.progress as { step?: number }).step! > 0, 'the run is making updates');
    }
    const sent = Date.now();
    process.kill(-(w.child.pid as number), 'SIGINT');
    const { code, at } = await Promise.race([w.exit, sleep(40_000).then(() => ({ code: -1, at: Date.now() }))]);
    assert.equal(code, 130, w.log());
    assert.ok(at - sent <= DEFAULT_STOP_MS + SLACK_MS, `exited ${at - sent} ms after SIGINT`);
    assert.match(w.log(), /: stopped, back in the queue/);
    assert.ok(await groupGone(w.child.pid as number, 5000), 'no process of the worker is left');
    const [job] = await queue.getJobs(['waiting', 'delayed'], 0, -1);
    assert.ok(job, `the run is back in the queue (state ${await queue.getJobState(runs[0]!.key)}, counts ${JSON.stringify(await queue.getJobCounts())})`);
    assert.equal(job.attemptsMade, 0, 'handing back used no attempt');
    assert.equal(await queue.getJobCountByTypes('failed', 'completed', 'active'), 0, 'nothing failed, finished or held');
    t.diagnostic(`worker ${moment}, Redis up: handed back and exited ${at - sent} ms after SIGINT`);
  });
}
