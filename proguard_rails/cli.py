"""``proguard-rails`` command line.

check     judge one text / (request, response) / image; exit codes in CHECK_EXIT_CODES below
eval      run judges over datasets and report the paper's four tasks (proguard_rails.eval)
scan      moderate a whole file or image folder, resumable
serve     the guard server: OpenAI-compatible /v1/moderations, /v1/check, health, metrics
taxonomy  print the policy (default, or a custom YAML) as the model sees it
prompt    print the exact chat messages a check would send (debugging)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

EXIT_ALLOWED = 0
EXIT_BLOCKED = 1
EXIT_ERROR = 2  # bad usage or configuration: nothing was judged
EXIT_ERROR_ALLOWED = 3  # the guard failed and fail-open let the content through unjudged

CHECK_EXIT_CODES = """\
exit codes:
  0  allowed: judged safe, or let through by the policy
  1  blocked: judged unsafe, OR the guard failed (endpoint down or refusing, timeout,
     unreadable answer) under --fail-mode closed (the default), OR the input was refused
     (corrupt image, HTTP 400 from the endpoint...: these block under both fail modes)
  2  bad usage or configuration: nothing was judged
  3  the guard failed (endpoint down, timeout, unreadable answer) under --fail-mode open:
     the content was let through unjudged
  An endpoint error is therefore exit 1 with --fail-mode closed and exit 3 with --fail-mode open;
  --json prints status "error", error_type and fail_mode_applied in both cases."""


def _add_guard_options(p: argparse.ArgumentParser) -> None:
    from .cli_options import add_judge_options

    add_judge_options(p)  # --judge --model --timeout --max-concurrency; --config --fail-mode --taxonomy --hold-out
    # shortcuts kept from earlier releases; --judge is the name every command shares
    g = p.add_argument_group("judge shortcuts")
    g.add_argument("--base-url", help="same as --judge openai:URL [PROGUARD_BASE_URL]")
    g.add_argument("--model-path", help="same as --judge transformers:PATH [PROGUARD_MODEL_PATH]")
    g.add_argument("--backend", choices=["auto", "openai", "transformers", "vllm", "lite"],
                   help="with --model-path: vllm for in-process vLLM; lite: --judge lite [PROGUARD_BACKEND]")


def build_guard(args: argparse.Namespace) -> Any:
    """A ProGuard from CLI options (explicit options win over PROGUARD_* variables)."""
    from .cli_options import guard_from_args
    from .errors import ConfigurationError

    spec = getattr(args, "judge", None)
    base_url, model_path, backend = (getattr(args, k, None) for k in ("base_url", "model_path", "backend"))
    if spec and (base_url or model_path or backend):
        raise ConfigurationError("give --judge, or the --base-url/--model-path/--backend shortcuts, not both")
    if base_url:
        spec = f"openai:{base_url}"
    elif model_path:
        spec = f"{'vllm' if backend == 'vllm' else 'transformers'}:{model_path}"
    elif backend == "lite":
        spec = "lite"
    elif backend not in (None, "auto"):
        raise ConfigurationError(f"--backend {backend} needs --base-url or --model-path (or use --judge)")
    return guard_from_args(args, judge=spec)


def _read_text(value: str | None) -> str | None:
    if value == "-":
        return sys.stdin.read()
    return value


def cmd_check(args: argparse.Namespace) -> int:
    from .errors import ProGuardError

    text = _read_text(args.text)
    response = _read_text(args.response)
    images = list(args.image or [])
    if not text and not response and not images:
        print("proguard-rails check: give TEXT, --response or --image (TEXT '-' reads stdin)", file=sys.stderr)
        return EXIT_ERROR
    try:
        guard = build_guard(args)
    except ProGuardError as exc:
        print(f"proguard-rails: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        decision = guard.check(text or "", response, images=images or None)
    finally:
        guard.close()
    if args.json:
        print(json.dumps(decision.to_dict(), ensure_ascii=False, indent=2))
    else:
        word = {"allowed": "ALLOWED", "blocked": "BLOCKED", "error": "ERROR"}[decision.status]
        action = "allow" if decision.allowed else "block"
        print(f"{word} ({action}): {decision.reason}")
        v = decision.verdict
        if v is not None:
            print(f"  {v.summary()}  [judge: {v.judge}]")
            if v.truncated:
                print("  note: input was truncated (head and tail kept)")
    if decision.status == "error" and decision.allowed:
        return EXIT_ERROR_ALLOWED
    return EXIT_ALLOWED if decision.allowed else EXIT_BLOCKED


def cmd_taxonomy(args: argparse.Namespace) -> int:
    from .taxonomy import Taxonomy

    tax = Taxonomy.from_yaml(args.taxonomy) if args.taxonomy else Taxonomy.default()
    if args.hold_out:
        tax = tax.hold_out(args.hold_out)
    if args.yaml:
        print(tax.to_yaml(), end="")
    else:
        print(tax.render().strip("\n"))
    return 0


def cmd_prompt(args: argparse.Namespace) -> int:
    from .inputs import normalize
    from .protocol import render
    from .taxonomy import Taxonomy

    tax = Taxonomy.from_yaml(args.taxonomy) if args.taxonomy else Taxonomy.default()
    if args.hold_out:
        tax = tax.hold_out(args.hold_out)
    req = normalize(_read_text(args.text) or "", _read_text(args.response), args.image or None)
    rendered = render(req, tax)
    messages = rendered.to_messages()
    for part in messages[1]["content"]:
        if part["type"] == "image_url":
            part["image_url"]["url"] = part["image_url"]["url"][:48] + "...(truncated for display)"
    print(json.dumps(messages, ensure_ascii=False, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="proguard-rails", description="ProGuard safety guard tools")
    parser.add_argument("--version", action="version", version=f"proguard-rails {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="judge one input; exit 0 allowed, 1 blocked (also a guard error under "
                                     "fail-mode closed), 2 bad usage, 3 guard error let through by fail-mode open",
                       epilog=CHECK_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", nargs="?", help="the user's request ('-' reads stdin)")
    p.add_argument("--response", help="the agent's response to judge with the request")
    p.add_argument("--image", action="append", help="image path (no text: image mode; with text: text-image)")
    p.add_argument("--json", action="store_true", help="print the decision as JSON")
    _add_guard_options(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("taxonomy", help="print the policy as the model sees it")
    p.add_argument("--taxonomy", help="custom policy YAML")
    p.add_argument("--hold-out", action="append", default=[], metavar="ID")
    p.add_argument("--yaml", action="store_true", help="print YAML (with ids) instead of the prompt block")
    p.set_defaults(func=cmd_taxonomy)

    p = sub.add_parser("prompt", help="print the chat messages a check would send")
    p.add_argument("text", nargs="?")
    p.add_argument("--response")
    p.add_argument("--image", action="append")
    p.add_argument("--taxonomy")
    p.add_argument("--hold-out", action="append", default=[], metavar="ID")
    p.set_defaults(func=cmd_prompt)

    # eval and scan live in their own modules; their options are added lazily so that a
    # missing optional dependency only affects that subcommand.
    p = sub.add_parser("eval", help="evaluate judges on datasets (the paper's four tasks)", add_help=False)
    p.set_defaults(func=None, delegate="eval")
    p = sub.add_parser("scan", help="moderate a JSONL/CSV/parquet file or image folder", add_help=False)
    p.set_defaults(func=None, delegate="scan")
    p = sub.add_parser("serve", help="run the guard server (OpenAI-compatible moderation API)", add_help=False)
    p.set_defaults(func=None, delegate="serve")
    return parser


def _delegate(command: str, argv: Sequence[str]) -> int:
    if command == "eval":
        from proguard_rails.eval.cli import add_arguments, run
    elif command == "serve":
        from .server.run import add_arguments  # type: ignore[assignment]
        from .server.run import run_cli as run  # type: ignore[assignment]
    else:
        from .scan import add_arguments  # type: ignore[assignment]
        from .scan import run_cli as run
    p = argparse.ArgumentParser(prog=f"proguard-rails {command}")
    add_arguments(p)
    args = p.parse_args(list(argv))
    return int(run(args))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("eval", "scan", "serve"):
        return _delegate(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
