"""An in-process scripted backend whose answers the caller chooses.

For unit tests of allow/block logic and adapter overhead benchmarks, never for judging
real content. Rules map a substring of the rendered user turn to an answer; a callable
gives full control; failures can be injected per rule.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence

from ..protocol import RenderedPrompt, format_answer
from .base import Backend, Generation

Answer = str | BaseException | Callable[[RenderedPrompt], str]


def safe_answer(modality: str = "text") -> str:
    return format_answer(modality, "safe", "safe", None)


def unsafe_answer(category: str = "C8S1", *, modality: str = "text", request: str = "unsafe",
                  response: str = "safe") -> str:
    return format_answer(modality, request, response, category)  # type: ignore[arg-type]


class ScriptedBackend(Backend):
    """Answers from rules (substring of the conversation -> answer), else ``default``.

    Counters (``calls``, ``batch_calls``, ``prompts``) let tests assert how the engine
    batched its work. ``delay`` simulates generation time.
    """

    name = "scripted"
    loop_bound = False  # in-process, no loop-bound state: sync checks skip the thread hop

    def __init__(
        self,
        rules: Mapping[str, Answer] | None = None,
        *,
        default: Answer | None = None,
        delay: float = 0.0,
    ) -> None:
        self.rules = dict(rules or {})
        self.default = default
        self.delay = delay
        self.calls = 0
        self.batch_calls = 0
        self.prompts: list[RenderedPrompt] = []

    def _answer_for(self, prompt: RenderedPrompt) -> str:
        answer: Answer | None = None
        for needle, ans in self.rules.items():
            if needle in prompt.user_text:
                answer = ans
                break
        if answer is None:
            answer = self.default if self.default is not None else safe_answer(prompt.modality.value)
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(prompt)
        if answer in ("safe",):
            return safe_answer(prompt.modality.value)
        return answer

    async def agenerate(self, prompt: RenderedPrompt) -> Generation:
        self.calls += 1
        self.prompts.append(prompt)
        start = time.monotonic()
        if self.delay:
            await asyncio.sleep(self.delay)
        text = self._answer_for(prompt)
        return Generation(text=text, latency_s=time.monotonic() - start, model="scripted")

    async def agenerate_batch(self, prompts: Sequence[RenderedPrompt]) -> list[Generation | BaseException]:
        self.batch_calls += 1
        return await super().agenerate_batch(prompts)


__all__ = ["ScriptedBackend", "safe_answer", "unsafe_answer"]
