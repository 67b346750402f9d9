/** Small file helpers: atomic writes, so that a crash never leaves a half-written result. */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

/** Writes `data` to `file` through a temporary file and a rename (atomic on one filesystem). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

/** JSON with a trailing newline, written atomically. */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}
