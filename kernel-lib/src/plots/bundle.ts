/**
 * The notebook display bundle of a figure: one Jupyter output holding several MIME types, so
 * each frontend picks what it can show:
 *
 * - `application/vnd.plotly.v1+json` — the figure itself; interactive wherever a plotly
 *   renderer is installed (JupyterLab with jupyterlab-plotly, VS Code, nteract).
 * - `text/html` — a `<div>` that first holds the PNG as an `<img>`, then a script that
 *   replaces it with the interactive plot once `window.Plotly` exists. Untrusted notebooks
 *   and code hosts strip the script and keep the image; trusted ones get the live plot.
 *   plotly.js itself is inlined (≈4.8 MB) only when asked (`includePlotlyJs`), guarded on
 *   `window.Plotly` so a page never loads it twice.
 * - `image/png` — the static fallback for renderers that skip HTML.
 * - `text/plain` — a one-line description for terminals and logs.
 *
 * The plot `<div>`'s id is a digest of what it draws (figure and size), never a process id, a
 * counter or a random number, so a notebook executed twice is saved byte for byte the same. The
 * same figure shown twice on one page gets one id twice; its script draws into every element that
 * carries it, so both copies come alive.
 */
import { createHash } from 'crypto';
import { DISPLAY_CONFIG, PlotlyFigure, preferredSize } from './theme';
import { FigureExporter, plotlyJsSource, plotlyJsVersion, scriptJson, scriptSafe } from './export';

/** A Jupyter MIME bundle: MIME type → payload (string, base64 string, or JSON). */
export type MimeBundle = Record<string, unknown>;

/** The `data` and `metadata` of one Jupyter `display_data` message. */
export interface DisplayContent {
  data: MimeBundle;
  /** Per-MIME metadata, e.g. `{'image/png': {width, height}}` so a dense PNG shows at CSS size. */
  metadata: Record<string, unknown>;
}

/** Options of {@link figureBundle}. */
export interface FigureBundleOptions {
  /** CSS pixels of the static image and the HTML box; default 720 × 450. */
  width?: number;
  height?: number;
  /** Inline plotly.js into the HTML (guarded on window.Plotly). Default false. */
  includePlotlyJs?: boolean;
  /** Render the PNG fallback with this exporter; without one the bundle has no PNG. */
  exporter?: FigureExporter;
  /** PNG pixel density; default 1.5 (sharp enough on screens, keeps notebooks small). */
  pngScale?: number;
  /** Element id of the plot `<div>`; default {@link figureElementId} (a digest of the figure and its size). */
  elementId?: string;
  /**
   * Include the `text/html` part; default true. Without plotly.js on the page the HTML only
   * repeats the PNG, so notebooks committed with their outputs leave it out (half the bytes).
   */
  html?: boolean;
}

/**
 * The default element id of a figure's `<div>`: `gmt-fig-` and 16 hex digits of the sha256 of the
 * figure and its size. The same figure gets the same id in every process and every run.
 */
export function figureElementId(fig: PlotlyFigure, size: { width?: number; height?: number } = {}): string {
  const preferred = preferredSize(fig);
  const hash = createHash('sha256').update(JSON.stringify({ fig, width: size.width ?? preferred.width, height: size.height ?? preferred.height })).digest('hex').slice(0, 16);
  return `gmt-fig-${hash}`;
}

function describe(fig: PlotlyFigure): string {
  const t = fig.layout.title as { text?: string } | string | undefined;
  const title = (typeof t === 'string' ? t : t?.text) ?? 'figure';
  const names = fig.data.map((d) => d.name).filter((n): n is string => typeof n === 'string' && !n.endsWith(' band'));
  return `<gmt-lab figure "${title}": ${names.length > 0 ? names.join(', ') : `${fig.data.length} traces`}>`;
}

/** The HTML part of the bundle (see the file comment). `pngBase64` becomes the placeholder. */
export function figureBundleHtml(fig: PlotlyFigure, opts: { elementId: string; width: number; height: number; pngBase64?: string; includePlotlyJs?: boolean }): string {
  const { elementId, width, height } = opts;
  const config = { ...DISPLAY_CONFIG, ...(fig.config ?? {}) };
  const placeholder = opts.pngBase64
    ? `<img src="data:image/png;base64,${opts.pngBase64}" alt="${describe(fig).replace(/[<>"&]/g, '')}" style="width:${width}px;max-width:100%;height:auto">`
    : '';
  const parts = [`<div id="${elementId}" class="gmt-figure" style="width:${width}px;max-width:100%;min-height:${opts.pngBase64 ? 0 : height}px">${placeholder}</div>`];
  if (opts.includePlotlyJs) {
    parts.push(`<script type="text/javascript">/* plotly.js ${plotlyJsVersion()} (MIT) */\nif (!window.Plotly) {\n${scriptSafe(plotlyJsSource())}\n}</script>`);
  }
  // Waits up to 10 s for plotly.js (another output may still be loading it); if it never comes
  // the PNG placeholder stays, which is the right fallback. Draws into every element with this id:
  // the same figure shown twice on a page carries the same (content-derived) id twice.
  parts.push(
    '<script type="text/javascript">(function () {',
    `  var id = ${scriptJson(elementId)};`,
    `  var fig = ${scriptJson({ data: fig.data, layout: { ...fig.layout, width: undefined, height, autosize: true } })};`,
    `  var config = ${scriptJson(config)};`,
    '  function draw() {',
    '    if (!window.Plotly) return false;',
    '    var els = Array.prototype.filter.call(document.getElementsByClassName("gmt-figure"), function (e) { return e.id === id; });',
    '    if (els.length === 0) return false;',
    '    els.forEach(function (el) {',
    '      el.innerHTML = "";',
    '      window.Plotly.newPlot(el, fig.data, fig.layout, config);',
    '    });',
    '    return true;',
    '  }',
    '  if (!draw()) { var tries = 0; var timer = setInterval(function () { if (draw() || ++tries > 50) clearInterval(timer); }, 200); }',
    '})();</script>',
  );
  return parts.join('\n');
}

/** Builds the MIME bundle of a figure (see the file comment); renders the PNG when given an exporter. */
export async function figureBundle(fig: PlotlyFigure, opts: FigureBundleOptions = {}): Promise<DisplayContent> {
  const width = opts.width ?? preferredSize(fig).width;
  const height = opts.height ?? preferredSize(fig).height;
  let pngBase64: string | undefined;
  if (opts.exporter) {
    const png = await opts.exporter.toImage(fig, 'png', { width, height, scale: opts.pngScale ?? 1.5 });
    pngBase64 = png.toString('base64');
  }
  const elementId = opts.elementId ?? figureElementId(fig, { width, height });
  const bundle: MimeBundle = {
    // Interactive views fill their output area's width (a figure's own width is for static images).
    'application/vnd.plotly.v1+json': { data: fig.data, layout: { ...fig.layout, width: undefined, height }, config: { ...DISPLAY_CONFIG, ...(fig.config ?? {}) } },
  };
  if (opts.html ?? true) bundle['text/html'] = figureBundleHtml(fig, { elementId, width, height, pngBase64, includePlotlyJs: opts.includePlotlyJs });
  bundle['text/plain'] = describe(fig);
  const metadata: Record<string, unknown> = {};
  if (pngBase64) {
    bundle['image/png'] = pngBase64;
    metadata['image/png'] = { width, height };
  }
  return { data: bundle, metadata };
}
