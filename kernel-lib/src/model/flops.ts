/**
 * Arithmetic cost of a training update, counted from the architecture (a multiply-add = 2 FLOPs),
 * for notebook 04's "what does the mask cost" comparison. Counts the matrix products, which are
 * nearly all of the work; LayerNorm, GELU, softmax and the optimizer are left out and listed as
 * such. Backward ≈ 2 × forward (one product each for the input and the weight gradient).
 */
import type { GPTConfig } from './config';

/** FLOPs of one update, by part. */
export interface UpdateFlops {
  /** Forward matrix products over all tokens of the update. */
  forward: number;
  /** Backward ≈ 2 × forward. */
  backward: number;
  /** forward + backward. */
  total: number;
  /** Trainable parameters (P). */
  params: number;
  tokens: number;
}

/**
 * FLOPs of one update of `tokens` tokens in sequences of `seqLen` (causal attention: a query
 * attends to itself and the tokens before it, as the fused kernels compute it).
 */
export function updateFlops(config: Pick<GPTConfig, 'vocabSize' | 'dModel' | 'nLayers' | 'contextLength'>, tokens: number, seqLen = config.contextLength, params?: number): UpdateFlops {
  const d = config.dModel;
  const perTokenWeights = config.nLayers * (2 * d * 3 * d + 2 * d * d + 2 * 2 * d * 4 * d) + 2 * d * config.vocabSize;
  // QKᵀ and AV: each query meets (seqLen + 1) / 2 keys on average, d multiply-adds each, twice.
  const perTokenAttention = config.nLayers * 2 * 2 * d * ((seqLen + 1) / 2);
  const forward = tokens * (perTokenWeights + perTokenAttention);
  const p = params ?? config.nLayers * (12 * d * d + 4 * d) + config.vocabSize * d * 2 + config.contextLength * d + 2 * d;
  return { forward, backward: 2 * forward, total: 3 * forward, params: p, tokens };
}

/**
 * Element operations GMT adds to an update over SFT: |Γ| (one per entry), the selection of T_k
 * (about two passes over the entries: sampled bounds, then a count-and-gather pass), and
 * Γ ⊙ M (one per entry) — about 4P, all comparisons and moves rather than multiply-adds.
 */
export function gmtMaskOps(params: number): number {
  return 4 * params;
}
