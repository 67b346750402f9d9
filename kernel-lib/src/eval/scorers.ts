/**
 * Scorers: exact final answer for math (GSM8K protocol, paper §4.1), functional tests for
 * programs (HumanEval/MBPP pass@1 with greedy decoding), exact value for arithmetic facts.
 *
 * Where a completion ends — the contract with the model's generation:
 * - every task: generation stops at the end-of-text token; the text handed to a scorer is
 *   what came before it (`CharTokenizer.decode` stops there by default);
 * - `code` and `arith`: the completion is one line, so it also ends at the first newline
 *   (generation may stop there: `stopsAtNewline(task)`); anything after it is ignored;
 * - `math`: the completion spans lines; the answer is the number after the first `####`.
 * If the generated text starts with the prompt (a generator that echoes it), the prompt is
 * removed first, so "the first marker" is always the first one after the prompt.
 *
 * `evaluateTask` is decoupled from the model: it takes any `generateFn(prompts) → texts`.
 */
import { ConfigError, checkNumber, resolveConfig } from '../util/config';
import type { ArithMeta, CodeMeta, Example, ExampleMeta, MathMeta } from '../data/tasks/common';
import { DEFAULT_LISTLANG_LIMITS, formatListValue, parseListProgram, runListProgram, listValuesEqual } from './listlang';

/** Tasks that have a scorer. */
export type ScoredTask = 'math' | 'code' | 'arith';

/** True when a completion of `task` ends at the first newline (code, arith). */
export function stopsAtNewline(task: ScoredTask): boolean {
  return task === 'code' || task === 'arith';
}

/** The part of generated text that counts as the completion (see the file header). */
export function completionText(task: ScoredTask, generated: string, prompt?: string): string {
  let text = generated;
  if (prompt !== undefined && prompt.length > 0 && text.startsWith(prompt)) text = text.slice(prompt.length);
  const eot = text.indexOf('<eot>');
  if (eot >= 0) text = text.slice(0, eot);
  if (stopsAtNewline(task)) {
    const nl = text.indexOf('\n');
    if (nl >= 0) text = text.slice(0, nl);
  }
  return text;
}

/**
 * Parses a number as written in an answer: optional `$`, optional minus, digits with optional
 * thousands commas (`1,234`), optional decimals; a trailing period (end of sentence) is
 * ignored. Returns null when `text` does not start with a number (after spaces).
 */
export function parseAnswerNumber(text: string): number | null {
  const m = /^[ \t]*\$?[ \t]*(-?)[ \t]*(\d[\d,]*)(\.\d+)?/.exec(text);
  if (m === null) return null;
  const intPart = (m[2] as string).replace(/,+$/, '');
  // "12,34" is not a grouped number; "1,234" and "1,234,567" are.
  if (intPart.includes(',') && !/^\d{1,3}(,\d{3})+$/.test(intPart)) return null;
  const value = Number(`${m[1]}${intPart.replace(/,/g, '')}${m[3] ?? ''}`);
  return Number.isFinite(value) ? (value === 0 ? 0 : value) : null;
}

/**
 * The final answer of a math completion: the number right after the first `####`
 * (after removing an echoed prompt). A missing marker or no number after it gives null —
 * scored as wrong, like the GSM8K protocol.
 */
export function extractFinalAnswer(generated: string, prompt?: string): number | null {
  const text = completionText('math', generated, prompt);
  const at = text.indexOf('####');
  if (at < 0) return null;
  return parseAnswerNumber(text.slice(at + 4));
}

/** The verdict on one example. */
export interface ScoreResult {
  correct: boolean;
  /** The reference answer (`formatListValue` text for code: the first failing test's output). */
  expected: string;
  /** What the model produced, as scored (the extracted number, or the program text). */
  got: string;
  /** Why it is wrong; absent when correct. */
  reason?: string;
}

/** Scores a math completion by its final answer. */
export function scoreMath(example: Example<MathMeta>, generated: string): ScoreResult {
  const expected = example.meta.answer;
  const got = extractFinalAnswer(generated, example.prompt);
  if (got === null) {
    const text = completionText('math', generated, example.prompt);
    const reason = text.includes('####') ? "no number after '####'" : "no '####' answer line";
    return { correct: false, expected: String(expected), got: '', reason };
  }
  const correct = Math.abs(got - expected) <= 1e-9 * Math.max(1, Math.abs(expected));
  return { correct, expected: String(expected), got: String(got), ...(correct ? {} : { reason: `answer ${got}, expected ${expected}` }) };
}

/** Scores an arithmetic-fact completion: the first line must be exactly the result. */
export function scoreArith(example: Example<ArithMeta>, generated: string): ScoreResult {
  const expected = example.meta.answer;
  const line = completionText('arith', generated, example.prompt).trim();
  const ok = /^-?\d+$/.test(line) && Number(line) === expected;
  return { correct: ok, expected: String(expected), got: line, ...(ok ? {} : { reason: `got ${JSON.stringify(line)}, expected ${expected}` }) };
}

