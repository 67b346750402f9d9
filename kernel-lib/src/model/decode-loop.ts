/**
 * The decoding loop both generation paths share (`generate.ts` on tfjs ops, `generate-fused.ts`
 * on the native kernels): each step picks every active row's next token from the current logits,
 * then asks for the next logits of the rows still going — through the key/value cache for rows
 * whose sequence still fits the context, recomputed over the last `contextLength` tokens for
 * rows past it (nanoGPT's crop).
 */
import type { Rng } from '../util/rng';

/** Chooses the next token of one row from its logits: greedy at temperature 0, else sampled. */
export function pick(logits: Float32Array, offset: number, V: number, temperature: number, rng: Rng): number {
  let best = 0;
  let max = -Infinity;
  for (let v = 0; v < V; v++) {
    const l = logits[offset + v] as number;
    if (l > max) { max = l; best = v; }
  }
  if (temperature === 0) return best;
  let total = 0;
  const p = new Float64Array(V);
  for (let v = 0; v < V; v++) { p[v] = Math.exp(((logits[offset + v] as number) - max) / temperature); total += p[v] as number; }
  let u = rng.next() * total;
  for (let v = 0; v < V; v++) {
    u -= p[v] as number;
    if (u < 0) return v;
  }
  return best;
}

/** What one step of the loop computes for a set of rows (indices into the prompts). */
export interface DecodeSteps {
  /** Next-token logits [rows, V] of rows whose sequence fits the context, one new token each (cached). */
  cached(rows: number[], seqs: readonly number[][]): Float32Array;
  /** Next-token logits [rows, V] of rows past the context, over their last `contextLength` tokens. */
  full(rows: number[], seqs: readonly number[][]): Float32Array;
}

/**
 * Runs the loop from the prefill's `logits` ([prompts, V], in prompt order) until every row has
 * `maxNew` tokens or emitted `stop`; returns the new tokens per prompt.
 */
export function decodeLoop(
  prompts: readonly number[][], logits: Float32Array, opts: { V: number; L: number; maxNew: number; temperature: number; rngs: Rng[]; stop?: number },
  steps: DecodeSteps,
): number[][] {
  const { V, L, maxNew, temperature, rngs, stop } = opts;
  const out = prompts.map(() => [] as number[]);
  const seqs = prompts.map((p) => [...p]);
  let rows = prompts.map((_, i) => i); // rows whose `logits` entry is current, in logits order
  for (;;) {
    const next: number[] = [];
    rows.forEach((i, r) => {
      const tok = pick(logits, r * V, V, temperature, rngs[i] as Rng);
      if (tok === stop) return;
      (out[i] as number[]).push(tok);
      (seqs[i] as number[]).push(tok);
      if ((out[i] as number[]).length < maxNew) next.push(i);
    });
    if (next.length === 0) break;
    const cached = next.filter((i) => (seqs[i] as number[]).length <= L);
    const full = next.filter((i) => (seqs[i] as number[]).length > L);
    const parts: Float32Array[] = [];
    if (cached.length > 0) parts.push(steps.cached(cached, seqs));
    if (full.length > 0) parts.push(steps.full(full, seqs));
    logits = new Float32Array(next.length * V);
    let off = 0;
    for (const part of parts) { logits.set(part, off); off += part.length; }
    rows = [...cached, ...full];
  }
  return out;
}
