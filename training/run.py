"""Command line: ``python -m training.run --config CONFIG.yaml`` (GRPO), and sub-commands.

::

    python -m training.run --config training/configs/cpu_smoke.yaml
    python -m training.run --config my.yaml --set grpo.max_steps=100 --set lora.enabled=true
    python -m training.run --config my.yaml --resume            # latest checkpoint in output_dir
    python -m training.run --config my.yaml --resume runs/x/checkpoint-200
    python -m training.run --config my.yaml --check             # validate config and data, then exit
    python -m training.run export --data data.jsonl --mapping map.yaml --out-dir exports/ --ood 0.2
    python -m training.run lite ...                             # the lite judge trainer (training.lite)

Multi-GPU: ``accelerate launch [--config_file training/configs/accelerate/deepspeed_zero2.yaml]
-m training.run --config CONFIG.yaml``.

Exit codes: 0 done, 2 configuration or data error (the message says what to change),
3 a missing optional dependency (the message names the extra to install).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from proguard_rails.errors import ConfigurationError, MissingDependencyError


def _lite(argv: Sequence[str]) -> int:
    """Delegate to the lite judge trainer, imported only now."""
    try:
        mod = importlib.import_module("training.lite")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("training.lite"):
            print("training.lite is not available in this installation (the lite judge trainer is not "
                  "installed); nothing to run.", file=sys.stderr)
            return 2
        raise
    for target in ("training.lite.cli", "training.lite.__main__"):
        try:
            sub = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name == target:
                continue
            raise
        if hasattr(sub, "main"):
            return int(sub.main(list(argv)) or 0)
    if hasattr(mod, "main"):
        return int(mod.main(list(argv)) or 0)
    print("training.lite has no command-line entry point (main)", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.run",
        description="GRPO training of a ProGuard-style guard (TRL). Sub-commands: export, lite.",
    )
    p.add_argument("--config", "-c", required=True, help="training config YAML (see training/configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set grpo.max_steps=3 (repeatable)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                   help="resume from the latest checkpoint in output_dir, or from CHECKPOINT")
    p.add_argument("--output-dir", help="override output_dir")
    p.add_argument("--check", action="store_true", help="validate the config and the data, print a report, exit")
    p.add_argument("--quiet", "-q", action="store_true", help="less logging")
    return p


def _export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.run export",
                                description="Ingest samples, build leak-free splits, write TRL and verl exports.")
    p.add_argument("--data", required=True, action="append", help="samples source (repeatable)")
    p.add_argument("--mapping", help="mapping YAML for the sources")
    p.add_argument("--taxonomy", help="policy YAML (default: the released taxonomy)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--ood", type=float, default=0.0, help="out-of-policy fraction of unsafe samples")
    p.add_argument("--extra-holdout", type=int, default=0)
    p.add_argument("--split", default="train=0.9,test=0.1", help="e.g. train=0.8,validation=0.1,test=0.1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=["trl", "verl", "both"], default="both")
    dup = p.add_argument_group("leak-free splits (training.data.splits.DuplicateFinder)")
    dup.add_argument("--near-threshold", type=float, default=0.6,
                     help="character 5-gram Jaccard at which two texts are near-duplicates (default 0.6)")
    dup.add_argument("--containment", type=float, default=0.9,
                     help="share of one text's 5-grams inside another's that makes them near-duplicates (default 0.9)")
    dup.add_argument("--template-span", type=int, default=3,
                     help="words template variants may differ in, e.g. a name (default 3; 0 turns it off)")
    dup.add_argument("--template-min-shared", type=float, default=0.7,
                     help="share of the longer text's words template variants share (default 0.7)")
    return p


def export_main(argv: Sequence[str]) -> int:
    from proguard_rails.taxonomy import Taxonomy

    from .data import balance_report, check_leakage, load_samples, make_out_of_policy, split_samples
    from .data.export import save_trl, write_verl_parquet

    a = _export_parser().parse_args(list(argv))
    tax = Taxonomy.from_yaml(a.taxonomy) if a.taxonomy else Taxonomy.default()
    from collections import Counter

    samples: list[Any] = []
    dropped: Counter[str] = Counter()
    unmapped: Counter[str] = Counter()
    for src in a.data:
        got = load_samples(src, a.mapping, taxonomy=tax)
        if got.skipped:
            print(f"{src}: dropped {sum(got.skipped.values())} records: {dict(got.skipped)}", file=sys.stderr)
        dropped.update(got.skipped)
        unmapped.update(got.unmapped)
        samples.extend(got)
    if a.ood:
        samples = make_out_of_policy(samples, tax, fraction=a.ood, extra_holdout=a.extra_holdout, seed=a.seed)
    try:
        fractions = {k: float(v) for k, v in (x.split("=") for x in a.split.split(","))}
    except ValueError as exc:
        raise ConfigurationError(f"--split {a.split!r}: expected name=fraction pairs") from exc
    from .data.splits import DuplicateFinder

    try:
        finder = DuplicateFinder(threshold=a.near_threshold, containment=a.containment,
                                 template_max_span=a.template_span, template_min_shared=a.template_min_shared,
                                 seed=a.seed)
    except ValueError as exc:
        raise ConfigurationError(f"leak-check settings: {exc}") from exc
    splits = split_samples(samples, fractions, seed=a.seed, finder=finder)
    leaks = check_leakage(splits, finder=finder)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"leakage": leaks.summary(), "duplicate_finder": dataclasses.asdict(finder),
                               "dropped": dict(dropped), "unmapped": dict(unmapped), "splits": {}}
    for name, part in splits.items():
        if not part:
            continue
        if a.format in ("trl", "both"):
            save_trl(part, out / "trl" / name, tax)
        if a.format in ("verl", "both"):
            write_verl_parquet(part, out / "verl" / f"{name}.parquet", tax, split=name)
        summary["splits"][name] = balance_report(part).to_dict()
    (out / "report.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    print(balance_report(samples, dropped=dropped, unmapped=unmapped).to_markdown())
    print(leaks.summary())
    print(f"wrote {out}")
    return 0


def train_main(argv: Sequence[str]) -> int:
    from .config import load_config
    from .grpo import build_datasets, configure_logging, load_taxonomy, run

    a = _parser().parse_args(list(argv))
    configure_logging(logging.WARNING if a.quiet else logging.INFO)
    overrides = list(a.overrides)
    if a.output_dir:
        overrides.append(f"output_dir={a.output_dir}")
    cfg = load_config(a.config, overrides)
    if a.resume is not None:
        cfg = cfg.model_copy(update={"resume_from_checkpoint": a.resume})
    if a.check:
        tax = load_taxonomy(cfg)
        from .grpo import build_grpo_args

        build_grpo_args(cfg)
        train, evald, info = build_datasets(cfg, tax)
        print(json.dumps({"config": "ok", "train_rows": len(train), "eval_rows": len(evald) if evald else 0,
                          **{k: v for k, v in info.items() if k != "balance"}}, indent=2, default=str))
        return 0
    result = run(cfg)
    print(json.dumps({"output_dir": str(result.output_dir), "final_dir": str(result.final_dir),
                      "global_step": result.global_step, "metrics": str(result.metrics_path),
                      "resumed_from": result.resumed_from}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "lite":
            return _lite(args[1:])
        if args and args[0] == "export":
            return export_main(args[1:])
        return train_main(args)
    except MissingDependencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (ConfigurationError, FileNotFoundError, ValueError) as exc:
        # ValueError: a data record the ingesters cannot use (the message names file and row).
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
