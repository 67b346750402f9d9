/**
 * The findings notebooks' evidence on disk, and the pages that show it:
 *
 * - {@link exportFindings}: a notebook saves its figures (SVG, PNG, HTML, CSV) and tables
 *   (Markdown, CSV) into `figures/<notebook>/`. The HTML figures share one
 *   `figures/plotly.min.js`, plotly's cartesian bundle (a page is a few KB; the bundle 1.5 MB
 *   against the full one's 4.8), and still open offline by
 *   double-click; every name must have a caption in `catalog.ts`.
 * - {@link writeGallery}: `figures/index.html` and `figures/README.md` (the same content in
 *   Markdown, for code hosts) show every figure and table with its caption, notebook, paper
 *   section and the claim it supports. Written by `npm run reproduce` and `gmt-lab claims`.
 * - {@link claimFigures}: the figures CLAIMS.md embeds under each claim.
 * - {@link verifyGallery}: opens the gallery offline in Chromium and checks that every image
 *   loads and every HTML figure draws.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { exportFigures, launchChromium, relativeUrl, type NamedFigure, type PlotlyBundle } from '../plots/export';
import { exportTable, type TableLike } from '../plots/tables';
import { ConfigError, runMode, type RunMode } from '../util/config';
import { writeFileAtomic } from '../util/fsx';
import type { ClaimFigure } from '../analysis/claims';
import { FINDINGS_CATALOG, FINDINGS_NOTEBOOKS, catalogEntry, claimHeading, markdownAnchor, notebookInfo, type CatalogEntry, type ClaimId } from './catalog';
import { findingsPaths } from './paths';

/** The shared plotly.js of a figures folder. */
export const SHARED_PLOTLY_JS = 'plotly.min.js';

/**
 * The plotly.js build `figures/` shares: the cartesian bundle (1.5 MB against the full 4.8 MB)
 * draws every trace type the findings figures use, and keeps the committed folder small.
 */
export const FINDINGS_PLOTLY_BUNDLE: PlotlyBundle = 'cartesian';

const CATALOG_FILE = 'kernel-lib/src/findings/catalog.ts';

/** A table saved by {@link exportFindings}: `<name>.md` and `<name>.csv`. */
export interface FindingsTable {
  name: string;
  table: TableLike;
  /** Significant digits in the Markdown; default 4. */
  digits?: number;
}

/** What {@link exportFindings} wrote. */
export interface SavedFindings {
  /** The notebook's folder, `figures/<notebook>`. */
  dir: string;
  /** Every file written, in order. */
  files: string[];
}

function checkName(name: string, where: string): void {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new ConfigError(`${where}: name ${JSON.stringify(name)} must be letters, digits, ".", "_" or "-"`);
}

/**
 * Saves a findings notebook's figures and tables into `<figuresDir>/<notebook>/` (default: the
 * mode's figures folder, `figures/` in full mode): figures as SVG, PNG, CSV and an HTML page that
 * loads `<figuresDir>/plotly.min.js` (the cartesian bundle, written once), tables as Markdown and CSV. Every name needs
 * a caption in the catalog (`FINDINGS_CATALOG`); a figure and a table may not share a name (their
 * CSVs would overwrite each other).
 *
 * ```ts
 * const saved = await gmt.exportFindings('03_mask_ratio', {
 *   figures: [{ name: 'accuracy_vs_ratio', fig: accFig }],
 *   tables: [{ name: 'equivalence_checks', table: checks }],
 * });
 * console.log(`${saved.files.length} files in ${gmt.repoRelative(saved.dir)}`);
 * ```
 */
