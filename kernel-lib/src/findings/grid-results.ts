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
  return { planned: runs, records, rows: table.objects() as unknown as ResultRow[], table, missing: missingKeys.length, missingKeys };
}
