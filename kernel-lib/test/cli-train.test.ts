/**
 * `gmt-lab train` end to end through the real command: option errors name the option, and a
 * short run writes its record, its checkpoint and the first update's gradients.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../src/cli/main';
import { CharTokenizer } from '../src/data/tokenizer';
import { GPT } from '../src/model/gpt';
import { gptPreset } from '../src/model/presets';
import { loadCheckpoint, loadSafetensors, saveCheckpoint } from '../src/model/safetensors';

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; } });
  return { code, stdout, stderr };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-cli-train-'));
const base = path.join(tmp, 'base.safetensors');

test('setup: a nano base checkpoint', async () => {
  const model = new GPT(gptPreset('nano', { vocabSize: new CharTokenizer().vocabSize, seed: 5 }));
  saveCheckpoint(base, model);
  model.dispose();
});

for (const [argv, flag] of [
  [['--bogus', '1'], '--bogus'],
  [['--ratio', '1'], '--ratio'],
  [['--ratio', '-0.1'], '--ratio'],
  [['--steps', '0'], '--steps'],
  [['--method', 'nope'], '--method'],
  [['--scope', 'diagonal'], '--scope'],
  [['--batch', '2.5'], '--batch'],
] as const) {
  test(`train ${argv.join(' ')} exits 2 naming ${flag}`, async () => {
    const r = await run(['train', '--base', base, ...argv]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(flag.replace(/-/g, '\\-')));
    assert.equal(r.stdout, '');
  });
}

test('a method option the method does not take is an error naming it', async () => {
  const r = await run(['train', '--base', base, '--method', 'childtuning-f', '--scope', 'global', '--steps', '1']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /scope/);
});

test('a missing base checkpoint is a clear error', async () => {
  const r = await run(['train', '--base', path.join(tmp, 'nope.safetensors'), '--steps', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /nope\.safetensors/);
});

test('train --json --out --dump-first-update: record, checkpoint and masked gradients', async () => {
  const out = path.join(tmp, 'run');
  const dump = path.join(tmp, 'first.safetensors');
  const r = await run([
    'train', '--base', base, '--task', 'math', '--method', 'gmt', '--ratio', '0.5', '--steps', '2', '--accum', '2', '--batch', '4',
    '--test-size', '3', '--val-size', '8', '--json', '--out', out, '--dump-first-update', dump,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const record = JSON.parse(r.stdout);
  assert.equal(record.kind, 'gmt-lab/finetune');
  assert.equal(record.config.method, 'gmt');
  assert.deepEqual(record.config.methodOptions, { ratio: 0.5 });
  assert.equal(record.train.updates, 2);
  assert.equal(record.data.test, 3);
  assert.ok(Number.isFinite(record.metrics.valLoss));
  assert.ok(record.metrics.testAccuracy >= 0 && record.metrics.testAccuracy <= 1);
  assert.match(r.stderr, /train 2\/2 loss/);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'result.json'), 'utf8')).train.weightsSha256, record.train.weightsSha256);
  const tuned = loadCheckpoint(path.join(out, 'model.safetensors'));
  assert.deepEqual(tuned.config, record.base.model);
  tuned.dispose();

  const { tensors } = loadSafetensors(dump);
  const model = loadCheckpoint(base);
  const names = model.params.map((p) => p.name);
  model.dispose();
  for (const name of names) {
    const g = tensors[`grad/${name}`];
    const m = tensors[`masked/${name}`];
    assert.ok(g && m, `grad/${name} and masked/${name} present`);
    assert.deepEqual(g.shape, m.shape);
    const gd = g.data as Float32Array;
    const md = m.data as Float32Array;
    // masked = grad ⊙ M with M = |grad| ≥ T, T the median |grad| of the tensor (ties kept).
    const abs = Array.from(gd, Math.abs).sort((a, b) => a - b);
    const T = abs[Math.floor(0.5 * gd.length)] as number;
    let kept = 0;
    for (let i = 0; i < gd.length; i++) {
      const keep = Math.abs(gd[i] as number) >= T;
      // === so that the -0 of a masked negative entry counts as 0.
      assert.ok(md[i] === (keep ? gd[i] : 0), `${name}[${i}]: masked ${md[i]}, grad ${gd[i]}, T ${T}`);
      if (keep) kept++;
    }
    assert.ok(kept >= Math.ceil(gd.length / 2), `${name}: kept ${kept} of ${gd.length}`);
  }
});

test('train on a user JSONL file: loss-only scoring for Alpaca data', async () => {
  const samples = path.join(__dirname, '..', '..', 'data', 'samples', 'alpaca.jsonl');
  const r = await run(['train', '--base', base, '--task', samples, '--method', 'gmt', '--steps', '2', '--accum', '1', '--batch', '2', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const record = JSON.parse(r.stdout);
  assert.equal(record.data.scored, null);
  assert.equal(record.metrics.testAccuracy, undefined);
  assert.ok(Number.isFinite(record.metrics.valLoss));
  assert.ok(record.data.train >= 1 && record.data.validation >= 1);
});

test('a bad JSONL line stops the run naming the file and line', async () => {
  const bad = path.join(tmp, 'bad.jsonl');
  fs.writeFileSync(bad, '{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": "d"}\n{"prompt": "e"\n');
  const r = await run(['train', '--base', base, '--task', bad, '--steps', '1']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /bad\.jsonl:3/);
});

test('a file as published trains, with one summary line of what was normalised and what became UNK; --strict-text stops naming the character', async () => {
  const file = path.join(__dirname, '..', '..', 'data', 'samples', 'gsm8k-unicode.jsonl');
  const r = await run(['train', '--base', base, '--task', file, '--steps', '2', '--accum', '1', '--batch', '2', '--test-size', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const summary = r.stderr.split('\n').filter((l) => l.includes('characters normalised'));
  assert.equal(summary.length, 1, r.stderr);
  assert.match(summary[0]!, /gsm8k-unicode\.jsonl: \d+ characters normalised \(.*×.*\); \d+ became UNK \(.*\)/);
  const record = JSON.parse(r.stdout);
  // Unknown: € (2), £, ¢ and the four Cyrillic letters of Олег — 8 characters in all.
  assert.equal(record.data.text.unknown, 8);
  // Normalised: × 7, é 3, ³ 3, ê 2, ½ 2, √ 2, and one each of − ÷ ñ ç ë ö ¼ U+2028 U+200B U+00A0.
  assert.equal(record.data.text.normalized, 29, JSON.stringify(record.data.text));
  const top = new Map(record.data.text.topNormalized.map((t: { char: string; count: number }) => [t.char, t.count]));
  assert.equal(top.get('×'), 7);
  assert.equal(top.get('½'), 2);
  assert.deepEqual(record.data.text.topUnknown.map((t: { char: string }) => t.char).sort(), ['¢', '£', 'г', 'е', 'л', 'О', '€'].sort());

  const strict = await run(['train', '--base', base, '--task', file, '--steps', '1', '--strict-text']);
  assert.equal(strict.code, 2, strict.stderr);
  assert.match(strict.stderr, /unknown character "€" \(U\+20AC\) at .*gsm8k-unicode\.jsonl:1 field "question", line 1, column \d+/);
  assert.doesNotMatch(strict.stderr, /\n\s+at /, 'no stack trace');
});

test('examples whose completion exceeds the context are left out and counted; a file where none fits is a clear error', async () => {
  const file = path.join(tmp, 'long.jsonl');
  const short = Array.from({ length: 6 }, (_, i) => JSON.stringify({ prompt: `p${i} `, completion: `c${i}` }));
  fs.writeFileSync(file, [...short, JSON.stringify({ prompt: 'long ', completion: 'x'.repeat(300) })].join('\n'));
  const r = await run(['train', '--base', base, '--task', file, '--steps', '1', '--accum', '1', '--batch', '2', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /long\.jsonl: 1 example has a completion longer than the model's context \(\d+ positions\), left out/);
  const record = JSON.parse(r.stdout);
  assert.equal(record.data.tooLong, 1);
  assert.equal(record.data.train + record.data.validation + record.data.test, 6);
  const none = path.join(tmp, 'none.jsonl');
  fs.writeFileSync(none, Array.from({ length: 4 }, () => JSON.stringify({ prompt: 'p', completion: 'y'.repeat(300) })).join('\n'));
  const bad = await run(['train', '--base', base, '--task', none, '--steps', '1']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /none\.jsonl: none of its 4 examples fits the model's context/);
});
