/**
 * `gmt`: Gradient-Mask Tuning (Li et al., arXiv 2406.15330, §3 "Gradient-Mask Tuning").
 * At every update: T_k = k-th quantile of |Γ| within the scope, M = [|Γ| ≥ T_k], step on Γ ⊙ M.
 * The mask is recomputed from the averaged Γ at every update — never per micro-batch and never
 * reused. The exact contract lives in `mask.ts`.
 */
import * as tf from '@tensorflow/tfjs';
import type { ParamInfo } from '../types';
import { ConfigError, resolveConfig } from '../util/config';
import { GradientMasker, checkMaskRatio, checkScope, type MaskResult, type MaskScope } from './mask';
import { requireInit, type MaskedUpdate, type StrategyInitContext, type TuningStrategy } from './strategy';

/** Options of `gmt` (and of `sift`, which shares the selection rule). */
export interface GmtOptions {
  /** k ∈ [0, 1): fraction of gradient entries zeroed in each scope segment. 0 = exactly SFT. */
  ratio: number;
  /** Where the quantile is taken: `tensor`, `layer` (one group: embed / block.<i> / head) or `global`. */
  scope: MaskScope;
  /** `true`: the optimizer's final update (weight decay included) is also zeroed where masked. */
  maskUpdate: boolean;
  /**
   * What entries are ranked by (an ablation; the paper's rule is `grad`): `grad` = |Γ|;
   * `grad-weight` = |Γ ⊙ θ|, the first-order change of the loss if the entry were zeroed;
   * `grad-squared` = Γ², which orders entries as |Γ| does except where squaring rounds distinct
   * values together or underflows (|Γ| below ~1e-19 all tie at 0 or a few subnormals).
   */
  signal: GmtSignal;
}

/** The selection signals of {@link GmtOptions.signal}. */
export const GMT_SIGNALS = ['grad', 'grad-weight', 'grad-squared'] as const;
/** One of {@link GMT_SIGNALS}. */
export type GmtSignal = (typeof GMT_SIGNALS)[number];

export const GMT_DEFAULTS: GmtOptions = { ratio: 0.3, scope: 'tensor', maskUpdate: false, signal: 'grad' };

/**
 * The tensors ranked for `signal`, by parameter name (the current weights for `grad-weight`), or
 * `undefined` for `grad`, where Γ itself is ranked. The caller disposes them.
 */
export function selectionScores(signal: GmtSignal, grads: ReadonlyMap<string, tf.Tensor>, params: readonly ParamInfo[]): Map<string, tf.Tensor> | undefined {
  if (signal === 'grad') return undefined;
  const scores = new Map<string, tf.Tensor>();
  for (const p of params) {
    const g = grads.get(p.name);
    if (!g) throw new Error(`gmt: no gradient for parameter "${p.name}"`);
    scores.set(p.name, signal === 'grad-weight' ? tf.mul(g, p.variable) : tf.square(g));
  }
  return scores;
}

/** Resolves and validates `gmt`-style options; `where` prefixes error messages. */
export function resolveGmtOptions(options: Partial<GmtOptions> | undefined, where: string): GmtOptions {
  const o = resolveConfig(GMT_DEFAULTS, options, `${where} options`);
  checkMaskRatio(`${where}.ratio`, o.ratio);
  checkScope(`${where}.scope`, o.scope);
  if (typeof o.maskUpdate !== 'boolean') throw new ConfigError(`${where}.maskUpdate must be true or false, got ${JSON.stringify(o.maskUpdate)}`);
  if (!(GMT_SIGNALS as readonly unknown[]).includes(o.signal)) throw new ConfigError(`${where}.signal must be one of ${GMT_SIGNALS.join(', ')}, got ${JSON.stringify(o.signal)}`);
  return o;
}

/** `masker.apply` to Γ, ranking entries by `signal` (see {@link selectionScores}). */
export async function applyWithSignal(masker: GradientMasker, signal: GmtSignal, grads: ReadonlyMap<string, tf.Tensor>, params: readonly ParamInfo[]): Promise<MaskResult> {
  const scores = selectionScores(signal, grads, params);
  try {
    return await masker.apply(grads, scores);
  } finally {
    if (scores) tf.dispose([...scores.values()]);
  }
}

/** Gradient-Mask Tuning. */
export class GmtStrategy implements TuningStrategy<GmtOptions> {
  readonly name = 'gmt';
  readonly options: Readonly<GmtOptions>;
  private masker?: GradientMasker;
  private params: readonly ParamInfo[] = [];

  constructor(options?: Partial<GmtOptions>) {
    this.options = resolveGmtOptions(options, 'gmt');
  }

  init(ctx: StrategyInitContext): void {
    // The strategy never reads T_k, so on webgpu an update keeps one sync point.
    // Masks as tensors only where someone reads them: maskUpdate steps on them, and hooks.
    this.masker = new GradientMasker(ctx.params, {
      ratio: this.options.ratio, scope: this.options.scope, readThresholds: false,
      keepMasks: this.options.maskUpdate || ctx.needsMasks !== false,
    });
    this.params = ctx.params;
  }

  async transform(accumulatedGrads: ReadonlyMap<string, tf.Tensor>): Promise<MaskedUpdate> {
    // ratio 0 keeps every entry; take the identity path so that the run is SFT bit for bit.
    if (this.options.ratio === 0) return { grads: new Map(accumulatedGrads) };
    const { grads, masks, stats } = await applyWithSignal(requireInit(this.masker, 'gmt'), this.options.signal, accumulatedGrads, this.params);
    if (masks.size === 0) return { grads, stats };
    return this.options.maskUpdate ? { grads, masks, updateMasks: masks, stats } : { grads, masks, stats };
  }

  dispose(): void {}
}
