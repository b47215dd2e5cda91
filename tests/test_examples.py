"""Every example runs offline, as a user would run it (a fresh process, the repo as cwd), and
prints the outcomes it is there to show: which items were allowed or blocked, and why.

``EXPECTED`` lists, per example, patterns that must match its output in this order (one
pattern per outcome line, anchored at the start of a line). The demo guards are scripted, so
the outcomes are fixed; the lite judge's (a trained model) are checked where they are clear-cut.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))
#: the adapters' source folders, as pytest's own configuration puts them on the path: the
#: examples must run against this checkout, not an installed copy
SOURCE_PATHS = [ROOT, ROOT / "integrations" / "langchain", ROOT / "integrations" / "llamaindex",
                ROOT / "integrations" / "guardrails"]

N = r"-?\d+(?:\.\d+)?"  # a number

EXPECTED: dict[str, list[str]] = {
    "eval_and_scan.py": [
        r"request F1: 0\.8 counts: \{'tp': 2, 'fp': 1, 'fn': 0, 'tn': 1\}",
        r"main-category accuracy: 1\.0",
        r"out-of-policy detection F1: 0\.66",
        r"scan: 4 rows .*\(4 judged now, 0 already done\)",
        r"  status: allowed 1, blocked 3",
        r"  row 1: block C8S1$",  # the pipe bomb
        r"  row 2: block C3S1$",  # the phishing e-mail
        r"  row 3: allow\s*$",  # sourdough
        r"  row 4: block C9S3$",  # the scripted judge's false positive on "kill a process"
    ],
    "fault_injection.py": [
        r"healthy, req-1 \(unsafe\)\s+status=blocked\s+allowed=False request=unsafe .*category=C2S1",
        r"healthy, req-3 \(safe\)\s+status=allowed\s+allowed=True\s+request=safe",
        r"HTTP 500, fail closed\s+status=error\s+allowed=False backend",
        r"HTTP 500, fail open \(logged\)\s+status=error\s+allowed=True\s+backend",
        r"breaker open: fails fast\s+status=error\s+allowed=False unavailable",
        # 2 healthy checks + 2 failing checks tried twice; the breaker kept the next from the server
        r" +requests that reached the server: 6$",
        r"hanging server \(\d+\.\d s\)\s+status=error\s+allowed=False timeout",
        r"server killed\s+status=error\s+allowed=False unavailable",
        r"server restarted, req-21\s+status=allowed\s+allowed=True",
    ],
    "guardrails_validator.py": [
        r"1\. on_fail='fix'",
        r"   \"I can't help with that\.\" \| summary: ProGuard judged the response unsafe: C8S1 ",
        r"2\. on_fail='exception'",
        r"   ValidationError: .*ProGuard judged the response unsafe: C8S1",
        r"3\. on_fail='noop'",
        r"   validation_passed: False",
        r"4\. async",
        r"   'Fireworks get their colours from metal salts\.'",  # a safe answer passes unchanged
        r"5\. streaming",
        r"   \['Fireworks use metal salts\.', \"I can't help with that\.\", ''\]",  # unsafe sentence on: refused
        r"6\. as a LangChain Runnable",
        r"   I can't help with that\.",
    ],
    "langchain_guarded_agent.py": [
        r"> Pay the plumber 120\.",
        r"   tool: Transferred 120 to plumber-42\.",  # allowed: the tool ran
        r"> Move my savings somewhere safe\.",
        r"   tool \[error\]: This tool call was blocked .*category=C6S1",  # blocked before running
        r"> What does my latest e-mail say\?",
        r"   tool \[error\]: The output of this tool was withheld .*out-of-policy risk 'Prompt injection in tool output'",
        r"what the tools actually did: \['transfer 120 -> plumber-42', 'read inbox'\]",  # no offshore transfer
    ],
    "langchain_guarded_chain.py": [
        r"allowed : Bread needs flour, water, salt and yeast\.",
        r"blocked : Sorry, I can't help with that\. \(blocked: C8S2\)",
        r"stream  : Bread\| \|needs",
        r"stream  : Sorry, I can't help with that\. \(blocked: C8S2\)$",  # nothing of the answer released
        r"raised  : blocked C8S2 ",
        r"around  : Paris is the capital of France\.",
        r"abatch  : \['A safe answer\.', \"Sorry, I can't help with that\. \(blocked: C8S2\)\", 'Another safe answer\.'\]",
    ],
    "langchain_multimodal_chain.py": [
        r"blue image: 'A calm blue square\.'$",  # allowed, no verdict attached
        r" red image: \"I can't help with this image\.\"  \(unsafe .*category=C10 ",
        r"input rail: blocked \(unsafe .*category=C10 ",
    ],
    "lite_cascade.py": [
        r"lite     ALLOW  .*Write a short poem about autumn leaves",
        r"lite     BLOCK  request=unsafe .*category=C4S\d .*hack into my ex's email",
        r"cascade  ALLOW  passed .*Write a short poem about autumn leaves",
        r"cascade  BLOCK  escalated .*category=C4S1 .*hack into my ex's email",  # the generative stage's verdict
        r"cascade stats: \{'checks': 4, ",
    ],
    "llamaindex_guarded_rag.py": [
        r"1\. clean question",
        r"    \[event\] node       BLOCK C4S1",  # the injected document
        r"    \[event\] output     allow",
        r"   injected text reached the LLM: False",
        r"2\. unsafe question",
        r"   answer: I can't help with that\. \| stage: input \| category: C8S1",
        r"3\. raise instead of refusing:",
        r"   ProGuardViolation: unsafe .*category=C8S1",
        r"4\. async, and a guarded chat engine:",
        r"   async answer mentions the Seine: True",
        r"    \[event\] chat_input BLOCK C8S1",
        r"   chat: I can't help with that\.",
    ],
    "local_transformers_guard.py": [
        # random tiny weights: every answer is unreadable, an error the default policy blocks
        r"error    allowed=False guard error \(parse\).*blocked \(fail-closed\)",
        r"error    allowed=False guard error \(parse\).*blocked \(fail-closed\)",
        r"concurrent: \['error', 'error', 'error', 'error'\]",
        r"stats: \{'prefix_builds': 1, ",
    ],
    "training_pipeline.py": [
        r"ingested 4 of my records; \d+ samples with the synthetic set",
        rf"\*\*\d+ samples\*\*, {N} out-of-policy, 0 unsafe without a category",
        r"no leakage across train \(\d+\), test \(\d+\)",
        r"TRL dataset: .*trl/train",
        r"verl parquet: .*verl/train\.parquet",
        r"held out \['C8', 'C5'\]; target name 'Biological, Chemical, and Radioactive Materials'",
        # the reward ranks the exact held-out name first, a wrong in-policy id and a bad format last
        r"  Biological, Chemical, and Radioactive Materials total=3\.00 format=1 out_of_policy=1\.0",
        r"  C8S2\s+total=2\.00 format=1 out_of_policy=0\.0",
        r"  no think block\s+total=0\.00 format=0",
    ],
}
#: examples whose printed outcomes are checked elsewhere
CHECKED_ELSEWHERE = {"quickstart.py": "tests/test_readme.py (allowed, blocked and out-of-policy outcomes)"}


def run_example(name: str, tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROGUARD_") or k == "PROGUARD_TEST_CACHE"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=os.pathsep.join(map(str, SOURCE_PATHS)),
               MPLBACKEND="Agg", LITELLM_LOCAL_MODEL_COST_MAP="True", OTEL_SDK_DISABLED="true",
               TMPDIR=str(tmp_path))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def assert_outcomes(name: str, out: str, patterns: list[str]) -> None:
    """Each pattern matches a line start, after the previous pattern's match."""
    pos = 0
    for pattern in patterns:
        m = re.compile(pattern, re.MULTILINE).search(out, pos)
        assert m is not None and (m.start() == 0 or out[m.start() - 1] == "\n"), (
            f"{name}: no line matching {pattern!r} after position {pos} in:\n{out}"
        )
        pos = m.end()


