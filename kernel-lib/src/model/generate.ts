/**
 * Batched autoregressive generation with a key/value cache.
 *
 * Prompts are left-aligned (token 0 of every prompt at position 0) and may differ in length.
 * One padded forward pass fills the cache; each new token then costs one 2-D product per
 * weight matrix for the whole batch plus attention over the cached keys (computed in plain
 * JavaScript, since it is a matrix-vector product per row and head). A row whose sequence
 * fills the context falls back to recomputing its last `contextLength` tokens (nanoGPT's crop).
 */
import * as tf from '@tensorflow/tfjs';
import { checkNumber, ConfigError } from '../util/config';
import { deriveSeed, Rng } from '../util/rng';
import type { GPT } from './gpt';
import { canGenerateFused, generateFused } from './generate-fused';
import { decodeLoop, pick } from './decode-loop';

/** Options of `generate`. */
export interface GenerateOptions {
  /** New tokens per prompt (at most). */
  maxNewTokens: number;
  /** 0 (default) = greedy; otherwise logits are divided by it before sampling. */
  temperature?: number;
  /** Seed of the sampling stream; row i draws from `deriveSeed(seed, "row<i>")` (default 0). */
  seed?: number;
  /** A row stops when it emits this token; the stop token is not included in its output. */
  stopToken?: number;
  /**
   * Rows decoded together (default 512); bounds memory. Prompts are sorted by length and
   * prefilled 64 at a time so that padding wastes little; results come back in the caller's order.
   */
  batchSize?: number;
  /** `false` recomputes the whole window each step (reference path for tests). Default true. */
  cache?: boolean;
}


/**
 * Continues each prompt by up to `maxNewTokens` tokens and returns only the new tokens.
 * Prompts longer than the context keep their last `contextLength` tokens.
 * Deterministic: the same model, prompts and options give the same tokens. On the native
 * engine every step runs on its kernels (`generate-fused.ts`); the numbers then differ from the
 * tfjs path by float rounding, which can change a greedy choice between near-equal logits.
 */
export function generate(model: GPT, promptIds: ArrayLike<number>[], options: GenerateOptions): number[][] {
  if (tf.getBackend() === 'webgpu') {
    // Generation reads logits back token by token with dataSync, which Node's WebGPU forbids.
    throw new ConfigError('generate reads back synchronously, which the webgpu backend forbids in Node: call it through withGenerationModel, which generates on a host copy of the weights');
  }
  const { vocabSize: V, contextLength: L } = model.config;
  const maxNew = checkNumber('generate maxNewTokens', options.maxNewTokens, { min: 0, integer: true });
  const temperature = checkNumber('generate temperature', options.temperature ?? 0, { min: 0 });
  const seed = checkNumber('generate seed', options.seed ?? 0, { integer: true });
  const batchSize = checkNumber('generate batchSize', options.batchSize ?? 512, { min: 1, integer: true });
  if (options.stopToken !== undefined) checkNumber('generate stopToken', options.stopToken, { min: 0, max: V - 1, integer: true });
  const prompts = promptIds.map((p, i) => {
    if (p.length === 0) throw new ConfigError(`generate: prompt ${i} is empty`);
    const ids = Array.from(p);
    for (const t of ids) {
      if (!Number.isInteger(t) || t < 0 || t >= V) throw new ConfigError(`generate: prompt ${i} holds token ${t}, outside 0..${V - 1}`);
    }
    return ids.slice(-L);
  });
  const out: number[][] = new Array(prompts.length);
  // The native engine decodes on its own kernels; elsewhere tfjs ops compute each step.
  const fused = model.fusedReason() === undefined && canGenerateFused();
  const order = prompts.map((_, i) => i).sort((a, b) => (prompts[a] as number[]).length - (prompts[b] as number[]).length || a - b);
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize);
    const chunk = rows.map((i) => prompts[i] as number[]);
    const rngs = rows.map((i) => new Rng(deriveSeed(seed, `row${i}`)));
    const res = options.cache === false
      ? generateRecompute(model, chunk, maxNew, temperature, rngs, options.stopToken)
      : fused
        ? generateFused(model, chunk, maxNew, temperature, rngs, options.stopToken, model.workers + 1)
        : generateCached(model, chunk, maxNew, temperature, rngs, options.stopToken);
    rows.forEach((i, k) => { out[i] = res[k] as number[]; });
  }
  return out;
}

