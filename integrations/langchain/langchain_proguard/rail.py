"""``ProGuardRail``: a langchain-core Runnable that screens what flows through a chain.

    chain | ProGuardRail()                       # screen the chain's answer
    ProGuardRail(check="input") | chain          # screen the input before the chain runs
    ProGuardRail.around(chain)                   # input, then request + answer together

Every path (invoke, ainvoke, batch, abatch, stream, astream, transform, atransform) runs
as one named run ("ProGuardRail") whose traced outputs carry the verdict, and emits a
``proguard_decision`` custom event for callback handlers and ``astream_events``. Batches
make one batched guard call. Streams release text only after it was judged. Nothing
about a call is stored on the instance, so one rail serves concurrent calls.
"""

from __future__ import annotations

import asyncio
import typing
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks.base import BaseCallbackManager
from langchain_core.callbacks.manager import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.messages import AIMessage, BaseMessage, BaseMessageChunk
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import (
    ensure_config,
    get_async_callback_manager_for_config,
    get_callback_manager_for_config,
    get_config_list,
    patch_config,
)
from langchain_core.runnables.utils import AddableDict
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

try:  # private in langchain-core; only used to feed astream_log / astream_events stream events
    from langchain_core.tracers._streaming import _StreamingCallbackHandler
except ImportError:  # pragma: no cover - moved in a future langchain-core
    _StreamingCallbackHandler = None  # type: ignore[assignment,misc]
try:
    from langchain_core.tracers._streaming import _V2StreamingCallbackHandler
except ImportError:  # pragma: no cover - older or newer langchain-core
    _V2StreamingCallbackHandler = None  # type: ignore[assignment,misc]

from proguard_rails import ProGuard
from proguard_rails.errors import ProGuardViolation
from proguard_rails.policy import Policy
from proguard_rails.verdict import Decision

from ._convert import (
    DEFAULT_REFUSAL,
    INPUT_KEYS,
    OUTPUT_KEYS,
    REQUEST_KEYS,
    HeldChunks,
    Parts,
    Prepared,
    Refusal,
    Side,
    pick_key,
    prepare,
    refusal_like,
)


def _is_event_tap(handler: Any) -> bool:
    """An astream_events / astream_log handler (they relay inner runs' events to the caller)."""
    kinds = tuple(k for k in (_StreamingCallbackHandler, _V2StreamingCallbackHandler) if k is not None)
    if kinds and isinstance(handler, kinds):
        return True
    # by name too, should langchain-core move the marker classes
    return type(handler).__name__ in ("_AstreamEventsCallbackHandler", "LogStreamCallbackHandler")


#: Name of the custom event carrying each decision (``Decision.to_dict()`` plus the rail's name).
DECISION_EVENT = "proguard_decision"

_MISSING = object()


# ------------------------------------------------------------------------------ run helpers
def _decision_payload(decision: Decision, rail: str) -> dict[str, Any]:
    return {"rail": rail, **decision.to_dict()}


def _traced_output(output: Any, proguard: Any) -> dict[str, Any]:
    """What the run records as its outputs: the value passed on, and the verdict beside it."""
    return {"output": output, "proguard": proguard}


class _Unmergeable(Exception):
    """Two stream chunks that have no lossless merge."""


def _add(agg: Any, chunk: Any, pick: _KeyPick | None = None) -> Any:
    """The aggregate of a stream so far plus ``chunk``, losing nothing that was streamed.

    LangChain itself aggregates with ``+`` and keeps only the last chunk where ``+`` fails
    (plain dicts, mixed types); a rail doing the same would judge a benign tail and release
    a harmful head. Here every chunk is kept: text, message chunks and dicts are merged (see
    ``_merge``); chunks that cannot be merged turn the aggregate into ``HeldChunks``, which
    keeps them all and is judged as a whole at the end of the stream.
    """
    if agg is _MISSING:
        return chunk
    if isinstance(agg, HeldChunks):
        return HeldChunks([*agg.chunks, chunk])
    try:
        merged = _merge(agg, chunk, deltas=True)
    except _Unmergeable:
        return HeldChunks([agg, chunk])
    if pick is not None and isinstance(agg, Mapping) and isinstance(merged, Mapping) and pick.drops(agg, merged):
        # the merged dict would be read through another key (``{"text": ...}`` then ``{"output":
        # ...}``): the text read so far would go unjudged, so keep the chunks apart
        return HeldChunks([agg, chunk])
    return merged


