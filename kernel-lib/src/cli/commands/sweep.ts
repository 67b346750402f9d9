/** `gmt-lab sweep`: run a grid of fine-tuning runs into a result store, or summarise a store. */
import { defaultSweepLayout, gridStatus, gridTimeLeftMs, runSweep, summarizeStore, type GridStatus, type SweepProgress } from '../../sweep/runner';
import { formatDuration, parseDuration } from '../../util/format';
import { EXAMPLE_GRID, loadGrid } from '../../sweep/grid';
import { ResultStore, type RunRecord } from '../../sweep/store';
import { runMode, type RunMode } from '../../util/config';
import { UsageError } from '../args';
import { interruptSignal } from '../../util/interrupt';
import { defineCommand } from '../command';
import { DEFAULT_ATTEMPTS, parseQueueUrl, queueStatus } from '../../sweep/queue';

/** How a run ended, for a line of its own: `done, accuracy 87.0%, 2m05s`, `FAILED: …`, `cancelled at update …`, `diverged at update …`. */
export function describeRecord(r: RunRecord): string {
  const acc = r.metrics?.testAccuracy;
  if (r.status === 'done') return `done${acc !== undefined ? `, accuracy ${(acc * 100).toFixed(1)}%` : ''}, ${formatDuration(r.timings?.totalMs ?? NaN)}`;
  if (r.status === 'failed') return `FAILED: ${r.error?.message}`;
  if (r.status === 'cancelled') return `cancelled${r.cancelled ? ` at update ${r.cancelled.step}/${r.cancelled.steps} (partial record kept; a re-run starts it again)` : ''}`;
  return `diverged at update ${r.diverged?.step}`;
}

/**
 * The one progress line: `sweep NAME: 12/40 finished (3 from the store), 1 failed, 0 diverged ·
 * … elapsed, ETA 5m10s · running: …`. Finished counts the runs the store now has for good (done
 * or diverged); a failed or cancelled run is counted apart, since a re-run makes it again.
 */
export function sweepProgressLine(p: SweepProgress): string {
  const finished = p.skipped + p.done + p.diverged;
  const running = p.running.map((r) => `${r.label} ${r.step}/${r.steps}${r.worker ? ` on ${r.worker}` : ''}`).join('; ');
  const q = p.queue;
  const queue = q
    ? ` · queue: ${q.waiting} waiting, ${q.active} active, workers: ${q.workers.length ? q.workers.map((w) => `${w.name} (${w.finished} finished)`).join(', ') : 'none connected'}` +
      `${q.readded ? `, ${q.readded} lost runs re-added` : ''}${q.error ? ` · ${q.error}` : ''}`
    : '';
  return `sweep ${p.grid}: ${finished}/${p.total} finished (${p.skipped} from the store), ${p.failed} failed, ${p.diverged} diverged${p.cancelled ? `, ${p.cancelled} cancelled` : ''}` +
    ` · ${formatDuration(p.elapsedMs)} elapsed, ETA ${formatDuration(p.etaMs)}${queue}${running ? ` · running: ${running}` : ''}`;
}

/**
 * `gmt-lab sweep GRID --status`: the grid's runs per method and task (finished of planned, and
 * any failed or cancelled), then what is left and how long it should take at the measured pace.
 */
