/**
 * A GPT-style decoder (Radford et al. 2019, "Language Models are Unsupervised Multitask
 * Learners", §2.3: pre-LayerNorm blocks, N(0, 0.02) init, residual projections scaled by
 * 1/sqrt(2·nLayers)), written nanoGPT style: the whole model in this file.
 *
 * Two paths compute the same function from the same weights:
 * - `fast` (default): every matmul is a 2-D untransposed product, forward and backward
 *   (custom gradients materialise transposes), attention is one small 2-D product per
 *   (sequence, head), and LayerNorm, GELU, embedding and cross-entropy have hand-written
 *   gradients. This is what makes training on tfjs-backend-wasm practical: its XNNPACK
 *   matmul runs only for 2-D untransposed products, and it has no `tf.gather` gradient.
 * - `plain`: the textbook formulation with batched matmuls and autodiff, kept as the
 *   reference the fast path is tested against.
 *
 * Linear layers have no biases (nanoGPT `bias=False`); LayerNorms have gain and bias.
 * The output projection is not tied to the token embedding.
 */
import * as tf from '@tensorflow/tfjs';
import type { HostBatch, ParamInfo, ParamKind, TensorBatch, TrainableModel } from '../types';
import { checkNumber, ConfigError } from '../util/config';
import { resolveGPTConfig, type GPTConfig } from './config';
import { deriveSeed } from '../util/rng';
import { FusedEngine, fusedUnavailableReason } from './fused';
import { engineChoice, engineLabel } from '../backend/engine';
import { GradientPool, MAX_WORKERS, shardRows } from '../parallel/pool';
import { geluBackward, geluForward, hasFusedKernels, layerNormBackward, layerNormForward, tilesIn, tilesOut } from './kernels';

/** Options of a model instance that do not change its weights. */
export interface GPTOptions {
  /** Use the fast path (default true); `false` selects the plain reference path. */
  fast?: boolean;
  /**
   * Train with the fused WebAssembly kernels when the wasm backend is active (default true;
   * needs `fast`). `GMT_FUSED=0` in the environment turns it off for every model.
   * See `fused.ts`.
   */
  fused?: boolean;
  /**
   * Threads that compute each training batch (default 1; `GMT_WORKERS` in the environment sets
   * the default). Needs the fused path. On the native engine they split every kernel (the
   * results are the same bits for any count); on the wasm engine the main thread and
   * `workers − 1` worker threads each take a share of the batch's rows (data parallelism,
   * `parallel/pool.ts`). 2 uses both cores of a 2-core machine.
   */
  workers?: number;
  /**
   * How the native engine shares a step among its threads: `kernels` (default; every kernel is
   * split, and any thread count gives the same bits) or `batch` (each thread a share of the
   * batch's rows, as the wasm engine does; sums depend on the count). `GMT_SPLIT` sets the default.
   */
  split?: 'kernels' | 'batch';
}

/** The thread split of the native engine: the option, else `GMT_SPLIT`, else `kernels`. */
function resolveSplit(option: GPTOptions['split'], env: NodeJS.ProcessEnv): 'kernels' | 'batch' {
  const v = option ?? (env.GMT_SPLIT?.trim() || 'kernels');
  if (v !== 'kernels' && v !== 'batch') throw new ConfigError(`${option !== undefined ? 'GPT option split' : 'GMT_SPLIT'} must be kernels or batch, got ${JSON.stringify(v)}`);
  return v;
}

