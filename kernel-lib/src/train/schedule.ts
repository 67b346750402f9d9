/**
 * Learning-rate schedule: linear warmup, then cosine decay to `minLrRatio · lr`
 * (Loshchilov & Hutter, SGDR, 2017, eq. 5, one cycle; as in nanoGPT).
 *
 * For the 0-based update index t of `steps` updates:
 *   t < warmup:  lr · (t + 1) / warmup            (the last warmup update uses the full lr)
 *   otherwise:   lrMin + (lr − lrMin) · ½ (1 + cos(π · (t − warmup) / (steps − warmup)))
 * so the first post-warmup update uses lr and t = steps (one past the end) gives exactly lrMin.
 */
import { ConfigError, checkNumber } from '../util/config';

/** Schedule parameters. */
export interface LrSchedule {
  /** Peak learning rate. */
  lr: number;
  /** Warmup updates (0 = none). */
  warmup: number;
  /** Total updates. */
  steps: number;
  /** Final lr as a fraction of the peak, in [0, 1]. */
  minLrRatio: number;
}

/** Validates a schedule once (the trainer does this at its edge). */
export function checkSchedule(s: LrSchedule): LrSchedule {
  checkNumber('lr', s.lr, { min: 0 });
  checkNumber('warmup', s.warmup, { min: 0, integer: true });
  checkNumber('steps', s.steps, { min: 1, integer: true });
  checkNumber('minLrRatio', s.minLrRatio, { min: 0, max: 1 });
  if (s.warmup > s.steps) throw new ConfigError(`warmup (${s.warmup}) must not exceed steps (${s.steps})`);
  return s;
}

/** The learning rate of update t (0-based); defined for 0 ≤ t ≤ steps. */
export function learningRateAt(s: LrSchedule, t: number): number {
  if (t < s.warmup) return (s.lr * (t + 1)) / s.warmup;
  const lrMin = s.lr * s.minLrRatio;
  const span = s.steps - s.warmup;
  if (span <= 0) return lrMin;
  const progress = Math.min(1, (t - s.warmup) / span);
  return lrMin + (s.lr - lrMin) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
