/**
 * The findings notebooks' figures, built from result tables and records in the shared theme
 * (one colour per method everywhere, see `plots/theme.ts`). Each returns a plain plotly figure:
 * show it with `showFigure`, save it with `exportFigures`.
 */
import { barFigure, heatmapFigure, lineFigure, type LineSeries } from '../plots/figures';
import { baseLayout, titleText, methodColor, METHOD_COLORS, type PlotlyFigure, type PlotlyTrace } from '../plots/theme';
import type { RunRecord } from '../sweep/store';
import { meanCI } from '../analysis/stats';
import type { BenchResult } from '../train/bench';
import type { PilotCandidateStats } from '../analysis/pilot';
import type { AblationAnswer } from '../analysis/ablations';

type Row = Record<string, unknown>;

/** A figure that says there is nothing to plot yet (a sweep whose runs are not in the store). */
export function placeholderFigure(title: string, message: string): PlotlyFigure {
  const layout = baseLayout({ title });
  layout.showlegend = false;
  (layout.xaxis as Record<string, unknown>).visible = false;
  (layout.yaxis as Record<string, unknown>).visible = false;
  layout.annotations = [{ text: message, showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5, font: { size: 16, color: '#666' } }];
  return { data: [], layout };
}

const NO_RUNS = 'no runs in the store yet';
const numOr = (v: unknown, d = NaN): number => (typeof v === 'number' ? v : d);

/**
 * Bars of a metric's mean per method (series) and category (e.g. task), with whiskers from the
 * interval columns `lo`/`hi` (as `summarize` returns them).
 */
export function methodBarsFigure(summaryIn: readonly object[], opts: { category: string; method?: string; title: string; yTitle: string; methods?: readonly string[]; categories?: readonly string[] }): PlotlyFigure {
  const summary = summaryIn as readonly Row[];
  if (summary.length === 0) return placeholderFigure(opts.title, NO_RUNS);
  const mField = opts.method ?? 'methodLabel';
  const categories = opts.categories ?? [...new Set(summary.map((r) => String(r[opts.category])))];
  const methods = opts.methods ?? [...new Set(summary.map((r) => String(r[mField])))];
  const series = methods.map((m) => {
    const rows = categories.map((c) => summary.find((r) => String(r[mField]) === m && String(r[opts.category]) === c));
    const mean = rows.map((r) => numOr(r?.mean));
    return {
      name: m,
      values: mean,
      errors: rows.map((r, i) => Math.max(0, numOr(r?.hi) - (mean[i] as number)) || 0),
      errorsBelow: rows.map((r, i) => Math.max(0, (mean[i] as number) - numOr(r?.lo)) || 0),
    };
  });
  return barFigure({ categories, series, title: opts.title, yTitle: opts.yTitle, legend: 'top' });
}

const SIGNAL_NAMES: Record<string, string> = { grad: '|Γ|', 'grad-weight': '|Γ ⊙ θ|', 'grad-squared': 'Γ²' };

/**
 * Short names for method labels such as `gmt ratio=0.3 scope=tensor signal=grad`: an option that
 * every label of the method gives with the same value is left out, signals are written as
 * formulas, and `maskUpdate=true` becomes `masked update`.
 */
export function shortVariantLabels(labels: readonly string[]): Map<string, string> {
  const parse = (l: string) => {
    const [method, ...tokens] = l.split(' ');
    return { method: method!, tokens: tokens.map((t) => t.split('=') as [string, string | undefined]) };
  };
  // Per method, the options that all its labels give with one value.
  const constant = new Map<string, Set<string>>();
  for (const method of new Set(labels.map((l) => parse(l).method))) {
    const mine = labels.map(parse).filter((p) => p.method === method);
    const seen = new Map<string, string[]>();
    for (const p of mine) for (const [k, v] of p.tokens) if (v !== undefined) seen.set(k, [...(seen.get(k) ?? []), v]);
    constant.set(method, new Set([...seen].filter(([, vs]) => vs.length === mine.length && new Set(vs).size === 1).map(([k]) => k)));
  }
  return new Map(labels.map((l) => {
    const { method, tokens } = parse(l);
    const kept = tokens.flatMap(([k, v]) => {
      if (v === undefined) return [k];
      if (constant.get(method)!.has(k)) return [];
      if (k === 'signal') return [SIGNAL_NAMES[v] ?? v];
      if (k === 'scope') return [v];
      if (k === 'maskUpdate') return v === 'true' ? ['masked update'] : [];
      return [`${k}=${v}`];
    });
    return [l, [method, ...kept].join(' ')];
  }));
}

