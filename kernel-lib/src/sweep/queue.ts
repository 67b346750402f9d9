/**
 * Sweeps across machines on BullMQ (Redis). The coordinator (`gmt-lab sweep … --queue URL`, or
 * `runSweep(grid, { queue })`) enqueues every run its store lacks, with the run key as the job
 * id, and appends each record the workers hand back to its store, once. Workers
 * (`gmt-lab worker --queue URL`) on any machine pull runs and execute them with the sweep's own
 * code (`runPlanned`: a forked worker process running `executeRun`).
 *
 * Faults, and what takes care of them:
 * - a worker killed mid-run: its job's lock expires and BullMQ's stalled-job check hands the run
 *   to another worker (`stallMs` later, at most twice before the run fails);
 * - a run that fails: retried with backoff, then recorded `failed` with its error after
 *   `attempts` tries (a later sweep retries it, as a local sweep does);
 * - the coordinator restarted: finished jobs stay in Redis until their record is in the store,
 *   so the next coordinator collects them;
 * - Redis restarted, even with its data lost: the store already holds every collected run; the
 *   coordinator re-adds runs Redis no longer knows, and each worker keeps its own records in a
 *   local cache store, so a run whose hand-back was lost is returned again without training.
 *
 * Runs are keyed by their execution context (kernel-lib version, backend, gradient path), so the
 * queue's name is derived from it: a worker only ever sees runs it would make identically.
 * One coordinator per store.
 */
import { createHash } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { ConfigError, checkNumber } from '../util/config';
import { provenance } from './execute';
import { canonicalJson, inputDigests, runKey, type ExecutionContext, type PlannedRun } from './grid';
import { defaultSweepLayout, runPlanned, sweepContext, type SweepProgress } from './runner';
import { isFinal, ResultStore, type RunRecord } from './store';

/** Redis hash naming each queue's execution context, so a worker can say why it sees no runs. */
const REGISTRY_KEY = 'gmt-lab:queues';
/** How often the coordinator looks at the queue. */
const POLL_MS = 1000;
/** How often it checks that Redis still knows every pending run (after a Redis restart it may not). */
const MISSING_CHECK_MS = 10_000;
/** Default attempts per run. */
export const DEFAULT_ATTEMPTS = 3;
/** Default lock/stall timeout of a worker's runs. */
export const DEFAULT_STALL_MS = 30_000;
/**
 * Default bound on a worker's stop: from SIGINT/SIGTERM (its `signal`) to the end of
 * {@link runQueueWorker}, whatever Redis does. Runs in progress get all but the last 5 s of it
 * to stop at an update boundary (then their processes are killed); what is not handed back by
 * the end is left to the stall timeout, as after a kill -9.
 */
export const DEFAULT_STOP_MS = 20_000;
/** The end of the stop bound kept for handing runs back (through Redis) and closing the connections. */
const STOP_HANDBACK_MS = 5_000;
/** The end of the stop bound kept for closing the connections. */
const STOP_CLOSE_MS = 2_000;

/** What the coordinator's progress says about the queue (`SweepProgress.queue`). */
export interface QueueProgress {
  /** The queue's name (derived from the execution context). */
  name: string;
  /** The Redis URL without its password. */
  url: string;
  /** Jobs waiting (including delayed retries) and running, over the whole queue. */
  waiting: number;
  active: number;
  /** Workers connected to the queue, by name, with the runs each finished in this sweep. */
  workers: { name: string; finished: number }[];
  /** Runs Redis had lost and were added again. */
  readded: number;
  /** Set while Redis cannot be reached (the coordinator keeps trying). */
  error?: string;
}

/** What a job carries: the planned run and its grid; `lastRecord` is the last failed attempt's record. */
export interface RunJobData {
  run: PlannedRun;
  grid: string;
  lastRecord?: RunRecord;
}

