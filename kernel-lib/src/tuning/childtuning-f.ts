/**
 * `childtuning-f`: task-free ChildTuning (Xu et al., EMNLP 2021, §3.2 "ChildTuning_F").
 * At every update each gradient entry is kept with probability p, drawn afresh from
 * Bernoulli(p), and kept entries are scaled by 1/p so the masked gradient is unbiased:
 * Γ' = Γ ⊙ M / p.
 */
import * as tf from '@tensorflow/tfjs';
import { checkNumber, resolveConfig } from '../util/config';
import { deriveSeed } from '../util/rng';
import { checkSeedOption } from './random-mask';
import type { MaskedUpdate, StrategyInitContext, TuningStrategy } from './strategy';

/** Options of `childtuning-f`. */
export interface ChildTuningFOptions {
  /** Probability that an entry is kept, in (0, 1]. 1 = SFT. */
  p: number;
  /** Seed of the mask stream; `null` derives it from the run's seed. */
  seed: number | null;
}

export const CHILDTUNING_F_DEFAULTS: ChildTuningFOptions = { p: 0.7, seed: null };

/** Bernoulli(p) gradient mask each update, rescaled by 1/p. */
export class ChildTuningFStrategy implements TuningStrategy<ChildTuningFOptions> {
  readonly name = 'childtuning-f';
  readonly options: Readonly<ChildTuningFOptions>;
  private seed?: number;

  constructor(options?: Partial<ChildTuningFOptions>) {
    const o = resolveConfig(CHILDTUNING_F_DEFAULTS, options, 'childtuning-f options');
    checkNumber('childtuning-f.p', o.p, { min: 0, minExclusive: true, max: 1 });
    checkSeedOption('childtuning-f.seed', o.seed);
    this.options = o;
    if (o.seed !== null) this.seed = o.seed;
  }

  init(ctx: StrategyInitContext): void {
    if (this.options.seed === null) this.seed = deriveSeed(ctx.seed, 'childtuning-f');
  }

  transform(accumulatedGrads: ReadonlyMap<string, tf.Tensor>, step: number): MaskedUpdate {
    if (this.options.p === 1) return { grads: new Map(accumulatedGrads) };
    if (this.seed === undefined) throw new Error('childtuning-f: call init(ctx) or pass options.seed before transform');
    const { p } = this.options;
    const grads = new Map<string, tf.Tensor>();
    const masks = new Map<string, tf.Tensor>();
    for (const [name, g] of accumulatedGrads) {
      const seed = deriveSeed(this.seed, `${step}:${name}`);
      const [mask, masked] = tf.tidy(() => {
        const m = tf.cast(tf.less(tf.randomUniform(g.shape, 0, 1, 'float32', seed), p), 'float32');
        return [m, tf.mul(g, tf.mul(m, 1 / p))];
      });
      masks.set(name, mask);
      grads.set(name, masked);
    }
    return { grads, masks };
  }

  dispose(): void {}
}
