"""Predictions cached on disk, so an interrupted evaluation resumes without re-querying.

One JSONL file per judge identity under the cache folder; each line is one prediction
keyed by ``sha256(judge identity, policy fingerprint, request content)``. Lines are
appended and flushed as each chunk finishes; a torn last line (a killed run) is ignored.
Verdicts and deterministic failures (unparseable answers, inputs the judge cannot take)
are cached; transport failures (timeouts, dead endpoints) are not, so a rerun retries them.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from proguard_rails.errors import ProGuardError
from proguard_rails.inputs import GuardRequest
from proguard_rails.scan import iter_jsonl_tolerant, open_jsonl_append, write_jsonl_line
from proguard_rails.taxonomy import Taxonomy
from proguard_rails.verdict import Verdict

#: error kinds that a rerun would reproduce: worth caching
CACHEABLE_ERROR_KINDS = frozenset({"parse", "unjudgeable", "input", "input_too_large"})


def prediction_key(judge_identity: str, taxonomy: Taxonomy, request: GuardRequest) -> str:
    h = hashlib.sha256()
    for part in (judge_identity, taxonomy.fingerprint, request.cache_key()):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
    return h.hexdigest()


@dataclass(frozen=True)
class Prediction:
    """A judge's output for one query: a verdict or the error it raised."""

    verdict: Verdict | None = None
    error_type: str | None = None
    error: str | None = None
    raw: str | None = None
    cached: bool = False

    @classmethod
    def from_result(cls, result: Verdict | BaseException) -> Prediction:
        if isinstance(result, Verdict):
            return cls(verdict=result)
        kind = getattr(result, "kind", None) if isinstance(result, ProGuardError) else None
        return cls(error_type=kind or type(result).__name__, error=f"{result}",
                   raw=getattr(result, "raw", None))

    @property
    def ok(self) -> bool:
        return self.verdict is not None

    def to_record(self) -> dict[str, Any]:
        if self.verdict is not None:
            return {"ok": True, "verdict": self.verdict.model_dump(mode="json")}
        return {"ok": False, "error_type": self.error_type, "error": self.error, "raw": self.raw}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Prediction:
        if rec.get("ok"):
            return cls(verdict=Verdict.model_validate(rec["verdict"]), cached=True)
        return cls(error_type=rec.get("error_type"), error=rec.get("error"), raw=rec.get("raw"), cached=True)

    @property
    def cacheable(self) -> bool:
        return self.ok or (self.error_type in CACHEABLE_ERROR_KINDS)


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60]
    return f"{slug}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


class PredictionCache:
    """Append-only JSONL store of predictions for one judge identity."""

    def __init__(self, folder: str | Path | None, judge_identity: str) -> None:
        self.judge_identity = judge_identity
        self.path = Path(folder) / f"{_slug(judge_identity)}.jsonl" if folder is not None else None
        self._data: dict[str, Prediction] = {}
        self._fh: TextIO | None = None
        self._lock = threading.Lock()
        self.hits = 0
        self.writes = 0
        if self.path is not None:
            for rec in iter_jsonl_tolerant(self.path):
                key = rec.get("key")
                if isinstance(key, str) and rec.get("judge") == judge_identity:
                    try:
                        self._data[key] = Prediction.from_record(rec)
                    except Exception:  # a record from an older Verdict schema: judge it again
                        continue

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> Prediction | None:
        pred = self._data.get(key)
        if pred is not None:
            self.hits += 1
        return pred

    def put_many(self, items: Iterable[tuple[str, Prediction, dict[str, Any]]]) -> None:
        """Store (key, prediction, extra fields for humans reading the file); flushed at once."""
        with self._lock:
            rows = []
            for key, pred, extra in items:
                if not pred.cacheable:
                    continue
                self._data[key] = pred
                rows.append({"key": key, "judge": self.judge_identity, **extra, **pred.to_record()})
            if not rows or self.path is None:
                return
            if self._fh is None:
                self._fh = open_jsonl_append(self.path)
            for r in rows:
                write_jsonl_line(self._fh, r)
            self._fh.flush()
            self.writes += len(rows)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


__all__ = ["CACHEABLE_ERROR_KINDS", "Prediction", "PredictionCache", "prediction_key"]
