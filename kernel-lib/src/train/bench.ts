/**
 * The update benchmark behind `gmt-lab bench` / `npm run bench` (DESIGN §1, finding 3: GMT
 * costs about what SFT costs).
 *
 * Every method gets its own `Trainer` (own optimizer state, own strategy) on one shared model
 * and one fixed batch, and the methods take turns, one update each per round, in an order
 * shuffled every round (seeded). Machine load therefore hits all methods alike, and the overhead
 * ratio of a method over SFT is a ratio of medians taken under the same conditions. Shuffled
 * rather than rotated: in a fixed cycle every method always runs right after the same other
 * method, so whatever that one leaves behind (garbage to collect, evicted caches) would be a
 * systematic error instead of noise (measured: about half a point of `extraOverSft` for two
 * methods; docs/performance.md).
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { GPT } from '../model/gpt';
import type { GPTConfig } from '../model/config';
import { randomHostBatch } from '../model/bench';
import { checkNumber, ConfigError } from '../util/config';
import { Trainer } from './trainer';
import type { StrategySpec } from './trainer';
import { medianInterval, quantile } from '../util/stats';
import { deriveSeed, Rng } from '../util/rng';
import { kernelVariant, type KernelVariant } from '../backend/wasm-kernels';
import { engineChoice } from '../backend/engine';

/** One method to time: a label for tables and its registry spec. */
export interface BenchMethod {
  label: string;
  strategy: StrategySpec;
}

/**
 * The default line-up: SFT, a second SFT trainer as a control (the same work timed again, so its
 * "overhead" shows how far this machine's noise moves the ratios), GMT at each scope, and every
 * baseline at default options.
 */
export const DEFAULT_BENCH_METHODS: readonly BenchMethod[] = Object.freeze([
  { label: 'sft', strategy: { name: 'sft' } },
  { label: 'sft (repeat)', strategy: { name: 'sft' } },
  { label: 'gmt (tensor)', strategy: { name: 'gmt', options: { ratio: 0.3, scope: 'tensor' } } },
  { label: 'gmt (layer)', strategy: { name: 'gmt', options: { ratio: 0.3, scope: 'layer' } } },
  { label: 'gmt (global)', strategy: { name: 'gmt', options: { ratio: 0.3, scope: 'global' } } },
  { label: 'random-mask', strategy: { name: 'random-mask' } },
  { label: 'childtuning-f', strategy: { name: 'childtuning-f' } },
  { label: 'childtuning-d', strategy: { name: 'childtuning-d' } },
  { label: 'hft', strategy: { name: 'hft' } },
  { label: 'sift', strategy: { name: 'sift' } },
]);

/** The reference configuration of the speed issue: 0.82M parameters, batch 16 × 64 tokens. */
export const REFERENCE_BENCH_MODEL: Readonly<Pick<GPTConfig, 'vocabSize' | 'dModel' | 'nLayers' | 'nHeads' | 'contextLength'>> = Object.freeze({
  vocabSize: 64, dModel: 128, nLayers: 4, nHeads: 4, contextLength: 64,
});

/** Options of `benchUpdates`. */
export interface BenchOptions {
  model: Partial<GPTConfig>;
  /** Sequences per update (one micro-batch; the benchmark uses accum 1). */
  batchSize: number;
  /** Timed rounds (each method one update per round); at least 10. */
  steps: number;
  /** Untimed rounds first. */
  warmup: number;
  methods: readonly BenchMethod[];
  seed: number;
  /**
   * Which model code computes the gradients: `fused` (default; the wasm kernels of
   * `model/fused.ts`, falling back to `fast` where they cannot run), `fast` (tfjs ops with
   * hand-written gradients) or `plain` (tfjs autodiff, the reference).
   */
  path?: ModelPath;
  /** Threads computing each update's gradients (data parallelism, fused path only; default 1). */
  threads?: number;
  /** Called after every timed round with the round index (for progress). */
  onRound?: (round: number) => void;
}

