/**
 * Runs a grid against a result store: every planned run the store lacks is executed (in
 * parallel worker processes, or in this process with `jobs: 0`), each record appended the
 * moment its run ends. Re-running skips every finished key, so an interrupted sweep resumes
 * where it stopped and a finished one returns at once. A failed run is recorded with its error
 * and the others go on; a worker that dies mid-run (killed, out of memory) fails that run and
 * is replaced.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend } from '../backend';
import { engineChoice, type EngineName } from '../backend/engine';
import { ConfigError, checkNumber, runMode, type RunMode } from '../util/config';
import { executeRun, provenance, type RunProgress } from './execute';
import { currentExecutionContext, expandGrid, gridForMode, resolveGrid, type ExecutionContext, type PlannedRun, type SweepGrid } from './grid';
import { lockStore } from './lock';
import { isFinal, ResultStore, type RunRecord } from './store';
import type { QueueProgress } from './queue';

/** Parent → worker. */
export type ParentMessage = { type: 'run'; run: PlannedRun; grid: string; jobs: number } | { type: 'cancel' };

/**
 * After a cancel, how long a worker may take to stop at an update boundary and send its partial
 * record (scoring the test set is not interruptible) before it is killed.
 */
export const CANCEL_GRACE_MS = 15_000;
/** Worker → parent. */
export type WorkerMessage =
  | { type: 'ready'; context: ExecutionContext }
  | { type: 'progress'; progress: RunProgress }
  | { type: 'record'; record: RunRecord };

/**
 * The parallel layout a sweep uses unless told otherwise: one single-threaded run per core
 * (measured on a 2-core machine against one run at a time on 2 threads; README, sweeps).
 */
export function defaultSweepLayout(cores = os.availableParallelism?.() ?? os.cpus().length): { jobs: number; threads: number } {
  return { jobs: Math.max(1, cores), threads: 1 };
}

/** Where a sweep stands; passed to `onProgress` whenever something changes. */
export interface SweepProgress {
  grid: string;
  /** Runs in the grid. */
  total: number;
  /** Finished before this sweep started (skipped). */
  skipped: number;
  /** Finished in this sweep, by status. */
  done: number;
  failed: number;
  diverged: number;
  cancelled: number;
  /** Runs in progress with their last reported update (and, on a queue, the worker running it). */
  running: { key: string; label: string; step: number; steps: number; loss?: number; worker?: string }[];
  /** Through a queue (`SweepOptions.queue`): what the queue holds and who works on it. */
  queue?: QueueProgress;
  elapsedMs: number;
  /**
   * Estimated time to the end: from this sweep's finished runs, or before the first from the
   * grid's stored runs made on this machine's gradient path; NaN when neither exists.
   */
  etaMs: number;
  /** The record just appended, if this call is about one. */
  last?: RunRecord;
}

/** Options of {@link runSweep}. */
export interface SweepOptions {
  /** The JSONL result store (path or store). */
  store: string | ResultStore;
  /** Runs in parallel: worker processes, or 0 to run in this process; default {@link defaultSweepLayout}. */
  jobs?: number;
  /** Data-parallel threads per run (`GMT_WORKERS` of each worker); default {@link defaultSweepLayout}. */
  threads?: number;
  /** Grid mode (`fast` uses the grid's `fast` block); default `GMT_MODE`. */
  mode?: RunMode;
  /** Run every planned run again, ignoring finished records (new records are appended). */
  fresh?: boolean;
  /**
   * Count as done only runs made in this exact execution context (same kernel build, ISA and
   * threads: the run key), not any run of the same experiment; for re-making a store's runs on
   * another build. The evidence still reads the last finished run of each experiment.
   */
  exact?: boolean;
  onProgress?: (p: SweepProgress) => void;
  /** Stops handing out runs; runs in progress stop at their next update and are stored as `cancelled` (partial records). */
  signal?: AbortSignal;
  /**
   * Stops handing out runs, gently: runs in progress finish and are stored; the rest stay missing
   * for a later sweep (`gmt-lab sweep --for`, SIGUSR1). Not with `queue`, whose runs are the workers'.
   */
  drain?: AbortSignal;
  /**
   * Make nothing: return what the store has and count the rest as missing (default
   * `GMT_STORE_ONLY=1`). For reading a partly made sweep without starting hours of runs.
   */
  storeOnly?: boolean;
  /**
   * A Redis URL (`redis://[:password@]host:port[/db]`, `rediss://` for TLS): enqueue the missing
   * runs there for `gmt-lab worker`s on any machine and collect their records into the store,
   * instead of running them here (see `sweep/queue.ts`). `jobs`/`threads` then do not apply;
   * the workers' own settings do.
   */
  queue?: string;
  /** With `queue`: attempts per run before it is recorded `failed` (default 3). */
  attempts?: number;
}

