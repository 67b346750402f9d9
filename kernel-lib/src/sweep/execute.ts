/**
 * One planned run → one store record. The same function runs in a sweep's worker processes,
 * in-process (`jobs: 0`) and, later, on queue workers, so a run is the same run wherever it is
 * made: a pure function of its resolved config, its input files and the execution context.
 */
import * as os from 'node:os';
import { execFileSync } from 'node:child_process';
import type { TrainResult, UpdateRecord } from '../train/trainer';
import { median } from '../util/stats';
import { finetune } from './finetune';
import type { ExecutionContext, PlannedRun } from './grid';
import { inputDigests } from './grid';
import type { HistorySummary, RunRecord } from './store';

/** At most this many sampled updates in a record's history. */
export const HISTORY_POINTS = 50;

/** Indices 0, s, 2s, … and the last one, with s chosen to give at most `points` entries. */
export function sampleIndices(n: number, points = HISTORY_POINTS): number[] {
  if (n <= 0) return [];
  const stride = Math.max(1, Math.ceil((n - 1) / (points - 1)));
  const out: number[] = [];
  for (let i = 0; i < n; i += stride) out.push(i);
  if (out[out.length - 1] !== n - 1) out.push(n - 1);
  return out;
}

/** The sampled history stored in a record. */
export function summarizeHistory(train: TrainResult): HistorySummary {
  const h = train.history;
  const idx = sampleIndices(h.length);
  const pick = <T>(f: (u: UpdateRecord) => T): T[] => idx.map((i) => f(h[i] as UpdateRecord));
  const out: HistorySummary = {
    step: pick((u) => u.step),
    loss: pick((u) => u.loss),
    lr: pick((u) => u.lr),
    gradNorm: pick((u) => u.gradNorm),
    keptFraction: pick((u) => u.keptFraction),
    evals: train.evals.filter((e) => typeof e.metrics.valLoss === 'number').map((e) => ({ step: e.step, valLoss: e.metrics.valLoss as number })),
  };
  if (h.some((u) => u.maskJaccard !== undefined)) out.maskJaccard = pick((u) => u.maskJaccard ?? null);
  if (h.some((u) => u.keptByTensor)) {
    const names = Object.keys(h.find((u) => u.keptByTensor)?.keptByTensor ?? {});
    out.keptByTensor = Object.fromEntries(names.map((n) => [n, pick((u) => u.keptByTensor?.[n] ?? 1)]));
  }
  return out;
}

let commitCache: string | null | undefined;

/**
 * Paths whose changes do not make a checkout's code differ from its commit: the evidence (result
 * stores, figures), which a sweep writes to while it runs.
 */
export const EVIDENCE_PATHS: readonly string[] = Object.freeze(['data/results', 'figures']);

/** {@link gitCommitOf} the checkout kernel-lib lives in, once per process. */
export function gitCommit(): string | null {
  if (commitCache === undefined) commitCache = gitCommitOf(__dirname);
  return commitCache;
}

/**
 * `git rev-parse HEAD` of the checkout `dir` is in, with `-dirty` when tracked files other than
 * the evidence ({@link EVIDENCE_PATHS}) have changes; null outside a checkout.
 */
export function gitCommitOf(dir: string): string | null {
  try {
    const git = (args: string[]): string => execFileSync('git', args, { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const head = git(['rev-parse', 'HEAD']);
    const dirty = git(['status', '--porcelain', '--untracked-files=no', '--', ':(top)', ...EVIDENCE_PATHS.map((p) => `:(top,exclude)${p}`)]) !== '';
    return dirty ? `${head}-dirty` : head;
  } catch {
    return null;
  }
}

/** Where and how a record was made. */
export function provenance(context: ExecutionContext, jobs: number): RunRecord['provenance'] {
  const cpus = os.cpus();
  const threads = Number(/(\d+) threads?/.exec(context.gradientPath)?.[1] ?? 1);
  return {
    ...context,
    node: process.version,
    machine: { cpu: cpus[0]?.model.trim() ?? 'unknown', cores: cpus.length, platform: process.platform, arch: process.arch, host: os.hostname() },
    commit: gitCommit(),
    date: new Date().toISOString(),
    threads,
    jobs,
  };
}

/** Progress of one run, as a worker reports it. */
export interface RunProgress {
  key: string;
  step: number;
  steps: number;
  loss: number;
}

/**
 * Executes a planned run and returns its record; never throws for a failing run (the record
 * then has `status: 'failed'` and the error). A loss that is not finite ends it `diverged`; an abort
 * `signal` stops it at the next update boundary with status `cancelled` and its partial history.
 */
export async function executeRun(
  run: PlannedRun,
  context: ExecutionContext,
  opts: { grid?: string; jobs?: number; onProgress?: (p: RunProgress) => void; signal?: AbortSignal } = {},
): Promise<RunRecord> {
  const base: Omit<RunRecord, 'status'> = {
    kind: 'gmt-lab/run',
    v: 1,
    key: run.key,
    label: run.label,
    methodLabel: run.methodLabel,
    grid: opts.grid ?? 'sweep',
    config: run.config,
    inputs: { base: '' },
    provenance: provenance(context, opts.jobs ?? 1),
  };
  const t0 = performance.now();
  try {
    base.inputs = inputDigests(run.config);
    let lastReport = 0;
    const result = await finetune(run.config, {
      signal: opts.signal,
      onUpdate: (u) => {
        const now = performance.now();
        if (opts.onProgress && (now - lastReport > 1000 || u.step === run.config.steps)) {
          lastReport = now;
          opts.onProgress({ key: run.key, step: u.step, steps: run.config.steps, loss: u.loss });
        }
      },
    });
    const cancelled = result.train.stoppedEarly && !result.diverged;
    const t = result.train.timings;
    const trainMs = result.train.history.reduce((a, u) => a + u.ms, 0);
    const record: RunRecord = {
      ...base,
      status: result.diverged ? 'diverged' : cancelled ? 'cancelled' : 'done',
      metrics: Object.fromEntries(Object.entries(result.metrics).filter(([, v]) => typeof v === 'number')) as Record<string, number>,
      history: summarizeHistory(result.train),
      timings: {
        totalMs: performance.now() - t0,
        trainMs,
        msPerUpdate: t.msPerUpdate,
        meanMsPerUpdate: t.meanMsPerUpdate,
        gradientsMsPerUpdate: result.train.history.length ? median(result.train.history.map((u) => u.gradientsMs)) : 0,
        transformMsPerUpdate: t.transformMsPerUpdate,
        initMs: t.initMs,
        evalMs: t.evalMs,
        scoreMs: Math.max(0, performance.now() - t0 - t.totalMs),
        updates: result.train.updates,
      },
      weightsSha256: result.train.weightsSha256,
      memory: { peakTensorBytes: result.train.peakTensorBytes },
    };
    if (result.diverged) record.diverged = result.diverged;
    if (cancelled) record.cancelled = { step: result.train.updates, steps: run.config.steps };
    if (result.maskTrace) record.maskTrace = result.maskTrace;
    return record;
  } catch (e) {
    return { ...base, status: 'failed', error: { message: e instanceof Error ? e.message : String(e) } };
  }
}
