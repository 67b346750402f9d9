/**
 * Statistics over seeds, on well-kept library code (stdlib's t distribution, t-test and p-value
 * adjustment) rather than hand-written distribution functions:
 *
 * - {@link meanCI}: mean, SD and the t interval of the mean over seeds;
 * - {@link pairedTest}: the paired t-test of two methods run on the same seeds (difference a − b);
 * - {@link welchTest}: Welch's two-sample t-test of two independent sets (difference of means a − b);
 * - {@link holm}: Holm's step-down adjustment when one method is compared with several;
 * - {@link equivalenceTest}: TOST equivalence within ±margin (the (1 − 2α) interval of the mean
 *   difference lies inside the margin);
 * - {@link bootstrapMeanCI}: a seeded percentile bootstrap interval of a mean;
 * - {@link wilcoxonP}: stdlib's Wilcoxon signed-rank test of paired differences.
 */
import tQuantile = require('@stdlib/stats-base-dists-t-quantile');
import ttest = require('@stdlib/stats-ttest');
import ttest2 = require('@stdlib/stats-ttest2');
import padjust = require('@stdlib/stats-padjust');
import wilcoxon = require('@stdlib/stats-wilcoxon');
import { Rng } from '../util/rng';
import { ConfigError, checkNumber } from '../util/config';

/** Mean, SD and a confidence interval of the mean. */
export interface MeanInterval {
  n: number;
  mean: number;
  /** Sample standard deviation (n − 1); NaN for n < 2. */
  sd: number;
  /** Interval bounds at `level` (t interval); NaN for n < 2. */
  lo: number;
  hi: number;
  level: number;
}

function finite(xs: readonly number[], where: string): number[] {
  const out = xs.filter((x) => Number.isFinite(x));
  if (out.length !== xs.length) throw new ConfigError(`${where}: ${xs.length - out.length} value(s) are not finite numbers`);
  return out;
}

/** Mean ± t-interval of `xs` at `level` (default 95%). */
export function meanCI(xs: readonly number[], level = 0.95): MeanInterval {
  checkNumber('level', level, { min: 0, max: 1, minExclusive: true, maxExclusive: true });
  const v = finite(xs, 'meanCI');
  const n = v.length;
  if (n === 0) return { n, mean: NaN, sd: NaN, lo: NaN, hi: NaN, level };
  const mean = v.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { n, mean, sd: NaN, lo: NaN, hi: NaN, level };
  const sd = Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  const half = tQuantile(1 - (1 - level) / 2, n - 1) * (sd / Math.sqrt(n));
  return { n, mean, sd, lo: mean - half, hi: mean + half, level };
}

/** A paired comparison: the mean of a − b over pairs with its interval and a two-sided p-value. */
export interface PairedComparison extends MeanInterval {
  /** t statistic and degrees of freedom of the paired t-test. */
  t: number;
  df: number;
  pValue: number;
}

/** Paired t-test of `a` against `b` (same length, pair i = the same seed). */
export function pairedTest(a: readonly number[], b: readonly number[], level = 0.95): PairedComparison {
  if (a.length !== b.length) throw new ConfigError(`pairedTest: ${a.length} values against ${b.length}; pairs need equal lengths`);
  const x = finite(a, 'pairedTest a');
  const y = finite(b, 'pairedTest b');
  const diffs = x.map((v, i) => v - (y[i] as number));
  const ci = meanCI(diffs, level);
  if (diffs.length < 2) return { ...ci, t: NaN, df: diffs.length - 1, pValue: NaN };
  if (ci.sd === 0) {
    // stdlib's t-test divides by the SD; identical differences are a degenerate but exact case.
    return { ...ci, t: ci.mean === 0 ? 0 : Math.sign(ci.mean) * Infinity, df: diffs.length - 1, pValue: ci.mean === 0 ? 1 : 0 };
  }
  const r = ttest(x, y, { alpha: 1 - level });
  return { ...ci, lo: r.ci[0] as number, hi: r.ci[1] as number, t: r.statistic, df: r.df, pValue: r.pValue };
}

/** Two independent sets compared: the difference of their means (a − b) with its interval and p. */
export interface TwoSampleComparison {
  n: [number, number];
  diff: number;
  lo: number;
  hi: number;
  /** Welch–Satterthwaite degrees of freedom. */
  df: number;
  pValue: number;
  level: number;
}

