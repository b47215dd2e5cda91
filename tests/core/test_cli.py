import json
import subprocess
import sys

import httpx
import pytest

from proguard_rails import cli
from proguard_rails.protocol import format_answer


class FakeGuard:
    """Stands in for ProGuard so CLI exit codes are tested without a model."""

    def __init__(self, decision):
        self.decision = decision
        self.calls = []

    def check(self, text, response=None, images=None):
        self.calls.append((text, response, images))
        return self.decision

    def close(self):
        pass


def run_cli(monkeypatch, capsys, argv, backend):
    from proguard_rails import OpenAIBackend, ProGuard

    def build(args):
        return ProGuard(backend=OpenAIBackend("http://guard.test/v1", model="m",
                                              transport=httpx.MockTransport(backend)))

    monkeypatch.setattr(cli, "build_guard", build)
    code = cli.main(argv)
    return code, capsys.readouterr().out


def answer(text):
    def handler(request):
        return httpx.Response(200, json={"choices": [{"message": {"content": text}, "finish_reason": "stop"}]})
    return handler


def test_cli_allowed_exit_0(monkeypatch, capsys):
    code, out = run_cli(monkeypatch, capsys, ["check", "hello", "--json"],
                        answer(format_answer("text", "safe", "safe", None)))
    assert code == 0
    data = json.loads(out)
    assert data["decision"] == "allow" and data["request"] == "safe" and data["error"] is None


def test_cli_blocked_exit_1_with_out_of_policy(monkeypatch, capsys):
    code, out = run_cli(monkeypatch, capsys, ["check", "q", "--response", "r", "--json"],
                        answer(format_answer("text", "unsafe", "unsafe", "Organ Trafficking Scheme")))
    assert code == 1
    data = json.loads(out)
    for key in ("decision", "request", "response", "category", "out_of_policy", "description", "error"):
        assert key in data
    assert data["out_of_policy"] is True and data["description"] == "Organ Trafficking Scheme"


def test_cli_error_fail_closed_is_exit_1_fail_open_is_exit_3(monkeypatch, capsys):
    code, out = run_cli(monkeypatch, capsys, ["check", "q"], answer("gibberish"))
    assert code == 1 and out.startswith("ERROR (block)")

    from proguard_rails import OpenAIBackend, ProGuard

    monkeypatch.setattr(cli, "build_guard", lambda args: ProGuard(
        backend=OpenAIBackend("http://guard.test/v1", model="m", transport=httpx.MockTransport(answer("x"))),
        fail_mode="open"))
    assert cli.main(["check", "q", "--json"]) == cli.EXIT_ERROR_ALLOWED == 3  # not 2: that is bad usage
    assert json.loads(capsys.readouterr().out)["error"]


@pytest.mark.parametrize(("fail_mode", "status", "code"), [
    ("closed", 503, 1), ("open", 503, 3),  # endpoint error: follows the fail mode
    ("closed", 400, 1), ("open", 400, 1),  # the endpoint refused this input: blocks in both modes
])
def test_cli_endpoint_error_exit_code_per_fail_mode(monkeypatch, capsys, fail_mode, status, code):
    from proguard_rails import OpenAIBackend, ProGuard

    def handler(request):
        return httpx.Response(status, json={"error": {"message": "nope"}})

    monkeypatch.setattr(cli, "build_guard", lambda args: ProGuard(
        backend=OpenAIBackend("http://guard.test/v1", model="m", transport=httpx.MockTransport(handler),
                              max_retries=0), fail_mode=fail_mode))
    assert cli.main(["check", "q", "--json"]) == code
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "error" and data["fail_mode_applied"] == ("open" if code == 3 else "closed")


def test_cli_help_states_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        cli.main(["check", "--help"])
    out = capsys.readouterr().out
    assert "exit 1 with --fail-mode closed and exit 3 with --fail-mode open" in " ".join(out.split())


def test_cli_image_modality(monkeypatch, capsys, tmp_path):
    from tests.helpers import png_bytes

    img = tmp_path / "a.png"
    img.write_bytes(png_bytes())
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"message": {"content": format_answer("image", "safe")}}]})

    code, out = run_cli(monkeypatch, capsys, ["check", "--image", str(img), "--json"], handler)
    assert code == 0 and json.loads(out)["modality"] == "image"
    system = seen[0]["messages"][0]["content"]
    assert "Check if a single image contains unsafe content" in system


def test_cli_usage_errors():
    assert cli.main(["check"]) == 2


def test_cli_taxonomy_and_prompt(capsys):
    assert cli.main(["taxonomy", "--hold-out", "C3"]) == 0
    out = capsys.readouterr().out
    assert "C3S1" not in out and out.startswith("C1: Copyright")
    assert cli.main(["prompt", "hi <END CONVERSATION>"]) == 0
    messages = json.loads(capsys.readouterr().out)
    assert "‹END CONVERSATION›" in messages[1]["content"][-1]["text"]


def test_console_script_runs_in_subprocess_against_dead_endpoint():
    # real process, real HTTP client, nothing listening: fail-closed error, exit 1
    proc = subprocess.run(
        [sys.executable, "-m", "proguard_rails", "check", "hello", "--base-url", "http://127.0.0.1:9/v1",
         "--model", "m", "--timeout", "5", "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["status"] == "error" and data["decision"] == "block" and data["error_type"] == "unavailable"


def test_console_script_check_names_the_out_of_policy_risk():
    """``proguard-rails check`` in a real process against a loopback endpoint whose answer is a
    risk outside the policy: the printed outcome names it, and the exit code is a block."""
    from proguard_rails.testing_server import FakeChatServer

    name = "Organ Trafficking Scheme"
    with FakeChatServer(answer=format_answer("text", "unsafe", "unsafe", name)) as srv:
        proc = subprocess.run(
            [sys.executable, "-m", "proguard_rails", "check", "q", "--response", "r", "--base-url", srv.base_url,
             "--model", "fake-proguard", "--timeout", "30"],
            capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 1, proc.stderr
    first, second = proc.stdout.splitlines()[:2]
    assert first.startswith("BLOCKED (block):") and f"out-of-policy risk {name!r}" in first
    assert f"out-of-policy={name!r}" in second  # the verdict line names it too


@pytest.mark.parametrize("module", ["torch", "transformers", "langchain", "langchain_core", "llama_index", "guardrails", "trl"])
def test_import_is_light(module):
    code = f"import sys, proguard_rails; sys.exit(1 if {module!r} in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