/** The colour of each GMT selection signal in {@link ablationGridFigure}: |Γ| is GMT's own. */
const SIGNAL_COLORS: Readonly<Record<string, string>> = { grad: METHOD_COLORS.gmt!, 'grad-weight': '#009E73', 'grad-squared': '#CC79A7' };

/** A method label (`gmt ratio=0.3 scope=tensor signal=grad maskUpdate=false`) as method and options. */
function parseMethodLabel(label: string): { method: string; options: Record<string, string> } {
  const [method, ...tokens] = label.split(' ');
  return { method: method!, options: Object.fromEntries(tokens.map((t) => t.split('=') as [string, string])) };
}

/**
 * Notebook 06's grid as small multiples: one panel per scope (columns) and `maskUpdate` (rows),
 * mean accuracy with its 95% CI against the mask ratio k, one line per selection signal, and in
 * every panel random masking (dotted) and SFT (dashed) as the levels to beat. Reads the rows of
 * `summarize(rows, ['methodLabel'], metric)` (`methodLabel`, `n`, `mean`, `lo`, `hi`); points of
 * one ratio are set side by side so their intervals do not hide each other.
 */
export function ablationGridFigure(
  summaryIn: readonly object[],
  opts: {
    title: string;
    /** A second, smaller line under the title (where the runs trained); the seed counts follow it. */
    subtitle?: string;
    yTitle?: string;
    /** `mean` (rows of `summarize`) or `diff` (rows of `pairedVsBaseline`, drawn against 0 instead of SFT). */
    value?: 'mean' | 'diff';
    /**
     * What the metric can be: intervals are clipped to it. Left out, the metric is accuracy in %
     * ([0, 100], or [-100, 100] for differences) and the axis spans the means with room for their
     * intervals, so that a two-seed interval does not flatten the rest; given, plotly fits the axis.
     */
    bounds?: readonly [number, number];
  },
): PlotlyFigure {
  const value = opts.value ?? 'mean';
  const rows = (summaryIn as readonly Row[]).map((r) => ({
    ...parseMethodLabel(String(value === 'diff' ? r.method : r.methodLabel)), n: numOr(r.n, 0), mean: numOr(r[value]), lo: numOr(r.lo), hi: numOr(r.hi),
  }));
  const gmt = rows.filter((r) => r.method === 'gmt');
  if (gmt.length === 0) return placeholderFigure(opts.title, NO_RUNS);
  const ratioOf = (r: { options: Record<string, string> }): string => r.options.ratio ?? '';
  const ratios = [...new Set(rows.filter((r) => r.method !== 'sft').map(ratioOf))].filter(Boolean).sort((a, b) => Number(a) - Number(b));
  const scopes = [...new Set(gmt.map((r) => r.options.scope ?? 'tensor'))];
  const updates = [...new Set(gmt.map((r) => r.options.maskUpdate ?? 'false'))].sort();
  const signals = Object.keys(SIGNAL_COLORS).filter((s) => gmt.some((r) => (r.options.signal ?? 'grad') === s));
  const sft = rows.find((r) => r.method === 'sft');
  const random = rows.filter((r) => r.method === 'random-mask');
  const hover = (r: (typeof rows)[number] | undefined): string =>
    !r ? 'no runs yet' : `${r.n} seed${r.n === 1 ? '' : 's'}: ${r.mean.toFixed(1)}${Number.isFinite(r.lo) ? ` [${r.lo.toFixed(1)}, ${r.hi.toFixed(1)}]` : ''}`;
  const bounds = opts.bounds ?? (value === 'diff' ? [-100, 100] : [0, 100]);
  const errorY = (pts: ((typeof rows)[number] | undefined)[]) => ({
    type: 'data', symmetric: false, thickness: 1.5, width: 4,
    array: pts.map((r) => (r && Number.isFinite(r.hi) ? Math.max(0, Math.min(bounds[1], r.hi) - r.mean) : 0)),
    arrayminus: pts.map((r) => (r && Number.isFinite(r.lo) ? Math.max(0, r.mean - Math.max(bounds[0], r.lo)) : 0)),
  });
  const means = [...rows.map((r) => r.mean), ...(value === 'diff' ? [0] : [])].filter(Number.isFinite);
  const pad = Math.max(1, (Math.max(...means) - Math.min(...means)) * 0.25);
  const yRange = [Math.max(bounds[0] - pad / 4, Math.min(...means) - 3 * pad), Math.min(bounds[1] + pad / 4, Math.max(...means) + (value === 'diff' ? 2 * pad : pad))];
  const seeds = rows.filter((r) => r.method !== 'sft').map((r) => r.n);
  const seedNote = Math.min(...seeds) === Math.max(...seeds)
    ? `${seeds[0]} seed${seeds[0] === 1 ? '' : 's'} per point`
    : `${Math.min(...seeds)}–${Math.max(...seeds)} seeds per point (hover for each); a point without whiskers has one`;
  const shapes: Record<string, unknown>[] = [];
  const data: PlotlyTrace[] = [];
  const layout = baseLayout({ title: opts.title, legend: 'top' });
  const axisBase = { ...(layout.xaxis as Record<string, unknown>) };
  delete layout.xaxis;
  delete layout.yaxis;
  const annotations: Record<string, unknown>[] = [];
  const gap = 0.08;
  const colW = (1 - gap * (scopes.length - 1)) / scopes.length;
  const rowH = (1 - 0.14 * (updates.length - 1)) / updates.length;
  updates.forEach((update, ri) => scopes.forEach((scope, ci) => {
    const p = ri * scopes.length + ci + 1;
    const suffix = p === 1 ? '' : String(p);
    const panel = `${scope} scope, maskUpdate ${update === 'true' ? 'on' : 'off'}`;
    const empty = !gmt.some((r) => (r.options.scope ?? 'tensor') === scope && (r.options.maskUpdate ?? 'false') === update);
    const x0 = ci * (colW + gap);
    const y1 = 1 - ri * (rowH + 0.14);
    layout[`xaxis${suffix}`] = { ...axisBase, domain: [x0, x0 + colW], anchor: `y${suffix}`, type: 'category', categoryorder: 'array', categoryarray: ratios, title: ri === updates.length - 1 ? { text: 'mask ratio k' } : undefined };
    layout[`yaxis${suffix}`] = {
      ...axisBase, domain: [y1 - rowH, y1], anchor: `x${suffix}`, ...(p === 1 ? (opts.bounds ? {} : { range: yRange }) : { matches: 'y' }),
      title: ci === 0 ? { text: opts.yTitle ?? (value === 'diff' ? 'difference (points)' : 'accuracy (%)') } : undefined, showticklabels: ci === 0,
      ...(value === 'diff' ? { zeroline: true, zerolinecolor: '#444', zerolinewidth: 1.5 } : {}),
    };
    annotations.push({ text: `<b>${panel}</b>${empty ? ' (no GMT runs)' : ''}`, showarrow: false, xref: 'paper', yref: 'paper', x: x0 + colW / 2, xanchor: 'center', y: y1, yanchor: 'bottom', font: { size: 13 } });
    const common = { xaxis: `x${suffix}`, yaxis: `y${suffix}`, showlegend: p === 1, meta: { panel } };
    if (sft && value === 'mean') {
      // Shapes, not a trace: a trace would take a slot of its own among the side-by-side points.
      const span = { xref: `x${suffix} domain`, x0: 0, x1: 1, yref: `y${suffix}`, layer: 'below' };
      if (Number.isFinite(sft.lo)) shapes.push({ ...span, type: 'rect', y0: Math.max(bounds[0], sft.lo), y1: Math.min(bounds[1], sft.hi), fillcolor: methodColor('sft'), opacity: 0.12, line: { width: 0 } });
      shapes.push({
        ...span, type: 'line', y0: sft.mean, y1: sft.mean, line: { color: methodColor('sft'), dash: 'dash', width: 2 },
        ...(p === 1 ? { showlegend: true, name: `SFT (${hover(sft)})`, legendgroup: 'sft' } : {}),
      });
    }
    if (random.length) {
      const pts = ratios.map((k) => random.find((r) => ratioOf(r) === k));
      data.push({
        ...common, type: 'scatter', mode: 'lines+markers', name: 'random mask', legendgroup: 'random-mask', offsetgroup: 'random-mask', x: ratios, y: pts.map((r) => r?.mean ?? null),
        line: { color: methodColor('random-mask'), dash: 'dot', width: 1.5 }, marker: { color: methodColor('random-mask'), size: 7, symbol: 'diamond' },
        error_y: { ...errorY(pts), color: methodColor('random-mask') }, text: pts.map(hover), hovertemplate: '%{text}<extra>random mask, k = %{x}</extra>',
      });
    }
    for (const signal of signals) {
      const pts = ratios.map((k) => gmt.find((r) => ratioOf(r) === k && (r.options.scope ?? 'tensor') === scope && (r.options.maskUpdate ?? 'false') === update && (r.options.signal ?? 'grad') === signal));
      const color = SIGNAL_COLORS[signal]!;
      data.push({
        ...common, type: 'scatter', mode: 'lines+markers', name: `GMT, ${SIGNAL_NAMES[signal] ?? signal}`, legendgroup: signal, offsetgroup: signal,
        x: ratios, y: pts.map((r) => r?.mean ?? null), line: { color, width: 2 }, marker: { color, size: 8 },
        error_y: { ...errorY(pts), color }, text: pts.map(hover), hovertemplate: `%{text}<extra>GMT ${SIGNAL_NAMES[signal] ?? signal}, k = %{x}, ${panel}</extra>`,
      });
    }
  }));
  // Room for four panels: a size of its own (preferredSize), wider and taller than one plot's.
  Object.assign(layout, { annotations, shapes, scattermode: 'group', scattergap: 0.55, width: 960, height: 300 * updates.length + 200 });
  (layout.title as Record<string, unknown>).text = titleText(opts.title, opts.subtitle ? `${opts.subtitle}; ${seedNote}` : seedNote);
  (layout.margin as Record<string, unknown>).t = 140;
  return { data, layout };
}