/** A Redis URL, checked: `redis://[user][:password@]host[:port][/db]` or `rediss://` (TLS). */
export interface QueueUrl {
  url: string;
  /** The URL with the password replaced by `***`, for messages. */
  shown: string;
  tls: boolean;
  host: string;
  port: number;
}

/** Checks a queue URL; throws a {@link ConfigError} naming what is wrong. */
export function parseQueueUrl(url: string): QueueUrl {
  if (typeof url !== 'string' || url.trim() === '') throw new ConfigError('queue: a Redis URL is required (redis://host:port, rediss:// for TLS)');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(`queue: not a URL: ${JSON.stringify(url.replace(/:[^:@/]*@/, ':***@'))} (expected redis://[:password@]host:port)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new ConfigError(`queue: the URL must start with redis:// or rediss:// (TLS), got ${u.protocol}//`);
  if (!u.hostname) throw new ConfigError('queue: the URL names no host (redis://host:port)');
  const port = u.port ? Number(u.port) : 6379;
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new ConfigError(`queue: the URL's path must be a database number (/0 … /15), got /${db}`);
  const shownUrl = new URL(url);
  if (shownUrl.password) shownUrl.password = '***';
  return { url, shown: shownUrl.toString(), tls: u.protocol === 'rediss:', host: u.hostname, port };
}

/** The queue a context's runs go to: `gmt-lab-runs-` and 12 hex digits of the context's hash. */
export function queueName(context: ExecutionContext): string {
  return `gmt-lab-runs-${createHash('sha256').update(canonicalJson(context)).digest('hex').slice(0, 12)}`;
}

function explainConnectError(e: unknown, where: QueueUrl): string {
  const err = e as { code?: string; message?: string };
  const msg = err.message ?? String(e);
  if (/NOAUTH/.test(msg)) return `Redis at ${where.shown} asks for a password; put it in the URL: redis://:PASSWORD@${where.host}:${where.port}`;
  if (/WRONGPASS|invalid password|invalid username-password/i.test(msg)) return `Redis at ${where.shown} refused the password in the URL (${msg.trim()})`;
  if (err.code === 'ECONNREFUSED') return `cannot reach Redis at ${where.shown}: nothing listens there (connection refused)`;
  if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') return `cannot reach Redis at ${where.shown}: unknown host ${where.host}`;
  if (/certificate|self.signed|SSL|TLS/i.test(msg)) return `TLS to ${where.shown} failed: ${msg.trim()} (a server certificate signed by your own CA: set NODE_EXTRA_CA_CERTS to the CA file)`;
  if (/timeout|ETIMEDOUT/i.test(msg)) return `cannot reach Redis at ${where.shown}: no answer within 5 s (firewall? TLS port reached with redis:// or the other way round?)`;
  return `cannot use Redis at ${where.shown}: ${msg.trim()}`;
}

/**
 * Connects once, without retrying, to check the URL, the password and the TLS setup; resolves to
 * the server's version or throws an error that says what to fix.
 */
export async function checkQueue(url: string): Promise<{ version: string; url: QueueUrl }> {
  const where = parseQueueUrl(url);
  const { Redis } = await import('ioredis');
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 5000, enableOfflineQueue: false });
  let lastError: unknown;
  client.on('error', (e) => {
    lastError = e;
  });
  try {
    await client.connect();
    const info = await client.info('server');
    return { version: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown', url: where };
  } catch (e) {
    throw new Error(explainConnectError(lastError && !(e as Error).message?.includes('NOAUTH') && !(e as Error).message?.includes('WRONGPASS') ? lastError : e, where));
  } finally {
    client.disconnect();
  }
}

/** A long-lived connection: reconnects for ever (a Redis restart is waited out), as BullMQ requires. */
async function openConnection(url: string, name: string): Promise<Redis> {
  const { Redis } = await import('ioredis');
  const client = new Redis(url, { maxRetriesPerRequest: null, connectionName: name.replace(/\s+/g, '-'), retryStrategy: (n) => Math.min(200 * n, 2000) });
  client.on('error', () => undefined); // reported through the callers' own error paths
  return client;
}

