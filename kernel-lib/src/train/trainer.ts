/**
 * The trainer: N micro-batches → Γ → (clip) → strategy → (clip) → AdamW, per update.
 *
 * Implements the update of the GMT paper (arXiv 2406.15330, §3, Algorithm 1): the gradients of
 * N micro-batches are averaged, Γ = (1/N) Σₙ ∇θ L(Θ, Bₙ), and only then handed to the tuning
 * strategy, so a mask is always computed from the averaged Γ, never per micro-batch.
 *
 * A run is a pure function of its resolved config, the model's initial weights and the batch
 * stream: the result record (`TrainResult`) is plain JSON and carries everything needed to tell
 * two runs apart (config, seed, backend, weights hash).
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, checkNumber, resolveConfig } from '../util/config';
import type { HostBatch, TensorBatch, TrainableModel } from '../types';
import { getStrategy } from '../tuning/registry';
import { maskStatistics } from '../tuning/mask';
import type { StrategyInitContext, TuningStrategy } from '../tuning/strategy';
import { AdamW, decayAll, decayMatrices } from './adamw';
import { fusedKernels } from '../backend/engine';
import { checkSchedule, learningRateAt, type LrSchedule } from './schedule';
import { weightsSha256Async } from '../model/hash';
import { median } from '../util/stats';

/** A method by name with its options, as saved in results. */
export interface StrategySpec {
  name: string;
  options?: Record<string, unknown>;
}

/** The serialisable part of the training options (saved as `result.config`). */
export interface TrainConfig {
  /** Tuning method: a registry name, `{ name, options }`, or a strategy instance. */
  strategy: string | StrategySpec | TuningStrategy;
  /** Number of optimizer updates. */
  steps: number;
  /** N: micro-batches averaged into Γ per update. */
  accum: number;
  /** Peak learning rate. */
  lr: number;
  /** Linear warmup updates. */
  warmup: number;
  /** Cosine decay floor as a fraction of `lr`. */
  minLrRatio: number;
  /** AdamW decoupled weight decay λ. */
  weightDecay: number;
  /** Which tensors decay: `all`, or `matrices` (rank ≥ 2; norms and biases are not decayed). */
  weightDecayOn: 'all' | 'matrices';
  /** AdamW (β₁, β₂). */
  betas: [number, number];
  /** AdamW ε. */
  eps: number;
  /** Global-norm gradient clipping; `null` = off. */
  clipNorm: number | null;
  /** Clip Γ before the strategy masks it, or the masked gradient after. */
  clipOrder: 'before-mask' | 'after-mask';
  /** Call `evaluate` every K updates (0 = only at the end). */
  evalEvery: number;
  /** Run seed; strategies derive their random streams from it. */
  seed: number;
  /** Record kept fractions per tensor in every history entry. */
  recordKeptByTensor: boolean;
  /**
   * Decay of an exponential moving average of the weights, updated after every optimizer step
   * (θ̄ ← d·θ̄ + (1 − d)·θ, from the initial weights); 0 = none. `train` hands the average to
   * `onAveraged` at the end, for evaluating averaged weights (a pilot candidate of the findings'
   * protocol).
   */
  ema: number;
}

/** One history entry (one optimizer update). */
export interface UpdateRecord {
  /** Updates completed, 1-based. */
  step: number;
  /** Mean of the N micro-batch losses (before this update). */
  loss: number;
  /** Learning rate used. */
  lr: number;
  /** ‖Γ‖₂ over all parameters, before clipping and masking. */
  gradNorm: number;
  /** Kept entries / all entries of the strategy's gradient mask (1 without a mask). */
  keptFraction: number;
  keptByTensor?: Record<string, number>;
  /** Jaccard overlap of this update's mask with the previous update's. */
  maskJaccard?: number;
  /** Wall time of the whole update (gradients, strategy, optimizer, statistics). */
  ms: number;
  /** Wall time computing Γ (every micro-batch's forward and backward pass, and their mean). */
  gradientsMs: number;
  /** Wall time inside `strategy.transform`. */
  transformMs: number;
}

/** One evaluation. */
export interface EvalRecord {
  /** Updates completed when evaluated. */
  step: number;
  metrics: Record<string, number>;
  ms: number;
}

