/**
 * What each findings notebook computes from the store, kept here so that the notebooks, the
 * `gmt-lab claims` command and `npm run reproduce` compute it the same way:
 *
 * - {@link gridResults}: a grid file's planned runs and their records;
 * - {@link comparisonReport} (notebook 02): mean ± CI per method and task, paired differences
 *   against SFT with Holm-adjusted p-values, forgetting, and the noise study;
 * - {@link ratioReport} (notebook 03): accuracy against the mask ratio per scope;
 * - {@link writeClaims}: figures/CLAIMS.md from all of it and notebook 04's benchmark, with the
 *   PNG of the figure behind each claim (`claimFigures`).
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { pairedVsBaseline, summarize, type ResultRow, type Table } from '../analysis/results';
import { claim1, claim1b, claim2, claim3, claimsMarkdown, sizeTrend, type Claim2Result, type ClaimsProvenance, type ForgettingSummary, type ProtocolClaims, type SizeTrendResult, stagedResults } from '../analysis/claims';
import { meanCI } from '../analysis/stats';
import { planSweep, runPlanned } from '../sweep/runner';
import { Rng } from '../util/rng';
import { ResultStore, type RunRecord } from '../sweep/store';
import { gridForMode, resolveGrid, type PlannedRun, type SweepGrid } from '../sweep/grid';
import type { EngineName } from '../backend/engine';
import { runMode, type RunMode } from '../util/config';
import { writeFileAtomic } from '../util/fsx';
import { resolveBaseCheckpoint } from '../sweep/paths';
import { readCheckpointConfig } from '../model/safetensors';
import tQuantile = require('@stdlib/stats-base-dists-t-quantile');
import { findingsPaths } from './paths';
import { gridResults, type GridResults } from './grid-results';
import { CLAIM1_STAGE2_GRID, FINDINGS_GRIDS, PROTOCOL2_GRID_FILES, SIZE_TREND_GRID } from './grid-files';
import { protocolTwoReady } from './protocol';
import { readCachedBench, type CachedBench } from './bench';
import { claimFigures } from './gallery';

export { gridResults, gridSummary, type GridResults } from './grid-results';

/** Seeds needed for a paired-difference CI half-width of `target` points, given its SD (t-based, iterated). */
export function seedsForHalfWidth(sd: number, target: number, level = 0.95): number {
  if (!(sd > 0)) return 2;
  let n = 2;
  while (n < 10000 && tQuantile(1 - (1 - level) / 2, n - 1) * sd / Math.sqrt(n) > target) n += 1;
  return n;
}

/** One row of the forgetting table: a probe's mean over seeds with its 95% CI. */
export interface ForgettingRow {
  task: string;
  methodLabel: string;
  metric: 'facts (points)' | 'general loss';
  n: number;
  mean: number;
  sd: number;
  lo: number;
  hi: number;
}

/** Notebook 02's numbers. */
export interface ComparisonReport {
  /** Accuracy (points) per method label and task: n, mean, sd, lo, hi. */
  accuracy: Table;
  valLoss: Table;
  /** method − SFT on the same seeds, per task: diff, CI, p, Holm p. */
  paired: Table;
  /** Forgetting per method and task: facts accuracy and general-text loss after fine-tuning, and the base's. */
  forgetting: ForgettingRow[];
  /** The noise study per task: seed SD of SFT and GMT, SD of the paired difference, CI half-width, seeds for ±3. */
  noise: Record<string, unknown>[];
}

