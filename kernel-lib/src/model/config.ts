/**
 * The architecture of a `GPT`: a leaf module, so that the model (`gpt.ts`), its fused training
 * path (`fused.ts`), generation and the data-parallel pool can all name it without importing
 * each other.
 */
import { checkNumber, ConfigError, resolveConfig } from '../util/config';

/** Architecture and initialisation of a `GPT`. Every field is validated by `resolveGPTConfig`. */
export interface GPTConfig {
  /** Number of token ids (the tokenizer's vocabulary size). */
  vocabSize: number;
  /** Longest sequence the model sees (size of the learned position table). */
  contextLength: number;
  /** Width of the residual stream. Must be divisible by `nHeads`. */
  dModel: number;
  /** Number of transformer blocks. */
  nLayers: number;
  /** Attention heads per block. */
  nHeads: number;
  /** MLP hidden width as a multiple of `dModel` (GPT-2: 4). */
  mlpRatio: number;
  /** LayerNorm epsilon. */
  layerNormEps: number;
  /** Seed for every initial weight; the same seed gives bit-identical weights on a backend. */
  seed: number;
}

/** Defaults: the `micro` preset with a 96-symbol vocabulary. */
export const DEFAULT_GPT_CONFIG: Readonly<GPTConfig> = Object.freeze({
  vocabSize: 96,
  contextLength: 128,
  dModel: 128,
  nLayers: 4,
  nHeads: 4,
  mlpRatio: 4,
  layerNormEps: 1e-5,
  seed: 0,
});

/** Merges overrides into the defaults and validates them; unknown keys are an error. */
export function resolveGPTConfig(overrides?: Partial<GPTConfig>): GPTConfig {
  const c = resolveConfig({ ...DEFAULT_GPT_CONFIG }, overrides, 'GPT config');
  checkNumber('GPT config vocabSize', c.vocabSize, { min: 2, integer: true });
  checkNumber('GPT config contextLength', c.contextLength, { min: 1, integer: true });
  checkNumber('GPT config dModel', c.dModel, { min: 1, integer: true });
  checkNumber('GPT config nLayers', c.nLayers, { min: 1, integer: true });
  checkNumber('GPT config nHeads', c.nHeads, { min: 1, integer: true });
  checkNumber('GPT config mlpRatio', c.mlpRatio, { min: 1, integer: true });
  checkNumber('GPT config layerNormEps', c.layerNormEps, { min: 0, minExclusive: true });
  checkNumber('GPT config seed', c.seed, { integer: true });
  if (c.dModel % c.nHeads !== 0) {
    throw new ConfigError(`GPT config: dModel (${c.dModel}) must be divisible by nHeads (${c.nHeads})`);
  }
  return c;
}