/** The model code paths `gmt-lab bench --path` can time. */
export const MODEL_PATHS = ['fused', 'fast', 'plain'] as const;
export type ModelPath = typeof MODEL_PATHS[number];

/** Timing of one method. */
export interface BenchRow {
  label: string;
  strategy: StrategySpec;
  /** Median wall time of a whole update (gradients, method, AdamW, statistics readback). */
  medianMs: number;
  p10Ms: number;
  p90Ms: number;
  /** Median time inside the method's `transform` (mask computation and application). */
  transformMedianMs: number;
  stepsPerSecond: number;
  tokensPerSecond: number;
  /** Median update time over SFT's median update time (1.03 = 3% slower). */
  overVsSft: number;
  /** Median of per-round ratios to SFT in the same round (robust to drifting load). */
  pairedOverVsSft: number;
  /**
   * 95% confidence interval of `pairedOverVsSft` (sign-test interval over the rounds, see
   * `medianInterval`): what this run can tell apart from noise.
   */
  pairedCi95: [number, number];
  /** Median time of an update outside the gradient computation (method, optimizer, statistics). */
  outsideGradientsMs: number;
  /**
   * The method's own cost as a fraction of SFT's median update: the median over rounds of
   * (update − gradient time) minus SFT's in the same round. Every method computes the same
   * gradients, and that computation is where this machine's noise lives, so this is the precise
   * figure of what a method adds; `pairedOverVsSft` is the end-to-end check that it slows
   * nothing else down.
   */
  extraOverSft: number;
  /** 95% confidence interval of `extraOverSft` (sign-test interval over the rounds). */
  extraCi95: [number, number];
  msPerStep: number[];
}

/** The record `gmt-lab bench` writes to `bench/results.json`. */
export interface BenchResult {
  kind: 'gmt-lab/bench';
  backend: string;
  threads: number;
  /** The model code path that ran, and why it is not the one asked for (when it is not). */
  path: ModelPath;
  pathNote?: string;
  /** Threads that computed each update's gradients (main thread + data-parallel workers). */
  gradientThreads: number;
  /** The kernel build of the fused path on the wasm engine (see `KernelVariant`); absent on the tfjs paths and the native engine. */
  kernels?: KernelVariant;
  /** The model's gradient path: engine, build and threads (`GPT.gradientPath()`). */
  gradientPath?: string;
  model: GPTConfig;
  params: number;
  batchSize: number;
  tokensPerUpdate: number;
  steps: number;
  warmup: number;
  rows: BenchRow[];
  memory: { tfBytes: number; tfTensors: number; rssBytes: number };
  machine: { cpus: number; cpuModel: string; node: string; platform: string };
}


