/**
 * `doctor`: what this machine runs and why each faster backend is not in use.
 * Shared by `gmt-lab doctor` and notebook 00_environment.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { kernelVariant, type KernelVariant } from './wasm-kernels';
import { engineChoice, type EngineName } from './engine';
import { BACKEND_ORDER, BackendName, BackendReport, currentBackend, initBackend, probeBackend, resolveOptional, WEBGPU_OPT_IN_REASON } from './select';
import { describeAdapter, probeWebgpu, type WebgpuAdapter } from './webgpu';

/** One row of the backend table in a {@link DoctorReport}. */
export interface DoctorBackendRow {
  name: BackendName;
  /** `in use`, `available` (works but a faster one was chosen or it was not asked for) or `not available`. */
  status: 'in use' | 'available' | 'not available';
  /** Why it is not in use; absent for the backend in use. */
  reason?: string;
}

/** Everything `doctor()` found, JSON-serialisable. */
export interface DoctorReport {
  backend: BackendName;
  tfjsBackend: string;
  /** How the backend was chosen (`GMT_BACKEND`, `prefer` or `default`). */
  chosenBy: BackendReport['source'];
  versions: {
    node: string;
    tfjs: string;
    'tfjs-backend-wasm'?: string;
    tslab?: string;
    'kernel-lib': string;
  };
  /** SIMD flag, tfjs's own thread flag (always false in Node), and the matmul pool size in use. */
  wasm: { simd: boolean; threads: boolean; poolThreads: number; threadsNote: string } | null;
  /** The build of the wasm engine's kernels this process would use, and why. */
  fusedKernels: { variant: KernelVariant | null; reason: string } | null;
  /**
   * The engine of the fused path (`backend/engine.ts`) and why; the native build (ISA, compiler,
   * flags, build id) when one loaded; why the other engine is not used.
   */
  engine: {
    name: EngineName | null;
    reason: string;
    native?: { isa: string; buildId: string; compiler: string; flags: string };
    otherNotUsed: string;
  };
  cpus: number;
  platform: string;
  /** One row per known backend, fastest first. */
  backends: DoctorBackendRow[];
  /** The WebGPU adapter Dawn offers (vendor, architecture, description, software or not, limits), or why there is none. */
  webgpu: { adapter: WebgpuAdapter } | { adapter?: WebgpuAdapter; reason: string };
}

/** Version from a package's package.json, or undefined if the package is not resolvable. */
function packageVersion(pkg: string): string | undefined {
  const file = resolveOptional(`${pkg}/package.json`);
  if (file === undefined) return undefined;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')).version;
  } catch {
    return undefined;
  }
}

/** kernel-lib's own version; the same relative path works from src/ (tsx) and dist/. */
function kernelLibVersion(): string {
  const file = path.join(__dirname, '..', '..', 'package.json');
  return JSON.parse(fs.readFileSync(file, 'utf8')).version;
}

/**
 * Reports the backend in use (initialising one quietly if nobody has yet), library versions,
 * wasm SIMD/threads flags, CPU count, and for every backend why it is or is not in use.
 */
