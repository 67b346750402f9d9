/**
 * Static export of figures: SVG and PNG rendered by plotly.js in real Chromium (jsdom breaks
 * plotly's text layout), an HTML page that draws the interactive figure, the figure JSON, and the
 * CSV of the data behind it. Nothing is fetched from the network: plotly.js comes from
 * node_modules and Chromium runs with networking features off.
 *
 * Where an HTML figure finds plotly.js (4.8 MB) is the caller's choice ({@link PlotlyJsPlacement}):
 * by default it is inlined, so the page opens alone wherever it is copied; with `{ file }` many
 * pages share one copy through a relative `<script src>` (figures/ does this: one
 * `figures/plotly.min.js`, pages of a few KB that still open offline from `file://`).
 *
 * One {@link FigureExporter} keeps one browser open for many figures; call `close()` when done.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError, checkNumber } from '../util/config';
import { writeFileAtomic } from '../util/fsx';
import { DISPLAY_CONFIG, PlotlyFigure, preferredSize } from './theme';

/** What `exportFigure` can write. */
export type FigureFormat = 'svg' | 'png' | 'html' | 'json' | 'csv';
export const FIGURE_FORMATS: readonly FigureFormat[] = ['svg', 'png', 'html', 'json', 'csv'];

/** Size options for static images. */
export interface ImageOptions {
  /** CSS pixels; default 720. */
  width?: number;
  /** CSS pixels; default 450. */
  height?: number;
  /** PNG pixel density multiplier; default 2. */
  scale?: number;
}

/**
 * Where an exported HTML figure gets plotly.js from:
 *
 * - `'inline'` (the default): plotly.js is written into the page (4.8 MB per figure), so the file
 *   opens on its own wherever it is copied — right for a figure written outside `figures/`, such
 *   as `gmt-lab bench --figure`'s or one a user exports;
 * - `{ file, bundle? }`: one shared copy of the `bundle` (default `'full'`; see
 *   {@link PlotlyBundle}) at `file` (written there when it is missing or holds another build),
 *   loaded by a relative `<script src>`. The page weighs a few KB and opens offline (also from
 *   `file://`) as long as it keeps its place relative to `file`; without the file it says so and
 *   shows the PNG beside it, when there is one. A figure with a trace the bundle cannot draw is
 *   refused. `figures/` uses `figures/plotly.min.js`, the cartesian bundle (see `exportFindings`).
 */
export type PlotlyJsPlacement = 'inline' | { file: string; bundle?: PlotlyBundle };

/** Options of {@link exportFigure}. */
export interface ExportOptions extends ImageOptions {
  /** Default `['svg', 'png', 'html', 'csv']` — what figures/ holds for each figure. */
  formats?: readonly FigureFormat[];
  /** Reuse this exporter's browser; otherwise one is launched and closed for this call. */
  exporter?: FigureExporter;
  /** How the HTML figure gets plotly.js; default `'inline'` (see {@link PlotlyJsPlacement}). */
  plotlyJs?: PlotlyJsPlacement;
}

/** Chromium flags: headless, no sandbox (containers), and no background network traffic. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** The Chromium binary: `CHROMIUM_PATH` or `/usr/bin/chromium`. */
export function chromiumPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.CHROMIUM_PATH && env.CHROMIUM_PATH.trim() !== '' ? env.CHROMIUM_PATH : '/usr/bin/chromium';
}

/**
 * The plotly.js builds the lab ships, one version: `'full'` (every trace type, 4.8 MB) and
 * `'cartesian'`, plotly's partial bundle of 2-D traces (1.5 MB), which draws every figure the
 * lab itself makes. Notebook outputs and inlined pages use the full one (a user's own figure may
 * use any trace); `figures/` shares the cartesian one.
 */
export type PlotlyBundle = 'full' | 'cartesian';

const BUNDLE_PACKAGES: Record<PlotlyBundle, { pkg: string; file: string }> = {
  full: { pkg: 'plotly.js-dist-min', file: 'plotly.min.js' },
  cartesian: { pkg: 'plotly.js-cartesian-dist-min', file: 'plotly-cartesian.min.js' },
};

