/**
 * The engine benchmark behind `gmt-lab bench --ref` (and `--engines`): one SFT update of one model
 * on one fixed batch, timed on each engine and thread layout in turn (wasm with 1 and N
 * data-parallel threads, native with 1 and N kernel threads), rounds interleaved in a seeded
 * shuffled order so that machine load hits every layout alike. Each layout's median is read
 * against the update's FLOPs (`updateFlops`) and this CPU's FMA peak, which the native engine
 * measures itself, and the native layouts' time is split into kernel families (GEMM, attention,
 * row kernels, optimizer, mask, and the rest: tfjs ops and JavaScript between the kernels).
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { engineChoice, KERNEL_FAMILIES, measureFmaPeak, setEngine, startKernelProfile, stopKernelProfile, type EngineName, type FmaPeak } from '../backend/engine';
import { loadNative } from '../backend/native';
import { randomHostBatch } from '../model/bench';
import type { GPTConfig } from '../model/config';
import { updateFlops } from '../model/flops';
import { GPT } from '../model/gpt';
import { checkNumber, ConfigError } from '../util/config';
import { deriveSeed, Rng } from '../util/rng';
import { quantile } from '../util/stats';
import { Trainer } from './trainer';

/** One engine and thread count to time. */
export interface EngineLayout {
  engine: EngineName;
  threads: number;
  /** Native only: threads split each kernel (default) or each take a share of the batch. */
  split?: 'kernels' | 'batch';
}

/** Timing of one layout. */
export interface EngineBenchRow extends EngineLayout {
  /** How the threads share the work: native threads split each kernel, wasm threads the batch. */
  layout: string;
  /** The gradient path the update ran on (engine, build, threads). */
  gradientPath: string;
  medianMs: number;
  p10Ms: number;
  p90Ms: number;
  /** FLOPs of the update's matrix products over the median time. */
  gflops: number;
  /** `gflops` over the FMA peak of the cores the layout uses. */
  peakFraction?: number;
  /** Milliseconds per update by kernel family, and `other` (tfjs ops and JavaScript); from extra profiled updates. */
  families?: Record<string, number>;
}

/** What `benchEngines` measured. */
export interface EngineBenchResult {
  kind: 'gmt-lab/engine-bench';
  model: GPTConfig;
  params: number;
  batchSize: number;
  tokensPerUpdate: number;
  /** FLOPs of one update (matrix products, causal attention). */
  flops: number;
  steps: number;
  warmup: number;
  peak?: FmaPeak;
  rows: EngineBenchRow[];
  /** Why the native engine is missing from the rows, when it is. */
  nativeUnavailable?: string;
  machine: { cpus: number; cpuModel: string; node: string; platform: string };
}

/** Options of {@link benchEngines}. */
export interface EngineBenchOptions {
  model: Partial<GPTConfig>;
  batchSize: number;
  steps: number;
  warmup: number;
  seed: number;
  /** Layouts to time; default: each engine on 1 thread and on every core. */
  layouts?: EngineLayout[];
  /** Profiled updates per native layout for the family split (default 5; 0 = none). */
  profileSteps?: number;
  onRound?: (round: number) => void;
}

/** Each engine on one thread and on every core (the layouts `gmt-lab bench --ref` times). */
export function defaultEngineLayouts(cores = os.availableParallelism?.() ?? os.cpus().length): EngineLayout[] {
  const out: EngineLayout[] = [{ engine: 'wasm', threads: 1 }];
  if (cores > 1) out.push({ engine: 'wasm', threads: cores });
  if (loadNative().ok) {
    out.push({ engine: 'native', threads: 1 });
    if (cores > 1) out.push({ engine: 'native', threads: cores, split: 'kernels' }, { engine: 'native', threads: cores, split: 'batch' });
  }
  return out;
}

