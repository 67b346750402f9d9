// The lab as a user sees it: the lab server started as `npm run lab` starts it, headless
// Chromium (playwright-core driving Debian's chromium) opening notebook 01, running every cell
// in fast mode, then interrupting a training cell. Screenshots go to build/test-output/lab/.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { createRequire } from 'node:module';
import { findChromium, repoRoot } from '../lib/env.mjs';
import { findJupyterServer, startLab } from '../lib/lab.mjs';

const require = createRequire(import.meta.url);
const outDir = path.join(repoRoot, 'build', 'test-output', 'lab');
const skip = !findJupyterServer() ? 'Jupyter Notebook is not installed (npm run setup installs it as root)' : !findChromium() ? 'Chromium is not installed' : false;

test('notebook 01 runs in the browser: progress bar at its end, plotly SVG drawn, no error, API completion and docs; an interrupted training cell keeps its partial result; a compare cell re-runs from its store', { skip, timeout: 600000 }, async () => {
  mkdirSync(outDir, { recursive: true });
  const lab = await startLab({ env: { GMT_MODE: 'fast' } });
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({
    executablePath: findChromium(),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  let page;
  try {
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`${lab.url}notebooks/01_gmt_in_five_minutes.ipynb?token=${lab.token}`);
    await page.waitForFunction(() => window.Jupyter?.notebook?.kernel?.is_connected?.(), null, { timeout: 120000 });
    await page.evaluate(() => window.Jupyter.notebook.clear_all_output());
    await page.evaluate(() => window.Jupyter.notebook.execute_all_cells());
    // Idle: every code cell has run (a number in its prompt) and the kernel indicator is idle.
    const idle = () => page.waitForFunction(() => {
      const nb = window.Jupyter.notebook;
      const cells = nb.get_cells().filter((c) => c.cell_type === 'code');
      return cells.every((c) => typeof c.input_prompt_number === 'number') && document.querySelector('#kernel_indicator_icon.kernel_idle_icon') !== null;
    }, null, { timeout: 480000, polling: 500 });
    await idle();
    // The training cell's live curve and summary, as a reader sees them.
    await page.evaluate(() => {
      const nb = window.Jupyter.notebook;
      const i = nb.get_cells().findIndex((c) => c.get_text().includes('trainingDisplay('));
      if (i >= 0) nb.scroll_to_cell(i, 0);
    });
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(outDir, '01-after-run-all.png') });

    const report = await page.evaluate(() => {
      const bars = [...document.querySelectorAll('.output_area progress')].map((p) => ({ value: Number(p.getAttribute('value')), max: Number(p.getAttribute('max')) }));
      const stderr = [...document.querySelectorAll('.output_stderr')].map((e) => e.textContent ?? '');
      return {
        bars,
        plotlySvgs: document.querySelectorAll('.output_area .js-plotly-plot svg.main-svg').length,
        errors: document.querySelectorAll('.output_area .output_error').length,
        stderr,
        codeCells: window.Jupyter.notebook.get_cells().filter((c) => c.cell_type === 'code').length,
      };
    });
    assert.ok(report.bars.length >= 1, 'a progress bar is shown');
    assert.ok(report.bars.every((b) => b.max > 0 && b.value === b.max), `every progress bar reached its end: ${JSON.stringify(report.bars)}`);
    assert.ok(report.plotlySvgs >= 1, 'plotly drew at least one chart as SVG');
    assert.equal(report.errors, 0, 'no cell shows an error');
    assert.deepEqual(report.stderr.filter((t) => /error|exception|interrupted/i.test(t)), [], 'no cell printed an error');
    assert.deepEqual(pageErrors, [], 'no script error in the page');

    // Completion and documentation of the kernel-lib API come from its compiled .d.ts.
    const shell = (type, content) => page.evaluate(([t, c]) => new Promise((resolve) => {
      window.Jupyter.notebook.kernel.send_shell_message(t, c, { shell: { reply: (msg) => resolve(msg.content) } });
    }), [type, content]);
    const completion = await shell('complete_request', { code: 'gmt.trainCe', cursor_pos: 11 });
    assert.deepEqual(completion.matches, ['trainCell']);
    const inspection = await shell('inspect_request', { code: 'gmt.trainCell', cursor_pos: 13, detail_level: 0 });
    const doc = inspection.data?.['text/plain'] ?? '';
    assert.match(doc, /function trainCell\(config: Partial<FinetuneConfig>/, 'the signature');
    assert.match(doc, /One fine-tuning run in a cell/, 'the doc comment');
    assert.match(doc, /const run = await gmt\.trainCell\(/, 'its example');

    // A long training cell, interrupted with the toolbar's interrupt (SIGINT to the kernel).
    await page.evaluate(() => {
      const nb = window.Jupyter.notebook;
      const cell = nb.insert_cell_at_bottom('code');
      cell.set_text("const long = await gmt.trainCell({ base: 'nano', task: 'math', steps: 3000, warmup: 1, accum: 1, batchSize: 2, testSize: 4, valSize: 4 }, { label: 'long run' });");
      cell.execute();
    });
    await page.waitForFunction(() => {
      const bars = [...document.querySelectorAll('.output_area progress')].filter((p) => p.getAttribute('max') === '3000');
      return bars.some((p) => Number(p.getAttribute('value')) >= 5);
    }, null, { timeout: 120000, polling: 250 });
    await page.evaluate(() => window.Jupyter.notebook.kernel.interrupt());
    await page.waitForFunction(() => [...document.querySelectorAll('.gmt-status')].some((e) => /interrupted at update \d+\/3000/.test(e.textContent ?? '')), null, { timeout: 60000, polling: 250 });
    await page.evaluate(() => {
      const nb = window.Jupyter.notebook;
      const cell = nb.insert_cell_at_bottom('code');
      // The interrupted cell completed: its `long` is assigned, and lastResult() is the same record.
      cell.set_text('`partial: ${long.train.updates} of ${long.config.steps} updates, stoppedEarly=${long.train.stoppedEarly}, same=${gmt.lastResult() === long}`');
      cell.execute();
    });
    await page.waitForFunction(() => [...document.querySelectorAll('.output_area')].some((e) => /partial: \d+ of 3000 updates, stoppedEarly=true, same=true/.test(e.textContent ?? '')), null, { timeout: 60000, polling: 250 });
    const partial = await page.evaluate(() => {
      const status = [...document.querySelectorAll('.gmt-status')].map((e) => e.textContent ?? '').find((t) => /interrupted/.test(t));
      const text = [...document.querySelectorAll('.output_area')].map((e) => e.textContent ?? '').find((t) => /partial: /.test(t));
      return { status, text };
    });
    const m = /interrupted at update (\d+)\/3000/.exec(partial.status ?? '');
    assert.ok(m && Number(m[1]) >= 5 && Number(m[1]) < 3000, partial.status);
    assert.match(partial.text ?? '', new RegExp(`partial: ${m[1]} of 3000 updates`), 'the kept result is the one shown');
    const interruptedCell = await page.evaluate(() => {
      const cells = window.Jupyter.notebook.get_cells();
      const c = cells[cells.length - 2];
      return { prompt: c.input_prompt_number, stderr: [...c.element[0].querySelectorAll('.output_stderr')].map((e) => e.textContent).join('') };
    });
    assert.equal(typeof interruptedCell.prompt, 'number', 'the interrupted cell finished normally');
    assert.doesNotMatch(interruptedCell.stderr, /Interrupted asynchronously/, 'the cell was not abandoned');
    // The notebook scrolls inside its own pane: show the interrupted cell and the one after it.
    await page.evaluate(() => window.Jupyter.notebook.scroll_to_bottom());
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(outDir, '01-interrupted.png') });

    // A compare cell: through the sweep and its store; running it again makes nothing.
    const store = path.join(outDir, `compare-${Date.now()}.jsonl`);
    const compareSource = `await gmt.compareCell({ methods: ['sft', { method: 'gmt', options: { ratio: 0.3 } }], base: { base: 'nano', steps: 3, warmup: 1, accum: 1, batchSize: 4, testSize: 4, valSize: 4, maxNewTokens: 8 }, seeds: [0, 1], store: ${JSON.stringify(store)}, jobs: 0 });`;
    const runCompare = async () => {
      await page.evaluate((src) => {
        const nb = window.Jupyter.notebook;
        const cell = nb.insert_cell_at_bottom('code');
        cell.set_text(src);
        cell.execute();
      }, compareSource);
      await page.waitForFunction(() => {
        const cells = window.Jupyter.notebook.get_cells();
        const c = cells[cells.length - 1];
        return typeof c.input_prompt_number === 'number' && c.element[0].querySelector('.js-plotly-plot svg.main-svg') && c.element[0].querySelector('table');
      }, null, { timeout: 180000, polling: 250 });
      return page.evaluate(() => {
        const cells = window.Jupyter.notebook.get_cells();
        const el = cells[cells.length - 1].element[0];
        return { text: el.querySelector('.output_wrapper')?.textContent ?? '', errors: el.querySelectorAll('.output_error').length };
      });
    };
    const first = await runCompare();
    assert.match(first.text, /ran=4 stored=0 failed=0/, first.text.slice(0, 500));
    const second = await runCompare();
    assert.match(second.text, /ran=0 stored=4 failed=0/, 'the second run is served from the store');
    assert.match(second.text, /gmt ratio=0\.3/);
    assert.equal(first.errors + second.errors, 0);
    await page.evaluate(() => window.Jupyter.notebook.scroll_to_bottom());
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(outDir, 'compare-cell.png') });
  } catch (e) {
    // What the page showed when it failed, for the person reading the failure.
    await page?.screenshot({ path: path.join(outDir, 'failure.png'), fullPage: true }).catch(() => undefined);
    const tail = await page?.evaluate(() => [...document.querySelectorAll('.cell')].slice(-3).map((c) => c.querySelector('.output_wrapper')?.textContent ?? '').join('\n---\n')).catch(() => '');
    if (e instanceof Error) e.message += `\nlast cells' output:\n${String(tail).slice(-3000)}`;
    throw e;
  } finally {
    await browser.close();
    const { kernels } = await lab.stop();
    assert.ok(kernels.length >= 1, 'the notebook had a kernel');
    assert.deepEqual(lab.kernelPids(), [], 'stopping the lab leaves no kernel');
  }
});

