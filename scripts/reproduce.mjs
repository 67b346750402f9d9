#!/usr/bin/env node
// `npm run reproduce [-- --mode fast|full] [--fresh] [--check N] [--jobs N] [--for DURATION]` (or --check=N, ...): remake the evidence
// behind every finding. `npm run setup` has already run (prereproduce).
//
//   1. sweeps      every findings grid into the mode's result store: protocol 1's (notebooks/grids/
//                  02, 03, 05), protocol 2's (p2_*, once the pilot has chosen), and notebook 06's where no GPU is here,
//                  running only the runs the store lacks (--fresh: start a new store; the old one
//                  is kept beside it as <store>.bak-<time>)
//   2. notebooks   every notebooks/*.ipynb in that mode; they read the store (all runs present,
//                  so they return at once), make notebook 04's benchmark if it is missing, and
//                  save their figures and tables. Full mode writes the outputs into the notebooks
//                  themselves (committed, so a reader sees the evidence without running anything);
//                  fast mode into build/notebooks.
//   3. protocol    figures/PROTOCOL.md from the pilot's store (the pilot's figures and choice)
//   4. claims      figures/CLAIMS.md from the store and the benchmark, with the figure behind
//                  each claim (`gmt-lab claims`)
//   5. gallery     figures/index.html and figures/README.md: every figure and table with its
//                  caption, notebook, paper section and claim (captions: kernel-lib's findings
//                  catalog); then opened offline in Chromium: every image must load and every
//                  interactive figure draw
//   6. check       re-runs --check (default 2) stored runs picked at random and compares their
//                  weights sha256 with the store's: same config, same machine build, same bits
//
// Full mode: data/results/ and figures/ (committed); fast mode: build/fast/.

import { existsSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs as nodeParseArgs } from 'node:util';
import { repoRoot } from './lib/env.mjs';
import { runNotebooks } from './notebooks.mjs';

const usage = `usage: npm run reproduce -- [--mode fast|full] [--fresh | --store-only] [--check N] [--jobs N] [--for DURATION]
  --mode        full (default): the sizes behind the committed evidence; fast: small budgets, build/fast/
  --fresh       ignore the store: move it aside (kept as .bak-<time>) and run every run again
  --store-only  make no runs: figures, notebooks and CLAIMS.md from what the store has (missing runs are counted)
  --check   stored runs to re-run for the same-weights check (default 2; 0 skips it)
  --jobs    runs in parallel (default: one per core)
  --for     start no run after this long (90m, 1h30m, 45s): the runs in progress finish and are stored,
            then the rest goes on from the store as with --store-only (the next reproduce continues)`;

// node:util's parser: `--check 4` and `--check=4`, switches without values, anything else an
// error. Its messages are long; each mistake is said here in one line naming the option.
function parseArgs(argv) {
  const spec = {
    mode: { type: 'string' }, fresh: { type: 'boolean' }, 'store-only': { type: 'boolean' },
    check: { type: 'string' }, jobs: { type: 'string' }, for: { type: 'string' }, help: { type: 'boolean', short: 'h' },
  };
  const known = Object.keys(spec).map((k) => `--${k}`).join(', ');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('-')) throw new Error(`unexpected argument ${JSON.stringify(a)}`);
    const name = a.replace(/^--?/, '').replace(/=.*$/, '');
    const key = name === 'h' ? 'help' : name;
    if (!spec[key]) throw new Error(`unknown option ${a.replace(/=.*$/, '')} (known: ${known})`);
    if (spec[key].type === 'boolean' && a.includes('=')) throw new Error(`--${key} is a switch and takes no value`);
    if (spec[key].type === 'string' && !a.includes('=')) {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) throw new Error(`--${key} needs a value, as --${key} V or --${key}=V`);
      i++;
    }
  }
  const { values, tokens } = nodeParseArgs({ args: argv, options: spec, strict: true, tokens: true });
  for (const key of Object.keys(spec)) {
    if (tokens.filter((t) => t.kind === 'option' && t.name === key).length > 1) throw new Error(`--${key} given more than once`);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const whole = (key, min) => {
    const raw = values[key];
    if (raw === undefined) return undefined;
    if (!/^\d+$/.test(raw) || Number(raw) < min) throw new Error(`--${key} must be a whole number ≥ ${min}, got ${JSON.stringify(raw)}`);
    return Number(raw);
  };
  const o = { mode: values.mode ?? 'full', fresh: values.fresh ?? false, storeOnly: values['store-only'] ?? false, check: whole('check', 0) ?? 2, jobs: whole('jobs', 1), for: values.for };
  if (o.mode !== 'fast' && o.mode !== 'full') throw new Error(`--mode must be one of fast, full; got ${JSON.stringify(o.mode)}`);
  if (o.fresh && o.storeOnly) throw new Error('--fresh and --store-only exclude each other');
  if (o.for !== undefined && o.storeOnly) throw new Error('--for and --store-only exclude each other (--store-only makes no runs)');
  return o;
}

