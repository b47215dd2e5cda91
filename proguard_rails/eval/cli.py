"""``proguard-rails eval`` / ``python -m proguard_rails.eval``: judges x datasets -> report.

Example (offline, the lite judge on the project's dev set)::

    proguard-rails eval --judge lite --dataset dev=generic:training/lite/data/dev.jsonl \
        --out benchmarks/results/eval_lite
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from .datasets import ADAPTERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``proguard-rails eval``."""
    from proguard_rails.scan import JUDGE_SPEC_HELP

    parser.description = (
        "Evaluate judges on datasets: binary F1 (request/response, per modality), categorization accuracy, "
        "out-of-policy detection F1 and description similarity. Writes results.json, report.md, figures/."
    )
    parser.add_argument("--dataset", "-d", action="append", required=True, metavar="[NAME=]FORMAT:PATH",
                        help=f"a dataset file; FORMAT one of {', '.join(ADAPTERS)} (default generic); repeatable")
    parser.add_argument("--judge", "-j", action="append", metavar="[NAME=]SPEC",
                        help=f"a judge; repeatable (default: auto). SPEC: {JUDGE_SPEC_HELP}")
    parser.add_argument("--out", "-o", required=True, help="output folder for results.json, report.md, figures/")
    parser.add_argument("--cache-dir", help="prediction cache folder (default OUT/cache); reruns resume from it")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the prediction cache")
    parser.add_argument("--mapping", action="append", default=[], metavar="DATASET=SCHEME_OR_YAML",
                        help="category mapping for a dataset (default: the format's shipped mapping)")
    parser.add_argument("--taxonomy", help="custom policy YAML (default: the released policy)")
    parser.add_argument("--limit", type=int, help="first N usable rows of each dataset")
    parser.add_argument("--image-root", help="folder that relative image paths are relative to")
    parser.add_argument("--absent-flags", choices=["unknown", "safe"], default="unknown",
                        help="openai_moderation: rows with no flag set and some flags absent (default: unknown, skipped)")
    parser.add_argument("--split", default="dev",
                        help="lite format: which split's rows to read (default dev; '' for all)")
    parser.add_argument("--ood-fraction", type=float, default=1.0,
                        help="share of unsafe samples with a known category also judged with it held out (default 1)")
    parser.add_argument("--ood-level", choices=["category", "subcategory"], default="category",
                        help="hold out the main category (default) or only the subcategory")
    parser.add_argument("--seed", type=int, default=0, help="seed of the hold-out selection")
    parser.add_argument("--errors", choices=["unsafe", "safe", "exclude"], default="unsafe",
                        help="what a failed judgement predicts in binary metrics (default unsafe: fail closed)")
    parser.add_argument("--no-similarity", action="store_true", help="skip the description similarity (task 4)")
    parser.add_argument("--batch-size", type=int, default=32, help="queries per judge call (default 32)")
    parser.add_argument("--max-inflight", type=int, default=4, help="judge calls in flight (default 4)")
    parser.add_argument("--max-concurrency", type=int, help="endpoint connections [PROGUARD_MAX_CONCURRENCY]")
    parser.add_argument("--timeout", type=float, help="deadline per check in seconds [PROGUARD_TIMEOUT]")
    parser.add_argument("--model", help="model name at the endpoint (default: discovered)")
    parser.add_argument("--reference", help="published figures YAML (default: the shipped paper_results.yaml)")
    parser.add_argument("--no-reference", action="store_true", help="do not place published figures beside ours")
    parser.add_argument("--no-figures", action="store_true", help="no PNG figures")
    parser.add_argument("--no-predictions", action="store_true", help="do not write predictions/*.jsonl")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--title", default="Evaluation report", help="report title")
    parser.add_argument("--note", action="append", default=[], help="a line added to the report header")


def parse_dataset_spec(spec: str) -> tuple[str | None, str, str]:
    """``[NAME=]FORMAT:PATH`` or ``[NAME=]PATH`` -> (name, format, path)."""
    name: str | None = None
    head, eq, tail = spec.partition("=")
    if eq and head and not any(c in head for c in "/\\:."):
        name, spec = head, tail
    fmt, colon, path = spec.partition(":")
    if colon and fmt in ADAPTERS:
        return name, fmt, path
    return name, "generic", spec


