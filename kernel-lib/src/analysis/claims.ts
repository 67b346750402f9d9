/**
 * The paper's three claims, tested with rules written down before the full-mode runs
 * (figures/CLAIMS.md repeats them). The rules are applied mechanically to the result store:
 *
 * 1. GMT beats SFT (per task): *reproduced* if the 95% CI of the paired GMT − SFT accuracy
 *    difference lies above 0, *contradicted* if it lies below 0, *inconclusive* otherwise. Beside
 *    the t interval: a percentile bootstrap interval, the Wilcoxon signed-rank p, and each
 *    method's failed-seed rate (a seed below half its method's median accuracy).
 * 1b. GMT fits the task better (per task; written before protocol 2's runs): the same rule on the
 *    mean per-token loss of the test answers, lower being better: *reproduced* if the 95% CI of
 *    the paired GMT − SFT difference lies below 0, *contradicted* if above 0, *inconclusive*
 *    otherwise.
 * 2. Insensitive to the mask ratio (per task and scope): *reproduced* if for every k in
 *    {0.1, 0.2, 0.4, 0.5} the 90% CI of the paired difference to k = 0.3 lies within ±3 points
 *    (TOST equivalence at α = 0.05); *not reproduced* if one lies entirely outside; *inconclusive*
 *    otherwise. Also reported: the smallest k above 0.3 whose paired difference to 0.3 has a 95%
 *    CI entirely below 0 ("where accuracy starts to fall").
 * 3. Cost comparable to SFT: GMT's update time over SFT's with its 95% CI (interleaved bench);
 *    *reproduced* if the upper bound is ≤ 1.05, *not reproduced* if the lower bound is above
 *    1.05, *inconclusive* otherwise. The whole-run wall-time ratio is reported beside it.
 *
 * Beyond the paper (protocol 2; written before its runs), model size: claim 1's comparison at
 * each size, and per task the change of the paired gain from the reference size (Welch 95% CI of
 * the difference between the two sizes' per-seed GMT − SFT differences): *depends on size* if it
 * excludes 0, *no dependence found* otherwise.
 */
import { ConfigError } from '../util/config';
import { median } from '../util/stats';
import { bootstrapMeanCI, equivalenceTest, meanCI, pairedTest, welchTest, wilcoxonP, type PairedComparison, type TwoSampleComparison } from './stats';
import type { ResultRow } from './results';

/** The paper's three claims, numbered as in CLAIMS.md. */
export type ClaimId = 1 | 2 | 3;

/** Each claim in a few words: CLAIMS.md's headings are `Claim N: <title>`. */
export const CLAIM_TITLES: Readonly<Record<ClaimId, string>> = {
  1: 'GMT beats vanilla fine-tuning',
  2: 'insensitive to the mask ratio',
  3: 'compute cost comparable to SFT',
};

/** A figure CLAIMS.md shows under a claim (paths relative to CLAIMS.md). */
export interface ClaimFigure {
  /** The PNG; when `missing`, the path it will have. */
  png: string;
  title: string;
  caption: string;
  /** Other files of the figure, e.g. `{ interactive: 'x.html', data: 'x.csv' }`. */
  links: Record<string, string>;
  /** The figure has not been made yet: CLAIMS.md says which notebook makes it. */
  missing?: { notebook: string };
}

/** A verdict of one claim on one slice (task, scope). */
export type Verdict = 'reproduced' | 'contradicted' | 'not reproduced' | 'inconclusive' | 'no data';

/** The rule of claim 1 on one paired comparison. */
export function claim1Verdict(c: Pick<PairedComparison, 'lo' | 'hi' | 'n'>): Verdict {
  if (!(c.n >= 2) || !Number.isFinite(c.lo)) return 'no data';
  if (c.lo > 0) return 'reproduced';
  if (c.hi < 0) return 'contradicted';
  return 'inconclusive';
}

/** Claim 1 on one task. */
export interface Claim1Result {
  task: string;
  sft: { n: number; mean: number; lo: number; hi: number };
  gmt: { n: number; mean: number; lo: number; hi: number };
  diff: PairedComparison;
  /** Percentile bootstrap 95% interval of the mean paired difference (10,000 resamples, seed 0). */
  bootstrap: { lo: number; hi: number };
  /** Two-sided p of the Wilcoxon signed-rank test of the paired differences. */
  wilcoxonP: number;
  /** Failed seeds / seeds per method: accuracy below half the method's median on the task. */
  failed: { sft: [number, number]; gmt: [number, number] };
  verdict: Verdict;
}