export async function exportFindings(
  notebook: string,
  items: { figures?: readonly NamedFigure[]; tables?: readonly FindingsTable[] },
  opts: { figuresDir?: string; mode?: RunMode } = {},
): Promise<SavedFindings> {
  if (!notebookInfo(notebook)) throw new ConfigError(`exportFindings: unknown notebook ${JSON.stringify(notebook)} (known: ${FINDINGS_NOTEBOOKS.map((n) => n.id).join(', ')}; add it to FINDINGS_NOTEBOOKS in ${CATALOG_FILE})`);
  const figures = items.figures ?? [];
  const tables = items.tables ?? [];
  const problems: string[] = [];
  for (const f of figures) {
    checkName(f.name, 'exportFindings');
    if (!catalogEntry(notebook, f.name, 'figure')) problems.push(`figure ${JSON.stringify(f.name)}`);
  }
  for (const t of tables) {
    checkName(t.name, 'exportFindings');
    if (!catalogEntry(notebook, t.name, 'table')) problems.push(`table ${JSON.stringify(t.name)}`);
    if (figures.some((f) => f.name === t.name)) throw new ConfigError(`exportFindings: the table ${JSON.stringify(t.name)} has a figure's name; both would write ${t.name}.csv`);
  }
  if (problems.length) {
    throw new ConfigError(`exportFindings: ${notebook}: ${problems.join(', ')} ha${problems.length > 1 ? 've' : 's'} no caption; add ${problems.length > 1 ? 'them' : 'it'} to FINDINGS_CATALOG in ${CATALOG_FILE}`);
  }
  const figuresDir = path.resolve(opts.figuresDir ?? findingsPaths(opts.mode ?? runMode()).figuresDir);
  const dir = path.join(figuresDir, notebook);
  const files = figures.length ? await exportFigures(figures, dir, { plotlyJs: { file: path.join(figuresDir, SHARED_PLOTLY_JS), bundle: FINDINGS_PLOTLY_BUNDLE } }) : [];
  for (const t of tables) files.push(...exportTable(t.table, path.join(dir, t.name), { digits: t.digits }));
  return { dir, files };
}

/** `p` relative to the repository root when it lies inside it (as notebooks print paths), else `p`. */
export function repoRelative(p: string): string {
  const rel = path.relative(findingsPaths().root, path.resolve(p));
  return rel === '' ? '.' : rel.startsWith('..') || path.isAbsolute(rel) ? p : rel.split(path.sep).join('/');
}

/** One figure or table found in a figures folder, with its catalog entry. */
export interface GalleryItem {
  entry: CatalogEntry;
  /** Extensions present (`png`, `svg`, `html`, `csv`, `md`, `json`). */
  files: string[];
  /** The figure's own title (from its HTML page), or the name. */
  title: string;
}

const FIGURE_EXTS = ['png', 'svg', 'html', 'json'];
const KNOWN_EXTS = new Set([...FIGURE_EXTS, 'csv', 'md']);
const GALLERY_FILES = new Set(['index.html', 'README.md', 'CLAIMS.md', 'PROTOCOL.md', SHARED_PLOTLY_JS]);

function unescapeHtml(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|#39);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e]!);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/**
 * The figures and tables in `figuresDir`, in catalog order. Throws one error listing every file
 * that has no catalog entry (a new figure needs a caption; a stale file should go).
 */
export function galleryItems(figuresDir: string): GalleryItem[] {
  const unknown: string[] = [];
  const found = new Map<CatalogEntry, Set<string>>();
  const entries = fs.existsSync(figuresDir) ? fs.readdirSync(figuresDir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name)) : [];
  for (const d of entries) {
    if (!d.isDirectory()) {
      if (!GALLERY_FILES.has(d.name) && !d.name.startsWith('.')) unknown.push(d.name);
      continue;
    }
    const notebook = d.name;
    const stems = new Map<string, Set<string>>();
    for (const f of fs.readdirSync(path.join(figuresDir, notebook)).sort()) {
      if (f.startsWith('.')) continue;
      const dot = f.lastIndexOf('.');
      const ext = dot > 0 ? f.slice(dot + 1) : '';
      if (!KNOWN_EXTS.has(ext)) {
        unknown.push(`${notebook}/${f}`);
        continue;
      }
      const stem = f.slice(0, dot);
      stems.set(stem, (stems.get(stem) ?? new Set()).add(ext));
    }
    for (const [stem, exts] of stems) {
      const kind = [...exts].some((e) => FIGURE_EXTS.includes(e)) ? 'figure' : exts.has('md') ? 'table' : undefined;
      const entry = kind && catalogEntry(notebook, stem, kind);
      if (!entry) unknown.push(...[...exts].map((e) => `${notebook}/${stem}.${e}`));
      else if (kind === 'figure' && exts.has('md')) unknown.push(`${notebook}/${stem}.md`);
      else found.set(entry, exts);
    }
  }
  if (unknown.length) {
    throw new ConfigError(`gallery: ${unknown.length} file(s) in ${figuresDir} have no caption: ${unknown.join(', ')}. A figure or table a notebook saves needs an entry in FINDINGS_CATALOG (${CATALOG_FILE}); a file no notebook writes any more should be deleted.`);
  }
  return FINDINGS_CATALOG.filter((e) => found.has(e)).map((entry) => {
    const files = [...found.get(entry)!].sort();
    let title = entry.name;
    if (files.includes('html')) {
      const m = /<title>([^<]*)<\/title>/.exec(fs.readFileSync(path.join(figuresDir, entry.notebook, `${entry.name}.html`), 'utf8'));
      if (m) title = unescapeHtml(m[1]!);
    }
    return { entry, files, title };
  });
}