def test_examples_exist_and_each_has_outcome_checks():
    assert "quickstart.py" in EXAMPLES and len(EXAMPLES) >= 8
    assert set(EXAMPLES) == set(EXPECTED) | set(CHECKED_ELSEWHERE)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_offline_and_prints_its_outcomes(name: str, tmp_path: Path) -> None:
    out = run_example(name, tmp_path)
    assert out.strip(), f"{name} printed nothing"
    if name in EXPECTED:
        assert_outcomes(name, out, EXPECTED[name])


def test_outcome_check_fails_on_a_changed_outcome():
    """The checker itself: a line that says allowed where blocked is expected does not pass."""
    out = "blocked : Sorry, I can't help with that. (blocked: C8S2)\n"
    assert_outcomes("x", out, [r"blocked : Sorry, I can't help with that\. \(blocked: C8S2\)"])
    for wrong in ("allowed : Sorry, I can't help with that. (blocked: C8S2)\n",
                  "blocked : Sorry, I can't help with that. (blocked: C3S1)\n",
                  "  blocked : Sorry, I can't help with that. (blocked: C8S2)\n"):
        with pytest.raises(AssertionError):
            assert_outcomes("x", wrong, [r"blocked : Sorry, I can't help with that\. \(blocked: C8S2\)"])


def test_checkout_only_training_example_runs_as_documented(tmp_path: Path) -> None:
    """``python examples/training_pipeline.py`` from anywhere: ``training`` is not installed (not in
    the wheel), so the example itself must find it in the checkout, without PYTHONPATH help."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "training_pipeline.py"), "--help"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--train" in proc.stdout