class _KeyPick:
    """Which key of a dict a rail reads (None: all its values), and the keys read beside it."""

    def __init__(self, key: str | None, defaults: Sequence[str], beside: Sequence[str] = ()) -> None:
        self.key, self.defaults, self.beside = key, tuple(defaults), frozenset(beside)

    def __call__(self, value: Mapping[str, Any]) -> Any:
        try:
            return pick_key(value, self.key, self.defaults, "key")
        except Exception:
            return _MISSING  # the configured key is not there (yet)

    def drops(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
        """Would reading ``after`` leave out text that reading ``before`` judged?"""
        old, new = self(before), self(after)
        if old == new:
            return False
        if isinstance(old, str):
            return True  # the text under the old key is no longer read
        # nothing selected before (all values read, or the configured key still absent): fine
        # when everything so far sits under the new key or the keys read beside it (the request)
        return not isinstance(new, str) or any(
            v is not None and k != new and k not in self.beside for k, v in before.items())


def _extends(old: Any, new: Any) -> bool:
    """``new`` repeats ``old`` and may add to it (a cumulative stream's next snapshot)."""
    if isinstance(old, str) and isinstance(new, str):
        return new.startswith(old)
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return all(k in new and _extends(v, new[k]) for k, v in old.items())
    if isinstance(old, list) and isinstance(new, list):
        return len(new) >= len(old) and all(_extends(o, n) for o, n in zip(old, new, strict=False))
    return type(old) is type(new) and old == new


def _merge(old: Any, new: Any, *, deltas: bool) -> Any:
    """Merge one chunk into the aggregate, or raise ``_Unmergeable``.

    ``deltas``: the values at this level are known to be increments (text from a chat model
    or a string parser, ``AddableDict`` fields). Plain dicts and lists carry no such
    convention: a JSON parser streams cumulative snapshots, a generator may stream deltas.
    There a value that repeats the aggregate (``_extends``) replaces it, since it already
    holds everything streamed so far, and any other value is appended; either way no text
    streamed is left out of the aggregate. Numbers (indexes, counters) keep their latest value.
    """
    if new is None:
        return old
    if old is None:
        return new
    if isinstance(old, BaseMessageChunk) and isinstance(new, BaseMessageChunk):
        try:
            return old + new
        except (TypeError, ValueError) as exc:
            raise _Unmergeable from exc
    if isinstance(new, BaseMessage) and (isinstance(old, BaseMessage) or _is_message_list(old)):
        # whole messages are collected: AIMessage + AIMessage would build a prompt template
        return [*(old if isinstance(old, list) else [old]), new]
    if isinstance(old, str) and isinstance(new, str):
        return new if not deltas and new.startswith(old) else old + new
    if isinstance(old, BaseModel) and type(old) is type(new) and not isinstance(old, BaseMessage):
        # structured output streams partial models of one class: merge them field by field
        fields = _merge(old.model_dump(), new.model_dump(), deltas=False)
        try:
            return type(new).model_validate(fields)
        except ValidationError as exc:
            raise _Unmergeable from exc
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        inner = isinstance(new, AddableDict)
        out: dict[Any, Any] = AddableDict(old) if isinstance(old, AddableDict) else dict(old)
        for k, v in new.items():
            out[k] = _merge(old[k], v, deltas=inner) if k in old else v
        return out
    if isinstance(old, list) and isinstance(new, list):
        return list(new) if _extends(old, new) else [*old, *new]
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return new  # counters, indexes, flags: numbers carry no text to judge, the latest is kept
    if type(old) is type(new) and old == new:
        return old
    raise _Unmergeable


def _is_message_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, BaseMessage) for m in value)


def _chunk_len(chunk: Any) -> int:
    """Cheap size of a chunk's new text, to decide when a window is full."""
    if isinstance(chunk, str):
        return len(chunk)
    if isinstance(chunk, BaseMessage):
        content = chunk.content
        n = len(content) if isinstance(content, str) else sum(len(str(b)) for b in content)
        return n + sum(len(str(c.get("args", ""))) for c in getattr(chunk, "tool_call_chunks", None) or [])
    if isinstance(chunk, Mapping):
        return sum(_chunk_len(v) for v in chunk.values())
    return len(str(chunk))


def _output_shape(tp: Any) -> str | None:
    """'str', 'message' or 'dict' from a Runnable's OutputType, None when it cannot tell."""
    if tp is str:
        return "str"
    seen: list[Any] = [tp]
    while seen:
        t = seen.pop()
        if isinstance(t, type):
            if issubclass(t, BaseMessage):
                return "message"
            if issubclass(t, Mapping):
                return "dict"
            continue
        seen.extend(a for a in typing.get_args(t) if not isinstance(a, (str, int)))
    return None


class _Window:
    """Per-call stream state: chunks held back until the text they carry was judged.

    Each judgement covers the whole text so far (cumulative), so a harmful sentence split
    across windows is still seen whole; only the chunks added since the last allowed
    judgement are released. Once the chunks cannot be merged (``HeldChunks``), nothing more
    is released before the end of the stream, where all of them are judged together.
    """

    def __init__(self, window: int | None, pick: _KeyPick | None = None) -> None:
        self.window = window if window and window > 0 else None
        self.pick = pick
        self.agg: Any = _MISSING
        self.last: Any = None
        self.pending: list[Any] = []
        self.new_chars = 0
        self.last_request: Any = None
        self.last_decision: Decision | None = None
        self.checks = 0

    def feed(self, chunk: Any) -> bool:
        """Add a chunk; True when a window is full and the text should be judged now."""
        self.agg = _add(self.agg, chunk, self.pick)
        self.last = chunk
        self.pending.append(chunk)
        self.new_chars += _chunk_len(chunk)
        if isinstance(self.agg, HeldChunks):
            return False  # no mergeable text to judge in windows: hold until the end
        if self.pick is not None and isinstance(self.agg, Mapping) and self.pick(self.agg) is _MISSING:
            return False  # the configured key has not arrived yet: hold (the end is judged regardless)
        return self.window is not None and self.new_chars >= self.window

    def reuse(self, prepared: Prepared) -> Decision | None:
        """The last decision, when the text to judge has not changed since (e.g. a final empty chunk)."""
        if prepared.request is not None and prepared.request == self.last_request:
            return self.last_decision
        return None

    def judged(self, prepared: Prepared, decision: Decision) -> None:
        self.new_chars = 0
        self.checks += 1
        self.last_request = prepared.request
        self.last_decision = decision

    def release(self) -> list[Any]:
        out, self.pending = self.pending, []
        return out

    def drop_pending(self) -> None:
        """A refusal ends the stream: what is still held is dropped, never released."""
        self.pending = []


