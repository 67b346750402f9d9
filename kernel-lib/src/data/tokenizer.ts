/**
 * Character tokenizer with a fixed vocabulary of 99 ids.
 *
 * Vocabulary (stable; checkpoints depend on it — never reorder):
 *
 * | id    | token                                   |
 * |-------|-----------------------------------------|
 * | 0     | PAD — padding, never a target            |
 * | 1     | EOT — end of text; also starts every sequence (see `data/batching.ts`) |
 * | 2     | UNK — a character outside the vocabulary (only with `unknown: 'unk'`) |
 * | 3     | `\n` newline                              |
 * | 4–98  | printable ASCII 32 (space) … 126 (`~`): id = code − 28 |
 *
 * Policy for real text (real datasets such as GSM8K are not plain ASCII):
 * 1. `\r\n` and `\r` become `\n`; a tab becomes one space; zero-width characters and the
 *    byte-order mark are dropped.
 * 2. The table of step 3, then Unicode NFKC (full-width forms, ligatures, `…` → `...`, non-breaking spaces → space,
 *    superscript digits → digits, `½` → `1⁄2`).
 * 3. The table `NORMALIZATION_TABLE` below for what NFKC leaves alone: typographic quotes →
 *    ASCII quotes, every dash and minus sign → `-`, `×` → `*`, `÷` → `/`, fraction slash → `/`,
 *    bullets → `-`, and a few more.
 * 4. Anything still outside the vocabulary: `unknown: 'error'` (default) throws
 *    `UnknownCharacterError` naming the character, its code point, the source and the
 *    line/column; `unknown: 'unk'` maps it to UNK (one UNK per code point).
 */
import { ConfigError, resolveConfig } from '../util/config';

/** Id of the padding token. Padding positions always have loss weight 0. */
export const PAD_ID = 0;
/** Id of the end-of-text token; it also marks the start of every sequence. */
export const EOT_ID = 1;
/** Id of the unknown-character token. */
export const UNK_ID = 2;
/** Id of `\n`. */
export const NEWLINE_ID = 3;
const ASCII_FIRST = 32;
const ASCII_LAST = 126;
const ASCII_OFFSET = 4 - ASCII_FIRST;
/** Number of ids: 3 specials + newline + 95 printable ASCII characters. */
export const CHAR_VOCAB_SIZE = 4 + (ASCII_LAST - ASCII_FIRST + 1);

/**
 * Replacements applied after NFKC, character → ASCII text. Exported so that notebooks and
 * tests can show the exact policy.
 */
export const NORMALIZATION_TABLE: Readonly<Record<string, string>> = Object.freeze({
  '\u2018': "'", // ‘ left single quote
  '\u2019': "'", // ’ right single quote / apostrophe
  '\u201A': "'", // ‚ low single quote
  '\u201B': "'", // ‛ reversed single quote
  '\u2032': "'", // ′ prime
  '\u00B4': "'", // ´ acute accent used as apostrophe
  '\u201C': '"', // “
  '\u201D': '"', // ”
  '\u201E': '"', // „
  '\u201F': '"', // ‟
  '\u2033': '"', // ″ double prime
  '\u00AB': '"', // «
  '\u00BB': '"', // »
  '\u2010': '-', // ‐ hyphen
  '\u2011': '-', // ‑ non-breaking hyphen
  '\u2012': '-', // ‒ figure dash
  '\u2013': '-', // – en dash
  '\u2014': '-', // — em dash
  '\u2015': '-', // ― horizontal bar
  '\u2212': '-', // − minus sign
  '\u00AD': '', // soft hyphen: invisible, dropped
  '\u00D7': '*', // × multiplication sign
  '\u00F7': '/', // ÷ division sign
  '\u2044': '/', // ⁄ fraction slash (NFKC turns ½ into 1⁄2)
  '\u2215': '/', // ∕ division slash
  '\u2022': '-', // • bullet
  '\u00B7': '*', // · middle dot (used as multiplication)
  '\u22C5': '*', // ⋅ dot operator
  '\u2264': '<=', // ≤
  '\u2265': '>=', // ≥
  '\u2260': '!=', // ≠
  '\t': ' ',
  '\u200B': '', // zero-width space
  '\u200C': '', // zero-width non-joiner
  '\u200D': '', // zero-width joiner
  '\u2060': '', // word joiner
  '\uFEFF': '', // byte-order mark
});

/** Options of `CharTokenizer`. */
export interface CharTokenizerOptions {
  /** What to do with a character outside the vocabulary after normalisation. */
  unknown: 'error' | 'unk';
}

/** Where a text came from, for error messages: a label such as `train.jsonl:12 field "question"`. */
export interface EncodeOptions {
  source?: string;
}

/** Thrown by `encode` when `unknown: 'error'` meets a character outside the vocabulary. */
export class UnknownCharacterError extends ConfigError {
  constructor(
    readonly char: string,
    readonly codePoint: number,
    readonly source: string | undefined,
    /** 1-based line and column (in code points) inside the encoded text. */
    readonly line: number,
    readonly column: number,
  ) {
    const hex = codePoint.toString(16).toUpperCase().padStart(4, '0');
    const where = source ? `${source}, ` : '';
    super(
      `unknown character ${JSON.stringify(char)} (U+${hex}) at ${where}line ${line}, column ${column} ` +
        `of the text: it is outside the character vocabulary even after normalisation ` +
        `(use the tokenizer option unknown: 'unk' to map it to UNK, or clean the data)`,
    );
    this.name = 'UnknownCharacterError';
  }
}