/** What {@link runSweep} returns. */
export interface SweepOutcome {
  grid: string;
  store: string;
  planned: PlannedRun[];
  /** By planned run key, the record that counts for its experiment, whichever build made it (absent where none was made). */
  records: Map<string, RunRecord>;
  /** Runs executed by this call and how they ended. */
  ran: number;
  skipped: number;
  failed: number;
  diverged: number;
  elapsedMs: number;
  /** True when `signal` stopped the sweep before every run was made. */
  cancelled: boolean;
  /** True when `drain` stopped the sweep from starting runs before every run was made. */
  drained: boolean;
  /** Planned runs without a finished record after this call (non-zero with `storeOnly` or failures). */
  missing: number;
}

function workerEntry(): { file: string; execArgv: string[] } {
  // Compiled: dist/sweep/worker-main.js. From sources (tests through tsx): the .ts file.
  const ts = __filename.endsWith('.ts');
  return { file: path.join(__dirname, ts ? 'worker-main.ts' : 'worker-main.js'), execArgv: ts ? ['--import', 'tsx'] : [] };
}

/** The environment of a sweep's worker processes: `threads` per run, on `engine` (default: this process's). */
function workerEnv(threads: number, engine?: EngineName): NodeJS.ProcessEnv {
  return { ...process.env, GMT_WORKERS: String(threads), ...(engine ? { GMT_ENGINE: engine } : {}) };
}

/** The execution context runs made with `threads` threads (on `engine`) would have in this process's setup. */
export async function sweepContext(threads: number, engine?: EngineName): Promise<ExecutionContext> {
  const report = await initBackend({ quiet: true });
  return currentExecutionContext(report.backend, workerEnv(threads, engine));
}

/** Plans a grid (file contents or object) without running anything. */
export async function planSweep(grid: SweepGrid | unknown, opts: { threads?: number; mode?: RunMode } = {}): Promise<{ grid: SweepGrid; context: ExecutionContext; runs: PlannedRun[] }> {
  const resolved = resolveGrid(grid);
  const threads = opts.threads ?? defaultSweepLayout().threads;
  const context = await sweepContext(threads, gridForMode(resolved, opts.mode ?? runMode()).engine);
  return { grid: resolved, context, runs: expandGrid(resolved, context, opts.mode ?? runMode()) };
}

/**
 * Runs the grid's missing runs and returns the records of all its runs. See the file comment;
 * taught in notebooks/02 (and used by every findings notebook and `gmt-lab sweep`).
 */
