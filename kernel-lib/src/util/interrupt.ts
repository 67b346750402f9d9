/**
 * Cooperative cancellation from signals. In a terminal, Ctrl-C sends SIGINT; in a Jupyter
 * kernel (tslab), the interrupt button sends SIGINT to the kernel process. tslab then stops
 * waiting for the cell but cannot stop the work a cell started, so long-running helpers take
 * this signal and stop themselves at the next update boundary, keeping the partial result.
 */

/** A signal that aborts on SIGINT or SIGTERM to this process, until `release()`. */
export interface InterruptSignal {
  signal: AbortSignal;
  /** Stops listening (call when the work is over, also after an abort). */
  release(): void;
}

/**
 * Listens for SIGINT and SIGTERM while work runs; `onSignal` is told which arrived (once).
 * Adding a listener replaces Node's default of exiting at SIGINT/SIGTERM only while it lasts.
 */
export function interruptSignal(opts: { onSignal?: (sig: NodeJS.Signals) => void; parent?: AbortSignal } = {}): InterruptSignal {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!controller.signal.aborted) opts.onSignal?.(sig);
    controller.abort();
  };
  const onParent = (): void => controller.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  opts.parent?.addEventListener('abort', onParent);
  if (opts.parent?.aborted) controller.abort();
  return {
    signal: controller.signal,
    release() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      opts.parent?.removeEventListener('abort', onParent);
    },
  };
}