/** Worker names from `Queue.getWorkers()`: BullMQ names a worker's connection `<prefix>:<queue, base64>:w:<name>`. */
function workerNames(clients: readonly Record<string, unknown>[]): string[] {
  return clients.map((w) => /:w:(.+)$/.exec(String(w.rawname ?? ''))?.[1]).filter((n): n is string => n !== undefined);
}

function jobOptions(run: PlannedRun, attempts: number) {
  return { jobId: run.key, attempts, backoff: { type: 'exponential' as const, delay: 2000 }, removeOnComplete: false, removeOnFail: false };
}

/**
 * Adds the runs the queue does not hold yet (job id = run key, so adding twice adds nothing);
 * a run that failed in an earlier sweep is replaced by a fresh job. Resolves to how many were added.
 */
export async function enqueueRuns(queue: Queue<RunJobData, RunRecord>, runs: readonly PlannedRun[], grid: string, attempts = DEFAULT_ATTEMPTS): Promise<{ added: number; present: number }> {
  const add: PlannedRun[] = [];
  let present = 0;
  for (const run of runs) {
    const state = await queue.getJobState(run.key);
    if (state === 'failed') await (await queue.getJob(run.key))?.remove();
    if (state === 'unknown' || state === 'failed') add.push(run);
    else present += 1;
  }
  for (let i = 0; i < add.length; i += 500) {
    await queue.addBulk(add.slice(i, i + 500).map((run) => ({ name: run.label, data: { run, grid }, opts: jobOptions(run, attempts) })));
  }
  return { added: add.length, present };
}

/** A record without its store digest (the store writes a fresh one when it appends). */
function withoutDigest(r: RunRecord): RunRecord {
  const { digest: _d, ...body } = r;
  return body as RunRecord;
}

/** The record a finished job hands back, checked; a failed record when it is not one. */
function returnedRecord(job: Job<RunJobData, RunRecord>, context: ExecutionContext, grid: string): RunRecord {
  const r = job.returnvalue as RunRecord | undefined;
  if (r && r.kind === 'gmt-lab/run' && r.key === job.id && isFinal(r.status)) {
    return withoutDigest(r);
  }
  return failedRecord(job, context, grid, 'the worker handed back no valid record');
}

function failedRecord(job: Job<RunJobData, RunRecord>, context: ExecutionContext, grid: string, why?: string): RunRecord {
  const attempts = `after ${job.attemptsMade} attempt${job.attemptsMade === 1 ? '' : 's'}`;
  const last = job.data.lastRecord;
  if (last && !why) {
    return { ...withoutDigest(last), status: 'failed', error: { message: `${last.error?.message ?? job.failedReason} (${attempts})` } } as RunRecord;
  }
  const { run } = job.data;
  return {
    kind: 'gmt-lab/run', v: 1, key: run.key, status: 'failed', label: run.label, methodLabel: run.methodLabel, grid,
    config: run.config, inputs: { base: '' },
    error: { message: `${why ?? job.failedReason ?? 'failed'} (${attempts})` },
    provenance: provenance(context, 0),
    ...(job.processedBy ? { queue: { worker: job.processedBy, attempt: job.attemptsMade } } : {}),
  };
}

/** Resolves true when `promise` settles within `ms`, false otherwise (its timer cleared either way). */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), Math.max(0, ms));
    promise.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

/** `promise`, or a rejection as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error('stopped'));
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done);
  });

/**
 * The coordinator's side of `runSweep(…, { queue })`: enqueues `todo` and hands each record the
 * workers return to `record` (which appends it to the store), exactly once per run. Resolves to
 * true when `signal` stopped it before every run came back (the runs stay queued; the same sweep
 * started again collects them).
 */