export function gridStatusText(s: GridStatus, storeFile: string): string {
  const lines = [`${s.grid} (${s.mode} mode) in ${storeFile}: ${s.finished} of ${s.planned} runs finished, ${s.missing} missing`];
  const mw = Math.max(6, ...s.cells.map((c) => c.method.length));
  const tw = Math.max(4, ...s.cells.map((c) => c.task.length));
  lines.push(`  ${'method'.padEnd(mw)}  ${'task'.padEnd(tw)}  finished`);
  for (const c of s.cells) {
    const extra = [c.failed ? `${c.failed} failed` : '', c.cancelled ? `${c.cancelled} cancelled` : ''].filter(Boolean).join(', ');
    lines.push(`  ${c.method.padEnd(mw)}  ${c.task.padEnd(tw)}  ${`${c.finished}/${c.planned}`.padStart(8)}${c.missing === 0 ? '' : `  (${c.missing} missing${extra ? `: ${extra}` : ''})`}`);
  }
  if (s.missing === 0) lines.push('nothing left to run');
  else if (s.medianRunMs === null) lines.push(`${s.missing} runs left; no finished run of this grid to estimate their time from`);
  else {
    const jobs = Math.max(1, Math.round(s.jobs ?? 1));
    lines.push(
      `${s.missing} runs left: about ${formatDuration(gridTimeLeftMs(s))} with ${jobs} job${jobs > 1 ? 's' : ''} at a time, ` +
        `at the median of ${s.timedRuns} finished run${s.timedRuns > 1 ? 's' : ''} ${s.timedHere ? 'made with this machine\'s engine and build' : 'made on other builds or engines (none with this one yet)'} ` +
        `(${formatDuration(s.medianRunMs)} each, ${jobs} at a time)`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export default defineCommand({
  name: 'sweep',
  summary: 'Run a grid of fine-tuning runs into a result store (resumable), or summarise a store',
  description:
    'Runs every run of GRID.json that the store lacks, in parallel worker processes, appending one JSONL record per run. ' +
    'Re-running skips finished runs; failed runs are retried. --status summarises a store, or with GRID where that grid stands in it and how long the rest should take; --example prints a small grid to start from.',
  positionals: [{ name: 'grid', summary: 'grid file (JSON)', required: false }],
  options: {
    store: { type: 'string', summary: 'result store (JSONL file)', metavar: 'FILE' },
    jobs: { type: 'number', summary: `runs in parallel (0 = in this process; default ${defaultSweepLayout().jobs} here)`, min: 0, max: 64, integer: true },
    threads: { type: 'number', summary: 'data-parallel threads per run (default 1)', min: 1, max: 8, integer: true },
    mode: { type: 'string', summary: 'grid mode: full, or fast (the grid\'s "fast" block); default GMT_MODE or full', choices: ['fast', 'full'] },
    fresh: { type: 'boolean', summary: 'run everything again, ignoring finished records' },
    exact: { type: 'boolean', summary: 'count as done only runs made on this kernel build and thread count (by default a run of the same experiment on any build counts)' },
    status: { type: 'boolean', summary: 'summarise the store instead of running; with GRID, that grid\'s finished and missing runs per method and task and an estimate of the time left (with --queue and no --store: the queues on that Redis)' },
    example: { type: 'boolean', summary: 'print an example grid file and exit' },
    queue: { type: 'string', summary: 'enqueue the missing runs on this Redis (redis://[:password@]host:port, rediss:// for TLS) for gmt-lab workers and collect their records', metavar: 'URL' },
    attempts: { type: 'number', summary: `with --queue: attempts per run before it is recorded failed (default ${DEFAULT_ATTEMPTS})`, min: 1, max: 100, integer: true },
    for: { type: 'string', summary: 'start no run after this long (90m, 1h30m, 45s): the runs in progress finish and are stored, the rest wait for the next sweep; SIGUSR2 to this process does the same at once', metavar: 'DURATION' },
  },
  async run({ options: o, positionals }, io) {
    if (o.example) {
      io.stdout(`${JSON.stringify(EXAMPLE_GRID, null, 2)}\n`);
      return 0;
    }
    if (o.status && o.queue !== undefined && o.store === undefined) {
      const queues = await queueStatus(o.queue);
      if (queues.length === 0) io.stdout(`${parseQueueUrl(o.queue).shown}: no sweep has used this Redis yet\n`);
      for (const q of queues) {
        const c = q.counts;
        io.stdout(`${q.name}${q.grid ? ` (last grid: ${q.grid})` : ''}${q.context ? `, runs keyed for ${Object.values(q.context).join(', ')}` : ''}\n` +
          `  ${c.waiting} waiting, ${c.delayed} delayed, ${c.active} active, ${c.completed} finished not yet collected, ${c.failed} failed not yet collected; ` +
          `workers: ${q.workers.length ? q.workers.join(', ') : 'none connected'}\n`);
      }
      return 0;
    }
    if (o.store === undefined) throw new UsageError('--store FILE is required');
    const store = new ResultStore(o.store);
    if (o.status && positionals.length > 0) {
      const s = await gridStatus(loadGrid(positionals[0] as string), store, { mode: (o.mode as RunMode | undefined) ?? runMode(), exact: o.exact });
      io.stdout(gridStatusText(s, store.file));
      return 0;
    }
    if (o.status) {
      const s = summarizeStore(store);
      io.stdout(`${store.file}: ${s.records} records, ${s.keys} runs${s.bad ? `, ${s.bad} unreadable lines (skipped)` : ''}\n`);
      for (const r of s.rows) io.stdout(`  ${r.grid}  ${r.method}  ${r.task}: ${r.done} done, ${r.failed} failed, ${r.diverged} diverged${r.cancelled ? `, ${r.cancelled} cancelled` : ''}\n`);
      return 0;
    }
    if (positionals.length === 0) throw new UsageError('a grid file is required (or --status / --example)');
    const grid = loadGrid(positionals[0] as string);
    if (o.queue !== undefined) {
      if (o.fresh) throw new UsageError('--fresh cannot be used with --queue (workers return the runs they already made)');
      if (o.jobs !== undefined) throw new UsageError('--jobs does not apply with --queue: each worker sets its own (gmt-lab worker --jobs N)');
      if (o.for !== undefined) throw new UsageError('--for does not apply with --queue: the queued runs are the workers\'');
    } else if (o.attempts !== undefined) throw new UsageError('--attempts applies only with --queue');
    let forMs: number | undefined;
    try {
      forMs = o.for === undefined ? undefined : parseDuration(o.for, '--for');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const bad = store.read().bad;
    for (const b of bad) io.stderr(`gmt-lab sweep: ${store.file}:${b.line}: skipped (${b.reason})\n`);
    const stop = interruptSignal({ onSignal: (sig) => io.stderr(`gmt-lab sweep: ${sig}: ${o.queue !== undefined ? 'stopping the coordinator (queued and running runs stay with the workers)' : 'stopping the running runs at their next update'}\n`) });
    // Draining: no new run starts; those in progress finish and are stored.
    const drain = new AbortController();
    const startDrain = (why: string): void => {
      if (drain.signal.aborted) return;
      io.stderr(`gmt-lab sweep: ${why}: starting no more runs; the runs in progress finish and are stored\n`);
      drain.abort();
    };
    const timer = forMs === undefined ? undefined : setTimeout(() => startDrain(`--for ${o.for} is up`), forMs);
    const onUsr2 = (): void => startDrain('SIGUSR2');
    if (o.queue === undefined) process.on('SIGUSR2', onUsr2);
    let lastLine = 0;
    try {
      const outcome = await runSweep(grid, {
        store,
        jobs: o.jobs,
        threads: o.threads,
        mode: (o.mode as RunMode | undefined) ?? runMode(),
        fresh: o.fresh,
        exact: o.exact,
        queue: o.queue,
        attempts: o.attempts,
        signal: stop.signal,
        ...(o.queue === undefined ? { drain: drain.signal } : {}),
        onProgress: (p) => {
          if (p.last) {
            io.stderr(`  ${p.last.label}: ${describeRecord(p.last)}\n`);
          }
          const now = Date.now();
          if (p.last || now - lastLine > 10000 || p.running.length === 0) {
            lastLine = now;
            io.stderr(`${sweepProgressLine(p)}\n`);
          }
        },
      });
      io.stderr(`gmt-lab sweep: ${outcome.grid}: ${outcome.ran} run, ${outcome.skipped} already in ${outcome.store}, ${outcome.failed} failed, ${outcome.diverged} diverged, ${formatDuration(outcome.elapsedMs)}${outcome.cancelled ? ' (cancelled)' : ''}\n`);
      if (outcome.drained) io.stderr(`gmt-lab sweep: stopped starting runs; ${outcome.missing} of the grid's runs are missing, and the same command makes them\n`);
      if (o.queue !== undefined && outcome.cancelled) io.stderr(`gmt-lab sweep: ${outcome.missing} runs stay queued and the workers go on with them; the same command again collects their records\n`);
      return outcome.cancelled ? 130 : outcome.failed > 0 ? 1 : 0;
    } finally {
      stop.release();
      if (timer) clearTimeout(timer);
      process.removeListener('SIGUSR2', onUsr2);
    }
  },
});
