/**
 * `code`: natural-language spec + input/output example → a listlang program, scored like
 * HumanEval/MBPP (the paper's code benchmarks, §4.1): the generated program is run on hidden
 * test inputs and passes only if every output matches (pass@1 with greedy decoding).
 *
 * Format:
 *
 *     prompt:     "Spec: add 3 to each, keep the evens, sum\nEx: [1,4,2] -> 12\n"
 *     completion: "map(x+3)|filter(x%2==0)|sum"
 *
 * A completion ends at the first newline or at the end-of-text token, whichever comes first.
 * Each stage has exactly one phrase, so the spec determines the program's meaning; splits are
 * disjoint by spec (the same program never appears in train and test with other examples).
 *
 * Difficulty knobs: `stages`, `maxConst` (constants in map/filter/take/drop), `listLength`,
 * `maxElement`, `examples` (shown in the prompt), `reduceProb` (programs ending in a
 * reducer such as `sum`), `hiddenTests`.
 */
import { ConfigError, checkNumber, resolveConfig } from '../../util/config';
import type { Rng } from '../../util/rng';
import { type ListValue, formatListValue, parseListProgram, runListProgram, listValuesEqual, type ListProgram } from '../../eval/listlang';
import { type CodeMeta, type CodeTest, type Example, type SplitConfig, type TaskSplits, buildSplits, checkIntRange, checkSplitConfig } from './common';

/** Knobs of the code task. */
export interface CodeTaskConfig extends SplitConfig {
  /** Pipeline stages per program (including a final reducer): n or [min, max]. */
  stages: number | [number, number];
  /** Largest constant in `map(x+k)`, `filter(x>k)`, `take(k)`, … (≥ 2). */
  maxConst: number;
  /** Length of input lists: n or [min, max]. */
  listLength: number | [number, number];
  /** Input elements are drawn from [0, maxElement]. */
  maxElement: number;
  /** Input/output examples shown in the prompt (1 or 2). */
  examples: number;
  /** Probability that a program ends with a reducer (`sum`, `len`, `max`, `min`, `head`, `last`). */
  reduceProb: number;
  /** Hidden tests per problem; pass@1 needs all of them. */
  hiddenTests: number;
  /** Longest prompt + completion in characters; longer draws are re-drawn. */
  maxChars: number;
}

/** Defaults: 1–3 stages, constants ≤ 5, lists of 3–5 elements in [0, 9], one shown example, 5 hidden tests. */
export const DEFAULT_CODE_CONFIG: Readonly<CodeTaskConfig> = Object.freeze({
  seed: 0,
  trainSize: 1000,
  validationSize: 200,
  testSize: 1000,
  stages: [1, 3] as [number, number],
  maxConst: 5,
  listLength: [3, 5] as [number, number],
  maxElement: 9,
  examples: 1,
  reduceProb: 0.6,
  hiddenTests: 5,
  maxChars: 120,
});

/** One stage of a generated program: its code and its spec phrase. */
export interface StageTemplate {
  code: string;
  phrase: string;
}

type StageMaker = (rng: Rng, maxConst: number) => StageTemplate;

/** list → list stages. Each has one fixed phrase (the spec → program mapping is a function). */
const LIST_STAGES: Record<string, StageMaker> = {
  add: (rng, c) => {
    const k = rng.int(1, c);
    return { code: `map(x+${k})`, phrase: `add ${k} to each` };
  },
  sub: (rng, c) => {
    const k = rng.int(1, c);
    return { code: `map(x-${k})`, phrase: `subtract ${k} from each` };
  },
  mul: (rng, c) => {
    const k = rng.int(2, c);
    return { code: `map(x*${k})`, phrase: `multiply each by ${k}` };
  },
  square: () => ({ code: 'map(x*x)', phrase: 'square each' }),
  mod: (rng, c) => {
    const k = rng.int(2, c);
    return { code: `map(x%${k})`, phrase: `each mod ${k}` };
  },
  above: (rng, c) => {
    const k = rng.int(1, c);
    return { code: `filter(x>${k})`, phrase: `keep those above ${k}` };
  },
  below: (rng, c) => {
    const k = rng.int(1, c);
    return { code: `filter(x<${k})`, phrase: `keep those below ${k}` };
  },
  evens: () => ({ code: 'filter(x%2==0)', phrase: 'keep the evens' }),
  odds: () => ({ code: 'filter(x%2==1)', phrase: 'keep the odds' }),
  sort: () => ({ code: 'sort', phrase: 'sort' }),
  rev: () => ({ code: 'rev', phrase: 'reverse' }),
  take: (rng, c) => {
    const k = rng.int(1, c);
    return { code: `take(${k})`, phrase: `keep the first ${k}` };
  },
  drop: (rng, c) => {
    const k = rng.int(1, c);
    return { code: `drop(${k})`, phrase: `drop the first ${k}` };
  },
};

/** list → integer stages (the optional last stage). */
const REDUCERS: StageTemplate[] = [
  { code: 'sum', phrase: 'sum' },
  { code: 'len', phrase: 'count' },
  { code: 'max', phrase: 'max' },
  { code: 'min', phrase: 'min' },
  { code: 'head', phrase: 'first one' },
  { code: 'last', phrase: 'last one' },
];

const LIST_STAGE_NAMES = Object.keys(LIST_STAGES);

/**
 * Draws a program of `nStages` stages (the last one a reducer with probability `reduceProb`).
 * No stage kind repeats back to back. Shared with the `general` mixture's program snippets.
 */