/** The rule of claim 1b on a paired loss comparison (GMT − SFT; lower loss is better). */
export function claim1bVerdict(c: Pick<PairedComparison, 'lo' | 'hi' | 'n'>): Verdict {
  if (!(c.n >= 2) || !Number.isFinite(c.lo)) return 'no data';
  if (c.hi < 0) return 'reproduced';
  if (c.lo > 0) return 'contradicted';
  return 'inconclusive';
}

/** Claim 1b on one task: the test answers' per-token loss, GMT − SFT on the same seeds. */
export interface Claim1bResult {
  task: string;
  sft: { n: number; mean: number; lo: number; hi: number };
  gmt: { n: number; mean: number; lo: number; hi: number };
  diff: PairedComparison;
  /** The difference relative to SFT's mean loss. */
  relative: number;
  verdict: Verdict;
}

/** Failed seeds of a set of accuracies: below half their median. */
function failedSeeds(acc: readonly number[]): [number, number] {
  const mid = median(acc);
  return [acc.filter((a) => a < 0.5 * mid).length, acc.length];
}

function pairBySeed(rows: readonly ResultRow[], a: (r: ResultRow) => boolean, b: (r: ResultRow) => boolean, metric: (r: ResultRow) => number | null): { x: number[]; y: number[] } {
  const ya = new Map<number, number>();
  const yb = new Map<number, number>();
  for (const r of rows) {
    const v = metric(r);
    if (v === null || !Number.isFinite(v)) continue;
    if (a(r)) ya.set(r.seed, v);
    else if (b(r)) yb.set(r.seed, v);
  }
  const seeds = [...ya.keys()].filter((s) => yb.has(s)).sort((p, q) => p - q);
  return { x: seeds.map((s) => ya.get(s)!), y: seeds.map((s) => yb.get(s)!) };
}

/** Claim 1 per task from result rows: GMT (`gmtLabel`) against SFT on the same seeds. */
export function claim1(rows: readonly ResultRow[], gmtLabel: string, tasks: readonly string[]): Claim1Result[] {
  return tasks.map((task) => {
    const inTask = rows.filter((r) => r.task === task);
    const { x, y } = pairBySeed(inTask, (r) => r.methodLabel === gmtLabel, (r) => r.method === 'sft', (r) => r.accuracy);
    const diff = pairedTest(x, y);
    const diffs = x.map((v, i) => v - (y[i] as number));
    const b = bootstrapMeanCI(diffs, 0.95, 10000, 0);
    const sftAcc = inTask.filter((r) => r.method === 'sft' && r.accuracy !== null).map((r) => r.accuracy!);
    const gmtAcc = inTask.filter((r) => r.methodLabel === gmtLabel && r.accuracy !== null).map((r) => r.accuracy!);
    return {
      task, sft: meanCI(sftAcc), gmt: meanCI(gmtAcc), diff,
      bootstrap: { lo: b.lo, hi: b.hi }, wilcoxonP: wilcoxonP(diffs),
      failed: { sft: failedSeeds(sftAcc), gmt: failedSeeds(gmtAcc) },
      verdict: claim1Verdict(diff),
    };
  });
}

/** The size rule's answer for one task and size (see {@link sizeTrend}). */
export type SizeVerdict = 'depends on size' | 'no dependence found' | 'no data';

/** The rule of the size question on one comparison of paired gains across sizes. */
export function sizeVerdict(c: Pick<TwoSampleComparison, 'lo' | 'hi'>): SizeVerdict {
  if (!Number.isFinite(c.lo) || !Number.isFinite(c.hi)) return 'no data';
  return c.lo > 0 || c.hi < 0 ? 'depends on size' : 'no dependence found';
}

/** Beyond the paper: GMT − SFT at several model sizes on one task. */
export interface SizeTrendResult {
  task: string;
  /** Claim 1 at each size, in the order given. */
  sizes: { size: string; claim: Claim1Result }[];
  /**
   * Each other size against the reference (the last size given): its per-seed GMT − SFT
   * differences minus the reference's (Welch), and the rule's answer.
   */
  change: { size: string; reference: string; test: TwoSampleComparison; verdict: SizeVerdict }[];
}

