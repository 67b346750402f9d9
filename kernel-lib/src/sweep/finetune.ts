/**
 * One fine-tuning run as a pure function of its resolved config: base checkpoint → task data →
 * `train` with a tuning method → validation loss and test accuracy. The notebooks, the
 * `gmt-lab train` command and (later) sweeps all call `finetune`, so a run made anywhere is
 * the same run.
 *
 * Protocol choices follow DESIGN §6: accuracy is scored by greedy decoding on held-out test
 * problems, and validation loss (completion tokens only) is the continuous companion metric.
 */
import * as tf from '@tensorflow/tfjs';
import { CharTokenizer, TextStats, type TextStatsSummary } from '../data/tokenizer';
import { generateCodeTask, generateMathTask } from '../data/tasks';
import type { Example } from '../data/tasks';
import { loadJsonl } from '../data/jsonl';
import { BatchSampler, completionFits, encodePrompt, makeBatch, packText, sliceHostBatch } from '../data/batching';
import { arithmeticFactExamples, generateGeneralCorpus, resolveGeneralConfig } from '../data/tasks';
import type { HostBatch } from '../types';
import { evaluateTask, type ScoredTask } from '../eval/scorers';
import { generate } from '../model/generate';
import { GPT } from '../model/gpt';
import type { GPTConfig } from '../model/config';
import { hostBackendName, withGenerationModel } from '../model/host-copy';
import { CONTEXT_INITS, loadCheckpointWithContext, MAX_CONTEXT, type ContextInit } from '../model/context';
import { train, toTensorBatch, type GradientsInfo, type TrainHooks, type TrainResult } from '../train/trainer';
import { getStrategy } from '../tuning/registry';
import { checkSchedule } from '../train/schedule';
import { checkNumber, ConfigError, resolveConfig } from '../util/config';
import { Rng } from '../util/rng';
import { resolveBaseCheckpoint } from './paths';
import { PROTOCOL_CORPUS, PROTOCOL_TASK_OPTIONS } from './protocol';

