/**
 * Cached generation on the native engine's kernels: the same algorithm as `generate.ts`
 * (prompts prefilled in groups of similar length, then one token per step for every active row
 * with a key/value cache, rows past the context recomputed over their last `contextLength`
 * tokens), with every product, LayerNorm, GELU and attention computed by the fused kernels on
 * tfjs-wasm's heap instead of by tfjs ops and JavaScript loops. Used by `generate` when the
 * native engine is in use; the wasm engine keeps the tfjs path, whose results its stored runs
 * were scored with.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedKernels } from '../backend/engine';
import type { DecodeKernels, FusedKernels, WasmHeapBackend } from '../backend/wasm-kernels';
import type { Rng } from '../util/rng';
import type { GPTConfig } from './config';
import { FusedEngine } from './fused';
import { decodeLoop } from './decode-loop';

/** Rows per prefill forward pass (as in `generate.ts`). */
const PREFILL_ROWS = 64;

/** The view of a model this needs: its config and its parameters by name. */
export interface DecodableModel {
  readonly config: GPTConfig;
  param(name: string): tf.Variable;
}

/** Whether `generateFused` can run now (native engine on the wasm backend). */
export function canGenerateFused(): boolean {
  const wk = fusedKernels();
  return wk?.engine === 'native' && wk.decode !== undefined;
}

/**
 * Continues each prompt (token ids, each 1..contextLength long, sorted by length for the best
 * prefill) by up to `maxNew` tokens; returns the new tokens per prompt. `threads`: threads each
 * kernel may use.
 */
/** Largest key/value cache of one pass, in bytes: more prompts are decoded in several passes. */
const CACHE_BYTES = 256 * 2 ** 20;

export function generateFused(
  model: DecodableModel, prompts: number[][], maxNew: number, temperature: number, rngs: Rng[],
  stop: number | undefined, threads: number,
): number[][] {
  const { contextLength: L, dModel: d, nLayers } = model.config;
  const rows = Math.max(1, Math.floor(CACHE_BYTES / (2 * nLayers * L * d * 4)));
  if (prompts.length <= rows) return decode(model, prompts, maxNew, temperature, rngs, stop, threads);
  const out: number[][] = [];
  for (let i = 0; i < prompts.length; i += rows) {
    out.push(...decode(model, prompts.slice(i, i + rows), maxNew, temperature, rngs.slice(i, i + rows), stop, threads));
  }
  return out;
}

