/**
 * `sft`: vanilla fine-tuning, the identity transform. The optimizer steps on Γ unchanged.
 * It is the reference every other method is compared against (paper §4, "SFT" baseline).
 */
import type * as tf from '@tensorflow/tfjs';
import { resolveConfig } from '../util/config';
import type { MaskedUpdate, TuningStrategy } from './strategy';

/** `sft` takes no options. */
export type SftOptions = Record<string, never>;

/** The identity strategy. */
export class SftStrategy implements TuningStrategy<SftOptions> {
  readonly name = 'sft';
  readonly options: Readonly<SftOptions>;

  constructor(options?: Partial<SftOptions>) {
    this.options = resolveConfig({} as SftOptions, options, 'sft options');
  }

  transform(accumulatedGrads: ReadonlyMap<string, tf.Tensor>): MaskedUpdate {
    return { grads: new Map(accumulatedGrads) };
  }

  dispose(): void {}
}
