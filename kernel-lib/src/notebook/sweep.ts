/**
 * Sweeps from a notebook cell: the same `runSweep` as `gmt-lab sweep`, with a progress bar
 * updated in place (runs finished / planned, failures, ETA, what is running). A sweep whose runs
 * are all in the store returns at once, so re-running a cell is instant. With `opts.queue` (a
 * Redis URL) the runs are made by `gmt-lab worker`s and the bar also shows the queue and its workers.
 */
import { runSweep, type SweepOptions, type SweepOutcome } from '../sweep/runner';
import type { SweepGrid } from '../sweep/grid';
import { progress } from './display';
import { interruptSignal } from '../util/interrupt';
import { inNotebook } from './channel';

/**
 * Runs `grid` into `opts.store` showing progress; resolves to the sweep's outcome.
 *
 * ```ts
 * const outcome = await gmt.sweepWithProgress(grid, { store: paths.store });
 * const table = gmt.loadResults(outcome.records.values());
 * ```
 */
export async function sweepWithProgress(grid: SweepGrid | unknown, opts: SweepOptions & { label?: string }): Promise<SweepOutcome> {
  let bar: ReturnType<typeof progress> | undefined;
  let total = 0;
  // The kernel's interrupt button (SIGINT) cancels the running runs at their next update.
  const interrupt = interruptSignal({ parent: opts.signal, exclusive: inNotebook() });
  const outcome = await runSweep(grid, {
    ...opts,
    signal: interrupt.signal,
    onProgress: (p) => {
      opts.onProgress?.(p);
      total = p.total;
      if (p.total === 0) return;
      bar ??= progress(p.total, { label: opts.label ?? `sweep ${p.grid}` });
      const running = p.running.map((r) => `${r.label.split(' · ')[0]} ${r.step}/${r.steps}${r.worker ? ` on ${r.worker}` : ''}`).join('; ');
      const q = p.queue;
      bar.update(p.skipped + p.done + p.failed + p.diverged + p.cancelled, {
        stored: p.skipped,
        failed: p.failed,
        ...(p.diverged ? { diverged: p.diverged } : {}),
        ...(p.cancelled ? { cancelled: p.cancelled } : {}),
        ...(q ? { queued: q.waiting, workers: q.workers.length ? q.workers.map((w) => `${w.name} (${w.finished})`).join(', ') : 'none connected', ...(q.error ? { redis: q.error } : {}) } : {}),
        ...(running ? { running } : {}),
      });
    },
  }).finally(() => interrupt.release());
  bar?.finish({ ran: outcome.ran, stored: outcome.skipped, failed: outcome.failed, ...(outcome.missing ? { missing: outcome.missing } : {}) });
  if (total === 0) process.stdout.write('sweep: the grid plans no runs\n');
  if (outcome.missing > 0 && outcome.ran === 0 && !outcome.cancelled) {
    process.stdout.write(`sweep ${outcome.grid}: ${outcome.missing} of ${outcome.planned.length} planned runs are not in the store yet (store-only: nothing was run); the results below use the ${outcome.planned.length - outcome.missing} that are\n`);
  }
  return outcome;
}
