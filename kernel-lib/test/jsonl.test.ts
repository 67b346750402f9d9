import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadJsonl, parseJsonl, detectJsonlFormat, JsonlError, MAX_LINE_CHARS } from '../src/data/jsonl';
import { CharTokenizer, TextStats, UNK_ID } from '../src/data/tokenizer';
import { scoreMath } from '../src/eval/scorers';
import type { Example, MathMeta } from '../src/data/tasks/common';

const SAMPLES = resolve(__dirname, '../../data/samples');
const tok = new CharTokenizer();

test('the committed GSM8K sample loads: template, calculator annotations, answer, normalised text', () => {
  const exs = loadJsonl(join(SAMPLES, 'gsm8k.jsonl'));
  assert.equal(exs.length, 4);
  for (const e of exs) {
    assert.equal(e.meta.task, 'math');
    assert.ok(e.prompt.startsWith('Q: ') && e.prompt.endsWith('\n'));
    assert.ok(!e.completion.includes('<<'));
    assert.ok(tok.canEncode(e.prompt + e.completion));
    assert.equal(tok.normalize(e.prompt + e.completion), e.prompt + e.completion, 'stored text is already normalised');
  }
  const answers = exs.map((e) => (e.meta as MathMeta).answer);
  assert.deepEqual(answers, [56, 30, 108, 2200]);
  assert.match(exs[2]!.prompt, /Tom's garden has 3 rows of 12 tulips - and/);
  assert.match(exs[2]!.completion, /3 \* 12 \* 2 = 72 tulips/);
  assert.match(exs[3]!.prompt, /"mega packs".*stickers\.\.\. how/);
  assert.equal(exs[1]!.meta.source, `${join(SAMPLES, 'gsm8k.jsonl')}:2`);
  // The reference completion scores as correct with the math scorer.
  for (const e of exs) assert.ok(scoreMath(e as Example<MathMeta>, e.completion).correct);
});

test('the committed Alpaca sample loads with its template', () => {
  const exs = loadJsonl(join(SAMPLES, 'alpaca.jsonl'));
  assert.equal(exs.length, 4);
  assert.equal(exs[0]!.prompt, 'Instruction: Give three tips for staying healthy.\nResponse:\n');
  assert.equal(exs[1]!.prompt, 'Instruction: Rewrite the sentence with plain quotes.\nInput: She said, "It\'s fine."\nResponse:\n');
  assert.equal(exs[2]!.prompt, 'Instruction: Compute the product.\nInput: 7 * 6\nResponse:\n');
  assert.equal(exs[2]!.completion, '42');
  assert.ok(exs.every((e) => e.meta.task === 'text' && e.meta.format === 'alpaca'));
});

test('the committed prompt/completion sample loads as is (normalised)', () => {
  const exs = loadJsonl(join(SAMPLES, 'prompt-completion.jsonl'));
  assert.equal(exs.length, 3);
  assert.equal(exs[1]!.prompt, 'Reverse the list [1,2,3]:\n');
  assert.equal(exs[1]!.completion, '[3,2,1]');
  assert.equal(exs[2]!.prompt, "Finish the phrase: 'once upon a...'\n");
});

test('format detection and explicit format', () => {
  assert.equal(detectJsonlFormat({ question: 'q', answer: 'a' }), 'gsm8k');
  assert.equal(detectJsonlFormat({ instruction: 'i', output: 'o' }), 'alpaca');
  assert.equal(detectJsonlFormat({ prompt: 'p', completion: 'c' }), 'prompt-completion');
  assert.equal(detectJsonlFormat({ text: 't' }), undefined);
  const line = JSON.stringify({ prompt: 'p', completion: 'c' });
  assert.throws(() => parseJsonl(line, 'x.jsonl', { format: 'gsm8k' }), /x\.jsonl:1: missing field "question"/);
  assert.throws(() => parseJsonl(line, 'x.jsonl', { format: 'csv' as never }), /format must be/);
});

function errorOf(text: string, options = {}): JsonlError {
  try {
    parseJsonl(text, 'data/bad.jsonl', options);
  } catch (e) {
    assert.ok(e instanceof JsonlError || (e as Error).name === 'UnknownCharacterError', String(e));
    return e as JsonlError;
  }
  assert.fail('expected an error');
}

test('bad lines are errors naming the file and line', () => {
  const good = JSON.stringify({ question: 'How many?', answer: '1+1=2\n#### 2' });
  const cases: [string, RegExp][] = [
    [`${good}\n{"question": "q", "answer": `, /^data\/bad\.jsonl:2: invalid JSON/],
    [`${good}\n\n${JSON.stringify({ question: 'q' })}`, /^data\/bad\.jsonl:3: missing field "answer"/],
    [`${good}\n${JSON.stringify({ question: 7, answer: '#### 7' })}`, /^data\/bad\.jsonl:2: field "question" must be a string, got number/],
    [`${good}\n[1,2]`, /^data\/bad\.jsonl:2: expected a JSON object, got an array/],
    [`${good}\n${JSON.stringify({ question: 'q', answer: 'no marker' })}`, /^data\/bad\.jsonl:2: field "answer" has no final line "#### <number>"/],
    [JSON.stringify({ text: 'hello' }), /^data\/bad\.jsonl:1: cannot tell the format from the keys \["text"\]/],
    ['', /^data\/bad\.jsonl:1: the file is empty/],
    ['\n  \n', /^data\/bad\.jsonl:1: the file is empty/],
  ];
  for (const [text, re] of cases) assert.match(errorOf(text).message, re);
});

test('an unknown character trains as UNK by default and is counted; strict mode names the file, line, field and position', () => {
  const text = [
    JSON.stringify({ instruction: 'Price?', input: '', output: 'ok' }),
    JSON.stringify({ instruction: 'Price?', input: 'It costs 5\u20AC, caf\u00E9 \u00BD.', output: 'five' }),
  ].join('\n');
  const e = errorOf(text, { tokenizer: new CharTokenizer({ unknown: 'error' }) });
  assert.match(e.message, /unknown character "€" \(U\+20AC\) at data\/bad\.jsonl:2 field "input", line 1, column 11/);
  const stats = new TextStats();
  const exs = parseJsonl(text, 'data/bad.jsonl', { stats });
  assert.equal(exs[1]!.prompt, 'Instruction: Price?\nInput: It costs 5\u20AC, cafe 1/2.\nResponse:\n');
  assert.ok(new CharTokenizer().encode(exs[1]!.prompt).includes(UNK_ID));
  assert.deepEqual(stats.toJSON().unknown, 1);
  assert.deepEqual(stats.toJSON().normalized, 2);
  assert.match(stats.summary('bad.jsonl'), /^bad\.jsonl: 2 characters normalised \(.*\); 1 became UNK \(€ ×1\)$/);
});

test('bad files are one clear error naming the file (and line): directory, binary, not UTF-8, very long line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jsonl-bad-'));
  const good = JSON.stringify({ prompt: 'a', completion: 'b' });
  const write = (name: string, data: string | Uint8Array): string => {
    const p = join(dir, name);
    writeFileSync(p, data);
    return p;
  };
  const cases: [string, RegExp][] = [
    [dir, /: is a directory, not a JSONL file$/],
    [write('bin.jsonl', Buffer.from([0x7b, 0x00, 0x01, 0x02, 0xff])), /bin\.jsonl:1: looks like a binary file \(a NUL byte at offset 1\)/],
    [write('latin1.jsonl', Buffer.concat([Buffer.from(`${good}\n{"prompt": "caf`), Buffer.from([0xe9]), Buffer.from('", "completion": "x"}\n')])), /latin1\.jsonl:2: is not valid UTF-8 text/],
    [write('long.jsonl', `${good}\n${JSON.stringify({ prompt: 'x'.repeat(MAX_LINE_CHARS), completion: 'y' })}\n`), /long\.jsonl:2: line is 1,000,0\d\d characters long, over the 1,000,000-character limit/],
    [write('array.jsonl', `[${'1,'.repeat(5000)}1]\n`), /array\.jsonl:1: expected a JSON object, got an array$/],
    [write('trunc.jsonl', `${good}\n{"prompt": "a", "compl`), /trunc\.jsonl:2: invalid JSON \(.*\): "\{\\"prompt\\": \\"a\\", \\"compl"$/],
    [write('num.jsonl', `${JSON.stringify({ prompt: 'a', completion: ['b'] })}\n`), /num\.jsonl:1: field "completion" must be a string, got an array/],
  ];
  for (const [file, re] of cases) {
    assert.throws(() => loadJsonl(file), (e: unknown) => {
      assert.ok(e instanceof JsonlError, `${file}: ${String(e)}`);
      assert.match(e.message, re);
      assert.ok(e.message.length < 400, `the message stays short (${e.message.length} chars)`);
      return true;
    });
  }
});

test('files: read errors, CRLF line endings and a byte-order mark', () => {
  assert.throws(() => loadJsonl('/nonexistent/file.jsonl'), /cannot read JSONL file \/nonexistent\/file\.jsonl/);
  const dir = mkdtempSync(join(tmpdir(), 'jsonl-'));
  const path = join(dir, 'crlf.jsonl');
  writeFileSync(path, `\uFEFF${JSON.stringify({ prompt: 'a', completion: 'b' })}\r\n${JSON.stringify({ prompt: 'c', completion: 'd' })}\r\n`);
  const exs = loadJsonl(path);
  assert.deepEqual(exs.map((e) => e.prompt + e.completion), ['ab', 'cd']);
  assert.equal(exs[1]!.meta.source, `${path}:2`);
});
