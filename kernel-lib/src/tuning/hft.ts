/**
 * `hft`: Half Fine-Tuning (Hui et al., 2024, §3 "Half Fine-Tuning"). Half of the parameter
 * tensors are frozen, drawn at random within each group of the same kind: per block the
 * attention, MLP and norm tensors separately (and likewise the embedding and head groups).
 * Frozen tensors get no update at all (gradient, moments' effect and weight decay: the update
 * mask is zero). With `stages` > 1 the frozen half is re-drawn every ⌈steps / stages⌉ updates.
 * A group with an odd count c freezes ⌊c/2⌋ or ⌈c/2⌉ tensors with equal chance.
 */
import * as tf from '@tensorflow/tfjs';
import { checkNumber, resolveConfig } from '../util/config';
import { Rng, deriveSeed } from '../util/rng';
import type { ParamInfo } from '../types';
import { checkSeedOption } from './random-mask';
import type { MaskUpdateStats } from './mask';
import { requireInit, type MaskedUpdate, type StrategyInitContext, type TuningStrategy } from './strategy';

/** Options of `hft`. */
export interface HftOptions {
  /** Number of stages; the frozen half is re-drawn at the start of each. */
  stages: number;
  /** Seed of the draws; `null` derives it from the run's seed. */
  seed: number | null;
}

export const HFT_DEFAULTS: HftOptions = { stages: 1, seed: null };

/** Groups HFT draws within: `<group>/<kind>`, e.g. `block.0/attn`. */
export function hftGroups(params: readonly ParamInfo[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const p of params) {
    const key = `${p.group}/${p.kind}`;
    const list = groups.get(key);
    if (list) list.push(p.name);
    else groups.set(key, [p.name]);
  }
  return groups;
}

/** Half of each group's tensors frozen, re-drawn per stage. */
export class HftStrategy implements TuningStrategy<HftOptions> {
  readonly name = 'hft';
  readonly options: Readonly<HftOptions>;
  private params?: readonly ParamInfo[];
  private seed = 0;
  private stageLength = 1;
  private stage = -1;
  private frozen = new Set<string>();
  /** Frozen names of the previous update (for the Jaccard overlap); undefined before the first. */
  private previousFrozen?: Set<string>;

  constructor(options?: Partial<HftOptions>) {
    const o = resolveConfig(HFT_DEFAULTS, options, 'hft options');
    checkNumber('hft.stages', o.stages, { min: 1, integer: true });
    checkSeedOption('hft.seed', o.seed);
    this.options = o;
  }

  init(ctx: StrategyInitContext): void {
    this.params = ctx.params;
    this.seed = this.options.seed ?? deriveSeed(ctx.seed, 'hft');
    this.stageLength = Math.max(1, Math.ceil(ctx.steps / this.options.stages));
    this.stage = -1;
    this.previousFrozen = undefined;
  }

  /** Names frozen in the current stage (after the first `transform` of the stage). */
  frozenNames(): string[] {
    return [...this.frozen];
  }

  private draw(stage: number): void {
    const rng = new Rng(deriveSeed(this.seed, `stage:${stage}`));
    this.frozen.clear();
    for (const names of hftGroups(requireInit(this.params, 'hft')).values()) {
      const shuffled = rng.shuffle([...names]);
      const count = Math.floor(names.length / 2) + (names.length % 2 === 1 && rng.bernoulli(0.5) ? 1 : 0);
      for (const name of shuffled.slice(0, count)) this.frozen.add(name);
    }
  }

  transform(accumulatedGrads: ReadonlyMap<string, tf.Tensor>, step: number): MaskedUpdate {
    const stage = Math.floor(step / this.stageLength);
    if (stage !== this.stage) {
      this.draw(stage);
      this.stage = stage;
    }
    const grads = new Map<string, tf.Tensor>();
    const masks = new Map<string, tf.Tensor>();
    for (const [name, g] of accumulatedGrads) {
      const frozen = this.frozen.has(name);
      grads.set(name, frozen ? tf.zerosLike(g) : g);
      masks.set(name, frozen ? tf.zerosLike(g) : tf.onesLike(g));
    }
    const stats = this.statistics(accumulatedGrads);
    this.previousFrozen = new Set(this.frozen);
    return { grads, masks, updateMasks: masks, stats };
  }

  /** Whole tensors are kept or frozen, so the mask statistics follow from tensor sizes alone. */
  private statistics(grads: ReadonlyMap<string, tf.Tensor>): MaskUpdateStats {
    const keptByTensor: Record<string, number> = {};
    let kept = 0;
    let total = 0;
    let inter = 0;
    let prevKept = 0;
    for (const [name, g] of grads) {
      const isKept = !this.frozen.has(name);
      keptByTensor[name] = isKept || g.size === 0 ? 1 : 0;
      total += g.size;
      if (isKept) kept += g.size;
      if (this.previousFrozen && !this.previousFrozen.has(name)) {
        prevKept += g.size;
        if (isKept) inter += g.size;
      }
    }
    const stats: MaskUpdateStats = { keptFraction: total === 0 ? 1 : kept / total, keptByTensor };
    if (this.previousFrozen) {
      const union = kept + prevKept - inter;
      stats.jaccard = union === 0 ? 1 : inter / union;
    }
    return stats;
  }

  dispose(): void {}
}
