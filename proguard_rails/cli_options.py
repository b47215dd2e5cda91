"""The judge and policy options shared by ``check``, ``scan``, ``eval`` and ``serve``.

Judge options (every command that judges): ``--judge SPEC``, ``--model``, ``--timeout``,
``--max-concurrency``. Policy options (commands that decide): ``--config``, ``--fail-mode``,
``--taxonomy``, ``--hold-out``. ``eval`` measures judges, not policies: it takes the judge
options (``--judge`` repeatable, as ``[NAME=]SPEC``) and ``--taxonomy``.
"""

from __future__ import annotations

import argparse
from typing import Any

JUDGE_OPTIONS = ("--judge", "--model", "--timeout", "--max-concurrency")
POLICY_OPTIONS = ("--config", "--fail-mode", "--taxonomy", "--hold-out")


def judge_spec_help() -> str:
    from .scan import JUDGE_SPEC_HELP

    return JUDGE_SPEC_HELP


def add_judge_options(parser: argparse.ArgumentParser, *, policy: bool = True) -> None:
    """``--judge --model --timeout --max-concurrency`` (and the policy options)."""
    g = parser.add_argument_group("judge")
    g.add_argument("--judge", "-j", default=None, metavar="SPEC",
                   help=f"which judge [default: auto]: {judge_spec_help()}")
    g.add_argument("--model", help="model name at the endpoint; discovered from /v1/models if omitted [PROGUARD_MODEL]")
    g.add_argument("--timeout", type=float, help="deadline per check in seconds [PROGUARD_TIMEOUT]")
    g.add_argument("--max-concurrency", type=int,
                   help="concurrent requests to the judge's endpoint [PROGUARD_MAX_CONCURRENCY]")
    if policy:
        add_policy_options(parser)


def add_policy_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("policy")
    g.add_argument("--config", metavar="FILE",
                   help="policy file (YAML/TOML): per-category actions and thresholds, out-of-policy "
                        "action, fail mode [PROGUARD_CONFIG]")
    g.add_argument("--fail-mode", choices=["closed", "open"],
                   help="what a guard error does: closed blocks (check exits 1), open lets the content through "
                        "(check exits 3); wins over the policy file [PROGUARD_FAIL_MODE]")
    g.add_argument("--taxonomy", help="custom taxonomy YAML (default: the released policy, or the policy file's)")
    g.add_argument("--hold-out", action="append", default=[], metavar="ID",
                   help="hide a category from the policy shown to the model (repeatable)")


def guard_from_args(args: argparse.Namespace, judge: str | None = None, **extra: Any) -> Any:
    """A ``ProGuard`` from the shared options (explicit options win over ``PROGUARD_*`` variables)."""
    from .scan import guard_from_spec
    from .taxonomy import Taxonomy

    taxonomy = None
    if getattr(args, "taxonomy", None):
        taxonomy = Taxonomy.from_yaml(args.taxonomy)
    if getattr(args, "hold_out", None):
        taxonomy = (taxonomy or Taxonomy.default()).hold_out(args.hold_out)
    guard = guard_from_spec(
        judge if judge is not None else getattr(args, "judge", None),
        taxonomy=taxonomy,
        model=getattr(args, "model", None),
        timeout=getattr(args, "timeout", None),
        max_concurrency=getattr(args, "max_concurrency", None),
        fail_mode=getattr(args, "fail_mode", None),
        config=getattr(args, "config", None),
        **extra,
    )
    if getattr(args, "fail_mode", None):  # the option wins over the policy file's fail_mode
        guard.policy = guard.policy.model_copy(update={"fail_mode": args.fail_mode})
    return guard


__all__ = ["JUDGE_OPTIONS", "POLICY_OPTIONS", "add_judge_options", "add_policy_options", "guard_from_args"]
