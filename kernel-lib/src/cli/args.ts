/**
 * The strict option parser every `gmt-lab` command shares.
 *
 * A command declares its options once (type, range, choices, default, one-line summary); the
 * parser rejects anything else — an unknown option, a missing or malformed value, a number out
 * of range, an option given twice — with a {@link UsageError} naming the option, which the
 * command wrapper turns into exit status 2. `--help`/`-h` prints the generated usage.
 *
 * Option keys are camelCase in code and kebab-case on the command line:
 * `maskRatio` is `--mask-ratio 0.3` or `--mask-ratio=0.3`. Booleans take no value
 * (`--json`; `--no-json` sets false). Lists are comma-separated (`--ratios 0.1,0.3`).
 */
import { ConfigError, checkNumber } from '../util/config';

/** A command-line mistake: printed with the command's name, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

interface BaseSpec {
  /** One line for `--help`. */
  summary: string;
  /** Optional one-letter alias, used as `-x`. */
  short?: string;
}
interface NumberBounds {
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
  integer?: boolean;
}
/** `--flag` / `--no-flag`; default false unless given. */
export interface BooleanOption extends BaseSpec {
  type: 'boolean';
  default?: boolean;
}
/** `--name 3`; bounds checked with the same rules as config values. */
export interface NumberOption extends BaseSpec, NumberBounds {
  type: 'number';
  default?: number;
}
/** `--name value`, optionally restricted to `choices`. */
export interface StringOption extends BaseSpec {
  type: 'string';
  choices?: readonly string[];
  default?: string;
  /** Placeholder shown in help, e.g. `DIR`. */
  metavar?: string;
}
/** `--name 0.1,0.3`; each item checked against the bounds. */
export interface NumberListOption extends BaseSpec, NumberBounds {
  type: 'number[]';
  default?: number[];
}
/** `--name a,b`; each item checked against `choices` when given. */
export interface StringListOption extends BaseSpec {
  type: 'string[]';
  choices?: readonly string[];
  default?: string[];
  metavar?: string;
}
export type OptionSpec = BooleanOption | NumberOption | StringOption | NumberListOption | StringListOption;
export type OptionSpecs = Record<string, OptionSpec>;

type ValueOf<S extends OptionSpec> = S extends BooleanOption
  ? boolean
  : S extends NumberOption
    ? number
    : S extends StringOption
      ? string
      : S extends NumberListOption
        ? number[]
        : S extends StringListOption
          ? string[]
          : never;

/** The parsed options: booleans and options with a default are always set, the rest may be undefined. */
export type ParsedOptions<O extends OptionSpecs> = {
  [K in keyof O]: O[K] extends BooleanOption
    ? boolean
    : O[K] extends { default: unknown }
      ? ValueOf<O[K]>
      : ValueOf<O[K]> | undefined;
};

/** A positional argument declaration. */
export interface PositionalSpec {
  name: string;
  summary: string;
  /** Default true. */
  required?: boolean;
  /** Accepts any number of values (only the last positional). */
  variadic?: boolean;
}

/** The result of {@link parseArgs}. */
export interface ParsedArgs<O extends OptionSpecs> {
  options: ParsedOptions<O>;
  positionals: string[];
  /** True when `--help` or `-h` was given (nothing else is validated then). */
  help: boolean;
}

/** `maskRatio` → `mask-ratio`. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function parseNumber(flag: string, raw: string, spec: NumberBounds): number {
  const trimmed = raw.trim();
  // Number('') is 0 and Number('0x10') is 16: accept plain decimal/exponent notation only.
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(trimmed) && !/^[+-]?Infinity$/.test(trimmed)) {
    throw new UsageError(`${flag} expects a number, got ${JSON.stringify(raw)}`);
  }
  try {
    return checkNumber(flag, Number(trimmed), spec);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
}

function checkChoice(flag: string, value: string, choices: readonly string[] | undefined): string {
  if (choices && !choices.includes(value)) {
    throw new UsageError(`${flag} must be one of ${choices.join(', ')}; got ${JSON.stringify(value)}`);
  }
  return value;
}

function splitList(flag: string, raw: string): string[] {
  const items = raw.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new UsageError(`${flag} expects a comma-separated list without empty items, got ${JSON.stringify(raw)}`);
  return items;
}

function convert(flag: string, spec: OptionSpec, raw: string): unknown {
  switch (spec.type) {
    case 'number':
      return parseNumber(flag, raw, spec);
    case 'string':
      return checkChoice(flag, raw, spec.choices);
    case 'number[]':
      return splitList(flag, raw).map((item) => parseNumber(flag, item, spec));
    case 'string[]':
      return splitList(flag, raw).map((item) => checkChoice(flag, item, spec.choices));
    case 'boolean':
      throw new UsageError(`${flag} is a switch and takes no value`);
  }
}

/**
 * Parses `argv` (the arguments after the command name) against the declared options and
 * positionals. Throws {@link UsageError} on anything not declared or not valid.
 */