let options;
try {
  options = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(`reproduce: ${e.message} (npm run reproduce -- --help lists the options)`);
  process.exit(2);
}
process.env.GMT_MODE = options.mode;
// Committed notebooks must not carry plotly.js (4.8 MB) in their outputs; they show the PNG and,
// where the frontend renders plotly, the interactive figure.
if (options.mode === 'full') process.env.GMT_PLOTLYJS = 'never';
// ... nor anything that changes from one run to the next (a progress bar's elapsed time), so that
// a reproduce on an unchanged store leaves them byte for byte as they were.
if (options.mode === 'full') process.env.GMT_STABLE_OUTPUT = '1';
// The notebooks' own sweeps then make nothing either.
if (options.storeOnly) process.env.GMT_STORE_ONLY = '1';

const gmt = await import(path.join(repoRoot, 'kernel-lib', 'dist', 'index.js'));
// --for: a deadline for starting runs, over all the grids; once it passes, the running runs
// finish and the rest of reproduce reads the store (the notebooks make no runs either).
let forMs;
try {
  forMs = options.for === undefined ? undefined : gmt.parseDuration(options.for, '--for');
} catch (e) {
  console.error(`reproduce: ${e.message} (npm run reproduce -- --help lists the options)`);
  process.exit(2);
}
const drain = new AbortController();
const drainNow = () => {
  if (drain.signal.aborted) return;
  console.log(`reproduce: --for ${options.for} is up: starting no more runs; the runs in progress finish, then the rest reads the store`);
  process.env.GMT_STORE_ONLY = '1';
  drain.abort();
};
const paths = gmt.findingsPaths(options.mode);
// Protocol 1's grids (notebooks 02, 03, 05), then protocol 2's (the pilot's choice: claims 1, 1b,
// 2 and forgetting on the native engine; claim 1's grid again at nano, for the size question), then notebook 06's ablations where they run on the CPU
// engine (no GPU here); on a GPU notebook 06 sweeps them itself, on that device.
// Protocol 2's grids are swept only once the pilot has chosen (figures/PROTOCOL.md) and the grid
// files are the ones `gmt-lab protocol --grids` writes from that choice.
const p2 = await gmt.protocolTwoReady(options.mode);
if (!p2.ready) console.log(`reproduce: protocol 2's grids are not swept: ${p2.reason}`);
const ablations = await gmt.gpuAblationPlan(options.mode);
const gridFiles = [
  ...Object.values(gmt.FINDINGS_GRIDS).sort(),
  // Claim 1's second stage once `gmt-lab protocol --grids` has written its grid (PROTOCOL.md).
  ...(p2.ready ? [...Object.values(gmt.PROTOCOL2_GRIDS), gmt.SIZE_TREND_GRID, ...(existsSync(path.join(paths.gridsDir, gmt.CLAIM1_STAGE2_GRID)) ? [gmt.CLAIM1_STAGE2_GRID] : [])] : []),
  ...(ablations.backend === 'webgpu' ? [] : [gmt.ABLATIONS_GRID]),
].map((f) => path.join(paths.gridsDir, f));
delete process.env.GMT_BACKEND; // the plan sets it for a GPU; the other sweeps and the re-check run on the host
const rel = (p) => path.relative(process.cwd(), p) || '.';
const seconds = (ms) => `${(ms / 1000).toFixed(0)} s`;

