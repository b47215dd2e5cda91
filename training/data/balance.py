"""Modality and class balance: reports before training, and simple rebalancing.

GRPO learns what the batches show it. A set that is 90 % unsafe text teaches the guard
to flag everything and to ignore images; the report makes that visible and
:func:`rebalance` fixes the simplest cases (down- or up-sampling on one or two keys).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from proguard_rails.verdict import Modality

from .schema import GuardSample

Key = Literal["modality", "request_label", "response_label", "label", "category", "main_category", "source",
              "out_of_policy"]


def _key_fn(key: str) -> Callable[[GuardSample], Any]:
    fns: dict[str, Callable[[GuardSample], Any]] = {
        "modality": lambda s: Modality(s.modality).value if s.modality else "text",
        "request_label": lambda s: s.request_label,
        "response_label": lambda s: s.response_label,
        "label": lambda s: "unsafe" if s.unsafe else "safe",
        "category": lambda s: s.category or ("safe" if not s.unsafe else "unknown"),
        "main_category": lambda s: (s.category.split("S", 1)[0] if s.category else
                                    ("safe" if not s.unsafe else "unknown")),
        "source": lambda s: s.source or "-",
        "out_of_policy": lambda s: s.is_out_of_policy,
    }
    if key not in fns:
        raise ValueError(f"unknown balance key {key!r}; choose from {sorted(fns)}")
    return fns[key]


@dataclass
class BalanceReport:
    """Counts by modality, label, category and source, and warnings about imbalance."""

    total: int
    by_modality: dict[str, int]
    by_label: dict[str, int]
    by_modality_label: dict[str, dict[str, int]]
    by_request_label: dict[str, int]
    by_response_label: dict[str, int]
    by_category: dict[str, int]
    by_main_category: dict[str, int]
    by_source: dict[str, int]
    out_of_policy: int
    unsafe_without_category: int
    dropped: dict[str, int] = field(default_factory=dict)  # ingestion: reason -> records left out
    unmapped: dict[str, int] = field(default_factory=dict)  # ingestion: unknown category code -> count
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def to_markdown(self) -> str:
        lines = [f"**{self.total} samples**, {self.out_of_policy} out-of-policy, "
                 f"{self.unsafe_without_category} unsafe without a category", ""]
        if self.dropped or self.unmapped:
            lines += [f"Ingestion: {sum(self.dropped.values())} records dropped, "
                      f"{sum(self.unmapped.values())} unmapped category codes", ""]
            if self.unmapped:
                lines += ["| unmapped code | records |", "|---|---:|"]
                lines += [f"| {k} | {v} |" for k, v in sorted(self.unmapped.items(), key=lambda kv: (-kv[1], kv[0]))]
                lines.append("")
            if self.dropped:
                lines += ["| dropped because | records |", "|---|---:|"]
                lines += [f"| {k} | {v} |" for k, v in sorted(self.dropped.items(), key=lambda kv: (-kv[1], kv[0]))]
                lines.append("")
        lines += ["| modality | safe | unsafe | share |", "|---|---:|---:|---:|"]
        for mod, n in sorted(self.by_modality.items()):
            ml = self.by_modality_label.get(mod, {})
            lines.append(f"| {mod} | {ml.get('safe', 0)} | {ml.get('unsafe', 0)} | {n / max(self.total, 1):.1%} |")
        lines += ["", "| main category | samples |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(self.by_main_category.items(), key=_cat_order)]
        if self.warnings:
            lines += ["", "Warnings:"] + [f"- {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()


def _cat_order(item: tuple[str, int]) -> tuple[int, int, str]:
    k = item[0]
    if k.startswith("C") and k[1:].split("S")[0].isdigit():
        return (0, int(k[1:].split("S")[0]), k)
    return (1, 0, k)


def balance_report(samples: Sequence[GuardSample], *, min_share: float = 0.1, max_ratio: float = 3.0,
                   min_per_category: int = 5, dropped: Mapping[str, int] | None = None,
                   unmapped: Mapping[str, int] | None = None) -> BalanceReport:
    """Count the set and warn where a modality, a label or a category is thin.

    Warnings: a modality under ``min_share`` of the set; a safe:unsafe ratio beyond
    ``max_ratio`` either way, overall or inside a modality; a main category with fewer
    than ``min_per_category`` unsafe samples; unsafe samples without a category (they
    give no category reward); records dropped at ingestion.

    ``dropped``/``unmapped`` (reason or code -> count) default to what an
    :class:`~training.data.ingest.Ingested` list carries (``skipped``, ``unmapped``).
    """
    if dropped is None:
        dropped = getattr(samples, "skipped", None) or {}
    if unmapped is None:
        unmapped = getattr(samples, "unmapped", None) or {}
    n = len(samples)
    by_mod = Counter(_key_fn("modality")(s) for s in samples)
    by_label = Counter(_key_fn("label")(s) for s in samples)
    by_mod_label: dict[str, Counter[str]] = defaultdict(Counter)
    for s in samples:
        by_mod_label[_key_fn("modality")(s)][_key_fn("label")(s)] += 1
    unsafe = [s for s in samples if s.unsafe]
    by_cat = Counter(s.category for s in unsafe if s.category)
    by_main = Counter(s.category.split("S", 1)[0] for s in unsafe if s.category)
    report = BalanceReport(
        total=n,
        by_modality=dict(by_mod),
        by_label=dict(by_label),
        by_modality_label={k: dict(v) for k, v in by_mod_label.items()},
        by_request_label=dict(Counter(s.request_label for s in samples)),
        by_response_label=dict(Counter(str(s.response_label) for s in samples)),
        by_category=dict(by_cat),
        by_main_category=dict(by_main),
        by_source=dict(Counter(s.source or "-" for s in samples)),
        out_of_policy=sum(s.is_out_of_policy for s in samples),
        unsafe_without_category=sum(1 for s in unsafe if not s.category and not s.is_out_of_policy),
        dropped=dict(dropped),
        unmapped=dict(unmapped),
    )
    w = report.warnings
    if report.dropped:
        w.append(f"{sum(report.dropped.values())} records were dropped at ingestion (see the dropped table)")
    if n == 0:
        w.append("the set is empty")
        return report
    for mod in (m.value for m in Modality):
        share = by_mod.get(mod, 0) / n
        if share < min_share:
            w.append(f"modality {mod}: {share:.1%} of the set (< {min_share:.0%}); the guard will see it rarely")

    def ratio_warn(where: str, counts: Counter[str] | dict[str, int]) -> None:
        s_, u_ = counts.get("safe", 0), counts.get("unsafe", 0)
        if s_ + u_ == 0:
            return
        if u_ == 0 or s_ == 0:
            w.append(f"{where}: only {'safe' if u_ == 0 else 'unsafe'} samples")
        elif max(s_ / u_, u_ / s_) > max_ratio:
            w.append(f"{where}: safe:unsafe = {s_}:{u_} (beyond {max_ratio:g}:1)")

    ratio_warn("overall", by_label)
    for mod, counts in by_mod_label.items():
        ratio_warn(f"modality {mod}", counts)
    thin = sorted((k for k, v in by_main.items() if v < min_per_category), key=lambda k: _cat_order((k, 0)))
    if thin:
        w.append(f"main categories with fewer than {min_per_category} unsafe samples: {', '.join(thin)}")
    if report.unsafe_without_category:
        w.append(f"{report.unsafe_without_category} unsafe samples have no category (no category reward)")
    return report


def rebalance(samples: Sequence[GuardSample], by: Key | Sequence[Key] = ("modality", "label"), *,
              strategy: Literal["downsample", "upsample"] = "downsample", target: int | None = None,
              seed: int = 0) -> list[GuardSample]:
    """Equalize the groups defined by ``by`` (one key or several combined).

    ``downsample`` cuts every group to the smallest group's size (or ``target``);
    ``upsample`` repeats samples of small groups up to the largest size (or ``target``).
    Repeats keep their id, so leak checks still see them as the same sample; split
    before up-sampling.
    """
    keys = [by] if isinstance(by, str) else list(by)
    fns = [_key_fn(k) for k in keys]
    groups: dict[tuple[Any, ...], list[GuardSample]] = defaultdict(list)
    for s in samples:
        groups[tuple(f(s) for f in fns)].append(s)
    if not groups:
        return []
    rng = random.Random(seed)
    sizes = [len(g) for g in groups.values()]
    size = target if target is not None else (min(sizes) if strategy == "downsample" else max(sizes))
    out: list[GuardSample] = []
    for key in sorted(groups, key=repr):
        g = list(groups[key])
        rng.shuffle(g)
        if len(g) >= size:
            out.extend(g[:size])
        else:
            out.extend(g)
            if strategy == "upsample":
                out.extend(rng.choice(g) for _ in range(size - len(g)))
    rng.shuffle(out)
    return out


__all__ = ["BalanceReport", "balance_report", "rebalance"]
