/**
 * `gmt`: Gradient-Mask Tuning (Li et al., arXiv 2406.15330, §3 "Gradient-Mask Tuning").
 * At every update: T_k = k-th quantile of |Γ| within the scope, M = [|Γ| ≥ T_k], step on Γ ⊙ M.
 * The mask is recomputed from the averaged Γ at every update — never per micro-batch and never
 * reused. The exact contract lives in `mask.ts`.
 */
import type * as tf from '@tensorflow/tfjs';
import { ConfigError, resolveConfig } from '../util/config';
import { GradientMasker, checkMaskRatio, checkScope, type MaskScope } from './mask';
import { requireInit, type MaskedUpdate, type StrategyInitContext, type TuningStrategy } from './strategy';

/** Options of `gmt` (and of `sift`, which shares the selection rule). */
export interface GmtOptions {
  /** k ∈ [0, 1): fraction of gradient entries zeroed in each scope segment. 0 = exactly SFT. */
  ratio: number;
  /** Where the quantile is taken: `tensor`, `layer` (one group: embed / block.<i> / head) or `global`. */
  scope: MaskScope;
  /** `true`: the optimizer's final update (weight decay included) is also zeroed where masked. */
  maskUpdate: boolean;
}

export const GMT_DEFAULTS: GmtOptions = { ratio: 0.3, scope: 'tensor', maskUpdate: false };

/** Resolves and validates `gmt`-style options; `where` prefixes error messages. */
export function resolveGmtOptions(options: Partial<GmtOptions> | undefined, where: string): GmtOptions {
  const o = resolveConfig(GMT_DEFAULTS, options, `${where} options`);
  checkMaskRatio(`${where}.ratio`, o.ratio);
  checkScope(`${where}.scope`, o.scope);
  if (typeof o.maskUpdate !== 'boolean') throw new ConfigError(`${where}.maskUpdate must be true or false, got ${JSON.stringify(o.maskUpdate)}`);
  return o;
}

/** Gradient-Mask Tuning. */
export class GmtStrategy implements TuningStrategy<GmtOptions> {
  readonly name = 'gmt';
  readonly options: Readonly<GmtOptions>;
  private masker?: GradientMasker;

  constructor(options?: Partial<GmtOptions>) {
    this.options = resolveGmtOptions(options, 'gmt');
  }

  init(ctx: StrategyInitContext): void {
    this.masker = new GradientMasker(ctx.params, this.options);
  }

  async transform(accumulatedGrads: ReadonlyMap<string, tf.Tensor>): Promise<MaskedUpdate> {
    // ratio 0 keeps every entry; take the identity path so that the run is SFT bit for bit.
    if (this.options.ratio === 0) return { grads: new Map(accumulatedGrads) };
    const { grads, masks, stats } = await requireInit(this.masker, 'gmt').apply(accumulatedGrads);
    return this.options.maskUpdate ? { grads, masks, updateMasks: masks, stats } : { grads, masks, stats };
  }

  dispose(): void {}
}
