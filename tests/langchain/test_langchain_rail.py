"""ProGuardRail as a langchain-core Runnable: shapes, blocks, batching, tracing, concurrency.

Every guard here runs on an in-process ScriptedBackend (hence "scripted" in the names).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import ChatPromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnableSerializable
from langchain_proguard import DECISION_EVENT, ProGuardRail, ProGuardViolation

from proguard_rails import ProGuard, ScriptedBackend
from proguard_rails.errors import BackendUnavailableError
from proguard_rails.policy import Policy

from .conftest import NOVEL, UNSAFE

PROMPT = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{question}")])


def test_rail_is_a_real_runnable_and_composes(guard: ProGuard) -> None:
    rail = ProGuardRail(guard)
    assert isinstance(rail, RunnableSerializable) and isinstance(rail, Runnable)
    chain = RunnableLambda(lambda x: x) | rail
    assert type(chain).__name__ == "RunnableSequence"
    assert (ProGuardRail(guard, check="input") | RunnableLambda(lambda x: x)).first.check == "input"
    assert rail.get_name() == "ProGuardRail"


def test_import_of_package_is_light() -> None:
    import subprocess
    import sys

    code = ("import sys, langchain_proguard; "
            "print(any(m.split('.')[0] in ('langchain', 'langchain_core', 'langgraph') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_default_guard_is_built_when_none_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROGUARD_BASE_URL", "http://127.0.0.1:9/v1")
    rail = ProGuardRail()
    assert isinstance(rail.guard, ProGuard)
    assert rail.guard.judge.identity().startswith("generative:openai")


# ------------------------------------------------------------------------------ pass-through
@pytest.mark.parametrize(
    "value",
    [
        "a friendly answer",
        AIMessage(content="a friendly answer"),
        [HumanMessage(content="hi"), AIMessage(content="hello!")],
        {"output": "a friendly answer", "other": 1},
        {"messages": [HumanMessage(content="hi"), AIMessage(content="hello!")]},
    ],
    ids=["str", "aimessage", "messages", "dict", "agent-state"],
)
async def test_scripted_output_allowed_passes_the_same_object(guard: ProGuard, backend: ScriptedBackend,
                                                               value: Any) -> None:
    rail = ProGuardRail(guard)
    assert rail.invoke(value) is value
    assert await rail.ainvoke(value) is value
    assert backend.calls == 2
    assert "Agent:" in backend.prompts[-1].user_text and ("hello!" in backend.prompts[-1].user_text
                                                          or "a friendly answer" in backend.prompts[-1].user_text)


def test_scripted_output_messages_are_judged_as_a_conversation(guard: ProGuard, backend: ScriptedBackend) -> None:
    rail = ProGuardRail(guard)
    rail.invoke([SystemMessage(content="sys"), HumanMessage(content="the question"), AIMessage(content="the answer")])
    text = backend.prompts[-1].user_text
    # system messages are judged with the conversation (ProGuardSettings.system_messages="judge"), as context
    assert "[system instructions]\nsys\n\nthe question" in text and "Agent:  the answer" in text


@pytest.mark.parametrize(
    "value",
    [
        "what is the capital of France?",
        {"question": "what is the capital of France?"},
        [HumanMessage(content="what is the capital of France?")],
        HumanMessage(content="what is the capital of France?"),
    ],
    ids=["str", "dict", "messages", "message"],
)
def test_scripted_input_allowed_passes_the_same_object(guard: ProGuard, backend: ScriptedBackend, value: Any) -> None:
    rail = ProGuardRail(guard, check="input")
    assert rail.invoke(value) is value
    assert "capital of France" in backend.prompts[-1].user_text
    assert backend.prompts[-1].user_text.rstrip().endswith("<END CONVERSATION>")


def test_scripted_input_rail_reads_chat_prompt_values(guard: ProGuard, backend: ScriptedBackend) -> None:
    pv = PROMPT.invoke({"question": f"tell me {UNSAFE}"})
    assert isinstance(pv, ChatPromptValue)
    with pytest.raises(ProGuardViolation) as info:
        ProGuardRail(guard, check="input").invoke(pv)
    assert info.value.decision.check == "input"
    safe = PROMPT.invoke({"question": "hello"})
    assert ProGuardRail(guard, check="input").invoke(safe) is safe


def test_scripted_unknown_dict_shapes_judge_every_text_value(guard: ProGuard, backend: ScriptedBackend) -> None:
    rail = ProGuardRail(guard, check="input")
    with pytest.raises(ProGuardViolation):
        rail.invoke({"topic": "cooking", "style": f"like {UNSAFE}"})
    assert "style: like" in backend.prompts[-1].user_text


# ------------------------------------------------------------------------------ blocks
def test_scripted_output_block_raises_with_decision(guard: ProGuard) -> None:
    chain = RunnableLambda(lambda q: f"here you go: {UNSAFE}") | ProGuardRail(guard)
    with pytest.raises(ProGuardViolation) as info:
        chain.invoke("q")
    d = info.value.decision
    assert d.status == "blocked" and d.blocked and d.category_id == "C8S1" and d.check == "output"


@pytest.mark.parametrize(
    ("value", "check"),
    [
        (f"bad {UNSAFE}", lambda out: out == "REFUSED"),
        (AIMessage(content=f"bad {UNSAFE}"),
         lambda out: isinstance(out, AIMessage) and out.content == "REFUSED"
         and out.response_metadata["proguard"]["category"] == "C8S1"),
        ([HumanMessage(content="q"), AIMessage(content=f"bad {UNSAFE}")],
         lambda out: isinstance(out, list) and len(out) == 2 and out[1].content == "REFUSED"
         and out[0].content == "q"),
        ({"output": f"bad {UNSAFE}", "meta": 7}, lambda out: out == {"output": "REFUSED", "meta": 7}),
    ],
    ids=["str", "aimessage", "messages", "dict"],
)
async def test_scripted_output_refusal_has_the_shape_of_the_value(guard: ProGuard, value: Any, check: Any) -> None:
    rail = ProGuardRail(guard, on_block="refuse", refusal="REFUSED")
    assert check(rail.invoke(value))
    assert check(await rail.ainvoke(value))


def test_scripted_input_block_and_refusal_shapes(guard: ProGuard) -> None:
    rail = ProGuardRail(guard, check="input", on_block="refuse", refusal="NO")
    assert rail.invoke(f"do {UNSAFE}") == "NO"
    out = rail.invoke([HumanMessage(content=f"do {UNSAFE}")])
    assert isinstance(out, AIMessage) and out.content == "NO"
    assert rail.invoke({"question": f"do {UNSAFE}", "k": 1}) == {"question": "NO", "k": 1}
    with pytest.raises(ProGuardViolation):
        ProGuardRail(guard, check="input").invoke(f"do {UNSAFE}")


def test_scripted_callable_refusal_gets_value_and_decision(guard: ProGuard) -> None:
    seen: list[Any] = []

    def refuse(value: Any, decision: Any) -> str:
        seen.append((value, decision.category_id))
        return f"blocked: {decision.category_id}"

    assert ProGuardRail(guard, on_block="refuse", refusal=refuse).invoke(f"x {UNSAFE}") == "blocked: C8S1"
    assert seen == [(f"x {UNSAFE}", "C8S1")]


def test_scripted_input_rail_in_a_pipe_stops_the_chain_by_raising(guard: ProGuard) -> None:
    ran: list[Any] = []
    chain = ProGuardRail(guard, check="input") | RunnableLambda(lambda x: ran.append(x) or "answer")
    assert chain.invoke("hello") == "answer"
    with pytest.raises(ProGuardViolation):
        chain.invoke(f"hello {UNSAFE}")
    assert ran == ["hello"]


def test_scripted_out_of_policy_risk_reaches_the_decision(guard: ProGuard) -> None:
    with pytest.raises(ProGuardViolation) as info:
        ProGuardRail(guard).invoke(f"a {NOVEL} answer")
    d = info.value.decision
    assert d.is_out_of_policy and d.description == "Deepfake extortion"


def test_scripted_output_key_selects_the_text(guard: ProGuard, backend: ScriptedBackend) -> None:
    rail = ProGuardRail(guard, output_key="summary", on_block="refuse", refusal="R")
    assert rail.invoke({"summary": f"bad {UNSAFE}", "answer": "fine"}) == {"summary": "R", "answer": "fine"}
    value = {"summary": "fine", "answer": f"bad {UNSAFE}"}
    assert rail.invoke(value) is value  # only the configured key is screened


def test_scripted_missing_key_fails_closed_with_an_error_decision(guard: ProGuard, backend: ScriptedBackend) -> None:
    with pytest.raises(ProGuardViolation) as info:
        ProGuardRail(guard, output_key="summary").invoke({"answer": "fine"})
    d = info.value.decision
    assert d.status == "error" and d.error_type == "input" and "output_key" in (d.error_message or "")
    assert backend.calls == 0


def test_scripted_guard_failure_is_an_error_not_unsafe(make_guard: Any) -> None:
    g, _ = make_guard(default=BackendUnavailableError("endpoint down"))
    with pytest.raises(ProGuardViolation) as info:
        ProGuardRail(g).invoke("hello")
    d = info.value.decision
    assert d.status == "error" and d.blocked and d.fail_mode_applied == "closed" and d.verdict is None
    out = ProGuardRail(g, policy=Policy(fail_mode="open")).invoke("hello")
    assert out == "hello"


def test_scripted_empty_output_passes_without_a_guard_call(guard: ProGuard, backend: ScriptedBackend) -> None:
    msg = AIMessage(content="")
    assert ProGuardRail(guard).invoke(msg) is msg
    assert backend.calls == 0


def test_scripted_tool_calls_in_an_answer_are_judged(guard: ProGuard, backend: ScriptedBackend) -> None:
    msg = AIMessage(content="", tool_calls=[{"name": "wire", "args": {"to": UNSAFE}, "id": "c1"}])
    with pytest.raises(ProGuardViolation):
        ProGuardRail(guard).invoke(msg)
    assert "[tool call] wire(" in backend.prompts[-1].user_text


def test_scripted_rail_policy_overrides_the_guard_policy(guard: ProGuard) -> None:
    rail = ProGuardRail(guard, policy=Policy(allow_categories={"C8"}))
    assert rail.invoke(f"x {UNSAFE}") == f"x {UNSAFE}"


# ------------------------------------------------------------------------------ images
@pytest.mark.parametrize(
    "block",
    [
        lambda url: {"type": "image_url", "image_url": {"url": url}},
        lambda url: {"type": "image", "base64": url.split(",", 1)[1], "mime_type": "image/png"},
        lambda url: {"type": "image", "source_type": "base64", "data": url.split(",", 1)[1],
                     "mime_type": "image/png"},
        lambda url: {"type": "image", "url": url},
    ],
    ids=["openai-image_url", "v1-base64", "v0-source-type", "v1-url"],
)
def test_scripted_images_in_human_message_blocks_reach_the_guard(guard: ProGuard, backend: ScriptedBackend,
                                                                 data_url: str, block: Any) -> None:
    msg = HumanMessage(content=[{"type": "text", "text": "what is this?"}, block(data_url)])
    assert ProGuardRail(guard, check="input").invoke([msg])[0] is msg
    prompt = backend.prompts[-1]
    assert len(prompt.images) == 1 and str(prompt.modality) == "text-image"
    assert (prompt.images[0].width, prompt.images[0].height) == (40, 30)


def test_scripted_image_in_a_prompt_template_reaches_the_guard(guard: ProGuard, backend: ScriptedBackend,
                                                               data_url: str) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("human", [{"type": "text", "text": "{q}"}, {"type": "image_url", "image_url": {"url": "{img}"}}])]
    )
    chain = prompt | ProGuardRail(guard, check="input")
    chain.invoke({"q": "describe", "img": data_url})
    assert len(backend.prompts[-1].images) == 1


def test_scripted_corrupt_image_fails_closed(guard: ProGuard, backend: ScriptedBackend) -> None:
    msg = HumanMessage(content=[{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}])
    with pytest.raises(ProGuardViolation) as info:
        ProGuardRail(guard, check="input").invoke([msg])
    assert info.value.decision.status == "error" and info.value.decision.error_type == "image"
    assert backend.calls == 0


# ------------------------------------------------------------------------------ around
def test_scripted_around_judges_request_and_answer_together(guard: ProGuard, backend: ScriptedBackend) -> None:
    chain = PROMPT | RunnableLambda(lambda pv: AIMessage(content="Paris."))
    guarded = ProGuardRail.around(chain, guard)
    out = guarded.invoke({"question": "capital of France?"})
    assert out.content == "Paris."
    assert [p.user_text.count("capital of France?") for p in backend.prompts] == [1, 1]
    last = backend.prompts[-1].user_text
    assert "User: capital of France?" in last and "Paris." in last


def test_scripted_around_blocked_input_never_runs_the_chain(guard: ProGuard) -> None:
    ran: list[Any] = []
    inner = RunnableLambda(lambda x: ran.append(x) or "answer")
    guarded = ProGuardRail.around(inner | StrOutputParser(), guard, on_block="refuse", refusal="NOPE")
    assert guarded.invoke(f"q {UNSAFE}") == "NOPE"
    assert ran == []
    with pytest.raises(ProGuardViolation):
        ProGuardRail.around(inner, guard).invoke(f"q {UNSAFE}")
    assert ran == []


def test_scripted_around_refusal_follows_the_chain_output_type(guard: ProGuard) -> None:
    model_chain = PROMPT | RunnableLambda(lambda pv: AIMessage(content="x")).with_types(output_type=AIMessage)
    out = ProGuardRail.around(model_chain, guard, on_block="refuse").invoke({"question": UNSAFE})
    assert isinstance(out, AIMessage) and out.content == "I can't help with that."
    str_chain = PROMPT | RunnableLambda(lambda pv: AIMessage(content="x")) | StrOutputParser()
    assert ProGuardRail.around(str_chain, guard, on_block="refuse").invoke({"question": UNSAFE}) == \
        "I can't help with that."


def test_scripted_around_blocked_answer(guard: ProGuard) -> None:
    guarded = ProGuardRail.around(RunnableLambda(lambda q: f"sure: {UNSAFE}"), guard, on_block="refuse",
                                  refusal="R")
    assert guarded.invoke("hello") == "R"


async def test_scripted_around_batch_uses_two_guard_calls(make_guard: Any) -> None:
    g, be = make_guard()
    ran: list[Any] = []
    inner = RunnableLambda(lambda q: ran.append(q) or (f"ans {UNSAFE}" if q == "trigger" else f"ans {q}"))
    guarded = ProGuardRail.around(inner, g, on_block="refuse", refusal="R")
    inputs = [f"q{i}" for i in range(10)] + [f"bad {UNSAFE}", "trigger"]
    outs = await guarded.abatch(inputs)
    assert outs[:10] == [f"ans q{i}" for i in range(10)] and outs[10:] == ["R", "R"]
    assert be.batch_calls == 2 and f"bad {UNSAFE}" not in ran
    g2, be2 = make_guard()
    outs2 = ProGuardRail.around(inner, g2, on_block="refuse", refusal="R").batch(inputs)
    assert outs2 == outs and be2.batch_calls == 2


# ------------------------------------------------------------------------------ batch
async def test_scripted_abatch_of_32_makes_one_batched_guard_call(make_guard: Any) -> None:
    g, be = make_guard()
    rail = ProGuardRail(g, on_block="refuse", refusal="R")
    inputs = [f"answer number {i}" for i in range(31)] + [f"answer {UNSAFE}"]
    outs = await rail.abatch(inputs)
    assert be.batch_calls == 1 and be.calls == 32
    assert all(o is i for o, i in zip(outs[:31], inputs[:31], strict=True)) and outs[31] == "R"


async def test_scripted_chain_abatch_of_32_makes_one_batched_guard_call(make_guard: Any) -> None:
    g, be = make_guard()
    chain = PROMPT | RunnableLambda(lambda pv: AIMessage(content="re: " + pv.to_messages()[-1].text)) | \
        ProGuardRail(g)
    outs = await chain.abatch([{"question": f"q{i}"} for i in range(32)])
    assert [o.content for o in outs] == [f"re: q{i}" for i in range(32)]
    assert be.batch_calls == 1


def test_scripted_sync_batch_makes_one_batched_guard_call(make_guard: Any) -> None:
    g, be = make_guard()
    inputs = [f"answer {i}" for i in range(32)]
    assert ProGuardRail(g).batch(inputs) == inputs
    assert be.batch_calls == 1


async def test_scripted_batch_return_exceptions_keeps_positions(make_guard: Any) -> None:
    g, be = make_guard()
    rail = ProGuardRail(g)
    inputs = ["fine", f"bad {UNSAFE}", "also fine"]
    outs = rail.batch(inputs, return_exceptions=True)
    assert outs[0] == "fine" and outs[2] == "also fine" and isinstance(outs[1], ProGuardViolation)
    with pytest.raises(ProGuardViolation):
        await rail.abatch(inputs)


# ------------------------------------------------------------------------------ tracing
def test_scripted_trace_has_named_run_with_verdict_in_outputs_and_event(guard: ProGuard, recorder: Any) -> None:
    chain = RunnableLambda(lambda q: f"about {NOVEL}") | ProGuardRail(guard, on_block="refuse", refusal="R")
    assert chain.invoke("q", {"callbacks": [recorder]}) == "R"
    (rid,) = recorder.runs_named("ProGuardRail")
    meta = recorder.starts[rid]["metadata"]
    assert meta["proguard_check"] == "output" and meta["proguard_judge"] == "generative:scripted"
    out = recorder.ends[rid]
    assert out["output"] == "R"
    assert out["proguard"]["decision"] == "block" and out["proguard"]["out_of_policy"] is True
    assert out["proguard"]["description"] == "Deepfake extortion" and out["proguard"]["response"] == "unsafe"
    ((name, data, ev_run),) = recorder.events
    assert name == DECISION_EVENT and ev_run == rid and data["rail"] == "ProGuardRail"
    assert data["description"] == "Deepfake extortion" and data["request"] == "unsafe"


async def test_scripted_trace_async_run_name_and_error(guard: ProGuard, recorder: Any) -> None:
    rail = ProGuardRail(guard).with_config(run_name="output-guard")
    with pytest.raises(ProGuardViolation):
        await rail.ainvoke(f"x {UNSAFE}", {"callbacks": [recorder]})
    (rid,) = recorder.runs_named("output-guard")
    assert isinstance(recorder.errors[rid], ProGuardViolation)
    assert recorder.events[0][1]["category"] == "C8S1"


async def test_scripted_astream_events_carry_the_decision(guard: ProGuard) -> None:
    chain = RunnableLambda(lambda q: "a fine answer") | ProGuardRail(guard)
    events = [e async for e in chain.astream_events("q", version="v2")]
    custom = [e for e in events if e["event"] == "on_custom_event"]
    assert len(custom) == 1 and custom[0]["name"] == DECISION_EVENT
    assert custom[0]["data"]["decision"] == "allow"
    ends = [e for e in events if e["event"] == "on_chain_end" and e["name"] == "ProGuardRail"]
    assert ends and ends[0]["data"]["output"]["proguard"]["status"] == "allowed"


def test_scripted_batch_traces_one_run_per_item(make_guard: Any, recorder: Any) -> None:
    g, _ = make_guard()
    ProGuardRail(g, on_block="refuse").batch(["a", f"b {UNSAFE}"], {"callbacks": [recorder]})
    runs = recorder.runs_named("ProGuardRail")
    assert len(runs) == 2 and len(recorder.events) == 2
    assert sorted(recorder.ends[r]["proguard"]["decision"] for r in runs) == ["allow", "block"]


# ------------------------------------------------------------------------------ concurrency
async def test_scripted_concurrent_async_calls_keep_their_own_results(make_guard: Any) -> None:
    g, _ = make_guard(delay=0.002)
    rail = ProGuardRail(g, on_block="refuse", refusal="R")
    inputs = [f"answer {i}" if i % 3 else f"answer {i} {UNSAFE}" for i in range(60)]
    outs = await asyncio.gather(*(rail.ainvoke(v) for v in inputs))
    for v, o in zip(inputs, outs, strict=True):
        assert (o == "R") if UNSAFE in v else (o is v)


def test_scripted_concurrent_threads_keep_their_own_results(make_guard: Any) -> None:
    g, _ = make_guard(delay=0.001)
    rail = ProGuardRail(g, on_block="refuse", refusal="R", stream_window_chars=4)
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        text = f"reply {i} " + (UNSAFE if i % 2 else "ok")
        via_invoke = rail.invoke(text)
        via_stream = "".join(rail.stream(text))
        results[i] = (text, via_invoke, via_stream)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 16
    for i, (text, inv, streamed) in results.items():
        if i % 2:
            assert inv == "R" and streamed.endswith("R") and UNSAFE not in streamed
        else:
            assert inv is text and streamed == text
    assert not rail.__dict__.get("_state")  # nothing per call lives on the instance


def test_rail_rejects_bad_settings(guard: ProGuard) -> None:
    with pytest.raises(ValueError):
        ProGuardRail(guard, check="both")
    with pytest.raises(ValueError):
        ProGuardRail(guard, on_block="ignore")
    with pytest.raises(ValueError):
        ProGuardRail(guard, stream_window_chars=-1)
    assert ProGuardRail(guard, stream_window_chars=0).stream_window_chars is None


def test_scripted_output_dict_with_its_input_is_judged_as_a_pair(guard: ProGuard, backend: ScriptedBackend) -> None:
    value = {"input": "capital of France?", "output": "Paris."}
    assert ProGuardRail(guard).invoke(value) is value
    text = backend.prompts[-1].user_text
    assert "User: capital of France?" in text and "Paris." in text
