import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CharTokenizer, CHAR_VOCAB_SIZE, EOT_ID, PAD_ID, UNK_ID, NEWLINE_ID, NORMALIZATION_TABLE, TextStats, UnknownCharacterError } from '../src/data/tokenizer';
import { ConfigError } from '../src/util/config';

const tok = new CharTokenizer();
const strict = new CharTokenizer({ unknown: 'error' });

test('vocabulary: 99 stable ids, specials first, ASCII in order', () => {
  assert.equal(CHAR_VOCAB_SIZE, 99);
  assert.equal(tok.vocabSize, 99);
  assert.deepEqual([PAD_ID, EOT_ID, UNK_ID, NEWLINE_ID], [0, 1, 2, 3]);
  assert.deepEqual(tok.encode(' '), [4]);
  assert.deepEqual(tok.encode('~'), [98]);
  assert.deepEqual(tok.encode('A\n0'), [65 - 28, 3, 48 - 28]);
  const table = tok.vocabularyTable();
  assert.equal(table.length, 99);
  assert.equal(new Set(table.map((r) => r.token)).size, 99, 'every id renders to a distinct token');
});

test('round trip of every printable ASCII character and newline', () => {
  let all = '\n';
  for (let c = 32; c <= 126; c++) all += String.fromCharCode(c);
  const ids = tok.encode(all);
  assert.equal(ids.length, all.length);
  assert.equal(new Set(ids).size, all.length);
  assert.ok(ids.every((id) => id >= 3 && id < 99));
  assert.equal(tok.decode(ids), all);
  const text = 'Q: Ann has 12 pens.\n12+7=19\n#### 19';
  assert.equal(tok.decode(tok.encode(text)), text);
});

test('decode stops at EOT by default, skips PAD, renders UNK', () => {
  const ids = [...tok.encode('ab'), PAD_ID, EOT_ID, ...tok.encode('cd')];
  assert.equal(tok.decode(ids), 'ab');
  assert.equal(tok.decode(ids, { stopAtEot: false }), 'ab<eot>cd');
  assert.equal(tok.decode([UNK_ID]), '\uFFFD');
  assert.throws(() => tok.decode([99]), /outside the vocabulary/);
});

test('normalisation table: typographic punctuation maps to ASCII', () => {
  const cases: [string, string][] = [
    ['\u2018a\u2019', "'a'"],
    ['\u201Cquoted\u201D', '"quoted"'],
    ['Tom\u2019s', "Tom's"],
    ['a\u2013b\u2014c\u2212d\u2010e', 'a-b-c-d-e'],
    ['wait\u2026', 'wait...'],
    ['3\u00D74', '3*4'],
    ['8\u00F72', '8/2'],
    ['a\u00A0b', 'a b'],
    ['a\u202Fb', 'a b'],
    ['\uFF21\uFF11', 'A1'], // full-width
    ['\uFB01ne', 'fine'], // ligature
    ['\u00BD', '1/2'],
    ['a\tb', 'a b'],
    ['a\r\nb\rc', 'a\nb\nc'],
    ['\uFEFFab\u200Bc', 'abc'],
    ['\u2033', '"'],
    ['x \u2264 y', 'x <= y'],
  ];
  for (const [input, want] of cases) {
    assert.equal(tok.normalize(input), want, `normalize(${JSON.stringify(input)})`);
    assert.equal(tok.decode(tok.encode(input)), want);
  }
  // Every table entry leaves text that the vocabulary covers.
  for (const [from, to] of Object.entries(NORMALIZATION_TABLE)) {
    assert.ok(tok.canEncode(from), `table entry ${JSON.stringify(from)} -> ${JSON.stringify(to)} encodes`);
  }
});

test('unknown character (strict): error names the character, code point, source, line and column', () => {
  const text = 'line one\nprice: 5\u20AC';
  assert.throws(
    () => strict.encode(text, { source: 'train.jsonl:7 field "question"' }),
    (e: unknown) => {
      assert.ok(e instanceof UnknownCharacterError);
      assert.ok(e instanceof ConfigError);
      assert.equal(e.char, '\u20AC');
      assert.equal(e.codePoint, 0x20ac);
      assert.equal(e.line, 2);
      assert.equal(e.column, 9);
      assert.match(e.message, /"€" \(U\+20AC\)/);
      assert.match(e.message, /train\.jsonl:7 field "question"/);
      assert.match(e.message, /line 2, column 9/);
      return true;
    },
  );
  // The column counts the text as written, before `…` expands to three characters.
  assert.throws(() => strict.encode('a\u2026\u00B0'), /line 1, column 3/);
  assert.equal(tok.canEncode('5\u20AC'), false);
  // What has an ASCII form never throws, even in strict mode.
  assert.deepEqual(strict.encode('Caf\u00E9 2\u00BD'), tok.encode('Cafe 2 1/2'));
});

