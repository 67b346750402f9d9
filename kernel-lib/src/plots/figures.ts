/**
 * Plotly figure builders shared by the notebooks and the `gmt-lab` command. Each returns a
 * plain JSON figure (`{data, layout}`) in the shared theme; export it with `exportFigure`,
 * show it in a notebook with `showFigure`.
 */
import { ConfigError } from '../util/config';
import { PlotlyFigure, PlotlyTrace, baseLayout, fitTopLegend, methodColor } from './theme';

/** One line of a {@link lineFigure}. */
export interface LineSeries {
  /** Legend label; also picks the colour unless `colorKey` or `color` is given. */
  name: string;
  x: readonly (number | string)[];
  y: readonly number[];
  /** Half-width of a shaded band around `y` (e.g. std over seeds); same length as `y`. */
  band?: readonly number[];
  /** Colour lookup key when the label is not the method name (e.g. name "k=0.3", colorKey "gmt"). */
  colorKey?: string;
  /** Explicit colour; overrides the method palette. */
  color?: string;
  dash?: 'solid' | 'dash' | 'dot' | 'dashdot';
  /** Show point markers (default: only when a series has ≤ 30 points). */
  markers?: boolean;
}

/** A horizontal reference level drawn across a {@link lineFigure} (e.g. SFT's mean accuracy). */
export interface ReferenceLine {
  name: string;
  y: number;
  /** Shaded interval around the level, e.g. its 95% CI: [low, high]. */
  interval?: readonly [number, number];
  colorKey?: string;
  color?: string;
}

/** Options of {@link lineFigure}. */
export interface LineFigureOptions {
  series: readonly LineSeries[];
  /** Horizontal dashed levels across the x range of the series, in the legend and the CSV. */
  references?: readonly ReferenceLine[];
  title?: string;
  xTitle?: string;
  yTitle?: string;
  logX?: boolean;
  logY?: boolean;
  legend?: 'right' | 'top';
  /**
   * The range the plotted quantity can take (e.g. [0, 100] for an accuracy in %): bands and
   * reference intervals are drawn clipped to it. The CSV keeps the unclipped half-widths.
   */
  yBounds?: readonly [number, number];
}

function checkSeriesLengths(where: string, name: string, lengths: Record<string, number>): void {
  const entries = Object.entries(lengths);
  const [firstKey, firstLen] = entries[0];
  for (const [key, len] of entries.slice(1)) {
    if (len !== firstLen) {
      throw new ConfigError(`${where}: series "${name}" has ${firstLen} ${firstKey} values but ${len} ${key} values`);
    }
  }
}

function hexToRgba(hex: string, alpha: number): string {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) return hex;
  return `rgba(${parseInt(m[1], 16)},${parseInt(m[2], 16)},${parseInt(m[3], 16)},${alpha})`;
}

