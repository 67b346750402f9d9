/**
 * WebGPU in Node: Dawn (the `webgpu` package) behind tfjs' webgpu backend.
 *
 * `@tensorflow/tfjs-backend-webgpu` registers itself only if `navigator.gpu` exists when it is
 * loaded, so Dawn's `gpu` object and its globals (`GPUBufferUsage`, …) are installed first.
 * Dawn needs a Vulkan driver for an adapter: a GPU vendor's, or Mesa ≥ 25's lavapipe on the CPU
 * (`npm run setup` installs it). On this backend in Node, `dataSync`/`arraySync` throw
 * (`OffscreenCanvas is not defined`): every read from the device must be `await data()`.
 */
import * as tf from '@tensorflow/tfjs';

/** The adapter Dawn gave, as `doctor` reports it. */
export interface WebgpuAdapter {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A software adapter (a CPU rasteriser such as lavapipe or SwiftShader), not a GPU. */
  software: boolean;
  /** WebGPU's own flag for a fallback adapter. */
  fallback: boolean;
  /** A few limits that decide what runs (bytes, counts). */
  limits: Record<string, number>;
}

/** What {@link probeWebgpu} found. */
export type WebgpuProbe = { available: true; adapter: WebgpuAdapter } | { available: false; reason: string; adapter?: WebgpuAdapter };

let probe: Promise<WebgpuProbe> | undefined;
let lastProbe: WebgpuProbe | undefined;
let createdNavigator = false;

function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

const LIMITS = ['maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupSizeX', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupStorageSize', 'maxStorageBuffersPerShaderStage'];

async function run(): Promise<WebgpuProbe> {
  let dawn: { create: (flags: string[]) => unknown; globals: Record<string, unknown> };
  try {
    dawn = require('webgpu');
  } catch (e) {
    return { available: false, reason: `the optional package \`webgpu\` (Dawn for Node) is not installed or failed to load (${errorText(e)})` };
  }
  try {
    require.resolve('@tensorflow/tfjs-backend-webgpu');
  } catch {
    return { available: false, reason: 'the optional package `@tensorflow/tfjs-backend-webgpu` is not installed' };
  }
  let gpu: { requestAdapter: (o?: object) => Promise<unknown> };
  try {
    Object.assign(globalThis, dawn.globals);
    gpu = dawn.create([]) as typeof gpu;
    const nav = (globalThis as unknown as { navigator?: Record<string, unknown> }).navigator;
    if (nav === undefined) {
      (globalThis as { navigator?: unknown }).navigator = { gpu };
      createdNavigator = true;
    }
    else if (nav.gpu === undefined) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  } catch (e) {
    return { available: false, reason: `Dawn failed to start (${errorText(e)})` };
  }
  const adapter = (await gpu.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null)) as
    | { info?: Record<string, unknown>; isFallbackAdapter?: boolean; limits: Record<string, number> }
    | null;
  if (!adapter) {
    return {
      available: false,
      reason:
        'Dawn found no adapter: no Vulkan driver offers one (a GPU needs its vendor\'s Vulkan driver; on the CPU, Mesa ≥ 25\'s lavapipe, ' +
        'which `npm run setup` installs as root; Debian 12\'s own Mesa 22.3 lacks what Dawn requires)',
    };
  }
  const info = adapter.info ?? {};
  const text = (k: string): string => String(info[k] ?? '');
  const description = text('description');
  const report: WebgpuAdapter = {
    vendor: text('vendor'),
    architecture: text('architecture'),
    device: text('device'),
    description,
    software: /llvmpipe|lavapipe|swiftshader|software/i.test(`${description} ${text('device')}`) || adapter.isFallbackAdapter === true,
    fallback: adapter.isFallbackAdapter === true,
    limits: Object.fromEntries(LIMITS.map((k) => [k, Number(adapter.limits[k])])),
  };
  try {
    require('@tensorflow/tfjs-backend-webgpu');
  } catch (e) {
    return { available: false, reason: `@tensorflow/tfjs-backend-webgpu failed to load (${errorText(e)})`, adapter: report };
  }
  if (tf.findBackendFactory('webgpu') === null) {
    return { available: false, reason: 'tfjs-backend-webgpu registered no "webgpu" backend with this copy of @tensorflow/tfjs (two tfjs versions installed?)', adapter: report };
  }
  chunkAddN();
  return { available: true, adapter: report };
}

