"""Image nodes, the guarded chat engine, and node edge cases (scripted guard: allow/block logic)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms import MockLLM
from llama_index.core.schema import ImageNode, NodeWithScore, TextNode
from llama_index.postprocessor.proguard import DEFAULT_REFUSAL, ProGuardChatEngine, ProGuardNodePostprocessor

from proguard_rails import ProGuardViolation
from tests.helpers import png_bytes

BAD_PNG = png_bytes(color=(250, 0, 0))
GOOD_PNG = png_bytes(color=(0, 120, 250))


@pytest.fixture
def guard(scripted_guard_factory):  # type: ignore[no-untyped-def]
    return scripted_guard_factory(
        unsafe_requests={"pipe bomb": "C8S1"},
        unsafe_responses={"text text": "C7S1"},
        unsafe_image_sha={hashlib.sha256(BAD_PNG).hexdigest(): "C11S2"},
    )


def test_scripted_image_nodes_are_judged_with_their_images(guard, tmp_path):  # type: ignore[no-untyped-def]
    good_path = tmp_path / "good.png"
    good_path.write_bytes(GOOD_PNG)
    nodes = [
        NodeWithScore(node=ImageNode(text="a photo", image=base64.b64encode(BAD_PNG).decode()), score=0.9),
        NodeWithScore(node=ImageNode(text="a chart", image_path=str(good_path)), score=0.8),
        NodeWithScore(node=TextNode(text="plain text"), score=0.7),
    ]
    backend = guard.judge.backend
    screened = ProGuardNodePostprocessor(guard, mode="flag").postprocess_nodes(nodes)
    verdicts = [n.node.metadata["proguard"] for n in screened]
    assert [v["decision"] for v in verdicts] == ["block", "allow", "allow"]
    assert verdicts[0]["category"] == "C11S2" and verdicts[0]["modality"] == "text-image"
    assert verdicts[1]["modality"] == "text-image" and verdicts[2]["modality"] == "text"
    assert sum(len(p.images) for p in backend.prompts) == 2  # both images reached the judge

    kept = ProGuardNodePostprocessor(guard).postprocess_nodes(nodes)
    assert [n.node.text for n in kept] == ["a chart", "plain text"]


def test_scripted_local_image_paths_can_be_refused(guard, tmp_path):  # type: ignore[no-untyped-def]
    p = tmp_path / "img.png"
    p.write_bytes(GOOD_PNG)
    node = NodeWithScore(node=ImageNode(text="x", image_path=str(p)), score=1.0)
    (out,) = ProGuardNodePostprocessor(guard, mode="flag", allow_image_paths=False).postprocess_nodes([node])
    v = out.node.metadata["proguard"]
    assert v["status"] == "error" and v["decision"] == "block" and v["error_type"] == "image"


def test_scripted_image_url_not_fetched_by_default_and_fails_closed(guard):  # type: ignore[no-untyped-def]
    node = NodeWithScore(node=ImageNode(text="remote", image_url="https://203.0.113.7/cat.png"), score=1.0)
    assert ProGuardNodePostprocessor(guard).postprocess_nodes([node]) == []  # dropped: unjudgeable
    (flagged,) = ProGuardNodePostprocessor(guard, mode="flag").postprocess_nodes([node])
    v = flagged.node.metadata["proguard"]
    assert v["status"] == "error" and "allow_image_urls" in v["error"]
    # no fetch was attempted: the autouse network detector would have failed this test


def test_scripted_screen_images_off_judges_text_only(guard):  # type: ignore[no-untyped-def]
    node = NodeWithScore(node=ImageNode(text="a photo", image=base64.b64encode(BAD_PNG).decode()), score=1.0)
    (out,) = ProGuardNodePostprocessor(guard, screen_images=False).postprocess_nodes([node])
    assert out.node.metadata["proguard"]["modality"] == "text"


def test_scripted_empty_node_list_makes_no_guard_call(guard):  # type: ignore[no-untyped-def]
    backend = guard.judge.backend
    assert ProGuardNodePostprocessor(guard).postprocess_nodes([]) == []
    assert backend.calls == 0


def test_scripted_query_as_context(guard):  # type: ignore[no-untyped-def]
    backend = guard.judge.backend
    node = NodeWithScore(node=TextNode(text="Paris facts"), score=1.0)
    ProGuardNodePostprocessor(guard, query_as_context=True).postprocess_nodes([node], query_str="tell me about Paris")
    assert "[context: tell me about Paris]" in backend.prompts[-1].user_text
    assert "[output of tool retriever]" in backend.prompts[-1].user_text


# ----------------------------------------------------------------------------- chat engine
def _chat(guard, max_tokens=None, **kw):  # type: ignore[no-untyped-def]
    return ProGuardChatEngine(SimpleChatEngine.from_defaults(llm=MockLLM(max_tokens=max_tokens)), guard, **kw)


def test_scripted_chat_clean_message_answers(guard, counters):  # type: ignore[no-untyped-def]
    chat = _chat(guard)
    resp = chat.chat("hello there")
    assert "hello there" in str(resp)  # MockLLM echoes the conversation
    assert resp.metadata["proguard"].allowed and len(chat.chat_history) == 2


def test_scripted_chat_unsafe_message_refused_without_llm_call(guard, counters):  # type: ignore[no-untyped-def]
    chat = _chat(guard)
    resp = chat.chat("explain how to build a pipe bomb")
    assert str(resp) == DEFAULT_REFUSAL and resp.metadata["proguard_stage"] == "chat_input"
    assert counters.llm_calls == 0 and chat.chat_history == []
    with pytest.raises(ProGuardViolation):
        _chat(guard, on_block="raise").chat("pipe bomb please")


def test_scripted_chat_unsafe_reply_replaced_in_response_and_memory(guard):  # type: ignore[no-untyped-def]
    chat = _chat(guard, max_tokens=3)  # replies "text text text": unsafe for the scripted judge
    resp = chat.chat("hi")
    assert str(resp) == DEFAULT_REFUSAL and resp.metadata["proguard_stage"] == "chat_output"
    assert [m.content for m in chat.chat_history] == ["hi", DEFAULT_REFUSAL]  # unsafe reply scrubbed


def test_scripted_chat_streaming_is_buffered_and_screened(guard):  # type: ignore[no-untyped-def]
    clean = _chat(guard)
    assert "hey" in "".join(clean.stream_chat("hey").response_gen)
    unsafe = _chat(guard, max_tokens=3)
    assert "".join(unsafe.stream_chat("hi").response_gen) == DEFAULT_REFUSAL
    assert "".join(clean.stream_chat("pipe bomb now").response_gen) == DEFAULT_REFUSAL


async def test_scripted_chat_async_paths(guard):  # type: ignore[no-untyped-def]
    chat = _chat(guard)
    assert "hello" in str(await chat.achat("hello"))
    assert str(await chat.achat("pipe bomb")) == DEFAULT_REFUSAL
    stream = await _chat(guard, max_tokens=3).astream_chat("hi")
    assert "".join([t async for t in stream.async_response_gen()]) == DEFAULT_REFUSAL
    stream = await chat.astream_chat("and Lyon?")
    assert "and Lyon?" in "".join([t async for t in stream.async_response_gen()])


def test_scripted_chat_history_is_context_for_the_guard(guard):  # type: ignore[no-untyped-def]
    backend = guard.judge.backend
    chat = _chat(guard)
    chat.chat("my name is Ada")
    chat.chat("what is my name?")
    input_prompts = [p.user_text for p in backend.prompts if "what is my name?" in p.user_text]
    assert any("my name is Ada" in t for t in input_prompts)


def test_scripted_query_image_is_judged_before_retrieval(guard, index_factory, counters, tmp_path):  # type: ignore[no-untyped-def]
    from llama_index.core.schema import QueryBundle
    from llama_index.postprocessor.proguard import ProGuardQueryEngine

    bad = tmp_path / "q.png"
    bad.write_bytes(BAD_PNG)
    index, emb = index_factory()
    engine = ProGuardQueryEngine(index.as_query_engine(llm=MockLLM()), guard)
    resp = engine.query(QueryBundle(query_str="what is in this picture?", image_path=str(bad)))
    assert str(resp) == DEFAULT_REFUSAL and resp.metadata["proguard"].category_id == "C11S2"
    assert counters.retrievals == 0 and emb.query_calls == 0
    ignored = ProGuardQueryEngine(index.as_query_engine(llm=MockLLM()), guard, screen_query_image=False)
    assert str(ignored.query(QueryBundle(query_str="what is in this picture?", image_path=str(bad)))) != DEFAULT_REFUSAL
