/** A findings grid's planned runs and the records the store holds for them. */
import { loadResults, type ResultRow, type Table } from '../analysis/results';
import { planSweep } from '../sweep/runner';
import { isFinal, ResultStore, type RunRecord } from '../sweep/store';
import { loadGrid, type PlannedRun, type SweepGrid } from '../sweep/grid';
import { runMode, type RunMode } from '../util/config';

/** A grid's planned runs and, for those the store has, their records and result rows. */
export interface GridResults {
  planned: PlannedRun[];
  records: RunRecord[];
  rows: ResultRow[];
  table: Table;
  /** Planned runs the store lacks (finished = done or diverged). */
  missing: number;
  /** Their keys. */
  missingKeys: string[];
  /**
   * One line for a notebook: how many planned runs are finished, and of the rest how many a
   * sweep stopped part-way (cancelled) or that failed; each of those is made again by the next
   * sweep. `summary(ran)` adds how many the calling sweep made.
   */
  summary: (ran?: number) => string;
}

/** The line of {@link GridResults.summary}; `records` are the planned runs' latest records. */
export function gridSummary(planned: number, records: Pick<RunRecord, 'status'>[], ran?: number): string {
  const count = (s: RunRecord['status']): number => records.filter((r) => r.status === s).length;
  const finished = records.filter((r) => isFinal(r.status)).length;
  const missing = planned - finished;
  const parts = [`${finished} of ${planned} planned runs finished`];
  if (count('diverged') > 0) parts[0] += ` (${count('diverged')} diverged)`;
  if (missing > 0) {
    const partly = [
      count('cancelled') > 0 ? `${count('cancelled')} cancelled part-way` : '',
      count('failed') > 0 ? `${count('failed')} failed` : '',
    ].filter(Boolean);
    parts.push(`${missing} missing${partly.length ? ` (${partly.join(', ')}; made again by the next sweep)` : ''}`);
  }
  if (ran !== undefined) parts.push(`${ran} made now`);
  return parts.join('; ');
}

/** The records of a grid's planned runs (in `mode`) found in `store`. */
export async function gridResults(grid: SweepGrid | string, store: string, mode: RunMode = runMode()): Promise<GridResults> {
  const g = typeof grid === 'string' ? loadGrid(grid) : grid;
  const { runs } = await planSweep(g, { mode });
  // Each planned run's experiment, whichever kernel build made it (see `experimentKey`).
  const latest = new ResultStore(store).byExperiment();
  // A run shared by two grids is stored once, under the labels of the grid that made it first;
  // here it takes this grid's labels.
  const records = runs.flatMap((r) => {
    const rec = latest.get(r.experiment);
    return rec ? [{ ...rec, label: r.label, methodLabel: r.methodLabel }] : [];
  });
  const table = loadResults(records);
  const finished = (r: PlannedRun): boolean => latest.get(r.experiment) !== undefined && isFinal(latest.get(r.experiment)!.status);
  const missingKeys = runs.filter((r) => !finished(r)).map((r) => r.key);
  return {
    planned: runs, records, rows: table.objects() as unknown as ResultRow[], table, missing: missingKeys.length, missingKeys,
    summary: (ran?: number) => gridSummary(runs.length, records, ran),
  };
}
