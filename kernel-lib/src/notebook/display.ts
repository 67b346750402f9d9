/**
 * Figures, tables and progress in tslab notebooks (taught in notebooks/00_environment).
 * See `channel.ts` for how output reaches the notebook and what tslab supports.
 */
import { ConfigError, checkNumber } from '../util/config';
import { PlotlyFigure } from '../plots/theme';
import { FigureExporter, plotlyJsSource, plotlyJsVersion, scriptSafe } from '../plots/export';
import { DisplayContent, MimeBundle, figureBundle } from '../plots/bundle';
import { displayBundle, inNotebook, newDisplayId } from './channel';
import { formatCell, tableColumns, tableRows, type TableLike } from '../plots/tables';

export type { TableLike } from '../plots/tables';

/** When to inline plotly.js (≈4.8 MB) into a figure's HTML output. */
export type PlotlyJsMode = 'once' | 'always' | 'never';

/** Options of {@link showFigure}. */
export interface ShowFigureOptions {
  width?: number;
  height?: number;
  /**
   * `once` (default; `GMT_PLOTLYJS` overrides): before the first figure of each kernel session,
   * one extra invisible output loads plotly.js (≈4.8 MB, guarded on `window.Plotly`); later
   * figures reuse it. `always`: that loader before every figure. `never`: interactive only
   * where the frontend has a plotly renderer, the PNG (at scale 1, with no HTML copy of it, to
   * keep files small) elsewhere — for notebooks committed with their outputs.
   */
  plotlyJs?: PlotlyJsMode;
  /** Include the PNG fallback (needs Chromium); default true. */
  png?: boolean;
}

let plotlyJsSent = false;
let sharedExporter: Promise<FigureExporter> | undefined;
let pngWarned = false;

function plotlyJsMode(opt: PlotlyJsMode | undefined): PlotlyJsMode {
  const raw = opt ?? process.env.GMT_PLOTLYJS ?? 'once';
  if (raw === 'once' || raw === 'always' || raw === 'never') return raw;
  throw new ConfigError(`plotlyJs (or GMT_PLOTLYJS) must be once, always or never; got ${JSON.stringify(raw)}`);
}

/**
 * Sends plotly.js as its own output (HTML holding only a guarded script: invisible, and
 * stripped to nothing where scripts are not run). A separate output rather than part of the
 * figure's, so that figures updated in place (`liveFigure`) never resend or lose it.
 */
function ensurePlotlyJs(mode: PlotlyJsMode): void {
  if (mode === 'never' || (mode === 'once' && plotlyJsSent)) return;
  const html = `<script type="text/javascript">/* plotly.js ${plotlyJsVersion()} (MIT), loaded once for the figures below */\nif (!window.Plotly) {\n${scriptSafe(plotlyJsSource())}\n}</script>`;
  if (displayBundle({ 'text/html': html }) === 'bundle') plotlyJsSent = true;
}

/** The kernel's one Chromium for PNG fallbacks, started on first use. */
function notebookExporter(): Promise<FigureExporter> {
  if (!sharedExporter) {
    sharedExporter = FigureExporter.launch();
    // A failed launch is not cached, so installing Chromium mid-session works.
    sharedExporter.catch(() => {
      sharedExporter = undefined;
    });
  }
  return sharedExporter;
}

/** Closes the Chromium that {@link showFigure} keeps for PNG fallbacks (it restarts on demand). */
export async function closeNotebookExporter(): Promise<void> {
  const pending = sharedExporter;
  sharedExporter = undefined;
  if (pending) await (await pending.catch(() => undefined))?.close();
}

async function buildFigureContent(fig: PlotlyFigure, opts: ShowFigureOptions, mode: PlotlyJsMode): Promise<DisplayContent> {
  let exporter: FigureExporter | undefined;
  if (opts.png !== false) {
    try {
      exporter = await notebookExporter();
    } catch (e) {
      if (!pngWarned) {
        pngWarned = true;
        process.stderr.write(`showFigure: no PNG fallback (${e instanceof Error ? e.message : String(e)})\n`);
      }
    }
  }
  // Committed notebooks (`never`): no page ever gets plotly.js from them, so their HTML would only
  // repeat the PNG; image/png alone shows it everywhere (frontends fall back to it). Kept where
  // there is no PNG. Scale 1 instead of 1.5 halves the bytes again.
  const committed = mode === 'never' ? { pngScale: 1, html: exporter === undefined } : {};
  return figureBundle(fig, { width: opts.width, height: opts.height, exporter, ...committed });
}

/**
 * Shows a figure in the notebook as one output with plotly JSON, HTML (PNG placeholder that
 * turns interactive when plotly.js is present) and PNG, so it renders live in trusted
 * notebooks, as an image when untrusted, offline, and on code hosts. Outside a notebook it
 * prints a one-line description. (Resolves to nothing, so a cell ending in it prints nothing.)
 */