/** Everything that defines a fine-tuning run. Saved verbatim beside every result. */
export interface FinetuneConfig {
  /** `math`, `code`, or a path to a JSONL file (GSM8K, Alpaca or prompt/completion lines). */
  task: string;
  /** Generator knobs for `math`/`code` (see `MathTaskConfig`, `CodeTaskConfig`); ignored for files. */
  taskOptions: Record<string, unknown>;
  /** Seed of the task data (generation or the file's validation split); fixed across methods. */
  dataSeed: number;
  /** Tuning method name from the registry (`sft`, `gmt`, `random-mask`, ...). */
  method: string;
  /** The method's options, e.g. `{ ratio: 0.3, scope: 'tensor' }` for `gmt`. */
  methodOptions: Record<string, unknown>;
  /** Base model: a preset name with a committed checkpoint (`nano`, `micro`) or a checkpoint path. */
  base: string;
  /** Optimizer updates. */
  steps: number;
  /** N: micro-batches averaged into Γ per update. */
  accum: number;
  /** Examples per micro-batch. */
  batchSize: number;
  /** Peak learning rate (AdamW). */
  lr: number;
  /** Linear warmup updates. */
  warmup: number;
  /** Cosine floor as a fraction of `lr`. */
  minLrRatio: number;
  /** AdamW decoupled weight decay. */
  weightDecay: number;
  /** Global-norm clipping of Γ before the mask; `null` = off. */
  clipNorm: number | null;
  /** Run seed: batch order and the methods' random draws. */
  seed: number;
  /** Validation loss every K updates (0 = only at the end). */
  evalEvery: number;
  /** Validation examples used for the validation loss. */
  valSize: number;
  /** Test problems scored by greedy decoding at the end (0 = no accuracy). */
  testSize: number;
  /** Also score the base model on the same test problems before training. */
  scoreBase: boolean;
  /** Longest generated completion when scoring. */
  maxNewTokens: number;
  /**
   * Row length of training and validation batches: `longest` (the batch's longest example,
   * rounded up to 8; same loss up to float rounding, ~20% cheaper on the protocol tasks) or
   * `seqLen` (always the model's context, as the README's calibration runs did).
   */
  padTo: 'longest' | 'seqLen';
  /**
   * Also measure forgetting, before and after fine-tuning: greedy accuracy on every arithmetic
   * fact the base model learnt (`factsAccuracy`) and the loss on the `general` mixture's
   * validation text (`generalValLoss`).
   */
  forgetting: boolean;
  /**
   * Every K updates (0 = off), read back which entries the method kept (see `maskTraceOf`) and
   * record the kept fraction per layer and the overlap (Jaccard) with the first update's mask and
   * with the previous sampled one. The first update's GMT mask is SIFT's fixed mask, so for GMT
   * the overlap with it says how far GMT drifts from SIFT (notebook 05).
   */
  maskTrace: number;
  /**
   * What `maskTrace` reads as kept: `mask` (default) — the method's mask M (entry = 1; every
   * entry of a tensor the method does not mask, as for SFT); `nonzero` — the entries of the
   * gradient the optimizer received that are ≠ 0. The two differ where a kept entry's gradient is
   * exactly 0 (embedding rows of tokens absent from every micro-batch): with `nonzero`, SIFT's
   * fixed mask overlaps with itself by ~0.999 and a tensor-scope GMT embedding reads ~0.67 kept
   * at k = 0.3. `nonzero` is how traces were read before this field existed.
   */
  maskTraceOf: 'mask' | 'nonzero';
  /**
   * A task file's characters without an ASCII form: `false` (default) trains on them as UNK and
   * reports them (`data.text`, one log line); `true` stops at the first with an error naming
   * the character, file, line and column (the command line's `--strict-text`).
   */
  strictText: boolean;
  /**
   * Also the mean per-token loss of the test problems' answers (`metrics.testLoss`, completion
   * tokens only, as the validation loss): a continuous companion to greedy test accuracy.
   */
  testLoss: boolean;
  /**
   * Decay of a moving average of the weights (see `TrainConfig.ema`); 0 = off. When on, every
   * metric after training (validation and test loss, test accuracy, forgetting) is of the
   * averaged weights, and the raw weights' validation loss, test accuracy and test loss are kept
   * as `rawValLoss`, `rawTestAccuracy`, `rawTestLoss`.
   */
  ema: number;
  /**
   * Context of the fine-tuned model: `null` (default) — the base checkpoint's own (128 for
   * `nano` and `micro`); a longer one extends the base's position table at load
   * (`loadCheckpointWithContext`), so that long examples (GSM8K's worked answers) fit. At most
   * 4,096; time per update grows with the rows' length.
   */
  context: number | null;
  /** With `context`: how the new position rows start, `normal` (default) or `tile` (see `ContextInit`). */
  contextInit: ContextInit;
}

/** Defaults: the calibrated protocol for `micro` on `math` (see README, calibration). */
export const FINETUNE_DEFAULTS: FinetuneConfig = {
  task: 'math',
  taskOptions: {},
  dataSeed: 0,
  method: 'sft',
  methodOptions: {},
  base: 'micro',
  steps: 250,
  accum: 4,
  batchSize: 8,
  lr: 2e-3,
  warmup: 20,
  minLrRatio: 0.1,
  weightDecay: 0.01,
  clipNorm: 1,
  seed: 0,
  evalEvery: 0,
  valSize: 200,
  testSize: 500,
  scoreBase: false,
  maxNewTokens: 64,
  padTo: 'longest',
  forgetting: false,
  maskTrace: 0,
  maskTraceOf: 'mask',
  strictText: false,
  testLoss: false,
  ema: 0,
  context: null,
  contextInit: 'normal',
};

