"""The out-of-policy risk name reaches the user on every blocked LlamaIndex path.

Query engine (input, answer, streaming, exception), node postprocessor (node metadata and
events), chat engine (input, reply, streaming, exception). Scripted guard whose "category" for
the marker words is a free-text risk name the policy does not list.
"""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms import MockLLM
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.postprocessor.proguard import (
    ProGuardChatEngine,
    ProGuardNodePostprocessor,
    ProGuardQueryEngine,
)

from proguard_rails import Decision, ProGuardViolation

from .conftest import CLEAN_DOCS

NAME = "Astrology-based medication dosing"
ASK = "use my horoscope to dose insulin"


@pytest.fixture
def guard(scripted_guard_factory):  # type: ignore[no-untyped-def]
    # "horoscope" in a request, "text text" (MockLLM(max_tokens=3)'s reply) in an answer, and
    # "lunar dosing" in a node are each judged unsafe with a risk outside the policy
    return scripted_guard_factory(unsafe_requests={"horoscope": NAME, "lunar dosing": NAME},
                                  unsafe_responses={"text text": NAME})


def assert_named(decision: Any) -> None:
    d = decision
    if isinstance(d, dict):  # Decision.to_dict() in node metadata
        assert d["decision"] == "block" and d["out_of_policy"] is True and d["description"] == NAME, d
        return
    assert isinstance(d, Decision) and d.blocked and d.is_out_of_policy and d.description == NAME


def test_scripted_query_engine_blocked_question_and_answer_carry_the_name(guard, index_factory, counters):  # type: ignore[no-untyped-def]
    index, _ = index_factory(CLEAN_DOCS)
    resp = ProGuardQueryEngine(index.as_query_engine(llm=MockLLM()), guard).query(ASK)
    assert resp.metadata["proguard_stage"] == "input" and resp.metadata["proguard_blocked"] is True
    assert_named(resp.metadata["proguard"])
    resp = ProGuardQueryEngine(index.as_query_engine(llm=MockLLM(max_tokens=3)), guard).query("capital?")
    assert resp.metadata["proguard_stage"] == "output"
    assert_named(resp.metadata["proguard"])
    assert_named(resp.metadata["proguard_decisions"]["output"])
    events = [e for e in counters.verdicts if not e.allowed]
    assert len(events) == 2 and all(e.is_out_of_policy and e.description == NAME for e in events)


async def test_scripted_query_engine_streaming_and_exception_carry_the_name(guard, index_factory):  # type: ignore[no-untyped-def]
    index, _ = index_factory(CLEAN_DOCS)
    streaming = ProGuardQueryEngine(index.as_query_engine(llm=MockLLM(max_tokens=3), streaming=True), guard)
    resp = await streaming.aquery("capital?")
    assert_named(resp.metadata["proguard"])
    with pytest.raises(ProGuardViolation) as info:
        ProGuardQueryEngine(index.as_query_engine(llm=MockLLM()), guard, on_block="raise").query(ASK)
    assert_named(info.value.decision)
    assert NAME in str(info.value)


def test_scripted_node_postprocessor_marks_blocked_nodes_with_the_name(guard, counters):  # type: ignore[no-untyped-def]
    nodes = [NodeWithScore(node=TextNode(text="Paris is in France.", id_="ok"), score=1.0),
             NodeWithScore(node=TextNode(text="Try lunar dosing for insulin.", id_="bad"), score=0.9)]
    flagged = ProGuardNodePostprocessor(guard, mode="flag").postprocess_nodes(nodes)
    by_id = {n.node.node_id: n.node.metadata["proguard"] for n in flagged}
    assert by_id["ok"]["decision"] == "allow"
    assert_named(by_id["bad"])
    kept = ProGuardNodePostprocessor(guard).postprocess_nodes(nodes)
    assert [n.node.node_id for n in kept] == ["ok"]
    dropped = [e for e in counters.verdicts if e.stage == "node" and e.node_id == "bad"]
    assert dropped and all(e.is_out_of_policy and e.description == NAME for e in dropped)


def _chat(guard: Any, max_tokens: int | None = None, **kw: Any) -> ProGuardChatEngine:
    return ProGuardChatEngine(SimpleChatEngine.from_defaults(llm=MockLLM(max_tokens=max_tokens)), guard, **kw)


async def test_scripted_chat_engine_blocked_paths_carry_the_name(guard):  # type: ignore[no-untyped-def]
    resp = _chat(guard).chat(ASK)
    assert resp.metadata["proguard_stage"] == "chat_input"
    assert_named(resp.metadata["proguard"])
    resp = await _chat(guard, max_tokens=3).achat("hi")
    assert resp.metadata["proguard_stage"] == "chat_output"
    assert_named(resp.metadata["proguard"])
    stream = _chat(guard, max_tokens=3).stream_chat("hi")
    "".join(stream.response_gen)
    assert_named(stream.metadata["proguard"])
    with pytest.raises(ProGuardViolation) as info:
        _chat(guard, on_block="raise").chat(ASK)
    assert_named(info.value.decision)
