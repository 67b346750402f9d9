/**
 * What every task generator shares: the `Example` shape, split sizes, and the split builder
 * that keeps train / validation / test disjoint by prompt.
 */
import { ConfigError, checkNumber } from '../../util/config';
import { Rng, deriveSeed } from '../../util/rng';
import type { ListValue } from '../../eval/listlang';

/** Reference data of a generated or loaded math problem. */
export interface MathMeta {
  task: 'math';
  /** The exact final answer (what follows `####`). */
  answer: number;
  /** Number of arithmetic steps in the worked solution (0 when unknown, e.g. loaded data). */
  steps: number;
  /** Where it came from: `generated` or `file:line`. */
  source: string;
}

/** One hidden test of a code problem. */
export interface CodeTest {
  input: ListValue;
  output: ListValue;
}

/** Reference data of a code problem: the hidden tests decide pass/fail. */
export interface CodeMeta {
  task: 'code';
  /** Hidden tests (never shown in the prompt). */
  tests: CodeTest[];
  /** The reference program the tests were computed with. */
  reference: string;
  /** Number of pipeline stages of the reference. */
  stages: number;
  source: string;
}

/** A pretraining document of the `general` mixture (prompt is empty; all of it is text). */
export interface GeneralMeta {
  task: 'general';
  /** How many lines of each kind the document holds. */
  kinds: { prose: number; facts: number; programs: number };
  source: string;
}

/** An arithmetic fact check `17+8=` → `25` (forgetting / base-model mastery probe). */
export interface ArithMeta {
  task: 'arith';
  answer: number;
  source: string;
}

/** A loaded example without a checkable answer (Alpaca, prompt/completion files). */
export interface TextMeta {
  task: 'text';
  format: 'alpaca' | 'prompt-completion';
  source: string;
}

export type ExampleMeta = MathMeta | CodeMeta | GeneralMeta | ArithMeta | TextMeta;

/**
 * One training or evaluation example. The model is trained on `prompt + completion + EOT`
 * with loss only on the completion (see `makeBatch`); at evaluation it sees the prompt and
 * generates a completion that a scorer checks against `meta`.
 */
export interface Example<M extends ExampleMeta = ExampleMeta> {
  prompt: string;
  completion: string;
  meta: M;
}

/** Examples of the three splits; no prompt occurs twice, within or across splits. */
export interface TaskSplits<M extends ExampleMeta = ExampleMeta> {
  train: Example<M>[];
  validation: Example<M>[];
  test: Example<M>[];
}

/** Split sizes and seed, shared by every generator config. */
export interface SplitConfig {
  /** Base seed; each split draws from its own stream derived from it. */
  seed: number;
  trainSize: number;
  validationSize: number;
  testSize: number;
}

/** Validates the split part of a config (`where` names the config in messages). */
export function checkSplitConfig(c: SplitConfig, where: string): void {
  checkNumber(`${where}.seed`, c.seed, { integer: true });
  checkNumber(`${where}.trainSize`, c.trainSize, { min: 0, integer: true });
  checkNumber(`${where}.validationSize`, c.validationSize, { min: 0, integer: true });
  checkNumber(`${where}.testSize`, c.testSize, { min: 0, integer: true });
}

/** Validates an inclusive integer range option such as `steps: [2, 3]`; a number n means [n, n]. */
export function checkIntRange(name: string, value: unknown, min: number, max: number): [number, number] {
  const pair = typeof value === 'number' ? [value, value] : value;
  if (!Array.isArray(pair) || pair.length !== 2) {
    throw new ConfigError(`${name} must be a number or a [min, max] pair, got ${JSON.stringify(value)}`);
  }
  const lo = checkNumber(`${name}[0]`, pair[0], { min, max, integer: true });
  const hi = checkNumber(`${name}[1]`, pair[1], { min, max, integer: true });
  if (hi < lo) throw new ConfigError(`${name} must have min <= max, got [${lo}, ${hi}]`);
  return [lo, hi];
}

/**
 * Builds disjoint splits from a sampler. The test split is drawn first, then validation,
 * then train, each from its own seed stream, skipping any key (prompt) already taken; so the test
 * set depends only on (seed, knobs, testSize) and stays put when `trainSize` changes.
 * Throws when the task's space of distinct prompts is too small for the requested sizes.
 */
export function buildSplits<M extends ExampleMeta>(
  config: SplitConfig,
  label: string,
  sample: (rng: Rng) => Example<M>,
  /** What makes two examples "the same" (default: the prompt); e.g. the spec of a code problem. */
  key: (ex: Example<M>) => string = (ex) => ex.prompt,
): TaskSplits<M> {
  const seen = new Set<string>();
  const draw = (split: keyof TaskSplits, size: number): Example<M>[] => {
    const rng = new Rng(deriveSeed(config.seed, `${label}/${split}`));
    const out: Example<M>[] = [];
    let misses = 0;
    const maxMisses = 2000 + 20 * size;
    while (out.length < size) {
      const ex = sample(rng);
      const k = key(ex);
      if (seen.has(k)) {
        if (++misses > maxMisses) {
          throw new ConfigError(
            `${label}: could only find ${seen.size} distinct prompts (asked for ${config.testSize + config.validationSize + config.trainSize}); ` +
              `widen the difficulty knobs (e.g. maxValue, steps) or ask for fewer examples`,
          );
        }
        continue;
      }
      seen.add(k);
      out.push(ex);
    }
    return out;
  };
  const test = draw('test', config.testSize);
  const validation = draw('validation', config.validationSize);
  const train = draw('train', config.trainSize);
  return { train, validation, test };
}
