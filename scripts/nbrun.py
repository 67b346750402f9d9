"""Execute Jupyter notebooks headless with nbclient and judge them the way a reader would.

Started by scripts/notebooks.mjs with a Python that has nbclient (see scripts/lib/env.mjs);
JUPYTER_PATH and GMT_MODE come from the environment it sets.

A notebook fails when
  * a cell's execute_reply has status "error" (tslab reports a thrown error or a TypeScript
    diagnostic as a stderr stream plus that status, with no `error` output),
  * a cell runs longer than --timeout seconds,
  * the kernel dies,
  * any stream output contains "UnhandledPromiseRejection:" or "UncaughtException:" -- tslab
    prints these for a rejected promise nobody awaited or a throw inside a callback, and the cell
    still reports "ok".

tslab forwards output written after a cell finished (a promise rejected a moment later) to that
cell's request, after the cell's idle status; nbclient drops such late messages. This runner taps
the IOPub channel so late output is attributed to the cell that started it, kept in the executed
copy, and checked for the markers; after the last cell it listens for a short while for the same
reason.

The executed copy is written even when the notebook fails, so the failure can be looked at.
It carries no execution timestamps (nbclient's per-cell `execution` metadata is neither recorded
nor kept from the source), so executing an unchanged notebook on unchanged inputs writes the same
bytes: a reproduce that changes nothing leaves the committed notebooks as they are.
"""

import argparse
import asyncio
import json
import math
import os
import queue
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async

MARKERS = ("UnhandledPromiseRejection:", "UncaughtException:")
KERNEL_NAME = "tslab"


class Failure(Exception):
    """A notebook failure pinned to a cell (cell is None when no cell is to blame)."""

    def __init__(self, cell, reason, detail=""):
        super().__init__(reason)
        self.cell = cell
        self.reason = reason
        self.detail = detail


class TappedClient(NotebookClient):
    """NotebookClient that keeps every IOPub stream message, including late ones."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.current_index = None
        self.msg_cell = {}  # execute request msg_id -> cell index
        self.finished = set()  # msg_ids whose cell has completed
        self.late = []  # (cell index, stream name, text) received after their cell completed

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        execute = kc.execute

        async def tapped_execute(*args, **kwargs):
            msg_id = await ensure_async(execute(*args, **kwargs))
            self.msg_cell[msg_id] = self.current_index
            return msg_id

        kc.execute = tapped_execute
        channel = kc.iopub_channel
        get_msg = channel.get_msg

        async def tapped_get_msg(*args, **kwargs):
            msg = await get_msg(*args, **kwargs)
            self._observe(msg)
            return msg

        channel.get_msg = tapped_get_msg
        return kc

    def _observe(self, msg):
        if msg.get("msg_type") != "stream":
            return
        parent = msg.get("parent_header", {}).get("msg_id")
        if parent in self.finished:
            content = msg["content"]
            self.late.append((self.msg_cell[parent], content.get("name", "stdout"), content.get("text", "")))

    async def drain(self, seconds):
        """Read IOPub until it has been quiet for `seconds` (catches output of late callbacks)."""
        while True:
            try:
                await self.kc.iopub_channel.get_msg(timeout=seconds)
            except queue.Empty:
                return

    async def run(self, drain_seconds, **kernel_kwargs):
        """Like NotebookClient.async_execute, with cell attribution and a final drain."""
        self.reset_execution_trackers()
        async with self.async_setup_kernel(**kernel_kwargs):
            msg_id = await ensure_async(self.kc.kernel_info())
            info = await self.async_wait_for_reply(msg_id)
            if info is not None and "language_info" in info["content"]:
                self.nb.metadata["language_info"] = info["content"]["language_info"]
            for index, cell in enumerate(self.nb.cells):
                self.current_index = index
                try:
                    await self.async_execute_cell(cell, index, execution_count=self.code_cells_executed + 1)
                finally:
                    self.finished.update(m for m, i in self.msg_cell.items() if i == index)
            await self.drain(drain_seconds)
        return self.nb


def stream_text(cell, name=None):
    return "".join(
        o.get("text", "")
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and (name is None or o.get("name") == name)
    )


def error_text(cell):
    """stderr of a cell, or its `error` outputs when the kernel reports errors that way."""
    text = stream_text(cell, "stderr")
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            text += "\n".join(o.get("traceback") or [f"{o.get('ename')}: {o.get('evalue')}"]) + "\n"
    return text


def attach_late_output(nb, late):
    for index, name, text in late:
        nb.cells[index].setdefault("outputs", []).append(nbformat.v4.new_output("stream", name=name, text=text))


def find_marker(nb):
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        text = stream_text(cell)
        for marker in MARKERS:
            if marker in text:
                stderr = stream_text(cell, "stderr")
                return Failure(
                    index,
                    f"{marker.rstrip(':')} (a promise rejected without being awaited, or a throw inside a "
                    "callback; it may have been started by an earlier cell)",
                    stderr if marker in stderr else text,
                )
    return None


def strip_timestamps(nb):
    """Drops the per-cell `execution` timestamps an earlier nbclient run left in the metadata."""
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)


def read_tail(path, limit=4000):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return text[-limit:]


def run_one(path, out_path, timeout, drain_seconds):
    """Execute one notebook; returns (executed notebook, Failure or None, kernel output)."""
    nb = nbformat.read(path, as_version=4)
    client = TappedClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=math.ceil(timeout) if timeout > 0 else None,
        allow_errors=False,
        record_timing=False,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
    )
    failure = None
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as kernel_log:
        try:
            asyncio.run(client.run(drain_seconds, stderr=kernel_log, stdout=kernel_log))
        except CellTimeoutError:
            failure = Failure(client.current_index, f"timed out after {timeout:g} s (--timeout)")
        except DeadKernelError as e:
            failure = Failure(client.current_index, f"the kernel died ({e})")
        except CellExecutionError:
            failure = Failure(client.current_index, "the cell failed")
        except Exception as e:  # kernel failed to start, bad notebook JSON, ...
            failure = Failure(client.current_index, f"{type(e).__name__}: {e}")
        kernel_log.seek(0)
        kernel_text = kernel_log.read()
    attach_late_output(nb, client.late)
    strip_timestamps(nb)
    if failure is not None and failure.cell is not None:
        failure.detail = error_text(nb.cells[failure.cell])
    if failure is None:
        failure = find_marker(nb)
    if failure is None:
        for marker in MARKERS:
            if marker in kernel_text:
                failure = Failure(None, f"{marker.rstrip(':')} printed outside any cell", kernel_text)
                break
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    nbformat.write(nb, out_path)
    return nb, failure, kernel_text


def display_path(path, root):
    """Path relative to root when inside it, else absolute."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, root)
    return path if rel.startswith("..") else rel