/**
 * Claim 1 at each model size and, per task, whether GMT's gain over SFT changes with size:
 * `bySize` holds each size's result rows (the same protocol and seeds at each size), the
 * reference size last.
 */
export function sizeTrend(bySize: readonly { size: string; rows: readonly ResultRow[] }[], gmtLabel: string, tasks: readonly string[]): SizeTrendResult[] {
  if (bySize.length < 2) throw new ConfigError(`sizeTrend: needs at least two sizes, got ${bySize.length}`);
  const gains = (rows: readonly ResultRow[], task: string): number[] => {
    const { x, y } = pairBySeed(rows.filter((r) => r.task === task), (r) => r.methodLabel === gmtLabel, (r) => r.method === 'sft', (r) => r.accuracy);
    return x.map((v, i) => v - (y[i] as number));
  };
  const reference = bySize[bySize.length - 1]!;
  return tasks.map((task) => ({
    task,
    sizes: bySize.map((s) => ({ size: s.size, claim: claim1(s.rows, gmtLabel, [task])[0]! })),
    change: bySize.slice(0, -1).map((s) => {
      const test = welchTest(gains(s.rows, task), gains(reference.rows, task));
      return { size: s.size, reference: reference.size, test, verdict: sizeVerdict(test) };
    }),
  }));
}

/** Claim 1b per task from result rows with `testLoss`: GMT (`gmtLabel`) against SFT on the same seeds. */
export function claim1b(rows: readonly ResultRow[], gmtLabel: string, tasks: readonly string[]): Claim1bResult[] {
  return tasks.map((task) => {
    const inTask = rows.filter((r) => r.task === task);
    const { x, y } = pairBySeed(inTask, (r) => r.methodLabel === gmtLabel, (r) => r.method === 'sft', (r) => r.testLoss);
    const diff = pairedTest(x, y);
    const s = meanCI(inTask.filter((r) => r.method === 'sft' && r.testLoss !== null).map((r) => r.testLoss!));
    const g = meanCI(inTask.filter((r) => r.methodLabel === gmtLabel && r.testLoss !== null).map((r) => r.testLoss!));
    return { task, sft: s, gmt: g, diff, relative: diff.mean / s.mean, verdict: claim1bVerdict(diff) };
  });
}

/** Claim 2 on one task and scope. */
export interface Claim2Result {
  task: string;
  scope: string;
  /** Per k ≠ 0.3 in 0.1–0.5: the 90% CI of acc(k) − acc(0.3) and its TOST verdict. */
  checks: {
    ratio: number;
    n: number;
    /** Seed pairs the protocol plans for this k (shown as `n of planned` while some are missing); unset: not known. */
    planned?: number;
    diff: number;
    lo: number;
    hi: number;
    verdict: 'equivalent' | 'different' | 'inconclusive' | 'no data';
  }[];
  /** Smallest k > 0.3 whose paired difference to k = 0.3 has a 95% CI below 0 (null: none). */
  fallsFrom: number | null;
  verdict: Verdict;
}

/** The ratios claim 2 checks against k = 0.3. */
export const CLAIM2_RATIOS = [0.1, 0.2, 0.4, 0.5] as const;
/** The equivalence margin of claim 2, in accuracy points. */
export const CLAIM2_MARGIN = 3;

