#!/usr/bin/env node
// One-time (and idempotent) setup of a gmt-lab checkout. Runs before `npm test`, `npm run
// reproduce`, `npm run bench` and `npm run lab`, so it must be quick when nothing changed and it
// may only use Node builtins (node_modules may not exist yet).
//
// Steps, one line of output each:
//   1. npm packages   `npm ci` when node_modules is missing or older than the lockfile/manifests
//   2. system         Debian python3-nbclient, chromium, jupyter-notebook and redis-server (apt-get when root, else a message)
//   2b. webgpu        Mesa 25 lavapipe + libvulkan1, a WebGPU adapter on the CPU (bookworm-backports on Debian 12)
//   3. jupyter python an interpreter that imports nbclient + jupyter_client
//   2c. toolchain     gcc (the native engine) and clang-19/lld-19/llvm-19 (the wasm kernels' check), as root
//   4. kernel-lib     compile to kernel-lib/dist when a source is newer than the last build
//   4b. native        build the native engine for this CPU (scripts/build-native.mjs) when its sources changed
//   5. kernelspec     <repo>/.jupyter/kernels/tslab/kernel.json with this checkout's paths

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  aptInstallCommand,
  debianPackageInstalled,
  debianPackages,
  debianToolchainPackages,
  findRedisServer,
  findChromium,
  findJupyterPython,
  kernelSpecFile,
  repoRoot,
  tscBin,
  tslabBin,
} from './lib/env.mjs';
import { findJupyterServer } from './lib/lab.mjs';
import { buildNative } from './build-native.mjs';

const nodeModules = path.join(repoRoot, 'node_modules');
const npmStamp = path.join(nodeModules, '.gmt-lab-install-stamp');
const kernelLib = path.join(repoRoot, 'kernel-lib');
const buildStamp = path.join(kernelLib, 'dist', '.gmt-lab-build-stamp');

class SetupError extends Error {}

function say(line) {
  console.log(`setup: ${line}`);
}

/** Run a command with inherited output; throw SetupError naming it when it fails. */
function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: repoRoot, ...options });
  if (r.error) throw new SetupError(`could not start ${cmd}: ${r.error.message}`);
  return r.status ?? 1;
}

function elapsed(t0) {
  return `${((performance.now() - t0) / 1000).toFixed(1)} s`;
}

// ---------------------------------------------------------------------------------------------
// 1. npm packages

/** Manifest files whose content decides what `npm ci` installs. */
function manifestFiles() {
  const files = ['package-lock.json', 'package.json'];
  const root = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
  const workspaces = Array.isArray(root.workspaces) ? root.workspaces : (root.workspaces?.packages ?? []);
  for (const pattern of workspaces) {
    // npm accepts globs; the simple `dir/*` form is the only one expanded here.
    const dirs = pattern.endsWith('/*')
      ? readdirSync(path.join(repoRoot, pattern.slice(0, -2)), { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => path.join(pattern.slice(0, -2), d.name))
      : [pattern];
    for (const dir of dirs.sort()) {
      if (existsSync(path.join(repoRoot, dir, 'package.json'))) files.push(path.join(dir, 'package.json'));
    }
  }
  return files;
}

function manifestHash() {
  const hash = createHash('sha256');
  for (const file of manifestFiles()) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(path.join(repoRoot, file)));
    hash.update('\0');
  }
  return hash.digest('hex');
}

function stepNpm() {
  const want = manifestHash();
  const have = existsSync(npmStamp) ? readFileSync(npmStamp, 'utf8').trim() : null;
  if (have === want) {
    say('npm packages up to date');
    return;
  }
  // npm ci empties node_modules first: where it is a link (a second checkout sharing the
  // first's packages), that would empty the other checkout's folder.
  if (existsSync(nodeModules) && lstatSync(nodeModules).isSymbolicLink()) {
    throw new SetupError(`node_modules is a link to ${realpathSync(nodeModules)}, and npm ci (the package files changed) would empty that folder, which another checkout uses; run npm ci where it points, or replace the link with a folder of this checkout's own`);
  }
  const t0 = performance.now();
  say(existsSync(nodeModules) ? 'npm packages stale (package files changed): npm ci' : 'installing npm packages: npm ci');
  // Under `npm run`, npm_execpath is the npm that started us; use the same one.
  const npmCli = process.env.npm_execpath;
  const status = npmCli && /npm-cli\.js$/.test(npmCli)
    ? run(process.execPath, [npmCli, 'ci', '--no-audit', '--no-fund'])
    : run('npm', ['ci', '--no-audit', '--no-fund']);
  if (status !== 0) throw new SetupError(`npm ci failed (exit ${status})`);
  writeFileSync(npmStamp, `${want}\n`);
  say(`npm packages installed (${elapsed(t0)})`);
}

