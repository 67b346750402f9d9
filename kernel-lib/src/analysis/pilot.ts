/**
 * The pilot that chooses the findings' protocol before its confirmatory runs (figures/PROTOCOL.md,
 * written by `gmt-lab protocol`). Its rules are fixed here, in code, before any pilot run:
 *
 * - **Difficulty calibration** (candidate "harder tasks"): SFT, 3 seeds, per task and option;
 *   the option whose mean test accuracy lies in [60, 85] points and nearest 72.5 is used; if none
 *   lies inside, the nearest to the range.
 * - **Per candidate and task**, from SFT and GMT (k = 0.3, tensor scope) on the same ≥ 8 seeds:
 *   the SD of the paired GMT − SFT test-accuracy differences (points); the failed-seed rate per
 *   method (a seed is *failed* when its accuracy is below half the median of its method, task and
 *   candidate); SFT's convergence (the mean over SFT seeds of the validation-loss fall over the
 *   last 100 updates, as a fraction of the fall from the base model; *converged* below 2%); and
 *   the machine-minutes of a run (median wall time, so that a few runs slowed by other work on
 *   the machine do not move it; each run has one core).
 * - **Cost** of a candidate: Σ over tasks of SD² × minutes per run. The seeds a CI half-width h
 *   needs grow like (SD/h)², so this is proportional to the machine time of a given precision.
 * - **Choice**: the candidate with the lowest cost among those whose SFT converged on both tasks.
 * - **Seeds** it implies, per task: the smallest n with t(0.975, n−1)·SD/√n ≤ 1.5 points (claim 1),
 *   and with t(0.95, n−1)·SD/√n ≤ 2 points (claim 2, with the GMT − SFT SD standing in for the
 *   SD of acc(k) − acc(0.3), which the pilot does not measure).
 * - **Seeds under the budget** ({@link mainRunPlan}; added 2026-12-06, before any candidate but A
 *   had a run and before the choice): full mode of protocol 2 and notebook 06 should fit 3 h of
 *   this 2-core machine (two runs at a time, each at the chosen candidate's minutes per run). Claim
 *   1 (whose runs also give 1b and forgetting) takes the seeds for ±1.5 points when those runs fit
 *   2 h; otherwise the seeds for ±2.5, the least precision worth running, whatever they cost.
 *   Claim 2 takes the seeds for ±2 points (90%) at k = 0.1–0.5, at most 10, and 5 at k = 0.7 and
 *   0.9; notebook 06 keeps its 5 seeds per cell. What exceeds 3 h is run over several sittings
 *   and reported as over the budget.
 * - **One machine's minutes** (added 2026-12-07, before candidate D's seeds 1002–1007 were read
 *   and before the choice): the pilot moved to a second machine partway through D, about 1.6×
 *   faster (D's runs: 3.1–3.6 min on the first, 2.0–2.3 on the second). Every other candidate was
 *   timed on the first, so a candidate's minutes per run come from its runs dated before
 *   `firstMachineUntil` where it has any on the task (all its runs otherwise); the later runs'
 *   minutes are reported beside them, with the choice they would give.
 */
import type { RunRecord } from '../sweep/store';
import { meanCI } from './stats';
import { median, quantile } from '../util/stats';
import tQuantile = require('@stdlib/stats-base-dists-t-quantile');

/** Fixed before the pilot: see the file comment. */
export const PILOT_RULES = Object.freeze({
  calibrationRange: [60, 85] as const,
  calibrationTarget: 72.5,
  failedBelowHalfMedian: 0.5,
  convergedFallFraction: 0.02,
  convergenceWindow: 100,
  claim1HalfWidth: 1.5,
  claim2HalfWidth: 2,
  minSeeds: 8,
  budgetMinutes: 180,
  claim1BudgetMinutes: 120,
  claim1FloorHalfWidth: 2.5,
  claim2MaxSeeds: 10,
  claim2HighRatioSeeds: 5,
  jobs: 2,
  firstMachineUntil: '2026-12-07T00:00:00Z',
});

/** Which weights a candidate evaluates: the trained ones, or their moving average (`ema`). */
export type PilotEvaluation = 'raw' | 'averaged';

/** One protocol the pilot measures. */
export interface PilotCandidate {
  id: string;
  name: string;
  /** The pilot grid whose runs it reads (several candidates may share a grid's runs). */
  grid: string;
  evaluation: PilotEvaluation;
  description: string;
}

