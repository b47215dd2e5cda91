"""Runs judges over datasets: queries, bounded concurrency, the disk cache, progress bars.

Each sample becomes a "main" query (full policy). For the out-of-policy tasks, unsafe
samples with a known category are also judged with that category held out of the policy
shown (``Taxonomy.hold_out``): an "ood" query. Queries are grouped by the policy they
show, cut into chunks of ``batch_size`` and sent to the judge's batch method with at most
``max_inflight`` chunks in flight; the backend bounds its own connection concurrency.
Every finished chunk is appended to the disk cache before the next result is awaited,
so an interrupted run loses at most the chunks in flight and resumes from the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from proguard_rails.errors import (
    ConfigurationError,
    InputError,
    MissingDependencyError,
    ProGuardError,
    UnjudgeableInputError,
)
from proguard_rails.inputs import GuardRequest, build_request
from proguard_rails.judges.base import Judge
from proguard_rails.scan import as_guard
from proguard_rails.settings import ProGuardSettings
from proguard_rails.taxonomy import Taxonomy

from .cache import Prediction, PredictionCache, prediction_key
from .datasets import Dataset
from .metrics import ErrorPolicy, compute_metrics
from .ood import DescriptionScorer, default_scorer
from .samples import EvalSample

Task = Literal["main", "ood"]


@dataclass(frozen=True)
class Query:
    """One thing to judge: a sample under the full policy (main) or with categories held out (ood)."""

    sample: EvalSample
    task: Task = "main"
    held_out: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scored:
    query: Query
    prediction: Prediction


@dataclass
class JudgeRun:
    """What one judge produced on one dataset."""

    judge: str
    identity: str
    dataset: str
    items: list[Scored]
    metrics: dict[str, Any]
    description_scores: dict[int, dict[str, float]] = field(default_factory=dict)
    judged: int = 0
    cached: int = 0
    seconds: float = 0.0


def select_ood(samples: Sequence[EvalSample], taxonomy: Taxonomy, *, fraction: float = 1.0,
               level: Literal["category", "subcategory"] = "category", seed: int = 0) -> list[Query]:
    """Hold-out queries for unsafe samples with a known category (a deterministic ``fraction`` of them).

    ``level="category"`` removes the sample's main categories (with their subcategories) from the
    policy shown, so no entry of the same family can be force-fitted; ``"subcategory"`` removes only
    the gold subcategories (main-level gold labels fall back to the main category).
    """
    out: list[Query] = []
    if fraction <= 0:
        return out
    for s in samples:
        if not s.unsafe or not s.categories:
            continue
        h = int(hashlib.sha256(f"{seed}|{s.dataset}|{s.id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        if h >= fraction:
            continue
        if level == "category":
            held = s.main_categories()
        else:
            held = s.subcategories() or s.main_categories()
        held = tuple(h for h in held if taxonomy.find(h) is not None)
        if not held:
            continue
        if not taxonomy.hold_out(held).categories:
            continue  # nothing left to show
        out.append(Query(s, "ood", held))
    return out


def _judge_and_settings(obj: Any) -> tuple[Judge, ProGuardSettings]:
    guard = as_guard(obj)
    return guard.judge, guard.settings


class Evaluator:
    """Evaluate several judges on several datasets.

    ``judges``: name -> ``ProGuard``, ``Judge`` or ``Backend``. ``cache_dir``: where predictions
    are kept (``None``: memory only). ``errors``: what a failed judgement predicts in task 1.
    ``scorer``: the task-4 similarity scorer (``"auto"``: the training reward's, else MiniLM).
    """

    def __init__(
        self,
        judges: Mapping[str, Any],
        *,
        taxonomy: Taxonomy | None = None,
        cache_dir: str | Path | None = None,
        batch_size: int = 32,
        max_inflight: int = 4,
        ood_fraction: float = 1.0,
        ood_level: Literal["category", "subcategory"] = "category",
        seed: int = 0,
        errors: ErrorPolicy = "unsafe",
        scorer: DescriptionScorer | Literal["auto"] | None = "auto",
        progress: bool = True,
    ) -> None:
        if not judges:
            raise ValueError("give at least one judge")
        if batch_size < 1 or max_inflight < 1:
            raise ValueError("batch_size and max_inflight must be at least 1")
        self.judges = {name: _judge_and_settings(obj) for name, obj in judges.items()}
        seen: dict[str, tuple[str, Any]] = {}
        for name, (judge, _) in self.judges.items():
            ident = judge.identity()
            original = judges[name]
            if ident in seen and seen[ident][1] is not original:
                # predictions are cached by identity: two different judges would share answers
                raise ConfigurationError(
                    f"judges {seen[ident][0]!r} and {name!r} have the same identity {ident!r}; give them "
                    "distinct identities (another model name or backend name) so their predictions stay apart"
                )
            seen[ident] = (name, original)
        self.taxonomy = taxonomy or Taxonomy.default()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch_size = batch_size
        self.max_inflight = max_inflight
        self.ood_fraction = ood_fraction
        self.ood_level = ood_level
        self.seed = seed
        self.errors = errors
        self._scorer_arg = scorer
        self._scorer: DescriptionScorer | None = None
        self._scorer_ready = False
        self.progress = progress
        self._caches: dict[str, PredictionCache] = {}

    # ------------------------------------------------------------------ pieces
    @property
    def scorer(self) -> DescriptionScorer | None:
        if not self._scorer_ready:
            self._scorer = default_scorer() if self._scorer_arg == "auto" else self._scorer_arg  # type: ignore[assignment]
            self._scorer_ready = True
        return self._scorer

    def cache_for(self, identity: str) -> PredictionCache:
        if identity not in self._caches:
            self._caches[identity] = PredictionCache(self.cache_dir, identity)
        return self._caches[identity]

    def queries(self, dataset: Dataset) -> list[Query]:
        main = [Query(s) for s in dataset.samples]
        return main + select_ood(dataset.samples, self.taxonomy, fraction=self.ood_fraction,
                                 level=self.ood_level, seed=self.seed)

    # ------------------------------------------------------------------ running
    async def apredict(self, judge_name: str, dataset: Dataset) -> JudgeRun:
        """Predictions of one judge on one dataset (from the cache where present) and their metrics."""
        judge, settings = self.judges[judge_name]
        identity = judge.identity()
        cache = self.cache_for(identity)
        queries = self.queries(dataset)
        by_policy: dict[tuple[str, ...], list[int]] = {}
        for i, q in enumerate(queries):
            by_policy.setdefault(q.held_out, []).append(i)
        policies = {held: (self.taxonomy.hold_out(held) if held else self.taxonomy) for held in by_policy}
        chunks = [
            (held, idxs[k : k + self.batch_size])
            for held, idxs in by_policy.items()
            for k in range(0, len(idxs), self.batch_size)
        ]
        results: list[Prediction | None] = [None] * len(queries)
        counters = {"judged": 0, "cached": 0}
        sem = asyncio.Semaphore(self.max_inflight)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(queries), desc=f"{judge_name} | {dataset.name}", unit="q",
                   disable=not self.progress, dynamic_ncols=True, leave=False)

        async def run_chunk(held: tuple[str, ...], idxs: list[int]) -> None:
            tax = policies[held]
            async with sem:
                requests: list[tuple[int, GuardRequest, str]] = []
                for i in idxs:
                    q = queries[i]
                    if q.sample.images and not judge.supports_images:
                        results[i] = Prediction.from_result(UnjudgeableInputError(
                            f"{judge.name} cannot judge images (text-only judge)"))
                        continue
                    try:
                        req = await asyncio.to_thread(_build, q.sample, settings) if q.sample.images \
                            else _build(q.sample, settings)
                    except ProGuardError as exc:
                        results[i] = Prediction.from_result(exc)
                        continue
                    key = prediction_key(identity, tax, req)
                    hit = cache.get(key)
                    if hit is not None:
                        results[i] = hit
                        counters["cached"] += 1
                    else:
                        requests.append((i, req, key))
                if requests:
                    try:
                        judged = await judge.ajudge_batch([r for _, r, _ in requests], tax)
                    except (ConfigurationError, MissingDependencyError):
                        raise  # a setup problem: every query would fail the same way
                    except ProGuardError as exc:  # a judge that raised for the whole batch
                        judged = [exc] * len(requests)
                    if len(judged) != len(requests):
                        raise ProGuardError(f"judge {judge_name} returned {len(judged)} results for {len(requests)}")
                    rows = []
                    for (i, _req, key), res in zip(requests, judged, strict=True):
                        pred = Prediction.from_result(res)
                        results[i] = pred
                        q = queries[i]
                        rows.append((key, pred, {"dataset": dataset.name, "sample": q.sample.id, "task": q.task,
                                                 "held_out": list(q.held_out)}))
                    cache.put_many(rows)
                    counters["judged"] += len(requests)
            bar.update(len(idxs))

        start = time.monotonic()
        warmup = getattr(judge, "warmup", None)
        if callable(warmup) and len(cache) < len(queries):
            await asyncio.to_thread(warmup)  # a missing model fails here, once, not as N errors
        try:
            await asyncio.gather(*(run_chunk(h, c) for h, c in chunks))
        finally:
            bar.close()
        items = [Scored(q, p) for q, p in zip(queries, results, strict=True) if p is not None]
        metrics, desc = compute_metrics(items, self.taxonomy, errors=self.errors, scorer=self.scorer)
        metrics["judge_identity"] = identity
        return JudgeRun(judge_name, identity, dataset.name, items, metrics, desc,
                        judged=counters["judged"], cached=counters["cached"], seconds=time.monotonic() - start)

    async def arun(self, datasets: Sequence[Dataset]) -> EvalResults:
        """Every judge on every dataset (judges one after another, so timings do not mix)."""
        from datetime import datetime, timezone

        runs: list[JudgeRun] = []
        try:
            for name in self.judges:
                for ds in datasets:
                    runs.append(await self.apredict(name, ds))
        finally:
            for c in self._caches.values():
                c.close()
        meta = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "taxonomy_fingerprint": self.taxonomy.fingerprint,
            "ood_fraction": self.ood_fraction,
            "ood_level": self.ood_level,
            "seed": self.seed,
            "error_policy": self.errors,
            "scorer": self.scorer.name if self.scorer is not None else None,
        }
        return EvalResults(meta=meta, datasets={d.name: d.stats() for d in datasets},
                           judges={n: j.identity() for n, (j, _) in self.judges.items()}, runs=runs,
                           taxonomy=self.taxonomy)

    def run(self, datasets: Sequence[Dataset]) -> EvalResults:
        """Sync ``arun`` (works inside a running event loop too)."""
        from proguard_rails._portal import run_sync

        return run_sync(self.arun(datasets))

    async def aclose(self) -> None:
        for judge, _ in self.judges.values():
            await judge.aclose()


def _build(sample: EvalSample, settings: ProGuardSettings) -> GuardRequest:
    try:
        return build_request(sample.request, sample.response, list(sample.images), settings=settings,
                             metadata={"sample": sample.id})
    except InputError:
        raise
    except OSError as exc:  # pragma: no cover - unreadable file outside the image loader's checks
        raise InputError(f"sample {sample.id}: {exc}") from exc


@dataclass
class EvalResults:
    """Everything an evaluation produced: metrics per (judge, dataset), predictions, metadata."""

    meta: dict[str, Any]
    datasets: dict[str, dict[str, Any]]
    judges: dict[str, str]
    runs: list[JudgeRun]
    taxonomy: Taxonomy

    def metrics(self, judge: str, dataset: str) -> dict[str, Any]:
        for r in self.runs:
            if r.judge == judge and r.dataset == dataset:
                return r.metrics
        raise KeyError(f"no run of {judge!r} on {dataset!r}")

    def to_dict(self) -> dict[str, Any]:
        results: dict[str, dict[str, Any]] = {}
        for r in self.runs:
            results.setdefault(r.judge, {})[r.dataset] = {
                **r.metrics,
                "run": {"judged_now": r.judged, "from_cache": r.cached, "seconds": round(r.seconds, 3)},
            }
        return {"meta": self.meta, "judges": self.judges, "datasets": self.datasets, "results": results}


__all__ = ["EvalResults", "Evaluator", "JudgeRun", "Query", "Scored", "select_ood"]
