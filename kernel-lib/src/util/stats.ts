/** Order statistics for timings and summaries. */

/** The q-quantile (0 ≤ q ≤ 1) with linear interpolation between order statistics; NaN for no values. */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

/** The median; NaN for no values. */
export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/**
 * A distribution-free confidence interval for the median of `xs` (the sign-test interval): the
 * order statistics x₍ⱼ₎ and x₍ₙ₊₁₋ⱼ₎ (1-based), with j the largest index whose interval still
 * covers the median with probability ≥ `level`, i.e. 1 − 2·P(Bin(n, ½) ≤ j − 1) ≥ level. With too
 * few values for that (n < 6 at 95%) it is [min, max]; NaNs for no values. Its coverage holds for
 * any continuous distribution of independent values, so it suits skewed timings.
 */
export function medianInterval(xs: readonly number[], level = 0.95): [number, number] {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return [NaN, NaN];
  // P(Bin(n, ½) ≤ k) accumulated term by term: C(n, k) / 2ⁿ, in logs to stay finite for large n.
  let logTerm = -n * Math.LN2;
  let below = 0;
  let j = 1;
  for (let k = 0; k < n; k++) {
    below += Math.exp(logTerm);
    if (1 - 2 * below < level) break;
    j = k + 1;
    logTerm += Math.log((n - k) / (k + 1));
  }
  if (j > (n + 1) / 2) j = Math.floor((n + 1) / 2);
  return [s[j - 1] as number, s[n - j] as number];
}