/** The complete, JSON-serialisable record of one run. */
export interface TrainResult {
  config: Omit<TrainConfig, 'strategy'> & { strategy: StrategySpec };
  seed: number;
  history: UpdateRecord[];
  evals: EvalRecord[];
  /** Last training loss plus the metrics of the last evaluation. */
  final: Record<string, number>;
  timings: {
    totalMs: number;
    /** Median wall time per update. */
    msPerUpdate: number;
    meanMsPerUpdate: number;
    /** Median time in `strategy.transform` per update. */
    transformMsPerUpdate: number;
    initMs: number;
    evalMs: number;
  };
  /** `weightsSha256(model.params)` after training. */
  weightsSha256: string;
  backend: string;
  /** `model.gradientPath()` when the model describes it: code path, kernel build, threads. */
  gradientPath?: string;
  /** Updates actually applied. */
  updates: number;
  /**
   * Largest `tf.memory().numBytes` seen right after an optimizer step, when Γ, the masks, the
   * masked gradients and the optimizer's moments are all alive: the tensor memory of an update
   * (on the device, on webgpu).
   */
  peakTensorBytes: number;
  /** True when the run was cancelled through `signal`. */
  stoppedEarly: boolean;
}

/** Where training batches come from. */
export type BatchSource = (() => HostBatch) | Iterator<HostBatch> | Iterable<HostBatch>;

/** What `onGradients` sees. */
export interface GradientsInfo {
  step: number;
  accumulated: ReadonlyMap<string, tf.Tensor>;
  methodInput: ReadonlyMap<string, tf.Tensor>;
  masked: ReadonlyMap<string, tf.Tensor>;
  /** The method's mask M per parameter (1 = kept), where it masks (`MaskedUpdate.masks`). */
  masks?: ReadonlyMap<string, tf.Tensor>;
}

/** Non-serialisable hooks of a run. */
export interface TrainHooks {
  /** Training batches, one per micro-batch: a function, an iterator or an iterable (required). */
  nextBatch: BatchSource;
  /** Batches for strategies that look at data before training (ChildTuning-D). Default: drawn from `nextBatch`. */
  initBatches?: readonly HostBatch[];
  /** Called every `evalEvery` updates and at the end. */
  evaluate?: () => Promise<Record<string, number>> | Record<string, number>;
  onUpdate?: (info: UpdateRecord) => void | Promise<void>;
  onEval?: (info: EvalRecord) => void | Promise<void>;
  onEnd?: (result: TrainResult) => void | Promise<void>;
  /**
   * Sees each update's gradients before the optimizer step (used by `gmt-lab train
   * --dump-first-update`): `accumulated` is Γ, `methodInput` is what the method masks (Γ, or Γ
   * clipped when `clipOrder` is `before-mask`), `masked` is what the optimizer receives. The
   * tensors are the trainer's and are freed after the hook returns: copy what you keep.
   */
  onGradients?: (info: GradientsInfo) => void | Promise<void>;
  /** Cooperative cancellation, checked between updates; the partial result has `stoppedEarly: true`. */
  signal?: AbortSignal;
  /**
   * With `ema` > 0: sees the moving average of the weights by parameter name once training ends
   * (not after a cancelled run). The tensors are the trainer's and are freed after it returns.
   */
  onAveraged?: (weights: ReadonlyMap<string, tf.Tensor>) => void | Promise<void>;
}

export type TrainOptions = Partial<TrainConfig> & TrainHooks;

/** Defaults of every serialisable option. */
export const TRAIN_DEFAULTS: TrainConfig = {
  strategy: 'sft',
  steps: 100,
  accum: 4,
  lr: 1e-3,
  warmup: 0,
  minLrRatio: 0.1,
  weightDecay: 0.01,
  weightDecayOn: 'all',
  betas: [0.9, 0.999],
  eps: 1e-8,
  clipNorm: null,
  clipOrder: 'before-mask',
  evalEvery: 0,
  seed: 0,
  recordKeptByTensor: true,
  ema: 0,
};

const HOOK_KEYS: readonly (keyof TrainHooks)[] = ['nextBatch', 'initBatches', 'evaluate', 'onUpdate', 'onEval', 'onEnd', 'onGradients', 'signal', 'onAveraged'];

