/**
 * `math`: multi-step arithmetic word problems in the style of GSM8K (the paper's math
 * benchmark, §4.1), small enough for a ~1M-parameter character model.
 *
 * Format (the question/answer format is kept out of the `general` pre-training mixture,
 * design §6):
 *
 *     prompt:     "Q: Ann has 12 pens. She buys 7 more. She gives 5 to Bob. How many now?\n"
 *     completion: "12+7=19\n19-5=14\n#### 14"
 *
 * One worked step per line (`left op right=result`, `*` for ×, `/` for ÷), then the
 * GSM8K-style final line `#### <answer>`. A completion ends at the end-of-text token.
 * Every number in a problem (start, operands, intermediate and final results) is an integer
 * in [1, maxValue], and every step is one of `arithmeticFacts(maxValue, operations)`.
 *
 * Difficulty knobs: `steps` (number of operations), `maxValue`, `operations`.
 */
import { resolveConfig, checkNumber, ConfigError } from '../../util/config';
import type { Rng } from '../../util/rng';
import { type ArithOp, applyOp, checkOperations, formatFact, stepOperands } from './arithmetic';
import { type Example, type MathMeta, type SplitConfig, type TaskSplits, buildSplits, checkIntRange, checkSplitConfig } from './common';

/** Knobs of the math task. */
export interface MathTaskConfig extends SplitConfig {
  /** Number of worked steps per problem: n or an inclusive [min, max] range. */
  steps: number | [number, number];
  /** Largest number that may appear anywhere in a problem. */
  maxValue: number;
  /** Operations a step may use. */
  operations: ArithOp[];
  /**
   * Longest prompt + completion in characters; longer draws are re-drawn. With the EOT
   * tokens a sequence needs maxChars + 1 positions, so 120 fits a context of 128.
   */
  maxChars: number;
}

/** Defaults: 2–3 steps, values ≤ 40, all four operations, ≤ 120 characters; 1000/200/1000 examples. */
export const DEFAULT_MATH_CONFIG: Readonly<MathTaskConfig> = Object.freeze({
  seed: 0,
  trainSize: 1000,
  validationSize: 200,
  testSize: 1000,
  steps: [2, 3] as [number, number],
  maxValue: 40,
  operations: ['+', '-', '*', '/'] as ArithOp[],
  maxChars: 120,
});

/** The prefix that opens every math prompt (also used by the GSM8K loader). */
export const MATH_PROMPT_PREFIX = 'Q: ';
/** The marker of the final answer line. */
export const MATH_ANSWER_MARKER = '####';

/** The prompt of a question: `Q: <question>\n`. Shared with the GSM8K loader. */
export function mathPrompt(question: string): string {
  return `${MATH_PROMPT_PREFIX}${question.trim()}\n`;
}

interface Person {
  name: string;
  subj: string;
  obj: string;
}

const PEOPLE: Person[] = [
  ['Ann', 'She', 'her'], ['Bob', 'He', 'him'], ['Cal', 'He', 'him'], ['Dee', 'She', 'her'],
  ['Eve', 'She', 'her'], ['Finn', 'He', 'him'], ['Gus', 'He', 'him'], ['Ivy', 'She', 'her'],
  ['Jo', 'She', 'her'], ['Kim', 'She', 'her'], ['Leo', 'He', 'him'], ['Max', 'He', 'him'],
  ['Mia', 'She', 'her'], ['Ned', 'He', 'him'], ['Pam', 'She', 'her'], ['Sam', 'He', 'him'],
  ['Tom', 'He', 'him'], ['Zoe', 'She', 'her'],
].map(([name, subj, obj]) => ({ name: name as string, subj: subj as string, obj: obj as string }));

const OBJECTS = ['pens', 'cards', 'coins', 'books', 'eggs', 'beads', 'cups', 'toys', 'hats', 'nuts', 'bags', 'keys'];

type Sentence = (p: Person, b: number, friend: Person) => string;

