/**
 * `gmt-lab bench`: update speed per tuning method on the active backend, interleaved, with
 * overheads vs SFT; with `--ref` or `--engines` first the engines (native and wasm, one thread
 * and every core) against this CPU's FMA peak and, with `--torch` or where PyTorch imports, the
 * same update in PyTorch.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { initBackend } from '../../backend';
import { gptPreset, type GPTPresetName } from '../../model/presets';
import { barFigure, type BarSeries } from '../../plots/figures';
import { exportFigure } from '../../plots/export';
import { benchUpdates,
  benchMachine, DEFAULT_BENCH_METHODS, MODEL_PATHS, REFERENCE_BENCH_MODEL, type BenchResult, type ModelPath } from '../../train/bench';
import { benchEngines, defaultEngineLayouts, formatEngineBench } from '../../train/engine-bench';
import { ConfigError } from '../../util/config';
import { writeJsonAtomic } from '../../util/fsx';
import { defineCommand } from '../command';

/** Text table of a bench result (also used by the README numbers). */
export function formatBench(r: BenchResult): string {
  const head = `backend ${r.backend} (${r.threads} thread${r.threads === 1 ? '' : 's'}), ${r.gradientPath ?? `${r.path} path${r.kernels ? ` (${r.kernels} kernels)` : ''}`}${r.pathNote ? ` (${r.pathNote})` : ''}, ${r.gradientThreads} gradient thread${r.gradientThreads === 1 ? '' : 's'}, ${r.params.toLocaleString('en-US')} parameters, ` +
    `batch ${r.batchSize} × ${r.model.contextLength} tokens, median of ${r.steps} interleaved updates after ${r.warmup} warm-up`;
  const pct = (fraction: number): string => `${(fraction * 100).toFixed(1)}%`;
  const interval = ([lo, hi]: [number, number], shift = 0): string => `${pct(lo - shift)} – ${pct(hi - shift)}`;
  const lines = [head, '', `${'method'.padEnd(16)}${'ms/update'.padStart(10)}${'p10–p90'.padStart(12)}${'mask ms'.padStart(9)}${'steps/s'.padStart(9)}${'tokens/s'.padStart(10)}` +
    `${'vs sft'.padStart(8)}${'paired'.padStart(8)}${'95% CI'.padStart(16)}${'extra'.padStart(8)}${'95% CI'.padStart(16)}`];
  for (const row of r.rows) {
    lines.push(
      `${row.label.padEnd(16)}${row.medianMs.toFixed(1).padStart(10)}${`${row.p10Ms.toFixed(0)}–${row.p90Ms.toFixed(0)}`.padStart(12)}` +
      `${row.transformMedianMs.toFixed(2).padStart(9)}${row.stepsPerSecond.toFixed(2).padStart(9)}${row.tokensPerSecond.toFixed(0).padStart(10)}` +
      `${pct(row.overVsSft - 1).padStart(8)}${pct(row.pairedOverVsSft - 1).padStart(8)}${interval(row.pairedCi95, 1).padStart(16)}` +
      `${pct(row.extraOverSft).padStart(8)}${interval(row.extraCi95).padStart(16)}`,
    );
  }
  lines.push(
    '',
    'mask ms: median time in the method\'s transform. vs sft: ratio of medians. paired: median over rounds of the update',
    'time over SFT\'s in the same round (end to end). extra: median over rounds of the time outside the gradient',
    'computation minus SFT\'s, over SFT\'s update (the method\'s own cost, without the noise of the gradients that all',
    'methods compute alike). 95% CI: sign-test intervals over the rounds. sft (repeat) times SFT again: the noise floor.',
  );
  lines.push('', `memory: tfjs ${(r.memory.tfBytes / 2 ** 20).toFixed(1)} MiB in ${r.memory.tfTensors} tensors, process RSS ${(r.memory.rssBytes / 2 ** 20).toFixed(0)} MiB`);
  return lines.join('\n');
}

/** A bar series in percent from (median, interval low, interval high) fractions, one per bar. */
function intervalSeries(name: string, points: [number, number, number][]): BarSeries {
  return {
    name,
    values: points.map(([m]) => m * 100),
    errors: points.map(([m, , hi]) => (hi - m) * 100),
    errorsBelow: points.map(([m, lo]) => (m - lo) * 100),
  };
}