/** The complete, JSON-serialisable record of a fine-tuning run. */
export interface FinetuneResult {
  kind: 'gmt-lab/finetune';
  config: FinetuneConfig;
  base: { path: string; sha256: string; model: GPTConfig };
  data: {
    train: number; validation: number; test: number; scored: ScoredTask | null; text?: TextStatsSummary;
    /** For a task file: examples left out because their completion is longer than the model's context. */
    tooLong?: number;
    /** For a task file: examples used whose prompt was cut from the left to fit the context. */
    promptCut?: number;
    /** With `config.context` beyond the base's: the base's context, the one trained at, and how new positions started. */
    context?: { base: number; extended: number; init: ContextInit };
  };
  train: TrainResult;
  metrics: {
    valLoss: number;
    testAccuracy?: number;
    baseTestAccuracy?: number;
    baseValLoss: number;
    /** With `testLoss`: mean completion-token loss on the test problems. */
    testLoss?: number;
    /** With `ema`: the raw (not averaged) weights' metrics. */
    rawValLoss?: number;
    rawTestAccuracy?: number;
    rawTestLoss?: number;
    /** With `forgetting`: see {@link FinetuneConfig.forgetting}. */
    factsAccuracy?: number;
    baseFactsAccuracy?: number;
    generalValLoss?: number;
    baseGeneralValLoss?: number;
  };
  /** With `maskTrace`: the sampled mask statistics. */
  maskTrace?: MaskTrace;
  /**
   * The backend that generated for scoring and the forgetting probe, where it is not the one that
   * trained: a model on webgpu is scored on a host copy of its weights (`withGenerationModel`).
   */
  scoredOn?: string;
  /** Set when the training loss became NaN or ±Inf: training stopped after that update. */
  diverged?: { step: number; lastFiniteLoss: number | null };
  /** A few scored test problems, to look at what the model writes. */
  samples: { prompt: string; generated: string; correct: boolean }[];
}

/** Validates a partial config against the defaults; unknown keys and bad values throw. */
export function resolveFinetuneConfig(overrides?: Partial<FinetuneConfig>): FinetuneConfig {
  const c = resolveConfig(FINETUNE_DEFAULTS, overrides, 'finetune config');
  if (typeof c.task !== 'string' || !(c.task === 'math' || c.task === 'code' || /\.jsonl?$/i.test(c.task))) {
    throw new ConfigError(`finetune config task must be "math", "code" or a path to a .jsonl file, got ${JSON.stringify(c.task)}`);
  }
  for (const [k, opts] of [
    ['steps', { min: 1, integer: true }], ['accum', { min: 1, integer: true }], ['batchSize', { min: 1, integer: true }],
    ['lr', { min: 0, minExclusive: true }], ['warmup', { min: 0, integer: true }], ['minLrRatio', { min: 0, max: 1 }],
    ['weightDecay', { min: 0 }], ['seed', { integer: true }], ['dataSeed', { integer: true }], ['evalEvery', { min: 0, integer: true }],
    ['valSize', { min: 1, integer: true }], ['testSize', { min: 0, integer: true }], ['maxNewTokens', { min: 1, integer: true }],
    ['maskTrace', { min: 0, integer: true }], ['ema', { min: 0, max: 1, maxExclusive: true }],
  ] as const) {
    checkNumber(`finetune config ${k}`, c[k], opts);
  }
  checkSchedule({ lr: c.lr, warmup: c.warmup, steps: c.steps, minLrRatio: c.minLrRatio });
  if (c.clipNorm !== null) checkNumber('finetune config clipNorm', c.clipNorm, { min: 0, minExclusive: true });
  if (c.padTo !== 'longest' && c.padTo !== 'seqLen') throw new ConfigError(`finetune config padTo must be "longest" or "seqLen", got ${JSON.stringify(c.padTo)}`);
  if (typeof c.forgetting !== 'boolean') throw new ConfigError(`finetune config forgetting must be true or false, got ${JSON.stringify(c.forgetting)}`);
  if (typeof c.strictText !== 'boolean') throw new ConfigError(`finetune config strictText must be true or false, got ${JSON.stringify(c.strictText)}`);
  if (typeof c.testLoss !== 'boolean') throw new ConfigError(`finetune config testLoss must be true or false, got ${JSON.stringify(c.testLoss)}`);
  if (c.maskTraceOf !== 'mask' && c.maskTraceOf !== 'nonzero') throw new ConfigError(`finetune config maskTraceOf must be "mask" or "nonzero", got ${JSON.stringify(c.maskTraceOf)}`);
  if (c.context !== null) checkNumber('finetune config context', c.context, { min: 2, max: MAX_CONTEXT, integer: true });
  if (!CONTEXT_INITS.includes(c.contextInit)) throw new ConfigError(`finetune config contextInit must be one of ${CONTEXT_INITS.join(', ')}; got ${JSON.stringify(c.contextInit)}`);
  if (typeof c.scoreBase !== 'boolean') throw new ConfigError(`finetune config scoreBase must be true or false, got ${JSON.stringify(c.scoreBase)}`);
  // Build (and drop) the strategy once so a bad method or option fails before any data or model work.
  getStrategy(c.method, c.methodOptions).dispose();
  return { ...c, taskOptions: { ...c.taskOptions }, methodOptions: { ...c.methodOptions } };
}

