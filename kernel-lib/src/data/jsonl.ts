/**
 * JSONL loaders for user data, so real files (GSM8K and kin) can replace the generated tasks.
 *
 * Formats (one JSON object per line; blank lines are skipped) and their fixed prompt templates:
 *
 * | format              | fields                              | prompt                                              | completion |
 * |---------------------|-------------------------------------|-----------------------------------------------------|------------|
 * | `gsm8k`             | `question`, `answer`                | `Q: <question>\n` (same as the generated math task) | `answer` without `<<…>>` calculator annotations; must end in `#### <n>` |
 * | `alpaca`            | `instruction`, `input`?, `output`   | `Instruction: <instruction>\n` + (`Input: <input>\n` if input is non-empty) + `Response:\n` | `output` |
 * | `prompt-completion` | `prompt`, `completion`              | `prompt` as is                                      | `completion` as is |
 *
 * `gsm8k` examples carry `meta.task = 'math'` with the answer after `####`, so the math scorer
 * evaluates them; the other formats are `meta.task = 'text'` (training / loss only).
 * The format is detected per file from the first record's keys, or given explicitly.
 *
 * Every text goes through the tokenizer policy (`data/tokenizer.ts`): it is normalised, a
 * character without an ASCII form becomes UNK, and `stats` (a `TextStats`) counts both, so a
 * file trains as published; with a tokenizer of `unknown: 'error'` (`--strict-text`) such a
 * character is an error naming the file, the line, the field and the position.
 *
 * Every bad input is a `JsonlError` (a `ConfigError`) naming the file and the 1-based line:
 * invalid JSON, a line that is not an object, a missing or non-string field, a line over
 * `MAX_LINE_CHARS`, an empty file; and, for files, a directory, a binary file (a NUL byte) or
 * bytes that are not UTF-8.
 */
import { readFileSync, statSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { ConfigError, resolveConfig } from '../util/config';
import { CharTokenizer, TextStats } from './tokenizer';
import type { Example, MathMeta, TextMeta } from './tasks/common';
import { mathPrompt } from './tasks/math';
import { parseAnswerNumber } from '../eval/scorers';

/** Supported record formats. */
export type JsonlFormat = 'gsm8k' | 'alpaca' | 'prompt-completion';

/** Options of the loaders. */
export interface JsonlOptions {
  /** Record format, or `auto` to detect it from the first record. */
  format: 'auto' | JsonlFormat;
  /** Tokenizer whose policy checks and normalises the text; its `unknown` option applies. */
  tokenizer: CharTokenizer;
  /** Remove GSM8K calculator annotations `<<48/2=24>>` from answers. */
  stripCalculator: boolean;
  /** Counts normalised and unknown characters over every field read (see `TextStats.summary`). */
  stats: TextStats | undefined;
}

/** Longest line accepted, in UTF-16 units: far above any real example, far below what exhausts memory. */
export const MAX_LINE_CHARS = 1_000_000;

/** A short, printable preview of a value for error messages. */
function preview(value: unknown, max = 60): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** A bad input file: names the file and the 1-based line. */
export class JsonlError extends ConfigError {
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
    this.name = 'JsonlError';
  }
}

const FIELDS: Record<JsonlFormat, { required: string[]; optional: string[] }> = {
  gsm8k: { required: ['question', 'answer'], optional: [] },
  alpaca: { required: ['instruction', 'output'], optional: ['input'] },
  'prompt-completion': { required: ['prompt', 'completion'], optional: [] },
};

/** Detects the format from a record's keys; undefined when none fits. */
export function detectJsonlFormat(record: Record<string, unknown>): JsonlFormat | undefined {
  for (const format of ['gsm8k', 'alpaca', 'prompt-completion'] as JsonlFormat[]) {
    if (FIELDS[format].required.every((k) => k in record)) return format;
  }
  return undefined;
}