/** One task's figures of one candidate. */
export interface PilotTaskStats {
  task: string;
  pairs: number;
  sftMean: number;
  gmtMean: number;
  /** The paired GMT − SFT differences (points), one per seed in seed order. */
  diffs: number[];
  /** Mean and SD of the paired GMT − SFT differences (points). */
  diffMean: number;
  diffSd: number;
  /** Failed seeds / seeds, per method. */
  failed: { sft: [number, number]; gmt: [number, number] };
  /** SFT's validation-loss fall over the last window, as a fraction of the fall from the base (mean over seeds). */
  sftLateFall: number;
  converged: boolean;
  /** Median wall time of the candidate's runs on this task, in minutes. */
  minutesPerRun: number;
  /**
   * The 10th percentile of the same wall times: close to a run's time on a machine doing nothing
   * else. Reported beside the rule's median (not used by the choice), because other work on the
   * machine slowed more of some candidates' runs than of others'.
   */
  minutesQuiet: number;
  /**
   * Median wall time of the runs on a later machine, in minutes (NaN when none): shown beside the
   * rule's minutes (which come from the first machine; see `firstMachineUntil`), never used by it.
   */
  minutesLaterMachine: number;
  /** How many of the task's runs the minutes come from, and how many ran on a later machine. */
  timedRuns: number;
  laterMachineRuns: number;
}

/** A candidate's figures, its cost and the seeds it would need. */
export interface PilotCandidateStats {
  candidate: PilotCandidate;
  tasks: PilotTaskStats[];
  converged: boolean;
  /** Σ over tasks of SD² × minutes per run (lower is better). */
  cost: number;
  /** The same with {@link PilotTaskStats.minutesQuiet}: the sensitivity of the choice to the machine's load. */
  costQuiet: number;
  /** The same with the later machine's minutes where a task has runs there (else the rule's). */
  costLaterMachine: number;
  seedsClaim1: Record<string, number>;
  seedsClaim2: Record<string, number>;
}

const accuracyOf = (r: RunRecord, evaluation: PilotEvaluation): number | null => {
  const m = r.metrics ?? {};
  const v = evaluation === 'averaged' ? m.testAccuracy : m.rawTestAccuracy ?? m.testAccuracy;
  return typeof v === 'number' ? 100 * v : null;
};

/** The validation-loss fall over the last `window` updates as a fraction of the fall from the base. */
export function lateFall(r: RunRecord, window: number): number | null {
  const evals = r.history?.evals ?? [];
  const last = evals[evals.length - 1];
  const earlier = [...evals].reverse().find((e) => last && e.step <= last.step - window);
  const base = r.metrics?.baseValLoss;
  if (!last || !earlier || typeof base !== 'number') return null;
  const total = base - last.valLoss;
  return total > 0 ? (earlier.valLoss - last.valLoss) / total : null;
}

/** Seeds for a CI half-width of `h` points at `level` (two-sided), given the SD (t-based). */
export function seedsFor(sd: number, h: number, level: number): number {
  if (!(sd > 0)) return 2;
  let n = 2;
  while (n < 10000 && (tQuantile(1 - (1 - level) / 2, n - 1) * sd) / Math.sqrt(n) > h) n += 1;
  return n;
}

/** Whether a run was made after the pilot's first machine (see `firstMachineUntil`); undated runs count as the first's. */
function onLaterMachine(r: RunRecord): boolean {
  const date = r.provenance?.date;
  return typeof date === 'string' && Date.parse(date) >= Date.parse(PILOT_RULES.firstMachineUntil);
}