# ------------------------------------------------------------------------------ the rail
class _StreamsThroughTransform:
    """Shared run plumbing of the rail and the ``around()`` wrapper.

    ``stream``/``astream`` of one input go through ``transform``/``atransform``, where the
    judging windows live, so every streaming path releases only judged text; ``_start`` /
    ``_astart`` open the named run with the class's ``_run_metadata()``.
    """

    def _run_metadata(self) -> dict[str, Any]:
        raise NotImplementedError

    def _start(self, config: RunnableConfig | None, value: Any, **extra: Any
               ) -> tuple[CallbackManagerForChainRun, RunnableConfig]:
        config = ensure_config(config)
        cm = get_callback_manager_for_config(config)
        cm.add_metadata(self._run_metadata(), inherit=False)
        rm = cm.on_chain_start(None, value, name=config.get("run_name") or self.get_name(),  # type: ignore[attr-defined]
                               run_id=config.pop("run_id", None), **extra)
        return rm, patch_config(config, callbacks=rm.get_child())

    async def _astart(self, config: RunnableConfig | None, value: Any, **extra: Any
                      ) -> tuple[AsyncCallbackManagerForChainRun, RunnableConfig]:
        config = ensure_config(config)
        cm = get_async_callback_manager_for_config(config)
        cm.add_metadata(self._run_metadata(), inherit=False)
        rm = await cm.on_chain_start(None, value, name=config.get("run_name") or self.get_name(),  # type: ignore[attr-defined]
                                     run_id=config.pop("run_id", None), **extra)
        return rm, patch_config(config, callbacks=rm.get_child())


    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self.transform(iter([input]), config, **kwargs)  # type: ignore[attr-defined]

    async def astream(self, input: Any, config: RunnableConfig | None = None,
                      **kwargs: Any) -> AsyncIterator[Any]:
        async def one() -> AsyncIterator[Any]:
            yield input

        async for chunk in self.atransform(one(), config, **kwargs):  # type: ignore[attr-defined]
            yield chunk


