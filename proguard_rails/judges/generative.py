"""The generative judge: the ProGuard protocol around any Backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from functools import partial

from .._deadline import DEADLINE_MARGIN_S, run_cpu, time_left
from ..backends.base import Backend, Generation
from ..errors import AnswerParseError, BackendError, InputTimeoutError, ProGuardError
from ..inputs import GuardRequest
from ..protocol import PromptTemplates, RenderedPrompt, parse_answer, render
from ..taxonomy import Taxonomy
from ..verdict import Modality, Verdict
from .base import Judge, JudgeResult

_NO_DEADLINE = float("inf")
_INLINE_PARSE_CHARS = 64 * 1024
_INLINE_RENDER_CHARS = 8 * 1024  # neutralizing this much text takes a few ms even when every char is exotic


class GenerativeJudge(Judge):
    """Renders the released prompt, generates with the backend, parses the answer."""

    supports_images = True

    def __init__(self, backend: Backend, *, templates: PromptTemplates | None = None) -> None:
        self.backend = backend
        self.templates = templates
        self.name = f"generative:{backend.identity()}"
        self.loop_bound = bool(getattr(backend, "loop_bound", True))

    def identity(self) -> str:
        return self.name + (":custom-templates" if self.templates else "")

    async def _render(self, request: GuardRequest, taxonomy: Taxonomy) -> RenderedPrompt | ProGuardError:
        """Render in a worker thread within the check's deadline (escaping is linear, but the text is
        the attacker's): an overrun is an input error, which blocks under both fail modes."""
        if len(request.user_text) + len(request.agent_text or "") <= _INLINE_RENDER_CHARS:
            return render(request, taxonomy, templates=self.templates)  # milliseconds at most: no thread hop
        left = time_left(_NO_DEADLINE)
        try:
            return await asyncio.wait_for(run_cpu(partial(render, request, taxonomy, templates=self.templates)),
                                          None if left == _NO_DEADLINE else left)
        except asyncio.TimeoutError:
            return InputTimeoutError("rendering the prompt did not finish within the check's deadline; abandoned")

    async def _parse(self, text: str, modality: Modality, taxonomy: Taxonomy) -> Verdict:
        """Parsing is linear and model output is short (``max_tokens``): it runs inline. A long one
        (a misbehaving endpoint, up to ``max_response_bytes``) goes to a worker thread, bounded by
        what is left of the deadline but never less than a fraction of the documented margin."""
        try:
            if len(text) <= _INLINE_PARSE_CHARS:
                return parse_answer(text, modality, taxonomy, judge=self.name)
            left = max(time_left(_NO_DEADLINE), DEADLINE_MARGIN_S / 2)
            return await asyncio.wait_for(run_cpu(partial(parse_answer, text, modality, taxonomy, judge=self.name)),
                                          None if left == _NO_DEADLINE else left)
        except asyncio.TimeoutError:
            raise AnswerParseError("reading the answer did not finish within the check's deadline", text) from None
        except ProGuardError:
            raise
        except Exception as exc:  # whatever the model wrote, an unreadable answer is an error, never a crash
            raise AnswerParseError(f"unreadable answer ({type(exc).__name__}: {str(exc)[:200]})", text) from exc

    async def ajudge_batch(self, requests: Sequence[GuardRequest], taxonomy: Taxonomy) -> list[JudgeResult]:
        rendered = await asyncio.gather(*(self._render(r, taxonomy) for r in requests))
        out: list[JudgeResult | None] = [r if isinstance(r, ProGuardError) else None for r in rendered]
        todo = [i for i, r in enumerate(rendered) if isinstance(r, RenderedPrompt)]
        prompts = [rendered[i] for i in todo]
        assert all(isinstance(p, RenderedPrompt) for p in prompts)
        start = time.monotonic()
        generations = await self.backend.agenerate_batch(prompts) if prompts else []  # type: ignore[arg-type]
        if len(generations) != len(prompts):  # a backend bug must not shift verdicts between requests
            raise BackendError(f"backend returned {len(generations)} results for {len(prompts)} prompts")
        for i, prompt, gen in zip(todo, prompts, generations, strict=True):
            assert isinstance(prompt, RenderedPrompt)
            req = requests[i]
            if isinstance(gen, ProGuardError):
                out[i] = gen
                continue
            if isinstance(gen, BaseException):
                out[i] = BackendError(f"{type(gen).__name__}: {gen}")
                continue
            assert isinstance(gen, Generation)
            try:
                verdict = await self._parse(gen.text, prompt.modality, taxonomy)
            except ProGuardError as exc:
                out[i] = exc
                continue
            out[i] = verdict.model_copy(
                update={
                    "latency_s": gen.latency_s or (time.monotonic() - start),
                    "truncated": req.truncated,
                    "neutralized_markers": prompt.neutralized_markers,
                }
            )
        return [r for r in out if r is not None]

    async def aclose(self) -> None:
        await self.backend.aclose()


__all__ = ["GenerativeJudge"]