/** The machine fields of a {@link BenchResult}. */
export function benchMachine(): BenchResult['machine'] {
  const cpus = os.cpus();
  return { cpus: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', node: process.version, platform: `${process.platform}-${process.arch}` };
}

/**
 * Times `steps` interleaved updates of every method after `warmup` rounds.
 * Must run on an initialised backend; leaves no tensors behind.
 */
export async function benchUpdates(opts: BenchOptions): Promise<Omit<BenchResult, 'machine' | 'threads'>> {
  checkNumber('bench steps', opts.steps, { min: 10, integer: true });
  checkNumber('bench warmup', opts.warmup, { min: 0, integer: true });
  checkNumber('bench batchSize', opts.batchSize, { min: 1, integer: true });
  if (opts.methods.length === 0) throw new ConfigError('bench: no methods to time');
  if (!opts.methods.some((m) => m.strategy.name === 'sft')) throw new ConfigError('bench: the line-up must include sft (overheads are relative to it)');
  const asked = opts.path ?? 'fused';
  if (!(MODEL_PATHS as readonly string[]).includes(asked)) throw new ConfigError(`bench path must be one of ${MODEL_PATHS.join(', ')}, got ${asked}`);
  const model = new GPT({ ...opts.model, seed: opts.seed }, { fast: asked !== 'plain', fused: asked === 'fused', workers: opts.threads ?? 1 });
  const fusedWhy = asked === 'fused' ? model.fusedReason() : undefined;
  const path: ModelPath = fusedWhy ? 'fast' : asked;
  const { vocabSize, contextLength } = model.config;
  const batch = randomHostBatch(vocabSize, opts.batchSize, contextLength, opts.seed + 1);
  const totalRounds = opts.warmup + opts.steps;
  const trainers: Trainer[] = [];
  try {
    for (const m of opts.methods) {
      trainers.push(await Trainer.create(model, {
        strategy: m.strategy,
        steps: totalRounds,
        accum: 1,
        lr: 1e-4,
        seed: opts.seed,
        recordKeptByTensor: false,
        nextBatch: () => batch,
        initBatches: [batch],
      }));
    }
    const times: number[][] = opts.methods.map(() => []);
    const transform: number[][] = opts.methods.map(() => []);
    const outside: number[][] = opts.methods.map(() => []);
    const orderRng = new Rng(deriveSeed(opts.seed, 'bench-order'));
    const order = trainers.map((_, i) => i);
    for (let round = 0; round < totalRounds; round++) {
      orderRng.shuffle(order);
      for (const i of order) {
        const rec = await (trainers[i] as Trainer).step();
        if (round >= opts.warmup) {
          (times[i] as number[]).push(rec.ms);
          (transform[i] as number[]).push(rec.transformMs);
          (outside[i] as number[]).push(rec.ms - rec.gradientsMs);
        }
      }
      if (round >= opts.warmup) opts.onRound?.(round - opts.warmup);
    }
    // The first SFT entry is the reference; a second one is a control like any other method.
    const sftIndex = opts.methods.findIndex((m) => m.strategy.name === 'sft');
    const sftTimes = times[sftIndex] as number[];
    const sftMedian = quantile(sftTimes, 0.5);
    const tokens = opts.batchSize * contextLength;
    const rows: BenchRow[] = opts.methods.map((m, i) => {
      const ms = times[i] as number[];
      const med = quantile(ms, 0.5);
      const ratios = ms.map((x, r) => x / (sftTimes[r] as number));
      const extra = (outside[i] as number[]).map((x, r) => (x - (outside[sftIndex] as number[])[r]!) / sftMedian);
      return {
        label: m.label,
        strategy: m.strategy,
        medianMs: med,
        p10Ms: quantile(ms, 0.1),
        p90Ms: quantile(ms, 0.9),
        transformMedianMs: quantile(transform[i] as number[], 0.5),
        stepsPerSecond: 1000 / med,
        tokensPerSecond: (tokens * 1000) / med,
        overVsSft: med / sftMedian,
        pairedOverVsSft: quantile(ratios, 0.5),
        pairedCi95: medianInterval(ratios),
        outsideGradientsMs: quantile(outside[i] as number[], 0.5),
        extraOverSft: quantile(extra, 0.5),
        extraCi95: medianInterval(extra),
        msPerStep: ms,
      };
    });
    const mem = tf.memory();
    return {
      kind: 'gmt-lab/bench',
      backend: tf.getBackend(),
      path,
      gradientThreads: fusedWhy ? 1 : model.workers + 1,
      ...(fusedWhy ? { pathNote: `fused path skipped: ${fusedWhy}` } : {}),
      ...(path === 'fused' && engineChoice().engine === 'wasm' ? { kernels: kernelVariant().variant } : {}),
      gradientPath: model.gradientPath(),
      model: model.config,
      params: model.numParams,
      batchSize: opts.batchSize,
      tokensPerUpdate: tokens,
      steps: opts.steps,
      warmup: opts.warmup,
      rows,
      memory: { tfBytes: mem.numBytes, tfTensors: mem.numTensors, rssBytes: process.memoryUsage().rss },
    };
  } finally {
    for (const t of trainers) t.dispose();
    model.dispose();
  }
}
