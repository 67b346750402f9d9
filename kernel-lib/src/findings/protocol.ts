/**
 * figures/PROTOCOL.md: the pilot that chooses the findings' protocol (analysis/pilot.ts holds its
 * rules). Written by `gmt-lab protocol` from the pilot's own store (`data/results/pilot.jsonl`),
 * never by hand: pilot runs are not reused in the verdicts. The one part read from the findings
 * store is claim 1's second stage, whose rule re-estimates the seeds from stage 1's paired SD.
 * Before the pilot has run it states the plan and the rules; after, the calibration, the table,
 * the choice and the seeds it implies.
 */
import * as path from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { calibrationPick, choosePilot, mainRunPlan, PILOT_RULES, pilotComplete, pilotStats, STAGE2_RULES, stageTwoPlan, type CalibrationRow, type PilotCandidate, type PilotCandidateStats, type StageTwoTask } from '../analysis/pilot';
import { median } from '../util/stats';
import { meanCI } from '../analysis/stats';
import { claim1 } from '../analysis/claims';
import { gridResults } from './grid-results';
import { canonicalJson, loadGrid, resolveGrid, type SeedAxis, type SweepGrid, type TaskAxis } from '../sweep/grid';
import { planSweep } from '../sweep/runner';
import { ResultStore, type RunRecord } from '../sweep/store';
import { writeFileAtomic } from '../util/fsx';
import { ConfigError } from '../util/config';
import { runMode, type RunMode } from '../util/config';
import { CLAIM1_STAGE2_GRID, PROTOCOL2_GRID_FILES } from './grid-files';
import { findingsPaths } from './paths';

/** The pilot's grids (notebooks/grids/pilot-*.json) and its candidates. */
export const PILOT_GRIDS = ['pilot-calibration', 'pilot-a', 'pilot-b', 'pilot-c', 'pilot-d'] as const;

export const PILOT_CANDIDATES: readonly PilotCandidate[] = Object.freeze([
  { id: 'A', name: 'protocol 1', grid: 'pilot-a', evaluation: 'raw', description: 'today\'s protocol: 400 updates of 4 × 8, AdamW lr 2e-3, 20 warmup updates, cosine to 10%, clip 1; the raw weights are scored' },
  { id: 'B', name: 'harder tasks', grid: 'pilot-b', evaluation: 'raw', description: 'protocol 1 on harder tasks (the calibration below picks the difficulty), so that SFT lands in 60–85% instead of at the ceiling' },
  { id: 'C', name: 'gentler schedule', grid: 'pilot-c', evaluation: 'raw', description: 'protocol 1 with peak lr 1e-3 and a cosine decay to 0 (the weak code seeds of protocol 1 suggest instability)' },
  { id: 'D', name: 'larger batch', grid: 'pilot-d', evaluation: 'raw', description: 'protocol 1 with 8 micro-batches per update (64 examples) instead of 4 (twice the compute per run)' },
  { id: 'E', name: 'protocol 1, averaged weights', grid: 'pilot-a', evaluation: 'averaged', description: 'protocol 1, scoring a moving average of the weights (EMA, decay 0.98: about the last 50 updates) instead of the last ones; the same runs as A' },
  { id: 'F', name: 'harder tasks, averaged weights', grid: 'pilot-b', evaluation: 'averaged', description: 'B, scoring the moving average of the weights; the same runs as B' },
  { id: 'G', name: 'gentler schedule, averaged weights', grid: 'pilot-c', evaluation: 'averaged', description: 'C, scoring the moving average of the weights; the same runs as C' },
  { id: 'H', name: 'larger batch, averaged weights', grid: 'pilot-d', evaluation: 'averaged', description: 'D, scoring the moving average of the weights; the same runs as D' },
]);

/** Where the pilot's records live (beside the findings store, never inside it). */
export function pilotStore(mode: RunMode = runMode()): string {
  return path.join(findingsPaths(mode).resultsDir, 'pilot.jsonl');
}

/** The records of a grid's planned runs that the store holds (done). */
async function gridRecords(grid: SweepGrid, byExperiment: Map<string, RunRecord>, mode: RunMode): Promise<RunRecord[]> {
  const { runs } = await planSweep(grid, { mode });
  return runs.flatMap((r) => {
    const rec = byExperiment.get(r.experiment);
    return rec && rec.status === 'done' ? [{ ...rec, grid: grid.name }] : [];
  });
}

/** Claim 1 of protocol 1 (notebook 02's grid in the findings store), with each task's accuracy range. */
async function protocolOneClaim1(store: string, gridFile: string, mode: RunMode): Promise<(ReturnType<typeof claim1>[number] & { min: number; max: number })[]> {
  if (!existsSync(store) || !existsSync(gridFile)) return [];
  const { rows } = await gridResults(gridFile, store, mode);
  return claim1(rows, 'gmt', ['math', 'code']).filter((c) => c.diff.n >= 2).map((c) => {
    const acc = rows.filter((r) => r.task === c.task && (r.method === 'sft' || r.methodLabel === 'gmt') && r.accuracy !== null).map((r) => r.accuracy!);
    return { ...c, min: Math.min(...acc), max: Math.max(...acc) };
  });
}