/** One pass of {@link generateFused} over prompts whose cache fits. */
function decode(
  model: DecodableModel, prompts: number[][], maxNew: number, temperature: number, rngs: Rng[],
  stop: number | undefined, threads: number,
): number[][] {
  const wk = fusedKernels(threads);
  if (!wk || wk.engine !== 'native' || !wk.decode) throw new Error('generateFused: the native engine is not in use');
  const { vocabSize: V, contextLength: L, dModel: d, nHeads: H, nLayers, mlpRatio, layerNormEps: eps } = model.config;
  const F = mlpRatio * d, hd = d / H, n = prompts.length;
  if (maxNew === 0 || n === 0) return prompts.map(() => []);
  const k: FusedKernels & DecodeKernels = { ...wk.kernels, ...wk.decode };
  const be: WasmHeapBackend = wk.backend;
  const engine = new FusedEngine(model.config, (name) => model.param(name));

  // One heap block: the caches, then the decode step's buffers for up to n rows.
  let off = 0;
  const take = (floats: number) => { const o = off; off += 4 * Math.ceil(floats / 16) * 16; return o; };
  const cacheFloats = n * L * d;
  const kc = Array.from({ length: nLayers }, () => take(cacheFloats));
  const vc = Array.from({ length: nLayers }, () => take(cacheFloats));
  const rowsMax = Math.max(n, PREFILL_ROWS * L);
  const slot = take(rowsMax), pos = take(rowsMax), x = take(n * d), ln = take(n * d), lnm = take(n), lnr = take(n);
  const qkv = take(n * 3 * d), att = take(n * d), h1 = take(n * F), h2 = take(n * F), logitsAt = take(n * V);
  const base = be.wasm._malloc(off);
  if (!base) throw new Error(`generate: could not allocate ${(off / 2 ** 20).toFixed(0)} MiB for the key/value cache of ${n} rows`);
  const at = (o: number) => base + o;
  // Views are made at each use: any allocation (tfjs' or ours) may grow the heap and detach them.
  const ints = (o: number, len: number) => new Int32Array(be.wasm.HEAPU8.buffer, at(o), len);
  const floats = (o: number, len: number) => new Float32Array(be.wasm.HEAPU8.buffer, at(o), len);
  const param = (name: string, len: number) => new Float32Array(be.wasm.HEAPU8.buffer, w(name), len);
  const w = (name: string) => be.getMemoryOffset(model.param(name).dataId);
  try {
    // Prefill: padded forward passes over groups of similar-length prompts; every position's key
    // and value go to the cache (padding positions too: they are overwritten by the decode step
    // at that position before any row reads them).
    const logits = new Float32Array(n * V);
    for (let g0 = 0; g0 < n; g0 += PREFILL_ROWS) {
      const g = prompts.slice(g0, g0 + PREFILL_ROWS);
      const Tp = Math.max(...g.map((p) => p.length));
      const ids = new Int32Array(g.length * Tp);
      g.forEach((p, i) => ids.set(p, i * Tp));
      const last = g.map((p, i) => i * Tp + p.length - 1);
      logits.set(engine.logits(ids, g.length, Tp, last, threads, (layer, qkvAt) => {
        const s = ints(slot, g.length * Tp), p = ints(pos, g.length * Tp);
        for (let i = 0; i < g.length; i++) for (let t = 0; t < Tp; t++) { s[i * Tp + t] = g0 + i; p[i * Tp + t] = t; }
        k.kv_store(qkvAt, 3 * d, at(kc[layer]!), at(vc[layer]!), at(slot), at(pos), g.length * Tp, d, L);
      }), g0 * V);
    }

    return decodeLoop(prompts, logits, { V, L, maxNew, temperature, rngs, stop }, {
      cached: (cached, seqs) => {
        const m = cached.length;
        // x = wte[token] + wpe[position] for each active row.
        const wte = param('wte', V * d), wpe = param('wpe', L * d);
        const xs = floats(x, m * d), s = ints(slot, m), p = ints(pos, m);
        cached.forEach((i, r) => {
          const seq = seqs[i] as number[];
          const t = seq.length - 1, tok = seq[t] as number;
          s[r] = i;
          p[r] = t;
          for (let j = 0; j < d; j++) xs[r * d + j] = (wte[tok * d + j] as number) + (wpe[t * d + j] as number);
        });
        for (let l = 0; l < nLayers; l++) {
          const pre = `blocks.${l}`;
          k.layernorm_fwd(at(x), w(`${pre}.ln1.gamma`), w(`${pre}.ln1.beta`), at(ln), at(lnm), at(lnr), m, d, eps);
          k.gemm(at(ln), d, 0, w(`${pre}.attn.wqkv`), 3 * d, 0, at(qkv), 3 * d, m, 3 * d, d, 0, 0);
          k.kv_store(at(qkv), 3 * d, at(kc[l]!), at(vc[l]!), at(slot), at(pos), m, d, L);
          k.attention_decode(at(qkv), at(kc[l]!), at(vc[l]!), at(att), at(slot), at(pos), m, H, hd, L);
          k.gemm(at(att), d, 0, w(`${pre}.attn.wo`), d, 0, at(x), d, m, d, d, 1, 0);
          k.layernorm_fwd(at(x), w(`${pre}.ln2.gamma`), w(`${pre}.ln2.beta`), at(ln), at(lnm), at(lnr), m, d, eps);
          k.gemm(at(ln), d, 0, w(`${pre}.mlp.w1`), F, 0, at(h1), F, m, F, d, 0, 0);
          k.gelu_fwd(at(h1), at(h2), m * F);
          k.gemm(at(h2), F, 0, w(`${pre}.mlp.w2`), d, 0, at(x), d, m, d, F, 1, 0);
        }
        k.layernorm_fwd(at(x), w('lnf.gamma'), w('lnf.beta'), at(ln), at(lnm), at(lnr), m, d, eps);
        k.gemm(at(ln), d, 0, w('head.w'), V, 0, at(logitsAt), V, m, V, d, 0, 0);
        return floats(logitsAt, m * V).slice();
      },
      full: (full, seqs) => {
        // Rows past the context: their last L tokens, recomputed (nanoGPT's crop).
        const ids = new Int32Array(full.length * L);
        full.forEach((i, r) => ids.set((seqs[i] as number[]).slice(-L), r * L));
        return engine.logits(ids, full.length, L, full.map((_, r) => r * L + L - 1), threads);
      },
    });
  } finally {
    engine.dispose();
    be.wasm._free(base);
  }
}
