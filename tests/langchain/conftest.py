"""Fixtures for the LangChain integration tests.

Guards here are driven by an in-process ScriptedBackend (answers chosen by the test,
keyed on marker words no policy text contains), so allow/block logic is tested
deterministically; the real-model path is in test_langchain_serve.py.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain")

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import BaseMessage

from proguard_rails import ProGuard, ScriptedBackend
from proguard_rails.backends.scripted import unsafe_answer
from tests.helpers import png_bytes

#: Marker words the scripted backend reacts to (absent from the taxonomy and templates).
UNSAFE = "XUNSAFEX"          # request and response unsafe, C8S1
INJECT = "XINJECTX"          # request unsafe (tool output carrying injected instructions)
NOVEL = "XNOVELX"            # unsafe, out-of-policy free-text category


def scripted_rules() -> dict[str, Any]:
    return {
        UNSAFE: unsafe_answer("C8S1", response="unsafe"),
        INJECT: unsafe_answer("C2"),
        NOVEL: unsafe_answer("Deepfake extortion", response="unsafe"),
    }


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(rules=scripted_rules())


@pytest.fixture
def guard(backend: ScriptedBackend) -> ProGuard:
    return ProGuard(backend=backend, cache_size=0)


@pytest.fixture
def make_guard() -> Callable[..., tuple[ProGuard, ScriptedBackend]]:
    def _make(**kw: Any) -> tuple[ProGuard, ScriptedBackend]:
        be = ScriptedBackend(rules=scripted_rules(), **{k: kw.pop(k) for k in ("default", "delay") if k in kw})
        return ProGuard(backend=be, cache_size=kw.pop("cache_size", 0), **kw), be
    return _make


@pytest.fixture
def data_url() -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes((40, 30))).decode()


class ToolCallingFakeModel(GenericFakeChatModel):
    """GenericFakeChatModel that accepts bind_tools and records what it was shown."""

    seen: list[list[BaseMessage]] = []

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingFakeModel:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


@pytest.fixture
def fake_model() -> Callable[..., ToolCallingFakeModel]:
    def _make(*messages: Any) -> ToolCallingFakeModel:
        return ToolCallingFakeModel(messages=iter(list(messages)), seen=[])
    return _make


class Recorder(BaseCallbackHandler):
    """Records chain runs and custom events, as a tracer would see them."""

    def __init__(self) -> None:
        self.starts: dict[Any, dict[str, Any]] = {}
        self.ends: dict[Any, Any] = {}
        self.errors: dict[Any, BaseException] = {}
        self.events: list[tuple[str, Any, Any]] = []

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any, parent_run_id: Any = None,
                       tags: Any = None, metadata: Any = None, **kwargs: Any) -> None:
        self.starts[run_id] = {"name": kwargs.get("name"), "metadata": dict(metadata or {}),
                               "parent": parent_run_id, "inputs": inputs}

    def on_chain_end(self, outputs: Any, *, run_id: Any, **kwargs: Any) -> None:
        self.ends[run_id] = outputs

    def on_chain_error(self, error: BaseException, *, run_id: Any, **kwargs: Any) -> None:
        self.errors[run_id] = error

    def on_custom_event(self, name: str, data: Any, *, run_id: Any, **kwargs: Any) -> None:
        self.events.append((name, data, run_id))

    def runs_named(self, name: str) -> list[Any]:
        return [rid for rid, s in self.starts.items() if s["name"] == name]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
