/**
 * Statistics over seeds, result tables, the verdict rules of the claims, table files and the
 * danfojs bridge. Reference values come from textbook cases (exact t quantiles, a hand-computed
 * paired test), not from the code under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { equivalenceTest, holm, meanCI, pairedTest, welchTest } from '../src/analysis/stats';
import tQuantile = require('@stdlib/stats-base-dists-t-quantile');
import { loadResults, pairedVsBaseline, resultRow, summarize, toDataFrame, type ResultRow } from '../src/analysis/results';
import { claim1, claim1b, claim1bVerdict, claim1Verdict, claim2, claim3Verdict, claimsMarkdown, interimVerdict, sizeTrend, sizeVerdict } from '../src/analysis/claims';
import { ablationTableRows, answerAblations } from '../src/analysis/ablations';
import { exportTable, tableCsv, tableMarkdown } from '../src/plots/tables';
import { seedsForHalfWidth, comparisonReport, withPlannedPairs } from '../src/findings/reports';
import { ablationAnswersFigure } from '../src/findings/figures';
import { expandGrid, resolveGrid } from '../src/sweep/grid';
import { resolveFinetuneConfig } from '../src/sweep/finetune';
import type { RunRecord } from '../src/sweep/store';

const close = (a: number, b: number, tol = 1e-9): boolean => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

test('meanCI: mean, SD and the t interval (t₀.₉₇₅,₄ = 2.776445)', () => {
  const c = meanCI([1, 2, 3, 4, 5]);
  assert.equal(c.n, 5);
  assert.equal(c.mean, 3);
  assert.ok(close(c.sd, Math.sqrt(2.5)));
  const half = 2.7764451051977987 * Math.sqrt(2.5) / Math.sqrt(5);
  assert.ok(close(c.lo, 3 - half, 1e-7) && close(c.hi, 3 + half, 1e-7), `${c.lo} ${c.hi}`);
  assert.ok(Number.isNaN(meanCI([7]).sd) && meanCI([7]).mean === 7);
  assert.throws(() => meanCI([1, NaN]), /not finite/);
});

test('pairedTest equals a t-test of the differences; Holm matches the step-down rule', () => {
  const a = [10, 12, 9, 14, 11, 13];
  const b = [9, 10, 9, 11, 10, 10];
  const d = a.map((x, i) => x - b[i]!); // 1 2 0 3 1 3: mean 5/3
  const t = pairedTest(a, b);
  const m = d.reduce((x, y) => x + y, 0) / d.length;
  const sd = Math.sqrt(d.reduce((x, y) => x + (y - m) ** 2, 0) / (d.length - 1));
  assert.ok(close(t.mean, m));
  assert.ok(close(t.t, m / (sd / Math.sqrt(6)), 1e-7));
  assert.equal(t.df, 5);
  assert.ok(t.pValue > 0.005 && t.pValue < 0.02, `p ${t.pValue}`);
  assert.ok(t.lo > 0 && t.lo < m && t.hi > m);
  assert.throws(() => pairedTest([1, 2], [1]), /equal lengths/);
  const same = pairedTest([1, 2, 3], [0, 1, 2]);
  assert.equal(same.pValue, 0);
  // Holm on (0.01, 0.04, 0.03): sorted 0.01·3, 0.03·2, 0.04·1 → monotone 0.03, 0.06, 0.06.
  const adj = holm([0.01, 0.04, 0.03]);
  assert.ok(close(adj[0]!, 0.03) && close(adj[1]!, 0.06) && close(adj[2]!, 0.06), adj.join(','));
  assert.ok(Number.isNaN(holm([NaN, 0.5])[0]!));
});

test('equivalence (TOST): inside, outside and straddling the margin', () => {
  assert.equal(equivalenceTest([0.5, -0.5, 0.2, -0.1, 0.3], 3).verdict, 'equivalent');
  assert.equal(equivalenceTest([10, 11, 9.5, 10.5, 10], 3).verdict, 'different');
  assert.equal(equivalenceTest([4, -4, 3, -2, 5], 3).verdict, 'inconclusive');
  assert.equal(equivalenceTest([1, 1.1], 3).level, 0.9);
});

test('the verdict rules of claims 1 and 3', () => {
  assert.equal(claim1Verdict({ n: 10, lo: 0.1, hi: 4 }), 'reproduced');
  assert.equal(claim1Verdict({ n: 10, lo: -4, hi: -0.1 }), 'contradicted');
  assert.equal(claim1Verdict({ n: 10, lo: -1, hi: 1 }), 'inconclusive');
  assert.equal(claim1Verdict({ n: 1, lo: NaN, hi: NaN }), 'no data');
  assert.equal(claim3Verdict([0.99, 1.049]), 'reproduced');
  assert.equal(claim3Verdict([1.06, 1.2]), 'not reproduced');
  assert.equal(claim3Verdict([1.0, 1.08]), 'inconclusive');
});

function row(over: Partial<ResultRow>): ResultRow {
  return {
    key: Math.random().toString(36), grid: 'g', status: 'done', method: 'sft', methodLabel: 'sft', task: 'math', preset: 'micro', seed: 0,
    ratio: null, scope: null, signal: null, maskUpdate: null, steps: 250, testSize: 1000, accuracy: 50, valLoss: 0.1, testLoss: null, baseValLoss: 4, facts: 80, baseFacts: 80,
    generalValLoss: 1, baseGeneralValLoss: 0.7, msPerUpdate: 400, peakTensorMiB: null, trainSeconds: 100, totalSeconds: 120, weightsSha256: 'x', date: '2026-12-01', commit: null,
    gradientPath: 'fused native kernels (avx2, build b1)',
    ...over,
  };
}

test('Welch\'s two-sample test: the Welch–Satterthwaite interval, and no interval below two values a side', () => {
  const a = [1, 2, 3, 4, 5];
  const b = [2, 4, 6, 8, 11.5, 9];
  const w = welchTest(a, b);
  // By hand: var(a) = 2.5, var(b) = 12.6, se² = 2.5/5 + 12.6/6, df by Welch–Satterthwaite.
  const va = 2.5 / 5;
  const vb = b.reduce((p, x) => p + (x - 6.75) ** 2, 0) / 5 / 6;
  const df = (va + vb) ** 2 / (va ** 2 / 4 + vb ** 2 / 5);
  const half = tQuantile(0.975, df) * Math.sqrt(va + vb);
  assert.ok(close(w.diff, 3 - 6.75));
  assert.ok(close(w.df, df), `${w.df} vs ${df}`);
  assert.ok(close(w.lo, -3.75 - half) && close(w.hi, -3.75 + half), `[${w.lo}, ${w.hi}]`);
  assert.ok(w.pValue > 0.01 && w.pValue < 0.05, String(w.pValue));
  assert.deepEqual(w.n, [5, 6]);
  const one = welchTest([1], [2, 3]);
  assert.ok(Number.isNaN(one.lo) && Number.isNaN(one.pValue));
  assert.equal(sizeVerdict(one), 'no data');
  assert.deepEqual([welchTest([2, 2], [1, 1]).lo, welchTest([2, 2], [1, 1]).pValue], [1, 0], 'no spread on either side: exact');
  assert.throws(() => welchTest([1, NaN], [1, 2]), /not finite/);
});

test('the size question: claim 1 at each size, and the change of the gain from the reference size by the written rule', () => {
  const at = (preset: string, gain: (s: number) => number): ResultRow[] => Array.from({ length: 8 }, (_, s) => [
    row({ seed: s, preset, accuracy: 60 + s }),
    row({ seed: s, preset, method: 'gmt', methodLabel: 'gmt', accuracy: 60 + s + gain(s) }),
  ]).flat();
  const wobble = (s: number): number => (s % 2 ? 0.5 : -0.5);
  const micro = at('micro', (s) => 1 + wobble(s));
  const [same] = sizeTrend([{ size: 'nano', rows: at('nano', (s) => 1 - wobble(s)) }, { size: 'micro', rows: micro }], 'gmt', ['math']);
  assert.deepEqual(same!.sizes.map((x) => [x.size, x.claim.verdict]), [['nano', 'reproduced'], ['micro', 'reproduced']]);
  assert.equal(same!.change[0]!.verdict, 'no dependence found');
  assert.ok(close(same!.change[0]!.test.diff, 0));
  const [bigger] = sizeTrend([{ size: 'nano', rows: at('nano', (s) => 6 + wobble(s)) }, { size: 'micro', rows: micro }], 'gmt', ['math']);
  assert.equal(bigger!.change[0]!.verdict, 'depends on size');
  assert.ok(close(bigger!.change[0]!.test.diff, 5));
  assert.equal(bigger!.change[0]!.reference, 'micro');
  const [none] = sizeTrend([{ size: 'nano', rows: [] }, { size: 'micro', rows: micro }], 'gmt', ['math']);
  assert.equal(none!.change[0]!.verdict, 'no data');
  assert.throws(() => sizeTrend([{ size: 'micro', rows: micro }], 'gmt', ['math']), /at least two sizes/);
  const none3 = { claim1: null, claim2: null, claim3: null };
  const md = claimsMarkdown({ protocols: [{ title: 'Protocol 2', prefix: 'Protocol 2 · ', claim1: [], claim2: [], claim3: [], provenance: none3, size: { results: [bigger!], grid: 'p2_size_nano.json', provenance: null, interim: 'The store lacks 2 runs.', bases: [{ base: 'nano', parameters: 114624, pretrainSteps: 600 }, { base: 'micro', parameters: 822400, pretrainSteps: null }] } }] });
  assert.match(md, /`nano` has 114,624 parameters and was pre-trained for 600 updates; `micro` has 822,400 parameters\. The bases differ in pre-training as well as in size/);
  assert.match(md, /### Protocol 2 · Beyond the paper: does GMT's gain depend on model size\?/);
  assert.match(md, /\| math \| nano \| .* \| \+6\.0 \[.*\] \| 8 \| reproduced \|/);
  assert.match(md, /- math: gain at nano − gain at micro = \+5\.0 \[.*\] \(Welch, 8 and 8 seeds; p [0-9.]+\): \*interim: depends on size\*\./);
  assert.match(md, /> \*\*Interim, not answers\.\*\* The store lacks 2 runs\./);
  assert.match(md, /\*\*Beyond the paper: does GMT's gain depend on model size\?\*\* \(protocol 2; written before its runs\)/, 'the rule is with the others');
});

test('the size grid is claim 1\'s protocol-2 grid at the nano base: same methods, tasks, seeds and settings', () => {
  const read = (f: string) => JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'notebooks', 'grids', f), 'utf8'));
  const micro = read('p2_gmt_vs_sft.json');
  const nano = read('p2_size_nano.json');
  assert.equal(nano.base.base, 'nano');
  assert.equal(micro.base.base, 'micro');
  const strip = (g: Record<string, unknown>) => ({ ...g, name: undefined, description: undefined, base: { ...(g.base as object), base: undefined } });
  assert.deepEqual(strip(nano), strip(micro));
});

test('claims 1 and 2 from rows: paired by seed, verdicts by the written rules', () => {
  const rows: ResultRow[] = [];
  for (let s = 0; s < 8; s++) {
    rows.push(row({ seed: s, accuracy: 50 + s }));
    rows.push(row({ seed: s, method: 'gmt', methodLabel: 'gmt', accuracy: 53 + s + (s % 2 ? 0.5 : -0.5) }));
    rows.push(row({ seed: s, task: 'code', accuracy: 40 + s * 3 }));
    rows.push(row({ seed: s, task: 'code', method: 'gmt', methodLabel: 'gmt', accuracy: 40 + s * 3 + (s % 2 ? 4 : -4) }));
  }
  const [math, code] = claim1(rows, 'gmt', ['math', 'code']);
  assert.equal(math!.verdict, 'reproduced');
  assert.ok(close(math!.diff.mean, 3));
  assert.equal(code!.verdict, 'inconclusive');
  // Claim 2: flat within ±1 from 0.1 to 0.5, falling from 0.7 on.
  const r2: ResultRow[] = [];
  for (let s = 0; s < 6; s++) {
    for (const k of [0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9]) {
      const drop = k >= 0.7 ? 10 * (k - 0.5) * 10 : 0;
      r2.push(row({ seed: s, method: 'gmt', methodLabel: `gmt ${k}`, scope: 'tensor', ratio: k, accuracy: 60 + s - drop + (s % 2 ? 0.3 : -0.3) * k }));
    }
  }
  const c2 = claim2(r2, 'math', 'tensor');
  assert.equal(c2.verdict, 'reproduced', JSON.stringify(c2.checks));
  assert.equal(c2.fallsFrom, 0.7);
  const none = { claim1: null, claim2: null, claim3: null };
  const b = claim1b(rows.map((r) => ({ ...r, testLoss: 1 - r.accuracy! / 100 })), 'gmt', ['math']);
  const md = claimsMarkdown({
    protocols: [
      { title: 'Protocol 2: newer', prefix: 'Protocol 2 · ', claim1: [math!], claim1b: b, claim2: [c2], claim3: [], provenance: none },
      { title: 'Protocol 1: older', prefix: '', claim1: [math!, code!], claim2: [c2], claim3: [], provenance: none },
    ],
  });
  assert.equal(md.match(/Verdict rules \(written before the full-mode runs\)/g)?.length, 1, 'the rules are written once');
  assert.match(md, /\| math \|.*\*\*reproduced\*\* \|/);
  assert.match(md, /first falls significantly below k = 0.3 at k = 0.7/);
  // The newer protocol comes first, its headings are its own; the older one's verdicts stay.
  assert.ok(md.indexOf('## Protocol 2: newer') < md.indexOf('## Protocol 1: older'));
  assert.match(md, /### Protocol 2 · Claim 1: GMT beats vanilla fine-tuning[\s\S]*### Protocol 2 · Claim 1b[\s\S]*\| math \|.*\*\*reproduced\*\* \|[\s\S]*## Protocol 1: older\n[\s\S]*### Claim 1: GMT beats/);
  assert.equal(md.match(/\| code \|.*\*\*inconclusive\*\* \|/g)?.length, 1, 'code only under protocol 1');
  // While planned runs are missing, the protocol's verdicts are shown as interim, never as its own.
  const interim = claimsMarkdown({
    protocols: [{ title: 'Protocol 2: partial', prefix: 'Protocol 2 · ', claim1: [math!], claim1b: b, claim2: [c2], claim3: [], provenance: none, interim: { text: 'The store lacks 3 runs.', claim1: true, claim2: true } }],
  });
  assert.match(interim, /> \*\*Interim, not verdicts\.\*\* The store lacks 3 runs\./);
  assert.doesNotMatch(interim, /\*\*reproduced\*\*/);
  assert.equal(interim.match(/\*interim: reproduced\*/g)?.length, 3, 'claims 1, 1b and 2');
  // Claim 1's runs all in, claim 2's not: claim 1 and 1b keep their verdicts.
  const half = claimsMarkdown({
    protocols: [{ title: 'Protocol 2: partial', prefix: 'Protocol 2 · ', claim1: [math!], claim1b: b, claim2: [c2], claim3: [], provenance: none, interim: { text: 'x', claim1: false, claim2: true } }],
  });
  assert.match(half, /> \*\*Interim, not verdicts for claim 2\.\*\* x/);
  assert.equal(half.match(/\*\*reproduced\*\*/g)?.length, 2, 'claims 1 and 1b');
  assert.equal(half.match(/\*interim: reproduced\*/g)?.length, 1, 'claim 2');
  // The seeds column says how many of the planned pairs are in while some are missing: pairs are
  // seeds planned at both k and 0.3 (here 10 at 0.1, 0.3 with seeds 0-9, 0.2 with seeds 0-5).
  const ctx = { kernelLib: '0.0.0-test', backend: 'wasm', gradientPath: 'test' };
  const plannedRuns = [
    ...expandGrid(resolveGrid({ name: 'p', methods: [{ method: 'gmt', options: { ratio: [0.1, 0.3], scope: 'tensor' } }], tasks: ['math'], seeds: { count: 10 } }), ctx, 'full'),
    ...expandGrid(resolveGrid({ name: 'p', methods: [{ method: 'gmt', options: { ratio: [0.2, 0.4, 0.5], scope: 'tensor' } }], tasks: ['math'], seeds: { count: 6 } }), ctx, 'full'),
    ...expandGrid(resolveGrid({ name: 'p', methods: [{ method: 'gmt', options: { ratio: [0.1], scope: 'global' } }], tasks: ['math'], seeds: { count: 20 } }), ctx, 'full'),
  ];
  const partial = withPlannedPairs(c2, plannedRuns);
  assert.deepEqual(partial.checks.map((k) => k.planned), [10, 6, 6, 6]);
  const seeds = claimsMarkdown({ protocols: [{ title: 'P', prefix: '', claim1: [], claim2: [partial], claim3: [], provenance: none }] });
  assert.match(seeds, /\| math \| tensor \| 0\.1 \| [^|]+ \| 6 of 10 \| equivalent \|/);
  assert.match(seeds, /\| math \| tensor \| 0\.2 \| [^|]+ \| 6 \| equivalent \|/);
  assert.equal(interimVerdict('reproduced', 2), 'interim: reproduced');
  assert.equal(interimVerdict('reproduced', 0), 'reproduced');
});

