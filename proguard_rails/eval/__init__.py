"""Evaluation harness: the ProGuard paper's four tasks for any judge, on your data and public
benchmark formats, with reports (JSON, markdown, PNG) and a resumable prediction cache.

``import proguard_rails.eval`` stays light; the pieces load on first use::

    from proguard_rails.eval import Evaluator, load_dataset, write_report
    ds = load_dataset("dev.jsonl", "generic", name="dev")
    results = Evaluator({"lite": ProGuard(backend="lite")}, cache_dir="runs/cache").run([ds])
    write_report(results, "runs/eval")

See docs/evaluation.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .cache import Prediction, PredictionCache
    from .datasets import ADAPTERS, Dataset, load_dataset, read_rows
    from .mapping import CategoryMapping, builtin_mappings
    from .metrics import compute_metrics, prf
    from .ood import DescriptionScorer, SimilarityScorer, default_scorer
    from .report import load_reference, render_markdown, write_figures, write_report
    from .runner import EvalResults, Evaluator, Query, Scored, select_ood
    from .samples import EvalSample, parse_label

_LAZY = {
    "Prediction": ".cache", "PredictionCache": ".cache",
    "ADAPTERS": ".datasets", "Dataset": ".datasets", "load_dataset": ".datasets", "read_rows": ".datasets",
    "CategoryMapping": ".mapping", "builtin_mappings": ".mapping",
    "compute_metrics": ".metrics", "prf": ".metrics",
    "DescriptionScorer": ".ood", "SimilarityScorer": ".ood", "default_scorer": ".ood",
    "load_reference": ".report", "render_markdown": ".report", "write_figures": ".report", "write_report": ".report",
    "EvalResults": ".runner", "Evaluator": ".runner", "Query": ".runner", "Scored": ".runner",
    "select_ood": ".runner",
    "EvalSample": ".samples", "parse_label": ".samples",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)


__all__ = [
    "ADAPTERS",
    "CategoryMapping",
    "Dataset",
    "DescriptionScorer",
    "EvalResults",
    "EvalSample",
    "Evaluator",
    "Prediction",
    "PredictionCache",
    "Query",
    "Scored",
    "SimilarityScorer",
    "builtin_mappings",
    "compute_metrics",
    "default_scorer",
    "load_dataset",
    "load_reference",
    "parse_label",
    "prf",
    "read_rows",
    "render_markdown",
    "select_ood",
    "write_figures",
    "write_report",
]