/** The trace types of the cartesian bundle (read from its `Plotly.PlotSchema`); a trace without a type is a scatter. */
export const CARTESIAN_TRACE_TYPES: ReadonlySet<string> = new Set([
  'bar', 'box', 'contour', 'heatmap', 'histogram', 'histogram2d', 'histogram2dcontour', 'image', 'pie', 'scatter', 'scatterternary', 'violin',
]);

function checkBundle(bundle: unknown): PlotlyBundle {
  if (bundle === 'full' || bundle === 'cartesian') return bundle;
  throw new ConfigError(`plotly.js bundle must be 'full' or 'cartesian', got ${JSON.stringify(bundle)}`);
}

const plotlySources = new Map<PlotlyBundle, string>();

/** plotly.js (minified) read from node_modules, cached; the full bundle unless `bundle` says otherwise. */
export function plotlyJsSource(bundle: PlotlyBundle = 'full'): string {
  let source = plotlySources.get(checkBundle(bundle));
  if (source === undefined) {
    const { pkg, file } = BUNDLE_PACKAGES[bundle];
    source = fs.readFileSync(require.resolve(`${pkg}/${file}`), 'utf8');
    plotlySources.set(bundle, source);
  }
  return source;
}

/** The plotly.js version the HTML outputs embed (of the full bundle unless `bundle` says otherwise). */
export function plotlyJsVersion(bundle: PlotlyBundle = 'full'): string {
  const file = require.resolve(`${BUNDLE_PACKAGES[checkBundle(bundle)].pkg}/package.json`);
  return JSON.parse(fs.readFileSync(file, 'utf8')).version;
}

/** The trace types of `fig` that `bundle` cannot draw (none for the full bundle). */
export function tracesOutside(fig: PlotlyFigure, bundle: PlotlyBundle): string[] {
  if (checkBundle(bundle) === 'full') return [];
  const types = fig.data.map((t) => (typeof t.type === 'string' ? t.type : 'scatter'));
  return [...new Set(types.filter((t) => !CARTESIAN_TRACE_TYPES.has(t)))];
}

/**
 * Makes text safe inside an inline `<script>`: `</script` would close the element and `<!--`
 * switches the HTML parser into an escaped mode. Both rewrites mean the same in JS strings.
 */
