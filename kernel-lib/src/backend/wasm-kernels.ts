/**
 * The wasm engine: our own WebAssembly kernels (built from `kernel-lib/kernels/gpt-kernels.c`)
 * running on the memory of @tensorflow/tfjs-backend-wasm: one instance per tfjs heap, created on
 * first use. `backend/engine.ts` chooses between it and the native engine (the same kernels
 * compiled for the host CPU); the fused training path, AdamW, the gradient norm and the GMT mask
 * call whichever it chose.
 *
 * The module imports tfjs' memory instead of owning one, so tensors are read and written where
 * tfjs keeps them; pointers are byte offsets into that memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';

/**
 * The kernels of gpt-kernels.c, as every engine provides them (the exports of gpt-kernels.wasm,
 * and the native addon's): pointers are byte offsets into tfjs-wasm's heap.
 */
export interface FusedKernels {
  gemm_scratch_floats(n: number): number;
  gemm(a: number, lda: number, ta: number, b: number, ldb: number, tb: number, c: number, ldc: number,
    m: number, n: number, k: number, acc: number, scratch: number): void;
  copy_add(dst: number, a: number, b: number, n: number): void;
  scale_add(dst: number, a: number, src: number, b: number, n: number): void;
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
  adamw(theta: number, g: number, m: number, v: number, mask: number, thetaOut: number, mOut: number, vOut: number, n: number,
    b1: number, omb1: number, b2: number, omb2: number, c1: number, c2: number, eps: number, lr: number, wd: number,
    decay: number, hasMask: number): void;
  sum_squares(x: number, n: number): number;
  select_work_words(): number;
  select_abs_parts(parts: number, nparts: number, rank: number, sigmas: number, scratch: number, work: number, info: number): number;
  mark_bits(x: number, n: number, low: number, high: number, words: number, off: number): number;
  mask_apply(score: number, g: number, n: number, low: number, high: number, mask: number, out: number, words: number, off: number): number;
  and_popcount(a: number, b: number, words: number): number;
}

/** Kernels of cached decoding, which only the native engine has (the wasm engine generates with
 * tfjs ops, as the runs stored from it did). */
export interface DecodeKernels {
  kv_store(qkv: number, ld: number, kcache: number, vcache: number, slot: number, pos: number, n: number, d: number, L: number): void;
  attention_decode(qkv: number, kcache: number, vcache: number, out: number, slot: number, pos: number, n: number, h: number, hd: number, L: number): void;
  argmax_rows(x: number, v: number, idx: number, n: number): void;
}

/** The wasm engine's kernels (same interface as every engine's). */
export type WasmKernels = FusedKernels;

/** The parts of the tfjs-wasm backend object used here (not in its public typings). */
export interface WasmHeapBackend {
  wasm: { asm: { memory: WebAssembly.Memory }; _malloc(bytes: number): number; _free(ptr: number): void; HEAPU8: Uint8Array; HEAPF32: Float32Array };
  getMemoryOffset(dataId: object): number;
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
}

/**
 * The two builds of gpt-kernels.c (see scripts/build-wasm.mjs):
 * - `relaxed-simd`: multiply-adds are relaxed SIMD's `f32x4.relaxed_madd`, one FMA instruction
 *   on CPUs that have one (x86-64 FMA3, arm64); ~15% faster per update on the reference model;
 * - `simd128`: plain 128-bit SIMD, a product and a sum rounded separately.
 * Each is deterministic on a given machine; they differ from each other by float rounding, so a
 * run's record names the variant it used.
 */
export type KernelVariant = 'relaxed-simd' | 'simd128';

/** Where each build lives: `<package>/wasm/` (from `src/backend` or `dist/backend`). */
export const GPT_KERNELS_WASM: Readonly<Record<KernelVariant, string>> = {
  'relaxed-simd': path.join(__dirname, '..', '..', 'wasm', 'gpt-kernels-relaxed.wasm'),
  simd128: path.join(__dirname, '..', '..', 'wasm', 'gpt-kernels.wasm'),
};

// The smallest module that uses relaxed SIMD: (func (param v128 v128 v128) (result v128)
// (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2))).
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x85, 0x02, 0x0b,
]);

let relaxedSupport: { ok: boolean; how: string } | undefined;

/**
 * Whether this runtime compiles relaxed SIMD, and how. Node ≥ 22 has it on by default; Node 20
 * and 21 ship it behind V8's `--experimental-wasm-relaxed-simd`, which is switched on here with
 * `v8.setFlagsFromString` when missing. That flag only widens what the wasm validator accepts
 * for modules compiled afterwards (tfjs' own module is unaffected), and the worker threads of
 * `parallel/` share it. Set `GMT_WASM_KERNELS=simd128` to leave V8's flags alone.
 */