// ---------------------------------------------------------------------------------------------
// 2. Debian packages

/** True when the package's job is done, by dpkg or by an equivalent found some other way. */
function systemPackagePresent(name) {
  if (debianPackageInstalled(name)) return true;
  if (name === 'python3-nbclient') return findJupyterPython() !== null;
  if (name === 'chromium') return findChromium() !== null;
  if (name === 'jupyter-notebook') return findJupyterServer() !== null;
  if (name === 'redis-server') return findRedisServer() !== null;
  return false;
}

function aptGet(args) {
  // Lock timeout: another apt run (unattended upgrades, a parallel setup) should be waited
  // for, not reported as a failure.
  return run('apt-get', ['-o', 'DPkg::Lock::Timeout=600', ...args], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

function aptHasCandidates(names) {
  const r = spawnSync('apt-cache', ['policy', ...names], { encoding: 'utf8' });
  if (r.status !== 0) return false;
  const candidates = [...r.stdout.matchAll(/Candidate:\s*(\S+)/g)].map((m) => m[1]);
  return candidates.length === names.length && candidates.every((c) => c !== '(none)');
}

function stepSystemPackages() {
  const missing = debianPackages.filter((p) => !systemPackagePresent(p.name)).map((p) => p.name);
  if (missing.length === 0) {
    say(`system packages present (${debianPackages.map((p) => p.name).join(', ')})`);
    return;
  }
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    const lines = debianPackages.filter((p) => missing.includes(p.name)).map((p) => `  ${p.name}: ${p.why}`);
    throw new SetupError(
      `missing system packages:\n${lines.join('\n')}\n` +
        `Install them as root, then run this again:\n  sudo sh -c '${aptInstallCommand(missing)}'\n` +
        '(Not on Debian? A python3 with nbclient and jupyter_client, named by GMT_PYTHON, a Chromium ' +
        'named by CHROMIUM_PATH, and a redis-server named by REDIS_SERVER do the same job.)',
    );
  }
  const t0 = performance.now();
  say(`installing system packages: ${missing.join(' ')}`);
  let updated = false;
  if (!aptHasCandidates(missing)) {
    if (aptGet(['update']) !== 0) throw new SetupError('apt-get update failed');
    updated = true;
  }
  const install = ['install', '-y', '--no-install-recommends', ...missing];
  if (aptGet(install) !== 0) {
    // Stale package lists give 404s on download; refresh them once and retry.
    if (updated) throw new SetupError(`apt-get install ${missing.join(' ')} failed`);
    if (aptGet(['update']) !== 0) throw new SetupError('apt-get update failed');
    if (aptGet(install) !== 0) throw new SetupError(`apt-get install ${missing.join(' ')} failed`);
  }
  say(`system packages installed (${elapsed(t0)})`);
}

// ---------------------------------------------------------------------------------------------
// 2b. A WebGPU adapter on every machine: Mesa's lavapipe (Vulkan on the CPU) from Mesa 25, which
// Dawn accepts (Debian 12's own Mesa 22.3 offers no adapter: it lacks the dynamic indexing Dawn
// requires). On Debian 12 it comes from bookworm-backports through a private apt configuration
// under build/, so the system's apt sources stay as they are. A real GPU's Vulkan driver is used
// instead wherever one is installed.

function installedVersion(name) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status} ${Version}', name], { encoding: 'utf8' });
  const m = /install ok installed (\S+)/.exec(r.stdout ?? '');
  return r.status === 0 && m ? m[1] : null;
}