/** Seeds per task, or — where the task has fewer than 2 pairs (no SD, so no seed count). */
function seedCells(s: PilotCandidateStats, seeds: Record<string, number>): string {
  return Object.entries(seeds).map(([t, n]) => `${t} ${Number.isFinite(s.tasks.find((x) => x.task === t)?.diffSd) ? n : '—'}`).join(', ');
}
const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '—');

/** The pilot's figures from its store: the calibration, each candidate's statistics and the choice. */
export interface PilotFigures {
  grids: Map<string, SweepGrid>;
  calibration: CalibrationRow[];
  picks: Map<string, CalibrationRow>;
  stats: PilotCandidateStats[];
  /** The candidate the rules choose; undefined until the pilot is complete enough to choose. */
  chosen?: PilotCandidateStats;
  /** Pilot runs in the store (done). */
  runs: number;
}

/** Computes the pilot's figures (analysis/pilot.ts's rules) from the pilot store of `mode`. */
export async function pilotFigures(mode: RunMode = runMode()): Promise<PilotFigures> {
  const paths = findingsPaths(mode);
  const store = pilotStore(mode);
  const latest = existsSync(store) ? new ResultStore(store).byExperiment() : new Map<string, RunRecord>();
  const grids = new Map<string, SweepGrid>();
  for (const name of PILOT_GRIDS) {
    const file = path.join(paths.gridsDir, `${name}.json`);
    if (existsSync(file)) grids.set(name, loadGrid(file));
  }
  const records = new Map<string, RunRecord[]>();
  for (const [name, g] of grids) records.set(name, await gridRecords(g, latest, mode));
  const runs = [...records.values()].reduce((a, r) => a + r.length, 0);

  // Calibration: SFT's accuracy per task and option.
  const calibration: CalibrationRow[] = [];
  for (const r of records.get('pilot-calibration') ?? []) {
    const options = r.config.taskOptions;
    const id = `${r.config.task} ${JSON.stringify(options)}`;
    let row = calibration.find((c) => `${c.task} ${JSON.stringify(c.options)}` === id);
    if (!row) calibration.push((row = { task: r.config.task, options, seeds: 0, mean: NaN, accuracies: [] }));
    const a = r.metrics?.rawTestAccuracy ?? r.metrics?.testAccuracy;
    if (typeof a === 'number') row.accuracies.push(100 * a);
  }
  for (const c of calibration) {
    c.seeds = c.accuracies.length;
    c.mean = meanCI(c.accuracies).mean;
  }
  const stats = PILOT_CANDIDATES.filter((c) => grids.has(c.grid)).map((c) => pilotStats(c, records.get(c.grid) ?? []));
  return { grids, calibration, picks: calibrationPick(calibration), stats, chosen: choosePilot(stats), runs };
}