/** CSS width of a figure: the SVG's `width` (its size in CSS pixels), else half the PNG's pixels (exports use scale 2). */
function figureWidth(figuresDir: string, item: GalleryItem): number | undefined {
  const base = path.join(figuresDir, item.entry.notebook, item.entry.name);
  if (item.files.includes('svg')) {
    const m = /<svg[^>]*\swidth="(\d+(?:\.\d+)?)"/.exec(fs.readFileSync(`${base}.svg`, 'utf8').slice(0, 2000));
    if (m) return Math.round(Number(m[1]));
  }
  if (item.files.includes('png')) {
    const head = Buffer.alloc(24);
    const fd = fs.openSync(`${base}.png`, 'r');
    try {
      fs.readSync(fd, head, 0, 24, 0);
    } finally {
      fs.closeSync(fd);
    }
    return Math.round(head.readUInt32BE(16) / 2);
  }
  return undefined;
}

/** Splits one row of a Markdown pipe table into cells (`\|` is a literal bar). */
function markdownCells(line: string): string[] {
  const inner = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  return inner.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
}

/** A Markdown pipe table (as `exportTable` writes it) as an HTML table; text before it becomes a caption. */
function markdownTableHtml(md: string): string {
  const lines = md.split('\n').filter((l) => l.trim() !== '');
  const first = lines.findIndex((l) => l.trim().startsWith('|'));
  const caption = first > 0 ? lines.slice(0, first).join(' ') : '';
  const rows = lines.slice(Math.max(first, 0)).filter((l) => l.trim().startsWith('|'));
  if (rows.length < 2) return `<pre>${escapeHtml(md)}</pre>`;
  const head = markdownCells(rows[0]!);
  const align = markdownCells(rows[1]!).map((a) => (a.endsWith(':') && !a.startsWith(':') ? 'right' : 'left'));
  const cell = (tag: string, text: string, i: number) => `<${tag} style="text-align:${align[i] ?? 'left'}">${escapeHtml(text)}</${tag}>`;
  return [
    '<div class="table-wrap"><table>',
    caption ? `<caption>${escapeHtml(caption)}</caption>` : '',
    `<thead><tr>${head.map((h, i) => cell('th', h, i)).join('')}</tr></thead>`,
    `<tbody>${rows.slice(2).map((r) => `<tr>${markdownCells(r).map((c, i) => cell('td', c, i)).join('')}</tr>`).join('\n')}</tbody>`,
    '</table></div>',
  ].join('\n');
}

function supportsText(entry: CatalogEntry): { text: string; claim?: ClaimId } {
  return entry.claim ? { text: claimHeading(entry.claim), claim: entry.claim } : { text: entry.supports ?? 'context' };
}

const FILE_LABELS: Record<string, string> = { html: 'interactive (HTML)', svg: 'SVG', png: 'PNG', csv: 'data (CSV)', md: 'Markdown', json: 'figure JSON' };
const FILE_ORDER = ['html', 'svg', 'png', 'csv', 'md', 'json'];

function fileLinks(item: GalleryItem): { label: string; href: string }[] {
  return FILE_ORDER.filter((e) => item.files.includes(e)).map((e) => ({ label: FILE_LABELS[e]!, href: `${item.entry.notebook}/${item.entry.name}.${e}` }));
}

const GALLERY_CSS = `
body { font: 16px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 900px; margin: 0 auto; padding: 24px 20px 60px; }
h1 { font-size: 28px; margin: 8px 0 4px; }
h2 { font-size: 22px; margin: 48px 0 4px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 17px; margin: 0 0 8px; }
.meta, .files { font-size: 14px; color: #555; margin: 4px 0; }
figure, .table-item { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; margin: 20px 0; padding: 16px; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto 8px; }
figcaption p, .table-item p { margin: 6px 0; }
nav ul { columns: 2; font-size: 15px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; margin: 8px 0; }
th, td { padding: 3px 9px; border-bottom: 1px solid #eee; }
th { border-bottom: 1px solid #888; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 4px; }
code { font-size: 14px; }
`;