/** Times the layouts (interleaved) and returns their medians, GFLOP/s, peak fractions and families. */
export async function benchEngines(opts: EngineBenchOptions): Promise<EngineBenchResult> {
  checkNumber('bench steps', opts.steps, { min: 10, integer: true });
  checkNumber('bench warmup', opts.warmup, { min: 0, integer: true });
  checkNumber('bench batchSize', opts.batchSize, { min: 1, integer: true });
  if (tf.getBackend() !== 'wasm') throw new ConfigError(`bench engines: the fused engines run on the wasm backend (active: ${tf.getBackend()})`);
  const layouts = opts.layouts ?? defaultEngineLayouts();
  if (layouts.length === 0) throw new ConfigError('bench engines: no layouts to time');
  const nat = loadNative();
  for (const l of layouts) {
    checkNumber(`bench ${l.engine} threads`, l.threads, { min: 1, max: 16, integer: true });
    if (l.engine === 'native' && !nat.ok) throw new ConfigError(`bench engines: the native engine is ${nat.reason}`);
  }
  const models: GPT[] = [];
  const trainers: Trainer[] = [];
  const before = engineChoice();
  try {
    for (const l of layouts) {
      const model = new GPT({ ...opts.model, seed: opts.seed }, { workers: l.threads, ...(l.split ? { split: l.split } : {}) });
      models.push(model);
      const batch = randomHostBatch(model.config.vocabSize, opts.batchSize, model.config.contextLength, opts.seed + 1);
      setEngine(l.engine);
      trainers.push(await Trainer.create(model, {
        strategy: 'sft', steps: opts.warmup + opts.steps + (opts.profileSteps ?? 5), accum: 1, lr: 1e-4, seed: opts.seed,
        recordKeptByTensor: false, nextBatch: () => batch,
      }));
    }
    const times: number[][] = layouts.map(() => []);
    const order = layouts.map((_, i) => i);
    const rng = new Rng(deriveSeed(opts.seed, 'engine-bench-order'));
    for (let round = 0; round < opts.warmup + opts.steps; round++) {
      rng.shuffle(order);
      for (const i of order) {
        setEngine(layouts[i]!.engine);
        const rec = await trainers[i]!.step();
        if (round >= opts.warmup) times[i]!.push(rec.ms);
      }
      if (round >= opts.warmup) opts.onRound?.(round - opts.warmup);
    }
    const model0 = models[0]!;
    const { contextLength } = model0.config;
    const tokens = opts.batchSize * contextLength;
    const flops = updateFlops(model0.config, tokens, contextLength, model0.numParams).total;
    const cores = Math.max(...layouts.map((l) => l.threads));
    const peak = nat.ok ? measureFmaPeak(cores) : undefined;
    const rows: EngineBenchRow[] = [];
    for (const [i, l] of layouts.entries()) {
      setEngine(l.engine);
      const ms = times[i]!;
      const med = quantile(ms, 0.5);
      const gflops = flops / med / 1e6;
      const peakOf = peak ? (l.threads === 1 ? peak.perCore : (peak.allCores * Math.min(l.threads, peak.threads)) / peak.threads) : undefined;
      const row: EngineBenchRow = {
        ...l,
        layout: l.threads === 1 ? 'one thread' : l.engine === 'native' && l.split !== 'batch' ? `${l.threads} threads in each kernel` : `${l.threads} threads, each a share of the batch`,
        gradientPath: models[i]!.gradientPath(),
        medianMs: med, p10Ms: quantile(ms, 0.1), p90Ms: quantile(ms, 0.9),
        gflops,
        ...(peakOf ? { peakFraction: gflops / peakOf } : {}),
      };
      const profileSteps = opts.profileSteps ?? 5;
      if (l.engine === 'native' && profileSteps > 0) {
        startKernelProfile();
        let total = 0;
        for (let s = 0; s < profileSteps; s++) total += (await trainers[i]!.step()).ms;
        const perKernel = stopKernelProfile();
        const families: Record<string, number> = {};
        let inKernels = 0;
        for (const [name, t] of perKernel) {
          const family = KERNEL_FAMILIES[name] ?? name;
          families[family] = (families[family] ?? 0) + t / profileSteps;
          inKernels += t / profileSteps;
        }
        families.other = Math.max(0, total / profileSteps - inKernels);
        row.families = families;
      }
      rows.push(row);
    }
    const cpus = os.cpus();
    return {
      kind: 'gmt-lab/engine-bench',
      model: model0.config,
      params: model0.numParams,
      batchSize: opts.batchSize,
      tokensPerUpdate: tokens,
      flops,
      steps: opts.steps,
      warmup: opts.warmup,
      ...(peak ? { peak } : {}),
      rows,
      ...(nat.ok ? {} : { nativeUnavailable: nat.reason }),
      machine: { cpus: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', node: process.version, platform: `${process.platform}-${process.arch}` },
    };
  } finally {
    for (const t of trainers) t.dispose();
    for (const m of models) m.dispose();
    setEngine(before.reason.startsWith('set by') ? before.engine : 'auto');
  }
}

/** The engine benchmark as a text table. */
export function formatEngineBench(r: EngineBenchResult, reference?: { label: string; threads: number; medianMs: number }[]): string {
  const lines: string[] = [];
  lines.push(`update of ${(r.params / 1e6).toFixed(2)}M parameters, batch ${r.batchSize} × ${r.tokensPerUpdate / r.batchSize} tokens, ${(r.flops / 1e9).toFixed(2)} GFLOP (matrix products), median of ${r.steps} interleaved updates after ${r.warmup} warm-up`);
  if (r.peak) lines.push(`FMA peak (${r.peak.isa}, measured now): ${r.peak.perCore.toFixed(0)} GFLOP/s on one core, ${r.peak.allCores.toFixed(0)} on ${r.peak.threads} at once; physical limit of this update ${(r.flops / r.peak.perCore / 1e6).toFixed(1)} ms on one core, ${(r.flops / r.peak.allCores / 1e6).toFixed(1)} ms on ${r.peak.threads}`);
  if (r.nativeUnavailable) lines.push(`native engine not timed: ${r.nativeUnavailable}`);
  lines.push('');
  lines.push(`${'engine'.padEnd(8)}${'threads'.padStart(8)}${'ms/update'.padStart(11)}${'p10–p90'.padStart(14)}${'GFLOP/s'.padStart(9)}${'of peak'.padStart(9)}  layout`);
  for (const row of r.rows) {
    lines.push(`${row.engine.padEnd(8)}${String(row.threads).padStart(8)}${row.medianMs.toFixed(1).padStart(11)}${`${row.p10Ms.toFixed(1)}–${row.p90Ms.toFixed(1)}`.padStart(14)}` +
      `${row.gflops.toFixed(0).padStart(9)}${(row.peakFraction !== undefined ? `${(100 * row.peakFraction).toFixed(0)}%` : '-').padStart(9)}  ${row.layout}`);
  }
  for (const ref of reference ?? []) {
    const gflops = r.flops / ref.medianMs / 1e6;
    const peak = r.peak ? (ref.threads === 1 ? r.peak.perCore : (r.peak.allCores * Math.min(ref.threads, r.peak.threads)) / r.peak.threads) : undefined;
    lines.push(`${ref.label.padEnd(8)}${String(ref.threads).padStart(8)}${ref.medianMs.toFixed(1).padStart(11)}${'-'.padStart(14)}${gflops.toFixed(0).padStart(9)}${(peak ? `${(100 * gflops / peak).toFixed(0)}%` : '-').padStart(9)}  reference (same model in PyTorch)`);
  }
  const by = (engine: string, threads: number) => Math.min(...r.rows.filter((x) => x.engine === engine && x.threads === threads).map((x) => x.medianMs));
  const n1 = by('native', 1), w1 = by('wasm', 1);
  const ratios: string[] = [];
  if (Number.isFinite(n1) && Number.isFinite(w1)) ratios.push(`native/wasm on one thread: ${(w1 / n1).toFixed(2)}× faster`);
  for (const ref of reference ?? []) {
    const n = by('native', ref.threads);
    if (Number.isFinite(n)) ratios.push(`native (best layout) vs ${ref.label} on ${ref.threads} thread${ref.threads === 1 ? '' : 's'}: ${(ref.medianMs / n).toFixed(2)}× faster`);
  }
  if (ratios.length) lines.push('', ...ratios);
  const profiled = r.rows.filter((x) => x.families);
  if (profiled.length) {
    const families = ['GEMM', 'attention', 'row kernels', 'optimizer', 'mask', 'other'];
    lines.push('', `time per update by kernel family (ms; ${'other'} = tfjs ops and JavaScript between kernels):`);
    lines.push(`${''.padEnd(18)}${families.map((f) => f.padStart(12)).join('')}`);
    for (const row of profiled) lines.push(`${`${row.engine} × ${row.threads}${row.split === 'batch' ? ' (batch)' : ''}`.padEnd(18)}${families.map((f) => (row.families![f] ?? 0).toFixed(2).padStart(12)).join('')}`);
  }
  return lines.join('\n');
}
