/**
 * Experiment grids: a JSON description (methods × method options × tasks × presets × seeds, plus
 * any other `FinetuneConfig` field) that expands into fully resolved runs, each keyed by a
 * content hash of everything that decides its result.
 *
 * A grid file, e.g. `notebooks/grids/02_gmt_vs_sft.json`:
 *
 * ```json
 * {
 *   "name": "gmt-vs-sft",
 *   "base": { "steps": 250, "testSize": 1000, "forgetting": true },
 *   "methods": ["sft", { "method": "gmt", "options": { "ratio": [0.1, 0.3], "scope": "tensor" } }],
 *   "tasks": ["math", "code"],
 *   "seeds": { "count": 10 },
 *   "fast": { "base": { "base": "nano", "steps": 20, "testSize": 50 }, "seeds": { "count": 2 } }
 * }
 * ```
 *
 * An option given as a list is an axis (one run per value); `vary` adds axes over any other
 * config field (`"vary": { "lr": [1e-3, 2e-3] }`). `fast` replaces top-level fields (and merges
 * into `base`) when the grid is expanded in fast mode, so one file serves `npm test` and the
 * full-size run.
 */
import { describeAdapter, webgpuProbeResult } from '../backend/webgpu';
import { ENGINE_NAMES, type EngineName } from '../backend/engine';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { defaultGradientPath } from '../model/gpt';
import { ConfigError, resolveConfig, runMode, type RunMode } from '../util/config';
import { resolveFinetuneConfig, type FinetuneConfig } from './finetune';
import { resolveBaseCheckpoint, sha256File } from './paths';
import { withoutDefaultOptions } from '../tuning/registry';