/** Sampled statistics of the entries a method let through (see {@link FinetuneConfig.maskTrace}). */
export interface MaskTrace {
  step: number[];
  /** Kept fraction over all entries. */
  keptFraction: number[];
  /** Jaccard of this update's kept set with the first update's, and with the previous sample's. */
  jaccardToFirst: number[];
  jaccardToPrevious: (number | null)[];
  /** Kept fraction per layer group (`embed`, `block.<i>`, `head`). */
  keptByLayer: Record<string, number[]>;
}

/** Records a {@link MaskTrace} from the trainer's `onGradients` hook. */
class MaskTracer {
  readonly trace: MaskTrace = { step: [], keptFraction: [], jaccardToFirst: [], jaccardToPrevious: [], keptByLayer: {} };
  private first?: Uint8Array;
  private previous?: Uint8Array;

  constructor(
    private readonly every: number,
    private readonly of: FinetuneConfig['maskTraceOf'],
    private readonly steps: number,
    private readonly groups: ReadonlyMap<string, string>,
  ) {}

  async observe(step: number, info: Pick<GradientsInfo, 'masked' | 'masks'>): Promise<void> {
    if (!(step === 1 || step % this.every === 0 || step === this.steps)) return;
    // Per parameter, the values whose entries ≠ 0 are kept, or null: every entry is kept.
    const parts: { name: string; size: number; values: Float32Array | null }[] = [];
    for (const [name, g] of info.masked) {
      const source = this.of === 'mask' ? info.masks?.get(name) : g;
      parts.push({ name, size: g.size, values: source ? ((await source.data()) as Float32Array) : null });
    }
    const total = parts.reduce((a, p) => a + p.size, 0);
    const kept = new Uint8Array(total);
    const byLayer = new Map<string, { kept: number; n: number }>();
    let offset = 0;
    let keptCount = 0;
    for (const p of parts) {
      const group = this.groups.get(p.name) ?? p.name;
      const agg = byLayer.get(group) ?? { kept: 0, n: 0 };
      let n = 0;
      if (p.values === null) {
        kept.fill(1, offset, offset + p.size);
        n = p.size;
      } else {
        for (let i = 0; i < p.size; i++) {
          if (p.values[i] !== 0) {
            kept[offset + i] = 1;
            n += 1;
          }
        }
      }
      agg.kept += n;
      keptCount += n;
      agg.n += p.size;
      byLayer.set(group, agg);
      offset += p.size;
    }
    const jaccard = (a: Uint8Array, b: Uint8Array): number => {
      let inter = 0;
      let union = 0;
      for (let i = 0; i < a.length; i++) {
        inter += a[i]! & b[i]!;
        union += a[i]! | b[i]!;
      }
      return union === 0 ? 1 : inter / union;
    };
    this.first ??= kept;
    const t = this.trace;
    t.step.push(step);
    t.keptFraction.push(keptCount / total);
    t.jaccardToFirst.push(jaccard(kept, this.first));
    t.jaccardToPrevious.push(this.previous ? jaccard(kept, this.previous) : null);
    for (const [group, agg] of byLayer) (t.keptByLayer[group] ??= []).push(agg.kept / agg.n);
    this.previous = kept;
  }
}

/** Task data in three splits plus how its test split is scored. */
export interface TaskData {
  train: Example[];
  validation: Example[];
  test: Example[];
  scored: ScoredTask | null;
  /** For a task file: what the text policy did (see `TextStats`); its `summary` line. */
  text?: { stats: TextStatsSummary; summary: string };
  /** For a task file with `fits`: lines left out before splitting because they do not fit. */
  tooLong?: number;
}

