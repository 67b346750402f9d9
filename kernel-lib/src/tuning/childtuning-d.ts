/**
 * `childtuning-d`: task-driven ChildTuning (Xu et al., EMNLP 2021, §3.2 "ChildTuning_D").
 * Before training, the Fisher information of every entry is estimated as the mean of g² over a
 * pass of training data (g = the gradient of one batch — a per-batch, not per-example, empirical
 * Fisher); the top fraction p of entries by Fisher over all parameters (global scope) forms the
 * child network, and that mask stays fixed: Γ' = Γ ⊙ M.
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, checkNumber, resolveConfig } from '../util/config';
import { GradientMasker, type MaskUpdateStats } from './mask';
import { cloneAll, fixedMaskStats } from './sift';
import { requireInit, type MaskedUpdate, type StrategyInitContext, type TuningStrategy } from './strategy';

/** Options of `childtuning-d`. Give `p` or `ratio` (= 1 − p), not both. */
export interface ChildTuningDOptions {
  /** Fraction of entries kept (the child network), in (0, 1]. */
  p: number | null;
  /** Fraction of entries zeroed, in [0, 1): the GMT-comparable knob. Default 0.3 when `p` is null. */
  ratio: number | null;
  /** How many training batches the Fisher pass reads. */
  batches: number;
}

export const CHILDTUNING_D_DEFAULTS: ChildTuningDOptions = { p: null, ratio: null, batches: 8 };

/** Fixed mask from the Fisher information of a pass over training data. */
export class ChildTuningDStrategy implements TuningStrategy<ChildTuningDOptions> {
  readonly name = 'childtuning-d';
  readonly options: Readonly<ChildTuningDOptions>;
  /** Fraction zeroed, resolved from `p` or `ratio`. */
  readonly maskRatio: number;
  private fixed?: Map<string, tf.Tensor>;
  private fixedStats?: MaskUpdateStats;
  private applied = false;

  constructor(options?: Partial<ChildTuningDOptions>) {
    const o = resolveConfig(CHILDTUNING_D_DEFAULTS, options, 'childtuning-d options');
    if (o.p !== null && o.ratio !== null) throw new ConfigError('childtuning-d: give either p (kept) or ratio (zeroed), not both');
    if (o.p !== null) checkNumber('childtuning-d.p', o.p, { min: 0, minExclusive: true, max: 1 });
    if (o.ratio !== null) checkNumber('childtuning-d.ratio', o.ratio, { min: 0, max: 1, maxExclusive: true });
    checkNumber('childtuning-d.batches', o.batches, { min: 1, integer: true });
    this.maskRatio = o.p !== null ? 1 - o.p : (o.ratio ?? 0.3);
    if (o.p === null && o.ratio === null) o.ratio = 0.3;
    this.options = o;
  }

  async init(ctx: StrategyInitContext): Promise<void> {
    this.dispose();
    const batches = ctx.initBatches(this.options.batches);
    if (batches.length === 0) throw new Error('childtuning-d: the Fisher pass got no training batches');
    const fisher = new Map<string, tf.Tensor>();
    for (const batch of batches) {
      const grads = ctx.computeGradients(batch);
      for (const [name, g] of grads) {
        const prev = fisher.get(name);
        const sq = tf.square(g);
        if (prev) {
          fisher.set(name, tf.add(prev, sq));
          prev.dispose();
          sq.dispose();
        } else fisher.set(name, sq);
        g.dispose();
      }
    }
    for (const [name, sum] of fisher) {
      fisher.set(name, tf.div(sum, batches.length));
      sum.dispose();
    }
    const masker = new GradientMasker(ctx.params, { ratio: this.maskRatio, scope: 'global' });
    const { grads, masks, stats } = await masker.apply(fisher);
    for (const t of grads.values()) t.dispose();
    for (const t of fisher.values()) t.dispose();
    this.fixed = masks;
    this.fixedStats = stats;
    this.applied = false;
  }

  transform(accumulatedGrads: ReadonlyMap<string, tf.Tensor>): MaskedUpdate {
    const fixed = requireInit(this.fixed, 'childtuning-d');
    const grads = new Map<string, tf.Tensor>();
    for (const [name, g] of accumulatedGrads) {
      const m = fixed.get(name);
      if (!m) throw new Error(`childtuning-d: no mask for parameter "${name}"`);
      grads.set(name, tf.mul(g, m));
    }
    const stats = this.fixedStats ? fixedMaskStats(this.fixedStats, this.applied) : undefined;
    this.applied = true;
    return { grads, masks: cloneAll(fixed), ...(stats ? { stats } : {}) };
  }

  dispose(): void {
    if (this.fixed) for (const t of this.fixed.values()) t.dispose();
    this.fixed = undefined;
    this.fixedStats = undefined;
  }
}
