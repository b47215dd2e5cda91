"""End to end through a real ``transformers serve`` on loopback serving the tiny random
Qwen2.5-VL built offline by ``proguard_rails.testing``.

Its answers are gibberish, so every check must end as an error decision ("the guard could not
judge"), never as safe: fail-closed refuses before retrieval and drops every node; fail-open
answers and records the errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

from llama_index.core.llms import MockLLM
from llama_index.postprocessor.proguard import DEFAULT_REFUSAL, ProGuardNodePostprocessor, ProGuardQueryEngine

from proguard_rails import OpenAIBackend, ProGuard
from proguard_rails.testing import serve_model, tiny_model_path

from .conftest import CLEAN_DOCS

pytestmark = [pytest.mark.serve, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def served() -> Iterator[Any]:
    with serve_model(tiny_model_path()) as server:
        yield server


def _guard(served: Any, fail_mode: str = "closed") -> ProGuard:
    # transformers serve 5.x rejects `stop` for VLMs; the backend cuts at </answer> itself.
    backend = OpenAIBackend(served.base_url, served.model, send_stop=False, max_tokens=16, timeout=120)
    return ProGuard(backend=backend, cache_size=0, fail_mode=fail_mode)


def test_served_tiny_model_query_engine_fails_closed(served, index_factory, counters):  # type: ignore[no-untyped-def]
    index, emb = index_factory(CLEAN_DOCS)
    guard = _guard(served)
    try:
        resp = ProGuardQueryEngine(index.as_query_engine(llm=MockLLM()), guard).query("What is the capital?")
        d = resp.metadata["proguard"]
        assert str(resp) == DEFAULT_REFUSAL and d.status == "error" and d.fail_mode_applied == "closed"
        assert d.error_type in ("parse", "backend"), d.error_message
        assert counters.retrievals == 0 and emb.query_calls == 0

        nodes = index.as_retriever(similarity_top_k=2).retrieve("capital")
        flagged = ProGuardNodePostprocessor(guard, mode="flag").postprocess_nodes(nodes)
        assert [n.node.metadata["proguard"]["status"] for n in flagged] == ["error", "error"]
        assert ProGuardNodePostprocessor(guard).postprocess_nodes(nodes) == []
    finally:
        guard.close()


async def test_served_tiny_model_fail_open_answers(served, index_factory):  # type: ignore[no-untyped-def]
    index, _ = index_factory(CLEAN_DOCS)
    guard = _guard(served, fail_mode="open")
    try:
        resp = await ProGuardQueryEngine(index.as_query_engine(llm=MockLLM()), guard).aquery("What is the capital?")
        assert CLEAN_DOCS[0] in str(resp)
        assert {d.status for d in resp.metadata["proguard_decisions"].values()} == {"error"}
    finally:
        await guard.aclose()
