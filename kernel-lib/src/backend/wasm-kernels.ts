/**
 * Access to our own WebAssembly kernels (`kernel-lib/wasm/gpt-kernels.c`) running on the
 * memory of @tensorflow/tfjs-backend-wasm: one instance per tfjs heap, created on first use.
 * Used by the fused training path (`model/fused.ts`), the data-parallel pool
 * (`parallel/pool.ts`) and the GMT mask (`tuning/mask.ts`).
 *
 * The module imports tfjs' memory instead of owning one, so tensors are read and written where
 * tfjs keeps them; pointers are byte offsets into that memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';

/** The exports of gpt-kernels.wasm. */
export interface WasmKernels {
  gemm_scratch_floats(n: number): number;
  gemm(a: number, lda: number, ta: number, b: number, ldb: number, tb: number, c: number, ldc: number,
    m: number, n: number, k: number, acc: number, scratch: number): void;
  copy_add(dst: number, a: number, b: number, n: number): void;
  fill_zero(dst: number, n: number): void;
  layernorm_fwd(x: number, g: number, b: number, y: number, mean: number, rstd: number, n: number, d: number, eps: number): void;
  layernorm_bwd(dy: number, x: number, mean: number, rstd: number, g: number, dx: number, dg: number, db: number, n: number, d: number): void;
  gelu_fwd(x: number, y: number, n: number): void;
  gelu_bwd(x: number, dy: number, dx: number, n: number): void;
  attention_fwd(qkv: number, out: number, p: number, b: number, t: number, h: number, hd: number, scratch: number): void;
  attention_bwd(qkv: number, p: number, dout: number, dqkv: number, dp: number, b: number, t: number, h: number, hd: number, scratch: number): void;
  embed_fwd(tokens: number, wte: number, wpe: number, x: number, bt: number, t: number, d: number): void;
  embed_bwd(tokens: number, dx: number, dwte: number, dwpe: number, bt: number, t: number, d: number): void;
  xent_fwd_bwd(logits: number, targets: number, w: number, n: number, v: number): number;
  mask_keep(score: number, g: number, threshold: number, mask: number, out: number, n: number): void;
}

/** The parts of the tfjs-wasm backend object used here (not in its public typings). */
export interface WasmHeapBackend {
  wasm: { asm: { memory: WebAssembly.Memory }; _malloc(bytes: number): number; _free(ptr: number): void; HEAPU8: Uint8Array; HEAPF32: Float32Array };
  getMemoryOffset(dataId: object): number;
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
}

/** Where the compiled kernels live: `<package>/wasm/gpt-kernels.wasm` (from `src/backend` or `dist/backend`). */
export const GPT_KERNELS_WASM = path.join(__dirname, '..', '..', 'wasm', 'gpt-kernels.wasm');

let compiled: WebAssembly.Module | undefined;
const instances = new WeakMap<WebAssembly.Memory, WasmKernels>();

/** Why our kernels cannot run on the active backend, or `undefined` when they can. */
export function wasmKernelsUnavailableReason(): string | undefined {
  if (tf.getBackend() !== 'wasm') return `the fused kernels need the wasm backend (active: ${tf.getBackend()})`;
  const memory = (tf.backend() as unknown as WasmHeapBackend).wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return 'the wasm backend does not expose its memory';
  if (typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer) {
    return 'the threaded wasm build shares its memory; the fused kernels run on the single-threaded build only';
  }
  if (!fs.existsSync(GPT_KERNELS_WASM)) return `missing ${GPT_KERNELS_WASM}`;
  return undefined;
}

/**
 * The kernels and the backend they run on, or `undefined` when they cannot run here
 * (see {@link wasmKernelsUnavailableReason}).
 */
export function wasmKernels(): { kernels: WasmKernels; backend: WasmHeapBackend } | undefined {
  if (wasmKernelsUnavailableReason() !== undefined) return undefined;
  const backend = tf.backend() as unknown as WasmHeapBackend;
  const memory = backend.wasm.asm.memory;
  let kernels = instances.get(memory);
  if (!kernels) {
    compiled ??= new WebAssembly.Module(fs.readFileSync(GPT_KERNELS_WASM));
    kernels = new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as WasmKernels;
    instances.set(memory, kernels);
  }
  return { kernels, backend };
}
