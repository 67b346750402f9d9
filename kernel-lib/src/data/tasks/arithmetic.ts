/**
 * The arithmetic the `math` task uses, as one definition shared by the math generator (its
 * worked steps) and the `general` mixture (its `a+b=c` facts), so that pre-training covers
 * exactly the operand range fine-tuning needs (design §6: a base pre-trained on a wider range
 * scored 7.5% after SFT; the base must master the exact range first).
 */
import { ConfigError } from '../../util/config';

/** An arithmetic operation of a worked step. Multiplication is written `*`, division `/`. */
export type ArithOp = '+' | '-' | '*' | '/';

/** All operations, in a fixed order. */
export const ARITH_OPS: readonly ArithOp[] = Object.freeze(['+', '-', '*', '/'] as ArithOp[]);

/** One step `left op right = result`. */
export interface ArithFact {
  left: number;
  op: ArithOp;
  right: number;
  result: number;
}

/**
 * Every right operand `b` that the math task may apply to a running value `v` with `op`,
 * keeping every number of a problem an integer in [1, maxValue]:
 * `+` b ≥ 1 with v+b ≤ max; `-` b ≥ 1 with v−b ≥ 1; `*` b ≥ 2 with v·b ≤ max;
 * `/` 2 ≤ b < v dividing v exactly (so the quotient is ≥ 2: `7/7=1` teaches nothing).
 */
export function stepOperands(v: number, op: ArithOp, maxValue: number): number[] {
  const out: number[] = [];
  if (op === '+') for (let b = 1; v + b <= maxValue; b++) out.push(b);
  else if (op === '-') for (let b = 1; v - b >= 1; b++) out.push(b);
  else if (op === '*') for (let b = 2; v * b <= maxValue; b++) out.push(b);
  else for (let b = 2; b < v; b++) if (v % b === 0) out.push(b);
  return out;
}

/** Applies one step. */
export function applyOp(left: number, op: ArithOp, right: number): number {
  switch (op) {
    case '+':
      return left + right;
    case '-':
      return left - right;
    case '*':
      return left * right;
    case '/':
      return left / right;
  }
}

/** The text of a fact as it appears in worked steps and in pre-training: `17+8=25`. */
export function formatFact(f: ArithFact): string {
  return `${f.left}${f.op}${f.right}=${f.result}`;
}

/** Validates an `operations` option. */
export function checkOperations(name: string, ops: unknown): ArithOp[] {
  if (!Array.isArray(ops) || ops.length === 0) {
    throw new ConfigError(`${name} must be a non-empty array of '+', '-', '*', '/', got ${JSON.stringify(ops)}`);
  }
  for (const op of ops) {
    if (!ARITH_OPS.includes(op)) throw new ConfigError(`${name}: unknown operation ${JSON.stringify(op)} (use '+', '-', '*', '/')`);
  }
  return [...new Set(ops as ArithOp[])];
}

/**
 * Every fact a math problem with these knobs can contain, in a fixed order
 * (by operation, then left operand, then right operand).
 */
export function arithmeticFacts(maxValue: number, operations: readonly ArithOp[]): ArithFact[] {
  const facts: ArithFact[] = [];
  for (const op of ARITH_OPS) {
    if (!operations.includes(op)) continue;
    for (let v = 1; v <= maxValue; v++) {
      for (const b of stepOperands(v, op, maxValue)) facts.push({ left: v, op, right: b, result: applyOp(v, op, b) });
    }
  }
  return facts;
}
