/**
 * Micro-benchmark of the GMT mask on a parameter set shaped like the 0.82M-parameter reference
 * GPT (vocab 64, d 128, 4 layers, context 64). Prints median milliseconds per update for:
 * the threshold (exact select; on cpu also the readback and the kept bitset), the full `apply` (threshold,
 * mask and masked-gradient ops, kept fractions and Jaccard from the bitset: all GMT costs per
 * update), and, for comparison, `maskStatistics` — the tensor-op statistics the trainer runs for
 * strategies that do not hand over their own (GMT does, so the trainer skips it).
 *
 *   node --import tsx kernel-lib/test/bench/mask.bench.ts [cpu|wasm] [repeats]
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { GradientMasker, maskStatistics, type MaskScope } from '../../src/tuning/mask';
import { Rng } from '../../src/util/rng';

async function main(): Promise<void> {
  const backend = process.argv[2] ?? 'cpu';
  const repeats = Number(process.argv[3] ?? 15);
  await tf.setBackend(backend);
  await tf.ready();
  const shapes: { name: string; group: string; shape: number[] }[] = [
    { name: 'tok', group: 'embed', shape: [64, 128] },
    { name: 'pos', group: 'embed', shape: [64, 128] },
  ];
  for (let b = 0; b < 4; b++) {
    const g = `block.${b}`;
    for (const [n, s] of [['ln1.g', [128]], ['ln1.b', [128]], ['wqkv', [128, 384]], ['wo', [128, 128]], ['ln2.g', [128]], ['ln2.b', [128]], ['w1', [128, 512]], ['w2', [512, 128]]] as const) {
      shapes.push({ name: `blocks.${b}.${n}`, group: g, shape: [...s] });
    }
  }
  shapes.push({ name: 'lnf.g', group: 'head', shape: [128] }, { name: 'lnf.b', group: 'head', shape: [128] }, { name: 'out', group: 'head', shape: [128, 64] });
  const rng = new Rng(1);
  const grads = new Map<string, tf.Tensor>();
  let total = 0;
  for (const s of shapes) {
    const size = s.shape.reduce((a, b) => a * b, 1);
    total += size;
    const v = new Float32Array(size);
    for (let i = 0; i < size; i++) v[i] = (rng.next() - 0.5) * Math.exp(-4 * rng.next());
    grads.set(s.name, tf.tensor(v, s.shape));
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
  console.log(`backend ${tf.getBackend()}, ${shapes.length} tensors, ${total} entries, ${repeats} repeats (median ms)`);
  for (const scope of ['tensor', 'layer', 'global'] as MaskScope[]) {
    const masker = new GradientMasker(shapes, { ratio: 0.3, scope });
    const tThr: number[] = [];
    const tApply: number[] = [];
    const tStats: number[] = [];
    let prev: Map<string, tf.Tensor> | undefined;
    for (let r = 0; r < repeats + 2; r++) {
      let t = performance.now();
      await masker.thresholds(grads);
      const thr = performance.now() - t;
      t = performance.now();
      const out = await masker.apply(grads);
      const app = performance.now() - t;
      t = performance.now();
      await maskStatistics(out.masks, prev);
      const st = performance.now() - t;
      if (r >= 2) {
        tThr.push(thr);
        tApply.push(app);
        tStats.push(st);
      }
      for (const x of out.grads.values()) x.dispose();
      if (prev) for (const x of prev.values()) x.dispose();
      prev = out.masks;
    }
    if (prev) for (const x of prev.values()) x.dispose();
    const paths = backend === 'wasm' ? ` | select paths ${JSON.stringify(masker.selectCounts)}` : '';
    console.log(`scope ${scope.padEnd(6)} threshold ${median(tThr).toFixed(2)} ms | apply (threshold + ops + host stats) ${median(tApply).toFixed(2)} ms | maskStatistics (not run for gmt) ${median(tStats).toFixed(2)} ms${paths}`);
  }
  for (const g of grads.values()) g.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
