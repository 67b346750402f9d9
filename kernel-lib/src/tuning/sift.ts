/**
 * `sift`: Sparse Increment Fine-Tuning (Song et al., 2023) as the GMT paper uses it as a
 * baseline: the entries with the largest |Γ| (or the `signal` chosen) at the first update are selected (same ratio and
 * scope rule as GMT), and that mask is kept fixed for the whole run.
 */
import * as tf from '@tensorflow/tfjs';
import { GradientMasker, type MaskUpdateStats } from './mask';
import { GMT_DEFAULTS, applyWithSignal, resolveGmtOptions, type GmtOptions } from './gmt';
import type { ParamInfo } from '../types';
import { requireInit, type MaskedUpdate, type StrategyInitContext, type TuningStrategy } from './strategy';

/** Options of `sift`: those of `gmt`; `maskUpdate: true` freezes the unselected entries entirely. */
export type SiftOptions = GmtOptions;
export const SIFT_DEFAULTS: SiftOptions = { ...GMT_DEFAULTS };

/** Fixed top-|Γ| mask from the first update. */
export class SiftStrategy implements TuningStrategy<SiftOptions> {
  readonly name = 'sift';
  readonly options: Readonly<SiftOptions>;
  private masker?: GradientMasker;
  private fixed?: Map<string, tf.Tensor>;
  private fixedStats?: MaskUpdateStats;
  private params: readonly ParamInfo[] = [];

  constructor(options?: Partial<SiftOptions>) {
    this.options = resolveGmtOptions(options, 'sift');
  }

  init(ctx: StrategyInitContext): void {
    // The strategy never reads T_k, so on webgpu an update keeps one sync point.
    this.masker = new GradientMasker(ctx.params, { ratio: this.options.ratio, scope: this.options.scope, readThresholds: false });
    this.params = ctx.params;
  }

  async transform(accumulatedGrads: ReadonlyMap<string, tf.Tensor>): Promise<MaskedUpdate> {
    if (this.options.ratio === 0) return { grads: new Map(accumulatedGrads) };
    if (!this.fixed) {
      const first = await applyWithSignal(requireInit(this.masker, 'sift'), this.options.signal, accumulatedGrads, this.params);
      this.fixed = first.masks;
      this.fixedStats = first.stats;
      const masks = cloneAll(this.fixed);
      return { grads: first.grads, masks, ...(this.options.maskUpdate ? { updateMasks: masks } : {}), ...(first.stats ? { stats: fixedMaskStats(first.stats, false) } : {}) };
    }
    const grads = new Map<string, tf.Tensor>();
    for (const [name, mask] of this.fixed) grads.set(name, tf.mul(accumulatedGrads.get(name)!, mask));
    const masks = cloneAll(this.fixed);
    return { grads, masks, ...(this.options.maskUpdate ? { updateMasks: masks } : {}), ...(this.fixedStats ? { stats: fixedMaskStats(this.fixedStats, true) } : {}) };
  }

  dispose(): void {
    if (this.fixed) for (const t of this.fixed.values()) t.dispose();
    this.fixed = undefined;
    this.fixedStats = undefined;
  }
}

/**
 * The statistics of a mask that does not change, for `MaskedUpdate.stats`: a fresh copy of the
 * kept fractions, and a Jaccard overlap of 1 with the previous update's (identical) mask when
 * there was one.
 */
export function fixedMaskStats(stats: MaskUpdateStats, hadPrevious: boolean): MaskUpdateStats {
  const out: MaskUpdateStats = { keptFraction: stats.keptFraction, keptByTensor: { ...stats.keptByTensor } };
  if (hadPrevious) out.jaccard = 1;
  return out;
}

/** Clones every tensor of a map (storage is shared; the clones are the caller's to dispose). */
export function cloneAll(masks: ReadonlyMap<string, tf.Tensor>): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, t] of masks) out.set(name, tf.clone(t));
  return out;
}
