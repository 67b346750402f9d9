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
 * Cost per update: one concat + one readback of all Γ entries, two or three linear passes in
 * JavaScript over a typed array, then a few tensor ops per parameter tensor to build M and Γ'.
 * Masking itself stays in tensor operations so it can run on an accelerator.
 */
import * as tf from '@tensorflow/tfjs';
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
 * The `rank`-th smallest (0-based) |x| among `bits[start:end)`, where `bits` are float32 bit
 * patterns (the sign bit is ignored, so this is the absolute value). Radix select in three digits
 * of 11/10/10 bits: one histogram pass and one gather pass over the segment, then passes over the
 * (usually small) bucket that holds the answer; quickselect on a copy for small segments.
 * `scratch` must hold `end − start` entries.
 * Returns the exact float value.
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
  let r = rank;
  // Digit 1: bits 30..20 (the sign bit is cleared).
  hist.fill(0);
  for (let i = start; i < end; i++) hist[((bits[i] as number) & 0x7fffffff) >>> 20]++;
  let b1 = 0;
  while (r >= (hist[b1] as number)) r -= hist[b1++] as number;
  let c = 0;
  for (let i = start; i < end; i++) {
    const u = (bits[i] as number) & 0x7fffffff;
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
  return bitsToFloat(((b1 << 20) | (b2 << 10) | b3) >>> 0);
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

/** Output of one masking pass. All tensors are new and owned by the caller. */
export interface MaskResult {
  /** Γ ⊙ M per parameter name. */
  grads: Map<string, tf.Tensor>;
  /** M per parameter name, float32 with 1 = kept. */
  masks: Map<string, tf.Tensor>;
  /** T_k per parameter name (the threshold of its segment; −∞ = all kept). */
  thresholds: Map<string, number>;
}

/**
 * Computes exact-quantile masks for a fixed parameter layout, reusing its scratch buffers across
 * updates. Used by GMT (every update), SIFT (first update) and ChildTuning-D (on Fisher scores).
 */
export class GradientMasker {
  readonly ratio: number;
  readonly scope: MaskScope;
  private readonly segments: string[][];
  private readonly order: string[];
  private scratch: Uint32Array = new Uint32Array(0);

  constructor(params: readonly MaskParam[], options: { ratio: number; scope: MaskScope }) {
    this.ratio = checkMaskRatio('ratio', options.ratio);
    this.scope = checkScope('scope', options.scope);
    const names = new Set<string>();
    for (const p of params) {
      if (names.has(p.name)) throw new ConfigError(`GradientMasker: duplicate parameter name "${p.name}"`);
      names.add(p.name);
    }
    this.segments = scopeSegments(params, this.scope);
    this.order = this.segments.flat();
  }

  /**
   * T_k per parameter, from one batched readback of all entries of `scores` (|·| is taken).
   * `scores` must hold a float32 tensor for every parameter the masker was built with.
   */
  async thresholds(scores: ReadonlyMap<string, tf.Tensor>): Promise<Map<string, number>> {
    const tensors = this.order.map((name) => {
      const t = scores.get(name);
      if (!t) throw new Error(`GradientMasker: no gradient for parameter "${name}"`);
      if (t.dtype !== 'float32') throw new Error(`GradientMasker: "${name}" has dtype ${t.dtype}, expected float32`);
      return t;
    });
    const flat = tf.tidy(() => (tensors.length === 1 ? tensors[0]!.reshape([-1]) : tf.concat(tensors.map((t) => t.reshape([-1])))));
    const values = (await flat.data()) as Float32Array;
    flat.dispose();
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    const out = new Map<string, number>();
    let offset = 0;
    let ti = 0;
    for (const segment of this.segments) {
      let n = 0;
      for (let j = 0; j < segment.length; j++) n += tensors[ti + j]!.size;
      const m = dropCount(this.ratio, n);
      let threshold = -Infinity;
      if (m > 0) {
        if (this.scratch.length < n) this.scratch = new Uint32Array(n);
        threshold = selectAbsBits(bits, offset, offset + n, m, this.scratch);
      }
      for (const name of segment) out.set(name, threshold);
      offset += n;
      ti += segment.length;
    }
    return out;
  }

  /**
   * Masks `grads` by the thresholds of `scores` (by default the gradients themselves, as GMT does):
   * M = [|score| ≥ T_k], Γ' = Γ ⊙ M. Inputs are not disposed.
   */
  async apply(grads: ReadonlyMap<string, tf.Tensor>, scores: ReadonlyMap<string, tf.Tensor> = grads): Promise<MaskResult> {
    const thresholds = await this.thresholds(scores);
    const maskedGrads = new Map<string, tf.Tensor>();
    const masks = new Map<string, tf.Tensor>();
    for (const name of this.order) {
      const g = grads.get(name);
      if (!g) throw new Error(`GradientMasker: no gradient for parameter "${name}"`);
      const score = scores.get(name)!;
      const threshold = thresholds.get(name)!;
      const [mask, masked] = tf.tidy(() => {
        const m = tf.cast(tf.greaterEqual(tf.abs(score), tf.scalar(threshold)), 'float32');
        return [m, tf.mul(g, m)];
      });
      masks.set(name, mask);
      maskedGrads.set(name, masked);
    }
    return { grads: maskedGrads, masks, thresholds };
  }
}

/** Kept fractions and mask overlap of one update, from one readback. */
export interface MaskStatistics {
  /** Kept entries / all entries, over every masked tensor. */
  keptFraction: number;
  /** Kept fraction per parameter name. */
  keptByTensor: Record<string, number>;
  /** |M ∩ M_prev| / |M ∪ M_prev| over all entries; undefined without a previous mask. */
  jaccard?: number;
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
