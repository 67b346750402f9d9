import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  FigureExporter,
  METHOD_COLORS,
  barFigure,
  chromiumPath,
  exportFigure,
  exportFigures,
  figureBundle,
  heatmapFigure,
  histogramFigure,
  logHistogram,
  figureCsv,
  figureElementId,
  figureHtml,
  launchChromium,
  lineFigure,
  plotlyJsSource,
  plotlyJsVersion,
  CARTESIAN_TRACE_TYPES,
  tracesOutside,
  relativeUrl,
  methodColor,
  withFigureExporter,
} from '../src/plots';
import { progress, stableOutput, tableBundle } from '../src/notebook';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../src/util/config';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const haveChromium = fs.existsSync(chromiumPath());
const skipNoChromium = haveChromium ? false : `no Chromium at ${chromiumPath()} (apt-get install chromium)`;

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-plots-'));
}

const curves = () =>
  lineFigure({
    title: 'Validation loss',
    xTitle: 'step',
    yTitle: 'loss',
    series: [
      { name: 'sft', x: [0, 10, 20], y: [2.5, 1.9, 1.6], band: [0.1, 0.2, 0.15] },
      { name: 'gmt-curve-label', colorKey: 'gmt', x: [0, 10, 20], y: [2.5, 1.7, 1.4] },
    ],
  });

test('each method keeps one colour across figures and labels', () => {
  assert.equal(methodColor('gmt'), METHOD_COLORS.gmt);
  assert.equal(methodColor('GMT (k=0.3)'), METHOD_COLORS.gmt);
  assert.equal(methodColor('gmt/global'), METHOD_COLORS.gmt);
  assert.notEqual(methodColor('sft'), methodColor('gmt'));
  assert.equal(methodColor('lora-variant'), methodColor('lora-variant'));
  assert.equal(new Set(Object.values(METHOD_COLORS)).size, Object.keys(METHOD_COLORS).length);

  const line = curves();
  const bar = barFigure({ categories: ['math', 'code'], series: [{ name: 'gmt', values: [0.4, 0.3] }, { name: 'sft', values: [0.35, 0.3] }] });
  const colorOf = (trace: Record<string, unknown>) => ((trace.line ?? trace.marker) as { color: string }).color;
  assert.equal(colorOf(line.data.find((t) => t.name === 'gmt-curve-label')!), colorOf(bar.data.find((t) => t.name === 'gmt')!));
  assert.equal(colorOf(line.data.find((t) => t.name === 'sft')!), colorOf(bar.data.find((t) => t.name === 'sft')!));
});

test('builders reject series whose lengths disagree, naming the series', () => {
  assert.throws(() => lineFigure({ series: [{ name: 'sft', x: [1, 2, 3], y: [1, 2] }] }), (e: Error) => e instanceof ConfigError && /"sft" has 3 x values but 2 y values/.test(e.message));
  assert.throws(() => barFigure({ categories: ['a'], series: [{ name: 'gmt', values: [1], errors: [1, 2] }] }), /"gmt" has 1 categories values but 2 errors values/);
  assert.throws(() => lineFigure({ series: [] }), /at least one series/);
});

test('the CSV beside a figure holds every point of every series, bands as error', () => {
  const csv = figureCsv(curves()).trimEnd().split('\n');
  assert.equal(csv[0], 'series,x,y,error');
  assert.equal(csv.length, 1 + 3 + 3);
  assert.equal(csv[1], 'sft,0,2.5,0.1');
  assert.equal(csv[6], 'gmt-curve-label,20,1.4,');
  const bar = figureCsv(barFigure({ categories: ['a,b', 'c'], series: [{ name: 'x', values: [1, 2], errors: [0.5, 0.25] }] }));
  assert.equal(bar, 'series,x,y,error\nx,"a,b",1,0.5\nx,c,2,0.25\n');
  // Asymmetric bars (a confidence interval around a median): the length below gets its own column.
  const ci = barFigure({ categories: ['a', 'b'], series: [{ name: 'x', values: [1, 2], errors: [0.5, 0.25], errorsBelow: [0.1, 0.75] }, { name: 'y', values: [3, 4] }] });
  assert.deepEqual((ci.data[0]!.error_y as { arrayminus?: number[] }).arrayminus, [0.1, 0.75]);
  assert.equal(figureCsv(ci), 'series,x,y,error,error_below\nx,a,1,0.5,0.1\nx,b,2,0.25,0.75\ny,a,3,,\ny,b,4,,\n');
  assert.throws(() => barFigure({ categories: ['a'], series: [{ name: 'z', values: [1], errorsBelow: [1] }] }), /errorsBelow without errors/);
});

