/**
 * Sweeps through BullMQ on a real Redis (Debian's redis-server on a free loopback port): worker
 * processes started as a user starts them (`gmt-lab worker`), killed with SIGKILL mid-run,
 * a coordinator killed and restarted, Redis killed and restarted empty, runs that keep
 * failing, passwords and TLS. Every queued result is compared with the same run made by a local sweep.
 */
import test, { before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { checkQueue, enqueueRuns, parseQueueUrl, queueName, queueStatus, type RunJobData } from '../src/sweep/queue';
import { planSweep, runSweep, type SweepProgress } from '../src/sweep/runner';
import { ResultStore, type RunRecord } from '../src/sweep/store';
import type { SweepGrid } from '../src/sweep/grid';
import { makeTlsFiles, startRedis } from './helpers/redis';
import { tinyGrid } from './helpers/tiny-grid';

const repoRoot = path.resolve(__dirname, '..', '..');
const cliMain = path.join(repoRoot, 'kernel-lib/src/cli/main.ts');
const tmp = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Six runs of a few seconds each (long enough to be killed mid-run). */
const grid: SweepGrid = tinyGrid({ name: 'queue', seeds: [0, 1, 2], base: { base: 'nano', steps: 150, warmup: 1, accum: 1, batchSize: 4, testSize: 4, valSize: 4, maxNewTokens: 8 } });
let localWeights: Map<string, string>;

before(async () => {
  // The reference: the same grid made by a local sweep.
  const out = await runSweep(grid, { store: path.join(tmp('gmt-queue-local-'), 'local.jsonl'), jobs: 2 });
  assert.equal(out.failed, 0);
  localWeights = new Map([...out.records.values()].map((r) => [r.key, r.weightsSha256 as string]));
  assert.equal(localWeights.size, 6);
});

interface SpawnedWorker {
  child: ChildProcess;
  log(): string;
  waitFor(re: RegExp, ms: number): Promise<RegExpExecArray>;
  exit(): Promise<number | null>;
}

/** `gmt-lab worker` as its own process group, one run at a time, a 3 s stall timeout. */
function spawnWorker(url: string, name: string, dir: string, env: NodeJS.ProcessEnv = {}): SpawnedWorker {
  const child = spawn(process.execPath, ['--import', 'tsx', cliMain, 'worker', '--queue', url, '--jobs', '1', '--stall-timeout', '3', '--name', name, '--cache', path.join(dir, `cache-${name}.jsonl`)], {
    cwd: repoRoot, detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env },
  });
  let text = '';
  child.stderr?.on('data', (d: Buffer) => {
    text += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
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
    exit: () => exited,
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

/** Raw store lines by key: proves "exactly once" on the file itself. */
function linesByKey(file: string): Map<string, RunRecord[]> {
  const out = new Map<string, RunRecord[]>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const r = JSON.parse(line) as RunRecord;
    out.set(r.key, [...(out.get(r.key) ?? []), r]);
  }
  return out;
}

function assertSameAsLocal(file: string): Map<string, RunRecord[]> {
  const lines = linesByKey(file);
  assert.deepEqual([...lines.keys()].sort(), [...localWeights.keys()].sort(), 'every planned run is in the store');
  for (const [key, recs] of lines) {
    assert.equal(recs.length, 1, `run ${key} is in the store exactly once`);
    assert.equal(recs[0]!.status, 'done');
    assert.equal(recs[0]!.weightsSha256, localWeights.get(key), `run ${recs[0]!.label}: same weights as the local sweep`);
  }
  assert.equal(new ResultStore(file).read().bad.length, 0);
  return lines;
}

test('two workers, one killed with SIGKILL mid-run: its run is taken over after the stall timeout; every run once, same weights as a local sweep', { timeout: 240_000 }, async (t) => {
  const dir = tmp('gmt-queue-kill-');
  const redis = await startRedis(path.join(dir, 'redis'), { password: 'pa ss:word' });
  t.after(() => redis.stop());
  const a = spawnWorker(redis.url, 'A', dir);
  const b = spawnWorker(redis.url, 'B', dir);
  t.after(() => {
    for (const w of [a, b]) if (w.child.exitCode === null) w.child.kill('SIGKILL');
  });
  await Promise.all([a.waitFor(/waiting for runs/, 60_000), b.waitFor(/waiting for runs/, 60_000)]);
  const store = path.join(dir, 'queued.jsonl');
  const seen: SweepProgress[] = [];
  const sweep = runSweep(grid, { store, queue: redis.url, onProgress: (p) => seen.push(p) });
  const started = await a.waitFor(/\n {2}(.+): started/, 60_000);
  await sleep(400);
  process.kill(a.child.pid as number, 'SIGKILL');
  const out = await sweep;
  assert.equal(out.ran, 6);
  assert.equal(out.failed, 0);
  const lines = assertSameAsLocal(store);
  const killed = [...lines.values()].map((r) => r[0]!).find((r) => r.label === started[1]);
  assert.ok(killed, `the killed run ${started[1]} is in the store`);
  assert.equal(killed.queue?.worker, 'B', 'the run A was making when killed was made by B');
  assert.ok(!a.log().includes(`${started[1]}: done`), 'A never finished that run');
  assert.ok(seen.some((p) => p.queue?.workers.some((w) => w.name === 'A') && p.queue.workers.some((w) => w.name === 'B')), 'progress listed both workers');
  assert.ok(seen.some((p) => p.running.some((r) => r.worker === 'B')), 'progress said who runs what');
  const deadline = Date.now() + 10_000;
  while (groupAlive(a.child.pid as number) && Date.now() < deadline) await sleep(100);
  assert.ok(!groupAlive(a.child.pid as number), 'no process of the killed worker outlives it');
  // A stopped worker exits 130 and says so.
  b.child.kill('SIGTERM');
  assert.equal(await b.exit(), 130);
  assert.match(b.log(), /stopped; \d+ runs made/);
});

test('coordinator killed after enqueuing: the runs go on; enqueuing again adds nothing; a restarted coordinator collects every finished run once', { timeout: 240_000 }, async (t) => {
  const dir = tmp('gmt-queue-coord-');
  const redis = await startRedis(path.join(dir, 'redis'));
  t.after(() => redis.stop());
  const gridFile = path.join(dir, 'grid.json');
  fs.writeFileSync(gridFile, JSON.stringify(grid));
  const store = path.join(dir, 'queued.jsonl');
  const coord = spawn(process.execPath, ['--import', 'tsx', cliMain, 'sweep', gridFile, '--store', store, '--queue', redis.url], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
  let coordLog = '';
  coord.stderr?.on('data', (d: Buffer) => {
    coordLog += d.toString();
  });
  const deadline = Date.now() + 60_000;
  while (!/queue: 6 waiting/.test(coordLog)) {
    assert.ok(Date.now() < deadline && coord.exitCode === null, `coordinator did not enqueue: ${coordLog}`);
    await sleep(50);
  }
  coord.kill('SIGKILL');
  const { context, runs } = await planSweep(grid);
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue<RunJobData, RunRecord>(queueName(context), { connection });
  t.after(async () => {
    await queue.close();
    connection.disconnect();
  });
  assert.deepEqual(await enqueueRuns(queue, runs, grid.name), { added: 0, present: 6 }, 'the run key is the job id: enqueuing twice adds nothing');
  assert.equal(await queue.count(), 6);
  const [status] = await queueStatus(redis.url);
  assert.equal(status?.name, queueName(context));
  assert.deepEqual(status?.counts, { waiting: 6, delayed: 0, active: 0, completed: 0, failed: 0 });
  assert.equal(status?.grid, 'queue');
  const w = spawnWorker(redis.url, 'W', dir);
  t.after(() => {
    if (w.child.exitCode === null) w.child.kill('SIGKILL');
  });
  while ((await queue.getJobCounts('completed')).completed < 6) await sleep(200);
  const [after] = await queueStatus(redis.url);
  assert.equal(after?.counts.completed, 6, 'finished jobs wait in Redis for a coordinator');
  assert.deepEqual(after?.workers, ['W']);
  assert.ok(!fs.existsSync(store) || fs.readFileSync(store, 'utf8') === '', 'nothing was stored while no coordinator ran');
  const t0 = performance.now();
  const out = await runSweep(grid, { store, queue: redis.url });
  assert.equal(out.ran, 6);
  assert.ok(performance.now() - t0 < 20_000, 'the finished runs were collected, not made again');
  assertSameAsLocal(store);
  assert.equal(await queue.getJobCounts('completed').then((c) => c.completed), 0, 'collected jobs are removed from Redis');
  const again = await runSweep(grid, { store, queue: redis.url });
  assert.equal(again.ran, 0);
  assert.equal(again.skipped, 6);
  assertSameAsLocal(store);
});

test('Redis killed mid-sweep and restarted empty: no finished run is lost, lost runs are re-added, every run once with the same weights', { timeout: 240_000 }, async (t) => {
  const dir = tmp('gmt-queue-redis-');
  let redis = await startRedis(path.join(dir, 'redis'), { password: 'secret' });
  t.after(() => redis.stop());
  const w = spawnWorker(redis.url, 'W', dir);
  t.after(() => {
    if (w.child.exitCode === null) w.child.kill('SIGKILL');
  });
  await w.waitFor(/waiting for runs/, 60_000);
  const store = path.join(dir, 'queued.jsonl');
  let restarted = false;
  let doneBefore = 0;
  const seen: SweepProgress[] = [];
  const sweep = runSweep(grid, {
    store,
    queue: redis.url,
    onProgress: (p) => {
      seen.push(p);
      if (!restarted && p.done >= 2) {
        restarted = true;
        doneBefore = p.done;
        const port = redis.port;
        void redis.kill().then(async () => {
          await sleep(1500);
          redis = await startRedis(path.join(dir, 'redis2'), { password: 'secret', port });
        });
      }
    },
  });
  const out = await sweep;
  assert.ok(restarted);
  assert.ok(doneBefore >= 2 && doneBefore < 6, `Redis was killed with runs still to come (${doneBefore} done)`);
  assert.equal(out.failed, 0);
  assertSameAsLocal(store);
  assert.ok(seen.some((p) => (p.queue?.readded ?? 0) > 0), 'the coordinator re-added the runs Redis lost');
  assert.ok(seen.some((p) => p.queue?.error !== undefined), 'progress said Redis was unreachable');
});

test('a run that keeps failing ends failed after the set number of attempts, with its error; the others are done', { timeout: 240_000 }, async (t) => {
  const dir = tmp('gmt-queue-fail-');
  const redis = await startRedis(path.join(dir, 'redis'));
  t.after(() => redis.stop());
  const badTask = path.join(dir, 'bad.jsonl');
  fs.writeFileSync(badTask, `${Array.from({ length: 5 }, (_, i) => JSON.stringify({ prompt: `p${i}`, completion: 'c' })).join('\n')}\n{"prompt": "p5"`);
  const w = spawnWorker(redis.url, 'W', dir);
  t.after(() => {
    if (w.child.exitCode === null) w.child.kill('SIGKILL');
  });
  const store = path.join(dir, 'queued.jsonl');
  const small = tinyGrid({ name: 'queue-fail', methods: ['sft'], tasks: ['math', badTask], seeds: [0] });
  const out = await runSweep(small, { store, queue: redis.url, attempts: 2 });
  assert.equal(out.ran, 2);
  assert.equal(out.failed, 1);
  const recs = [...out.records.values()];
  const failed = recs.find((r) => r.status === 'failed');
  assert.ok(failed && failed.config.task === badTask);
  assert.match(failed.error!.message, /bad\.jsonl/);
  assert.match(failed.error!.message, /after 2 attempts/);
  assert.equal(recs.find((r) => r.config.task === 'math')?.status, 'done');
  assert.equal((w.log().match(/FAILED/g) ?? []).length, 2, 'the worker tried it twice');
});

test('queue URLs: schemes, hosts, databases and passwords are checked, and a password never appears in messages', { timeout: 240_000 }, async (t) => {
  assert.throws(() => parseQueueUrl('http://127.0.0.1:6379'), /must start with redis:\/\/ or rediss:\/\//);
  assert.throws(() => parseQueueUrl('redis://127.0.0.1:6379/abc'), /database number/);
  assert.throws(() => parseQueueUrl(''), /Redis URL is required/);
  assert.throws(() => parseQueueUrl('not a url :secret@'), (e: Error) => !e.message.includes('secret'));
  const p = parseQueueUrl('rediss://:hunter2@example.org:6380/2');
  assert.equal(p.tls, true);
  assert.equal(p.port, 6380);
  assert.ok(!p.shown.includes('hunter2') && p.shown.includes('***'));
  const dir = tmp('gmt-queue-auth-');
  const redis = await startRedis(path.join(dir, 'redis'), { password: 'hunter2' });
  t.after(() => redis.stop());
  const noAuth = `redis://127.0.0.1:${redis.port}`;
  await assert.rejects(checkQueue(noAuth), /asks for a password/);
  await assert.rejects(checkQueue(`redis://:wrong@127.0.0.1:${redis.port}`), (e: Error) => /refused the password/.test(e.message) && !e.message.includes('wrong@'));
  assert.match((await checkQueue(redis.url)).version, /^\d+\.\d+/);
  const free = (await import('./helpers/redis')).freePort;
  await assert.rejects(checkQueue(`redis://127.0.0.1:${await free()}`), /nothing listens there/);
  // The CLI: exit status 2 for bad input, with the reason.
  const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', cliMain, ...args], { cwd: repoRoot, encoding: 'utf8' });
  const gridFile = path.join(dir, 'g.json');
  fs.writeFileSync(gridFile, JSON.stringify(tinyGrid()));
  let r = cli(['sweep', gridFile, '--store', path.join(dir, 's.jsonl'), '--queue', 'http://x:1']);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /redis:\/\//);
  r = cli(['sweep', gridFile, '--store', path.join(dir, 's.jsonl'), '--queue', redis.url, '--jobs', '2']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /each worker sets its own/);
  r = cli(['worker']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--queue URL is required/);
  r = cli(['worker', '--queue', `redis://:wrong@127.0.0.1:${redis.port}`]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /refused the password/);
  assert.ok(!r.stderr.includes(':wrong@'));
});

test('TLS (rediss://): refused with advice when the CA is unknown; with NODE_EXTRA_CA_CERTS a sweep runs end to end', { timeout: 240_000 }, async (t) => {
  const dir = tmp('gmt-queue-tls-');
  const tls = makeTlsFiles(path.join(dir, 'pki'));
  const redis = await startRedis(path.join(dir, 'redis'), { password: 'tls-secret', tls });
  t.after(() => redis.stop());
  assert.ok(redis.url.startsWith('rediss://'));
  const small = tinyGrid({ name: 'queue-tls', seeds: [0] });
  const gridFile = path.join(dir, 'grid.json');
  fs.writeFileSync(gridFile, JSON.stringify(small));
  const store = path.join(dir, 'tls.jsonl');
  const sweepArgs = ['--import', 'tsx', cliMain, 'sweep', gridFile, '--store', store, '--queue', redis.url];
  const refused = spawnSync(process.execPath, sweepArgs, { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
  assert.equal(refused.status, 1, refused.stderr);
  assert.match(refused.stderr, /TLS to rediss:\/\/.*NODE_EXTRA_CA_CERTS/);
  const env = { NODE_EXTRA_CA_CERTS: tls.ca };
  const w = spawnWorker(redis.url, 'T', dir, env);
  t.after(() => {
    if (w.child.exitCode === null) w.child.kill('SIGKILL');
  });
  const ok = spawnSync(process.execPath, sweepArgs, { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  assert.equal(ok.status, 0, ok.stderr);
  const lines = linesByKey(store);
  assert.equal(lines.size, 2);
  assert.ok([...lines.values()].every((r) => r.length === 1 && r[0]!.status === 'done' && r[0]!.queue?.worker === 'T'));
  assert.ok(!ok.stderr.includes('tls-secret'), 'the password is not printed');
});

test('a worker whose inputs differ from the coordinator\'s (another task file) hands the run back and stops; a matching worker then makes it', { timeout: 240_000 }, async (t) => {
  const dir = tmp('gmt-queue-inputs-');
  const redis = await startRedis(path.join(dir, 'redis'));
  t.after(() => redis.stop());
  const task = path.join(dir, 'task.jsonl');
  const original = fs.readFileSync(path.join(repoRoot, 'data/samples/gsm8k.jsonl'), 'utf8');
  fs.writeFileSync(task, original);
  const small = tinyGrid({ name: 'queue-inputs', methods: ['sft'], tasks: [task], seeds: [0], base: { base: 'nano', steps: 3, warmup: 1, accum: 1, batchSize: 2, testSize: 2, valSize: 2, maxNewTokens: 8 } });
  const store = path.join(dir, 'queued.jsonl');
  let enqueued!: () => void;
  const ready = new Promise<void>((r) => (enqueued = r));
  const sweep = runSweep(small, { store, queue: redis.url, onProgress: (p) => p.queue && enqueued() });
  await ready;
  fs.writeFileSync(task, `${original.trimEnd()}\n${original.split('\n')[0]}\n`);
  const bad = spawnWorker(redis.url, 'B', dir);
  assert.equal(await bad.exit(), 1, bad.log());
  assert.match(bad.log(), /would be [0-9a-f]{32}: its inputs differ .*goes back to the queue and this worker stops/);
  const { context } = await planSweep(small);
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue<RunJobData, RunRecord>(queueName(context), { connection });
  t.after(async () => {
    await queue.close();
    connection.disconnect();
  });
  const [job] = await queue.getJobs(['waiting', 'delayed'], 0, -1);
  assert.ok(job, 'the run is back in the queue');
  assert.equal(job.attemptsMade, 0, 'handing back used no attempt');
  fs.writeFileSync(task, original);
  const good = spawnWorker(redis.url, 'G', dir);
  t.after(() => {
    if (good.child.exitCode === null) good.child.kill('SIGKILL');
  });
  const out = await sweep;
  assert.equal(out.failed, 0);
  const recs = [...out.records.values()];
  assert.equal(recs.length, 1);
  assert.equal(recs[0]!.status, 'done');
  assert.equal(recs[0]!.queue?.worker, 'G');
});
