"""LangChain objects -> guard requests, and refusals shaped like what they replace.

Kept apart from the Runnable so the middleware and the rail share one reading of
LangChain's message types (text and image content blocks, tool calls, prompt values).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    HumanMessage,
    ToolMessage,
)
from langchain_core.prompt_values import PromptValue
from pydantic import BaseModel

from proguard_rails import ProGuard
from proguard_rails.errors import InputError, ProGuardError
from proguard_rails.inputs import GuardRequest, build_request
from proguard_rails.verdict import Decision

#: Keys tried, in order, when a dict is screened as input and no ``input_key`` is set.
INPUT_KEYS = ("messages", "input", "question", "query", "prompt", "request", "text", "content", "message")
#: Keys tried, in order, when a dict is screened as output and no ``output_key`` is set.
OUTPUT_KEYS = ("messages", "output", "answer", "response", "text", "content", "result", "completion")

#: Keys read as the request beside an output dict's answer.
REQUEST_KEYS = ("input", "question", "query", "prompt", "request")

DEFAULT_REFUSAL = "I can't help with that."

Refusal = str | Callable[[Any, Decision], Any]
Side = Literal["input", "output"]


# ------------------------------------------------------------------------------ text of messages
def tool_calls_text(msg: Any) -> str:
    """Tool calls are the agent's actions: an output screen must see them, not just the prose."""
    calls = getattr(msg, "tool_calls", None) or []
    lines = []
    for call in calls:
        args = call.get("args", {})
        args_s = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False, sort_keys=True, default=str)
        lines.append(f"[tool call] {call.get('name', '?')}({args_s})")
    return "\n".join(lines)


def message_text(msg: BaseMessage) -> str:
    """Text blocks plus tool calls of one message (images are handled by the core)."""
    text = msg.text if isinstance(msg.content, (str, list)) else str(msg.content)
    calls = tool_calls_text(msg)
    return f"{text}\n{calls}" if text and calls else (text or calls)


_ROLES = {
    "human": "user", "HumanMessageChunk": "user",
    "ai": "assistant", "AIMessageChunk": "assistant",
    "system": "system", "SystemMessageChunk": "system",
    "tool": "tool", "ToolMessageChunk": "tool",
    "function": "tool", "FunctionMessageChunk": "tool",
}


def _message_dict(msg: Any) -> dict[str, Any] | None:
    """A LangChain message as an OpenAI-style dict the core's ``normalize`` reads.

    Content parts pass through untouched, so image blocks (``image_url`` data URLs, v1
    ``{"type": "image", "base64": ...}``) reach the core's image loader. Tool calls become
    text, so the guard sees the agent's actions as well as its prose.
    """
    if not isinstance(msg, BaseMessage):
        return msg  # dicts / (role, text) tuples: the core reads them itself
    if msg.type == "remove":
        return None
    role = getattr(msg, "role", None) if msg.type in ("chat", "ChatMessageChunk") else _ROLES.get(msg.type)
    if not role:
        raise InputError(f"unsupported LangChain message type {msg.type!r}")
    content: Any = msg.content
    calls = tool_calls_text(msg)
    if calls:
        if isinstance(content, str):
            content = f"{content}\n{calls}" if content else calls
        else:
            content = [*content, {"type": "text", "text": calls}]
    if isinstance(msg, ToolMessage) and msg.name:
        prefix = f"[output of tool {msg.name}]"
        content = f"{prefix}\n{content}" if isinstance(content, str) else [{"type": "text", "text": prefix}, *content]
    return {"role": role, "content": content}


def as_messages(value: Any) -> list[Any] | None:
    """The message list inside ``value`` (PromptValue, message, list of messages), else None."""
    if isinstance(value, PromptValue):
        return list(value.to_messages())
    if isinstance(value, BaseMessage):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(m, (BaseMessage, Mapping)) or (isinstance(m, tuple) and len(m) == 2) for m in value
    ):
        return list(value)
    return None


def has_content(messages: Sequence[Any]) -> bool:
    for m in messages:
        content = m.get("content") if isinstance(m, Mapping) else getattr(m, "content", None)
        if isinstance(m, tuple):
            content = m[1]
        if content or getattr(m, "tool_calls", None):
            return True
    return False