/** Names, shapes and metadata of every parameter, in the stable order of `GPT.params`. */
export function paramSpecs(config: GPTConfig): { name: string; shape: number[]; group: string; kind: ParamKind; init: 'normal' | 'residual' | 'ones' | 'zeros' }[] {
  const { vocabSize: V, contextLength: L, dModel: d, nLayers, mlpRatio } = config;
  const specs: ReturnType<typeof paramSpecs> = [
    { name: 'wte', shape: [V, d], group: 'embed', kind: 'embed', init: 'normal' },
    { name: 'wpe', shape: [L, d], group: 'embed', kind: 'embed', init: 'normal' },
  ];
  for (let i = 0; i < nLayers; i++) {
    const p = `blocks.${i}`;
    const group = `block.${i}`;
    specs.push(
      { name: `${p}.ln1.gamma`, shape: [d], group, kind: 'norm', init: 'ones' },
      { name: `${p}.ln1.beta`, shape: [d], group, kind: 'norm', init: 'zeros' },
      { name: `${p}.attn.wqkv`, shape: [d, 3 * d], group, kind: 'attn', init: 'normal' },
      { name: `${p}.attn.wo`, shape: [d, d], group, kind: 'attn', init: 'residual' },
      { name: `${p}.ln2.gamma`, shape: [d], group, kind: 'norm', init: 'ones' },
      { name: `${p}.ln2.beta`, shape: [d], group, kind: 'norm', init: 'zeros' },
      { name: `${p}.mlp.w1`, shape: [d, mlpRatio * d], group, kind: 'mlp', init: 'normal' },
      { name: `${p}.mlp.w2`, shape: [mlpRatio * d, d], group, kind: 'mlp', init: 'residual' },
    );
  }
  specs.push(
    { name: 'lnf.gamma', shape: [d], group: 'head', kind: 'norm', init: 'ones' },
    { name: 'lnf.beta', shape: [d], group: 'head', kind: 'norm', init: 'zeros' },
    { name: 'head.w', shape: [d, V], group: 'head', kind: 'head', init: 'normal' },
  );
  return specs;
}

interface BlockWeights {
  ln1g: tf.Variable; ln1b: tf.Variable; wqkv: tf.Variable; wo: tf.Variable;
  ln2g: tf.Variable; ln2b: tf.Variable; w1: tf.Variable; w2: tf.Variable;
}

// ---------------------------------------------------------------------------------------------
// Fast-path building blocks. Each is a tf.customGrad whose forward and backward use only 2-D
// untransposed matmuls and cheap elementwise ops.
// ---------------------------------------------------------------------------------------------

type Saver = (ts: tf.Tensor[]) => void;
type T = tf.Tensor;

/** `tf.customGrad` with the loose typing its callers need here. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function customGrad<F>(f: (...args: any[]) => { value: tf.Tensor; gradFunc: (dy: any, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] }): F {
  return tf.customGrad(f as never) as unknown as F;
}

/**
 * y = x·w, x [N, in], w [in, out]. Backward: dx = dy·wᵀ and dw = xᵀ·dy, or dw = (dyᵀ·x)ᵀ when
 * that transposes fewer elements (e.g. the MLP down-projection, where in = 4·out).
 * Transposes are materialised with `tf.transpose`: on wasm, xᵀ·dy for x [1024, 128] took 4.4 ms
 * this way and 53 ms as `matMul(x, dy, true, false)`, which leaves the XNNPACK path.
 */
const linear = customGrad<(x: T, w: T) => tf.Tensor2D>((x: tf.Tensor2D, w: tf.Tensor2D, save: Saver) => {
  save([x, w]);
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      const [n, din] = xs.shape;
      const dout = ws.shape[1];
      const dw = n * dout + din * dout < n * din
        ? tf.transpose(tf.matMul(tf.transpose(dy), xs))
        : tf.matMul(tf.transpose(xs), dy);
      return [tf.matMul(dy, tf.transpose(ws)), dw];
    },
  };
});

/**
 * LayerNorm over the last axis of x [N, d] (Ba et al. 2016, eq. 4) with the closed-form
 * gradient dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dy·γ. On cpu and wasm one fused
 * kernel does each direction; elsewhere tfjs ops do.
 */
