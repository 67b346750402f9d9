/**
 * Data parallelism over worker threads: the rows of each batch are split into shards, the main
 * thread computes the first shard with the fused kernels while each worker computes one other
 * shard on its own single-threaded wasm backend, and the shard gradients are combined with
 * their loss weights. This is how one training run uses every core (tfjs-wasm's own thread
 * pool does not help this model: its ~1,600 small matmuls per update spend more time
 * synchronising than computing).
 *
 * Same function as one process: shard i returns L_i and ∇L_i normalised by its own weight sum
 * W_i, and the combination Σ (W_i/W)·L_i is the loss of the whole batch, W = Σ W_i. The numbers
 * differ from a one-process run only by float rounding; the same seed and worker count repeat
 * bit for bit.
 *
 * Exchange through one SharedArrayBuffer per worker: the main thread copies the current weights
 * in (straight from the wasm heap), the worker copies its gradients out. No tensor crosses a
 * thread; each worker holds a replica of the model whose weights are overwritten every step.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { HostBatch } from '../types';
import type { GPTConfig } from '../model/config';
import { kernelVariant, wasmKernels, type WasmHeapBackend } from '../backend/wasm-kernels';
import { engineChoice } from '../backend/engine';

/** Largest worker count a pool accepts (the main thread computes one more shard). */
export const MAX_WORKERS = 15;

/** A message from a worker. */
type Reply = { kind: 'ready' } | { kind: 'done'; loss: number } | { kind: 'error'; message: string };


/** The view a pool needs of a model: its parameters in order and a one-shard gradient call. */
export interface ShardModel {
  readonly config: GPTConfig;
  readonly params: readonly { name: string; variable: tf.Variable }[];
  lossAndGradients(batch: HostBatch): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } | undefined;
}

interface Slot {
  worker: Worker;
  shared: SharedArrayBuffer;
  weights: Float32Array;
  grads: Float32Array;
  tokens: Int32Array;
  floats: Float32Array;
  pending?: { resolve: (r: Reply) => void; reject: (e: Error) => void };
  failed?: Error;
}

/** Rows of each shard: as equal as possible, earlier shards one row longer. */
export function shardRows(batchSize: number, shards: number): number[] {
  const n = Math.min(shards, batchSize);
  return Array.from({ length: n }, (_, i) => Math.floor(batchSize / n) + (i < batchSize % n ? 1 : 0));
}

function slice(b: HostBatch, row0: number, rows: number): HostBatch {
  const a = row0 * b.seqLen, z = (row0 + rows) * b.seqLen;
  return { batchSize: rows, seqLen: b.seqLen, inputs: b.inputs.subarray(a, z), targets: b.targets.subarray(a, z), weights: b.weights.subarray(a, z) };
}

function weightSum(w: Float32Array): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += w[i] as number;
  return s;
}

/**
 * A pool of gradient workers for one model configuration. Create with {@link GradientPool.create};
 * `dispose()` stops the workers (they never keep the process alive).
 */
export class GradientPool {
  /** A tfjs-heap buffer of the largest parameter's size, where a worker's gradients are staged. */
  private staging?: tf.Tensor;

  private constructor(
    private readonly slots: Slot[],
    private readonly paramSizes: number[],
    private readonly maxTokens: number,
  ) {
    this.staging = tf.keep(tf.zeros([Math.max(...paramSizes)]));
  }

  /** Worker threads in the pool (the main thread adds one more shard). */
  get workers(): number {
    return this.slots.length;
  }