function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(`train: ${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

function isStrategyInstance(s: unknown): s is TuningStrategy {
  return typeof s === 'object' && s !== null && typeof (s as TuningStrategy).transform === 'function';
}

/** Validates options once, at the edge. Returns the resolved config and the hooks. */
export function resolveTrainOptions(options: TrainOptions): { config: TrainConfig; hooks: TrainHooks } {
  if (options === null || typeof options !== 'object') throw new ConfigError('train: expected an options object');
  const plain: Record<string, unknown> = {};
  const hooks: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if ((HOOK_KEYS as readonly string[]).includes(k)) hooks[k] = v;
    else plain[k] = v;
  }
  let config: TrainConfig;
  try {
    config = resolveConfig(TRAIN_DEFAULTS, plain as Partial<TrainConfig>, 'train options');
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${e.message.replace(/\)$/, '')}, ${HOOK_KEYS.join(', ')})`);
    throw e;
  }
  checkSchedule({ lr: config.lr, warmup: config.warmup, steps: config.steps, minLrRatio: config.minLrRatio });
  checkNumber('accum', config.accum, { min: 1, integer: true });
  checkNumber('weightDecay', config.weightDecay, { min: 0 });
  oneOf('weightDecayOn', config.weightDecayOn, ['all', 'matrices'] as const);
  if (!Array.isArray(config.betas) || config.betas.length !== 2) {
    throw new ConfigError(`train: betas must be [beta1, beta2], got ${JSON.stringify(config.betas)}`);
  }
  checkNumber('betas[0]', config.betas[0], { min: 0, max: 1, maxExclusive: true });
  checkNumber('betas[1]', config.betas[1], { min: 0, max: 1, maxExclusive: true });
  checkNumber('eps', config.eps, { min: 0, minExclusive: true });
  if (config.clipNorm !== null) checkNumber('clipNorm', config.clipNorm, { min: 0, minExclusive: true });
  oneOf('clipOrder', config.clipOrder, ['before-mask', 'after-mask'] as const);
  checkNumber('evalEvery', config.evalEvery, { min: 0, integer: true });
  checkNumber('ema', config.ema, { min: 0, max: 1, maxExclusive: true });
  checkNumber('seed', config.seed, { integer: true });
  if (typeof config.recordKeptByTensor !== 'boolean') throw new ConfigError('train: recordKeptByTensor must be true or false');
  const s = config.strategy;
  if (typeof s !== 'string' && !isStrategyInstance(s) && (typeof s !== 'object' || s === null || typeof s.name !== 'string')) {
    throw new ConfigError(`train: strategy must be a method name, { name, options } or a strategy instance, got ${JSON.stringify(s)}`);
  }
  const source = hooks.nextBatch;
  if (source === undefined) throw new ConfigError('train: nextBatch (the training batch source) is required');
  if (typeof source !== 'function' && !(typeof source === 'object' && source !== null && (Symbol.iterator in source || 'next' in source))) {
    throw new ConfigError('train: nextBatch must be a function, an iterator or an iterable of HostBatch');
  }
  for (const k of ['evaluate', 'onUpdate', 'onEval', 'onEnd', 'onAveraged'] as const) {
    if (hooks[k] !== undefined && typeof hooks[k] !== 'function') throw new ConfigError(`train: ${k} must be a function`);
  }
  return { config, hooks: hooks as unknown as TrainHooks };
}

function batchReader(source: BatchSource): () => HostBatch {
  if (typeof source === 'function') return source as () => HostBatch;
  const it: Iterator<HostBatch> =
    Symbol.iterator in (source as object) ? (source as Iterable<HostBatch>)[Symbol.iterator]() : (source as Iterator<HostBatch>);
  return () => {
    const r = it.next();
    if (r.done) throw new Error('train: the batch source ran out of batches');
    return r.value;
  };
}

function checkBatch(b: HostBatch): void {
  const n = b.batchSize * b.seqLen;
  if (!(b.inputs?.length === n && b.targets?.length === n && b.weights?.length === n)) {
    throw new Error(`train: malformed batch (batchSize ${b.batchSize} × seqLen ${b.seqLen} = ${n}, ` +
      `inputs ${b.inputs?.length}, targets ${b.targets?.length}, weights ${b.weights?.length})`);
  }
}

/** HostBatch → TensorBatch (the caller disposes). */
export function toTensorBatch(b: HostBatch): TensorBatch {
  checkBatch(b);
  const shape: [number, number] = [b.batchSize, b.seqLen];
  return {
    inputs: tf.tensor2d(b.inputs, shape, 'int32'),
    targets: tf.tensor2d(b.targets, shape, 'int32'),
    weights: tf.tensor2d(b.weights, shape, 'float32'),
  };
}