/** Computes the pilot's figures and writes figures/PROTOCOL.md; returns the text and the choice. */
export async function writeProtocol(mode: RunMode = runMode()): Promise<{ file: string; text: string; chosen?: PilotCandidateStats; runs: number }> {
  const paths = findingsPaths(mode);
  const { grids, calibration, picks, stats, chosen, runs } = await pilotFigures(mode);

  const out: string[] = [];
  out.push('# The findings\' protocol, chosen by a pilot', '');
  out.push('Made by `gmt-lab protocol` from the pilot\'s own store (`data/results/pilot.jsonl`), and for claim 1\'s second stage from stage 1\'s runs in the findings store; not edited by hand. Pilot runs are never read by the claims: the confirmatory runs use other seeds and their own store.', '');
  out.push('## Why a pilot', '');
  const p1 = await protocolOneClaim1(paths.store, path.join(paths.gridsDir, '02_gmt_vs_sft.json'), mode);
  if (p1.length) {
    out.push(`Under protocol 1 (notebook 02's grid, on the wasm engine; from \`${path.relative(paths.root, paths.store)}\`), claim 1 was ${p1.map((c) => `${c.verdict} on ${c.task} (paired GMT − SFT ${c.diff.mean >= 0 ? '+' : ''}${f1(c.diff.mean)} [${f1(c.diff.lo)}, ${f1(c.diff.hi)}] points, ${c.diff.n} seeds; SFT ${f1(c.sft.mean)}, runs from ${f1(c.min)} to ${f1(c.max)})`).join(', and ')}, while the paper's gains are 1–2 points.`);
  }
  out.push('The pilot measures, per candidate protocol, how much noise a seed costs, and picks the protocol that buys the narrowest intervals per machine-minute.', '');
  out.push('## Rules (fixed in `kernel-lib/src/analysis/pilot.ts` before the first pilot run)', '',
    `- **Difficulty calibration** (candidate B): SFT, 3 seeds per task and option; the option whose mean test accuracy lies in [${PILOT_RULES.calibrationRange.join(', ')}] points and nearest ${PILOT_RULES.calibrationTarget} is used (if none lies inside, the nearest to the range).`,
    `- **Per candidate and task**, from SFT and GMT (k = 0.3, tensor scope) on the same ≥ ${PILOT_RULES.minSeeds} seeds: the SD of the paired GMT − SFT differences in test accuracy (points); the failed-seed rate per method (a seed whose accuracy is below ${PILOT_RULES.failedBelowHalfMedian} × the median of its method, task and candidate); SFT's convergence: the mean over SFT seeds of the validation-loss fall over the last ${PILOT_RULES.convergenceWindow} updates as a fraction of the fall from the base model, *converged* below ${100 * PILOT_RULES.convergedFallFraction}%; and the machine-minutes per run (median wall time; one core per run).`,
    '- **Cost** of a candidate: Σ over the two tasks of SD² × minutes per run. The seeds a given interval width needs grow like SD², so the cost is proportional to the machine time of a given precision.',
    `- **Choice**: the lowest cost among the candidates whose SFT converged on both tasks, made once every candidate has ≥ ${PILOT_RULES.minSeeds} pairs on each task.`,
    `- **Seeds** the choice implies, per task: the smallest n with t(0.975, n−1)·SD/√n ≤ ${PILOT_RULES.claim1HalfWidth} points (claim 1, 95% CI), and with t(0.95, n−1)·SD/√n ≤ ${PILOT_RULES.claim2HalfWidth} points (claim 2, 90% CI; the GMT − SFT SD stands in for the SD of acc(k) − acc(0.3), which the pilot does not measure).`,
    `- **Seeds under the budget** (added 2026-12-06, before any candidate but A had a run and before the choice): full mode of protocol 2 and notebook 06 should fit ${PILOT_RULES.budgetMinutes / 60} h of this machine (${PILOT_RULES.jobs} runs at a time, at the chosen candidate's minutes per run). Claim 1 (whose runs also give 1b and forgetting) takes the seeds for ±${PILOT_RULES.claim1HalfWidth} points when those runs fit ${PILOT_RULES.claim1BudgetMinutes / 60} h, otherwise the seeds for ±${PILOT_RULES.claim1FloorHalfWidth}, the least precision worth running, whatever they cost; claim 2 the seeds for ±${PILOT_RULES.claim2HalfWidth} points (90%) at k = 0.1–0.5, at most ${PILOT_RULES.claim2MaxSeeds}, and ${PILOT_RULES.claim2HighRatioSeeds} at k = 0.7 and 0.9; notebook 06 keeps its 5 seeds per cell. What exceeds the budget runs over several sittings and is reported as over it.`,
    '- Reported beside the rule, not used by it: each candidate\'s 10th-percentile wall time and the cost with it, because other work on the machine (a test suite, a reproduce) slowed more of some candidates\' runs than of others\', and whether the choice would change with it.',
    `- **One machine's minutes** (added 2026-12-07, before candidate D's seeds 1002–1007 were read and before the choice): the pilot moved to a second machine partway through D, about 1.6× faster (D's runs took 3.1–3.6 min on the first and 2.0–2.3 on the second). Every other candidate was timed on the first, so a candidate's minutes per run come from its runs made before ${PILOT_RULES.firstMachineUntil.slice(0, 10)} (the first machine) where it has any on the task, from all its runs otherwise. The later machine's minutes, the cost with them and the choice they would give are reported beside the rule.`,
    '- Candidates with averaged weights share the runs of their protocol (every pilot run keeps both the raw and the averaged weights\' figures); their minutes per run are those shared runs\'.', '');
  out.push('## Candidates', '', '| id | candidate | what changes | grid |', '|---|---|---|---|');
  for (const c of PILOT_CANDIDATES) out.push(`| ${c.id} | ${c.name} | ${c.description} | \`notebooks/grids/${c.grid}.json\` |`);
  out.push('', 'Every pilot run: the `micro` base on the native engine, 1,000 test problems, seeds 1000–1007 (the confirmatory runs use seeds from 0), validation every 50 updates, the test answers\' loss recorded, and a moving average of the weights kept beside the raw weights.', '');

  out.push('## Difficulty calibration (candidate B)', '');
  if (calibration.length === 0) out.push('_Not run yet._', '');
  else {
    out.push('| task | options | SFT seeds | SFT accuracy (points) | mean | picked |', '|---|---|---|---|---|---|');
    for (const c of calibration) out.push(`| ${c.task} | \`${JSON.stringify(c.options)}\` | ${c.seeds} | ${c.accuracies.map(f1).join(', ')} | ${f1(c.mean)} | ${picks.get(c.task) === c ? '**yes**' : ''} |`);
    const b = grids.get('pilot-b');
    if (b) {
      const used = b.tasks.map((t) => (typeof t === 'string' ? `${t} (protocol 1's options)` : `${t.task} \`${JSON.stringify(t.taskOptions ?? {})}\``));
      const agrees = [...picks].every(([task, r]) => b.tasks.some((t) => typeof t !== 'string' && t.task === task && JSON.stringify(t.taskOptions ?? {}) === JSON.stringify(r.options)));
      out.push('', `The rule picks ${[...picks].map(([t, r]) => `${t} \`${JSON.stringify(r.options)}\``).join(' and ')}; candidate B's grid uses ${used.join(' and ')}${agrees ? ', as the rule says' : ' — NOT what the rule picks'}.`);
    }
    out.push('');
  }

  out.push('## Pilot', '');
  if (stats.every((s) => s.tasks.length === 0)) out.push('_Not run yet: the table, the choice and the seed counts appear here once the pilot grids are in the store._', '');
  else {
    out.push('| candidate | task | pairs | SFT mean | GMT mean | GMT − SFT mean | paired SD | failed seeds SFT / GMT | SFT late fall | converged | min/run | min/run, 10th pct | runs timed · on the later machine | min/run, later machine |', '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const s of stats) {
      for (const t of s.tasks) {
        out.push(`| ${s.candidate.id} ${s.candidate.name} | ${t.task} | ${t.pairs} | ${f1(t.sftMean)} | ${f1(t.gmtMean)} | ${t.diffMean >= 0 ? '+' : ''}${f1(t.diffMean)} | ${f2(t.diffSd)} | ${t.failed.sft[0]}/${t.failed.sft[1]} · ${t.failed.gmt[0]}/${t.failed.gmt[1]} | ${Number.isFinite(t.sftLateFall) ? `${(100 * t.sftLateFall).toFixed(2)}%` : '—'} | ${t.converged ? 'yes' : 'no'} | ${f2(t.minutesPerRun)} | ${f2(t.minutesQuiet)} | ${t.timedRuns} · ${t.laterMachineRuns} | ${f2(t.minutesLaterMachine)} |`);
      }
    }
    out.push('', '| candidate | converged on both tasks | cost Σ SD² × min | the same with the 10th-percentile minutes | the same with the later machine\'s minutes | seeds for claim 1 (±1.5, 95%) | seeds for claim 2 (±2, 90%) |', '|---|---|---|---|---|---|---|');
    for (const s of stats) {
      out.push(`| ${s.candidate.id} ${s.candidate.name} | ${s.converged ? 'yes' : 'no'} | ${f1(s.cost)} | ${f1(s.costQuiet)} | ${f1(s.costLaterMachine)} | ${seedCells(s, s.seedsClaim1)} | ${seedCells(s, s.seedsClaim2)} |`);
    }
    out.push('');
    out.push('## Choice', '');
    if (!chosen) out.push(pilotComplete(stats) ? '_No candidate qualifies: none has SFT converged on both tasks._' : `_No choice yet: the rule waits until every candidate has ≥ ${PILOT_RULES.minSeeds} pairs on each task._`, '');
    else {
      const quiet = choosePilot(stats.map((x) => ({ ...x, cost: x.costQuiet })));
      const later = choosePilot(stats.map((x) => ({ ...x, cost: x.costLaterMachine })));
      out.push(`**${chosen.candidate.id}: ${chosen.candidate.name}** — ${chosen.candidate.description}.`, '',
        quiet?.candidate.id === chosen.candidate.id
          ? 'With the 10th-percentile minutes in place of the median (a run\'s time on a machine doing nothing else; the rule uses the median), the choice is the same.'
          : `With the 10th-percentile minutes in place of the median (a run's time on a machine doing nothing else) the cheapest would be ${quiet ? `${quiet.candidate.id} (${quiet.candidate.name})` : 'none'}; the rule, written before the runs, uses the median, and the choice above follows it.`, '',
        later?.candidate.id === chosen.candidate.id
          ? 'With the later machine\'s minutes wherever a candidate has runs there (the rule uses the first machine\'s), the choice is the same.'
          : `With the later machine's minutes wherever a candidate has runs there, the cheapest would be ${later ? `${later.candidate.id} (${later.candidate.name})` : 'none'}; the rule compares minutes on one machine, and the choice above follows it.`, '',
        `Seeds it implies: claim 1 ${Object.entries(chosen.seedsClaim1).map(([t, n]) => `${n} on ${t}`).join(', ')} (per method); claim 2 ${Object.entries(chosen.seedsClaim2).map(([t, n]) => `${n} on ${t}`).join(', ')} (per k and scope).`, '');
      const plan = mainRunPlan(chosen);
      const per = (r: Record<string, number>, f: (n: number) => string): string => Object.entries(r).map(([t, n]) => `${f(n)} on ${t}`).join(', ');
      out.push('## Seeds under the budget', '',
        `- Claim 1 (and 1b, forgetting): ${per(plan.claim1Seeds, String)} seeds per method${plan.claim1Fallback ? ` — the seeds for ±${PILOT_RULES.claim1HalfWidth} would not fit ${PILOT_RULES.claim1BudgetMinutes / 60} h (${plan.claim1Precise.runs} runs, ${f1(plan.claim1Precise.minutes)} min at ${f2(plan.minutesPerRun)} min per run, the slower task's), so the rule falls back to ±${PILOT_RULES.claim1FloorHalfWidth}` : ''}; predicted 95% half-width ${per(plan.claim1HalfWidth, (h) => `±${f2(h)}`)} points; ${plan.runs.claim1} runs, ${f1(plan.minutes.claim1)} min.`,
        `- Claim 2: ${per(plan.claim2Seeds, String)} seeds per k in 0.1–0.5 and scope, ${PILOT_RULES.claim2HighRatioSeeds} at k = 0.7 and 0.9; predicted 90% half-width ${per(plan.claim2HalfWidth, (h) => `±${f2(h)}`)} points; ${plan.runs.claim2} runs, ${f1(plan.minutes.claim2)} min.`,
        `- Notebook 06: ${plan.runs.ablations} runs, ${f1(plan.minutes.ablations)} min.`,
        `- In all ${f1(plan.minutes.total / 60)} h of this machine${plan.overBudget ? `, over the ${PILOT_RULES.budgetMinutes / 60} h budget: the sweeps run over several sittings, resuming from the store` : `, within the ${PILOT_RULES.budgetMinutes / 60} h budget`}.`, '');
    }
  }
  out.push('## Kernel builds', '',
    '- **Added 2026-12-07, before the first confirmatory run on a second build.** The native engine is compiled at setup for the machine\'s vector ISA, so a later sitting on a machine without AVX-512 gets an AVX2 build with another build id. A run is identified by its experiment (config, input files, kernel-lib version, backend and engine: `experimentKey` in `kernel-lib/src/sweep/grid.ts`), not by the build: a sweep on the second build makes only the runs the store lacks, and the analysis pairs GMT and SFT by seed whichever build made each run.',
    '- Two builds run a seed from the same initial weights over the same batches; their runs differ by float rounding, which grows over 400 updates as it does between any two methods\' runs of one seed. The same-weights re-check compares only runs made on the build at hand.',
    '- CLAIMS.md\'s provenance lines list the builds that made each claim\'s runs, with how many runs each.', '');
  out.push(...stageTwoLines(await stageTwoFigures(mode), paths.root));
  const text = `${out.join('\n')}\n`;
  const file = path.join(paths.figuresDir, 'PROTOCOL.md');
  writeFileAtomic(file, text);
  return { file, text, chosen, runs };
}