/**
 * One bar per variant (a method label) with its interval, coloured by method, for ablations with
 * more variants than a legend holds: rows of `summarize` (`mean`, `lo`, `hi`) or of
 * `pairedVsBaseline` (`diff`, `lo`, `hi`, the label in `method`).
 */
export function variantBarsFigure(rowsIn: readonly object[], opts: { title: string; yTitle: string; value?: 'mean' | 'diff'; label?: string }): PlotlyFigure {
  const rows = rowsIn as readonly Row[];
  if (rows.length === 0) return placeholderFigure(opts.title, NO_RUNS);
  const value = opts.value ?? 'mean';
  const labelField = opts.label ?? (value === 'diff' ? 'method' : 'methodLabel');
  const labels = rows.map((r) => String(r[labelField]));
  const short = shortVariantLabels(labels);
  const categories = labels.map((l) => short.get(l)!);
  const families = [...new Set(labels.map((l) => l.split(' ')[0]!))];
  const series = families.map((family) => {
    const mine = labels.map((l) => l.split(' ')[0] === family);
    const v = rows.map((r, i) => (mine[i] ? numOr(r[value]) : NaN));
    return {
      name: family, colorKey: family, values: v,
      errors: rows.map((r, i) => (mine[i] ? Math.max(0, numOr(r.hi) - (v[i] as number)) || 0 : 0)),
      errorsBelow: rows.map((r, i) => (mine[i] ? Math.max(0, (v[i] as number) - numOr(r.lo)) || 0 : 0)),
    };
  });
  const fig = barFigure({ categories, series, title: opts.title, yTitle: opts.yTitle, barmode: 'stack', legend: 'top' });
  (fig.layout.xaxis as Record<string, unknown>).tickangle = -35;
  // Stacked bars list their legend bottom-up by default; keep the methods' order.
  fig.layout.legend = { ...(fig.layout.legend as Record<string, unknown>), traceorder: 'normal' };
  if (value === 'diff') {
    (fig.layout.yaxis as Record<string, unknown>).zeroline = true;
    (fig.layout.yaxis as Record<string, unknown>).zerolinecolor = '#444';
  }
  return fig;
}