function makeLayerNorm(eps: number) {
  return customGrad<(x: T, g: T, b: T) => tf.Tensor2D>((x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, save: Saver) => {
    if (hasFusedKernels()) {
      const [y, xh, rs] = layerNormForward(x, gamma, beta, eps);
      save([xh, rs, gamma]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => layerNormBackward(dy, saved[0] as T, saved[1] as T, saved[2] as T),
      };
    }
    const mean = tf.mean(x, -1, true);
    const xc = tf.sub(x, mean);
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), eps));
    const xhat = tf.mul(xc, rstd);
    save([xhat, rstd, gamma]);
    return {
      value: tf.add(tf.mul(xhat, gamma), beta),
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [xh, rs, g] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
        const dxhat = tf.mul(dy, g);
        const dx = tf.mul(rs, tf.sub(tf.sub(dxhat, tf.mean(dxhat, -1, true)), tf.mul(xh, tf.mean(tf.mul(dxhat, xh), -1, true))));
        return [dx, tf.sum(tf.mul(dy, xh), 0), tf.sum(dy, 0)];
      },
    };
  });
}

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_K = 0.044715;

/**
 * GELU, tanh approximation (Hendrycks & Gimpel 2016, eq. in §2), written as
 * x·sigmoid(2z) with z = sqrt(2/π)(x + 0.044715x³): the same function, and sigmoid is a
 * fast kernel on wasm where tanh is not.
 */
const geluFast = customGrad<(x: tf.Tensor) => tf.Tensor>((x: tf.Tensor, save: Saver) => {
  if (hasFusedKernels()) {
    const [y, sig] = geluForward(x);
    save([x, sig]);
    return { value: y, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [geluBackward(saved[0] as T, saved[1] as T, dy)] };
  }
  const x2 = tf.square(x);
  const s = tf.sigmoid(tf.mul(x, tf.add(tf.mul(x2, 2 * GELU_C * GELU_K), 2 * GELU_C)));
  save([x, x2, s]);
  return {
    value: tf.mul(x, s),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, x2s, ss] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      // d/dx x·σ(2z) = σ + x·σ(1−σ)·2z',  2z' = 2c(1 + 3k·x²)
      const dz = tf.add(tf.mul(x2s, 6 * GELU_C * GELU_K), 2 * GELU_C);
      const t = tf.mul(tf.mul(xs, tf.sub(ss, tf.square(ss))), dz);
      return [tf.mul(dy, tf.add(ss, t))];
    },
  };
});

/** The same GELU with tfjs autodiff, for the plain path. */
function geluPlain(x: tf.Tensor): tf.Tensor {
  const z = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), GELU_K)), GELU_C);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(z), 1));
}

/** Additive causal mask [T, T]: 0 on and below the diagonal, -1e9 above. */
function causalMask(T: number): tf.Tensor2D {
  return tf.tidy(() => {
    const lower = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
    return tf.mul(tf.sub(1, lower), -1e9) as tf.Tensor2D;
  });
}

/**
 * Causal multi-head self-attention core on qkv [B·T, 3d] (columns: q heads, k heads, v heads)
 * → [B·T, d]. One 2-D product per (sequence, head) forward and backward; the softmax runs once
 * over all of them. Backward (Vaswani et al. 2017, §3.2.1 differentiated):
 * dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)) / sqrt(hd), dQ = dS·K, dK = dSᵀ·Q.
 */