/** The pilot's per-candidate, per-task figures as table rows (notebook 07, PROTOCOL.md's first table). */
export function pilotTaskRows(stats: readonly PilotCandidateStats[]): Record<string, unknown>[] {
  return stats.flatMap((s) => s.tasks.map((t) => ({
    candidate: `${s.candidate.id} ${s.candidate.name}`, task: t.task, pairs: t.pairs,
    sftMean: t.sftMean, gmtMean: t.gmtMean, diffMean: t.diffMean, diffSd: t.diffSd,
    failedSft: `${t.failed.sft[0]}/${t.failed.sft[1]}`, failedGmt: `${t.failed.gmt[0]}/${t.failed.gmt[1]}`,
    sftLateFallPct: 100 * t.sftLateFall, converged: t.converged, minutesPerRun: t.minutesPerRun, minutesQuiet: t.minutesQuiet,
    laterMachineRuns: t.laterMachineRuns, minutesLaterMachine: t.minutesLaterMachine,
  })));
}

/** The pilot's per-candidate cost and the seeds it implies, as table rows (PROTOCOL.md's second table). */
export function pilotCandidateRows(stats: readonly PilotCandidateStats[], chosen?: PilotCandidateStats): Record<string, unknown>[] {
  return stats.filter((s) => s.tasks.length > 0).map((s) => ({
    candidate: `${s.candidate.id} ${s.candidate.name}`, converged: s.converged, cost: s.cost, costQuiet: s.costQuiet, costLaterMachine: s.costLaterMachine,
    seedsClaim1: seedCells(s, s.seedsClaim1),
    seedsClaim2: seedCells(s, s.seedsClaim2),
    chosen: chosen?.candidate.id === s.candidate.id,
  }));
}

