/** `gmt-lab worker`: pull runs of queued sweeps from Redis and make them (see `sweep/queue.ts`). */
import { defaultSweepLayout } from '../../sweep/runner';
import { DEFAULT_STALL_MS, DEFAULT_STOP_MS, runQueueWorker } from '../../sweep/queue';
import { interruptSignal } from '../../util/interrupt';
import { UsageError } from '../args';
import { defineCommand } from '../command';
import { describeRecord } from './sweep';

export default defineCommand({
  name: 'worker',
  summary: 'Make the runs of sweeps queued on Redis (gmt-lab sweep --queue), on this machine',
  description:
    'Pulls runs from the queue for this machine\'s execution context (kernel-lib version, backend, threads), makes each with the same code as a local sweep, ' +
    'and hands its record back to the coordinator. Runs until SIGINT/SIGTERM: runs in progress stop at their next update and go back to the queue for another worker; ' +
    'it exits within --stop-timeout seconds of the signal, also while Redis is unreachable.',
  options: {
    queue: { type: 'string', summary: 'Redis URL: redis://[:password@]host:port[/db], rediss:// for TLS', metavar: 'URL' },
    jobs: { type: 'number', summary: `runs at a time (default ${defaultSweepLayout().jobs} here, one per core)`, min: 1, max: 64, integer: true },
    threads: { type: 'number', summary: 'data-parallel threads per run (default 1; must match the coordinator\'s --threads)', min: 1, max: 8, integer: true },
    'stop-timeout': { type: 'number', summary: `seconds from SIGINT/SIGTERM to exit, also while Redis is unreachable; runs not handed back by then are taken over after --stall-timeout (default ${DEFAULT_STOP_MS / 1000})`, min: 5, max: 3600 },
    'stall-timeout': { type: 'number', summary: `seconds without a lock renewal before another worker takes a run over (default ${DEFAULT_STALL_MS / 1000})`, min: 1, max: 3600 },
    cache: { type: 'string', summary: 'local store of the runs this worker made, returned again without training if a hand-back was lost (default ~/.cache/gmt-lab/worker-results.jsonl)', metavar: 'FILE' },
    'no-cache': { type: 'boolean', summary: 'keep no local store' },
    name: { type: 'string', summary: 'name shown by the coordinator (default host:pid)' },
  },
  async run({ options: o }, io) {
    if (o.queue === undefined) throw new UsageError('--queue URL is required');
    const stop = interruptSignal({ onSignal: (sig) => io.stderr(`gmt-lab worker: ${sig}: stopping within ${(o['stop-timeout'] ?? DEFAULT_STOP_MS / 1000)} s; runs in progress go back to the queue at their next update\n`) });
    try {
      const outcome = await runQueueWorker({
        queue: o.queue,
        jobs: o.jobs,
        threads: o.threads,
        stallMs: o['stall-timeout'] === undefined ? undefined : Math.round(o['stall-timeout'] * 1000),
        stopMs: o['stop-timeout'] === undefined ? undefined : Math.round(o['stop-timeout'] * 1000),
        cache: o['no-cache'] ? false : o.cache,
        name: o.name,
        signal: stop.signal,
        onEvent: (e) => {
          if (e.type === 'ready') {
            io.stderr(`gmt-lab worker ${e.worker}: waiting for runs on ${e.queue} at ${e.url} (${e.context.kernelLib}, ${e.context.backend}, ${e.context.gradientPath}), ${e.jobs} at a time${e.cache ? `; cache ${e.cache}` : ''}\n`);
          } else if (e.type === 'start') {
            io.stderr(`  ${e.label}: started${e.attempt > 1 ? ` (attempt ${e.attempt})` : ''}\n`);
          } else if (e.type === 'end') {
            io.stderr(`  ${e.record.label}: ${e.fromCache ? 'returned from the cache' : describeRecord(e.record)}\n`);
          } else if (e.type === 'handback') {
            io.stderr(`  ${e.label}: stopped, back in the queue\n`);
          } else io.stderr(`gmt-lab worker: ${e.message}\n`);
        },
      });
      io.stderr(`gmt-lab worker: stopped; ${outcome.finished} runs made${outcome.fromCache ? `, ${outcome.fromCache} returned from the cache` : ''}\n`);
      const code = stop.signal.aborted ? 130 : 0;
      // The stop is bounded; so is the exit, should a connection Redis never answered keep the process alive.
      setTimeout(() => process.exit(code), 1000).unref();
      return code;
    } finally {
      stop.release();
    }
  },
});