/**
 * tfjs' webgpu AddN binds every input as its own storage buffer, so the gradient of a weight used
 * in many places (AddN of 22 tensors in our GPT) exceeds WebGPU's default limit of 8 storage
 * buffers per shader stage and the pipeline is invalid. Sums of more than {@link ADDN_CHUNK}
 * inputs are done in chunks with the original kernel.
 */
const ADDN_CHUNK = 6;

function chunkAddN(): void {
  const original = tf.getKernel('AddN', 'webgpu');
  if (!original || (original as { chunked?: boolean }).chunked) return;
  const sum = (inputs: tf.TensorInfo[], backend: tf.KernelBackend, attrs: tf.NamedAttrMap): tf.TensorInfo => {
    if (inputs.length <= ADDN_CHUNK) return original.kernelFunc({ inputs: inputs as unknown as tf.NamedTensorInfoMap, backend, attrs }) as tf.TensorInfo;
    const partials: tf.TensorInfo[] = [];
    for (let i = 0; i < inputs.length; i += ADDN_CHUNK) partials.push(sum(inputs.slice(i, i + ADDN_CHUNK), backend, attrs));
    const out = sum(partials, backend, attrs);
    for (const p of partials) backend.disposeData(p.dataId);
    return out;
  };
  tf.unregisterKernel('AddN', 'webgpu');
  tf.registerKernel({ ...original, chunked: true, kernelFunc: ({ inputs, backend, attrs }) => sum(Object.values(inputs ?? {}) as tf.TensorInfo[], backend as tf.KernelBackend, attrs ?? {}) } as tf.KernelConfig);
}

/**
 * Starts Dawn, asks for an adapter and registers tfjs' webgpu backend (once per process; later
 * calls return the same answer). Never throws: an unusable WebGPU is a reason.
 */
export function probeWebgpu(): Promise<WebgpuProbe> {
  probe ??= run().then((p) => (lastProbe = p));
  return probe;
}

/** The result of {@link probeWebgpu} if it has finished, else undefined. */
export function webgpuProbeResult(): WebgpuProbe | undefined {
  return lastProbe;
}

/** True once this process has started Dawn (a probe or a webgpu backend), until {@link releaseWebgpu}. */
export function webgpuStarted(): boolean {
  return lastProbe !== undefined && lastProbe.available;
}

/** One line for reports: `mesa llvmpipe (software adapter)`, or the vendor and architecture. */
export function describeAdapter(a: WebgpuAdapter): string {
  const name = [a.vendor, a.architecture, a.description || a.device].filter(Boolean).join(' ');
  return `${name || 'unnamed adapter'}${a.software ? ' (software adapter, on the CPU)' : ''}${a.fallback ? ' [fallback]' : ''}`;
}

/**
 * Ends WebGPU in this process: waits for submitted work, destroys the device, disposes tfjs'
 * webgpu backend and drops Dawn's `gpu` object. Dawn keeps a Node process alive while that
 * object is referenced, and exiting with a live device can abort the process, so a command or
 * test that used webgpu awaits this before it exits. WebGPU cannot be started again afterwards.
 */
export async function releaseWebgpu(): Promise<void> {
  // engine.registry holds initialised backends only; tf.findBackend would initialise one.
  const registry = (tf.engine() as unknown as { registry: Record<string, { device?: { queue: { onSubmittedWorkDone(): Promise<void> }; destroy(): void } }> }).registry;
  const device = registry.webgpu?.device;
  if (device) {
    await device.queue.onSubmittedWorkDone();
    device.destroy();
  }
  if (tf.findBackendFactory('webgpu') !== null) tf.removeBackend('webgpu');
  const g = globalThis as unknown as { navigator?: Record<string, unknown> };
  if (g.navigator && 'gpu' in g.navigator) {
    if (createdNavigator) delete g.navigator;
    else delete g.navigator.gpu;
  }
  const released = { available: false as const, reason: 'released in this process (releaseWebgpu)', ...(lastProbe?.adapter ? { adapter: lastProbe.adapter } : {}) };
  if (lastProbe) lastProbe = released;
  probe = Promise.resolve(released);
}