test('`npm run lab` prints a loopback URL with a token, and Ctrl-C stops Jupyter and its kernels', { skip, timeout: 120000 }, async () => {
  const { spawn, spawnSync } = await import('node:child_process');
  const child = spawn(process.execPath, [path.join(repoRoot, 'scripts', 'lab.mjs')], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d.toString(); });
  child.stderr.on('data', (d) => { out += d.toString(); });
  const t0 = Date.now();
  while (!/open (http:\/\/127\.0\.0\.1:\d+\/)tree\?token=([0-9a-f]{48})/.test(out) && child.exitCode === null && Date.now() - t0 < 60000) await new Promise((r) => setTimeout(r, 100));
  const m = /open (http:\/\/127\.0\.0\.1:\d+\/)tree\?token=([0-9a-f]{48})/.exec(out);
  assert.ok(m, out);
  const [, url, token] = m;
  assert.equal((await fetch(`${url}api/status`)).status, 403, 'no token, no access');
  // A kernel, as opening a notebook would start one.
  const kernel = await (await fetch(`${url}api/kernels?token=${token}`, { method: 'POST', body: '{"name":"tslab"}' })).json();
  const kernelPid = () => spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`kernel-${kernel.id}.json`)).map((l) => Number(l.trim().split(/\s+/)[0]));
  const t1 = Date.now();
  while (kernelPid().length === 0 && Date.now() - t1 < 30000) await new Promise((r) => setTimeout(r, 200));
  assert.equal(kernelPid().length, 1, 'the kernel runs');
  child.kill('SIGINT'); // what Ctrl-C in the terminal sends
  await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
  assert.equal(child.exitCode, 0, out);
  assert.match(out, /lab: stopped \(1 kernel shut down\)/);
  assert.deepEqual(kernelPid(), [], 'no kernel is left');
  await assert.rejects(fetch(`${url}api/status?token=${token}`), 'the server is gone');
});