def parse_judge_spec(spec: str) -> tuple[str, str]:
    """``[NAME=]SPEC`` -> (name, spec); the default name is the spec's kind."""
    head, eq, tail = spec.partition("=")
    if eq and head and not any(c in head for c in "/\\:."):
        return head, tail
    kind = "endpoint" if spec.startswith(("http://", "https://")) else spec.split(":", 1)[0]
    return kind or "auto", spec


def command_line() -> str:
    argv = list(sys.argv)
    prog = os.path.basename(argv[0]) if argv else "proguard-rails eval"
    if prog == "__main__.py":
        prog = "proguard-rails eval"
    return " ".join([prog, *(shlex.quote(a) for a in argv[1:])])


def run(args: argparse.Namespace) -> int:
    """Run ``proguard-rails eval``; 0 on success, 2 on bad usage or configuration."""
    from proguard_rails.errors import ProGuardError
    from proguard_rails.scan import guard_from_spec
    from proguard_rails.taxonomy import Taxonomy

    from .datasets import load_dataset
    from .report import SUMMARY_METRICS, load_reference, lookup, write_report
    from .runner import Evaluator

    try:
        taxonomy = Taxonomy.from_yaml(args.taxonomy) if args.taxonomy else Taxonomy.default()
        mappings = {}
        for m in args.mapping:
            ds, eq, target = m.partition("=")
            if not eq:
                raise ValueError(f"--mapping {m!r}: expected DATASET=SCHEME_OR_YAML")
            mappings[ds] = target
        datasets = []
        for spec in args.dataset:
            name, fmt, path = parse_dataset_spec(spec)
            ds_name = name or Path(path).stem
            datasets.append(load_dataset(
                path, fmt, name=ds_name, mapping=mappings.get(ds_name), taxonomy=taxonomy, limit=args.limit,
                image_root=args.image_root, absent_flags=args.absent_flags, split=args.split,
            ))
        judges: dict[str, Any] = {}
        for spec in args.judge or ["auto"]:
            jname, jspec = parse_judge_spec(spec)
            if jname in judges:
                raise ValueError(f"two judges are named {jname!r}; name them: --judge NAME=SPEC")
            judges[jname] = guard_from_spec(jspec, taxonomy=taxonomy, model=args.model,
                                            max_concurrency=args.max_concurrency, timeout=args.timeout)
        cache_dir = None if args.no_cache else (args.cache_dir or str(Path(args.out) / "cache"))
        evaluator = Evaluator(
            judges, taxonomy=taxonomy, cache_dir=cache_dir, batch_size=args.batch_size,
            max_inflight=args.max_inflight, ood_fraction=args.ood_fraction, ood_level=args.ood_level,
            seed=args.seed, errors=args.errors, scorer=None if args.no_similarity else "auto",
            progress=not args.no_progress,
        )
        for ds in datasets:
            st = ds.stats()
            skipped = sum(st["skipped"].values())
            print(f"dataset {ds.name}: {st['n']} samples ({ds.format}, {ds.path})"
                  + (f", {skipped} rows skipped: {st['skipped']}" if skipped else "")
                  + (f", unmapped categories: {st['unmapped_categories']}" if st["unmapped_categories"] else ""),
                  file=sys.stderr)
        import asyncio

        async def _main():  # type: ignore[no-untyped-def]
            try:
                return await evaluator.arun(datasets)
            finally:
                await evaluator.aclose()

        results = asyncio.run(_main())
        reference = {} if args.no_reference else load_reference(args.reference)
        paths = write_report(results, args.out, reference=reference, command=command_line(),
                             figures=not args.no_figures, predictions=not args.no_predictions,
                             title=args.title, notes=args.note)
    except (ProGuardError, ValueError, OSError) as exc:
        print(f"proguard-rails eval: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nproguard-rails eval: interrupted; rerun the same command to resume from the cache", file=sys.stderr)
        return 130
    for r in results.runs:
        parts = []
        for label, path in SUMMARY_METRICS:
            v = lookup(r.metrics, path)
            if v is not None:
                parts.append(f"{label} {100 * v:.1f}")
        print(f"{r.judge} on {r.dataset}: " + ", ".join(parts) + f" [{r.judged} judged, {r.cached} cached]")
    print(f"report: {paths['markdown']}\nresults: {paths['json']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="proguard-rails eval")
    add_arguments(parser)
    return run(parser.parse_args(argv))


__all__ = ["add_arguments", "command_line", "main", "parse_dataset_spec", "parse_judge_spec", "run"]
