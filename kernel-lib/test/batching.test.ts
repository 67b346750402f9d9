import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeBatch, encodePrompt, BatchSampler, packText, PackedTextSampler, sliceHostBatch } from '../src/data/batching';
import { CharTokenizer, EOT_ID, PAD_ID } from '../src/data/tokenizer';
import { generateMathTask, generateGeneralCorpus, type Example, type MathMeta } from '../src/data/tasks';

const tok = new CharTokenizer();
const meta: MathMeta = { task: 'math', answer: 0, steps: 0, source: 'test' };
const ex = (prompt: string, completion: string): Example => ({ prompt, completion, meta });

test('makeBatch: shifted inputs/targets, weights only on completion tokens and the end token', () => {
  const b = makeBatch([ex('Q: ab\n', 'cd'), ex('xy', 'z')], tok, { seqLen: 12 });
  assert.equal(b.batchSize, 2);
  assert.equal(b.seqLen, 12);
  assert.equal(b.inputs.length, 24);
  const row = (arr: ArrayLike<number>, r: number) => Array.from(arr).slice(r * 12, r * 12 + 12);
  // Row 0: EOT Q : _ a b \n c d EOT
  const seq0 = [EOT_ID, ...tok.encode('Q: ab\n'), ...tok.encode('cd'), EOT_ID];
  assert.deepEqual(row(b.inputs, 0), [...seq0.slice(0, -1), ...Array(12 - 9).fill(PAD_ID)]);
  assert.deepEqual(row(b.targets, 0), [...seq0.slice(1), ...Array(12 - 9).fill(PAD_ID)]);
  assert.deepEqual(row(b.weights, 0), [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0]);
  // Weighted targets decode to exactly the completion plus the end token.
  const weighted = row(b.targets, 0).filter((_, i) => row(b.weights, 0)[i] === 1);
  assert.equal(tok.decode(weighted, { stopAtEot: false }), 'cd<eot>');
  assert.deepEqual(row(b.weights, 1), [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  // The prompt encoding used for generation is the start of every row.
  assert.deepEqual(row(b.inputs, 0).slice(0, 7), encodePrompt('Q: ab\n', tok));
});

test('makeBatch: on generated math problems the weighted targets are exactly completion + EOT', () => {
  const { test: exs } = generateMathTask({ seed: 3, trainSize: 0, validationSize: 0, testSize: 16 });
  const b = makeBatch(exs, tok, { seqLen: 128 });
  exs.forEach((e, r) => {
    const t = Array.from(b.targets.slice(r * 128, (r + 1) * 128));
    const w = Array.from(b.weights.slice(r * 128, (r + 1) * 128));
    assert.equal(tok.decode(t.filter((_, i) => w[i] === 1), { stopAtEot: false }), `${e.completion}<eot>`);
    assert.equal(w.reduce((s, x) => s + x, 0), e.completion.length + 1);
    for (let i = 0; i < 128; i++) if (t[i] === PAD_ID) assert.equal(w[i], 0);
  });
});

test('makeBatch: overlong examples are rejected clearly, or truncated from the left of the prompt', () => {
  const long = ex('0123456789', 'abc');
  assert.throws(() => makeBatch([long], tok, { seqLen: 8 }), /example 0 \(test\) needs 14 positions \(prompt 10 \+ completion 3 \+ end token\) but seqLen is 8/);
  const b = makeBatch([long], tok, { seqLen: 8, overflow: 'truncate-prompt' });
  // 8 inputs + 1 = 9 ids: EOT + 4 prompt chars (the last ones) + abc + EOT.
  assert.equal(tok.decode(Array.from(b.inputs), { stopAtEot: false }), '<eot>6789abc');
  assert.deepEqual(Array.from(b.weights), [0, 0, 0, 0, 1, 1, 1, 1]);
  assert.throws(() => makeBatch([ex('p', 'a very long completion')], tok, { seqLen: 8, overflow: 'truncate-prompt' }), /the completion alone does not fit/);
  // An example that exactly fills the row: prompt + completion + 1 = seqLen.
  const exact = makeBatch([ex('0123', 'abc')], tok, { seqLen: 8 });
  assert.equal(exact.weights[7], 1);
  assert.equal(exact.targets[7], EOT_ID);
});

test('makeBatch: bad options and data are named', () => {
  assert.throws(() => makeBatch([], tok, { seqLen: 8 }), /no examples/);
  assert.throws(() => makeBatch([ex('a', 'b')], tok, { seqLen: 8, overflow: 'wrap' as never }), /overflow must be/);
  assert.throws(() => makeBatch([ex('a', 'b')], tok, { seqLen: 8, padding: 1 } as never), /unknown option "padding"/);
  assert.throws(() => makeBatch([ex('ok', 'b'), ex('5\u20AC', 'b')], new CharTokenizer({ unknown: 'error' }), { seqLen: 8 }), /example 1 prompt/);
});

test('BatchSampler: seeded epochs, each example once per epoch, exact resume', () => {
  const data = Array.from({ length: 10 }, (_, i) => i);
  const s = new BatchSampler(data, { batchSize: 4, seed: 7 });
  const drawn = [...s.batches(5)].flat(); // 20 items = two epochs
  assert.deepEqual([...drawn.slice(0, 10)].sort((a, b) => a - b), data);
  assert.deepEqual([...drawn.slice(10, 20)].sort((a, b) => a - b), data);
  assert.notDeepEqual(drawn.slice(0, 10), drawn.slice(10, 20), 'each epoch has its own order');
  assert.notDeepEqual(drawn.slice(0, 10), data, 'shuffled');
  assert.equal(s.epoch, 2);
  assert.equal(s.position, 20);
  // Same seed, same stream; another seed, another stream.
  assert.deepEqual([...new BatchSampler(data, { batchSize: 4, seed: 7 }).batches(5)].flat(), drawn);
  assert.notDeepEqual([...new BatchSampler(data, { batchSize: 4, seed: 8 }).batches(5)].flat(), drawn);
  // Resume from a saved position continues the same stream.
  const resumed = new BatchSampler(data, { batchSize: 4, seed: 7, start: 8 });
  assert.deepEqual([...resumed.batches(3)].flat(), drawn.slice(8, 20));
  assert.deepEqual(new BatchSampler(data, { batchSize: 3, shuffle: false }).next(), [0, 1, 2]);
  assert.throws(() => new BatchSampler([], { batchSize: 2 }), /dataset is empty/);
  assert.throws(() => new BatchSampler(data, { batchSize: 0 }), /batchSize must be >= 1/);
});

test('packText: every token is a target exactly once with weight 1; only final padding is 0', () => {
  const docs = ['abc', 'defgh', 'ij'];
  const b = packText(docs, tok, { seqLen: 4 });
  // Stream: EOT abc EOT defgh EOT ij EOT = 14 ids, 13 targets -> 4 rows of 4.
  assert.equal(b.batchSize, 4);
  const targets = Array.from(b.targets);
  const weights = Array.from(b.weights);
  assert.equal(weights.reduce((s, w) => s + w, 0), 13);
  assert.deepEqual(weights.slice(13), [0, 0, 0]);
  assert.equal(tok.decode(targets.slice(0, 13), { stopAtEot: false }), 'abc<eot>defgh<eot>ij<eot>');
  // Inputs are the targets shifted by one, across row boundaries too.
  const inputs = Array.from(b.inputs);
  for (let k = 1; k < 13; k++) assert.equal(inputs[k], targets[k - 1]);
  assert.equal(inputs[0], EOT_ID);
  assert.equal(sliceHostBatch(b, 1, 3).batchSize, 2);
  assert.deepEqual(Array.from(sliceHostBatch(b, 1, 2).inputs), inputs.slice(4, 8));
});

test('PackedTextSampler: deterministic, re-packed per epoch, full weights, resumable', () => {
  const docs = generateGeneralCorpus({ seed: 1, trainSize: 40, validationSize: 0, testSize: 0 }).train;
  const total = docs.reduce((s, d) => s + d.completion.length + 1, 0); // text + one EOT each
  const a = new PackedTextSampler(docs, tok, { seqLen: 64, batchSize: 8, seed: 3 });
  const b = new PackedTextSampler(docs, tok, { seqLen: 64, batchSize: 8, seed: 3 });
  const batches = Array.from({ length: 12 }, () => a.next());
  for (const batch of batches) assert.deepEqual(batch, b.next());
  assert.ok(a.epoch >= 1, 'the stream ran into a second epoch');
  // Apart from one partial window per epoch, every weight is 1.
  const zeros = batches.reduce((s, x) => s + x.weights.filter((w) => w === 0).length, 0);
  assert.ok(zeros < 64 * (a.epoch + 1), `${zeros} padded positions`);
  assert.ok(12 * 8 * 64 > total, 'the test covers more than one epoch of tokens');
  const resumed = new PackedTextSampler(docs, tok, { seqLen: 64, batchSize: 8, seed: 3, start: 5 * 8 });
  assert.deepEqual(resumed.next(), batches[5]);
  const other = new PackedTextSampler(docs, tok, { seqLen: 64, batchSize: 8, seed: 4 });
  assert.notDeepEqual(other.next(), batches[0]);
});
