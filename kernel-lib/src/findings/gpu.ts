/**
 * Where notebook 06's GPU ablations run: WebGPU on a GPU when this machine has one, else the
 * host backend in fast mode, and a sentence that says which and why.
 */
import { describeAdapter, probeWebgpu, releaseWebgpu, type WebgpuAdapter } from '../backend/webgpu';
import { hostBackendName } from '../model/host-copy';
import { runMode, type RunMode } from '../util/config';
import { findingsPaths, type FindingsPaths } from './paths';
import { engineChoice, engineLabel } from '../backend/engine';

/** What {@link gpuAblationPlan} decided. */
export interface GpuAblationPlan {
  /** The grid mode the ablations run in (fast wherever there is no GPU). */
  mode: RunMode;
  /** The backend the runs train on. */
  backend: 'webgpu' | 'wasm' | 'cpu';
  /** The GPU's adapter when `backend` is webgpu. */
  adapter?: WebgpuAdapter;
  /** One sentence for the notebook and the figures: the device, or why there is none. */
  note: string;
  /** Store and figure folders of `mode`. */
  paths: FindingsPaths;
}

/**
 * Probes WebGPU. On a GPU's adapter, sets `GMT_BACKEND=webgpu` in this process's environment,
 * so that the sweep (its key context and its worker processes) trains there, in `mode`.
 * Otherwise (no adapter, or only a software one, which is far slower than the CPU) the ablations run
 * on the host backend with the CPU engine (the native one where it built), in the mode asked for,
 * and the note says the results are the CPU engine's. Dawn is released in that case, so the
 * process can exit.
 */
export async function gpuAblationPlan(mode: RunMode = runMode()): Promise<GpuAblationPlan> {
  const probe = await probeWebgpu();
  if (probe.available && !probe.adapter.software) {
    process.env.GMT_BACKEND = 'webgpu';
    return { mode, backend: 'webgpu', adapter: probe.adapter, note: `WebGPU on ${describeAdapter(probe.adapter)}, ${mode} mode`, paths: findingsPaths(mode) };
  }
  const why = probe.available
    ? `the only WebGPU adapter here is a software one (${describeAdapter(probe.adapter)}), far slower than the CPU`
    : `no WebGPU adapter here (${probe.reason})`;
  await releaseWebgpu();
  const host = hostBackendName();
  let engine = 'the CPU';
  try {
    engine = `the ${engineLabel(engineChoice())}`;
  } catch { /* GMT_ENGINE names an engine that cannot run: the sweep says so */ }
  return { mode, backend: host, note: `No GPU (${why}): the ablations ran on ${engine}, in ${mode} mode; the results are the CPU engine's, not a GPU's`, paths: findingsPaths(mode) };
}
