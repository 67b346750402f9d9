import { test } from 'node:test';
import assert from 'node:assert/strict';
import { median, medianInterval, quantile } from '../src/util/stats';
import { Rng } from '../src/util/rng';
import { bootstrapMeanCI, meanCI, wilcoxonP } from '../src/analysis/stats';

test('quantile and median interpolate between order statistics', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.equal(quantile([10, 20, 30, 40, 50], 0.1), 14);
  assert.ok(Number.isNaN(median([])));
});

test('medianInterval: the sign-test ranks of the published tables', () => {
  // 95% intervals for the median by sample size: 1-based ranks (j, n + 1 − j).
  const table: [number, number, number][] = [[6, 1, 6], [8, 1, 8], [9, 2, 8], [10, 2, 9], [12, 3, 10], [20, 6, 15], [30, 10, 21], [40, 14, 27], [100, 40, 61]];
  for (const [n, lo, hi] of table) {
    const xs = new Rng(n).shuffle(Array.from({ length: n }, (_, i) => i + 1));
    assert.deepEqual(medianInterval(xs), [lo, hi], `n = ${n}`);
  }
  assert.deepEqual(medianInterval([5, 1, 3]), [1, 5], 'too few values: the whole range');
  assert.deepEqual(medianInterval([2, 4, 6, 8, 10, 12, 14, 16, 18, 20], 0.5), [8, 14], '50% interval, n = 10: ranks 4 and 7');
  assert.ok(medianInterval([]).every(Number.isNaN));
});

test('medianInterval covers the true median about as often as it says', () => {
  // Exponential timings (skewed), true median ln 2; 2,000 seeded trials of 12 values each.
  const rng = new Rng(99);
  let covered = 0;
  const trials = 2000;
  for (let t = 0; t < trials; t++) {
    const xs = Array.from({ length: 12 }, () => -Math.log(1 - rng.next()));
    const [lo, hi] = medianInterval(xs);
    if (lo <= Math.LN2 && Math.LN2 <= hi) covered++;
  }
  // Exact coverage of ranks 3..10 at n = 12 is 96.1%; allow sampling error of 2,000 trials.
  assert.ok(covered / trials > 0.94 && covered / trials < 0.98, `coverage ${covered / trials}`);
});

test('bootstrapMeanCI: seeded, repeatable, brackets the mean, close to the t interval for a symmetric sample', () => {
  const xs = Array.from({ length: 40 }, (_, i) => Math.sin(i * 1.7) * 3 + 1);
  const a = bootstrapMeanCI(xs, 0.95, 5000, 7);
  assert.deepEqual(bootstrapMeanCI(xs, 0.95, 5000, 7), a);
  assert.ok(a.lo < a.mean && a.mean < a.hi);
  const t = meanCI(xs);
  assert.ok(Math.abs((a.hi - a.lo) - (t.hi - t.lo)) < 0.15 * (t.hi - t.lo), `bootstrap width ${a.hi - a.lo} vs t width ${t.hi - t.lo}`);
  assert.ok(Number.isNaN(bootstrapMeanCI([1]).lo));
});

test('wilcoxonP: exact p of ten differences of one sign is 2/2^10; zeros are dropped; a symmetric set is far from significant', () => {
  assert.ok(Math.abs(wilcoxonP([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) - 2 / 1024) < 1e-12);
  assert.ok(Math.abs(wilcoxonP([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) - 2 / 1024) < 1e-12);
  assert.ok(wilcoxonP([-3, -1, 1, 3, -2, 2]) > 0.5);
  assert.ok(Number.isNaN(wilcoxonP([0, 0, 4])));
});
