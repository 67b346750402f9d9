/**
 * Benchmark of the model on the current machine: update time of the reference model (fast and
 * plain paths) and greedy generation throughput. Prints one JSON object.
 *
 *   node --import tsx kernel-lib/src/model/bench-model.ts [wasm|cpu] [--steps 10] [--no-plain]
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { benchGeneration, benchReferenceModel } from './bench';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const backend = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a)) ?? 'wasm';
  const stepsAt = args.indexOf('--steps');
  const steps = stepsAt >= 0 ? Number(args[stepsAt + 1]) : 10;
  if (!(await tf.setBackend(backend))) throw new Error(`backend "${backend}" is not available`);
  const fast = benchReferenceModel({ steps, warmup: 3 });
  const plain = args.includes('--no-plain') ? null : benchReferenceModel({ steps: Math.max(3, Math.floor(steps / 3)), warmup: 1, fast: false });
  const generation = benchGeneration();
  console.log(JSON.stringify({ backend, fast, plain, generation }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
