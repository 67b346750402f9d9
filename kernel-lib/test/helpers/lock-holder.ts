/**
 * A process that takes a store's lock (for the lock tests): says it is ready
 * (`<go>.ready-<pid>`), waits until `<go>` exists, tries
 * `lockStore(store)`, prints `got` (then holds it for `holdMs` and releases) or `busy: <message>`.
 * Usage: node --import tsx lock-holder.ts STORE GO_FILE HOLD_MS
 */
import * as fs from 'node:fs';
import { lockStore, StoreBusyError } from '../../src/sweep/lock';

const [store, go, holdMs] = process.argv.slice(2) as [string, string, string];
fs.writeFileSync(`${go}.ready-${process.pid}`, '');
while (!fs.existsSync(go)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
try {
  const lock = lockStore(store);
  process.stdout.write('got\n');
  setTimeout(() => lock.release(), Number(holdMs));
} catch (e) {
  if (!(e instanceof StoreBusyError)) throw e;
  process.stdout.write(`busy: ${e.message}\n`);
}