export function scriptSafe(js: string): string {
  return js.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

/** JSON that can be pasted into a `<script>` (no `<`, no U+2028/2029 line breaks). */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function checkFigure(fig: unknown, where: string): asserts fig is PlotlyFigure {
  const f = fig as PlotlyFigure;
  if (!f || typeof f !== 'object' || !Array.isArray(f.data) || typeof f.layout !== 'object' || f.layout === null) {
    throw new ConfigError(`${where}: expected a plotly figure {data: [...], layout: {...}}`);
  }
}

function figureTitle(fig: PlotlyFigure): string {
  const t = fig.layout.title as { text?: string } | string | undefined;
  return (typeof t === 'string' ? t : t?.text) ?? 'gmt-lab figure';
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Options of {@link figureHtml}. */
export interface FigureHtmlOptions {
  /**
   * URL of plotly.js, relative to the page (e.g. `../plotly.min.js`), loaded by `<script src>`.
   * Without it plotly.js is inlined and the page is self-contained.
   */
  plotlyJsSrc?: string;
  /** An image (URL relative to the page) shown, with a note, when plotly.js did not load. */
  fallbackImage?: string;
}

/**
 * An HTML page showing the figure, interactive, offline: plotly.js inlined (the default), or
 * loaded from `opts.plotlyJsSrc`. When that script is missing the page says where it looked and
 * shows `opts.fallbackImage`.
 */
export function figureHtml(fig: PlotlyFigure, opts: FigureHtmlOptions = {}): string {
  checkFigure(fig, 'figureHtml');
  const config = { ...DISPLAY_CONFIG, ...(fig.config ?? {}) };
  const script = opts.plotlyJsSrc === undefined
    ? `<script>/* plotly.js ${plotlyJsVersion()} (MIT) */\n${scriptSafe(plotlyJsSource())}</script>`
    : `<script src="${escapeHtml(opts.plotlyJsSrc)}"></script>`;
  const missing = opts.plotlyJsSrc === undefined
    ? ''
    : `<p style="font:15px sans-serif;margin:16px">This interactive figure needs plotly.js at <code>${escapeHtml(opts.plotlyJsSrc)}</code> (relative to this page), which did not load.${opts.fallbackImage ? ' The static image:' : ''}</p>` +
      (opts.fallbackImage ? `<img src="${escapeHtml(opts.fallbackImage)}" alt="${escapeHtml(figureTitle(fig))}" style="max-width:100%">` : '');
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${escapeHtml(figureTitle(fig))}</title>`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    script,
    '</head>',
    '<body style="margin:0;background:#fff">',
    '<div id="gmt-figure" style="width:100vw;height:100vh"></div>',
    '<script>',
    'var el = document.getElementById(\'gmt-figure\');',
    `if (window.Plotly) Plotly.newPlot(el, ${scriptJson(fig.data)}, ${scriptJson(fig.layout)}, ${scriptJson(config)});`,
    `else el.innerHTML = ${scriptJson(missing || 'plotly.js did not load.')};`,
    '</script>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/** A URL from `fromDir` to `file`: relative, `/`-separated, each segment percent-encoded. */
export function relativeUrl(fromDir: string, file: string): string {
  return path.relative(path.resolve(fromDir), path.resolve(file)).split(path.sep).map(encodeURIComponent).join('/');
}

/**
 * Writes plotly.js (`bundle`, default the full one) to `file` unless it already holds exactly
 * that; returns whether it wrote. The shared copy of {@link PlotlyJsPlacement} `{ file }`.
 */
export function writePlotlyJs(file: string, bundle: PlotlyBundle = 'full'): boolean {
  const source = Buffer.from(plotlyJsSource(bundle), 'utf8');
  try {
    const st = fs.statSync(file);
    if (st.isFile() && st.size === source.length && fs.readFileSync(file).equals(source)) return false;
  } catch {
    // missing: write it
  }
  writeFileAtomic(file, source);
  return true;
}

function csvField(value: unknown): string {
  if (value === undefined || value === null) return '';
  const text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : '') : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * The data behind a figure as CSV in long form: `series,x,y,error` (error = band half-width or
 * error bar, empty when none). Band outline traces are folded into their series' `error`. When
 * any error bar is asymmetric a last column, `error_below`, holds the length below the value
 * (and `error` the length above).
 */
export function figureCsv(fig: PlotlyFigure): string {
  checkFigure(fig, 'figureCsv');
  type ErrorY = { array?: number[]; arrayminus?: number[] } | undefined;
  const asymmetric = fig.data.some((t) => (t.error_y as ErrorY)?.arrayminus !== undefined);
  const rows: string[] = [asymmetric ? 'series,x,y,error,error_below' : 'series,x,y,error'];
  for (const trace of fig.data) {
    // A trace of one panel of several (small multiples) names its panel: `series (panel)`.
    const meta = trace.meta as { role?: string; band?: number[]; panel?: string } | undefined;
    if (meta?.role === 'band') continue;
    if (trace.type === 'heatmap') {
      // One line per cell: series = row label, x = column label, y = the cell's value.
      const z = (trace.z ?? []) as number[][];
      const xs = trace.x ?? [];
      ((trace.y ?? []) as unknown[]).forEach((row, i) => {
        xs.forEach((x, j) => {
          const fields = [row, x, z[i]?.[j], undefined];
          if (asymmetric) fields.push(undefined);
          rows.push(fields.map(csvField).join(','));
        });
      });
      continue;
    }
    const x = trace.x ?? [];
    const y = trace.y ?? [];
    const errorY = trace.error_y as ErrorY;
    const errors = meta?.band ?? errorY?.array;
    const below = errorY?.arrayminus ?? errors;
    const n = Math.max(x.length, y.length);
    for (let i = 0; i < n; i++) {
      const fields = [meta?.panel ? `${trace.name ?? ''} (${meta.panel})` : trace.name ?? '', x[i], y[i], errors?.[i]];
      if (asymmetric) fields.push(below?.[i]);
      rows.push(fields.map(csvField).join(','));
    }
  }
  return `${rows.join('\n')}\n`;
}

/** Writes {@link figureCsv} to `file` (creating its folder). Returns the path. */
export function writeFigureCsv(fig: PlotlyFigure, file: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, figureCsv(fig));
  return file;
}

function resolveImageOptions(opts: ImageOptions, fig: PlotlyFigure): Required<ImageOptions> {
  const preferred = preferredSize(fig);
  const width = checkNumber('width', opts.width ?? preferred.width, { min: 50, max: 8000, integer: true });
  const height = checkNumber('height', opts.height ?? preferred.height, { min: 50, max: 8000, integer: true });
  const scale = checkNumber('scale', opts.scale ?? 2, { min: 0.1, max: 10 });
  return { width, height, scale };
}

// Minimal structural types for the parts of playwright-core used here; the module is loaded
// lazily so that importing kernel-lib never starts (or requires) a browser.
interface PwPage {
  setContent(html: string): Promise<void>;
  addScriptTag(opts: { content: string }): Promise<unknown>;
  evaluate<R, A>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<R>;
  close(): Promise<void>;
}
interface PwBrowser {
  newPage(): Promise<PwPage>;
  close(): Promise<void>;
}

/**
 * Launches headless Chromium (`CHROMIUM_PATH` or `/usr/bin/chromium`) with {@link CHROMIUM_ARGS}
 * through playwright-core and returns its playwright `Browser` (typed by the caller). Throws a
 * clear error naming `apt-get install chromium` when the binary is missing or does not start.
 */
export async function launchChromium<B = PwBrowser>(opts: { executablePath?: string } = {}): Promise<B> {
  const executablePath = opts.executablePath ?? chromiumPath();
  if (!fs.existsSync(executablePath)) {
    throw new Error(
      `Chromium not found at ${executablePath}: static figure export (SVG/PNG) needs it. ` +
        `Install it with \`apt-get install chromium\` (Debian/Ubuntu) or point CHROMIUM_PATH at a Chromium or Chrome binary.`,
    );
  }
  const { chromium } = require('playwright-core') as { chromium: { launch(o: object): Promise<B> } };
  try {
    return await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new Error(`could not start Chromium at ${executablePath} (${msg}); try \`apt-get install chromium\` or set CHROMIUM_PATH`);
  }
}

