import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  extractFinalAnswer,
  parseAnswerNumber,
  scoreMath,
  scoreCode,
  scoreArith,
  evaluateTask,
  completionText,
  stopsAtNewline,
} from '../src/eval/scorers';
import { generateMathTask, generateCodeTask, arithmeticFactExamples, type Example, type MathMeta, type CodeMeta } from '../src/data/tasks';

test('final answer extraction: marker, commas, negatives, decimals, trailing period', () => {
  const cases: [string, number | null][] = [
    ['12+7=19\n#### 19', 19],
    ['#### 1,234', 1234],
    ['#### 1,234,567.', 1234567],
    ['#### -5', -5],
    ['#### 3.5', 3.5],
    ['#### 14.', 14],
    ['####14', 14],
    ['#### $30', 30],
    ['####   7 apples', 7],
    ['#### 0', 0],
    ['#### -0', 0],
    ['the answer is 14', null], // no marker: wrong
    ['14', null],
    ['#### ', null],
    ['#### abc', null],
    ['#### 12,34', null], // not a thousands grouping
    ['#### 12\n#### 13', 12], // first marker wins
    ['10-3=7\n#### 7\nQ: next question\n#### 99', 7],
  ];
  for (const [text, want] of cases) assert.equal(extractFinalAnswer(text), want, JSON.stringify(text));
  assert.equal(parseAnswerNumber(' 2,200'), 2200);
  assert.equal(parseAnswerNumber('x'), null);
});

test('an echoed prompt is removed before looking for the first marker', () => {
  const prompt = 'Q: Example with #### 5 inside the question?\n';
  assert.equal(extractFinalAnswer(`${prompt}1+1=2\n#### 2`, prompt), 2);
  assert.equal(extractFinalAnswer('1+1=2\n#### 2', prompt), 2);
});

test('where a completion ends: math spans lines, code and arith stop at the newline', () => {
  assert.equal(stopsAtNewline('math'), false);
  assert.equal(stopsAtNewline('code'), true);
  assert.equal(completionText('code', 'sum\nmap(x+1)'), 'sum');
  assert.equal(completionText('math', '1+1=2\n#### 2<eot>#### 3'), '1+1=2\n#### 2');
  assert.equal(completionText('arith', '25\n3+4=7'), '25');
});

const mathEx: Example<MathMeta> = {
  prompt: 'Q: Ann has 12 pens. She buys 7 more. How many now?\n',
  completion: '12+7=19\n#### 19',
  meta: { task: 'math', answer: 19, steps: 1, source: 'test' },
};

test('math scoring: right, wrong, missing marker, each with a reason', () => {
  assert.deepEqual(scoreMath(mathEx, '12+7=19\n#### 19'), { correct: true, expected: '19', got: '19' });
  const wrong = scoreMath(mathEx, '12+7=18\n#### 18');
  assert.equal(wrong.correct, false);
  assert.match(wrong.reason ?? '', /answer 18, expected 19/);
  assert.match(scoreMath(mathEx, '12+7=19').reason ?? '', /no '####' answer line/);
  assert.match(scoreMath(mathEx, '#### x').reason ?? '', /no number after '####'/);
  assert.equal(scoreMath({ ...mathEx, meta: { ...mathEx.meta, answer: 2200 } }, '#### 2,200').correct, true);
});

const codeEx: Example<CodeMeta> = {
  prompt: 'Spec: add 1 to each, sum\nEx: [1,2] -> 5\n',
  completion: 'map(x+1)|sum',
  meta: {
    task: 'code',
    reference: 'map(x+1)|sum',
    stages: 2,
    source: 'test',
    tests: [
      { input: [0, 0], output: 2 },
      { input: [3], output: 4 },
      { input: [], output: 0 },
    ],
  },
};