export async function showFigure(fig: PlotlyFigure, opts: ShowFigureOptions = {}): Promise<void> {
  const mode = plotlyJsMode(opts.plotlyJs);
  if (!inNotebook()) {
    displayBundle((await figureBundle(fig, { width: opts.width, height: opts.height })).data);
    return;
  }
  const content = await buildFigureContent(fig, opts, mode);
  ensurePlotlyJs(mode);
  displayBundle(content.data, { metadata: content.metadata });
}

/** A figure redrawn in place (live training curves); `close()` adds the PNG fallback. */
export interface LiveFigure {
  /** Replaces the figure shown (throttled to `minIntervalMs`; `close` shows the last one). */
  update(fig: PlotlyFigure): void;
  /** Sends the final figure (default: the last one passed to `update`) with its PNG fallback. */
  close(fig?: PlotlyFigure): Promise<void>;
}

/**
 * Starts a figure that later calls redraw in the same output (Jupyter display ids). Outside
 * a notebook, `update` does nothing and `close` prints the final figure's description.
 */
export function liveFigure(opts: ShowFigureOptions & { minIntervalMs?: number } = {}): LiveFigure {
  const displayId = newDisplayId();
  const minInterval = checkNumber('minIntervalMs', opts.minIntervalMs ?? 500, { min: 0 });
  const mode = plotlyJsMode(opts.plotlyJs);
  let sent = false;
  let lastSent = -Infinity;
  let latest: PlotlyFigure | undefined;
  const send = (content: DisplayContent) => {
    if (!sent) ensurePlotlyJs(mode);
    displayBundle(content.data, { metadata: content.metadata, displayId, update: sent });
    sent = true;
  };
  return {
    update(fig) {
      latest = fig;
      if (!inNotebook()) return;
      const now = performance.now();
      if (now - lastSent < minInterval) return;
      lastSent = now;
      // No PNG while live: rendering one per update would cost ~100 ms each. Without an
      // exporter figureBundle does no asynchronous work, so updates cannot reorder.
      void figureBundle(fig, { width: opts.width, height: opts.height }).then(send);
    },
    async close(fig) {
      const final = fig ?? latest;
      if (!final) return;
      if (!inNotebook()) {
        displayBundle((await figureBundle(final)).data);
        return;
      }
      send(await buildFigureContent(final, opts, mode));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Tables

/** Options of {@link showTable} / {@link tableBundle}. */
export interface ShowTableOptions {
  /** Rows shown (the rest are counted in a footer); default 50. */
  maxRows?: number;
  /** Significant digits for non-integer numbers; default 4. */
  digits?: number;
  caption?: string;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** The HTML and plain-text renderings {@link showTable} sends. */
export function tableBundle(table: TableLike, opts: ShowTableOptions = {}): MimeBundle {
  const maxRows = checkNumber('maxRows', opts.maxRows ?? 50, { min: 1, integer: true });
  const digits = checkNumber('digits', opts.digits ?? 4, { min: 1, max: 17, integer: true });
  const { rows, total } = tableRows(table, maxRows);
  const cols = tableColumns(rows);
  const numeric = cols.map((c) => rows.every((r) => r[c] === undefined || r[c] === null || typeof r[c] === 'number'));
  const cells = rows.map((r) => cols.map((c) => formatCell(r[c], digits)));
  const footer = total > rows.length ? `${rows.length} of ${total} rows shown` : '';

  const th = cols.map((c, i) => `<th style="text-align:${numeric[i] ? 'right' : 'left'};padding:4px 10px;border-bottom:1px solid #444">${escapeHtml(c)}</th>`).join('');
  const body = cells
    .map((r) => `<tr>${r.map((v, i) => `<td style="text-align:${numeric[i] ? 'right' : 'left'};padding:3px 10px;font-variant-numeric:tabular-nums">${escapeHtml(v)}</td>`).join('')}</tr>`)
    .join('\n');
  const caption = opts.caption ? `<caption style="caption-side:top;text-align:left;font-weight:600;padding-bottom:4px">${escapeHtml(opts.caption)}</caption>` : '';
  const html = [
    `<table class="gmt-table" style="border-collapse:collapse;font-size:13px">${caption}`,
    `<thead><tr>${th}</tr></thead>`,
    `<tbody>\n${body}\n</tbody></table>`,
    footer ? `<div style="font-size:12px;color:#666">${footer}</div>` : '',
  ].join('\n');

  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  const line = (vals: string[]) => vals.map((v, i) => (numeric[i] ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join('  ').trimEnd();
  const text = [
    ...(opts.caption ? [opts.caption] : []),
    line(cols),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...cells.map(line),
    ...(footer ? [footer] : []),
  ].join('\n');
  return { 'text/html': html, 'text/plain': text };
}

/** Shows rows (or an arquero table) as an HTML table; plain text outside a notebook. */
export function showTable(table: TableLike, opts: ShowTableOptions = {}): void {
  displayBundle(tableBundle(table, opts));
}

// ---------------------------------------------------------------------------------------------
// Progress

/**
 * Whether outputs should leave out what changes from one run to the next (`GMT_STABLE_OUTPUT=1`,
 * which `npm run reproduce` sets for the committed notebooks): a progress bar then shows no elapsed
 * time or ETA, so re-executing a notebook on an unchanged store saves the same bytes.
 */
export function stableOutput(env: NodeJS.ProcessEnv = process.env): boolean {
  const raw = env.GMT_STABLE_OUTPUT;
  if (raw === undefined || raw === '' || raw === '0') return false;
  if (raw === '1') return true;
  throw new ConfigError(`GMT_STABLE_OUTPUT must be 0 or 1; got ${JSON.stringify(raw)}`);
}

/** Options of {@link progress}. */
export interface ProgressOptions {
  /** Shown before the bar, e.g. `"train gmt"`. */
  label?: string;
  /**
   * Minimum time between redraws: default 250 ms in a notebook (updated in place), 2000 ms on
   * stdout (one line per redraw). The first and last steps are always shown.
   */
  minIntervalMs?: number;
  /** Show elapsed time and ETA; default true unless `GMT_STABLE_OUTPUT=1` ({@link stableOutput}). */
  showTime?: boolean;
}

/** A progress bar handle. */
export interface Progress {
  /** Reports `done` of `total` steps, with optional metrics (`{loss: 1.23}`). */
  update(done: number, metrics?: Record<string, number | string>): void;
  /** Marks the end (also when stopped early); shows the final line. */
  finish(metrics?: Record<string, number | string>): void;
  /**
   * Marks the work as not needed (read from a cache, say): the bar gives way to `label: reason`
   * instead of standing at 0/total. Later calls do nothing.
   */
  skip(reason: string): void;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function formatMetrics(metrics: Record<string, number | string> | undefined): string {
  if (!metrics) return '';
  return Object.entries(metrics)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? formatCell(v, 4) : v}`)
    .join(' ');
}

/**
 * A progress bar for `total` steps. In a notebook it is one output updated in place
 * (`update_display_data`); elsewhere it prints a throttled line per redraw to stdout.
 */
export function progress(total: number, opts: ProgressOptions = {}): Progress {
  checkNumber('progress total', total, { min: 1, integer: true });
  const rich = inNotebook();
  const minInterval = checkNumber('minIntervalMs', opts.minIntervalMs ?? (rich ? 250 : 2000), { min: 0 });
  const label = opts.label ? `${opts.label} ` : '';
  const showTime = opts.showTime ?? !stableOutput();
  const displayId = newDisplayId();
  const start = performance.now();
  let lastDraw = -Infinity;
  let drawn = false;
  let finished = false;
  let lastDone = 0;
  let renderedDone = -1;
  let lastMetrics: Record<string, number | string> | undefined;

  const render = (done: number, metrics: Record<string, number | string> | undefined, final: boolean) => {
    const elapsed = (performance.now() - start) / 1000;
    const frac = Math.min(1, done / total);
    const eta = done > 0 ? (elapsed / done) * (total - done) : Infinity;
    const width = 24;
    const filled = Math.round(frac * width);
    const timing = !showTime ? '' : final ? `${formatSeconds(elapsed)}` : `${formatSeconds(elapsed)} < ${formatSeconds(eta)}`;
    const metricText = formatMetrics(metrics);
    const text = `${label}[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total} ${(frac * 100).toFixed(0)}%${timing ? ` ${timing}` : ''}${metricText ? ` ${metricText}` : ''}`;
    if (rich) {
      const html =
        `<div class="gmt-progress" style="font-family:monospace;font-size:13px">${escapeHtml(label)}` +
        `<progress value="${done}" max="${total}" style="width:220px;vertical-align:middle"></progress> ` +
        `${[`${done}/${total}`, timing, metricText].filter((t) => t !== '').map(escapeHtml).join(' ')}</div>`;
      displayBundle({ 'text/html': html, 'text/plain': text }, { displayId, update: drawn });
    } else {
      process.stdout.write(`${text}\n`);
    }
    drawn = true;
    renderedDone = done;
  };

  return {
    update(done, metrics) {
      if (finished) return;
      checkNumber('progress done', done, { min: 0, integer: true });
      lastDone = done;
      lastMetrics = metrics;
      const now = performance.now();
      if (drawn && now - lastDraw < minInterval && done < total) return;
      lastDraw = now;
      render(done, metrics, false);
    },
    finish(metrics) {
      if (finished) return;
      finished = true;
      // On stdout a line already showing the last step is not repeated.
      if (rich || renderedDone !== lastDone || metrics !== undefined) render(lastDone, metrics ?? lastMetrics, true);
    },
    skip(reason) {
      if (finished) return;
      finished = true;
      const text = `${opts.label ? `${opts.label}: ` : ''}${reason}`;
      if (rich) {
        const html = `<div class="gmt-progress" style="font-family:monospace;font-size:13px">${escapeHtml(text)}</div>`;
        displayBundle({ 'text/html': html, 'text/plain': text }, { displayId, update: drawn });
      } else {
        process.stdout.write(`${text}\n`);
      }
    },
  };
}