/** Welch's two-sample t-test of `a` against `b` (unequal variances); NaN where a set has fewer than 2 values. */
export function welchTest(a: readonly number[], b: readonly number[], level = 0.95): TwoSampleComparison {
  const x = finite(a, 'welchTest a');
  const y = finite(b, 'welchTest b');
  const mean = (v: number[]): number => v.reduce((p, q) => p + q, 0) / v.length;
  const diff = x.length && y.length ? mean(x) - mean(y) : NaN;
  const none = { n: [x.length, y.length] as [number, number], diff, lo: NaN, hi: NaN, df: NaN, pValue: NaN, level };
  if (x.length < 2 || y.length < 2) return none;
  if (meanCI(x).sd === 0 && meanCI(y).sd === 0) return { ...none, lo: diff, hi: diff, pValue: diff === 0 ? 1 : 0 };
  const r = ttest2(x, y, { alpha: 1 - level });
  return { ...none, lo: r.ci[0] as number, hi: r.ci[1] as number, df: r.df as number, pValue: r.pValue };
}

/** Holm-adjusted p-values (same order as given). */
export function holm(pValues: readonly number[]): number[] {
  if (pValues.length === 0) return [];
  const ok = pValues.map((p) => Number.isFinite(p));
  const adjusted = padjust(pValues.filter((_, i) => ok[i]), 'holm') as number[];
  let j = 0;
  return pValues.map((_, i) => (ok[i] ? (adjusted[j++] as number) : NaN));
}

/** Outcome of an equivalence test. */
export interface EquivalenceResult extends MeanInterval {
  margin: number;
  /** `equivalent`: the interval lies inside ±margin; `different`: it lies entirely outside; else `inconclusive`. */
  verdict: 'equivalent' | 'different' | 'inconclusive';
}

/**
 * TOST at level α (default 0.05): the (1 − 2α) t interval of the mean of `diffs` (90% for α = 0.05)
 * against ±`margin`.
 */
export function equivalenceTest(diffs: readonly number[], margin: number, alpha = 0.05): EquivalenceResult {
  checkNumber('margin', margin, { min: 0, minExclusive: true });
  const ci = meanCI(diffs, 1 - 2 * alpha);
  let verdict: EquivalenceResult['verdict'] = 'inconclusive';
  if (Number.isFinite(ci.lo) && ci.lo > -margin && ci.hi < margin) verdict = 'equivalent';
  else if (Number.isFinite(ci.lo) && (ci.lo >= margin || ci.hi <= -margin)) verdict = 'different';
  return { ...ci, margin, verdict };
}

/** A percentile bootstrap interval of a mean. */
export interface BootstrapInterval {
  n: number;
  mean: number;
  lo: number;
  hi: number;
  level: number;
  resamples: number;
}

/**
 * Percentile bootstrap interval of the mean of `xs` at `level`: `resamples` resamples with
 * replacement drawn from a seeded stream (the same inputs give the same interval). Beside the t
 * interval it shows whether the t interval's normality matters for a few skewed seeds.
 */
export function bootstrapMeanCI(xs: readonly number[], level = 0.95, resamples = 10000, seed = 0): BootstrapInterval {
  checkNumber('level', level, { min: 0, max: 1, minExclusive: true, maxExclusive: true });
  checkNumber('resamples', resamples, { min: 100, integer: true });
  const v = finite(xs, 'bootstrapMeanCI');
  const n = v.length;
  const mean = n ? v.reduce((a, b) => a + b, 0) / n : NaN;
  if (n < 2) return { n, mean, lo: NaN, hi: NaN, level, resamples };
  const rng = new Rng(seed);
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += v[rng.int(0, n - 1)] as number;
    means[r] = s / n;
  }
  means.sort();
  const at = (q: number) => means[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))] as number;
  return { n, mean, lo: at((1 - level) / 2), hi: at(1 - (1 - level) / 2), level, resamples };
}

/**
 * Two-sided p-value of the Wilcoxon signed-rank test that the paired differences `diffs` are
 * centred on 0 (stdlib's implementation: exact for small n without ties, normal approximation
 * otherwise; zero differences are dropped as Wilcoxon's test does). NaN for fewer than 2 non-zero
 * differences.
 */
export function wilcoxonP(diffs: readonly number[]): number {
  const v = finite(diffs, 'wilcoxonP').filter((d) => d !== 0);
  if (v.length < 2) return NaN;
  return wilcoxon(v, { zeroMethod: 'wilcox' }).pValue;
}
