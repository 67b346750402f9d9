#!/usr/bin/env node
// Builds the two kernel binaries from kernel-lib/kernels/gpt-kernels.c (the kernel source the
// native engine shares; see scripts/build-native.mjs) with clang 19 and wasm-ld
// (Debian 12: `apt-get install clang-19 lld-19`). One major version, because --check compares
// bytes, and 19 because older clang leaves constant address offsets out of the wasm loads (see
// the header of gpt-kernels.c):
//   gpt-kernels.wasm          128-bit SIMD (runs wherever tfjs-wasm's SIMD build runs)
//   gpt-kernels-relaxed.wasm  the same with relaxed SIMD's fused multiply-add (-DGMT_RELAXED)
// Both are committed, so neither setup nor CI needs a C compiler; run this after editing the C file.
//
// The module imports tfjs-backend-wasm's memory, so it must not own anything in it: the build
// fails if the output has a data section or reads/writes a global (clang's shadow-stack
// pointer), either of which would write over tfjs' own low addresses.
//
// Usage: node scripts/build-wasm.mjs [--check]   (--check: rebuild to temp files and fail if
// either differs from its committed binary)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'kernel-lib', 'kernels', 'gpt-kernels.c');
/** Output file name → extra clang flags. */
export const VARIANTS = {
  'gpt-kernels.wasm': [],
  'gpt-kernels-relaxed.wasm': ['-DGMT_RELAXED', '-mrelaxed-simd'],
};
export const CLANG_FLAGS = [
  '--target=wasm32', '-O3', '-msimd128', '-mbulk-memory', '-nostdlib', '-ffp-contract=off',
  '-Wall', '-Werror', '-Wl,--no-entry', '-Wl,--import-memory', '-Wl,--strip-debug',
];

function which(names) {
  for (const n of names) {
    try {
      const v = execFileSync(n, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      return { bin: n, version: v.split('\n')[0] };
    } catch { /* try the next one */ }
  }
  return undefined;
}

/** Section ids of a wasm binary (https://webassembly.github.io/spec/core/binary/modules.html). */
function sectionIds(bytes) {
  const ids = [];
  let p = 8;
  const leb = () => { let r = 0, s = 0, b; do { b = bytes[p++]; r |= (b & 0x7f) << s; s += 7; } while (b & 0x80); return r >>> 0; };
  while (p < bytes.length) {
    const id = bytes[p++];
    const size = leb();
    ids.push(id);
    p += size;
  }
  return ids;
}

export function buildWasm(target, extraFlags = []) {
  const clang = which(['clang-19', 'clang']);
  if (!clang || !/version 19\./.test(clang.version)) throw new Error('build-wasm: clang 19 not found; on Debian run: apt-get install clang-19 lld-19');
  execFileSync(clang.bin, [...CLANG_FLAGS, ...extraFlags, '-o', target, src], { stdio: 'inherit' });
  const bytes = readFileSync(target);
  if (sectionIds(bytes).some((id) => id === 11 || id === 12)) {
    throw new Error('build-wasm: the module has a data section; it must not own memory (see gpt-kernels.c)');
  }
  const objdump = which(['llvm-objdump-19', 'llvm-objdump']);
  if (!objdump) throw new Error('build-wasm: llvm-objdump not found (Debian: llvm-19)');
  const dis = execFileSync(objdump.bin, ['-d', target], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (/global\.(get|set)/.test(dis)) {
    throw new Error('build-wasm: the module uses a global (shadow stack?); address-taken locals or static data are not allowed');
  }
  return { clang: clang.version, bytes: bytes.length };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dir = join(root, 'kernel-lib', 'wasm');
  if (process.argv.includes('--check')) {
    const tmpDir = mkdtempSync(join(tmpdir(), 'gmt-wasm-'));
    let stale = 0;
    try {
      for (const [name, flags] of Object.entries(VARIANTS)) {
        const tmp = join(tmpDir, name);
        buildWasm(tmp, flags);
        const same = Buffer.compare(readFileSync(tmp), readFileSync(join(dir, name))) === 0;
        console.log(same ? `build-wasm: committed ${name} matches the source` : `build-wasm: committed ${name} is stale; run npm run build:wasm`);
        if (!same) stale++;
      }
    } finally {
      rmSync(tmpDir, { recursive: true, force: true });
    }
    process.exit(stale ? 1 : 0);
  }
  for (const [name, flags] of Object.entries(VARIANTS)) {
    const info = buildWasm(join(dir, name), flags);
    console.log(`build-wasm: wrote ${join(dir, name)} (${info.bytes} bytes, ${info.clang})`);
  }
}