# ------------------------------------------------------------------------------ requests
class HeldChunks:
    """Stream chunks that cannot be merged into one value (mixed types, custom objects).

    The rail keeps every one of them and judges them together; nothing is dropped because
    ``+`` did not apply.
    """

    __slots__ = ("chunks",)

    def __init__(self, chunks: Sequence[Any]) -> None:
        self.chunks = list(chunks)

    @property
    def last(self) -> Any:
        return self.chunks[-1]

    def __repr__(self) -> str:
        return f"HeldChunks({self.chunks!r})"


@dataclass(frozen=True)
class Parts:
    """What a value says: the user side (None when the value has none), the agent side, images,
    and what came with it that the guard cannot read (files, audio: ``not_judged``).

    ``source`` is the core's own request when the parts were read from one unchanged: it is
    judged as it is, with everything the core noted on it.
    """

    user: str | None
    agent: str | None
    images: tuple[Any, ...] = ()
    not_judged: tuple[str, ...] = ()
    source: GuardRequest | None = field(default=None, compare=False)

    @property
    def empty(self) -> bool:
        """Nothing at all: content the guard cannot judge is never "nothing to judge"."""
        return (not (self.user or "").strip() and not (self.agent or "").strip() and not self.images
                and not self.not_judged)


def not_judged_of(req: GuardRequest) -> tuple[str, ...]:
    """What of ``req``'s input the guard cannot read (files, audio): ``Policy.unjudgeable`` decides.

    Content skipped by configuration (system messages) is not in it: it is not unreadable.
    """
    return tuple(req.unjudgeable)


def _scalar_text(value: Any, where: str, key_hint: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, BaseModel):  # structured output: judge what it says
        return value.model_dump_json()
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    raise InputError(
        f"ProGuardRail cannot read the {where} of type {type(value).__name__}; pass text, messages, a "
        f"PromptValue or a dict and set {key_hint} to the key that holds the text"
    )


def pick_key(value: Mapping[str, Any], key: str | None, defaults: Sequence[str], key_hint: str) -> str | None:
    """The dict key to screen: the configured one (must exist), else the first known key present."""
    if key is not None:
        if key not in value:
            raise InputError(f"{key_hint}={key!r} is not in the dict (keys: {sorted(map(str, value))})")
        return key
    return next((k for k in defaults if k in value), None)


def parts_of(guard: ProGuard, value: Any, side: Side, key: str | None = None) -> Parts:
    """Read ``value`` as the request (side="input") or the response (side="output")."""
    key_hint = "input_key" if side == "input" else "output_key"
    if isinstance(value, HeldChunks):
        return _joined([parts_of(guard, c, side, key) for c in value.chunks])
    if isinstance(value, Mapping):
        k = pick_key(value, key, INPUT_KEYS if side == "input" else OUTPUT_KEYS, key_hint)
        if k is not None:
            parts = parts_of(guard, value[k], side)
            if side == "output" and parts.user is None:
                # {"input": ..., "output": ...} (agent executors, QA chains): judge the pair
                req = next((value[q] for q in REQUEST_KEYS if isinstance(value.get(q), str)), None)
                if req is not None:
                    parts = Parts(req, parts.agent, parts.images)
            return parts
        # prompt variables ({"topic": ..., "question": ...}): every value is judged, nested
        # ones as JSON; a value the rail cannot read is an input error (fail closed)
        lines = [f"{name}: {_scalar_text(v, side, key_hint)}" for name, v in value.items() if v is not None]
        if not lines:
            raise InputError(
                f"no text found in the {side} dict (keys: {sorted(map(str, value))}); set {key_hint}"
            )
        text = "\n".join(lines)
        return Parts(text, None) if side == "input" else Parts(None, text)
    msgs = as_messages(value)
    if msgs is not None:
        # A message's content blocks (json, images, files) go to the core unchanged, a lone
        # answer message included: reading only its text would pass the other blocks unjudged.
        if not has_content(msgs):
            return Parts(None, None)
        dicts = [d for d in (_message_dict(m) for m in msgs) if d is not None]
        req = guard.request(dicts, kind=side)
        nj = not_judged_of(req)
        if side == "input":
            # The whole transcript is the request side of an input check.
            text = req.user_text if not req.agent_text else f"{req.user_text}\n\n[agent]\n{req.agent_text}"
            return Parts(text, None, req.images, nj)
        return Parts(req.user_text or None, req.agent_text, req.images, nj, source=req)
    text = _scalar_text(value, side, key_hint)
    return Parts(text, None) if side == "input" else Parts(None, text)


