"""``ProGuardQueryEngine``: a query engine that screens the question before retrieval and the
answer after synthesis.

The question is judged first; a blocked question never reaches the retriever, the embedding
model or the LLM. The answer is judged with the question as context. On a block the engine
returns a ``Response`` carrying the refusal and the ``Decision`` (``response.metadata["proguard"]``),
or raises ``ProGuardViolation`` when ``on_block="raise"``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.response.schema import (
    RESPONSE_TYPE,
    AsyncStreamingResponse,
    PydanticResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.prompts.mixin import PromptMixinType
from llama_index.core.schema import QueryBundle

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


class ProGuardQueryEngine(BaseQueryEngine):
    """Wrap any LlamaIndex query engine with ProGuard checks.

    Args:
        query_engine: the engine to protect (``index.as_query_engine()``, a router, a sub-question engine...).
        guard: the ``ProGuard`` engine; by default one built from ``PROGUARD_*`` settings.
        check_input / check_output: which side to screen.
        on_block: ``"refuse"`` returns a refusal ``Response``; ``"raise"`` raises ``ProGuardViolation``.
        refusal: the refusal text, or ``f(blocked_text, decision) -> str``.
        input_policy / output_policy: per-side policies; by default the guard's policy, and for
            the output check the response label only when the question was already screened.
        screen_query_image: judge ``QueryBundle.image_path`` with the question. The path comes
            from the application (not from retrieved content), so local files are read.

    Streaming engines are screened before anything is shown: the answer is buffered, judged,
    then handed out as a stream of the screened text.
    """

    def __init__(
        self,
        query_engine: BaseQueryEngine,
        guard: ProGuard | None = None,
        *,
        check_input: bool = True,
        check_output: bool = True,
        on_block: OnBlock = "refuse",
        refusal: Refusal = DEFAULT_REFUSAL,
        input_policy: Policy | None = None,
        output_policy: Policy | None = None,
        screen_query_image: bool = True,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        if on_block not in ("refuse", "raise"):
            raise ValueError(f"on_block must be 'refuse' or 'raise', not {on_block!r}")
        self._engine = query_engine
        self.guard = resolve_guard(guard)
        self.check_input = check_input
        self.check_output = check_output
        self.on_block = on_block
        self.refusal = refusal
        self.input_policy = input_policy
        self.output_policy = output_policy
        self.screen_query_image = screen_query_image
        super().__init__(callback_manager=callback_manager or getattr(query_engine, "callback_manager", None))

    @property
    def query_engine(self) -> BaseQueryEngine:
        return self._engine

    def _get_prompt_modules(self) -> PromptMixinType:
        return {"query_engine": self._engine}

    # ------------------------------------------------------------------ checks
    def _images(self, qb: QueryBundle) -> list[Any] | None:
        return [qb.image_path] if self.screen_query_image and qb.image_path else None

    async def _acheck_input(self, qb: QueryBundle) -> Decision:
        d = await self.guard.acheck(qb.query_str, images=self._images(qb), kind="input",
                                    policy=self.input_policy)
        await aemit("input", d)
        return d

    async def _acheck_output(self, qb: QueryBundle, answer: str) -> Decision:
        pol = response_policy(self.guard, self.output_policy, self.check_input)
        d = await self.guard.acheck(qb.query_str, answer, images=self._images(qb), kind="output", policy=pol)
        await aemit("output", d)
        return d

    def _blocked(self, stage: str, decision: Decision, blocked_text: str,
                 decisions: dict[str, Decision]) -> Response:
        if self.on_block == "raise":
            raise ProGuardViolation(decision)
        # Sources are dropped on purpose: they may be what made the answer unsafe.
        return Response(
            response=refusal_text(self.refusal, blocked_text, decision),
            source_nodes=[],
            metadata={"proguard": decision, "proguard_stage": stage, "proguard_blocked": True,
                      "proguard_decisions": decisions},
        )

    @staticmethod
    def _annotate(response: Any, decisions: dict[str, Decision]) -> None:
        last = decisions.get("output") or decisions.get("input")
        if last is None:
            return
        meta = dict(response.metadata or {})
        meta.update({"proguard": last, "proguard_stage": "output" if "output" in decisions else "input",
                     "proguard_blocked": False, "proguard_decisions": decisions})
        response.metadata = meta

    # ------------------------------------------------------------------ sync path
    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        # The wrapped engine runs on the caller's thread (its spans and callbacks nest under ours);
        # only the guard calls go through proguard-rails' portal loop.
        qb = query_bundle
        decisions: dict[str, Decision] = {}
        if self.check_input:
            d_in = self.guard.check(qb.query_str, images=self._images(qb), kind="input", policy=self.input_policy)
            emit("input", d_in)
            decisions["input"] = d_in
            if d_in.blocked:
                return self._blocked("input", d_in, qb.query_str, decisions)
        response = self._engine.query(qb)
        if not self.check_output:
            self._annotate(response, decisions)
            return response
        answer, rebuild = _materialize_sync(response)
        pol = response_policy(self.guard, self.output_policy, self.check_input)
        d_out = self.guard.check(qb.query_str, answer, images=self._images(qb), kind="output", policy=pol)
        emit("output", d_out)
        decisions["output"] = d_out
        if d_out.blocked:
            return self._blocked("output", d_out, answer, decisions)
        out = rebuild()
        self._annotate(out, decisions)
        return out

    # ------------------------------------------------------------------ async path
    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        qb = query_bundle
        decisions: dict[str, Decision] = {}
        if self.check_input:
            d_in = await self._acheck_input(qb)
            decisions["input"] = d_in
            if d_in.blocked:
                return self._blocked("input", d_in, qb.query_str, decisions)
        response = await self._engine.aquery(qb)
        if not self.check_output:
            self._annotate(response, decisions)
            return response
        answer, rebuild = await _materialize(response)
        d_out = await self._acheck_output(qb, answer)
        decisions["output"] = d_out
        if d_out.blocked:
            return self._blocked("output", d_out, answer, decisions)
        out = rebuild()
        self._annotate(out, decisions)
        return out


def _stream_again(text: str, like: StreamingResponse) -> StreamingResponse:
    def gen() -> Generator[str, None, None]:
        yield text

    return StreamingResponse(response_gen=gen(), source_nodes=like.source_nodes, metadata=like.metadata)


def _materialize_sync(response: Any) -> tuple[str, Any]:
    """The answer text, and a function giving back a response of the same kind (sync engines)."""
    if isinstance(response, StreamingResponse):
        text = "".join(response.response_gen) if response.response_txt is None else response.response_txt
        return text, lambda: _stream_again(text, response)
    if isinstance(response, AsyncStreamingResponse):
        raise TypeError("the wrapped engine returned an async stream from a sync query; use aquery()")
    if isinstance(response, PydanticResponse):
        return str(response), lambda: response
    if isinstance(response, Response):
        return response.response or "", lambda: response
    return str(response), lambda: response


async def _materialize(response: Any) -> tuple[str, Any]:
    """The answer text, and a function giving back a response of the same kind.

    Streams are consumed here: judging a partial answer would let the unsafe part through
    before the verdict.
    """
    if isinstance(response, AsyncStreamingResponse):
        parts = [t async for t in response.async_response_gen()]
        text = "".join(parts)

        def rebuild_astream() -> AsyncStreamingResponse:
            async def agen() -> AsyncGenerator[str, None]:
                yield text

            return AsyncStreamingResponse(response_gen=agen(), source_nodes=response.source_nodes,
                                          metadata=response.metadata)

        return text, rebuild_astream
    return _materialize_sync(response)


__all__ = ["ProGuardQueryEngine"]
