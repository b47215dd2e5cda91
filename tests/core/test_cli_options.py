"""One set of judge option names across check, scan, eval and serve; --version; shortcuts;
the request-only wording of a safe check."""

from __future__ import annotations

import argparse

import httpx
import pytest

from proguard_rails import cli
from proguard_rails.cli_options import JUDGE_OPTIONS, POLICY_OPTIONS
from proguard_rails.errors import ConfigurationError
from proguard_rails.protocol import format_answer


def parser_for(command: str) -> argparse.ArgumentParser:
    if command == "check":
        sub = cli.build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
        return sub.choices["check"]
    p = argparse.ArgumentParser()
    if command == "eval":
        from proguard_rails.eval.cli import add_arguments
    elif command == "scan":
        from proguard_rails.scan import add_arguments
    else:
        pytest.importorskip("uvicorn")
        from proguard_rails.server.run import add_arguments
    add_arguments(p)
    return p


def options_of(p: argparse.ArgumentParser) -> dict[str, str]:
    return {opt: a.dest for a in p._actions for opt in a.option_strings}


@pytest.mark.parametrize("command", ["check", "scan", "eval", "serve"])
def test_every_command_takes_the_same_judge_options(command):
    opts = options_of(parser_for(command))
    for name in JUDGE_OPTIONS:
        assert name in opts, f"{command} lacks {name}"
        assert opts[name] == name.lstrip("-").replace("-", "_")
    if command != "eval":  # eval measures judges, it applies no policy
        for name in POLICY_OPTIONS:
            assert name in opts, f"{command} lacks {name}"


def test_version(capsys):
    from proguard_rails import __version__

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"proguard-rails {__version__}"


def _args(argv):
    return parser_for("check").parse_args(argv)


def test_judge_spec_and_shortcuts_build_the_same_guard(tmp_path):
    a = cli.build_guard(_args(["x", "--judge", "openai:http://127.0.0.1:9/v1#M", "--timeout", "3"]))
    b = cli.build_guard(_args(["x", "--base-url", "http://127.0.0.1:9/v1", "--model", "M", "--timeout", "3"]))
    assert a.judge.identity() == b.judge.identity() == "generative:openai:http://127.0.0.1:9/v1:M"
    assert a.settings.timeout == b.settings.timeout == 3
    with pytest.raises(ConfigurationError, match="not both"):
        cli.build_guard(_args(["x", "--judge", "lite", "--base-url", "http://127.0.0.1:9/v1"]))


def test_fail_mode_option_wins_over_the_policy_file(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("fail_mode: open\ncategories:\n  C3S3: flag\n", encoding="utf-8")
    url = ["--judge", "openai:http://127.0.0.1:9/v1#M"]
    g = cli.build_guard(_args(["x", *url, "--config", str(cfg)]))
    assert g.policy.fail_mode == "open" and g.policy.category_actions == {"C3S3": "flag"}
    g = cli.build_guard(_args(["x", *url, "--config", str(cfg), "--fail-mode", "closed"]))
    assert g.policy.fail_mode == "closed" and g.policy.category_actions == {"C3S3": "flag"}


def test_request_only_check_says_request_judged_safe(monkeypatch, capsys):
    from proguard_rails import OpenAIBackend, ProGuard

    def handler(request):
        text = format_answer("text", "safe", "safe", None)
        return httpx.Response(200, json={"choices": [{"message": {"content": text}, "finish_reason": "stop"}]})

    monkeypatch.setattr(cli, "build_guard", lambda args: ProGuard(
        backend=OpenAIBackend("http://guard.test/v1", model="m", transport=httpx.MockTransport(handler))))
    assert cli.main(["check", "hello"]) == 0
    out = capsys.readouterr().out
    assert "ALLOWED (allow): request judged safe" in out and "response" not in out.splitlines()[0]
    assert cli.main(["check", "hello", "--response", "hi"]) == 0
    assert "request and response judged safe" in capsys.readouterr().out