/** Claim 2 for GMT rows of one task and scope (rows carry `ratio`; SFT is k = 0 and not used). */
export function claim2(rows: readonly ResultRow[], task: string, scope: string): Claim2Result {
  const gmt = rows.filter((r) => r.task === task && r.method === 'gmt' && r.scope === scope);
  const at = (k: number) => (r: ResultRow) => r.ratio !== null && Math.abs(r.ratio - k) < 1e-9;
  const checks = CLAIM2_RATIOS.map((k) => {
    const { x, y } = pairBySeed(gmt, at(k), at(0.3), (r) => r.accuracy);
    const e = equivalenceTest(x.map((v, i) => v - (y[i] as number)), CLAIM2_MARGIN);
    return { ratio: k, n: e.n, diff: e.mean, lo: e.lo, hi: e.hi, verdict: e.n >= 2 ? e.verdict : ('no data' as const) };
  });
  const above = [...new Set(gmt.map((r) => r.ratio).filter((k): k is number => k !== null && k > 0.3 + 1e-9))].sort((a, b) => a - b);
  let fallsFrom: number | null = null;
  for (const k of above) {
    const { x, y } = pairBySeed(gmt, at(k), at(0.3), (r) => r.accuracy);
    const d = pairedTest(x, y);
    if (d.n >= 2 && d.hi < 0) {
      fallsFrom = k;
      break;
    }
  }
  let verdict: Verdict;
  if (checks.some((c) => !(c.n >= 2))) verdict = 'no data';
  else if (checks.every((c) => c.verdict === 'equivalent')) verdict = 'reproduced';
  else if (checks.some((c) => c.verdict === 'different')) verdict = 'not reproduced';
  else verdict = 'inconclusive';
  return { task, scope, checks, fallsFrom, verdict };
}

/** Claim 3: update time and whole-run wall time, GMT over SFT. */
export interface Claim3Result {
  scope: string;
  /** Median per-round update-time ratio (interleaved bench) and its 95% interval. */
  updateRatio: number;
  updateCi: [number, number];
  /**
   * GMT's training wall time over SFT's on the same seed and task: the mean of the per-pair
   * ratios with its 95% t interval, and their median (robust to a run that was slowed or paused).
   */
  wallRatio: { n: number; mean: number; lo: number; hi: number; median: number } | null;
  verdict: Verdict;
}

/** The cost bound of claim 3: GMT's update at most 5% slower than SFT's. */
export const CLAIM3_BOUND = 1.05;

/** The rule of claim 3 on an update-time ratio interval. */
export function claim3Verdict(ci: readonly [number, number]): Verdict {
  if (!ci.every(Number.isFinite)) return 'no data';
  if (ci[1] <= CLAIM3_BOUND) return 'reproduced';
  if (ci[0] > CLAIM3_BOUND) return 'not reproduced';
  return 'inconclusive';
}

/**
 * Claim 3 for one scope: `bench` gives the interleaved update-time ratio and interval; `rows`
 * (optional) the whole-run training times of GMT (`gmtLabel`) and SFT runs on the same seeds.
 */
export function claim3(scope: string, bench: { pairedOverVsSft: number; pairedCi95: [number, number] }, rows?: readonly ResultRow[], gmtLabel?: string): Claim3Result {
  if (!bench || !Array.isArray(bench.pairedCi95)) throw new ConfigError('claim3: a bench row with pairedOverVsSft and pairedCi95 is required');
  let wallRatio: Claim3Result['wallRatio'] = null;
  if (rows && gmtLabel) {
    const ratios: number[] = [];
    for (const task of new Set(rows.map((r) => r.task))) {
      const { x, y } = pairBySeed(rows.filter((r) => r.task === task), (r) => r.methodLabel === gmtLabel, (r) => r.method === 'sft', (r) => r.trainSeconds);
      x.forEach((v, i) => ratios.push(v / (y[i] as number)));
    }
    if (ratios.length) {
      const ci = meanCI(ratios);
      wallRatio = { n: ci.n, mean: ci.mean, lo: ci.lo, hi: ci.hi, median: median(ratios) };
    }
  }
  return { scope, updateRatio: bench.pairedOverVsSft, updateCi: bench.pairedCi95, wallRatio, verdict: claim3Verdict(bench.pairedCi95) };
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f3 = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : '—');
const sgn = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(1)}` : '—');
const f4 = (x: number): string => (Number.isFinite(x) ? x.toFixed(4) : '—');
const sg4 = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(4)}` : '—');

/** Provenance of a claims file. */
export interface ClaimsProvenance {
  mode: string;
  preset: string;
  seeds: string;
  testSize: string;
  backend: string;
  gradientPath: string;
  machine: string;
  commit: string;
  date: string;
  store: string;
}

/** One row of a protocol's forgetting table: a probe's mean over seeds with its 95% CI. */
export interface ForgettingSummary {
  task: string;
  methodLabel: string;
  metric: string;
  n: number;
  mean: number;
  lo: number;
  hi: number;
}

