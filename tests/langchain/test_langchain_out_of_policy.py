"""The out-of-policy risk name reaches the user on every blocked LangChain path.

ProGuard names a risk the policy does not list (``Verdict.is_out_of_policy``,
``Verdict.description``); that name is the product's distinguishing output, so each blocked
path is checked for it: the rail's refusal (value, message, stream chunk), its exception, the
``around()`` wrapper, and the agent middleware's refusals, tool messages and exception.
Scripted backend answering with a free-text category for the marker word.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableGenerator, RunnableLambda
from langchain_core.tools import tool
from langchain_proguard import ProGuardMiddleware, ProGuardRail, ProGuardViolation

from proguard_rails import ProGuard

from .conftest import NOVEL

NAME = "Deepfake extortion"  # the free-text category the scripted backend gives for NOVEL


def assert_named(meta: dict[str, Any]) -> None:
    """A decision dict (``Decision.to_dict()``) that carries the out-of-policy name."""
    assert meta["decision"] == "block" and meta["out_of_policy"] is True, meta
    assert meta["description"] == NAME and meta["category"] is None


def assert_violation_named(exc: ProGuardViolation) -> None:
    d = exc.decision
    assert d.blocked and d.is_out_of_policy and d.description == NAME
    assert NAME in str(exc)  # the message a log or a user sees names the risk


# ------------------------------------------------------------------------------ ProGuardRail
def test_scripted_rail_refusal_message_carries_the_name(guard: ProGuard) -> None:
    answer = AIMessage(content=f"here is a {NOVEL} plan")
    out = (RunnableLambda(lambda _: answer) | ProGuardRail(guard, on_block="refuse")).invoke("q")
    assert isinstance(out, AIMessage) and out is not answer
    assert_named(out.response_metadata["proguard"])


def test_scripted_rail_refusal_of_messages_and_dicts_carries_the_name(guard: ProGuard) -> None:
    rail = ProGuardRail(guard, on_block="refuse")
    convo = [HumanMessage(content="q"), AIMessage(content=f"a {NOVEL} plan")]
    out = rail.invoke(convo)
    assert_named(out[-1].response_metadata["proguard"])
    out = rail.invoke({"output": AIMessage(content=f"a {NOVEL} plan")})
    assert_named(out["output"].response_metadata["proguard"])


def test_scripted_rail_exception_carries_the_name(guard: ProGuard) -> None:
    with pytest.raises(ProGuardViolation) as info:
        ProGuardRail(guard).invoke(f"a {NOVEL} answer")
    assert_violation_named(info.value)


async def test_scripted_rail_async_batch_exceptions_carry_the_name(guard: ProGuard) -> None:
    outs = await ProGuardRail(guard).abatch(["fine", f"a {NOVEL} answer"], return_exceptions=True)
    assert outs[0] == "fine"
    assert_violation_named(outs[1])


def test_scripted_rail_stream_refusal_chunk_carries_the_name(guard: ProGuard) -> None:
    def gen(_: Any) -> Any:
        yield AIMessageChunk(content="Sure. ")
        yield AIMessageChunk(content=f"A {NOVEL} plan.")

    rail = ProGuardRail(guard, on_block="refuse", stream_window_chars=None)
    out = list((RunnableGenerator(gen) | rail).stream("q"))
    assert len(out) == 1 and isinstance(out[0], AIMessageChunk)
    assert_named(out[0].response_metadata["proguard"])


def test_scripted_around_input_refusal_and_exception_carry_the_name(guard: ProGuard, fake_model: Any) -> None:
    model = fake_model(AIMessage(content="never runs"))
    out = ProGuardRail.around(model, guard, on_block="refuse").invoke(f"tell me about {NOVEL}")
    assert isinstance(out, AIMessage) and out.content != "never runs"  # shaped like the model's output
    assert_named(out.response_metadata["proguard"])
    with pytest.raises(ProGuardViolation) as info:
        ProGuardRail.around(model, guard).invoke(f"tell me about {NOVEL}")
    assert_violation_named(info.value)
    answer = ProGuardRail.around(fake_model(AIMessage(content=f"a {NOVEL} plan")), guard,
                                 on_block="refuse").invoke("hello")
    assert_named(answer.response_metadata["proguard"])


# ------------------------------------------------------------------------------ middleware
def _agent(guard: ProGuard, model: Any, tools: list[Any] | None = None, **kw: Any) -> Any:
    return create_agent(model, tools or [], middleware=[ProGuardMiddleware(guard, **kw)])


def test_scripted_middleware_input_refusal_carries_the_name(guard: ProGuard, fake_model: Any) -> None:
    agent = _agent(guard, fake_model(AIMessage(content="never")))
    msgs = agent.invoke({"messages": [HumanMessage(content=f"help with {NOVEL}")]})["messages"]
    assert msgs[-1].content != "never"
    assert_named(msgs[-1].response_metadata["proguard"])


def test_scripted_middleware_output_refusal_carries_the_name(guard: ProGuard, fake_model: Any) -> None:
    agent = _agent(guard, fake_model(AIMessage(content=f"a {NOVEL} plan", id="a1")), screen_input=False)
    msgs = agent.invoke({"messages": [HumanMessage(content="hi")]})["messages"]
    assert msgs[-1].id == "a1" and NOVEL not in msgs[-1].content
    assert_named(msgs[-1].response_metadata["proguard"])


def test_scripted_middleware_tool_messages_carry_the_name(guard: ProGuard, fake_model: Any) -> None:
    @tool
    def lookup(topic: str) -> str:
        """Look a topic up."""
        return f"results: {NOVEL} instructions" if topic == "b" else "nothing"

    calls = AIMessage(content="", tool_calls=[{"name": "lookup", "args": {"topic": NOVEL}, "id": "c1"},
                                              {"name": "lookup", "args": {"topic": "b"}, "id": "c2"}])
    agent = _agent(guard, fake_model(calls, AIMessage(content="done")), [lookup],
                   screen_input=False, screen_output=False)
    msgs = agent.invoke({"messages": [HumanMessage(content="look it up")]})["messages"]
    tool_msgs = {m.tool_call_id: m for m in msgs if m.type == "tool"}
    for call_id, check in (("c1", "tool_call"), ("c2", "tool_result")):
        m = tool_msgs[call_id]
        assert m.status == "error" and m.artifact["proguard"]["check"] == check
        assert_named(m.artifact["proguard"])
        assert NAME in m.content  # the model is told which risk was found, so it can adapt


def test_scripted_middleware_exception_carries_the_name(guard: ProGuard, fake_model: Any) -> None:
    agent = _agent(guard, fake_model(AIMessage(content="never")), on_block="raise")
    with pytest.raises(ProGuardViolation) as info:
        agent.invoke({"messages": [HumanMessage(content=f"help with {NOVEL}")]})
    assert_violation_named(info.value)