/** Builds the data of a run: generated for `math`/`code`, or a user's JSONL split by `dataSeed`. */
export function loadTaskData(
  config: Pick<FinetuneConfig, 'task' | 'taskOptions' | 'dataSeed' | 'valSize' | 'testSize'> & { strictText?: boolean },
  /** For a task file: keep only examples for which `fits` holds (e.g. `completionFits` at the model's context), before splitting. */
  opts: { fits?: (e: Example) => boolean } = {},
): TaskData {
  if (config.task === 'math' || config.task === 'code') {
    const gen = config.task === 'math' ? generateMathTask : generateCodeTask;
    const splits = gen({
      ...PROTOCOL_TASK_OPTIONS[config.task],
      seed: config.dataSeed,
      validationSize: config.valSize,
      testSize: Math.max(config.testSize, 1),
      ...config.taskOptions,
    } as never);
    return { train: splits.train, validation: splits.validation, test: splits.test.slice(0, config.testSize), scored: config.task };
  }
  if (!/\.jsonl?$/i.test(config.task)) {
    throw new ConfigError(`task must be "math", "code" or a path to a .jsonl file, got ${JSON.stringify(config.task)}`);
  }
  const stats = new TextStats();
  const lines = loadJsonl(config.task, { tokenizer: new CharTokenizer({ unknown: config.strictText ? 'error' : 'unk' }), stats });
  const all = opts.fits ? lines.filter(opts.fits) : lines;
  if (lines.length > 0 && all.length === 0) {
    throw new ConfigError(`${config.task}: none of its ${lines.length} examples fits the model's context (each completion is too long); use a base model with a longer context, or extend this one's (context, --context N)`);
  }
  const order = new Rng(config.dataSeed).shuffle(all.map((_, i) => i));
  // Hold out 10% each for validation and test, at least one line each, so small files still report a loss.
  if (all.length < 3) throw new ConfigError(`${config.task}: ${all.length} example(s); at least 3 are needed (train, validation, test)`);
  const tenth = Math.max(1, Math.floor(all.length * 0.1));
  const nVal = Math.min(config.valSize, tenth);
  const nTest = Math.min(config.testSize, tenth);
  const pick = (from: number, to: number): Example[] => order.slice(from, to).map((i) => all[i] as Example);
  const kinds = new Set(all.map((e) => e.meta.task));
  const scored: ScoredTask | null = kinds.size === 1 && (kinds.has('math') || kinds.has('code')) ? ([...kinds][0] as ScoredTask) : null;
  return {
    validation: pick(0, nVal), test: pick(nVal, nVal + nTest), train: pick(nVal + nTest, all.length), scored,
    text: { stats: stats.toJSON(), summary: stats.summary(config.task) },
    ...(lines.length > all.length ? { tooLong: lines.length - all.length } : {}),
  };
}

/**
 * Mean completion-token loss of `model` over `examples` (in chunks; no tensors kept; asynchronous
 * reads, so it runs on every backend; on the native engine through its fused forward pass).
 */
export async function validationLoss(model: GPT, examples: readonly Example[], tokenizer: CharTokenizer, chunk = 64, padTo: 'longest' | 'seqLen' = 'seqLen'): Promise<number> {
  let weighted = 0;
  let tokens = 0;
  for (let i = 0; i < examples.length; i += chunk) {
    const host = makeBatch(examples.slice(i, i + chunk), tokenizer, { seqLen: model.config.contextLength, overflow: 'truncate-prompt', padTo });
    let n = 0;
    for (const w of host.weights) n += w;
    tokens += n;
    const native = model.lossNative(host);
    if (native !== undefined) {
      weighted += native * n;
      continue;
    }
    const batch = toTensorBatch(host);
    try {
      const loss = tf.tidy(() => model.loss(batch));
      weighted += ((await loss.data())[0] as number) * n;
      loss.dispose();
    } finally {
      tf.dispose([batch.inputs, batch.targets, batch.weights]);
    }
  }
  return tokens === 0 ? NaN : weighted / tokens;
}

