"""``ProGuardChatEngine``: screen each user message and each reply of any LlamaIndex chat engine.

The user's message is judged with recent turns as context before the wrapped engine sees
it (a blocked message triggers no retrieval and no LLM call, and is not added to memory).
The reply is judged with the conversation; a blocked reply is replaced by the refusal, in
the returned response and, where the engine keeps a standard memory, in its history, so
the unsafe text is not fed back on the next turn. Streaming variants buffer the reply,
judge it, then stream the screened text.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.chat_engine.types import (
    AGENT_CHAT_RESPONSE_TYPE,
    AgentChatResponse,
    BaseChatEngine,
    StreamingAgentChatResponse,
)

from proguard_rails import Decision, Policy, ProGuard, ProGuardViolation

from ._common import (
    DEFAULT_REFUSAL,
    OnBlock,
    Refusal,
    aemit,
    emit,
    refusal_text,
    resolve_guard,
    response_policy,
)


def _as_dict(msg: ChatMessage) -> dict[str, Any]:
    role = msg.role.value if isinstance(msg.role, MessageRole) else str(msg.role)
    return {"role": role, "content": msg.content or ""}


class ProGuardChatEngine(BaseChatEngine):
    """Wrap a chat engine (``index.as_chat_engine()``, ``SimpleChatEngine``...) with ProGuard.

    Args:
        chat_engine: the engine to protect.
        guard: the ``ProGuard`` engine; by default one built from ``PROGUARD_*`` settings.
        check_input / check_output, on_block, refusal, input_policy, output_policy: as for
            ``ProGuardQueryEngine``.
        history_turns: how many earlier messages are given to the guard as context.
    """

    def __init__(
        self,
        chat_engine: BaseChatEngine,
        guard: ProGuard | None = None,
        *,
        check_input: bool = True,
        check_output: bool = True,
        on_block: OnBlock = "refuse",
        refusal: Refusal = DEFAULT_REFUSAL,
        input_policy: Policy | None = None,
        output_policy: Policy | None = None,
        history_turns: int = 6,
    ) -> None:
        if on_block not in ("refuse", "raise"):
            raise ValueError(f"on_block must be 'refuse' or 'raise', not {on_block!r}")
        self._engine = chat_engine
        self.guard = resolve_guard(guard)
        self.check_input = check_input
        self.check_output = check_output
        self.on_block = on_block
        self.refusal = refusal
        self.input_policy = input_policy
        self.output_policy = output_policy
        self.history_turns = history_turns

    @property
    def chat_engine(self) -> BaseChatEngine:
        return self._engine

    @property
    def chat_history(self) -> list[ChatMessage]:
        return self._engine.chat_history

    def reset(self) -> None:
        self._engine.reset()

    # ------------------------------------------------------------------ helpers
    def _conversation(self, message: str, chat_history: list[ChatMessage] | None) -> list[dict[str, Any]]:
        history = chat_history if chat_history is not None else self._engine.chat_history
        recent = [_as_dict(m) for m in history[-self.history_turns:]] if self.history_turns > 0 else []
        recent = [m for m in recent if m["role"] in ("user", "assistant") and m["content"].strip()]
        return [*recent, {"role": "user", "content": message}]

    def _out_policy(self) -> Policy:
        return response_policy(self.guard, self.output_policy, self.check_input)

    def _refuse(self, decision: Decision, blocked_text: str, stage: str) -> AgentChatResponse:
        if self.on_block == "raise":
            raise ProGuardViolation(decision)
        return AgentChatResponse(
            response=refusal_text(self.refusal, blocked_text, decision),
            metadata={"proguard": decision, "proguard_stage": stage, "proguard_blocked": True},
        )

    def _scrub_memory(self, unsafe: str, refusal: str) -> None:
        """Replace the blocked reply in the wrapped engine's memory, where it has a standard one."""
        memory = getattr(self._engine, "_memory", None) or getattr(self._engine, "memory", None)
        if memory is None or not hasattr(memory, "get_all") or not hasattr(memory, "set"):
            return
        try:
            messages = list(memory.get_all())
            for i in range(len(messages) - 1, -1, -1):
                m = messages[i]
                if m.role == MessageRole.ASSISTANT:
                    if (m.content or "").strip() == unsafe.strip():
                        messages[i] = ChatMessage(role=MessageRole.ASSISTANT, content=refusal)
                        memory.set(messages)
                    break
        except Exception:  # pragma: no cover - exotic memory classes: leave them as they are
            return

    @staticmethod
    def _annotate(resp: Any, decisions: dict[str, Decision]) -> None:
        meta = dict(resp.metadata or {})
        last = decisions.get("output") or decisions.get("input")
        if last is not None:
            meta.update({"proguard": last, "proguard_blocked": False, "proguard_decisions": decisions})
        resp.metadata = meta

    def _blocked_output(self, d_out: Decision, answer: str) -> AgentChatResponse:
        blocked = self._refuse(d_out, answer, "chat_output")
        self._scrub_memory(answer, blocked.response)
        return blocked

    # ------------------------------------------------------------------ sync
    def _screen_in(self, message: str, chat_history: list[ChatMessage] | None) -> Decision | None:
        if not self.check_input:
            return None
        d = self.guard.check(self._conversation(message, chat_history), kind="input", policy=self.input_policy)
        emit("chat_input", d)
        return d

    def _screen_out(self, message: str, chat_history: list[ChatMessage] | None, answer: str) -> Decision:
        d = self.guard.check(self._conversation(message, chat_history), answer, kind="output",
                             policy=self._out_policy())
        emit("chat_output", d)
        return d

    def chat(self, message: str, chat_history: list[ChatMessage] | None = None) -> AGENT_CHAT_RESPONSE_TYPE:
        context = chat_history if chat_history is not None else list(self._engine.chat_history)
        decisions: dict[str, Decision] = {}
        d_in = self._screen_in(message, context)
        if d_in is not None:
            decisions["input"] = d_in
            if d_in.blocked:
                return self._refuse(d_in, message, "chat_input")
        resp = self._engine.chat(message, chat_history)
        if not self.check_output:
            return resp
        answer = str(resp)
        d_out = self._screen_out(message, context, answer)
        decisions["output"] = d_out
        if d_out.blocked:
            return self._blocked_output(d_out, answer)
        self._annotate(resp, decisions)
        return resp

    def stream_chat(self, message: str, chat_history: list[ChatMessage] | None = None) -> StreamingAgentChatResponse:
        context = chat_history if chat_history is not None else list(self._engine.chat_history)
        d_in = self._screen_in(message, context)
        if d_in is not None and d_in.blocked:
            return _as_stream(self._refuse(d_in, message, "chat_input"))
        inner = self._engine.stream_chat(message, chat_history)
        answer = "".join(inner.response_gen)  # buffered: nothing is shown before the verdict
        if self.check_output:
            d_out = self._screen_out(message, context, answer)
            if d_out.blocked:
                return _as_stream(self._blocked_output(d_out, answer))
        return _as_stream(AgentChatResponse(response=answer, sources=inner.sources, source_nodes=inner.source_nodes))

    # ------------------------------------------------------------------ async
    async def _ascreen_in(self, message: str, chat_history: list[ChatMessage] | None) -> Decision | None:
        if not self.check_input:
            return None
        d = await self.guard.acheck(self._conversation(message, chat_history), kind="input",
                                    policy=self.input_policy)
        await aemit("chat_input", d)
        return d

    async def _ascreen_out(self, message: str, chat_history: list[ChatMessage] | None, answer: str) -> Decision:
        d = await self.guard.acheck(self._conversation(message, chat_history), answer, kind="output",
                                    policy=self._out_policy())
        await aemit("chat_output", d)
        return d

    async def achat(self, message: str, chat_history: list[ChatMessage] | None = None) -> AGENT_CHAT_RESPONSE_TYPE:
        context = chat_history if chat_history is not None else list(self._engine.chat_history)
        decisions: dict[str, Decision] = {}
        d_in = await self._ascreen_in(message, context)
        if d_in is not None:
            decisions["input"] = d_in
            if d_in.blocked:
                return self._refuse(d_in, message, "chat_input")
        resp = await self._engine.achat(message, chat_history)
        if not self.check_output:
            return resp
        answer = str(resp)
        d_out = await self._ascreen_out(message, context, answer)
        decisions["output"] = d_out
        if d_out.blocked:
            return self._blocked_output(d_out, answer)
        self._annotate(resp, decisions)
        return resp

    async def astream_chat(self, message: str, chat_history: list[ChatMessage] | None = None,
                           ) -> StreamingAgentChatResponse:
        context = chat_history if chat_history is not None else list(self._engine.chat_history)
        d_in = await self._ascreen_in(message, context)
        if d_in is not None and d_in.blocked:
            return _as_astream(self._refuse(d_in, message, "chat_input"))
        inner = await self._engine.astream_chat(message, chat_history)
        answer = "".join([t async for t in inner.async_response_gen()])
        if self.check_output:
            d_out = await self._ascreen_out(message, context, answer)
            if d_out.blocked:
                return _as_astream(self._blocked_output(d_out, answer))
        return _as_astream(AgentChatResponse(response=answer, sources=inner.sources, source_nodes=inner.source_nodes))


def _chunk(text: str) -> ChatResponse:
    return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=text)


def _as_stream(resp: AgentChatResponse) -> StreamingAgentChatResponse:
    def gen() -> Generator[ChatResponse, None, None]:
        yield _chunk(resp.response)

    out = StreamingAgentChatResponse(response=resp.response, sources=resp.sources, source_nodes=resp.source_nodes,
                                     chat_stream=gen(), is_writing_to_memory=False)
    out.metadata = resp.metadata  # type: ignore[attr-defined]
    return out


def _as_astream(resp: AgentChatResponse) -> StreamingAgentChatResponse:
    async def agen() -> AsyncGenerator[ChatResponse, None]:
        yield _chunk(resp.response)

    out = StreamingAgentChatResponse(response=resp.response, sources=resp.sources, source_nodes=resp.source_nodes,
                                     achat_stream=agen(), is_writing_to_memory=False)
    out.metadata = resp.metadata  # type: ignore[attr-defined]
    return out


__all__ = ["ProGuardChatEngine"]