/**
 * Attention of one query (one row, one head) over cached positions 0..pos: softmax(q·kᵀ·scale)·v,
 * accumulated into o[oOff..oOff+hd). Keys/values of position t start at kvBase + t·stride.
 * A top-level function with plain loops so that the JIT compiles it once, monomorphically.
 */
function attendOne(
  q: Float32Array, qOff: number, K: Float32Array, Vc: Float32Array, kvBase: number, stride: number,
  pos: number, hd: number, scale: number, scores: Float64Array, o: Float32Array, oOff: number,
): void {
  let max = -Infinity;
  for (let t = 0; t <= pos; t++) {
    const kOff = kvBase + t * stride;
    let s = 0;
    for (let j = 0; j < hd; j++) s += q[qOff + j]! * K[kOff + j]!;
    s *= scale;
    scores[t] = s;
    if (s > max) max = s;
  }
  let total = 0;
  for (let t = 0; t <= pos; t++) {
    const e = Math.exp(scores[t]! - max);
    scores[t] = e;
    total += e;
  }
  const inv = 1 / total;
  for (let t = 0; t <= pos; t++) {
    const a = scores[t]! * inv;
    const vOff = kvBase + t * stride;
    for (let j = 0; j < hd; j++) o[oOff + j] = o[oOff + j]! + a * Vc[vOff + j]!;
  }
}

/** Rows per prefill forward pass. */
const PREFILL_ROWS = 64;

function readAndDispose(t: tf.Tensor): Float32Array {
  const data = t.dataSync() as Float32Array;
  t.dispose();
  return data;
}

/** Logits of the last token of each sequence (each at most `contextLength` long). */
function lastLogits(model: GPT, seqs: number[][]): Float32Array {
  const { contextLength: L } = model.config;
  const windows = seqs.map((s) => s.slice(-L));
  const T = Math.max(...windows.map((w) => w.length));
  const ids = new Int32Array(windows.length * T);
  windows.forEach((w, i) => ids.set(w, i * T));
  return readAndDispose(tf.tidy(() => {
    const h = model.hidden(tf.tensor2d(ids, [windows.length, T], 'int32'));
    const rows = tf.tensor1d(windows.map((w, i) => i * T + w.length - 1), 'int32');
    return tf.matMul(tf.gather(h, rows), model.param('head.w'));
  }));
}

function generateRecompute(model: GPT, prompts: number[][], maxNew: number, temperature: number, rngs: Rng[], stop?: number): number[][] {
  const V = model.config.vocabSize;
  const seqs = prompts.map((p) => [...p]);
  const out = prompts.map(() => [] as number[]);
  const active = prompts.map(() => maxNew > 0);
  while (active.some((a) => a)) {
    const rows = active.flatMap((a, i) => (a ? [i] : []));
    const logits = lastLogits(model, rows.map((i) => seqs[i] as number[]));
    rows.forEach((i, r) => {
      const tok = pick(logits, r * V, V, temperature, rngs[i] as Rng);
      if (tok === stop) { active[i] = false; return; }
      (out[i] as number[]).push(tok);
      (seqs[i] as number[]).push(tok);
      if ((out[i] as number[]).length >= maxNew) active[i] = false;
    });
  }
  return out;
}