/**
 * Protocol 2's grids from the pilot's choice and the budget rule: the chosen candidate's settings
 * (its base, tasks and engine; the moving average of the weights kept only where the candidate
 * scores it), SFT and GMT (k = 0.3, tensor scope) with claim 1's seeds per task, and claim 2's
 * ratios × scopes with its seeds. Seeds start at 0 (the pilot's are 1000–1007). `fast` sections
 * come from `previous` (the files as they are), so `npm test` keeps its toy sizes.
 */
export function protocolTwoGrids(figures: PilotFigures, previous: Partial<Record<'gmtVsSft' | 'maskRatio', SweepGrid>> = {}): { gmtVsSft: SweepGrid; maskRatio: SweepGrid } {
  const chosen = figures.chosen;
  if (!chosen) throw new ConfigError('protocol 2\'s grids need the pilot\'s choice, and the pilot has not chosen yet (figures/PROTOCOL.md)');
  const source = figures.grids.get(chosen.candidate.grid);
  if (!source) throw new ConfigError(`the chosen candidate's grid ${chosen.candidate.grid} is missing`);
  const plan = mainRunPlan(chosen);
  const base: Record<string, unknown> = { ...source.base, forgetting: true, testLoss: true };
  if (chosen.candidate.evaluation === 'raw') delete base.ema;
  const tasksWith = (seeds: Record<string, number>): TaskAxis[] => source.tasks.map((t) => {
    const task = typeof t === 'string' ? t : t.task;
    const own = typeof t === 'string' ? {} : { ...(t.taskOptions ? { taskOptions: t.taskOptions } : {}) };
    return { task, ...own, seeds: { count: seeds[task] ?? 2 } };
  });
  const who = `candidate ${chosen.candidate.id} (${chosen.candidate.name}: ${chosen.candidate.description})`;
  const gmtVsSft = resolveGrid({
    name: 'p2-gmt-vs-sft',
    description: `Protocol 2 (figures/PROTOCOL.md; written by gmt-lab protocol --grids): claims 1, 1b and forgetting. SFT and GMT (k = 0.3, tensor scope) with the pilot's choice, ${who}, and claim 1's seeds per task under the budget rule.`,
    engine: source.engine,
    base,
    methods: ['sft', { method: 'gmt', label: 'gmt', options: { ratio: 0.3, scope: 'tensor' } }],
    tasks: tasksWith(plan.claim1Seeds),
    seeds: { count: Math.max(...Object.values(plan.claim1Seeds)) },
    ...(previous.gmtVsSft?.fast ? { fast: previous.gmtVsSft.fast } : {}),
  }, 'protocol 2 (claim 1)');
  const maskRatio = resolveGrid({
    name: 'p2-mask-ratio',
    description: `Protocol 2 (figures/PROTOCOL.md; written by gmt-lab protocol --grids): claim 2 on both tasks and both scopes with the pilot's choice, ${who}. GMT at k = 0.1-0.5 with claim 2's seeds per task, k = 0.7 and 0.9 with ${PILOT_RULES.claim2HighRatioSeeds} (where accuracy falls); SFT is k = 0.`,
    engine: source.engine,
    base,
    methods: [
      { method: 'sft', label: 'sft' },
      { method: 'gmt', options: { ratio: [0.1, 0.2, 0.3, 0.4, 0.5], scope: ['tensor', 'global'] } },
      { method: 'gmt', options: { ratio: [0.7, 0.9], scope: ['tensor', 'global'] }, seeds: { count: PILOT_RULES.claim2HighRatioSeeds } },
    ],
    tasks: tasksWith(plan.claim2Seeds),
    seeds: { count: Math.max(...Object.values(plan.claim2Seeds)) },
    ...(previous.maskRatio?.fast ? { fast: previous.maskRatio.fast } : {}),
  }, 'protocol 2 (claim 2)');
  return { gmtVsSft, maskRatio };
}