/** Mean loss of `model` on packed text windows (every position a target; no tensors kept). */
export async function packedTextLoss(model: GPT, batch: HostBatch): Promise<number> {
  const native = model.lossNative(batch);
  if (native !== undefined) return native;
  const tb = toTensorBatch(batch);
  try {
    const loss = tf.tidy(() => model.loss(tb));
    const value = (await loss.data())[0] as number;
    loss.dispose();
    return value;
  } finally {
    tf.dispose([tb.inputs, tb.targets, tb.weights]);
  }
}

/**
 * The forgetting probes of {@link FinetuneConfig.forgetting}: the base models' pre-training
 * checks (`gmt-lab pretrain` evaluates the same two), so "after" can be read against "before".
 * `factsAccuracy` generates from `generator` (the model itself, or its host copy on webgpu:
 * see `withGenerationModel`); `generalValLoss` runs on `model` where it trains.
 */
export function forgettingProbe(model: GPT, tokenizer: CharTokenizer, seqLen = model.config.contextLength): { factsAccuracy: (generator: GPT) => Promise<number>; generalValLoss: () => Promise<number> } {
  const corpusConfig = resolveGeneralConfig({ seed: 0, ...PROTOCOL_CORPUS } as never);
  const corpus = generateGeneralCorpus(corpusConfig as never);
  const packed = packText(corpus.validation, tokenizer, { seqLen });
  const valBatch = sliceHostBatch(packed, 0, Math.min(packed.batchSize, 64));
  const facts = arithmeticFactExamples(corpusConfig.maxValue, corpusConfig.operations);
  return {
    factsAccuracy: async (generator) => (await evaluateTask('arith', facts, (prompts) => greedyComplete(generator, tokenizer, prompts, 4), { batchSize: 512 })).accuracy,
    generalValLoss: () => packedTextLoss(model, valBatch),
  };
}

/** Greedy completions of `prompts` (decoded, stopping at the end-of-text token). */
export function greedyComplete(model: GPT, tokenizer: CharTokenizer, prompts: readonly string[], maxNewTokens: number): string[] {
  const ids = prompts.map((p) => encodePrompt(p, tokenizer));
  const out = generate(model, ids, { maxNewTokens, temperature: 0, stopToken: tokenizer.eotId });
  return out.map((row) => tokenizer.decode(row, { stopAtEot: true }));
}

/**
 * Fine-tunes a fresh copy of the base model and scores it. The model is disposed before
 * returning unless `keepModel` is set, in which case the caller owns `model`.
 * Taught in notebooks/01 onward; the CLI's `train` command is a thin wrapper.
 */
