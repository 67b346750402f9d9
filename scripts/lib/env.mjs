// Environment discovery shared by setup, the notebook runner, the test driver and the lab
// launcher. Node builtins only: setup imports this before node_modules exists.

import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of the repository root (the folder holding package.json). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Project-local Jupyter data dir; holds kernels/tslab/kernel.json. Git-ignored. */
export const jupyterDataDir = path.join(repoRoot, '.jupyter');

/** Where setup writes the tslab kernelspec. */
export const kernelSpecFile = path.join(jupyterDataDir, 'kernels', 'tslab', 'kernel.json');

/** TypeScript's own compiler entry (tslab puts a different `tsc` into node_modules/.bin). */
export const tscBin = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');

/** The tslab launcher script that the kernelspec starts. */
export const tslabBin = path.join(repoRoot, 'node_modules', 'tslab', 'bin', 'tslab');

/** Folder of the notebooks, in teaching order by file name. */
export const notebooksDir = path.join(repoRoot, 'notebooks');

/** Debian packages the lab needs, and why. */
export const debianPackages = [
  { name: 'python3-nbclient', why: 'runs notebooks headless (brings jupyter-client and nbformat)' },
  { name: 'chromium', why: 'exports figures to PNG/SVG and drives the lab in the browser test' },
  { name: 'jupyter-notebook', why: 'the lab server (npm run lab) and its browser test' },
  { name: 'redis-server', why: 'the job queue of sweeps across machines (gmt-lab worker) and its test; installed stopped, only tests start it, on loopback' },
];

/**
 * Debian packages of the kernel toolchain, installed by setup when it runs as root and skipped
 * with one line otherwise: the lab works without them (on the wasm engine, and without the check
 * that the committed wasm binaries match their source).
 */
export const debianToolchainPackages = [
  { name: 'gcc', bin: 'gcc', why: 'builds the native engine (the kernels compiled for this CPU) at setup' },
  { name: 'clang-19', bin: 'clang-19', why: 'rebuilds the wasm kernels from the shared source, to check the committed binaries match it' },
  { name: 'lld-19', bin: 'wasm-ld-19', why: 'links the wasm kernels (with clang-19)' },
  { name: 'llvm-19', bin: 'llvm-objdump-19', why: 'checks the wasm kernels own no memory (with clang-19)' },
];

/** The redis-server binary: REDIS_SERVER, else Debian's /usr/bin/redis-server; null when absent. */
export function findRedisServer() {
  const candidate = process.env.REDIS_SERVER?.trim() || '/usr/bin/redis-server';
  return existsSync(candidate) ? candidate : null;
}

/**
 * Environment for a process that talks to Jupyter: JUPYTER_PATH starts with the project's
 * `.jupyter` so the `tslab` kernelspec written by setup is found without touching the user's
 * own Jupyter configuration.
 * @param {NodeJS.ProcessEnv} [base]
 * @param {Record<string, string>} [extra]
 */
export function jupyterEnv(base = process.env, extra = {}) {
  const rest = (base.JUPYTER_PATH ?? '').split(path.delimiter).filter((p) => p && p !== jupyterDataDir);
  return { ...base, JUPYTER_PATH: [jupyterDataDir, ...rest].join(path.delimiter), ...extra };
}

/** True when `file` exists and is executable. */
function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Every executable called `name` on PATH, in PATH order, without duplicates.
 * @param {string} name
 * @returns {string[]}
 */
export function whichAll(name) {
  const found = [];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, name);
    if (isExecutable(file) && !found.includes(file)) found.push(file);
  }
  return found;
}

/** First executable called `name` on PATH, or null. */
export function which(name) {
  return whichAll(name)[0] ?? null;
}

/**
 * True when `python` can import the modules the runner needs.
 * @param {string} python
 */
export function pythonHasJupyter(python) {
  const r = spawnSync(python, ['-c', 'import nbclient, jupyter_client, nbformat'], {
    stdio: 'ignore',
    timeout: 30_000,
  });
  return r.status === 0;
}

/**
 * A Python interpreter that can import nbclient and jupyter_client, or null.
 *
 * `/usr/bin/python3` comes first because Debian's python3-nbclient installs there, and the first
 * `python3` on PATH is often a pyenv or venv interpreter without Jupyter. GMT_PYTHON overrides.
 * @returns {string | null}
 */
export function findJupyterPython() {
  const candidates = [];
  if (process.env.GMT_PYTHON) candidates.push(process.env.GMT_PYTHON);
  candidates.push('/usr/bin/python3', ...whichAll('python3'));
  const tried = new Set();
  for (const candidate of candidates) {
    let key = candidate;
    try {
      key = realpathSync(candidate);
    } catch {
      continue;
    }
    if (tried.has(key)) continue;
    tried.add(key);
    if (pythonHasJupyter(candidate)) return candidate;
  }
  return null;
}

/**
 * Installation state of a Debian package: true/false, or null when dpkg is not available.
 * @param {string} name
 */
export function debianPackageInstalled(name) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', name], { encoding: 'utf8' });
  if (r.error) return null;
  return r.status === 0 && /\binstall ok installed\b/.test(r.stdout);
}

/**
 * The Chromium that figure export uses, or null: CHROMIUM_PATH when set (any Chromium or Chrome
 * build), else Debian's /usr/bin/chromium. kernel-lib's plots/export.ts reads the same variable.
 */
export function findChromium() {
  const candidate = process.env.CHROMIUM_PATH?.trim() || '/usr/bin/chromium';
  return isExecutable(candidate) ? candidate : null;
}

/** The apt-get command line that installs the given Debian packages. */
export function aptInstallCommand(names) {
  return `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${names.join(' ')}`;
}
