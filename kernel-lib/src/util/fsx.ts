/**
 * Atomic file writes, so that a crash never leaves a half-written result: the bytes go to a
 * temporary file in the same folder, are fsynced, and the temporary file is renamed over the
 * target (atomic on one filesystem), then the folder is fsynced so the rename itself survives a
 * power loss. A crash at any point leaves either the previous file or the new one, never a mix;
 * at worst a stray `.<name>.<pid>.<n>.tmp` beside it, which the next write to that file removes.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import * as path from 'node:path';

let counter = 0;

/** Writes `data` (one buffer or several chunks written in order) to `file` atomically. */
export function writeFileAtomic(file: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  const target = path.resolve(file);
  const dir = path.dirname(target);
  const base = path.basename(target);
  mkdirSync(dir, { recursive: true });
  removeStaleTemps(dir, base);
  const tmp = path.join(dir, `.${base}.${process.pid}.${counter++}.tmp`);
  const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  let fd = openSync(tmp, 'w');
  try {
    for (const c of chunks) {
      let off = 0;
      while (off < c.byteLength) off += writeSync(fd, c, off, c.byteLength - off);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, target);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  syncDir(dir);
}

/** JSON with a trailing newline, written atomically. */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** Temporary files of earlier writes to `base` whose process is gone (a crash mid-write). */
function removeStaleTemps(dir: string, base: string): void {
  const prefix = `.${base}.`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const pid = Number(name.slice(prefix.length).split('.')[0]);
    if (Number.isInteger(pid) && pid !== process.pid && !processAlive(pid)) rmSync(path.join(dir, name), { force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** fsync of a folder (makes a rename durable); a no-op where the platform refuses it. */
function syncDir(dir: string): void {
  let fd = -1;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems (and Windows) cannot fsync a directory; the rename is still atomic.
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}
