/**
 * One store, one writer at a time: a second sweep (local or a queue's coordinator) started on a
 * store that a sweep is writing is refused, naming the first; a lock left by a crashed sweep
 * (kill -9) never blocks the next one; stale locks are taken over by exactly one of several
 * sweeps racing for them. Real processes (`gmt-lab sweep` as users start it), real signals, a
 * real redis-server.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LOCK_STALE_MS, lockStore, StoreBusyError, type StoreLockHolder } from '../src/sweep/lock';
import { planSweep, runSweep } from '../src/sweep/runner';
import type { RunRecord } from '../src/sweep/store';
import { startRedis } from './helpers/redis';
import { tinyGrid } from './helpers/tiny-grid';

const repoRoot = path.resolve(__dirname, '..', '..');
const cliMain = path.join(repoRoot, 'kernel-lib/src/cli/main.ts');
const holderScript = path.join(__dirname, 'helpers', 'lock-holder.ts');
const tmp = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Three runs of several seconds each. */
const grid = tinyGrid({ name: 'store-lock', methods: ['sft'], seeds: [0, 1, 2], base: { base: 'nano', steps: 600, warmup: 1, accum: 1, batchSize: 4, testSize: 4, valSize: 4, maxNewTokens: 8 } });

interface Sweep {
  child: ChildProcess;
  log(): string;
  waitFor(re: RegExp, ms: number): Promise<void>;
  exit: Promise<number | null>;
}

function startSweep(gridFile: string, store: string, extra: string[] = []): Sweep {
  const child = spawn(process.execPath, ['--import', 'tsx', cliMain, 'sweep', gridFile, '--store', store, ...extra], { cwd: repoRoot, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  child.stderr?.on('data', (d: Buffer) => {
    text += d.toString();
  });
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    log: () => text,
    async waitFor(re, ms) {
      const deadline = Date.now() + ms;
      while (!re.test(text)) {
        if (Date.now() > deadline) throw new Error(`no ${re} within ${ms} ms:\n${text}`);
        if (child.exitCode !== null) throw new Error(`exited (${child.exitCode}) before ${re}:\n${text}`);
        await sleep(50);
      }
    },
    exit,
  };
}

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  try {
    process.kill(-(child.pid as number), sig);
  } catch {
    /* gone */
  }
}

/** Raw store lines by key. */
function linesByKey(file: string): Map<string, RunRecord[]> {
  const out = new Map<string, RunRecord[]>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const r = JSON.parse(line) as RunRecord;
    out.set(r.key, [...(out.get(r.key) ?? []), r]);
  }
  return out;
}

test('a second sweep on a store being written is refused naming the first; after kill -9 of the first the next sweep takes the store at once; every run once', { timeout: 300_000 }, async (t) => {
  const dir = tmp('gmt-store-lock-');
  const gridFile = path.join(dir, 'grid.json');
  fs.writeFileSync(gridFile, JSON.stringify(grid));
  const store = path.join(dir, 'store.jsonl');
  const first = startSweep(gridFile, store, ['--jobs', '1']);
  t.after(() => killGroup(first.child, 'SIGKILL'));
  // It has planned and holds the store (the lock is taken once there are runs to make).
  const deadline = Date.now() + 60_000;
  while (!fs.existsSync(`${store}.lock`) && first.child.exitCode === null && Date.now() < deadline) await sleep(50);
  const lock = JSON.parse(fs.readFileSync(`${store}.lock`, 'utf8')) as StoreLockHolder;
  assert.equal(lock.pid, first.child.pid, 'the lock names the sweep process');

  const second = startSweep(gridFile, store, ['--jobs', '1']);
  assert.equal(await second.exit, 1, second.log());
  const refusal = second.log().trim();
  assert.equal(refusal.split('\n').length, 1, `one line:\n${refusal}`);
  assert.match(refusal, new RegExp(`gmt-lab sweep: error: the store ${store.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by another sweep: pid ${first.child.pid} on this machine, since \\S+: .*sweep .*grid\\.json --store .*store\\.jsonl --jobs 1\\. Two sweeps on one store are not supported .*kill -INT ${first.child.pid}`));
  assert.equal(first.child.exitCode, null, 'the first sweep goes on');

  // The first dies without a chance to clean up.
  await first.waitFor(/seed 0: done/, 120_000);
  killGroup(first.child, 'SIGKILL');
  await first.exit;
  assert.ok(fs.existsSync(`${store}.lock`), 'kill -9 left its lock file behind');
  const third = startSweep(gridFile, store, ['--jobs', '1']);
  t.after(() => killGroup(third.child, 'SIGKILL'));
  assert.equal(await third.exit, 0, third.log());
  assert.match(third.log(), /1 already in/);
  assert.ok(!fs.existsSync(`${store}.lock`), 'the lock is released at the end');
  const lines = linesByKey(store);
  const { runs } = await planSweep(grid);
  assert.deepEqual([...lines.keys()].sort(), runs.map((r) => r.key).sort(), 'every run is in the store');
  for (const [key, recs] of lines) assert.deepEqual(recs.map((r) => r.status), ['done'], `run ${key}: once, done`);
});