test("unknown: 'unk' (the default) maps each unknown code point to UNK", () => {
  assert.equal(tok.options.unknown, 'unk');
  const unk = tok;
  const ids = unk.encode('5\u20AC and \uD83D\uDE00');
  assert.equal(ids.filter((id) => id === UNK_ID).length, 2, 'the emoji (a surrogate pair) is one UNK');
  assert.equal(unk.decode(ids), '5\uFFFD and \uFFFD');
});

test('options are validated', () => {
  assert.throws(() => new CharTokenizer({ unknown: 'skip' as never }), /unknown must be 'error' or 'unk'/);
  assert.throws(() => new CharTokenizer({ unkown: 'unk' } as never), /unknown option "unkown"/);
  assert.throws(() => tok.encode(42 as never, { source: 'x.jsonl:1' }), /expected a string from x\.jsonl:1/);
});

test('real-data policy: accents, math signs, fractions, superscripts, separators and invisible characters', () => {
  const cases: [string, string][] = [
    ['Caf\u00E9 se\u00F1or gar\u00E7on \u00E8re \u00C5', 'Cafe senor garcon ere A'],
    ['e\u0301t\u00E9', 'ete'], // a combining accent counts as part of its letter
    ['Stra\u00DFe \u00E6 \u00F8 \u0142', 'Strasse ae o l'],
    ['3\u00D74\u00F72\u22121', '3*4/2-1'],
    ['\u00BD \u00BC \u00BE', '1/2 1/4 3/4'],
    ['2\u00BD hours', '2 1/2 hours'], // never "21/2"
    ['x\u00B2 + 10\u00B2\u00B3 cm\u00B3', 'x^2 + 10^23 cm^3'],
    ['\u221A16', 'sqrt16'],
    ['one\u2028two\u2029three', 'one\ntwo\nthree'],
    ['a\u200Bb\u200Dc\u2060d\u200Ee', 'abcde'],
    ['a\u00A0b\u2009c\u3000d', 'a b c d'],
  ];
  for (const [input, want] of cases) {
    assert.equal(tok.normalize(input), want, `normalize(${JSON.stringify(input)})`);
    assert.equal(tok.normalize(want), want, 'normalising twice changes nothing');
    assert.deepEqual(strict.encode(input), tok.encode(want), `strict mode accepts ${JSON.stringify(input)}`);
  }
  // Currency signs, other scripts and emoji have no faithful ASCII form: UNK, or an error when strict.
  for (const ch of ['\u20AC', '\u00A3', '\u00A2', '\u00B0', '\u6F22', '\u{1F600}', '\u0416']) {
    assert.equal(tok.normalize(`a${ch}b`), `a${ch}b`);
    assert.deepEqual(tok.encode(`a${ch}b`), [...tok.encode('a'), UNK_ID, ...tok.encode('b')]);
    assert.throws(() => strict.encode(`a${ch}b`), UnknownCharacterError);
  }
});

test('TextStats counts what was normalised and what became UNK, in one summary line', () => {
  const stats = new TextStats();
  tok.normalize('Caf\u00E9 \u00E9 5\u20AC \u00BD\r\n', stats);
  tok.normalize('\u00E9\u2028\u6F22', stats);
  assert.deepEqual([...stats.normalized.entries()].sort(), [['\u00BD', 1], ['\u00E9', 3], ['\u2028', 1]]);
  assert.deepEqual([...stats.unknown.entries()].sort(), [['\u20AC', 1], ['\u6F22', 1]]);
  const json = stats.toJSON();
  assert.equal(json.normalized, 5);
  assert.equal(json.unknown, 2);
  assert.deepEqual(json.topNormalized[0], { char: '\u00E9', codePoint: 'U+00E9', count: 3 });
  assert.equal(stats.summary('train.jsonl'), 'train.jsonl: 5 characters normalised (\u00E9 \u00D73, \u00BD \u00D71, U+2028 \u00D71); 2 became UNK (\u20AC \u00D71, \u6F22 \u00D71)');
  assert.equal(new TextStats().summary(), 'text: 0 characters normalised; 0 became UNK');
});
