"""``ProGuardMiddleware``: ProGuard screening for ``langchain.agents.create_agent``.

Four switchable screens, each with a sync and an async hook:

* ``screen_input``  (``before_agent``): the user's latest turn, with earlier turns as
  context. A block ends the run with a refusal ``AIMessage``; the model never runs.
* ``screen_output`` (``after_model``): the model's prose, judged with the user's request.
  A block replaces that message with a refusal and ends the run.
* ``screen_tool_calls`` (``wrap_tool_call``): tool name and arguments, before the tool
  runs. A block returns ``ToolMessage(status="error")``; the tool is never called.
* ``screen_tool_results`` (``wrap_tool_call``): what the tool returned, before the model
  reads it (harmful content, injected instructions). A block replaces it with an error
  ``ToolMessage``.

The judging is the core's (``ProGuard.check_tool_call`` / ``check_tool_result`` /
``acheck_batch``); this class only maps LangChain state to it and decisions back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from langchain.agents.middleware import AgentMiddleware, AgentState, hook_config
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import Command

from proguard_rails import ProGuard
from proguard_rails.errors import ProGuardError, ProGuardViolation
from proguard_rails.inputs import GuardRequest
from proguard_rails.policy import Policy
from proguard_rails.verdict import Decision

from ._convert import DEFAULT_REFUSAL, Prepared, last_human, message_text, prepare

logger = logging.getLogger("proguard_rails.langchain")

DECISION_EVENT = "proguard_decision"
DEFAULT_TOOL_CALL_REFUSAL = "This tool call was blocked by the safety guard and was not executed."
DEFAULT_TOOL_RESULT_REFUSAL = "The output of this tool was withheld by the safety guard."


def _messages(state: Any) -> list[Any]:
    if isinstance(state, Mapping):
        return list(state.get("messages") or [])
    return list(getattr(state, "messages", None) or [])


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, Mapping) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "\n".join(parts)


def _has_content(content: Any) -> bool:
    """Anything to judge: text, or any block that is not empty text (json, images, files...)."""
    if isinstance(content, str):
        return bool(content.strip())
    for block in content or []:
        if isinstance(block, str):
            if block.strip():
                return True
        elif not (isinstance(block, Mapping) and block.get("type", "text") == "text"
                  and not str(block.get("text") or "").strip()):
            return True
    return False


class ProGuardMiddleware(AgentMiddleware):
    """Screens an agent's input, model answers, tool calls and tool results with ProGuard.

    >>> agent = create_agent(model, tools, middleware=[ProGuardMiddleware(guard)])  # doctest: +SKIP

    Args:
        guard: the ``ProGuard`` engine (built from ``PROGUARD_*`` settings when omitted).
        screen_input / screen_output / screen_tool_calls / screen_tool_results: switch
            each screen on or off (all on by default).
        on_block: ``"refuse"`` (default) ends the run with a refusal message (input,
            output) or answers the tool call with an error ``ToolMessage``; ``"raise"``
            raises ``ProGuardViolation`` out of ``agent.invoke`` instead.
        refusal / tool_call_refusal / tool_result_refusal: the texts used on a block; the
            decision's reason is appended to tool messages so the model can adapt.
        policy: a ``Policy`` for these checks (default: the guard's).
        name: middleware name (must be unique within one agent).
    """

    def __init__(
        self,
        guard: ProGuard | None = None,
        *,
        screen_input: bool = True,
        screen_output: bool = True,
        screen_tool_calls: bool = True,
        screen_tool_results: bool = True,
        on_block: Literal["refuse", "raise"] = "refuse",
        refusal: str = DEFAULT_REFUSAL,
        tool_call_refusal: str = DEFAULT_TOOL_CALL_REFUSAL,
        tool_result_refusal: str = DEFAULT_TOOL_RESULT_REFUSAL,
        policy: Policy | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if on_block not in ("refuse", "raise"):
            raise ValueError(f"on_block must be 'refuse' or 'raise', not {on_block!r}")
        self.guard = guard if guard is not None else ProGuard()
        self.screen_input = screen_input
        self.screen_output = screen_output
        self.screen_tool_calls = screen_tool_calls
        self.screen_tool_results = screen_tool_results
        self.on_block = on_block
        self.refusal = refusal
        self.tool_call_refusal = tool_call_refusal
        self.tool_result_refusal = tool_result_refusal
        self.policy = policy
        self._name = name or type(self).__name__

    @property
    def name(self) -> str:
        return self._name

    # ------------------------------------------------------------------ requests
    def _input_prepared(self, messages: Sequence[Any]) -> Prepared | None:
        idx, _ = last_human(messages)
        if idx is None:
            return None
        return prepare(self.guard, list(messages[: idx + 1]), "input", key=None, kind="input", policy=self.policy)

    def _output_prepared(self, messages: Sequence[Any]) -> tuple[Prepared, AIMessage] | None:
        if not messages or not isinstance(messages[-1], AIMessage):
            return None
        ai = messages[-1]
        if not _has_content(ai.content):
            return None  # tool calls only: judged one by one in wrap_tool_call
        _, human = last_human(messages)
        convo: list[Any] = []
        if human is not None:
            convo.append({"role": "user", "content": human.content if isinstance(human, BaseMessage)
                          else human.get("content")})
        convo.append({"role": "assistant", "content": ai.content})
        return prepare(self.guard, convo, "output", key=None, kind="output", policy=self.policy), ai

    @staticmethod
    def _context(state: Any) -> str | None:
        _, human = last_human(_messages(state))
        if human is None:
            return None
        return message_text(human) if isinstance(human, BaseMessage) else _content_text(human.get("content"))

    def _tool_call_prepared(self, request: ToolCallRequest) -> Prepared:
        call = request.tool_call
        try:
            req = self.guard.tool_call_request(call.get("name", "?"), call.get("args", {}),
                                               self._context(request.state))
        except ProGuardError as exc:
            return Prepared(decision=(self.policy or self.guard.policy).decide_error(exc, "tool_call"))
        return Prepared(request=req)

    def _tool_result_prepared(self, request: ToolCallRequest, msg: ToolMessage) -> Prepared:
        """Everything the tool returned, judged as untrusted input.

        The content goes to the core's tool-result check as it is: text, JSON blocks, images,
        files. The core judges what it can read and refuses (or, by policy, lists) what it
        cannot; nothing is reduced to its text blocks here.
        """
        name = msg.name or request.tool_call.get("name", "?")
        try:
            req: GuardRequest = self.guard.tool_result_request(name, msg.content, self._context(request.state))
        except ProGuardError as exc:
            return Prepared(decision=(self.policy or self.guard.policy).decide_error(exc, "tool_result"))
        return Prepared(request=req)

    # ------------------------------------------------------------------ deciding
    def _decide(self, prepared: Prepared) -> Decision:
        if prepared.decision is not None:
            return prepared.decision
        assert prepared.request is not None
        (decision,) = self.guard.check_batch([prepared.request], policy=self.policy)
        _emit(decision, self.name)
        return decision

    async def _adecide(self, prepared: Prepared) -> Decision:
        if prepared.decision is not None:
            return prepared.decision
        assert prepared.request is not None
        (decision,) = await self.guard.acheck_batch([prepared.request], policy=self.policy)
        await _aemit(decision, self.name)
        return decision

    # ------------------------------------------------------------------ outcomes
    def _input_blocked(self, decision: Decision) -> dict[str, Any]:
        if self.on_block == "raise":
            raise ProGuardViolation(decision)
        refusal = AIMessage(content=self.refusal, response_metadata={"proguard": decision.to_dict()})
        return {"messages": [refusal], "jump_to": "end"}

    def _output_blocked(self, decision: Decision, ai: AIMessage) -> dict[str, Any]:
        if self.on_block == "raise":
            raise ProGuardViolation(decision)
        # Same id: the messages reducer replaces the unsafe answer (and drops its tool calls).
        refusal = AIMessage(content=self.refusal, id=ai.id, response_metadata={"proguard": decision.to_dict()})
        return {"messages": [refusal], "jump_to": "end"}

    def _tool_blocked(self, request: ToolCallRequest, decision: Decision, text: str) -> ToolMessage:
        if self.on_block == "raise":
            raise ProGuardViolation(decision)
        call = request.tool_call
        return ToolMessage(
            content=f"{text} Reason: {decision.reason}",
            tool_call_id=call.get("id") or "",
            name=call.get("name"),
            status="error",
            artifact={"proguard": decision.to_dict()},
        )

    @staticmethod
    def _tool_messages(result: ToolMessage | Command[Any]) -> list[ToolMessage]:
        if isinstance(result, ToolMessage):
            return [result]
        update = getattr(result, "update", None)
        msgs = update.get("messages", []) if isinstance(update, Mapping) else []
        return [m for m in msgs if isinstance(m, ToolMessage)]

    # ------------------------------------------------------------------ hooks: input
    @hook_config(can_jump_to=["end"])
    def before_agent(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        if not self.screen_input:
            return None
        prepared = self._input_prepared(_messages(state))
        if prepared is None:
            return None
        decision = self._decide(prepared)
        return None if decision.allowed else self._input_blocked(decision)

    @hook_config(can_jump_to=["end"])
    async def abefore_agent(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        if not self.screen_input:
            return None
        prepared = self._input_prepared(_messages(state))
        if prepared is None:
            return None
        decision = await self._adecide(prepared)
        return None if decision.allowed else self._input_blocked(decision)

    # ------------------------------------------------------------------ hooks: model answer
    @hook_config(can_jump_to=["end"])
    def after_model(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        if not self.screen_output:
            return None
        found = self._output_prepared(_messages(state))
        if found is None:
            return None
        prepared, ai = found
        decision = self._decide(prepared)
        return None if decision.allowed else self._output_blocked(decision, ai)

    @hook_config(can_jump_to=["end"])
    async def aafter_model(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        if not self.screen_output:
            return None
        found = self._output_prepared(_messages(state))
        if found is None:
            return None
        prepared, ai = found
        decision = await self._adecide(prepared)
        return None if decision.allowed else self._output_blocked(decision, ai)

    # ------------------------------------------------------------------ hooks: tools
    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        if self.screen_tool_calls:
            decision = self._decide(self._tool_call_prepared(request))
            if not decision.allowed:
                return self._tool_blocked(request, decision, self.tool_call_refusal)
        result = handler(request)
        if self.screen_tool_results:
            for msg in self._tool_messages(result):
                decision = self._decide(self._tool_result_prepared(request, msg))
                if not decision.allowed:
                    return self._tool_blocked(request, decision, self.tool_result_refusal)
        return result

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        if self.screen_tool_calls:
            decision = await self._adecide(self._tool_call_prepared(request))
            if not decision.allowed:
                return self._tool_blocked(request, decision, self.tool_call_refusal)
        result = await handler(request)
        if self.screen_tool_results:
            for msg in self._tool_messages(result):
                decision = await self._adecide(self._tool_result_prepared(request, msg))
                if not decision.allowed:
                    return self._tool_blocked(request, decision, self.tool_result_refusal)
        return result


# ------------------------------------------------------------------------------ events
def _emit(decision: Decision, name: str) -> None:
    """Best effort: a custom event for handlers and astream_events, when inside a traced run."""
    try:
        dispatch_custom_event(DECISION_EVENT, {"middleware": name, **decision.to_dict()})
    except RuntimeError:  # no parent run (called outside a graph): nothing to attach it to
        pass


async def _aemit(decision: Decision, name: str) -> None:
    try:
        await adispatch_custom_event(DECISION_EVENT, {"middleware": name, **decision.to_dict()})
    except RuntimeError:
        pass


__all__ = ["DEFAULT_TOOL_CALL_REFUSAL", "DEFAULT_TOOL_RESULT_REFUSAL", "ProGuardMiddleware"]
