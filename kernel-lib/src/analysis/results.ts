/**
 * Result stores as arquero tables, and the summaries the findings notebooks show: mean ± 95% CI
 * over seeds per method, and paired differences against a baseline method on the same seeds
 * (Holm-adjusted across the methods compared with it). Tables are immutable arquero tables;
 * accuracies are in points (0–100) so that differences read as percentage points.
 */
import * as aq from 'arquero';
import type { RunRecord } from '../sweep/store';
import { ResultStore } from '../sweep/store';
import { ConfigError } from '../util/config';
import { holm, meanCI, pairedTest } from './stats';

/** An arquero table (the type arquero's `from` returns). */
export type Table = ReturnType<typeof aq.from>;

/** One row per run: the fields the notebooks group, filter and plot by. */
export interface ResultRow {
  key: string;
  grid: string;
  status: string;
  method: string;
  methodLabel: string;
  task: string;
  preset: string;
  seed: number;
  ratio: number | null;
  scope: string | null;
  /** GMT's selection signal (`grad`, `grad-weight`, `grad-squared`) and `maskUpdate`, where the method has them. */
  signal: string | null;
  maskUpdate: boolean | null;
  steps: number;
  testSize: number;
  /** Test accuracy in points (0–100); null when not scored. */
  accuracy: number | null;
  valLoss: number | null;
  /** Mean per-token loss of the test answers (`testLoss` runs; claim 1b); null elsewhere. */
  testLoss: number | null;
  baseValLoss: number | null;
  /** Arithmetic facts answered after / before fine-tuning, in points (forgetting probe). */
  facts: number | null;
  baseFacts: number | null;
  generalValLoss: number | null;
  baseGeneralValLoss: number | null;
  msPerUpdate: number | null;
  /** Tensor memory of an update in MiB (`RunRecord.memory`); null in older records. */
  peakTensorMiB: number | null;
  trainSeconds: number | null;
  totalSeconds: number | null;
  weightsSha256: string | null;
  date: string;
  commit: string | null;
  /**
   * How the run's gradients were computed (`provenance.gradientPath`: engine, kernel build, ISA,
   * threads). Runs of one config on two builds differ by float rounding, which a run of hundreds
   * of updates grows into a seed-level difference.
   */
  gradientPath: string;
}

const pts = (x: number | undefined): number | null => (typeof x === 'number' ? x * 100 : null);
const num = (x: number | undefined): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

/** The row of one record. */
export function resultRow(r: RunRecord): ResultRow {
  const m = r.metrics ?? {};
  const o = r.config.methodOptions as { ratio?: number; scope?: string; p?: number; signal?: string; maskUpdate?: boolean };
  const gmtLike = r.config.method === 'gmt' || r.config.method === 'sift';
  return {
    key: r.key,
    grid: r.grid,
    status: r.status,
    method: r.config.method,
    methodLabel: r.methodLabel,
    task: r.config.task,
    preset: r.config.base,
    seed: r.config.seed,
    ratio: typeof o.ratio === 'number' ? o.ratio : r.config.method === 'sft' ? 0 : null,
    scope: typeof o.scope === 'string' ? o.scope : null,
    signal: typeof o.signal === 'string' ? o.signal : gmtLike ? 'grad' : null,
    maskUpdate: typeof o.maskUpdate === 'boolean' ? o.maskUpdate : gmtLike ? false : null,
    steps: r.config.steps,
    testSize: r.config.testSize,
    accuracy: pts(m.testAccuracy),
    valLoss: num(m.valLoss),
    testLoss: num(m.testLoss),
    baseValLoss: num(m.baseValLoss),
    facts: pts(m.factsAccuracy),
    baseFacts: pts(m.baseFactsAccuracy),
    generalValLoss: num(m.generalValLoss),
    baseGeneralValLoss: num(m.baseGeneralValLoss),
    msPerUpdate: num(r.timings?.msPerUpdate),
    peakTensorMiB: r.memory ? r.memory.peakTensorBytes / 2 ** 20 : null,
    trainSeconds: r.timings ? r.timings.trainMs / 1000 : null,
    totalSeconds: r.timings ? r.timings.totalMs / 1000 : null,
    weightsSha256: r.weightsSha256 ?? null,
    date: r.provenance.date,
    commit: r.provenance.commit,
    gradientPath: r.provenance.gradientPath,
  };
}

/**
 * The runs of a store (or of records) as an arquero table, one row per run key (the record that
 * counts: see `ResultStore.latest`). `grid` keeps one grid's runs; `keys` only those runs.
 */
export function loadResults(source: string | ResultStore | Iterable<RunRecord>, opts: { grid?: string; keys?: Iterable<string>; status?: 'done' | 'all' } = {}): Table {
  let records: RunRecord[];
  if (typeof source === 'string' || source instanceof ResultStore) {
    const store = typeof source === 'string' ? new ResultStore(source) : source;
    records = [...store.latest().values()];
  } else records = [...source];
  const keys = opts.keys ? new Set(opts.keys) : undefined;
  const rows = records
    .filter((r) => (opts.grid === undefined || r.grid === opts.grid) && (!keys || keys.has(r.key)) && ((opts.status ?? 'done') === 'all' || r.status === 'done'))
    .map(resultRow);
  return aq.from(rows.length ? rows : []);
}

