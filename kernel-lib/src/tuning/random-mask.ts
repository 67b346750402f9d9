/**
 * `random-mask`: the control for GMT's selection rule. Each gradient entry is kept with
 * probability 1 − ratio, uniformly at random, so on average the same fraction as GMT is zeroed
 * but without looking at |Γ|. `mode: 'per-update'` draws a new mask at every update (like GMT's
 * re-selection); `mode: 'fixed'` draws one mask at the first update and keeps it.
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, checkNumber, resolveConfig } from '../util/config';
import { deriveSeed } from '../util/rng';
import { checkMaskRatio } from './mask';
import { cloneAll } from './sift';
import type { MaskedUpdate, StrategyInitContext, TuningStrategy } from './strategy';

/** Options of `random-mask`. */
export interface RandomMaskOptions {
  /** Probability that an entry is zeroed (the expected zeroed fraction), in [0, 1). */
  ratio: number;
  /** `per-update`: a fresh mask every update; `fixed`: one mask for the whole run. */
  mode: 'per-update' | 'fixed';
  /** Seed of the mask stream; `null` derives it from the run's seed. */
  seed: number | null;
}

export const RANDOM_MASK_DEFAULTS: RandomMaskOptions = { ratio: 0.3, mode: 'per-update', seed: null };

/** Checks an optional integer seed option. */
export function checkSeedOption(where: string, value: unknown): number | null {
  if (value === null) return null;
  return checkNumber(where, value, { integer: true });
}

/** Uniform random gradient mask with the same (expected) ratio as GMT. */
export class RandomMaskStrategy implements TuningStrategy<RandomMaskOptions> {
  readonly name = 'random-mask';
  readonly options: Readonly<RandomMaskOptions>;
  private seed?: number;
  private fixed?: Map<string, tf.Tensor>;

  constructor(options?: Partial<RandomMaskOptions>) {
    const o = resolveConfig(RANDOM_MASK_DEFAULTS, options, 'random-mask options');
    checkMaskRatio('random-mask.ratio', o.ratio);
    if (o.mode !== 'per-update' && o.mode !== 'fixed') {
      throw new ConfigError(`random-mask.mode must be "per-update" or "fixed", got ${JSON.stringify(o.mode)}`);
    }
    checkSeedOption('random-mask.seed', o.seed);
    this.options = o;
    if (o.seed !== null) this.seed = o.seed;
  }

  init(ctx: StrategyInitContext): void {
    if (this.options.seed === null) this.seed = deriveSeed(ctx.seed, 'random-mask');
  }

  private draw(grads: ReadonlyMap<string, tf.Tensor>, step: number): Map<string, tf.Tensor> {
    if (this.seed === undefined) throw new Error('random-mask: call init(ctx) or pass options.seed before transform');
    const keep = 1 - this.options.ratio;
    const masks = new Map<string, tf.Tensor>();
    for (const [name, g] of grads) {
      const seed = deriveSeed(this.seed, `${step}:${name}`);
      masks.set(name, tf.tidy(() => tf.cast(tf.less(tf.randomUniform(g.shape, 0, 1, 'float32', seed), keep), 'float32')));
    }
    return masks;
  }

  transform(accumulatedGrads: ReadonlyMap<string, tf.Tensor>, step: number): MaskedUpdate {
    if (this.options.ratio === 0) return { grads: new Map(accumulatedGrads) };
    let masks: Map<string, tf.Tensor>;
    if (this.options.mode === 'fixed') {
      if (!this.fixed) this.fixed = this.draw(accumulatedGrads, 0);
      masks = cloneAll(this.fixed);
    } else {
      masks = this.draw(accumulatedGrads, step);
    }
    const grads = new Map<string, tf.Tensor>();
    for (const [name, g] of accumulatedGrads) grads.set(name, tf.mul(g, masks.get(name)!));
    return { grads, masks };
  }

  dispose(): void {
    if (this.fixed) for (const t of this.fixed.values()) t.dispose();
    this.fixed = undefined;
  }
}
