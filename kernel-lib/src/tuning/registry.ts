/**
 * The registry of tuning methods: `getStrategy(name, options)` builds one, `listStrategies()`
 * names them all (the table-driven test runs every entry). Adding a method = one file + one
 * entry here.
 */
import { ConfigError } from '../util/config';
import { ChildTuningDStrategy, CHILDTUNING_D_DEFAULTS } from './childtuning-d';
import { ChildTuningFStrategy, CHILDTUNING_F_DEFAULTS } from './childtuning-f';
import { GMT_DEFAULTS, GmtStrategy } from './gmt';
import { HFT_DEFAULTS, HftStrategy } from './hft';
import { RANDOM_MASK_DEFAULTS, RandomMaskStrategy } from './random-mask';
import { SIFT_DEFAULTS, SiftStrategy } from './sift';
import { SftStrategy } from './sft';
import type { TuningStrategy } from './strategy';

/** One registry entry. */
export interface StrategyInfo {
  name: string;
  /** One line on what the method does. */
  description: string;
  /** Its default options (a copy). */
  defaults: Record<string, unknown>;
}

interface Entry {
  description: string;
  defaults: object;
  create(options: any): TuningStrategy;
}

const REGISTRY: Record<string, Entry> = {
  sft: { description: 'vanilla fine-tuning: step on Γ unchanged', defaults: {}, create: (o) => new SftStrategy(o) },
  gmt: {
    description: 'Gradient-Mask Tuning: zero the entries of Γ below the k-th quantile of |Γ|, every update',
    defaults: GMT_DEFAULTS,
    create: (o) => new GmtStrategy(o),
  },
  'random-mask': {
    description: 'zero each entry of Γ with probability k, uniformly (per update or fixed)',
    defaults: RANDOM_MASK_DEFAULTS,
    create: (o) => new RandomMaskStrategy(o),
  },
  'childtuning-f': {
    description: 'ChildTuning-F: Bernoulli(p) gradient mask each update, scaled by 1/p',
    defaults: CHILDTUNING_F_DEFAULTS,
    create: (o) => new ChildTuningFStrategy(o),
  },
  'childtuning-d': {
    description: 'ChildTuning-D: fixed mask of the top-p entries by Fisher information (mean g² before training)',
    defaults: CHILDTUNING_D_DEFAULTS,
    create: (o) => new ChildTuningDStrategy(o),
  },
  hft: {
    description: 'Half Fine-Tuning: freeze half of the tensors in each attention / MLP / norm group, re-drawn per stage',
    defaults: HFT_DEFAULTS,
    create: (o) => new HftStrategy(o),
  },
  sift: {
    description: 'SIFT: top-|Γ| mask of the first update (GMT rule), then fixed',
    defaults: SIFT_DEFAULTS,
    create: (o) => new SiftStrategy(o),
  },
};

/** Names of every registered method, in registry order. */
export function listStrategies(): string[] {
  return Object.keys(REGISTRY);
}

/** Every registered method with its description and default options. */
export function describeStrategies(): StrategyInfo[] {
  return Object.entries(REGISTRY).map(([name, e]) => ({
    name,
    description: e.description,
    defaults: { ...(e.defaults as Record<string, unknown>) },
  }));
}

/**
 * `options` less the entries a method takes by default: `{ ratio: 0.3, signal: 'grad' }` and
 * `{}` are the same GMT run. Options of an unknown method are returned as they are.
 */
export function withoutDefaultOptions(name: string, options: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const entry = Object.prototype.hasOwnProperty.call(REGISTRY, name) ? REGISTRY[name] : undefined;
  const defaults = (entry?.defaults ?? {}) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(options).filter(([k, v]) => !(k in defaults && JSON.stringify(v) === JSON.stringify(defaults[k]))));
}

/**
 * Builds a method by name. Unknown names and unknown or out-of-range options throw a
 * `ConfigError` naming the method and option.
 */
export function getStrategy(name: string, options?: Record<string, unknown>): TuningStrategy {
  const entry = Object.prototype.hasOwnProperty.call(REGISTRY, name) ? REGISTRY[name] : undefined;
  if (!entry) throw new ConfigError(`unknown tuning method ${JSON.stringify(name)} (known: ${listStrategies().join(', ')})`);
  return entry.create(options);
}
