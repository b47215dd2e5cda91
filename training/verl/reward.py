"""verl entry points: ``compute_score`` (per sample) and ``compute_score_batch`` (a list at once).

verl 0.9 loads the reward from ``reward.custom_reward_function.path`` (this file) and
``.name``, with ``reward.custom_reward_function.reward_kwargs`` passed as keyword
arguments, and calls it from a registered reward-loop manager (``reward.reward_manager.name``).
``training/verl/run_grpo.sh`` sets exactly that::

    reward.reward_manager.name=naive
    reward.custom_reward_function.path=<this file>
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.embedding_model=minilm

(The top-level ``custom_reward_function.*`` and ``reward_model.reward_manager`` of older verl
releases are legacy keys there: ``main_ppo`` never migrates them and falls back to verl's
default scorer, which does not know ``data_source='proguard'``.)

This module imports only the light scoring core (``training.rewards.scoring`` over
``proguard_rails.protocol``): no torch, no TRL, no transformers at import time, so it runs in
verl's own environment. The out-of-policy bonus loads a sentence-transformers model on first
use, once per reward worker process (``shared_embedder``), with the similarity thresholds
calibrated for that model (:mod:`training.rewards.calibration`); phrases are cached, so a
worker encodes each synonym bank once per run.

Keyword settings (``+reward.custom_reward_function.reward_kwargs.<name>=...``):
``embedding_model`` (default MiniLM; any sentence-transformers folder, e.g. BGE-M3, present
on every node), ``embedding_device``, ``taxonomy_path`` (YAML of a custom policy), ``calibration_path``
(similarity thresholds saved by ``python -m training.rewards.calibration``; default: the
embedder's own), ``details`` (return a dict with every component, which verl logs; default True).

``compute_score_batch`` scores a list with one embedding pass: for offline scoring, or a
custom reward manager (``reward.reward_manager.source=importlib``) that hands a whole batch.

``ground_truth`` is the JSON written by the exporter; ``extra_info`` with the original
pipeline's keys (``query_label``, ``response_label``, ``category``,
``original_category``, ``synonymous_phrase``, ``modality``) is accepted as a fallback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from proguard_rails.taxonomy import Taxonomy
from training.rewards.scoring import RewardScorer, RewardTarget


@lru_cache(maxsize=8)
def _scorer(embedding_model: str | None, embedding_device: str | None, taxonomy_path: str | None,
            use_embedder: bool, calibration_path: str | None = None) -> RewardScorer:
    taxonomy = Taxonomy.from_yaml(taxonomy_path) if taxonomy_path else Taxonomy.default()
    embedder = None
    calibration = None
    if calibration_path:
        from training.rewards.calibration import SimilarityCalibration

        calibration = SimilarityCalibration.load(calibration_path)
    if use_embedder:
        from training.rewards.embeddings import shared_embedder

        embedder = shared_embedder(embedding_model, embedding_device)
    return RewardScorer(taxonomy, embedder, calibration=calibration)


def _target(ground_truth: Any, extra_info: Mapping[str, Any] | None) -> RewardTarget:
    if isinstance(ground_truth, (str, bytes)) and str(ground_truth).strip().startswith("{"):
        return RewardTarget.parse(json.loads(ground_truth))
    if isinstance(ground_truth, Mapping):
        return RewardTarget.parse(ground_truth)
    if extra_info:
        return RewardTarget.parse(extra_info)
    raise ValueError("ground_truth is not the exporter's JSON and extra_info has no labels; re-export the data "
                     "with training.data.export.write_verl_parquet")


def _result(score: Any, details: bool) -> float | dict[str, Any]:
    return score.to_dict(fill=0.0) if details else float(score.total)


def compute_score(data_source: str | None = None, solution_str: str = "", ground_truth: Any = None,
                  extra_info: Mapping[str, Any] | None = None, *, embedding_model: str | None = None,
                  embedding_device: str | None = None, taxonomy_path: str | None = None,
                  details: bool = True, use_embedder: bool = True, calibration_path: str | None = None,
                  **kwargs: Any) -> float | dict[str, Any]:
    """Score one completion; a dict with ``score`` and each component (n/a as 0.0) by default."""
    scorer = _scorer(embedding_model, embedding_device, taxonomy_path, use_embedder, calibration_path)
    return _result(scorer.score(solution_str, _target(ground_truth, extra_info)), details)


def compute_score_batch(data_sources: Sequence[str] | None = None, solution_strs: Sequence[str] = (),
                        ground_truths: Sequence[Any] = (), extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
                        *, embedding_model: str | None = None, embedding_device: str | None = None,
                        taxonomy_path: str | None = None, details: bool = True, use_embedder: bool = True,
                        calibration_path: str | None = None, **kwargs: Any) -> list[float | dict[str, Any]]:
    """Score a list with one embedding pass (the signature of verl's batch-style managers)."""
    infos = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    targets = [_target(g, e) for g, e in zip(ground_truths, infos, strict=True)]
    scorer = _scorer(embedding_model, embedding_device, taxonomy_path, use_embedder, calibration_path)
    return [_result(s, details) for s in scorer.score_batch(list(solution_strs), targets)]


__all__ = ["compute_score", "compute_score_batch"]