/** Scores a program completion on the hidden tests: pass only if every test's output matches. */
export function scoreCode(example: Example<CodeMeta>, generated: string): ScoreResult {
  const program = completionText('code', generated, example.prompt).trim();
  const tests = example.meta.tests;
  const firstExpected = tests.length > 0 ? formatListValue((tests[0] as { output: number[] | number }).output) : '';
  if (program.length === 0) return { correct: false, expected: firstExpected, got: '', reason: 'empty program' };
  const parsed = parseListProgram(program);
  if (!parsed.ok) return { correct: false, expected: firstExpected, got: program, reason: parsed.error.message };
  for (let i = 0; i < tests.length; i++) {
    const t = tests[i] as CodeMeta['tests'][number];
    const r = runListProgram(parsed.program, t.input, { ...DEFAULT_LISTLANG_LIMITS });
    const want = formatListValue(t.output);
    if (!r.ok) {
      return { correct: false, expected: want, got: program, reason: `hidden test ${i + 1} of ${tests.length} (input ${formatListValue(t.input)}): ${r.error.kind} error: ${r.error.message}` };
    }
    if (!listValuesEqual(r.value, t.output)) {
      return {
        correct: false,
        expected: want,
        got: program,
        reason: `hidden test ${i + 1} of ${tests.length} (input ${formatListValue(t.input)}): expected ${want}, got ${formatListValue(r.value)}`,
      };
    }
  }
  return { correct: true, expected: firstExpected, got: program };
}

/** Scores one example of `task`; throws `ConfigError` if the example belongs to another task. */
export function scoreExample(task: ScoredTask, example: Example, generated: string): ScoreResult {
  const meta: ExampleMeta = example.meta;
  if (meta.task !== task) {
    throw new ConfigError(`score ${task}: example from ${meta.source} is a ${meta.task} example (no ${task} reference answer)`);
  }
  if (task === 'math') return scoreMath(example as Example<MathMeta>, generated);
  if (task === 'code') return scoreCode(example as Example<CodeMeta>, generated);
  return scoreArith(example as Example<ArithMeta>, generated);
}

/** Per-example record of an evaluation. */
export interface ExampleScore extends ScoreResult {
  index: number;
  prompt: string;
  generated: string;
}

/** Result of `evaluateTask`. */
export interface EvalReport {
  task: ScoredTask;
  n: number;
  correct: number;
  /** correct / n (pass@1 for code); NaN when n is 0. */
  accuracy: number;
  perExample: ExampleScore[];
}

/** Options of `evaluateTask`. */
export interface EvaluateOptions {
  /** Prompts per `generateFn` call (the model's generation batch size). */
  batchSize: number;
}

/**
 * Generates completions for every example's prompt with `generateFn` (called on batches of
 * `batchSize` prompts, in order) and scores them. Model-agnostic: wire in a model's batched
 * greedy generation, or a function returning references to test the plumbing.
 */
export async function evaluateTask(
  task: ScoredTask,
  examples: readonly Example[],
  generateFn: (prompts: string[]) => Promise<string[]> | string[],
  options?: Partial<EvaluateOptions>,
): Promise<EvalReport> {
  if (task !== 'math' && task !== 'code' && task !== 'arith') {
    throw new ConfigError(`evaluateTask: task must be 'math', 'code' or 'arith', got ${JSON.stringify(task)}`);
  }
  const opts = resolveConfig({ batchSize: Math.max(1, examples.length) }, options, 'evaluateTask options');
  checkNumber('evaluateTask options.batchSize', opts.batchSize, { min: 1, integer: true });
  for (const ex of examples) {
    if (ex.meta.task !== task) throw new ConfigError(`evaluateTask(${task}): got a ${ex.meta.task} example from ${ex.meta.source}`);
  }
  const perExample: ExampleScore[] = [];
  for (let start = 0; start < examples.length; start += opts.batchSize) {
    const batch = examples.slice(start, start + opts.batchSize);
    const outputs = await generateFn(batch.map((e) => e.prompt));
    if (!Array.isArray(outputs) || outputs.length !== batch.length) {
      throw new ConfigError(`evaluateTask: generateFn returned ${Array.isArray(outputs) ? outputs.length : typeof outputs} outputs for ${batch.length} prompts`);
    }
    batch.forEach((ex, i) => {
      const generated = outputs[i];
      if (typeof generated !== 'string') throw new ConfigError(`evaluateTask: generateFn output ${start + i} is not a string`);
      perExample.push({ index: start + i, prompt: ex.prompt, generated, ...scoreExample(task, ex, generated) });
    });
  }
  const correct = perExample.filter((p) => p.correct).length;
  return { task, n: perExample.length, correct, accuracy: perExample.length === 0 ? NaN : correct / perExample.length, perExample };
}