function makeAttention(B: number, T: number, H: number, hd: number, mask: tf.Tensor2D) {
  const d = H * hd;
  const scale = 1 / Math.sqrt(hd);
  const heads = (x: tf.Tensor2D, part: number, transpose: boolean) =>
    tilesOut(x, { rows: T, cols: hd, colOffset: part * d, nColBlocks: H, transpose });
  const squares = (x: tf.Tensor2D, transpose: boolean) =>
    tilesOut(x, { rows: T, cols: T, colOffset: 0, nColBlocks: 1, transpose });
  return customGrad<(qkv: T) => tf.Tensor2D>((qkv: tf.Tensor2D, save: Saver) => {
    const q = heads(qkv, 0, false);
    const kT = heads(qkv, 1, true);
    const v = heads(qkv, 2, false);
    const scores = tf.concat(q.map((qi, i) => tf.matMul(qi, kT[i] as tf.Tensor2D)), 0);
    const logits = tf.add(tf.reshape(tf.mul(scores, scale), [B * H, T, T]), mask);
    const probs = tf.reshape(tf.softmax(logits), [B * H * T, T]) as tf.Tensor2D;
    const p = squares(probs, false);
    const out = tilesIn(p.map((pi, i) => tf.matMul(pi, v[i] as tf.Tensor2D)), H);
    save([qkv, probs]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [qkvS, probsS] = saved as [tf.Tensor2D, tf.Tensor2D];
        const dO = heads(dy, 0, false);
        const vT = heads(qkvS, 2, true);
        const pT = squares(probsS, true);
        const dV = pT.map((pti, i) => tf.matMul(pti, dO[i] as tf.Tensor2D));
        const dP = tf.concat(dO.map((doi, i) => tf.matMul(doi, vT[i] as tf.Tensor2D)), 0);
        const dS = tf.mul(tf.mul(probsS, tf.sub(dP, tf.sum(tf.mul(dP, probsS), -1, true))), scale) as tf.Tensor2D;
        const dSt = squares(dS, false);
        const dStT = squares(dS, true);
        const qS = heads(qkvS, 0, false);
        const kS = heads(qkvS, 1, false);
        const dQ = dSt.map((s, i) => tf.matMul(s, kS[i] as tf.Tensor2D));
        const dK = dStT.map((s, i) => tf.matMul(s, qS[i] as tf.Tensor2D));
        const tiles: tf.Tensor[] = [];
        for (let b = 0; b < B; b++) {
          tiles.push(...dQ.slice(b * H, (b + 1) * H), ...dK.slice(b * H, (b + 1) * H), ...dV.slice(b * H, (b + 1) * H));
        }
        return [tilesIn(tiles as tf.Tensor2D[], 3 * H)];
      },
    };
  });
}

/**
 * Mean of −log softmax(logits)[target] weighted by `weights` (completion-only loss), with the
 * gradient (softmax − onehot)·w/Σw written out.
 */
function weightedCrossEntropyFast(logits: tf.Tensor2D, onehot: tf.Tensor2D, weights: tf.Tensor1D): tf.Scalar {
  const f = customGrad<(lg: T) => tf.Scalar>((lg: tf.Tensor2D, save: Saver) => {
    const logp = tf.logSoftmax(lg);
    const wNorm = tf.div(weights, tf.maximum(tf.sum(weights), 1e-9));
    const nll = tf.neg(tf.sum(tf.mul(onehot, logp), -1));
    // Tensors the gradient reads must go through save(): the caller's tidy frees the rest.
    save([logp, wNorm, onehot]);
    return {
      value: tf.sum(tf.mul(nll, wNorm)),
      gradFunc: (dy: tf.Scalar, saved: tf.Tensor[]) => {
        const [lp, wn, oh] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor2D];
        return [tf.mul(tf.sub(tf.exp(lp), oh), tf.mul(tf.reshape(wn, [-1, 1]), dy))];
      },
    };
  });
  return f(logits);
}

function weightedCrossEntropyPlain(logits: tf.Tensor2D, onehot: tf.Tensor2D, weights: tf.Tensor1D): tf.Scalar {
  const nll = tf.neg(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), -1));
  return tf.div(tf.sum(tf.mul(nll, weights)), tf.maximum(tf.sum(weights), 1e-9)) as tf.Scalar;
}

let nextModelId = 0;

/**
 * The decoder. `params` lists every trainable tensor in a stable order; names are the
 * safetensors tensor names. Dispose with `dispose()` when done.
 */
function describeGradientPath(fast: boolean, fusedWhyNot: string | undefined, threads: number, split: 'kernels' | 'batch', env: NodeJS.ProcessEnv = process.env): string {
  if (fusedWhyNot !== undefined) return `${fast ? 'fast' : 'plain'} path (tfjs ops; fused skipped: ${fusedWhyNot})`;
  const choice = engineChoice(env);
  // The native kernels split work so that every thread count gives the same bits (a test proves
  // it): the path, and so a run's key, leaves the count out. Batch shares (the wasm engine's
  // threads, or the native engine's with split `batch`) are summed, so the count changes the bits.
  if (choice.engine === 'native' && (split === 'kernels' || threads === 1)) return `fused ${engineLabel(choice)}`;
  const shards = choice.engine === 'native' ? ', batch shards' : '';
  return `fused ${engineLabel(choice)}, ${threads} thread${threads === 1 ? '' : 's'}${shards}`;
}