test('a local sweep on a store whose queue coordinator is running is refused naming the coordinator; stopped with SIGINT, the coordinator gives the store back', { timeout: 180_000 }, async (t) => {
  const dir = tmp('gmt-store-lock-queue-');
  const redis = await startRedis(path.join(dir, 'redis'));
  t.after(() => redis.stop());
  const gridFile = path.join(dir, 'grid.json');
  fs.writeFileSync(gridFile, JSON.stringify(grid));
  const store = path.join(dir, 'store.jsonl');
  const coordinator = startSweep(gridFile, store, ['--queue', redis.url]);
  t.after(() => killGroup(coordinator.child, 'SIGKILL'));
  await coordinator.waitFor(/queue: 3 waiting/, 60_000);
  const local = startSweep(gridFile, store, ['--jobs', '1']);
  assert.equal(await local.exit, 1, local.log());
  assert.match(local.log(), new RegExp(`is in use by another sweep: pid ${coordinator.child.pid} on this machine.*--queue redis://127\\.0\\.0\\.1:${redis.port}`));
  const otherCoordinator = startSweep(gridFile, store, ['--queue', redis.url]);
  assert.equal(await otherCoordinator.exit, 1, otherCoordinator.log());
  assert.match(otherCoordinator.log(), /is in use by another sweep/);
  killGroup(coordinator.child, 'SIGINT');
  assert.equal(await coordinator.exit, 130, coordinator.log());
  assert.ok(!fs.existsSync(`${store}.lock`), 'a stopped coordinator releases the store');
});

test('lockStore: stale locks (dead pid, reused pid, rebooted machine, another machine not refreshed, empty file) are taken over; live ones are refused, naming the holder', () => {
  const dir = tmp('gmt-store-lock-unit-');
  const store = path.join(dir, 'store.jsonl');
  const lockFile = `${store}.lock`;
  const write = (h: Partial<StoreLockHolder>, ageMs = 0): void => {
    const base: StoreLockHolder = { pid: process.pid, host: os.hostname(), procStart: null, boot: null, since: '2025-01-01T00:00:00.000Z', command: 'node sweep other.json' };
    fs.writeFileSync(lockFile, JSON.stringify({ ...base, ...h }));
    const at = new Date(Date.now() - ageMs);
    fs.utimesSync(lockFile, at, at);
  };
  const takes = (what: string): void => {
    const lock = lockStore(store);
    assert.equal(lock.holder.pid, process.pid, what);
    assert.equal(JSON.parse(fs.readFileSync(lockFile, 'utf8')).pid, process.pid, what);
    lock.release();
    assert.ok(!fs.existsSync(lockFile), `${what}: released`);
  };
  const refused = (pattern: RegExp, what: string): void => {
    assert.throws(() => lockStore(store), (e: Error) => e instanceof StoreBusyError && pattern.test(e.message), what);
  };
  // A pid that existed and is gone.
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  write({ pid: Number(gone.stdout) });
  takes('a dead pid');
  // A live pid whose process started at another time: the pid was reused.
  const ownStart = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[19];
  write({ pid: process.pid, procStart: String(Number(ownStart) + 1) });
  takes('a reused pid');
  write({ pid: process.pid, boot: 'another-boot' });
  takes('a rebooted machine');
  // Live: this very process, at its real start time.
  write({ pid: process.pid, procStart: ownStart });
  refused(new RegExp(`in use by another sweep: this process \\(pid ${process.pid}\\), since 2025-01-01T00:00:00.000Z: node sweep other.json`), 'a live holder');
  // Another machine: live while refreshed, stale after LOCK_STALE_MS.
  write({ pid: 4242, host: 'gpu-box' }, 5_000);
  refused(/in use by another sweep: pid 4242 on gpu-box \(lock refreshed 5 s ago\)/, 'another machine, refreshed');
  write({ pid: 4242, host: 'gpu-box' }, LOCK_STALE_MS + 5_000);
  takes('another machine, not refreshed');
  // Created and never written (its writer died in between), a while ago.
  fs.writeFileSync(lockFile, '');
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(lockFile, old, old);
  takes('an empty lock file');
  // A store whose folder does not exist yet (a first sweep into build/…).
  const fresh = lockStore(path.join(dir, 'not', 'yet', 'store.jsonl'));
  assert.ok(fs.existsSync(path.join(dir, 'not', 'yet', 'store.jsonl.lock')));
  fresh.release();
  // Releasing never removes someone else's lock.
  const mine = lockStore(store);
  write({ pid: 4242, host: 'gpu-box' });
  mine.release();
  assert.ok(fs.existsSync(lockFile), 'a release leaves a lock that is not its own');
});