function generateCached(model: GPT, prompts: number[][], maxNew: number, temperature: number, rngs: Rng[], stop?: number): number[][] {
  const { vocabSize: V, contextLength: L, dModel: d, nHeads: H, nLayers, layerNormEps: eps } = model.config;
  const hd = d / H;
  const scale = 1 / Math.sqrt(hd);
  const n = prompts.length;
  if (maxNew === 0) return prompts.map(() => []);
  // Caches: [layer][row][position][d] for keys and values.
  const kCache = Array.from({ length: nLayers }, () => new Float32Array(n * L * d));
  const vCache = Array.from({ length: nLayers }, () => new Float32Array(n * L * d));
  const store = (layer: number, qkv: Float32Array, rowIndex: number, qkvRow: number, pos: number) => {
    const src = qkvRow * 3 * d;
    const dst = (rowIndex * L + pos) * d;
    (kCache[layer] as Float32Array).set(qkv.subarray(src + d, src + 2 * d), dst);
    (vCache[layer] as Float32Array).set(qkv.subarray(src + 2 * d, src + 3 * d), dst);
  };

  // Prefill: padded forward passes over groups of similar-length prompts (the caller sorted
  // them); padding positions are never read, since each row attends only below its length.
  const logits = new Float32Array(n * V);
  for (let g0 = 0; g0 < n; g0 += PREFILL_ROWS) {
    const g = prompts.slice(g0, g0 + PREFILL_ROWS);
    const Tp = Math.max(...g.map((p) => p.length));
    const ids = new Int32Array(g.length * Tp);
    g.forEach((p, i) => ids.set(p, i * Tp));
    logits.set(readAndDispose(tf.tidy(() => {
      const h = model.hidden(tf.tensor2d(ids, [g.length, Tp], 'int32'), (layer, qkv) => {
        const data = qkv.dataSync() as Float32Array;
        g.forEach((p, i) => { for (let t = 0; t < p.length; t++) store(layer, data, g0 + i, i * Tp + t, t); });
      });
      const rows = tf.tensor1d(g.map((p, i) => i * Tp + p.length - 1), 'int32');
      return tf.matMul(tf.gather(h, rows), model.param('head.w'));
    })), g0 * V);
  }

  const wte = model.param('wte').dataSync() as Float32Array;
  const wpe = model.param('wpe').dataSync() as Float32Array;
  const w = (name: string) => model.param(name);
  const ln = (x: tf.Tensor, g: string) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), w(`${g}.gamma`)), w(`${g}.beta`));
  };
  const gelu = (x: tf.Tensor) => tf.mul(x, tf.sigmoid(tf.mul(x, tf.add(tf.mul(tf.square(x), 2 * 0.7978845608028654 * 0.044715), 2 * 0.7978845608028654))));
  const scores = new Float64Array(L);
  return decodeLoop(prompts, logits, { V, L, maxNew, temperature, rngs, stop }, {
    cached: (cached, seqs) => {
      const m = cached.length;
      const x0 = new Float32Array(m * d);
      cached.forEach((i, r) => {
        const s = seqs[i] as number[];
        const pos = s.length - 1;
        const tok = s[pos] as number;
        for (let j = 0; j < d; j++) x0[r * d + j] = (wte[tok * d + j] as number) + (wpe[pos * d + j] as number);
      });
      return readAndDispose(tf.tidy(() => {
        let x: tf.Tensor = tf.tensor2d(x0, [m, d]);
        for (let l = 0; l < nLayers; l++) {
          const p = `blocks.${l}`;
          const qkv = tf.matMul(ln(x, `${p}.ln1`) as tf.Tensor2D, w(`${p}.attn.wqkv`) as tf.Tensor2D).dataSync() as Float32Array;
          const o = new Float32Array(m * d);
          const K = kCache[l] as Float32Array;
          const Vc = vCache[l] as Float32Array;
          cached.forEach((i, r) => {
            const pos = (seqs[i] as number[]).length - 1;
            store(l, qkv, i, r, pos);
            for (let h = 0; h < H; h++) {
              attendOne(qkv, r * 3 * d + h * hd, K, Vc, i * L * d + h * hd, d, pos, hd, scale, scores, o, r * d + h * hd);
            }
          });
          x = tf.add(x, tf.matMul(tf.tensor2d(o, [m, d]), w(`${p}.attn.wo`) as tf.Tensor2D));
          x = tf.add(x, tf.matMul(gelu(tf.matMul(ln(x, `${p}.ln2`) as tf.Tensor2D, w(`${p}.mlp.w1`) as tf.Tensor2D)) as tf.Tensor2D, w(`${p}.mlp.w2`) as tf.Tensor2D));
        }
        return tf.matMul(ln(x, 'lnf') as tf.Tensor2D, w('head.w') as tf.Tensor2D);
      }));
    },
    full: (full, seqs) => lastLogits(model, full.map((i) => seqs[i] as number[])),
  });
}