class ProGuardRail(_StreamsThroughTransform, RunnableSerializable[Any, Any]):
    """Screens a chain's input or output with ProGuard; a langchain-core Runnable.

    Args:
        guard: the ``ProGuard`` engine (built from ``PROGUARD_*`` settings when omitted).
        check: ``"output"`` (default) screens what flows in as an answer; ``"input"``
            screens it as a user request.
        on_block: ``"raise"`` (default) raises ``ProGuardViolation`` carrying the
            ``Decision``; ``"refuse"`` returns ``refusal`` in the shape of the value
            (a string for a string, an ``AIMessage`` for messages, a dict for a dict).
        refusal: the refusal text, or ``callable(value, decision) -> replacement``.
        input_key / output_key: the dict key holding the text (default: the first of
            ``messages``, ``input``/``output``, ``question``/``answer``... present).
        stream_window_chars: when streaming, judge the text so far every this many new
            characters and release only judged chunks; ``None`` holds the whole stream
            until the end and judges once.
        policy: a ``Policy`` for this rail (default: the guard's).

    An input rail inside a pipe cannot stop the steps after it: with ``on_block="refuse"``
    the refusal flows on to them. Use ``"raise"`` there, or ``ProGuardRail.around(chain)``,
    which skips the chain on a blocked input.
    """

    guard: ProGuard
    check: Literal["output", "input"] = "output"
    on_block: Literal["raise", "refuse"] = "raise"
    refusal: Refusal = DEFAULT_REFUSAL
    input_key: str | None = None
    output_key: str | None = None
    stream_window_chars: int | None = Field(400, description="None: hold the stream until the end")
    policy: Policy | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, guard: ProGuard | None = None, **kwargs: Any) -> None:
        super().__init__(guard=guard if guard is not None else ProGuard(), **kwargs)

    @field_validator("stream_window_chars")
    @classmethod
    def _window_ok(cls, v: int | None) -> int | None:
        if v is not None and v < 0:
            raise ValueError("stream_window_chars must be >= 0 (0 or None: hold until the end)")
        return v or None

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return False  # holds a live guard (connections, models)

    @property
    def InputType(self) -> Any:
        return Any

    @property
    def OutputType(self) -> Any:
        return Any

    # ------------------------------------------------------------------ composition
    @classmethod
    def around(
        cls,
        runnable: Runnable[Any, Any],
        guard: ProGuard | None = None,
        *,
        inner_events: bool = False,
        **kwargs: Any,
    ) -> ProGuardGuarded:
        """Screen the input, run ``runnable``, then judge request and answer together.

        Keyword arguments configure the rail (``on_block``, ``refusal``, ``input_key``,
        ``output_key``, ``stream_window_chars``, ``policy``). A blocked input never
        reaches ``runnable``. ``inner_events=False`` (default) keeps ``runnable``'s own runs
        out of ``astream_events`` / ``astream_log``, whose model events carry tokens before
        they are judged; callbacks and tracers (LangSmith) still see them.
        """
        rail = cls(guard, **kwargs)
        return ProGuardGuarded(rail=rail, bound=runnable, inner_events=inner_events)

    # ------------------------------------------------------------------ core steps
    @property
    def _key(self) -> str | None:
        return self.input_key if self.check == "input" else self.output_key

    def _picker(self, side: Side) -> _KeyPick:
        """How this rail reads a dict on ``side`` (the output side reads the request beside the answer)."""
        if side == "input":
            return _KeyPick(self.input_key, INPUT_KEYS)
        return _KeyPick(self.output_key, OUTPUT_KEYS, REQUEST_KEYS)

    def _prepare(self, value: Any, side: Side | None = None, *, kind: Any = None,
                 context: Parts | None = None) -> Prepared:
        side = side or self.check
        return prepare(
            self.guard, value, side,
            key=self.input_key if side == "input" else self.output_key,
            kind=kind or side, policy=self.policy, context=context,
        )

    def _decide(self, prepared: Sequence[Prepared]) -> list[Decision]:
        """Sync: one batched guard call (the guard's portal loop works inside running loops)."""
        todo = [p.request for p in prepared if p.request is not None]
        judged = iter(self.guard.check_batch(todo, policy=self.policy) if todo else [])
        return [p.decision if p.decision is not None else next(judged) for p in prepared]

    async def _adecide(self, prepared: Sequence[Prepared]) -> list[Decision]:
        todo = [p.request for p in prepared if p.request is not None]
        judged = iter(await self.guard.acheck_batch(todo, policy=self.policy) if todo else [])
        return [p.decision if p.decision is not None else next(judged) for p in prepared]

    def _blocked_value(self, value: Any, decision: Decision, side: Side | None = None) -> Any:
        if self.on_block == "raise":
            raise ProGuardViolation(decision)
        side = side or self.check
        key = self.input_key if side == "input" else self.output_key
        return refusal_like(value, decision, self.refusal, key=key, side=side)

    def _apply(self, value: Any, decision: Decision, side: Side | None = None) -> Any:
        """Allowed: the very same object. Blocked: raise or a refusal shaped like it."""
        return value if decision.allowed else self._blocked_value(value, decision, side)

    def _stream_refusal(self, win: _Window, decision: Decision) -> Any:
        """The refusal chunk that ends a blocked stream, shaped like the chunks."""
        if self.on_block == "raise":
            raise ProGuardViolation(decision)
        sample = win.agg
        if _is_message_list(sample):  # a stream of whole messages: refuse with one message
            sample = sample[-1]
        elif isinstance(sample, HeldChunks) or isinstance(win.last, BaseModel):
            sample = win.last  # shaped like the chunks themselves, not like their aggregate
        if self.check == "input":
            return self._blocked_value(sample, decision, "input")
        if isinstance(sample, Mapping):
            try:
                k = pick_key(sample, self.output_key, OUTPUT_KEYS, "output_key") or "output"
            except Exception:
                k = self.output_key or "output"
            inner = sample.get(k, "")
            return {k: refusal_like(inner, decision, self.refusal)}
        return refusal_like(sample, decision, self.refusal)

    # ------------------------------------------------------------------ tracing
    def _run_metadata(self) -> dict[str, Any]:
        return {"proguard_check": self.check, "proguard_on_block": self.on_block,
                "proguard_judge": self.guard.judge.identity()}


    def _emit(self, rm: CallbackManagerForChainRun, child: RunnableConfig, decision: Decision) -> None:
        if rm.handlers or rm.inheritable_handlers:
            dispatch_custom_event(DECISION_EVENT, _decision_payload(decision, self.get_name()), config=child)

    async def _aemit(self, rm: AsyncCallbackManagerForChainRun, child: RunnableConfig,
                     decision: Decision) -> None:
        if rm.handlers or rm.inheritable_handlers:
            await adispatch_custom_event(DECISION_EVENT, _decision_payload(decision, self.get_name()),
                                         config=child)

    # ------------------------------------------------------------------ invoke
    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        rm, child = self._start(config, input)
        try:
            (decision,) = self._decide([self._prepare(input)])
            self._emit(rm, child, decision)
            out = self._apply(input, decision)
        except BaseException as exc:
            rm.on_chain_error(exc)
            raise
        rm.on_chain_end(_traced_output(out, decision.to_dict()))
        return out

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        rm, child = await self._astart(config, input)
        try:
            (decision,) = await self._adecide([self._prepare(input)])
            await self._aemit(rm, child, decision)
            out = self._apply(input, decision)
        except BaseException as exc:
            await rm.on_chain_error(exc)
            raise
        await rm.on_chain_end(_traced_output(out, decision.to_dict()))
        return out

    # ------------------------------------------------------------------ batch
    def batch(self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None = None, *,
              return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        """One batched guard call for all inputs (not one call, nor one thread, per item)."""
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        runs = [self._start(c, v) for c, v in zip(configs, inputs, strict=True)]
        try:
            decisions = self._decide([self._prepare(v) for v in inputs])
        except BaseException as exc:
            for rm, _ in runs:
                rm.on_chain_error(exc)
            if return_exceptions and isinstance(exc, Exception):
                return [exc for _ in inputs]
            raise
        outs: list[Any] = []
        for (rm, child), value, decision in zip(runs, inputs, decisions, strict=True):
            try:
                self._emit(rm, child, decision)
                out = self._apply(value, decision)
            except Exception as exc:
                rm.on_chain_error(exc)
                outs.append(exc)
                continue
            rm.on_chain_end(_traced_output(out, decision.to_dict()))
            outs.append(out)
        return _finish_batch(outs, return_exceptions)

    async def abatch(self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None = None,
                     *, return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        """One batched guard call for all inputs."""
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        runs = await asyncio.gather(*(self._astart(c, v) for c, v in zip(configs, inputs, strict=True)))
        try:
            decisions = await self._adecide([self._prepare(v) for v in inputs])
        except BaseException as exc:
            await asyncio.gather(*(rm.on_chain_error(exc) for rm, _ in runs))
            if return_exceptions and isinstance(exc, Exception):
                return [exc for _ in inputs]
            raise
        outs: list[Any] = []
        for (rm, child), value, decision in zip(runs, inputs, decisions, strict=True):
            try:
                await self._aemit(rm, child, decision)
                out = self._apply(value, decision)
            except Exception as exc:
                await rm.on_chain_error(exc)
                outs.append(exc)
                continue
            await rm.on_chain_end(_traced_output(out, decision.to_dict()))
            outs.append(out)
        return _finish_batch(outs, return_exceptions)

    # ------------------------------------------------------------------ streaming
    def transform(self, input: Iterator[Any], config: RunnableConfig | None = None,
                  **kwargs: Any) -> Iterator[Any]:
        """Streamed text is released only after it was judged (windows, or the whole stream)."""
        rm, child = self._start(config, {"input": ""}, defers_inputs=True)
        st = _StreamState(None if self.check == "input" else self.stream_window_chars, pick=self._picker(self.check))
        inner = self._window_iter(input, st, rm, child, track_input=True)
        yield from _drive(rm, inner, st)

    async def atransform(self, input: AsyncIterator[Any], config: RunnableConfig | None = None,
                         **kwargs: Any) -> AsyncIterator[Any]:
        rm, child = await self._astart(config, {"input": ""}, defers_inputs=True)
        st = _StreamState(None if self.check == "input" else self.stream_window_chars, pick=self._picker(self.check))
        inner = self._awindow_iter(input, st, rm, child, track_input=True)
        async for chunk in _adrive(rm, inner, st):
            yield chunk

    def _window_iter(self, source: Iterator[Any], st: _StreamState, rm: CallbackManagerForChainRun,
                     child: RunnableConfig, context: Parts | None = None, kind: Any = None,
                     track_input: bool = False) -> Iterator[Any]:
        """Hold chunks; judge the text so far when a window fills and at the end; release or stop."""
        win = st.win
        for chunk in source:
            if track_input:
                st.seen = _add(st.seen, chunk)
            if win.feed(chunk):
                blocked = self._judge_window(win, rm, child, context, kind)
                if blocked is not None:
                    win.drop_pending()
                    yield blocked
                    return
                yield from win.release()
        if win.pending:
            blocked = self._judge_window(win, rm, child, context, kind)
            if blocked is not None:
                win.drop_pending()
                yield blocked
            else:
                yield from win.release()

    async def _awindow_iter(self, source: AsyncIterator[Any], st: _StreamState,
                            rm: AsyncCallbackManagerForChainRun, child: RunnableConfig,
                            context: Parts | None = None, kind: Any = None,
                            track_input: bool = False) -> AsyncIterator[Any]:
        win = st.win
        async for chunk in source:
            if track_input:
                st.seen = _add(st.seen, chunk)
            if win.feed(chunk):
                blocked = await self._ajudge_window(win, rm, child, context, kind)
                if blocked is not None:
                    win.drop_pending()
                    yield blocked
                    return
                for c in win.release():
                    yield c
        if win.pending:
            blocked = await self._ajudge_window(win, rm, child, context, kind)
            if blocked is not None:
                win.drop_pending()
                yield blocked
            else:
                for c in win.release():
                    yield c

    def _judge_window(self, win: _Window, rm: CallbackManagerForChainRun, child: RunnableConfig,
                      context: Parts | None = None, kind: Any = None) -> Any:
        """Judge the text so far; None to release the pending chunks, else the refusal chunk."""
        prepared = self._prepare(win.agg, kind=kind, context=context)
        decision = win.reuse(prepared)
        if decision is None:
            (decision,) = self._decide([prepared])
            win.judged(prepared, decision)
            self._emit(rm, child, decision)
        return None if decision.allowed else self._stream_refusal(win, decision)

    async def _ajudge_window(self, win: _Window, rm: AsyncCallbackManagerForChainRun, child: RunnableConfig,
                             context: Parts | None = None, kind: Any = None) -> Any:
        prepared = self._prepare(win.agg, kind=kind, context=context)
        decision = win.reuse(prepared)
        if decision is None:
            (decision,) = await self._adecide([prepared])
            win.judged(prepared, decision)
            await self._aemit(rm, child, decision)
        return None if decision.allowed else self._stream_refusal(win, decision)


def _finish_batch(outs: list[Any], return_exceptions: bool) -> list[Any]:
    if not return_exceptions:
        first = next((o for o in outs if isinstance(o, Exception)), None)
        if first is not None:
            raise first
    return outs


class _StreamState:
    """Everything one streaming call accumulates (a local object: nothing lives on the Runnable)."""

    def __init__(self, window: int | None, around: bool = False, pick: _KeyPick | None = None,
                 pick_input: _KeyPick | None = None) -> None:
        self.win = _Window(window, pick)
        self.pick_input = pick_input
        self.seen: Any = _MISSING  # the input, aggregated, for the trace
        self.out: Any = _MISSING  # what the caller received, aggregated, for the trace
        self.around = around
        self.verdicts: dict[str, Any] = {}

    def inputs(self) -> dict[str, Any] | None:
        return None if self.seen is _MISSING else {"input": _traceable(self.seen)}

    def outputs(self) -> dict[str, Any]:
        win = self.win
        released = None if self.out is _MISSING else _traceable(self.out)
        last = win.last_decision.to_dict() if win.last_decision is not None else None
        if self.around:
            proguard: Any = {**self.verdicts, **({"output": last} if last is not None else {})}
        else:
            proguard = last
        return {"output": released, "proguard": proguard, "proguard_checks": win.checks}


def _traceable(value: Any) -> Any:
    return list(value.chunks) if isinstance(value, HeldChunks) else value


def _streaming_handler(rm: Any) -> Any:
    """LangChain's stream tap (feeds astream_log / astream_events' on_chain_stream), if present."""
    if _StreamingCallbackHandler is None:
        return None
    return next((h for h in rm.handlers if isinstance(h, _StreamingCallbackHandler)), None)


def _drive(rm: CallbackManagerForChainRun, inner: Iterator[Any], st: _StreamState) -> Iterator[Any]:
    """Run ``inner`` as the body of the run ``rm``: tap it for stream events, end or fail the run."""
    handler = _streaming_handler(rm)
    iterator = handler.tap_output_iter(rm.run_id, inner) if handler is not None else inner
    try:
        for chunk in iterator:
            st.out = _add(st.out, chunk)
            yield chunk
    except GeneratorExit:  # the consumer stopped early: the run still ends, with what was released
        inner.close()
    except BaseException as exc:
        rm.on_chain_error(exc, inputs=st.inputs())
        raise
    rm.on_chain_end(st.outputs(), inputs=st.inputs())


async def _adrive(rm: AsyncCallbackManagerForChainRun, inner: AsyncIterator[Any],
                  st: _StreamState) -> AsyncIterator[Any]:
    handler = _streaming_handler(rm)
    iterator = handler.tap_output_aiter(rm.run_id, inner) if handler is not None else inner
    try:
        async for chunk in iterator:
            st.out = _add(st.out, chunk)
            yield chunk
    except GeneratorExit:  # the consumer stopped early: the run still ends, with what was released
        await rm.on_chain_end(st.outputs(), inputs=st.inputs())
        raise
    except BaseException as exc:
        await rm.on_chain_error(exc, inputs=st.inputs())
        raise
    finally:
        if hasattr(inner, "aclose"):
            await inner.aclose()
    await rm.on_chain_end(st.outputs(), inputs=st.inputs())


# ------------------------------------------------------------------------------ around
class ProGuardGuarded(_StreamsThroughTransform, RunnableSerializable[Any, Any]):
    """``ProGuardRail.around(chain)``: input screened, chain run, request and answer judged together.

    Built by ``ProGuardRail.around``; the rail's settings (``on_block``, ``refusal``,
    keys, stream window, policy) apply to both checks. The answer is judged in ProGuard's
    conversation format (User: the request, Agent: the answer), which is how the model
    was trained to judge responses.
    """

    rail: ProGuardRail
    bound: Runnable[Any, Any]
    inner_events: bool = False
    name: str | None = "ProGuardGuarded"

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return False

    @property
    def InputType(self) -> Any:
        return self.bound.InputType

    @property
    def OutputType(self) -> Any:
        return self.bound.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> Any:
        return self.bound.get_input_schema(config)

    def get_output_schema(self, config: RunnableConfig | None = None) -> Any:
        return self.bound.get_output_schema(config)

    @property
    def config_specs(self) -> Any:
        return self.bound.config_specs

    # ------------------------------------------------------------------ helpers
    def _input_refusal(self, value: Any, decision: Decision) -> Any:
        """What the chain would have answered, as a refusal: shape taken from its OutputType."""
        r = self.rail
        if r.on_block == "raise":
            raise ProGuardViolation(decision)
        if isinstance(value, HeldChunks):  # a streamed input of chunks that could not be merged
            value = value.last
        if callable(r.refusal):
            return r.refusal(value, decision)
        shape = _output_shape(self.bound.OutputType)
        if shape == "str":
            return r.refusal
        if shape == "message":
            return AIMessage(content=r.refusal, response_metadata={"proguard": decision.to_dict()})
        if shape == "dict" or r.output_key:
            return {r.output_key or "output": r.refusal}
        return refusal_like(value, decision, r.refusal, side="input")

    def _inner(self, child: RunnableConfig) -> RunnableConfig:
        """The config ``bound`` runs with: without the event-stream taps unless ``inner_events``.

        ``astream_events`` / ``astream_log`` handlers relay every inner run's events as they
        happen, model tokens and the model's whole answer included, before the answer is
        judged. Removing only those handlers keeps the guarded chain's text out of the event
        stream (the wrapper's own ``on_chain_stream`` carries the judged chunks) while
        callbacks and tracers still record the inner runs.
        """
        cbs = child.get("callbacks")
        if self.inner_events or not isinstance(cbs, BaseCallbackManager):
            return child
        taps = [h for h in [*cbs.handlers, *cbs.inheritable_handlers] if _is_event_tap(h)]
        if not taps:
            return child
        stripped = cbs.copy()
        for h in taps:
            stripped.remove_handler(h)
        return patch_config(child, callbacks=stripped)

    def _prep_in(self, value: Any) -> Prepared:
        return self.rail._prepare(value, "input", kind="input")

    def _prep_out(self, value: Any, in_prep: Prepared) -> Prepared:
        return self.rail._prepare(value, "output", kind="conversation", context=in_prep.parts)

    def _run_metadata(self) -> dict[str, Any]:
        return {**self.rail._run_metadata(), "proguard_check": "around"}

    # ------------------------------------------------------------------ invoke
    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        r = self.rail
        rm, child = self._start(config, input)
        verdicts: dict[str, Any] = {}
        try:
            in_prep = self._prep_in(input)
            (d_in,) = r._decide([in_prep])
            r._emit(rm, child, d_in)
            verdicts["input"] = d_in.to_dict()
            if not d_in.allowed:
                out = self._input_refusal(input, d_in)
            else:
                answer = self.bound.invoke(input, self._inner(child), **kwargs)
                (d_out,) = r._decide([self._prep_out(answer, in_prep)])
                r._emit(rm, child, d_out)
                verdicts["output"] = d_out.to_dict()
                out = r._apply(answer, d_out, "output")
        except BaseException as exc:
            rm.on_chain_error(exc)
            raise
        rm.on_chain_end(_traced_output(out, verdicts))
        return out

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        r = self.rail
        rm, child = await self._astart(config, input)
        verdicts: dict[str, Any] = {}
        try:
            in_prep = self._prep_in(input)
            (d_in,) = await r._adecide([in_prep])
            await r._aemit(rm, child, d_in)
            verdicts["input"] = d_in.to_dict()
            if not d_in.allowed:
                out = self._input_refusal(input, d_in)
            else:
                answer = await self.bound.ainvoke(input, self._inner(child), **kwargs)
                (d_out,) = await r._adecide([self._prep_out(answer, in_prep)])
                await r._aemit(rm, child, d_out)
                verdicts["output"] = d_out.to_dict()
                out = r._apply(answer, d_out, "output")
        except BaseException as exc:
            await rm.on_chain_error(exc)
            raise
        await rm.on_chain_end(_traced_output(out, verdicts))
        return out

    # ------------------------------------------------------------------ batch
    def batch(self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None = None, *,
              return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        """Two batched guard calls in all: one for the inputs, one for the answers."""
        if not inputs:
            return []
        r = self.rail
        configs = get_config_list(config, len(inputs))
        runs = [self._start(c, v) for c, v in zip(configs, inputs, strict=True)]
        try:
            in_preps = [self._prep_in(v) for v in inputs]
            d_ins = r._decide(in_preps)
            ok = [i for i, d in enumerate(d_ins) if d.allowed]
            answers = self.bound.batch([inputs[i] for i in ok], [self._inner(runs[i][1]) for i in ok],
                                       return_exceptions=True, **kwargs) if ok else []
            judged = [(i, a) for i, a in zip(ok, answers, strict=True) if not isinstance(a, Exception)]
            d_outs = dict(zip((i for i, _ in judged),
                              r._decide([self._prep_out(a, in_preps[i]) for i, a in judged]), strict=True))
        except BaseException as exc:
            for rm, _ in runs:
                rm.on_chain_error(exc)
            if return_exceptions and isinstance(exc, Exception):
                return [exc for _ in inputs]
            raise
        answer_of = dict(zip(ok, answers, strict=True))
        outs: list[Any] = []
        for i, ((rm, child), value) in enumerate(zip(runs, inputs, strict=True)):
            verdicts: dict[str, Any] = {"input": d_ins[i].to_dict()}
            try:
                r._emit(rm, child, d_ins[i])
                if not d_ins[i].allowed:
                    out = self._input_refusal(value, d_ins[i])
                elif isinstance(answer_of[i], Exception):
                    raise answer_of[i]
                else:
                    r._emit(rm, child, d_outs[i])
                    verdicts["output"] = d_outs[i].to_dict()
                    out = r._apply(answer_of[i], d_outs[i], "output")
            except Exception as exc:
                rm.on_chain_error(exc)
                outs.append(exc)
                continue
            rm.on_chain_end(_traced_output(out, verdicts))
            outs.append(out)
        return _finish_batch(outs, return_exceptions)

    async def abatch(self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None = None,
                     *, return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        if not inputs:
            return []
        r = self.rail
        configs = get_config_list(config, len(inputs))
        runs = await asyncio.gather(*(self._astart(c, v) for c, v in zip(configs, inputs, strict=True)))
        try:
            in_preps = [self._prep_in(v) for v in inputs]
            d_ins = await r._adecide(in_preps)
            ok = [i for i, d in enumerate(d_ins) if d.allowed]
            answers = await self.bound.abatch([inputs[i] for i in ok], [self._inner(runs[i][1]) for i in ok],
                                              return_exceptions=True, **kwargs) if ok else []
            judged = [(i, a) for i, a in zip(ok, answers, strict=True) if not isinstance(a, Exception)]
            d_outs = dict(zip((i for i, _ in judged),
                              await r._adecide([self._prep_out(a, in_preps[i]) for i, a in judged]), strict=True))
        except BaseException as exc:
            await asyncio.gather(*(rm.on_chain_error(exc) for rm, _ in runs))
            if return_exceptions and isinstance(exc, Exception):
                return [exc for _ in inputs]
            raise
        answer_of = dict(zip(ok, answers, strict=True))
        outs: list[Any] = []
        for i, ((rm, child), value) in enumerate(zip(runs, inputs, strict=True)):
            verdicts: dict[str, Any] = {"input": d_ins[i].to_dict()}
            try:
                await r._aemit(rm, child, d_ins[i])
                if not d_ins[i].allowed:
                    out = self._input_refusal(value, d_ins[i])
                elif isinstance(answer_of[i], Exception):
                    raise answer_of[i]
                else:
                    await r._aemit(rm, child, d_outs[i])
                    verdicts["output"] = d_outs[i].to_dict()
                    out = r._apply(answer_of[i], d_outs[i], "output")
            except Exception as exc:
                await rm.on_chain_error(exc)
                outs.append(exc)
                continue
            await rm.on_chain_end(_traced_output(out, verdicts))
            outs.append(out)
        return _finish_batch(outs, return_exceptions)

    # ------------------------------------------------------------------ streaming
    def transform(self, input: Iterator[Any], config: RunnableConfig | None = None,
                  **kwargs: Any) -> Iterator[Any]:
        """The input is read whole and judged first; the chain's stream is then windowed."""
        rm, child = self._start(config, {"input": ""}, defers_inputs=True)
        st = _StreamState(self.rail.stream_window_chars, around=True, pick=self.rail._picker("output"),
                          pick_input=self.rail._picker("input"))
        yield from _drive(rm, self._iter(input, st, rm, child, kwargs), st)

    async def atransform(self, input: AsyncIterator[Any], config: RunnableConfig | None = None,
                         **kwargs: Any) -> AsyncIterator[Any]:
        rm, child = await self._astart(config, {"input": ""}, defers_inputs=True)
        st = _StreamState(self.rail.stream_window_chars, around=True, pick=self.rail._picker("output"),
                          pick_input=self.rail._picker("input"))
        async for chunk in _adrive(rm, self._aiter(input, st, rm, child, kwargs), st):
            yield chunk

    def _iter(self, input: Iterator[Any], st: _StreamState, rm: CallbackManagerForChainRun,
              child: RunnableConfig, kwargs: dict[str, Any]) -> Iterator[Any]:
        r = self.rail
        chunks = []
        for c in input:
            chunks.append(c)
            st.seen = _add(st.seen, c, st.pick_input)
        if st.seen is _MISSING:
            return
        in_prep = self._prep_in(st.seen)
        (d_in,) = r._decide([in_prep])
        r._emit(rm, child, d_in)
        st.verdicts["input"] = d_in.to_dict()
        if not d_in.allowed:
            refusal = self._input_refusal(st.seen, d_in)
            st.win.drop_pending()
            yield refusal
            return
        answer = self.bound.transform(iter(chunks), self._inner(child), **kwargs)
        yield from r._window_iter(answer, st, rm, child, in_prep.parts, "conversation")

    async def _aiter(self, input: AsyncIterator[Any], st: _StreamState, rm: AsyncCallbackManagerForChainRun,
                     child: RunnableConfig, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        r = self.rail
        chunks = []
        async for c in input:
            chunks.append(c)
            st.seen = _add(st.seen, c, st.pick_input)
        if st.seen is _MISSING:
            return
        in_prep = self._prep_in(st.seen)
        (d_in,) = await r._adecide([in_prep])
        await r._aemit(rm, child, d_in)
        st.verdicts["input"] = d_in.to_dict()
        if not d_in.allowed:
            refusal = self._input_refusal(st.seen, d_in)
            st.win.drop_pending()
            yield refusal
            return

        async def replay() -> AsyncIterator[Any]:
            for c in chunks:
                yield c

        answer = self.bound.atransform(replay(), self._inner(child), **kwargs)
        try:
            async for chunk in r._awindow_iter(answer, st, rm, child, in_prep.parts, "conversation"):
                yield chunk
        finally:
            await answer.aclose()  # type: ignore[attr-defined]



__all__ = ["DECISION_EVENT", "ProGuardGuarded", "ProGuardRail"]
