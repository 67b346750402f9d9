/**
 * The evidence pages: exportFindings (shared plotly.js, captions required), the gallery
 * (figures/index.html, figures/README.md), the figures CLAIMS.md embeds, and the committed
 * figures/ folder itself — opened offline from file:// in real Chromium.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { barFigure, chromiumPath, lineFigure, plotlyJsSource, plotlyJsVersion } from '../src/plots';
import {
  FINDINGS_CATALOG,
  FINDINGS_NOTEBOOKS,
  FINDINGS_PLOTLY_BUNDLE,
  claimFigures,
  exportFindings,
  galleryItems,
  markdownAnchor,
  repoRelative,
  verifyGallery,
  writeGallery,
} from '../src/findings';
import { CLAIM_TITLES, claimsMarkdown } from '../src/analysis/claims';

const skipNoChromium = fs.existsSync(chromiumPath()) ? false : `no Chromium at ${chromiumPath()} (apt-get install chromium)`;
const repo = path.resolve(__dirname, '..', '..');
const committed = path.join(repo, 'figures');

const line = (title: string) => lineFigure({ title, series: [{ name: 'gmt tensor', x: [0.1, 0.3, 0.5], y: [60, 61, 59], band: [2, 2, 3] }] });

test('the catalog: one or two sentences per entry, known notebooks, no duplicates, one figure behind each claim', () => {
  const ids = new Set(FINDINGS_NOTEBOOKS.map((n) => n.id));
  const seen = new Set<string>();
  for (const e of FINDINGS_CATALOG) {
    const key = `${e.notebook}/${e.name}/${e.kind}`;
    assert.ok(ids.has(e.notebook), `${key}: unknown notebook`);
    assert.ok(!seen.has(key), `${key} twice`);
    seen.add(key);
    const sentences = e.caption.split(/(?<=[.!?])\s+(?=[A-Z])/).filter((x) => x.trim() !== '');
    assert.ok(sentences.length >= 1 && sentences.length <= 2 && /[.!?]$/.test(e.caption), `${key}: ${sentences.length} sentences: ${e.caption}`);
    assert.ok(e.claim !== undefined || (e.supports ?? '') !== '', `${key}: says which claim or what it supports`);
    assert.ok(!(e.claim !== undefined && e.supports !== undefined), `${key}: claim or supports, not both`);
    if (e.kind === 'figure') assert.ok(!FINDINGS_CATALOG.some((t) => t.kind === 'table' && t.notebook === e.notebook && t.name === e.name), `${key}: a table with a figure's name would overwrite its CSV`);
  }
  for (const claim of [1, 2, 3] as const) {
    assert.equal(FINDINGS_CATALOG.filter((e) => e.behindClaim && e.claim === claim && e.kind === 'figure').length, 1, `claim ${claim}`);
  }
  assert.equal(markdownAnchor(`Claim 1: ${CLAIM_TITLES[1]}`), 'claim-1-gmt-beats-vanilla-fine-tuning');
  assert.equal(markdownAnchor("Accuracy minus SFT's on the same seeds (95% CI)"), 'accuracy-minus-sfts-on-the-same-seeds-95-ci');
});

test('exportFindings refuses a figure or table without a caption, and a table named like a figure, before writing anything', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-gallery-'));
  try {
    await assert.rejects(exportFindings('03_mask_ratio', { figures: [{ name: 'new_plot', fig: line('x') }] }, { figuresDir: dir }), /03_mask_ratio: figure "new_plot" has no caption; add it to FINDINGS_CATALOG in kernel-lib\/src\/findings\/catalog\.ts/);
    await assert.rejects(exportFindings('03_mask_ratio', { tables: [{ name: 'accuracy_vs_ratio', table: [{ a: 1 }] }] }, { figuresDir: dir }), /table "accuracy_vs_ratio" has no caption/);
    await assert.rejects(exportFindings('02_gmt_vs_sft', { figures: [{ name: 'accuracy', fig: line('x') }], tables: [{ name: 'accuracy', table: [{ a: 1 }] }] }, { figuresDir: dir }), /the table "accuracy" has a figure's name/);
    await assert.rejects(exportFindings('99_other', {}, { figuresDir: dir }), /unknown notebook "99_other"/);
    assert.deepEqual(fs.readdirSync(dir), [], 'nothing written');
    assert.equal(repoRelative(path.join(repo, 'figures', '02_gmt_vs_sft')), 'figures/02_gmt_vs_sft');
    assert.equal(repoRelative('/elsewhere/x'), '/elsewhere/x');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the gallery shows every saved figure and table with caption, notebook, section and claim; it opens offline and fails when it should', { skip: skipNoChromium, timeout: 300_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-gallery-'));
  try {
    await exportFindings('03_mask_ratio', {
      figures: [{ name: 'accuracy_vs_ratio', fig: line('Test accuracy against the mask ratio') }, { name: 'val_loss_vs_ratio', fig: line('Validation loss <and> ratio') }],
      tables: [{ name: 'equivalence_checks', table: [{ scope: 'tensor', k: 0.1, TOST: 'inconclusive' }, { scope: 'a|b', k: 0.2, TOST: 'reproduced' }] }],
    }, { figuresDir: dir });
    await exportFindings('04_efficiency', { figures: [{ name: 'overhead_vs_sft', fig: barFigure({ title: 'Cost over SFT', categories: ['gmt'], series: [{ name: 'end to end', values: [3] }] }) }] }, { figuresDir: dir });
    const html = fs.readFileSync(path.join(dir, '03_mask_ratio', 'accuracy_vs_ratio.html'), 'utf8');
    assert.ok(html.length < 30_000, `a figure page is small (${html.length} bytes)`);
    assert.match(html, /<script src="\.\.\/plotly\.min\.js"><\/script>/);
    assert.equal(fs.readFileSync(path.join(dir, 'plotly.min.js'), 'utf8'), plotlyJsSource(FINDINGS_PLOTLY_BUNDLE), 'one shared plotly.js, the cartesian bundle');
    assert.equal(FINDINGS_PLOTLY_BUNDLE, 'cartesian');

    const g = writeGallery({ figuresDir: dir });
    assert.deepEqual([g.figures, g.tables], [3, 1]);
    const index = fs.readFileSync(g.index, 'utf8');
    const readme = fs.readFileSync(g.readme, 'utf8');
    const entry = FINDINGS_CATALOG.find((e) => e.name === 'accuracy_vs_ratio')!;
    const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/'/g, '&#39;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    assert.ok(index.includes(esc(entry.caption)), 'caption in index.html');
    assert.ok(readme.includes(entry.caption.replace(/([\\`*_[\]<>|])/g, '\\$1')), 'caption in README.md');
    assert.match(index, /<img src="03_mask_ratio\/accuracy_vs_ratio\.png" alt="Test accuracy against the mask ratio" width="720">/);
    assert.match(index, /href="CLAIMS\.md#claim-2-insensitive-to-the-mask-ratio">Claim 2: insensitive to the mask ratio<\/a>/);
    assert.match(index, /paper §4, the mask-ratio analysis/);
    assert.match(index, /<td style="text-align:left">a\|b<\/td>/, 'the Markdown table as HTML, escaped bars kept');
    assert.match(index, /Validation loss &lt;and&gt; ratio/, 'titles are escaped');
    assert.match(readme, /!\[Test accuracy against the mask ratio\]\(03_mask_ratio\/accuracy_vs_ratio\.png\)/);
    assert.match(readme, /Supports: \[Claim 3: compute cost comparable to SFT\]\(CLAIMS\.md#claim-3-compute-cost-comparable-to-sft\)/);
    assert.match(readme, /\| tensor \| 0\.1 \| inconclusive \|/, 'tables inline in README.md');
    assert.ok(index.indexOf('accuracy_vs_ratio.png') < index.indexOf('val_loss_vs_ratio.png') && index.indexOf('val_loss_vs_ratio.png') < index.indexOf('overhead_vs_sft.png'), 'catalog order');
    const again = writeGallery({ figuresDir: dir, outDir: fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-gallery-again-')) });
    assert.equal(fs.readFileSync(again.index, 'utf8'), index, 'the same files, the same page');
    assert.equal(fs.readFileSync(again.readme, 'utf8'), readme);
    fs.rmSync(path.dirname(again.index), { recursive: true, force: true });

    const ok = await verifyGallery(g.index);
    assert.deepEqual(ok, { images: 3, figures: 3, problems: [] });

    // Without the shared plotly.js no interactive figure draws.
    fs.renameSync(path.join(dir, 'plotly.min.js'), path.join(dir, 'aside.js'));
    const noPlotly = await verifyGallery(g.index);
    assert.equal(noPlotly.problems.length, 3, noPlotly.problems.join('\n'));
    assert.match(noPlotly.problems[0]!, /03_mask_ratio\/accuracy_vs_ratio\.html drew no figure: "This interactive figure needs plotly\.js at \.\.\/plotly\.min\.js/);
    fs.renameSync(path.join(dir, 'aside.js'), path.join(dir, 'plotly.min.js'));

    // A wrong image path is a broken image.
    fs.writeFileSync(g.index, index.replace('src="04_efficiency/overhead_vs_sft.png"', 'src="04_efficiency/overhead.png"'));
    const badImage = await verifyGallery(g.index);
    assert.deepEqual(badImage.problems, ['image 04_efficiency/overhead.png did not load']);

    // A file without a caption stops the gallery, naming it.
    fs.writeFileSync(path.join(dir, '03_mask_ratio', 'stray.png'), 'x');
    assert.throws(() => writeGallery({ figuresDir: dir }), /03_mask_ratio\/stray\.png.*FINDINGS_CATALOG \(kernel-lib\/src\/findings\/catalog\.ts\)/);

    // CLAIMS.md embeds the PNG behind each claim, or says which notebook will make it.
    const figs = claimFigures(dir);
    assert.equal(figs[1]![0]!.missing?.notebook, '02_gmt_vs_sft');
    assert.equal(figs[2]![0]!.png, '03_mask_ratio/accuracy_vs_ratio.png');
    assert.deepEqual(Object.keys(figs[3]![0]!.links), ['interactive', 'data', 'gallery']);
    const md = claimsMarkdown({ protocols: [{ title: 'Protocol 1', prefix: '', claim1: [], claim2: [], claim3: [], provenance: { claim1: null, claim2: null, claim3: null }, figures: figs }] });
    assert.match(md, /## Claim 2: insensitive to the mask ratio\n[\s\S]*!\[Test accuracy against the mask ratio\]\(03_mask_ratio\/accuracy_vs_ratio\.png\)[\s\S]*## Claim 3/);
    assert.match(md, /\[interactive\]\(03_mask_ratio\/accuracy_vs_ratio\.html\)/);
    assert.match(md, /_The figure behind this claim, `02_gmt_vs_sft\/paired_vs_sft\.png`, has not been made yet: run notebook `02_gmt_vs_sft`\._/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Bytes on disk as `du` counts them (4 KiB blocks). */
