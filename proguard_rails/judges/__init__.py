"""Judges: generative (ProGuard over a backend), lite (embedded CPU), cascade (lite, then generative)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Judge, JudgeResult
from .generative import GenerativeJudge

if TYPE_CHECKING:  # pragma: no cover
    from .cascade import CascadeJudge
    from .lite import LiteJudge

_LAZY = {"LiteJudge": ".lite", "CascadeJudge": ".cascade"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)


__all__ = ["CascadeJudge", "GenerativeJudge", "Judge", "JudgeResult", "LiteJudge"]