export async function runSweep(gridInput: SweepGrid | unknown, opts: SweepOptions): Promise<SweepOutcome> {
  const store = typeof opts.store === 'string' ? new ResultStore(opts.store) : opts.store;
  const layout = defaultSweepLayout();
  const jobs = checkNumber('sweep jobs', opts.jobs ?? layout.jobs, { min: 0, max: 64, integer: true });
  const threads = checkNumber('sweep threads', opts.threads ?? layout.threads, { min: 1, max: 8, integer: true });
  if (jobs === 0 && threads !== Number(process.env.GMT_WORKERS || 1)) {
    throw new ConfigError(`sweep: jobs 0 runs in this process, whose thread count is GMT_WORKERS (${process.env.GMT_WORKERS || 1}); threads ${threads} needs jobs ≥ 1`);
  }
  if (opts.queue !== undefined && opts.fresh) throw new ConfigError('sweep: fresh cannot be used with queue (workers return the runs they already made)');
  if (opts.queue !== undefined && opts.drain) throw new ConfigError('sweep: drain cannot be used with queue (the queued runs are the workers\', which go on with them)');
  const { grid, context, runs } = await planSweep(gridInput, { threads, mode: opts.mode });
  const engine = gridForMode(grid, opts.mode ?? runMode()).engine;
  const t0 = performance.now();
  const storeOnly = opts.storeOnly ?? process.env.GMT_STORE_ONLY === '1';
  // A run is done when its experiment has a finished record (any kernel build), or with
  // `exact` when the run itself has one.
  const idOf = (r: PlannedRun): string => (opts.exact ? r.key : r.experiment);
  const finishedIds = (): Set<string> => (opts.fresh ? new Set<string>() : opts.exact ? store.finishedKeys() : store.finishedExperiments());
  let finished = finishedIds();
  let todo = runs.filter((r) => !finished.has(idOf(r)));
  const progress: SweepProgress = { grid: grid.name, total: runs.length, skipped: runs.length - todo.length, done: 0, failed: 0, diverged: 0, cancelled: 0, running: [], elapsedMs: 0, etaMs: NaN };
  const durations: number[] = [];
  // Until a run of this sweep has finished, the estimate rests on the grid's stored runs made
  // on this machine's gradient path, at their pace (their run time over the jobs they shared).
  const storedRecords = store.byExperiment();
  const stored = storedRunTimes(runs.map((r) => storedRecords.get(r.experiment)), context.gradientPath);
  const storedEta = (left: number): number => (stored.timedHere ? gridTimeLeftMs({ missing: left, medianRunMs: stored.medianRunMs, jobs: stored.jobs }) : NaN);
  const emit = (last?: RunRecord): void => {
    progress.elapsedMs = performance.now() - t0;
    const left = todo.length - progress.done - progress.failed - progress.diverged - progress.cancelled;
    const parallel = Math.max(1, Math.min(progress.queue ? progress.running.length : jobs || 1, left));
    progress.etaMs = durations.length ? (left * (durations.reduce((a, b) => a + b, 0) / durations.length)) / parallel : left === 0 ? 0 : storeOnly ? NaN : storedEta(left);
    const queue = progress.queue && { ...progress.queue, workers: progress.queue.workers.map((w) => ({ ...w })) };
    opts.onProgress?.({ ...progress, running: progress.running.map((r) => ({ ...r })), ...(queue ? { queue } : {}), last });
  };
  const record = (r: RunRecord): void => {
    store.append(r);
    progress[r.status] += 1;
    if (r.timings) durations.push(r.timings.totalMs);
    progress.running = progress.running.filter((x) => x.key !== r.key);
    emit(r);
  };
  // One writer per store: a sweep with runs to make holds the store's lock (a second one is
  // refused, naming this one), and reads what is finished again under it.
  const lock = todo.length > 0 && !storeOnly ? lockStore(store.file) : undefined;
  if (lock && !opts.fresh) {
    finished = finishedIds();
    todo = runs.filter((r) => !finished.has(idOf(r)));
    progress.skipped = runs.length - todo.length;
  }
  let cancelled = false;
  try {
    emit();
    if (todo.length > 0 && !storeOnly) {
      if (opts.queue !== undefined) {
        const { collectFromQueue } = await import('./queue');
        cancelled = await collectFromQueue(todo, context, grid.name, { url: opts.queue, attempts: opts.attempts }, progress, record, emit, opts.signal);
      } else if (jobs === 0) cancelled = await runInProcess(todo, context, grid.name, progress, record, emit, opts.signal, engine, opts.drain);
      else cancelled = await runInWorkers(todo, context, grid.name, { jobs, threads, engine }, progress, record, emit, opts.signal, opts.drain);
    }
  } finally {
    lock?.release();
  }
  const byExperiment = store.byExperiment();
  const records = new Map<string, RunRecord>();
  for (const r of runs) {
    const rec = byExperiment.get(r.experiment);
    if (rec) records.set(r.key, rec);
  }
  return {
    grid: grid.name,
    store: store.file,
    planned: runs,
    records,
    ran: progress.done + progress.failed + progress.diverged + progress.cancelled,
    skipped: progress.skipped,
    failed: progress.failed,
    diverged: progress.diverged,
    elapsedMs: performance.now() - t0,
    cancelled,
    drained: !cancelled && (opts.drain?.aborted ?? false) && progress.done + progress.failed + progress.diverged + progress.cancelled < todo.length,
    missing: runs.filter((r) => !records.has(r.key) || !isFinal(records.get(r.key)!.status)).length,
  };
}