/**
 * What `new GPT(config).gradientPath()` would say in this process (default options, the
 * environment's `GMT_FUSED` and `GMT_WORKERS`), without building a model. Sweeps put it in
 * every run key, so a result computed on another code path or thread count is never reused.
 */
export function defaultGradientPath(env: NodeJS.ProcessEnv = process.env): string {
  const raw = env.GMT_WORKERS;
  const threads = raw !== undefined && raw.trim() !== '' ? Number(raw) : 1;
  checkNumber('GMT_WORKERS', threads, { min: 1, max: MAX_WORKERS + 1, integer: true });
  const why = env.GMT_FUSED === '0' ? 'turned off (GPTOptions.fused = false or GMT_FUSED=0)' : fusedUnavailableReason();
  return describeGradientPath(true, why, threads, resolveSplit(undefined, env), env);
}

/**
 * The decoder-only transformer every run fine-tunes: parameters as named tfjs variables
 * (`params`, grouped by layer for GMT's layer scope), the completion-only loss, and its
 * gradients through the fused wasm kernels where they run (see `defaultGradientPath`).
 *
 * ```ts
 * const model = new gmt.GPT(gmt.gptPreset('nano', { vocabSize: new gmt.CharTokenizer().vocabSize, seed: 0 }));
 * const loss = model.loss(batch); // batch from gmt.makeBatch + gmt.toTensorBatch
 * model.dispose();
 * ```
 */
export class GPT implements TrainableModel {
  readonly config: GPTConfig;
  readonly params: readonly ParamInfo[];
  /** Whether this instance computes with the fast path. */
  readonly fast: boolean;
  /** Whether training may use the fused kernels (see {@link GPTOptions.fused}). */
  readonly fused: boolean;
  /** Threads besides the main one that compute each training step (see {@link GPTOptions.workers}). */
  readonly workers: number;
  /** How the native engine shares a step among threads (see {@link GPTOptions.split}). */
  readonly split: 'kernels' | 'batch';
  private fusedEngine?: FusedEngine;
  private pool?: Promise<GradientPool>;
  private poolTokens = 0;
  private readonly byName: Map<string, tf.Variable>;
  private readonly blocks: BlockWeights[];
  private readonly layerNorm: ReturnType<typeof makeLayerNorm>;
  private readonly masks = new Map<number, tf.Tensor2D>();
  private disposed = false;

