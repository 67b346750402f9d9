#!/usr/bin/env node
// The figures of scripts/gpu-check.sh as Markdown: adapter, tokens/s on webgpu, the native CPU
// engine and wasm, and
// GMT's overhead over SFT on webgpu (paired median with its 95% interval, from `gmt-lab bench`).
//   node scripts/gpu-summary.mjs OUT
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const out = process.argv[2];
if (!out) {
  console.error('usage: node scripts/gpu-summary.mjs OUT');
  process.exit(2);
}
const read = (name) => {
  const file = path.join(out, name);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
};
const text = (name) => (existsSync(path.join(out, name)) ? readFileSync(path.join(out, name), 'utf8') : '');
const pct = (x) => `${x >= 1 ? '+' : ''}${((x - 1) * 100).toFixed(1)}%`;
const lines = ['# GPU check', ''];
const adapter = /^webgpu adapter\s+(.*)$/m.exec(text('doctor.txt'))?.[1] ?? 'not reported (see doctor.txt)';
lines.push(`- WebGPU adapter: ${adapter}`);
const gpu = read('webgpu.json');
const cpu = read('wasm.json');
const native = read('native.json');
const sft = (r) => r?.rows.find((x) => x.label === 'sft');
if (!gpu) lines.push(`- webgpu bench: no result (${text('webgpu.err').trim().split('\n').slice(-3).join(' / ') || 'see webgpu.err'})`);
if (!cpu) lines.push(`- wasm bench: no result (${text('wasm.err').trim().split('\n').slice(-3).join(' / ') || 'see wasm.err'})`);
if (!native) lines.push(`- native bench: no result (${text('native.err').trim().split('\n').slice(-3).join(' / ') || 'see native.err'})`);
for (const [name, r] of [['webgpu', gpu], ['native', native], ['wasm', cpu]]) {
  if (!r) continue;
  lines.push(`- ${name}: ${r.params.toLocaleString('en-US')} parameters, batch ${r.batchSize} × ${r.tokensPerUpdate / r.batchSize} tokens, ${r.path} path, ${r.gradientThreads} gradient thread(s); SFT ${sft(r).medianMs.toFixed(1)} ms per update, ${Math.round(sft(r).tokensPerSecond).toLocaleString('en-US')} tokens/s`);
}
if (gpu && cpu) lines.push(`- webgpu over wasm, SFT tokens/s: ${(sft(gpu).tokensPerSecond / sft(cpu).tokensPerSecond).toFixed(2)}× (goal ≥ 20×)`);
if (gpu && native) lines.push(`- webgpu over the native CPU engine (all cores), SFT tokens/s: ${(sft(gpu).tokensPerSecond / sft(native).tokensPerSecond).toFixed(2)}×`);
if (gpu) {
  lines.push('', '| method (webgpu) | ms/update | paired over SFT | 95% CI | goal |', '|---|---|---|---|---|');
  for (const row of gpu.rows) {
    if (row.label === 'sft') continue;
    const [lo, hi] = row.pairedCi95;
    lines.push(`| ${row.label} | ${row.medianMs.toFixed(1)} | ${pct(row.pairedOverVsSft)} | ${pct(lo)} to ${pct(hi)} | ${row.label.startsWith('gmt') ? (hi <= 1.05 ? 'met (≤ 5%)' : 'not met') : 'noise floor'} |`);
  }
}
const pre = read('pretrain.json');
const preStep = /^pretrain: exit (\d+) after (\d+) s$/m.exec(text('steps.txt'));
if (pre) {
  const ms = pre.train.history.map((u) => u.ms).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const median = ms.length ? ms[Math.floor(ms.length / 2)] : NaN;
  lines.push('', `- pretrain ${pre.config.preset} on webgpu: ${pre.train.history.length} updates of ${pre.config.batchSize} windows in ${preStep?.[2] ?? '?'} s (median ${median.toFixed(1)} ms per update); val loss ${pre.metrics.valLoss.toFixed(4)}, arithmetic facts ${(pre.metrics.arithAccuracy * 100).toFixed(1)}%; sha256 ${pre.sha256}`);
} else if (preStep) lines.push('', `- pretrain: exit ${preStep[1]} after ${preStep[2]} s, no record (${text('pretrain.err').trim().split('\n').slice(-3).join(' / ') || 'see pretrain.err'})`);
console.log(lines.join('\n'));