const steps = [
  {
    name: `sweeps (${options.mode} mode) into ${rel(paths.store)}`,
    run: async () => {
      if (options.fresh && existsSync(paths.store)) {
        const aside = `${paths.store}.bak-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        renameSync(paths.store, aside);
        console.log(`reproduce: --fresh: the old store is kept as ${rel(aside)}`);
      }
      // What the sweeps are about to make, before the first of them starts: a fresh clone of a
      // store still being filled can mean hours of runs, and a reader should know before waiting.
      if (!options.fresh) {
        const lacking = [];
        for (const file of gridFiles) {
          const s = await gmt.gridStatus(gmt.loadGrid(file), paths.store, { mode: options.mode });
          if (s.missing) lacking.push({ file: path.basename(file), s, ms: gmt.gridTimeLeftMs(s) });
        }
        const total = lacking.reduce((a, l) => a + l.s.missing, 0);
        const ms = lacking.reduce((a, l) => a + l.ms, 0);
        if (total === 0) console.log('reproduce: the store has every run of the grids; the sweeps make none');
        else {
          const each = lacking.map((l) => `${l.file} ${l.s.missing} of ${l.s.planned}${Number.isFinite(l.ms) ? ` (about ${gmt.formatDuration(l.ms)})` : ''}`).join(', ');
          console.log(`reproduce: the store lacks ${total} runs: ${each}` + (options.storeOnly
            ? '; --store-only makes none (the notebooks and CLAIMS.md show what is there, as interim where planned runs are missing)'
            : `; ${Number.isFinite(ms) ? `about ${gmt.formatDuration(ms)}` : 'how long is not known (a grid has no timed run yet)'} at the pace of the stored runs. Stopping (Ctrl-C) keeps every finished run: the next reproduce goes on from there, and --store-only makes none.`));
        }
      }
      const timer = forMs === undefined ? undefined : setTimeout(drainNow, forMs);
      let ran = 0;
      let skipped = 0;
      let failed = 0;
      let missing = 0;
      for (const file of gridFiles) {
        const grid = gmt.loadGrid(file);
        let last = 0;
        const outcome = await gmt.runSweep(grid, {
          store: paths.store, mode: options.mode, jobs: options.jobs, drain: drain.signal,
          onProgress: (p) => {
            const now = Date.now();
            if (p.last || now - last > 15000) {
              last = now;
              if (p.last) console.log(`  ${p.last.label}: ${p.last.status}${p.last.status === 'failed' ? ` (${p.last.error?.message})` : ''}`);
              console.log(`  sweep ${p.grid}: ${p.skipped + p.done + p.failed + p.diverged}/${p.total} (${p.skipped} from the store, ${p.failed} failed), ETA ${Number.isFinite(p.etaMs) ? seconds(p.etaMs) : '?'}`);
            }
          },
        });
        console.log(`reproduce: ${path.basename(file)}: ${outcome.planned.length} runs, ${outcome.ran} made now, ${outcome.skipped} from the store, ${outcome.failed} failed${outcome.missing ? `, ${outcome.missing} missing` : ''} (${seconds(outcome.elapsedMs)})`);
        ran += outcome.ran;
        skipped += outcome.skipped;
        failed += outcome.failed;
        missing += outcome.missing;
      }
      if (timer) clearTimeout(timer);
      if (failed) throw new Error(`${failed} runs failed; see their records in ${rel(paths.store)} (re-running retries them)`);
      return `${ran} runs made, ${skipped} taken from the store${missing ? `, ${missing} not in the store (${drain.signal.aborted ? `--for ${options.for}: the next reproduce makes them` : '--store-only'})` : ''}`;
    },
  },
  {
    name: `notebooks (GMT_MODE=${options.mode})`,
    run: async () => {
      const inplace = options.mode === 'full';
      const { ok, results } = await runNotebooks({ mode: options.mode, out: path.join(repoRoot, 'build', 'notebooks'), inplace });
      const failed = results.filter((r) => !r.ok);
      if (!ok) throw new Error(`${failed.length} of ${results.length} notebooks failed: ${failed.map((r) => r.notebook).join(', ')}`);
      const sizes = results.map((r) => `${path.basename(r.executed)} ${(statSync(r.executed).size / 2 ** 20).toFixed(2)} MB`);
      return `${results.length} notebooks executed${inplace ? ' (outputs written into notebooks/)' : ' (copies in build/notebooks/)'}: ${sizes.join(', ')}`;
    },
  },
  {
    name: 'protocol',
    run: async () => {
      const { file, chosen, runs } = await gmt.writeProtocol(options.mode);
      return `${rel(file)} from ${runs} pilot runs: ${chosen ? `the pilot chose ${chosen.candidate.id} (${chosen.candidate.name})` : 'no choice yet'}`;
    },
  },
  {
    name: 'claims',
    run: async () => {
      const { file, text, missing } = await gmt.writeClaims(options.mode);
      const verdicts = [...text.matchAll(/\*\*(reproduced|contradicted|not reproduced|inconclusive|no data)\*\*/g)].map((m) => m[1]);
      const count = verdicts.reduce((acc, v) => ({ ...acc, [v]: (acc[v] ?? 0) + 1 }), {});
      return `${rel(file)}: ${Object.entries(count).map(([v, n]) => `${n} ${v}`).join(', ')}${missing ? `; the store lacks ${missing} planned runs` : ''}`;
    },
  },
  {
    name: 'gallery',
    run: async () => {
      const gallery = gmt.writeGallery({ mode: options.mode });
      const check = await gmt.verifyGallery(gallery.index);
      if (check.problems.length) throw new Error(`the gallery does not open as it should:\n  ${check.problems.join('\n  ')}`);
      return `${rel(gallery.index)} and ${rel(gallery.readme)}: ${gallery.figures} figures, ${gallery.tables} tables; opened offline: ${check.images} images loaded, ${check.figures} interactive figures drawn`;
    },
  },
  {
    name: `same seed, same weights: ${options.check} stored runs made again`,
    run: async () => {
      if (options.check === 0) return 'skipped (--check 0)';
      if (drain.signal.aborted) return `skipped (--for ${options.for} is up)`;
      const check = await gmt.recheckRuns(gridFiles.map((f) => gmt.loadGrid(f)), paths.store, { count: options.check, mode: options.mode, seed: Date.now() % 2147483647 });
      for (const c of check) console.log(`  ${c.label}: stored ${c.stored.slice(0, 16)}…, now ${c.now.slice(0, 16)}… ${c.match ? 'match' : 'DIFFER'}`);
      const bad = check.filter((c) => !c.match);
      if (bad.length) throw new Error(`${bad.length} of ${check.length} re-made runs have other weights than their stored records`);
      return `${check.length} of ${check.length} re-made runs have the stored weights sha256`;
    },
  },
];

const t0 = performance.now();
for (const step of steps) {
  console.log(`\n== reproduce: ${step.name}`);
  try {
    console.log(`reproduce: ${step.name}: ${await step.run()}`);
  } catch (err) {
    console.error(`reproduce: ${step.name}: FAILED: ${err.message}`);
    process.exit(1);
  }
}
console.log(`\nreproduce: done in ${seconds(performance.now() - t0)}`);
