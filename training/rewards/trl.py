"""TRL reward functions: one per component, so ``GRPOTrainer`` logs each one separately.

TRL calls every reward function with the batch's ``prompts``, ``completions`` and the
dataset's other columns as keyword arguments, sums them with ``reward_weights`` and logs
``rewards/<function name>/mean``. The five functions here share one scoring pass per
batch (the first call scores, the others read the memo), so parsing and embedding run
once per step however many components are logged.

Usage::

    funcs = proguard_reward_functions(scorer)          # [format, request_label, ...]
    GRPOTrainer(..., reward_funcs=funcs,
                args=GRPOConfig(reward_weights=default_reward_weights(), ...))

The dataset must carry the ``ground_truth`` column written by
:func:`training.data.export.to_trl_dataset`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .scoring import COMPONENTS, RewardBreakdown, RewardScorer, completion_text


class _BatchMemo:
    """Scores a batch once; later component calls on the same batch reuse the result."""

    def __init__(self, scorer: RewardScorer, target_column: str) -> None:
        self.scorer = scorer
        self.target_column = target_column
        self._key: str | None = None
        self._value: list[RewardBreakdown] | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _digest(texts: Sequence[str], targets: Sequence[Any]) -> str:
        h = hashlib.sha1()
        for t, g in zip(texts, targets, strict=True):
            h.update(t.encode("utf-8", "surrogatepass"))
            h.update(b"\x1f")
            h.update(str(g).encode("utf-8", "surrogatepass"))
            h.update(b"\x1e")
        return h.hexdigest()

    def get(self, completions: Sequence[Any], kwargs: Mapping[str, Any]) -> list[RewardBreakdown]:
        if self.target_column not in kwargs:
            raise KeyError(
                f"the reward needs the dataset column {self.target_column!r} (written by "
                "training.data.export.to_trl_dataset); it was not passed to the reward function"
            )
        targets = list(kwargs[self.target_column])
        texts = [completion_text(c) for c in completions]
        key = self._digest(texts, targets)
        with self._lock:
            if key != self._key or self._value is None:
                self._value = self.scorer.score_batch(texts, targets)
                self._key = key
                log_metric = kwargs.get("log_metric")
                if callable(log_metric):
                    _log_similarity(self._value, log_metric)
            return self._value


def _log_similarity(scores: Sequence[RewardBreakdown], log_metric: Any) -> None:
    sims = [s.similarity for s in scores if s.similarity]
    if sims:
        log_metric("out_of_policy/best_similarity", sum(s["best"] for s in sims) / len(sims))
        log_metric("out_of_policy/mean_similarity", sum(s["mean"] for s in sims) / len(sims))
    judged = [s for s in scores if s.format]
    log_metric("format/pass_rate", len(judged) / max(len(scores), 1))


class RewardComponent:
    """A TRL reward function for one component (``__name__`` is what TRL logs)."""

    def __init__(self, name: str, memo: _BatchMemo) -> None:
        if name not in COMPONENTS:
            raise ValueError(f"unknown reward component {name!r}; components: {COMPONENTS}")
        self.__name__ = name
        self._memo = memo

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
                 **kwargs: Any) -> list[float | None]:
        scores = self._memo.get(completions or [], kwargs)
        return [s.component(self.__name__) for s in scores]

    def __repr__(self) -> str:
        return f"RewardComponent({self.__name__!r})"


def proguard_reward_functions(scorer: RewardScorer | None = None, *, components: Sequence[str] = COMPONENTS,
                              target_column: str = "ground_truth") -> list[RewardComponent]:
    """The reward functions for ``GRPOTrainer(reward_funcs=...)``, one per component."""
    memo = _BatchMemo(scorer or RewardScorer(), target_column)
    return [RewardComponent(name, memo) for name in components]


def default_reward_weights(components: Sequence[str] = COMPONENTS, *, format_weight: float = 0.0,
                           overrides: Mapping[str, float] | None = None) -> list[float]:
    """``GRPOConfig.reward_weights`` for these components: 1 each, the format gate ``format_weight``.

    The gate already zeroes every other component of a malformed answer, so by default
    its own 1/0 is logged but not added (the sum is then the paper's reward).
    """
    weights = {name: 1.0 for name in components}
    if "format" in weights:
        weights["format"] = format_weight
    for k, v in (overrides or {}).items():
        if k not in weights:
            raise ValueError(f"weight for unknown component {k!r}")
        weights[k] = float(v)
    return [weights[name] for name in components]


__all__ = ["RewardComponent", "default_reward_weights", "proguard_reward_functions"]
