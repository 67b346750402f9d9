/**
 * `general`: the pre-training mixture of the base model, and the text on which forgetting is
 * measured after fine-tuning (the paper's "general" axis, §4.1, at toy scale).
 *
 * A document is a few lines, each one of:
 * - prose: templated sentences about people, objects and places (`Ivy walks to the park with 3 cups.`);
 * - facts: one arithmetic fact `17+8=25` — the facts cycle through *every* fact the math task
 *   can use (`arithmeticFacts(maxValue, operations)`), so pre-training covers exactly that
 *   operand range (design §6);
 * - programs: a listlang snippet with its input and output, `[1,2,3]|map(x*2)|sum => 12`.
 *
 * It never contains the math question/answer format (`Q: `, `####`) nor the code spec format
 * (`Spec: `, `Ex: `): fine-tuning formats stay out of pre-training (design §6).
 * Documents come as `Example`s with an empty prompt (the whole text is the completion) so they
 * work with `makeBatch`; `packText` packs them for pre-training.
 */
import { ConfigError, checkNumber, resolveConfig } from '../../util/config';
import { Rng } from '../../util/rng';
import { formatListValue, runProgram } from '../../eval/listlang';
import { type ArithFact, type ArithOp, arithmeticFacts, checkOperations, formatFact } from './arithmetic';
import { type ArithMeta, type Example, type GeneralMeta, type SplitConfig, type TaskSplits, buildSplits, checkIntRange, checkSplitConfig } from './common';
import { DEFAULT_CODE_CONFIG, sampleProgramStages, stagesToProgram } from './code';
import { DEFAULT_MATH_CONFIG } from './math';

/** Knobs of the general mixture. */
export interface GeneralConfig extends SplitConfig {
  /** Lines per document: n or [min, max]. */
  linesPerDoc: number | [number, number];
  /** Relative weights of the line kinds. */
  mix: { prose: number; facts: number; programs: number };
  /** Fact range; keep equal to the math task's `maxValue`. */
  maxValue: number;
  /** Fact operations; keep equal to the math task's `operations`. */
  operations: ArithOp[];
  /** ListProgram snippets: stages per program (n or [min, max]). */
  programStages: number | [number, number];
  /** ListProgram snippets: largest constant. */
  maxConst: number;
  /** ListProgram snippets: input list length (n or [min, max]) and largest element. */
  listLength: number | [number, number];
  maxElement: number;
}

/** Defaults match `DEFAULT_MATH_CONFIG` and `DEFAULT_CODE_CONFIG`; 3–6 lines per document. */
export const DEFAULT_GENERAL_CONFIG: Readonly<GeneralConfig> = Object.freeze({
  seed: 0,
  trainSize: 5000,
  validationSize: 300,
  testSize: 300,
  linesPerDoc: [3, 6] as [number, number],
  mix: { prose: 0.3, facts: 0.5, programs: 0.2 },
  maxValue: DEFAULT_MATH_CONFIG.maxValue,
  operations: [...DEFAULT_MATH_CONFIG.operations],
  programStages: DEFAULT_CODE_CONFIG.stages,
  maxConst: DEFAULT_CODE_CONFIG.maxConst,
  listLength: DEFAULT_CODE_CONFIG.listLength,
  maxElement: DEFAULT_CODE_CONFIG.maxElement,
});

/** Strings that never occur in the general mixture (the fine-tuning formats). */
export const GENERAL_FORBIDDEN: readonly string[] = Object.freeze(['Q: ', '####', 'Spec: ', 'Ex: ']);

const NAMES = ['Ann', 'Bob', 'Cal', 'Dee', 'Eve', 'Finn', 'Gus', 'Ivy', 'Jo', 'Kim', 'Leo', 'Max', 'Mia', 'Ned', 'Pam', 'Sam', 'Tom', 'Zoe'];
const THINGS = ['pens', 'cards', 'coins', 'books', 'eggs', 'beads', 'cups', 'toys', 'hats', 'nuts', 'bags', 'keys'];
const PLACES = ['park', 'shop', 'lake', 'farm', 'school', 'market', 'beach', 'library'];
const ANIMALS = ['cat', 'dog', 'fox', 'owl', 'hen', 'goat', 'bird', 'frog'];
const ADJS = ['small', 'old', 'red', 'quiet', 'happy', 'tall', 'lazy', 'brave'];
const VERBS = ['sleeps', 'runs', 'sings', 'waits', 'jumps', 'eats'];
const DAYS = ['Monday', 'Tuesday', 'Friday', 'Sunday'];

const PROSE: ((r: Rng, maxValue: number) => string)[] = [
  (r, m) => `${r.pick(NAMES)} walks to the ${r.pick(PLACES)} with ${r.int(1, m)} ${r.pick(THINGS)}.`,
  (r) => `The ${r.pick(ADJS)} ${r.pick(ANIMALS)} ${r.pick(VERBS)} by the ${r.pick(PLACES)}.`,
  (r) => `${r.pick(NAMES)} and ${r.pick(NAMES)} play at the ${r.pick(PLACES)} on ${r.pick(DAYS)}.`,
  (r, m) => `There are ${r.int(1, m)} ${r.pick(THINGS)} on the table.`,
  (r) => `${r.pick(NAMES)} likes ${r.pick(THINGS)} more than ${r.pick(THINGS)}.`,
  (r, m) => `A ${r.pick(ANIMALS)} saw ${r.int(2, m)} ${r.pick(ANIMALS)}s at the ${r.pick(PLACES)}.`,
  (r) => `On ${r.pick(DAYS)} the ${r.pick(PLACES)} is ${r.pick(['busy', 'empty', 'open', 'closed'])}.`,
  (r, m) => `${r.pick(NAMES)} keeps ${r.int(1, m)} ${r.pick(THINGS)} in a box.`,
];

