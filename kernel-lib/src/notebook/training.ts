/**
 * A training run's live view in a notebook cell: a progress bar and a loss curve, both updated
 * in place (the curve at most twice a second), and the final curve with its PNG fallback.
 * Taught in notebooks/01; plain progress lines outside a notebook.
 */
import type { EvalRecord, UpdateRecord } from '../train/trainer';
import { lineFigure, type LineSeries } from '../plots/figures';
import type { PlotlyFigure } from '../plots/theme';
import { liveFigure, progress } from './display';
import { interruptSignal } from '../util/interrupt';
import { inNotebook } from './channel';

/** Hooks to pass to `train`/`finetune`, and `finish` to call when it returns. */
export interface TrainingDisplay {
  onUpdate: (u: UpdateRecord) => void;
  onEval: (e: EvalRecord) => void;
  /**
   * Aborts when the kernel is interrupted (SIGINT) until `finish`: pass it to `finetune`/`train`
   * so that the interrupt button stops training at the next update and keeps the partial result.
   */
  signal: AbortSignal;
  /** Draws the final curve (with PNG) and closes the bar; returns the figure for export. */
  finish: () => Promise<PlotlyFigure>;
}

/**
 * ```ts
 * const view = gmt.trainingDisplay(steps, { label: 'gmt', method: 'gmt' });
 * const result = await gmt.finetune(config, { onUpdate: view.onUpdate, onEval: view.onEval, signal: view.signal });
 * const fig = await view.finish();
 * ```
 */
export function trainingDisplay(steps: number, opts: { label?: string; method?: string; title?: string } = {}): TrainingDisplay {
  const bar = progress(steps, { label: opts.label ?? 'train' });
  const live = liveFigure({ minIntervalMs: 500 });
  const x: number[] = [];
  const loss: number[] = [];
  const evalX: number[] = [];
  const evalY: number[] = [];
  const name = opts.label ?? opts.method ?? 'training';
  const interrupt = interruptSignal({ exclusive: inNotebook() });
  const figure = (): PlotlyFigure => {
    const series: LineSeries[] = [{ name: `${name}: training loss`, colorKey: opts.method ?? name, x, y: loss, markers: false }];
    if (evalX.length) series.push({ name: `${name}: validation loss`, colorKey: opts.method ?? name, x: evalX, y: evalY, dash: 'dash', markers: true });
    return lineFigure({ series, title: opts.title ?? `Loss while training (${name})`, xTitle: 'update', yTitle: 'loss', logY: true, legend: 'top' });
  };
  return {
    signal: interrupt.signal,
    onUpdate(u) {
      x.push(u.step);
      loss.push(u.loss);
      bar.update(u.step, { loss: u.loss, ...(u.keptFraction < 1 ? { kept: u.keptFraction } : {}) });
      live.update(figure());
    },
    onEval(e) {
      if (typeof e.metrics.valLoss === 'number') {
        evalX.push(e.step);
        evalY.push(e.metrics.valLoss);
      }
    },
    async finish() {
      interrupt.release();
      bar.finish(loss.length ? { loss: loss[loss.length - 1] as number } : undefined);
      const fig = figure();
      await live.close(fig);
      return fig;
    },
  };
}
