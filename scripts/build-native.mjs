#!/usr/bin/env node
// Builds the native engine: kernel-lib/kernels/native-addon.c (which includes the kernel source
// the wasm engine is built from, gpt-kernels.c) compiled for this machine's vector ISA by the
// system C compiler, as a Node-API addon against the headers that ship with Node itself. Nothing
// is downloaded. Run by `npm run setup`; quick when nothing changed.
//
//   kernel-lib/native/gmt-kernels-<isa>.node   the addon
//   kernel-lib/native/manifest.json            what was built (ISA, compiler, flags, build id),
//                                              or why nothing was: the engine loader reads it
//
// The ISA: AVX-512 (F, BW, DQ, VL) with FMA → -march=x86-64-v4; AVX2 with FMA → x86-64-v3; arm64
// → armv8-a (NEON). -ffp-contract=off: only the kernels' explicit multiply-adds are fused, so the
// arithmetic is what the source says. The build id is a sha256 of what decides the arithmetic:
// the kernel source (gpt-kernels.c, simd.h), the compiler's version and the flags; sweeps put it
// in every run key. native-addon.c (Node-API glue, thread pool, self-test) is left out: how it
// splits work among threads leaves every result unchanged (kernel-lib/test/native.test.ts).
//
// Usage: node scripts/build-native.mjs [--force] [--isa avx512|avx2|neon] [--out DIR] [--quiet] [--define NAME]
//   --isa builds another ISA this machine can run (the tests build avx2 beside avx512);
//   --define adds -DNAME (the tests build one with GMT_SELF_TEST_SABOTAGE, whose GEMM is wrong on
//   purpose, to see the loader refuse it).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
export const kernelsDir = path.join(root, 'kernel-lib', 'kernels');
export const nativeDir = path.join(root, 'kernel-lib', 'native');
const SOURCES = ['native-addon.c', 'gpt-kernels.c', 'simd.h'];

