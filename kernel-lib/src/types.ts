/**
 * The few types that cross module boundaries: data → model → trainer → strategies.
 * Glossary (paper symbol → identifier):
 *   Θ   model parameters            → `ParamInfo.variable`
 *   Γ   averaged gradient (N batches)→ `accumulatedGrads`
 *   T_k threshold, k-th quantile |Γ| → `threshold`
 *   k   fraction zeroed              → `maskRatio` (option `ratio`)
 *   M   binary mask (1 = kept)       → `mask`
 */
import type * as tf from '@tensorflow/tfjs';

/** Which part of the network a parameter belongs to; used by `layer` scope and by HFT groups. */
export type ParamKind = 'embed' | 'attn' | 'mlp' | 'norm' | 'head';

/** One trainable tensor with the metadata strategies need. Order of `params` is stable. */
export interface ParamInfo {
  /** Stable name, also the safetensors tensor name, e.g. `blocks.0.attn.wqkv`. */
  name: string;
  variable: tf.Variable;
  /**
   * Selection group for `scope: 'layer'`: `embed` (token + position embeddings), `block.<i>`
   * (everything of transformer block i), `head` (final norm + output projection).
   */
  group: string;
  kind: ParamKind;
}

/**
 * A batch on the host, ready to become tensors. Row-major [batchSize, seqLen].
 * `weights[i]` is 1 where the token at i counts toward the loss (completion tokens), else 0.
 */
export interface HostBatch {
  batchSize: number;
  seqLen: number;
  inputs: Int32Array;
  targets: Int32Array;
  weights: Float32Array;
}

/** The same batch as tensors. The owner disposes them. */
export interface TensorBatch {
  inputs: tf.Tensor2D;
  targets: tf.Tensor2D;
  weights: tf.Tensor2D;
}

/**
 * What the trainer needs from a model. `GPT` implements it; tests may use tiny models.
 * `loss` must only read `params` variables so that `tf.variableGrads` sees them.
 */
export interface TrainableModel {
  readonly params: readonly ParamInfo[];
  /** Mean cross-entropy over weighted tokens, as a scalar. Called inside `tf.variableGrads`. */
  loss(batch: TensorBatch): tf.Scalar;
  /**
   * Optional faster route to the same numbers: loss and ∇θ L of one batch keyed by parameter
   * name, or `undefined` when this model cannot take it here (the trainer then uses
   * `tf.variableGrads` over `loss`). The caller owns the returned tensors.
   */
  lossAndGradients?(batch: HostBatch): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } | undefined;
  /**
   * Optional asynchronous form of `lossAndGradients` that may spread the batch over worker
   * threads (see `GPTOptions.workers`); the trainer prefers it during updates.
   */
  lossAndGradientsAsync?(batch: HostBatch): Promise<{ loss: tf.Scalar; grads: Map<string, tf.Tensor> } | undefined>;
  /**
   * Optional one-line description of how this model computes training gradients here (code
   * path, kernel build, threads); the trainer copies it into the run record.
   */
  gradientPath?(): string;
}
