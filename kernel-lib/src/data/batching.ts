/**
 * From examples and text to `HostBatch`es (row-major [batchSize, seqLen] arrays).
 *
 * Fine-tuning rows (`makeBatch`): the token sequence of an example is
 *
 *     EOT  prompt…  completion…  EOT
 *
 * (the leading EOT marks the start of a text, as between packed pre-training documents; a
 * model generates from `encodePrompt(prompt)` = EOT + prompt). Inputs are the sequence
 * without its last token, targets the sequence without its first token; `weights` is 1 where
 * the target is a completion token or the final EOT, 0 on prompt targets and padding (the
 * SFT loss of the paper, §3). Rows are right-padded with PAD.
 *
 * Overlong examples (prompt + completion + 1 > seqLen): `overflow: 'error'` (default) throws
 * naming the example; `overflow: 'truncate-prompt'` drops prompt characters from the left
 * (keeping the leading EOT), and still throws when the completion alone does not fit.
 *
 * Pre-training rows (`packText`, `PackedTextSampler`): documents are joined as
 * `EOT doc EOT doc …` and cut into windows of seqLen + 1 tokens, so every position is a
 * target with weight 1; only the padding of the final window has weight 0.
 */
import type { HostBatch } from '../types';
import { ConfigError, checkNumber, resolveConfig } from '../util/config';
import { Rng, deriveSeed } from '../util/rng';
import type { CharTokenizer } from './tokenizer';
import type { Example } from './tasks/common';

/** Options of `makeBatch`. */
export interface MakeBatchOptions {
  /** Positions per row (the model's context length). */
  seqLen: number;
  /** What to do when an example does not fit: see the file header. */
  overflow: 'error' | 'truncate-prompt';
  /**
   * `seqLen` (default): every row has `seqLen` positions. `longest`: rows are as long as the
   * batch's longest example, rounded up to a multiple of 8 and at most `seqLen`. Padding has
   * weight 0 and attention is causal, so the loss and gradients are the same up to float
   * rounding; a short batch just costs less.
   */
  padTo: 'seqLen' | 'longest';
}

/** The ids a model generates from: EOT + prompt. */
export function encodePrompt(prompt: string, tokenizer: CharTokenizer): number[] {
  return [tokenizer.eotId, ...tokenizer.encode(prompt, { source: 'prompt' })];
}

/**
 * True when an example can be trained on at `seqLen`: its completion, the start token and the
 * end token fit in a row (a long prompt is then cut from the left with `overflow: 'truncate-prompt'`).
 */
export function completionFits(example: Example, tokenizer: CharTokenizer, seqLen: number): boolean {
  return tokenizer.encode(example.completion).length + 2 <= seqLen + 1;
}

/** Token ids and loss weights of one example before padding (length = seqLen or less + 1). */
export function encodeExample(
  example: Example,
  tokenizer: CharTokenizer,
  options: MakeBatchOptions,
  where = 'example',
): { ids: number[]; promptLength: number } {
  let prompt = tokenizer.encode(example.prompt, { source: `${where} prompt (${example.meta.source})` });
  const completion = tokenizer.encode(example.completion, { source: `${where} completion (${example.meta.source})` });
  // ids = [EOT, ...prompt, ...completion, EOT]; a row holds seqLen + 1 of them.
  const room = options.seqLen + 1 - 2 - completion.length;
  if (prompt.length > room) {
    const need = prompt.length + completion.length + 1;
    if (options.overflow === 'error' || room < 0) {
      throw new ConfigError(
        `${where} (${example.meta.source}) needs ${need} positions (prompt ${prompt.length} + completion ${completion.length} + end token) ` +
          `but seqLen is ${options.seqLen}` +
          (room < 0 ? ': the completion alone does not fit' : "; raise seqLen, shorten the data, or use overflow: 'truncate-prompt'"),
      );
    }
    prompt = prompt.slice(prompt.length - room);
  }
  return { ids: [tokenizer.eotId, ...prompt, ...completion, tokenizer.eotId], promptLength: prompt.length };
}

