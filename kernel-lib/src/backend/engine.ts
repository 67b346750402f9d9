/**
 * Which engine computes the fused path: `native` (the kernels compiled for this CPU's vector ISA
 * at setup; see `native.ts`) or `wasm` (the same kernels as 128-bit WebAssembly; portable, and
 * the reference the native engine is tested against). Both run on tfjs-wasm's heap, so weights,
 * gradients and optimizer state stay tfjs tensors whichever engine computes them.
 *
 * Choice: `setEngine()` if called, else `GMT_ENGINE` (`native` | `wasm` | `auto`), else native
 * where it built and passed its self-test, and wasm otherwise (with the reason).
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../util/config';
import { loadNative, nativeKernels, setNativeThreads, type NativeBuild } from './native';
import { kernelVariant, wasmKernels, wasmKernelsUnavailableReason, type DecodeKernels, type FusedKernels, type WasmHeapBackend } from './wasm-kernels';

export type EngineName = 'native' | 'wasm';
export const ENGINE_NAMES: readonly EngineName[] = ['native', 'wasm'];

/** The engine in use and why; the native build, and why the other engine is not used. */
export interface EngineChoice {
  engine: EngineName;
  /** Why this engine (e.g. `GMT_ENGINE=wasm`, `built and passed its self-test`). */
  reason: string;
  /** The native build, when one loaded (also when wasm was asked for). */
  native?: NativeBuild;
  /** Why the native engine cannot be used, when it cannot. */
  nativeUnavailable?: string;
  /** Why the engine not chosen is not used. */
  otherNotUsed: string;
}

let forced: EngineName | undefined;

function parseEngine(where: string, value: string): EngineName | 'auto' {
  const v = value.trim();
  if (v === '' || v === 'auto') return 'auto';
  if (v === 'native' || v === 'wasm') return v;
  throw new ConfigError(`${where} must be native, wasm or auto, got ${JSON.stringify(value)}`);
}

/**
 * The engine this process uses for `env` (default `process.env`; `setEngine` overrides it).
 * Throws a `ConfigError` when native is asked for and cannot run here.
 */
export function engineChoice(env: NodeJS.ProcessEnv = process.env): EngineChoice {
  const want = forced ?? parseEngine('GMT_ENGINE', env.GMT_ENGINE ?? 'auto');
  const source = forced ? 'set by setEngine()' : `GMT_ENGINE=${want}`;
  const nat = loadNative();
  const native = nat.ok ? { native: nat.build } : { nativeUnavailable: nat.reason };
  if (want === 'wasm') return { engine: 'wasm', reason: source, ...native, otherNotUsed: nat.ok ? `native: not asked for (${source})` : `native: ${nat.reason}` };
  if (want === 'native') {
    if (!nat.ok) throw new ConfigError(`${source}, but the native engine is ${nat.reason}`);
    return { engine: 'native', reason: source, ...native, otherNotUsed: 'wasm: the native engine was asked for' };
  }
  if (nat.ok) return { engine: 'native', reason: `the native ${nat.build.isa} build passed its self-test`, ...native, otherNotUsed: 'wasm: the native engine is faster (GMT_ENGINE=wasm selects it)' };
  return { engine: 'wasm', reason: `the native engine is ${nat.reason}`, ...native, otherNotUsed: `native: ${nat.reason}` };
}

/**
 * Pins the engine for this process from the next fused call on (`'auto'` undoes it). Throws when
 * `native` cannot run here.
 */
export function setEngine(engine: EngineName | 'auto'): void {
  const e = parseEngine('setEngine', engine);
  if (e === 'native') {
    const nat = loadNative();
    if (!nat.ok) throw new ConfigError(`setEngine('native'): the native engine is ${nat.reason}`);
  }
  forced = e === 'auto' ? undefined : e;
}

/** How the engine names itself in gradient paths and run keys: `wasm kernels (relaxed-simd)`,
 * `native kernels (avx512, build 3f394622e241)`. */
export function engineLabel(choice: EngineChoice = engineChoice()): string {
  if (choice.engine === 'native' && choice.native) return `native kernels (${choice.native.isa}, build ${choice.native.buildId})`;
  return `wasm kernels (${kernelVariant().variant})`;
}

/** The active engine's kernels on the active wasm heap. */
export interface FusedKernelsHandle {
  kernels: FusedKernels;
  backend: WasmHeapBackend;
  engine: EngineName;
  /** `engineLabel()` of the engine. */
  label: string;
  /** Cached-decoding kernels (native engine only). */
  decode?: DecodeKernels;
}

