"""Shared fixtures: one real LiteJudge (the shipped ONNX model, onnxruntime) per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def lite_judge():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    from proguard_rails.judges.lite import LiteJudge

    judge = LiteJudge()
    judge.warmup()
    return judge
