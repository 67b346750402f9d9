/**
 * A longer context for a trained model, made when its checkpoint is loaded: the learned position
 * table `wpe` grows from [L, d] to [N, d] and every other weight is kept. Rows 0..L-1 keep their
 * trained values, so a sequence of at most L tokens is computed exactly as by the base model;
 * rows L..N-1 are new and are learnt in fine-tuning like any other weight.
 *
 * How the new rows start (`ContextInit`), with noise from a seeded stream
 * (`deriveSeed(seed, 'context:wpe')`; a run passes its own `seed`):
 * - `normal` (default): N(0, 0.02²), the distribution the base model's own weights started from
 *   (GPT-2's init): new positions start as untrained ones.
 * - `tile`: row p starts as trained row p mod L plus the same N(0, 0.02²) noise, so each new
 *   position starts with the scale and local structure of the trained table, and the noise
 *   tells p from p + L apart.
 * Measured on the published GSM8K train file (micro, context 1024, 30 updates, seeds 0 and 1):
 * `tile` starts lower (validation loss 6.74 and 6.77 against 7.19 and 7.18) but `normal` is lower
 * after 10, 20 and 30 updates in both seeds (2.62 and 2.63 against 2.67 and 2.65 at 30), hence
 * the default. The choice is part of every run's config and key.
 *
 * Only the checkpoint's tensors change; the model code is the same (the fused kernels and the
 * tfjs path take the context from the config), so this lives at load time.
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, checkNumber } from '../util/config';
import { deriveSeed, Rng } from '../util/rng';
import { GPT, type GPTOptions } from './gpt';
import { resolveGPTConfig, type GPTConfig } from './config';
import { readCheckpointConfig } from './safetensors';

/** How the new position rows start; see the file comment. */
export type ContextInit = 'normal' | 'tile';
/** The values of {@link ContextInit}. */
export const CONTEXT_INITS: readonly ContextInit[] = ['normal', 'tile'];
/** Longest context a model may be extended to (attention is quadratic in it). */
export const MAX_CONTEXT = 4096;
/** Standard deviation of the new rows' noise (the GPT init's). */
const NEW_ROW_STD = 0.02;

/** N(0, 1) draws from a seeded stream (Box–Muller). */
function normals(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - rng.next(); // (0, 1]
    const v = rng.next();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/**
 * The position table `wpe` ([from, d], row-major) extended to `to` rows: rows below `from`
 * copied, the rest started as `init` says with noise from `seed`.
 */
export function extendPositionTable(wpe: Float32Array, from: number, to: number, d: number, init: ContextInit, seed: number): Float32Array {
  if (wpe.length !== from * d) throw new ConfigError(`extendPositionTable: a [${from}, ${d}] table has ${from * d} values, got ${wpe.length}`);
  if (!CONTEXT_INITS.includes(init)) throw new ConfigError(`context init must be one of ${CONTEXT_INITS.join(', ')}; got ${JSON.stringify(init)}`);
  if (to < from) throw new ConfigError(`context ${to} is shorter than the model's ${from}`);
  const out = new Float32Array(to * d);
  out.set(wpe);
  const noise = normals(new Rng(deriveSeed(seed, 'context:wpe')), (to - from) * d);
  for (let p = from; p < to; p++) {
    const src = (p % from) * d;
    for (let j = 0; j < d; j++) {
      const z = NEW_ROW_STD * (noise[(p - from) * d + j] as number);
      out[p * d + j] = init === 'tile' ? (wpe[src + j] as number) + z : z;
    }
  }
  return out;
}

/** What {@link loadCheckpointWithContext} takes besides the file. */
export interface ContextOptions extends GPTOptions {
  /** Context of the loaded model (≥ the checkpoint's; `null`/absent: the checkpoint's own). */
  context?: number | null;
  /** How the new position rows start (default `normal`). */
  init?: ContextInit;
  /** Seed of the new rows' noise (a run passes its `seed`). */
  seed?: number;
}

/**
 * Loads a gmt-lab GPT checkpoint with its context extended to `opts.context` (see the file
 * comment); with no longer context it is the checkpoint as stored. Returns the model and the
 * checkpoint's own context. Taught in the README's "Real data" section; `finetune`'s `context`
 * field uses it.
 */
export function loadCheckpointWithContext(file: string, opts: ContextOptions = {}): { model: GPT; baseContextLength: number } {
  const { context, init = 'normal', seed = 0, ...gptOptions } = opts;
  const { config, tensors } = readCheckpointConfig(file);
  const target = context ?? config.contextLength;
  checkNumber('context', target, { min: 1, max: MAX_CONTEXT, integer: true });
  if (target < config.contextLength) throw new ConfigError(`context ${target} is shorter than the ${config.contextLength} positions of ${file}: a context can only be extended`);
  const extended: GPTConfig = resolveGPTConfig({ ...config, contextLength: target });
  const weights: Record<string, tf.Tensor> = {};
  try {
    for (const [name, t] of Object.entries(tensors)) {
      const data = name === 'wpe' && target > config.contextLength
        ? extendPositionTable(t.data as Float32Array, config.contextLength, target, config.dModel, init, seed)
        : (t.data as Float32Array);
      weights[name] = tf.tensor(data, name === 'wpe' ? [target, config.dModel] : t.shape, 'float32');
    }
    return { model: new GPT(extended, gptOptions, weights), baseContextLength: config.contextLength };
  } finally {
    tf.dispose(Object.values(weights));
  }
}