const nativeByMemory = new WeakMap<WebAssembly.Memory, FusedKernels & DecodeKernels>();

/** Milliseconds per kernel while a profile is being taken (`startKernelProfile`). */
let profile: Map<string, number> | undefined;
const profiled = new WeakMap<object, object>();

/**
 * Starts timing every call of the fused kernels, per kernel name (for `gmt-lab bench`: where an
 * update's time goes). A wrapper times each call: microseconds of overhead per update.
 */
export function startKernelProfile(): void {
  profile = new Map();
}

/** Stops the profile and returns the milliseconds spent in each kernel since it started. */
export function stopKernelProfile(): Map<string, number> {
  const p = profile ?? new Map<string, number>();
  profile = undefined;
  return p;
}

/** `kernels` with every function timed into the running profile. */
function timed<K extends object>(kernels: K): K {
  let w = profiled.get(kernels) as K | undefined;
  if (!w) {
    const out = {} as Record<string, unknown>;
    for (const [name, fn] of Object.entries(kernels)) {
      out[name] = typeof fn !== 'function' ? fn : (...args: unknown[]) => {
        const t0 = performance.now();
        const r = (fn as (...a: unknown[]) => unknown)(...args);
        if (profile) profile.set(name, (profile.get(name) ?? 0) + performance.now() - t0);
        return r;
      };
    }
    w = out as K;
    profiled.set(kernels, w);
  }
  return w;
}

/** Why the fused kernels cannot run on the active backend, or `undefined` when they can. */
export function fusedKernelsUnavailableReason(): string | undefined {
  return wasmKernelsUnavailableReason();
}

/**
 * The kernels of the engine in use, or `undefined` when the fused path cannot run here (see
 * {@link fusedKernelsUnavailableReason}). `threads` (native only): threads each kernel may use.
 */
export function fusedKernels(threads?: number): FusedKernelsHandle | undefined {
  if (wasmKernelsUnavailableReason() !== undefined) return undefined;
  const choice = engineChoice();
  if (choice.engine === 'native') {
    const nat = loadNative();
    if (!nat.ok) return undefined;
    const backend = tf.backend() as unknown as WasmHeapBackend;
    const memory = backend.wasm.asm.memory;
    let kernels = nativeByMemory.get(memory);
    if (!kernels) nativeByMemory.set(memory, (kernels = nativeKernels(nat.addon, backend)));
    if (threads !== undefined) setNativeThreads(nat.addon, threads);
    const k = profile ? timed(kernels) : kernels;
    return { kernels: k, backend, engine: 'native', label: engineLabel(choice), decode: k };
  }
  const wk = wasmKernels();
  return wk ? { kernels: profile ? timed(wk.kernels) : wk.kernels, backend: wk.backend, engine: 'wasm', label: engineLabel(choice) } : undefined;
}

/** Which part of an update each kernel belongs to (the families `gmt-lab bench` reports). */
export const KERNEL_FAMILIES: Readonly<Record<string, string>> = Object.freeze({
  gemm: 'GEMM',
  attention_fwd: 'attention', attention_bwd: 'attention',
  layernorm_fwd: 'row kernels', layernorm_bwd: 'row kernels', gelu_fwd: 'row kernels', gelu_bwd: 'row kernels', xent_fwd_bwd: 'row kernels',
  embed_fwd: 'row kernels', embed_bwd: 'row kernels', copy_add: 'row kernels', fill_zero: 'row kernels', scale_add: 'row kernels',
  adamw: 'optimizer', sum_squares: 'optimizer',
  select_abs_parts: 'mask', mask_apply: 'mask', mark_bits: 'mask', and_popcount: 'mask', select_work_words: 'mask',
});

/** The FMA peak of this CPU measured by the native engine (see `measureFmaPeak`). */
export interface FmaPeak {
  /** GFLOP/s of one thread. */
  perCore: number;
  /** GFLOP/s of `threads` threads at once. */
  allCores: number;
  threads: number;
  /** The vector width the probe used (the native build's ISA). */
  isa: string;
}

/**
 * This machine's fp32 multiply-add peak: 16 independent chains of the native build's widest
 * vector multiply-add per thread for about `ms` milliseconds, on one thread and then on
 * `threads` at once (undefined without a native build).
 */
export function measureFmaPeak(threads: number, ms = 200): FmaPeak | undefined {
  const nat = loadNative();
  if (!nat.ok) return undefined;
  return { perCore: nat.addon.fma_peak(ms, 1), allCores: nat.addon.fma_peak(ms, threads), threads, isa: nat.build.isa };
}