function disposeBatch(b: TensorBatch): void {
  b.inputs.dispose();
  b.targets.dispose();
  b.weights.dispose();
}

/** Disposes every distinct tensor in the given maps, once. */
function disposeDistinct(...maps: (ReadonlyMap<string, tf.Tensor> | undefined)[]): void {
  const seen = new Set<tf.Tensor>();
  for (const m of maps) if (m) for (const t of m.values()) seen.add(t);
  for (const t of seen) if (!t.isDisposed) t.dispose();
}


/** ‖g‖₂ over all tensors. On wasm one kernel pass per tensor, summed in double precision. */
function globalNorm(grads: ReadonlyMap<string, tf.Tensor>): tf.Scalar {
  const wk = fusedKernels();
  if (wk && [...grads.values()].every((g) => g.dtype === 'float32')) {
    let sum = 0;
    for (const g of grads.values()) sum += wk.kernels.sum_squares(wk.backend.getMemoryOffset(g.dataId), g.size);
    return tf.scalar(Math.sqrt(sum));
  }
  return tf.tidy(() => tf.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g))))) as tf.Scalar);
}

/** g · min(1, clipNorm / ‖g‖) for every tensor, without a readback. New tensors. */
function clipByGlobalNorm(grads: ReadonlyMap<string, tf.Tensor>, clipNorm: number, norm?: tf.Scalar): Map<string, tf.Tensor> {
  const scale = tf.tidy(() => {
    const n = norm ?? globalNorm(grads);
    return tf.minimum(tf.scalar(1), tf.div(tf.scalar(clipNorm), tf.add(n, 1e-6)));
  });
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) out.set(name, tf.mul(g, scale));
  scale.dispose();
  return out;
}