const OPENERS: ((p: Person, a: number, obj: string) => string)[] = [
  (p, a, obj) => `${p.name} has ${a} ${obj}.`,
  (p, a, obj) => `${p.name} gets ${a} ${obj}.`,
];

const SENTENCES: Record<ArithOp, Sentence[]> = {
  '+': [
    (p, b) => `${p.subj} buys ${b} more.`,
    (p, b) => `${p.subj} finds ${b} more.`,
    (p, b, f) => `${f.name} gives ${p.obj} ${b} more.`,
    (p, b) => `${p.subj} wins ${b} more.`,
  ],
  '-': [
    (p, b, f) => `${p.subj} gives ${b} to ${f.name}.`,
    (p, b) => `${p.subj} loses ${b}.`,
    (p, b) => `${p.subj} sells ${b}.`,
    (p, b, f) => `${f.name} takes ${b}.`,
  ],
  '*': [
    (p, b) => `${p.subj} trades each for ${b}.`,
  ],
  '/': [
    (p, b) => `${p.subj} keeps 1 of every ${b}.`,
  ],
};

/** Validated, resolved math config. Throws `ConfigError` naming the bad option. */
export function resolveMathConfig(overrides?: Partial<MathTaskConfig>): MathTaskConfig {
  const c = resolveConfig({ ...DEFAULT_MATH_CONFIG }, overrides, 'math task config');
  checkSplitConfig(c, 'math task config');
  const steps = checkIntRange('math task config.steps', c.steps, 1, 8);
  checkNumber('math task config.maxValue', c.maxValue, { min: 4, max: 100_000, integer: true });
  const operations = checkOperations('math task config.operations', c.operations);
  checkNumber('math task config.maxChars', c.maxChars, { min: 40, integer: true });
  return { ...c, steps, operations };
}

/** Draws one problem. Exposed for notebooks that show single problems. */
export function sampleMathProblem(rng: Rng, config: MathTaskConfig): Example<MathMeta> {
  const [lo, hi] = checkIntRange('steps', config.steps, 1, 8);
  const nSteps = rng.int(lo, hi);
  for (let attempt = 0; attempt < 200; attempt++) {
    const person = rng.pick(PEOPLE);
    const obj = rng.pick(OBJECTS);
    let v = rng.int(1, config.maxValue);
    const parts = [rng.pick(OPENERS)(person, v, obj)];
    const lines: string[] = [];
    let ok = true;
    for (let s = 0; s < nSteps; s++) {
      const feasible = config.operations.filter((op) => stepOperands(v, op, config.maxValue).length > 0);
      if (feasible.length === 0) {
        ok = false;
        break;
      }
      const op = rng.pick(feasible);
      const b = rng.pick(stepOperands(v, op, config.maxValue));
      let friend = rng.pick(PEOPLE);
      while (friend.name === person.name) friend = rng.pick(PEOPLE);
      parts.push(rng.pick(SENTENCES[op])(person, b, friend));
      const result = applyOp(v, op, b);
      lines.push(formatFact({ left: v, op, right: b, result }));
      v = result;
    }
    if (!ok) continue;
    parts.push('How many now?');
    lines.push(`${MATH_ANSWER_MARKER} ${v}`);
    const prompt = mathPrompt(parts.join(' '));
    const completion = lines.join('\n');
    if (prompt.length + completion.length > config.maxChars) continue;
    return { prompt, completion, meta: { task: 'math', answer: v, steps: nSteps, source: 'generated' } };
  }
  throw new ConfigError(
    `math task: could not draw a ${nSteps}-step problem with operations ${JSON.stringify(config.operations)}, ` +
      `maxValue ${config.maxValue} and maxChars ${config.maxChars} in 200 tries (raise maxChars or lower steps)`,
  );
}

/** Generates disjoint train/validation/test splits of math problems; a pure function of the config. */
export function generateMathTask(overrides?: Partial<MathTaskConfig>): TaskSplits<MathMeta> {
  const config = resolveMathConfig(overrides);
  return buildSplits(config, 'math', (rng) => sampleMathProblem(rng, config));
}