test('code scoring: functional equivalence passes; wrong, syntax, runtime and limit failures give reasons', () => {
  assert.equal(scoreCode(codeEx, 'map(x+1)|sum').correct, true);
  assert.equal(scoreCode(codeEx, 'sum|x+0|x').correct, false);
  assert.equal(scoreCode(codeEx, 'fold(0,a+x+1)').correct, true, 'a different program with the same behaviour passes');
  assert.equal(scoreCode(codeEx, 'map(x+1)|sum\ngarbage after the newline').correct, true);
  const wrong = scoreCode(codeEx, 'sum');
  assert.equal(wrong.correct, false);
  assert.match(wrong.reason ?? '', /hidden test 1 of 3 \(input \[0,0\]\): expected 2, got 0/);
  // Passing some tests is not enough: all must pass (pass@1).
  const partial = scoreCode(codeEx, 'fold(0,a+x+1)|x*(x/x)');
  assert.equal(partial.correct, false);
  assert.match(partial.reason ?? '', /hidden test 3 of 3 \(input \[\]\): runtime error: division by zero/);
  assert.match(scoreCode(codeEx, 'map(x+1|sum').reason ?? '', /syntax error at column/);
  assert.match(scoreCode(codeEx, '').reason ?? '', /empty program/);
  assert.match(scoreCode(codeEx, 'sum|(x+1000)*2000000').reason ?? '', /limit error/);
});

test('arith scoring: the first line must be exactly the number', () => {
  const ex = arithmeticFactExamples(40, ['+']).find((e) => e.prompt === '17+8=')!;
  assert.equal(scoreArith(ex, '25').correct, true);
  assert.equal(scoreArith(ex, '25\n3+4=7').correct, true);
  assert.equal(scoreArith(ex, '250').correct, false);
  assert.equal(scoreArith(ex, '25+1').correct, false);
  assert.equal(scoreArith(ex, '').correct, false);
});

test('evaluateTask: references score 100%, corrupted outputs 0%, batching follows batchSize', async () => {
  const math = generateMathTask({ seed: 1, trainSize: 0, validationSize: 0, testSize: 30 }).test;
  const byPrompt = new Map(math.map((e) => [e.prompt, e.completion]));
  const calls: number[] = [];
  const perfect = await evaluateTask('math', math, (ps) => {
    calls.push(ps.length);
    return ps.map((p) => byPrompt.get(p)!);
  }, { batchSize: 8 });
  assert.deepEqual(calls, [8, 8, 8, 6]);
  assert.equal(perfect.accuracy, 1);
  assert.equal(perfect.n, 30);
  const off = await evaluateTask('math', math, async (ps) => ps.map((p) => byPrompt.get(p)!.replace(/#### (\d+)$/, (_, n) => `#### ${Number(n) + 1}`)));
  assert.equal(off.accuracy, 0);
  assert.ok(off.perExample.every((r) => /expected/.test(r.reason ?? '')));

  const code = generateCodeTask({ seed: 2, trainSize: 0, validationSize: 0, testSize: 20 }).test;
  const half = await evaluateTask('code', code, (ps) => ps.map((p, i) => (i % 2 === 0 ? code.find((e) => e.prompt === p)!.completion : 'len|x*1000')));
  assert.equal(half.correct, 10);
  assert.equal(half.accuracy, 0.5);
  assert.equal(half.perExample[1]!.correct, false);
  assert.equal(half.perExample[1]!.index, 1);
});

test('evaluateTask validates its inputs', async () => {
  const math = generateMathTask({ seed: 1, trainSize: 0, validationSize: 0, testSize: 3 }).test;
  await assert.rejects(evaluateTask('code', math, (ps) => ps), /got a math example/);
  await assert.rejects(evaluateTask('math', math, () => ['only one']), /returned 1 outputs for 3 prompts/);
  await assert.rejects(evaluateTask('text' as never, math, (ps) => ps), /task must be/);
  const empty = await evaluateTask('math', [], () => []);
  assert.equal(empty.n, 0);
  assert.ok(Number.isNaN(empty.accuracy));
});
