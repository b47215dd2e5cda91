"""verl in its own environment, for tests that drive verl's real config and reward code.

verl 0.9 pins ``transformers<5.11`` while the project's training stack (TRL 1.x) uses a newer
one, so verl never goes into the test environment itself: it is installed once into a virtual
environment under the test cache (``$PROGUARD_TEST_CACHE`` or ``~/.cache/proguard-rails``) that
sees the global site-packages (torch, numpy) but carries verl's own pins. The requirement is
read from the ``verl`` extra in pyproject.toml, so the tests exercise the range users install.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("verl_probe.py")
LAUNCHER = REPO / "training" / "verl" / "run_grpo.sh"
# What the probe needs beyond verl's own requirements: verl's loader imports qwen_vl_utils for
# images (it is in verl's `verl-core` extra, which also pulls GPU-only packages).
EXTRA_PACKAGES = ("qwen-vl-utils",)
_LAYOUT = 1


def verl_requirement() -> str:
    """``verl<specifier>`` from the ``verl`` extra (extras like ``[vllm]`` dropped: GPU-only)."""
    import tomllib
    from packaging.requirements import Requirement

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for spec in extras.get("verl", []):
        req = Requirement(spec)
        if req.name == "verl":
            if not str(req.specifier):
                raise AssertionError(f"the verl extra must pin a range, got {spec!r}")
            return f"verl{req.specifier}"
    raise AssertionError("pyproject.toml has no `verl` extra naming verl")


def _cache_root() -> Path:
    env = os.environ.get("PROGUARD_TEST_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "proguard-rails"


def verl_python() -> tuple[Path | None, str]:
    """``(python of the verl environment, "")`` or ``(None, why it could not be installed)``."""
    from filelock import FileLock

    requirement = verl_requirement()
    key = hashlib.sha256(f"{_LAYOUT}|{requirement}|{EXTRA_PACKAGES}|{sys.version}".encode()).hexdigest()[:12]
    root = _cache_root()
    env = root / f"verl-env-{key}"
    python = env / "bin" / "python"
    marker = env / "proguard_verl_env.json"
    if marker.exists():
        return python, ""
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"verl-env-{key}.lock"), timeout=900):
        if marker.exists():
            return python, ""
        staging = Path(tempfile.mkdtemp(prefix=f".verl-env-{key}-", dir=root))
        try:
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(staging)], check=True,
                           capture_output=True, timeout=300)
            proc = subprocess.run(
                [str(staging / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                 requirement, *EXTRA_PACKAGES],
                capture_output=True, text=True, timeout=1200,
            )
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
                return None, f"pip could not install {requirement}: " + " | ".join(tail)
            version = subprocess.run(
                [str(staging / "bin" / "python"), "-c", "import verl; print(verl.__version__)"],
                capture_output=True, text=True, timeout=300,
            )
            if version.returncode != 0:
                return None, f"{requirement} installed but does not import: {version.stderr.strip()[-500:]}"
            (staging / "proguard_verl_env.json").write_text(json.dumps(
                {"requirement": requirement, "verl": version.stdout.strip(), "python": sys.version}) + "\n")
            # A venv finds its site-packages relative to its own interpreter link, so a rename is safe.
            if env.exists():
                shutil.rmtree(env)
            os.replace(staging, env)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return python, ""


def launcher_command(env: dict[str, str], *overrides: str) -> list[str]:
    """The exact command ``run_grpo.sh`` would run with ``env`` (its DRY_RUN mode prints it)."""
    proc = subprocess.run(
        ["bash", str(LAUNCHER), *overrides],
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""),
             "PYTHONPATH": str(REPO), "PYTHON": sys.executable, **env, "DRY_RUN": "1"},
        capture_output=True, text=True, timeout=120, cwd=str(REPO),
    )
    if proc.returncode != 0:
        raise AssertionError(f"run_grpo.sh failed: {proc.stderr}")
    return proc.stdout.splitlines()


def run_probe(python: Path, jobs: list[dict[str, Any]], tokenizer: str | None = None) -> list[dict[str, Any]]:
    """Run :mod:`verl_probe` in the verl environment; the worktree's packages come first."""
    proc = subprocess.run(
        [str(python), str(PROBE)], input=json.dumps({"jobs": jobs, "tokenizer": tokenizer}),
        capture_output=True, text=True, timeout=600, cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
             "RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false"},
    )
    for line in proc.stdout.splitlines():
        if line.startswith("VERL_PROBE_RESULT "):
            return json.loads(line.split(" ", 1)[1])
    raise AssertionError(f"verl probe failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
