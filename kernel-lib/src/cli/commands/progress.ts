/** Throttled one-line progress on stderr, shared by the long-running commands. */
import type { UpdateRecord } from '../../train/trainer';

/** Returns an `onUpdate` hook printing `label step/total loss … ms/update` about once a second. */
export function stderrProgress(label: string, total: number, write: (text: string) => void, everyMs = 1000): (u: UpdateRecord) => void {
  let last = 0;
  return (u) => {
    const now = Date.now();
    if (u.step !== total && u.step !== 1 && now - last < everyMs) return;
    last = now;
    const kept = u.keptFraction < 1 ? ` kept ${(u.keptFraction * 100).toFixed(1)}%` : '';
    write(`${label} ${u.step}/${total} loss ${u.loss.toFixed(4)} lr ${u.lr.toExponential(2)}${kept} ${u.ms.toFixed(0)} ms/update\n`);
  };
}