export function sampleProgramStages(rng: Rng, nStages: number, maxConst: number, reduceProb: number): StageTemplate[] {
  const reduce = rng.bernoulli(reduceProb);
  const nList = reduce ? nStages - 1 : nStages;
  const stages: StageTemplate[] = [];
  let prev = '';
  for (let i = 0; i < nList; i++) {
    let kind = rng.pick(LIST_STAGE_NAMES);
    while (kind === prev) kind = rng.pick(LIST_STAGE_NAMES);
    prev = kind;
    stages.push((LIST_STAGES[kind] as StageMaker)(rng, maxConst));
  }
  if (reduce) stages.push(rng.pick(REDUCERS));
  return stages;
}

/** The program text of stages: `map(x+3)|filter(x%2==0)|sum`. */
export function stagesToProgram(stages: readonly StageTemplate[]): string {
  return stages.map((s) => s.code).join('|');
}

/** The spec text of stages: `add 3 to each, keep the evens, sum`. */
export function stagesToSpec(stages: readonly StageTemplate[]): string {
  return stages.map((s) => s.phrase).join(', ');
}

/** The prompt of a code problem. */
export function codePrompt(spec: string, shown: readonly CodeTest[]): string {
  return `Spec: ${spec}\n${shown.map((t) => `Ex: ${formatListValue(t.input)} -> ${formatListValue(t.output)}\n`).join('')}`;
}

/** Validated, resolved code config. */
export function resolveCodeConfig(overrides?: Partial<CodeTaskConfig>): CodeTaskConfig {
  const c = resolveConfig({ ...DEFAULT_CODE_CONFIG }, overrides, 'code task config');
  const w = 'code task config';
  checkSplitConfig(c, w);
  const stages = checkIntRange(`${w}.stages`, c.stages, 1, 6);
  checkNumber(`${w}.maxConst`, c.maxConst, { min: 2, max: 1000, integer: true });
  const listLength = checkIntRange(`${w}.listLength`, c.listLength, 1, 50);
  checkNumber(`${w}.maxElement`, c.maxElement, { min: 1, max: 10_000, integer: true });
  checkNumber(`${w}.examples`, c.examples, { min: 1, max: 2, integer: true });
  checkNumber(`${w}.reduceProb`, c.reduceProb, { min: 0, max: 1 });
  checkNumber(`${w}.hiddenTests`, c.hiddenTests, { min: 1, max: 100, integer: true });
  checkNumber(`${w}.maxChars`, c.maxChars, { min: 30, integer: true });
  return { ...c, stages, listLength };
}

function sampleList(rng: Rng, config: CodeTaskConfig): number[] {
  const [lo, hi] = config.listLength as [number, number];
  return Array.from({ length: rng.int(lo, hi) }, () => rng.int(0, config.maxElement));
}

/**
 * Draws inputs for a program: distinct lists on which the program runs without error.
 * Returns undefined when the program fails too often (e.g. `max` after a filter that usually
 * empties the list); the caller then draws another program.
 */
function sampleTests(rng: Rng, program: ListProgram, count: number, config: CodeTaskConfig): CodeTest[] | undefined {
  const seen = new Set<string>();
  const tests: CodeTest[] = [];
  for (let tries = 0; tests.length < count && tries < count * 10; tries++) {
    const input = sampleList(rng, config);
    const key = formatListValue(input);
    if (seen.has(key)) continue;
    const r = runListProgram(program, input);
    if (!r.ok) continue;
    seen.add(key);
    tests.push({ input, output: r.value });
  }
  return tests.length === count ? tests : undefined;
}

/** Draws one problem. */
export function sampleCodeProblem(rng: Rng, config: CodeTaskConfig): Example<CodeMeta> {
  const [lo, hi] = config.stages as [number, number];
  const nStages = rng.int(lo, hi);
  for (let attempt = 0; attempt < 200; attempt++) {
    const stages = sampleProgramStages(rng, nStages, config.maxConst, config.reduceProb);
    const reference = stagesToProgram(stages);
    const parsed = parseListProgram(reference);
    if (!parsed.ok) throw new Error(`code task: generated an invalid program ${reference}: ${parsed.error.message}`);
    const tests = sampleTests(rng, parsed.program, config.examples + config.hiddenTests, config);
    if (tests === undefined) continue;
    const shown = tests.slice(0, config.examples);
    const hidden = tests.slice(config.examples);
    // A program whose hidden outputs are all equal could be passed by a constant: re-draw.
    const first = (hidden[0] as CodeTest).output;
    if (hidden.length > 1 && hidden.every((t) => listValuesEqual(t.output, first as ListValue))) continue;
    const prompt = codePrompt(stagesToSpec(stages), shown);
    if (prompt.length + reference.length > config.maxChars) continue;
    return {
      prompt,
      completion: reference,
      meta: { task: 'code', tests: hidden, reference, stages: nStages, source: 'generated' },
    };
  }
  throw new ConfigError(
    `code task: could not draw a ${nStages}-stage problem within maxChars ${config.maxChars} in 200 tries (raise maxChars, lower stages or listLength)`,
  );
}

/** The spec line of a code prompt (the identity used to keep splits disjoint). */
export function codeSpecOf(prompt: string): string {
  return prompt.split('\n', 1)[0] as string;
}

/** Generates disjoint (by spec) train/validation/test splits of code problems. */
export function generateCodeTask(overrides?: Partial<CodeTaskConfig>): TaskSplits<CodeMeta> {
  const config = resolveCodeConfig(overrides);
  return buildSplits(config, 'code', (rng) => sampleCodeProblem(rng, config), (ex) => codeSpecOf(ex.prompt));
}
