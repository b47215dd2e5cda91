"""Streaming through ProGuardRail: nothing is yielded before the guard has judged it.

A scripted backend records every text it judged; after each yielded chunk the test
checks that the whole text released so far was inside a prompt judged *before* that
chunk was yielded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableGenerator, RunnableLambda
from langchain_proguard import ProGuardRail, ProGuardViolation

from proguard_rails import ProGuard, ScriptedBackend

from .conftest import UNSAFE

PROMPT = ChatPromptTemplate.from_messages([("human", "{question}")])
SAFE_TEXT = "The quick brown fox jumps over the lazy dog while the sun sets slowly in the west."
BLOCK_TEXT = "Step one is harmless. Step two is harmless too. Then " + UNSAFE + " and more secret text."


def _agent_part(user_text: str) -> str:
    if "Agent:" not in user_text:
        return ""
    return user_text.split("Agent:", 1)[1].rsplit("\n<END CONVERSATION>", 1)[0]


def _text(chunk: Any) -> str:
    return chunk if isinstance(chunk, str) else chunk.text


def assert_judged_before_release(chunks: Iterator[Any], backend: ScriptedBackend) -> list[Any]:
    """Consume a stream; after every chunk, the released text must already have been judged."""
    out: list[Any] = []
    released = ""
    for chunk in chunks:
        out.append(chunk)
        released += _text(chunk)
        judged = [_agent_part(p.user_text) for p in backend.prompts]
        assert any(released in j for j in judged), f"released unjudged text: {released!r}"
    return out


async def aassert_judged_before_release(chunks: AsyncIterator[Any], backend: ScriptedBackend) -> list[Any]:
    out: list[Any] = []
    released = ""
    async for chunk in chunks:
        out.append(chunk)
        released += _text(chunk)
        judged = [_agent_part(p.user_text) for p in backend.prompts]
        assert any(released in j for j in judged), f"released unjudged text: {released!r}"
    return out


@pytest.mark.parametrize("window", [1, 12, 40, None])
def test_scripted_stream_str_chunks_released_only_after_judging(fake_model: Any, guard: ProGuard,
                                                                  backend: ScriptedBackend, window: Any) -> None:
    chain = PROMPT | fake_model(SAFE_TEXT) | StrOutputParser() | ProGuardRail(guard, stream_window_chars=window)
    out = assert_judged_before_release(chain.stream({"question": "q"}), backend)
    assert "".join(out) == SAFE_TEXT
    assert len(out) > 1  # still a stream, chunk by chunk
    if window is None:
        assert backend.calls == 1  # held until the end, judged once
    else:
        assert 2 <= backend.calls <= len(out)


@pytest.mark.parametrize("window", [10, None])
async def test_scripted_astream_message_chunks_released_only_after_judging(fake_model: Any, guard: ProGuard,
                                                                            backend: ScriptedBackend,
                                                                            window: Any) -> None:
    chain = PROMPT | fake_model(SAFE_TEXT) | ProGuardRail(guard, stream_window_chars=window)
    out = await aassert_judged_before_release(chain.astream({"question": "q"}), backend)
    assert all(isinstance(c, AIMessageChunk) for c in out)
    assert "".join(c.text for c in out) == SAFE_TEXT


def test_scripted_windows_judge_the_whole_text_so_far(fake_model: Any, guard: ProGuard,
                                                        backend: ScriptedBackend) -> None:
    chain = fake_model(SAFE_TEXT) | StrOutputParser() | ProGuardRail(guard, stream_window_chars=20)
    "".join(chain.stream("q"))
    judged = [_agent_part(p.user_text).strip() for p in backend.prompts]
    assert all(SAFE_TEXT.startswith(j) for j in judged)  # cumulative prefixes, not disjoint windows
    assert judged == sorted(judged, key=len) and judged[-1] == SAFE_TEXT


@pytest.mark.parametrize("window", [8, None])
def test_scripted_block_mid_stream_stops_with_refusal(fake_model: Any, guard: ProGuard, backend: ScriptedBackend,
                                                       window: Any) -> None:
    chain = fake_model(BLOCK_TEXT) | StrOutputParser() | ProGuardRail(
        guard, stream_window_chars=window, on_block="refuse", refusal="[blocked]")
    out: list[str] = []
    for chunk in chain.stream("q"):
        out.append(chunk)
        if chunk != "[blocked]":
            judged = [_agent_part(p.user_text) for p in backend.prompts]
            assert any("".join(out) in j for j in judged)
    assert out[-1] == "[blocked]"
    released = "".join(out[:-1])
    assert UNSAFE not in released and "secret" not in released
    assert BLOCK_TEXT.startswith(released)
    if window is None:
        assert released == ""
    else:
        assert released.startswith("Step one")


async def test_scripted_block_mid_astream_raises_after_safe_prefix(fake_model: Any, guard: ProGuard,
                                                                    backend: ScriptedBackend) -> None:
    chain = fake_model(BLOCK_TEXT) | ProGuardRail(guard, stream_window_chars=8)
    got: list[str] = []
    with pytest.raises(ProGuardViolation) as info:
        async for chunk in chain.astream("q"):
            got.append(chunk.text)
    assert info.value.decision.category_id == "C8S1"
    assert got and UNSAFE not in "".join(got)


def test_scripted_mid_stream_refusal_keeps_the_chunk_type(fake_model: Any, guard: ProGuard) -> None:
    chain = fake_model(BLOCK_TEXT) | ProGuardRail(guard, stream_window_chars=8, on_block="refuse", refusal="R")
    out = list(chain.stream("q"))
    assert isinstance(out[-1], AIMessageChunk) and out[-1].content == "R"
    assert out[-1].response_metadata["proguard"]["decision"] == "block"


def test_scripted_hold_until_end_consumes_everything_before_yielding(guard: ProGuard,
                                                                     backend: ScriptedBackend) -> None:
    produced: list[str] = []

    def gen(_: Iterator[Any]) -> Iterator[str]:
        for word in SAFE_TEXT.split(" "):
            produced.append(word)
            yield word + " "

    chain = RunnableGenerator(gen) | ProGuardRail(guard, stream_window_chars=None)
    stream = chain.stream("q")
    first = next(stream)
    assert len(produced) == len(SAFE_TEXT.split(" ")) and backend.calls == 1
    assert first == "The "
    assert "".join([first, *stream]).strip() == SAFE_TEXT


def test_scripted_final_empty_chunk_does_not_trigger_a_second_judgement(guard: ProGuard,
                                                                       backend: ScriptedBackend) -> None:
    def gen(_: Iterator[Any]) -> Iterator[AIMessageChunk]:
        yield AIMessageChunk(content="hello there")
        yield AIMessageChunk(content="", chunk_position="last")

    out = list((RunnableGenerator(gen) | ProGuardRail(guard, stream_window_chars=5)).stream("q"))
    assert [c.content for c in out] == ["hello there", ""] and backend.calls == 1


def test_scripted_input_rail_streams_the_same_input_objects(guard: ProGuard, backend: ScriptedBackend) -> None:
    seen: list[Any] = []
    value = {"question": "hi"}
    chain = ProGuardRail(guard, check="input") | RunnableLambda(lambda x: seen.append(x) or "ok")
    assert list(chain.stream(value)) == ["ok"] and seen[0] is value
    with pytest.raises(ProGuardViolation):
        list(chain.stream({"question": UNSAFE}))
    assert len(seen) == 1


async def test_scripted_around_streams_with_request_context(fake_model: Any, guard: ProGuard,
                                                             backend: ScriptedBackend) -> None:
    guarded = ProGuardRail.around(PROMPT | fake_model(SAFE_TEXT), guard, stream_window_chars=16)
    out = await aassert_judged_before_release(guarded.astream({"question": "tell me a story"}), backend)
    assert "".join(c.text for c in out) == SAFE_TEXT
    assert _agent_part(backend.prompts[0].user_text).strip() == ""  # first check: the input alone
    assert all("User: tell me a story" in p.user_text for p in backend.prompts)
    assert all("Agent:" in p.user_text for p in backend.prompts[1:])


def test_scripted_around_stream_blocked_input_never_runs(guard: ProGuard) -> None:
    ran: list[Any] = []

    def gen(inp: Iterator[Any]) -> Iterator[str]:
        for x in inp:
            ran.append(x)
        yield "answer"

    guarded = ProGuardRail.around(RunnableGenerator(gen), guard, on_block="refuse", refusal="NO")
    assert list(guarded.stream(f"q {UNSAFE}")) == ["NO"] and ran == []
    assert list(guarded.stream("fine")) == ["answer"] and ran == ["fine"]


async def test_scripted_astream_trace_reports_windows(fake_model: Any, guard: ProGuard, recorder: Any) -> None:
    rail = ProGuardRail(guard, stream_window_chars=20)
    chain = fake_model(SAFE_TEXT) | rail
    [c async for c in chain.astream("q", {"callbacks": [recorder]})]
    (rid,) = recorder.runs_named("ProGuardRail")
    out = recorder.ends[rid]
    assert out["proguard_checks"] >= 4 and out["proguard"]["decision"] == "allow"
    assert out["output"].text == SAFE_TEXT
    assert len([e for e in recorder.events if e[2] == rid]) == out["proguard_checks"]


def test_scripted_stream_of_plain_aimessage_output(guard: ProGuard, backend: ScriptedBackend) -> None:
    msg = AIMessage(content="complete answer")
    out = list((RunnableLambda(lambda _: msg) | ProGuardRail(guard)).stream("q"))
    assert out == [msg] and out[0] is msg


async def test_scripted_astream_events_stream_only_judged_chunks(fake_model: Any, guard: ProGuard,
                                                                 backend: ScriptedBackend) -> None:
    chain = fake_model(SAFE_TEXT) | ProGuardRail(guard, stream_window_chars=30)
    rail_chunks = []
    async for event in chain.astream_events("q", version="v2"):
        if event["event"] == "on_chain_stream" and event["name"] == "ProGuardRail":
            rail_chunks.append(event["data"]["chunk"].text)
            judged = [_agent_part(p.user_text) for p in backend.prompts]
            assert any("".join(rail_chunks) in j for j in judged)
    assert "".join(rail_chunks) == SAFE_TEXT


def test_scripted_consumer_stopping_early_still_ends_the_run(fake_model: Any, guard: ProGuard,
                                                             recorder: Any) -> None:
    chain = fake_model(SAFE_TEXT) | StrOutputParser() | ProGuardRail(guard, stream_window_chars=5)
    stream = chain.stream("q", {"callbacks": [recorder]})
    first = next(stream)
    stream.close()
    (rid,) = recorder.runs_named("ProGuardRail")
    assert recorder.ends[rid]["output"] == first and rid not in recorder.errors


def test_scripted_stream_of_whole_messages_is_judged_as_one_answer(guard: ProGuard, backend: ScriptedBackend) -> None:
    first, second = AIMessage(content="Part one."), AIMessage(content=f"Part two {UNSAFE}.")

    def gen(_: Iterator[Any]) -> Iterator[AIMessage]:
        yield first
        yield second

    rail = ProGuardRail(guard, stream_window_chars=None, on_block="refuse", refusal="R")
    assert list((RunnableLambda(lambda _: first) | rail).stream("q")) == [first]
    out = list((RunnableGenerator(gen) | rail).stream("q"))
    assert len(out) == 1 and isinstance(out[0], AIMessage) and out[0].content == "R"
    assert "Part one." in backend.prompts[-1].user_text and "Part two" in backend.prompts[-1].user_text


# ------------------------------------------------------------------ astream_events: what is visible when
async def _events(runnable: Any, value: Any, **kw: Any) -> list[dict[str, Any]]:
    return [e async for e in runnable.astream_events(value, version="v2", **kw)]


def _texts(events: list[dict[str, Any]], kind: str) -> str:
    out = []
    for e in events:
        if e["event"] == kind:
            data = e["data"].get("chunk", e["data"].get("output"))
            out.append(data if isinstance(data, str) else getattr(data, "text", str(data)))
    return "".join(out)


class _ModelRuns(BaseCallbackHandler):
    def __init__(self) -> None:
        self.models = 0

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.models += 1


async def test_scripted_around_keeps_unjudged_model_tokens_out_of_astream_events(
        fake_model: Any, guard: ProGuard) -> None:
    guarded = ProGuardRail.around(fake_model(BLOCK_TEXT), guard, on_block="refuse", refusal="R",
                                  stream_window_chars=8)
    tracer = _ModelRuns()
    events = await _events(guarded, "q", config={"callbacks": [tracer]})
    names = {e["name"] for e in events}
    assert names == {"ProGuardGuarded", "proguard_decision"}, names  # no inner model runs
    assert UNSAFE not in str([e["data"] for e in events])
    streamed = [e["data"]["chunk"] for e in events if e["event"] == "on_chain_stream"]
    assert streamed[-1].content == "R" and all(UNSAFE not in c.text for c in streamed)
    assert tracer.models == 1  # callbacks and tracers still record the inner model run


async def test_scripted_around_inner_events_opt_in_shows_the_model_run(fake_model: Any, guard: ProGuard) -> None:
    guarded = ProGuardRail.around(fake_model(SAFE_TEXT), guard, inner_events=True)
    events = await _events(guarded, "q")
    assert _texts(events, "on_chat_model_stream") == SAFE_TEXT


async def test_scripted_pipe_astream_events_shows_model_tokens_unless_filtered_to_the_rail(
        fake_model: Any, guard: ProGuard) -> None:
    """The documented caveat: in ``model | rail`` the model is a sibling step, and its events
    reach astream_events before the rail judges the text; filtering on the rail's name leaves
    only judged chunks."""
    chain = fake_model(BLOCK_TEXT) | ProGuardRail(guard, on_block="refuse", refusal="R", stream_window_chars=8)
    assert UNSAFE in _texts(await _events(chain, "q"), "on_chat_model_stream")
    only_rail = await _events(fake_model(BLOCK_TEXT) | ProGuardRail(guard, on_block="refuse", refusal="R",
                                                                      stream_window_chars=8),
                              "q", include_names=["ProGuardRail"])
    assert {e["name"] for e in only_rail} == {"ProGuardRail"}
    streamed = _texts(only_rail, "on_chain_stream")
    assert UNSAFE not in streamed and streamed.endswith("R")
