/**
 * Picks the fastest tfjs backend this machine can run, and remembers why each faster one
 * was passed over (the `doctor` report reads those reasons).
 *
 * Order: tfjs-node-gpu → tfjs-node → webgpu → wasm → cpu; webgpu only when asked for, for now
 * ({@link WEBGPU_OPT_IN_REASON}). The native and GPU backends are
 * optional packages that are never dependencies of kernel-lib (their install step downloads
 * libtensorflow from outside the npm registry); a missing one is a reason, not an error.
 */
import * as tf from '@tensorflow/tfjs';
import { checkNumber, ConfigError } from '../util/config';
import { enableWasmThreads } from './wasm-threads';
import { probeWebgpu, webgpuProbeResult } from './webgpu';

/** Threads of the wasm pool once `enableWasmThreads` succeeded in this process. */
let activeWasmThreads = 1;

/** The backends kernel-lib knows, fastest first. */
export const BACKEND_ORDER = ['tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu'] as const;

/** One of {@link BACKEND_ORDER}; also the values `GMT_BACKEND` accepts. */
export type BackendName = (typeof BACKEND_ORDER)[number];

/** What a probe found: whether the backend can be used here and, if not, why. */
export interface BackendProbe {
  name: BackendName;
  available: boolean;
  /** Why it is not available (always set when `available` is false). */
  reason?: string;
  /** The name tfjs registers it under (`tensorflow`, `webgpu`, `wasm`, `cpu`). */
  tfjsName: string;
}

/** What {@link initBackend} chose and why. */
export interface BackendReport {
  /** The backend in use. */
  backend: BackendName;
  /** `tf.getBackend()` after the switch. */
  tfjsBackend: string;
  /** Where the candidate list came from. */
  source: 'GMT_BACKEND' | 'prefer' | 'default';
  /** The candidates tried, in order. */
  candidates: BackendName[];
  /** Candidates tried before the chosen one, with the reason each was skipped. */
  skipped: { name: BackendName; reason: string }[];
  /** Threads of the wasm backend's matmul pool (1 unless `GMT_WASM_THREADS` / `wasmThreads` asked for more and it worked). */
  threads: number;
  /** Why the wasm backend runs single-threaded although more threads were asked for. */
  threadsReason?: string;
}

/** Options of {@link initBackend}. */
export interface InitBackendOptions {
  /** Candidates to try in order (one name or a list); default {@link BACKEND_ORDER}. `GMT_BACKEND` wins over this. */
  prefer?: BackendName[] | BackendName;
  /** Do not print the one-line summary. */
  quiet?: boolean;
  /**
   * Threads for the wasm backend's matmul pool (opt-in, default 1; `GMT_WASM_THREADS` wins).
   * Helps large matmuls on otherwise idle cores; see `enableWasmThreads` for the trade-offs.
   */
  wasmThreads?: number;
}

const TFJS_NAME: Record<BackendName, string> = {
  'tfjs-node-gpu': 'tensorflow',
  'tfjs-node': 'tensorflow',
  webgpu: 'webgpu',
  wasm: 'wasm',
  cpu: 'cpu',
};

/** Checks that `name` is a known backend; `where` names the option in the error. */
export function parseBackendName(name: unknown, where: string): BackendName {
  const raw = typeof name === 'string' ? name.trim().toLowerCase() : name;
  if (typeof raw === 'string' && (BACKEND_ORDER as readonly string[]).includes(raw)) return raw as BackendName;
  throw new ConfigError(`${where}: unknown backend ${JSON.stringify(name)} (known: ${BACKEND_ORDER.join(', ')})`);
}

function errorText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0];
}

/** `require.resolve` that answers undefined instead of throwing. */
export function resolveOptional(pkg: string): string | undefined {
  try {
    return require.resolve(pkg);
  } catch {
    return undefined;
  }
}

