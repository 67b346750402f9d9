#!/usr/bin/env node
// Execute notebooks headless with the tslab kernel and fail loudly on anything a reader would
// see as broken (see scripts/nbrun.py for the exact rules).
//
//   node scripts/notebooks.mjs [--mode fast|full] [--out build/notebooks] [--timeout S]
//                              [--inplace] [paths...]
//
// Without paths, every notebooks/*.ipynb runs in file-name order. Each notebook gets a fresh
// kernel whose working directory is the notebook's folder and whose GMT_MODE is --mode.
// Executed copies go to --out (or over the sources with --inplace), also when a cell fails.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { findJupyterPython, jupyterEnv, kernelSpecFile, notebooksDir, repoRoot } from './lib/env.mjs';

/** Seconds a single cell may run, by mode, unless --timeout says otherwise. */
export const defaultCellTimeout = { fast: 600, full: 7200 };

const usage = `usage: node scripts/notebooks.mjs [--mode fast|full] [--out DIR] [--timeout S] [--inplace] [paths...]
  --mode      GMT_MODE for the kernels: fast (small budgets, default) or full (the paper-scale runs)
  --out       folder for the executed copies (default build/notebooks)
  --timeout   seconds one cell may run; 0 for no limit (default ${defaultCellTimeout.fast} fast, ${defaultCellTimeout.full} full)
  --inplace   write the executed notebooks over the sources instead of into --out
  paths       notebooks to run (default: notebooks/*.ipynb, sorted)`;

export class UsageError extends Error {}

/**
 * Parse the command line into options for {@link runNotebooks}.
 * @param {string[]} argv
 */
export function parseArgs(argv) {
  const options = { mode: 'fast', out: path.join(repoRoot, 'build', 'notebooks'), timeout: undefined, inplace: false, paths: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    if (arg === '--mode') options.mode = value();
    else if (arg === '--out') options.out = path.resolve(value());
    else if (arg === '--timeout') {
      const raw = value();
      const t = Number(raw);
      if (!Number.isFinite(t) || t < 0) throw new UsageError(`--timeout must be a number of seconds >= 0, got "${raw}"`);
      options.timeout = t;
    } else if (arg === '--inplace') options.inplace = true;
    else if (arg === '-h' || arg === '--help') throw new UsageError('');
    else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
    else options.paths.push(path.resolve(arg));
  }
  return options;
}

/** Every notebooks/*.ipynb, sorted by name. */
export function defaultNotebooks() {
  if (!existsSync(notebooksDir)) return [];
  return readdirSync(notebooksDir)
    .filter((name) => name.endsWith('.ipynb'))
    .sort()
    .map((name) => path.join(notebooksDir, name));
}

/**
 * Execute notebooks and report as described at the top of this file.
 * Output (progress, failures) goes to this process's stdout/stderr as it happens.
 * @param {{mode?: 'fast'|'full', out?: string, timeout?: number, inplace?: boolean, paths?: string[]}} options
 * @returns {Promise<{ok: boolean, results: {notebook: string, executed: string, ok: boolean, seconds: number, cell: number|null, reason: string|null}[]}>}
 */
export async function runNotebooks(options = {}) {
  const mode = options.mode ?? 'fast';
  if (mode !== 'fast' && mode !== 'full') throw new UsageError(`--mode must be fast or full, got "${mode}"`);
  const out = path.resolve(options.out ?? path.join(repoRoot, 'build', 'notebooks'));
  const timeout = options.timeout ?? defaultCellTimeout[mode];
  const paths = options.paths?.length ? options.paths : defaultNotebooks();

  for (const p of paths) {
    if (!p.endsWith('.ipynb')) throw new UsageError(`not a notebook (expected .ipynb): ${p}`);
    if (!existsSync(p) || !statSync(p).isFile()) throw new UsageError(`notebook not found: ${p}`);
  }
  if (!options.inplace) {
    const seen = new Map();
    for (const p of paths) {
      const name = path.basename(p);
      if (seen.has(name)) throw new UsageError(`two notebooks would be written to ${path.join(out, name)}: ${seen.get(name)} and ${p}`);
      seen.set(name, p);
    }
  }
  if (paths.length === 0) {
    console.log('notebooks: none to run');
    return { ok: true, results: [] };
  }
  if (!existsSync(kernelSpecFile)) {
    throw new UsageError(`the tslab kernelspec is missing (${kernelSpecFile}); run \`npm run setup\` first`);
  }
  const python = findJupyterPython();
  if (!python) throw new UsageError('no python3 with nbclient and jupyter_client found; run `npm run setup` first');

  const tmp = mkdtempSync(path.join(os.tmpdir(), 'gmt-nbrun-'));
  const summary = path.join(tmp, 'summary.json');
  const args = [
    path.join(repoRoot, 'scripts', 'nbrun.py'),
    '--out', out,
    '--timeout', String(timeout),
    '--summary', summary,
    '--label-root', process.cwd(),
    ...(options.inplace ? ['--inplace'] : []),
    ...paths,
  ];
  console.log(`notebooks: ${paths.length} in ${mode} mode (cell timeout ${timeout ? `${timeout} s` : 'none'})`);
  try {
    const code = await new Promise((resolve, reject) => {
      const child = spawn(python, args, {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: jupyterEnv(process.env, { GMT_MODE: mode, PYTHONUNBUFFERED: '1' }),
      });
      child.on('error', reject);
      child.on('exit', (status, signal) => resolve(status ?? (signal ? 128 : 1)));
    });
    const results = existsSync(summary) ? JSON.parse(readFileSync(summary, 'utf8')) : [];
    if (results.length !== paths.length) {
      // nbrun.py itself broke; count every notebook it did not report as failed.
      for (const p of paths.slice(results.length)) {
        results.push({ notebook: p, executed: '', ok: false, seconds: 0, cell: null, reason: `runner exited with ${code}` });
      }
    }
    return { ok: code === 0 && results.every((r) => r.ok), results };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function main() {
  try {
    const options = parseArgs(process.argv.slice(2));
    const { ok, results } = await runNotebooks(options);
    const failed = results.filter((r) => !r.ok).length;
    if (results.length) {
      console.log(`notebooks: ${results.length - failed} passed, ${failed} failed; executed copies in ${options.inplace ? 'place' : path.relative(process.cwd(), options.out) || '.'}`);
    }
    process.exit(ok ? 0 : 1);
  } catch (err) {
    if (err instanceof UsageError) {
      if (!err.message) {
        console.log(usage);
        process.exit(0);
      }
      console.error(`notebooks: ${err.message}`);
      console.error(usage);
      process.exit(2);
    }
    throw err;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