/** The claims of one protocol, as CLAIMS.md shows them. */
/**
 * A claim-1 or 1b result of a protocol whose claim 1 ran in stages: `stage` names the seeds it
 * reads (e.g. `1 + 2`), and `interim` marks a row whose planned runs are not all in (it then
 * overrides the protocol's `interim.claim1` for that row). Rows without `stage` are shown as before.
 */
export type Staged<T> = T & { stage?: string; interim?: boolean };

/**
 * Claim-1-type results (claims 1 and 1b) of a claim run in two stages: per task, the row on both
 * stages' seeds (the verdict) and then stage 1's row; without a second stage, the plain results.
 * A row is interim while any run it reads is missing.
 */
export function stagedResults<T extends { task: string }>(
  f: (rows: readonly ResultRow[]) => T[],
  stage1: { rows: readonly ResultRow[]; missing: number },
  stage2: { rows: readonly ResultRow[]; missing: number } | undefined,
  tasks: readonly string[],
): Staged<T>[] {
  if (!stage2) return f(stage1.rows);
  const both = f([...stage1.rows, ...stage2.rows]).map((c) => ({ ...c, stage: '1 + 2', interim: stage1.missing + stage2.missing > 0 }));
  const first = f(stage1.rows).map((c) => ({ ...c, stage: '1', interim: stage1.missing > 0 }));
  return tasks.flatMap((t) => [...both.filter((c) => c.task === t), ...first.filter((c) => c.task === t)]);
}

export interface ProtocolClaims {
  /** The section heading, e.g. `Protocol 2: ...`. */
  title: string;
  /** Put before each claim's heading (`Protocol 2 · `), so that headings and their anchors stay unique; '' for none. */
  prefix: string;
  /** Paragraphs under the section heading. */
  intro?: string[];
  claim1: Staged<Claim1Result>[];
  /** Claim 1b (the test answers' loss); omitted where the protocol did not record it. */
  claim1b?: Staged<Claim1bResult>[];
  claim2: Claim2Result[];
  claim3: Claim3Result[];
  forgetting?: ForgettingSummary[];
  provenance: Record<'claim1' | 'claim2' | 'claim3', ClaimsProvenance | null>;
  /**
   * Beyond the paper: claim 1 at another model size and the change of GMT's gain with size;
   * `interim` says which planned runs the store lacks (its answers are shown as interim).
   */
  size?: {
    results: SizeTrendResult[];
    grid: string;
    provenance: ClaimsProvenance | null;
    interim?: string;
    /** The bases compared: parameters and pre-training updates. */
    bases?: readonly { base: string; parameters: number; pretrainSteps: number | null }[];
  };
  /** Figures shown under each claim, after its verdicts. */
  figures?: Partial<Record<ClaimId, readonly ClaimFigure[]>>;
  notes?: string[];
  /**
   * Set while some of the protocol's planned runs are not in the store: why, and which claims'
   * figures are interim (`claim1`: claims 1 and 1b, from one grid; `claim2`: claim 2, from
   * another). Those claims show their verdicts as interim, never as the protocol's (the planned
   * seeds are run whatever an interim look says); a claim whose runs are all in keeps its verdict.
   */
  interim?: { text: string; claim1: boolean; claim2: boolean };
}

/**
 * A verdict as shown while `missing` planned runs are not in the store yet: `interim: <verdict>`
 * (a verdict of the fixed-size protocol exists only once every planned run is in).
 */
export function interimVerdict(verdict: string, missing: number): string {
  return missing > 0 ? `interim: ${verdict}` : verdict;
}