async function runInProcess(
  todo: PlannedRun[], context: ExecutionContext, grid: string, progress: SweepProgress,
  record: (r: RunRecord) => void, emit: () => void, signal?: AbortSignal, engine?: EngineName, drain?: AbortSignal,
): Promise<boolean> {
  const here = engineChoice().engine;
  if (engine !== undefined && engine !== here) {
    throw new ConfigError(`sweep: grid ${grid} runs on the ${engine} engine, but jobs 0 runs in this process, which uses the ${here} engine (set GMT_ENGINE=${engine}, or use jobs ≥ 1)`);
  }
  for (const run of todo) {
    if (signal?.aborted) return true;
    if (drain?.aborted) return false;
    progress.running = [{ key: run.key, label: run.label, step: 0, steps: run.config.steps }];
    emit();
    const r = await executeRun(run, context, {
      grid, jobs: 0, signal,
      onProgress: (p) => {
        progress.running = [{ key: run.key, label: run.label, step: p.step, steps: p.steps, loss: p.loss }];
        emit();
      },
    });
    record(r);
    if (signal?.aborted) return true;
  }
  return false;
}

function runInWorkers(
  todo: PlannedRun[], context: ExecutionContext, grid: string, layout: { jobs: number; threads: number; parallel?: number; engine?: EngineName; cancelGraceMs?: number }, progress: SweepProgress,
  record: (r: RunRecord) => void, emit: () => void, signal?: AbortSignal, drain?: AbortSignal,
): Promise<boolean> {
  const queue = [...todo];
  // Draining empties the queue: each worker finishes its run, finds nothing next and is let go.
  const onDrain = (): void => {
    queue.length = 0;
  };
  drain?.addEventListener('abort', onDrain);
  if (drain?.aborted) onDrain();
  const { file, execArgv } = workerEntry();
  const env = workerEnv(layout.threads, layout.engine);
  const live = new Set<ChildProcess>();
  const graceMs = layout.cancelGraceMs ?? CANCEL_GRACE_MS;
  return new Promise<boolean>((resolve, reject) => {
    let settled = false;
    let cancelling = false;
    let graceTimer: NodeJS.Timeout | undefined;
    let active = 0;
    const busy = new Map<ChildProcess, () => PlannedRun | undefined>();
    const finish = (cancelled: boolean, error?: Error): void => {
      if (settled) return;
      settled = true;
      if (graceTimer) clearTimeout(graceTimer);
      for (const w of live) w.kill('SIGKILL');
      signal?.removeEventListener('abort', onAbort);
      drain?.removeEventListener('abort', onDrain);
      if (error) reject(error);
      else resolve(cancelled);
    };
    // Cancel: each worker stops its run at the next update boundary and sends the partial
    // record; idle workers are let go; whoever has not stopped after the grace period is killed.
    const onAbort = (): void => {
      if (settled || cancelling) return;
      cancelling = true;
      queue.length = 0;
      for (const w of live) {
        if (busy.get(w)?.()) w.send({ type: 'cancel' } satisfies ParentMessage);
        else if (w.connected) w.disconnect();
      }
      if (active === 0) finish(true);
      graceTimer = setTimeout(() => {
        for (const w of live) w.kill('SIGKILL');
      }, graceMs);
      graceTimer.unref();
    };
    signal?.addEventListener('abort', onAbort);
    if (signal?.aborted) onAbort();

    const start = (): void => {
      if (settled || queue.length === 0) {
        if (active === 0) finish(cancelling);
        return;
      }
      active += 1;
      const worker = fork(file, [], { execArgv, env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'advanced' });
      live.add(worker);
      let current: PlannedRun | undefined;
      busy.set(worker, () => current);
      let stderr = '';
      worker.stderr?.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-4000);
      });
      const next = (): void => {
        current = queue.shift();
        if (!current) {
          if (worker.connected) worker.disconnect();
          return;
        }
        progress.running.push({ key: current.key, label: current.label, step: 0, steps: current.config.steps });
        emit();
        worker.send({ type: 'run', run: current, grid, jobs: layout.parallel ?? layout.jobs } satisfies ParentMessage);
      };
      worker.on('message', (m: WorkerMessage) => {
        if (settled) return;
        if (m.type === 'ready') {
          const same = m.context.gradientPath === context.gradientPath && m.context.backend === context.backend && m.context.kernelLib === context.kernelLib;
          if (!same) {
            finish(false, new Error(`sweep: a worker runs ${JSON.stringify(m.context)} but the runs were keyed for ${JSON.stringify(context)}`));
            return;
          }
          next();
        } else if (m.type === 'progress') {
          const r = progress.running.find((x) => x.key === m.progress.key);
          if (r) {
            r.step = m.progress.step;
            r.loss = m.progress.loss;
            emit();
          }
        } else if (m.type === 'record') {
          if (current && m.record.key === current.key) {
            current = undefined;
            record(m.record);
            next();
          }
        }
      });
      worker.on('exit', (code, sig) => {
        live.delete(worker);
        busy.delete(worker);
        active -= 1;
        if (settled) return;
        if (current) {
          // The worker died mid-run: that run fails (a re-run retries it); a fresh worker goes on.
          // During a cancel it was killed after the grace period: the run is cancelled.
          const run = current;
          current = undefined;
          const why = sig ? `signal ${sig}` : `exit status ${code}`;
          const tail = stderr.trim().split('\n').slice(-3).join(' | ');
          record({
            kind: 'gmt-lab/run', v: 1, key: run.key, status: cancelling ? 'cancelled' : 'failed', label: run.label, methodLabel: run.methodLabel, grid,
            config: run.config, inputs: { base: '' },
            error: { message: cancelling ? `cancelled; the worker did not stop within ${graceMs / 1000} s and was killed` : `the worker process ended (${why}) during the run${tail ? `: ${tail}` : ''}` },
            provenance: provenance(context, layout.parallel ?? layout.jobs),
          });
        } else if (code !== 0 && queue.length > 0 && stderr.includes('sweep worker:')) {
          finish(false, new Error(`sweep: a worker failed to start: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
          return;
        }
        start();
      });
    };
    for (let i = 0; i < Math.min(layout.jobs, queue.length); i++) start();
    if (queue.length === 0) finish(false);
  });
}

/**
 * Executes planned runs without a store (worker processes as in a sweep, or in this process with
 * `jobs: 0`) and resolves to their records in the order given. Used to re-make stored runs and
 * compare their weights (`npm run reproduce`'s check).
 */
export async function runPlanned(
  runs: readonly PlannedRun[],
  opts: {
    jobs?: number;
    threads?: number;
    grid?: string;
    /** Stops the runs at their next update (records then have status `cancelled`). */
    signal?: AbortSignal;
    /** Called as runs report their updates (about once a second per run). */
    onProgress?: (running: SweepProgress['running']) => void;
    /** `provenance.jobs` of the records: runs in parallel on this machine, if more than `jobs` (a queue worker's concurrency). */
    parallel?: number;
    /** The execution context, when the caller has it already. */
    context?: ExecutionContext;
    /** The engine the runs were planned on (their grid's `engine`). */
    engine?: EngineName;
    /** After `signal`, how long a run may take to stop before its process is killed (default {@link CANCEL_GRACE_MS}). */
    cancelGraceMs?: number;
  } = {},
): Promise<RunRecord[]> {
  const layout = defaultSweepLayout();
  const jobs = opts.jobs ?? Math.min(layout.jobs, runs.length);
  const threads = opts.threads ?? layout.threads;
  const context = opts.context ?? (await sweepContext(threads, opts.engine));
  const got = new Map<string, RunRecord>();
  const progress: SweepProgress = { grid: opts.grid ?? 'check', total: runs.length, skipped: 0, done: 0, failed: 0, diverged: 0, cancelled: 0, running: [], elapsedMs: 0, etaMs: NaN };
  const record = (r: RunRecord): void => {
    got.set(r.key, r);
    progress.running = progress.running.filter((x) => x.key !== r.key);
  };
  const emit = (): void => opts.onProgress?.(progress.running.map((r) => ({ ...r })));
  if (jobs === 0) await runInProcess([...runs], context, progress.grid, progress, record, emit, opts.signal, opts.engine);
  else await runInWorkers([...runs], context, progress.grid, { jobs, threads, parallel: opts.parallel, engine: opts.engine, cancelGraceMs: opts.cancelGraceMs }, progress, record, emit, opts.signal);
  return runs.map((r) => got.get(r.key)!);
}

/** One cell of {@link gridStatus}: a method label on a task, over its seeds. */
export interface GridStatusCell {
  method: string;
  task: string;
  planned: number;
  /** Runs with a final record (done or diverged). */
  finished: number;
  /** Runs whose latest record failed or was cancelled: a sweep makes them again. */
  failed: number;
  cancelled: number;
  /** planned − finished. */
  missing: number;
}

/** Where a grid stands in a store (`gmt-lab sweep GRID --status`). */
export interface GridStatus {
  grid: string;
  mode: RunMode;
  planned: number;
  finished: number;
  missing: number;
  cells: GridStatusCell[];
  /**
   * Median whole-run time of the grid's done runs made with this machine's gradient path (engine,
   * kernel build, threads), or of all its done runs when none was: the basis of the estimate.
   */
  medianRunMs: number | null;
  /** How many runs that median is over, and whether they were made with this gradient path. */
  timedRuns: number;
  timedHere: boolean;
  /** The median number of parallel jobs those runs shared the machine with (their `provenance.jobs`). */
  jobs: number | null;
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Where `grid` stands in `store`: planned, finished and missing runs per method label and task,
 * and the median time of its finished runs, from which `gmt-lab sweep --status` estimates what is
 * left. Runs count by experiment, as {@link runSweep} counts them (by run key with `exact`).
 */
export async function gridStatus(gridInput: SweepGrid | unknown, store: ResultStore | string, opts: { mode?: RunMode; exact?: boolean } = {}): Promise<GridStatus> {
  const st = typeof store === 'string' ? new ResultStore(store) : store;
  const mode = opts.mode ?? runMode();
  const { grid, context, runs } = await planSweep(gridInput, { mode });
  const latest = opts.exact ? st.latest() : st.byExperiment();
  const cells = new Map<string, GridStatusCell>();
  for (const r of runs) {
    const id = `${r.methodLabel}\u0000${r.config.task}`;
    const cell = cells.get(id) ?? { method: r.methodLabel, task: r.config.task, planned: 0, finished: 0, failed: 0, cancelled: 0, missing: 0 };
    cells.set(id, cell);
    cell.planned += 1;
    const rec = latest.get(opts.exact ? r.key : r.experiment);
    if (rec && isFinal(rec.status)) cell.finished += 1;
    else {
      cell.missing += 1;
      if (rec?.status === 'failed') cell.failed += 1;
      if (rec?.status === 'cancelled') cell.cancelled += 1;
    }
  }
  const timed = storedRunTimes(runs.map((r) => latest.get(opts.exact ? r.key : r.experiment)), context.gradientPath);
  const all = [...cells.values()];
  const finished = all.reduce((a, c) => a + c.finished, 0);
  return { grid: grid.name, mode, planned: runs.length, finished, missing: runs.length - finished, cells: all, ...timed };
}

/**
 * The timing part of {@link GridStatus} from the records of a grid's runs: the median whole-run
 * time of the done ones made with `gradientPath` (this machine's engine, kernel build and
 * threads), or of all done ones when none was, and the median number of jobs they shared the
 * machine with.
 */
function storedRunTimes(records: (RunRecord | undefined)[], gradientPath: string): Pick<GridStatus, 'medianRunMs' | 'timedRuns' | 'timedHere' | 'jobs'> {
  const timed = records.filter((r): r is RunRecord => r?.status === 'done' && Number.isFinite(r.timings?.totalMs));
  const here = timed.filter((r) => r.provenance.gradientPath === gradientPath);
  const use = here.length > 0 ? here : timed;
  return {
    medianRunMs: median(use.map((r) => r.timings!.totalMs)),
    timedRuns: use.length,
    timedHere: here.length > 0,
    jobs: median(use.map((r) => r.provenance.jobs ?? 1)),
  };
}

/**
 * How long the missing runs of {@link gridStatus} should take: their count × the median run time,
 * shared by as many parallel jobs as those runs had. NaN when nothing is timed yet; 0 when
 * nothing is missing.
 */
export function gridTimeLeftMs(s: Pick<GridStatus, 'missing' | 'medianRunMs' | 'jobs'>): number {
  if (s.missing === 0) return 0;
  if (s.medianRunMs === null) return NaN;
  return (s.missing * s.medianRunMs) / Math.max(1, Math.round(s.jobs ?? 1));
}

/**
 * Counts of a store by status, per grid and method label (`gmt-lab sweep --status`): one per
 * experiment (a run made again on another kernel build counts once).
 */
export function summarizeStore(store: ResultStore): { records: number; keys: number; bad: number; rows: { grid: string; method: string; task: string; done: number; failed: number; diverged: number; cancelled: number }[] } {
  const contents = store.read();
  const latest = store.byExperiment(contents);
  const rows = new Map<string, { grid: string; method: string; task: string; done: number; failed: number; diverged: number; cancelled: number }>();
  for (const r of latest.values()) {
    const id = `${r.grid}\u0000${r.methodLabel}\u0000${r.config.task}`;
    const row = rows.get(id) ?? { grid: r.grid, method: r.methodLabel, task: r.config.task, done: 0, failed: 0, diverged: 0, cancelled: 0 };
    row[r.status] += 1;
    rows.set(id, row);
  }
  return { records: contents.records.length, keys: latest.size, bad: contents.bad.length, rows: [...rows.values()] };
}