  /**
   * @param config overrides of `DEFAULT_GPT_CONFIG` (validated; unknown keys throw).
   * @param options `fast: false` selects the plain reference path.
   * @param weights optional initial values by parameter name (used by checkpoints); each must
   *   have the spec's shape. Missing names are initialised from the seed.
   */
  constructor(config?: Partial<GPTConfig>, options: GPTOptions = {}, weights?: Record<string, tf.Tensor>) {
    this.config = resolveGPTConfig(config);
    this.fast = options.fast ?? true;
    this.fused = this.fast && (options.fused ?? true) && process.env.GMT_FUSED !== '0';
    const envWorkers = process.env.GMT_WORKERS;
    const threads = options.workers ?? (envWorkers !== undefined && envWorkers.trim() !== '' ? Number(envWorkers) : 1);
    checkNumber(options.workers !== undefined ? 'GPT option workers' : 'GMT_WORKERS', threads, { min: 1, max: MAX_WORKERS + 1, integer: true });
    this.workers = threads - 1;
    this.split = resolveSplit(options.split, process.env);
    this.layerNorm = makeLayerNorm(this.config.layerNormEps);
    const id = nextModelId++;
    const std = 0.02;
    const residualStd = std / Math.sqrt(2 * this.config.nLayers);
    const params: ParamInfo[] = [];
    this.byName = new Map();
    const specs = paramSpecs(this.config);
    if (weights) {
      const known = new Set(specs.map((s) => s.name));
      const unknown = Object.keys(weights).filter((n) => !known.has(n));
      if (unknown.length) throw new ConfigError(`GPT weights: unknown parameter name(s) ${unknown.join(', ')}`);
    }
    for (const spec of specs) {
      const given = weights?.[spec.name];
      const init = tf.tidy(() => {
        if (given) {
          if (given.shape.join(',') !== spec.shape.join(',')) {
            throw new ConfigError(`GPT weights: "${spec.name}" has shape [${given.shape}], expected [${spec.shape}]`);
          }
          return given.toFloat();
        }
        const seed = deriveSeed(this.config.seed, spec.name);
        switch (spec.init) {
          case 'ones': return tf.ones(spec.shape);
          case 'zeros': return tf.zeros(spec.shape);
          case 'normal': return tf.randomNormal(spec.shape, 0, std, 'float32', seed);
          case 'residual': return tf.randomNormal(spec.shape, 0, residualStd, 'float32', seed);
        }
      });
      const variable = tf.variable(init, true, `gpt${id}/${spec.name}`);
      init.dispose();
      params.push({ name: spec.name, variable, group: spec.group, kind: spec.kind });
      this.byName.set(spec.name, variable);
    }
    this.params = params;
    const w = (n: string) => this.byName.get(n) as tf.Variable;
    this.blocks = [];
    for (let i = 0; i < this.config.nLayers; i++) {
      const p = `blocks.${i}`;
      this.blocks.push({
        ln1g: w(`${p}.ln1.gamma`), ln1b: w(`${p}.ln1.beta`), wqkv: w(`${p}.attn.wqkv`), wo: w(`${p}.attn.wo`),
        ln2g: w(`${p}.ln2.gamma`), ln2b: w(`${p}.ln2.beta`), w1: w(`${p}.mlp.w1`), w2: w(`${p}.mlp.w2`),
      });
    }
  }

  /** Total number of scalar parameters. */
  get numParams(): number {
    return this.params.reduce((n, p) => n + p.variable.size, 0);
  }

  /** The variable holding parameter `name`; throws on an unknown name. */
  param(name: string): tf.Variable {
    const v = this.byName.get(name);
    if (!v) throw new Error(`GPT: no parameter named "${name}"`);
    return v;
  }

  private mask(T: number): tf.Tensor2D {
    let m = this.masks.get(T);
    if (!m) {
      m = tf.keep(causalMask(T));
      this.masks.set(T, m);
    }
    return m;
  }

  private checkInputs(inputs: tf.Tensor2D): [number, number] {
    if (this.disposed) throw new Error('GPT: model was disposed');
    if (inputs.rank !== 2) throw new Error(`GPT: inputs must be [batch, seqLen], got shape [${inputs.shape}]`);
    const [B, T] = inputs.shape;
    if (T < 1 || T > this.config.contextLength) {
      throw new Error(`GPT: sequence length ${T} outside 1..contextLength (${this.config.contextLength})`);
    }
    return [B, T];
  }