function record(seed: number, method: string, acc: number): RunRecord {
  return {
    kind: 'gmt-lab/run', v: 1, key: `${method}-${seed}`, status: 'done', label: '', methodLabel: method, grid: 'g',
    config: resolveFinetuneConfig({ method, seed, base: 'nano', warmup: 1, steps: 10, methodOptions: method === 'gmt' ? { ratio: 0.3 } : {} }),
    inputs: { base: 'x' }, metrics: { testAccuracy: acc, valLoss: 0.2, baseValLoss: 4 }, weightsSha256: 'w',
    timings: { totalMs: 1, trainMs: 1, msPerUpdate: 1, meanMsPerUpdate: 1, gradientsMsPerUpdate: 1, transformMsPerUpdate: 0, initMs: 0, evalMs: 0, scoreMs: 0, updates: 10 },
    provenance: { kernelLib: '0', backend: 'wasm', gradientPath: 'p', node: 'v', machine: { cpu: 'c', cores: 2, platform: 'linux', arch: 'x64', host: 'h' }, commit: null, date: 'd', threads: 1, jobs: 1 },
  };
}

test('result tables: rows in points, summaries, paired differences with Holm, forgetting and noise', () => {
  const recs = [0, 1, 2, 3].flatMap((s) => [record(s, 'sft', 0.5 + s / 100), record(s, 'gmt', 0.52 + s / 100), record(s, 'hft', 0.4 + (s % 2) / 10)]);
  assert.equal(resultRow(recs[1]!).ratio, 0.3);
  assert.equal(resultRow(recs[0]!).ratio, 0, 'SFT is k = 0');
  const table = loadResults(recs);
  assert.equal(table.numRows(), 12);
  const s = summarize(table, ['methodLabel'], 'accuracy').objects() as { methodLabel: string; mean: number; n: number }[];
  assert.ok(close(s.find((r) => r.methodLabel === 'sft')!.mean, 51.5));
  const p = pairedVsBaseline(table, { metric: 'accuracy', baseline: 'sft', by: [] }).objects() as { method: string; diff: number; p: number; pHolm: number }[];
  assert.equal(p.length, 2);
  const g = p.find((r) => r.method === 'gmt')!;
  assert.ok(close(g.diff, 2, 1e-6));
  assert.ok(p.every((r) => r.pHolm >= r.p));
  assert.throws(() => pairedVsBaseline([...recs, record(0, 'gmt', 0.1)].map(resultRow), { metric: 'accuracy', baseline: 'sft', by: [] }), /two runs of gmt with seed 0/);
  const report = comparisonReport(table.objects() as unknown as ResultRow[], 'gmt');
  const noise = report.noise[0] as { seeds: number; diffSd: number; seedsForPlusMinus3: number };
  assert.equal(noise.seeds, 4);
  assert.ok(noise.diffSd < 1e-9, 'GMT − SFT is exactly 2 points on every seed');
  assert.equal(seedsForHalfWidth(5, 3), 14, 't-based: 2.160·5/√14 = 2.89 ≤ 3 < 2.179·5/√13 = 3.02');
  const df = toDataFrame(table);
  assert.deepEqual(df.shape, [12, table.numCols()]);
  assert.ok(df.columns.includes('accuracy'));
});

