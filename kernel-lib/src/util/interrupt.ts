/**
 * Cooperative cancellation from signals. In a terminal, Ctrl-C sends SIGINT; in a Jupyter
 * kernel (tslab), the interrupt button sends SIGINT to the kernel process, and tslab then
 * abandons the running cell: its later output is dropped by the frontend and its result never
 * assigned, while the work it started goes on. Long-running helpers therefore take the signal
 * and stop themselves at the next update boundary, keeping the partial result.
 *
 * One listener per signal is installed when this module loads and never removed. tslab runs a
 * cell's synchronous part through vm's `breakOnSigint`, which takes the SIGINT listeners off
 * meanwhile; a listener added and removed inside a training cell was seen to leave the kernel
 * dying of the interrupt (exit by SIGINT). Loading kernel-lib (the notebook's first cell)
 * installs it before the cells that train. While no work listens,
 * the listener does what would have happened without it: in a command, the process ends as if
 * killed by the signal; in a kernel, nothing for SIGINT (tslab handles the interrupt).
 */

/** A signal that aborts on SIGINT or SIGTERM to this process, until `release()`. */
export interface InterruptSignal {
  signal: AbortSignal;
  /** Stops listening and gives the signals back (call also after an abort). */
  release(): void;
}

type Signal = 'SIGINT' | 'SIGTERM';
interface Active {
  controller: AbortController;
  exclusive: boolean;
  onSignal?: (sig: NodeJS.Signals) => void;
}

const active = new Set<Active>();
/** Listeners set aside while exclusive work runs (tslab's cell interrupt), per signal. */
const setAside = new Map<Signal, ((...args: unknown[]) => void)[]>();
const installed = new Set<Signal>();
let kernelMode = false;

function dispatch(sig: Signal): void {
  const live = [...active].filter((a) => !a.controller.signal.aborted);
  if (live.length > 0) {
    for (const a of live) {
      a.onSignal?.(sig);
      a.controller.abort();
    }
    return;
  }
  if (active.size > 0) {
    // A second interrupt while the work is still stopping: pass it on.
    for (const l of setAside.get(sig) ?? []) l(sig);
    return;
  }
  // In a kernel an idle interrupt is tslab's business; SIGTERM still ends the process.
  if ((sig === 'SIGINT' && (kernelMode || inKernel())) || process.listenerCount(sig) > 1) return;
  // Nothing listens: behave as the default disposition would (end the process by the signal).
  process.removeListener(sig, dispatch);
  installed.delete(sig);
  process.kill(process.pid, sig);
}

/** True in a tslab kernel process (its Jupyter module is loaded). */
function inKernel(): boolean {
  return Object.keys(require.cache).some((f) => /[\\/]tslab[\\/]dist[\\/]jupyter\.js$/.test(f));
}

function install(sig: Signal): void {
  if (installed.has(sig)) return;
  installed.add(sig);
  process.on(sig, dispatch);
}

/**
 * Listens for SIGINT and SIGTERM while work runs; `onSignal` is told which arrived (once).
 * With `exclusive` (what notebook helpers pass inside a kernel), the other listeners (tslab's
 * cell interrupt) are set aside meanwhile, so an interrupt ends the work but not the cell, which
 * shows and returns the partial result; a second interrupt before the work has stopped is passed
 * on to them (tslab abandons the cell as usual).
 */
export function interruptSignal(opts: { onSignal?: (sig: NodeJS.Signals) => void; parent?: AbortSignal; exclusive?: boolean } = {}): InterruptSignal {
  const entry: Active = { controller: new AbortController(), exclusive: opts.exclusive === true, onSignal: opts.onSignal };
  const setAsideOthers = (): void => {
    if (!active.has(entry)) return;
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const others = process.listeners(sig).filter((l) => l !== dispatch) as ((...args: unknown[]) => void)[];
      if (others.length) setAside.set(sig, [...(setAside.get(sig) ?? []), ...others]);
      for (const l of others) process.removeListener(sig, l);
    }
  };
  install('SIGINT');
  install('SIGTERM');
  active.add(entry);
  if (entry.exclusive) {
    kernelMode = true;
    setAsideOthers();
    // A cell's synchronous part runs with tslab's SIGINT listener taken off (vm's breakOnSigint
    // puts it back when that part ends), so it is set aside once more right after.
    setImmediate(setAsideOthers);
  }
  const onParent = (): void => entry.controller.abort();
  opts.parent?.addEventListener('abort', onParent);
  if (opts.parent?.aborted) entry.controller.abort();
  let released = false;
  return {
    signal: entry.controller.signal,
    release() {
      if (released) return;
      released = true;
      active.delete(entry);
      opts.parent?.removeEventListener('abort', onParent);
      if (![...active].some((a) => a.exclusive)) {
        for (const [sig, listeners] of setAside) for (const l of listeners) process.on(sig, l);
        setAside.clear();
      }
    },
  };
}

// Before any cell that trains (see the file comment).
install('SIGINT');
install('SIGTERM');
