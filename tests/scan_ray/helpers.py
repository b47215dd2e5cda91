"""Judges built inside the Ray actors of the scan tests, and the synthetic input files.

The judge factories are imported by the actors (pickled by reference), so they live in a
module the workers can import (the tests put the repository root on the workers' path).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from proguard_rails import ProGuard, ScriptedBackend
from proguard_rails.backends.scripted import unsafe_answer
from proguard_rails.protocol import format_answer
from tests.eval.helpers import write_csv, write_jsonl

#: environment variable naming the marker file of the crash-once judge (set for the workers)
CRASH_MARKER_ENV = "PGR_TEST_CRASH_MARKER"

RULES = {
    "BOMB": unsafe_answer("C8S1"),
    "SCAM": unsafe_answer("C3S1"),
    "NEWRISK": format_answer("text", "unsafe", "safe", "Deepfake voice cloning"),
    "poison it": format_answer("text", "safe", "unsafe", "C8S3"),
}
WORDS = ["BOMB", "hello", "SCAM", "weather", "NEWRISK", "garden"]


def scripted_guard() -> ProGuard:
    """An in-process scripted judge (deterministic, no model)."""
    return ProGuard(backend=ScriptedBackend(RULES), cache_size=0)


class _CrashOnceBackend(ScriptedBackend):
    """Scripted answers; the first actor to reach its 3rd batch SIGKILLs its own process (once per
    marker file), as a worker dying mid-run would."""

    async def agenerate_batch(self, prompts):  # type: ignore[no-untyped-def]
        if self.batch_calls == 2:
            marker = os.environ.get(CRASH_MARKER_ENV)
            if marker:
                try:
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    pass
                else:
                    os.write(fd, str(os.getpid()).encode())
                    os.close(fd)
                    os.kill(os.getpid(), signal.SIGKILL)
        return await super().agenerate_batch(prompts)


def crash_once_scripted_guard() -> ProGuard:
    return ProGuard(backend=_CrashOnceBackend(RULES), cache_size=0)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows to a .jsonl, .csv or .parquet file by its suffix."""
    if path.suffix == ".jsonl":
        return write_jsonl(path, rows)
    if path.suffix == ".csv":
        return write_csv(path, rows)
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=1000)
    return path


def synthetic_dataset(folder: Path, total: int = 20_000) -> int:
    """``total`` rows over four files (two JSONL, a CSV, a parquet file), with what real logs
    have: a response column that starts in a later row, rows without an id, ids repeated
    across files, a line that is not UTF-8 and a line that is not JSON, image bytes in a few
    parquet rows. Returns the row count."""
    sizes = [total * 3 // 10, total * 3 // 10, total * 2 // 10]
    sizes.append(total - sum(sizes))
    names = ["logs/a.jsonl", "logs/b.jsonl", "more/c.csv", "more/d.parquet"]
    n = 0
    for fi, (name, size) in enumerate(zip(names, sizes, strict=True)):
        rows: list[dict[str, Any]] = []
        for i in range(size):
            r: dict[str, Any] = {"id": f"r{n}", "prompt": f"message {n} {WORDS[n % len(WORDS)]}"}
            if i % 7 == 3:
                r["response"] = "poison it" if i % 2 else "sure, here you go"
            if i % 500 == 11:
                del r["id"]  # falls back to FILE:ROW
            if i % 1000 == 5 and fi > 0:
                r["id"] = "dup-id"  # the same id in several files: renamed after the first
            rows.append(r)
            n += 1
        if name.endswith(".parquet"):  # an image column with bytes in a few rows (text-image checks)
            from tests.helpers import png_bytes

            for i, r in enumerate(rows):
                r["image"] = png_bytes() if i % 1000 == 7 else None
        if name.endswith(".csv"):
            for r in rows:
                r.setdefault("response", "")
                r.setdefault("id", "")
        path = write_rows(folder / name, rows)
        if fi == 0:  # two bad lines in place of two rows (same count): not UTF-8, not JSON
            lines = path.read_bytes().split(b"\n")
            lines[100] = b'{"id": "bad-utf8", "prompt": "caf\xe9"}'
            lines[200] = b'{"id": "bad-json", "prompt": '
            path.write_bytes(b"\n".join(lines))
    return n