test('tables as Markdown and CSV files', () => {
  const rows = [{ method: 'gmt', acc: 51.23456, note: 'a|b' }, { method: 'sft', acc: 50, note: 'x,"y"' }];
  assert.equal(tableMarkdown(rows, { digits: 3 }), '| method | acc | note |\n|:---|---:|:---|\n| gmt | 51.2 | a\\|b |\n| sft | 50 | x,"y" |\n');
  assert.equal(tableCsv(rows), 'method,acc,note\ngmt,51.23456,a|b\nsft,50,"x,""y"""\n');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-table-'));
  const files = exportTable(rows, path.join(dir, 'sub', 't'), { caption: 'Caption' });
  assert.deepEqual(files.map((f) => path.basename(f)), ['t.md', 't.csv']);
  assert.match(fs.readFileSync(files[0]!, 'utf8'), /^Caption\n\n\| method/);
});

test('claim 1b: lower test-answer loss for GMT on the same seeds reproduces it; claim 1 carries the bootstrap, Wilcoxon and failed seeds', () => {
  assert.equal(claim1bVerdict({ n: 10, lo: -0.02, hi: -0.001 }), 'reproduced');
  assert.equal(claim1bVerdict({ n: 10, lo: 0.001, hi: 0.02 }), 'contradicted');
  assert.equal(claim1bVerdict({ n: 10, lo: -0.01, hi: 0.01 }), 'inconclusive');
  assert.equal(claim1bVerdict({ n: 1, lo: NaN, hi: NaN }), 'no data');
  const rows: ResultRow[] = [];
  for (let seed = 0; seed < 12; seed++) {
    const base = 0.05 + 0.01 * Math.sin(seed);
    rows.push(row({ seed, method: 'sft', methodLabel: 'sft', testLoss: base, accuracy: seed === 3 ? 20 : 80 + seed % 3 }));
    rows.push(row({ seed, method: 'gmt', methodLabel: 'gmt', testLoss: base - 0.004 - 0.001 * (seed % 2), accuracy: 81 + seed % 4 }));
  }
  const [b] = claim1b(rows, 'gmt', ['math']);
  assert.equal(b!.verdict, 'reproduced');
  assert.ok(b!.diff.hi < 0 && Math.abs(b!.diff.mean + 0.0045) < 1e-9, `diff ${b!.diff.mean}`);
  const [c] = claim1(rows, 'gmt', ['math']);
  assert.deepEqual(c!.failed.sft, [1, 12]);
  assert.deepEqual(c!.failed.gmt, [0, 12]);
  assert.ok(c!.bootstrap.lo <= c!.diff.mean && c!.diff.mean <= c!.bootstrap.hi);
  assert.ok(c!.wilcoxonP > 0 && c!.wilcoxonP < 0.05, `wilcoxon p ${c!.wilcoxonP}`);
});

