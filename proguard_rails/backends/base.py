"""The Backend interface: rendered prompts in, generated text out."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..protocol import RenderedPrompt, answer_end

#: ProGuard's answer ends here; servers stop generating at it.
STOP_SEQUENCES = ("</answer>",)


def stop_end(text: str, stops: Sequence[str]) -> int | None:
    """Where generated ``text`` ends under ``stops`` (just after the stop string), or None.

    ``</answer>`` is the protocol's own stop and is reasoning-aware (``protocol.answer_end``):
    one quoted inside the reasoning does not end the output. Other stop strings end it at their
    first occurrence.
    """
    best: int | None = None
    for stop in stops:
        if stop == "</answer>":
            end = answer_end(text)
        else:
            i = text.find(stop)
            end = i + len(stop) if i >= 0 else None
        if end is not None and (best is None or end < best):
            best = end
    return best


@dataclass
class Generation:
    """One completion. ``text`` is passed to the parser exactly as received."""

    text: str
    latency_s: float = 0.0
    model: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """Text generation for the generative judge.

    Implementations: ``OpenAIBackend`` (vLLM or any OpenAI-compatible endpoint),
    ``TransformersBackend`` (local weights), ``VLLMBackend`` (in-process vLLM) and
    ``ScriptedBackend`` (in-process, answers chosen by tests). ``agenerate_batch`` returns
    one item per prompt, in order: a Generation or the exception that prompt raised.
    """

    name: str = "backend"
    #: True when the backend keeps event-loop-bound state between calls (connection pools,
    #: asyncio locks): sync calls then all run on the one background loop. False lets a sync
    #: call run on the calling thread's own loop, without the thread hop.
    loop_bound: bool = True

    @abstractmethod
    async def agenerate(self, prompt: RenderedPrompt) -> Generation:
        """Generate one answer; raise a ``BackendError`` subclass on failure."""

    async def agenerate_batch(self, prompts: Sequence[RenderedPrompt]) -> list[Generation | BaseException]:
        """Default: concurrent requests (the backend bounds its own concurrency)."""
        results = await asyncio.gather(*(self.agenerate(p) for p in prompts), return_exceptions=True)
        return list(results)

    def identity(self) -> str:
        """Distinguishes backends in cache keys and verdicts (e.g. ``openai:ProGuard-7B``)."""
        return self.name

    async def aclose(self) -> None:
        """Release connections or models."""

    def close(self) -> None:
        from .._portal import run_sync

        run_sync(self.aclose())


__all__ = ["STOP_SEQUENCES", "Backend", "Generation", "stop_end"]
