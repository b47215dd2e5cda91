"""The ProGuard reward: format gate, label rewards, category reward, out-of-policy reward.

This module is pure Python on top of the core protocol (``proguard_rails.protocol``);
it imports neither torch nor TRL, so verl's reward workers can load it in their own
environment. Embeddings (out-of-policy bonus) come from an :class:`Embedder` passed in,
batched over the whole batch (see :mod:`training.rewards.embeddings`).

The rule, per completion (``R`` = the sum of the components, 0 if the gate fails):

``format`` (the gate, 1/0, logged, weight 0 in the sum by default)
    ``<think>…</think>`` or ``<thinking>…</thinking>`` (same tag both ends), then an
    ``<answer>`` block with exactly ``Request:``, ``Response:`` (absent in image mode),
    ``Category:`` lines, then ``</answer>``; whitespace allowed only at the ends and
    between the reasoning and the answer; an all-safe answer must say ``Category:None``,
    an unsafe one must name something. The core parser (``parse_answer``) must then read
    it. Any failure: every component is 0.

``request_label`` / ``response_label``
    1 for a correct label. Image samples have a single label and its reward weighs 2
    (so every modality's labels are worth 2 in total); ``response_label`` is n/a there.

``category`` (in-policy unsafe samples)
    Only when the sample is unsafe and the answer says unsafe (for images: the single
    request label; otherwise either label). The right answer is what the prompt asks
    for: a subcategory (``C*S*``) in text and image mode, a main category (``C*``) in
    text-image mode. 1.0 for the right id at that granularity (after normalizing ``c3s2``
    -> ``C3S2``); 0.5 for another id of the policy shown; 0 for an id outside that policy
    or a free-text name. As in the core parser, the exact name of a listed entry reads as
    its id. Labels coarser or finer than the prompt asks are read at its granularity:

    * a sample labelled only with a main category (``C8``) in a subcategory prompt: any
      subcategory of ``C8`` is right (1.0; the label cannot tell which), the bare ``C8``
      is not what was asked (0.5);
    * a subcategory label (``C8S1``) in the text-image prompt counts as its main category
      ``C8``: ``C8`` is right (1.0), ``C8S1`` is not what was asked (0.5).

``out_of_policy`` (held-out samples)
    Only when the answer says unsafe. An id (alone or inside the text), or a name of an
    entry the shown policy lists (force-fitting), 0. A free-text name 0.5 plus a similarity
    bonus against the target name and its synonym bank: with ``best`` and ``mean`` the max
    and mean cosine similarity, ``bonus = 0.5 * max((best - best_low) / (best_high -
    best_low), (mean - mean_low) / (mean_high - mean_low))`` clipped to [0, 0.5], so the
    component ranges 0.5 - 1.0. The thresholds are calibrated for the embedder on the
    synonym bank (:mod:`training.rewards.calibration`); the paper's (0.7/0.6 to 1.0) were
    measured for BGE-M3 and are :data:`~training.rewards.calibration.PAPER`.

Components that do not apply to a sample are ``None`` (TRL averages them over the
samples they apply to): ``response_label`` on images, ``category`` on safe and held-out
samples and on unsafe samples whose category is unknown, ``out_of_policy`` on in-policy
samples.

Image samples and the original code. The original reward returned early when either the
ground truth or the answer was safe/safe, judged by request *and* response labels. Image
samples have no response label, so a safe image never took that exit and fell through to
category credit: an answer "unsafe + some free-text name" on a safe image earned the 0.5
base of the out-of-policy branch. Here "safe" means the single label on images, and no
category or out-of-policy credit is given unless both ground truth and answer say
unsafe: a false alarm on a safe image earns nothing beyond its (wrong) label.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from proguard_rails.errors import AnswerParseError
from proguard_rails.protocol import parse_answer
from proguard_rails.taxonomy import Taxonomy, normalize_id
from proguard_rails.verdict import Modality, Verdict

if TYPE_CHECKING:  # pragma: no cover
    from .calibration import SimilarityCalibration

logger = logging.getLogger("training.rewards")

# An id inside a free-text answer ("C3S1, C8S1", "maybe C3") is still force-fitting.
_ID_IN_TEXT = re.compile(r"\bC\d+(?:S\d+)?\b", re.IGNORECASE)

COMPONENTS: tuple[str, ...] = ("format", "request_label", "response_label", "category", "out_of_policy")

_THINK = r"<(?P<tag>think|thinking)>.*?</(?P=tag)>"
_LABEL = r"(safe|unsafe)"
_GATE = {
    "text": re.compile(
        r"\A\s*" + _THINK + r"\s*\n<answer>\r?\nRequest:" + _LABEL + r"\r?\nResponse:" + _LABEL
        + r"\r?\nCategory:(?P<cat>[^\r\n]+)\r?\n</answer>\s*\Z",
        re.DOTALL,
    ),
    "image": re.compile(
        r"\A\s*" + _THINK + r"\s*\n<answer>\r?\nRequest:" + _LABEL
        + r"\r?\nCategory:(?P<cat>[^\r\n]+)\r?\n</answer>\s*\Z",
        re.DOTALL,
    ),
}


class Embedder(Protocol):
    """What the out-of-policy bonus needs: unit-norm embeddings for phrases."""

    def similarities(self, phrases: Sequence[str], banks: Sequence[Sequence[str]]) -> list[list[float]]:
        """Cosine similarity of ``phrases[i]`` to each phrase of ``banks[i]``."""
        ...


@dataclass(frozen=True)
class RewardWeights:
    """The constants of the reward (defaults as in the paper).

    The similarity thresholds of the out-of-policy bonus are not here: they belong to the
    embedder (:mod:`training.rewards.calibration`); ``RewardScorer(calibration=...)`` pins them.
    """

    label: float = 1.0
    image_label: float = 2.0
    category_exact: float = 1.0
    category_other: float = 0.5
    ood_base: float = 0.5
    ood_bonus: float = 0.5
    format_in_total: float = 0.0  # weight of the gate's own 1/0 in ``total``


@dataclass(frozen=True)
class RewardTarget:
    """Ground truth of one sample, as exported in ``ground_truth`` (JSON)."""

    modality: Modality
    request_label: str
    response_label: str | None = None
    category: str | None = None
    held_out: tuple[str, ...] = ()
    target_name: str | None = None
    synonyms: tuple[str, ...] = ()

    @property
    def out_of_policy(self) -> bool:
        return self.target_name is not None

    @property
    def unsafe(self) -> bool:
        if self.modality == Modality.IMAGE:
            return self.request_label == "unsafe"
        return self.request_label == "unsafe" or self.response_label == "unsafe"

    @property
    def bank(self) -> tuple[str, ...]:
        """The target name and its synonyms: what a free-text answer is compared to."""
        return ((self.target_name,) if self.target_name else ()) + tuple(self.synonyms)

    @classmethod
    def parse(cls, value: str | Mapping[str, Any] | RewardTarget) -> RewardTarget:
        """From the exported JSON string or a dict (also the original's ``extra_info`` keys)."""
        if isinstance(value, RewardTarget):
            return value
        data: Mapping[str, Any] = json.loads(value) if isinstance(value, str) else value
        modality = Modality(data.get("modality") or "text")
        req = data.get("request_label", data.get("query_label"))
        if req not in ("safe", "unsafe"):
            raise ValueError(f"reward target without a valid request_label: {dict(data)!r}")
        resp = data.get("response_label")
        resp = resp if resp in ("safe", "unsafe") else None
        if modality != Modality.IMAGE and resp is None:
            resp = "safe"
        name = data.get("target_name")
        synonyms = data.get("synonyms", data.get("synonymous_phrase")) or ()
        category = data.get("category")
        if name is None and "original_category" in data and not category:
            name = data.get("original_category") or None  # the original's convention: empty id = held out
        cat = normalize_id(str(category)) if category else None
        return cls(
            modality=modality,
            request_label=req,
            response_label=None if modality == Modality.IMAGE else resp,
            category=None if name else cat,
            held_out=tuple(normalize_id(str(x)) or str(x) for x in (data.get("held_out") or ())),
            target_name=name,
            synonyms=tuple(str(s).strip() for s in synonyms if str(s).strip()),
        )

    def to_json(self) -> str:
        d = asdict(self)
        d["modality"] = self.modality.value
        d["held_out"] = list(self.held_out)
        d["synonyms"] = list(self.synonyms)
        return json.dumps(d, ensure_ascii=False, sort_keys=True)


@dataclass
class RewardBreakdown:
    """Per-component rewards of one completion (``None``: not applicable to this sample)."""

    format: float
    request_label: float | None
    response_label: float | None
    category: float | None
    out_of_policy: float | None
    total: float
    verdict: Verdict | None = field(default=None, repr=False)
    reason: str = ""
    similarity: dict[str, float] | None = None

    def component(self, name: str) -> float | None:
        return getattr(self, name)

    def to_dict(self, fill: float | None = None) -> dict[str, Any]:
        """Scores as a flat dict (``fill`` replaces n/a, e.g. 0.0 for verl's metric arrays)."""
        out: dict[str, Any] = {"score": self.total}
        for name in COMPONENTS:
            v = getattr(self, name)
            out[name] = fill if v is None else v
        return out


@dataclass
class _Parsed:
    ok: bool
    verdict: Verdict | None
    reason: str
    pred_unsafe: bool = False


@lru_cache(maxsize=512)
def _shown_policy(base: Taxonomy, held: tuple[str, ...]) -> Taxonomy:
    return base.hold_out([h for h in held if base.find(h) is not None]) if held else base


def completion_text(completion: Any) -> str:
    """The assistant text of a TRL completion (string, or conversational message list)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if isinstance(completion, Sequence) and completion:
        msg = completion[-1]
        content = msg.get("content", "") if isinstance(msg, Mapping) else msg
        if isinstance(content, str):
            return content
        if isinstance(content, Sequence):
            return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return ""


def category_matches(answer: str, label: str, modality: Modality | str) -> bool:
    """Whether ``answer`` is the right id for ``label`` at the granularity the prompt asks.

    Text and image prompts ask for a subcategory: ``C8S1`` answers a ``C8S1`` label, and any
    ``C8S<j>`` answers a main-category-only ``C8`` label (``C8`` itself does not). The
    text-image prompt asks for a main category: ``C8`` answers ``C8`` and ``C8S1`` labels.
    """
    main = label.split("S", 1)[0]
    if Modality(modality) == Modality.TEXT_IMAGE:
        return answer == main
    if "S" in label:
        return answer == label
    return answer.startswith(main + "S")


def format_gate(text: str, modality: Modality | str) -> tuple[bool, str]:
    """The strict format check. Returns ``(passed, reason)``."""
    mod = Modality(modality)
    m = _GATE["image" if mod == Modality.IMAGE else "text"].match(text or "")
    if not m:
        return False, "answer does not follow the released format"
    labels = [g for g in m.groups()[1:-1] if g in ("safe", "unsafe")]
    category = m.group("cat").strip()
    if not category:
        return False, "empty Category"
    says_none = category == "None"
    if "unsafe" in labels and says_none:
        return False, "unsafe answer with Category:None"
    if "unsafe" not in labels and not says_none:
        return False, "safe answer must say Category:None"
    return True, ""


class RewardScorer:
    """Scores completions against :class:`RewardTarget` s, batch first.

    ``score_batch`` parses every completion, gathers the free-text names that need a
    similarity (held-out samples answered with a name), asks the embedder once for the
    whole batch, and assembles the components. ``embedder=None`` gives no bonus (the base
    0.5 still applies); pass an embedder, or use :func:`training.rewards.default_scorer`.
    """

    def __init__(self, taxonomy: Taxonomy | None = None, embedder: Embedder | None = None,
                 weights: RewardWeights | None = None, calibration: SimilarityCalibration | None = None) -> None:
        self.taxonomy = taxonomy or Taxonomy.default()
        self.embedder = embedder
        self.weights = weights or RewardWeights()
        self._calibration = calibration

    @property
    def calibration(self) -> SimilarityCalibration:
        """The bonus thresholds: given, else the embedder's own, else the paper's (with a warning).

        Resolved on first need: an embedder computes its calibration on first use.
        """
        if self._calibration is None:
            from .calibration import PAPER

            cal = getattr(self.embedder, "calibration", None) if self.embedder is not None else None
            if cal is None:
                if self.embedder is not None:
                    logger.warning("the reward embedder %s has no similarity calibration; using the paper's "
                                   "thresholds (measured for BGE-M3). Pass calibration=calibrate(embedder)",
                                   type(self.embedder).__name__)
                cal = PAPER
            self._calibration = cal
        return self._calibration

    # ------------------------------------------------------------------ parsing
    def _parse(self, text: str, target: RewardTarget) -> _Parsed:
        ok, reason = format_gate(text, target.modality)
        if not ok:
            return _Parsed(False, None, reason)
        try:
            verdict = parse_answer(text, target.modality, _shown_policy(self.taxonomy, target.held_out))
        except AnswerParseError as exc:
            return _Parsed(False, None, f"parser: {exc}")
        if target.modality == Modality.IMAGE:
            pred_unsafe = verdict.request == "unsafe"
        else:
            pred_unsafe = verdict.request == "unsafe" or verdict.response == "unsafe"
        return _Parsed(True, verdict, "", pred_unsafe)

    # ------------------------------------------------------------------ scoring
    def score(self, completion: Any, target: RewardTarget | str | Mapping[str, Any]) -> RewardBreakdown:
        return self.score_batch([completion], [target])[0]

    def score_batch(self, completions: Sequence[Any],
                    targets: Sequence[RewardTarget | str | Mapping[str, Any]]) -> list[RewardBreakdown]:
        if len(completions) != len(targets):
            raise ValueError(f"{len(completions)} completions but {len(targets)} targets")
        tgts = [RewardTarget.parse(t) for t in targets]
        texts = [completion_text(c) for c in completions]
        parsed = [self._parse(t, g) for t, g in zip(texts, tgts, strict=True)]
        # Free-text names that need a similarity, batched over the whole batch.
        need: list[int] = []
        for i, (p, g) in enumerate(zip(parsed, tgts, strict=True)):
            if (p.ok and g.out_of_policy and g.unsafe and p.pred_unsafe and p.verdict is not None
                    and p.verdict.category_id is None and p.verdict.description and g.bank
                    and not _ID_IN_TEXT.search(p.verdict.description)):
                need.append(i)
        sims: dict[int, list[float]] = {}
        if need and self.embedder is not None:
            rows = self.embedder.similarities([parsed[i].verdict.description for i in need],  # type: ignore[union-attr]
                                              [tgts[i].bank for i in need])
            sims = dict(zip(need, rows, strict=True))
        return [self._assemble(p, g, sims.get(i)) for i, (p, g) in enumerate(zip(parsed, tgts, strict=True))]

    async def ascore_batch(self, completions: Sequence[Any],
                           targets: Sequence[RewardTarget | str | Mapping[str, Any]]) -> list[RewardBreakdown]:
        """``score_batch`` off the event loop (the embedder is CPU/GPU bound)."""
        import asyncio

        return await asyncio.to_thread(self.score_batch, completions, targets)

    def _assemble(self, p: _Parsed, g: RewardTarget, sims: list[float] | None) -> RewardBreakdown:
        w = self.weights
        image = g.modality == Modality.IMAGE
        na_response = image
        na_category = not g.unsafe or g.out_of_policy or g.category is None
        na_ood = not g.out_of_policy
        if not p.ok or p.verdict is None:
            return RewardBreakdown(
                format=0.0,
                request_label=0.0,
                response_label=None if na_response else 0.0,
                category=None if na_category else 0.0,
                out_of_policy=None if na_ood else 0.0,
                total=0.0,
                reason=p.reason,
            )
        v = p.verdict
        req = (w.image_label if image else w.label) if v.request == g.request_label else 0.0
        resp = None if na_response else (w.label if v.response == g.response_label else 0.0)
        cat: float | None = None
        ood: float | None = None
        similarity = None
        both_unsafe = g.unsafe and p.pred_unsafe
        if not na_category:
            cat = 0.0
            if both_unsafe and v.category_id is not None:
                if g.category is not None and category_matches(v.category_id, g.category, g.modality):
                    cat = w.category_exact
                elif v.category_in_policy:
                    cat = w.category_other
        if not na_ood:
            ood = 0.0
            if both_unsafe and v.category_id is None and v.description and not _ID_IN_TEXT.search(v.description):
                ood = w.ood_base
                if sims:
                    ood += w.ood_bonus * self.calibration.fraction(sims)
                    similarity = {"best": max(sims), "mean": sum(sims) / len(sims)}
        total = req + (resp or 0.0) + (cat or 0.0) + (ood or 0.0) + w.format_in_total
        return RewardBreakdown(1.0, req, resp, cat, ood, total, verdict=v, similarity=similarity)


__all__ = [
    "COMPONENTS",
    "category_matches",
    "Embedder",
    "RewardBreakdown",
    "RewardScorer",
    "RewardTarget",
    "RewardWeights",
    "completion_text",
    "format_gate",
]