/** The comparison of notebook 02 from its result rows (`gmtLabel` names GMT, default `gmt`). */
export function comparisonReport(rows: readonly ResultRow[], gmtLabel = 'gmt'): ComparisonReport {
  const accuracy = summarize(rows as never, ['task', 'methodLabel'], 'accuracy');
  const valLoss = summarize(rows as never, ['task', 'methodLabel'], 'valLoss');
  const paired = pairedVsBaseline(rows as never, { metric: 'accuracy', baseline: 'sft', by: ['task'] });
  const forgetting: ForgettingRow[] = [
    ...(summarize(rows as never, ['task', 'methodLabel'], 'facts').objects() as ForgettingRow[]).map((r) => ({ ...r, metric: 'facts (points)' as const })),
    ...(summarize(rows as never, ['task', 'methodLabel'], 'generalValLoss').objects() as ForgettingRow[]).map((r) => ({ ...r, metric: 'general loss' as const })),
  ];
  const base = rows.find((r) => r.baseFacts !== null);
  if (base) {
    forgetting.push({ task: 'base', methodLabel: 'base model', n: 1, mean: base.baseFacts ?? NaN, sd: NaN, lo: NaN, hi: NaN, metric: 'facts (points)' });
    forgetting.push({ task: 'base', methodLabel: 'base model', n: 1, mean: base.baseGeneralValLoss ?? NaN, sd: NaN, lo: NaN, hi: NaN, metric: 'general loss' });
  }
  const noise: Record<string, unknown>[] = [];
  for (const task of [...new Set(rows.map((r) => r.task))]) {
    const acc = (label: string) => rows.filter((r) => r.task === task && r.methodLabel === label && r.accuracy !== null);
    const sft = acc('sft');
    const gmt = acc(gmtLabel);
    const seeds = sft.map((r) => r.seed).filter((s) => gmt.some((g) => g.seed === s));
    const diffs = seeds.map((s) => gmt.find((g) => g.seed === s)!.accuracy! - sft.find((r) => r.seed === s)!.accuracy!);
    const d = meanCI(diffs);
    noise.push({
      task,
      seeds: seeds.length,
      sftSd: meanCI(sft.map((r) => r.accuracy!)).sd,
      gmtSd: meanCI(gmt.map((r) => r.accuracy!)).sd,
      diffSd: d.sd,
      ciHalfWidth: (d.hi - d.lo) / 2,
      seedsForPlusMinus3: seedsForHalfWidth(d.sd, 3),
      testSize: rows.find((r) => r.task === task)?.testSize ?? null,
    });
  }
  return { accuracy, valLoss, paired, forgetting, noise };
}

/** Notebook 03's numbers: accuracy per (method, scope) series and ratio; SFT's level. */
export interface RatioReport {
  /** Accuracy rows: series (`gmt tensor`, `gmt global`, `random-mask`), ratio, n, mean, sd, lo, hi. */
  curve: Table;
  /** The same for the validation loss. */
  valLossCurve: Table;
  /** SFT (k = 0): accuracy and validation loss over seeds. */
  sft: { n: number; mean: number; lo: number; hi: number };
  sftValLoss: { n: number; mean: number; lo: number; hi: number };
}

/** The series name of a row in notebook 03: GMT by scope, other methods by name. */
export function ratioSeries(r: ResultRow): string {
  return r.method === 'gmt' ? `gmt ${r.scope ?? 'tensor'}` : r.method;
}

/** Accuracy against the mask ratio from notebook 03's rows. */
export function ratioReport(rows: readonly ResultRow[]): RatioReport {
  const masked = rows.filter((r) => r.method !== 'sft').map((r) => ({ ...r, series: ratioSeries(r) }));
  const sftRows = rows.filter((r) => r.method === 'sft' && r.accuracy !== null);
  const s = meanCI(sftRows.map((r) => r.accuracy!));
  const v = meanCI(rows.filter((r) => r.method === 'sft' && r.valLoss !== null).map((r) => r.valLoss!));
  return {
    curve: summarize(masked as never, ['series', 'ratio'], 'accuracy'),
    valLossCurve: summarize(masked as never, ['series', 'ratio'], 'valLoss'),
    sft: { n: s.n, mean: s.mean, lo: s.lo, hi: s.hi },
    sftValLoss: { n: v.n, mean: v.mean, lo: v.lo, hi: v.hi },
  };
}

