/**
 * A sweep worker process (forked by `runSweep`): initialises the backend, reports its execution
 * context, then executes the runs it is sent, one at a time, and sends back each record. It
 * exits when its parent goes away (the IPC channel closes), so killing a sweep kills its workers.
 */
import { initBackend } from '../backend';
import { executeRun } from './execute';
import { currentExecutionContext, type PlannedRun } from './grid';
import type { ParentMessage, WorkerMessage } from './runner';

const send = (m: WorkerMessage): void => {
  if (process.connected) process.send?.(m);
};

async function main(): Promise<void> {
  if (!process.send) throw new Error('sweep worker: must be started by runSweep (no IPC channel)');
  process.on('disconnect', () => process.exit(0));
  const report = await initBackend({ quiet: true });
  const context = currentExecutionContext(report.backend);
  let queue = Promise.resolve();
  let running: AbortController | undefined;
  process.on('message', (m: ParentMessage) => {
    if (m.type === 'cancel') {
      running?.abort();
      return;
    }
    queue = queue.then(async () => {
      running = new AbortController();
      const record = await executeRun(m.run as PlannedRun, context, {
        grid: m.grid,
        jobs: m.jobs,
        signal: running.signal,
        onProgress: (p) => send({ type: 'progress', progress: p }),
      });
      running = undefined;
      send({ type: 'record', record });
    });
  });
  // The parent forwards SIGINT/SIGTERM as a cancel message; a terminal's Ctrl-C reaches the
  // whole process group, so the worker ignores the signal itself and waits for that message.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => running?.abort());
  send({ type: 'ready', context });
}

main().catch((e) => {
  process.stderr.write(`sweep worker: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
