/**
 * The fused training path: one GPT training step (forward, loss, backward) computed by our own
 * kernels (`kernel-lib/kernels/gpt-kernels.c`, run by the engine `backend/engine.ts` chooses:
 * native for this CPU, or WebAssembly) directly on the memory of @tensorflow/tfjs-backend-wasm.
 * Weights are read where tfjs keeps them; the gradients are written into fresh tfjs tensors, so
 * the trainer, the strategies and AdamW see ordinary tensors.
 *
 * Same function as `GPT.loss` + `tf.variableGrads` on the fast and plain paths; a test compares
 * the three on the same weights. Activations are kept in one workspace per batch shape,
 * allocated with tfjs' own `malloc` and freed by `dispose()`.
 *
 * Available on the `wasm` backend when its memory is not shared (the opt-in threaded build
 * shares it; the fused path is then skipped with a reason). Everything else falls back to the
 * tfjs paths of `gpt.ts`.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedKernels, fusedKernelsUnavailableReason } from '../backend/engine';
import type { FusedKernels, WasmHeapBackend } from '../backend/wasm-kernels';
import type { HostBatch } from '../types';
import type { GPTConfig } from './config';

/** Why the fused path cannot run on the current backend, or `undefined` when it can. */
export const fusedUnavailableReason = fusedKernelsUnavailableReason;

/** Byte offsets of one workspace, in floats/ints of 4 bytes each. */
interface Layout {
  B: number; T: number;
  bytes: number;
  tokens: number; targets: number; weights: number;
  layers: {
    xin: number; ln1: number; ln1m: number; ln1r: number; qkv: number; P: number; att: number;
    xmid: number; ln2: number; ln2m: number; ln2r: number; hpre: number; hact: number;
  }[];
  xfin: number; lnf: number; lnfm: number; lnfr: number; logits: number;
  dx: number; dtmp: number; dqkv: number; dh: number; datt: number; dP: number; scratch: number;
}

function layout(cfg: GPTConfig, B: number, T: number, gemmScratchFloats: number): Omit<Layout, 'bytes'> & { floats: number } {
  const { dModel: d, nLayers, nHeads: H, vocabSize: V, mlpRatio } = cfg;
  const N = B * T, F = mlpRatio * d;
  let at = 0;
  // Every block starts on a 16-byte boundary so SIMD loads of whole rows stay aligned.
  const take = (floats: number) => { const o = at; at += Math.ceil(floats / 4) * 4; return o; };
  const tokens = take(N), targets = take(N), weights = take(N);
  const layers = [];
  for (let l = 0; l < nLayers; l++) {
    layers.push({
      xin: take(N * d), ln1: take(N * d), ln1m: take(N), ln1r: take(N), qkv: take(N * 3 * d), P: take(B * H * T * T),
      att: take(N * d), xmid: take(N * d), ln2: take(N * d), ln2m: take(N), ln2r: take(N), hpre: take(N * F), hact: take(N * F),
    });
  }
  const xfin = take(N * d), lnf = take(N * d), lnfm = take(N), lnfr = take(N), logits = take(N * V);
  const dx = take(N * d), dtmp = take(N * d), dqkv = take(N * 3 * d), dh = take(N * F), datt = take(N * d), dP = take(T * T);
  const scratch = take(gemmScratchFloats);
  return { B, T, tokens, targets, weights, layers, xfin, lnf, lnfm, lnfr, logits, dx, dtmp, dqkv, dh, datt, dP, scratch, floats: at };
}

/** One pass over one batch: the kernels, the workspace and offset helpers. */
interface Pass {
  k: FusedKernels;
  be: WasmHeapBackend;
  ws: Layout & { base: number };
  at: (floatIndex: number) => number;
  /** Heap byte offset of a parameter's values. */
  w: (name: string) => number;
  B: number;
  T: number;
}

/**
 * Runs fused training steps for one model. Created lazily by `GPT.lossAndGradients`; holds a
 * workspace for the last batch shape until `dispose()`.
 */
export class FusedEngine {
  private ws?: Layout & { base: number; scratchFloats: number };