/** Builds one fine-tuning batch (see the file header for layout and weights). */
export function makeBatch(examples: readonly Example[], tokenizer: CharTokenizer, options: Partial<MakeBatchOptions> & { seqLen: number }): HostBatch {
  const opts = resolveConfig({ seqLen: 0, overflow: 'error', padTo: 'seqLen' } as MakeBatchOptions, options, 'makeBatch options');
  checkNumber('makeBatch options.seqLen', opts.seqLen, { min: 2, integer: true });
  if (opts.overflow !== 'error' && opts.overflow !== 'truncate-prompt') {
    throw new ConfigError(`makeBatch options.overflow must be 'error' or 'truncate-prompt', got ${JSON.stringify(opts.overflow)}`);
  }
  if (opts.padTo !== 'seqLen' && opts.padTo !== 'longest') {
    throw new ConfigError(`makeBatch options.padTo must be 'seqLen' or 'longest', got ${JSON.stringify(opts.padTo)}`);
  }
  if (examples.length === 0) throw new ConfigError('makeBatch: no examples');
  const encoded = examples.map((ex, row) => encodeExample(ex, tokenizer, opts, `example ${row}`));
  const longest = Math.max(...encoded.map((e) => e.ids.length - 1));
  const seqLen = opts.padTo === 'longest' ? Math.min(opts.seqLen, Math.max(8, Math.ceil(longest / 8) * 8)) : opts.seqLen;
  const n = examples.length;
  const inputs = new Int32Array(n * seqLen).fill(tokenizer.padId);
  const targets = new Int32Array(n * seqLen).fill(tokenizer.padId);
  const weights = new Float32Array(n * seqLen);
  encoded.forEach(({ ids, promptLength }, row) => {
    const base = row * seqLen;
    for (let t = 0; t + 1 < ids.length; t++) {
      inputs[base + t] = ids[t] as number;
      targets[base + t] = ids[t + 1] as number;
      // Target ids[t+1] is a prompt token while t+1 <= promptLength (ids[0] is the start EOT).
      weights[base + t] = t + 1 > promptLength ? 1 : 0;
    }
  });
  return { batchSize: n, seqLen, inputs, targets, weights };
}

/** Options of `BatchSampler`. */
export interface BatchSamplerOptions {
  batchSize: number;
  /** Seeds the per-epoch shuffles: epoch e uses `deriveSeed(seed, 'epoch:e')`. */
  seed: number;
  /** Shuffle each epoch (true) or keep dataset order (false). */
  shuffle: boolean;
  /** Resume position: number of examples already drawn (from `position`). */
  start: number;
}

/**
 * Endless, seeded stream of example batches over a dataset. Epoch e is a permutation of the
 * dataset drawn from `deriveSeed(seed, 'epoch:e')`; batches run across epoch boundaries, so
 * every batch is full and every example appears once per epoch. The stream is a pure function
 * of (dataset, seed, position): save `position` to resume exactly.
 */
export class BatchSampler<E = Example> {
  private readonly opts: BatchSamplerOptions;
  private order: number[] = [];
  private orderEpoch = -1;
  private drawn: number;

  constructor(
    private readonly dataset: readonly E[],
    options: Partial<BatchSamplerOptions> & { batchSize: number },
  ) {
    this.opts = resolveConfig<BatchSamplerOptions>({ batchSize: 1, seed: 0, shuffle: true, start: 0 }, options, 'BatchSampler options');
    checkNumber('BatchSampler options.batchSize', this.opts.batchSize, { min: 1, integer: true });
    checkNumber('BatchSampler options.seed', this.opts.seed, { integer: true });
    checkNumber('BatchSampler options.start', this.opts.start, { min: 0, integer: true });
    if (dataset.length === 0) throw new ConfigError('BatchSampler: the dataset is empty');
    this.drawn = this.opts.start;
  }

  /** Examples drawn so far (pass as `start` to resume). */
  get position(): number {
    return this.drawn;
  }

  /** The epoch the next example comes from (0-based). */
  get epoch(): number {
    return Math.floor(this.drawn / this.dataset.length);
  }

  /** The next `batchSize` examples. */
  next(): E[] {
    const out: E[] = [];
    for (let i = 0; i < this.opts.batchSize; i++) {
      const epoch = Math.floor(this.drawn / this.dataset.length);
      if (epoch !== this.orderEpoch) {
        this.order = Array.from({ length: this.dataset.length }, (_, j) => j);
        if (this.opts.shuffle) new Rng(deriveSeed(this.opts.seed, `epoch:${epoch}`)).shuffle(this.order);
        this.orderEpoch = epoch;
      }
      out.push(this.dataset[this.order[this.drawn % this.dataset.length] as number] as E);
      this.drawn++;
    }
    return out;
  }

  /** Iterates `count` batches. */
  *batches(count: number): Generator<E[]> {
    for (let i = 0; i < count; i++) yield this.next();
  }
}

/** Options of `packText`. */
export interface PackTextOptions {
  seqLen: number;
}

/** Texts of documents: strings, or examples whose prompt + completion is the text. */
export type PackableText = string | Example;

function docText(d: PackableText): string {
  return typeof d === 'string' ? d : d.prompt + d.completion;
}

function packIds(docs: readonly PackableText[], tokenizer: CharTokenizer): number[] {
  const ids: number[] = [];
  docs.forEach((d, i) => {
    ids.push(tokenizer.eotId);
    for (const id of tokenizer.encode(docText(d), { source: `document ${i}` })) ids.push(id);
  });
  ids.push(tokenizer.eotId);
  return ids;
}

function windowsToBatch(ids: readonly number[], seqLen: number, padId: number): HostBatch {
  // Consecutive windows share one token: window w covers ids[w*seqLen … w*seqLen + seqLen].
  const rows = Math.max(1, Math.ceil((ids.length - 1) / seqLen));
  const inputs = new Int32Array(rows * seqLen).fill(padId);
  const targets = new Int32Array(rows * seqLen).fill(padId);
  const weights = new Float32Array(rows * seqLen);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < seqLen; t++) {
      const k = r * seqLen + t;
      if (k + 1 >= ids.length) break;
      inputs[k] = ids[k] as number;
      targets[k] = ids[k + 1] as number;
      weights[k] = 1;
    }
  }
  return { batchSize: rows, seqLen, inputs, targets, weights };
}