function rowsOf(table: Table | readonly object[]): Record<string, unknown>[] {
  return (Array.isArray(table) ? [...table] : (table as Table).objects()) as Record<string, unknown>[];
}

function groupRows(rows: Record<string, unknown>[], by: readonly string[]): Map<string, Record<string, unknown>[]> {
  const out = new Map<string, Record<string, unknown>[]>();
  for (const r of rows) {
    const id = JSON.stringify(by.map((k) => r[k]));
    const list = out.get(id);
    if (list) list.push(r);
    else out.set(id, [r]);
  }
  return out;
}

/** One row of {@link summarize}: the group's fields, then n, mean, sd and the CI bounds. */
export type SummaryRow = Record<string, unknown> & { n: number; mean: number; sd: number; lo: number; hi: number };

/** Mean, SD and 95% (or `level`) t interval of `metric` over the runs of each group (`by`). */
export function summarize(table: Table | readonly object[], by: readonly string[], metric: string, level = 0.95): Table {
  const rows = rowsOf(table);
  const out: SummaryRow[] = [];
  for (const group of groupRows(rows, by).values()) {
    const values = group.map((r) => r[metric]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    const ci = meanCI(values, level);
    const head = Object.fromEntries(by.map((k) => [k, group[0]?.[k]]));
    out.push({ ...head, n: ci.n, mean: ci.mean, sd: ci.sd, lo: ci.lo, hi: ci.hi });
  }
  return aq.from(out);
}

/** One row of {@link pairedVsBaseline}. */
export interface PairedRow {
  [group: string]: unknown;
  method: string;
  baseline: string;
  /** Seeds present for both. */
  n: number;
  /** Mean of method − baseline over the shared seeds, its SD, 95% CI, p-value and Holm-adjusted p. */
  diff: number;
  sd: number;
  lo: number;
  hi: number;
  p: number;
  pHolm: number;
}

/**
 * Paired differences `metric(method) − metric(baseline)` on the seeds both have, for every
 * method label other than the baseline, within each group of `by` (e.g. per task). The p-values
 * of one group are Holm-adjusted together (one baseline against several methods).
 */
export function pairedVsBaseline(
  table: Table | readonly object[],
  opts: { metric: string; baseline: string; by?: readonly string[]; methodField?: string; pairOn?: string; level?: number; methods?: readonly string[] },
): Table {
  const methodField = opts.methodField ?? 'methodLabel';
  const pairOn = opts.pairOn ?? 'seed';
  const by = opts.by ?? ['task'];
  const out: PairedRow[] = [];
  for (const group of groupRows(rowsOf(table), by).values()) {
    const byMethod = new Map<string, Map<unknown, number>>();
    for (const r of group) {
      const v = r[opts.metric];
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      const m = String(r[methodField]);
      if (!byMethod.has(m)) byMethod.set(m, new Map());
      const seen = byMethod.get(m)!;
      if (seen.has(r[pairOn])) throw new ConfigError(`pairedVsBaseline: two runs of ${m} with ${pairOn} ${String(r[pairOn])} in one group; add the distinguishing field to "by"`);
      seen.set(r[pairOn], v);
    }
    const base = byMethod.get(opts.baseline);
    if (!base) continue;
    const head = Object.fromEntries(by.map((k) => [k, group[0]?.[k]]));
    const rows: PairedRow[] = [];
    for (const [m, values] of byMethod) {
      if (m === opts.baseline || (opts.methods && !opts.methods.includes(m))) continue;
      const shared = [...values.keys()].filter((s) => base.has(s));
      const test = pairedTest(shared.map((s) => values.get(s)!), shared.map((s) => base.get(s)!), opts.level ?? 0.95);
      rows.push({ ...head, method: m, baseline: opts.baseline, n: test.n, diff: test.mean, sd: test.sd, lo: test.lo, hi: test.hi, p: test.pValue, pHolm: NaN });
    }
    holm(rows.map((r) => r.p)).forEach((p, i) => ((rows[i] as PairedRow).pHolm = p));
    out.push(...rows);
  }
  return aq.from(out);
}

/** The subset of a danfojs `DataFrame` that gmt-lab relies on. */
export interface DataFrameLike {
  shape: [number, number];
  columns: string[];
  [column: string]: unknown;
}

/**
 * A result table (arquero table or rows) as a danfojs `DataFrame`, for users who work in pandas
 * style. Uses `danfojs-node` where it is installed (it cannot install everywhere: it needs
 * tfjs-node), else the pure-JS `danfojs` that kernel-lib ships; both take the same rows.
 */
export function toDataFrame(table: Table | readonly object[]): DataFrameLike {
  const rows = rowsOf(table);
  let dfd: { DataFrame: new (data: unknown) => DataFrameLike };
  try {
    dfd = require('danfojs-node');
  } catch {
    dfd = require('danfojs');
  }
  if (rows.length === 0) throw new ConfigError('toDataFrame: the table has no rows');
  return new dfd.DataFrame(rows.map((r) => ({ ...r })));
}
