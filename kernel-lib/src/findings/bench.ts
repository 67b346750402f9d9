/**
 * Notebook 04's interleaved update-time benchmark, cached beside the result store: the file
 * holds the benchmark's options, the execution context and the result, and is reused when both
 * match (so `npm run reproduce` re-times nothing it already has). `fresh` times again.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { GPT } from '../model/gpt';
import { randomHostBatch } from '../model/bench';
import { Trainer } from '../train/trainer';
import { createHash } from 'node:crypto';
import { initBackend } from '../backend';
import { CharTokenizer } from '../data/tokenizer';
import { gptPreset, type GPTPresetName } from '../model/presets';
import { benchMachine, benchUpdates, DEFAULT_BENCH_METHODS, type BenchResult } from '../train/bench';
import { writeJsonAtomic } from '../util/fsx';
import { canonicalJson, currentExecutionContext, type ExecutionContext } from '../sweep/grid';

/** What decides a benchmark. */
export interface FindingsBenchOptions {
  preset: GPTPresetName;
  /** Sequences per update (the protocol's micro-batch). */
  batchSize: number;
  steps: number;
  warmup: number;
  seed: number;
}

/** The cache file's contents. */
export interface CachedBench {
  kind: 'gmt-lab/findings-bench';
  key: string;
  options: FindingsBenchOptions;
  context: ExecutionContext;
  date: string;
  result: BenchResult;
}

function benchKey(options: FindingsBenchOptions, context: ExecutionContext): string {
  return createHash('sha256').update(canonicalJson({ options, context, methods: DEFAULT_BENCH_METHODS })).digest('hex').slice(0, 32);
}

/**
 * Runs the benchmark unless `file` already holds one with the same options and context. Each
 * engine keeps its own file (`findingsPaths().bench[engine]`), so timing one never replaces the
 * other's figures.
 */
export async function cachedBench(options: FindingsBenchOptions, file: string, opts: { fresh?: boolean; onRound?: (round: number) => void } = {}): Promise<CachedBench & { cached: boolean }> {
  const backend = await initBackend({ quiet: true });
  const context = currentExecutionContext(backend.backend);
  const key = benchKey(options, context);
  if (!opts.fresh && existsSync(file)) {
    const old = JSON.parse(readFileSync(file, 'utf8')) as CachedBench;
    if (old.kind === 'gmt-lab/findings-bench' && old.key === key) return { ...old, cached: true };
  }
  const model = gptPreset(options.preset, { vocabSize: new CharTokenizer().vocabSize });
  const core = await benchUpdates({ model, batchSize: options.batchSize, steps: options.steps, warmup: options.warmup, methods: DEFAULT_BENCH_METHODS, seed: options.seed, onRound: opts.onRound });
  const entry: CachedBench = { kind: 'gmt-lab/findings-bench', key, options, context, date: new Date().toISOString(), result: { ...core, threads: backend.threads, machine: benchMachine() } };
  writeJsonAtomic(file, entry);
  return { ...entry, cached: false };
}

/** Memory a method holds during training, measured on the backend. */
export interface MethodMemory {
  label: string;
  /** Live tensor bytes while training (model, optimizer state, the method's masks), after two updates. */
  trainingBytes: number;
  /** The part of it beyond SFT's. */
  overSftBytes: number;
  tensors: number;
}

/**
 * For each method of the benchmark line-up: the tensor memory held after two updates of a fresh
 * trainer on one model (SFT's optimizer state included), and the difference to SFT's.
 */
export async function methodMemory(preset: GPTPresetName, batchSize: number, seed = 0): Promise<MethodMemory[]> {
  await initBackend({ quiet: true });
  const config = gptPreset(preset, { vocabSize: new CharTokenizer().vocabSize, seed });
  const model = new GPT(config);
  const batch = randomHostBatch(config.vocabSize, batchSize, config.contextLength, seed);
  const out: MethodMemory[] = [];
  try {
    const beforeTensors = tf.memory().numTensors;
    for (const m of DEFAULT_BENCH_METHODS.filter((x) => x.label !== 'sft (repeat)')) {
      const trainer = await Trainer.create(model, { strategy: m.strategy, steps: 10, accum: 1, nextBatch: () => batch, seed });
      try {
        await trainer.step();
        await trainer.step();
        out.push({ label: m.label, trainingBytes: tf.memory().numBytes, overSftBytes: 0, tensors: tf.memory().numTensors - beforeTensors });
      } finally {
        trainer.dispose();
      }
    }
  } finally {
    model.dispose();
  }
  const sft = out.find((r) => r.label === 'sft')?.trainingBytes ?? 0;
  for (const r of out) r.overSftBytes = r.trainingBytes - sft;
  return out;
}

/** A cached benchmark file's contents, or null when there is none (or it is not one). */
export function readCachedBench(file: string): CachedBench | null {
  if (!existsSync(file)) return null;
  const b = JSON.parse(readFileSync(file, 'utf8')) as CachedBench;
  return b.kind === 'gmt-lab/findings-bench' ? b : null;
}

/** One row of {@link enginesTable}: a method's update time on one engine. */
export interface EngineBenchRow {
  engine: string;
  method: string;
  medianMs: number;
  /** GMT's (or the method's) update time over SFT's: median of per-round ratios and its 95% interval. */
  overSft: number;
  ciLow: number;
  ciHigh: number;
  tokensPerSecond: number;
}

/**
 * The cached benchmarks of every engine side by side (those whose files exist): per engine and
 * method, the median update time and the ratio to SFT. Empty when none is cached.
 */
export function enginesTable(files: Readonly<Record<string, string>>): EngineBenchRow[] {
  return Object.entries(files).flatMap(([engine, file]) => {
    const b = readCachedBench(file);
    if (!b) return [];
    return b.result.rows.map((r) => ({
      engine: `${engine} (${b.context.gradientPath})`, method: r.label, medianMs: r.medianMs,
      overSft: r.pairedOverVsSft, ciLow: r.pairedCi95[0], ciHigh: r.pairedCi95[1], tokensPerSecond: r.tokensPerSecond,
    }));
  });
}