/** Paired differences against a baseline (rows of `pairedVsBaseline`) as bars with 95% CI whiskers. */
export function pairedDiffFigure(pairedIn: readonly object[], opts: { category?: string; title: string; yTitle: string }): PlotlyFigure {
  const paired = pairedIn as readonly Row[];
  if (paired.length === 0) return placeholderFigure(opts.title, NO_RUNS);
  const cat = opts.category ?? 'task';
  const categories = [...new Set(paired.map((r) => String(r[cat])))];
  const methods = [...new Set(paired.map((r) => String(r.method)))];
  const series = methods.map((m) => {
    const rows = categories.map((c) => paired.find((r) => String(r.method) === m && String(r[cat]) === c));
    const d = rows.map((r) => numOr(r?.diff));
    return { name: m, values: d, errors: rows.map((r, i) => Math.max(0, numOr(r?.hi) - (d[i] as number)) || 0), errorsBelow: rows.map((r, i) => Math.max(0, (d[i] as number) - numOr(r?.lo)) || 0) };
  });
  const fig = barFigure({ categories, series, title: opts.title, yTitle: opts.yTitle, legend: 'top' });
  (fig.layout.yaxis as Record<string, unknown>).zeroline = true;
  (fig.layout.yaxis as Record<string, unknown>).zerolinecolor = '#444';
  return fig;
}