export function relaxedSimdSupport(): { ok: boolean; how: string } {
  if (relaxedSupport) return relaxedSupport;
  if (WebAssembly.validate(RELAXED_PROBE)) return (relaxedSupport = { ok: true, how: 'relaxed SIMD is on in this runtime' });
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require('node:v8') as typeof import('node:v8')).setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch { /* not Node, or the flag is gone: validation below says so */ }
  relaxedSupport = WebAssembly.validate(RELAXED_PROBE)
    ? { ok: true, how: `relaxed SIMD enabled with --experimental-wasm-relaxed-simd (Node ${process.versions.node})` }
    : { ok: false, how: `this runtime (Node ${process.versions.node}) does not compile relaxed SIMD` };
  return relaxedSupport;
}

let forced: KernelVariant | undefined;

/**
 * The build the fused kernels use in this process and why: `setKernelVariant()` if called, else
 * `GMT_WASM_KERNELS` (`relaxed-simd` | `simd128` | `auto`), else `relaxed-simd` where the
 * runtime supports it (see {@link relaxedSimdSupport}) and `simd128` otherwise.
 */
export function kernelVariant(): { variant: KernelVariant; reason: string } {
  if (forced) return { variant: forced, reason: 'set by setKernelVariant()' };
  const env = (process.env.GMT_WASM_KERNELS ?? 'auto').trim();
  if (env === 'simd128') return { variant: 'simd128', reason: 'GMT_WASM_KERNELS=simd128' };
  if (env !== 'auto' && env !== '' && env !== 'relaxed-simd') {
    throw new Error(`GMT_WASM_KERNELS must be relaxed-simd, simd128 or auto, got ${JSON.stringify(env)}`);
  }
  const support = relaxedSimdSupport();
  if (support.ok) return { variant: 'relaxed-simd', reason: support.how };
  if (env === 'relaxed-simd') throw new Error(`GMT_WASM_KERNELS=relaxed-simd, but ${support.how}`);
  return { variant: 'simd128', reason: `${support.how}; using the simd128 build` };
}

/**
 * Pins the build for this process from the next fused call on (`'auto'` undoes it). Throws if
 * `relaxed-simd` cannot run here.
 */
export function setKernelVariant(variant: KernelVariant | 'auto'): void {
  if (variant === 'auto') {
    forced = undefined;
    return;
  }
  if (variant !== 'relaxed-simd' && variant !== 'simd128') throw new Error(`unknown kernel variant ${JSON.stringify(variant)}`);
  if (variant === 'relaxed-simd' && !relaxedSimdSupport().ok) throw new Error(`relaxed-simd kernels: ${relaxedSimdSupport().how}`);
  forced = variant;
}

const compiled = new Map<KernelVariant, WebAssembly.Module>();
const instances = new WeakMap<WebAssembly.Memory, Map<KernelVariant, WasmKernels>>();

/** Why our kernels cannot run on the active backend, or `undefined` when they can. */
export function wasmKernelsUnavailableReason(): string | undefined {
  if (tf.getBackend() !== 'wasm') return `the fused kernels need the wasm backend (active: ${tf.getBackend()})`;
  const memory = (tf.backend() as unknown as WasmHeapBackend).wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return 'the wasm backend does not expose its memory';
  if (typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer) {
    return 'the threaded wasm build shares its memory; the fused kernels run on the single-threaded build only';
  }
  const file = GPT_KERNELS_WASM[kernelVariant().variant];
  if (!fs.existsSync(file)) return `missing ${file}`;
  return undefined;
}

/**
 * The kernels and the backend they run on, or `undefined` when they cannot run here
 * (see {@link wasmKernelsUnavailableReason}).
 */
export function wasmKernels(): { kernels: WasmKernels; backend: WasmHeapBackend; variant: KernelVariant } | undefined {
  if (wasmKernelsUnavailableReason() !== undefined) return undefined;
  const backend = tf.backend() as unknown as WasmHeapBackend;
  const memory = backend.wasm.asm.memory;
  const { variant } = kernelVariant();
  let perMemory = instances.get(memory);
  if (!perMemory) instances.set(memory, (perMemory = new Map()));
  let kernels = perMemory.get(variant);
  if (!kernels) {
    let mod = compiled.get(variant);
    if (!mod) compiled.set(variant, (mod = new WebAssembly.Module(fs.readFileSync(GPT_KERNELS_WASM[variant]))));
    kernels = new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as WasmKernels;
    perMemory.set(variant, kernels);
  }
  return { kernels, backend, variant };
}