function protocolTwoFiles(mode: RunMode): { files: Record<'gmtVsSft' | 'maskRatio', string>; previous: Partial<Record<'gmtVsSft' | 'maskRatio', SweepGrid>> } {
  const paths = findingsPaths(mode);
  const files = { gmtVsSft: path.join(paths.gridsDir, PROTOCOL2_GRID_FILES.gmtVsSft), maskRatio: path.join(paths.gridsDir, PROTOCOL2_GRID_FILES.maskRatio) };
  const previous = Object.fromEntries(Object.entries(files).filter(([, f]) => existsSync(f)).map(([k, f]) => [k, resolveGrid(JSON.parse(readFileSync(f, 'utf8')), f)]));
  return { files, previous };
}

/**
 * Whether protocol 2's grids may be swept and read: the pilot has chosen and the grid files are
 * what `gmt-lab protocol --grids` writes from that choice (a provisional or stale grid is never
 * swept). `reason` says why not, or which candidate.
 */
export async function protocolTwoReady(mode: RunMode = runMode()): Promise<{ ready: boolean; reason: string }> {
  const { previous } = protocolTwoFiles(mode);
  return protocolTwoReadyFor(await pilotFigures(mode), previous);
}

/** {@link protocolTwoReady} on given pilot figures and grid files (`previous`: the files as they are). */
export function protocolTwoReadyFor(figures: PilotFigures, previous: Partial<Record<'gmtVsSft' | 'maskRatio', SweepGrid>>): { ready: boolean; reason: string } {
  if (!figures.chosen) return { ready: false, reason: `the pilot has not chosen yet (${figures.runs} pilot runs; figures/PROTOCOL.md)` };
  const want = protocolTwoGrids(figures, previous);
  for (const k of ['gmtVsSft', 'maskRatio'] as const) {
    const have = previous[k];
    if (!have || canonicalJson(withoutDefaults(have)) !== canonicalJson(withoutDefaults(want[k]))) {
      return { ready: false, reason: `${PROTOCOL2_GRID_FILES[k]} is not the grid the pilot's choice (${figures.chosen.candidate.id}) gives: run \`gmt-lab protocol --grids\` and commit it` };
    }
  }
  return { ready: true, reason: `the pilot chose ${figures.chosen.candidate.id} (${figures.chosen.candidate.name})` };
}