/** The candidate's figures from the pilot store's records of its grid (done runs). */
export function pilotStats(candidate: PilotCandidate, records: readonly RunRecord[]): PilotCandidateStats {
  const runs = records.filter((r) => r.grid === candidate.grid && r.status === 'done');
  const tasks = [...new Set(runs.map((r) => r.config.task))].sort();
  const stats: PilotTaskStats[] = tasks.map((task) => {
    const inTask = runs.filter((r) => r.config.task === task);
    const bySeed = (method: string) => new Map(inTask.filter((r) => r.config.method === method).flatMap((r) => {
      const a = accuracyOf(r, candidate.evaluation);
      return a === null ? [] : [[r.config.seed, { acc: a, record: r }] as const];
    }));
    const sft = bySeed('sft');
    const gmt = bySeed('gmt');
    const seeds = [...sft.keys()].filter((s) => gmt.has(s)).sort((a, b) => a - b);
    const diffs = seeds.map((s) => gmt.get(s)!.acc - sft.get(s)!.acc);
    const d = meanCI(diffs);
    const failed = (m: Map<number, { acc: number }>): [number, number] => {
      const accs = [...m.values()].map((v) => v.acc);
      const cut = PILOT_RULES.failedBelowHalfMedian * median(accs);
      return [accs.filter((a) => a < cut).length, accs.length];
    };
    const falls = [...sft.values()].map((v) => lateFall(v.record, PILOT_RULES.convergenceWindow)).filter((x): x is number => x !== null);
    const sftLateFall = falls.length ? falls.reduce((a, b) => a + b, 0) / falls.length : NaN;
    const minutesOf = (rs: readonly RunRecord[]) => rs.map((r) => (r.timings?.totalMs ?? NaN) / 60000).filter(Number.isFinite);
    const later = inTask.filter((r) => onLaterMachine(r));
    const first = inTask.filter((r) => !onLaterMachine(r));
    const timed = first.length ? first : inTask;
    const minutes = minutesOf(timed);
    return {
      task, pairs: seeds.length,
      sftMean: meanCI([...sft.values()].map((v) => v.acc)).mean, gmtMean: meanCI([...gmt.values()].map((v) => v.acc)).mean,
      diffs, diffMean: d.mean, diffSd: d.sd,
      failed: { sft: failed(sft), gmt: failed(gmt) },
      sftLateFall, converged: Number.isFinite(sftLateFall) && sftLateFall < PILOT_RULES.convergedFallFraction,
      minutesPerRun: minutes.length ? median(minutes) : NaN,
      minutesQuiet: quantile(minutes, 0.1),
      minutesLaterMachine: later.length ? median(minutesOf(later)) : NaN,
      timedRuns: timed.length, laterMachineRuns: later.length,
    };
  });
  const cost = stats.reduce((a, t) => a + t.diffSd ** 2 * t.minutesPerRun, 0);
  const costQuiet = stats.reduce((a, t) => a + t.diffSd ** 2 * t.minutesQuiet, 0);
  const costLaterMachine = stats.reduce((a, t) => a + t.diffSd ** 2 * (Number.isFinite(t.minutesLaterMachine) ? t.minutesLaterMachine : t.minutesPerRun), 0);
  return {
    candidate,
    tasks: stats,
    converged: stats.length > 0 && stats.every((t) => t.converged),
    cost: stats.length ? cost : NaN,
    costQuiet: stats.length ? costQuiet : NaN,
    costLaterMachine: stats.length ? costLaterMachine : NaN,
    seedsClaim1: Object.fromEntries(stats.map((t) => [t.task, seedsFor(t.diffSd, PILOT_RULES.claim1HalfWidth, 0.95)])),
    seedsClaim2: Object.fromEntries(stats.map((t) => [t.task, seedsFor(t.diffSd, PILOT_RULES.claim2HalfWidth, 0.9)])),
  };
}

/**
 * The candidate the rules choose: the lowest cost among those whose SFT converged on both tasks;
 * undefined until every candidate has ≥ `minSeeds` pairs on each of its tasks (the pilot is
 * complete: a choice among the candidates measured so far would not be the rule's), and when none
 * qualifies.
 */
export function choosePilot(all: readonly PilotCandidateStats[]): PilotCandidateStats | undefined {
  if (!pilotComplete(all)) return undefined;
  const ok = all.filter((c) => c.converged && c.tasks.length >= 2 && c.tasks.every((t) => t.pairs >= PILOT_RULES.minSeeds) && Number.isFinite(c.cost));
  return [...ok].sort((a, b) => a.cost - b.cost)[0];
}

/** Whether every candidate has ≥ `minSeeds` SFT/GMT pairs on each of at least two tasks. */
export function pilotComplete(all: readonly PilotCandidateStats[]): boolean {
  return all.length > 0 && all.every((c) => c.tasks.length >= 2 && c.tasks.every((t) => t.pairs >= PILOT_RULES.minSeeds));
}

/** One calibration option: a task, its options, and SFT's accuracies on it. */
export interface CalibrationRow {
  task: string;
  options: Record<string, unknown>;
  seeds: number;
  mean: number;
  accuracies: number[];
}

