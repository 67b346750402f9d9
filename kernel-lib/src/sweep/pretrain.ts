/**
 * Pre-training of the base models on the `general` mixture (DESIGN §6: the base must already
 * master the arithmetic the math task uses, and never see the task's Q/A format).
 * Deterministic: the same config on the same backend writes a checkpoint with the same sha256.
 * Runs on webgpu too (reads are asynchronous; the arithmetic check generates on a host copy).
 * `gmt-lab pretrain` and `npm run pretrain` call it; the committed results live in `data/base/`.
 */
import { CharTokenizer } from '../data/tokenizer';
import { arithmeticFactExamples, generateGeneralCorpus, resolveGeneralConfig } from '../data/tasks';
import { PackedTextSampler, packText, sliceHostBatch } from '../data/batching';
import { evaluateTask } from '../eval/scorers';
import { GPT } from '../model/gpt';
import type { GPTConfig } from '../model/config';
import { gptPreset, type GPTPresetName } from '../model/presets';
import { saveCheckpointAsync } from '../model/safetensors';
import { withGenerationModel } from '../model/host-copy';
import { train, toTensorBatch, type TrainHooks, type TrainResult } from '../train/trainer';
import { checkNumber, resolveConfig } from '../util/config';
import * as tf from '@tensorflow/tfjs';
import { greedyComplete } from './finetune';
import { PROTOCOL_CORPUS } from './protocol';

/** What defines a pre-training run. */
export interface PretrainConfig {
  /** Model preset (`nano`, `micro`, `mini`). */
  preset: GPTPresetName;
  /** Seed of the initial weights and of the batch order. */
  seed: number;
  /** Seed of the general corpus. */
  dataSeed: number;
  /** Knobs of the general corpus (see `GeneralConfig`). */
  corpusOptions: Record<string, unknown>;
  /** Optimizer updates. */
  steps: number;
  /** Packed windows per update. */
  batchSize: number;
  lr: number;
  warmup: number;
  minLrRatio: number;
  weightDecay: number;
  /** Evaluate (validation loss, arithmetic facts) every K updates; 0 = only at the end. */
  evalEvery: number;
}

/** Defaults of the committed `micro` base model. */
export const PRETRAIN_DEFAULTS: PretrainConfig = {
  preset: 'micro',
  seed: 0,
  dataSeed: 0,
  corpusOptions: { ...PROTOCOL_CORPUS },
  steps: 1200,
  batchSize: 16,
  lr: 3e-3,
  warmup: 50,
  minLrRatio: 0.1,
  weightDecay: 0.01,
  evalEvery: 200,
};

/** The record saved beside a base checkpoint. */
export interface PretrainResult {
  kind: 'gmt-lab/pretrain';
  config: PretrainConfig;
  model: GPTConfig;
  train: TrainResult;
  /** General validation loss and greedy accuracy on every arithmetic fact of the task's range. */
  metrics: { valLoss: number; arithAccuracy: number };
}

/** Validates a partial pre-training config; unknown keys throw. */
export function resolvePretrainConfig(overrides?: Partial<PretrainConfig>): PretrainConfig {
  const c = resolveConfig(PRETRAIN_DEFAULTS, overrides, 'pretrain config');
  gptPreset(c.preset);
  checkNumber('pretrain config steps', c.steps, { min: 1, integer: true });
  checkNumber('pretrain config batchSize', c.batchSize, { min: 1, integer: true });
  checkNumber('pretrain config lr', c.lr, { min: 0, minExclusive: true });
  checkNumber('pretrain config warmup', c.warmup, { min: 0, integer: true });
  checkNumber('pretrain config evalEvery', c.evalEvery, { min: 0, integer: true });
  return { ...c, corpusOptions: { ...c.corpusOptions } };
}

/**
 * Pre-trains a fresh model; writes it to `out` (safetensors, with the run's config in the
 * metadata) when given. The returned model belongs to the caller.
 */
export async function pretrain(
  overrides: Partial<PretrainConfig>,
  options: Omit<TrainHooks, 'nextBatch' | 'evaluate' | 'initBatches'> & { out?: string } = {},
): Promise<PretrainResult & { gpt: GPT }> {
  const config = resolvePretrainConfig(overrides);
  const { out, ...hooks } = options;
  const tokenizer = new CharTokenizer();
  const corpus = generateGeneralCorpus({ seed: config.dataSeed, ...config.corpusOptions } as never);

  const model = new GPT(gptPreset(config.preset, { vocabSize: tokenizer.vocabSize, seed: config.seed }));
  try {
    const seqLen = model.config.contextLength;
    const sampler = new PackedTextSampler(corpus.train, tokenizer, { seqLen, batchSize: config.batchSize, seed: config.seed });
    const packedVal = packText(corpus.validation, tokenizer, { seqLen });
    const valBatch = sliceHostBatch(packedVal, 0, Math.min(packedVal.batchSize, 64));
    const corpusConfig = resolveGeneralConfig({ seed: config.dataSeed, ...config.corpusOptions } as never);
    const facts = arithmeticFactExamples(corpusConfig.maxValue, corpusConfig.operations);
    const evaluate = async (): Promise<Record<string, number>> => {
      const tb = toTensorBatch(valBatch);
      const loss = tf.tidy(() => model.loss(tb));
      const valLoss = (await loss.data())[0] as number;
      tf.dispose([loss, tb.inputs, tb.targets, tb.weights]);
      const arith = await withGenerationModel(model, (m) => evaluateTask('arith', facts, (prompts) => greedyComplete(m, tokenizer, prompts, 4), { batchSize: 512 }));
      return { valLoss, arithAccuracy: arith.accuracy };
    };
    const result = await train(model, {
      ...hooks,
      strategy: 'sft',
      steps: config.steps,
      accum: 1,
      lr: config.lr,
      warmup: config.warmup,
      minLrRatio: config.minLrRatio,
      weightDecay: config.weightDecay,
      clipNorm: 1,
      seed: config.seed,
      evalEvery: config.evalEvery,
      nextBatch: () => sampler.next(),
      evaluate,
    });
    const metrics = { valLoss: result.final.valLoss ?? NaN, arithAccuracy: result.final.arithAccuracy ?? NaN };
    if (out) await saveCheckpointAsync(out, model, { 'pretrain.config': JSON.stringify(config), 'pretrain.metrics': JSON.stringify(metrics) });
    return { kind: 'gmt-lab/pretrain', config, model: model.config, train: result, metrics, gpt: model };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