/**
 * Packs documents, in the given order, into one batch whose rows are consecutive windows
 * (every token is a target once; only the last row's padding has weight 0). Deterministic:
 * use it for validation loss on the general mixture.
 */
export function packText(docs: readonly PackableText[], tokenizer: CharTokenizer, options: PackTextOptions): HostBatch {
  const opts = resolveConfig({ seqLen: 0 }, options, 'packText options');
  checkNumber('packText options.seqLen', opts.seqLen, { min: 1, integer: true });
  if (docs.length === 0) throw new ConfigError('packText: no documents');
  return windowsToBatch(packIds(docs, tokenizer), opts.seqLen, tokenizer.padId);
}

/** Takes rows [from, to) of a batch. */
export function sliceHostBatch(batch: HostBatch, from: number, to: number): HostBatch {
  const s = batch.seqLen;
  const a = Math.max(0, from);
  const b = Math.min(batch.batchSize, to);
  if (b <= a) throw new ConfigError(`sliceHostBatch: empty row range [${from}, ${to}) of a ${batch.batchSize}-row batch`);
  return {
    batchSize: b - a,
    seqLen: s,
    inputs: batch.inputs.slice(a * s, b * s),
    targets: batch.targets.slice(a * s, b * s),
    weights: batch.weights.slice(a * s, b * s),
  };
}

/** Options of `PackedTextSampler`. */
export interface PackedTextSamplerOptions {
  seqLen: number;
  batchSize: number;
  seed: number;
  /** Resume position: windows already drawn. */
  start: number;
}

/**
 * Endless, seeded stream of packed pre-training batches. Each epoch shuffles the document
 * order with `deriveSeed(seed, 'pack-epoch:e')` and re-packs, so window boundaries differ
 * between epochs; windows are then taken in order, across epoch boundaries.
 */
export class PackedTextSampler {
  private readonly opts: PackedTextSamplerOptions;
  private epochBatch: HostBatch | undefined;
  private epochIndex = -1;
  private epochOffset = 0;
  private drawn: number;

  constructor(
    private readonly docs: readonly PackableText[],
    private readonly tokenizer: CharTokenizer,
    options: Partial<PackedTextSamplerOptions> & { seqLen: number; batchSize: number },
  ) {
    this.opts = resolveConfig({ seqLen: 0, batchSize: 1, seed: 0, start: 0 }, options, 'PackedTextSampler options');
    checkNumber('PackedTextSampler options.seqLen', this.opts.seqLen, { min: 1, integer: true });
    checkNumber('PackedTextSampler options.batchSize', this.opts.batchSize, { min: 1, integer: true });
    checkNumber('PackedTextSampler options.seed', this.opts.seed, { integer: true });
    checkNumber('PackedTextSampler options.start', this.opts.start, { min: 0, integer: true });
    if (docs.length === 0) throw new ConfigError('PackedTextSampler: no documents');
    this.drawn = 0;
    for (let i = 0; i < this.opts.start; i++) this.nextWindow();
  }

  /** Windows drawn so far (pass as `start` to resume). */
  get position(): number {
    return this.drawn;
  }

  /** The epoch the next window comes from (0-based). */
  get epoch(): number {
    this.ensureEpoch();
    return this.epochIndex;
  }

  private ensureEpoch(): void {
    if (this.epochBatch !== undefined && this.epochOffset < this.epochBatch.batchSize) return;
    this.epochIndex++;
    this.epochOffset = 0;
    const order = Array.from({ length: this.docs.length }, (_, j) => j);
    new Rng(deriveSeed(this.opts.seed, `pack-epoch:${this.epochIndex}`)).shuffle(order);
    this.epochBatch = packText(order.map((j) => this.docs[j] as PackableText), this.tokenizer, { seqLen: this.opts.seqLen });
  }

  private nextWindow(): HostBatch {
    this.ensureEpoch();
    const b = this.epochBatch as HostBatch;
    const row = sliceHostBatch(b, this.epochOffset, this.epochOffset + 1);
    this.epochOffset++;
    this.drawn++;
    return row;
  }

  /** The next batch of `batchSize` windows. */
  next(): HostBatch {
    const { seqLen, batchSize } = this.opts;
    const inputs = new Int32Array(batchSize * seqLen);
    const targets = new Int32Array(batchSize * seqLen);
    const weights = new Float32Array(batchSize * seqLen);
    for (let r = 0; r < batchSize; r++) {
      const w = this.nextWindow();
      inputs.set(w.inputs, r * seqLen);
      targets.set(w.targets, r * seqLen);
      weights.set(w.weights, r * seqLen);
    }
    return { batchSize, seqLen, inputs, targets, weights };
  }
}