/** The calibration's pick per task (see the file comment). */
export function calibrationPick(rows: readonly CalibrationRow[]): Map<string, CalibrationRow> {
  const [lo, hi] = PILOT_RULES.calibrationRange;
  const out = new Map<string, CalibrationRow>();
  for (const task of new Set(rows.map((r) => r.task))) {
    const score = (r: CalibrationRow) => (r.mean >= lo && r.mean <= hi ? Math.abs(r.mean - PILOT_RULES.calibrationTarget) : 1000 + Math.min(Math.abs(r.mean - lo), Math.abs(r.mean - hi)));
    const best = rows.filter((r) => r.task === task && Number.isFinite(r.mean)).sort((a, b) => score(a) - score(b))[0];
    if (best) out.set(task, best);
  }
  return out;
}

/** The main runs the chosen candidate implies under the budget (see the file comment). */
export interface MainRunPlan {
  /** Seeds per method on each task for claim 1 (also 1b and forgetting). */
  claim1Seeds: Record<string, number>;
  /** The half-width of claim 1's 95% CI those seeds predict from the pilot's SD (points). */
  claim1HalfWidth: Record<string, number>;
  /** Whether claim 1 fell back from ±1.5 to ±2.5 because ±1.5 would not fit its share of the budget. */
  claim1Fallback: boolean;
  /** What claim 1 at ±1.5 would take: its runs, and their minutes (two at a time) at `minutesPerRun`. */
  claim1Precise: { runs: number; minutes: number };
  /** The minutes per run the plan uses: the slower task's. */
  minutesPerRun: number;
  /** Seeds per task at each k in 0.1–0.5 and scope for claim 2; at 0.7 and 0.9 `claim2HighRatioSeeds`. */
  claim2Seeds: Record<string, number>;
  /** Predicted 90% half-width at those seeds (points). */
  claim2HalfWidth: Record<string, number>;
  /** Runs and machine-minutes (two at a time) of each part; notebook 06's 200 runs included. */
  runs: { claim1: number; claim2: number; ablations: number };
  minutes: { claim1: number; claim2: number; ablations: number; total: number };
  overBudget: boolean;
}

/** Half-width of a t interval at `level` with n seeds and SD `sd`. */
export function halfWidth(sd: number, n: number, level: number): number {
  return n >= 2 ? (tQuantile(1 - (1 - level) / 2, n - 1) * sd) / Math.sqrt(n) : NaN;
}

/**
 * The main runs of protocol 2 under the budget for the chosen candidate: claim 1's and claim 2's
 * seeds per task, the half-widths they predict and the machine time, with notebook 06's
 * `ablationRuns` (40 cells × 5 seeds) at the same minutes per run. Claim 2's runs: per task, 2
 * scopes × 4 ratios (k = 0.1, 0.2, 0.4, 0.5) plus global k = 0.3 at its seeds, 2 scopes × 2 high
 * ratios at 5 seeds; SFT and tensor k = 0.3 are claim 1's runs.
 */
export function mainRunPlan(chosen: PilotCandidateStats, ablationRuns = 200): MainRunPlan {
  const R = PILOT_RULES;
  const minutesPerRun = Math.max(...chosen.tasks.map((t) => t.minutesPerRun));
  const wall = (runs: number): number => (runs * minutesPerRun) / R.jobs;
  const at = (h: number): Record<string, number> => Object.fromEntries(chosen.tasks.map((t) => [t.task, seedsFor(t.diffSd, h, 0.95)]));
  let claim1Seeds = at(R.claim1HalfWidth);
  const claim1Runs = (seeds: Record<string, number>): number => Object.values(seeds).reduce((a, n) => a + 2 * n, 0);
  const claim1Precise = { runs: claim1Runs(claim1Seeds), minutes: wall(claim1Runs(claim1Seeds)) };
  const claim1Fallback = claim1Precise.minutes > R.claim1BudgetMinutes;
  if (claim1Fallback) claim1Seeds = at(R.claim1FloorHalfWidth);
  const claim2Seeds = Object.fromEntries(chosen.tasks.map((t) => [t.task, Math.min(R.claim2MaxSeeds, seedsFor(t.diffSd, R.claim2HalfWidth, 0.9))]));
  const claim2Runs = Object.values(claim2Seeds).reduce((a, n) => a + (2 * 4 + 1) * n + 2 * 2 * R.claim2HighRatioSeeds, 0);
  const runs = { claim1: claim1Runs(claim1Seeds), claim2: claim2Runs, ablations: ablationRuns };
  const minutes = { claim1: wall(runs.claim1), claim2: wall(runs.claim2), ablations: wall(runs.ablations), total: 0 };
  minutes.total = minutes.claim1 + minutes.claim2 + minutes.ablations;
  return {
    claim1Seeds,
    claim1HalfWidth: Object.fromEntries(chosen.tasks.map((t) => [t.task, halfWidth(t.diffSd, claim1Seeds[t.task]!, 0.95)])),
    claim1Fallback,
    claim1Precise,
    minutesPerRun,
    claim2Seeds,
    claim2HalfWidth: Object.fromEntries(chosen.tasks.map((t) => [t.task, halfWidth(t.diffSd, claim2Seeds[t.task]!, 0.9)])),
    runs, minutes, overBudget: minutes.total > R.budgetMinutes,
  };
}