export default defineCommand({
  name: 'bench',
  summary: 'Time forward+backward+AdamW updates for each tuning method and report the overhead over SFT',
  description:
    'Methods take turns, one update each per round, on one model and one fixed batch, so their medians are comparable. ' +
    'Writes bench/results.json and bench/overhead.{svg,png,html,csv} (figure needs Chromium; --no-figure skips it).',
  options: {
    ref: { type: 'boolean', summary: 'the reference model: vocab 64, d_model 128, 4 layers, 4 heads, context 64, batch 16' },
    preset: { type: 'string', summary: 'a model preset instead of the reference', choices: ['nano', 'micro', 'mini'] },
    vocab: { type: 'number', summary: 'vocabulary size', min: 2, integer: true },
    dModel: { type: 'number', summary: 'width', min: 1, integer: true },
    layers: { type: 'number', summary: 'blocks', min: 1, integer: true },
    heads: { type: 'number', summary: 'attention heads', min: 1, integer: true },
    context: { type: 'number', summary: 'sequence length', min: 1, integer: true },
    batch: { type: 'number', summary: 'sequences per update', min: 1, integer: true, default: 16 },
    steps: { type: 'number', summary: 'timed updates per method (≥ 10)', min: 10, integer: true, default: 12 },
    warmup: { type: 'number', summary: 'untimed rounds first', min: 0, integer: true, default: 2 },
    methods: { type: 'string[]', summary: 'labels to time (default: all)', choices: DEFAULT_BENCH_METHODS.map((m) => m.label.replace(/ \((\w+)\)/, ':$1')) },
    threads: { type: 'number', summary: 'threads computing each update (data parallelism over worker threads; fused path)', min: 1, max: 16, integer: true, default: 1 },
    path: { type: 'string', summary: 'model code: fused wasm kernels, fast tfjs ops, or plain autodiff', choices: [...MODEL_PATHS], default: 'fused' },
    seed: { type: 'number', summary: 'weights and batch seed', integer: true, default: 0 },
    out: { type: 'string', summary: 'output folder', default: 'bench', metavar: 'DIR' },
    figure: { type: 'boolean', summary: 'export the overhead figure (use --no-figure to skip)', default: true },
    json: { type: 'boolean', summary: 'print the result as JSON on stdout' },
    engines: { type: 'boolean', summary: 'time the engines (native, wasm) on one thread and every core against the FMA peak, then stop (--ref does this before the methods)' },
    torch: { type: 'boolean', summary: 'also time the same update in PyTorch, and fail where torch does not import (--ref includes it wherever python3 imports torch)' },
  },
  async run({ options: o }, io) {
    if (o.ref && o.preset) throw new ConfigError('--ref and --preset exclude each other');
    const base = o.preset ? gptPreset(o.preset as GPTPresetName, { vocabSize: 64 }) : { ...REFERENCE_BENCH_MODEL };
    const model = {
      ...base,
      ...(o.vocab !== undefined ? { vocabSize: o.vocab } : {}),
      ...(o.dModel !== undefined ? { dModel: o.dModel } : {}),
      ...(o.layers !== undefined ? { nLayers: o.layers } : {}),
      ...(o.heads !== undefined ? { nHeads: o.heads } : {}),
      ...(o.context !== undefined ? { contextLength: o.context } : {}),
    };
    const wanted = o.methods?.map((m) => m.replace(/:(\w+)$/, ' ($1)'));
    const methods = DEFAULT_BENCH_METHODS.filter((m) => !wanted || wanted.includes(m.label) || m.label === 'sft');
    const backend = await initBackend({ quiet: true });
    const outDir = path.resolve(o.out);
    if (o.ref || o.engines) {
      if (backend.backend !== 'wasm') throw new ConfigError(`--ref and --engines time the fused engines, which run on the wasm backend (this process: ${backend.backend})`);
      const layouts = defaultEngineLayouts();
      io.stderr(`gmt-lab bench: ${layouts.map((l) => `${l.engine} × ${l.threads}`).join(', ')}: ${o.steps} interleaved updates each\n`);
      const engines = await benchEngines({ model, batchSize: o.batch, steps: o.steps, warmup: o.warmup, seed: o.seed, layouts, onRound: (r) => io.stderr(`  round ${r + 1}/${o.steps}\n`) });
      const torch = o.ref || o.torch ? torchReference(model, o.batch, [...new Set(layouts.map((l) => l.threads))], o.torch, io) : [];
      writeJsonAtomic(path.join(outDir, 'engines.json'), { ...engines, ...(torch.length ? { torch } : {}) });
      io.stderr(`${formatEngineBench(engines, torch.map((t) => ({ label: 'pytorch', threads: t.threads, medianMs: t.medianMs })))}\nwrote ${path.join(outDir, 'engines.json')}\n\n`);
      if (o.engines) {
        if (o.json) io.stdout(`${JSON.stringify(engines)}\n`);
        return 0;
      }
    }
    io.stderr(`gmt-lab bench: ${methods.length} methods × ${o.steps} updates on ${backend.backend}\n`);
    const core = await benchUpdates({
      model, batchSize: o.batch, steps: o.steps, warmup: o.warmup, methods, seed: o.seed, path: o.path as ModelPath, threads: o.threads,
      onRound: (r) => io.stderr(`  round ${r + 1}/${o.steps}\n`),
    });
    const result: BenchResult = { ...core, threads: backend.threads, machine: benchMachine() };
    writeJsonAtomic(path.join(outDir, 'results.json'), result);
    const table = formatBench(result);
    io.stderr(`${table}\nwrote ${path.join(outDir, 'results.json')}\n`);
    if (o.figure) {
      const reference = result.rows.find((r) => r.strategy.name === 'sft');
      const rows = result.rows.filter((r) => r !== reference);
      const fig = barFigure({
        categories: rows.map((r) => r.label),
        series: [
          // Both figures as percent of SFT's update, with their intervals as whiskers.
          intervalSeries('end to end: update time over SFT\'s (paired, 95% CI)', rows.map((r) => [r.pairedOverVsSft - 1, r.pairedCi95[0] - 1, r.pairedCi95[1] - 1])),
          intervalSeries('own cost: time outside the gradients over SFT\'s (extra, 95% CI)', rows.map((r) => [r.extraOverSft, r.extraCi95[0], r.extraCi95[1]])),
        ],
        title: `Cost of each method over SFT — ${result.backend}, ${(result.params / 1e6).toFixed(2)}M params, SFT ${reference?.medianMs.toFixed(0)} ms/update`,
        yTitle: 'extra time per update (%)',
        legend: 'top',
      });
      const files = await exportFigure(fig, path.join(outDir, 'overhead'));
      io.stderr(`wrote ${files.join(', ')}\n`);
    }
    if (o.json) io.stdout(`${JSON.stringify(result)}\n`);
    return 0;
  },
});

