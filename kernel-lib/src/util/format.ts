/** Formatting shared by the command line and the scripts. */

/** A duration for people: `45s`, `12m05s`, `1h02m`; `?` when unknown (NaN, infinite). */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/**
 * A duration people write, in ms: `90m`, `1h30m`, `45s`, `2h`, or a bare number of seconds.
 * Throws on anything else (and on zero), naming what it got.
 */
export function parseDuration(text: string, what = 'duration'): number {
  const t = text.trim();
  const parts = /^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$/.exec(t);
  let ms = NaN;
  if (/^\d+(?:\.\d+)?$/.test(t)) ms = Number(t) * 1000;
  else if (parts && t !== '') ms = (Number(parts[1] ?? 0) * 3600 + Number(parts[2] ?? 0) * 60 + Number(parts[3] ?? 0)) * 1000;
  if (!(ms > 0)) throw new Error(`${what} must be a duration such as 90m, 1h30m, 45s or a number of seconds, got ${JSON.stringify(text)}`);
  return ms;
}
