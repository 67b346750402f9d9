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
 *
 * On the wasm backend each tensor's step is one pass of the `adamw` kernel of gpt-kernels.c (on
 * the engine in use, native or wasm)
 * (same operations in the same order, so the same bits as the tfjs ops it replaces) instead of
 * ~15 tfjs ops with a temporary each.
 */
import * as tf from '@tensorflow/tfjs';
import { checkNumber, resolveConfig } from '../util/config';
import type { ParamInfo } from '../types';
import { fusedKernels } from '../backend/engine';

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
  /** Use the wasm `adamw` kernel where it can run (set false to force tfjs ops; tests compare the two). */
  useKernels = true;

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
    for (const p of this.params) if (!grads.has(p.name)) throw new Error(`AdamW.apply: no gradient for parameter "${p.name}"`);
    if (this.useKernels && this.applyWasm(grads, lr, 1 / bc1, 1 / bc2, updateMask)) return;
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
        const g = grads.get(p.name)!;
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

  /**
   * The step through the wasm kernel: new buffers for θ, m and v (a variable's buffer may be
   * shared with other tensors, so it is never written in place), then `assign`. Returns false,
   * having changed nothing, when the kernels cannot run here.
   */
  private applyWasm(grads: ReadonlyMap<string, tf.Tensor>, lr: number, c1: number, c2: number, updateMask?: ReadonlyMap<string, tf.Tensor>): boolean {
    const wk = fusedKernels();
    if (!wk) return false;
    const { kernels: k, backend: be } = wk;
    const { beta1, beta2, eps, weightDecay } = this.options;
    const f = Math.fround;
    const engine = tf.engine();
    for (const p of this.params) {
      const g = grads.get(p.name)!;
      const mask = updateMask?.get(p.name);
      for (const t of mask ? [g, mask] : [g]) {
        if (t.dtype !== 'float32' || t.shape.join() !== p.variable.shape.join()) {
          throw new Error(`AdamW.apply: "${p.name}" needs float32 [${p.variable.shape}], got ${t.dtype} [${t.shape}]`);
        }
      }
      const m = this.m.get(p.name)!;
      const v = this.v.get(p.name)!;
      const outs = [0, 1, 2].map(() => be.makeOutput(p.variable.shape, 'float32'));
      const at = (t: { dataId: object }) => be.getMemoryOffset(t.dataId);
      k.adamw(at(p.variable), at(g), at(m), at(v), mask ? at(mask) : 0, at(outs[0]!), at(outs[1]!), at(outs[2]!), p.variable.size,
        f(beta1), f(1 - beta1), f(beta2), f(1 - beta2), f(c1), f(c2), f(eps), f(lr), f(weightDecay),
        weightDecay > 0 && this.decay.has(p.name) ? 1 : 0, mask ? 1 : 0);
      const [theta, mNew, vNew] = outs.map((o) => engine.makeTensorFromTensorInfo(o, tf.backend()));
      p.variable.assign(theta!);
      m.assign(mNew!);
      v.assign(vNew!);
      tf.dispose([theta!, mNew!, vNew!]);
    }
    return true;
  }

  /** Frees the moment variables. */
  dispose(): void {
    for (const t of this.m.values()) t.dispose();
    for (const t of this.v.values()) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