function diskBytes(dir: string): number {
  let total = 0;
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, d.name);
    total += d.isDirectory() ? 4096 + diskBytes(p) : Math.ceil(fs.statSync(p).size / 4096) * 4096;
  }
  return total;
}

test('the committed figures/: under 10 MB, one plotly.js, every file captioned, the gallery and CLAIMS.md as the code makes them', () => {
  assert.ok(diskBytes(committed) <= 10 * 2 ** 20, `figures/ holds ${(diskBytes(committed) / 2 ** 20).toFixed(1)} MiB`);
  assert.ok(fs.readFileSync(path.join(committed, 'plotly.min.js'), 'utf8') === plotlyJsSource(FINDINGS_PLOTLY_BUNDLE), `figures/plotly.min.js is plotly.js ${plotlyJsVersion(FINDINGS_PLOTLY_BUNDLE)}'s ${FINDINGS_PLOTLY_BUNDLE} bundle (npm run reproduce -- --store-only writes it)`);
  const items = galleryItems(committed);
  assert.ok(items.filter((i) => i.entry.kind === 'figure').length >= 19, `${items.length} items`);
  for (const i of items.filter((x) => x.files.includes('html'))) {
    const html = fs.readFileSync(path.join(committed, i.entry.notebook, `${i.entry.name}.html`), 'utf8');
    assert.ok(html.length < 100_000 && html.includes('<script src="../plotly.min.js">'), `${i.entry.notebook}/${i.entry.name}.html shares plotly.js`);
  }
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-gallery-'));
  try {
    writeGallery({ figuresDir: committed, outDir: out, mode: 'full' });
    for (const f of ['index.html', 'README.md']) assert.equal(fs.readFileSync(path.join(committed, f), 'utf8'), fs.readFileSync(path.join(out, f), 'utf8'), `figures/${f} is what writeGallery makes (run npm run reproduce or gmt-lab claims)`);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  const claims = fs.readFileSync(path.join(committed, 'CLAIMS.md'), 'utf8');
  for (const [claim, figs] of Object.entries(claimFigures(committed))) {
    for (const f of figs) assert.ok(!f.missing && claims.includes(`![${f.title}](${f.png})`), `CLAIMS.md shows ${f.png} under claim ${claim}`);
  }
});

test('the committed gallery opens offline from file://: every image loads, every interactive figure draws', { skip: skipNoChromium, timeout: 300_000 }, async () => {
  const check = await verifyGallery(path.join(committed, 'index.html'));
  assert.deepEqual(check.problems, []);
  assert.ok(check.images >= 19 && check.figures >= 19, `${check.images} images, ${check.figures} figures`);
});
