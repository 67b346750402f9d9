import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  generateMathTask,
  generateCodeTask,
  generateGeneralCorpus,
  arithmeticFacts,
  arithmeticFactExamples,
  formatFact,
  codeSpecOf,
  GENERAL_FORBIDDEN,
  DEFAULT_MATH_CONFIG,
  type Example,
  type TaskSplits,
  type ExampleMeta,
} from '../src/data/tasks';
import { runProgram, listValuesEqual, formatListValue } from '../src/eval/listlang';
import { CharTokenizer } from '../src/data/tokenizer';

const tok = new CharTokenizer();
const small = { trainSize: 300, validationSize: 100, testSize: 200 };

function all<M extends ExampleMeta>(s: TaskSplits<M>): Example<M>[] {
  return [...s.train, ...s.validation, ...s.test];
}

function assertDisjoint<M extends ExampleMeta>(s: TaskSplits<M>, key: (e: Example<M>) => string): void {
  const keys = all(s).map(key);
  assert.equal(new Set(keys).size, keys.length, 'no key repeats within or across splits');
}

for (const [name, gen] of [
  ['math', (o: object) => generateMathTask(o)],
  ['code', (o: object) => generateCodeTask(o)],
  ['general', (o: object) => generateGeneralCorpus(o)],
] as const) {
  test(`${name}: same seed same data, different seed different data, exact sizes`, () => {
    const a = gen({ ...small, seed: 1 });
    const b = gen({ ...small, seed: 1 });
    const c = gen({ ...small, seed: 2 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.test, c.test);
    assert.notDeepEqual(a.train, c.train);
    assert.equal(a.train.length, 300);
    assert.equal(a.validation.length, 100);
    assert.equal(a.test.length, 200);
    // The test split does not move when the train size changes.
    const d = gen({ ...small, seed: 1, trainSize: 50 });
    assert.deepEqual(d.test, a.test);
  });

  test(`${name}: every text is in the tokenizer vocabulary`, () => {
    for (const e of all(gen({ ...small, seed: 3 }) as TaskSplits<ExampleMeta>)) {
      assert.ok(tok.canEncode(e.prompt + e.completion), JSON.stringify(e.prompt + e.completion));
    }
  });

  test(`${name}: unknown config keys and bad values are rejected`, () => {
    assert.throws(() => gen({ sed: 1 }), /unknown option "sed"/);
    assert.throws(() => gen({ trainSize: -1 }), /trainSize must be >= 0/);
  });
}

test('math: splits never share a prompt', () => {
  assertDisjoint(generateMathTask({ ...small, seed: 4 }), (e) => e.prompt);
});

test('math: every answer follows from its worked steps, within the knobs', () => {
  for (const config of [
    { seed: 5 },
    { seed: 6, steps: 1, maxValue: 10, operations: ['+', '-'] as ('+' | '-')[] },
    { seed: 7, steps: 4, maxValue: 40, operations: ['*', '+'] as ('*' | '+')[], maxChars: 200 },
  ]) {
    const split = generateMathTask({ ...config, trainSize: 200, validationSize: 50, testSize: 200 });
    const maxValue = config.maxValue ?? DEFAULT_MATH_CONFIG.maxValue;
    const ops = (config.operations ?? DEFAULT_MATH_CONFIG.operations) as string[];
    const facts = new Set(arithmeticFacts(maxValue, ops as never).map(formatFact));
    for (const e of all(split)) {
      assert.ok(e.prompt.startsWith('Q: ') && e.prompt.endsWith('\n'), e.prompt);
      const lines = e.completion.split('\n');
      const last = lines.pop() as string;
      assert.equal(last, `#### ${e.meta.answer}`);
      assert.equal(lines.length, e.meta.steps);
      const steps = config.steps === undefined ? [2, 3] : [config.steps, config.steps];
      assert.ok(e.meta.steps >= (steps[0] as number) && e.meta.steps <= (steps[1] as number));
      // Each step is correct arithmetic, chains from the previous result, and is a known fact.
      let running: number | undefined;
      for (const line of lines) {
        const m = /^(\d+)([-+*/])(\d+)=(\d+)$/.exec(line);
        assert.ok(m, `step ${JSON.stringify(line)}`);
        const [l, op, r, res] = [Number(m[1]), m[2], Number(m[3]), Number(m[4])];
        const calc = op === '+' ? l + r : op === '-' ? l - r : op === '*' ? l * r : l / r;
        assert.equal(calc, res, line);
        if (running !== undefined) assert.equal(l, running, `${line} continues from ${running}`);
        else assert.ok(e.prompt.includes(` ${l} `), `start value ${l} appears in the question`);
        assert.ok(e.prompt.includes(` ${r}`), `operand ${r} appears in the question`);
        assert.ok(ops.includes(op as string));
        assert.ok(facts.has(line), `${line} is in the fact set`);
        assert.ok(res >= 1 && res <= maxValue && Number.isInteger(res));
        running = res;
      }
      assert.equal(running, e.meta.answer);
      assert.ok(e.prompt.length + e.completion.length <= (config.maxChars ?? 120));
    }
  }
});

test('math: impossible knobs give a clear error', () => {
  assert.throws(() => generateMathTask({ operations: ['^'] as never }), /unknown operation "\^"/);
  assert.throws(() => generateMathTask({ steps: [3, 2] }), /min <= max/);
  assert.throws(() => generateMathTask({ steps: 6 }), /could not draw a 6-step problem.*raise maxChars/);
});

test('code: splits never share a spec; reference programs pass their hidden and shown tests', () => {
  for (const config of [{ seed: 8 }, { seed: 9, stages: 3, examples: 2, maxChars: 200, hiddenTests: 8 }, { seed: 10, stages: [1, 2] as [number, number], maxConst: 9, listLength: [5, 8] as [number, number], maxChars: 200 }]) {
    const split = generateCodeTask({ ...small, ...config });
    assertDisjoint(split, (e) => codeSpecOf(e.prompt));
    for (const e of all(split)) {
      assert.equal(e.completion, e.meta.reference);
      assert.ok(!e.completion.includes('\n'));
      assert.equal(e.completion.split('|').length, e.meta.stages);
      assert.equal(e.meta.tests.length, config.hiddenTests ?? 5);
      for (const t of e.meta.tests) {
        const r = runProgram(e.completion, t.input);
        assert.ok(r.ok && listValuesEqual(r.value, t.output), `${e.completion} on ${formatListValue(t.input)}`);
      }
      // Shown examples hold too, and are not among the hidden tests.
      const shown = [...e.prompt.matchAll(/^Ex: (\[[\d,]*\]) -> (.*)$/gm)];
      assert.equal(shown.length, config.examples ?? 1);
      for (const [, input, output] of shown) {
        const r = runProgram(e.completion, JSON.parse(input as string));
        assert.ok(r.ok && formatListValue(r.value) === output, `${e.completion} on shown ${input}`);
        assert.ok(!e.meta.tests.some((t) => formatListValue(t.input) === input));
      }
      assert.ok(!e.meta.tests.every((t) => listValuesEqual(t.output, (e.meta.tests[0] as { output: number }).output)), 'hidden outputs differ');
      assert.ok(e.prompt.length + e.completion.length <= (config.maxChars ?? 120));
    }
  }
});

test('code: a task space smaller than the requested sizes gives a clear error', () => {
  // One stage with constants <= 2: about two dozen distinct specs exist.
  assert.throws(() => generateCodeTask({ ...small, stages: 1, maxConst: 2 }), /code: could only find \d+ distinct prompts/);
  assert.throws(() => generateCodeTask({ examples: 3 }), /examples must be in \[1, 2\], got 3/);
});

test('general: no fine-tuning format, disjoint documents, every fact covered', () => {
  const split = generateGeneralCorpus({ seed: 11, trainSize: 1500, validationSize: 50, testSize: 50 });
  assertDisjoint(split, (e) => e.completion);
  const facts = arithmeticFacts(DEFAULT_MATH_CONFIG.maxValue, DEFAULT_MATH_CONFIG.operations).map(formatFact);
  const factSet = new Set(facts);
  const seen = new Set<string>();
  let programs = 0;
  for (const e of all(split)) {
    assert.equal(e.prompt, '');
    for (const bad of GENERAL_FORBIDDEN) assert.ok(!e.completion.includes(bad), `${JSON.stringify(bad)} in ${e.completion}`);
    for (const line of e.completion.split('\n')) {
      if (/^\d+[-+*/]\d+=\d+$/.test(line)) {
        assert.ok(factSet.has(line), `${line} is a fact of the math range`);
        seen.add(line);
      }
      const m = /^(\[[\d,]*\])\|(.+) => (.+)$/.exec(line);
      if (m) {
        programs++;
        const r = runProgram(m[2] as string, JSON.parse(m[1] as string));
        assert.ok(r.ok && formatListValue(r.value) === m[3], line);
      }
    }
  }
  assert.ok(programs > 100);
  const trainFacts = split.train.reduce((s, e) => s + e.meta.kinds.facts, 0);
  assert.ok(trainFacts >= facts.length, `train has ${trainFacts} fact lines for ${facts.length} facts`);
  const trainSeen = new Set(split.train.flatMap((e) => e.completion.split('\n')).filter((l) => factSet.has(l)));
  assert.equal(trainSeen.size, facts.length, 'the train split covers every fact');
});

test('arithmetic fact probes cover the math range exactly', () => {
  const probes = arithmeticFactExamples(12, ['+', '/']);
  const facts = arithmeticFacts(12, ['+', '/']);
  assert.equal(probes.length, facts.length);
  for (const p of probes) {
    const m = /^(\d+)([+/])(\d+)=$/.exec(p.prompt);
    assert.ok(m);
    const want = m[2] === '+' ? Number(m[1]) + Number(m[3]) : Number(m[1]) / Number(m[3]);
    assert.equal(p.meta.answer, want);
    assert.equal(p.completion, String(want));
    assert.ok(want >= 1 && want <= 12);
  }
  // Every (a, b) with a + b <= 12, a, b >= 1 is there: 11 + 10 + … + 1 = 66 additions.
  assert.equal(probes.filter((p) => p.prompt.includes("+")).length, 66);
});
