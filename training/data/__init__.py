"""Training data: one sample schema, ingesters, balance reports, the out-of-policy task,
leak-free splits, and exports for TRL and verl.

Importing this package is light (pydantic, the core); ``datasets``/``pyarrow`` load only
when an export or a parquet/HF read needs them, numpy when splitting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .balance import BalanceReport, balance_report, rebalance
from .ingest import (
    Ingested,
    load_samples,
    read_csv,
    read_hf_disk,
    read_image_folder,
    read_jsonl,
    read_parquet,
    records_to_samples,
)
from .mapping import LabelMapping
from .ood import hold_out_sample, make_out_of_policy
from .schema import GuardSample, read_samples, write_samples

if TYPE_CHECKING:  # pragma: no cover
    from .export import render_sample, save_trl, to_trl_dataset, to_verl_rows, write_verl_parquet
    from .splits import DuplicateFinder, LeakageReport, check_leakage, split_samples
    from .synthetic import smoke_samples

_LAZY = {
    "render_sample": ".export",
    "save_trl": ".export",
    "to_trl_dataset": ".export",
    "to_trl_records": ".export",
    "to_verl_rows": ".export",
    "write_verl_parquet": ".export",
    "DuplicateFinder": ".splits",
    "LeakageReport": ".splits",
    "check_leakage": ".splits",
    "split_samples": ".splits",
    "smoke_samples": ".synthetic",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)


__all__ = [
    "BalanceReport",
    "DuplicateFinder",
    "GuardSample",
    "Ingested",
    "LabelMapping",
    "LeakageReport",
    "balance_report",
    "check_leakage",
    "hold_out_sample",
    "load_samples",
    "make_out_of_policy",
    "read_csv",
    "read_hf_disk",
    "read_image_folder",
    "read_jsonl",
    "read_parquet",
    "read_samples",
    "rebalance",
    "records_to_samples",
    "render_sample",
    "save_trl",
    "smoke_samples",
    "split_samples",
    "to_trl_dataset",
    "to_trl_records",
    "to_verl_rows",
    "write_samples",
    "write_verl_parquet",
]
