"""Shared pieces of the LlamaIndex adapters: refusals, the verdict event, policy tweaks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import llama_index.core.instrumentation as instrument
from llama_index.core.instrumentation.events import BaseEvent

from proguard_rails import Decision, Policy, ProGuard

DEFAULT_REFUSAL = "I can't help with that."

#: a fixed text, or a function (the text that was blocked, the Decision) -> refusal text
Refusal = str | Callable[[str, Decision], str]
OnBlock = Literal["refuse", "raise"]
Stage = Literal["input", "output", "node", "chat_input", "chat_output"]

dispatcher = instrument.get_dispatcher("llama_index.postprocessor.proguard")


class ProGuardVerdictEvent(BaseEvent):
    """One ProGuard decision, emitted through LlamaIndex's instrumentation dispatcher.

    Attach a handler (``llama_index.core.instrumentation.get_dispatcher().add_event_handler``)
    to log, count or trace verdicts next to LlamaIndex's own query and retrieval events.
    """

    stage: str
    allowed: bool
    status: str
    category_id: str | None = None
    category_name: str | None = None
    is_out_of_policy: bool = False
    description: str | None = None
    reason: str = ""
    node_id: str | None = None
    decision: Any = None

    @classmethod
    def class_name(cls) -> str:
        return "ProGuardVerdictEvent"

    @classmethod
    def from_decision(cls, stage: Stage, decision: Decision, node_id: str | None = None) -> ProGuardVerdictEvent:
        v = decision.verdict
        return cls(
            stage=stage,
            allowed=decision.allowed,
            status=decision.status,
            category_id=decision.category_id,
            category_name=v.category_name if v else None,
            is_out_of_policy=decision.is_out_of_policy,
            description=decision.description,
            reason=decision.reason,
            node_id=node_id,
            decision=decision,
        )


def emit(stage: Stage, decision: Decision, node_id: str | None = None) -> None:
    dispatcher.event(ProGuardVerdictEvent.from_decision(stage, decision, node_id))


async def aemit(stage: Stage, decision: Decision, node_id: str | None = None) -> None:
    await dispatcher.aevent(ProGuardVerdictEvent.from_decision(stage, decision, node_id))


def refusal_text(refusal: Refusal, blocked_text: str, decision: Decision) -> str:
    return refusal(blocked_text, decision) if callable(refusal) else refusal


def resolve_guard(guard: ProGuard | None) -> ProGuard:
    """An explicit guard, else one built from ``PROGUARD_*`` settings (endpoint, local model, or lite)."""
    return guard if guard is not None else ProGuard()


def response_policy(guard: ProGuard, policy: Policy | None, input_checked: bool) -> Policy:
    """The output check judges the answer; when the question was already screened, its label is
    not judged again (a refused harmful question is a safe exchange)."""
    if policy is not None:
        return policy
    if input_checked and guard.policy.labels == "both":
        return guard.policy.model_copy(update={"labels": "response"})
    return guard.policy


__all__ = [
    "DEFAULT_REFUSAL",
    "OnBlock",
    "ProGuardVerdictEvent",
    "Refusal",
    "aemit",
    "dispatcher",
    "emit",
    "refusal_text",
    "resolve_guard",
    "response_policy",
]