test('eight processes racing for a stale lock: exactly one takes it, the others are refused naming it', { timeout: 120_000 }, async () => {
  for (const round of [0, 1]) {
    const dir = tmp('gmt-store-lock-race-');
    const store = path.join(dir, 'store.jsonl');
    const go = path.join(dir, 'go');
    // Round 0 races for a stale lock (a dead pid's), round 1 for a free store.
    if (round === 0) fs.writeFileSync(`${store}.lock`, JSON.stringify({ pid: 999_999_999, host: os.hostname(), procStart: null, boot: null, since: 'then', command: 'dead' }));
    const children = Array.from({ length: 8 }, () => spawn(process.execPath, ['--import', 'tsx', holderScript, store, go, '3000'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const outputs = children.map((c) => new Promise<string>((r) => {
      let out = '';
      c.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      c.stderr?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      c.once('exit', () => r(out));
    }));
    // Every process loaded and waiting for the go.
    const ready = Date.now() + 60_000;
    while (fs.readdirSync(dir).filter((f) => f.startsWith('go.ready-')).length < 8 && Date.now() < ready) await sleep(50);
    fs.writeFileSync(go, '');
    const results = await Promise.all(outputs);
    const got = results.filter((o) => o.startsWith('got'));
    assert.equal(got.length, 1, `round ${round}: one winner:\n${results.join('')}`);
    assert.equal(results.filter((o) => o.startsWith('busy: the store')).length, 7, results.join(''));
    assert.ok(!fs.existsSync(`${store}.lock`) && !fs.existsSync(`${store}.lock.steal`), 'no lock or steal file is left');
  }
});

test('two sweeps in one process (a notebook running a cell twice): the second is refused naming this process; a store-only read is not', { timeout: 120_000 }, async () => {
  const dir = tmp('gmt-store-lock-inproc-');
  const store = path.join(dir, 'results', 'store.jsonl'); // a folder the first sweep makes
  const small = tinyGrid({ name: 'store-lock-inproc', seeds: [0] });
  const first = runSweep(small, { store, jobs: 1 });
  const deadline = Date.now() + 60_000;
  while (!fs.existsSync(`${store}.lock`) && Date.now() < deadline) await sleep(20);
  assert.ok(fs.existsSync(`${store}.lock`), 'the first sweep holds the store');
  await assert.rejects(runSweep(small, { store, jobs: 1 }), (e: Error) => e instanceof StoreBusyError && /in use by another sweep: this process/.test(e.message));
  const reading = await runSweep(small, { store, storeOnly: true });
  assert.equal(reading.ran, 0);
  const out = await first;
  assert.equal(out.ran, 2);
  assert.ok(!fs.existsSync(`${store}.lock`));
  const again = await runSweep(small, { store, jobs: 1 });
  assert.equal(again.ran, 0, 'a sweep with nothing to make takes no lock and makes nothing');
});
