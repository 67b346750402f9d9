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