/** Writes protocol 2's grid files (notebooks/grids/p2_*.json) from the pilot's choice; returns their paths. */
export async function writeProtocolTwoGrids(mode: RunMode = runMode()): Promise<string[]> {
  const { files, previous } = protocolTwoFiles(mode);
  const grids = protocolTwoGrids(await pilotFigures(mode), previous);
  for (const [k, f] of Object.entries(files)) writeFileAtomic(f, `${JSON.stringify(withoutDefaults(grids[k as keyof typeof grids]), null, 2)}\n`);
  return Object.values(files);
}

/** A resolved grid without the fields that only repeat the defaults, as a person would write it. */
function withoutDefaults(g: SweepGrid): Record<string, unknown> {
  const out: Record<string, unknown> = { ...g };
  for (const [k, v] of Object.entries(out)) {
    if (v === undefined || (Array.isArray(v) && v.length === 0) || (k === 'vary' && Object.keys(v as object).length === 0)) delete out[k];
  }
  return out;
}

/** Claim 1's two stages under protocol 2: stage 1's figures, stage 2's plan and its grid file. */
export interface StageTwoFigures {
  /** Stage 1's grid file (`p2_gmt_vs_sft.json`): its planned runs and how many the store lacks. */
  stage1: { file: string; planned: number; missing: number };
  /** Per task, stage 1's figures and stage 2's seeds ({@link stageTwoPlan}); empty until stage 1 is complete. */
  plan: StageTwoTask[];
  /** The stage-2 grid the rule gives; undefined until stage 1 is complete. */
  grid?: SweepGrid;
  /** The stage-2 grid file, and whether it is there and is the grid the rule gives. */
  file: string;
  written: boolean;
  matches: boolean;
}

/** The seed after the last of an axis (where a fresh fast-mode seed starts). */
function nextSeed(axis: SeedAxis | undefined): number {
  if (axis === undefined) return 1;
  return Array.isArray(axis) ? Math.max(-1, ...axis) + 1 : (axis.from ?? 0) + axis.count;
}

/**
 * Claim 1's stage-2 grid: stage 1's grid (its settings, methods and engine) with each task's fresh
 * seeds from the plan (stage 1's count onwards); tasks the plan adds nothing to are left out. Fast
 * mode runs one fresh seed after stage 1's fast seeds.
 */
export function stageTwoGrid(stage1: SweepGrid, plan: readonly StageTwoTask[]): SweepGrid {
  const tasks: TaskAxis[] = stage1.tasks.flatMap((t) => {
    const task = typeof t === 'string' ? t : t.task;
    const p = plan.find((x) => x.task === task);
    if (!p || p.added <= 0) return [];
    const own = typeof t === 'string' || !t.taskOptions ? {} : { taskOptions: t.taskOptions };
    return [{ task, ...own, seeds: { from: p.seeds, count: p.added } }];
  });
  if (tasks.length === 0) throw new ConfigError('claim 1\'s stage 2 adds no seeds on any task: stage 1 already meets the rule\'s half-width');
  const widest = plan.reduce((a, p) => (p.added > a.added ? p : a));
  return resolveGrid({
    name: 'p2-claim1-stage2',
    description: `Protocol 2, claim 1's second stage (figures/PROTOCOL.md; written by gmt-lab protocol --grids): ${PROTOCOL2_GRID_FILES.gmtVsSft}'s settings with the fresh seeds the stage-2 rule re-estimates from stage 1's paired SD per task; claims 1, 1b and forgetting read both stages' seeds together.`,
    engine: stage1.engine,
    base: stage1.base,
    methods: stage1.methods,
    tasks,
    seeds: { from: widest.seeds, count: widest.added },
    ...(stage1.fast ? { fast: { ...stage1.fast, seeds: [nextSeed(stage1.fast.seeds)] } } : {}),
  }, 'protocol 2 (claim 1, stage 2)');
}

