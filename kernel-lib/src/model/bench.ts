/**
 * Timing of optimizer updates (forward + backward + Adam apply) for the `gmt-lab bench`
 * command and for profiling the model. Timings on a shared machine are noisy: report
 * medians over several steps after warm-up.
 */
import * as tf from '@tensorflow/tfjs';
import type { HostBatch, TensorBatch, TrainableModel } from '../types';
import { Rng } from '../util/rng';
import { generate } from './generate';
import { GPT } from './gpt';
import type { GPTConfig } from './config';
import { median } from '../util/stats';

/** Result of `timeUpdates`: milliseconds per update, in run order, and summary statistics. */
export interface UpdateTimings {
  backend: string;
  steps: number;
  msPerStep: number[];
  medianMs: number;
  minMs: number;
}

/** Options of `timeUpdates`. */
export interface TimeUpdatesOptions {
  /** Timed updates (default 10). */
  steps?: number;
  /** Untimed updates first, to compile kernels and fill caches (default 3). */
  warmup?: number;
  /** Adam learning rate (default 1e-3). */
  learningRate?: number;
}


/**
 * Runs `warmup + steps` Adam updates of `model` on `batch` and times each one
 * (`tf.variableGrads` of the loss, `applyGradients`, and a `dataSync` barrier on the loss).
 * The model's weights change; the optimizer is created and disposed here.
 */
export function timeUpdates(model: TrainableModel, batch: TensorBatch, opts: TimeUpdatesOptions = {}): UpdateTimings {
  const steps = opts.steps ?? 10;
  const warmup = opts.warmup ?? 3;
  const optimizer = tf.train.adam(opts.learningRate ?? 1e-3);
  const vars = model.params.map((p) => p.variable);
  const msPerStep: number[] = [];
  try {
    for (let i = 0; i < warmup + steps; i++) {
      const t0 = performance.now();
      const { value, grads } = tf.variableGrads(() => model.loss(batch), vars);
      optimizer.applyGradients(grads as tf.NamedTensorMap as never);
      value.dataSync();
      const ms = performance.now() - t0;
      value.dispose();
      tf.dispose(grads);
      if (i >= warmup) msPerStep.push(ms);
    }
  } finally {
    optimizer.dispose();
  }
  return { backend: tf.getBackend(), steps, msPerStep, medianMs: median(msPerStep), minMs: Math.min(...msPerStep) };
}

/** A random host batch of token ids (all weights 1), drawn from `seed`. */
export function randomHostBatch(vocabSize: number, batchSize: number, seqLen: number, seed: number): HostBatch {
  const rng = new Rng(seed);
  const n = batchSize * seqLen;
  const inputs = new Int32Array(n);
  const targets = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    inputs[i] = rng.int(0, vocabSize - 1);
    targets[i] = rng.int(0, vocabSize - 1);
  }
  return { batchSize, seqLen, inputs, targets, weights: new Float32Array(n).fill(1) };
}

/** The reference benchmark model: vocab 64, d 128, 4 layers, 4 heads, context 64 (0.82M params). */
export const REFERENCE_BENCH_CONFIG: Partial<GPTConfig> = { vocabSize: 64, contextLength: 64, dModel: 128, nLayers: 4, nHeads: 4, seed: 0 };

/**
 * Times updates of the reference model (batch 16 × 64 tokens) on the current backend.
 * `fast: false` times the plain reference path.
 */
export function benchReferenceModel(opts: TimeUpdatesOptions & { fast?: boolean; batchSize?: number } = {}): UpdateTimings {
  const model = new GPT(REFERENCE_BENCH_CONFIG, { fast: opts.fast ?? true });
  const host = randomHostBatch(64, opts.batchSize ?? 16, 64, 1);
  const batch: TensorBatch = {
    inputs: tf.tensor2d(host.inputs, [host.batchSize, host.seqLen], 'int32'),
    targets: tf.tensor2d(host.targets, [host.batchSize, host.seqLen], 'int32'),
    weights: tf.tensor2d(host.weights, [host.batchSize, host.seqLen]),
  };
  try {
    return timeUpdates(model, batch, opts);
  } finally {
    tf.dispose([batch.inputs, batch.targets, batch.weights]);
    model.dispose();
  }
}

/** Result of `benchGeneration`. */
export interface GenerationTimings {
  backend: string;
  prompts: number;
  newTokens: number;
  seconds: number;
  tokensPerSecond: number;
}

/**
 * Times greedy generation on a model of `config` (default: micro preset, vocabulary 80):
 * `prompts` random prompts of 40–70 tokens, `maxNewTokens` each (the evaluation workload).
 */
export function benchGeneration(opts: { prompts?: number; maxNewTokens?: number; config?: Partial<GPTConfig>; seed?: number } = {}): GenerationTimings {
  const config = opts.config ?? { contextLength: 128, dModel: 128, nLayers: 4, nHeads: 4, vocabSize: 80 };
  const model = new GPT(config);
  const V = model.config.vocabSize;
  const rng = new Rng(opts.seed ?? 1);
  const prompts = Array.from({ length: opts.prompts ?? 500 }, () => Array.from({ length: rng.int(40, 70) }, () => rng.int(0, V - 1)));
  try {
    const t0 = performance.now();
    const out = generate(model, prompts, { maxNewTokens: opts.maxNewTokens ?? 60 });
    const seconds = (performance.now() - t0) / 1000;
    const newTokens = out.reduce((n, o) => n + o.length, 0);
    return { backend: tf.getBackend(), prompts: prompts.length, newTokens, seconds, tokensPerSecond: newTokens / seconds };
  } finally {
    model.dispose();
  }
}