/** The gallery page (`index.html`) for `items`. */
function galleryHtml(figuresDir: string, items: readonly GalleryItem[], notebookHref: (nb: string) => string): string {
  const byNotebook = FINDINGS_NOTEBOOKS.filter((n) => items.some((i) => i.entry.notebook === n.id));
  const out: string[] = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>gmt-lab: the figures behind the findings</title>',
    `<style>${GALLERY_CSS}</style>`,
    '</head>',
    '<body>',
    '<main>',
    '<h1>The figures behind the findings</h1>',
    '<p>Every figure and table the findings notebooks of gmt-lab save, with what it shows, where it comes from and the claim it supports. Made by <code>npm run reproduce</code> from the committed result store; not edited by hand. Click a figure for its interactive version (it works offline). The verdicts are in <a href="CLAIMS.md">CLAIMS.md</a>.</p>',
    '<nav><ul>',
    ...byNotebook.map((n) => `<li><a href="#${escapeHtml(n.id)}">${escapeHtml(notebookLabel(n.id))}</a></li>`),
    '</ul></nav>',
  ];
  for (const nb of byNotebook) {
    out.push(`<h2 id="${escapeHtml(nb.id)}">${escapeHtml(notebookLabel(nb.id))}</h2>`);
    out.push(`<p class="meta">Notebook <a href="${escapeHtml(notebookHref(nb.id))}"><code>${escapeHtml(nb.id)}.ipynb</code></a> · paper ${escapeHtml(nb.section)}</p>`);
    for (const item of items.filter((i) => i.entry.notebook === nb.id)) {
      const e = item.entry;
      const sup = supportsText(e);
      const supHtml = sup.claim ? `<a href="CLAIMS.md#${markdownAnchor(sup.text)}">${escapeHtml(sup.text)}</a>` : escapeHtml(sup.text);
      const meta = `<p class="meta">Supports: ${supHtml} · notebook <code>${escapeHtml(e.notebook)}</code> · paper ${escapeHtml(e.section ?? nb.section)}</p>`;
      const links = `<p class="files">Files: ${fileLinks(item).map((l) => `<a href="${escapeHtml(encodeURI(l.href))}"${l.href.endsWith('.html') ? ' class="interactive"' : ''}>${escapeHtml(l.label)}</a>`).join(' · ')}</p>`;
      const anchor = `${e.notebook}-${e.name}${e.kind === 'table' ? '-table' : ''}`;
      if (e.kind === 'figure') {
        const width = figureWidth(figuresDir, item);
        const img = item.files.includes('png')
          ? `<img src="${escapeHtml(encodeURI(`${e.notebook}/${e.name}.png`))}" alt="${escapeHtml(item.title)}"${width ? ` width="${width}"` : ''}>`
          : '';
        const linked = item.files.includes('html') && img ? `<a href="${escapeHtml(encodeURI(`${e.notebook}/${e.name}.html`))}">${img}</a>` : img;
        out.push(`<figure id="${escapeHtml(anchor)}">`, `<h3>${escapeHtml(item.title)}</h3>`, linked, '<figcaption>', `<p>${escapeHtml(e.caption)}</p>`, meta, links, '</figcaption>', '</figure>');
      } else {
        const md = fs.readFileSync(path.join(figuresDir, e.notebook, `${e.name}.md`), 'utf8');
        out.push(`<div class="table-item" id="${escapeHtml(anchor)}">`, `<h3>Table: ${escapeHtml(e.name)}</h3>`, `<p>${escapeHtml(e.caption)}</p>`, markdownTableHtml(md), meta, links, '</div>');
      }
    }
  }
  out.push('</main>', '</body>', '</html>', '');
  return out.join('\n');
}

function notebookLabel(id: string): string {
  const info = notebookInfo(id)!;
  return `${id.slice(0, 2)} · ${info.title}`;
}

