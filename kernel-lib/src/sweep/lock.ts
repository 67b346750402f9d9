/**
 * One writer per result store. A sweep that makes runs (locally, or as the coordinator of a
 * queue) holds `<store>.lock` while it plans and appends; a second sweep started on the same
 * store is refused with a {@link StoreBusyError} naming the first (process, machine, command,
 * since when), before it reads the store. Without it, two sweeps would plan the same missing
 * runs and make them twice.
 *
 * The lock cannot be left stuck by a crash, even a `kill -9`:
 * - it is a file created with `O_EXCL` (`open(…, 'wx')`) holding the holder's pid, the start
 *   time of that process (Linux: `/proc/<pid>/stat`), the boot id, the host name and the command;
 * - on the holder's machine a lock whose process is gone — no such pid, or a pid reused by a
 *   process that started at another time, or a machine rebooted since — is stale and taken over
 *   at once;
 * - a holder refreshes the file's modification time every {@link LOCK_HEARTBEAT_MS}, so a lock
 *   held from another machine (a store on a shared file system) is stale once it has not been
 *   refreshed for {@link LOCK_STALE_MS}.
 * Taking over a stale lock happens under a second `O_EXCL` file (`<store>.lock.steal`), so two
 * sweeps that find the same stale lock do not both take it.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** How often a holder refreshes its lock's modification time. */
export const LOCK_HEARTBEAT_MS = 10_000;
/** A lock from another machine not refreshed for this long is stale. */
export const LOCK_STALE_MS = 60_000;
/** A lock file still empty this long after its creation (its writer died in between) is stale. */
const EMPTY_GRACE_MS = 2_000;
/** A steal file older than this (its writer died mid-steal) is removed. */
const STEAL_STALE_MS = 10_000;

/** What a lock file says about its holder. */
export interface StoreLockHolder {
  pid: number;
  host: string;
  /** Start time of the holder's process (clock ticks since boot, Linux), null where unknown. */
  procStart: string | null;
  /** Boot id of the holder's machine (Linux), null where unknown. */
  boot: string | null;
  /** When the lock was taken (ISO time). */
  since: string;
  /** The holder's command line. */
  command: string;
}

/** The store is being written by another sweep (named in the message and in `holder`). */
export class StoreBusyError extends Error {
  constructor(
    message: string,
    /** The lock file. */
    readonly lockFile: string,
    /** Who holds it. */
    readonly holder: StoreLockHolder,
  ) {
    super(message);
    this.name = 'StoreBusyError';
  }
}

/** A held store lock; `release()` gives it up (idempotent). */
export interface StoreLock {
  file: string;
  holder: StoreLockHolder;
  release(): void;
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

/** Start time of process `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat); null off Linux or when gone. */
function processStart(pid: number | 'self'): string | null {
  const stat = readText(`/proc/${pid}/stat`);
  if (stat === null) return null;
  // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] ?? null;
}

const bootId = (): string | null => readText('/proc/sys/kernel/random/boot_id');

/** This process as a lock holder. */
function me(): StoreLockHolder {
  return {
    pid: process.pid,
    host: os.hostname(),
    procStart: processStart('self'),
    boot: bootId(),
    since: new Date().toISOString(),
    command: process.argv.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ').slice(0, 500),
  };
}

function parseHolder(text: string): StoreLockHolder | null {
  try {
    const h = JSON.parse(text) as StoreLockHolder;
    return typeof h.pid === 'number' && typeof h.host === 'string' ? h : null;
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, under another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why a holder is no longer holding the lock, or null while it is. */
function staleReason(h: StoreLockHolder, ageMs: number): string | null {
  if (h.host === os.hostname()) {
    const boot = bootId();
    if (h.boot && boot && h.boot !== boot) return 'its machine has rebooted since';
    if (!pidAlive(h.pid)) return `process ${h.pid} is gone`;
    const start = processStart(h.pid);
    if (h.procStart && start && start !== h.procStart) return `process ${h.pid} is gone (its pid now belongs to another process)`;
    return null;
  }
  return ageMs > LOCK_STALE_MS ? `not refreshed for ${Math.round(ageMs / 1000)} s` : null;
}

const sleepSync = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

function unlinkIfPresent(file: string): void {
  try {
    unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

function ageOf(file: string): number | null {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return null;
  }
}

function describe(h: StoreLockHolder, ageMs: number): string {
  const where = h.host === os.hostname() ? (h.pid === process.pid ? `this process (pid ${h.pid})` : `pid ${h.pid} on this machine`) : `pid ${h.pid} on ${h.host} (lock refreshed ${Math.round(ageMs / 1000)} s ago)`;
  return `${where}, since ${h.since}: ${h.command}`;
}

/**
 * Takes the lock of the store `storeFile` (`<storeFile>.lock`), or throws a
 * {@link StoreBusyError} naming the sweep that holds it. Release it when the sweep ends.
 */
export function lockStore(storeFile: string): StoreLock {
  const file = `${storeFile}.lock`;
  // A new store's folder may not exist yet (the store makes it on its first append).
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const holder = me();
  const body = `${JSON.stringify(holder)}\n`;
  for (let attempt = 0; attempt < 50; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const text = readText(file);
      const age = ageOf(file);
      if (text === null || age === null) continue; // gone meanwhile: try again
      const other = parseHolder(text);
      if (!other) {
        // Created, not yet written (or its writer died in between).
        if (age < EMPTY_GRACE_MS) {
          sleepSync(50);
          continue;
        }
        takeOver(file, text);
        continue;
      }
      if (staleReason(other, age) === null) {
        throw new StoreBusyError(
          `the store ${storeFile} is in use by another sweep: ${describe(other, age)}. ` +
            'Two sweeps on one store are not supported (they would make the same runs twice): wait for it to end, ' +
            `stop it${other.host === os.hostname() ? ` (kill -INT ${other.pid})` : ''}, or give this sweep another store`,
          file, other,
        );
      }
      takeOver(file, text);
      continue;
    }
    try {
      writeSync(fd, body);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return held(file, holder, body);
  }
  throw new Error(`could not take the lock ${file}: it keeps changing hands`);
}

/** Removes the stale lock whose contents were `seen`, unless it changed hands meanwhile. */
function takeOver(file: string, seen: string): void {
  const steal = `${file}.steal`;
  let fd: number;
  try {
    fd = openSync(steal, 'wx', 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const age = ageOf(steal);
    if (age !== null && age > STEAL_STALE_MS) unlinkIfPresent(steal);
    else sleepSync(50);
    return;
  }
  try {
    closeSync(fd);
    // Under the steal file, the lock can only change by its holder releasing it or by a new
    // sweep creating it after a release: remove it only if it is still the stale one.
    if (readText(file) === seen) unlinkIfPresent(file);
  } finally {
    unlinkIfPresent(steal);
  }
}

function held(file: string, holder: StoreLockHolder, body: string): StoreLock {
  const mine = (): boolean => readText(file) === body.trim();
  const heartbeat = setInterval(() => {
    try {
      if (mine()) utimesSync(file, new Date(), new Date());
    } catch {
      /* the next beat tries again */
    }
  }, LOCK_HEARTBEAT_MS);
  heartbeat.unref();
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    clearInterval(heartbeat);
    process.removeListener('exit', release);
    if (mine()) unlinkIfPresent(file);
  };
  // A process that ends without releasing (process.exit in a handler) leaves no lock behind.
  process.on('exit', release);
  return { file, holder, release };
}