export async function doctor(): Promise<DoctorReport> {
  const chosen = currentBackend() ?? (await initBackend({ quiet: true }));
  const gpu = await probeWebgpu();
  const chosenIndex = BACKEND_ORDER.indexOf(chosen.backend);
  const backends: DoctorBackendRow[] = BACKEND_ORDER.map((name, i) => {
    if (name === chosen.backend) return { name, status: 'in use' };
    const probe = probeBackend(name);
    const skippedReason = chosen.skipped.find((s) => s.name === name)?.reason;
    if (!probe.available) return { name, status: 'not available', reason: probe.reason };
    if (name === 'webgpu' && gpu.available) return { name, status: 'available', reason: `${describeAdapter(gpu.adapter)}; ${WEBGPU_OPT_IN_REASON}` };
    if (skippedReason !== undefined) return { name, status: 'not available', reason: skippedReason };
    const reason =
      i < chosenIndex
        ? `available but not selected (chosen by ${chosen.source}: ${chosen.candidates.join(', ')})`
        : `available; ${chosen.backend} is faster`;
    return { name, status: 'available', reason };
  });

  let wasm: DoctorReport['wasm'] = null;
  if (probeBackend('wasm').available) {
    // The wasm module registers these flags with async evaluators; before the backend has
    // initialised once, only getAsync can read them.
    wasm = {
      simd: Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')),
      threads: Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')),
      poolThreads: chosen.backend === 'wasm' ? chosen.threads : 1,
      threadsNote: chosen.threadsReason ??
        (chosen.threads > 1
          ? 'threaded SIMD binary enabled through GMT_WASM_THREADS'
          : 'single thread: tfjs disables wasm threads in Node; GMT_WASM_THREADS=2 enables the threaded binary (opt-in: it speeds up large matmuls on idle cores, and slows small ones when cores are busy)'),
    };
  }

  let fusedKernels: DoctorReport['fusedKernels'] = null;
  if (wasm) {
    try {
      fusedKernels = kernelVariant();
    } catch (e) {
      fusedKernels = { variant: null, reason: (e as Error).message };
    }
  }

  let engine: DoctorReport['engine'];
  try {
    const c = engineChoice();
    engine = {
      name: c.engine, reason: c.reason, otherNotUsed: c.otherNotUsed,
      ...(c.native ? { native: { isa: c.native.isa, buildId: c.native.buildId, compiler: c.native.compiler, flags: c.native.flags } } : {}),
    };
  } catch (e) {
    engine = { name: null, reason: (e as Error).message, otherNotUsed: '' };
  }

  const versions: DoctorReport['versions'] = {
    node: process.version,
    tfjs: tf.version.tfjs,
    'kernel-lib': kernelLibVersion(),
  };
  const wasmVersion = packageVersion('@tensorflow/tfjs-backend-wasm');
  if (wasmVersion !== undefined) versions['tfjs-backend-wasm'] = wasmVersion;
  const tslabVersion = packageVersion('tslab');
  if (tslabVersion !== undefined) versions.tslab = tslabVersion;

  return {
    backend: chosen.backend,
    tfjsBackend: chosen.tfjsBackend,
    chosenBy: chosen.source,
    versions,
    wasm,
    fusedKernels,
    engine,
    cpus: os.availableParallelism ? os.availableParallelism() : os.cpus().length,
    platform: `${process.platform}-${process.arch}`,
    backends,
    webgpu: gpu.available ? { adapter: gpu.adapter } : { ...(gpu.adapter ? { adapter: gpu.adapter } : {}), reason: gpu.reason },
  };
}

/** Word-wraps `text` to `width` columns (reasons are long sentences). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line.length > 0 && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line.length > 0 ? `${line} ${word}` : word;
    }
  }
  if (line.length > 0) lines.push(line);
  return lines;
}

/** A readable multi-line table of a {@link DoctorReport}. */
export function formatDoctor(report: DoctorReport): string {
  const out: string[] = [];
  const kv = (k: string, v: string) => out.push(`${k.padEnd(20)}${v}`);
  kv('backend', `${report.backend} (tfjs "${report.tfjsBackend}", chosen by ${report.chosenBy})`);
  if (report.wasm) kv('wasm', `SIMD ${report.wasm.simd ? 'on' : 'off'}, ${report.wasm.poolThreads} thread${report.wasm.poolThreads === 1 ? '' : 's'} (${report.wasm.threadsNote})`);
  const e = report.engine;
  kv('engine', e.name ? `${e.name}${e.name === 'native' && e.native ? ` (${e.native.isa} kernels, build ${e.native.buildId})` : ''}: ${e.reason}` : `none: ${e.reason}`);
  if (e.native) kv('native build', `${e.native.compiler}; ${e.native.flags}`);
  if (e.otherNotUsed) kv('not used', e.otherNotUsed);
  if (report.fusedKernels) kv('wasm kernels', `${report.fusedKernels.variant ?? 'none'} (${report.fusedKernels.reason})`);
  kv('cpus', `${report.cpus} (${report.platform})`);
  const a = report.webgpu.adapter;
  kv('webgpu adapter', a ? `${describeAdapter(a)}; max buffer ${Math.round((a.limits.maxBufferSize ?? 0) / 2 ** 20)} MiB, workgroup ≤ ${a.limits.maxComputeInvocationsPerWorkgroup}` : 'none');
  if ('reason' in report.webgpu) kv('', report.webgpu.reason);
  for (const [name, version] of Object.entries(report.versions)) kv(name, version ?? '-');
  out.push('');
  const nameWidth = Math.max(...report.backends.map((b) => b.name.length)) + 2;
  const statusWidth = 'not available'.length + 2;
  out.push(`${'backend'.padEnd(nameWidth)}${'status'.padEnd(statusWidth)}reason`);
  for (const row of report.backends) {
    const reason = wrap(row.reason ?? '', 72);
    out.push(`${row.name.padEnd(nameWidth)}${row.status.padEnd(statusWidth)}${reason[0] ?? ''}`);
    for (const more of reason.slice(1)) out.push(`${''.padEnd(nameWidth + statusWidth)}${more}`);
  }
  return out.join('\n');
}
