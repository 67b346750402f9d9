import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runProgram, parseListProgram, formatListValue, listValuesEqual, LISTLANG_BUILTINS } from '../src/eval/listlang';

function value(src: string, input: number[] | number): unknown {
  const r = runProgram(src, input);
  assert.ok(r.ok, `${src} failed: ${r.ok ? '' : r.error.message}`);
  return r.value;
}

test('good programs compute the documented results', () => {
  const cases: [string, number[] | number, number[] | number][] = [
    ['map(x*2) | filter(x>3) | sum', [1, 2, 3], 10],
    ['sort|rev|take(2)', [5, 1, 4], [5, 4]],
    ['range|map(x*x)|sum', 4, 14],
    ['fold(0,a+x*x)', [1, 2, 3], 14],
    ['fold(1,a*x)', [2, 3, 4], 24],
    ['count(x%2==0)', [1, 2, 4, 7], 2],
    ['filter(x%2==1)|len', [1, 2, 3, 5], 3],
    ['drop(2)', [1, 2, 3], [3]],
    ['take(10)', [1, 2], [1, 2]],
    ['max', [3, 9, 2], 9],
    ['min', [3, 9, 2], 2],
    ['head', [3, 9, 2], 3],
    ['last', [3, 9, 2], 2],
    ['prod', [2, 5], 10],
    ['sum | x*2+1', [1, 2], 7],
    ['map(x-5)', [1, 9], [-4, 4]],
    ['map(-x)', [0, 3], [0, -3]],
    ['map(x/2)', [7, -7], [3, -4]], // floor division
    ['map(x%3)', [7, -7], [1, 2]], // floor modulo
    ['map(x>=2)|sum', [1, 2, 3], 2],
    ['map((x+1)*(x-1))', [3], [8]],
    ['map(x!=2)', [1, 2], [1, 0]],
    ['filter(x>100)', [1, 2], []],
    ['  map( x * 3 )  |  sum ', [1, 1], 6],
    ['x*x', 5, 25],
    ['rev', [], []],
    ['sum', [], 0],
  ];
  for (const [src, input, want] of cases) assert.deepEqual(value(src, input), want, src);
  assert.ok(LISTLANG_BUILTINS.includes('fold'));
});

test('the input is not modified', () => {
  const input = [3, 1, 2];
  value('sort|rev', input);
  assert.deepEqual(input, [3, 1, 2]);
});

test('syntax errors carry a kind, a message and the column', () => {
  const cases: [string, number, RegExp][] = [
    ['map(x*', 7, /expected a value, found end of program/],
    ['map(x*2', 8, /expected '\)' to close map\(/],
    ['sum(', 4, /sum takes no arguments/],
    ['map(x*2) filter(x>1)', 10, /expected '\|' or end of program/],
    ['map(y+1)', 5, /unknown name "y"/],
    ['map(x $ 2)', 7, /unexpected character "\$"/],
    ['fold(0)', 1, /fold takes 2 arguments, got 1/],
    ['map(1<x<3)', 8, /cannot be chained/],
    ['sum||len', 5, /expected a stage/],
    ['', 1, /expected a stage/],
    ['map(sum)', 5, /sum is a stage, not a value/],
  ];
  for (const [src, pos, re] of cases) {
    const r = runProgram(src, [1, 2]);
    assert.equal(r.ok, false, src);
    if (r.ok) continue;
    assert.equal(r.error.kind, 'syntax', src);
    assert.equal(r.error.position, pos, `${src}: ${r.error.message}`);
    assert.match(r.error.message, re, src);
    assert.match(r.error.message, new RegExp(`column ${pos}`), src);
  }
});

test('runtime errors are typed, not thrown', () => {
  const cases: [string, number[] | number, RegExp][] = [
    ['map(x/0)', [1], /division by zero/],
    ['map(x%0)', [1], /modulo by zero/],
    ['max', [], /max of an empty list/],
    ['head', [], /head of an empty list/],
    ['sum|map(x+1)', [1, 2], /map at column 5 needs a list, got the integer 3/],
    ['x+1', [1, 2], /needs an integer, got a list/],
    ['range', [1], /range at column 1 needs an integer/],
    ['take(x)', [1], /'x' is not defined/],
    ['map(a+1)', [1], /'a' exists only inside fold/],
    ['take(-1)', [1], /count must be >= 0/],
    ['range', -3, /range of a negative number/],
  ];
  for (const [src, input, re] of cases) {
    const r = runProgram(src, input);
    assert.equal(r.ok, false, src);
    if (!r.ok) {
      assert.equal(r.error.kind, 'runtime', `${src}: ${r.error.message}`);
      assert.match(r.error.message, re, src);
    }
  }
});

test('runaway programs stop on the step, length and magnitude limits', () => {
  const steps = runProgram('range|map(x+x+x+x+x+x+x+x+x+x)|sum', 900);
  assert.equal(steps.ok, false);
  if (!steps.ok) {
    assert.equal(steps.error.kind, 'limit');
    assert.match(steps.error.message, /step limit exceeded \(maxSteps 10000\)/);
  }
  // The same program runs when the limit allows it: the limit, not the program, stopped it.
  assert.equal(runProgram('range|map(x+x+x+x+x+x+x+x+x+x)|sum', 900, { maxSteps: 100_000 }).ok, true);

  const length = runProgram('range', 5000);
  assert.ok(!length.ok && length.error.kind === 'limit' && /maxListLength 1000/.test(length.error.message));
  const custom = runProgram('map(x+1)', [1, 2, 3], { maxListLength: 2 });
  assert.ok(!custom.ok && custom.error.kind === 'limit');

  const big = runProgram('map(x*x*x*x*x*x*x*x*x*x)', [99]);
  assert.ok(!big.ok && big.error.kind === 'limit' && /maxInt/.test(big.error.message));
  const literal = runProgram('map(x+99999999999)', [1]);
  assert.ok(!literal.ok && literal.error.kind === 'limit');
  const fold = runProgram('fold(1,a*x+a)', [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]);
  assert.ok(!fold.ok && fold.error.kind === 'limit');

  // Pathological nesting is reported, not a crash.
  const deep = runProgram(`map(${'('.repeat(20000)}x${')'.repeat(20000)})`, [1]);
  assert.equal(deep.ok, false);
});

test('limits and inputs are validated', () => {
  assert.throws(() => runProgram('sum', [1.5]), /listlang input\[0\] must be an integer/);
  assert.throws(() => runProgram('sum', 'abc' as never), /must be an integer or a list of integers/);
  assert.throws(() => runProgram('sum', [1], { maxSteps: 0 }), /maxSteps must be >= 1/);
  assert.throws(() => runProgram('sum', [1], { maxStep: 5 } as never), /unknown option "maxStep"/);
});

test('parseListProgram, formatListValue and listValuesEqual', () => {
  const p = parseListProgram('map(x+1)|sum');
  assert.ok(p.ok && p.program.stages.length === 2);
  assert.equal(formatListValue([1, -2, 3]), '[1,-2,3]');
  assert.equal(formatListValue([]), '[]');
  assert.equal(formatListValue(7), '7');
  assert.ok(listValuesEqual([1, 2], [1, 2]));
  assert.ok(!listValuesEqual([1, 2], [2, 1]));
  assert.ok(!listValuesEqual([1], 1));
  assert.ok(!listValuesEqual([], 0));
});