function provenanceOf(records: readonly RunRecord[], mode: RunMode, store: string, root: string): ClaimsProvenance | null {
  const done = records.filter((r) => r.status === 'done');
  if (!done.length) return null;
  const uniq = (f: (r: RunRecord) => string | number): string => [...new Set(done.map(f))].sort().join(', ');
  // With a count per value where the runs were made more than one way (e.g. two kernel builds).
  const counted = (f: (r: RunRecord) => string): string => {
    const n = new Map<string, number>();
    for (const r of done) n.set(f(r), (n.get(f(r)) ?? 0) + 1);
    return n.size < 2 ? uniq(f) : [...n].sort((a, b) => b[1] - a[1]).map(([v, c]) => `${v}: ${c} runs`).join('; ');
  };
  const seedsPerMethod = new Map<string, Set<number>>();
  for (const r of done) seedsPerMethod.set(r.methodLabel, (seedsPerMethod.get(r.methodLabel) ?? new Set()).add(r.config.seed));
  const byCount = new Map<number, string[]>();
  for (const [m, set] of seedsPerMethod) byCount.set(set.size, [...(byCount.get(set.size) ?? []), m]);
  const seedText = [...byCount].sort((a, b) => b[0] - a[0]).map(([n, ms]) => `${n} (${ms.length > 4 ? `${ms.length} methods` : ms.join(', ')})`).join('; ');
  const dates = done.map((r) => r.provenance.date).sort();
  return {
    mode,
    preset: uniq((r) => r.config.base),
    seeds: seedText,
    testSize: uniq((r) => r.config.testSize),
    backend: uniq((r) => r.provenance.backend),
    gradientPath: counted((r) => r.provenance.gradientPath),
    machine: uniq((r) => `${r.provenance.machine.cpu} × ${r.provenance.machine.cores}, Node ${r.provenance.node}`),
    commit: uniq((r) => { const c = r.provenance.commit ?? 'unknown'; return `${c.slice(0, 12)}${c.endsWith('-dirty') ? ' (uncommitted changes)' : ''}`; }),
    date: dates[0] === dates[dates.length - 1] ? dates[0]!.slice(0, 10) : `${dates[0]!.slice(0, 10)} to ${dates[dates.length - 1]!.slice(0, 10)}`,
    store: path.relative(root, store),
  };
}

export { FINDINGS_GRIDS, ABLATIONS_GRID, SIZE_TREND_GRID, CLAIM1_STAGE2_GRID } from './grid-files';
/** Protocol 2's grid files (the pilot's choice). */
export const PROTOCOL2_GRIDS = PROTOCOL2_GRID_FILES;

const SCOPES = ['tensor', 'layer', 'global'] as const;

/** Claim 2's checks with the seed pairs its grid plans for each k (seeds planned at both k and 0.3). */
export function withPlannedPairs(c: Claim2Result, planned: readonly PlannedRun[]): Claim2Result {
  const seedsAt = (k: number): Set<number> => new Set(planned.filter((r) => {
    const o = r.config.methodOptions as { ratio?: number; scope?: string };
    return r.config.method === 'gmt' && r.config.task === c.task && (o.scope ?? 'tensor') === c.scope && o.ratio !== undefined && Math.abs(o.ratio - k) < 1e-9;
  }).map((r) => r.config.seed));
  const base = seedsAt(0.3);
  return { ...c, checks: c.checks.map((k) => ({ ...k, planned: [...seedsAt(k.ratio)].filter((s) => base.has(s)).length })) };
}