/** One headless Chromium with plotly.js loaded, reused for many figures. */
export class FigureExporter {
  private constructor(
    private browser: PwBrowser | undefined,
    private readonly page: PwPage,
  ) {}

  /**
   * Launches Chromium (`CHROMIUM_PATH` or `/usr/bin/chromium`) and loads plotly.js into a blank
   * page. Throws a clear error naming `apt-get install chromium` when the binary is missing.
   */
  static async launch(opts: { executablePath?: string } = {}): Promise<FigureExporter> {
    const browser = await launchChromium<PwBrowser>(opts);
    try {
      const page = await browser.newPage();
      await page.setContent('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body></body></html>');
      await page.addScriptTag({ content: plotlyJsSource() });
      return new FigureExporter(browser, page);
    } catch (e) {
      await browser.close();
      throw e;
    }
  }

  /** Renders the figure with `Plotly.toImage`: SVG as text, PNG as bytes. */
  async toImage(fig: PlotlyFigure, format: 'svg', opts?: ImageOptions): Promise<string>;
  async toImage(fig: PlotlyFigure, format: 'png', opts?: ImageOptions): Promise<Buffer>;
  async toImage(fig: PlotlyFigure, format: 'svg' | 'png', opts: ImageOptions = {}): Promise<string | Buffer> {
    checkFigure(fig, 'toImage');
    if (!this.browser) throw new Error('FigureExporter: already closed');
    const size = resolveImageOptions(opts, fig);
    const dataUrl = await this.page.evaluate(
      async (arg: { fig: PlotlyFigure; format: string; width: number; height: number; scale: number }) => {
        const P = (globalThis as unknown as { Plotly: { toImage(f: unknown, o: unknown): Promise<string> } }).Plotly;
        return P.toImage({ data: arg.fig.data, layout: arg.fig.layout }, { format: arg.format, width: arg.width, height: arg.height, scale: arg.scale });
      },
      // A trace's uid names its SVG class; plotly draws a random one for each trace without it.
      { fig: { ...fig, data: fig.data.map((t, i) => (t.uid === undefined ? { ...t, uid: `t${i}` } : t)) }, format, ...size },
    );
    const comma = dataUrl.indexOf(',');
    const header = dataUrl.slice(0, comma);
    const payload = dataUrl.slice(comma + 1);
    if (format === 'png') return Buffer.from(payload, 'base64');
    return stableSvgIds(header.endsWith(';base64') ? Buffer.from(payload, 'base64').toString('utf8') : decodeURIComponent(payload));
  }

