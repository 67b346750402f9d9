/**
 * The native engine: the fused kernels (`kernel-lib/kernels/gpt-kernels.c`, the same source as
 * the wasm build) compiled for this machine's vector ISA by `npm run setup`
 * (scripts/build-native.mjs) into a Node-API addon that computes on the memory of
 * @tensorflow/tfjs-backend-wasm in place. Loaded on first use; refused, with the reason, when it
 * was not built, cannot load, or fails its self-test (the optimized kernels against naive
 * double-precision code compiled into the same binary).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DecodeKernels, FusedKernels, WasmHeapBackend } from './wasm-kernels';

/** What `build-native` built (kernel-lib/native/manifest.json). */
export interface NativeBuild {
  /** Vector ISA the kernels were compiled for: `avx512`, `avx2` or `neon`. */
  isa: string;
  /** First 12 hex digits of the sha256 of the addon's bytes: the same code gives the same id. */
  buildId: string;
  /** The compiler's `--version` line. */
  compiler: string;
  flags: string;
  /** Absolute path of the addon. */
  file: string;
}

/** The addon's own exports beyond the kernels. */
interface NativeAddon extends FusedKernels, DecodeKernels {
  bind(buffer: ArrayBuffer): number;
  set_threads(n: number): number;
  self_test(): string | null;
  /** GFLOP/s of `threads` threads running 16 independent vector FMA chains each for about `ms` ms. */
  fma_peak(ms: number, threads: number): number;
  info(): { isa: string; vectorFloats: number; microTile: number; compiler: string; flags: string; threads: number };
}

/** Folder of the default build (git-ignored; `npm run setup` fills it). */
export const NATIVE_DIR = path.join(__dirname, '..', '..', 'native');

type Loaded = { ok: true; build: NativeBuild; addon: NativeAddon } | { ok: false; reason: string };
const loaded = new Map<string, Loaded>();

/**
 * Loads the addon described by `<dir>/manifest.json` (default {@link NATIVE_DIR}) once per
 * folder, runs its self-test and returns it, or why it cannot be used.
 */
export function loadNative(dir: string = process.env.GMT_NATIVE_DIR?.trim() || NATIVE_DIR): Loaded {
  const key = path.resolve(dir);
  let r = loaded.get(key);
  if (!r) {
    r = load(key);
    loaded.set(key, r);
  }
  return r;
}

function load(dir: string): Loaded {
  const manifestFile = path.join(dir, 'manifest.json');
  let manifest: Partial<NativeBuild> & { error?: string; file?: string };
  try {
    manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
  } catch {
    return { ok: false, reason: `not built (no ${path.relative(process.cwd(), manifestFile) || manifestFile}; npm run setup builds it)` };
  }
  if (manifest.error) return { ok: false, reason: `not built: ${manifest.error}` };
  if (!manifest.file || !manifest.isa || !manifest.buildId) return { ok: false, reason: `${manifestFile} is incomplete; run npm run setup` };
  const file = path.join(dir, manifest.file);
  let addon: NativeAddon;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    addon = require(file) as NativeAddon;
  } catch (e) {
    return { ok: false, reason: `${manifest.file} does not load: ${String((e as Error).message).split('\n')[0]}` };
  }
  const failed = addon.self_test();
  if (failed !== null) return { ok: false, reason: `${manifest.file} failed its self-test (${failed}); refusing a miscompiled build` };
  return { ok: true, addon, build: { isa: manifest.isa, buildId: manifest.buildId, compiler: manifest.compiler ?? 'unknown', flags: manifest.flags ?? '', file } };
}

/** The heap each addon is pointed at in this JS environment (it holds one binding per environment). */
const boundBuffer = new WeakMap<NativeAddon, ArrayBufferLike>();

/**
 * The native kernels as a {@link FusedKernels} on `backend`'s heap: every call first points the
 * addon at the heap's current buffer (a grown wasm memory has a new one).
 */
export function nativeKernels(addon: NativeAddon, backend: WasmHeapBackend): FusedKernels & DecodeKernels {
  const memory = backend.wasm.asm.memory;
  const bind = (): void => {
    const buffer = memory.buffer;
    if (buffer !== boundBuffer.get(addon)) {
      addon.bind(buffer as ArrayBuffer);
      boundBuffer.set(addon, buffer);
    }
  };
  const wrapped = {} as Record<string, unknown>;
  for (const name of [...KERNEL_NAMES, ...DECODE_KERNEL_NAMES]) {
    const fn = addon[name] as (...args: number[]) => number;
    wrapped[name] = (...args: number[]) => {
      bind();
      return fn(...args);
    };
  }
  return wrapped as unknown as FusedKernels & DecodeKernels;
}

/** Threads the native kernels may use (the caller included); returns the count in effect. */
export function setNativeThreads(addon: NativeAddon, threads: number): number {
  return addon.set_threads(threads);
}

/** The kernels every engine provides (the interface the fused path calls). */
export const KERNEL_NAMES: readonly (keyof FusedKernels)[] = [
  'gemm_scratch_floats', 'gemm', 'copy_add', 'scale_add', 'fill_zero', 'layernorm_fwd', 'layernorm_bwd', 'gelu_fwd', 'gelu_bwd',
  'attention_fwd', 'attention_bwd', 'embed_fwd', 'embed_bwd', 'xent_fwd_bwd', 'adamw', 'sum_squares', 'select_work_words',
  'select_abs_parts', 'mark_bits', 'mask_apply', 'and_popcount',
];

/** The native engine's decoding kernels. */
export const DECODE_KERNEL_NAMES: readonly (keyof DecodeKernels)[] = ['kv_store', 'attention_decode', 'argmax_rows'];