/** The verdict rules, written once for every protocol. */
function ruleLines(): string[] {
  return [
    '1. **GMT beats SFT**, per task: *reproduced* if the 95% CI of the paired GMT − SFT difference (same seeds) lies above 0; *contradicted* if it lies below 0; *inconclusive* otherwise. Beside the t interval: a percentile bootstrap interval (10,000 resamples), the Wilcoxon signed-rank p and each method\'s failed-seed rate (a seed below half its method\'s median accuracy); the verdict follows the t interval.',
    '1b. **GMT fits the task better** (protocol 2; written before its runs), per task: the mean per-token loss of the test answers (completion tokens, as the validation loss), lower being better: *reproduced* if the 95% CI of the paired GMT − SFT difference lies below 0; *contradicted* if it lies above 0; *inconclusive* otherwise.',
    `2. **Insensitive to the mask ratio**, per task and scope: *reproduced* if, for every k in ${CLAIM2_RATIOS.join(', ')}, the 90% CI of the paired difference to k = 0.3 lies within ±${CLAIM2_MARGIN} points (equivalence, TOST at α = 0.05); *not reproduced* if one lies entirely outside; *inconclusive* otherwise. Also reported: the smallest k above 0.3 whose difference to k = 0.3 has a 95% CI below 0 (where accuracy starts to fall).`,
    `3. **Cost comparable to SFT**: GMT's update time over SFT's, median of per-round ratios in an interleaved benchmark, with its 95% interval; *reproduced* if the upper bound is ≤ ${CLAIM3_BOUND}; *not reproduced* if the lower bound is above ${CLAIM3_BOUND}; *inconclusive* otherwise. The whole-run wall-time ratio (mean over paired seeds) is reported beside it.`,
    '',
    '**Beyond the paper: does GMT\'s gain depend on model size?** (protocol 2; written before its runs) Per task, claim 1\'s comparison with claim 1\'s rule at `nano` and at `micro`, with the same protocol, tasks and seeds (`mini` is not run: its pre-training and runs exceed the budget); then the gain at `nano` minus the gain at `micro`, each a per-seed GMT − SFT difference, with a Welch two-sample 95% CI: *depends on size* if that interval excludes 0; *no dependence found* otherwise, the interval\'s width saying how large a change the runs could miss.',
  ];
}