const DEFAULTS: CharTokenizerOptions = { unknown: 'error' };
const TABLE_RE = new RegExp(`[${Object.keys(NORMALIZATION_TABLE).map(escapeForClass).join('')}]`, 'g');

function escapeForClass(ch: string): string {
  return ch === '\\' || ch === ']' || ch === '^' || ch === '-' ? `\\${ch}` : ch;
}

/** True when `ch` (one UTF-16 unit or code point) has an id in the vocabulary. */
function inVocab(code: number): boolean {
  return code === 10 || (code >= ASCII_FIRST && code <= ASCII_LAST);
}

/**
 * Maps text to ids and back with the fixed vocabulary documented at the top of this file.
 * The same instance can be shared: it holds no state beyond its options.
 */
export class CharTokenizer {
  /** Number of ids (99). */
  readonly vocabSize = CHAR_VOCAB_SIZE;
  readonly padId = PAD_ID;
  readonly eotId = EOT_ID;
  readonly unkId = UNK_ID;
  readonly options: Readonly<CharTokenizerOptions>;

  constructor(options?: Partial<CharTokenizerOptions>) {
    const resolved = resolveConfig(DEFAULTS, options, 'CharTokenizer options');
    if (resolved.unknown !== 'error' && resolved.unknown !== 'unk') {
      throw new ConfigError(`CharTokenizer options: unknown must be 'error' or 'unk', got ${JSON.stringify(resolved.unknown)}`);
    }
    this.options = Object.freeze(resolved);
  }

  /** Applies the normalisation policy (steps 1–3 above); leaves unknown characters in place. */
  normalize(text: string): string {
    // The table runs before NFKC too: NFKC would split `´` into space + combining accent and
    // `″` into two primes; after NFKC it catches what NFKC produced (e.g. `⁄` from `½`).
    const mapTable = (s: string): string => s.replace(TABLE_RE, (ch) => NORMALIZATION_TABLE[ch] ?? ch);
    return mapTable(mapTable(text.replace(/\r\n?/g, '\n')).normalize('NFKC'));
  }

  /**
   * Normalises and encodes `text` (no EOT is added; batching adds it).
   * @throws UnknownCharacterError with `unknown: 'error'` when a character has no id.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') {
      throw new ConfigError(`encode: expected a string${options.source ? ` from ${options.source}` : ''}, got ${typeof text}`);
    }
    const normalized = this.normalize(text);
    const ids: number[] = [];
    for (const ch of normalized) {
      const code = ch.codePointAt(0) as number;
      if (code === 10) ids.push(NEWLINE_ID);
      else if (code >= ASCII_FIRST && code <= ASCII_LAST) ids.push(code + ASCII_OFFSET);
      else if (this.options.unknown === 'unk') ids.push(UNK_ID);
      else throw this.unknownError(text, normalized, ch, options.source);
    }
    return ids;
  }

  /** True when every character of `text` has an id after normalisation. */
  canEncode(text: string): boolean {
    for (const ch of this.normalize(text)) if (!inVocab(ch.codePointAt(0) as number)) return false;
    return true;
  }

  /**
   * Turns ids back into text. By default decoding stops at the first EOT (the end of a
   * generated completion); with `stopAtEot: false` EOT shows as `<eot>` (for inspection).
   * PAD decodes to nothing, UNK to U+FFFD.
   */
  decode(ids: ArrayLike<number>, options: { stopAtEot?: boolean } = {}): string {
    const stopAtEot = options.stopAtEot ?? true;
    let out = '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      if (id === EOT_ID && stopAtEot) break;
      out += this.tokenText(id);
    }
    return out;
  }

  /** Printable text of one id: specials render as `<pad>`, `<eot>`, U+FFFD for UNK. */
  tokenText(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= CHAR_VOCAB_SIZE) {
      throw new ConfigError(`decode: id ${id} is outside the vocabulary [0, ${CHAR_VOCAB_SIZE - 1}]`);
    }
    if (id === PAD_ID) return '';
    if (id === EOT_ID) return '<eot>';
    if (id === UNK_ID) return '\uFFFD';
    if (id === NEWLINE_ID) return '\n';
    return String.fromCharCode(id - ASCII_OFFSET);
  }

  /** The vocabulary as a table `{id, token}` for display. */
  vocabularyTable(): { id: number; token: string }[] {
    const names: Record<number, string> = { [PAD_ID]: '<pad>', [EOT_ID]: '<eot>', [UNK_ID]: '<unk>', [NEWLINE_ID]: '\\n' };
    return Array.from({ length: CHAR_VOCAB_SIZE }, (_, id) => ({ id, token: names[id] ?? this.tokenText(id) }));
  }

  private unknownError(original: string, normalized: string, ch: string, source: string | undefined): UnknownCharacterError {
    // Report the position in the text the user wrote; NFKC keeps most unknown characters as
    // they are, so they can be found there. Otherwise fall back to the normalised text.
    const host = original.includes(ch) ? original : normalized;
    const index = host.indexOf(ch);
    const before = Array.from(host.slice(0, index));
    let line = 1;
    let column = 1;
    for (const c of before) {
      if (c === '\n' || c === '\r') {
        line++;
        column = 1;
      } else column++;
    }
    // `\r\n` counts as one line break.
    line -= (host.slice(0, index).match(/\r\n/g) ?? []).length;
    return new UnknownCharacterError(ch, ch.codePointAt(0) as number, source, line, column);
  }
}
