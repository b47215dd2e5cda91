"""Small file helpers shared by scan, the eval adapters and the training ingesters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigurationError


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line; a bad line names file and line."""
    p = Path(path)
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"{p}:{lineno}: invalid JSON ({exc.msg})") from exc


__all__ = ["iter_jsonl"]
