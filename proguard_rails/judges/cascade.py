"""The cascade judge: the lite judge first, the generative judge only where it is needed.

Content the lite judge finds confidently safe (its unsafe score, the larger of the
probabilities of the texts it judged, below ``safe_threshold``) is allowed without
generation; everything else, every request with images, and text the lite judge cannot
read (another language: ``unreadable="escalate"``, the default) goes to the generative
judge in one batched call. The shipped threshold was chosen on calibration sources the
lite model never trained on, so that 98% of their unsafe items are blocked by the lite
stage or escalated (docs/lite_model_card.md gives the measured escalation rate);
``CascadeJudge.calibrate`` fits one on your own labelled data. ``stats()`` reports the
escalated fraction.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigurationError, ProGuardError
from ..inputs import GuardRequest, normalize
from ..taxonomy import Taxonomy
from ..verdict import Verdict
from .base import Judge, JudgeResult

logger = logging.getLogger("proguard_rails.cascade")


@dataclass(frozen=True)
class CascadeCalibration:
    """What ``CascadeJudge.calibrate`` found on a labelled set."""

    threshold: float
    target_recall: float
    recall: float  # share of unsafe items escalated at this threshold
    escalated_fraction: float  # share of all items escalated
    n: int
    n_unsafe: int


def threshold_for_recall(scores: Sequence[float], labels: Sequence[bool | int], target_recall: float) -> float:
    """The largest threshold whose escalation (``score >= threshold``) catches ``target_recall`` of the unsafe items.

    Pure function: the cascade's rule, usable on any scores. With no unsafe items, 0.0
    (escalate everything: nothing to calibrate on means no evidence that passing is safe).
    """
    if not 0.0 < target_recall <= 1.0:
        raise ConfigurationError(f"target_recall must be in (0, 1], got {target_recall}")
    pos = sorted(float(s) for s, y in zip(scores, labels, strict=False) if y)
    if not pos:
        return 0.0
    k = int(math.floor((1.0 - target_recall) * len(pos) + 1e-9))
    return max(pos[min(k, len(pos) - 1)] - 1e-9, 0.0)


class CascadeJudge(Judge):
    """Lite first; confidently safe content passes, the rest is escalated to ``generative``.

    ``lite``: a ``LiteJudge`` (``None`` builds the default one). ``generative``: any judge,
    usually ``GenerativeJudge(backend)``. ``safe_threshold``: pass when the lite unsafe
    score is below it; ``None`` takes the shipped threshold for ``target_recall`` (a
    target the head was not calibrated for falls back to the closest stricter one).
    ``escalate_errors``: when the lite judge fails on an item, ask the generative judge
    (default) rather than return the error. ``unreadable``: text the lite judge cannot read
    (another language) is escalated (default), blocked (the lite judge's
    ``UnreadableTextError``, which the policy's ``unjudgeable`` setting blocks) or allowed
    unjudged (a verdict with no labels and ``Verdict.unreadable`` set).
    """

    supports_images = True

    def __init__(
        self,
        lite: Any | None,
        generative: Judge,
        *,
        safe_threshold: float | None = None,
        target_recall: float | None = None,
        escalate_errors: bool = True,
        unreadable: Literal["escalate", "block", "allow"] = "escalate",
    ) -> None:
        if unreadable not in ("escalate", "block", "allow"):
            raise ConfigurationError(f"unreadable must be 'escalate', 'block' or 'allow', got {unreadable!r}")
        self.unreadable = unreadable
        if lite is None:
            from .lite import LiteJudge

            lite = LiteJudge()
        self.lite = lite
        self.generative = generative
        self.escalate_errors = escalate_errors
        if safe_threshold is not None and not 0.0 <= safe_threshold <= 1.0:
            raise ConfigurationError(f"safe_threshold must be in [0, 1], got {safe_threshold}")
        self._threshold = safe_threshold
        self.target_recall = target_recall
        self.supports_images = bool(getattr(generative, "supports_images", True))
        self.name = f"cascade:{getattr(generative, 'name', 'generative')}"
        self._lock = threading.Lock()
        self.checks = 0
        self.escalated = 0
        self.passed = 0
        self.escalated_images = 0
        self.generative_calls = 0

    # ------------------------------------------------------------------ threshold
    @property
    def safe_threshold(self) -> float:
        """The pass threshold in use (resolved from the shipped head on first use)."""
        if self._threshold is None:
            self._threshold = self.shipped_threshold(self.lite, self.target_recall)
        return self._threshold

    @staticmethod
    def shipped_threshold(lite: Any, target_recall: float | None = None) -> float:
        """The threshold fitted when the head was trained, for ``target_recall`` (default: the head's)."""
        cfg = lite.model.meta.get("cascade") or {}
        table = {float(k): float(v) for k, v in (cfg.get("thresholds_by_target_recall") or {}).items()}
        target = float(target_recall if target_recall is not None else cfg.get("default_target_recall", 0.98))
        if not table:
            raise ConfigurationError("this lite model has no cascade thresholds; pass safe_threshold= or calibrate()")
        if target in table:
            return table[target]
        stricter = [r for r in table if r >= target]
        if not stricter:
            logger.warning("no shipped threshold reaches recall %.3f; escalating everything", target)
            return 0.0
        return table[min(stricter)]

    @classmethod
    def calibrate(
        cls,
        dev_samples: Sequence[tuple[Any, bool | int]],
        target_recall: float = 0.98,
        *,
        lite: Any | None = None,
    ) -> CascadeCalibration:
        """Fit the pass threshold on labelled samples: ``[(content, is_unsafe), ...]``.

        ``content`` is anything ``proguard_rails.normalize`` accepts (text, ``(request,
        response)``, messages, ``GuardRequest``); ``is_unsafe`` is the truth for the
        request or the response. Returns the threshold and the escalated fraction on these
        samples; pass ``.threshold`` as ``CascadeJudge(..., safe_threshold=...)``.
        """
        if lite is None:
            from .lite import LiteJudge

            lite = LiteJudge()
        reqs: list[GuardRequest] = []
        labels: list[int] = []
        for content, y in dev_samples:
            req = content if isinstance(content, GuardRequest) else normalize(content)
            if req.images:
                continue  # images are always escalated: they say nothing about the text threshold
            reqs.append(req)
            labels.append(int(bool(y)))
        if not reqs:
            raise ConfigurationError("calibrate() needs text samples with labels")
        scores = [s.unsafe for s in lite.score_requests(reqs)]
        thr = threshold_for_recall(scores, labels, target_recall)
        esc = [s >= thr for s in scores]
        n_unsafe = sum(labels)
        recall = (sum(e for e, y in zip(esc, labels, strict=False) if y) / n_unsafe) if n_unsafe else 1.0
        return CascadeCalibration(
            threshold=thr, target_recall=target_recall, recall=recall,
            escalated_fraction=sum(esc) / len(esc), n=len(reqs), n_unsafe=n_unsafe,
        )

    # ------------------------------------------------------------------ judging
    def identity(self) -> str:
        return (f"cascade:{self.lite.identity()}|{self.generative.identity()}|pass<{self.safe_threshold:.6g}"
                f"|unreadable={self.unreadable}")

    async def ajudge_batch(self, requests: Sequence[GuardRequest], taxonomy: Taxonomy) -> list[JudgeResult]:
        n = len(requests)
        out: list[JudgeResult | None] = [None] * n
        lite_verdicts: dict[int, Verdict] = {}
        escalate: list[int] = [i for i, r in enumerate(requests) if r.images]
        text_idx = [i for i, r in enumerate(requests) if not r.images]
        threshold = self.safe_threshold
        if text_idx:
            try:
                results = await self.lite.ajudge_batch([requests[i] for i in text_idx], taxonomy)
            except ProGuardError:
                raise  # configuration / missing dependency: say so rather than silently pay for generation
            except Exception as exc:  # any lite failure sends the items up, never through
                logger.warning("lite judge failed (%s); escalating %d items", exc, len(text_idx))
                results = [ProGuardError(str(exc)) for _ in text_idx]
            unread: dict[int, str] = {}
            for i, res in zip(text_idx, results, strict=False):
                lang = getattr(res, "language", None) if getattr(res, "kind", None) == "unreadable" else None
                if isinstance(res, Verdict) and res.unreadable and not res.unsafe:
                    lang = res.unreadable  # a lite judge set to allow unreadable text: the cascade decides
                if lang is not None:
                    unread[i] = lang
                    if self.unreadable == "escalate":
                        escalate.append(i)
                    elif self.unreadable == "allow":
                        out[i] = Verdict(modality=requests[i].modality, judge=f"cascade:{self.lite.name}",
                                         unreadable=lang, escalated=False)
                    else:
                        out[i] = res if not isinstance(res, Verdict) else self.lite.unreadable_error(lang)
                elif isinstance(res, Verdict):
                    sc = res.scores or {}
                    judged = [sc[k] for k in ("request_unsafe", "response_unsafe") if k in sc]
                    score = max(judged) if judged else 1.0  # nothing judged: no evidence it is safe
                    if not res.unsafe and score < threshold and not res.unreadable:
                        out[i] = res.model_copy(update={"escalated": False, "judge": f"cascade:{res.judge}"})
                        continue
                    lite_verdicts[i] = res
                    escalate.append(i)
                elif self.escalate_errors:
                    escalate.append(i)
                else:
                    out[i] = res
        else:
            unread = {}
        escalate.sort()
        if escalate:
            gen = await self.generative.ajudge_batch([requests[i] for i in escalate], taxonomy)
            if len(gen) != len(escalate):
                raise ProGuardError(f"generative judge returned {len(gen)} results for {len(escalate)} requests")
            for i, res in zip(escalate, gen, strict=False):
                if isinstance(res, Verdict):
                    scores = dict(res.scores or {})
                    lv = lite_verdicts.get(i)
                    if lv is not None and lv.scores:
                        scores.update({f"lite_{k}": v for k, v in lv.scores.items()})
                    update: dict[str, Any] = {"escalated": True, "scores": scores or None}
                    if i in unread:
                        update["unreadable"] = unread[i]  # the lite stage could not read it; the verdict says so
                    out[i] = res.model_copy(update=update)
                else:
                    out[i] = res
        with self._lock:
            self.checks += n
            self.escalated += len(escalate)
            self.passed += n - len(escalate)
            self.escalated_images += sum(1 for i in escalate if requests[i].images)
            self.generative_calls += 1 if escalate else 0
        return [r for r in out if r is not None]

    # ------------------------------------------------------------------ stats
    @property
    def escalated_fraction(self) -> float:
        return self.escalated / self.checks if self.checks else 0.0

    def stats(self) -> dict[str, float | int]:
        """Counters since construction (or ``reset_stats``)."""
        with self._lock:
            return {
                "checks": self.checks, "passed": self.passed, "escalated": self.escalated,
                "escalated_images": self.escalated_images, "generative_calls": self.generative_calls,
                "escalated_fraction": round(self.escalated / self.checks, 6) if self.checks else 0.0,
                "safe_threshold": self.safe_threshold,
            }

    def reset_stats(self) -> None:
        with self._lock:
            self.checks = self.escalated = self.passed = self.escalated_images = self.generative_calls = 0

    async def aclose(self) -> None:
        await self.generative.aclose()
        await self.lite.aclose()


__all__ = ["CascadeCalibration", "CascadeJudge", "threshold_for_recall"]