/** Parses JSONL text; `file` names it in errors. See the file header for formats and templates. */
export function parseJsonl(text: string, file: string, options?: Partial<JsonlOptions>): Example[] {
  const opts = resolveConfig({ format: 'auto', tokenizer: new CharTokenizer(), stripCalculator: true, stats: undefined } as JsonlOptions, options, 'JSONL options');
  if (!['auto', 'gsm8k', 'alpaca', 'prompt-completion'].includes(opts.format)) {
    throw new ConfigError(`JSONL options: format must be 'auto', 'gsm8k', 'alpaca' or 'prompt-completion', got ${JSON.stringify(opts.format)}`);
  }
  const tok = opts.tokenizer;
  let format: JsonlFormat | undefined = opts.format === 'auto' ? undefined : opts.format;
  const out: Example[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    if (raw.trim() === '') return;
    if (raw.length > MAX_LINE_CHARS) {
      throw new JsonlError(file, lineNo, `line is ${raw.length.toLocaleString('en-US')} characters long, over the ${MAX_LINE_CHARS.toLocaleString('en-US')}-character limit of one example`);
    }
    let record: unknown;
    try {
      record = JSON.parse(raw);
    } catch (e) {
      throw new JsonlError(file, lineNo, `invalid JSON (${(e as Error).message.slice(0, 200)}): ${preview(raw)}`);
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record)) {
      throw new JsonlError(file, lineNo, `expected a JSON object, got ${Array.isArray(record) ? 'an array' : preview(record)}`);
    }
    const rec = record as Record<string, unknown>;
    if (format === undefined) {
      format = detectJsonlFormat(rec);
      if (format === undefined) {
        throw new JsonlError(
          file,
          lineNo,
          `cannot tell the format from the keys ${preview(Object.keys(rec), 200)}: expected question/answer (gsm8k), ` +
            `instruction/input/output (alpaca) or prompt/completion`,
        );
      }
    }
    const spec = FIELDS[format];
    const field = (name: string, optional = false): string => {
      const v = rec[name];
      if (v === undefined || v === null) {
        if (optional) return '';
        throw new JsonlError(file, lineNo, `missing field "${name}" (format ${format}; needs ${spec.required.join(', ')})`);
      }
      if (typeof v !== 'string') throw new JsonlError(file, lineNo, `field "${name}" must be a string, got ${Array.isArray(v) ? 'an array' : typeof v}`);
      // Strict: encoding throws naming file, line, field and position. Otherwise count and keep.
      if (tok.options.unknown === 'error') tok.encode(v, { source: `${file}:${lineNo} field "${name}"` });
      return tok.normalize(v, opts.stats);
    };
    const source = `${file}:${lineNo}`;
    if (format === 'gsm8k') {
      const question = field('question');
      let answer = field('answer');
      if (opts.stripCalculator) answer = answer.replace(/<<[^>]*>>/g, '');
      answer = answer.trim();
      const at = answer.indexOf('####');
      const value = at < 0 ? null : parseAnswerNumber(answer.slice(at + 4));
      if (value === null) throw new JsonlError(file, lineNo, `field "answer" has no final line "#### <number>"`);
      const steps = answer.slice(0, at).split('\n').filter((l) => l.trim() !== '').length;
      const meta: MathMeta = { task: 'math', answer: value, steps, source };
      out.push({ prompt: mathPrompt(question), completion: answer, meta });
    } else if (format === 'alpaca') {
      const instruction = field('instruction').trim();
      const input = field('input', true).trim();
      const output = field('output');
      const prompt = `Instruction: ${instruction}\n${input ? `Input: ${input}\n` : ''}Response:\n`;
      const meta: TextMeta = { task: 'text', format, source };
      out.push({ prompt, completion: output, meta });
    } else {
      const meta: TextMeta = { task: 'text', format, source };
      out.push({ prompt: field('prompt'), completion: field('completion'), meta });
    }
  });
  if (out.length === 0) throw new JsonlError(file, 1, 'the file is empty (no JSON lines)');
  return out;
}

/**
 * Reads and parses a JSONL file (see `parseJsonl`). A directory, a binary file and bytes that
 * are not UTF-8 are `JsonlError`s naming the file (and the line, for bad bytes).
 */
export function loadJsonl(path: string, options?: Partial<JsonlOptions>): Example[] {
  let bytes: Buffer;
  try {
    if (statSync(path).isDirectory()) throw new JsonlError(path, 1, 'is a directory, not a JSONL file');
    bytes = readFileSync(path);
  } catch (e) {
    if (e instanceof JsonlError) throw e;
    throw new ConfigError(`cannot read JSONL file ${path}: ${(e as Error).message}`);
  }
  return parseJsonl(decodeText(bytes, path), path, options);
}

/** UTF-8 text of a file's bytes; a NUL byte (binary file) or invalid UTF-8 is a `JsonlError`. */
export function decodeText(bytes: Uint8Array, file: string): string {
  const lineOf = (offset: number): number => {
    let line = 1;
    for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
    return line;
  };
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new JsonlError(file, lineOf(nul), `looks like a binary file (a NUL byte at offset ${nul}), not JSONL text`);
  if (!isUtf8(bytes)) {
    // 0x0A never occurs inside a UTF-8 sequence, so the first line that fails alone holds the bad bytes.
    let start = 0;
    for (let line = 1; start <= bytes.length; line++) {
      let end = bytes.indexOf(0x0a, start);
      if (end < 0) end = bytes.length;
      if (!isUtf8(bytes.subarray(start, end))) {
        throw new JsonlError(file, line, 'is not valid UTF-8 text (convert the file to UTF-8, e.g. with iconv)');
      }
      start = end + 1;
    }
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}
