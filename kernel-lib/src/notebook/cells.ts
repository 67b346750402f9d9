/**
 * Cells people call in a notebook: `trainCell` (one run, watched live) and `compareCell`
 * (a few methods on the same seeds, through the sweep and its store). Both show their output
 * in place and return data, so the next cell can work with it.
 */
import { loadResults, summarize } from '../analysis/results';
import { methodBarsFigure } from '../findings/figures';
import { finetune, resolveFinetuneConfig, type FinetuneConfig, type FinetuneResult } from '../sweep/finetune';
import type { SweepGrid } from '../sweep/grid';
import type { SweepOutcome } from '../sweep/runner';
import { ConfigError } from '../util/config';
import { displayBundle, newDisplayId } from './channel';
import { showFigure, showTable } from './display';
import { sweepWithProgress } from './sweep';
import { trainingDisplay } from './training';

let last: FinetuneResult | undefined;

/**
 * Gives `value` a one-line form for a notebook (tslab prints a cell's last value with
 * `util.inspect`), without changing its fields or its JSON.
 */
function shownAs<T extends object>(value: T, line: () => string): T {
  Object.defineProperty(value, Symbol.for('nodejs.util.inspect.custom'), { value: line, enumerable: false, configurable: true });
  return value;
}

/**
 * The result of the last {@link trainCell}, also when it was interrupted (a kernel interrupt
 * ends the cell before the run returns, so its `const run = await …` is never assigned).
 */
export function lastResult(): FinetuneResult | undefined {
  return last;
}

/** The summary rows a {@link trainCell} shows (one row per metric). */
export function resultSummary(r: FinetuneResult): { metric: string; value: number | string }[] {
  const m = r.metrics;
  const rows: { metric: string; value: number | string }[] = [
    { metric: 'method', value: `${r.config.method}${Object.keys(r.config.methodOptions).length ? ` ${JSON.stringify(r.config.methodOptions)}` : ''}` },
    { metric: 'updates', value: `${r.train.updates} of ${r.config.steps}${r.train.stoppedEarly ? (r.diverged ? ' (diverged)' : ' (interrupted)') : ''}` },
    { metric: 'validation loss (base → after)', value: `${m.baseValLoss.toFixed(4)} → ${m.valLoss.toFixed(4)}` },
  ];
  if (m.testAccuracy !== undefined) rows.push({ metric: `test accuracy (${r.data.test} problems)`, value: `${(m.testAccuracy * 100).toFixed(1)}%` });
  if (m.factsAccuracy !== undefined) rows.push({ metric: 'arithmetic facts kept (forgetting)', value: `${((m.factsAccuracy ?? 0) * 100).toFixed(1)}% (base ${((m.baseFactsAccuracy ?? 0) * 100).toFixed(1)}%)` });
  const kept = r.train.history.at(-1)?.keptFraction;
  if (kept !== undefined && kept < 1) rows.push({ metric: 'kept fraction of Γ (last update)', value: kept });
  rows.push({ metric: 'time per update', value: `${r.train.timings.msPerUpdate.toFixed(0)} ms` });
  rows.push({ metric: 'weights sha256', value: r.train.weightsSha256.slice(0, 16) });
  return rows;
}

/**
 * One fine-tuning run in a cell: a progress bar and a live loss curve (validation loss at
 * `evalEvery`) redrawn in place at most twice a second, then a summary table; resolves to the
 * result record. The kernel's interrupt button stops training at the next update: the
 * partial result is shown, returned, and kept in {@link lastResult}.
 *
 * ```ts
 * const run = await gmt.trainCell({ base: 'nano', task: 'math', method: 'gmt', methodOptions: { ratio: 0.3 }, steps: 100 });
 * run.metrics.testAccuracy;
 * ```
 */