  constructor(private readonly cfg: GPTConfig, private readonly weight: (name: string) => tf.Variable) {}

  /**
   * Loss and ∇θ L of one batch, by parameter name. The caller owns the returned tensors.
   * Throws on token ids outside the vocabulary or a batch longer than the context.
   * `threads`: threads each native kernel may use (the wasm engine has one).
   */
  lossAndGradients(batch: HostBatch, threads?: number): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } {
    const pass = this.prepare(batch, threads);
    this.forward(pass);
    // From here on `logits` holds ∂L/∂logits.
    const loss = this.crossEntropy(pass);
    const grads = this.backward(pass);
    return { loss: tf.scalar(loss), grads };
  }

  /**
   * The loss of one batch alone (forward pass and cross-entropy; no gradient tensors): what
   * validation needs. Same value as `lossAndGradients`' loss, bit for bit.
   */
  loss(batch: HostBatch, threads?: number): number {
    const pass = this.prepare(batch, threads);
    this.forward(pass);
    return this.crossEntropy(pass);
  }

  /**
   * Next-token logits of rows of a forward pass over `inputs` [B, T] (targets are not needed):
   * `rows[i]` is a flat position b·T + t; the result holds V logits per entry of `rows`.
   * `onQkv(layer, offset)` sees each block's q|k|v projection [B·T, 3d] (a heap byte offset,
   * valid during the call): generation fills its key/value cache from it.
   */
  logits(inputs: Int32Array, B: number, T: number, rows: readonly number[], threads?: number, onQkv?: (layer: number, offset: number, k: FusedKernels) => void): Float32Array {
    const N = B * T;
    const pass = this.prepare({ batchSize: B, seqLen: T, inputs, targets: new Int32Array(N), weights: new Float32Array(N) }, threads);
    this.forward(pass, onQkv);
    const V = this.cfg.vocabSize;
    const all = new Float32Array(pass.be.wasm.HEAPU8.buffer, pass.at(pass.ws.logits), N * V);
    const out = new Float32Array(rows.length * V);
    rows.forEach((r, i) => out.set(all.subarray(r * V, (r + 1) * V), i * V));
    return out;
  }

  /** Checks the batch, sizes the workspace and copies the batch into it. */
  private prepare(batch: HostBatch, threads?: number): Pass {
    const wk = fusedKernels(threads);
    if (!wk) throw new Error(`fused step: ${fusedKernelsUnavailableReason()}`);
    const cfg = this.cfg;
    const { batchSize: B, seqLen: T } = batch;
    const V = cfg.vocabSize;
    if (T < 1 || T > cfg.contextLength) throw new Error(`fused step: sequence length ${T} outside 1..contextLength (${cfg.contextLength})`);
    for (const [what, ids] of [['inputs', batch.inputs], ['targets', batch.targets]] as const) {
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i] as number;
        if (!(id >= 0 && id < V)) throw new Error(`fused step: ${what}[${i}] = ${id} is not a token id of this model (0..${V - 1})`);
      }
    }
    const { kernels: k, backend: be } = wk;
    const ws = this.workspace(be, k, B, T);
    const at = (floatIndex: number) => ws.base + 4 * floatIndex;
    // Views are taken after every allocation: a heap growth detaches older views.
    const heap = be.wasm.HEAPU8.buffer;
    const N = B * T;
    new Int32Array(heap, at(ws.tokens), N).set(batch.inputs);
    new Int32Array(heap, at(ws.targets), N).set(batch.targets);
    new Float32Array(heap, at(ws.weights), N).set(batch.weights);
    return { k, be, ws, at, B, T, w: (name: string) => be.getMemoryOffset(this.weight(name).dataId) };
  }

  /** Embedding, blocks, final LayerNorm and head: fills the workspace up to the logits. */
  private forward(pass: Pass, onQkv?: (layer: number, offset: number, k: FusedKernels) => void): void {
    const { k, ws, at, w, B, T } = pass;
    const { dModel: d, nHeads: H, vocabSize: V, mlpRatio, nLayers, layerNormEps: eps } = this.cfg;
    const hd = d / H, N = B * T, F = mlpRatio * d;
    const S = at(ws.scratch);
    k.embed_fwd(at(ws.tokens), w('wte'), w('wpe'), at(ws.layers[0]!.xin), N, T, d);
    for (let l = 0; l < nLayers; l++) {
      const L = ws.layers[l]!;
      const p = `blocks.${l}`;
      const xnext = l + 1 < nLayers ? ws.layers[l + 1]!.xin : ws.xfin;
      k.layernorm_fwd(at(L.xin), w(`${p}.ln1.gamma`), w(`${p}.ln1.beta`), at(L.ln1), at(L.ln1m), at(L.ln1r), N, d, eps);
      k.gemm(at(L.ln1), d, 0, w(`${p}.attn.wqkv`), 3 * d, 0, at(L.qkv), 3 * d, N, 3 * d, d, 0, S);
      onQkv?.(l, at(L.qkv), k);
      k.attention_fwd(at(L.qkv), at(L.att), at(L.P), B, T, H, hd, S);
      k.copy_add(at(L.xmid), at(L.xin), 0, N * d);
      k.gemm(at(L.att), d, 0, w(`${p}.attn.wo`), d, 0, at(L.xmid), d, N, d, d, 1, S);
      k.layernorm_fwd(at(L.xmid), w(`${p}.ln2.gamma`), w(`${p}.ln2.beta`), at(L.ln2), at(L.ln2m), at(L.ln2r), N, d, eps);
      k.gemm(at(L.ln2), d, 0, w(`${p}.mlp.w1`), F, 0, at(L.hpre), F, N, F, d, 0, S);
      k.gelu_fwd(at(L.hpre), at(L.hact), N * F);
      k.copy_add(at(xnext), at(L.xmid), 0, N * d);
      k.gemm(at(L.hact), F, 0, w(`${p}.mlp.w2`), d, 0, at(xnext), d, N, d, F, 1, S);
    }
    k.layernorm_fwd(at(ws.xfin), w('lnf.gamma'), w('lnf.beta'), at(ws.lnf), at(ws.lnfm), at(ws.lnfr), N, d, eps);
    k.gemm(at(ws.lnf), d, 0, w('head.w'), V, 0, at(ws.logits), V, N, V, d, 0, S);
  }

  /** The weighted cross-entropy of the forward pass; leaves ∂L/∂logits in `logits`. */
  private crossEntropy({ k, ws, at, B, T }: Pass): number {
    return k.xent_fwd_bwd(at(ws.logits), at(ws.targets), at(ws.weights), B * T, this.cfg.vocabSize);
  }

  /** ∇θ L from the forward pass and ∂L/∂logits, into fresh tensors by parameter name. */
  private backward({ k, be, ws, at, w, B, T }: Pass): Map<string, tf.Tensor> {
    const { dModel: d, nHeads: H, vocabSize: V, mlpRatio, nLayers } = this.cfg;
    const hd = d / H, N = B * T, F = mlpRatio * d;
    const S = at(ws.scratch);
    // Gradient tensors. makeOutput may grow the heap; offsets stay valid.
    const infos = new Map<string, tf.TensorInfo>();
    const grad = (name: string) => {
      let info = infos.get(name);
      if (!info) {
        info = be.makeOutput(this.weight(name).shape, 'float32');
        infos.set(name, info);
      }
      return be.getMemoryOffset(info.dataId);
    };
    const zeroed = (name: string) => {
      const o = grad(name);
      k.fill_zero(o, this.weight(name).size);
      return o;
    };

    // Backward.
    const dlogits = at(ws.logits), dx = at(ws.dx), dtmp = at(ws.dtmp);
    k.gemm(at(ws.lnf), d, 1, dlogits, V, 0, grad('head.w'), V, d, V, N, 0, S);
    k.gemm(dlogits, V, 0, w('head.w'), V, 1, dtmp, d, N, d, V, 0, S);
    k.fill_zero(dx, N * d);
    k.layernorm_bwd(dtmp, at(ws.xfin), at(ws.lnfm), at(ws.lnfr), w('lnf.gamma'), dx, zeroed('lnf.gamma'), zeroed('lnf.beta'), N, d);
    for (let l = nLayers - 1; l >= 0; l--) {
      const L = ws.layers[l]!;
      const p = `blocks.${l}`;
      const dh = at(ws.dh);
      // MLP: x ← xmid + gelu(ln2(xmid)·W1)·W2
      k.gemm(at(L.hact), F, 1, dx, d, 0, grad(`${p}.mlp.w2`), d, F, d, N, 0, S);
      k.gemm(dx, d, 0, w(`${p}.mlp.w2`), d, 1, dh, F, N, F, d, 0, S);
      k.gelu_bwd(at(L.hpre), dh, dh, N * F);
      k.gemm(at(L.ln2), d, 1, dh, F, 0, grad(`${p}.mlp.w1`), F, d, F, N, 0, S);
      k.gemm(dh, F, 0, w(`${p}.mlp.w1`), F, 1, dtmp, d, N, d, F, 0, S);
      k.layernorm_bwd(dtmp, at(L.xmid), at(L.ln2m), at(L.ln2r), w(`${p}.ln2.gamma`), dx, zeroed(`${p}.ln2.gamma`), zeroed(`${p}.ln2.beta`), N, d);
      // Attention: xmid ← xin + attn(ln1(xin)·Wqkv)·Wo
      k.gemm(at(L.att), d, 1, dx, d, 0, grad(`${p}.attn.wo`), d, d, d, N, 0, S);
      k.gemm(dx, d, 0, w(`${p}.attn.wo`), d, 1, at(ws.datt), d, N, d, d, 0, S);
      k.attention_bwd(at(L.qkv), at(L.P), at(ws.datt), at(ws.dqkv), at(ws.dP), B, T, H, hd, S);
      k.gemm(at(L.ln1), d, 1, at(ws.dqkv), 3 * d, 0, grad(`${p}.attn.wqkv`), 3 * d, d, 3 * d, N, 0, S);
      k.gemm(at(ws.dqkv), 3 * d, 0, w(`${p}.attn.wqkv`), 3 * d, 1, dtmp, d, N, d, 3 * d, 0, S);
      k.layernorm_bwd(dtmp, at(L.xin), at(L.ln1m), at(L.ln1r), w(`${p}.ln1.gamma`), dx, zeroed(`${p}.ln1.gamma`), zeroed(`${p}.ln1.beta`), N, d);
    }
    k.embed_bwd(at(ws.tokens), dx, zeroed('wte'), zeroed('wpe'), N, T, d);

    const engine = tf.engine();
    const grads = new Map<string, tf.Tensor>();
    for (const [name, info] of infos) grads.set(name, engine.makeTensorFromTensorInfo(info, tf.backend()));
    return grads;
  }

  private workspace(be: WasmHeapBackend, k: FusedKernels, B: number, T: number): Layout & { base: number; scratchFloats: number } {
    const { dModel: d, mlpRatio, vocabSize: V } = this.cfg;
    const widest = Math.max(3 * d, mlpRatio * d, V, T, d);
    // The GEMM scratch differs per engine (the native one keeps its own per thread).
    const scratchFloats = k.gemm_scratch_floats(widest);
    if (this.ws && this.ws.B === B && this.ws.T === T && this.ws.scratchFloats === scratchFloats) return this.ws;
    this.dispose();
    const l = layout(this.cfg, B, T, scratchFloats);
    const bytes = 4 * l.floats;
    const base = be.wasm._malloc(bytes);
    if (!base) throw new Error(`fused step: could not allocate ${(bytes / 2 ** 20).toFixed(1)} MiB in the wasm heap`);
    this.ws = { ...l, bytes, base, scratchFloats };
    return this.ws;
  }

  /** Bytes of the current workspace (0 before the first step or after `dispose`). */
  get workspaceBytes(): number {
    return this.ws?.bytes ?? 0;
  }

  /** Frees the workspace. Safe to call twice; a later step allocates a new one. */
  dispose(): void {
    if (!this.ws) return;
    const be = tf.findBackend('wasm') as unknown as WasmHeapBackend | null;
    be?.wasm._free(this.ws.base);
    this.ws = undefined;
  }
}