/** Lines (learning curves, accuracy against mask ratio, ...), with optional ± bands. */
export function lineFigure(opts: LineFigureOptions): PlotlyFigure {
  if (!opts.series || opts.series.length === 0) throw new ConfigError('lineFigure: series must hold at least one series');
  const data: PlotlyTrace[] = [];
  const [yMin, yMax] = opts.yBounds ?? [-Infinity, Infinity];
  const clip = (v: number): number => Math.min(yMax, Math.max(yMin, v));
  for (const s of opts.series) {
    const lengths: Record<string, number> = { x: s.x.length, y: s.y.length };
    if (s.band) lengths.band = s.band.length;
    checkSeriesLengths('lineFigure', s.name, lengths);
    const color = s.color ?? methodColor(s.colorKey ?? s.name);
    const markers = s.markers ?? s.x.length <= 30;
    if (s.band) {
      // A closed polygon (upper edge forward, lower edge back) filled in the series colour.
      const upper = s.y.map((v, i) => clip(v + s.band![i]));
      const lower = s.y.map((v, i) => clip(v - s.band![i]));
      data.push({
        type: 'scatter',
        mode: 'lines',
        name: `${s.name} band`,
        x: [...s.x, ...[...s.x].reverse()],
        y: [...upper, ...lower.reverse()],
        fill: 'toself',
        fillcolor: hexToRgba(color, 0.18),
        line: { width: 0, color },
        hoverinfo: 'skip',
        showlegend: false,
        legendgroup: s.name,
        meta: { role: 'band', of: s.name },
      });
    }
    data.push({
      type: 'scatter',
      mode: markers ? 'lines+markers' : 'lines',
      name: s.name,
      x: [...s.x],
      y: [...s.y],
      line: { color, width: 2.2, dash: s.dash ?? 'solid' },
      marker: { color, size: 6 },
      legendgroup: s.name,
      meta: s.band ? { band: [...s.band] } : undefined,
    });
  }
  if (opts.references?.length) {
    const xs = opts.series.flatMap((s) => [...s.x]);
    const numeric = xs.every((x) => typeof x === 'number');
    const ends = numeric ? [Math.min(...(xs as number[])), Math.max(...(xs as number[]))] : [xs[0], xs[xs.length - 1]];
    for (const r of opts.references) {
      const color = r.color ?? methodColor(r.colorKey ?? r.name);
      if (r.interval) {
        data.push({
          type: 'scatter', mode: 'lines', name: `${r.name} band`, x: [ends[0], ends[1], ends[1], ends[0]],
          y: [clip(r.interval[1]), clip(r.interval[1]), clip(r.interval[0]), clip(r.interval[0])], fill: 'toself', fillcolor: hexToRgba(color, 0.12),
          line: { width: 0, color }, hoverinfo: 'skip', showlegend: false, legendgroup: r.name, meta: { role: 'band', of: r.name },
        });
      }
      data.push({
        type: 'scatter', mode: 'lines', name: r.name, x: [ends[0], ends[1]], y: [r.y, r.y],
        line: { color, width: 1.6, dash: 'dash' }, legendgroup: r.name,
        meta: r.interval ? { band: [(r.interval[1] - r.interval[0]) / 2, (r.interval[1] - r.interval[0]) / 2], role: 'reference' } : { role: 'reference' },
      });
    }
  }
  return fitTopLegend({ data, layout: baseLayout(opts) });
}

/** Options of {@link heatmapFigure}. */
export interface HeatmapFigureOptions {
  /** Column labels (e.g. update numbers). */
  x: readonly (number | string)[];
  /** Row labels (e.g. layers or tensors), top to bottom. */
  y: readonly string[];
  /** z[row][column]. */
  z: readonly (readonly number[])[];
  title?: string;
  xTitle?: string;
  yTitle?: string;
  /** Colour-bar title. */
  zTitle?: string;
  /** Fixed colour range; default the data's. */
  zmin?: number;
  zmax?: number;
}

/** A heatmap, e.g. kept fraction per layer (rows) over updates (columns). */
export function heatmapFigure(opts: HeatmapFigureOptions): PlotlyFigure {
  if (opts.z.length !== opts.y.length) throw new ConfigError(`heatmapFigure: ${opts.y.length} row labels but ${opts.z.length} rows of z`);
  opts.z.forEach((row, i) => {
    if (row.length !== opts.x.length) throw new ConfigError(`heatmapFigure: row "${opts.y[i]}" has ${row.length} values but there are ${opts.x.length} columns`);
  });
  const layout = baseLayout(opts);
  (layout.yaxis as Record<string, unknown>).autorange = 'reversed';
  (layout.yaxis as Record<string, unknown>).type = 'category';
  layout.showlegend = false;
  return {
    data: [{
      type: 'heatmap', name: opts.zTitle ?? 'value', x: [...opts.x], y: [...opts.y], z: opts.z.map((r) => [...r]),
      colorscale: 'Viridis', zmin: opts.zmin, zmax: opts.zmax, colorbar: { title: { text: opts.zTitle ?? '' }, thickness: 14 },
      hovertemplate: '%{y} @ %{x}: %{z:.3f}<extra></extra>',
    }],
    layout,
  };
}

/** A vertical marker of a {@link histogramFigure} (e.g. the threshold T_k). */
export interface VerticalMarker {
  name: string;
  x: number;
  color?: string;
}

/** Options of {@link histogramFigure}. */
export interface HistogramFigureOptions {
  /** Bin centres (or left edges) and counts, already binned (see {@link logHistogram}). */
  bins: readonly number[];
  counts: readonly number[];
  name?: string;
  colorKey?: string;
  markers?: readonly VerticalMarker[];
  title?: string;
  xTitle?: string;
  yTitle?: string;
  logX?: boolean;
  logY?: boolean;
}

