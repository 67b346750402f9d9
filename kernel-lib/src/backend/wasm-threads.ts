/**
 * Multithreaded wasm backend in Node.
 *
 * `@tensorflow/tfjs-backend-wasm` ships a threaded SIMD build (emscripten pthreads; XNNPACK runs
 * its GEMMs on a pthreadpool) but never uses it in Node, for three reasons, each handled here
 * without touching files under node_modules:
 *
 * 1. Its `WASM_HAS_MULTITHREAD_SUPPORT` flag returns false whenever `IS_NODE`, so `init()` picks
 *    the single-threaded binary. We do not go through that `init()` at all: we instantiate the
 *    threaded emscripten module ourselves and re-register the `wasm` backend factory so that it
 *    returns a `BackendWasm` wrapping that module. All wasm kernels stay registered under the
 *    name `wasm` and bind to the module in their `setupFunc`, so they run unchanged.
 * 2. `init()` hands emscripten the pthread worker script as a `blob:` URL and the main script as
 *    a `Blob`. Node's `worker_threads.Worker` accepts only file paths and `file:`/`data:` URLs
 *    (a `data:` URL is loaded as an ES module, but this worker script is CommonJS), and the
 *    worker's Node branch loads the main script with `fs.readFileSync`. We write the worker
 *    script (the package exports it as the string `wasmWorkerContents`) once to a
 *    content-addressed file in the OS temp folder, point `locateFile` at it, and set
 *    `mainScriptUrlOrBlob` to the glue file the package ships
 *    (`wasm-out/tfjs-backend-wasm-threaded-simd.js`).
 * 3. The C++ side sizes the XNNPACK pool as `min(requested, 8, emscripten_num_logical_cores()/2)`
 *    (it assumes two hyperthreads per core), which is 1 on a 2-CPU machine. Through emscripten's
 *    `instantiateWasm` hook we provide that one import as `2 × threads`, so the pool has exactly
 *    the requested size.
 *
 * Side effects to know about: the emscripten glue sets `globalThis.Worker` to
 * `worker_threads.Worker`, and starts 8 pthread workers (each instantiates the module on the
 * shared memory); none of them keeps the process alive (see `newBackend`).
 *
 * When it pays: XNNPACK forks and joins its pool on every matmul, so the gain needs large 2-D
 * products and cores nobody else is using. The reference GPT update issues ~1,600 small
 * matmuls (per-head attention tiles); measured on a shared 2-CPU machine it ran 1.2-1.4x faster
 * on large matmuls with both CPUs free, but 3x slower than the single-threaded backend while
 * other processes kept the CPUs busy. It is therefore opt-in and not used by default.
 *
 * The code relies on the internal module contract of tfjs-backend-wasm 4.22 (the `tfjs` cwrap
 * table that `BackendWasm` reads); every assumption is checked, and any failure leaves the stock
 * backend registered and returns `enabled: false` with the reason.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import type * as TfWasm from '@tensorflow/tfjs-backend-wasm';

/**
 * The wasm backend package, loaded on first use: importing it registers the `wasm` backend with
 * top priority, which must not happen merely because kernel-lib was imported (tensors made
 * before `initBackend` would then fail on an uninitialised backend).
 */
function wasmPackage(): typeof TfWasm {
  return require('@tensorflow/tfjs-backend-wasm') as typeof TfWasm;
}
import { checkNumber } from '../util/config';

/** Options of {@link enableWasmThreads}. */
export interface WasmThreadsOptions {
  /** XNNPACK pool size, 1..8. Default: the number of CPUs Node reports (capped at 8). */
  threads?: number;
}

/** What {@link enableWasmThreads} did. */
export interface WasmThreadsResult {
  /** True when the `wasm` backend now runs the threaded SIMD binary. */
  enabled: boolean;
  /** Threads the XNNPACK pool uses (1 when not enabled). */
  threads: number;
  /** Why threads are off, when they are. */
  reason?: string;
}

/** The package's pool limit: it pre-creates 8 pthread workers and caps XNNPACK at 8. */
const MAX_THREADS = 8;
/** Priority the package itself registers `wasm` with; keeps the backend order unchanged. */
const WASM_PRIORITY = 2;
const PKG = '@tensorflow/tfjs-backend-wasm';
const GLUE = `${PKG}/wasm-out/tfjs-backend-wasm-threaded-simd.js`;
const WORKER = `${PKG}/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js`;
const BINARY = `${PKG}/dist/tfjs-backend-wasm-threaded-simd.wasm`;

/** The part of the emscripten module `BackendWasm` needs; the rest is used by its kernels. */
interface EmscriptenModule {
  cwrap(name: string, ret: string | null, args: string[]): (...a: number[]) => number;
  [key: string]: unknown;
}
type ModuleFactory = (config: Record<string, unknown>) => Promise<EmscriptenModule>;
type Imports = Record<string, Record<string, unknown>>;

let current: WasmThreadsResult | undefined;

/**
 * Makes the `wasm` backend use the threaded SIMD binary with a pool of `threads` threads.
 * Call it before `tf.setBackend('wasm')` (or before any code that initializes the `wasm`
 * backend); it returns `enabled: false` with a reason, changing nothing, when the backend is
 * already initialized, when `threads` is 1 (the single-threaded SIMD binary is then the better
 * choice), or when the runtime lacks SharedArrayBuffer/Atomics/threaded wasm. Calling it again
 * after it succeeded returns the first result.
 *
 * Results of matmuls are the same as single-threaded (XNNPACK splits the output into tiles;
 * each output element keeps its reduction order), so training stays deterministic.
 *
 * @throws ConfigError when `threads` is not an integer in 1..8.
 */