/** Validated, resolved general config. */
export function resolveGeneralConfig(overrides?: Partial<GeneralConfig>): GeneralConfig {
  const c = resolveConfig({ ...DEFAULT_GENERAL_CONFIG }, overrides, 'general config');
  const w = 'general config';
  checkSplitConfig(c, w);
  const linesPerDoc = checkIntRange(`${w}.linesPerDoc`, c.linesPerDoc, 1, 100);
  const mix = resolveConfig({ prose: 0, facts: 0, programs: 0 }, c.mix, `${w}.mix`);
  for (const k of ['prose', 'facts', 'programs'] as const) checkNumber(`${w}.mix.${k}`, mix[k], { min: 0 });
  if (mix.prose + mix.facts + mix.programs <= 0) throw new ConfigError(`${w}.mix: at least one weight must be > 0`);
  checkNumber(`${w}.maxValue`, c.maxValue, { min: 4, max: 100_000, integer: true });
  const operations = checkOperations(`${w}.operations`, c.operations);
  const programStages = checkIntRange(`${w}.programStages`, c.programStages, 1, 6);
  checkNumber(`${w}.maxConst`, c.maxConst, { min: 2, max: 1000, integer: true });
  const listLength = checkIntRange(`${w}.listLength`, c.listLength, 1, 50);
  checkNumber(`${w}.maxElement`, c.maxElement, { min: 1, max: 10_000, integer: true });
  return { ...c, linesPerDoc, mix, operations, programStages, listLength };
}

/** A program snippet line `[1,2,3]|map(x*2)|sum => 12`. */
function programLine(r: Rng, c: GeneralConfig): string {
  const [slo, shi] = c.programStages as [number, number];
  const [llo, lhi] = c.listLength as [number, number];
  for (;;) {
    const program = stagesToProgram(sampleProgramStages(r, r.int(slo, shi), c.maxConst, 0.6));
    const input = Array.from({ length: r.int(llo, lhi) }, () => r.int(0, c.maxElement));
    const result = runProgram(program, input);
    // Runtime errors (max of an empty list) are skipped: snippets show working programs only.
    if (result.ok) return `${formatListValue(input)}|${program} => ${formatListValue(result.value)}`;
  }
}

/**
 * Generates disjoint (by full text) splits of general documents. Each split cycles through
 * the whole fact list in a shuffled order, so a split with at least as many fact lines as
 * there are facts contains every fact.
 */
export function generateGeneralCorpus(overrides?: Partial<GeneralConfig>): TaskSplits<GeneralMeta> {
  const c = resolveGeneralConfig(overrides);
  const facts = arithmeticFacts(c.maxValue, c.operations);
  const [llo, lhi] = c.linesPerDoc as [number, number];
  const total = c.mix.prose + c.mix.facts + c.mix.programs;
  // One fact cycle per split stream: the sampler closure sees a new Rng per split.
  const cycles = new WeakMap<Rng, { order: ArithFact[]; next: number }>();
  const nextFact = (r: Rng): ArithFact => {
    let cyc = cycles.get(r);
    if (cyc === undefined || cyc.next >= cyc.order.length) {
      cyc = { order: r.shuffle([...facts]), next: 0 };
      cycles.set(r, cyc);
    }
    return cyc.order[cyc.next++] as ArithFact;
  };
  return buildSplits(
    c,
    'general',
    (r) => {
      const kinds = { prose: 0, facts: 0, programs: 0 };
      const lines: string[] = [];
      const n = r.int(llo, lhi);
      for (let i = 0; i < n; i++) {
        const u = r.next() * total;
        if (u < c.mix.prose) {
          kinds.prose++;
          lines.push(r.pick(PROSE)(r, c.maxValue));
        } else if (u < c.mix.prose + c.mix.facts) {
          kinds.facts++;
          lines.push(formatFact(nextFact(r)));
        } else {
          kinds.programs++;
          lines.push(programLine(r, c));
        }
      }
      return { prompt: '', completion: lines.join('\n'), meta: { task: 'general', kinds, source: 'generated' } };
    },
    (ex) => ex.completion,
  );
}

/**
 * Fact-check probes `17+8=` → `25` over every fact of the math task's range: the measure of
 * the base model's arithmetic (design §6 asks ≥ 90% greedy) and of its retention after
 * fine-tuning. Score with `evaluateTask('arith', ...)`.
 */
export function arithmeticFactExamples(maxValue: number = DEFAULT_MATH_CONFIG.maxValue, operations: readonly ArithOp[] = DEFAULT_MATH_CONFIG.operations): Example<ArithMeta>[] {
  checkNumber('arithmeticFactExamples maxValue', maxValue, { min: 1, integer: true });
  const ops = checkOperations('arithmeticFactExamples operations', operations);
  return arithmeticFacts(maxValue, ops).map((f) => ({
    prompt: `${f.left}${f.op}${f.right}=`,
    completion: String(f.result),
    meta: { task: 'arith', answer: f.result, source: 'generated' },
  }));
}