const NATIVE_NOT_INSTALLED = (pkg: string): string =>
  `not installed: its install step downloads libtensorflow from outside the npm registry; ` +
  `\`npm install ${pkg}\` where that download works and it is picked up automatically`;

function probeNative(name: 'tfjs-node-gpu' | 'tfjs-node'): BackendProbe {
  const pkg = `@tensorflow/${name}`;
  const base = { name, tfjsName: TFJS_NAME[name] };
  if (resolveOptional(pkg) === undefined) return { ...base, available: false, reason: NATIVE_NOT_INSTALLED(pkg) };
  try {
    // Loading the package registers the `tensorflow` backend with the tfjs engine.
    require(pkg);
  } catch (e) {
    return { ...base, available: false, reason: `installed but failed to load (${errorText(e)})` };
  }
  if (tf.findBackendFactory('tensorflow') === null) {
    return {
      ...base,
      available: false,
      reason: `loaded, but registered no "tensorflow" backend with this copy of @tensorflow/tfjs (two tfjs versions installed?)`,
    };
  }
  return { ...base, available: true };
}

function probeWebgpuSync(): BackendProbe {
  // Finding an adapter is asynchronous: initBackend and doctor run probeWebgpu() first.
  const base = { name: 'webgpu' as const, tfjsName: 'webgpu' };
  const p = webgpuProbeResult();
  if (!p) return { ...base, available: false, reason: 'not probed yet (initBackend and doctor ask Dawn for an adapter first)' };
  return p.available ? { ...base, available: true } : { ...base, available: false, reason: p.reason };
}

/**
 * Why the default order passes over an available WebGPU: training is verified on it (every
 * strategy matches wasm, GMT's mask is selected on the device), but scoring still reads back
 * synchronously, which Node's WebGPU does not allow, and GMT's cost there is not measured on a
 * GPU. `GMT_BACKEND=webgpu` selects it.
 */
export const WEBGPU_OPT_IN_REASON = 'used only when asked (GMT_BACKEND=webgpu): GMT\'s cost on a GPU is not measured yet, and scoring runs on a host copy of the weights';

function probeWasm(): BackendProbe {
  const base = { name: 'wasm' as const, tfjsName: 'wasm' };
  try {
    require('@tensorflow/tfjs-backend-wasm');
  } catch (e) {
    return { ...base, available: false, reason: `@tensorflow/tfjs-backend-wasm failed to load (${errorText(e)})` };
  }
  return { ...base, available: true };
}

const probeCache = new Map<BackendName, BackendProbe>();

/** Probes one backend (cached: loading a package twice changes nothing). Never throws. */
export function probeBackend(name: BackendName): BackendProbe {
  const cached = probeCache.get(name);
  if (cached) return cached;
  let probe: BackendProbe;
  switch (name) {
    case 'tfjs-node-gpu':
    case 'tfjs-node':
      probe = probeNative(name);
      break;
    case 'webgpu':
      probe = probeWebgpuSync();
      if (!webgpuProbeResult()) return probe; // not final: do not cache
      break;
    case 'wasm':
      probe = probeWasm();
      break;
    case 'cpu':
      probe = { name, tfjsName: 'cpu', available: true };
      break;
  }
  probeCache.set(name, probe);
  return probe;
}

let current: BackendReport | undefined;

/** The report of the last successful {@link initBackend}, if any. */
export function currentBackend(): BackendReport | undefined {
  return current;
}

/** Reads `GMT_BACKEND`; undefined when unset or empty, a {@link ConfigError} when unknown. */
export function backendFromEnv(env: NodeJS.ProcessEnv = process.env): BackendName | undefined {
  const raw = env.GMT_BACKEND;
  if (raw === undefined || raw.trim() === '') return undefined;
  return parseBackendName(raw, 'GMT_BACKEND');
}

