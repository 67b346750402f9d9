/**
 * Local sweep vs the same grid through the queue (a private redis-server on loopback), with one
 * and two `gmt-lab worker` processes of one run each. Prints the wall time of each layout, from
 * the coordinator's start to its last record, and checks that every layout made the same weights.
 *
 *   node --import tsx kernel-lib/test/bench/queue.bench.ts [runs=8] [steps=150] [preset=nano]
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ResultStore } from '../../src/sweep/store';
import { startRedis } from '../helpers/redis';
import { tinyGrid } from '../helpers/tiny-grid';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const cli = path.join(repoRoot, 'kernel-lib', 'dist', 'cli', 'main.js');

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 8);
  const steps = Number(process.argv[3] ?? 150);
  const preset = process.argv[4] ?? 'nano';
  if (!fs.existsSync(cli)) throw new Error('build kernel-lib first (npm run build)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-queue-bench-'));
  const grid = tinyGrid({ name: 'queue-bench', seeds: { count: runs / 2 }, base: { base: preset, steps, warmup: 1, accum: 1, batchSize: 4, testSize: 50, valSize: 20, maxNewTokens: 8 } });
  const gridFile = path.join(dir, 'grid.json');
  fs.writeFileSync(gridFile, JSON.stringify(grid));
  const weights = (store: string): string => [...new ResultStore(store).latest().values()].map((r) => `${r.key}=${r.weightsSha256}`).sort().join(',');
  const rows: { layout: string; seconds: number; perRun: number; same: boolean }[] = [];
  let reference = '';
  const timeIt = async (layout: string, go: (store: string) => Promise<void>): Promise<void> => {
    const store = path.join(dir, `${layout.replace(/\W+/g, '-')}.jsonl`);
    const t0 = performance.now();
    await go(store);
    const seconds = (performance.now() - t0) / 1000;
    const w = weights(store);
    reference ||= w;
    rows.push({ layout, seconds, perRun: seconds / runs, same: w === reference });
    process.stderr.write(`${layout}: ${seconds.toFixed(1)} s\n`);
  };
  const sweep = (store: string, extra: string[]): void => {
    const r = spawnSync(process.execPath, [cli, 'sweep', gridFile, '--store', store, ...extra], { cwd: repoRoot, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`sweep ${extra.join(' ')} failed: ${r.stderr.slice(-800)}`);
  };
  await timeIt('local, --jobs 1', async (s) => sweep(s, ['--jobs', '1']));
  await timeIt('local, --jobs 2', async (s) => sweep(s, ['--jobs', '2']));
  const redis = await startRedis(path.join(dir, 'redis'), { password: 'bench' });
  try {
    for (const workers of [1, 2]) {
      const procs = Array.from({ length: workers }, (_, i) =>
        spawn(process.execPath, [cli, 'worker', '--queue', redis.url, '--jobs', '1', '--no-cache', '--name', `w${i}`], { cwd: repoRoot, stdio: 'ignore' }));
      await new Promise((r) => setTimeout(r, 3000)); // workers connect (not timed: they wait for work)
      await timeIt(`queue, ${workers} worker${workers > 1 ? 's' : ''} × 1 run`, async (s) => sweep(s, ['--queue', redis.url]));
      for (const p of procs) p.kill('SIGTERM');
      await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))));
    }
  } finally {
    await redis.stop();
  }
  process.stdout.write(`\n${runs} runs of ${preset}, ${steps} updates each, on ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}\n\n`);
  process.stdout.write('| layout | wall time (s) | per run (s) | same weights as local --jobs 1 |\n|---|---|---|---|\n');
  for (const r of rows) process.stdout.write(`| ${r.layout} | ${r.seconds.toFixed(1)} | ${r.perRun.toFixed(2)} | ${r.same ? 'yes' : 'NO'} |\n`);
  if (rows.some((r) => !r.same)) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