/** ISA name → compiler flags. */
export const ISA_FLAGS = {
  avx512: ['-march=x86-64-v4'],
  avx2: ['-march=x86-64-v3'],
  neon: ['-march=armv8-a'],
};
const BASE_FLAGS = ['-O3', '-std=gnu11', '-fPIC', '-shared', '-pthread', '-ffp-contract=off', '-fno-plt', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Werror'];

/** CPU feature flags of this machine (x86-64 Linux: /proc/cpuinfo), or null. */
function cpuFlags() {
  try {
    const m = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? new Set(m[1].trim().split(/\s+/)) : null;
  } catch {
    return null;
  }
}

/** The best ISA this machine runs, or { reason } when the native engine has none here. */
export function hostIsa() {
  if (process.arch === 'arm64') return { isa: 'neon' };
  if (process.arch !== 'x64') return { reason: `no native kernels for ${process.arch} (x64 with AVX2 or AVX-512, arm64)` };
  const f = cpuFlags();
  if (!f) return { reason: 'cannot read the CPU features (/proc/cpuinfo)' };
  if (['avx512f', 'avx512dq', 'avx512bw', 'avx512vl', 'fma'].every((x) => f.has(x))) return { isa: 'avx512' };
  if (['avx2', 'fma'].every((x) => f.has(x))) return { isa: 'avx2' };
  return { reason: 'this CPU has neither AVX2 with FMA nor AVX-512' };
}

/** The C compiler: $CC, else cc, else gcc; with the first line of its --version. */
export function findCompiler() {
  for (const cc of [process.env.CC, 'cc', 'gcc'].filter(Boolean)) {
    const r = spawnSync(cc, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return { cc, version: r.stdout.split('\n')[0].trim() };
  }
  return null;
}

/** Node's own headers (node_api.h), shipped with Node in <prefix>/include/node. */
export function nodeHeaders() {
  const dir = path.join(path.dirname(process.execPath), '..', 'include', 'node');
  return existsSync(path.join(dir, 'node_api.h')) ? path.resolve(dir) : null;
}

/** Bumped when what this script writes changes, so that existing builds are redone. */
const SCHEME = 2;

function sourceDigest(compiler, flags) {
  const h = createHash('sha256');
  h.update(`scheme ${SCHEME}\0`);
  for (const f of SOURCES) h.update(readFileSync(path.join(kernelsDir, f)));
  h.update(`${compiler}\0${flags.join(' ')}\0${process.versions.node}`);
  return h.digest('hex');
}

/** The build id: a digest of what decides the kernels' arithmetic (see the file comment). */
function arithmeticId(compiler, flags) {
  const h = createHash('sha256');
  for (const f of ['gpt-kernels.c', 'simd.h']) h.update(readFileSync(path.join(kernelsDir, f))).update('\0');
  h.update(`${compiler}\0${flags.join(' ')}`);
  return h.digest('hex').slice(0, 12);
}

function writeManifest(dir, manifest) {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'manifest.json');
  writeFileSync(`${file}.tmp`, `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

/**
 * Builds the addon unless an up-to-date one exists. Returns the manifest written:
 * `{ isa, file, buildId, compiler, flags, sourceDigest }` or `{ error }` (one line, why not).
 */
export function buildNative({ force = false, isa: wantIsa, out = nativeDir, quiet = false, defines = [] } = {}) {
  const say = (line) => { if (!quiet) console.log(`build-native: ${line}`); };
  const host = wantIsa ? { isa: wantIsa } : hostIsa();
  if (!host.isa) return failed(out, host.reason);
  const isa = host.isa;
  if (!ISA_FLAGS[isa]) return failed(out, `unknown ISA ${isa} (${Object.keys(ISA_FLAGS).join(', ')})`);
  const compiler = findCompiler();
  if (!compiler) return failed(out, 'no C compiler (cc or gcc; on Debian: apt-get install gcc)');
  const headers = nodeHeaders();
  if (!headers) return failed(out, `Node's headers are missing (${path.join(path.dirname(process.execPath), '..', 'include', 'node')}/node_api.h)`);
  const flags = [...BASE_FLAGS, ...ISA_FLAGS[isa], ...defines.map((d) => `-D${d}`)];
  const digest = sourceDigest(compiler.version, flags);
  const file = path.join(out, `gmt-kernels-${isa}.node`);
  const manifestFile = path.join(out, 'manifest.json');
  if (!force && existsSync(file) && existsSync(manifestFile)) {
    try {
      const m = JSON.parse(readFileSync(manifestFile, 'utf8'));
      if (m.sourceDigest === digest && m.isa === isa) {
        say(`up to date (${isa}, build ${m.buildId})`);
        return m;
      }
    } catch { /* rebuild */ }
  }
  mkdirSync(out, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const args = [...flags, `-DGMT_BUILD_FLAGS="${ISA_FLAGS[isa].join(' ')} -O3 -ffp-contract=off"`, `-I${headers}`, `-I${kernelsDir}`, '-o', tmp, path.join(kernelsDir, 'native-addon.c')];
  if (process.platform === 'darwin') args.push('-undefined', 'dynamic_lookup');
  const t0 = performance.now();
  const r = spawnSync(compiler.cc, args, { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    const first = `${r.stderr ?? ''}${r.error?.message ?? ''}`.split('\n').find((l) => /error/i.test(l)) ?? `exit ${r.status}`;
    return failed(out, `${compiler.cc} could not build the ${isa} kernels: ${first.trim()}`);
  }
  renameSync(tmp, file);
  const buildId = arithmeticId(compiler.version, flags);
  const manifest = { isa, file: path.basename(file), buildId, compiler: compiler.version, flags: flags.join(' '), sourceDigest: digest, node: process.versions.node, built: new Date().toISOString() };
  writeManifest(out, manifest);
  say(`built ${path.relative(root, file)} (${isa}, ${compiler.version}, build ${buildId}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return manifest;

  function failed(dir, error) {
    writeManifest(dir, { error, host: `${os.platform()} ${process.arch}` });
    say(`native engine not built: ${error}; the wasm engine will be used`);
    return { error };
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  const opt = (name) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const valued = ['--isa', '--out', '--define'];
  const known = new Set(['--force', '--quiet', ...valued]);
  const bad = argv.filter((a, i) => !(i > 0 && valued.includes(argv[i - 1])) && !known.has(a));
  const missing = valued.filter((v) => argv.includes(v) && (argv.indexOf(v) + 1 >= argv.length));
  if (bad.length || missing.length) {
    console.error(`build-native: ${bad.length ? `unknown argument ${bad[0]}` : `${missing[0]} needs a value`}; usage: node scripts/build-native.mjs [--force] [--isa avx512|avx2|neon] [--out DIR] [--quiet] [--define NAME]`);
    process.exit(2);
  }
  const defines = argv.flatMap((a, i) => (a === '--define' ? [argv[i + 1]] : []));
  const m = buildNative({ force: argv.includes('--force'), isa: opt('--isa'), out: opt('--out') ? path.resolve(opt('--out')) : nativeDir, quiet: argv.includes('--quiet'), defines });
  process.exit(m.error ? 1 : 0);
}