/** Counts over logarithmic bins of the positive values of `values` (zeros are counted apart). */
export function logHistogram(values: ArrayLike<number>, nBins = 60): { bins: number[]; counts: number[]; zeros: number } {
  let lo = Infinity;
  let hi = -Infinity;
  let zeros = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i] as number);
    if (!(v > 0) || !Number.isFinite(v)) {
      zeros += 1;
      continue;
    }
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo)) return { bins: [], counts: [], zeros };
  const a = Math.log10(lo);
  const b = Math.log10(hi) + 1e-9;
  const width = (b - a) / nBins || 1;
  const counts = new Array<number>(nBins).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i] as number);
    if (!(v > 0) || !Number.isFinite(v)) continue;
    counts[Math.min(nBins - 1, Math.floor((Math.log10(v) - a) / width))] += 1;
  }
  const bins = counts.map((_, i) => 10 ** (a + (i + 0.5) * width));
  return { bins, counts, zeros };
}

/** A histogram drawn from pre-binned counts, with vertical markers (thresholds). */
export function histogramFigure(opts: HistogramFigureOptions): PlotlyFigure {
  checkSeriesLengths('histogramFigure', opts.name ?? 'histogram', { bins: opts.bins.length, counts: opts.counts.length });
  const color = methodColor(opts.colorKey ?? opts.name ?? 'gmt');
  const data: PlotlyTrace[] = [{
    type: 'scatter', mode: 'lines', name: opts.name ?? 'count', x: [...opts.bins], y: [...opts.counts],
    line: { color, width: 1.5, shape: 'hvh' }, fill: 'tozeroy', fillcolor: hexToRgba(color, 0.25),
  }];
  const peak = Math.max(1, ...opts.counts);
  for (const m of opts.markers ?? []) {
    data.push({
      type: 'scatter', mode: 'lines', name: m.name, x: [m.x, m.x], y: [opts.logY ? 1 : 0, peak],
      line: { color: m.color ?? '#222', width: 2, dash: 'dash' }, meta: { role: 'reference' },
    });
  }
  return { data, layout: baseLayout(opts) };
}

/** One group of bars of a {@link barFigure}. */
export interface BarSeries {
  name: string;
  /** One value per category. */
  values: readonly number[];
  /** Error bar half-widths, one per category (above the bar only, when `errorsBelow` is given). */
  errors?: readonly number[];
  /** Lengths of the error bars below the values, for asymmetric intervals; needs `errors`. */
  errorsBelow?: readonly number[];
  colorKey?: string;
  color?: string;
}

/** Options of {@link barFigure}. */
export interface BarFigureOptions {
  categories: readonly string[];
  series: readonly BarSeries[];
  title?: string;
  xTitle?: string;
  yTitle?: string;
  logY?: boolean;
  /** `group` (side by side, default) or `stack`. */
  barmode?: 'group' | 'stack';
  /** Where the legend goes: `right` (default) or `top`, in one row above the plot. */
  legend?: 'right' | 'top';
}

/** Grouped (or stacked) bars: accuracy per task and method, time per step, ... */
export function barFigure(opts: BarFigureOptions): PlotlyFigure {
  if (!opts.series || opts.series.length === 0) throw new ConfigError('barFigure: series must hold at least one series');
  const data: PlotlyTrace[] = opts.series.map((s) => {
    const lengths: Record<string, number> = { categories: opts.categories.length, values: s.values.length };
    if (s.errors) lengths.errors = s.errors.length;
    if (s.errorsBelow) {
      if (!s.errors) throw new ConfigError(`barFigure: series "${s.name}" has errorsBelow without errors`);
      lengths.errorsBelow = s.errorsBelow.length;
    }
    checkSeriesLengths('barFigure', s.name, lengths);
    const color = s.color ?? methodColor(s.colorKey ?? s.name);
    return {
      type: 'bar',
      name: s.name,
      x: [...opts.categories],
      y: [...s.values],
      marker: { color },
      error_y: s.errors
        ? {
          type: 'data', array: [...s.errors], visible: true, color: '#333', thickness: 1.2,
          ...(s.errorsBelow ? { symmetric: false, arrayminus: [...s.errorsBelow] } : {}),
        }
        : undefined,
    };
  });
  const layout = baseLayout(opts);
  // Categories stay categories even when they look like numbers ("1", "2").
  (layout.xaxis as Record<string, unknown>).type = 'category';
  layout.barmode = opts.barmode ?? 'group';
  layout.bargap = 0.2;
  return fitTopLegend({ data, layout });
}