/**
 * A metric against the mask ratio k: one line per series key (e.g. `gmt tensor`, `random-mask`)
 * with its 95% CI band, and a reference level (SFT) with its interval.
 */
export function ratioCurveFigure(
  summaryIn: readonly object[],
  opts: { series: string; title: string; yTitle: string; reference?: { name: string; mean: number; lo: number; hi: number }; /** Possible range of the metric; bands are clipped to it (`lineFigure`'s `yBounds`). */ bounds?: readonly [number, number] },
): PlotlyFigure {
  const summary = summaryIn as readonly Row[];
  if (summary.length === 0) return placeholderFigure(opts.title, NO_RUNS);
  const keys = [...new Set(summary.map((r) => String(r[opts.series])))];
  const series: LineSeries[] = keys.map((k) => {
    const rows = summary.filter((r) => String(r[opts.series]) === k).sort((a, b) => numOr(a.ratio) - numOr(b.ratio));
    const y = rows.map((r) => numOr(r.mean));
    return { name: k, x: rows.map((r) => numOr(r.ratio)), y, band: rows.map((r, i) => (Number.isFinite(numOr(r.hi)) ? numOr(r.hi) - (y[i] as number) : 0)), dash: k.startsWith('random') ? 'dot' : 'solid' };
  });
  const references = opts.reference && Number.isFinite(opts.reference.mean)
    ? [{ name: opts.reference.name, y: opts.reference.mean, interval: Number.isFinite(opts.reference.lo) ? [opts.reference.lo, opts.reference.hi] as [number, number] : undefined, colorKey: 'sft' }]
    : [];
  return lineFigure({ series, references, title: opts.title, xTitle: 'mask ratio k (fraction of Γ zeroed)', yTitle: opts.yTitle, legend: 'top', yBounds: opts.bounds });
}

/**
 * Validation loss over training, mean over seeds per method label, with a 95% band — from the
 * records' `history.evals` (runs made with `evalEvery`).
 */
export function validationCurvesFigure(records: readonly RunRecord[], opts: { title: string; group?: (r: RunRecord) => string; style?: (r: RunRecord) => { colorKey?: string; dash?: LineSeries['dash'] } }): PlotlyFigure {
  const group = opts.group ?? ((r: RunRecord) => r.methodLabel);
  const byGroup = new Map<string, RunRecord[]>();
  for (const r of records) {
    if (!r.history?.evals.length) continue;
    const g = group(r);
    byGroup.set(g, [...(byGroup.get(g) ?? []), r]);
  }
  const series: LineSeries[] = [...byGroup].map(([name, rs]) => {
    const steps = [...new Set(rs.flatMap((r) => r.history!.evals.map((e) => e.step)))].sort((a, b) => a - b);
    const stats = steps.map((s) => meanCI(rs.map((r) => r.history!.evals.find((e) => e.step === s)?.valLoss).filter((v): v is number => typeof v === 'number' && Number.isFinite(v))));
    const style = opts.style?.(rs[0]!) ?? {};
    return { name, colorKey: style.colorKey ?? name, dash: style.dash, x: steps, y: stats.map((c) => c.mean), band: stats.map((c) => (Number.isFinite(c.hi) ? c.hi - c.mean : 0)) };
  });
  if (series.length === 0) return placeholderFigure(opts.title, NO_RUNS);
  // A legend above the plot holds a row of short names; more go to the right.
  return lineFigure({ series, title: opts.title, xTitle: 'update', yTitle: 'validation loss (completion tokens)', logY: true, legend: series.length <= 4 ? 'top' : 'right' });
}

/** Training loss of one run per series (sampled history of records). */
export function trainingCurvesFigure(records: readonly RunRecord[], opts: { title: string; name?: (r: RunRecord) => string }): PlotlyFigure {
  if (!records.some((r) => r.history)) return placeholderFigure(opts.title, NO_RUNS);
  const name = opts.name ?? ((r: RunRecord) => r.methodLabel);
  return lineFigure({
    series: records.filter((r) => r.history).map((r) => ({ name: name(r), colorKey: r.config.method, x: r.history!.step, y: r.history!.loss })),
    title: opts.title, xTitle: 'update', yTitle: 'training loss', logY: true, legend: 'top',
  });
}

/** `blocks.2.attn.wqkv` → `block 2`; embeddings and head keep their own rows. */
export function layerOfTensor(name: string): string {
  const m = /^blocks\.(\d+)\./.exec(name);
  if (m) return `block ${m[1]}`;
  if (/^(wte|wpe)$/.test(name)) return 'embeddings';
  return 'head';
}