test('notebook 06\'s questions: each pairs its two cells by seed and answers by the sign of the 95% interval', () => {
  const rows: ResultRow[] = [];
  for (let seed = 0; seed < 6; seed++) {
    const jitter = (seed % 3) - 1;
    rows.push(row({ seed, method: 'sft', methodLabel: 'sft', ratio: 0, accuracy: 70 + jitter }));
    for (const ratio of [0.1, 0.3, 0.5]) {
      rows.push(row({ seed, method: 'gmt', methodLabel: `gmt ${ratio}`, ratio, scope: 'tensor', signal: 'grad', maskUpdate: false, accuracy: 75 + jitter + (ratio === 0.5 ? -4 + 0.1 * seed : 0) }));
    }
    rows.push(row({ seed, method: 'gmt', methodLabel: 'gmt global', ratio: 0.3, scope: 'global', signal: 'grad', maskUpdate: false, accuracy: 75 + (seed % 2 ? 2 : -2) }));
  }
  const answers = new Map(answerAblations(rows).map((a) => [a.question.id, a]));
  assert.equal(answers.get('gmt-vs-sft')!.answer, 'A higher');
  assert.equal(answers.get('gmt-vs-sft')!.diff.n, 6);
  assert.equal(answers.get('ratio-0.1')!.answer, 'no difference found', 'identical cells: a zero-width interval at 0');
  assert.equal(answers.get('ratio-0.5')!.answer, 'A lower');
  assert.equal(answers.get('scope')!.answer, 'no difference found');
  assert.equal(answers.get('signal-grad-weight')!.answer, 'no data');
  assert.equal(ablationTableRows([answers.get('gmt-vs-sft')!])[0]!['A − B'], 5);
  assert.equal(ablationTableRows([answers.get('gmt-vs-sft')!])[0]!['pairs on one build'], '6 of 6');
  // Pairs made on two kernel builds are counted apart.
  const mixed = rows.map((r) => (r.method === 'sft' && r.seed < 2 ? { ...r, gradientPath: 'fused native kernels (avx512, build b2)' } : r));
  const mixedAnswer = answerAblations(mixed).find((a) => a.question.id === 'gmt-vs-sft')!;
  assert.deepEqual([mixedAnswer.sameBuildPairs, mixedAnswer.diff.n], [4, 6]);
  assert.equal(ablationTableRows([mixedAnswer])[0]!['pairs on one build'], '4 of 6');
  assert.equal(ablationTableRows([answers.get('signal-grad-weight')!])[0]!['pairs on one build'], '—');
  // The figure: every question a row (the first on top), each answer a trace with its interval.
  const all = answerAblations(rows);
  const fig = ablationAnswersFigure(all, { title: 'questions' });
  const traces = fig.data as { name: string; x: number[]; y: string[]; error_x: { array?: number[]; arrayminus?: number[]; visible?: boolean } }[];
  assert.deepEqual(traces.map((t) => t.name).sort(), ['A higher', 'A lower', 'no data', 'no difference found']);
  assert.deepEqual(traces.flatMap((t) => t.y).sort(), all.map((a) => `${a.question.a.label}<br>vs ${a.question.b.label}`).sort());
  const yaxis = fig.layout.yaxis as { categoryarray: string[] };
  assert.equal(yaxis.categoryarray.at(-1), `${all[0]!.question.a.label}<br>vs ${all[0]!.question.b.label}`);
  const lower = traces.find((t) => t.name === 'A lower')!;
  const r05 = answers.get('ratio-0.5')!.diff;
  assert.deepEqual([lower.x[0], lower.x[0]! + lower.error_x.array![0]!, lower.x[0]! - lower.error_x.arrayminus![0]!].map((v) => v.toFixed(9)), [r05.mean, r05.hi, r05.lo].map((v) => v.toFixed(9)));
  const none = traces.find((t) => t.name === 'no data')!;
  assert.ok(none.x.every((v) => v === 0) && none.error_x.visible === false && none.x.length === 4, 'random masking, the two signals and maskUpdate have no rows');
  // Where the runs trained goes on a second, smaller line, and the top margin makes room for it.
  const sub = ablationAnswersFigure(all, { title: 'questions', subtitle: 'micro on the native CPU engine' });
  const subTitle = (sub.layout.title as { text: string }).text.split('<br>');
  assert.equal(subTitle[0], 'questions');
  assert.match(subTitle[1] ?? '', /^<span style="font-size:13px;[^"]*">micro on the native CPU engine<\/span>$/);
  assert.equal((fig.layout.title as { text: string }).text, 'questions', 'no subtitle: the title alone');
  assert.ok((sub.layout.margin as { t: number }).t > (fig.layout.margin as { t: number }).t);
});

