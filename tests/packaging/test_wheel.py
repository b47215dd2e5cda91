"""The built wheel: one import name per ecosystem, no generic top-level packages, and every
documented import works from a fresh virtual environment that holds only the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_TOP_LEVEL = {"proguard_rails", "langchain_proguard", "llama_index", "guardrails_ai"}

# every import the README and docs show, and where it must come from
DOCUMENTED_IMPORTS = """
import json, sys
from proguard_rails import ProGuard, Policy, Decision
from proguard_rails.eval import Evaluator, load_dataset, write_report
from langchain_proguard import ProGuardRail, ProGuardMiddleware, ProGuardViolation
from llama_index.postprocessor.proguard import (
    ProGuardChatEngine, ProGuardNodePostprocessor, ProGuardQueryEngine, ProGuardVerdictEvent)
from guardrails_ai.proguard import ProGuardValidator
from guardrails.hub import ProGuardValidator as HubValidator
import langchain_proguard, llama_index.postprocessor.proguard as li, guardrails_ai.proguard as gr, proguard_rails
assert HubValidator is ProGuardValidator
print(json.dumps({m.__name__: m.__file__ for m in (proguard_rails, langchain_proguard, li, gr)}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, timeout=300, capture_output=True,
    )
    (whl,) = out.glob("proguard_rails-*.whl")
    return whl


def test_wheel_has_no_generic_top_level_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == EXPECTED_TOP_LEVEL, top
    # namespace packages stay namespaces: the wheel must not claim llama_index or guardrails_ai
    for ns in ("llama_index/__init__.py", "llama_index/postprocessor/__init__.py", "guardrails_ai/__init__.py"):
        assert ns not in names
    for generic in ("integrations/", "training/", "tests/", "examples/", "benchmarks/"):
        assert not any(n.startswith(generic) for n in names), generic
    for typed in ("proguard_rails/py.typed", "langchain_proguard/py.typed",
                  "llama_index/postprocessor/proguard/py.typed", "guardrails_ai/proguard/py.typed"):
        assert typed in names
    assert "proguard_rails/eval/mappings/xstest.yaml" in names
    assert "proguard_rails/eval/calibrations.json" in names  # the eval scores names with calibrated thresholds


def test_documented_imports_work_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    # the venv sees the dependencies already installed (system site-packages) but the project's
    # own modules must come from the wheel installed into it, not from this checkout
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=300, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    proc = subprocess.run([str(py), "-c", DOCUMENTED_IMPORTS], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    for name, path in files.items():
        assert str(venv) in path, f"{name} imported from {path}, not from the wheel"
    # the checkout-only training pipeline is not importable from the wheel
    proc = subprocess.run([str(py), "-c", "import training"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
