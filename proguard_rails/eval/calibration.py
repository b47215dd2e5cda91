"""Similarity thresholds of the out-of-policy bonus, per embedder (the data and the formula).

Shared by the evaluation harness (task 4, description quality) and the RL reward
(``training.rewards``), so both score a name the same way. How the thresholds are measured on
the synonym bank, and the command that does it, live in ``training.rewards.calibration``; the
calibration of the default MiniLM embedder ships here (``calibrations.json``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

SHIPPED = Path(__file__).with_name("calibrations.json")
#: The id under which the default model's calibration is recorded.
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class SimilarityCalibration:
    """Where the out-of-policy bonus starts (``*_low``) and where it is full (``*_high``)."""

    embedder: str
    best_low: float
    best_high: float
    mean_low: float
    mean_high: float
    method: str = "synonym-bank"
    stats: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not (self.best_high > self.best_low and self.mean_high > self.mean_low):
            raise ConfigurationError(
                f"similarity calibration for {self.embedder!r} does not separate true synonyms from unrelated "
                f"names (best {self.best_low:.3f}..{self.best_high:.3f}, mean {self.mean_low:.3f}.."
                f"{self.mean_high:.3f}); use another embedding model"
            )

    def fraction(self, sims: Sequence[float]) -> float:
        """Share of the bonus (0..1) that similarities ``sims`` (answer vs bank) earn."""
        if not sims:
            return 0.0
        best, mean = max(sims), sum(sims) / len(sims)
        b1 = (best - self.best_low) / (self.best_high - self.best_low)
        b2 = (mean - self.mean_low) / (self.mean_high - self.mean_low)
        return min(max(b1, b2, 0.0), 1.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimilarityCalibration:
        known = {"embedder", "best_low", "best_high", "mean_low", "mean_high", "method", "stats"}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> SimilarityCalibration:
        p = Path(path)
        if not p.exists():
            raise ConfigurationError(f"similarity calibration file {p} does not exist (write one with "
                                     "python -m training.rewards.calibration --embedding-model MODEL --out FILE)")
        return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))


#: The paper's thresholds (for BGE-M3): ``0.5 * max((best-0.7)/0.3, (mean-0.6)/0.4)``.
PAPER = SimilarityCalibration("BAAI/bge-m3 (paper)", best_low=0.7, best_high=1.0, mean_low=0.6, mean_high=1.0,
                              method="paper")


def shipped(embedder_id: str) -> SimilarityCalibration | None:
    """The calibration shipped for ``embedder_id`` (the default MiniLM), if any."""
    try:
        table = json.loads(SHIPPED.read_text(encoding="utf-8"))
    except OSError:  # pragma: no cover - the file ships with the package
        return None
    data = table.get(embedder_id)
    return SimilarityCalibration.from_dict(data) if data else None


__all__ = ["MINILM_ID", "PAPER", "SHIPPED", "SimilarityCalibration", "shipped"]
