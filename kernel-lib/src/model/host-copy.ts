/**
 * Generation on the host for a model trained on webgpu.
 *
 * Generation is latency-bound: it reads logits (and each layer's keys and values) back after
 * every token, synchronously, and Node's WebGPU forbids synchronous reads. So scoring a model
 * that lives on webgpu runs on a copy of its weights on the host backend (wasm, else cpu): the
 * same weights give the same tokens as a run that trained on the host, and training itself
 * stays on the device.
 */
import * as tf from '@tensorflow/tfjs';
import { GPT } from './gpt';

/** The backend a webgpu model's copy generates on: wasm where it is registered, else cpu. */
export function hostBackendName(): 'wasm' | 'cpu' {
  return tf.findBackendFactory('wasm') !== null ? 'wasm' : 'cpu';
}

/**
 * Calls `fn` with `model` itself, or, when the active backend is webgpu, with a copy on the host
 * backend (one `await data()` per parameter), which is disposed afterwards; webgpu is active again
 * when this returns or throws. `fn` must not touch tensors of the webgpu backend.
 */
export async function withGenerationModel<T>(model: GPT, fn: (m: GPT, backend: string) => Promise<T> | T): Promise<T> {
  const device = tf.getBackend();
  if (device !== 'webgpu') return fn(model, device);
  const values = await Promise.all(model.params.map((p) => p.variable.data()));
  const host = hostBackendName();
  if (!(await tf.setBackend(host))) throw new Error(`the ${host} backend failed to start, so a webgpu model cannot be scored`);
  let copy: GPT | undefined;
  try {
    const weights = Object.fromEntries(model.params.map((p, i) => [p.name, tf.tensor(values[i]!, p.variable.shape, 'float32')]));
    try {
      copy = new GPT(model.config, { fast: model.fast }, weights);
    } finally {
      tf.dispose(Object.values(weights));
    }
    return await fn(copy, host);
  } finally {
    copy?.dispose();
    await tf.setBackend(device);
  }
}