/**
 * Layer × update heatmap of the kept fraction (mean of the tensors of each layer, weighted by
 * size when `sizes` is given) from a record's sampled `keptByTensor` history.
 */
export function keptHeatmapFigure(record: RunRecord, opts: { title: string; sizes?: Record<string, number>; byTensor?: boolean }): PlotlyFigure {
  const h = record.history;
  if (!h?.keptByTensor) throw new Error(`keptHeatmapFigure: run ${record.label} has no per-tensor kept fractions (a masking method's record is needed)`);
  const names = Object.keys(h.keptByTensor);
  const rows = opts.byTensor ? names : [...new Set(names.map(layerOfTensor))];
  const z = rows.map((row) => {
    const members = opts.byTensor ? [row] : names.filter((n) => layerOfTensor(n) === row);
    return h.step.map((_, j) => {
      let w = 0;
      let s = 0;
      for (const n of members) {
        const size = opts.sizes?.[n] ?? 1;
        s += (h.keptByTensor![n]![j] as number) * size;
        w += size;
      }
      return w ? s / w : NaN;
    });
  });
  return heatmapFigure({ x: h.step, y: rows, z, title: opts.title, xTitle: 'update', zTitle: 'kept fraction', zmin: 0, zmax: 1 });
}

/** Jaccard overlap of consecutive masks over training, one line per record. */
export function jaccardFigure(records: readonly RunRecord[], opts: { title: string; name?: (r: RunRecord) => string }): PlotlyFigure {
  const name = opts.name ?? ((r: RunRecord) => r.methodLabel);
  if (!records.some((r) => r.history?.maskJaccard)) return placeholderFigure(opts.title, NO_RUNS);
  const series: LineSeries[] = records
    .filter((r) => r.history?.maskJaccard)
    .map((r) => {
      const h = r.history!;
      const pts = h.step.map((s, i) => [s, h.maskJaccard![i]] as const).filter(([, j]) => typeof j === 'number');
      return { name: name(r), colorKey: r.config.method, x: pts.map(([s]) => s), y: pts.map(([, j]) => j as number) };
    });
  const fig = lineFigure({ series, title: opts.title, xTitle: 'update', yTitle: 'Jaccard(M_t, M_t−1)', legend: 'top' });
  (fig.layout.yaxis as Record<string, unknown>).range = [0, 1.02];
  return fig;
}

/** Median update time per method (bench rows) with p10–p90 whiskers. */
export function stepTimeFigure(bench: Pick<BenchResult, 'rows'>, opts: { title: string }): PlotlyFigure {
  const rows = bench.rows;
  return barFigure({
    categories: rows.map((r) => r.label),
    series: [{ name: 'median update', values: rows.map((r) => r.medianMs), errors: rows.map((r) => r.p90Ms - r.medianMs), errorsBelow: rows.map((r) => r.medianMs - r.p10Ms), color: '#4C72B0' }],
    title: opts.title, yTitle: 'ms per update (p10–p90 whiskers)', legend: 'top',
  });
}

/** Update-time overhead over SFT per method (bench rows): end-to-end paired and the method's own cost, with 95% intervals. */
export function overheadFigure(bench: Pick<BenchResult, 'rows'>, opts: { title: string }): PlotlyFigure {
  const rows = bench.rows.filter((r) => r.label !== 'sft');
  const pct = (x: number): number => (x - 1) * 100;
  return barFigure({
    categories: rows.map((r) => r.label),
    series: [
      { name: 'end to end (paired)', values: rows.map((r) => pct(r.pairedOverVsSft)), errors: rows.map((r) => pct(r.pairedCi95[1]) - pct(r.pairedOverVsSft)), errorsBelow: rows.map((r) => pct(r.pairedOverVsSft) - pct(r.pairedCi95[0])), color: '#4C72B0' },
      { name: 'the method\'s own time', values: rows.map((r) => r.extraOverSft * 100), errors: rows.map((r) => (r.extraCi95[1] - r.extraOverSft) * 100), errorsBelow: rows.map((r) => (r.extraOverSft - r.extraCi95[0]) * 100), color: '#D55E00' },
    ],
    title: opts.title, yTitle: '% of an SFT update', legend: 'top',
  });
}

/**
 * A metric against a numeric setting (e.g. training length), one thin dotted line per seed and
 * the mean over seeds in bold, per group — for studies with too few seeds for a useful interval.
 */
