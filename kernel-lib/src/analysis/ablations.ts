/**
 * Notebook 06's questions, one per factor of GMT's rule, written down before its full-mode runs
 * and answered mechanically from the result rows: each compares two cells of the grid on the same
 * seeds (test accuracy, paired) with a 95% t interval of the difference A − B.
 *
 * Rule: *A higher* if the interval lies above 0, *A lower* if it lies below 0, *no difference
 * found* otherwise (with the interval's width saying how large a difference the runs could have
 * missed).
 */
import * as aq from 'arquero';
import type { ResultRow, Table } from './results';
import { pairedTest, type PairedComparison } from './stats';

/** A cell of the ablation grid, by the fields of a result row. */
export interface AblationCell {
  method: 'gmt' | 'sft' | 'random-mask';
  ratio?: number;
  scope?: 'tensor' | 'global';
  signal?: 'grad' | 'grad-weight' | 'grad-squared';
  maskUpdate?: boolean;
  /** How tables name it. */
  label: string;
}

/** One pre-registered question: does cell A differ from cell B? */
export interface AblationQuestion {
  id: string;
  factor: string;
  question: string;
  a: AblationCell;
  b: AblationCell;
}

const gmtCell = (over: Partial<AblationCell> = {}): AblationCell => {
  const c = { method: 'gmt' as const, ratio: 0.3, scope: 'tensor' as const, signal: 'grad' as const, maskUpdate: false, ...over };
  return { ...c, label: over.label ?? `GMT k=${c.ratio} ${c.scope} ${c.signal === 'grad' ? '|Γ|' : c.signal === 'grad-weight' ? '|Γ⊙θ|' : 'Γ²'}${c.maskUpdate ? ' maskUpdate' : ''}` };
};

/** The questions (fixed before notebook 06's full-mode runs; the task is the grid's, math). */
export const ABLATION_QUESTIONS: readonly AblationQuestion[] = Object.freeze([
  { id: 'gmt-vs-sft', factor: 'the mask', question: 'Does GMT (k = 0.3, tensor scope, |Γ|) beat SFT?', a: gmtCell(), b: { method: 'sft', label: 'SFT' } },
  { id: 'gmt-vs-random', factor: 'the selection', question: 'Does GMT beat random masking at the same ratio (k = 0.3)?', a: gmtCell(), b: { method: 'random-mask', ratio: 0.3, label: 'random mask k=0.3' } },
  { id: 'ratio-0.1', factor: 'mask ratio', question: 'Does k = 0.1 differ from k = 0.3 (tensor scope, |Γ|)?', a: gmtCell({ ratio: 0.1 }), b: gmtCell() },
  { id: 'ratio-0.5', factor: 'mask ratio', question: 'Does k = 0.5 differ from k = 0.3 (tensor scope, |Γ|)?', a: gmtCell({ ratio: 0.5 }), b: gmtCell() },
  { id: 'scope', factor: 'scope', question: 'Does one quantile over the whole model (global scope) differ from one per tensor, at k = 0.3?', a: gmtCell({ scope: 'global' }), b: gmtCell() },
  { id: 'signal-grad-weight', factor: 'selection signal', question: 'Does |Γ ⊙ θ| (the pruning saliency) beat |Γ| at k = 0.3 (tensor scope)?', a: gmtCell({ signal: 'grad-weight' }), b: gmtCell() },
  { id: 'signal-grad-squared', factor: 'selection signal', question: 'Does Γ² differ from |Γ| at k = 0.3? (It orders entries alike except where squaring rounds distinct values together or underflows to 0.)', a: gmtCell({ signal: 'grad-squared' }), b: gmtCell() },
  { id: 'mask-update', factor: 'maskUpdate', question: 'Does zeroing the optimizer\'s whole step where Γ was masked (maskUpdate) change accuracy at k = 0.3 (tensor scope)?', a: gmtCell({ maskUpdate: true }), b: gmtCell() },
]);

/** The answer to one question. */
export interface AblationAnswer {
  question: AblationQuestion;
  diff: PairedComparison;
  answer: 'A higher' | 'A lower' | 'no difference found' | 'no data';
  /**
   * How many of the pairs had both runs computed alike (the same `gradientPath`: engine, kernel
   * build, threads). A pair made on two builds also differs by float rounding grown over the run,
   * so a difference the two cells' rules cannot make (Γ² against |Γ|) shows only on such pairs.
   */
  sameBuildPairs: number;
}

function matches(r: ResultRow, c: AblationCell): boolean {
  if (r.method !== c.method) return false;
  if (c.ratio !== undefined && (r.ratio === null || Math.abs(r.ratio - c.ratio) > 1e-9)) return false;
  if (c.method === 'gmt') {
    if ((r.scope ?? 'tensor') !== c.scope) return false;
    if ((r.signal ?? 'grad') !== c.signal) return false;
    if ((r.maskUpdate ?? false) !== c.maskUpdate) return false;
  }
  return true;
}

/** Answers every question from `rows` (one task), pairing runs by seed. */
export function answerAblations(rows: readonly ResultRow[], questions: readonly AblationQuestion[] = ABLATION_QUESTIONS): AblationAnswer[] {
  return questions.map((q) => {
    const byseed = (c: AblationCell) => new Map(rows.filter((r) => r.accuracy !== null && matches(r, c)).map((r) => [r.seed, r] as const));
    const a = byseed(q.a);
    const b = byseed(q.b);
    const seeds = [...a.keys()].filter((s) => b.has(s)).sort((x, y) => x - y);
    const diff = pairedTest(seeds.map((s) => a.get(s)!.accuracy!), seeds.map((s) => b.get(s)!.accuracy!));
    const answer = !(diff.n >= 2) || !Number.isFinite(diff.lo) ? 'no data' : diff.lo > 0 ? 'A higher' : diff.hi < 0 ? 'A lower' : 'no difference found';
    const sameBuildPairs = seeds.filter((s) => a.get(s)!.gradientPath === b.get(s)!.gradientPath).length;
    return { question: q, diff, answer, sameBuildPairs };
  });
}

/** The answers as plain rows for a table (points, 95% CI). */
export function ablationTableRows(answers: readonly AblationAnswer[]): Record<string, string | number>[] {
  return answers.map(({ question: q, diff, answer, sameBuildPairs }) => ({
    factor: q.factor,
    question: q.question,
    A: q.a.label,
    B: q.b.label,
    seeds: diff.n,
    'A − B': Number.isFinite(diff.mean) ? Number(diff.mean.toFixed(2)) : NaN,
    '95% CI': Number.isFinite(diff.lo) ? `[${diff.lo.toFixed(2)}, ${diff.hi.toFixed(2)}]` : '—',
    answer,
    'pairs on one build': diff.n > 0 ? `${sameBuildPairs} of ${diff.n}` : '—',
  }));
}

/** The answers as an arquero table (what notebook 06 shows and saves). */
export function ablationTable(answers: readonly AblationAnswer[]): Table {
  return aq.from(ablationTableRows(answers));
}
