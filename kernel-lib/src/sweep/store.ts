/**
 * The append-only result store: one JSON record per line (JSONL), one line per finished run.
 *
 * Crash safety: each record is written with a single `write(2)` on a file opened with
 * `O_APPEND`, then `fsync`ed. On Linux a regular-file append of one buffer is not interleaved
 * with another process's append, so two sweeps sharing a store never mix lines. A crash can
 * still cut the last line short; every line carries a `digest` (sha256 of the record without
 * it), so a cut line never passes for a whole record, even when what is left happens to parse.
 * Such a line is reported and skipped on reading, and before appending after it the store
 * first ends it with a newline, so a new record is never glued onto a torn one.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../util/config';
import type { FinetuneConfig } from './finetune';
import { recordExperiment, type ExecutionContext } from './grid';

/**
 * How a run ended. `done` and `diverged` are final; a `failed` run and a `cancelled` one
 * (stopped by SIGINT/SIGTERM or an abort signal, with its partial history) are retried by a re-run.
 */
export type RunStatus = 'done' | 'failed' | 'diverged' | 'cancelled';

/** True for the statuses a sweep never re-runs (`done`, `diverged`). */
export function isFinal(status: RunStatus): boolean {
  return status === 'done' || status === 'diverged';
}

/** Per-update history, sampled at up to ~50 updates (always including the first and last). */
export interface HistorySummary {
  step: number[];
  loss: number[];
  lr: number[];
  gradNorm: number[];
  keptFraction: number[];
  maskJaccard?: (number | null)[];
  /** Kept fraction per parameter tensor at the sampled updates (masking methods only). */
  keptByTensor?: Record<string, number[]>;
  /** Validation evaluations (`evalEvery`), all of them. */
  evals: { step: number; valLoss: number }[];
}

/** One line of the store. */
export interface RunRecord {
  kind: 'gmt-lab/run';
  /** Record format version. */
  v: 1;
  key: string;
  status: RunStatus;
  /** `PlannedRun.label` and `methodLabel`. */
  label: string;
  methodLabel: string;
  /** Grid name the run was planned in. */
  grid: string;
  config: FinetuneConfig;
  /** sha256 of the base checkpoint (and task file). */
  inputs: { base: string; task?: string };
  /** `FinetuneResult.metrics` (absent when failed). */
  metrics?: Record<string, number>;
  history?: HistorySummary;
  timings?: { totalMs: number; trainMs: number; msPerUpdate: number; meanMsPerUpdate: number; gradientsMsPerUpdate: number; transformMsPerUpdate: number; initMs: number; evalMs: number; scoreMs: number; updates: number };
  weightsSha256?: string;
  /** Tensor memory of an update (`TrainResult.peakTensorBytes`); absent in records made before it was kept. */
  memory?: { peakTensorBytes: number };
  /** With `config.maskTrace`: the sampled mask statistics (`MaskTrace`). */
  maskTrace?: import('./finetune').MaskTrace;
  /** With status `diverged`: the update whose loss was not finite, and the last finite loss. */
  diverged?: { step: number; lastFiniteLoss: number | null };
  /** With status `failed`: what went wrong. */
  error?: { message: string };
  /** With status `cancelled`: the updates made before the stop, of how many planned. */
  cancelled?: { step: number; steps: number };
  /** Made through a queue: the worker that made or returned it, which attempt, and whether from its cache. */
  queue?: { worker: string; attempt: number; fromCache?: boolean };
  provenance: ExecutionContext & {
    node: string;
    machine: { cpu: string; cores: number; platform: string; arch: string; host: string };
    commit: string | null;
    date: string;
    /** Data-parallel threads per run and runs in parallel when it was made. */
    threads: number;
    jobs: number;
  };
  /** sha256 (hex, 16 digits) of the record's JSON without this field. */
  digest?: string;
}

/** A line that is not a whole record. */
export interface BadLine {
  line: number;
  reason: string;
}

function digestOf(record: Omit<RunRecord, 'digest'>): string {
  return createHash('sha256').update(JSON.stringify(record)).digest('hex').slice(0, 16);
}

/** The line written for a record: its JSON with `digest` last, and a newline. */
export function serializeRecord(record: RunRecord): string {
  const { digest: _drop, ...body } = record;
  return `${JSON.stringify({ ...body, digest: digestOf(body) })}\n`;
}