/** Reads a grid file (JSON) with a clear error naming the file; validation comes with {@link expandGrid}. */
export function loadGrid(file: string): SweepGrid {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read grid file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text) as SweepGrid;
  } catch (e) {
    throw new ConfigError(`grid file ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** One entry of a grid's `methods`: a name, or a name with options (lists expand). */
export type MethodAxis = string | { method: string; options?: Record<string, unknown>; label?: string; seeds?: SeedAxis };

/** One entry of a grid's `tasks`: a task, or a task with generator options of its own. */
/**
 * A task of a grid: its name or file, or `{ task, taskOptions?, seeds? }`. A task's own `seeds`
 * replace the grid's for that task (a noisier task can get more seeds); a method's own seeds
 * still win over both.
 */
export type TaskAxis = string | { task: string; taskOptions?: Record<string, unknown>; seeds?: SeedAxis };

/** The seeds of a grid: explicit values, or `count` seeds starting at `from` (default 0). */
export type SeedAxis = number[] | { count: number; from?: number };

/** A grid as written in a JSON file (see the file comment). */
export interface SweepGrid {
  /** Short name, used in progress lines and as the default store name. */
  name: string;
  /** What the grid is for, in a sentence. */
  description: string;
  /** Config fields shared by every run (`FinetuneConfig` keys). */
  base: Partial<FinetuneConfig>;
  /** Methods to run; default `[base.method ?? 'sft']`. */
  methods: MethodAxis[];
  /**
   * Tasks (`math`, `code`, a .jsonl path), or `{ "task", "taskOptions" }` for a task with options
   * of its own (merged over `base.taskOptions`); default `[base.task ?? 'math']`.
   */
  tasks: TaskAxis[];
  /** Base models by preset name or path; default `[base.base ?? 'micro']`. */
  presets: string[];
  /** Run seeds; default `[base.seed ?? 0]`. */
  seeds: SeedAxis;
  /** More axes: config field → values. */
  vary: Record<string, unknown[]>;
  /**
   * The engine every run of the grid computes on (`native` or `wasm`; default: this process's,
   * see `backend/engine.ts`). The engine is part of each run's key, so a grid whose evidence was
   * made on one engine names it to keep finding its stored runs wherever the other is the default.
   */
  engine?: EngineName;
  /** Replacements used in fast mode (`base` is merged, the rest replaced; `seeds` also replaces per-method seeds). */
  fast?: Partial<Omit<SweepGrid, 'fast'>>;
}

const GRID_DEFAULTS: SweepGrid = { name: 'sweep', description: '', base: {}, methods: [], tasks: [], presets: [], seeds: [], vary: {}, engine: undefined, fast: undefined };

/** One run of an expanded grid. */
export interface PlannedRun {
  /** Content hash of everything that decides the result, bit for bit (see {@link runKey}). */
  key: string;
  /** The run's experiment: its key less the kernel build and threads (see {@link experimentKey}). */
  experiment: string;
  /** A short human name, e.g. `gmt ratio=0.3 scope=tensor · math · micro · seed 3`. */
  label: string;
  /** The method's label within the grid (`gmt ratio=0.3`), for tables and legends. */
  methodLabel: string;
  config: FinetuneConfig;
}

/** What, besides the config, decides a run's result; part of every key and record. */
export interface ExecutionContext {
  /** `@gmt-lab/kernel-lib` version. */
  kernelLib: string;
  /** tfjs backend the runs train on. */
  backend: string;
  /** `GPT.gradientPath()` of the runs (code path, kernel build, threads). */
  gradientPath: string;
  /**
   * On webgpu only: the adapter (`describeAdapter`), so that runs on a software adapter and on a
   * GPU are different runs and every record says which device made it.
   */
  adapter?: string;
}

/** The kernel-lib package version (read once from its package.json). */
export function kernelLibVersion(): string {
  // package.json sits two folders above both src/sweep and dist/sweep.
  return (require('../../package.json') as { version: string }).version;
}

/** The execution context of runs made by this process (after `initBackend`). */
export function currentExecutionContext(backend: string, env: NodeJS.ProcessEnv = process.env): ExecutionContext {
  const context: ExecutionContext = { kernelLib: kernelLibVersion(), backend, gradientPath: defaultGradientPath(env) };
  const probe = backend === 'webgpu' ? webgpuProbeResult() : undefined;
  if (probe?.adapter) context.adapter = describeAdapter(probe.adapter);
  return context;
}

/** JSON with object keys sorted at every level: the same value always gives the same text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]));
    }
    return v;
  });
}

/** sha256 of the inputs a config reads from disk: the base checkpoint and a task file. */
export function inputDigests(config: FinetuneConfig): { base: string; task?: string } {
  const base = readInput(() => resolveBaseCheckpoint(config.base).sha256, `base checkpoint ${config.base}`);
  if (config.task === 'math' || config.task === 'code') return { base };
  if (!existsSync(config.task)) throw new ConfigError(`task file ${config.task} does not exist`);
  return { base, task: readInput(() => sha256File(config.task), `task file ${config.task}`) };
}

/** Runs a read of an input file; an I/O error (a directory, no permission) becomes a `ConfigError` naming it. */
function readInput<T>(read: () => T, what: string): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`cannot read ${what}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * Config fields added after results were stored, with the value that reproduces the behaviour
 * from before they existed. A field holding that value is left out of the key, so adding a field
 * does not orphan a store. (A change that alters results without a new field must bump
 * kernel-lib's version instead, which is part of every key.)
 */
export const KEY_NEUTRAL_FIELDS: Readonly<Partial<FinetuneConfig>> = Object.freeze({ maskTrace: 0, maskTraceOf: 'nonzero', strictText: false, testLoss: false, ema: 0, context: null });

/** Fields that decide nothing for some configs, and are left out of those configs' keys. */
const KEY_MOOT_FIELDS: Readonly<Partial<Record<keyof FinetuneConfig, (config: FinetuneConfig) => boolean>>> = {
  maskTraceOf: (config) => config.maskTrace === 0,
  contextInit: (config) => config.context === null,
};

/** The config as keys hash it: later fields at their neutral value and moot fields left out. */
function keyedConfig(config: FinetuneConfig): Record<string, unknown> {
  const keyed: Record<string, unknown> = { ...config };
  for (const [k, neutral] of Object.entries(KEY_NEUTRAL_FIELDS)) if (canonicalJson(keyed[k]) === canonicalJson(neutral)) delete keyed[k];
  for (const [k, moot] of Object.entries(KEY_MOOT_FIELDS)) if (moot(config)) delete keyed[k];
  return keyed;
}

function hashKey(material: unknown): string {
  return createHash('sha256').update(canonicalJson(material)).digest('hex').slice(0, 32);
}

/**
 * The run key: sha256 (first 32 hex digits) of the resolved config, the sha256 of the files it
 * reads (base checkpoint, task file), and the execution context (kernel-lib version, backend,
 * gradient path and kernel build). Any change to one of them is a different run: the key names
 * one computation, bit for bit (the same-weights re-check compares runs with equal keys).
 */
export function runKey(config: FinetuneConfig, context: ExecutionContext, digests = inputDigests(config)): string {
  return hashKey({ config: keyedConfig(config), inputs: digests, context });
}

/** Which engine a context's gradients come from: the fused `native` or `wasm` kernels, or tfjs ops. */
export function contextEngine(context: Pick<ExecutionContext, 'gradientPath'>): 'native' | 'wasm' | 'tfjs' {
  const m = /^fused (native|wasm) kernels/.exec(context.gradientPath);
  return m ? (m[1] as 'native' | 'wasm') : 'tfjs';
}

/**
 * The experiment a run belongs to: its run key without how the engine carried out the
 * arithmetic (kernel build, vector ISA, thread count). Runs of one experiment on two builds
 * differ by float rounding only, so a sweep counts either as done and the evidence reads
 * either: a store begun on one machine is continued on another whose native build differs
 * (an AVX-512 build and an AVX2 build have different build ids). The kernel-lib version, the
 * backend, the engine (native, wasm or tfjs ops) and a webgpu adapter stay part of it.
 * Method options written out at their default value count as left out, so that a grid that
 * names every factor (notebook 06: `signal: "grad", maskUpdate: false`) finds the runs of one
 * that leaves them at their defaults (claim 2's), and the other way round.
 */
export function experimentKey(config: FinetuneConfig, context: ExecutionContext, digests = inputDigests(config)): string {
  const { kernelLib, backend, adapter } = context;
  const keyed = { ...keyedConfig(config), methodOptions: withoutDefaultOptions(config.method, config.methodOptions ?? {}) };
  return hashKey({ config: keyed, inputs: digests, experiment: { kernelLib, backend, engine: contextEngine(context), ...(adapter ? { adapter } : {}) } });
}

/** {@link experimentKey} of a stored record, from its config, inputs and provenance. */
export function recordExperiment(record: { config: FinetuneConfig; inputs: { base: string; task?: string }; provenance: ExecutionContext }): string {
  const { kernelLib, backend, gradientPath, adapter } = record.provenance;
  return experimentKey(record.config, { kernelLib, backend, gradientPath, ...(adapter ? { adapter } : {}) }, record.inputs);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkSeeds(seeds: unknown, where: string): void {
  if (Array.isArray(seeds)) {
    seeds.forEach((s, i) => {
      if (!Number.isInteger(s)) throw new ConfigError(`${where}[${i}] must be an integer, got ${JSON.stringify(s)}`);
    });
  } else if (isPlainObject(seeds)) {
    const extra = Object.keys(seeds).filter((k) => k !== 'count' && k !== 'from');
    if (extra.length) throw new ConfigError(`${where}: unknown field "${extra[0]}" (known: count, from)`);
    const { count, from = 0 } = seeds as { count?: unknown; from?: unknown };
    if (!Number.isInteger(count) || (count as number) < 1 || (count as number) > 10000) throw new ConfigError(`${where}.count must be an integer in 1..10000, got ${JSON.stringify(count)}`);
    if (!Number.isInteger(from)) throw new ConfigError(`${where}.from must be an integer, got ${JSON.stringify(from)}`);
  } else throw new ConfigError(`${where} must be a list of integers or { "count": n, "from": s }`);
}

/** Deepest nesting a grid may have: far beyond any real grid, far below what overflows `JSON.stringify`. */
const MAX_GRID_DEPTH = 64;

/** Rejects a value nested more than {@link MAX_GRID_DEPTH} levels deep (iteratively, so the check cannot overflow). */
function checkDepth(value: unknown, where: string): void {
  const seen = new Set<object>();
  const todo: [unknown, number][] = [[value, 0]];
  while (todo.length) {
    const [v, depth] = todo.pop() as [unknown, number];
    if (v === null || typeof v !== 'object' || seen.has(v)) continue;
    if (depth >= MAX_GRID_DEPTH) throw new ConfigError(`${where}: nested more than ${MAX_GRID_DEPTH} levels deep`);
    seen.add(v);
    for (const child of Object.values(v)) todo.push([child, depth + 1]);
  }
}

/** Validates a grid (unknown keys and wrong types throw, naming the field). */
export function resolveGrid(input: unknown, where = 'grid'): SweepGrid {
  if (!isPlainObject(input)) throw new ConfigError(`${where}: expected a JSON object`);
  checkDepth(input, where);
  const g = resolveConfig(GRID_DEFAULTS, input as Partial<SweepGrid>, where);
  if (typeof g.name !== 'string' || !/^[A-Za-z0-9._-]+$/.test(g.name)) throw new ConfigError(`${where}.name must be letters, digits, ".", "_" or "-", got ${JSON.stringify(g.name)}`);
  if (typeof g.description !== 'string') throw new ConfigError(`${where}.description must be a string`);
  if (g.engine !== undefined && !(ENGINE_NAMES as readonly unknown[]).includes(g.engine)) {
    throw new ConfigError(`${where}.engine must be one of ${ENGINE_NAMES.join(', ')}, got ${JSON.stringify(g.engine)}`);
  }
  if (!isPlainObject(g.base)) throw new ConfigError(`${where}.base must be an object of finetune config fields`);
  for (const k of ['methods', 'tasks', 'presets'] as const) {
    if (!Array.isArray(g[k])) throw new ConfigError(`${where}.${k} must be a list`);
  }
  g.methods.forEach((m, i) => {
    if (typeof m === 'string') return;
    if (!isPlainObject(m) || typeof m.method !== 'string') throw new ConfigError(`${where}.methods[${i}] must be a method name or { "method": name, "options": {...} }`);
    const extra = Object.keys(m).filter((k) => !['method', 'options', 'label', 'seeds'].includes(k));
    if (extra.length) throw new ConfigError(`${where}.methods[${i}]: unknown field "${extra[0]}" (known: method, options, label, seeds)`);
    if (m.seeds !== undefined) checkSeeds(m.seeds, `${where}.methods[${i}].seeds`);
    if (m.options !== undefined && !isPlainObject(m.options)) throw new ConfigError(`${where}.methods[${i}].options must be an object`);
  });
  g.tasks.forEach((t, i) => {
    if (isPlainObject(t)) {
      const unknown = Object.keys(t).filter((k) => k !== 'task' && k !== 'taskOptions' && k !== 'seeds');
      if (unknown.length) throw new ConfigError(`${where}.tasks[${i}]: unknown key ${JSON.stringify(unknown[0])} (allowed: task, taskOptions, seeds)`);
      if (t.seeds !== undefined) checkSeeds(t.seeds, `${where}.tasks[${i}].seeds`);
      if (typeof t.task !== 'string' || t.task === '') throw new ConfigError(`${where}.tasks[${i}].task must be a task name or .jsonl path`);
      if (t.taskOptions !== undefined && !isPlainObject(t.taskOptions)) throw new ConfigError(`${where}.tasks[${i}].taskOptions must be an object`);
      return;
    }
    if (typeof t !== 'string' || t === '') throw new ConfigError(`${where}.tasks[${i}] must be a task name or .jsonl path, or { "task", "taskOptions" }`);
  });
  g.presets.forEach((t, i) => {
    if (typeof t !== 'string' || t === '') throw new ConfigError(`${where}.presets[${i}] must be a preset name or checkpoint path`);
  });
  checkSeeds(g.seeds, `${where}.seeds`);
  if (!isPlainObject(g.vary)) throw new ConfigError(`${where}.vary must be an object of field → list of values`);
  for (const [k, values] of Object.entries(g.vary)) {
    if (!Array.isArray(values) || values.length === 0) throw new ConfigError(`${where}.vary.${k} must be a non-empty list`);
  }
  if (g.fast !== undefined) {
    if (!isPlainObject(g.fast)) throw new ConfigError(`${where}.fast must be an object`);
    if ('fast' in g.fast) throw new ConfigError(`${where}.fast cannot hold another "fast"`);
    resolveGrid({ ...g, ...g.fast, fast: undefined }, `${where}.fast`);
  }
  return g;
}

/** The grid as used in `mode`: in fast mode its `fast` fields replace (and `base` merges). */
export function gridForMode(grid: SweepGrid, mode: RunMode = runMode()): SweepGrid {
  if (mode === 'full' || !grid.fast) return { ...grid, fast: undefined };
  const f = grid.fast;
  const out = { ...grid, ...f, base: { ...grid.base, ...(f.base ?? {}) }, fast: undefined };
  // Fast-mode seeds apply to every method, also to those with seeds of their own.
  if (f.seeds !== undefined && f.methods === undefined) {
    out.methods = grid.methods.map((m) => (typeof m === 'string' || m.seeds === undefined ? m : { ...m, seeds: undefined }));
  }
  // ... and to every task (unless fast mode names its own tasks).
  if (f.seeds !== undefined && f.tasks === undefined) {
    out.tasks = grid.tasks.map((t) => (typeof t === 'string' || t.seeds === undefined ? t : { task: t.task, ...(t.taskOptions ? { taskOptions: t.taskOptions } : {}) }));
  }
  return out;
}

function cartesian(axes: [string, unknown[]][]): Record<string, unknown>[] {
  let out: Record<string, unknown>[] = [{}];
  for (const [name, values] of axes) out = out.flatMap((o) => values.map((v) => ({ ...o, [name]: v })));
  return out;
}

function seedList(seeds: SeedAxis, fallback: number): number[] {
  if (Array.isArray(seeds)) return seeds.length ? seeds : [fallback];
  const from = seeds.from ?? 0;
  return Array.from({ length: seeds.count }, (_, i) => from + i);
}

function formatValue(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

/** `gmt ratio=0.3 scope=tensor`: the method and the options the grid set for it. */
export function describeMethod(method: string, options: Record<string, unknown>): string {
  const parts = Object.entries(options).map(([k, v]) => `${k}=${formatValue(v)}`);
  return [method, ...parts].join(' ');
}

/**
 * Expands a grid into resolved runs, in a stable order: by seed, then methods, tasks, presets and
 * `vary` axes. Each config is validated as `finetune` would (bad fields throw before any work).
 * Duplicate runs (same key) appear once.
 */
export function expandGrid(gridInput: SweepGrid | unknown, context: ExecutionContext, mode: RunMode = runMode()): PlannedRun[] {
  const grid = gridForMode(resolveGrid(gridInput), mode);
  const base = grid.base;
  const methods: MethodAxis[] = grid.methods.length ? grid.methods : [base.method ?? 'sft'];
  const tasks = grid.tasks.length ? grid.tasks : [base.task ?? 'math'];
  const presets = grid.presets.length ? grid.presets : [base.base ?? 'micro'];
  const seeds = seedList(grid.seeds, base.seed ?? 0);
  const varyAxes = Object.entries(grid.vary);
  const runs: PlannedRun[] = [];
  const seen = new Set<string>();
  const digestCache = new Map<string, ReturnType<typeof inputDigests>>();
  for (const m of methods) {
    const spec = typeof m === 'string' ? { method: m, options: {} as Record<string, unknown>, label: undefined, seeds: undefined } : { method: m.method, options: m.options ?? {}, label: m.label, seeds: m.seeds };
    const methodSeeds = spec.seeds ? seedList(spec.seeds, base.seed ?? 0) : undefined;
    const optionAxes = Object.entries(spec.options).map(([k, v]) => [k, Array.isArray(v) ? v : [v]] as [string, unknown[]]);
    for (const methodOptions of cartesian(optionAxes)) {
      const methodLabel = spec.label ?? describeMethod(spec.method, methodOptions);
      for (const taskAxis of tasks) {
        const task = typeof taskAxis === 'string' ? taskAxis : taskAxis.task;
        const ownOptions = typeof taskAxis === 'string' ? undefined : taskAxis.taskOptions;
        const taskSeeds = typeof taskAxis !== 'string' && taskAxis.seeds ? seedList(taskAxis.seeds, base.seed ?? 0) : seeds;
        for (const preset of presets) {
          for (const varied of cartesian(varyAxes)) {
            for (const seed of methodSeeds ?? taskSeeds) {
              const config = resolveFinetuneConfig({
                ...base,
                ...varied,
                method: spec.method,
                methodOptions: { ...(base.methodOptions ?? {}), ...methodOptions },
                task,
                ...(ownOptions ? { taskOptions: { ...(base.taskOptions ?? {}), ...((varied as Partial<FinetuneConfig>).taskOptions ?? {}), ...ownOptions } } : {}),
                base: preset,
                seed,
              } as Partial<FinetuneConfig>);
              const digestId = `${config.base}\u0000${config.task}`;
              let digests = digestCache.get(digestId);
              if (!digests) digestCache.set(digestId, (digests = inputDigests(config)));
              const key = runKey(config, context, digests);
              const experiment = experimentKey(config, context, digests);
              if (seen.has(key)) continue;
              seen.add(key);
              const variedText = Object.entries(varied).map(([k, v]) => `${k}=${formatValue(v)}`);
              const taskText = ownOptions ? `${task} ${Object.entries(ownOptions).map(([k, v]) => `${k}=${formatValue(v)}`).join(' ')}` : task;
              const label = [methodLabel, taskText, preset, ...variedText, `seed ${seed}`].join(' · ');
              runs.push({ key, experiment, label, methodLabel, config });
            }
          }
        }
      }
    }
  }
  // Seed-major order: every method's first seed before anyone's second, so that a sweep
  // interrupted part-way leaves complete paired comparisons on the seeds it reached.
  return runs.map((r, i) => ({ r, i })).sort((a, b) => a.r.config.seed - b.r.config.seed || a.i - b.i).map(({ r }) => r);
}

/** A small grid to start from (`gmt-lab sweep --example`): 2 methods × 2 seeds on `nano`, a few minutes. */
export const EXAMPLE_GRID: SweepGrid = {
  name: 'example',
  description: 'SFT against GMT (k = 0.3) on the math task, two seeds, small budget on the nano base',
  base: { base: 'nano', steps: 60, warmup: 10, testSize: 200, valSize: 100 },
  methods: ['sft', { method: 'gmt', options: { ratio: 0.3, scope: 'tensor' } }],
  tasks: ['math'],
  presets: [],
  seeds: { count: 2 },
  vary: {},
  fast: { base: { steps: 10, warmup: 2, testSize: 20, valSize: 20 }, seeds: [0] },
};
