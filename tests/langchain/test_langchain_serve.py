"""End to end through a real ``transformers serve`` on loopback, serving the tiny random
Qwen2.5-VL built offline by ``proguard_rails.testing``.

Its answers are gibberish, so every check must end as an error decision ("the guard could
not judge"), never as safe, and the default fail-closed policy must block: the rail raises
or refuses, and the agent middleware stops the run before the model or any tool runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("transformers")
pytest.importorskip("torch")

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_proguard import ProGuardMiddleware, ProGuardRail, ProGuardViolation

from proguard_rails import OpenAIBackend, ProGuard
from proguard_rails.testing import serve_model, tiny_model_path

pytestmark = [pytest.mark.serve, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def served() -> Iterator[Any]:
    with serve_model(tiny_model_path()) as server:
        yield server


@pytest.fixture
def real_guard(served: Any) -> Iterator[ProGuard]:
    # transformers serve 5.x fails on `stop` for VLMs; the backend cuts at </answer> itself.
    backend = OpenAIBackend(served.base_url, served.model, send_stop=False, max_tokens=16, timeout=120)
    guard = ProGuard(backend=backend, cache_size=0)
    yield guard
    guard.close()


def test_served_tiny_model_rail_fails_closed(real_guard: ProGuard, recorder: Any) -> None:
    chain = RunnableLambda(lambda q: "Mix flour, water and yeast, then bake.") | ProGuardRail(real_guard)
    with pytest.raises(ProGuardViolation) as info:
        chain.invoke("How do I bake bread?", {"callbacks": [recorder]})
    d = info.value.decision
    assert d.status == "error" and d.blocked and d.fail_mode_applied == "closed" and d.verdict is None
    assert d.error_type in ("parse", "backend"), d.error_message
    assert recorder.events[0][1]["status"] == "error"

    refusing = RunnableLambda(lambda q: "fine") | ProGuardRail(real_guard, on_block="refuse", refusal="R")
    assert refusing.invoke("q") == "R"


async def test_served_tiny_model_agent_middleware_fails_closed(real_guard: ProGuard, fake_model: Any) -> None:
    ran: list[str] = []

    @tool
    def lookup(city: str) -> str:
        """Weather lookup."""
        ran.append(city)
        return "sunny"

    model = fake_model(AIMessage(content="", tool_calls=[{"name": "lookup", "args": {"city": "Paris"}, "id": "c1"}]),
                       AIMessage(content="It is sunny."))
    agent = create_agent(model, [lookup], middleware=[ProGuardMiddleware(real_guard, refusal="Guard unavailable.")])
    out = await agent.ainvoke({"messages": [HumanMessage(content="Weather in Paris?")]})
    last = out["messages"][-1]
    assert last.content == "Guard unavailable."
    assert last.response_metadata["proguard"]["status"] == "error"
    assert model.seen == [] and ran == []