/** Parses one store line; returns the record or why it is not one. */
export function parseRecordLine(text: string): RunRecord | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return `not JSON (${(e as Error).message.split('\n')[0]})`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const r = value as RunRecord;
  if (r.kind !== 'gmt-lab/run') return `not a gmt-lab run record (kind ${JSON.stringify(r.kind)})`;
  if (typeof r.digest !== 'string') return 'no digest';
  const { digest, ...body } = r;
  let actual: string;
  try {
    actual = digestOf(body);
  } catch {
    return 'not a run record (nested too deeply to check its digest)';
  }
  if (actual !== digest) return 'digest mismatch (the line was cut short or edited)';
  if (typeof r.key !== 'string' || !['done', 'failed', 'diverged', 'cancelled'].includes(r.status)) return 'missing key or status';
  return r;
}

/** What {@link ResultStore.read} found. */
export interface StoreContents {
  records: RunRecord[];
  bad: BadLine[];
}

/** An append-only JSONL file of {@link RunRecord}s. */
export class ResultStore {
  readonly file: string;

  constructor(file: string) {
    if (typeof file !== 'string' || file === '') throw new ConfigError('result store: a file path is required');
    this.file = path.resolve(file);
    if (existsSync(this.file) && statSync(this.file).isDirectory()) throw new ConfigError(`result store ${this.file} is a directory, not a file`);
  }

  /** Every whole record, in file order, and the lines that are not (torn, edited, foreign). */
  read(): StoreContents {
    if (!existsSync(this.file)) return { records: [], bad: [] };
    const text = readFileSync(this.file, 'utf8');
    const records: RunRecord[] = [];
    const bad: BadLine[] = [];
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      const parsed = parseRecordLine(line);
      if (typeof parsed === 'string') bad.push({ line: i + 1, reason: i === lines.length - 1 ? `${parsed}; last line without a newline: a write cut short` : parsed });
      else records.push(parsed);
    });
    return { records, bad };
  }

  /**
   * The record that counts per key: the last `done`/`diverged` one if any (final), else the
   * last `failed` or `cancelled` one.
   */
  latest(contents: StoreContents = this.read()): Map<string, RunRecord> {
    return latestBy(contents, (r) => r.key);
  }

  /** Keys whose run is finished (`done` or `diverged`). */
  finishedKeys(contents: StoreContents = this.read()): Set<string> {
    return finishedBy(contents, (r) => r.key);
  }

  /**
   * The record that counts per experiment (`experimentKey`: the run key less kernel build and
   * threads), by the rule of {@link latest}. This is what sweeps skip and what the evidence
   * reads, whichever build made it.
   */
  byExperiment(contents: StoreContents = this.read()): Map<string, RunRecord> {
    return latestBy(contents, recordExperiment);
  }

  /** Experiments with a finished (`done` or `diverged`) run: a sweep skips these. */
  finishedExperiments(contents: StoreContents = this.read()): Set<string> {
    return finishedBy(contents, recordExperiment);
  }

  /** Appends one record as one line (see the file comment), durably. */
  append(record: RunRecord): void {
    const line = serializeRecord(record);
    mkdirSync(path.dirname(this.file), { recursive: true });
    const fd = openSync(this.file, 'a');
    try {
      // A torn last line (crash mid-write) gets its newline first, in the same write.
      const size = fstatSync(fd).size;
      let prefix = '';
      if (size > 0) {
        const last = Buffer.alloc(1);
        const rfd = openSync(this.file, 'r');
        try {
          readSync(rfd, last, 0, 1, size - 1);
        } finally {
          closeSync(rfd);
        }
        if (last[0] !== 0x0a) prefix = '\n';
      }
      const buf = Buffer.from(prefix + line, 'utf8');
      const written = writeSync(fd, buf, 0, buf.length);
      if (written !== buf.length) throw new Error(`result store ${this.file}: short write (${written} of ${buf.length} bytes; disk full?)`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/** Per id, the last final record if any, else the last one. */
function latestBy(contents: StoreContents, id: (r: RunRecord) => string): Map<string, RunRecord> {
  const out = new Map<string, RunRecord>();
  for (const r of contents.records) {
    const k = id(r);
    const prev = out.get(k);
    if (prev && isFinal(prev.status) && !isFinal(r.status)) continue;
    out.set(k, r);
  }
  return out;
}

/** The ids of the final records. */
function finishedBy(contents: StoreContents, id: (r: RunRecord) => string): Set<string> {
  const out = new Set<string>();
  for (const r of contents.records) if (isFinal(r.status)) out.add(id(r));
  return out;
}