test('HTML export is self-contained: plotly.js inlined, no external script', () => {
  const html = figureHtml(curves());
  assert.match(html, /^<!DOCTYPE html>/);
  assert.ok(html.length > 1_000_000, 'plotly.js should be inlined');
  assert.ok(!/<script[^>]+src=/i.test(html), 'no external scripts');
  assert.match(html, /gmt-curve-label/);
  // Only the two script elements we write may close.
  assert.equal(html.match(/<\/script>/g)?.length, 2);
});

test('HTML export with a shared plotly.js: a small page that loads it by a relative URL, written once', () => {
  const dir = tmpDir();
  try {
    const shared = path.join(dir, 'figures', 'plotly.min.js');
    const base = path.join(dir, 'figures', 'nb one', 'loss');
    const [file] = [path.join(dir, 'figures', 'nb one', 'loss.html')];
    return exportFigure(curves(), base, { formats: ['html', 'csv'], plotlyJs: { file: shared } }).then(async (written) => {
      assert.deepEqual(written.map((f) => path.basename(f)), ['loss.html', 'loss.csv']);
      const html = fs.readFileSync(file!, 'utf8');
      assert.ok(html.length < 20_000, `the page holds no plotly.js (${html.length} bytes)`);
      assert.match(html, /<script src="\.\.\/plotly\.min\.js"><\/script>/);
      assert.match(html, /gmt-curve-label/);
      assert.ok(!html.includes('<img'), 'no PNG exported, so no fallback image');
      assert.equal(fs.readFileSync(shared, 'utf8'), plotlyJsSource());
      // Exported again: the same bytes, and the shared file is left alone (same content).
      const before = fs.statSync(shared).mtimeMs;
      await new Promise((r) => setTimeout(r, 20));
      await exportFigure(curves(), base, { formats: ['html'], plotlyJs: { file: shared } });
      assert.equal(fs.readFileSync(file!, 'utf8'), html);
      assert.equal(fs.statSync(shared).mtimeMs, before, 'plotly.min.js was rewritten though it was up to date');
      // A stale or damaged copy is replaced.
      fs.writeFileSync(shared, '/* old */');
      await exportFigure(curves(), base, { formats: ['html'], plotlyJs: { file: shared } });
      assert.equal(fs.statSync(shared).size, Buffer.byteLength(plotlyJsSource()));
      assert.equal(relativeUrl('/a/b c', '/a/plotly #1.js'), '../plotly%20%231.js');
      await assert.rejects(exportFigure(curves(), base, { formats: ['html'], plotlyJs: 'shared' as never }), /plotlyJs must be 'inline' or \{ file/);
    }).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
});

test('the cartesian bundle: one plotly.js version with the full one, smaller, and a trace it cannot draw is refused', async () => {
  assert.equal(plotlyJsVersion('cartesian'), plotlyJsVersion('full'), 'the two bundles are pinned to one plotly.js version');
  assert.match(plotlyJsSource('cartesian').slice(0, 200), new RegExp(`cartesian.*v${plotlyJsVersion().replace(/\./g, '\\.')}`, 's'));
  assert.ok(Buffer.byteLength(plotlyJsSource('cartesian')) < Buffer.byteLength(plotlyJsSource()) / 2);
  const surface = { data: [{ type: 'surface', z: [[1, 2], [3, 4]] }, { x: [1], y: [2] }], layout: {} };
  assert.deepEqual(tracesOutside(surface, 'cartesian'), ['surface']);
  assert.deepEqual(tracesOutside(surface, 'full'), []);
  assert.deepEqual(tracesOutside(curves(), 'cartesian'), []);
  assert.throws(() => plotlyJsSource('tiny' as never), /bundle must be 'full' or 'cartesian'/);
  const dir = tmpDir();
  try {
    const shared = path.join(dir, 'plotly.min.js');
    await exportFigure(curves(), path.join(dir, 'loss'), { formats: ['html'], plotlyJs: { file: shared, bundle: 'cartesian' } });
    assert.equal(fs.readFileSync(shared, 'utf8'), plotlyJsSource('cartesian'));
    await assert.rejects(exportFigure(surface, path.join(dir, 'surface'), { formats: ['html'], plotlyJs: { file: shared, bundle: 'cartesian' } }), /cartesian bundle cannot draw trace type "surface"/);
    assert.ok(!fs.existsSync(path.join(dir, 'surface.html')));
    // The full bundle draws it; the shared copy is replaced by the full build.
    await exportFigure(surface, path.join(dir, 'surface'), { formats: ['html'], plotlyJs: { file: shared } });
    assert.equal(fs.statSync(shared).size, Buffer.byteLength(plotlyJsSource('full')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('CARTESIAN_TRACE_TYPES is what the cartesian bundle registers (its PlotSchema, in Chromium)', { skip: skipNoChromium, timeout: 120_000 }, async () => {
  type Page = { setContent(html: string): Promise<void>; addScriptTag(o: { content: string }): Promise<unknown>; evaluate<R>(fn: () => R): Promise<R> };
  const browser = await launchChromium<{ newPage(): Promise<Page>; close(): Promise<void> }>();
  try {
    const page = await browser.newPage();
    await page.setContent('<!DOCTYPE html><html><body></body></html>');
    await page.addScriptTag({ content: plotlyJsSource('cartesian') });
    const traces = await page.evaluate(() => Object.keys((globalThis as unknown as { Plotly: { PlotSchema: { get(): { traces: object } } } }).Plotly.PlotSchema.get().traces).sort());
    assert.deepEqual(traces, [...CARTESIAN_TRACE_TYPES].sort());
  } finally {
    await browser.close();
  }
});

/** What a page opened from file:// shows: plotly's SVG drawn, images loaded, requests that left file://. */
async function openOffline(url: string): Promise<{ drawn: number; plots: number; images: { src: string; ok: boolean }[]; text: string; remote: string[]; errors: string[] }> {
  type Page = {
    route(pattern: string, handler: (route: { request(): { url(): string }; abort(): Promise<void>; continue(): Promise<void> }) => unknown): Promise<void>;
    on(event: 'pageerror', fn: (e: Error) => void): void;
    goto(url: string, opts?: object): Promise<unknown>;
    waitForTimeout(ms: number): Promise<void>;
    evaluate<R>(fn: () => R): Promise<R>;
  };
  const browser = await launchChromium<{ newPage(): Promise<Page>; close(): Promise<void> }>();
  try {
    const page = await browser.newPage();
    const remote: string[] = [];
    const errors: string[] = [];
    await page.route('**/*', (route) => (route.request().url().startsWith('file://') ? route.continue() : (remote.push(route.request().url()), route.abort())));
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForTimeout(300);
    const seen = await page.evaluate(() => ({
      drawn: document.querySelectorAll('.main-svg').length,
      plots: document.querySelectorAll('.js-plotly-plot').length,
      images: Array.from(document.images).map((i) => ({ src: i.getAttribute('src') ?? '', ok: i.complete && i.naturalWidth > 0 })),
      text: document.body.innerText,
    }));
    return { ...seen, remote, errors };
  } finally {
    await browser.close();
  }
}

test('a shared-plotly.js page opens offline from file:// and draws; without plotly.min.js it says so and shows the PNG', { skip: skipNoChromium, timeout: 120_000 }, async () => {
  const dir = tmpDir();
  try {
    const shared = path.join(dir, 'plotly.min.js');
    await exportFigure(curves(), path.join(dir, 'nb', 'loss'), { formats: ['png', 'html'], plotlyJs: { file: shared } });
    const url = pathToFileURL(path.join(dir, 'nb', 'loss.html')).href;
    const ok = await openOffline(url);
    assert.ok(ok.drawn > 0, 'plotly drew its SVG');
    assert.deepEqual(ok.remote, []);
    assert.deepEqual(ok.errors, []);
    fs.rmSync(shared);
    const broken = await openOffline(url);
    assert.equal(broken.drawn, 0);
    assert.match(broken.text, /needs plotly\.js at \.\.\/plotly\.min\.js/);
    assert.deepEqual(broken.images, [{ src: 'loss.png', ok: true }], 'the static image stands in');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('figure element ids come from the content: the same in every process, one per figure and size', async () => {
  const id = figureElementId(curves());
  assert.match(id, /^gmt-fig-[0-9a-f]{16}$/);
  assert.equal(figureElementId(curves()), id);
  assert.notEqual(figureElementId(curves(), { height: 300 }), id);
  assert.notEqual(figureElementId(barFigure({ categories: ['a'], series: [{ name: 'x', values: [1] }] })), id);
  const { execFileSync } = await import('node:child_process');
  const other = execFileSync(process.execPath, ['--import', 'tsx', '-e', `const p = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'plots'))}); const f = p.lineFigure({ title: 'Validation loss', xTitle: 'step', yTitle: 'loss', series: [{ name: 'sft', x: [0, 10, 20], y: [2.5, 1.9, 1.6], band: [0.1, 0.2, 0.15] }, { name: 'gmt-curve-label', colorKey: 'gmt', x: [0, 10, 20], y: [2.5, 1.7, 1.4] }] }); process.stdout.write(p.figureElementId(f));`], { encoding: 'utf8' });
  assert.equal(other, id, 'another process gives the same id');
  const html = (await figureBundle(curves())).data['text/html'] as string;
  assert.ok(html.includes(`id="${id}"`));
});

test('the same figure shown twice on one page: both copies draw (they share their content-derived id)', { skip: skipNoChromium, timeout: 120_000 }, async () => {
  const dir = tmpDir();
  try {
    const shared = path.join(dir, 'plotly.min.js');
    fs.writeFileSync(shared, plotlyJsSource());
    const out = (await figureBundle(curves())).data['text/html'] as string;
    const other = (await figureBundle(barFigure({ categories: ['a'], series: [{ name: 'x', values: [1] }] }))).data['text/html'] as string;
    fs.writeFileSync(path.join(dir, 'page.html'), `<!DOCTYPE html><html><head><meta charset="utf-8"><script src="plotly.min.js"></script></head><body>${out}${other}${out}</body></html>`);
    const seen = await openOffline(pathToFileURL(path.join(dir, 'page.html')).href);
    assert.deepEqual(seen.errors, []);
    assert.equal(seen.plots, 3, 'three figures drawn');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('export writes a real SVG and PNG rendered by Chromium', { skip: skipNoChromium, timeout: 120_000 }, async () => {
  const dir = tmpDir();
  const exporter = await FigureExporter.launch();
  try {
    const written = await exportFigure(curves(), path.join(dir, 'loss'), { exporter, formats: ['svg', 'png', 'html', 'csv', 'json'], width: 600, height: 400 });
    assert.deepEqual(written.map((f) => path.basename(f)), ['loss.svg', 'loss.png', 'loss.html', 'loss.csv', 'loss.json']);
    const svg = fs.readFileSync(path.join(dir, 'loss.svg'), 'utf8');
    assert.ok(svg.startsWith('<svg'), svg.slice(0, 40));
    assert.match(svg, /gmt-curve-label/);
    assert.match(svg, /viewBox="0 0 600 400"/);
    const png = fs.readFileSync(path.join(dir, 'loss.png'));
    assert.ok(png.subarray(0, 8).equals(PNG_SIGNATURE));
    // IHDR width/height at bytes 16..24: 600×400 CSS px at the default scale 2.
    assert.equal(png.readUInt32BE(16), 1200);
    assert.equal(png.readUInt32BE(20), 800);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'loss.json'), 'utf8')).data.length, curves().data.length);

    // The same browser serves a second figure.
    const [barSvg] = await exportFigure(barFigure({ categories: ['math'], series: [{ name: 'bar-series-x', values: [0.5] }] }), path.join(dir, 'bar'), { exporter, formats: ['svg'] });
    const bar = fs.readFileSync(barSvg, 'utf8');
    assert.match(bar, /bar-series-x/);

    // The same figure exported by another browser is the same file (plotly's random render ids
    // are replaced), and every reference names an id the file has.
    const again = await withFigureExporter((other) => other.toImage(curves(), 'svg', { width: 600, height: 400, scale: 1 }));
    assert.equal(again, svg);
    const ids = new Set([...svg.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]));
    const refs = [...svg.matchAll(/url\(['"]?#([^'")]+)/g)].map((m) => m[1]!);
    assert.ok(refs.length > 0 && refs.every((r) => ids.has(r)), `unresolved: ${refs.filter((r) => !ids.has(r)).join(', ')}`);
    assert.notEqual(/<defs id="defs-([^"]+)"/.exec(bar)?.[1], /<defs id="defs-([^"]+)"/.exec(svg)?.[1], 'two figures, two ids');
  } finally {
    await exporter.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the notebook bundle carries plotly JSON, HTML with a PNG placeholder, and the PNG', { skip: skipNoChromium, timeout: 120_000 }, async () => {
  const exporter = await FigureExporter.launch();
  try {
    const { data, metadata } = await figureBundle(curves(), { exporter, width: 500, height: 300 });
    assert.deepEqual(Object.keys(data).sort(), ['application/vnd.plotly.v1+json', 'image/png', 'text/html', 'text/plain']);
    const png = Buffer.from(data['image/png'] as string, 'base64');
    assert.ok(png.subarray(0, 8).equals(PNG_SIGNATURE));
    const html = data['text/html'] as string;
    assert.ok(html.includes(`data:image/png;base64,${data['image/png']}`), 'PNG placeholder inside the HTML');
    assert.match(html, /window\.Plotly/);
    assert.equal((data['application/vnd.plotly.v1+json'] as { data: unknown[] }).data.length, curves().data.length);
    assert.deepEqual(metadata['image/png'], { width: 500, height: 300 });
    // Committed notebooks leave out the HTML, which would only repeat the PNG.
    const committed = await figureBundle(curves(), { exporter, width: 500, height: 300, html: false });
    assert.deepEqual(Object.keys(committed.data).sort(), ['application/vnd.plotly.v1+json', 'image/png', 'text/plain']);
    assert.equal(committed.data['image/png'], data['image/png']);
  } finally {
    await exporter.close();
  }
  const noPng = await figureBundle(curves());
  assert.equal(noPng.data['image/png'], undefined);
  assert.ok(!(noPng.data['text/html'] as string).includes('<img'));
  // A figure's own size is for its static image; the interactive views fill their area's width.
  const wide = curves();
  wide.layout = { ...wide.layout, width: 960, height: 800 };
  const sized = await figureBundle(wide);
  const layout = (sized.data['application/vnd.plotly.v1+json'] as { layout: Record<string, unknown> }).layout;
  assert.deepEqual([layout.width, layout.height], [undefined, 800]);
  assert.match(sized.data['text/html'] as string, /style="width:960px;max-width:100%/);
});

test('a missing Chromium is a clear error naming apt-get install chromium', async () => {
  await assert.rejects(FigureExporter.launch({ executablePath: '/nonexistent/chromium' }), /Chromium not found at \/nonexistent\/chromium.*apt-get install chromium/);
  // Formats that need no browser still work without one.
  const dir = tmpDir();
  const saved = process.env.CHROMIUM_PATH;
  process.env.CHROMIUM_PATH = '/nonexistent/chromium';
  try {
    const written = await exportFigure(curves(), path.join(dir, 'f'), { formats: ['html', 'csv'] });
    assert.equal(written.length, 2);
    await assert.rejects(exportFigure(curves(), path.join(dir, 'g'), { formats: ['png'] }), /apt-get install chromium/);
  } finally {
    if (saved === undefined) delete process.env.CHROMIUM_PATH;
    else process.env.CHROMIUM_PATH = saved;
    fs.rmSync(dir, { recursive: true, force: true });
  }
  await assert.rejects(exportFigure(curves(), '/tmp/x', { formats: ['gif' as never] }), /unknown format "gif"/);
  await assert.rejects(exportFigure(curves(), '/tmp/x.svg', { formats: ['svg'] }), /should not carry an extension/);
});

test('tables render as aligned text and HTML, from rows or an arquero table', () => {
  const rows = [
    { method: 'sft', accuracy: 0.412345, n: 1000 },
    { method: 'gmt <k=0.3>', accuracy: 0.45, n: 1000 },
  ];
  const bundle = tableBundle(rows, { caption: 'accuracy' });
  const text = (bundle['text/plain'] as string).split('\n');
  assert.deepEqual(text, ['accuracy', 'method       accuracy     n', '-----------  --------  ----', 'sft            0.4123  1000', 'gmt <k=0.3>      0.45  1000']);
  assert.match(bundle['text/html'] as string, /gmt &lt;k=0\.3&gt;/);
  const aq = require('arquero');
  const t = aq.table({ a: [1, 2, 3], b: ['x', 'y', 'z'] });
  const limited = tableBundle(t, { maxRows: 2 });
  assert.match(limited['text/plain'] as string, /2 of 3 rows shown$/);
  assert.throws(() => tableBundle({} as never), /array of row objects or an arquero table/);
});

/** What `fn` writes to stdout, chunk by chunk (nothing reaches the real stdout meanwhile). */
function stdoutOf(fn: () => void): string[] {
  const lines: string[] = [];
  const original = process.stdout.write;
  process.stdout.write = ((chunk: string) => {
    lines.push(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    fn();
  } finally {
    process.stdout.write = original;
  }
  return lines;
}

test('progress outside a notebook prints throttled lines, always the first and last', () => {
  const lines = stdoutOf(() => {
    const p = progress(100, { label: 'train', minIntervalMs: 60_000 });
    for (let i = 1; i <= 100; i++) p.update(i, { loss: 1 / i });
    p.finish();
  });
  assert.equal(lines.length, 2, lines.join(''));
  assert.match(lines[0], /^train \[-+\] 1\/100 1% /);
  assert.match(lines[1], /^train \[#{24}\] 100\/100 100% .* loss=0\.01\n$/);
  assert.throws(() => progress(0), /progress total must be >= 1/);
});

test('a skipped progress bar says why instead of standing at 0/total, once', () => {
  const lines = stdoutOf(() => {
    const p = progress(100, { label: 'interleaved benchmark' });
    p.skip('read from the cache (2026-12-07)');
    p.finish();
    p.update(5);
    p.skip('again');
  });
  assert.deepEqual(lines, ['interleaved benchmark: read from the cache (2026-12-07)\n']);
});

test('GMT_STABLE_OUTPUT=1: progress lines carry no elapsed time or ETA, so a re-run prints the same', () => {
  const saved = process.env.GMT_STABLE_OUTPUT;
  let lines: string[];
  try {
    process.env.GMT_STABLE_OUTPUT = '1';
    lines = stdoutOf(() => {
      const p = progress(10, { label: 'sweep', minIntervalMs: 0 });
      for (let i = 1; i <= 10; i++) p.update(i);
      p.finish({ ran: 0 });
      const timed = progress(2, { label: 'timed', minIntervalMs: 0, showTime: true });
      timed.update(2);
    });
  } finally {
    if (saved === undefined) delete process.env.GMT_STABLE_OUTPUT;
    else process.env.GMT_STABLE_OUTPUT = saved;
  }
  assert.equal(lines[0], 'sweep [##----------------------] 1/10 10%\n');
  assert.equal(lines[lines.length - 2], 'sweep [########################] 10/10 100% ran=0\n');
  assert.match(lines[lines.length - 1]!, /^timed \[#{24}\] 2\/2 100% \d+\.\ds < \d/, 'showTime overrides');
  assert.equal(stableOutput({}), false);
  assert.equal(stableOutput({ GMT_STABLE_OUTPUT: '0' }), false);
  assert.throws(() => stableOutput({ GMT_STABLE_OUTPUT: 'yes' }), /GMT_STABLE_OUTPUT must be 0 or 1/);
});

test('reference lines, heatmaps and histograms: their CSV holds the data behind them', () => {
  const withRef = lineFigure({ series: [{ name: 'gmt tensor', x: [0.1, 0.5, 0.9], y: [60, 59, 40], band: [2, 2, 3] }], references: [{ name: 'sft (k = 0)', y: 61, interval: [59, 63] }] });
  const ref = withRef.data.find((t) => t.name === 'sft (k = 0)')!;
  assert.deepEqual(ref.x, [0.1, 0.9], 'the level spans the x range of the series');
  assert.notEqual(methodColor('gmt global'), methodColor('gmt tensor'), 'GMT scopes drawn side by side differ');
  assert.deepEqual(figureCsv(withRef).trimEnd().split('\n').slice(-2), ['sft (k = 0),0.1,61,2', 'sft (k = 0),0.9,61,2']);
  const heat = heatmapFigure({ x: [1, 5], y: ['block 0', 'block 1'], z: [[0.7, 0.8], [0.6, 0.5]], zTitle: 'kept' });
  assert.deepEqual(figureCsv(heat).trimEnd().split('\n'), ['series,x,y,error', 'block 0,1,0.7,', 'block 0,5,0.8,', 'block 1,1,0.6,', 'block 1,5,0.5,']);
  assert.throws(() => heatmapFigure({ x: [1], y: ['a'], z: [[1, 2]] }), /row "a" has 2 values but there are 1 columns/);
  const h = logHistogram(new Float32Array([0, 1e-3, 2e-3, 1e-2, 0.1, 0.1, NaN]), 3);
  assert.equal(h.zeros, 2, 'zeros and NaN are counted apart');
  assert.equal(h.counts.reduce((a, b) => a + b, 0), 5);
  assert.equal(h.counts[2], 2, 'the two largest values share the top bin');
  const hist = histogramFigure({ bins: h.bins, counts: h.counts, markers: [{ name: 'T_k', x: 2e-3 }] });
  assert.equal(hist.data.length, 2);
});

test('exportFigures saves a batch with one browser: valid SVG, PNG, HTML and CSV per figure', { skip: skipNoChromium, timeout: 120_000 }, async () => {
  const dir = tmpDir();
  const files = await exportFigures([{ name: 'a', fig: curves() }, { name: 'b', fig: heatmapFigure({ x: [1, 2], y: ['r'], z: [[0, 1]] }), height: 300 }], dir);
  assert.equal(files.length, 8);
  for (const name of ['a', 'b']) {
    assert.match(fs.readFileSync(path.join(dir, `${name}.svg`), 'utf8'), /^<svg[\s\S]*<\/svg>$/);
    assert.deepEqual(fs.readFileSync(path.join(dir, `${name}.png`)).subarray(0, 8), PNG_SIGNATURE);
    const html = fs.readFileSync(path.join(dir, `${name}.html`), 'utf8');
    assert.ok(html.includes('Plotly.newPlot') && !/<script[^>]+src=/.test(html), 'self-contained HTML');
    assert.match(fs.readFileSync(path.join(dir, `${name}.csv`), 'utf8'), /^series,x,y,error\n/);
  }
  await assert.rejects(exportFigures([{ name: 'bad name', fig: curves() }], dir), /must be letters/);
});

test('yBounds clip bands and reference intervals to the possible range; the CSV keeps the real CI', () => {
  const fig = lineFigure({
    series: [{ name: 'gmt', x: [0.1, 0.2], y: [5, 95], band: [30, 12] }],
    references: [{ name: 'sft', y: 50, interval: [-10, 120] }],
    yBounds: [0, 100],
  });
  const bands = fig.data.filter((d) => (d.meta as { role?: string } | undefined)?.role === 'band');
  assert.equal(bands.length, 2);
  for (const b of bands) for (const v of b.y as number[]) assert.ok(v >= 0 && v <= 100, `band point ${v} inside [0, 100]`);
  assert.deepEqual(bands[0]!.y, [35, 100, 83, 0]);
  assert.match(figureCsv(fig), /gmt,0\.1,5,30\ngmt,0\.2,95,12/);
  const unclipped = lineFigure({ series: [{ name: 'gmt', x: [0.1], y: [5], band: [30] }] });
  assert.deepEqual(unclipped.data[0]!.y, [35, -25]);
});

test('variant bars: one bar per ablation variant with short labels, coloured by method, intervals as whiskers', async () => {
  const { shortVariantLabels, variantBarsFigure } = await import('../src/findings/figures');
  const labels = ['sft', 'gmt ratio=0.3 scope=tensor signal=grad', 'gmt ratio=0.3 scope=global signal=grad-weight', 'gmt ratio=0.3 scope=tensor maskUpdate=true', 'random-mask ratio=0.3'];
  const short = shortVariantLabels(labels);
  assert.deepEqual([...short.values()], ['sft', 'gmt tensor |Γ|', 'gmt global |Γ ⊙ θ|', 'gmt tensor masked update', 'random-mask']);
  const rows = labels.map((l, i) => ({ methodLabel: l, mean: 10 + i, lo: 8 + i, hi: 13 + i }));
  const fig = variantBarsFigure(rows, { title: 't', yTitle: 'y' });
  assert.deepEqual(fig.data.map((d) => d.name), ['sft', 'gmt', 'random-mask']);
  const gmtTrace = fig.data[1] as { x: string[]; y: number[]; error_y: { array: number[]; arrayminus: number[] } };
  assert.deepEqual(gmtTrace.x, [...short.values()]);
  assert.deepEqual(gmtTrace.y.map((v) => (Number.isNaN(v) ? null : v)), [null, 11, 12, 13, null]);
  assert.deepEqual(gmtTrace.error_y.array.slice(1, 4), [3, 3, 3]);
  assert.deepEqual(gmtTrace.error_y.arrayminus.slice(1, 4), [2, 2, 2]);
  const paired = variantBarsFigure([{ method: 'gmt ratio=0.3', diff: -1, lo: -3, hi: 2 }], { title: 't', yTitle: 'y', value: 'diff' });
  assert.deepEqual((paired.data[0] as { y: number[] }).y, [-1]);
  assert.equal(variantBarsFigure([], { title: 't', yTitle: 'y' }).data.length, 0, 'no rows: the placeholder');
});

test('the ablation grid: a panel per scope and maskUpdate, the ratio along x, a line per signal, SFT and random masking in every panel', async () => {
  const { ablationGridFigure } = await import('../src/findings/figures');
  const { preferredSize, DEFAULT_WIDTH } = await import('../src/plots/theme');
  const rows: object[] = [{ methodLabel: 'sft', n: 5, mean: 97, lo: 96, hi: 98 }];
  for (const k of [0.5, 0.1]) {
    for (const signal of ['grad', 'grad-weight']) rows.push({ methodLabel: `gmt ratio=${k} scope=tensor signal=${signal} maskUpdate=false`, n: 5, mean: 90 + k * 10, lo: 88, hi: 99 });
    rows.push({ methodLabel: `gmt ratio=${k} scope=global signal=grad maskUpdate=true`, n: 1, mean: 80, lo: NaN, hi: NaN });
    rows.push({ methodLabel: `random-mask ratio=${k}`, n: 5, mean: 70, lo: -5, hi: 120 });
  }
  const fig = ablationGridFigure(rows, { title: 'acc' });
  const panels = (fig.layout.annotations as { text: string }[]).map((a) => a.text);
  assert.deepEqual(panels, ['<b>tensor scope, maskUpdate off</b>', '<b>global scope, maskUpdate off</b> (no GMT runs)', '<b>tensor scope, maskUpdate on</b> (no GMT runs)', '<b>global scope, maskUpdate on</b>']);
  const first = fig.data.filter((d) => d.xaxis === 'x');
  assert.deepEqual(first.map((d) => d.name), ['random mask', 'GMT, |Γ|', 'GMT, |Γ ⊙ θ|'], 'signals present in the rows, in a fixed order');
  assert.deepEqual(first[1]!.x, ['0.1', '0.5'], 'ratios sorted, as categories');
  assert.deepEqual(first[1]!.y, [91, 95]);
  assert.deepEqual((first[0]!.error_y as { array: number[]; arrayminus: number[] }).array, [30, 30], 'intervals clipped to [0, 100]');
  assert.deepEqual((first[0]!.error_y as { array: number[]; arrayminus: number[] }).arrayminus, [70, 70]);
  assert.equal(fig.data.filter((d) => d.showlegend).length, 3, 'each series once in the legend');
  const last = fig.data.filter((d) => d.xaxis === 'x4');
  assert.deepEqual(last.find((d) => d.name === 'GMT, |Γ|')!.y, [80, 80]);
  assert.deepEqual((last.find((d) => d.name === 'GMT, |Γ|')!.error_y as { array: number[] }).array, [0, 0], 'one seed: no whiskers');
  const shapes = fig.layout.shapes as { type: string; y0: number; showlegend?: boolean; name?: string }[];
  assert.equal(shapes.filter((s) => s.type === 'line').length, 4, 'SFT in every panel');
  assert.deepEqual(shapes.filter((s) => s.showlegend).map((s) => s.name), ['SFT (5 seeds: 97.0 [96.0, 98.0])']);
  assert.match((fig.layout.title as { text: string }).text, /^acc<br><span [^>]*>1–5 seeds per point/);
  const withDevice = ablationGridFigure(rows, { title: 'acc', subtitle: 'micro on the native CPU engine' });
  assert.match((withDevice.layout.title as { text: string }).text, /^acc<br><span [^>]*>micro on the native CPU engine; 1–5 seeds per point/, 'where the runs trained, then the seeds, on the second line');
  assert.match(figureCsv(fig), /\n"GMT, \|Γ\| \(tensor scope, maskUpdate off\)",0\.1,91,8,3\n/, 'the CSV names each point\'s panel');
  assert.deepEqual(preferredSize(fig), { width: 960, height: 800 }, 'four panels ask for more room than one plot');
  assert.equal(preferredSize(lineFigure({ series: [{ name: 'sft', x: [1], y: [1] }] })).width, DEFAULT_WIDTH);
  const diff = ablationGridFigure([{ method: 'gmt ratio=0.3 scope=tensor signal=grad maskUpdate=false', n: 3, diff: -2, lo: -4, hi: 0 }], { title: 'd', value: 'diff' });
  assert.equal((diff.layout.shapes as unknown[]).length, 0, 'differences: no SFT level');
  assert.equal((diff.layout.yaxis as { zeroline: boolean }).zeroline, true);
  assert.deepEqual(diff.data[0]!.y, [-2]);
  assert.equal(ablationGridFigure([{ methodLabel: 'sft', n: 5, mean: 97, lo: 96, hi: 98 }], { title: 't' }).data.length, 0, 'no GMT rows: the placeholder');
  assert.ok(Array.isArray((fig.layout.yaxis as { range?: number[] }).range), 'accuracy: the axis spans the means');
  const loss = ablationGridFigure(rows.map((r) => ({ ...r, mean: 0.5 })), { title: 'loss', yTitle: 'validation loss', bounds: [0, Infinity] });
  assert.equal((loss.layout.yaxis as { range?: number[] }).range, undefined, 'another metric: plotly fits the axis');
  assert.deepEqual((loss.data.find((d) => d.name === 'random mask')!.error_y as { arrayminus: number[] }).arrayminus, [0.5, 0.5], 'clipped at its own bound');
});

test('a top legend that needs several rows gets the top margin for them, above the plot and below the title', () => {
  const one = lineFigure({ series: [{ name: 'sft', x: [1, 2], y: [1, 2] }], title: 't', legend: 'top' });
  const many = lineFigure({ series: Array.from({ length: 9 }, (_, i) => ({ name: `gmt global · seed ${i} and a long tail`, x: [1, 2], y: [1, 2] })), title: 't', legend: 'top' });
  const right = lineFigure({ series: Array.from({ length: 9 }, (_, i) => ({ name: `series ${i}`, x: [1, 2], y: [1, 2] })), title: 't' });
  const top = (f: { layout: Record<string, unknown> }) => (f.layout.margin as { t: number }).t;
  assert.equal(top(one), 60 + 50, 'one row: the theme\'s margin');
  assert.ok(top(many) >= 56 + 40 * 3, `9 long names need ≥ 3 rows: margin ${top(many)}`);
  assert.equal((many.layout.title as { yanchor: string }).yanchor, 'top');
  assert.equal(top(right), 60, 'a legend on the right leaves the margin alone');
});