/** One protocol's claims from its grids in the store and its engine's cached benchmark. */
async function protocolClaims(paths: ReturnType<typeof findingsPaths>, mode: RunMode, grids: { gmtVsSft: string; maskRatio: string; claim1Stage2?: string }, engine: EngineName): Promise<{ claims: Omit<ProtocolClaims, 'title' | 'prefix'>; missing: string[]; lacking: string[]; incomplete: { claim1: boolean; claim2: boolean }; bench: CachedBench | null }> {
  const g2 = await gridResults(path.join(paths.gridsDir, grids.gmtVsSft), paths.store, mode);
  const g3 = await gridResults(path.join(paths.gridsDir, grids.maskRatio), paths.store, mode);
  // Claim 1's second stage, where the protocol has one: its fresh seeds are read with stage 1's.
  const stage2File = grids.claim1Stage2 ? path.join(paths.gridsDir, grids.claim1Stage2) : undefined;
  const gs = stage2File && existsSync(stage2File) ? await gridResults(stage2File, paths.store, mode) : undefined;
  const rows1 = gs ? [...g2.rows, ...gs.rows] : g2.rows;
  const tasks1 = [...new Set(g2.planned.map((r) => r.config.task))];
  const tasks3 = [...new Set(g3.planned.map((r) => r.config.task))];
  const scopes3 = [...new Set(g3.planned.filter((r) => r.config.method === 'gmt').map((r) => String((r.config.methodOptions as { scope?: string }).scope ?? 'tensor')))];
  const bench = readCachedBench(paths.bench[engine]);
  const c3 = bench ? SCOPES.flatMap((scope) => {
    const row = bench.result.rows.find((r) => r.label === `gmt (${scope})`);
    return row ? [claim3(scope, row, scope === 'tensor' ? g2.rows : undefined, scope === 'tensor' ? 'gmt' : undefined)] : [];
  }) : [];
  const recordsTestLoss = g2.planned.some((r) => r.config.testLoss);
  const forgetting: ForgettingSummary[] = comparisonReport(rows1).forgetting.map((r) => ({ task: r.task, methodLabel: r.methodLabel, metric: r.metric, n: r.n, mean: r.mean, lo: r.lo, hi: r.hi }));
  const lacking = ([[grids.gmtVsSft, g2], [grids.maskRatio, g3], ...(gs ? [[grids.claim1Stage2!, gs] as const] : [])] as const).filter(([, g]) => g.missing > 0).map(([f, g]) => `${g.missing} of the ${g.planned.length} runs of \`${f}\``);
  const incomplete = { claim1: g2.missing > 0 || (gs?.missing ?? 0) > 0, claim2: g3.missing > 0 };
  return {
    claims: {
      claim1: stagedResults((rows) => claim1(rows, 'gmt', tasks1), g2, gs, tasks1),
      claim1b: recordsTestLoss ? stagedResults((rows) => claim1b(rows, 'gmt', tasks1), g2, gs, tasks1) : undefined,
      claim2: tasks3.flatMap((t) => scopes3.map((sc) => withPlannedPairs(claim2(g3.rows, t, sc), g3.planned))),
      claim3: c3,
      forgetting: g2.rows.length && forgetting.some((r) => r.n > 0) ? forgetting : undefined,
      provenance: {
        claim1: provenanceOf(gs ? [...g2.records, ...gs.records] : g2.records, mode, paths.store, paths.root),
        claim2: provenanceOf(g3.records, mode, paths.store, paths.root),
        claim3: provenanceOf(bench ? g2.records : [], mode, paths.store, paths.root),
      },
    },
    missing: [...g2.missingKeys, ...g3.missingKeys, ...(gs?.missingKeys ?? [])],
    lacking,
    incomplete,
    bench,
  };
}

/** What {@link sizeTrendReport} returns. */
export interface SizeTrendReport {
  /**
   * Per task: claim 1 at `nano` and at `micro`, and the change of the gain between them (sizes
   * named by their grids' base; in fast mode, where both grids train `nano`, with the grid file).
   */
  results: SizeTrendResult[];
  /** The grids' runs: `nano` (the size grid) and `micro` (protocol 2's claim-1 grid). */
  grids: { nano: GridResults; micro: GridResults };
  /** Rows for a figure or table: task, base, GMT − SFT with its 95% CI, seeds. */
  rows: { task: string; base: string; diff: number; lo: number; hi: number; n: number }[];
  /**
   * The two bases: parameters (from the checkpoint) and pre-training updates (from its record
   * beside it). They differ in both, so the comparison is of the lab's two bases, not of size alone.
   */
  bases: { base: string; parameters: number; pretrainSteps: number | null }[];
}

/** A committed base's parameter count and pre-training updates (`data/base/<base>.json`). */
function baseFacts(base: string): { base: string; parameters: number; pretrainSteps: number | null } {
  const file = resolveBaseCheckpoint(base).path;
  const parameters = Object.values(readCheckpointConfig(file).tensors).reduce((a, t) => a + t.shape.reduce((p, q) => p * q, 1), 0);
  const record = file.replace(/\.safetensors$/, '.json');
  const steps = existsSync(record) ? (JSON.parse(readFileSync(record, 'utf8')) as { config?: { steps?: number } }).config?.steps : undefined;
  return { base, parameters, pretrainSteps: typeof steps === 'number' ? steps : null };
}

/**
 * Beyond the paper: does GMT's gain over SFT depend on model size? Claim 1's protocol-2 grid at
 * `nano` (`notebooks/grids/p2_size_nano.json`) beside the claim's own runs at `micro`, under the
 * rule CLAIMS.md states (`sizeTrend`).
 */
