/**
 * Run mode and config validation shared by every part of kernel-lib.
 *
 * `GMT_MODE=fast|full` (default `full` for users, `fast` in tests and CI) selects smaller
 * budgets with the same code path: notebooks call `budget({ fast, full })` wherever a size or
 * step count appears, so a fast run exercises exactly what a full run does.
 */

export type RunMode = 'fast' | 'full';

/** The mode read from `GMT_MODE`; throws on any other value so typos do not silently run full. */
export function runMode(env: NodeJS.ProcessEnv = process.env): RunMode {
  const raw = (env.GMT_MODE ?? 'full').trim().toLowerCase();
  if (raw === 'fast' || raw === 'full') return raw;
  throw new Error(`GMT_MODE must be "fast" or "full", got ${JSON.stringify(env.GMT_MODE)}`);
}

/** Picks the value for the current run mode: `budget({ fast: 20, full: 600 })`. */
export function budget<T>(choices: { fast: T; full: T }, mode: RunMode = runMode()): T {
  return choices[mode];
}

/** Thrown for every invalid user input: names the option and what was expected. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * Merges `overrides` into `defaults`, rejecting keys the defaults do not have
 * (nanoGPT style: typed defaults, unknown keys are an error, never ignored).
 * `where` names the config in the message, e.g. "GPT config".
 */
export function resolveConfig<T extends object>(defaults: T, overrides: Partial<T> | undefined, where: string): T {
  const out = { ...defaults };
  if (overrides === undefined) return out;
  if (overrides === null || typeof overrides !== 'object' || Array.isArray(overrides)) {
    throw new ConfigError(`${where}: expected an object of options, got ${JSON.stringify(overrides)}`);
  }
  for (const [key, value] of Object.entries(overrides)) {
    if (!Object.prototype.hasOwnProperty.call(defaults, key)) {
      const known = Object.keys(defaults).join(', ');
      throw new ConfigError(`${where}: unknown option "${key}" (known: ${known})`);
    }
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  }
  return out;
}

/** Asserts a number lies in a range; `name` is the option as the user wrote it. */
export function checkNumber(
  name: string,
  value: unknown,
  opts: { min?: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean; integer?: boolean } = {},
): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ConfigError(`${name} must be a finite number, got ${JSON.stringify(value)}`);
  }
  if (opts.integer && !Number.isInteger(value)) throw new ConfigError(`${name} must be an integer, got ${value}`);
  const { min, max } = opts;
  const below = min !== undefined && (opts.minExclusive ? value <= min : value < min);
  const above = max !== undefined && (opts.maxExclusive ? value >= max : value > max);
  if (below || above) {
    // Name the whole allowed range, e.g. "in [0, 1)", so one message says what would be accepted.
    const range = min !== undefined && max !== undefined
      ? `in ${opts.minExclusive ? '(' : '['}${min}, ${max}${opts.maxExclusive ? ')' : ']'}`
      : min !== undefined ? `${opts.minExclusive ? '>' : '>='} ${min}` : `${opts.maxExclusive ? '<' : '<='} ${max}`;
    throw new ConfigError(`${name} must be ${range}, got ${value}`);
  }
  return value;
}