def _joined(parts: Sequence[Parts]) -> Parts:
    """One Parts from several chunks' parts: texts in order (a repeated request once), all images."""
    users: list[str] = []
    for p in parts:
        if p.user and (not users or users[-1] != p.user):
            users.append(p.user)
    agents = [p.agent for p in parts if p.agent]
    images = tuple(i for p in parts for i in p.images)
    nj = tuple(x for p in parts for x in p.not_judged)
    return Parts("\n".join(users) if users else None, "\n".join(agents) if agents else None, images, nj)


def build(guard: ProGuard, parts: Parts, kind: Any, context: Parts | None = None) -> GuardRequest:
    """One request from the parts read, with the guard's limits applied."""
    if parts.source is not None and context is None:
        return parts.source if parts.source.kind == kind else parts.source.with_(kind=kind)
    user = parts.user
    images = list(parts.images)
    if context is not None:
        if user is None:
            user = context.user
        images = list(context.images) + [i for i in images if i not in context.images]
    # what cannot be read travels with the request: Policy(unjudgeable=...) refuses or allows it
    return build_request(user or "", parts.agent, images, settings=guard.settings, kind=kind,
                         not_judged=parts.not_judged, empty_ok=bool(parts.not_judged))


@dataclass(frozen=True)
class Prepared:
    """A request ready for the guard, or the decision already known (error or nothing to judge)."""

    request: GuardRequest | None = None
    decision: Decision | None = None
    parts: Parts | None = None


def prepare(
    guard: ProGuard,
    value: Any,
    side: Side,
    *,
    key: str | None,
    kind: Any,
    policy: Any,
    context: Parts | None = None,
) -> Prepared:
    """Read and build; turn reading errors into the policy's error decision (fail closed by default)."""
    try:
        parts = parts_of(guard, value, side, key)
        if parts.empty:
            return Prepared(decision=skip_decision(kind), parts=parts)
        return Prepared(request=build(guard, parts, kind, context), parts=parts)
    except ProGuardError as exc:
        pol = policy or guard.policy
        return Prepared(decision=pol.decide_error(exc, kind))


def skip_decision(kind: Any) -> Decision:
    """Nothing to judge (empty text, no image): passing it on cannot leak anything."""
    return Decision(status="allowed", allowed=True, reason="nothing to judge (empty content)", check=kind,
                    metadata={"skipped": True})


# ------------------------------------------------------------------------------ refusals
def refusal_text(refusal: Refusal, value: Any, decision: Decision) -> Any:
    return refusal(value, decision) if callable(refusal) else refusal


def refusal_like(value: Any, decision: Decision, refusal: Refusal, *, key: str | None = None,
                 side: Side = "output") -> Any:
    """A refusal in the shape of ``value``: str for str, AIMessage for messages, dict for dict."""
    if callable(refusal):
        return refusal(value, decision)
    meta = {"proguard": decision.to_dict()}
    if isinstance(value, str):
        return refusal
    if isinstance(value, BaseMessageChunk):
        return AIMessageChunk(content=refusal, response_metadata=meta)
    if isinstance(value, Mapping):
        defaults = INPUT_KEYS if side == "input" else OUTPUT_KEYS
        try:
            k = pick_key(value, key, defaults, "key")
        except InputError:
            k = None
        if k is None:
            return {**value, (key or "output"): refusal}
        return {**value, k: refusal_like(value[k], decision, refusal, side=side)}
    if isinstance(value, (PromptValue, BaseMessage)):
        return AIMessage(content=refusal, response_metadata=meta)
    msgs = as_messages(value)
    if msgs is not None:
        if side == "output":
            # keep the conversation up to the last non-agent turn, then the refusal
            cut = len(msgs)
            while cut > 0 and isinstance(msgs[cut - 1], AIMessage):
                cut -= 1
            return [*msgs[:cut], AIMessage(content=refusal, response_metadata=meta)]
        return AIMessage(content=refusal, response_metadata=meta)
    return refusal


def last_human(messages: Sequence[Any]) -> tuple[int, Any] | tuple[None, None]:
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if isinstance(m, HumanMessage) or (isinstance(m, Mapping) and m.get("role") in ("user", "human")):
            return i, m
    return None, None


__all__ = [
    "DEFAULT_REFUSAL",
    "HeldChunks",
    "Parts",
    "Prepared",
    "as_messages",
    "build",
    "last_human",
    "message_text",
    "not_judged_of",
    "parts_of",
    "prepare",
    "refusal_like",
    "skip_decision",
    "tool_calls_text",
]