export async function sizeTrendReport(mode: RunMode = runMode()): Promise<SizeTrendReport> {
  const paths = findingsPaths(mode);
  const nano = await gridResults(path.join(paths.gridsDir, SIZE_TREND_GRID), paths.store, mode);
  const micro = await gridResults(path.join(paths.gridsDir, PROTOCOL2_GRID_FILES.gmtVsSft), paths.store, mode);
  const tasks = [...new Set(micro.planned.map((r) => r.config.task))];
  const done = (g: GridResults): ResultRow[] => g.rows.filter((r) => r.status === 'done');
  // Each size by its grid's base; in fast mode both grids train `nano`, so the grid names it.
  const baseOf = (g: GridResults): string => String(g.planned[0]?.config.base ?? '?');
  const same = baseOf(nano) === baseOf(micro);
  const label = (g: GridResults, file: string): string => (same ? `${baseOf(g)} (${file})` : baseOf(g));
  const results = sizeTrend([{ size: label(nano, SIZE_TREND_GRID), rows: done(nano) }, { size: label(micro, PROTOCOL2_GRID_FILES.gmtVsSft), rows: done(micro) }], 'gmt', tasks);
  const rows = results.flatMap((t) => t.sizes.map(({ size, claim }) => ({ task: t.task, base: size, diff: claim.diff.mean, lo: claim.diff.lo, hi: claim.diff.hi, n: claim.diff.n })));
  const bases = [...new Set([nano, micro].map(baseOf))].filter((b) => b !== '?').map(baseFacts);
  return { results, grids: { nano, micro }, rows, bases };
}

function benchNote(bench: CachedBench): string {
  return `Claim 3's update times come from notebook 04's interleaved benchmark on this engine (${bench.result.steps} rounds per method on the ${bench.options.preset} model, batch ${bench.options.batchSize} × ${bench.result.tokensPerUpdate / bench.options.batchSize} tokens, ${bench.context.gradientPath}, ${bench.result.machine.cpuModel}, ${bench.date.slice(0, 10)}). The whole-run ratio pairs GMT and SFT runs of claim 1 on the same seeds; those runs shared the machine with another run, so it is the noisier figure.`;
}

/**
 * Writes figures/CLAIMS.md (fast mode: build/fast/figures/CLAIMS.md) from the store and the
 * cached benchmarks, applying the rules of `analysis/claims.ts`: protocol 2 (the pilot's choice,
 * native engine) first, then protocol 1 (the first reported protocol, wasm engine), whose
 * verdicts are kept. Returns the path, the text and how many planned runs the store lacks.
 */