export function perSeedFigure(rows: readonly object[], opts: { x: string; y: string; group: string; title: string; xTitle: string; yTitle: string; colorOf?: (group: string) => string; yRange?: [number, number] }): PlotlyFigure {
  const data = rows as readonly Row[];
  if (data.length === 0) return placeholderFigure(opts.title, NO_RUNS);
  const series: LineSeries[] = [];
  for (const g of [...new Set(data.map((r) => String(r[opts.group])))]) {
    const inGroup = data.filter((r) => String(r[opts.group]) === g);
    const xs = [...new Set(inGroup.map((r) => numOr(r[opts.x])))].sort((a, b) => a - b);
    const colorKey = opts.colorOf?.(g) ?? g;
    series.push({ name: `${g} (mean)`, colorKey, x: xs, y: xs.map((x) => meanCI(inGroup.filter((r) => numOr(r[opts.x]) === x).map((r) => numOr(r[opts.y]))).mean), markers: true });
    for (const seed of [...new Set(inGroup.map((r) => numOr(r.seed)))].sort((a, b) => a - b)) {
      const pts = inGroup.filter((r) => numOr(r.seed) === seed).sort((a, b) => numOr(a[opts.x]) - numOr(b[opts.x]));
      series.push({ name: `${g} · seed ${seed}`, colorKey, x: pts.map((r) => numOr(r[opts.x])), y: pts.map((r) => numOr(r[opts.y])), dash: 'dot', markers: true });
    }
  }
  const fig = lineFigure({ series, title: opts.title, xTitle: opts.xTitle, yTitle: opts.yTitle, legend: 'right' });
  if (opts.yRange) (fig.layout.yaxis as Record<string, unknown>).range = opts.yRange;
  return fig;
}

const candidateLabel = (s: PilotCandidateStats): string => `${s.candidate.id} · ${s.candidate.name}`;
const taskColorKey = (task: string, i: number): string => (task === 'math' ? 'sft' : task === 'code' ? 'childtuning-d' : ['gmt', 'hft', 'sift'][i % 3]!);

/**
 * The pilot's currency: the SD of the paired GMT − SFT accuracy differences per candidate and
 * task (bars). The seeds a CI width needs grow with its square.
 */
export function pilotSdFigure(stats: readonly PilotCandidateStats[], opts: { title: string }): PlotlyFigure {
  const withData = stats.filter((s) => s.tasks.length > 0);
  if (withData.length === 0) return placeholderFigure(opts.title, 'No pilot runs in the store yet.');
  const tasks = [...new Set(withData.flatMap((s) => s.tasks.map((t) => t.task)))].sort();
  const series = tasks.map((task, i) => ({ name: task, colorKey: taskColorKey(task, i), values: withData.map((s) => s.tasks.find((t) => t.task === task)?.diffSd ?? NaN) }));
  return barFigure({ categories: withData.map(candidateLabel), series, title: opts.title, yTitle: 'SD of GMT − SFT (points)', legend: 'top' });
}

/**
 * Every pilot seed's GMT − SFT accuracy difference, per candidate and task (one dot per seed):
 * where the paired SD comes from — a spread, or a few seeds far from the rest.
 */
export function pilotSeedsFigure(stats: readonly PilotCandidateStats[], opts: { title: string }): PlotlyFigure {
  const withData = stats.filter((s) => s.tasks.length > 0);
  if (withData.length === 0) return placeholderFigure(opts.title, 'No pilot runs in the store yet.');
  const tasks = [...new Set(withData.flatMap((s) => s.tasks.map((t) => t.task)))].sort();
  const data = tasks.map((task, i) => {
    const pts = withData.flatMap((s) => (s.tasks.find((t) => t.task === task)?.diffs ?? []).map((d) => ({ x: candidateLabel(s), y: d })));
    return {
      type: 'scatter', mode: 'markers', name: task, x: pts.map((p) => p.x), y: pts.map((p) => p.y),
      offsetgroup: task, marker: { color: methodColor(taskColorKey(task, i)), size: 8, opacity: 0.75 },
    };
  });
  const layout = baseLayout({ title: opts.title, yTitle: 'GMT − SFT, same seed (points)', legend: 'top' });
  (layout.xaxis as Record<string, unknown>).type = 'category';
  (layout.yaxis as Record<string, unknown>).zeroline = true;
  (layout.yaxis as Record<string, unknown>).zerolinecolor = '#444';
  layout.scattermode = 'group';
  return { data, layout };
}