/**
 * Switches tfjs to the best available backend and returns what was chosen.
 *
 * `GMT_BACKEND=<name>` forces one backend (an unavailable one is an error with its reason);
 * otherwise `prefer` (or the full {@link BACKEND_ORDER}) is tried in order. Safe to call again.
 */
export async function initBackend(opts: InitBackendOptions = {}): Promise<BackendReport> {
  const fromEnv = backendFromEnv();
  let candidates: BackendName[];
  let source: BackendReport['source'];
  if (fromEnv !== undefined) {
    candidates = [fromEnv];
    source = 'GMT_BACKEND';
  } else if (opts.prefer !== undefined) {
    const list = Array.isArray(opts.prefer) ? opts.prefer : [opts.prefer];
    if (list.length === 0) throw new ConfigError('initBackend: prefer must name at least one backend');
    candidates = list.map((n, i) => parseBackendName(n, `initBackend: prefer[${i}]`));
    source = 'prefer';
  } else {
    candidates = [...BACKEND_ORDER];
    source = 'default';
  }

  const envThreads = process.env.GMT_WASM_THREADS;
  const wasmThreads = envThreads !== undefined && envThreads.trim() !== ''
    ? checkNumber('GMT_WASM_THREADS', Number(envThreads), { min: 1, max: 8, integer: true })
    : checkNumber('initBackend: wasmThreads', opts.wasmThreads ?? 1, { min: 1, max: 8, integer: true });
  let threadsReason: string | undefined;
  const skipped: BackendReport['skipped'] = [];
  // Starting Dawn costs time and memory in every process, so only a request for webgpu does it.
  if (candidates.includes('webgpu') && source !== 'default') await probeWebgpu();
  for (const name of candidates) {
    if (name === 'webgpu' && source === 'default') {
      skipped.push({ name, reason: WEBGPU_OPT_IN_REASON });
      continue;
    }
    const probe = probeBackend(name);
    if (!probe.available) {
      skipped.push({ name, reason: probe.reason ?? 'not available' });
      continue;
    }
    let ok = false;
    let why = '';
    try {
      if (name === 'wasm' && wasmThreads > 1 && tf.getBackend() !== 'wasm') {
        const t = await enableWasmThreads({ threads: wasmThreads });
        if (t.enabled) activeWasmThreads = t.threads;
        else threadsReason = t.reason;
      }
      ok = await tf.setBackend(probe.tfjsName);
      if (ok) await tf.ready();
      else why = `tf.setBackend('${probe.tfjsName}') returned false`;
    } catch (e) {
      why = `failed to initialise (${errorText(e)})`;
    }
    if (!ok) {
      skipped.push({ name, reason: why });
      continue;
    }
    const threads = activeWasmThreads;
    if (name === 'wasm' && wasmThreads > threads && threadsReason === undefined) {
      threadsReason = 'the wasm backend was already initialised single-threaded in this process';
    }
    current = { backend: name, tfjsBackend: tf.getBackend(), source, candidates, skipped, threads: name === 'wasm' ? threads : 1, ...(threadsReason ? { threadsReason } : {}) };
    if (!opts.quiet) console.log(summaryLine(current));
    return current;
  }
  const detail = skipped.map((s) => `  ${s.name}: ${s.reason}`).join('\n');
  const where = source === 'GMT_BACKEND' ? `GMT_BACKEND=${candidates[0]}` : `backends ${candidates.join(', ')}`;
  throw new ConfigError(`initBackend: none of ${where} can run here:\n${detail}`);
}

function summaryLine(r: BackendReport): string {
  let extra = '';
  if (r.backend === 'wasm') {
    const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? 'on' : 'off';
    extra = ` (SIMD ${simd}, ${r.threads} thread${r.threads === 1 ? '' : 's'})`;
  }
  const faster = r.skipped.length > 0 ? `; ${r.skipped.map((s) => s.name).join(', ')} not available (see doctor())` : '';
  return `tfjs backend: ${r.backend}${extra}${faster}`;
}
