"""The Python snippets of docs/llamaindex.md run, in order, offline (scripted demo guard)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "llamaindex.md"


def test_scripted_docs_snippets_run(capsys):  # type: ignore[no-untyped-def]
    from llama_index.core.instrumentation import get_dispatcher

    root = get_dispatcher()
    handlers = list(root.event_handlers)  # the snippets add a handler: take it off afterwards
    try:
        _run_snippets()
    finally:
        root.event_handlers = handlers
    out = capsys.readouterr().out
    assert "block C4S1" in out and "allow None" in out


def _run_snippets() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4
    ns: dict[str, object] = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name}[{i}]", "exec"), ns)  # our own documentation