export async function collectFromQueue(
  todo: readonly PlannedRun[], context: ExecutionContext, grid: string, opts: { url: string; attempts?: number },
  progress: SweepProgress, record: (r: RunRecord) => void, emit: () => void, signal?: AbortSignal,
): Promise<boolean> {
  const attempts = checkNumber('queue attempts', opts.attempts ?? DEFAULT_ATTEMPTS, { min: 1, max: 100, integer: true });
  const { url } = await checkQueue(opts.url);
  const { Queue } = await import('bullmq');
  const connection = await openConnection(opts.url, 'gmt-lab coordinator');
  const name = queueName(context);
  const queue = new Queue<RunJobData, RunRecord>(name, { connection });
  queue.on('error', () => undefined);
  const q: QueueProgress = { name, url: url.shown, waiting: 0, active: 0, workers: [], readded: 0 };
  progress.queue = q;
  const pending = new Map(todo.map((r) => [r.key, r]));
  const finishedBy = new Map<string, number>();
  let lastMissingCheck = performance.now();
  // Commands wait (they are not failed) while Redis is away; the connection's events say so.
  connection.on('reconnecting', () => {
    q.error = `lost the connection to Redis at ${url.shown}; reconnecting`;
    emit();
  });
  connection.on('ready', () => {
    if (q.error === undefined) return;
    delete q.error;
    lastMissingCheck = -Infinity; // Redis may have come back without its data
    emit();
  });
  try {
    await connection.hset(REGISTRY_KEY, name, JSON.stringify({ context, grid, updated: new Date().toISOString() }));
    await enqueueRuns(queue, todo, grid, attempts);
    let lastWorkers = -Infinity;
    let connected = new Set<string>();
    while (pending.size > 0 && !signal?.aborted) {
      try {
        const [completed, failed, active, counts] = await Promise.all([
          queue.getJobs(['completed'], 0, -1),
          queue.getJobs(['failed'], 0, -1),
          queue.getJobs(['active'], 0, -1),
          queue.getJobCounts('waiting', 'delayed', 'prioritized', 'active'),
        ]);
        for (const job of [...completed, ...failed]) {
          if (!job?.id || !pending.has(job.id)) continue;
          const rec = job.finishedOn && job.returnvalue !== undefined && job.returnvalue !== null ? returnedRecord(job, context, grid) : failedRecord(job, context, grid);
          pending.delete(job.id);
          record(rec);
          const by = rec.queue?.worker ?? job.processedBy ?? '?';
          finishedBy.set(by, (finishedBy.get(by) ?? 0) + 1);
          await job.remove().catch(() => undefined);
        }
        q.waiting = (counts.waiting ?? 0) + (counts.delayed ?? 0) + (counts.prioritized ?? 0);
        q.active = counts.active ?? 0;
        progress.running = active
          .filter((j) => j?.id && pending.has(j.id))
          .map((j) => {
            const run = pending.get(j.id as string) as PlannedRun;
            const p = (typeof j.progress === 'object' && j.progress ? j.progress : {}) as { step?: number; loss?: number };
            return { key: run.key, label: run.label, step: p.step ?? 0, steps: run.config.steps, loss: p.loss, worker: j.processedBy };
          });
        if (performance.now() - lastWorkers > 5000) {
          lastWorkers = performance.now();
          const workers = await queue.getWorkers();
          connected = new Set(workerNames(workers));
        }
        q.workers = [...new Set([...connected, ...finishedBy.keys()])].filter((n) => n !== '?').sort().map((n) => ({ name: n, finished: finishedBy.get(n) ?? 0 }));
        // After a Redis restart that lost its data, pending runs may be unknown to it: add them again.
        if (performance.now() - lastMissingCheck > MISSING_CHECK_MS) {
          lastMissingCheck = performance.now();
          const activeIds = new Set(active.map((j) => j?.id));
          const lost: PlannedRun[] = [];
          for (const run of pending.values()) if (!activeIds.has(run.key) && (await queue.getJobState(run.key)) === 'unknown') lost.push(run);
          if (lost.length) {
            await enqueueRuns(queue, lost, grid, attempts);
            q.readded += lost.length;
          }
        }
        if (q.error?.startsWith('Redis at')) delete q.error;
      } catch (e) {
        q.error ??= `Redis at ${url.shown}: ${(e as Error).message}; retrying`;
      }
      emit();
      if (pending.size > 0) await sleep(POLL_MS, signal);
    }
  } finally {
    await queue.close().catch(() => undefined);
    connection.disconnect();
  }
  return pending.size > 0;
}