def indent(text, prefix="    "):
    return "".join(prefix + line + "\n" for line in text.rstrip("\n").splitlines())


def report_failure(path, nb, failure, kernel_text, out):
    where = f"cell {failure.cell}" if failure.cell is not None else "no cell"
    lines = [f"FAIL {path} {where}: {failure.reason}"]
    if failure.cell is not None:
        lines.append("  source:")
        lines.append(indent(nb.cells[failure.cell].source).rstrip("\n"))
    if failure.detail.strip():
        lines.append("  stderr:" if failure.cell is not None else "  kernel output:")
        lines.append(indent(failure.detail).rstrip("\n"))
    elif kernel_text.strip():
        lines.append("  kernel output:")
        lines.append(indent(kernel_text[-4000:]).rstrip("\n"))
    lines.append(f"  executed copy: {out}")
    print("\n".join(lines), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for executed copies")
    ap.add_argument("--inplace", action="store_true", help="write executed notebooks over the sources")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per cell; 0 for none")
    ap.add_argument("--drain", type=float, default=0.5, help="seconds to listen for late output after the last cell")
    ap.add_argument("--summary", help="write a JSON summary here")
    ap.add_argument("--label-root", default=os.getcwd(), help="paths in messages are relative to this")
    ap.add_argument("notebooks", nargs="+")
    args = ap.parse_args(argv)

    results = []
    for path in args.notebooks:
        label = display_path(path, args.label_root)
        out = os.path.abspath(path) if args.inplace else os.path.join(args.out, os.path.basename(path))
        out_label = display_path(out, args.label_root)
        t0 = time.monotonic()
        nb, failure, kernel_text = run_one(path, out, args.timeout, args.drain)
        seconds = time.monotonic() - t0
        if failure is None:
            print(f"ok   {label} ({seconds:.1f} s)", flush=True)
        else:
            print(f"FAIL {label} ({seconds:.1f} s)", flush=True)
            report_failure(label, nb, failure, kernel_text, out_label)
        results.append(
            {
                "notebook": label,
                "executed": out_label,
                "ok": failure is None,
                "seconds": round(seconds, 2),
                "cell": None if failure is None else failure.cell,
                "reason": None if failure is None else failure.reason,
            }
        )
    if args.summary:
        with open(args.summary, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