/** Stage 1's figures from the findings store of `mode`, stage 2's plan and grid (see {@link STAGE2_RULES}). */
export async function stageTwoFigures(mode: RunMode = runMode()): Promise<StageTwoFigures> {
  const paths = findingsPaths(mode);
  const stage1File = path.join(paths.gridsDir, PROTOCOL2_GRID_FILES.gmtVsSft);
  const file = path.join(paths.gridsDir, CLAIM1_STAGE2_GRID);
  const written = existsSync(file);
  const none = { file, written, matches: false, plan: [] };
  if (!existsSync(stage1File)) return { stage1: { file: stage1File, planned: 0, missing: 0 }, ...none };
  const g = await gridResults(stage1File, paths.store, mode);
  const stage1 = { file: stage1File, planned: g.planned.length, missing: g.missing };
  if (g.missing > 0 || g.planned.length === 0) return { stage1, ...none };
  const tasks = [...new Set(g.planned.map((r) => r.config.task))];
  const plan = stageTwoPlan(claim1(g.rows, 'gmt', tasks).map((c) => ({
    task: c.task,
    seeds: c.diff.n,
    sd: c.diff.sd,
    minutesPerRun: median(g.records.filter((r) => r.config.task === c.task && r.timings).map((r) => r.timings!.totalMs / 60000)),
  })));
  const grid = plan.some((p) => p.added > 0) ? stageTwoGrid(loadGrid(stage1File), plan) : undefined;
  const matches = written && grid !== undefined && canonicalJson(withoutDefaults(resolveGrid(JSON.parse(readFileSync(file, 'utf8')), file))) === canonicalJson(withoutDefaults(grid));
  return { stage1, plan, grid, file, written, matches };
}

/** Writes claim 1's stage-2 grid file from the rule; returns its path, or undefined while stage 1 is incomplete or adds nothing. */
export async function writeStageTwoGrid(mode: RunMode = runMode()): Promise<string | undefined> {
  const s = await stageTwoFigures(mode);
  if (!s.grid) return undefined;
  writeFileAtomic(s.file, `${JSON.stringify(withoutDefaults(s.grid), null, 2)}\n`);
  return s.file;
}

/** PROTOCOL.md's section on claim 1's second stage. */
export function stageTwoLines(s: StageTwoFigures, root: string): string[] {
  const R = STAGE2_RULES;
  const rel = (f: string): string => path.relative(root, f);
  const out = ['## Claim 1, stage 2: seeds re-estimated from stage 1\'s own runs', '',
    `**Rule** (added 2026-12-08, once stage 1's runs were all in and before any stage-2 run; fixed in \`STAGE2_RULES\`, \`kernel-lib/src/analysis/pilot.ts\`). Stage 1 is claim 1's runs with the seeds above (\`${rel(s.stage1.file)}\`). Their intervals came out wider than the pilot's SD predicted, so the seeds are re-estimated once, as an internal pilot (Wittes and Brittain, 1990), from stage 1's own paired SD and never from its mean difference:`, '',
    `- **Seeds per task**: the smallest n, at least stage 1's, with t(0.975, n−1)·SD₁/√n ≤ ${R.halfWidth} points, SD₁ being stage 1's paired GMT − SFT SD on the task; where the added runs would not fit ${R.taskBudgetMinutes} min (${R.jobs} runs at a time, at the median minutes of the task's stage-1 runs), the seeds for ±${R.floorHalfWidth} instead, whatever they cost.`,
    '- **Added seeds** are fresh: they follow stage 1\'s on each task, none shared with stage 1 or the pilot.',
    '- **Verdict**: claim 1\'s rule on all the seeds of both stages, with the ordinary t interval; stage 1\'s figures stay beside it in CLAIMS.md. Claim 1b and forgetting are read on the same seeds. The count is fixed here and not revisited whatever the stage-2 runs show.', ''];
  if (s.plan.length === 0) {
    out.push(s.stage1.planned === 0 ? '_Stage 1\'s grid is not there yet._' : `_Stage 1 is not complete yet: the store lacks ${s.stage1.missing} of its ${s.stage1.planned} runs; the plan appears here once they are in._`, '');
    return out;
  }
  out.push('| task | stage-1 seeds | stage-1 paired SD | min/run (stage 1, median) | ±1.5 would take | aim | seeds in all | added seeds | runs | minutes, 2 at a time | predicted 95% half-width |', '|---|---|---|---|---|---|---|---|---|---|---|');
  for (const p of s.plan) {
    out.push(`| ${p.task} | ${p.seeds} | ${f2(p.sd)} | ${f2(p.minutesPerRun)} | ${p.precise.total} seeds, ${p.precise.runs} runs, ${f1(p.precise.minutes)} min | ±${p.target} | ${p.total} | ${p.added ? `${p.added} (${p.seeds}–${p.total - 1})` : '0'} | ${p.runs} | ${f1(p.minutes)} | ±${f2(p.predicted)} |`);
  }
  out.push('', `Grid: \`${rel(s.file)}\` — ${!s.grid ? 'none needed: stage 1 meets the rule on every task' : !s.written ? 'not written yet (`gmt-lab protocol --grids` writes it)' : s.matches ? 'the grid the rule gives' : 'NOT the grid the rule gives: run `gmt-lab protocol --grids`'}.`, '');
  return out;
}

/** Claim 1's stage-2 grid, or undefined where `gmt-lab protocol --grids` has not written it (yet). */
export function loadStageTwoGrid(mode: RunMode = runMode()): SweepGrid | undefined {
  const file = path.join(findingsPaths(mode).gridsDir, CLAIM1_STAGE2_GRID);
  return existsSync(file) ? loadGrid(file) : undefined;
}