/** What a queue worker reports (`runQueueWorker`'s `onEvent`). */
export type QueueWorkerEvent =
  | { type: 'ready'; worker: string; queue: string; url: string; context: ExecutionContext; jobs: number; cache?: string }
  | { type: 'start'; key: string; label: string; attempt: number }
  | { type: 'end'; record: RunRecord; fromCache: boolean }
  | { type: 'handback'; key: string; label: string }
  | { type: 'warning'; message: string };

/** Options of {@link runQueueWorker}. */
export interface QueueWorkerOptions {
  /** Redis URL, as for the coordinator. */
  queue: string;
  /** Runs at a time (default: one per core, as a local sweep). */
  jobs?: number;
  /** Threads per run (default 1); must match the coordinator's, as it is part of the run key. */
  threads?: number;
  /** How long a run's lock lasts without renewal before another worker takes the run over (default 30 s). */
  stallMs?: number;
  /** A local result store of the runs this worker made (default under `~/.cache/gmt-lab`), or false for none. */
  cache?: string | false;
  /** Name shown by the coordinator (default `host:pid`). */
  name?: string;
  /** Stops the worker: runs in progress stop at their next update and go back to the queue. */
  signal?: AbortSignal;
  /** Bound on the stop after `signal`, also while Redis is unreachable (default {@link DEFAULT_STOP_MS}). */
  stopMs?: number;
  onEvent?: (e: QueueWorkerEvent) => void;
}

/** The default worker cache: `$XDG_CACHE_HOME/gmt-lab/worker-results.jsonl` (or `~/.cache/…`). */
export function defaultWorkerCache(): string {
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'gmt-lab', 'worker-results.jsonl');
}

/**
 * Pulls runs from the queue and executes them until `signal` aborts; resolves to how many it
 * finished. Rejects (after handing its run back) when a run's key does not match what this
 * machine would make — different base checkpoint or task file — since its records would be
 * wrong for the sweep.
 *
 * Stopping is bounded by `stopMs` (default 20 s), also while Redis is unreachable: runs in
 * progress stop at their next update and go back to the queue; a finished run's record is in
 * the local cache before it is handed back, so a hand-back lost here is returned again later
 * without training; a run that could not be handed back keeps its lock until the stall timeout,
 * then another worker takes it over (as after a kill -9).
 */