export async function finetune(
  overrides: Partial<FinetuneConfig>,
  hooks: Omit<TrainHooks, 'nextBatch' | 'evaluate' | 'initBatches'> & { keepModel?: boolean; log?: (line: string) => void } = {},
): Promise<FinetuneResult & { model?: GPT }> {
  const config = resolveFinetuneConfig(overrides);
  const { keepModel, log, ...trainHooks } = hooks;
  const tokenizer = new CharTokenizer();
  const base = resolveBaseCheckpoint(config.base);
  const { model, baseContextLength } = loadCheckpointWithContext(base.path, { context: config.context, init: config.contextInit, seed: config.seed });
  // The moving average of the weights, with `ema` (built from the trainer's when training ends).
  let averaged: GPT | undefined;
  try {
    if (model.config.vocabSize !== tokenizer.vocabSize) {
      throw new ConfigError(`${base.path}: vocabulary of ${model.config.vocabSize} ids, but the tokenizer has ${tokenizer.vocabSize}`);
    }
    const seqLen = model.config.contextLength;
    const data = loadTaskData(config, { fits: (e) => completionFits(e, tokenizer, seqLen) });
    if (data.train.length === 0) throw new ConfigError(`task ${config.task}: no training examples`);
    if (data.text) log?.(data.text.summary);
    const tooLong = data.tooLong;
    if (tooLong) {
      log?.(`${config.task}: ${tooLong.toLocaleString('en-US')} example${tooLong === 1 ? ' has a completion' : 's have completions'} longer than the model's context (${seqLen} positions), left out`);
    }
    // Examples used whose prompt is cut from the left to fit (`overflow: 'truncate-prompt'`).
    const all = [...data.train, ...data.validation, ...data.test];
    const promptCut = data.text ? all.filter((e) => tokenizer.encode(e.prompt).length + tokenizer.encode(e.completion).length + 1 > seqLen).length : 0;
    if (data.text) {
      const total = all.length + (tooLong ?? 0);
      const fmt = (n: number): string => n.toLocaleString('en-US');
      log?.(
        `${config.task}: ${fmt(all.length)} of ${fmt(total)} examples used (${(Math.floor((1000 * all.length) / total) / 10).toFixed(1)}%) at context ${seqLen}` +
          `${seqLen > baseContextLength ? ` (the base's ${baseContextLength}, extended: ${config.contextInit})` : ''}` +
          `${tooLong ? `; ${fmt(tooLong)} left out` : ''}${promptCut ? `; ${fmt(promptCut)} with the start of the prompt cut to fit` : ''}`,
      );
    }
    const scorable = data.scored !== null && data.test.length > 0;
    const score = async (generator: GPT): Promise<{ accuracy: number; samples: FinetuneResult['samples'] } | undefined> => {
      if (!scorable) return undefined;
      const report = await evaluateTask(data.scored!, data.test, (prompts) => greedyComplete(generator, tokenizer, prompts, config.maxNewTokens), { batchSize: 250 });
      return { accuracy: report.accuracy, samples: report.perExample.slice(0, 5).map((p) => ({ prompt: p.prompt, generated: p.generated, correct: p.correct })) };
    };
    // Forgetting is measured where the base model was trained: windows of its own context.
    const probe = config.forgetting ? forgettingProbe(model, tokenizer, baseContextLength) : undefined;
    // Everything one phase generates (test scoring, the facts probe) shares one generation model,
    // so a webgpu run copies its weights to the host at most once before and once after training.
    const generationPhase = async (withScore: boolean, target: GPT = model, targetProbe = probe): Promise<{ scored?: Awaited<ReturnType<typeof score>>; forgetting?: { factsAccuracy: number; generalValLoss: number } }> => {
      if (!(withScore && scorable) && !targetProbe) return {};
      const generated = await withGenerationModel(target, async (m) => ({
        scored: withScore ? await score(m) : undefined,
        factsAccuracy: targetProbe ? await targetProbe.factsAccuracy(m) : undefined,
      }));
      return {
        scored: generated.scored,
        forgetting: targetProbe ? { factsAccuracy: generated.factsAccuracy!, generalValLoss: await targetProbe.generalValLoss() } : undefined,
      };
    };

    // 64 rows of the base contexts (128) per chunk; as many tokens per chunk at a longer context.
    const valChunk = Math.max(1, Math.floor((64 * 128) / Math.max(128, seqLen)));
    const valLoss = (target: GPT = model): Promise<number> => validationLoss(target, data.validation, tokenizer, valChunk, config.padTo);
    const baseValLoss = await valLoss();
    const before = await generationPhase(config.scoreBase);
    const baseForgetting = before.forgetting;
    let baseTestAccuracy: number | undefined;
    if (config.scoreBase) {
      baseTestAccuracy = before.scored?.accuracy;
      log?.(`base model: test accuracy ${baseTestAccuracy}`);
    }
    const sampler = new BatchSampler(data.train, { batchSize: config.batchSize, seed: config.seed });
    // A NaN or infinite loss stops the run after that update (status `diverged` in a sweep).
    let diverged: FinetuneResult['diverged'];
    let lastFiniteLoss: number | null = null;
    const stop = new AbortController();
    const outer = trainHooks.signal;
    const onOuterAbort = (): void => stop.abort();
    outer?.addEventListener('abort', onOuterAbort);
    if (outer?.aborted) stop.abort();
    const tracer = config.maskTrace > 0 ? new MaskTracer(config.maskTrace, config.maskTraceOf, config.steps, new Map(model.params.map((p) => [p.name, p.group]))) : undefined;
    const result = await train(model, {
      ...trainHooks,
      signal: stop.signal,
      onGradients: tracer || trainHooks.onGradients ? async (info) => {
        await tracer?.observe(info.step, info);
        await trainHooks.onGradients?.(info);
      } : undefined,
      onUpdate: async (u) => {
        if (Number.isFinite(u.loss)) lastFiniteLoss = u.loss;
        else if (!diverged) {
          diverged = { step: u.step, lastFiniteLoss };
          stop.abort();
        }
        await trainHooks.onUpdate?.(u);
      },
      strategy: { name: config.method, options: config.methodOptions },
      steps: config.steps,
      accum: config.accum,
      lr: config.lr,
      warmup: config.warmup,
      minLrRatio: config.minLrRatio,
      weightDecay: config.weightDecay,
      clipNorm: config.clipNorm,
      seed: config.seed,
      evalEvery: config.evalEvery,
      nextBatch: () => makeBatch(sampler.next(), tokenizer, { seqLen, overflow: 'truncate-prompt', padTo: config.padTo }),
      evaluate: async () => ({ valLoss: await valLoss() }),
      ema: config.ema,
      onAveraged: (w) => {
        averaged = new GPT(model.config, { workers: model.workers + 1, split: model.split }, Object.fromEntries(w));
      },
    });
    outer?.removeEventListener('abort', onOuterAbort);
    // With `ema`, the averaged weights are what is evaluated; the raw weights' figures are kept beside.
    const evaluated = averaged ?? model;
    const evaluatedProbe = averaged && config.forgetting ? forgettingProbe(averaged, tokenizer, baseContextLength) : probe;
    const after = result.stoppedEarly ? {} : await generationPhase(true, evaluated, evaluatedProbe);
    const rawScored = averaged ? (await generationPhase(true, model, undefined)).scored : undefined;
    const testLoss = async (target: GPT): Promise<number | undefined> =>
      config.testLoss && !result.stoppedEarly && data.test.length > 0 ? validationLoss(target, data.test, tokenizer, valChunk, config.padTo) : undefined;
    const finalTestLoss = await testLoss(evaluated);
    const rawTestLoss = averaged ? await testLoss(model) : undefined;
    const rawValLoss = result.final.valLoss ?? (diverged ? NaN : await valLoss());
    const scoredRun = after.scored;
    const afterForgetting = after.forgetting;
    const generated = scoredRun || afterForgetting || baseForgetting || baseTestAccuracy !== undefined;
    const scoredOn = generated && tf.getBackend() === 'webgpu' ? hostBackendName() : undefined;
    const out: FinetuneResult & { model?: GPT } = {
      kind: 'gmt-lab/finetune',
      config,
      base: { path: base.path, sha256: base.sha256, model: model.config },
      data: {
        train: data.train.length, validation: data.validation.length, test: data.test.length, scored: data.scored,
        ...(data.text ? { text: data.text.stats } : {}), ...(tooLong ? { tooLong } : {}), ...(promptCut ? { promptCut } : {}),
        ...(seqLen > baseContextLength ? { context: { base: baseContextLength, extended: seqLen, init: config.contextInit } } : {}),
      },
      train: result,
      metrics: {
        valLoss: averaged ? await valLoss(averaged) : rawValLoss,
        baseValLoss,
        ...(scoredRun ? { testAccuracy: scoredRun.accuracy } : {}),
        ...(finalTestLoss !== undefined ? { testLoss: finalTestLoss } : {}),
        ...(averaged ? { rawValLoss } : {}),
        ...(rawScored ? { rawTestAccuracy: rawScored.accuracy } : {}),
        ...(rawTestLoss !== undefined ? { rawTestLoss } : {}),
        ...(baseTestAccuracy !== undefined ? { baseTestAccuracy } : {}),
        ...(afterForgetting ? afterForgetting : {}),
        ...(baseForgetting ? { baseFactsAccuracy: baseForgetting.factsAccuracy, baseGeneralValLoss: baseForgetting.generalValLoss } : {}),
      },
      samples: scoredRun?.samples ?? [],
      ...(diverged ? { diverged } : {}),
      ...(tracer ? { maskTrace: tracer.trace } : {}),
      ...(scoredOn ? { scoredOn } : {}),
    };
    averaged?.dispose();
    if (keepModel) out.model = model;
    else model.dispose();
    return out;
  } catch (e) {
    averaged?.dispose();
    model.dispose();
    throw e;
  }
}
