"""The OpenAI Moderations API on top of ProGuard decisions.

Request: ``{"input": ..., "model": ...}`` where ``input`` is a string, a list of strings (one
result each) or a list of ``{"type": "text", "text": ...}`` / ``{"type": "image_url",
"image_url": {"url": ...}}`` parts (one input, one result: the texts are judged together
with the images, as OpenAI's omni-moderation does).

Response: ``{"id", "model", "results": [...]}``; each result has ``flagged``, ``categories``,
``category_scores`` and ``category_applied_input_types`` under OpenAI's 13 category names,
and ``proguard``: the full ProGuard decision (status, category id and names, request and
response labels, the out-of-policy flag and its free-text description, the reason, and the
error when the guard failed).

Meaning of the fields:

* ``flagged`` is the policy's answer: true when the check is blocked (an unsafe verdict the
  policy blocks, or a guard error under fail-closed) or flagged (policy action ``flag``).
* ``categories[name]`` is true when ``flagged`` and the ProGuard category maps to ``name``
  (table :data:`PROGUARD_TO_OPENAI`, documented in docs/server.md). A flagged result may set no
  OpenAI category: ProGuard categories without an OpenAI counterpart (copyright,
  misinformation, privacy, environmental hazards, manipulation), out-of-policy risks, and errors.
  Read ``proguard`` for those.
* ``category_scores[name]``: the judge's unsafe probability for the mapped names when the judge
  gives scores (the lite judge), else 1.0 for the mapped names of an unsafe verdict; 0 otherwise.
* ``category_applied_input_types[name]``: the input's types (``text``, ``image``) the category
  applies to; OpenAI scores images only for self-harm, sexual and violence categories.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ..taxonomy import Taxonomy
from ..verdict import Decision

#: OpenAI's moderation categories (omni-moderation), in the API's order
OPENAI_CATEGORIES: tuple[str, ...] = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)
#: categories OpenAI also applies to images
IMAGE_CATEGORIES = frozenset({"self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "violence",
                              "violence/graphic"})

#: ProGuard subcategory (released taxonomy) -> OpenAI categories it corresponds to. Ids not listed
#: have no OpenAI counterpart. A main-category answer (``C8``, as the text-image prompt asks for)
#: maps to what all of its subcategories share.
PROGUARD_TO_OPENAI: dict[str, tuple[str, ...]] = {
    "C3S1": ("illicit",),                                  # Fraud and Scams
    "C3S3": ("sexual",),                                   # Sexual Suggestive Content
    "C4S1": ("illicit",),                                  # System Intrusion and Vulnerabilities
    "C4S2": ("illicit",),                                  # Malicious Software and Hacking Tools
    "C6S1": ("illicit",),                                  # Financial Fraud
    "C6S2": ("illicit",),                                  # Illegal Trade
    "C7S1": ("hate",),                                     # Hate Speech and Discrimination
    "C7S2": ("illicit", "illicit/violent", "violence"),    # Extremism and Terrorism
    "C7S3": ("violence", "violence/graphic"),              # Horrific Content
    "C8S1": ("illicit", "illicit/violent"),                # Weapons
    "C8S2": ("illicit", "illicit/violent"),                # Biological, Chemical, and Radioactive Materials
    "C8S3": ("illicit",),                                  # Illegal Drugs and Narcotics
    "C9S1": ("self-harm",),                                # Self-Harm and Suicide
    "C9S2": ("violence",),                                 # Animal Abuse
    "C9S3": ("illicit", "illicit/violent", "violence"),    # Violent and Property Crime
    "C10S1": ("violence", "violence/graphic"),             # Medical Scenes
    "C10S2": ("violence", "violence/graphic"),             # Accident Scenes
    "C10S3": ("violence", "violence/graphic"),             # Killing Scenes
    "C11S1": ("sexual", "sexual/minors"),                  # Inappropriate Exposure of Minors
    "C11S2": ("sexual",),                                  # Exposure of Sexual Organs
}


def category_map(taxonomy: Taxonomy) -> dict[str, tuple[str, ...]]:
    """The mapping for ``taxonomy``: entries whose id names the same (sub)category as in the
    released taxonomy (a custom policy that reuses an id for something else gets no mapping),
    plus main categories mapped to what all their subcategories share."""
    default = Taxonomy.default()
    out: dict[str, tuple[str, ...]] = {}
    for sid, names in PROGUARD_TO_OPENAI.items():
        ours, ref = taxonomy.find(sid), default.find(sid)
        if ours is not None and ref is not None and ours.name == ref.name:
            out[sid] = names
    for cat in default.categories:
        ours = taxonomy.find(cat.id)
        if ours is None or ours.name != cat.name:
            continue
        shared: set[str] | None = None
        for sub in cat.subcategories:
            sub_names = set(PROGUARD_TO_OPENAI.get(sub.id, ()))
            shared = sub_names if shared is None else shared & sub_names
        if shared:
            out[cat.id] = tuple(n for n in OPENAI_CATEGORIES if n in shared)
    return out


def new_id() -> str:
    return f"modr-{uuid.uuid4().hex}"


def proguard_field(decision: Decision, judge_name: str, *, include_raw: bool = False) -> dict[str, Any]:
    """The full ProGuard decision carried beside the OpenAI fields (and returned by /v1/check)."""
    d = decision.to_dict()
    d["allowed"] = decision.allowed
    d["judge"] = judge_name  # the public model name, not the judge's internal address
    d["category_id"] = d.pop("category")
    d["error"] = (
        {"type": decision.error_type, "message": decision.error_message} if decision.status == "error" else None
    )
    d.pop("error_type", None)
    if decision.verdict is not None:
        d["cached"] = decision.verdict.cached
    if not include_raw:
        d.pop("raw", None)
    return d


def moderation_result(
    decision: Decision,
    input_types: Sequence[str],
    mapping: Mapping[str, tuple[str, ...]],
    judge_name: str,
    *,
    labels: str = "both",
    include_raw: bool = False,
) -> dict[str, Any]:
    """One ``results[]`` entry."""
    v = decision.verdict
    flagged = (not decision.allowed) or decision.flagged
    mapped: tuple[str, ...] = ()
    if v is not None and v.category_id and not v.is_out_of_policy:
        mapped = mapping.get(v.category_id, ())
    score = 0.0
    if v is not None and v.unsafe:
        s = v.scores or {}
        keys = {"both": ("request_unsafe", "response_unsafe"), "request": ("request_unsafe",),
                "response": ("response_unsafe",)}.get(labels, ("request_unsafe", "response_unsafe"))
        values = [float(s[k]) for k in keys if k in s]
        score = max(values) if values else 1.0
    categories = {name: bool(flagged and name in mapped) for name in OPENAI_CATEGORIES}
    scores = {name: (score if name in mapped else 0.0) for name in OPENAI_CATEGORIES}
    applied = {
        name: [t for t in input_types if t == "text" or (t == "image" and name in IMAGE_CATEGORIES)]
        for name in OPENAI_CATEGORIES
    }
    return {
        "flagged": flagged,
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": applied,
        "proguard": proguard_field(decision, judge_name, include_raw=include_raw),
    }


__all__ = [
    "IMAGE_CATEGORIES",
    "OPENAI_CATEGORIES",
    "PROGUARD_TO_OPENAI",
    "category_map",
    "moderation_result",
    "new_id",
    "proguard_field",
]