  /** Closes the browser; later calls fail. Safe to call twice. */
  async close(): Promise<void> {
    const b = this.browser;
    this.browser = undefined;
    if (b) await b.close();
  }
}

/**
 * plotly names an SVG's clip paths and gradients after a random id per render (`defs-3f9a1c`,
 * `clip3f9a1cxyplot`, `g3f9a1c-…`), so the same figure gave other bytes on every export. This puts
 * a digest of the figure's own content in its place (traces get fixed uids before rendering): the
 * same figure, the same file; two different figures inlined in one page still get distinct ids.
 */
export function stableSvgIds(svg: string): string {
  const uid = /<defs id="defs-([0-9a-z]+)"/.exec(svg)?.[1];
  if (!uid) return svg;
  const refs = new RegExp(`(id="|url\\(#|url\\('#|url\\("#)([a-z]*-?)${uid}`, 'g');
  const marked = svg.replace(refs, '$1$2\u0000');
  const stable = createHash('sha256').update(marked).digest('hex').slice(0, 6);
  return marked.split('\u0000').join(stable);
}

/** Runs `fn` with a fresh exporter and always closes it. */
export async function withFigureExporter<T>(fn: (exporter: FigureExporter) => Promise<T>): Promise<T> {
  const exporter = await FigureExporter.launch();
  try {
    return await fn(exporter);
  } finally {
    await exporter.close();
  }
}

/**
 * Writes `basePath.<format>` for each format (default svg, png, html, csv) and returns the
 * paths written. `basePath` has no extension, e.g. `figures/ratio-sweep`. Chromium is started
 * only when SVG or PNG is asked for.
 */
