/**
 * The GMT mask contract (DESIGN.md §1; paper §3, "Gradient-Mask Tuning", eq. for T_k and M).
 *
 * Given the averaged gradient Γ of one update, a mask ratio k ∈ [0, 1) and a scope, every
 * scope segment with n entries drops m = ⌊k·n⌋ entries:
 *
 *   T_k = the (m+1)-th smallest |Γ| in the segment   (m = 0 → keep everything, T_k = −∞)
 *   M   = 1 where |Γ| ≥ T_k, else 0                    (ties with T_k are kept)
 *   Γ'  = Γ ⊙ M
 *
 * So the kept fraction per segment is 1 − m/n, or more where entries tie with T_k.
 * The threshold is exact: a radix select over the IEEE-754 bit patterns of |Γ| (non-negative
 * floats order like their unsigned bit patterns), O(n) per segment, no sort, no sampling;
 * segments of ≤ 1024 entries use quickselect on a copy.
 *
 * Cost per update: one readback of all Γ entries (tensor by tensor), three linear passes in
 * JavaScript over typed arrays (radix histogram, radix gather, marking M into a bitset), then
 * four element-wise tensor ops per parameter tensor to build M and Γ'. Masking itself stays in
 * tensor operations so it can run on an accelerator. On the wasm backend there is no readback:
 * the select runs as a wasm kernel on tfjs' heap (gpt-kernels.c `select_abs_parts`: a sample
 * bounds T_k, one counting pass gathers the few entries between the bounds, and the exact
 * answer is selected among those; a miss falls back to the full radix select), and M, Γ' and
 * M's bitset come from one `mask_apply` pass per tensor.
 * The bitset gives the kept fractions and the Jaccard overlap with the previous update's mask
 * by popcount, so the trainer needs no tensor statistics for GMT (`MaskResult.stats`).
 */
import * as tf from '@tensorflow/tfjs';
import { fusedKernels, type FusedKernelsHandle } from '../backend/engine';
import { keepMaskOnDevice, selectThresholdsOnDevice } from '../backend/webgpu-select';
import { ConfigError, checkNumber } from '../util/config';

/** Where the quantile is taken: each tensor, each group (`embed`, `block.<i>`, `head`), or all. */
export type MaskScope = 'tensor' | 'layer' | 'global';
export const MASK_SCOPES: readonly MaskScope[] = ['tensor', 'layer', 'global'];

