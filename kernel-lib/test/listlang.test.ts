import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  runProgram,
  runListProgram,
  parseListProgram,
  formatListValue,
  listValuesEqual,
  LISTLANG_BUILTINS,
  DEFAULT_LISTLANG_LIMITS,
  type ListExpr,
  type ListRunResult,
} from '../src/eval/listlang';
import { ConfigError } from '../src/util/config';

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
  assert.ok(!deep.ok && deep.error.kind === 'limit', deep.ok ? '' : deep.error.message);
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

test('hostile programs end in bounded time with a limit verdict', () => {
  // Each case: what to run, and the limit message it must end with. Every run must come
  // back as {ok: false, error: {kind: 'limit'}} — never a thrown RangeError, a hang or an OOM.
  const lefty = (n: number): ListExpr => {
    let e: ListExpr = { type: 'var', name: 'x', pos: 1 };
    for (let i = 0; i < n; i++) e = { type: 'bin', op: '+', left: e, right: { type: 'int', value: 1 }, pos: 1 };
    return e;
  };
  const cases: [string, () => ListRunResult, RegExp][] = [
    ['100k nested parentheses', () => runProgram(`map(${'('.repeat(100_000)}x${')'.repeat(100_000)})`, [1], { maxProgramLength: 1e6 }), /nesting depth limit exceeded at column \d+ \(maxDepth 100\)/],
    ['1M nested parentheses', () => runProgram(`map(${'('.repeat(1_000_000)}x${')'.repeat(1_000_000)})`, [1]), /program length limit exceeded: 2000006 characters \(maxProgramLength 10000\)/],
    ['3000 right-nested additions', () => runProgram(`map(${'x+('.repeat(3000)}x${')'.repeat(3000)})`, [1], { maxProgramLength: 1e6 }), /nesting depth limit exceeded .*maxDepth 100/],
    ['100k unary minuses', () => runProgram(`map(${'-'.repeat(100_000)}x)`, [1], { maxProgramLength: 200_000 }), /nesting depth limit exceeded .*maxDepth 100/],
    ['a 4000-operator chain', () => runProgram(`map(x${'+x'.repeat(4000)})`, [1]), /nesting depth limit exceeded at column \d+ \(maxDepth 100\)/],
    ['a 100k-deep hand-built tree', () => runListProgram({ stages: [{ pos: 1, builtin: 'map', args: [lefty(100_000)] }] }, [1], { ...DEFAULT_LISTLANG_LIMITS, maxSteps: 1e9 }), /nesting depth limit exceeded \(maxDepth 100\)/],
    ['1M empty stages', () => runProgram(Array(1_000_000).fill('rev').join('|'), []), /program length limit exceeded.*maxProgramLength 10000/],
    ['20k empty stages, long programs allowed', () => runProgram(Array(20_000).fill('rev').join('|'), [], { maxProgramLength: 1e6 }), /step limit exceeded \(maxSteps 10000\)/],
    ['a 10 MB program', () => runProgram('len' + '|x+1'.repeat(2_500_000), []), /program length limit exceeded.*maxProgramLength 10000/],
    ['value doubling in fold', () => runProgram('range|fold(1,a+a)', 100), /maxInt 1000000000/],
    ['repeated squaring', () => runProgram('map(x*x)|map(x*x)|map(x*x)|map(x*x)|map(x*x)|map(x*x)', [3]), /maxInt 1000000000/],
    ['list growth through range', () => runProgram('range|sum|range', 1000), /maxListLength 1000/],
    ['many full-list stages', () => runProgram(`range${'|map(x+1)|rev|sort'.repeat(200)}`, 1000), /step limit exceeded/],
  ];
  for (const [name, run, re] of cases) {
    const t0 = performance.now();
    const r = run();
    const ms = performance.now() - t0;
    assert.ok(ms < 2000, `${name}: took ${ms.toFixed(0)} ms`);
    assert.equal(r.ok, false, name);
    if (r.ok) continue;
    assert.equal(r.error.kind, 'limit', `${name}: ${r.error.message}`);
    assert.match(r.error.message, re, name);
    assert.ok(r.error.message.length < 300, `${name}: message of ${r.error.message.length} characters`);
  }

  // Limits are configurable: the same shapes run when allowed, and legitimate deep-ish programs pass.
  assert.deepEqual(value(`map(${'('.repeat(50)}x+1${')'.repeat(50)})`, [1]), [2]);
  const chain = runProgram(`map(x${'+x'.repeat(150)})`, [1], { maxDepth: 200 });
  assert.ok(chain.ok && listValuesEqual(chain.value, [151]));
  // Error messages quote at most a short piece of a long token.
  const name = runProgram(`map(${'y'.repeat(1_000_000)})`, [1], { maxProgramLength: 2e6 });
  assert.ok(!name.ok && name.error.kind === 'syntax' && name.error.message.length < 300, name.ok ? '' : name.error.message.slice(0, 300));
  // Math.max/min over a long list use no argument spreading (which overflows the stack).
  const longMax = runProgram('range|max', 200_000, { maxListLength: 1e6, maxSteps: 1e7 });
  assert.ok(longMax.ok && longMax.value === 199_999, longMax.ok ? '' : longMax.error.message);
  // The parser reports length and depth limits with a column.
  const p = parseListProgram(`map(${'('.repeat(200)}x${')'.repeat(200)})`);
  assert.ok(!p.ok && p.error.kind === 'limit' && p.error.position === 105, p.ok ? '' : `${p.error.position} ${p.error.message}`);
  const custom = parseListProgram('sum|len', { maxProgramLength: 5 });
  assert.ok(!custom.ok && custom.error.kind === 'limit' && custom.error.position === 6);
  assert.throws(() => runProgram('sum', [1], { maxDepth: 0 }), /maxDepth must be in \[1, 1000\], got 0/);
  assert.throws(() => parseListProgram('sum', { maxProgramLength: -1 }), /maxProgramLength must be >= 1/);
});

test('hostile inputs are rejected with a ConfigError or a limit, never a crash', () => {
  let nested: unknown = 1;
  for (let i = 0; i < 100_000; i++) nested = [nested];
  const cases: [string, () => unknown, RegExp][] = [
    ['deeply nested list input', () => runProgram('sum', nested as number[]), /listlang input\[0\] must be an integer, got a list/],
    ['deeply nested non-list input', () => runProgram('sum', { a: nested } as never), /must be an integer or a list of integers, got an object/],
    ['a list with a hole', () => runProgram('sum', [1, , 2] as number[]), /listlang input\[1\] must be an integer, got nothing/],
    ['a sparse list of 1e9 elements', () => runProgram('len', new Array(1e9)), /listlang input\[0\] must be an integer, got nothing/],
  ];
  for (const [name, run, re] of cases) {
    const t0 = performance.now();
    assert.throws(run, (e: unknown) => e instanceof ConfigError && re.test(e.message), name);
    assert.ok(performance.now() - t0 < 2000, name);
  }
  // Unvalidated inputs straight to runListProgram: the length is checked before any copy.
  const parsed = parseListProgram('len');
  assert.ok(parsed.ok);
  const t0 = performance.now();
  const sparse = runListProgram(parsed.program, new Array(1e9));
  assert.ok(performance.now() - t0 < 2000);
  assert.ok(!sparse.ok && sparse.error.kind === 'limit' && /maxListLength 1000/.test(sparse.error.message));
  const holey = runListProgram(parsed.program, [1, , 2] as number[]);
  assert.ok(!holey.ok && holey.error.kind === 'runtime' && /input element 1/.test(holey.error.message), holey.ok ? '' : holey.error.message);
});
