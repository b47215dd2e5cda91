"""One labelled evaluation sample, whatever file format it came from.

Every dataset adapter produces ``EvalSample`` objects; the runner and the metrics only
ever see this type. Labels follow the paper's convention: ``"unsafe"`` is the positive
class, ``None`` means the dataset does not label that turn (it is then left out of that
turn's metrics, never guessed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from proguard_rails.verdict import Modality

Label = Literal["safe", "unsafe"]

_UNSAFE_WORDS = {"unsafe", "harmful", "toxic", "flagged", "1", "true", "yes", "y", "block", "blocked", "violating"}
_SAFE_WORDS = {
    "safe", "unharmful", "harmless", "benign", "non-toxic", "nontoxic", "0", "false", "no", "n", "allow",
    "allowed", "compliant",
}


def parse_label(value: Any) -> Label | None:
    """Read a binary label written the ways datasets write them.

    ``safe``/``unsafe``, ``harmful``/``unharmful``, booleans and 0/1 (1 and ``True`` mean
    *unsafe*). Empty values give ``None`` (unlabelled). Anything else raises ``ValueError``
    so a wrong column choice is noticed rather than silently read as safe.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "unsafe" if value else "safe"
    if isinstance(value, (int, float)):
        if value != value:  # NaN from pandas: unlabelled
            return None
        if value in (0, 1):
            return "unsafe" if value == 1 else "safe"
        raise ValueError(f"numeric label {value!r} is not 0 or 1")
    text = str(value).strip().casefold()
    if not text or text in {"none", "null", "nan", "n/a", "na", "-"}:
        return None
    if text in _UNSAFE_WORDS:
        return "unsafe"
    if text in _SAFE_WORDS:
        return "safe"
    raise ValueError(f"cannot read {value!r} as a safety label (expected safe/unsafe, harmful/unharmful, 0/1)")


@dataclass(frozen=True)
class EvalSample:
    """A sample and its gold labels.

    ``categories`` holds the acceptable taxonomy ids (``C8S1`` or a main ``C8``); an answer
    matching any of them is correct, and the first is the primary one (used for the
    confusion matrix and the out-of-policy hold-out). Empty means the category is unknown.
    ``images`` are file paths (or data URLs), loaded only when the sample is judged, so a
    large image dataset never sits in memory at once.
    """

    id: str
    request: str = ""
    response: str | None = None
    images: tuple[str, ...] = ()
    request_label: Label | None = None
    response_label: Label | None = None
    categories: tuple[str, ...] = ()
    source_category: str | None = None
    dataset: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def modality(self) -> Modality:
        if self.images:
            if self.request.strip() or (self.response or "").strip():
                return Modality.TEXT_IMAGE
            return Modality.IMAGE
        return Modality.TEXT

    @property
    def unsafe(self) -> bool | None:
        """Gold: is any labelled turn unsafe? ``None`` when no turn is labelled."""
        labels = [x for x in (self.request_label, self.response_label) if x is not None]
        if not labels:
            return None
        return "unsafe" in labels

    @property
    def category_known(self) -> bool:
        return bool(self.categories)

    @property
    def primary_category(self) -> str | None:
        return self.categories[0] if self.categories else None

    def main_categories(self) -> tuple[str, ...]:
        """Main ids (``C8``) of the acceptable categories, in order, without repeats."""
        seen: dict[str, None] = {}
        for cid in self.categories:
            seen.setdefault(cid.split("S", 1)[0], None)
        return tuple(seen)

    def subcategories(self) -> tuple[str, ...]:
        return tuple(c for c in self.categories if "S" in c)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dataset": self.dataset,
            "modality": str(self.modality),
            "request_label": self.request_label,
            "response_label": self.response_label,
            "categories": list(self.categories),
            "source_category": self.source_category,
        }


__all__ = ["EvalSample", "Label", "parse_label"]
