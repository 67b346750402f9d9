/**
 * The one interface every tuning method implements (peft-style: one file per method, one
 * registry, one table-driven test). A strategy sits between `tf.variableGrads` and the optimizer:
 * it receives Γ (the gradient averaged over N micro-batches, DESIGN.md §1) and returns what the
 * optimizer should step on, plus the masks it applied.
 *
 * Ownership: `transform` never disposes its input. Every tensor in the returned `MaskedUpdate`
 * belongs to the caller, who disposes each distinct tensor once (a strategy may return an input
 * tensor unchanged, as `sft` does, or the same tensor in `masks` and `updateMasks`). Strategies
 * that keep masks across updates return clones (`tf.clone` shares storage, it copies nothing).
 */
import type * as tf from '@tensorflow/tfjs';
import type { HostBatch, ParamInfo } from '../types';
import type { MaskUpdateStats } from './mask';

/** What a strategy's `transform` returns. */
export interface MaskedUpdate {
  /** What the optimizer steps on, per parameter name. */
  grads: Map<string, tf.Tensor>;
  /**
   * The gradient mask M per parameter (float32, 1 = kept). Absent when nothing is masked, or when
   * the caller said it does not read masks (`StrategyInitContext.needsMasks`) and `stats` holds
   * what they would have said.
   */
  masks?: Map<string, tf.Tensor>;
  /**
   * Masks for the final optimizer update (weight decay included): entries at 0 are left exactly
   * unchanged by the step. GMT's `maskUpdate: true`, HFT's frozen tensors, SIFT's frozen entries.
   */
  updateMasks?: Map<string, tf.Tensor>;
  /**
   * Statistics of `masks` that the strategy already knows (GMT counts them on the host while it
   * selects; fixed masks cache them): kept fractions, and the Jaccard overlap with the masks of
   * the previous `transform` of this run. When given, the trainer records these instead of
   * computing them from the mask tensors; they must equal `maskStatistics(masks, previousMasks)`.
   */
  stats?: MaskUpdateStats;
}

/** Handed to `init` once, before the first update. */
export interface StrategyInitContext {
  /** Trainable parameters in stable order. */
  params: readonly ParamInfo[];
  /** The run's seed; strategies derive their own streams from it with `deriveSeed`. */
  seed: number;
  /** Planned number of optimizer updates. */
  steps: number;
  /**
   * Whether the caller reads the mask tensors of `transform`'s result (the trainer: when an
   * `onGradients` hook is set). `false` lets a strategy that reports `stats` leave them out.
   * Absent means true.
   */
  needsMasks?: boolean;
  /** Gradients of the model's loss on one batch, keyed by parameter name; the caller disposes them. */
  computeGradients(batch: HostBatch): Map<string, tf.Tensor>;
  /**
   * Up to `maxBatches` batches of training data for methods that look at data before training
   * (ChildTuning-D's Fisher pass): the trainer's `initBatches` if given, else drawn from the
   * training stream.
   */
  initBatches(maxBatches: number): HostBatch[];
}

/** A tuning method. `O` is its resolved, JSON-serialisable options object. */
export interface TuningStrategy<O extends object = object> {
  /** Registry name, e.g. `gmt`. */
  readonly name: string;
  /** Resolved options (defaults filled in); saved in every result record. */
  readonly options: Readonly<O>;
  /** Called once before training. Strategies that need the parameter layout require it. */
  init?(ctx: StrategyInitContext): Promise<void> | void;
  /** Γ → what the optimizer steps on. `step` is the 0-based update index. */
  transform(accumulatedGrads: ReadonlyMap<string, tf.Tensor>, step: number): Promise<MaskedUpdate> | MaskedUpdate;
  /** Frees every tensor the strategy holds. */
  dispose(): void;
}

/** Throws the error a strategy gives when used before `init`. */
export function requireInit<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new Error(`${name}: call init(ctx) before transform (the trainer does this)`);
  return value;
}
