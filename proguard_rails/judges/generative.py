"""The generative judge: the ProGuard protocol around any Backend."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..backends.base import Backend, Generation
from ..errors import BackendError, ProGuardError
from ..inputs import GuardRequest
from ..protocol import PromptTemplates, parse_answer, render
from ..taxonomy import Taxonomy
from .base import Judge, JudgeResult


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

    async def ajudge_batch(self, requests: Sequence[GuardRequest], taxonomy: Taxonomy) -> list[JudgeResult]:
        prompts = [render(r, taxonomy, templates=self.templates) for r in requests]
        start = time.monotonic()
        generations = await self.backend.agenerate_batch(prompts)
        if len(generations) != len(prompts):  # a backend bug must not shift verdicts between requests
            raise BackendError(f"backend returned {len(generations)} results for {len(prompts)} prompts")
        out: list[JudgeResult] = []
        for req, prompt, gen in zip(requests, prompts, generations, strict=True):
            if isinstance(gen, ProGuardError):
                out.append(gen)
                continue
            if isinstance(gen, BaseException):
                out.append(BackendError(f"{type(gen).__name__}: {gen}"))
                continue
            assert isinstance(gen, Generation)
            try:
                verdict = parse_answer(gen.text, prompt.modality, taxonomy, judge=self.name)
            except ProGuardError as exc:
                out.append(exc)
                continue
            out.append(
                verdict.model_copy(
                    update={
                        "latency_s": gen.latency_s or (time.monotonic() - start),
                        "truncated": req.truncated,
                        "neutralized_markers": prompt.neutralized_markers,
                    }
                )
            )
        return out

    async def aclose(self) -> None:
        await self.backend.aclose()


__all__ = ["GenerativeJudge"]