  /**
   * Final hidden states [B·T, d] after the last LayerNorm. `onQkv(layer, qkv)` sees each
   * block's qkv projection [B·T, 3d] (used by generation to fill its key/value cache).
   */
  hidden(inputs: tf.Tensor2D, onQkv?: (layer: number, qkv: tf.Tensor2D) => void): tf.Tensor2D {
    const [B, T] = this.checkInputs(inputs);
    const { dModel: d, nHeads: H, vocabSize: V, contextLength: L } = this.config;
    const hd = d / H;
    const onehot = tf.oneHot(tf.reshape(inputs, [-1]) as tf.Tensor1D, V) as tf.Tensor2D;
    const wte = this.param('wte');
    const wpe = this.param('wpe');
    let x: tf.Tensor2D;
    if (this.fast) {
      const embed = customGrad<(te: T, pe: T) => tf.Tensor2D>((te: tf.Tensor2D, pe: tf.Tensor2D, save: Saver) => {
        save([onehot]);
        const value = tf.reshape(tf.add(tf.reshape(tf.matMul(onehot, te), [B, T, d]), tf.slice(pe, [0, 0], [T, d])), [B * T, d]);
        return {
          value,
          gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
            const oh = saved[0] as tf.Tensor2D;
            const dpe = tf.sum(tf.reshape(dy, [B, T, d]), 0);
            return [tf.matMul(tf.transpose(oh), dy), T < L ? tf.pad(dpe, [[0, L - T], [0, 0]]) : dpe];
          },
        };
      });
      x = embed(wte, wpe);
      const attention = makeAttention(B, T, H, hd, this.mask(T));
      for (const [i, blk] of this.blocks.entries()) {
        const qkv = linear(this.layerNorm(x, blk.ln1g, blk.ln1b), blk.wqkv);
        onQkv?.(i, qkv);
        x = tf.add(x, linear(attention(qkv), blk.wo));
        const h = geluFast(linear(this.layerNorm(x, blk.ln2g, blk.ln2b), blk.w1)) as tf.Tensor2D;
        x = tf.add(x, linear(h, blk.w2));
      }
      return this.layerNorm(x, this.param('lnf.gamma'), this.param('lnf.beta'));
    }
    // Plain reference path: batched matmuls, autodiff everywhere.
    const ln = (t: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const { mean, variance } = tf.moments(t, -1, true);
      return tf.add(tf.mul(tf.div(tf.sub(t, mean), tf.sqrt(tf.add(variance, this.config.layerNormEps))), g), b) as tf.Tensor2D;
    };
    x = tf.reshape(tf.add(tf.reshape(tf.matMul(onehot, wte), [B, T, d]), tf.slice(wpe, [0, 0], [T, d])), [B * T, d]);
    const mask = this.mask(T);
    for (const [i, blk] of this.blocks.entries()) {
      const qkv = tf.matMul(ln(x, blk.ln1g, blk.ln1b), blk.wqkv) as tf.Tensor2D;
      onQkv?.(i, qkv);
      const split = (part: number) =>
        tf.transpose(tf.reshape(tf.slice(qkv, [0, part * d], [B * T, d]), [B, T, H, hd]), [0, 2, 1, 3]);
      const att = tf.softmax(tf.add(tf.mul(tf.matMul(split(0), split(1), false, true), 1 / Math.sqrt(hd)), mask));
      const o = tf.reshape(tf.transpose(tf.matMul(att, split(2)), [0, 2, 1, 3]), [B * T, d]);
      x = tf.add(x, tf.matMul(o, blk.wo));
      x = tf.add(x, tf.matMul(geluPlain(tf.matMul(ln(x, blk.ln2g, blk.ln2b), blk.w1)), blk.w2));
    }
    return ln(x, this.param('lnf.gamma'), this.param('lnf.beta'));
  }

  /** Next-token logits [B, T, vocabSize] for token ids [B, T] (int32). */
  logits(inputs: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, T] = this.checkInputs(inputs);
      const h = this.hidden(inputs);
      const out = this.fast ? linear(h, this.param('head.w')) : tf.matMul(h, this.param('head.w'));
      return tf.reshape(out, [B, T, this.config.vocabSize]) as tf.Tensor3D;
    });
  }

  /** Weighted mean next-token cross-entropy; only tokens with weight 1 count (completion-only loss). */
  loss(batch: TensorBatch): tf.Scalar {
    return tf.tidy(() => {
      const { inputs, targets, weights } = batch;
      if (targets.shape.join(',') !== inputs.shape.join(',') || weights.shape.join(',') !== inputs.shape.join(',')) {
        throw new Error(`GPT.loss: inputs [${inputs.shape}], targets [${targets.shape}] and weights [${weights.shape}] must have one shape`);
      }
      const h = this.hidden(inputs);
      const onehot = tf.oneHot(tf.reshape(targets, [-1]) as tf.Tensor1D, this.config.vocabSize) as tf.Tensor2D;
      const w = tf.reshape(tf.cast(weights, 'float32'), [-1]) as tf.Tensor1D;
      if (this.fast) return weightedCrossEntropyFast(linear(h, this.param('head.w')), onehot, w);
      return weightedCrossEntropyPlain(tf.matMul(h, this.param('head.w')), onehot, w);
    });
  }

  /**
   * Why training steps of this model do not use the fused kernels, or `undefined` when they do.
   */
  fusedReason(): string | undefined {
    if (!this.fast) return 'the plain reference path was requested';
    if (!this.fused) return 'turned off (GPTOptions.fused = false or GMT_FUSED=0)';
    return fusedUnavailableReason();
  }

  /**
   * How training gradients are computed here, e.g. `fused native kernels (avx512, build 3f394622e241)`,
   * `fused wasm kernels (relaxed-simd), 2 threads` or `fast path (tfjs ops; fused skipped: …)`.
   */
  gradientPath(): string {
    return describeGradientPath(this.fast, this.fusedReason(), this.workers + 1, this.split);
  }

  /**
   * Loss and ∇θ L of one batch by parameter name through the fused kernels (native or wasm
   * engine, `backend/engine.ts`), or `undefined` when they cannot run (see {@link fusedReason});
   * the trainer then differentiates `loss` with tfjs. Same numbers as the fast path within float
   * tolerance. On the native engine its kernels use `workers + 1` threads.
   */
  lossAndGradients(batch: HostBatch): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } | undefined {
    if (this.disposed) throw new Error('GPT: model was disposed');
    if (this.fusedReason() !== undefined) return undefined;
    this.fusedEngine ??= new FusedEngine(this.config, (name) => this.param(name));
    return this.fusedEngine.lossAndGradients(batch, this.kernelThreads());
  }

  /** Threads each native kernel uses: all of them with split `kernels`, else one per shard. */
  private kernelThreads(): number {
    return this.split === 'kernels' ? this.workers + 1 : 1;
  }

  /**
   * The loss of one batch through the fused forward pass, on the native engine; `undefined`
   * elsewhere (evaluation then uses `loss` with tfjs ops, as the runs stored from the wasm engine
   * were evaluated). Used by validation and the forgetting probe.
   */
  lossNative(batch: HostBatch): number | undefined {
    if (this.disposed) throw new Error('GPT: model was disposed');
    if (this.fusedReason() !== undefined || engineChoice().engine !== 'native') return undefined;
    this.fusedEngine ??= new FusedEngine(this.config, (name) => this.param(name));
    return this.fusedEngine.loss(batch, this.workers + 1);
  }

  /**
   * `lossAndGradients`, with the batch's rows shared between the main thread and
   * `workers` worker threads when more than one thread was asked for, on the wasm engine (the
   * native engine threads inside its kernels instead). Starts the workers on first use (about a
   * second); a batch with more rows per shard than the pool was sized for restarts them.
   */
  async lossAndGradientsAsync(batch: HostBatch): Promise<{ loss: tf.Scalar; grads: Map<string, tf.Tensor> } | undefined> {
    if (this.workers === 0 || batch.batchSize < 2 || this.fusedReason() !== undefined || (this.split === 'kernels' && engineChoice().engine === 'native')) return this.lossAndGradients(batch);
    const tokens = shardRows(batch.batchSize, this.workers + 1)[1]! * batch.seqLen;
    if (!this.pool || tokens > this.poolTokens) {
      const old = this.pool;
      this.pool = undefined;
      if (old) await (await old).dispose();
      this.poolTokens = Math.max(tokens, this.poolTokens);
      const sizes = this.params.map((p) => p.variable.size);
      this.pool = GradientPool.create(this.config, sizes, this.workers, this.poolTokens);
      this.pool.catch(() => { this.pool = undefined; });
    }
    return (await this.pool).lossAndGradients(this, batch);
  }

  /** Frees every variable and cached tensor and stops worker threads. The model is unusable afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.fusedEngine?.dispose();
    void this.pool?.then((p) => p.dispose(), () => undefined);
    this.pool = undefined;
    for (const p of this.params) p.variable.dispose();
    for (const m of this.masks.values()) m.dispose();
    this.masks.clear();
  }
}
