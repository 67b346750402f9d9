/**
 * A gradient worker of `GradientPool` (pool.ts): a single-threaded wasm backend (with the main thread's engine) and a replica
 * of the model. Per `step` message it copies the weights from the shared buffer into its
 * variables, computes loss and gradients of its shard with the fused kernels and copies the
 * gradients back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { GPT } from '../model/gpt';
import type { GPTConfig } from '../model/config';
import { setKernelVariant, type KernelVariant, type WasmHeapBackend } from '../backend/wasm-kernels';
import { setEngine, type EngineName } from '../backend/engine';

interface Init {
  config: GPTConfig;
  paramSizes: number[];
  maxTokens: number;
  shared: SharedArrayBuffer;
  /** The main thread's kernel build, so every shard rounds the same way. */
  kernels: KernelVariant;
  /** The main thread's engine (each worker's kernels run on one thread). */
  engine: EngineName;
}


const port = parentPort;
if (!port) throw new Error('parallel/worker.ts runs only as a worker thread');

async function main(init: Init): Promise<void> {
  setEngine(init.engine);
  setKernelVariant(init.kernels);
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise in the worker');
  const model = new GPT(init.config, { fused: true });
  const why = model.fusedReason();
  if (why) throw new Error(`the fused path cannot run in the worker: ${why}`);
  const nParams = init.paramSizes.reduce((a, b) => a + b, 0);
  const weights = new Float32Array(init.shared, 0, nParams);
  const grads = new Float32Array(init.shared, 4 * nParams, nParams);
  const tokens = new Int32Array(init.shared, 8 * nParams, 2 * init.maxTokens);
  const lossWeights = new Float32Array(init.shared, 4 * (2 * nParams + 2 * init.maxTokens), init.maxTokens);
  const be = tf.backend() as unknown as WasmHeapBackend;

  port!.on('message', (m: { kind: 'step'; batchSize: number; seqLen: number; tokens: number }) => {
    try {
      // The replica's variables belong to this worker alone, so their memory is overwritten in place.
      let at = 0;
      for (const p of model.params) {
        const o = be.getMemoryOffset(p.variable.dataId) / 4;
        be.wasm.HEAPF32.set(weights.subarray(at, at + p.variable.size), o);
        at += p.variable.size;
      }
      const n = m.tokens;
      const r = model.lossAndGradients({
        batchSize: m.batchSize, seqLen: m.seqLen,
        inputs: tokens.slice(0, n), targets: tokens.slice(init.maxTokens, init.maxTokens + n), weights: lossWeights.slice(0, n),
      });
      if (!r) throw new Error(`fused path unavailable: ${model.fusedReason()}`);
      const heap = be.wasm.HEAPF32;
      at = 0;
      for (const p of model.params) {
        const g = r.grads.get(p.name) as tf.Tensor;
        const o = be.getMemoryOffset(g.dataId) / 4;
        grads.set(heap.subarray(o, o + p.variable.size), at);
        at += p.variable.size;
      }
      const loss = r.loss.dataSync()[0] as number;
      tf.dispose([r.loss, ...r.grads.values()]);
      port!.postMessage({ kind: 'done', loss });
    } catch (e) {
      port!.postMessage({ kind: 'error', message: e instanceof Error ? e.message : String(e) });
    }
  });
  port!.postMessage({ kind: 'ready' });
}

main(workerData as Init).catch((e) => port.postMessage({ kind: 'error', message: e instanceof Error ? e.message : String(e) }));
