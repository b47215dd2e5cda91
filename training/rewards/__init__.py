"""Rewards for GRPO on ProGuard's answer format (see :mod:`training.rewards.scoring` for the rule).

Light to import: the scoring core is pure Python over ``proguard_rails.protocol``;
numpy and sentence-transformers load only when an embedder is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from proguard_rails.taxonomy import Taxonomy

from .scoring import (
    COMPONENTS,
    Embedder,
    RewardBreakdown,
    RewardScorer,
    RewardTarget,
    RewardWeights,
    completion_text,
    format_gate,
)
from .trl import RewardComponent, default_reward_weights, proguard_reward_functions

if TYPE_CHECKING:  # pragma: no cover
    from .calibration import PAPER, SimilarityCalibration, calibrate
    from .embeddings import PhraseEmbedder, SentenceTransformerEmbedder, shared_embedder


def default_scorer(taxonomy: Taxonomy | None = None, *, embedding_model: str | None = None,
                   device: str | None = None, weights: RewardWeights | None = None,
                   calibration: SimilarityCalibration | None = None) -> RewardScorer:
    """A scorer with the local sentence-transformers embedder (MiniLM unless set otherwise).

    The model loads on the first out-of-policy answer that needs a similarity, not here; the
    bonus thresholds are the embedder's calibration (:mod:`training.rewards.calibration`).
    """
    from .embeddings import SentenceTransformerEmbedder

    return RewardScorer(taxonomy, SentenceTransformerEmbedder(embedding_model, device=device), weights,
                        calibration)


def __getattr__(name: str) -> Any:
    if name in ("PhraseEmbedder", "SentenceTransformerEmbedder", "shared_embedder", "resolve_model"):
        from . import embeddings

        return getattr(embeddings, name)
    if name in ("PAPER", "SimilarityCalibration", "calibrate"):
        from . import calibration

        return getattr(calibration, name)
    raise AttributeError(name)


__all__ = [
    "COMPONENTS",
    "PAPER",
    "SimilarityCalibration",
    "calibrate",
    "Embedder",
    "PhraseEmbedder",
    "RewardBreakdown",
    "RewardComponent",
    "RewardScorer",
    "RewardTarget",
    "RewardWeights",
    "SentenceTransformerEmbedder",
    "completion_text",
    "default_reward_weights",
    "default_scorer",
    "format_gate",
    "proguard_reward_functions",
    "shared_embedder",
]