export function parseArgs<O extends OptionSpecs>(
  argv: readonly string[],
  options: O,
  positionals: readonly PositionalSpec[] = [],
): ParsedArgs<O> {
  if (argv.includes('--help') || argv.includes('-h')) {
    return { options: {} as ParsedOptions<O>, positionals: [], help: true };
  }
  const byFlag = new Map<string, string>();
  const byShort = new Map<string, string>();
  for (const [key, spec] of Object.entries(options)) {
    byFlag.set(flagName(key), key);
    if (spec.short) byShort.set(spec.short, key);
  }
  const values: Record<string, unknown> = {};
  const seen = new Set<string>();
  const rest: string[] = [];
  let onlyPositionals = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (onlyPositionals || !arg.startsWith('-') || arg === '-' || /^-\d/.test(arg)) {
      rest.push(arg);
      continue;
    }
    if (arg === '--') {
      onlyPositionals = true;
      continue;
    }
    let name: string;
    let inline: string | undefined;
    let key: string | undefined;
    let negated = false;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      key = byFlag.get(name);
      if (key === undefined && name.startsWith('no-')) {
        const k = byFlag.get(name.slice(3));
        if (k !== undefined && options[k].type === 'boolean') {
          key = k;
          negated = true;
        }
      }
    } else {
      name = arg.slice(1);
      key = name.length === 1 ? byShort.get(name) : undefined;
    }
    const flag = arg.startsWith('--') ? `--${name}` : `-${name}`;
    if (key === undefined) {
      const known = [...byFlag.keys()].map((f) => `--${f}`);
      const hint = known.length > 0 ? ` (known: ${known.join(', ')}, --help)` : ' (this command takes no options except --help)';
      throw new UsageError(`unknown option ${flag}${hint}`);
    }
    const spec = options[key];
    const canonical = `--${flagName(key)}`;
    if (seen.has(key)) throw new UsageError(`${canonical} given more than once`);
    seen.add(key);
    if (spec.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`${canonical} is a switch and takes no value (got ${JSON.stringify(inline)})`);
      values[key] = !negated;
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new UsageError(`${canonical} needs a value`);
      raw = next;
      i++;
    }
    values[key] = convert(canonical, spec, raw);
  }

  for (const [key, spec] of Object.entries(options)) {
    if (values[key] !== undefined) continue;
    if (spec.default !== undefined) values[key] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
    else if (spec.type === 'boolean') values[key] = false;
  }

  const variadic = positionals.length > 0 && positionals[positionals.length - 1].variadic === true;
  const required = positionals.filter((p) => p.required !== false).length;
  if (rest.length < required) {
    const missing = positionals.filter((p) => p.required !== false)[rest.length];
    throw new UsageError(`missing argument <${missing.name}>`);
  }
  if (!variadic && rest.length > positionals.length) {
    const extra = rest.slice(positionals.length).map((s) => JSON.stringify(s)).join(' ');
    throw new UsageError(`unexpected argument${rest.length - positionals.length > 1 ? 's' : ''} ${extra}`);
  }
  return { options: values as ParsedOptions<O>, positionals: rest, help: false };
}

function describeValue(key: string, spec: OptionSpec): string {
  switch (spec.type) {
    case 'boolean':
      return '';
    case 'number':
      return ` <${spec.integer ? 'int' : 'number'}>`;
    case 'number[]':
      return ` <${spec.integer ? 'int' : 'number'},...>`;
    case 'string':
      return spec.choices ? ` <${spec.choices.join('|')}>` : ` <${spec.metavar ?? key.toLowerCase()}>`;
    case 'string[]':
      return spec.choices ? ` <${spec.choices.join('|')},...>` : ` <${spec.metavar ?? key.toLowerCase()},...>`;
  }
}

function describeRange(spec: OptionSpec): string {
  if (spec.type !== 'number' && spec.type !== 'number[]') return '';
  const parts: string[] = [];
  if (spec.min !== undefined) parts.push(`${spec.minExclusive ? '>' : '>='} ${spec.min}`);
  if (spec.max !== undefined) parts.push(`${spec.maxExclusive ? '<' : '<='} ${spec.max}`);
  return parts.length > 0 ? `; ${parts.join(', ')}` : '';
}

/** The usage text generated from a command's declarations. */
export function formatUsage(
  command: string,
  summary: string,
  options: OptionSpecs,
  positionals: readonly PositionalSpec[] = [],
  description?: string,
): string {
  const posText = positionals
    .map((p) => {
      const name = p.variadic ? `${p.name}...` : p.name;
      return p.required === false ? `[${name}]` : `<${name}>`;
    })
    .join(' ');
  const lines = [`Usage: gmt-lab ${command}${Object.keys(options).length > 0 ? ' [options]' : ''}${posText ? ` ${posText}` : ''}`, '', summary];
  if (description) lines.push('', description);
  if (positionals.length > 0) {
    lines.push('', 'Arguments:');
    for (const p of positionals) lines.push(`  ${p.name.padEnd(24)}${p.summary}`);
  }
  lines.push('', 'Options:');
  const rows: [string, string][] = Object.entries(options).map(([key, spec]) => {
    const short = spec.short ? `-${spec.short}, ` : '';
    const def =
      spec.default !== undefined && spec.type !== 'boolean'
        ? ` (default ${Array.isArray(spec.default) ? spec.default.join(',') : spec.default})`
        : '';
    return [`${short}--${flagName(key)}${describeValue(key, spec)}`, `${spec.summary}${describeRange(spec)}${def}`];
  });
  rows.push(['-h, --help', 'show this help']);
  const width = Math.max(24, ...rows.map(([l]) => l.length + 2));
  for (const [left, right] of rows) lines.push(`  ${left.padEnd(width)}${right}`);
  return lines.join('\n');
}
