#!/usr/bin/env node
// Builds kernel-lib/wasm/gpt-kernels.wasm from gpt-kernels.c with clang ≥ 16 and wasm-ld
// (Debian: `apt-get install clang-16 lld-16`). The .wasm is committed, so neither setup nor CI
// needs a C compiler; run this after editing the C file.
//
// The module imports tfjs-backend-wasm's memory, so it must not own anything in it: the build
// fails if the output has a data section or reads/writes a global (clang's shadow-stack
// pointer), either of which would write over tfjs' own low addresses.
//
// Usage: node scripts/build-wasm.mjs [--check]   (--check: rebuild to a temp file and fail if
// it differs from the committed binary)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'kernel-lib', 'wasm', 'gpt-kernels.c');
const out = join(root, 'kernel-lib', 'wasm', 'gpt-kernels.wasm');
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

export function buildWasm(target) {
  const clang = which(['clang-16', 'clang-17', 'clang-18', 'clang']);
  if (!clang) throw new Error('build-wasm: no clang found; on Debian run: apt-get install clang-16 lld-16');
  execFileSync(clang.bin, [...CLANG_FLAGS, '-o', target, src], { stdio: 'inherit' });
  const bytes = readFileSync(target);
  if (sectionIds(bytes).some((id) => id === 11 || id === 12)) {
    throw new Error('build-wasm: the module has a data section; it must not own memory (see gpt-kernels.c)');
  }
  const objdump = which(['llvm-objdump-16', 'llvm-objdump-17', 'llvm-objdump-18', 'llvm-objdump']);
  if (!objdump) throw new Error('build-wasm: llvm-objdump not found (Debian: llvm-16)');
  const dis = execFileSync(objdump.bin, ['-d', target], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (/global\.(get|set)/.test(dis)) {
    throw new Error('build-wasm: the module uses a global (shadow stack?); address-taken locals or static data are not allowed');
  }
  return { clang: clang.version, bytes: bytes.length };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--check')) {
    const dir = mkdtempSync(join(tmpdir(), 'gmt-wasm-'));
    try {
      const tmp = join(dir, 'gpt-kernels.wasm');
      buildWasm(tmp);
      const same = Buffer.compare(readFileSync(tmp), readFileSync(out)) === 0;
      console.log(same ? 'build-wasm: committed binary matches the source' : 'build-wasm: committed binary is stale; run npm run build:wasm');
      process.exit(same ? 0 : 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const info = buildWasm(out);
  console.log(`build-wasm: wrote ${out} (${info.bytes} bytes, ${info.clang})`);
}
