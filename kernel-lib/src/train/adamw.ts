/**
 * AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019, Alg. 2) with
 * bias correction (Kingma & Ba, 2015, Alg. 1):
 *
 *   m ← β₁ m + (1 − β₁) g          v ← β₂ v + (1 − β₂) g²
 *   m̂ = m / (1 − β₁ᵗ)              v̂ = v / (1 − β₂ᵗ)
 *   Δ = lr · ( m̂ / (√v̂ + ε) + λ θ )    (λ only where the decay predicate holds)
 *   θ ← θ − Δ ⊙ U                   (U = update mask, all ones unless given)
 *
 * With an update mask (GMT `maskUpdate: true`, HFT frozen tensors) entries where U = 0 are left
 * bit-for-bit unchanged: θ − 0 = θ. The moments still see the (masked) gradient.
 */
import * as tf from '@tensorflow/tfjs';
import { checkNumber, resolveConfig } from '../util/config';
import type { ParamInfo } from '../types';

/** AdamW hyper-parameters (PyTorch defaults). */
export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay λ. */
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

/** Which parameters are decayed: everything, or tensors of rank ≥ 2 (nanoGPT's rule: no norms/biases). */
export type DecayPredicate = (param: ParamInfo) => boolean;
export const decayAll: DecayPredicate = () => true;
export const decayMatrices: DecayPredicate = (p) => p.variable.rank >= 2;

/** AdamW over a fixed parameter list; moments are `tf.Variable`s created on construction. */
export class AdamW {
  readonly options: Readonly<AdamWOptions>;
  /** Number of updates applied so far (t in the bias correction). */
  step = 0;
  private readonly params: readonly ParamInfo[];
  private readonly decay: ReadonlySet<string>;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(params: readonly ParamInfo[], options?: Partial<AdamWOptions>, decay: DecayPredicate = decayAll) {
    const o = resolveConfig(ADAMW_DEFAULTS, options, 'AdamW options');
    checkNumber('beta1', o.beta1, { min: 0, max: 1, maxExclusive: true });
    checkNumber('beta2', o.beta2, { min: 0, max: 1, maxExclusive: true });
    checkNumber('eps', o.eps, { min: 0, minExclusive: true });
    checkNumber('weightDecay', o.weightDecay, { min: 0 });
    this.options = o;
    this.params = params;
    this.decay = new Set(params.filter(decay).map((p) => p.name));
    for (const p of params) {
      this.m.set(p.name, tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false)));
      this.v.set(p.name, tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false)));
    }
  }

  /** First moment of a parameter (read-only view for tests and diagnostics). */
  firstMoment(name: string): tf.Tensor | undefined {
    return this.m.get(name);
  }

  /**
   * One AdamW step with learning rate `lr`. Every parameter needs a gradient in `grads` (by
   * parameter name). `updateMask` (same names, 1 = update) zeroes the final update where 0;
   * parameters absent from it are updated fully. Inputs are not disposed.
   */
  apply(grads: ReadonlyMap<string, tf.Tensor>, lr: number, updateMask?: ReadonlyMap<string, tf.Tensor>): void {
    checkNumber('lr', lr, { min: 0 });
    this.step += 1;
    const { beta1, beta2, eps, weightDecay } = this.options;
    const bc1 = 1 - Math.pow(beta1, this.step);
    const bc2 = 1 - Math.pow(beta2, this.step);
    tf.tidy(() => {
      const b1 = tf.scalar(beta1);
      const b2 = tf.scalar(beta2);
      const oneMinusB1 = tf.scalar(1 - beta1);
      const oneMinusB2 = tf.scalar(1 - beta2);
      const invBc1 = tf.scalar(1 / bc1);
      const invBc2 = tf.scalar(1 / bc2);
      const epsT = tf.scalar(eps);
      const lrT = tf.scalar(lr);
      const wd = tf.scalar(weightDecay);
      for (const p of this.params) {
        const g = grads.get(p.name);
        if (!g) throw new Error(`AdamW.apply: no gradient for parameter "${p.name}"`);
        const m = this.m.get(p.name)!;
        const v = this.v.get(p.name)!;
        const mNew = tf.add(tf.mul(m, b1), tf.mul(g, oneMinusB1));
        const vNew = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), oneMinusB2));
        m.assign(mNew);
        v.assign(vNew);
        let direction = tf.div(tf.mul(mNew, invBc1), tf.add(tf.sqrt(tf.mul(vNew, invBc2)), epsT));
        if (weightDecay > 0 && this.decay.has(p.name)) direction = tf.add(direction, tf.mul(p.variable, wd));
        let delta = tf.mul(direction, lrT);
        const mask = updateMask?.get(p.name);
        if (mask) delta = tf.mul(delta, mask);
        p.variable.assign(tf.sub(p.variable, delta));
      }
    });
  }

  /** Frees the moment variables. */
  dispose(): void {
    for (const t of this.m.values()) t.dispose();
    for (const t of this.v.values()) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
