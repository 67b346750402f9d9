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
 * Policy for real text (real datasets such as GSM8K are not plain ASCII). Every character
 * outside the vocabulary is looked at once, in this order:
 * 1. Line breaks: `\r\n`, `\r`, U+2028, U+2029 and U+0085 become `\n`; a tab becomes one space.
 * 2. Superscripts become `^` and the digit (`x²` → `x^2`, `10²³` → `10^23`); vulgar fractions become
 *    `n/m`, after a space when a digit precedes them (`2½` → `2 1/2`, `½` → `1/2`).
 * 3. The table `NORMALIZATION_TABLE` (typographic quotes, dashes and the minus sign, `×` → `*`,
 *    `÷` → `/`, `√` → `sqrt`, letters without a decomposition such as `ß` → `ss`, invisible
 *    characters → nothing, and a few more).
 * 4. Unicode NFKC of the character, if it gives ASCII (full-width forms, ligatures,
 *    `…` → `...`, non-breaking and other spaces → space, `™` → `TM`).
 * 5. Accents removed (NFKD without the combining marks: `é` → `e`, `ñ` → `n`, `Å` → `A`);
 *    other invisible format characters (Unicode category Cf) and lone combining marks dropped.
 * 6. Anything else (`€`, `£`, `°`, letters of other scripts, emoji) is unknown:
 *    `unknown: 'unk'` (default) maps it to UNK, one UNK per code point;
 *    `unknown: 'error'` (the command line's `--strict-text`) throws `UnknownCharacterError`
 *    naming the character, its code point, the source and the line/column.
 * Text is NFC-composed first, so a letter followed by a combining accent counts as one letter.
 * `normalize` applies steps 1–5 and leaves unknown characters in place; pass a `TextStats` to
 * count what was normalised and what is unknown (the loaders print its `summary()`).
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
  '\u221A': 'sqrt', // √
  '\u00DF': 'ss', // ß
  '\u00E6': 'ae', // æ
  '\u00C6': 'AE', // Æ
  '\u0153': 'oe', // œ
  '\u0152': 'OE', // Œ
  '\u00F8': 'o', // ø
  '\u00D8': 'O', // Ø
  '\u0142': 'l', // ł
  '\u0141': 'L', // Ł
  '\u0111': 'd', // đ
  '\u0110': 'D', // Đ
  '\u00F0': 'd', // ð
  '\u00D0': 'D', // Ð
  '\u00FE': 'th', // þ
  '\u00DE': 'Th', // Þ
  '\u0131': 'i', // ı dotless i
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

const DEFAULTS: CharTokenizerOptions = { unknown: 'unk' };

/** True when `code` has an id in the vocabulary. */
function inVocab(code: number): boolean {
  return code === 10 || (code >= ASCII_FIRST && code <= ASCII_LAST);
}

function allInVocab(s: string): boolean {
  for (const ch of s) if (!inVocab(ch.codePointAt(0) as number)) return false;
  return true;
}

const SUPERSCRIPTS: Readonly<Record<string, string>> = {
  '\u2070': '0', '\u00B9': '1', '\u00B2': '2', '\u00B3': '3', '\u2074': '4', '\u2075': '5', '\u2076': '6', '\u2077': '7',
  '\u2078': '8', '\u2079': '9', '\u207A': '+', '\u207B': '-', '\u207D': '(', '\u207E': ')', '\u207F': 'n',
};
/** ¼ ½ ¾, ⅐ … ⅞ and ↉: NFKC spells each as digits around U+2044 (fraction slash). */
const VULGAR_FRACTION = /^[\u00BC-\u00BE\u2150-\u215E\u2189]$/u;
const LINE_BREAKS = /\r\n?|[\u2028\u2029\u0085]/g;

/**
 * The ASCII text for one character outside the vocabulary (steps 3–5 of the policy), or
 * `null` when it has none. Superscripts and fractions depend on their neighbours and are
 * handled by `CharTokenizer.normalize`. Pure, so results are cached.
 */
const charCache = new Map<string, string | null>();
function asciiFor(ch: string): string | null {
  const cached = charCache.get(ch);
  if (cached !== undefined || charCache.has(ch)) return cached as string | null;
  const viaTable = (s: string): string => Array.from(s, (c) => NORMALIZATION_TABLE[c] ?? c).join('');
  let out: string | null = null;
  if (NORMALIZATION_TABLE[ch] !== undefined) out = NORMALIZATION_TABLE[ch] as string;
  else {
    const nfkc = viaTable(ch.normalize('NFKC'));
    const stripped = viaTable(ch.normalize('NFKD').replace(/\p{M}/gu, ''));
    if (nfkc !== ch && allInVocab(nfkc)) out = nfkc;
    else if (stripped !== ch && stripped !== '' && allInVocab(stripped)) out = stripped;
    else if (/^[\p{Cf}\p{M}]$/u.test(ch)) out = '';
    else if (/^\p{Zs}$/u.test(ch)) out = ' ';
  }
  if (charCache.size < 10_000) charCache.set(ch, out);
  return out;
}

/**
 * Counts what normalisation did to a body of text: characters mapped to ASCII and characters
 * left unknown (UNK), each by character, so a loader can say in one line what happened.
 */
export class TextStats {
  /** Characters replaced by an ASCII form (or dropped), by source character. */
  readonly normalized = new Map<string, number>();
  /** Characters without an ASCII form (UNK unless strict), by character. */
  readonly unknown = new Map<string, number>();

  /** Total count of a map. */
  static total(m: ReadonlyMap<string, number>): number {
    let n = 0;
    for (const v of m.values()) n += v;
    return n;
  }

  /** The `k` most frequent characters of a map, most frequent first (ties by code point). */
  static top(m: ReadonlyMap<string, number>, k = 5): { char: string; codePoint: string; count: number }[] {
    return [...m.entries()]
      .sort((a, b) => b[1] - a[1] || (a[0].codePointAt(0) as number) - (b[0].codePointAt(0) as number))
      .slice(0, k)
      .map(([char, count]) => ({ char, codePoint: `U+${(char.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0')}`, count }));
  }

  /** A JSON-friendly summary: totals and the ten most frequent characters of each kind. */
  toJSON(): TextStatsSummary {
    return {
      normalized: TextStats.total(this.normalized),
      unknown: TextStats.total(this.unknown),
      topNormalized: TextStats.top(this.normalized, 10),
      topUnknown: TextStats.top(this.unknown, 10),
    };
  }

  /**
   * One line, e.g. `train.jsonl: 1,204 characters normalised (é ×900, ½ ×12, …); 3 became UNK (€ ×3)`.
   * Invisible characters show as their code point.
   */
  summary(label = 'text'): string {
    const show = (m: ReadonlyMap<string, number>): string => {
      const top = TextStats.top(m);
      if (top.length === 0) return '';
      const parts = top.map((t) => `${/^[\p{L}\p{N}\p{P}\p{S}]$/u.test(t.char) ? t.char : t.codePoint} ×${t.count.toLocaleString('en-US')}`);
      return ` (${parts.join(', ')}${m.size > top.length ? ', …' : ''})`;
    };
    const n = TextStats.total(this.normalized);
    const u = TextStats.total(this.unknown);
    return `${label}: ${n.toLocaleString('en-US')} character${n === 1 ? '' : 's'} normalised${show(this.normalized)}; ` +
      `${u.toLocaleString('en-US')} became UNK${show(this.unknown)}`;
  }
}

/** What `TextStats.toJSON` gives: saved in run records as `data.text`. */
export interface TextStatsSummary {
  normalized: number;
  unknown: number;
  topNormalized: { char: string; codePoint: string; count: number }[];
  topUnknown: { char: string; codePoint: string; count: number }[];
}

function bump(m: Map<string, number>, ch: string): void {
  m.set(ch, (m.get(ch) ?? 0) + 1);
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

  /**
   * Applies the normalisation policy (steps 1–5 at the top of this file); unknown characters
   * stay in place (encoding maps them to UNK or throws). Idempotent. `stats`, when given,
   * counts every character that was normalised or is unknown (a `\r` before `\n` is not counted).
   */
  normalize(text: string, stats?: TextStats): string {
    const src = text.replace(LINE_BREAKS, (m) => {
      if (stats && m !== '\r\n' && m !== '\r') bump(stats.normalized, m);
      return '\n';
    }).normalize('NFC');
    let out = '';
    let inSuperscript = false;
    for (const ch of src) {
      if (inVocab(ch.codePointAt(0) as number)) {
        out += ch;
        inSuperscript = false;
        continue;
      }
      let rep: string | null;
      const sup = SUPERSCRIPTS[ch];
      if (sup !== undefined) {
        rep = inSuperscript ? sup : `^${sup}`;
        inSuperscript = true;
      } else {
        inSuperscript = false;
        if (VULGAR_FRACTION.test(ch)) {
          rep = ch.normalize('NFKC').replace('\u2044', '/');
          if (/[0-9]$/.test(out)) rep = ` ${rep}`;
        } else rep = asciiFor(ch);
      }
      if (rep === null) {
        if (stats) bump(stats.unknown, ch);
        out += ch;
      } else {
        if (stats) bump(stats.normalized, ch);
        out += rep;
      }
    }
    return out;
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