export async function runQueueWorker(opts: QueueWorkerOptions): Promise<{ finished: number; fromCache: number }> {
  const layout = defaultSweepLayout();
  const jobs = checkNumber('worker jobs', opts.jobs ?? layout.jobs, { min: 1, max: 64, integer: true });
  const threads = checkNumber('worker threads', opts.threads ?? layout.threads, { min: 1, max: 8, integer: true });
  const stallMs = checkNumber('worker stall timeout (ms)', opts.stallMs ?? DEFAULT_STALL_MS, { min: 1000, max: 3_600_000, integer: true });
  const stopMs = checkNumber('worker stop timeout (ms)', opts.stopMs ?? DEFAULT_STOP_MS, { min: 5000, max: 3_600_000, integer: true });
  const { url } = await checkQueue(opts.queue);
  const context = await sweepContext(threads);
  const name = queueName(context);
  const workerName = opts.name ?? `${os.hostname()}:${process.pid}`;
  const cache = opts.cache === false ? undefined : new ResultStore(opts.cache ?? defaultWorkerCache());
  const emit = opts.onEvent ?? (() => undefined);
  const { Worker, DelayedError } = await import('bullmq');
  const connection = await openConnection(opts.queue, `gmt-lab worker ${workerName}`);
  // Commands wait while Redis is away; a stop asked meanwhile must not wait with them.
  const registry = await untilAborted(connection.hgetall(REGISTRY_KEY), opts.signal).catch(() => ({}) as Record<string, string>);
  if (opts.signal?.aborted) {
    connection.disconnect();
    return { finished: 0, fromCache: 0 };
  }
  const others = Object.entries(registry).filter(([n]) => n !== name);
  if (others.length && !registry[name]) {
    const list = others.map(([n, v]) => `${n} (${Object.values((JSON.parse(v) as { context: ExecutionContext }).context).join(', ')})`).join('; ');
    emit({ type: 'warning', message: `no sweep has used this worker's queue yet; sweeps wait on ${list}, and this worker runs ${Object.values(context).join(', ')}: runs keyed for another kernel-lib version, backend or thread count are not for it` });
  }
  const controllers = new Set<AbortController>();
  let fatal: Error | undefined;
  let finished = 0;
  let fromCache = 0;
  let stopping = false;
  /** Processors running: a run, or handing one back. */
  let processing = 0;
  let resolveStopped: () => void = () => undefined;
  const stopped = new Promise<void>((r) => {
    resolveStopped = r;
  });
  let stopStarted = 0;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    stopStarted = performance.now();
    for (const c of controllers) c.abort();
    resolveStopped();
  };

  // Counts processors (a run, or handing one back) so a stop knows when they are done.
  const counted = (fn: (job: Job<RunJobData, RunRecord>, token?: string) => Promise<RunRecord>) => async (job: Job<RunJobData, RunRecord>, token?: string): Promise<RunRecord> => {
    processing += 1;
    try {
      return await fn(job, token);
    } finally {
      processing -= 1;
    }
  };
  const worker: Worker<RunJobData, RunRecord> = new Worker<RunJobData, RunRecord>(
    name,
    counted(async (job, token) => {
      const { run, grid } = job.data;
      const attempt = job.attemptsMade + 1;
      const mine = runKey(run.config, context, inputDigests(run.config));
      if (mine !== run.key || job.id !== run.key) {
        fatal = new Error(
          `worker ${workerName}: run ${run.label} was planned with key ${run.key}, but on this machine it would be ${mine}: ` +
            `its inputs differ (here: ${JSON.stringify(inputDigests(run.config))}). The run goes back to the queue and this worker stops; ` +
            'make data/ (base checkpoints, task files) the same as on the coordinator\'s machine',
        );
        await job.moveToDelayed(Date.now() + 1000, token);
        stop();
        throw new DelayedError();
      }
      const cached = cache?.latest().get(run.key);
      if (cached && isFinal(cached.status)) {
        fromCache += 1;
        const rec = { ...withoutDigest(cached), queue: { worker: workerName, attempt, fromCache: true } } as RunRecord;
        emit({ type: 'end', record: rec, fromCache: true });
        return rec;
      }
      emit({ type: 'start', key: run.key, label: run.label, attempt });
      const ac = new AbortController();
      controllers.add(ac);
      if (stopping) ac.abort();
      let lastReport = 0;
      // No record when the stop came before the run's process had started it.
      let rec: RunRecord | undefined;
      try {
        [rec] = (await runPlanned([run], {
          jobs: 1, threads, grid, signal: ac.signal, parallel: jobs, context, cancelGraceMs: Math.max(1000, stopMs - STOP_HANDBACK_MS),
          onProgress: (running) => {
            const r = running[0];
            const now = performance.now();
            if (!r || now - lastReport < 2000) return;
            lastReport = now;
            job.updateProgress({ step: r.step, steps: r.steps, loss: r.loss }).catch(() => undefined);
          },
        })) as (RunRecord | undefined)[];
      } finally {
        controllers.delete(ac);
      }
      if (rec === undefined || rec.status === 'cancelled') {
        // Stopping: the run goes back to the queue for another worker, without using an attempt.
        await job.moveToDelayed(Date.now(), token);
        emit({ type: 'handback', key: run.key, label: run.label });
        throw new DelayedError();
      }
      rec.queue = { worker: workerName, attempt };
      if (isFinal(rec.status)) cache?.append(rec);
      emit({ type: 'end', record: rec, fromCache: false });
      if (rec.status === 'failed') {
        await job.updateData({ ...job.data, lastRecord: rec });
        throw new Error(rec.error?.message ?? 'the run failed');
      }
      finished += 1;
      return rec;
    }),
    { connection, concurrency: jobs, lockDuration: stallMs, stalledInterval: stallMs, maxStalledCount: 2, name: workerName },
  );
  let lastError = 0;
  worker.on('error', (e) => {
    if (performance.now() - lastError < 10_000) return;
    lastError = performance.now();
    emit({ type: 'warning', message: `Redis at ${url.shown}: ${e.message}; retrying` });
  });
  emit({ type: 'ready', worker: workerName, queue: name, url: url.shown, context, jobs, ...(cache ? { cache: cache.file } : {}) });
  if (opts.signal?.aborted) stop();
  opts.signal?.addEventListener('abort', stop);
  try {
    await stopped;
    // No new runs (pausing asks nothing of Redis); runs in progress stop and go back to the queue
    // (through Redis) within the bound; then the connections are closed without waiting for
    // Redis (BullMQ's graceful close waits for it for ever).
    void worker.pause(true).catch(() => undefined);
    const end = stopStarted + stopMs;
    while (processing > 0 && performance.now() < end - STOP_CLOSE_MS) await sleep(50);
    if (processing > 0) {
      emit({ type: 'warning', message: `${processing} run${processing === 1 ? '' : 's'} could not be handed back within ${stopMs / 1000} s (Redis at ${url.shown} ${connection.status === 'ready' ? 'is slow' : 'is unreachable'}); another worker takes ${processing === 1 ? 'it' : 'them'} over after the stall timeout (${stallMs / 1000} s)` });
    }
    // With Redis there, a graceful close lets BullMQ finish recording what the runs returned;
    // without it, a forced one. Neither is awaited past the bound: with Redis gone, BullMQ may
    // wait on a connection for ever.
    const closing = connection.status === 'ready' ? worker.close() : worker.close(true);
    if (!(await settlesWithin(closing, end - performance.now() - 500))) await settlesWithin(worker.disconnect(), 100);
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    connection.disconnect();
  }
  if (fatal) throw fatal;
  return { finished, fromCache };
}

