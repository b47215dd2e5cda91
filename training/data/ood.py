"""The out-of-policy task: hide a sample's category from its policy, ask for a name instead.

ProGuard is "proactive": when the policy in the prompt does not cover a risk, it should
still flag the content and *name* the risk in free text rather than force-fit a listed
id. Training data for that skill is built from ordinary labelled samples: remove the
sample's category (and optionally a few random others, so that a gap in the policy is
not itself a cue) from the policy rendered into its prompt; the target becomes the
category's name, scored against its synonym bank by the reward.

Ids stay fixed when entries are held out (``Taxonomy.hold_out``): the policy shown reads
``C1, C2, C4, ...``, exactly as a user's trimmed policy would at inference.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from proguard_rails.errors import ConfigurationError
from proguard_rails.taxonomy import Taxonomy

from .schema import GuardSample

Level = Literal["category", "entry"]


def hold_out_sample(sample: GuardSample, taxonomy: Taxonomy | None = None, *, level: Level = "category",
                    extra: Sequence[str] = (), suffix: str = "") -> GuardSample:
    """A copy of ``sample`` whose own category is removed from its policy.

    ``level="category"`` removes the whole main category (``C3`` and every ``C3S*``), so no
    listed id is even close to right; ``level="entry"`` removes only the target entry (a
    subcategory keeps its parent and siblings visible, a harder contrast). ``extra`` ids
    are removed too. The target is the entry at the granularity the prompt asks for (a
    subcategory, or its main category in text-image mode) with its synonym bank.
    """
    tax = taxonomy or Taxonomy.default()
    if not sample.unsafe or not sample.category:
        raise ConfigurationError(f"sample {sample.id}: only unsafe samples with a category can be held out")
    target_id = sample.target_category(tax)
    entry = tax.find(target_id or "")
    if entry is None:
        raise ConfigurationError(f"sample {sample.id}: category {sample.category} is not in the taxonomy")
    own = tax.category_of(entry.id).id if level == "category" else entry.id
    held = list(dict.fromkeys([own, *(tax.get(x).id for x in extra)]))
    if not tax.hold_out(held).categories:
        raise ConfigurationError(f"sample {sample.id}: holding out {held} would leave an empty policy")
    return sample.model_copy(update={
        "id": sample.id + suffix,
        "held_out": held,
        "target_name": entry.name,
        "synonyms": list(entry.synonyms),
        "metadata": {**sample.metadata, "held_out_from": sample.id},
    })


def make_out_of_policy(samples: Sequence[GuardSample], taxonomy: Taxonomy | None = None, *,
                       fraction: float = 0.2, level: Level = "category", extra_holdout: int | tuple[int, int] = 0,
                       mode: Literal["replace", "augment"] = "replace", seed: int = 0) -> list[GuardSample]:
    """Turn a ``fraction`` of the eligible (unsafe, categorized) samples into out-of-policy ones.

    ``extra_holdout`` removes that many other main categories too (an int, or a
    ``(min, max)`` range drawn per sample), so the policy varies. ``mode="replace"``
    converts the chosen samples in place; ``"augment"`` keeps the originals and appends
    the held-out copies (id suffix ``-ood``); split with leak checks afterwards: a copy and
    its original share content and are grouped into the same split.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ConfigurationError(f"fraction must be in [0, 1], got {fraction}")
    tax = taxonomy or Taxonomy.default()
    rng = random.Random(seed)
    eligible = [i for i, s in enumerate(samples)
                if s.unsafe and s.category and not s.is_out_of_policy and tax.find(s.category) is not None]
    k = round(len(eligible) * fraction)
    chosen = set(rng.sample(eligible, k)) if k else set()
    main_ids = [c.id for c in tax.categories]
    lo, hi = (extra_holdout, extra_holdout) if isinstance(extra_holdout, int) else extra_holdout
    out: list[GuardSample] = []
    extras: list[GuardSample] = []
    for i, s in enumerate(samples):
        if i not in chosen:
            out.append(s)
            continue
        own_main = tax.category_of(s.target_category(tax) or "").id
        pool = [c for c in main_ids if c != own_main]
        n_extra = min(rng.randint(lo, hi), max(len(pool) - 1, 0))
        extra = rng.sample(pool, n_extra) if n_extra else []
        converted = hold_out_sample(s, tax, level=level, extra=extra, suffix="-ood" if mode == "augment" else "")
        if mode == "augment":
            out.append(s)
            extras.append(converted)
        else:
            out.append(converted)
    return out + extras


__all__ = ["hold_out_sample", "make_out_of_policy"]