function debianCodename() {
  try {
    return /^VERSION_CODENAME=(\S+)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** The Debian mirror the system already uses (deb822 or one-line sources), else deb.debian.org. */
function debianMirror() {
  for (const file of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    const m = /^URIs:\s*(\S+debian)\/?\s*$/m.exec(text) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+debian)\/?\s+bookworm\s/m.exec(text);
    if (m) return m[1];
  }
  return 'http://deb.debian.org/debian';
}

function stepWebgpuAdapter() {
  const mesa = installedVersion('mesa-vulkan-drivers');
  if (mesa && Number(/^(?:\d+:)?(\d+)/.exec(mesa)?.[1]) >= 25 && installedVersion('libvulkan1')) {
    say(`WebGPU software adapter present (Mesa lavapipe ${mesa})`);
    return;
  }
  const codename = debianCodename();
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const t0 = performance.now();
  if (codename === 'bookworm') {
    const dir = path.join(repoRoot, 'build', 'apt-backports');
    const o = (k, v) => ['-o', `${k}=${v}`];
    const opts = [
      ...o('Dir::Etc::SourceList', path.join(dir, 'sources.list')), ...o('Dir::Etc::SourceParts', '/dev/null'),
      ...o('Dir::State::Lists', path.join(dir, 'lists')), ...o('Dir::Cache', path.join(dir, 'cache')),
    ];
    const install = [...opts, 'install', '-y', '--no-install-recommends', 'mesa-vulkan-drivers/bookworm-backports', 'libvulkan1'];
    if (!isRoot) {
      throw new SetupError(
        `the WebGPU tests need Mesa 25's lavapipe (a Vulkan driver on the CPU; found ${mesa ?? 'no mesa-vulkan-drivers'}). As root, run this once, then setup again:\n` +
          `  sudo node scripts/setup.mjs --only webgpu`,
      );
    }
    say(`installing the WebGPU software adapter: mesa-vulkan-drivers from bookworm-backports (was ${mesa ?? 'not installed'}), libvulkan1`);
    mkdirSync(path.join(dir, 'lists', 'partial'), { recursive: true });
    mkdirSync(path.join(dir, 'cache', 'archives', 'partial'), { recursive: true });
    const mirror = debianMirror();
    writeFileSync(path.join(dir, 'sources.list'), `deb ${mirror} bookworm main\ndeb ${mirror} bookworm-backports main\n`);
    if (aptGet([...opts, 'update']) !== 0) throw new SetupError(`apt-get update of ${mirror} bookworm-backports failed`);
    if (aptGet(install) !== 0) throw new SetupError('apt-get install mesa-vulkan-drivers/bookworm-backports libvulkan1 failed');
  } else {
    // Debian 13 and later carry Mesa ≥ 25 in the main archive.
    if (!isRoot) throw new SetupError(`the WebGPU tests need Mesa ≥ 25's lavapipe: run as root  ${aptInstallCommand(['mesa-vulkan-drivers', 'libvulkan1'])}`);
    say('installing the WebGPU software adapter: mesa-vulkan-drivers libvulkan1');
    if (aptGet(['install', '-y', '--no-install-recommends', 'mesa-vulkan-drivers', 'libvulkan1']) !== 0) throw new SetupError('apt-get install mesa-vulkan-drivers libvulkan1 failed');
    const got = installedVersion('mesa-vulkan-drivers');
    if (!got || Number(/^(?:\d+:)?(\d+)/.exec(got)?.[1]) < 25) throw new SetupError(`mesa-vulkan-drivers ${got} is older than 25; Dawn gets no adapter from it`);
  }
  say(`WebGPU software adapter installed (Mesa lavapipe ${installedVersion('mesa-vulkan-drivers')}, ${elapsed(t0)})`);
}

// ---------------------------------------------------------------------------------------------
// 2c. The kernel toolchain: optional, so only installed as root (a missing one is one line).

function onPath(bin) {
  return spawnSync(bin, ['--version'], { stdio: 'ignore' }).status === 0;
}

function stepToolchain() {
  const missing = debianToolchainPackages.filter((p) => !onPath(p.bin) && !debianPackageInstalled(p.name));
  if (missing.length === 0) {
    say(`kernel toolchain present (${debianToolchainPackages.map((p) => p.name).join(', ')})`);
    return;
  }
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const names = missing.map((p) => p.name);
  if (!isRoot) {
    say(`kernel toolchain: ${names.join(', ')} missing (${missing.map((p) => p.why).join('; ')}); as root: ${aptInstallCommand(names)}`);
    return;
  }
  const t0 = performance.now();
  say(`installing the kernel toolchain: ${names.join(' ')}`);
  const install = ['install', '-y', '--no-install-recommends', ...names];
  if (aptGet(install) !== 0 && (aptGet(['update']) !== 0 || aptGet(install) !== 0)) {
    say(`kernel toolchain: apt-get install ${names.join(' ')} failed; the lab goes on without it`);
    return;
  }
  say(`kernel toolchain installed (${elapsed(t0)})`);
}

// ---------------------------------------------------------------------------------------------
// 3. Jupyter-capable python

function stepPython() {
  const python = findJupyterPython();
  if (!python) {
    throw new SetupError(
      'no python3 on this machine imports nbclient and jupyter_client ' +
        `(tried /usr/bin/python3 and every python3 on PATH).\nInstall them: ${aptInstallCommand(['python3-nbclient'])}\n` +
        'or point GMT_PYTHON at an interpreter that has them.',
    );
  }
  say(`jupyter python: ${python}`);
  return python;
}

// ---------------------------------------------------------------------------------------------
// 4. kernel-lib build

/** Files whose change requires a rebuild, with their mtimes. */
function buildInputs() {
  const inputs = [path.join(repoRoot, 'tsconfig.json'), path.join(kernelLib, 'tsconfig.json'), path.join(kernelLib, 'package.json')];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) inputs.push(full);
    }
  };
  walk(path.join(kernelLib, 'src'));
  return inputs.filter((f) => existsSync(f)).sort();
}

/**
 * npm links a workspace's bin only if the file exists at install time, and `dist/` is built after
 * `npm ci`; link `gmt-lab` ourselves so that `npx gmt-lab` works in a fresh checkout.
 */