export async function enableWasmThreads(opts: WasmThreadsOptions = {}): Promise<WasmThreadsResult> {
  const threads =
    opts.threads === undefined
      ? Math.min(MAX_THREADS, defaultThreads())
      : checkNumber('enableWasmThreads: threads', opts.threads, { min: 1, max: MAX_THREADS, integer: true });
  if (current?.enabled) return current;
  const off = (reason: string): WasmThreadsResult => ({ enabled: false, threads: 1, reason });
  if (threads === 1) return off('threads: 1 requested; the single-threaded SIMD binary is used');
  // Not tf.findBackend: it would initialize the stock backend as a side effect.
  if (tf.engine().registry['wasm'] !== undefined) {
    return off("the wasm backend is already initialized; call enableWasmThreads before tf.setBackend('wasm')");
  }
  if (typeof SharedArrayBuffer !== 'function' || typeof Atomics !== 'object') {
    return off('this runtime has no SharedArrayBuffer/Atomics');
  }
  let backend: TfWasm.BackendWasm;
  try {
    const module = await instantiateThreaded(threads);
    wasmPackage().setThreadsCount(threads);
    // BackendWasm's constructor creates the XNNPACK pool (init_with_threads_count).
    backend = newBackend(module);
  } catch (e) {
    return off(`the threaded wasm module failed to start: ${e instanceof Error ? e.message : String(e)}`);
  }
  let first: TfWasm.BackendWasm | undefined = backend;
  if (tf.engine().registryFactory['wasm'] !== undefined) tf.removeBackend('wasm');
  tf.registerBackend(
    'wasm',
    async () => {
      // The first initialization takes the backend built above; a later one (after
      // tf.removeBackend + re-registration elsewhere, or a re-init) builds a fresh module.
      if (first !== undefined) {
        const b = first;
        first = undefined;
        return b;
      }
      return newBackend(await instantiateThreaded(threads));
    },
    WASM_PRIORITY,
  );
  current = { enabled: true, threads: wasmPackage().getThreadsCount() };
  return current;
}

/**
 * Wraps the module in a BackendWasm, whose constructor starts the XNNPACK pool threads. Emscripten
 * `ref()`s the worker of every running pthread, and pool threads never return, so the process
 * would never exit on its own; they hold no state worth waiting for, so we `unref()` them.
 */
function newBackend(module: EmscriptenModule): TfWasm.BackendWasm {
  const backend = new (wasmPackage().BackendWasm)(module as unknown as ConstructorParameters<typeof TfWasm.BackendWasm>[0]);
  const pthread = module['PThread'] as { runningWorkers?: Array<{ unref?: () => void }> } | undefined;
  if (!Array.isArray(pthread?.runningWorkers)) throw new Error(`${GLUE} does not expose PThread.runningWorkers`);
  for (const worker of pthread.runningWorkers) worker.unref?.();
  return backend;
}

function defaultThreads(): number {
  const osWithParallelism = os as typeof os & { availableParallelism?: () => number };
  return osWithParallelism.availableParallelism?.() ?? os.cpus().length;
}

/** Instantiates the threaded emscripten module and adds the `tfjs` cwrap table BackendWasm reads. */
async function instantiateThreaded(threads: number): Promise<EmscriptenModule> {
  const gluePath = require.resolve(GLUE);
  const factory = require(gluePath) as ModuleFactory;
  if (typeof factory !== 'function') throw new Error(`${GLUE} does not export an emscripten module factory`);
  const wasmModule = await compiledBinary();
  const hasCoresImport = WebAssembly.Module.imports(wasmModule).some(
    (i) => i.module === 'env' && i.name === 'emscripten_num_logical_cores',
  );
  if (!hasCoresImport) throw new Error(`${BINARY} has no env.emscripten_num_logical_cores import to size the pool with`);
  const module = await new Promise<EmscriptenModule>((resolve, reject) => {
    factory({
      locateFile: (file: string) => (file.endsWith('.worker.js') ? workerScriptPath() : file),
      mainScriptUrlOrBlob: gluePath,
      instantiateWasm: (imports: Imports, receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void) => {
        const env = { ...imports['env'], emscripten_num_logical_cores: () => 2 * threads };
        WebAssembly.instantiate(wasmModule, { ...imports, env } as WebAssembly.Imports).then(
          (instance) => receive(instance, wasmModule),
          reject,
        );
        return {};
      },
      onAbort: (what: unknown) => reject(new Error(`emscripten aborted: ${String(what)}`)),
    }).then(resolve, reject);
  });
  for (const fn of ['init_with_threads_count', 'get_threads_count', 'register_tensor', 'dispose_data', 'dispose']) {
    if (typeof module[`_${fn}`] !== 'function') throw new Error(`${GLUE} lacks the export ${fn}`);
  }
  module['tfjs'] = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  return module;
}

let compiled: Promise<WebAssembly.Module> | undefined;
function compiledBinary(): Promise<WebAssembly.Module> {
  compiled ??= fs.promises.readFile(require.resolve(BINARY)).then((bytes) => WebAssembly.compile(bytes));
  return compiled;
}

/**
 * Path of the pthread worker script, written once per content. The backend escapes newlines the
 * same way before making its Blob: the template literal it is exported as turns the `\n` inside
 * the script's string literals into real newlines.
 */
function workerScriptPath(): string {
  const { wasmWorkerContents } = require(WORKER) as { wasmWorkerContents: string };
  const source = wasmWorkerContents.replace(/\n/g, '\\n');
  const hash = crypto.createHash('sha256').update(source).digest('hex').slice(0, 16);
  const file = path.join(os.tmpdir(), `tfjs-backend-wasm-${wasmPackage().version_wasm}-pthread-${hash}.cjs`);
  if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== source) {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, source);
    fs.renameSync(tmp, file);
  }
  return file;
}