/** The Markdown of one protocol's claims. */
function protocolLines(p: ProtocolClaims): string[] {
  const figureLines = (claim: ClaimId): string[] => (p.figures?.[claim] ?? []).flatMap((f) => {
    const links = Object.entries(f.links).map(([label, href]) => `[${label}](${href})`).join(' · ');
    if (f.missing) return [`_The figure behind this claim, \`${f.png}\`, has not been made yet: run notebook \`${f.missing.notebook}\`._`, ''];
    return [`![${f.title}](${f.png})`, '', `*${f.title}.* ${f.caption}${links ? ` (${links})` : ''}`, ''];
  });
  const out: string[] = [`## ${p.title}`, ''];
  for (const para of p.intro ?? []) out.push(para, '');
  if (p.interim) out.push(`> **Interim, not verdicts${p.interim.claim1 && p.interim.claim2 ? '' : ` for claim ${p.interim.claim1 ? '1 and 1b' : '2'}`}.** ${p.interim.text}`, '');
  // Claims 1, 1b and 2 come from the sweeps; claim 3 from its own benchmark.
  const shown = (v: string, claim: 'claim1' | 'claim2', interim?: boolean): string => ((interim ?? p.interim?.[claim]) ? `*interim: ${v}*` : `**${v}**`);
  // With stages, a column says which seeds each row reads.
  const staged = p.claim1.some((c) => c.stage !== undefined);
  const stageCell = (c: { stage?: string }): string => (staged ? ` ${c.stage ?? ''} |` : '');
  const stageHead = staged ? [' stage |', '---|'] : ['', ''];
  out.push(`### ${p.prefix}Claim 1: ${CLAIM_TITLES[1]}`, '');
  out.push(`| task |${stageHead[0]} SFT mean [95% CI] | GMT mean [95% CI] | paired GMT − SFT [95% CI] | bootstrap 95% | p (t) | p (Wilcoxon) | failed seeds SFT · GMT | seeds | verdict |`, `|---|${stageHead[1]}---|---|---|---|---|---|---|---|---|`);
  for (const c of p.claim1) {
    out.push(`| ${c.task} |${stageCell(c)} ${f1(c.sft.mean)} [${f1(c.sft.lo)}, ${f1(c.sft.hi)}] | ${f1(c.gmt.mean)} [${f1(c.gmt.lo)}, ${f1(c.gmt.hi)}] | ${sgn(c.diff.mean)} [${sgn(c.diff.lo)}, ${sgn(c.diff.hi)}] | [${sgn(c.bootstrap.lo)}, ${sgn(c.bootstrap.hi)}] | ${f3(c.diff.pValue)} | ${f3(c.wilcoxonP)} | ${c.failed.sft[0]}/${c.failed.sft[1]} · ${c.failed.gmt[0]}/${c.failed.gmt[1]} | ${c.diff.n} | ${shown(c.verdict, 'claim1', c.interim)} |`);
  }
  out.push('', ...figureLines(1), ...provenanceLines(p.provenance.claim1), '');
  if (p.claim1b) {
    out.push(`### ${p.prefix}Claim 1b: GMT fits the task better (test answers' loss)`, '');
    out.push(`| task |${stageHead[0]} SFT loss [95% CI] | GMT loss [95% CI] | paired GMT − SFT [95% CI] | relative to SFT | p | seeds | verdict |`, `|---|${stageHead[1]}---|---|---|---|---|---|---|`);
    for (const c of p.claim1b) {
      out.push(`| ${c.task} |${stageCell(c)} ${f4(c.sft.mean)} [${f4(c.sft.lo)}, ${f4(c.sft.hi)}] | ${f4(c.gmt.mean)} [${f4(c.gmt.lo)}, ${f4(c.gmt.hi)}] | ${sg4(c.diff.mean)} [${sg4(c.diff.lo)}, ${sg4(c.diff.hi)}] | ${Number.isFinite(c.relative) ? `${(100 * c.relative).toFixed(2)}%` : '—'} | ${f3(c.diff.pValue)} | ${c.diff.n} | ${shown(c.verdict, 'claim1', c.interim)} |`);
    }
    out.push('', ...provenanceLines(p.provenance.claim1), '');
  }
  out.push(`### ${p.prefix}Claim 2: ${CLAIM_TITLES[2]}`, '');
  out.push('| task | scope | k | acc(k) − acc(0.3) [90% CI] | seeds | TOST ±3 |', '|---|---|---|---|---|---|');
  for (const c of p.claim2) {
    for (const k of c.checks) out.push(`| ${c.task} | ${c.scope} | ${k.ratio} | ${sgn(k.diff)} [${sgn(k.lo)}, ${sgn(k.hi)}] | ${k.planned !== undefined && k.planned > k.n ? `${k.n} of ${k.planned}` : k.n} | ${k.verdict} |`);
  }
  out.push('');
  for (const c of p.claim2) {
    out.push(`- ${c.task}, ${c.scope} scope: ${shown(c.verdict, 'claim2')}; accuracy ${c.fallsFrom === null ? 'does not fall significantly below k = 0.3 at any larger k measured' : `first falls significantly below k = 0.3 at k = ${c.fallsFrom}`}.`);
  }
  out.push('', ...figureLines(2), ...provenanceLines(p.provenance.claim2), '');
  out.push(`### ${p.prefix}Claim 3: ${CLAIM_TITLES[3]}`, '');
  if (p.claim3.length === 0) out.push('_No benchmark for this protocol\'s engine yet (notebook 04 makes it)._', '');
  else {
    out.push('| GMT scope | update time / SFT [95% CI] | whole-run training time / SFT: median of pairs; mean [95% CI] | verdict |', '|---|---|---|---|');
    for (const c of p.claim3) {
      const wall = c.wallRatio ? `${f3(c.wallRatio.median)}; ${f3(c.wallRatio.mean)} [${f3(c.wallRatio.lo)}, ${f3(c.wallRatio.hi)}] (${c.wallRatio.n} pairs)` : '—';
      out.push(`| ${c.scope} | ${f3(c.updateRatio)} [${f3(c.updateCi[0])}, ${f3(c.updateCi[1])}] | ${wall} | **${c.verdict}** |`);
    }
    out.push('');
  }
  out.push(...figureLines(3), ...provenanceLines(p.provenance.claim3), '');
  if (p.forgetting?.length) {
    out.push(`### ${p.prefix}Forgetting`, '', 'What fine-tuning costs the base model, per task and method on the seeds of claim 1: accuracy on the base\'s facts (points, higher is better) and the loss on the general text mixture (lower is better), mean over seeds with 95% CI.', '');
    out.push('| task | method | probe | mean [95% CI] | seeds |', '|---|---|---|---|---|');
    for (const r of p.forgetting) out.push(`| ${r.task} | ${r.methodLabel} | ${r.metric} | ${r.metric.startsWith('facts') ? f1(r.mean) : f4(r.mean)}${Number.isFinite(r.lo) ? ` [${r.metric.startsWith('facts') ? `${f1(r.lo)}, ${f1(r.hi)}` : `${f4(r.lo)}, ${f4(r.hi)}`}]` : ''} | ${r.n} |`);
    out.push('');
  }
  if (p.size) out.push(...sizeLines(p.prefix, p.size));
  if (p.notes?.length) out.push(...p.notes.map((n) => `- ${n}`), '');
  return out;
}