test('pilot: paired SD, failed seeds, convergence, median minutes, seeds and the choice follow PILOT_RULES', async () => {
  const { pilotStats, choosePilot, seedsFor, PILOT_RULES } = await import('../src/analysis/pilot');
  // SFT's validation loss: base 4, then 1.0 at update 300 and `last` at 400 (late fall = (1 - last) / (4 - last)).
  const rec = (grid: string, task: string, method: string, seed: number, acc: number, raw: number, last: number, ms: number) => ({
    grid, status: 'done', config: { task, method, seed },
    metrics: { testAccuracy: acc, rawTestAccuracy: raw, baseValLoss: 4 },
    history: { evals: [{ step: 300, valLoss: 1.0 }, { step: 400, valLoss: last }] },
    timings: { totalMs: ms },
  }) as unknown as RunRecord;
  const records: RunRecord[] = [];
  const diffs = [2, -1, 0, 3, 1, -2, 4, 1]; // points
  for (const task of ['math', 'code']) {
    diffs.forEach((d, i) => {
      const sftAcc = i === 5 ? 0.3 : 0.7 + 0.01 * i; // seed 5's SFT is a failed seed (< half the median)
      // grid a: converged (late fall 0.01 / 3.01 < 2%), one run slowed 10x; grid b: not converged
      records.push(rec('a', task, 'sft', i, sftAcc, sftAcc, 0.99, i === 0 ? 600000 : 60000));
      records.push(rec('a', task, 'gmt', i, sftAcc + d / 100, sftAcc, 0.99, 60000));
      records.push(rec('b', task, 'sft', i, sftAcc, sftAcc, 0.9, 30000));
      records.push(rec('b', task, 'gmt', i, sftAcc, sftAcc, 0.9, 30000));
    });
  }
  const cand = (id: string, grid: string, evaluation: 'raw' | 'averaged') => ({ id, name: id, grid, evaluation, description: '' });
  const a = pilotStats(cand('A', 'a', 'averaged'), records);
  const aRaw = pilotStats(cand('E', 'a', 'raw'), records);
  const b = pilotStats(cand('B', 'b', 'averaged'), records);
  const sd = meanCI(diffs).sd;
  for (const t of a.tasks) {
    assert.equal(t.pairs, 8);
    assert.ok(close(t.diffMean, 1, 1e-9) && close(t.diffSd, sd, 1e-9), `${t.diffMean} ${t.diffSd}`);
    assert.deepEqual(t.failed.sft, [1, 8]);
    assert.ok(t.converged && close(t.sftLateFall, 0.01 / 3.01, 1e-9));
    assert.equal(t.minutesPerRun, 1, 'the median ignores the one slowed run');
    assert.equal(t.minutesQuiet, 1, 'so does the 10th percentile');
  }
  assert.ok(close(a.cost, 2 * sd ** 2 * 1, 1e-9));
  assert.ok(close(a.costQuiet, a.cost, 1e-9));
  // Wall times 1, 2, …, 10 minutes on one task: median 5.5, 10th percentile 1.9 (linear between order statistics).
  const spread = Array.from({ length: 10 }, (_, i) => rec('c', 'math', i % 2 ? 'gmt' : 'sft', i >> 1, 0.7, 0.7, 0.99, 60000 * (i + 1)));
  const c = pilotStats(cand('C', 'c', 'raw'), spread).tasks[0]!;
  assert.ok(close(c.minutesPerRun, 5.5, 1e-9) && close(c.minutesQuiet, 1.9, 1e-9), `${c.minutesPerRun} ${c.minutesQuiet}`);
  assert.equal(aRaw.tasks[0]!.diffSd, 0, 'raw evaluation reads rawTestAccuracy');
  assert.ok(!b.converged && b.tasks.every((t) => !t.converged), 'late fall 0.1/3.1 > 2%');
  assert.equal(a.seedsClaim1.math, seedsFor(sd, PILOT_RULES.claim1HalfWidth, 0.95));
  // the zero-SD candidate E is cheapest and converged, so the rule picks it; B never qualifies
  assert.equal(choosePilot([a, b, aRaw])!.candidate.id, 'E');
  assert.equal(choosePilot([a, b])!.candidate.id, 'A');
  assert.equal(choosePilot([b]), undefined);
  // No choice until every candidate is complete: one with 7 pairs on a task holds it back.
  const partial = pilotStats(cand('P', 'a', 'raw'), records.filter((r) => !(r.config.task === 'code' && r.config.seed === 7)));
  assert.equal(partial.tasks.find((t) => t.task === 'code')!.pairs, 7);
  assert.equal(choosePilot([a, partial]), undefined, 'the pilot is not complete');
  assert.equal(choosePilot([a, pilotStats(cand('Q', 'none', 'raw'), records)]), undefined, 'a candidate without runs holds it back too');
  // seedsFor: smallest n with t(0.975, n-1)·SD/√n ≤ h; SD 5, h 3 → 14 (as seedsForHalfWidth)
  assert.equal(seedsFor(5, 3, 0.95), 14);

  // Notebook 07's figures and tables of the same figures.
  const { pilotSdFigure, pilotSeedsFigure, pilotCostFigure } = await import('../src/findings/figures');
  const { pilotTaskRows, pilotCandidateRows } = await import('../src/findings/protocol');
  assert.deepEqual(a.tasks[0]!.diffs.map((x) => Math.round(x * 1e6) / 1e6), diffs, 'per-seed differences in seed order');
  const sdFig = pilotSdFigure([a, b], { title: 'sd' });
  assert.deepEqual(sdFig.data.map((t) => t.name), ['code', 'math']);
  assert.ok(close((sdFig.data[0]!.y as number[])[0]!, sd, 1e-9) && (sdFig.data[0]!.y as number[])[1] === 0);
  const seedsFig = pilotSeedsFigure([a], { title: 'seeds' });
  assert.equal((seedsFig.data[0]!.y as number[]).length, 8);
  const costFig = pilotCostFigure([a, b], { title: 'cost' });
  assert.deepEqual(costFig.data[0]!.x, ['A · A', 'B · B (SFT not converged)']);
  for (const f of [pilotSdFigure([], { title: 'x' }), pilotSeedsFigure([], { title: 'x' }), pilotCostFigure([], { title: 'x' })]) {
    assert.equal(f.data.length, 0, 'no pilot runs: a placeholder');
  }
  assert.equal(pilotTaskRows([a, b]).length, 4);

  // The budget rule: SD ≈ 1.9 and 1 min per run fit; SD 9 falls back to ±2.5 and runs over 3 h.
  const { mainRunPlan, halfWidth } = await import('../src/analysis/pilot');
  const small = mainRunPlan(a);
  assert.equal(small.claim1Fallback, false);
  assert.deepEqual(small.claim1Seeds, { code: seedsFor(sd, 1.5, 0.95), math: seedsFor(sd, 1.5, 0.95) });
  assert.ok(small.claim1HalfWidth.math! <= 1.5 && small.claim2Seeds.math! <= PILOT_RULES.claim2MaxSeeds);
  assert.equal(small.runs.claim1, 2 * 2 * small.claim1Seeds.math!);
  assert.equal(small.runs.claim2, 2 * (9 * small.claim2Seeds.math! + 4 * PILOT_RULES.claim2HighRatioSeeds));
  assert.ok(close(small.minutes.total, (small.runs.claim1 + small.runs.claim2 + 200) / 2, 1e-9), 'two runs at a time, 1 min each');
  const noisy = { ...a, tasks: a.tasks.map((t) => ({ ...t, diffSd: 9, minutesPerRun: 2 })) };
  const big = mainRunPlan(noisy);
  assert.equal(big.claim1Fallback, true, '±1.5 at SD 9 needs ~140 seeds per task: over 2 h');
  assert.equal(big.claim1Seeds.math, seedsFor(9, 2.5, 0.95));
  assert.ok(big.claim1HalfWidth.math! <= 2.5 && big.claim1HalfWidth.math! > halfWidth(9, big.claim1Seeds.math! + 1, 0.95));
  assert.equal(big.claim2Seeds.code, PILOT_RULES.claim2MaxSeeds);
  assert.equal(big.overBudget, true);

  // Protocol 2's grids from the choice: the candidate's settings, claim 1's and 2's seeds per task, seeds from 0.
  const { protocolTwoGrids } = await import('../src/findings/protocol');
  const { expandGrid } = await import('../src/sweep/grid');
  const source = {
    name: 'a', description: '', engine: 'native' as const, base: { base: 'nano', steps: 20, warmup: 2, testSize: 10, ema: 0.98, lr: 0.001 },
    methods: ['sft'], tasks: ['math', { task: 'code', taskOptions: { stages: [3, 3] } }], presets: [], seeds: { count: 8, from: 1000 }, vary: {},
  };
  const figs = (chosen: typeof a | undefined) => ({ grids: new Map([['a', source as never]]), calibration: [], picks: new Map(), stats: [a], chosen, runs: 32 });
  const fast = { base: { steps: 3 }, seeds: [0] };
  const rawChoice = { ...noisy, candidate: { ...noisy.candidate, evaluation: 'raw' as const } };
  const g = protocolTwoGrids(figs(rawChoice), { gmtVsSft: { ...source, fast } as never });
  assert.equal(g.gmtVsSft.base.ema, undefined, 'a raw candidate is scored on its raw weights');
  assert.equal(g.gmtVsSft.base.lr, 0.001);
  assert.ok(g.gmtVsSft.base.forgetting && g.gmtVsSft.base.testLoss);
  assert.deepEqual(g.gmtVsSft.fast, fast, 'fast mode keeps the toy sizes it had');
  const ctx = { kernelLib: '0', backend: 'wasm', gradientPath: 'p' };
  const runs1 = expandGrid(g.gmtVsSft, ctx, 'full');
  assert.equal(runs1.length, 2 * (big.claim1Seeds.math! + big.claim1Seeds.code!));
  assert.ok(runs1.every((r) => r.config.seed < 1000), 'seeds of their own, none of the pilot\'s');
  assert.ok(runs1.filter((r) => r.config.task === 'code').every((r) => JSON.stringify(r.config.taskOptions) === JSON.stringify({ stages: [3, 3] })));
  const runs2 = expandGrid(g.maskRatio, ctx, 'full');
  const sftRuns = runs2.filter((r) => r.config.method === 'sft' && r.config.task === 'math');
  assert.equal(sftRuns.length, big.claim2Seeds.math);
  assert.equal(runs2.filter((r) => r.config.method === 'gmt' && (r.config.methodOptions as { ratio: number }).ratio === 0.9 && r.config.task === 'math').length, 2 * PILOT_RULES.claim2HighRatioSeeds);
  const averaged = protocolTwoGrids(figs(noisy));
  assert.equal(noisy.candidate.evaluation, 'averaged');
  assert.equal(averaged.gmtVsSft.base.ema, 0.98, 'an averaged candidate keeps its moving average');
  assert.throws(() => protocolTwoGrids(figs(undefined)), /not chosen yet/);
  // Sweeps and reads wait until the grid files are exactly what the choice gives.
  const { protocolTwoReadyFor } = await import('../src/findings/protocol');
  const { resolveGrid } = await import('../src/sweep/grid');
  const roundTrip = (x: unknown) => resolveGrid(JSON.parse(JSON.stringify(x)));
  assert.match(protocolTwoReadyFor(figs(undefined), {}).reason, /not chosen yet/);
  assert.equal(protocolTwoReadyFor(figs(rawChoice), { gmtVsSft: roundTrip(g.gmtVsSft), maskRatio: roundTrip(g.maskRatio) }).ready, true);
  const stale = protocolTwoReadyFor(figs(rawChoice), { gmtVsSft: roundTrip({ ...g.gmtVsSft, seeds: { count: 10 } }), maskRatio: roundTrip(g.maskRatio) });
  assert.equal(stale.ready, false);
  assert.match(stale.reason, /p2_gmt_vs_sft\.json is not the grid the pilot's choice \(A\) gives: run `gmt-lab protocol --grids`/);
  assert.equal(protocolTwoReadyFor(figs(rawChoice), { gmtVsSft: roundTrip(g.gmtVsSft) }).ready, false, 'a missing file is not ready');
  assert.deepEqual(pilotCandidateRows([a, b], a).map((r) => [r.candidate, r.chosen]), [['A A', true], ['B B', false]]);
  // A second, faster machine: minutes come from the first machine's runs where a task has any,
  // the later machine's are reported beside them (and all runs count where the first has none).
  const dated = (r: RunRecord, date: string, ms: number) => ({ ...r, provenance: { date }, timings: { totalMs: ms } }) as unknown as RunRecord;
  const moved = records.filter((r) => r.grid === 'a').map((r) => (r.config.seed < 2 ? dated(r, '2026-12-06T20:00:00Z', 180000) : dated(r, '2026-12-07T01:00:00Z', 120000)));
  const m = pilotStats(cand('M', 'a', 'raw'), moved);
  for (const t of m.tasks) {
    assert.deepEqual([t.minutesPerRun, t.timedRuns, t.laterMachineRuns, t.minutesLaterMachine], [3, 4, 12, 2]);
  }
  assert.ok(close(m.cost, 3 * m.tasks.reduce((x, t) => x + t.diffSd ** 2, 0), 1e-9));
  assert.ok(close(m.costLaterMachine, 2 * m.tasks.reduce((x, t) => x + t.diffSd ** 2, 0), 1e-9));
  const allLater = pilotStats(cand('L', 'a', 'raw'), moved.map((r) => dated(r, '2026-12-07T02:00:00Z', 120000)));
  assert.deepEqual([allLater.tasks[0]!.minutesPerRun, allLater.tasks[0]!.timedRuns], [2, 16], 'no run on the first machine: all runs count');
  assert.ok(close(a.costLaterMachine, a.cost, 1e-9), 'undated runs are the first machine\'s');
  // One pair per task gives no SD, so no seed count: a dash, not the floor of 2 seeds.
  const one = pilotStats(cand('O', 'a', 'raw'), records.filter((r) => r.config.seed === 0));
  const row = pilotCandidateRows([one])[0]!;
  assert.equal(row.seedsClaim1, 'code —, math —');
  assert.equal(row.seedsClaim2, 'code —, math —');
});

test('claim 1, stage 2: the seeds come from stage 1\'s paired SD by STAGE2_RULES, and are fresh', async () => {
  const { stageTwoPlan, seedsFor, halfWidth, STAGE2_RULES } = await import('../src/analysis/pilot');
  const [math, code, done] = stageTwoPlan([
    { task: 'math', seeds: 11, sd: 2.62, minutesPerRun: 2 },
    { task: 'code', seeds: 5, sd: 4.64, minutesPerRun: 2.3 },
    { task: 'easy', seeds: 10, sd: 0.5, minutesPerRun: 2 },
  ]);
  // math: ±1.5 takes 15 seeds, 8 added runs, 8 min two at a time: within the task's 30 min.
  assert.equal(math!.target, STAGE2_RULES.halfWidth);
  assert.equal(math!.total, seedsFor(2.62, 1.5, 0.95));
  assert.equal(math!.total, 15);
  assert.deepEqual([math!.added, math!.runs, math!.minutes], [4, 8, 8]);
  assert.ok(math!.predicted <= 1.5 && halfWidth(2.62, 14, 0.95) > 1.5, 'the smallest n that reaches ±1.5');
  // code: ±1.5 would take 40 seeds (70 runs, 80.5 min), over 30 min, so ±2.5 whatever it costs.
  assert.equal(code!.precise.total, 40);
  assert.ok(code!.precise.minutes > STAGE2_RULES.taskBudgetMinutes);
  assert.equal(code!.target, STAGE2_RULES.floorHalfWidth);
  assert.equal(code!.total, seedsFor(4.64, 2.5, 0.95));
  assert.equal(code!.added, code!.total - 5);
  assert.ok(code!.predicted <= 2.5);
  // Never fewer seeds than stage 1 had.
  assert.deepEqual([done!.total, done!.added, done!.runs], [10, 0, 0]);

  // The grid: stage 1's settings and methods, each task's fresh seeds, one fresh fast seed.
  const { stageTwoGrid } = await import('../src/findings/protocol');
  const { expandGrid, resolveGrid } = await import('../src/sweep/grid');
  const stage1 = resolveGrid({
    name: 'p2', engine: 'native', base: { base: 'micro', steps: 400, accum: 8 },
    methods: ['sft', { method: 'gmt', label: 'gmt', options: { ratio: 0.3, scope: 'tensor' } }],
    tasks: [{ task: 'math', seeds: { count: 11 } }, { task: 'code', taskOptions: { stages: [3, 3] }, seeds: { count: 5 } }],
    seeds: { count: 11 },
    fast: { base: { base: 'nano', steps: 12, warmup: 2 }, seeds: [0, 1, 2] },
  });
  const g = stageTwoGrid(stage1, [math!, code!]);
  const ctx = { kernelLib: '0', backend: 'wasm', gradientPath: 'p' };
  const seedsOf = (grid: typeof g, task: string, mode: 'fast' | 'full' = 'full') => [...new Set(expandGrid(grid, ctx, mode).filter((r) => r.config.task === task).map((r) => r.config.seed))].sort((x, y) => x - y);
  assert.deepEqual(seedsOf(g, 'math'), [11, 12, 13, 14]);
  assert.deepEqual(seedsOf(g, 'code'), Array.from({ length: code!.added }, (_, i) => 5 + i));
  assert.deepEqual(seedsOf(stageTwoGrid(stage1, [{ ...done!, task: 'math' }, code!]), 'math'), [], 'a task that needs no more seeds is left out');
  for (const t of ['math', 'code']) assert.ok(seedsOf(g, t).every((s) => !seedsOf(stage1, t).includes(s)), `${t}: no seed of stage 1`);
  const runs = expandGrid(g, ctx, 'full');
  assert.equal(runs.length, math!.runs + code!.runs);
  assert.ok(runs.every((r) => r.config.accum === 8 && r.config.steps === 400), 'stage 1\'s settings');
  assert.ok(runs.filter((r) => r.config.task === 'code').every((r) => JSON.stringify(r.config.taskOptions) === '{"stages":[3,3]}'));
  assert.deepEqual(seedsOf(g, 'math', 'fast'), [3], 'fast mode: one seed after stage 1\'s fast seeds');
  assert.throws(() => stageTwoGrid(stage1, [{ ...done!, task: 'math' }, { ...done!, task: 'code' }]), /adds no seeds/);
});

test('claim 1 in two stages: both stages\' row first with its own interim mark, then stage 1\'s, in a stage column', async () => {
  const { stagedResults } = await import('../src/analysis/claims');
  const stage1: ResultRow[] = [];
  const stage2: ResultRow[] = [];
  for (let s = 0; s < 10; s++) {
    const to = s < 6 ? stage1 : stage2;
    to.push(row({ seed: s, accuracy: 50 + s }));
    to.push(row({ seed: s, method: 'gmt', methodLabel: 'gmt', accuracy: 53 + s + (s % 2 ? 0.5 : -0.5) }));
  }
  const f = (rows: readonly ResultRow[]) => claim1(rows, 'gmt', ['math']);
  assert.deepEqual(stagedResults(f, { rows: stage1, missing: 0 }, undefined, ['math']), f(stage1), 'one stage: the plain results');
  const staged = stagedResults(f, { rows: stage1, missing: 0 }, { rows: stage2, missing: 2 }, ['math']);
  assert.deepEqual(staged.map((c) => [c.stage, c.diff.n, c.interim]), [['1 + 2', 10, true], ['1', 6, false]]);
  assert.ok(Math.abs(staged[0]!.diff.mean - f([...stage1, ...stage2])[0]!.diff.mean) < 1e-12);
  const md = claimsMarkdown({ protocols: [{ title: 'P2', prefix: '', claim1: staged, claim2: [], claim3: [], provenance: { claim1: null, claim2: null, claim3: null } }] });
  assert.match(md, /\| task \| stage \| SFT mean \[95% CI\] \|/);
  assert.match(md, /\| math \| 1 \+ 2 \|.*\| 10 \| \*interim: reproduced\* \|/);
  assert.match(md, /\| math \| 1 \|.*\| 6 \| \*\*reproduced\*\* \|/);
  const plain = claimsMarkdown({ protocols: [{ title: 'P1', prefix: '', claim1: f(stage1), claim2: [], claim3: [], provenance: { claim1: null, claim2: null, claim3: null } }] });
  assert.doesNotMatch(plain, /\| stage \|/, 'no stage column without stages');
});
