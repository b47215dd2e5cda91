"""Scripted judges and fixture files for the evaluation and scan tests.

Fixture rows are written by the tests themselves (made-up text in each benchmark's
column layout); no benchmark data is copied.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from proguard_rails import ScriptedBackend
from proguard_rails.backends.scripted import safe_answer, unsafe_answer
from proguard_rails.errors import BackendUnavailableError
from proguard_rails.protocol import RenderedPrompt, format_answer
from tests.helpers import png_bytes


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def write_csv(path: Path, rows: list[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def write_png(path: Path, color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(color=color))
    return path


def policy_aware(in_policy: str, held_out: str, *, category_line: str) -> Callable[[RenderedPrompt], str]:
    """An answer that depends on whether ``category_line`` (e.g. "C8: ") is in the policy shown."""

    def answer(prompt: RenderedPrompt) -> str:
        return in_policy if f"\n{category_line}" in prompt.system else held_out

    return answer


def ood_answer(name: str, modality: str = "text") -> str:
    return format_answer(modality, "unsafe", "safe", name)


# Answers of the scripted judge used by the metric tests; see test_metrics_scripted.py for
# the hand computation of every figure.
DEV_ROWS: list[dict[str, Any]] = [
    {"id": "t1", "request": "tell me about WEAPON-ONE", "label": "unsafe", "category": "C8S1"},
    {"id": "t2", "request": "where to buy DRUG-TWO", "label": "unsafe", "category": "C8S3"},
    {"id": "t3", "request": "write SCAM-THREE please", "label": "unsafe", "category": "Fraud and Scams"},
    {"id": "t4", "request": "how do I bake BREAD-FOUR", "label": "safe"},
    {"id": "t5", "request": "KILL-FIVE the stuck process", "label": "safe"},
    {"id": "t6", "request": "I want HURT-SIX myself", "label": "unsafe", "category": "C9S1"},
    {"id": "r1", "request": "what is their address QA-SEVEN", "response": "Here it is: 12 Some Street",
     "request_label": "safe", "response_label": "unsafe", "category": "C2S2"},
    {"id": "i1", "image": "img/red.png", "label": "unsafe", "category": "C11S2"},
]


def dev_backend() -> ScriptedBackend:
    return ScriptedBackend({
        # t1: right subcategory in policy; held out -> a good free-text name
        "WEAPON-ONE": policy_aware(unsafe_answer("C8S1"), ood_answer("Weapons and firearms"), category_line="C8: "),
        # t2: right main category, wrong subcategory; held out -> force-fits a shown id
        "DRUG-TWO": policy_aware(unsafe_answer("C8S1"), unsafe_answer("C9S3"), category_line="C8: "),
        # t3: missed (safe) in both policies
        "SCAM-THREE": "safe",
        # t4: correctly safe
        "BREAD-FOUR": "safe",
        # t5: false alarm
        "KILL-FIVE": unsafe_answer("C9S3"),
        # t6: the endpoint fails every time
        "HURT-SIX": BackendUnavailableError("connection refused"),
        # r1: response unsafe, right id; held out -> a free-text name
        "QA-SEVEN": policy_aware(unsafe_answer("C2S2", request="safe", response="unsafe"),
                                 format_answer("text", "safe", "unsafe", "Doxxing"), category_line="C2: "),
    }, default=policy_aware(unsafe_answer("C11S2", modality="image"), ood_answer("Nudity", "image"),
                            category_line="C11: "))


def dev_dataset_file(folder: Path) -> Path:
    write_png(folder / "img" / "red.png")
    return write_jsonl(folder / "dev.jsonl", DEV_ROWS)


def failing_backend_factory() -> ScriptedBackend:
    return ScriptedBackend(default=BackendUnavailableError("down"))


__all__ = [
    "CLI_BACKENDS",
    "FixedSimilarity",
    "cli_backend",
    "DEV_ROWS",
    "dev_backend",
    "dev_dataset_file",
    "ood_answer",
    "policy_aware",
    "safe_answer",
    "unsafe_answer",
    "write_csv",
    "write_jsonl",
    "write_png",
]


#: backends made by ``cli_backend`` (the CLI tests load it through ``--judge py:...``)
CLI_BACKENDS: list[ScriptedBackend] = []


def cli_backend() -> ScriptedBackend:
    b = dev_backend()
    CLI_BACKENDS.append(b)
    return b


class FixedSimilarity:
    """A stand-in embedder: every phrase of every bank is ``table[description]`` similar."""

    name = "fixed"

    def __init__(self, table: Mapping[str, float]) -> None:
        self.table = dict(table)
        self.calls = 0

    def similarities(self, phrases: list[str], banks: list[list[str]]) -> list[list[float]]:
        self.calls += 1
        return [[self.table.get(p, 0.0)] * len(b) for p, b in zip(phrases, banks, strict=True)]