const now = (): number => performance.now();
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A training run that advances one optimizer update at a time. `train` drives it in a loop;
 * the benchmark interleaves several of them (one per method) on the same model so that their
 * update times are compared under the same machine load.
 *
 * Per update: N × `tf.variableGrads(() => model.loss(batch))`, summed and divided by N into Γ;
 * optional global-norm clip (`clipOrder`); `strategy.transform(Γ, t)`; AdamW with the
 * scheduled lr (and the strategy's update masks); then one readback of loss, ‖Γ‖ and mask
 * statistics. Strategies created here from a name are disposed by `dispose()`; an instance
 * passed in stays the caller's.
 */
export class Trainer {
  readonly config: TrainConfig;
  readonly history: UpdateRecord[] = [];
  readonly evals: EvalRecord[] = [];
  private readonly hooks: TrainHooks;
  private readonly model: TrainableModel;
  private readonly strategy: TuningStrategy;
  private readonly strategySpec: StrategySpec;
  private readonly ownsStrategy: boolean;
  private readonly optimizer: AdamW;
  private readonly next: () => HostBatch;
  private readonly variables: tf.Variable[];
  private readonly nameOfVariable: Map<string, string>;
  private readonly schedule: LrSchedule;
  private previousMasks: Map<string, tf.Tensor> | undefined;
  /** θ̄ by parameter name, with `ema` > 0 (buffers of their own, updated in place by the kernels). */
  private readonly average?: Map<string, tf.Tensor>;
  private evalMs = 0;
  private initMs = 0;
  private peakTensorBytes = 0;
  private readonly t0 = now();
  private disposed = false;

  private constructor(model: TrainableModel, options: TrainOptions) {
    const { config, hooks } = resolveTrainOptions(options);
    const params = model.params;
    if (!params || params.length === 0) throw new ConfigError('train: the model has no trainable parameters');
    this.config = config;
    this.hooks = hooks;
    this.model = model;
    this.variables = params.map((p) => p.variable);
    this.nameOfVariable = new Map(params.map((p) => [p.variable.name, p.name]));
    this.next = batchReader(hooks.nextBatch);
    this.schedule = { lr: config.lr, warmup: config.warmup, steps: config.steps, minLrRatio: config.minLrRatio };
    const spec = config.strategy;
    this.ownsStrategy = !isStrategyInstance(spec);
    this.strategy = isStrategyInstance(spec) ? spec : typeof spec === 'string' ? getStrategy(spec) : getStrategy(spec.name, spec.options);
    this.strategySpec = { name: this.strategy.name, options: JSON.parse(JSON.stringify(this.strategy.options)) };
    this.optimizer = new AdamW(
      params,
      { beta1: config.betas[0], beta2: config.betas[1], eps: config.eps, weightDecay: config.weightDecay },
      config.weightDecayOn === 'matrices' ? decayMatrices : decayAll,
    );
    if (config.ema > 0) this.average = new Map(params.map((p) => [p.name, tf.keep(tf.mul(p.variable, 1))]));
  }

  /** The moving average of the weights so far (with `ema` > 0), by parameter name. */
  averagedWeights(): ReadonlyMap<string, tf.Tensor> | undefined {
    return this.average;
  }

  /**
   * θ̄ ← d·θ̄ + (1 − d)·θ for every parameter: one `scale_add` kernel pass in place where the fused
   * kernels run (the buffers are the trainer's own), tfjs ops elsewhere; the same bits either way
   * (a product and a sum rounded separately).
   */
  private updateAverage(): void {
    if (!this.average) return;
    const d = this.config.ema;
    const wk = fusedKernels();
    for (const p of this.model.params) {
      const a = this.average.get(p.name)!;
      if (wk && a.dtype === 'float32') {
        wk.kernels.scale_add(wk.backend.getMemoryOffset(a.dataId), Math.fround(d), wk.backend.getMemoryOffset(p.variable.dataId), Math.fround(1 - d), a.size);
        continue;
      }
      const next = tf.tidy(() => tf.add(tf.mul(a, d), tf.mul(p.variable, 1 - d)));
      a.dispose();
      this.average.set(p.name, tf.keep(next));
    }
  }

  /** Validates the options, builds the strategy and optimizer, and runs the strategy's `init`. */
  static async create(model: TrainableModel, options: TrainOptions): Promise<Trainer> {
    const trainer = new Trainer(model, options);
    try {
      await trainer.initStrategy();
    } catch (e) {
      trainer.dispose();
      throw e;
    }
    return trainer;
  }

  /** Updates applied so far. */
  get updates(): number {
    return this.history.length;
  }

  /** ∇θ L on one batch keyed by parameter name, plus the loss. */
  private gradients(batch: HostBatch): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } {
    const direct = this.model.lossAndGradients?.(batch);
    if (direct) return direct;
    const tb = toTensorBatch(batch);
    try {
      const { value, grads } = tf.variableGrads(() => this.model.loss(tb), this.variables);
      const byName = new Map<string, tf.Tensor>();
      for (const [varName, g] of Object.entries(grads)) byName.set(this.nameOfVariable.get(varName) ?? varName, g);
      return { loss: value, grads: byName };
    } finally {
      disposeBatch(tb);
    }
  }

  private async initStrategy(): Promise<void> {
    if (!this.strategy.init) return;
    const ti = now();
    const ctx: StrategyInitContext = {
      params: this.model.params,
      seed: this.config.seed,
      steps: this.config.steps,
      needsMasks: this.hooks.onGradients !== undefined,
      computeGradients: (batch) => {
        const { loss, grads } = this.gradients(batch);
        loss.dispose();
        return grads;
      },
      initBatches: (maxBatches) => {
        if (this.hooks.initBatches) return this.hooks.initBatches.slice(0, maxBatches);
        return Array.from({ length: maxBatches }, () => this.next());
      },
    };
    await this.strategy.init(ctx);
    this.initMs = now() - ti;
  }

  /** Runs the `evaluate` hook (if any), records it and calls `onEval`. */
  async evaluate(): Promise<EvalRecord | undefined> {
    if (!this.hooks.evaluate) return undefined;
    const te = now();
    const metrics = await this.hooks.evaluate();
    const record: EvalRecord = { step: this.history.length, metrics: { ...metrics }, ms: now() - te };
    this.evalMs += record.ms;
    this.evals.push(record);
    await this.hooks.onEval?.(record);
    return record;
  }

  /** Applies one optimizer update and returns its record (also pushed to `history`, passed to `onUpdate`). */
  async step(): Promise<UpdateRecord> {
    if (this.disposed) throw new Error('train: step() after dispose()');
    const { config, strategy, optimizer, hooks } = this;
    const t = this.history.length;
    const tu = now();
    // Γ = (1/N) Σ ∇θ L(Θ, Bₙ): sum as we go, disposing each micro-batch's gradients.
    let sum: Map<string, tf.Tensor> | undefined;
    let lossSum: tf.Tensor | undefined;
    for (let n = 0; n < config.accum; n++) {
      const batch = this.next();
      const { loss, grads } = (await this.model.lossAndGradientsAsync?.(batch)) ?? this.gradients(batch);
      if (!sum || !lossSum) {
        sum = grads;
        lossSum = loss;
        continue;
      }
      const prevLoss = lossSum;
      lossSum = tf.add(prevLoss, loss);
      prevLoss.dispose();
      loss.dispose();
      for (const [name, g] of grads) {
        const acc = sum.get(name);
        if (!acc) throw new Error(`train: micro-batch ${n} has a gradient for "${name}" that micro-batch 0 lacked`);
        sum.set(name, tf.add(acc, g));
        acc.dispose();
        g.dispose();
      }
    }
    let gamma: Map<string, tf.Tensor> = sum!;
    if (config.accum > 1) {
      gamma = new Map();
      for (const [name, s] of sum!) {
        gamma.set(name, tf.div(s, config.accum));
        s.dispose();
      }
    }
    const lossMean = tf.div(lossSum!, config.accum);
    lossSum!.dispose();
    const gradientsMs = now() - tu;
    const gradNorm = globalNorm(gamma);

    let strategyInput: Map<string, tf.Tensor> = gamma;
    if (config.clipNorm !== null && config.clipOrder === 'before-mask') {
      strategyInput = clipByGlobalNorm(gamma, config.clipNorm, gradNorm);
    }
    const ts = now();
    const update = await strategy.transform(strategyInput, t);
    const transformMs = now() - ts;
    let stepGrads = update.grads;
    if (config.clipNorm !== null && config.clipOrder === 'after-mask') {
      stepGrads = clipByGlobalNorm(update.grads, config.clipNorm);
    }
    await hooks.onGradients?.({ step: t + 1, accumulated: gamma, methodInput: strategyInput, masked: stepGrads, ...(update.masks ? { masks: update.masks } : {}) });
    const lr = learningRateAt(this.schedule, t);
    optimizer.apply(stepGrads, lr, update.updateMasks);
    this.updateAverage();
    this.peakTensorBytes = Math.max(this.peakTensorBytes, tf.memory().numBytes);

    // Loss and ‖Γ‖ come back in one small readback; mask statistics too, unless the strategy
    // already counted them (GMT does so on the host copy it selects from).
    const known = update.stats;
    const read = await maskStatistics(known ? undefined : update.masks, known ? undefined : this.previousMasks, [lossMean, gradNorm]);
    const stats = known ? { ...known, extras: read.extras } : read;
    lossMean.dispose();
    gradNorm.dispose();
    // Keep this update's masks (for the next Jaccard) unless they are also gradients we free.
    const keep = new Set<tf.Tensor>(update.masks ? update.masks.values() : []);
    const toFree = new Set<tf.Tensor>();
    for (const m of [gamma, strategyInput, update.grads, stepGrads, update.updateMasks]) {
      if (m) for (const x of m.values()) if (!keep.has(x)) toFree.add(x);
    }
    for (const x of toFree) if (!x.isDisposed) x.dispose();
    disposeDistinct(this.previousMasks);
    this.previousMasks = update.masks;

    const record: UpdateRecord = {
      step: t + 1,
      loss: stats.extras[0] as number,
      lr,
      gradNorm: stats.extras[1] as number,
      keptFraction: stats.keptFraction,
      ms: now() - tu,
      gradientsMs,
      transformMs,
    };
    if (config.recordKeptByTensor && (update.masks || update.stats)) record.keptByTensor = stats.keptByTensor;
    if (stats.jaccard !== undefined) record.maskJaccard = stats.jaccard;
    this.history.push(record);
    await hooks.onUpdate?.(record);
    return record;
  }

  /** The run's record so far (complete once the last update and evaluation are done). */
  async result(stoppedEarly = false): Promise<TrainResult> {
    const { history, evals, config } = this;
    const lastEval = evals[evals.length - 1];
    const final: Record<string, number> = {};
    const last = history[history.length - 1];
    if (last) final.trainLoss = last.loss;
    if (lastEval) Object.assign(final, lastEval.metrics);
    const ms = history.map((h) => h.ms);
    const { strategy: _omit, ...rest } = config;
    return {
      config: JSON.parse(JSON.stringify({ ...rest, strategy: this.strategySpec })),
      seed: config.seed,
      history: [...history],
      evals: [...evals],
      final,
      timings: {
        totalMs: now() - this.t0,
        msPerUpdate: ms.length ? median(ms) : 0,
        meanMsPerUpdate: ms.length ? ms.reduce((a, b) => a + b, 0) / ms.length : 0,
        transformMsPerUpdate: history.length ? median(history.map((h) => h.transformMs)) : 0,
        initMs: this.initMs,
        evalMs: this.evalMs,
      },
      weightsSha256: await weightsSha256Async(this.model.params),
      backend: tf.getBackend(),
      ...(this.model.gradientPath ? { gradientPath: this.model.gradientPath() } : {}),
      updates: history.length,
      peakTensorBytes: this.peakTensorBytes,
      stoppedEarly,
    };
  }

  /** Frees the optimizer state, the last masks and (if created here) the strategy. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    disposeDistinct(this.previousMasks);
    this.previousMasks = undefined;
    this.optimizer.dispose();
    if (this.average) for (const a of this.average.values()) a.dispose();
    if (this.ownsStrategy) this.strategy.dispose();
  }
}

/**
 * Fine-tunes `model` in place for `steps` updates and returns the run's record: evaluation every
 * `evalEvery` updates and at the end, cooperative cancellation through `signal` between updates
 * (the partial record has `stoppedEarly: true` and skips the final evaluation).
 *
 * Used by the findings notebooks, `finetune`/`pretrain` and the CLI.
 */
export async function train(model: TrainableModel, options: TrainOptions): Promise<TrainResult> {
  const trainer = await Trainer.create(model, options);
  const { config } = trainer;
  const hooks = options;
  let stoppedEarly = false;
  let result: TrainResult;
  try {
    for (let t = 0; t < config.steps; t++) {
      if (hooks.signal?.aborted) {
        stoppedEarly = true;
        break;
      }
      await trainer.step();
      if (config.evalEvery > 0 && (t + 1) % config.evalEvery === 0 && t + 1 < config.steps) await trainer.evaluate();
      // Let timers and interrupts run so that `signal` can fire between updates.
      await yieldToEventLoop();
    }
    if (!stoppedEarly) await trainer.evaluate();
    result = await trainer.result(stoppedEarly);
    const average = trainer.averagedWeights();
    if (average && !stoppedEarly) await hooks.onAveraged?.(average);
  } finally {
    trainer.dispose();
  }
  await hooks.onEnd?.(result);
  return result;
}

/**
 * Γ = (1/N) Σₙ ∇θ L(Θ, Bₙ) over the given micro-batches, and their mean loss: what one update of
 * the trainer computes before the strategy sees it (notebooks/01 shows it step by step). The
 * caller owns (and disposes) the returned tensors.
 */
export function averagedGradients(model: TrainableModel, batches: readonly HostBatch[]): { loss: number; grads: Map<string, tf.Tensor> } {
  if (batches.length === 0) throw new ConfigError('averagedGradients: at least one batch is needed');
  const variables = model.params.map((p) => p.variable);
  const nameOf = new Map(model.params.map((p) => [p.variable.name, p.name]));
  let sum: Map<string, tf.Tensor> | undefined;
  let lossSum = 0;
  for (const batch of batches) {
    let result = model.lossAndGradients?.(batch);
    if (!result) {
      const tb = toTensorBatch(batch);
      try {
        const { value, grads } = tf.variableGrads(() => model.loss(tb), variables);
        result = { loss: value, grads: new Map(Object.entries(grads).map(([v, g]) => [nameOf.get(v) ?? v, g])) };
      } finally {
        disposeBatch(tb);
      }
    }
    lossSum += result.loss.dataSync()[0] as number;
    result.loss.dispose();
    if (!sum) {
      sum = result.grads;
      continue;
    }
    for (const [name, g] of result.grads) {
      const acc = sum.get(name)!;
      sum.set(name, tf.add(acc, g));
      acc.dispose();
      g.dispose();
    }
  }
  const grads = new Map<string, tf.Tensor>();
  for (const [name, s] of sum!) {
    grads.set(name, tf.div(s, batches.length));
    s.dispose();
  }
  return { loss: lossSum / batches.length, grads };
}