/** The PyTorch script that mirrors the lab's update (kernel-lib/python). */
const TORCH_SCRIPT = path.join(__dirname, '..', '..', '..', 'python', 'torch_reference.py');

/**
 * The same update in PyTorch, on each thread count: `python3 torch_reference.py` (GMT_PYTHON, else
 * /usr/bin/python3, else python3 on PATH), its BLAS and OpenMP pools set to the thread count.
 * Where torch does not import: nothing, or (when `required`) a ConfigError saying so.
 */
function torchReference(model: { vocabSize?: number; dModel?: number; nLayers?: number; nHeads?: number; contextLength?: number }, batch: number, threads: number[], required: boolean, io: { stderr(s: string): void }): { threads: number; medianMs: number; torch: string }[] {
  const pythons = [process.env.GMT_PYTHON?.trim(), '/usr/bin/python3', 'python3'].filter((p): p is string => !!p);
  const python = pythons.find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
  if (!python) {
    if (required) throw new ConfigError(`--torch: no python3 here imports torch (tried ${pythons.join(', ')}); on Debian: apt-get install python3-torch libopenblas0-pthread`);
    return [];
  }
  const out: { threads: number; medianMs: number; torch: string }[] = [];
  for (const n of threads) {
    io.stderr(`  pytorch on ${n} thread${n === 1 ? '' : 's'} (${python})\n`);
    const args = [TORCH_SCRIPT, '--threads', String(n), '--vocab', String(model.vocabSize ?? 64), '--d', String(model.dModel ?? 128),
      '--layers', String(model.nLayers ?? 4), '--heads', String(model.nHeads ?? 4), '--context', String(model.contextLength ?? 64), '--batch', String(batch)];
    const r = spawnSync(python, args, { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(n), OPENBLAS_NUM_THREADS: String(n) } });
    if (r.status !== 0) throw new Error(`the PyTorch reference failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').pop()}`);
    out.push(JSON.parse(r.stdout.trim().split('\n').pop()!) as { threads: number; medianMs: number; torch: string });
  }
  return out;
}