export async function trainCell(config: Partial<FinetuneConfig>, opts: { label?: string; title?: string } = {}): Promise<FinetuneResult> {
  const resolved = resolveFinetuneConfig(config);
  const label = opts.label ?? `${resolved.method}${resolved.methodOptions.ratio !== undefined ? ` k=${resolved.methodOptions.ratio}` : ''}`;
  const view = trainingDisplay(resolved.steps, { label, method: resolved.method, title: opts.title });
  const status = newDisplayId();
  let result: FinetuneResult;
  try {
    result = await finetune(resolved, { onUpdate: view.onUpdate, onEval: view.onEval, signal: view.signal });
  } finally {
    await view.finish();
  }
  last = shownAs(result, () => {
    const m = result.metrics;
    return `[trainCell result] ${label}: ${result.train.updates}/${resolved.steps} updates, validation loss ${m.baseValLoss.toFixed(3)} → ${m.valLoss.toFixed(3)}` +
      `${m.testAccuracy !== undefined ? `, test accuracy ${(m.testAccuracy * 100).toFixed(1)}%` : ''} (fields: config, metrics, train.history, samples, …)`;
  });
  const interrupted = result.train.stoppedEarly && !result.diverged;
  const line = interrupted
    ? `interrupted at update ${result.train.updates}/${resolved.steps}: the partial result is kept (gmt.lastResult())`
    : result.diverged
      ? `diverged at update ${result.diverged.step}: the loss stopped being finite`
      : `done: ${result.train.updates} updates`;
  displayBundle({ 'text/html': `<div class="gmt-status" style="font-family:monospace">${line}</div>`, 'text/plain': line }, { displayId: status });
  showTable(resultSummary(result), { caption: label });
  return result;
}

/** What {@link compareCell} takes. */
export interface CompareOptions {
  /** Methods as in a grid: names, or `{ method, options, label }`. */
  methods: SweepGrid['methods'];
  /** Config shared by every run (base, task, steps, …). */
  base?: Partial<FinetuneConfig>;
  /** Seeds: every method runs on each (paired comparison). Default [0, 1, 2]. */
  seeds?: number[];
  /** The result store; re-running the cell reuses what it holds. */
  store: string;
  /** Runs in parallel (worker processes; 0 = in the kernel). */
  jobs?: number;
  title?: string;
}

/**
 * A few methods on the same seeds, run through the sweep and its store (so re-running the cell
 * is instant), shown as bars of mean test accuracy with 95% CI whiskers and a table of mean,
 * SD and CI per method. Resolves to the sweep's outcome and the summary rows.
 *
 * ```ts
 * await gmt.compareCell({ methods: ['sft', { method: 'gmt', options: { ratio: 0.3 } }], base: { base: 'nano', steps: 60 }, store: 'build/lab/compare.jsonl' });
 * ```
 */
export async function compareCell(opts: CompareOptions): Promise<{ outcome: SweepOutcome; summary: object[] }> {
  if (!Array.isArray(opts.methods) || opts.methods.length === 0) throw new ConfigError('compareCell: methods must be a non-empty list');
  const grid: SweepGrid = {
    name: 'compare',
    description: 'compareCell',
    base: opts.base ?? {},
    methods: opts.methods,
    tasks: [opts.base?.task ?? 'math'],
    presets: [],
    seeds: opts.seeds ?? [0, 1, 2],
    vary: {},
  };
  // The kernel's mode must not swap the grid for a fast block it does not have.
  const outcome = await sweepWithProgress(grid, { store: opts.store, jobs: opts.jobs, mode: 'full', label: 'compare' });
  const table = loadResults(outcome.records.values());
  const scored = (table.objects() as { accuracy: number | null }[]).some((r) => r.accuracy !== null);
  const metric = scored ? 'accuracy' : 'valLoss';
  const summary = summarize(table, ['methodLabel', 'task'], metric).objects();
  const title = opts.title ?? `${scored ? 'Test accuracy' : 'Validation loss'} per method (mean and 95% CI over ${grid.seeds instanceof Array ? grid.seeds.length : ''} seeds)`;
  await showFigure(methodBarsFigure(summary, { category: 'task', title, yTitle: scored ? 'accuracy (points)' : 'validation loss' }));
  showTable(summary as Record<string, unknown>[], { caption: `${metric} by method` });
  return shownAs({ outcome, summary }, () =>
    `[compareCell result] ${outcome.planned.length} runs (${outcome.ran} made, ${outcome.skipped} from ${outcome.store}); ` +
    (summary as { methodLabel: string; mean: number; lo: number; hi: number }[]).map((r) => `${r.methodLabel} ${r.mean.toFixed(1)} [${r.lo.toFixed(1)}, ${r.hi.toFixed(1)}]`).join('; ') +
    ' (fields: outcome, summary)');
}
