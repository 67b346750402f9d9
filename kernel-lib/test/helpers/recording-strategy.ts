/**
 * Wraps a strategy and records, per update, the Γ it was given and the masks it returned
 * (host copies), so tests can check the contract against a reference computed on the host.
 */
import type * as tf from '@tensorflow/tfjs';
import type { MaskedUpdate, StrategyInitContext, TuningStrategy } from '../../src/tuning/strategy';

export interface RecordedUpdate {
  step: number;
  gamma: Map<string, Float32Array>;
  grads: Map<string, Float32Array>;
  masks?: Map<string, Float32Array>;
  updateMasks?: Map<string, Float32Array>;
}

function host(m: ReadonlyMap<string, tf.Tensor> | undefined): Map<string, Float32Array> | undefined {
  if (!m) return undefined;
  const out = new Map<string, Float32Array>();
  for (const [k, t] of m) out.set(k, (t.dataSync() as Float32Array).slice());
  return out;
}

export class RecordingStrategy implements TuningStrategy {
  readonly updates: RecordedUpdate[] = [];
  constructor(readonly inner: TuningStrategy) {}
  get name(): string {
    return this.inner.name;
  }
  get options(): Readonly<object> {
    return this.inner.options;
  }
  async init(ctx: StrategyInitContext): Promise<void> {
    // The recorder reads the masks, so it asks for them whatever the trainer's hooks.
    await this.inner.init?.({ ...ctx, needsMasks: true });
  }
  async transform(g: ReadonlyMap<string, tf.Tensor>, step: number): Promise<MaskedUpdate> {
    const gamma = host(g)!;
    const out = await this.inner.transform(g, step);
    this.updates.push({ step, gamma, grads: host(out.grads)!, masks: host(out.masks), updateMasks: host(out.updateMasks) });
    return out;
  }
  dispose(): void {
    this.inner.dispose();
  }
}