function linkBin() {
  const target = path.join(kernelLib, 'dist', 'cli', 'main.js');
  if (!existsSync(target)) return;
  chmodSync(target, 0o755);
  const binDir = path.join(repoRoot, 'node_modules', '.bin');
  const link = path.join(binDir, 'gmt-lab');
  const rel = path.relative(binDir, target);
  let current;
  try {
    current = readlinkSync(link);
  } catch {
    current = undefined;
  }
  if (current === rel) return;
  mkdirSync(binDir, { recursive: true });
  rmSync(link, { force: true });
  symlinkSync(rel, link);
}

function stepBuild() {
  try {
    buildKernelLib();
  } finally {
    linkBin();
  }
}

function buildKernelLib() {
  const inputs = buildInputs();
  const fileList = inputs.map((f) => path.relative(repoRoot, f)).join('\n');
  if (existsSync(buildStamp) && existsSync(path.join(kernelLib, 'dist', 'index.js'))) {
    const stampTime = statSync(buildStamp).mtimeMs;
    const sameFiles = readFileSync(buildStamp, 'utf8') === fileList;
    if (sameFiles && inputs.every((f) => statSync(f).mtimeMs < stampTime)) {
      say('kernel-lib build up to date');
      return;
    }
  }
  const t0 = performance.now();
  say('building kernel-lib (tsc -p kernel-lib)');
  // Record the time before compiling so a source saved during the build triggers the next one.
  const startedAt = new Date();
  const status = run(process.execPath, [tscBin, '-p', 'kernel-lib']);
  if (status === 2) {
    // Type errors, but JavaScript was emitted: notebooks can still run, and `npm test` fails
    // its typecheck step. No stamp, so the next setup compiles again.
    say(`kernel-lib built WITH TYPE ERRORS (see above) (${elapsed(t0)})`);
    return;
  }
  if (status !== 0) throw new SetupError(`tsc -p kernel-lib failed (exit ${status})`);
  writeFileSync(buildStamp, fileList);
  utimesSync(buildStamp, startedAt, startedAt);
  say(`kernel-lib built (${elapsed(t0)})`);
}

// ---------------------------------------------------------------------------------------------
// 4b. The native engine: never fatal; without it the wasm engine computes (one line says why).

function stepNative() {
  const m = buildNative({ quiet: true });
  if (m.error) say(`native engine not built: ${m.error}; the wasm engine will be used`);
  else say(`native engine: ${m.isa} kernels, build ${m.buildId} (${m.compiler})`);
}

// ---------------------------------------------------------------------------------------------
// 5. tslab kernelspec

function stepKernelSpec() {
  if (!existsSync(tslabBin)) throw new SetupError(`tslab is missing at ${tslabBin}; run npm ci`);
  // Same argv as tslab's own `install` (python/install.py), with node named explicitly so the
  // kernel starts even when Jupyter's PATH lacks this node.
  const spec = {
    argv: [process.execPath, tslabBin, 'kernel', '--config-path', '{connection_file}'],
    display_name: 'TypeScript (gmt-lab)',
    language: 'typescript',
  };
  const text = `${JSON.stringify(spec, null, 2)}\n`;
  if (existsSync(kernelSpecFile) && readFileSync(kernelSpecFile, 'utf8') === text) {
    say(`tslab kernelspec up to date (${path.relative(repoRoot, kernelSpecFile)})`);
    return;
  }
  mkdirSync(path.dirname(kernelSpecFile), { recursive: true });
  writeFileSync(kernelSpecFile, text);
  say(`tslab kernelspec written to ${path.relative(repoRoot, kernelSpecFile)} (use JUPYTER_PATH=${path.dirname(path.dirname(path.dirname(kernelSpecFile)))})`);
}

// ---------------------------------------------------------------------------------------------

const steps = { npm: stepNpm, system: stepSystemPackages, webgpu: stepWebgpuAdapter, toolchain: stepToolchain, python: stepPython, build: stepBuild, native: stepNative, kernelspec: stepKernelSpec };
const args = process.argv.slice(2);
// `--only <step>` runs one step (to retry it, or to test it in isolation).
let selected = Object.keys(steps);
if (args.length) {
  if (args.length !== 2 || args[0] !== '--only' || !(args[1] in steps)) {
    console.error(`usage: node scripts/setup.mjs [--only ${Object.keys(steps).join('|')}]`);
    process.exit(2);
  }
  selected = [args[1]];
}

const t0 = performance.now();
try {
  for (const name of selected) steps[name]();
  say(`done (${elapsed(t0)})`);
} catch (err) {
  if (err instanceof SetupError) {
    console.error(`setup: FAILED: ${err.message}`);
    process.exit(1);
  }
  throw err;
}
