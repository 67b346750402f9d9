/**
 * The look every gmt-lab figure shares: white background, readable fonts, and one colour per
 * method name, fixed, so `gmt` is the same colour in every figure of every notebook.
 */

/** A minimal plotly figure: traces, layout and (optionally) the display config. */
export interface PlotlyFigure {
  data: PlotlyTrace[];
  layout: Record<string, unknown>;
  config?: Record<string, unknown>;
}

/** A plotly trace; only the fields gmt-lab reads are typed. */
export interface PlotlyTrace {
  type?: string;
  name?: string;
  x?: unknown[];
  y?: unknown[];
  [key: string]: unknown;
}

/**
 * Colours of the methods the design names (tuning/ strategies). Chosen from the Okabe–Ito and
 * Tableau palettes so that SFT vs GMT — the comparison every figure makes — is a high-contrast,
 * colour-blind-safe pair (grey-blue vs vermillion).
 */
export const METHOD_COLORS: Readonly<Record<string, string>> = {
  sft: '#4C72B0',
  gmt: '#D55E00',
  'random-mask': '#7F7F7F',
  'childtuning-f': '#009E73',
  'childtuning-d': '#56B4E9',
  hft: '#CC79A7',
  sift: '#E69F00',
};

/** Variants of a method drawn side by side: GMT's other selection scopes in shades of its colour (`gmt tensor` is GMT's). */
export const VARIANT_COLORS: Readonly<Record<string, string>> = {
  'gmt layer': '#F28E2B',
  'gmt global': '#8C2D04',
};

/** Colours for names not in {@link METHOD_COLORS}, picked by a stable hash of the name. */
const EXTRA_COLORS = ['#8C564B', '#17BECF', '#BCBD22', '#9467BD', '#1F77B4', '#2CA02C', '#F0E442', '#0072B2', '#D62728', '#393B79'];

function stableHash(text: string): number {
  // FNV-1a: the same name gives the same colour in every process.
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * The colour of a method (or any series key). Matching ignores case, and a label such as
 * `"gmt (k=0.3)"` or `"gmt/global"` falls back to its leading method name `gmt`.
 */
export function methodColor(name: string): string {
  const key = name.trim().toLowerCase();
  if (METHOD_COLORS[key]) return METHOD_COLORS[key];
  if (VARIANT_COLORS[key]) return VARIANT_COLORS[key];
  const head = key.split(/[\s(/:,@]/)[0];
  if (METHOD_COLORS[head]) return METHOD_COLORS[head];
  return EXTRA_COLORS[stableHash(key) % EXTRA_COLORS.length];
}

/** Fonts present on most systems (and in Debian's chromium image via fonts-liberation). */
export const FONT_FAMILY = "'Helvetica Neue', Helvetica, Arial, 'Liberation Sans', sans-serif";

/** Default static size in CSS pixels (scaled by `scale` for PNG). */
export const DEFAULT_WIDTH = 720;
export const DEFAULT_HEIGHT = 450;

/**
 * A figure's static size: its layout's `width` and `height` where it sets them (a figure that
 * needs more room than the default, such as small multiples), else the defaults.
 */
export function preferredSize(fig: PlotlyFigure): { width: number; height: number } {
  const num = (v: unknown, d: number): number => (typeof v === 'number' && Number.isFinite(v) ? v : d);
  return { width: num(fig.layout.width, DEFAULT_WIDTH), height: num(fig.layout.height, DEFAULT_HEIGHT) };
}

function axis(title: string | undefined, log: boolean | undefined): Record<string, unknown> {
  return {
    title: title ? { text: title, standoff: 8 } : undefined,
    // Left to plotly's autotype unless log: a fixed 'linear' would break category axes.
    type: log ? 'log' : undefined,
    showline: true,
    linecolor: '#444',
    linewidth: 1,
    ticks: 'outside',
    tickcolor: '#444',
    gridcolor: '#E5E5E5',
    zeroline: false,
    automargin: true,
  };
}

/**
 * A figure's title with an optional second line in smaller grey type: what was run and on how
 * many seeds, kept out of the title so that a long description wraps instead of running past the
 * image's right edge.
 */
export function titleText(title: string, subtitle?: string): string {
  return subtitle ? `${title}<br><span style="font-size:13px;color:#555">${subtitle}</span>` : title;
}

/** The shared layout; builders add their axes and traces on top. */
export function baseLayout(opts: { title?: string; subtitle?: string; xTitle?: string; yTitle?: string; logX?: boolean; logY?: boolean; legend?: 'right' | 'top' }): Record<string, unknown> {
  // 'top': one row above the plot, for long series names that would squeeze a plot on the right.
  const top = opts.legend === 'top';
  return {
    title: opts.title ? { text: titleText(opts.title, opts.subtitle), x: 0.02, xanchor: 'left', font: { size: 18 } } : undefined,
    font: { family: FONT_FAMILY, size: 14, color: '#222' },
    paper_bgcolor: '#FFFFFF',
    plot_bgcolor: '#FFFFFF',
    xaxis: axis(opts.xTitle, opts.logX),
    yaxis: axis(opts.yTitle, opts.logY),
    // Always shown, even for one series, so a figure names the method it plots.
    showlegend: true,
    legend: top
      ? { bgcolor: 'rgba(255,255,255,0.8)', borderwidth: 0, orientation: 'h', x: 0, xanchor: 'left', y: 1.02, yanchor: 'bottom' }
      : { bgcolor: 'rgba(255,255,255,0.8)', borderwidth: 0 },
    margin: { l: 70, r: 20, t: (opts.title ? 60 : 20) + (opts.title && opts.subtitle ? 22 : 0) + (top ? 50 : 0), b: 60 },
    hovermode: 'closest',
  };
}

/**
 * A top legend wraps into rows and grows upwards, over the title, when its entries do not fit
 * one row: this widens the top margin for the rows the entries need (estimated for a plot about
 * 1,000 px wide at the theme's font size). Other legends are left alone.
 */
export function fitTopLegend(fig: PlotlyFigure, plotWidth = 1000): PlotlyFigure {
  const legend = fig.layout.legend as Record<string, unknown> | undefined;
  if (!legend || legend.orientation !== 'h' || legend.yanchor !== 'bottom') return fig;
  const names = fig.data.filter((d) => d.showlegend !== false && typeof d.name === 'string' && d.name !== '').map((d) => d.name as string);
  let rows = names.length ? 1 : 0;
  let used = 0;
  for (const n of names) {
    const w = 50 + 8.5 * n.length;
    if (used > 0 && used + w > plotWidth) {
      rows++;
      used = 0;
    }
    used += w;
  }
  if (rows <= 1) return fig;
  const margin = fig.layout.margin as Record<string, number>;
  const title = fig.layout.title as Record<string, unknown> | undefined;
  // The title then sits at the very top, and the legend's rows (about 40 px each) below it.
  if (title) fig.layout.title = { ...title, yref: 'container', y: 1, yanchor: 'top', pad: { t: 14 } };
  fig.layout.margin = { ...margin, t: (title ? 56 : 20) + 40 * rows };
  return fig;
}

/** Plotly display config used in notebooks and HTML files: no logo, no cloud link. */
export const DISPLAY_CONFIG: Readonly<Record<string, unknown>> = { displaylogo: false, responsive: true };