export async function writeClaims(mode: RunMode = runMode()): Promise<{ file: string; text: string; missing: number }> {
  const paths = findingsPaths(mode);
  const protocols: ProtocolClaims[] = [];
  const missing: string[] = [];
  const p2Ready = await protocolTwoReady(mode);
  const p2Notes: string[] = [];
  if (!p2Ready.ready) {
    p2Notes.push(`Protocol 2's confirmatory runs wait: ${p2Ready.reason}. Until then its grids are provisional and nothing here reads them ([PROTOCOL.md](PROTOCOL.md)).`);
  } else {
    const p2 = await protocolClaims(paths, mode, { ...PROTOCOL2_GRIDS, claim1Stage2: CLAIM1_STAGE2_GRID }, 'native');
    missing.push(...p2.missing);
    const notes = [
      ...(p2.bench ? [benchNote(p2.bench)] : []),
    ];
    const size = await sizeTrendReport(mode);
    missing.push(...size.grids.nano.missingKeys);
    protocols.push({
      ...p2.claims,
      size: {
        results: size.results, grid: SIZE_TREND_GRID, bases: size.bases,
        provenance: provenanceOf(size.grids.nano.records, mode, paths.store, paths.root),
        ...(size.grids.nano.missing + size.grids.micro.missing > 0 ? { interim: `The store lacks ${size.grids.nano.missing} of the ${size.grids.nano.planned.length} runs at \`nano\` and ${size.grids.micro.missing} of the ${size.grids.micro.planned.length} at \`micro\`; the answers are the rule's once every planned run is in.` } : {}),
      },
      title: 'Protocol 2: the protocol the pilot chose (native engine)',
      prefix: 'Protocol 2 · ',
      intro: [`Chosen by a pilot before these runs ([PROTOCOL.md](PROTOCOL.md)): the choice, the seed counts it implies and the pilot's own figures are there. Grids \`notebooks/grids/${PROTOCOL2_GRIDS.gmtVsSft}\` (claims 1, 1b, forgetting) and \`notebooks/grids/${PROTOCOL2_GRIDS.maskRatio}\` (claim 2), on the native CPU engine; seeds from 0, none shared with the pilot.${existsSync(path.join(paths.gridsDir, CLAIM1_STAGE2_GRID)) ? ` Claim 1 ran in two stages: stage 1 with the seeds the pilot fixed, stage 2 (\`notebooks/grids/${CLAIM1_STAGE2_GRID}\`) with fresh seeds whose count a rule re-estimated from stage 1's paired SD before any stage-2 run (PROTOCOL.md); its verdict reads both stages' seeds, and stage 1's figures stay beside it.` : ''}`],
      notes,
      ...(p2.lacking.length ? { interim: { ...p2.incomplete, text: `The store lacks ${p2.lacking.join(' and ')}. The figures of the claims those runs serve use the runs the store has; their verdicts are the protocol's only once every planned run is in, and the planned seeds are run whatever these interim figures say. The sweeps resume where they stopped.` } } : {}),
    });
  }
  const p1 = await protocolClaims(paths, mode, { gmtVsSft: FINDINGS_GRIDS.gmtVsSft, maskRatio: FINDINGS_GRIDS.maskRatio }, 'wasm');
  missing.push(...p1.missing);
  protocols.push({
    ...p1.claims,
    claim1b: undefined,
    title: 'Protocol 1: as first reported (wasm engine)',
    prefix: '',
    intro: ['The protocol of notebooks 02–04 (grids `notebooks/grids/02_gmt_vs_sft.json` and `03_mask_ratio.json`, the wasm engine), whose verdicts were reported first; kept as they are beside the newer protocol\'s. The figures are the notebooks\'.'],
    figures: claimFigures(paths.figuresDir),
    notes: [
      p1.bench ? benchNote(p1.bench) : 'Claim 3: notebook 04 has not made the wasm engine\'s benchmark yet (`bench.json` beside the store).',
      ...(p1.lacking.length ? [`The store lacks ${p1.lacking.join(' and ')}; the verdicts above use the runs it has.`] : []),
    ],
  });
  const text = claimsMarkdown({ protocols, notes: p2Notes });
  writeFileAtomic(paths.claims, text);
  return { file: paths.claims, text, missing: new Set(missing).size };
}

/** One re-made run of {@link recheckRuns}. */
export interface RecheckResult {
  key: string;
  label: string;
  stored: string;
  now: string;
  match: boolean;
}

/**
 * Picks `count` finished runs of the grids at random (seeded), makes them again in worker
 * processes and compares the weights sha256 with the stored records: the same config on the
 * same machine build must give the same bits.
 */
export async function recheckRuns(grids: readonly SweepGrid[], store: string, opts: { count: number; mode?: RunMode; seed?: number }): Promise<RecheckResult[]> {
  const latest = new ResultStore(store).latest();
  const mode = opts.mode ?? runMode();
  // Each run with the engine its grid names (the engine is part of its key).
  const candidates = new Map<string, { run: PlannedRun; engine?: EngineName }>();
  for (const g of grids) {
    const engine = gridForMode(resolveGrid(g), mode).engine;
    for (const r of (await planSweep(g, { mode })).runs) if (latest.get(r.key)?.status === 'done') candidates.set(r.key, { run: r, engine });
  }
  const picked = new Rng(opts.seed ?? 0).shuffle([...candidates.values()]).slice(0, opts.count);
  if (picked.length === 0) return [];
  const records = new Map<string, RunRecord>();
  for (const engine of new Set(picked.map((p) => p.engine))) {
    const runs = picked.filter((p) => p.engine === engine).map((p) => p.run);
    (await runPlanned(runs, { engine })).forEach((r, i) => records.set(runs[i]!.key, r));
  }
  return picked.map(({ run }) => {
    const stored = latest.get(run.key)!.weightsSha256 ?? '';
    const record = records.get(run.key);
    const now = record?.weightsSha256 ?? `(${record?.status}: ${record?.error?.message ?? 'no record'})`;
    return { key: run.key, label: run.label, stored, now, match: stored !== '' && stored === now };
  });
}
