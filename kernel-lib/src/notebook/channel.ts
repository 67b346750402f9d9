/**
 * How kernel-lib writes rich output into a tslab notebook.
 *
 * What tslab 1.0.22 offers (read from node_modules/tslab/dist/public.js and jupyter.js):
 * - Public API: `display.html/png/svg/markdown/text/raw(mime, data)` and `newDisplay()`.
 *   Each call sends one `display_data` message with exactly ONE MIME type; `newDisplay()`
 *   gives a display object with a `display_id`, whose second and later calls send
 *   `update_display_data` (update in place).
 * - Internally every such call goes through `jupyter.lastWriteDisplayData(content, update)`,
 *   which tslab sets at the start of each cell; it signs and sends whatever `content`
 *   (`{data, metadata, transient: {display_id}}`) it is given, so several MIME types in one
 *   output, per-MIME metadata and display ids all work through it.
 *
 * Choice: write through `lastWriteDisplayData` (one output, several MIME types, with
 * display_id updates) — the only way to let each frontend pick plotly / HTML / PNG from a
 * single output. The function is found in `require.cache` (the kernel's own copy of tslab,
 * whichever path it was loaded from). If a future tslab drops it, we fall back to the public
 * API with one MIME type per call, and outside a kernel to plain text on stdout.
 */
import { MimeBundle } from '../plots/bundle';

/** The `content` tslab's writer takes. */
interface DisplayMessage {
  data: MimeBundle;
  metadata: Record<string, unknown>;
  transient: { display_id?: string };
}
type WriteDisplayData = (content: DisplayMessage, update: boolean) => void;

interface TslabJupyterModule {
  lastWriteDisplayData?: WriteDisplayData | null;
}
interface TslabPublic {
  display: { raw(mime: string, data: string | Uint8Array): void };
  newDisplay(): { raw(mime: string, data: string | Uint8Array): void };
}

/** The kernel's current display writer, if this process is a tslab kernel running a cell. */
function findWriter(): WriteDisplayData | undefined {
  for (const [file, mod] of Object.entries(require.cache)) {
    if (!/[\\/]tslab[\\/]dist[\\/]jupyter\.js$/.test(file) || !mod) continue;
    const writer = (mod.exports as TslabJupyterModule).lastWriteDisplayData;
    if (typeof writer === 'function') return writer;
  }
  return undefined;
}

/** The public tslab module of the running kernel, if loaded. */
function findTslabPublic(): TslabPublic | undefined {
  for (const [file, mod] of Object.entries(require.cache)) {
    if (/[\\/]tslab[\\/]dist[\\/]public\.js$/.test(file) && mod && findWriter() !== undefined) return mod.exports as TslabPublic;
  }
  return undefined;
}

/** True inside a tslab kernel cell (rich output possible). */
export function inNotebook(): boolean {
  return findWriter() !== undefined;
}

/** How rich output reached the notebook: one multi-MIME output, public API, or plain text. */
export type DisplayRoute = 'bundle' | 'tslab-public' | 'stdout';

let displayCounter = 0;

/** A fresh display id for outputs updated in place (counter + pid: unique within a page). */
export function newDisplayId(): string {
  displayCounter += 1;
  return `gmt-${process.pid}-${displayCounter}`;
}

/**
 * Sends one output holding every MIME type of `data`. With `displayId`, `update: true`
 * replaces the output first sent with that id (Jupyter `update_display_data`).
 * Outside a kernel, prints `text/plain` to stdout.
 */
export function displayBundle(
  data: MimeBundle,
  opts: { metadata?: Record<string, unknown>; displayId?: string; update?: boolean } = {},
): DisplayRoute {
  const writer = findWriter();
  if (writer) {
    writer({ data, metadata: opts.metadata ?? {}, transient: opts.displayId ? { display_id: opts.displayId } : {} }, opts.update === true);
    return 'bundle';
  }
  const tslab = findTslabPublic();
  if (tslab) {
    // One MIME type per output here: HTML carries the PNG placeholder, so it alone suffices.
    const mime = typeof data['text/html'] === 'string' ? 'text/html' : 'text/plain';
    tslab.display.raw(mime, String(data[mime] ?? ''));
    return 'tslab-public';
  }
  const text = data['text/plain'];
  if (typeof text === 'string') process.stdout.write(`${text}\n`);
  return 'stdout';
}