export async function exportFigure(fig: PlotlyFigure, basePath: string, opts: ExportOptions = {}): Promise<string[]> {
  checkFigure(fig, 'exportFigure');
  const formats = opts.formats ?? ['svg', 'png', 'html', 'csv'];
  if (formats.length === 0) throw new ConfigError('exportFigure: formats must name at least one format');
  for (const f of formats) {
    if (!FIGURE_FORMATS.includes(f)) throw new ConfigError(`exportFigure: unknown format ${JSON.stringify(f)} (known: ${FIGURE_FORMATS.join(', ')})`);
  }
  if (path.extname(basePath) !== '' && FIGURE_FORMATS.includes(path.extname(basePath).slice(1) as FigureFormat)) {
    throw new ConfigError(`exportFigure: basePath ${JSON.stringify(basePath)} should not carry an extension; formats add it`);
  }
  const size = resolveImageOptions(opts, fig);
  const placement = opts.plotlyJs ?? 'inline';
  if (placement !== 'inline' && (typeof placement !== 'object' || typeof placement.file !== 'string' || placement.file === '')) {
    throw new ConfigError(`exportFigure: plotlyJs must be 'inline' or { file: 'path/to/plotly.min.js' }, got ${JSON.stringify(placement)}`);
  }
  const bundle = placement === 'inline' ? 'full' : checkBundle(placement.bundle ?? 'full');
  if (formats.includes('html')) {
    const outside = tracesOutside(fig, bundle);
    if (outside.length) {
      throw new ConfigError(`exportFigure: plotly.js's ${bundle} bundle cannot draw trace type${outside.length > 1 ? 's' : ''} ${outside.map((t) => JSON.stringify(t)).join(', ')} (it draws ${[...CARTESIAN_TRACE_TYPES].join(', ')}); share the full bundle ({ file, bundle: 'full' }) or inline it`);
    }
  }
  fs.mkdirSync(path.dirname(path.resolve(basePath)), { recursive: true });

  const needsBrowser = formats.includes('svg') || formats.includes('png');
  const exporter = needsBrowser ? opts.exporter ?? (await FigureExporter.launch()) : undefined;
  const written: string[] = [];
  try {
    for (const format of formats) {
      const file = `${basePath}.${format}`;
      switch (format) {
        case 'svg':
          // Vector output: scale would only inflate the width/height attributes.
          fs.writeFileSync(file, await exporter!.toImage(fig, 'svg', { ...size, scale: 1 }));
          break;
        case 'png':
          fs.writeFileSync(file, await exporter!.toImage(fig, 'png', size));
          break;
        case 'html': {
          if (placement === 'inline') {
            fs.writeFileSync(file, figureHtml(fig));
            break;
          }
          writePlotlyJs(placement.file, bundle);
          const fallbackImage = formats.includes('png') ? relativeUrl(path.dirname(file), `${basePath}.png`) : undefined;
          fs.writeFileSync(file, figureHtml(fig, { plotlyJsSrc: relativeUrl(path.dirname(file), placement.file), fallbackImage }));
          break;
        }
        case 'json':
          fs.writeFileSync(file, `${JSON.stringify(fig, null, 1)}\n`);
          break;
        case 'csv':
          writeFigureCsv(fig, file);
          break;
      }
      written.push(file);
    }
  } finally {
    if (exporter && exporter !== opts.exporter) await exporter.close();
  }
  return written;
}

/** A figure with the file name (no extension) it is saved under and its size. */
export interface NamedFigure {
  name: string;
  fig: PlotlyFigure;
  width?: number;
  height?: number;
}

/**
 * Saves each figure as `dir/<name>.{svg,png,html,csv}` (or `formats`) with one Chromium for the
 * whole batch. Returns the paths written. `plotlyJs` as in {@link exportFigure} (default inline).
 */
export async function exportFigures(figures: readonly NamedFigure[], dir: string, opts: { formats?: readonly FigureFormat[]; exporter?: FigureExporter; plotlyJs?: PlotlyJsPlacement } = {}): Promise<string[]> {
  for (const f of figures) {
    if (!/^[A-Za-z0-9._-]+$/.test(f.name)) throw new ConfigError(`exportFigures: figure name ${JSON.stringify(f.name)} must be letters, digits, ".", "_" or "-"`);
  }
  const formats = opts.formats ?? ['svg', 'png', 'html', 'csv'];
  const needsBrowser = formats.includes('svg') || formats.includes('png');
  const exporter = needsBrowser ? opts.exporter ?? (await FigureExporter.launch()) : undefined;
  const written: string[] = [];
  try {
    for (const f of figures) {
      written.push(...(await exportFigure(f.fig, path.join(dir, f.name), { formats, exporter, width: f.width, height: f.height, plotlyJs: opts.plotlyJs })));
    }
  } finally {
    if (exporter && exporter !== opts.exporter) await exporter.close();
  }
  return written;
}
