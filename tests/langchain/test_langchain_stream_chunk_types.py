"""Streams of any chunk type: the rail judges everything streamed, never only the last chunk.

LangChain aggregates stream chunks with ``+`` and keeps only the last chunk where ``+`` fails
(``dict + dict``, mixed types). A rail doing the same would judge a benign tail and release a
harmful head. Property tests over chunk types and split points, with a scripted backend that
flags the marker word wherever it appears in the judged conversation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.messages import AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnableGenerator, RunnablePassthrough
from langchain_core.runnables.utils import AddableDict
from langchain_proguard import ProGuardRail, ProGuardViolation
from pydantic import BaseModel

from proguard_rails import ProGuard, ScriptedBackend

from .conftest import UNSAFE, scripted_rules

WORDS = ["alpha ", "bravo ", "charlie ", "delta ", "echo ", "foxtrot ", "golf ", "hotel "]


class Partial(BaseModel):
    """A structured-output model streamed as growing partial objects."""

    text: str = ""
    done: bool = False


class Opaque:
    """A chunk type the rail cannot read at all."""

    def __init__(self, text: str) -> None:
        self.text = text


# kinds whose chunks carry text increments (a split may fall anywhere, even inside the marker)
TEXT_KINDS = ["str", "message", "dict", "addable", "nested", "cumulative_dict", "cumulative_model"]
# kinds whose chunks are items (a split falls between words)
ITEM_KINDS = ["list", "document", "keyswitch", "mixed"]


def chunks_of(kind: str, pieces: list[str], mixed_kinds: list[str]) -> list[Any]:
    cumulative = ["".join(pieces[: i + 1]) for i in range(len(pieces))]
    if kind == "str":
        return list(pieces)
    if kind == "message":
        return [AIMessageChunk(content=p) for p in pieces]
    if kind == "dict":
        return [{"output": p} for p in pieces]
    if kind == "addable":
        return [AddableDict(output=p) for p in pieces]
    if kind == "nested":  # no known key: every value is judged, nested ones as JSON
        return [{"data": {"text": p}, "step": i} for i, p in enumerate(pieces)]
    if kind == "cumulative_dict":  # JsonOutputParser style: each chunk is the whole object so far
        return [{"answer": c} for c in cumulative]
    if kind == "cumulative_model":
        return [Partial(text=c, done=i == len(pieces) - 1) for i, c in enumerate(cumulative)]
    if kind == "list":
        return [[p] for p in pieces]
    if kind == "document":
        return [Document(page_content=p) for p in pieces]
    if kind == "keyswitch":  # the key a dict is read through changes mid-stream
        return [{("text", "output", "answer")[i % 3]: p} for i, p in enumerate(pieces)]
    assert kind == "mixed"
    return [chunks_of(k, [p], [])[0] for k, p in zip(mixed_kinds, pieces, strict=True)]


@st.composite
def streams(draw: Any, harmful: bool) -> tuple[str, list[str], list[Any], int | None]:
    kind = draw(st.sampled_from(TEXT_KINDS + ITEM_KINDS))
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8))
    if harmful:
        words.insert(draw(st.integers(0, len(words))), UNSAFE + " ")
    text = "".join(words)
    if kind in TEXT_KINDS:
        cuts = sorted(set(draw(st.lists(st.integers(1, len(text) - 1), max_size=10))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    else:
        pieces = words
    mixed = draw(st.lists(st.sampled_from(["str", "dict", "message", "list", "document"]),
                          min_size=len(pieces), max_size=len(pieces)))
    window = draw(st.sampled_from([None, 1, 7, 40]))
    return kind, words, chunks_of(kind, pieces, mixed), window


def make_guard() -> tuple[ProGuard, ScriptedBackend]:
    backend = ScriptedBackend(rules=scripted_rules())
    return ProGuard(backend=backend, cache_size=0), backend


def gen_of(chunks: list[Any]) -> RunnableGenerator:
    def gen(_: Iterator[Any]) -> Iterator[Any]:
        yield from chunks

    return RunnableGenerator(gen)


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(streams(harmful=True))
def test_scripted_property_harmful_text_anywhere_in_any_chunk_type_is_never_released(case: Any) -> None:
    kind, _words, chunks, window = case
    guard, _backend = make_guard()
    rail = ProGuardRail(guard, stream_window_chars=window)
    released: list[Any] = []
    with pytest.raises(ProGuardViolation) as info:
        for chunk in (gen_of(chunks) | rail).stream("q"):
            released.append(chunk)
    assert info.value.decision.category_id == "C8S1", (kind, info.value.decision.reason)
    # no released chunk carries the marker (cumulative chunks after it would carry it whole)
    assert not any(UNSAFE in repr(c) for c in released), (kind, released)
    assert len(released) < len(chunks)


@PROPERTY
@given(streams(harmful=False))
def test_scripted_property_benign_streams_are_released_whole_and_judged_whole(case: Any) -> None:
    kind, words, chunks, window = case
    guard, backend = make_guard()
    out = list((gen_of(chunks) | ProGuardRail(guard, stream_window_chars=window)).stream("q"))
    assert len(out) == len(chunks) and all(a is b for a, b in zip(out, chunks, strict=True)), kind
    last = backend.prompts[-1].user_text
    for w in words:  # the last judgement saw everything that was streamed
        assert w.strip() in last, (kind, w, last)


def test_scripted_plain_dict_stream_harmful_head_benign_tail_is_blocked() -> None:
    """The reported case: ``dict + dict`` raises, so only the last chunk used to be judged."""
    guard, backend = make_guard()
    chunks = [{"output": f"{UNSAFE} first"}, {"output": " benign"}, {"output": " more benign"}]
    rail = ProGuardRail(guard, on_block="refuse", refusal="R", stream_window_chars=None)
    assert list((gen_of(chunks) | rail).stream("q")) == [{"output": "R"}]
    assert f"{UNSAFE} first benign more benign" in backend.prompts[-1].user_text


def test_scripted_dict_stream_whose_key_changes_judges_every_key() -> None:
    """``{"text": harmful}`` then ``{"output": benign}``: merged, the dict would be read through
    "output" only; the chunks are kept apart and both judged."""
    guard, backend = make_guard()
    chunks = [{"text": f"{UNSAFE} head"}, {"output": "benign tail"}]
    with pytest.raises(ProGuardViolation):
        list((gen_of(chunks) | ProGuardRail(guard, stream_window_chars=None)).stream("q"))
    assert "benign tail" in backend.prompts[-1].user_text


@pytest.mark.parametrize("output_key", [None, "answer"])
def test_scripted_assign_stream_judges_the_answer_with_its_question(fake_model: Any, output_key: Any) -> None:
    """``RunnablePassthrough.assign`` streams the input keys first, then the answer: they merge
    into one dict read as request + answer (no key is dropped, nothing is held apart)."""
    guard, backend = make_guard()
    chain = RunnablePassthrough.assign(answer=(lambda x: x["question"]) | fake_model("Bread needs flour.")
                                       | StrOutputParser())
    rail = ProGuardRail(guard, output_key=output_key, stream_window_chars=8)
    out = list((chain | rail).stream({"question": "How is bread made?"}))
    assert out[0] == {"question": "How is bread made?"} and "".join(c.get("answer", "") for c in out[1:]) == (
        "Bread needs flour.")
    assert "User: How is bread made?\nAgent:  Bread needs flour." in backend.prompts[-1].user_text


def test_scripted_cumulative_json_snapshots_are_judged_once_not_repeated() -> None:
    """JsonOutputParser streams whole snapshots: the judged text is the last one, not a pile-up."""
    guard, backend = make_guard()
    chunks = [{"answer": "Hel"}, {"answer": "Hello"}, {"answer": "Hello there", "sources": ["a"]},
              {"answer": "Hello there", "sources": ["a", "b"]}]
    out = list((gen_of(chunks) | ProGuardRail(guard, stream_window_chars=None)).stream("q"))
    assert out == chunks
    judged = backend.prompts[-1].user_text
    assert "Hello there" in judged and "HelHello" not in judged


def test_scripted_unmergeable_chunks_hold_the_stream_until_the_end() -> None:
    """Mixed chunk types cannot be merged: nothing after the switch is released before the end."""
    guard, backend = make_guard()
    seen: list[int] = []

    def gen(_: Iterator[Any]) -> Iterator[Any]:
        for i, chunk in enumerate(["first words ", {"output": "a dict"}, Document(page_content="doc"), "tail"]):
            seen.append(i)
            yield chunk

    stream = (RunnableGenerator(gen) | ProGuardRail(guard, stream_window_chars=1)).stream("q")
    assert next(stream) == "first words "  # mergeable so far: judged and released
    assert seen == [0]
    second = next(stream)  # the switch to held chunks: everything is read and judged before release
    assert second == {"output": "a dict"} and seen == [0, 1, 2, 3]
    last = backend.prompts[-1].user_text
    assert all(t in last for t in ("first words", "a dict", "doc", "tail"))
    assert len(list(stream)) == 2


def test_scripted_unreadable_chunks_fail_closed() -> None:
    guard, _ = make_guard()
    rail = ProGuardRail(guard, stream_window_chars=None, on_block="refuse", refusal="R")
    out = list((gen_of([{"output": "fine"}, Opaque("anything")]) | rail).stream("q"))
    assert len(out) == 1 and not isinstance(out[0], Opaque)


async def test_scripted_astream_dict_chunks_harmful_head_is_blocked() -> None:
    guard, _ = make_guard()

    async def agen(_: AsyncIterator[Any]) -> AsyncIterator[Any]:
        for c in [{"output": UNSAFE}, {"output": " and"}, {"output": " benign"}]:
            yield c

    with pytest.raises(ProGuardViolation):
        async for _ in (RunnableGenerator(agen) | ProGuardRail(guard, stream_window_chars=None)).astream("q"):
            pass


def test_scripted_around_input_stream_of_dict_chunks_is_judged_whole() -> None:
    """The input side merges the same way: a harmful first input chunk blocks the chain."""
    guard, _ = make_guard()
    ran: list[Any] = []

    def chain(inp: Iterator[Any]) -> Iterator[str]:
        ran.extend(inp)
        yield "answer"

    guarded = ProGuardRail.around(RunnableGenerator(chain), guard, on_block="refuse", refusal="NO")
    out = list(guarded.transform(iter([{"question": UNSAFE}, {"question": " please"}])))
    assert out == [{"question": "NO"}] and ran == []  # shaped like the input (output type unknown)
