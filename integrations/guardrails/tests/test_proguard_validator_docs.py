"""The Python snippets of docs/guardrails.md run, in order, offline (scripted demo guard)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "guardrails.md"


@pytest.mark.skipif(not DOC.exists(), reason="docs/ not shipped with this copy of the validator")
def test_scripted_docs_snippets_run(capsys):  # type: ignore[no-untyped-def]
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4
    ns: dict[str, object] = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name}[{i}]", "exec"), ns)  # our own documentation
    out = capsys.readouterr().out
    assert "ProGuard judged the response unsafe: C8S1 (Dangerous Goods / Weapons)." in out
    assert "C8S1 Dangerous Goods False" in out
    assert "['Fireworks use metal salts.', \"I can't help with that.\", '']" in out