/**
 * Claim 1's second stage (added 2026-12-08, once stage 1's runs were all in and before any
 * stage-2 run): an internal pilot in the sense of Wittes and Brittain (1990). Stage 1 is claim 1's
 * runs with the seeds the pilot fixed (`p2_gmt_vs_sft.json`); their intervals came out wider than
 * the pilot's SD predicted (the pilot's code SD was 1.9 points, stage 1's 4.6). The seed count is
 * re-estimated from stage 1's own paired SD only, never from its mean difference, so the rule
 * cannot steer the answer; the count is fixed once and the verdict is read after all its runs.
 *
 * - **Seeds per task**: n = max(stage 1's seeds, the smallest n with t(0.975, n−1)·SD₁/√n ≤ 1.5
 *   points), SD₁ being stage 1's paired GMT − SFT SD on that task; where the added runs at ±1.5
 *   would not fit `taskBudgetMinutes` (two runs at a time at stage 1's median minutes per run on
 *   the task), the seeds for ±2.5 instead, whatever they cost.
 * - **Added seeds** are fresh: they follow stage 1's (math from 11, code from 5), none shared with
 *   stage 1 or the pilot.
 * - **Verdict**: claim 1's rule on all n seeds (stages 1 and 2 together), with the ordinary t
 *   interval; stage 1's figures stay beside it. Claim 1b and forgetting are read on the same seeds.
 */
export const STAGE2_RULES = Object.freeze({
  halfWidth: 1.5,
  floorHalfWidth: 2.5,
  taskBudgetMinutes: 30,
  jobs: 2,
});

/** Stage 1's figures of one task that stage 2's rule reads. */
export interface StageOneTask {
  task: string;
  /** Seeds (pairs) in stage 1; stage 2's seeds start here. */
  seeds: number;
  /** SD of the paired GMT − SFT differences (points). */
  sd: number;
  /** Median wall time of the task's stage-1 runs, in minutes. */
  minutesPerRun: number;
}

/** Stage 2's plan for one task (see {@link STAGE2_RULES}). */
export interface StageTwoTask extends StageOneTask {
  /** The half-width aimed at: `halfWidth`, or `floorHalfWidth` where that did not fit. */
  target: number;
  /** Seeds in all (stages 1 and 2); the added ones are stage 1's count up to this, less one. */
  total: number;
  added: number;
  runs: number;
  minutes: number;
  /** The 95% half-width the SD predicts at `total` seeds. */
  predicted: number;
  /** What ±`halfWidth` would take. */
  precise: { total: number; runs: number; minutes: number };
}

/** Stage 2's seeds per task from stage 1's figures (the rule of {@link STAGE2_RULES}). */
export function stageTwoPlan(stage1: readonly StageOneTask[]): StageTwoTask[] {
  const R = STAGE2_RULES;
  return stage1.map((t) => {
    const at = (h: number): { total: number; runs: number; minutes: number } => {
      const total = Math.max(t.seeds, seedsFor(t.sd, h, 0.95));
      const runs = 2 * (total - t.seeds);
      return { total, runs, minutes: (runs * t.minutesPerRun) / R.jobs };
    };
    const precise = at(R.halfWidth);
    const target = precise.minutes <= R.taskBudgetMinutes ? R.halfWidth : R.floorHalfWidth;
    const chosen = target === R.halfWidth ? precise : at(target);
    return { ...t, target, total: chosen.total, added: chosen.total - t.seeds, runs: chosen.runs, minutes: chosen.minutes, predicted: halfWidth(t.sd, chosen.total, 0.95), precise };
  });
}