/**
 * The pilot's choice: each candidate's cost, Σ over tasks of SD² × minutes per run, with the
 * rule's median minutes, with the 10th-percentile minutes (a run on a machine doing nothing
 * else) and, where the pilot ran on a second machine, with that machine's minutes. The rule picks the lowest among candidates whose SFT converged on both tasks.
 */
export function pilotCostFigure(stats: readonly PilotCandidateStats[], opts: { title: string }): PlotlyFigure {
  const withData = stats.filter((s) => Number.isFinite(s.cost));
  if (withData.length === 0) return placeholderFigure(opts.title, 'No pilot runs in the store yet.');
  const categories = withData.map((s) => `${candidateLabel(s)}${s.converged ? '' : ' (SFT not converged)'}`);
  return barFigure({
    categories,
    series: [
      { name: 'median minutes per run (the rule)', colorKey: 'gmt', values: withData.map((s) => s.cost) },
      { name: '10th-percentile minutes', colorKey: 'sift', values: withData.map((s) => s.costQuiet) },
      ...(withData.some((s) => s.tasks.some((t) => t.laterMachineRuns > 0))
        ? [{ name: 'later machine\'s minutes where it has runs', colorKey: 'hft', values: withData.map((s) => s.costLaterMachine) }]
        : []),
    ],
    title: opts.title, yTitle: 'Σ SD² × minutes per run', legend: 'top',
  });
}

/** How {@link ablationAnswersFigure} colours each answer. */
const ANSWER_STYLE: Readonly<Record<AblationAnswer['answer'], { color: string; symbol: string }>> = Object.freeze({
  'A higher': { color: '#1B7837', symbol: 'circle' },
  'A lower': { color: '#B2182B', symbol: 'circle' },
  'no difference found': { color: '#555555', symbol: 'circle-open' },
  'no data': { color: '#AAAAAA', symbol: 'x-thin-open' },
});

/**
 * Notebook 06's pre-registered questions at a glance: one row per question (A vs B), the paired
 * difference A − B with its 95% interval, coloured by the answer it gives (an interval clear of
 * 0 answers; one across 0 finds no difference, and its width is what the runs could miss). A
 * question without paired seeds yet sits at 0 as "no data".
 */
export function ablationAnswersFigure(answers: readonly AblationAnswer[], opts: { title: string; subtitle?: string; xTitle?: string }): PlotlyFigure {
  if (answers.length === 0) return placeholderFigure(opts.title, 'No questions.');
  // Two lines per row (A, then B), so that long cell names leave the plot its width.
  const rowLabel = (a: AblationAnswer): string => `${a.question.a.label}<br>vs ${a.question.b.label}`;
  const rows = answers.map(rowLabel);
  const kinds = (Object.keys(ANSWER_STYLE) as AblationAnswer['answer'][]).filter((k) => answers.some((a) => a.answer === k));
  const data = kinds.map((kind) => {
    const mine = answers.filter((a) => a.answer === kind);
    const x = mine.map((a) => (kind === 'no data' ? 0 : a.diff.mean));
    return {
      type: 'scatter', mode: 'markers', name: kind,
      x, y: mine.map(rowLabel),
      text: mine.map((a) => `${a.question.question}<br>${a.diff.n} seed pair${a.diff.n === 1 ? '' : 's'}, ${a.sameBuildPairs} on one kernel build`),
      hovertemplate: '%{text}<br>A − B = %{x:.2f}<extra>%{fullData.name}</extra>',
      marker: { color: ANSWER_STYLE[kind].color, symbol: ANSWER_STYLE[kind].symbol, size: 11, line: { width: 2, color: ANSWER_STYLE[kind].color } },
      error_x: kind === 'no data' ? { visible: false } : {
        type: 'data', symmetric: false, thickness: 2, width: 5, color: ANSWER_STYLE[kind].color,
        array: mine.map((a, i) => Math.max(0, a.diff.hi - x[i]!)), arrayminus: mine.map((a, i) => Math.max(0, x[i]! - a.diff.lo)),
      },
    };
  });
  const layout = baseLayout({ title: opts.title, subtitle: opts.subtitle, xTitle: opts.xTitle ?? 'A − B (accuracy points, 95% CI)', legend: 'top' });
  Object.assign(layout.xaxis as Record<string, unknown>, { zeroline: true, zerolinecolor: '#444', zerolinewidth: 1.5 });
  // The first question on top, as the table lists them.
  Object.assign(layout.yaxis as Record<string, unknown>, { type: 'category', categoryorder: 'array', categoryarray: [...rows].reverse(), tickfont: { size: 12 } });
  (layout.margin as Record<string, unknown>).l = 20;
  return { data, layout };
}