/** Validates a scope option; `where` names the option, e.g. `gmt.scope`. */
export function checkScope(where: string, value: unknown): MaskScope {
  if (typeof value !== 'string' || !(MASK_SCOPES as readonly string[]).includes(value)) {
    throw new ConfigError(`${where} must be one of ${MASK_SCOPES.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as MaskScope;
}

/** Validates a mask ratio k ∈ [0, 1). */
export function checkMaskRatio(where: string, value: unknown): number {
  return checkNumber(where, value, { min: 0, max: 1, maxExclusive: true });
}

/**
 * m = ⌊k·n⌋, the number of entries a segment of n drops. The 1e-9 guards against products such
 * as 0.29·100 = 28.999999999999996 losing one entry; m never reaches n, so one entry is always kept.
 */
export function dropCount(ratio: number, n: number): number {
  if (n <= 0) return 0;
  return Math.min(n - 1, Math.floor(ratio * n + 1e-9));
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
function bitsToFloat(bits: number): number {
  u32Scratch[0] = bits;
  return f32Scratch[0] as number;
}
function floatToBits(x: number): number {
  f32Scratch[0] = x;
  return u32Scratch[0] as number;
}

const hist = new Uint32Array(2048);
const SMALL_SEGMENT = 1024;

/** The `rank`-th smallest of a[0:n) (Hoare partition, median-of-three pivot); permutes `a`. */
function quickselect(a: Uint32Array, n: number, rank: number): number {
  let lo = 0;
  let hi = n - 1;
  while (hi > lo) {
    const x = a[lo] as number;
    const y = a[(lo + hi) >>> 1] as number;
    const z = a[hi] as number;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((a[i] as number) < pivot) i++;
      while ((a[j] as number) > pivot) j--;
      if (i <= j) {
        const t = a[i] as number;
        a[i] = a[j] as number;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (rank <= j) hi = j;
    else if (rank >= i) lo = i;
    else return a[rank] as number;
  }
  return a[lo] as number;
}

/**
 * Radix select in three digits of 11/10/10 bits over `src[start:end)` (sign bits ignored): one
 * histogram pass and one gather pass over the range, then passes over the (usually small) bucket
 * that holds the answer. `src` may be `scratch` itself with `start = 0` (the gather never
 * overtakes the read). Returns the bit pattern of the `rank`-th smallest |x|.
 */
function radixSelect(src: Uint32Array, start: number, end: number, rank: number, scratch: Uint32Array): number {
  let r = rank;
  // Digit 1: bits 30..20 (the sign bit is cleared).
  hist.fill(0);
  for (let i = start; i < end; i++) hist[((src[i] as number) & 0x7fffffff) >>> 20]++;
  let b1 = 0;
  while (r >= (hist[b1] as number)) r -= hist[b1++] as number;
  let c = 0;
  for (let i = start; i < end; i++) {
    const u = (src[i] as number) & 0x7fffffff;
    if (u >>> 20 === b1) scratch[c++] = u;
  }
  // Digit 2: bits 19..10, over the gathered bucket only.
  hist.fill(0, 0, 1024);
  for (let j = 0; j < c; j++) hist[((scratch[j] as number) >>> 10) & 1023]++;
  let b2 = 0;
  while (r >= (hist[b2] as number)) r -= hist[b2++] as number;
  let c2 = 0;
  for (let j = 0; j < c; j++) {
    const u = scratch[j] as number;
    if (((u >>> 10) & 1023) === b2) scratch[c2++] = u;
  }
  // Digit 3: bits 9..0.
  hist.fill(0, 0, 1024);
  for (let j = 0; j < c2; j++) hist[(scratch[j] as number) & 1023]++;
  let b3 = 0;
  while (r >= (hist[b3] as number)) r -= hist[b3++] as number;
  return ((b1 << 20) | (b2 << 10) | b3) >>> 0;
}

/**
 * The `rank`-th smallest (0-based) |x| among `bits[start:end)`, where `bits` are float32 bit
 * patterns (the sign bit is ignored, so this is the absolute value; NaN orders above +∞).
 * Radix select (`radixSelect`) for large segments; quickselect on a copy for ≤ 1024 entries.
 * `scratch` must hold `end − start` entries. Returns the exact float value.
 */
export function selectAbsBits(bits: Uint32Array, start: number, end: number, rank: number, scratch: Uint32Array): number {
  const n = end - start;
  if (!(rank >= 0 && rank < n)) throw new RangeError(`selectAbsBits: rank ${rank} outside [0, ${n})`);
  if (scratch.length < n) throw new RangeError(`selectAbsBits: scratch holds ${scratch.length} < ${n}`);
  if (n <= SMALL_SEGMENT) {
    // Clearing 2048 histogram bins would dominate a small segment: select on a copy instead.
    for (let i = 0; i < n; i++) scratch[i] = (bits[start + i] as number) & 0x7fffffff;
    return bitsToFloat(quickselect(scratch, n, rank));
  }
  return bitsToFloat(radixSelect(bits, start, end, rank, scratch));
}

/**
 * T_k for one segment of `values` (any signs; |·| is taken): the (m+1)-th smallest |value| with
 * m = dropCount(ratio, n), or −∞ when m = 0 (keep all). Exact.
 */
export function thresholdForRatio(
  values: Float32Array,
  ratio: number,
  start = 0,
  end = values.length,
  scratch?: Uint32Array,
): number {
  const n = end - start;
  const m = dropCount(ratio, n);
  if (m === 0) return -Infinity;
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  return selectAbsBits(bits, start, end, m, scratch ?? new Uint32Array(n));
}

/** The parameter metadata the masker needs (a subset of `ParamInfo`). */
export interface MaskParam {
  name: string;
  group: string;
}

/**
 * Segments of parameter names for a scope: one per tensor, one per group (in first-seen group
 * order), or one for everything.
 */
export function scopeSegments(params: readonly MaskParam[], scope: MaskScope): string[][] {
  if (scope === 'tensor') return params.map((p) => [p.name]);
  if (scope === 'global') return [params.map((p) => p.name)];
  const groups = new Map<string, string[]>();
  for (const p of params) {
    const list = groups.get(p.group);
    if (list) list.push(p.name);
    else groups.set(p.group, [p.name]);
  }
  return [...groups.values()];
}

/**
 * Kept fractions of one update's mask and its overlap with the previous update's, as the trainer
 * records them (`UpdateRecord.keptFraction`, `keptByTensor`, `maskJaccard`).
 */
export interface MaskUpdateStats {
  /** Kept entries / all entries, over every masked tensor. */
  keptFraction: number;
  /** Kept fraction per parameter name. */
  keptByTensor: Record<string, number>;
  /** |M ∩ M_prev| / |M ∪ M_prev| over all entries (1 when both are empty); undefined without a previous mask. */
  jaccard?: number;
}

/** Output of one masking pass. All tensors are new and owned by the caller. */
export interface MaskResult {
  /** Γ ⊙ M per parameter name. */
  grads: Map<string, tf.Tensor>;
  /**
   * M per parameter name, float32 with 1 = kept. Empty when the masker was made with
   * `keepMasks: false` (host and wasm paths, where `stats` says what the masks held).
   */
  masks: Map<string, tf.Tensor>;
  /**
   * T_k per parameter name (the threshold of its segment; −∞ = all kept). Empty on the device
   * path when the masker was made with `readThresholds: false`.
   */
  thresholds: Map<string, number>;
  /**
   * Kept fractions of `masks` and their Jaccard overlap with the mask of this masker's previous
   * `apply` (none after construction or `reset()`), counted on the host from the same readback
   * the thresholds came from: equal to `maskStatistics(masks, previousMasks)` without its tensor
   * work and second readback. Absent on the device path (webgpu), where the counts stay on the
   * device until someone asks (`maskStatistics`, which the trainer calls with its other scalars).
   */
  stats?: MaskUpdateStats;
}

/** Number of set bits of a 32-bit word. */
function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) as number;
}

/** Set bits of `words` in the bit range [from, to). */
function countBits(words: Uint32Array, from: number, to: number): number {
  if (to <= from) return 0;
  const first = from >>> 5;
  const last = (to - 1) >>> 5;
  const headMask = -1 << (from & 31);
  const tailMask = -1 >>> (31 - ((to - 1) & 31));
  if (first === last) return popcount32((words[first] as number) & headMask & tailMask);
  let k = popcount32((words[first] as number) & headMask) + popcount32((words[last] as number) & tailMask);
  for (let w = first + 1; w < last; w++) k += popcount32(words[w] as number);
  return k;
}

/** Bits of +∞: non-negative float32 above it are NaN. */
const FINITE_MAX_BITS = 0x7f800000;

/** One tensor's entries as float32 bit patterns, and where they start in the flat (bitset) order. */
interface ScorePart {
  bits: Uint32Array;
  offset: number;
}

/**
 * Writes bits [o, o + n) of `words` for one part (o = part.offset, n = its size): bit o + j is 1
 * iff lowBits ≤ |x_j| bits ≤ highBits. All operands are < 2³¹, so the differences fit an int32
 * and their signs are the comparisons. Bits of other parts sharing a word are left as they are.
 */
function markPart(part: ScorePart, words: Uint32Array, lowBits: number, highBits: number): void {
  const { bits, offset } = part;
  const end = offset + bits.length;
  if (end <= offset) return;
  const firstWord = offset >>> 5;
  const lastWord = (end - 1) >>> 5;
  for (let w = firstWord; w <= lastWord; w++) {
    const b0 = w === firstWord ? offset & 31 : 0;
    const b1 = w === lastWord ? ((end - 1) & 31) + 1 : 32;
    const base = (w << 5) - offset;
    let word = 0;
    // Highest bit first, shifting left: cheaper in V8 than a variable shift per entry.
    for (let b = b1 - 1; b >= b0; b--) {
      const u = (bits[base + b] as number) & 0x7fffffff;
      word = (word << 1) | (~((u - lowBits) | (highBits - u)) >>> 31);
    }
    const span = b1 - b0 === 32 ? -1 : ((1 << (b1 - b0)) - 1) << b0;
    words[w] = ((words[w] as number) & ~span) | (word << b0);
  }
}

/** Clears the sign bits of a[0:n) in place and returns `a`. */
function maskSignBits(a: Uint32Array, n: number): Uint32Array {
  for (let i = 0; i < n; i++) a[i] = (a[i] as number) & 0x7fffffff;
  return a;
}

/**
 * M = [|score| ≥ T] as float32, exactly. For T > 0 it is computed as step(|score| − T⁻), T⁻ the
 * largest float32 below T: |s| ≥ T ⇔ |s| > T⁻, and the float32 difference of two floats keeps its
 * sign (it is never rounded to 0 unless the floats are equal; this assumes no flush-to-zero of
 * subnormals, true of IEEE float32 on cpu and wasm). On wasm this is about 3× cheaper than
 * cast(greaterEqual(·)). T ≤ 0 (including −∞) keeps everything.
 */
function keepMask(score: tf.Tensor, threshold: number): tf.Tensor {
  if (threshold <= 0) return tf.onesLike(score);
  if (Number.isNaN(threshold)) return tf.zerosLike(score); // nothing is ≥ NaN
  const below = bitsToFloat(floatToBits(threshold) - 1);
  return tf.tidy(() => tf.step(tf.sub(tf.abs(score), below)));
}

/** Byte offsets into tfjs-wasm's heap of one selection's buffers (see `withWasmHeap`). */
interface WasmSelectHeap {
  sizes: number[];
  /** Where each score tensor's entries are. */
  ptrs: number[];
  scratch: number;
  work: number;
  info: number;
  /** (offset, length) pairs of one segment's tensors. */
  parts: number;
  /** M of this `apply` and a copy of the previous one's, as bitsets (when asked for). */
  bitset: number;
  previousBitset: number;
}

/** A segment's T_k and the bit patterns of |score| it keeps: low ≤ bits ≤ high. */
interface KeepRange {
  threshold: number;
  low: number;
  high: number;
}

/**
 * Half-width, in standard deviations of the sample's rank, of the bounds that the wasm select
 * takes from a sample before its one counting pass (see `select_abs_parts`). Wider bounds gather
 * more entries; narrower ones miss more often (a miss costs a full radix select, never
 * exactness). 4 misses about once in 16,000 segments for a random sample.
 */
const SELECT_SAMPLE_SIGMAS = 4;

/** How `select_abs_parts` found a threshold, by its `info[0]`. */
const SELECT_PATHS = ['radix', 'sampled', 'missed', 'small'] as const;

/** Thresholds found by each path of the wasm select (`GradientMasker.selectCounts`). */
export type SelectCounts = Record<(typeof SELECT_PATHS)[number], number>;

/**
 * Computes exact-quantile masks for a fixed parameter layout, reusing its buffers across updates.
 * Used by GMT (every update), SIFT (first update) and ChildTuning-D (on Fisher scores).
 *
 * Per `apply`: one readback of every score entry, an exact selection per segment on a reused
 * host buffer, one more host pass that packs M into a bitset (kept counts per tensor and the
 * Jaccard overlap with the previous `apply`'s bitset come from popcounts), and four cheap tensor
 * ops per parameter to build M and Γ ⊙ M on the device. On the wasm backend the same happens in
 * wasm kernels on tfjs' heap, with no readback (see the file header).
 */
export class GradientMasker {
  readonly ratio: number;
  readonly scope: MaskScope;
  private readonly segments: string[][];
  private readonly order: string[];
  private scratch: Uint32Array = new Uint32Array(0);
  private keptBits: Uint32Array = new Uint32Array(0);
  private previousBits: Uint32Array = new Uint32Array(0);
  private previousKept = -1;
  /**
   * How the wasm selection found each threshold so far: `small` by quickselect on a copy (up to
   * 1,024 entries), `radix` by radix select alone (up to 4,096), `sampled` within the bounds a
   * sample gave, `missed` by radix select after those bounds missed. Diagnostics for tests and
   * benchmarks: every path gives the same exact threshold.
   */
  readonly selectCounts: SelectCounts = { small: 0, radix: 0, sampled: 0, missed: 0 };

  /** See the constructor's `readThresholds`. */
  readonly readThresholds: boolean;
  /** See the constructor's `keepMasks`. */
  readonly keepMasks: boolean;

  /**
   * @param options.readThresholds `false`: on the device path (webgpu) the thresholds are left on
   *   the device and `MaskResult.thresholds` is empty, so `apply` reads nothing back and an update
   *   keeps a single sync point (the trainer's read of its scalars). Default `true`. The host
   *   and wasm paths know the thresholds anyway and always report them.
   * @param options.keepMasks `false`: `apply` returns Γ ⊙ M and the statistics without building M
   *   as tensors (host and wasm paths; the device path needs them for its counts), for callers
   *   that never read the masks. On wasm that spares two tensors per parameter and update.
   *   Default `true`.
   */
  constructor(params: readonly MaskParam[], options: { ratio: number; scope: MaskScope; readThresholds?: boolean; keepMasks?: boolean }) {
    this.ratio = checkMaskRatio('ratio', options.ratio);
    this.scope = checkScope('scope', options.scope);
    this.readThresholds = options.readThresholds ?? true;
    this.keepMasks = options.keepMasks ?? true;
    const names = new Set<string>();
    for (const p of params) {
      if (names.has(p.name)) throw new ConfigError(`GradientMasker: duplicate parameter name "${p.name}"`);
      names.add(p.name);
    }
    this.segments = scopeSegments(params, this.scope);
    this.order = this.segments.flat();
  }

  /** Forgets the previous mask: the next `apply` reports no Jaccard overlap. */
  reset(): void {
    this.previousKept = -1;
  }

  private scoreTensors(scores: ReadonlyMap<string, tf.Tensor>): tf.Tensor[] {
    return this.order.map((name) => {
      const t = scores.get(name);
      if (!t) throw new Error(`GradientMasker: no gradient for parameter "${name}"`);
      if (t.dtype !== 'float32') throw new Error(`GradientMasker: "${name}" has dtype ${t.dtype}, expected float32`);
      return t;
    });
  }

  /** Every score read back, tensor by tensor (on cpu no copy at all), as bit-pattern views in `order`. */
  private async readScores(tensors: tf.Tensor[]): Promise<ScorePart[]> {
    const values = await Promise.all(tensors.map((t) => t.data() as Promise<Float32Array>));
    let offset = 0;
    return values.map((v) => {
      const part = { bits: new Uint32Array(v.buffer, v.byteOffset, v.length), offset };
      offset += v.length;
      return part;
    });
  }

  /** Sizes the current and previous bitsets for `total` entries (forgetting the previous mask on a change); returns words. */
  private sizeBitsets(total: number): number {
    const words = (total + 31) >>> 5;
    if (this.keptBits.length !== words) {
      this.keptBits = new Uint32Array(words);
      this.previousBits = new Uint32Array(words);
      this.previousKept = -1;
    }
    return words;
  }

  /**
   * T_k per parameter, from one batched readback of all entries of `scores` (|·| is taken).
   * `scores` must hold a float32 tensor for every parameter the masker was built with.
   */
  async thresholds(scores: ReadonlyMap<string, tf.Tensor>): Promise<Map<string, number>> {
    const tensors = this.scoreTensors(scores);
    const wk = fusedKernels();
    const thresholds = wk
      ? this.withWasmHeap(wk, tensors, 0, (heap) => this.selectWasm(wk, heap).map((b) => b.threshold))
      : this.selectAndMark(await this.readScores(tensors));
    return new Map(this.order.map((name, i) => [name, thresholds[i] as number]));
  }

  /**
   * Selects T_k of every segment and packs M into `this.keptBits` (bit i = entry i in `order`):
   * per segment, a contiguous copy of its bit patterns, an exact select on it (quickselect up to
   * 1024 entries, radix select above), then a marking pass.
   */
  private selectAndMark(parts: ScorePart[]): number[] {
    const last = parts[parts.length - 1];
    const total = last ? last.offset + last.bits.length : 0;
    this.sizeBitsets(total);
    const cur = this.keptBits;
    const thresholds: number[] = [];
    let p0 = 0;
    for (const segment of this.segments) {
      const p1 = p0 + segment.length;
      let n = 0;
      for (let p = p0; p < p1; p++) n += parts[p]!.bits.length;
      const m = dropCount(this.ratio, n);
      let threshold = -Infinity;
      if (m === 0) {
        for (let p = p0; p < p1; p++) markPart(parts[p]!, cur, 0, 0x7fffffff);
      } else {
        if (this.scratch.length < n) this.scratch = new Uint32Array(n);
        // Marking separately was measured faster than marking during radix select's gather pass.
        let c = 0;
        for (let p = p0; p < p1; p++) {
          this.scratch.set(parts[p]!.bits, c);
          c += parts[p]!.bits.length;
        }
        const tb = n <= SMALL_SEGMENT ? quickselect(maskSignBits(this.scratch, n), n, m) : radixSelect(this.scratch, 0, n, m, this.scratch);
        for (let p = p0; p < p1; p++) markPart(parts[p]!, cur, tb, FINITE_MAX_BITS);
        threshold = bitsToFloat(tb);
      }
      for (let j = 0; j < segment.length; j++) thresholds.push(threshold);
      p0 = p1;
    }
    return thresholds;
  }

  /**
   * Runs `fn` with one block of tfjs-wasm's heap laid out for the selection of `tensors` (and two
   * bitsets of `bitsetWords` words), freed afterwards. The block is allocated per call: it holds
   * a copy-sized scratch for the largest segment, which should not stay on tfjs' heap.
   */
  private withWasmHeap<T>(wk: FusedKernelsHandle, tensors: tf.Tensor[], bitsetWords: number, fn: (heap: WasmSelectHeap) => T): T {
    const { kernels: k, backend: be } = wk;
    const sizes = tensors.map((t) => t.size);
    let scratchLen = 0;
    let maxParts = 0;
    for (let s = 0, p0 = 0; s < this.segments.length; s++) {
      const p1 = p0 + this.segments[s]!.length;
      let n = 0;
      for (let p = p0; p < p1; p++) n += sizes[p]!;
      scratchLen = Math.max(scratchLen, n);
      maxParts = Math.max(maxParts, p1 - p0);
      p0 = p1;
    }
    const workWords = k.select_work_words();
    // Allocating may grow the heap (detaching views); offsets of tensors stay valid.
    const base = be.wasm._malloc(4 * (scratchLen + workWords + 4 + 2 * maxParts + 2 * bitsetWords));
    try {
      const scratch = base;
      const work = scratch + 4 * scratchLen;
      const info = work + 4 * workWords;
      const parts = info + 16;
      const bitset = parts + 8 * maxParts;
      const previousBitset = bitset + 4 * bitsetWords;
      return fn({ sizes, ptrs: tensors.map((t) => be.getMemoryOffset(t.dataId)), scratch, work, info, parts, bitset, previousBitset });
    } finally {
      be.wasm._free(base);
    }
  }

  /**
   * T_k of every segment, selected on tfjs-wasm's heap where the scores already are
   * (`select_abs_parts` in gpt-kernels.c: each segment's tensors are passed as a list of parts,
   * so nothing is copied or read back). Returns, per parameter in `order`, T_k and the bit range
   * [low, high] of |score| that is kept: [bits(T_k), bits(+∞)], or everything (NaN included)
   * when the segment drops nothing. Same thresholds as `selectAndMark`.
   */
  private selectWasm(wk: FusedKernelsHandle, heap: WasmSelectHeap): KeepRange[] {
    const k = wk.kernels;
    const { sizes, ptrs } = heap;
    const ranges: KeepRange[] = [];
    let p0 = 0;
    for (const segment of this.segments) {
      const p1 = p0 + segment.length;
      let n = 0;
      for (let p = p0; p < p1; p++) n += sizes[p]!;
      const m = dropCount(this.ratio, n);
      let range: KeepRange = { threshold: -Infinity, low: 0, high: 0x7fffffff };
      if (m > 0) {
        const parts = new Int32Array(wk.backend.wasm.HEAPU8.buffer, heap.parts, 2 * (p1 - p0));
        for (let p = p0; p < p1; p++) {
          parts[2 * (p - p0)] = ptrs[p]!;
          parts[2 * (p - p0) + 1] = sizes[p]!;
        }
        const tb = k.select_abs_parts(heap.parts, p1 - p0, m, SELECT_SAMPLE_SIGMAS, heap.scratch, heap.work, heap.info) >>> 0;
        const info = new Int32Array(wk.backend.wasm.HEAPU8.buffer, heap.info, 2);
        this.selectCounts[SELECT_PATHS[info[0]!]!]++;
        range = { threshold: bitsToFloat(tb), low: tb, high: FINITE_MAX_BITS };
      }
      for (let j = 0; j < segment.length; j++) ranges.push(range);
      p0 = p1;
    }
    return ranges;
  }

  /**
   * `apply` on tfjs-wasm's heap: `selectWasm`, then one `mask_apply` pass per tensor that writes
   * M, Γ ⊙ M and M's bits into the bitset together and counts the kept entries; the overlap with
   * the previous mask is one `and_popcount` pass.
   */
  private applyWasm(wk: FusedKernelsHandle, grads: ReadonlyMap<string, tf.Tensor>, tensors: tf.Tensor[]): MaskResult {
    const { kernels: k, backend: be } = wk;
    const sizes = tensors.map((t) => t.size);
    const words = this.sizeBitsets(sizes.reduce((a, b) => a + b, 0));
    const maskedGrads = new Map<string, tf.Tensor>();
    const masks = new Map<string, tf.Tensor>();
    const thresholds = new Map<string, number>();
    const kept: number[] = [];
    let overlap: number | undefined;
    this.withWasmHeap(wk, tensors, words, (heap) => {
      const ranges = this.selectWasm(wk, heap);
      // The passes below write every bit of every tensor; this clears the last word's tail.
      k.fill_zero(heap.bitset, words);
      let offset = 0;
      this.order.forEach((name, i) => {
        const { threshold, low, high } = ranges[i]!;
        const grad = grads.get(name)!;
        const score = tensors[i]!;
        thresholds.set(name, threshold);
        if (threshold > -Infinity) {
          // Without kept masks, M goes to the select's scratch (free once the selection is done;
          // it holds a whole segment, so any tensor of it).
          const maskInfo = this.keepMasks ? be.makeOutput(grad.shape, 'float32') : undefined;
          const outInfo = be.makeOutput(grad.shape, 'float32');
          kept.push(k.mask_apply(heap.ptrs[i]!, be.getMemoryOffset(grad.dataId), score.size, low, high,
            maskInfo ? be.getMemoryOffset(maskInfo.dataId) : heap.scratch, be.getMemoryOffset(outInfo.dataId), heap.bitset, offset));
          if (maskInfo) masks.set(name, tf.engine().makeTensorFromTensorInfo(maskInfo, tf.backend()));
          maskedGrads.set(name, tf.engine().makeTensorFromTensorInfo(outInfo, tf.backend()));
        } else {
          // Nothing dropped (NaN included): M = 1, Γ ⊙ M = Γ, all bits set.
          kept.push(k.mark_bits(heap.ptrs[i]!, score.size, low, high, heap.bitset, offset));
          if (this.keepMasks) masks.set(name, tf.onesLike(grad));
          maskedGrads.set(name, tf.clone(grad));
        }
        offset += score.size;
      });
      const heapWords = (at: number): Uint32Array => new Uint32Array(be.wasm.HEAPU8.buffer, at, words);
      if (this.previousKept >= 0) {
        heapWords(heap.previousBitset).set(this.previousBits);
        overlap = k.and_popcount(heap.bitset, heap.previousBitset, words);
      }
      this.keptBits.set(heapWords(heap.bitset));
    });
    return { grads: maskedGrads, masks, thresholds, stats: this.keptStatistics(sizes, kept, overlap) };
  }

  /** Kept entries per tensor and the overlap with the previous bitset, counted in JavaScript. */
  private hostCounts(sizes: number[]): { kept: number[]; overlap?: number } {
    const cur = this.keptBits;
    const prev = this.previousBits;
    const kept: number[] = [];
    for (let ti = 0, offset = 0; ti < sizes.length; offset += sizes[ti]!, ti++) kept.push(countBits(cur, offset, offset + sizes[ti]!));
    if (this.previousKept < 0) return { kept };
    let overlap = 0;
    for (let w = 0; w < cur.length; w++) overlap += popcount32((cur[w] as number) & (prev[w] as number));
    return { kept, overlap };
  }

  /**
   * Kept fractions from the kept counts per tensor, and the Jaccard overlap with the previous
   * call's mask from `overlap` = |M ∩ M_prev| (given whenever there is a previous mask); then
   * the bitset becomes the previous one.
   */
  private keptStatistics(sizes: number[], keptPerTensor: number[], overlap: number | undefined): MaskUpdateStats {
    const keptByTensor: Record<string, number> = {};
    let kept = 0;
    let total = 0;
    for (let ti = 0; ti < sizes.length; ti++) {
      const n = sizes[ti] as number;
      const k = keptPerTensor[ti] as number;
      keptByTensor[this.order[ti] as string] = n === 0 ? 1 : k / n;
      kept += k;
      total += n;
    }
    const stats: MaskUpdateStats = { keptFraction: total === 0 ? 1 : kept / total, keptByTensor };
    if (this.previousKept >= 0) {
      if (overlap === undefined) throw new Error('GradientMasker: no mask overlap counted');
      const union = kept + this.previousKept - overlap;
      stats.jaccard = union === 0 ? 1 : overlap / union;
    }
    const cur = this.keptBits;
    this.keptBits = this.previousBits;
    this.previousBits = cur;
    this.previousKept = kept;
    return stats;
  }

  /**
   * `apply` without reading Γ back (webgpu): T_k of every segment comes from one radix select in
   * compute shaders (`selectThresholdsOnDevice`, exact like the host's), then M = [|s| ≥ T_k] and
   * Γ ⊙ M are built on the device. Only the thresholds come back, one float per segment, and not
   * even those with `readThresholds: false`.
   */
  private async applyOnDevice(grads: ReadonlyMap<string, tf.Tensor>, tensors: tf.Tensor[]): Promise<MaskResult> {
    const byName = new Map(this.order.map((name, i) => [name, tensors[i]!]));
    // Segments that drop nothing keep everything and need no threshold.
    const live: { names: string[]; drop: number }[] = [];
    const liveIndex = new Map<string, number>();
    for (const segment of this.segments) {
      const n = segment.reduce((a, name) => a + byName.get(name)!.size, 0);
      const m = dropCount(this.ratio, n);
      if (m === 0) continue;
      for (const name of segment) liveIndex.set(name, live.length);
      live.push({ names: segment, drop: m });
    }
    const selected = live.length ? selectThresholdsOnDevice(live.map((s) => s.names.map((n) => byName.get(n)!)), live.map((s) => s.drop)) : null;
    const maskedGrads = new Map<string, tf.Tensor>();
    const masks = new Map<string, tf.Tensor>();
    for (const name of this.order) {
      const grad = grads.get(name)!;
      const k = liveIndex.get(name);
      if (k === undefined || selected === null) {
        masks.set(name, tf.onesLike(grad));
        maskedGrads.set(name, tf.clone(grad));
        continue;
      }
      const mask = keepMaskOnDevice(byName.get(name)!, selected, k);
      masks.set(name, mask);
      maskedGrads.set(name, tf.mul(grad, mask));
    }
    const thresholds = new Map<string, number>();
    if (!this.readThresholds) {
      // tfjs' webgpu backend frees the buffer once the queued mask passes that read it are done.
      selected?.dispose();
      return { grads: maskedGrads, masks, thresholds };
    }
    const values = selected ? await selected.data() : new Float32Array(0);
    selected?.dispose();
    for (const name of this.order) {
      const k = liveIndex.get(name);
      thresholds.set(name, k === undefined ? -Infinity : (values[k] as number));
    }
    return { grads: maskedGrads, masks, thresholds };
  }

  /**
   * Masks `grads` by the thresholds of `scores` (by default the gradients themselves, as GMT does):
   * M = [|score| ≥ T_k], Γ' = Γ ⊙ M. Inputs are not disposed. Γ is assumed finite: a NaN entry
   * makes Γ' NaN whatever its mask entry says (`stats` count it as dropped where T_k > 0).
   */
  async apply(grads: ReadonlyMap<string, tf.Tensor>, scores: ReadonlyMap<string, tf.Tensor> = grads): Promise<MaskResult> {
    const tensors = this.scoreTensors(scores);
    this.order.forEach((name, i) => {
      const grad = grads.get(name);
      if (!grad) throw new Error(`GradientMasker: no gradient for parameter "${name}"`);
      const score = tensors[i]!;
      if (grad.dtype !== 'float32' || !tf.util.arraysEqual(grad.shape, score.shape)) {
        throw new Error(`GradientMasker: the gradient of "${name}" is ${grad.dtype} [${grad.shape}], its score float32 [${score.shape}]; they must match`);
      }
    });
    const wk = fusedKernels();
    if (wk) return this.applyWasm(wk, grads, tensors);
    if (tf.getBackend() === 'webgpu') return this.applyOnDevice(grads, tensors);
    const thresholds = this.selectAndMark(await this.readScores(tensors));
    const maskedGrads = new Map<string, tf.Tensor>();
    const masks = new Map<string, tf.Tensor>();
    const thresholdByName = new Map<string, number>();
    this.order.forEach((name, i) => {
      const threshold = thresholds[i] as number;
      const grad = grads.get(name)!;
      const mask = keepMask(tensors[i]!, threshold);
      // Γ ⊙ 1 is Γ bit for bit: share the storage instead of multiplying.
      maskedGrads.set(name, threshold <= 0 ? tf.clone(grad) : tf.mul(grad, mask));
      if (this.keepMasks) masks.set(name, mask);
      else mask.dispose();
      thresholdByName.set(name, threshold);
    });
    const sizes = tensors.map((t) => t.size);
    const { kept, overlap } = this.hostCounts(sizes);
    return { grads: maskedGrads, masks, thresholds: thresholdByName, stats: this.keptStatistics(sizes, kept, overlap) };
  }
}

/** Kept fractions and mask overlap of one update, from one readback. */
export interface MaskStatistics extends MaskUpdateStats {
  /** Values of the `extras` scalars, read back in the same transfer. */
  extras: number[];
}

/**
 * Per-tensor kept fractions of `masks` and the Jaccard overlap with `previous` (same names),
 * computed with tensor ops and read back once together with any `extras` scalars.
 * With no masks, everything counts as kept (keptFraction 1).
 */
export async function maskStatistics(
  masks: ReadonlyMap<string, tf.Tensor> | undefined,
  previous?: ReadonlyMap<string, tf.Tensor>,
  extras: readonly tf.Tensor[] = [],
): Promise<MaskStatistics> {
  const names = masks ? [...masks.keys()] : [];
  const withPrev = previous !== undefined && names.length > 0 && names.every((n) => previous.has(n));
  const packed = tf.tidy(() => {
    const parts: tf.Tensor[] = extras.map((e) => tf.reshape(tf.cast(e, 'float32'), []));
    for (const n of names) parts.push(tf.sum(masks!.get(n)!));
    if (withPrev) {
      for (const n of names) parts.push(tf.sum(tf.mul(masks!.get(n)!, previous!.get(n)!)));
      for (const n of names) parts.push(tf.sum(previous!.get(n)!));
    }
    return parts.length === 0 ? tf.zeros([0]) : tf.stack(parts);
  });
  const values = await packed.data();
  packed.dispose();
  const extraValues = Array.from(values.subarray(0, extras.length));
  const keptByTensor: Record<string, number> = {};
  let kept = 0;
  let total = 0;
  let inter = 0;
  let prevKept = 0;
  names.forEach((n, i) => {
    const size = masks!.get(n)!.size;
    const k = values[extras.length + i] as number;
    keptByTensor[n] = size === 0 ? 1 : k / size;
    kept += k;
    total += size;
    if (withPrev) {
      inter += values[extras.length + names.length + i] as number;
      prevKept += values[extras.length + 2 * names.length + i] as number;
    }
  });
  const stats: MaskStatistics = { keptFraction: total === 0 ? 1 : kept / total, keptByTensor, extras: extraValues };
  if (withPrev) {
    const union = kept + prevKept - inter;
    stats.jaccard = union === 0 ? 1 : inter / union;
  }
  return stats;
}