/** The Markdown of the size question (see {@link ProtocolClaims.size}). */
function sizeLines(prefix: string, size: NonNullable<ProtocolClaims['size']>): string[] {
  const shown = (v: string): string => (size.interim ? `*interim: ${v}*` : `**${v}**`);
  const out = [`### ${prefix}Beyond the paper: does GMT's gain depend on model size?`, ''];
  out.push(`Claim 1's grid again at the \`nano\` base (\`notebooks/grids/${size.grid}\`), beside the claim's own runs at \`micro\`; the rule is under the verdict rules above.`, '');
  if (size.bases?.length) {
    const each = size.bases.map((b) => `\`${b.base}\` has ${b.parameters.toLocaleString('en-US')} parameters${b.pretrainSteps !== null ? ` and was pre-trained for ${b.pretrainSteps.toLocaleString('en-US')} updates` : ''}`);
    out.push(`${each.join('; ')}. The bases differ in pre-training as well as in size, so a difference here is the two bases', not size's alone.`, '');
  }
  if (size.interim) out.push(`> **Interim, not answers.** ${size.interim}`, '');
  out.push('| task | base | SFT mean [95% CI] | GMT mean [95% CI] | paired GMT − SFT [95% CI] | seeds | claim 1\'s rule |', '|---|---|---|---|---|---|---|');
  for (const t of size.results) {
    for (const { size: name, claim: c } of t.sizes) {
      out.push(`| ${t.task} | ${name} | ${f1(c.sft.mean)} [${f1(c.sft.lo)}, ${f1(c.sft.hi)}] | ${f1(c.gmt.mean)} [${f1(c.gmt.lo)}, ${f1(c.gmt.hi)}] | ${sgn(c.diff.mean)} [${sgn(c.diff.lo)}, ${sgn(c.diff.hi)}] | ${c.diff.n} | ${c.verdict} |`);
    }
  }
  out.push('');
  for (const t of size.results) {
    for (const c of t.change) {
      out.push(`- ${t.task}: gain at ${c.size} − gain at ${c.reference} = ${sgn(c.test.diff)} [${sgn(c.test.lo)}, ${sgn(c.test.hi)}] (Welch, ${c.test.n[0]} and ${c.test.n[1]} seeds; p ${f3(c.test.pValue)}): ${shown(c.verdict)}.`);
    }
  }
  out.push('', ...provenanceLines(size.provenance), '');
  return out;
}

/**
 * The text of figures/CLAIMS.md: the rules once, then each protocol's claims (newest first; an
 * older protocol's verdicts stay, in a section of their own), each with its evidence, verdicts
 * and provenance.
 */
export function claimsMarkdown(input: { protocols: readonly ProtocolClaims[]; notes?: string[] }): string {
  const out: string[] = [];
  out.push('# Claims of the GMT paper, tested at this lab\'s scale', '');
  out.push('Made by `npm run reproduce` (`gmt-lab claims`) from the committed result store; not edited by hand.',
    'The paper (Li et al., arXiv 2406.15330) released no numbers we could compare digit for digit, so each claim is tested as a claim. Accuracies are in points (0–100) of greedy exact-answer accuracy on held-out test problems.', '');
  out.push('## Verdict rules (written before the full-mode runs)', '', ...ruleLines(), '');
  for (const p of input.protocols) out.push(...protocolLines(p));
  if (input.notes?.length) out.push('## Notes', '', ...input.notes.map((n) => `- ${n}`), '');
  return `${out.join('\n')}\n`;
}

function provenanceLines(p: ClaimsProvenance | null): string[] {
  if (!p) return ['_No runs for this claim in the store yet._'];
  return [
    `Provenance: mode ${p.mode}; base ${p.preset}; seeds ${p.seeds}; test problems ${p.testSize}; backend ${p.backend}, ${p.gradientPath};`,
    `machine ${p.machine}; commit ${p.commit}; runs dated ${p.date}; store \`${p.store}\`.`,
  ];
}