  /**
   * Starts `workers` threads, each with a wasm backend and a replica of a `config` model, sized
   * for batches of up to `maxTokens` tokens per shard. Resolves when every worker is ready.
   */
  static async create(config: GPTConfig, paramSizes: number[], workers: number, maxTokens: number): Promise<GradientPool> {
    if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
      throw new RangeError(`GradientPool: workers must be an integer in 1..${MAX_WORKERS}, got ${workers}`);
    }
    const nParams = paramSizes.reduce((a, b) => a + b, 0);
    const ext = path.extname(__filename);
    const script = path.join(__dirname, `worker${ext}`);
    const slots: Slot[] = [];
    const ready: Promise<Reply>[] = [];
    for (let i = 0; i < workers; i++) {
      // Layout: weights [nParams] | grads [nParams] | inputs, targets [maxTokens] int32 | loss weights [maxTokens].
      const shared = new SharedArrayBuffer(4 * (2 * nParams + 3 * maxTokens));
      // Run from TypeScript sources (the tests), the worker registers tsx's require hook first.
      const workerData = { config, paramSizes, maxTokens, shared, kernels: kernelVariant().variant, engine: engineChoice().engine };
      const worker = ext === '.ts'
        ? new Worker(`require('tsx/cjs'); require(${JSON.stringify(script)});`, { eval: true, workerData })
        : new Worker(script, { workerData });
      worker.unref();
      const slot: Slot = {
        worker, shared,
        weights: new Float32Array(shared, 0, nParams),
        grads: new Float32Array(shared, 4 * nParams, nParams),
        tokens: new Int32Array(shared, 8 * nParams, 2 * maxTokens),
        floats: new Float32Array(shared, 4 * (2 * nParams + 2 * maxTokens), maxTokens),
      };
      worker.on('message', (r: Reply) => {
        const p = slot.pending;
        slot.pending = undefined;
        if (r.kind === 'error') p?.reject(new Error(`gradient worker ${i}: ${r.message}`));
        else p?.resolve(r);
      });
      const fail = (e: Error) => {
        slot.failed = e;
        const p = slot.pending;
        slot.pending = undefined;
        p?.reject(e);
      };
      worker.on('error', (e) => fail(new Error(`gradient worker ${i} crashed: ${e.message}`)));
      worker.on('exit', (code) => fail(new Error(`gradient worker ${i} exited (code ${code})`)));
      ready.push(new Promise((resolve, reject) => { slot.pending = { resolve, reject }; }));
      slots.push(slot);
    }
    const pool = new GradientPool(slots, paramSizes, maxTokens);
    try {
      await Promise.all(ready);
    } catch (e) {
      await pool.dispose();
      throw e;
    }
    return pool;
  }

  /**
   * Loss and gradients of `batch` by parameter name, computed over the main thread and the
   * workers. `model` must be the main thread's copy (its weights are sent to the workers) and
   * must be able to take the fused route.
   */
  async lossAndGradients(model: ShardModel, batch: HostBatch): Promise<{ loss: tf.Scalar; grads: Map<string, tf.Tensor> }> {
    const rows = shardRows(batch.batchSize, this.slots.length + 1);
    if (rows.length === 1) {
      const r = model.lossAndGradients(batch);
      if (!r) throw new Error('GradientPool: the model cannot take the fused route here');
      return r;
    }
    if ((rows[1] as number) * batch.seqLen > this.maxTokens) {
      throw new Error(`GradientPool: a shard of ${rows[1]} × ${batch.seqLen} tokens exceeds the pool's ${this.maxTokens}`);
    }
    const be = tf.backend() as unknown as WasmHeapBackend;
    // Weights straight from the heap into each worker's buffer.
    const heap = be.wasm.HEAPF32;
    let row0 = rows[0] as number;
    const jobs: Promise<Reply>[] = [];
    const shardWeights: number[] = [weightSum(slice(batch, 0, rows[0] as number).weights)];
    for (let s = 1; s < rows.length; s++) {
      const slot = this.slots[s - 1] as Slot;
      if (slot.failed) throw slot.failed;
      let at = 0;
      for (const p of model.params) {
        const o = be.getMemoryOffset(p.variable.dataId) / 4;
        slot.weights.set(heap.subarray(o, o + p.variable.size), at);
        at += p.variable.size;
      }
      const part = slice(batch, row0, rows[s] as number);
      row0 += rows[s] as number;
      const n = part.inputs.length;
      slot.tokens.set(part.inputs, 0);
      slot.tokens.set(part.targets, this.maxTokens);
      slot.floats.set(part.weights, 0);
      shardWeights.push(weightSum(part.weights));
      jobs.push(new Promise<Reply>((resolve, reject) => {
        slot.pending = { resolve, reject };
        slot.worker.postMessage({ kind: 'step', batchSize: part.batchSize, seqLen: part.seqLen, tokens: n });
      }));
    }
    const local = model.lossAndGradients(slice(batch, 0, rows[0] as number));
    if (!local) throw new Error('GradientPool: the model cannot take the fused route here');
    let replies: Reply[];
    try {
      replies = await Promise.all(jobs);
    } catch (e) {
      tf.dispose([local.loss, ...local.grads.values()]);
      throw e;
    }
    const total = shardWeights.reduce((a, b) => a + b, 0);
    const denom = Math.max(total, 1e-9);
    const share = shardWeights.map((w) => Math.max(w, 1e-9) / denom);
    let loss = (local.loss.dataSync()[0] as number) * (share[0] as number);
    local.loss.dispose();
    replies.forEach((r, i) => { loss += (r as { loss: number }).loss * (share[i + 1] as number); });
    // g = Σ share_i·g_i, written over the main thread's gradient tensors (fresh, owned here): each
    // worker's block is copied into tfjs' heap and added there by a kernel (a JavaScript loop over
    // the shared buffer took ~6 ms per update of the reference model).
    const k = wasmKernels()?.kernels;
    if (!k || !this.staging) throw new Error('GradientPool: the wasm kernels are not available here, or the pool was disposed');
    const stage = be.getMemoryOffset(this.staging.dataId);
    const h = be.wasm.HEAPF32;
    let at = 0;
    model.params.forEach((p, i) => {
      const g = local.grads.get(p.name) as tf.Tensor;
      const size = this.paramSizes[i] as number;
      for (let s = 1; s < rows.length; s++) {
        h.set((this.slots[s - 1] as Slot).grads.subarray(at, at + size), stage / 4);
        k.scale_add(be.getMemoryOffset(g.dataId), s === 1 ? share[0] as number : 1, stage, share[s] as number, size);
      }
      at += size;
    });
    return { loss: tf.scalar(loss), grads: local.grads };
  }

  /** Stops every worker. Safe to call twice. */
  async dispose(): Promise<void> {
    await Promise.all(this.slots.map(async (s) => {
      s.worker.removeAllListeners('exit');
      await s.worker.terminate();
    }));
    this.slots.length = 0;
    this.staging?.dispose();
    this.staging = undefined;
  }
}
