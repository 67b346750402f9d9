/**
 * Child process of the determinism test: fine-tunes the nano base for a few updates with every
 * registered strategy at the seed given in argv[2] and prints `{method: weightsSha256}` as JSON.
 */
import { initBackend } from '../../src/backend';
import { finetune } from '../../src/sweep/finetune';
import { listStrategies } from '../../src/tuning/registry';

async function main(): Promise<void> {
  await initBackend({ quiet: true });
  const seed = Number(process.argv[2] ?? 0);
  const out: Record<string, string> = {};
  for (const method of listStrategies()) {
    const r = await finetune({ base: 'nano', method, steps: 3, warmup: 1, accum: 2, batchSize: 4, seed, testSize: 0, valSize: 4 });
    out[method] = r.train.weightsSha256;
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

void main();
