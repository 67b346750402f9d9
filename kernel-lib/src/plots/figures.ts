/**
 * Plotly figure builders shared by the notebooks and the `gmt-lab` command. Each returns a
 * plain JSON figure (`{data, layout}`) in the shared theme; export it with `exportFigure`,
 * show it in a notebook with `showFigure`.
 */
import { ConfigError } from '../util/config';
import { PlotlyFigure, PlotlyTrace, baseLayout, methodColor } from './theme';

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

/** Options of {@link lineFigure}. */
export interface LineFigureOptions {
  series: readonly LineSeries[];
  title?: string;
  xTitle?: string;
  yTitle?: string;
  logX?: boolean;
  logY?: boolean;
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
  for (const s of opts.series) {
    const lengths: Record<string, number> = { x: s.x.length, y: s.y.length };
    if (s.band) lengths.band = s.band.length;
    checkSeriesLengths('lineFigure', s.name, lengths);
    const color = s.color ?? methodColor(s.colorKey ?? s.name);
    const markers = s.markers ?? s.x.length <= 30;
    if (s.band) {
      // A closed polygon (upper edge forward, lower edge back) filled in the series colour.
      const upper = s.y.map((v, i) => v + s.band![i]);
      const lower = s.y.map((v, i) => v - s.band![i]);
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
  return { data, layout };
}