/** One queue in {@link queueStatus}. */
export interface QueueStatus {
  name: string;
  /** The execution context its runs are keyed for, and the grid that last used it. */
  context?: ExecutionContext;
  grid?: string;
  counts: { waiting: number; delayed: number; active: number; completed: number; failed: number };
  /** Names of the workers connected to it now. */
  workers: string[];
}

/**
 * What the lab's queues on this Redis hold (`gmt-lab sweep --status --queue URL`): per queue a
 * sweep has used, the job counts and the connected workers. Finished jobs are counted until a
 * coordinator collects them.
 */
export async function queueStatus(url: string): Promise<QueueStatus[]> {
  await checkQueue(url);
  const { Queue } = await import('bullmq');
  const connection = await openConnection(url, 'gmt-lab status');
  try {
    const registry = await connection.hgetall(REGISTRY_KEY);
    const out: QueueStatus[] = [];
    for (const [name, info] of Object.entries(registry).sort()) {
      const queue = new Queue(name, { connection });
      try {
        const c = await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed');
        const workers = workerNames(await queue.getWorkers()).sort();
        const meta = JSON.parse(info) as { context?: ExecutionContext; grid?: string };
        out.push({
          name, context: meta.context, grid: meta.grid, workers,
          counts: { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0), delayed: c.delayed ?? 0, active: c.active ?? 0, completed: c.completed ?? 0, failed: c.failed ?? 0 },
        });
      } finally {
        await queue.close();
      }
    }
    return out;
  } finally {
    connection.disconnect();
  }
}