/** The same gallery in Markdown (`README.md`), for code hosts' web views. */
function galleryMarkdown(figuresDir: string, items: readonly GalleryItem[], notebookHref: (nb: string) => string): string {
  const byNotebook = FINDINGS_NOTEBOOKS.filter((n) => items.some((i) => i.entry.notebook === n.id));
  const md = (text: string) => text.replace(/([\\`*_[\]<>|])/g, '\\$1');
  const out: string[] = [
    '# The figures behind the findings',
    '',
    'Every figure and table the findings notebooks of gmt-lab save, with what it shows, where it comes from and the claim it supports. Made by `npm run reproduce` from the committed result store; not edited by hand. [index.html](index.html) is the same page for a browser (it opens offline; each figure links to its interactive version). The verdicts are in [CLAIMS.md](CLAIMS.md).',
    '',
    ...byNotebook.map((n) => `- [${md(notebookLabel(n.id))}](#${markdownAnchor(notebookLabel(n.id))})`),
    '',
  ];
  for (const nb of byNotebook) {
    out.push(`## ${md(notebookLabel(nb.id))}`, '', `Notebook [\`${nb.id}.ipynb\`](${encodeURI(notebookHref(nb.id))}) · paper ${md(nb.section)}`, '');
    for (const item of items.filter((i) => i.entry.notebook === nb.id)) {
      const e = item.entry;
      const sup = supportsText(e);
      const supMd = sup.claim ? `[${md(sup.text)}](CLAIMS.md#${markdownAnchor(sup.text)})` : md(sup.text);
      const links = fileLinks(item).map((l) => `[${l.label}](${encodeURI(l.href)})`).join(' · ');
      if (e.kind === 'figure') {
        out.push(`### ${md(item.title)}`, '');
        if (item.files.includes('png')) out.push(`![${md(item.title)}](${encodeURI(`${e.notebook}/${e.name}.png`)})`, '');
      } else {
        out.push(`### Table: ${md(e.name)}`, '');
      }
      out.push(md(e.caption), '');
      if (e.kind === 'table') out.push(fs.readFileSync(path.join(figuresDir, e.notebook, `${e.name}.md`), 'utf8').trimEnd(), '');
      out.push(`Supports: ${supMd} · notebook \`${e.notebook}\` · paper ${md(e.section ?? nb.section)}`, '', `Files: ${links}`, '');
    }
  }
  return `${out.join('\n').trimEnd()}\n`;
}

/** What {@link writeGallery} wrote. */
export interface GalleryResult {
  index: string;
  readme: string;
  figures: number;
  tables: number;
}

/**
 * Writes `index.html` and `README.md` into the figures folder of `mode` (or `figuresDir`) from
 * the files there and their catalog entries; `outDir` writes them elsewhere (links still point
 * into `figuresDir` only when both are the same folder). Throws, naming the files, when a file
 * has no catalog entry.
 */
export function writeGallery(opts: { mode?: RunMode; figuresDir?: string; outDir?: string } = {}): GalleryResult {
  const paths = findingsPaths(opts.mode ?? runMode());
  const figuresDir = path.resolve(opts.figuresDir ?? paths.figuresDir);
  const outDir = path.resolve(opts.outDir ?? figuresDir);
  const items = galleryItems(figuresDir);
  const notebookHref = (nb: string) => relativeUrl(figuresDir, path.join(paths.root, 'notebooks', `${nb}.ipynb`));
  const index = path.join(outDir, 'index.html');
  const readme = path.join(outDir, 'README.md');
  writeFileAtomic(index, galleryHtml(figuresDir, items, notebookHref));
  writeFileAtomic(readme, galleryMarkdown(figuresDir, items, notebookHref));
  return { index, readme, figures: items.filter((i) => i.entry.kind === 'figure').length, tables: items.filter((i) => i.entry.kind === 'table').length };
}

/**
 * The figures CLAIMS.md shows under each claim (catalog entries with `behindClaim`), with paths
 * relative to `figuresDir`; one whose PNG is not there yet is marked `missing`.
 */
export function claimFigures(figuresDir: string): Partial<Record<ClaimId, ClaimFigure[]>> {
  const out: Partial<Record<ClaimId, ClaimFigure[]>> = {};
  for (const e of FINDINGS_CATALOG.filter((x) => x.behindClaim && x.claim)) {
    const base = path.join(figuresDir, e.notebook, e.name);
    const rel = `${e.notebook}/${e.name}`;
    const exists = fs.existsSync(`${base}.png`);
    let title = e.name;
    if (fs.existsSync(`${base}.html`)) title = unescapeHtml(/<title>([^<]*)<\/title>/.exec(fs.readFileSync(`${base}.html`, 'utf8'))?.[1] ?? e.name);
    const links: Record<string, string> = {};
    if (fs.existsSync(`${base}.html`)) links.interactive = encodeURI(`${rel}.html`);
    if (fs.existsSync(`${base}.csv`)) links.data = encodeURI(`${rel}.csv`);
    links.gallery = `README.md#${markdownAnchor(title)}`;
    const fig: ClaimFigure = { png: encodeURI(`${rel}.png`), title, caption: e.caption, links, ...(exists ? {} : { missing: { notebook: e.notebook } }) };
    (out[e.claim!] ??= []).push(fig);
  }
  return out;
}

/** What {@link verifyGallery} saw. */
export interface GalleryCheck {
  /** Images on the gallery page. */
  images: number;
  /** Interactive HTML figures opened. */
  figures: number;
  /** Everything that did not work, one line each; empty when all is well. */
  problems: string[];
}

interface VPage {
  route(pattern: string, handler: (route: { request(): { url(): string }; abort(): Promise<void>; continue(): Promise<void> }) => unknown): Promise<void>;
  on(event: 'pageerror', fn: (e: Error) => void): void;
  goto(url: string, opts?: object): Promise<unknown>;
  waitForFunction(fn: () => unknown, arg?: unknown, opts?: object): Promise<unknown>;
  evaluate<R>(fn: () => R): Promise<R>;
  close(): Promise<void>;
}
interface VBrowser {
  newPage(): Promise<VPage>;
  close(): Promise<void>;
}

/**
 * Opens the gallery (`index.html`) from `file://` in headless Chromium with every non-file request
 * refused, and checks that every image loads and that every interactive figure it links draws
 * plotly's SVG (`.main-svg`) within `timeoutMs` (default 20 s). Returns the problems found.
 */
export async function verifyGallery(indexFile: string, opts: { timeoutMs?: number } = {}): Promise<GalleryCheck> {
  const timeout = opts.timeoutMs ?? 20_000;
  const problems: string[] = [];
  const browser = await launchChromium<VBrowser>();
  try {
    // One tab for everything: the figure pages load the same plotly.js, which the tab's renderer
    // then compiles once.
    const page = await browser.newPage();
    let errors: string[] = [];
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file://')) return route.continue();
      errors.push(`requested ${url} (it must open offline)`);
      return route.abort();
    });
    page.on('pageerror', (e) => errors.push(`script error: ${e.message.split('\n')[0]}`));
    await page.goto(pathToFileURL(indexFile).href, { waitUntil: 'load', timeout });
    const seen = await page.evaluate(() => ({
      images: Array.from(document.images).map((i) => ({ src: i.getAttribute('src') ?? '', ok: i.complete && i.naturalWidth > 0 })),
      figures: Array.from(document.querySelectorAll('a.interactive')).map((a) => a.getAttribute('href') ?? ''),
    }));
    for (const img of seen.images) if (!img.ok) problems.push(`image ${decodeURI(img.src)} did not load`);
    problems.push(...errors.map((e) => `index.html: ${e}`));
    for (const href of seen.figures) {
      const name = decodeURI(href);
      const file = path.join(path.dirname(indexFile), ...name.split('/'));
      if (!fs.existsSync(file)) {
        problems.push(`${name}: no such file`);
        continue;
      }
      errors = [];
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load', timeout });
      // Drawn, or plotly.js absent after the page loaded (then it never will be).
      const drawn = await page
        .waitForFunction(() => document.querySelector('.main-svg') !== null || !(window as unknown as { Plotly?: unknown }).Plotly, undefined, { timeout })
        .then(() => page.evaluate(() => document.querySelector('.main-svg') !== null))
        .catch(() => false);
      if (!drawn) {
        const text = await page.evaluate(() => document.body.innerText.slice(0, 200)).catch(() => '');
        problems.push(`${name} drew no figure${text ? `: "${text.replace(/\s+/g, ' ').trim()}"` : ''}`);
      }
      problems.push(...errors.map((e) => `${name}: ${e}`));
    }
    return { images: seen.images.length, figures: seen.figures.length, problems };
  } finally {
    await browser.close();
  }
}
