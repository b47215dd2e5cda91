"""``ProGuardValidator``: the Guardrails AI validator ``proguard/proguard``.

Judges a string with ProGuard, the proactive vision-language safety guard: by default the
value is an LLM response, judged with the user's request from metadata when given, and with
images from metadata. Inference runs only where ``proguard_rails`` is pointed: your own
OpenAI-compatible endpoint (vLLM), a local checkpoint, or the embedded lite judge. Nothing
is sent to a hosted validation service, whatever the Guardrails rc file says.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from contextvars import Context, ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from guardrails.validator_base import (
    ErrorSpan,
    FailResult,
    PassResult,
    ValidationResult,
    Validator,
    register_validator,
)

from proguard_rails import ConfigurationError, Decision, Policy, ProGuard, ProGuardError
from proguard_rails._portal import run_sync
from proguard_rails.inputs import GuardRequest, build_request

DEFAULT_REFUSAL = "I can't help with that."

#: metadata keys read for the user's request, in this order
REQUEST_KEYS: tuple[str, ...] = ("request", "prompt", "user_input", "question", "query")

#: a sentence end: terminal punctuation (optionally closed by quotes or brackets) before
#: whitespace or the end of the text received so far, or a line break
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]+[\"'\u201d\u2019)\]]*(?=\s|$)|\n")
_STREAM_KEY = "proguard_stream_id"
#: streams whose end was never signalled (abandoned, or Guardrails' noop path) are forgotten,
#: oldest first, past this many per validator; a chunk of a forgotten stream is withheld
_MAX_OPEN_STREAMS = 4096
#: sync streams without a result yet, per thread or task (older ones were abandoned)
_MAX_UNTAGGED = 256

Refusal = str | Callable[[str, Decision], str]
JudgeAs = Literal["response", "request"]


@dataclass
class _StreamState:
    """One stream: all text received, how much was handed back, and a latched failure."""

    id: str
    text: str = ""
    emitted: int = 0
    started: bool = False
    failure: FailResult | None = None
    lost: bool = False  # a chunk of a stream whose state was forgotten: withhold, fail closed
    in_context: bool = False  # kept in the stream's own context variables (AsyncGuard)


#: Sync streams that have not been handed a result yet, per thread / asyncio task (each has its
#: own context): ``{(validator id, id(metadata)): (metadata, state)}``. The mapping is replaced,
#: never mutated, so contexts copied from this one (new tasks) never share an entry.
_UNTAGGED: ContextVar[Mapping[tuple[int, int], tuple[Any, _StreamState]]] = ContextVar(
    "proguard_guardrails_untagged_streams"
)


def sentence_cut(pending: str, max_chars: int) -> int:
    """How many leading characters of ``pending`` form complete sentences (0: keep accumulating).

    Long text without a sentence end is cut at a space once it reaches ``max_chars``, so a
    stream without punctuation is still judged as it goes.
    """
    cut = 0
    for m in _SENTENCE_END.finditer(pending):
        cut = m.end()
    if cut:
        return cut
    if len(pending) >= max_chars:
        space = pending.rfind(" ", 0, max_chars)
        return space + 1 if space > max_chars // 2 else max_chars
    return 0


@register_validator(name="proguard/proguard", data_type="string")
class ProGuardValidator(Validator):
    """Validates that a response (or a request) is safe according to ProGuard.

    **Key properties**

    | Property | Description |
    | --- | --- |
    | Name for `format` attribute | `proguard/proguard` |
    | Supported data types | `string` |
    | Programmatic fix | the configured refusal |

    Args:
        guard: a configured ``proguard_rails.ProGuard``; by default one is built lazily from
            ``base_url`` / ``model`` / ``model_path`` and the ``PROGUARD_*`` environment.
        judge_as: ``"response"`` (default): the value is the LLM's answer, judged with the request
            from metadata (``request``, ``prompt``, ``user_input``, ``question``, ``query`` or
            chat ``messages``); only the response label can fail it, so a refusal of a harmful
            request passes. ``"request"``: the value is user input (``Guard.use(..., on="messages")``
            or input screening); the request label decides.
        policy: a full ``proguard_rails.Policy``; overrides ``judge_as``'s label choice and ``block_categories``.
        block_categories: category ids that fail validation (``["C6", "C8S1"]``); default: all.
        refusal: the ``fix_value`` (text, or ``f(value, decision) -> str``), so ``on_fail="fix"``
            replaces an unsafe value by it.
        base_url / model / model_path: where the model is, when ``guard`` is not given.
        guard_settings: more ``ProGuardSettings`` fields for that guard (``{"timeout": 30,
            "api_key": ...}``); secrets are kept out of Guardrails' validator arguments.
        allow_image_paths: accept local file paths in ``metadata["images"]``. Metadata is written
            by your application, not by the model, so paths are trusted by default; turn this off
            if end users can put strings there.
        stream_max_chars: in streaming, judge at the latest after this many characters without a
            sentence end.
        on_fail: any Guardrails ``OnFailAction`` or a ``f(value, fail_result)`` callable.

    Metadata read: the request (keys above), ``messages`` (chat history; the last user turn is the
    request), ``images`` (list) or ``image`` (one): bytes, base64, data URLs, PIL images, paths.
    """

    def __init__(
        self,
        guard: ProGuard | None = None,
        *,
        judge_as: JudgeAs = "response",
        policy: Policy | None = None,
        block_categories: Iterable[str] | None = None,
        refusal: Refusal = DEFAULT_REFUSAL,
        base_url: str | None = None,
        model: str | None = None,
        model_path: str | None = None,
        guard_settings: Mapping[str, Any] | None = None,
        allow_image_paths: bool = True,
        stream_max_chars: int = 600,
        on_fail: Any = None,
        **kwargs: Any,
    ) -> None:
        if judge_as not in ("response", "request"):
            raise ConfigurationError(f"judge_as must be 'response' or 'request', not {judge_as!r}")
        if stream_max_chars < 1:
            raise ConfigurationError("stream_max_chars must be at least 1")
        cats = sorted(block_categories) if block_categories is not None else None
        # Only plain, serializable settings go to the base class: Guardrails copies them into
        # validator references, history and traces. use_local=True: never route to hosted inference.
        kwargs.pop("use_local", None)
        super().__init__(
            on_fail=on_fail,
            judge_as=judge_as,
            block_categories=cats,
            refusal=refusal if isinstance(refusal, str) else getattr(refusal, "__name__", "callable"),
            base_url=base_url,
            model=model,
            model_path=model_path,
            guard_settings={k: v for k, v in (guard_settings or {}).items() if k != "api_key"} or None,
            allow_image_paths=allow_image_paths,
            stream_max_chars=stream_max_chars,
            use_local=True,
            **kwargs,
        )
        self.use_local = True
        self.judge_as: JudgeAs = judge_as
        self.refusal = refusal
        self.allow_image_paths = allow_image_paths
        self.stream_max_chars = stream_max_chars
        self._explicit_policy = policy
        self._block_categories = cats
        self._guard = guard
        explicit = {"base_url": base_url, "model": model, "model_path": model_path}
        self._guard_args = {**(guard_settings or {}), **{k: v for k, v in explicit.items() if v is not None}}
        self._lock = threading.Lock()
        # sync streams that were handed a result, by the stream id that result's metadata carries
        self._streams: OrderedDict[str, _StreamState] = OrderedDict()
        self._stream_key = f"{_STREAM_KEY}:{uuid.uuid4().hex[:12]}"  # one per validator instance

    # ------------------------------------------------------------------ configuration
    @property
    def guard(self) -> ProGuard:
        """The ProGuard engine (built on first use, so ``Guard().use(...)`` stays cheap)."""
        if self._guard is None:
            with self._lock:
                if self._guard is None:
                    self._guard = ProGuard(**self._guard_args)
        return self._guard

    @property
    def policy(self) -> Policy:
        if self._explicit_policy is not None:
            return self._explicit_policy
        update: dict[str, Any] = {"labels": self.judge_as}
        if self._block_categories is not None:
            update["block_categories"] = self._block_categories
        return Policy.model_validate({**self.guard.policy.model_dump(), **update})

    def _inference_remote(self, model_input: Any) -> Any:
        raise ConfigurationError(
            "ProGuardValidator never sends content to a hosted inference service. Point it at your "
            "own endpoint (base_url=... or PROGUARD_BASE_URL) or a local model (model_path=...)."
        )

    def _inference_local(self, model_input: Any) -> Any:
        request: GuardRequest = model_input
        return run_sync(self.guard.acheck(request, policy=self.policy))

    # ------------------------------------------------------------------ requests
    def _images(self, md: Mapping[str, Any]) -> list[Any]:
        imgs = md.get("images")
        if imgs is None:
            imgs = [md["image"]] if md.get("image") is not None else []
        elif isinstance(imgs, (str, bytes, bytearray)) or hasattr(imgs, "save"):
            imgs = [imgs]
        return list(imgs)

    def _request_text(self, md: Mapping[str, Any]) -> str | None:
        for key in REQUEST_KEYS:
            val = md.get(key)
            if isinstance(val, str) and val.strip():
                return val
        return None

    def build_request(self, value: Any, metadata: Mapping[str, Any]) -> GuardRequest:
        """The guard request for ``value`` and ``metadata`` (raises ``proguard_rails.InputError``)."""
        g = self.guard
        text = value if isinstance(value, str) else str(value)
        images = self._images(metadata)
        paths = self.allow_image_paths
        if self.judge_as == "request":
            return build_request(text, None, images, settings=g.settings, allow_paths=paths, kind="input")
        messages = metadata.get("messages")
        if messages:
            # Message content may come from users: images inside it are never read from disk.
            conv = g.request(messages, kind="output")
            loaded = [*conv.images, *(build_request("", None, images, settings=g.settings,
                                                    allow_paths=paths).images if images else ())]
            return build_request(conv.user_text, text, loaded, settings=g.settings, kind="output")
        return build_request(self._request_text(metadata) or "", text, images, settings=g.settings,
                             allow_paths=paths, kind="output")

    # ------------------------------------------------------------------ judging
    async def adecide(self, value: Any, metadata: Mapping[str, Any]) -> Decision:
        """The ProGuard Decision for ``value`` (never raises for guard failures: see ``Decision.status``)."""
        md = {**(self._metadata or {}), **(metadata or {})}
        pol = self.policy
        try:
            req = self.build_request(value, md)
        except ProGuardError as exc:
            return pol.decide_error(exc, "input" if self.judge_as == "request" else "output")
        return await self.guard.acheck(req, policy=pol)

    def _fix_value(self, value: str, decision: Decision) -> str:
        return self.refusal(value, decision) if callable(self.refusal) else self.refusal

    def _error_message(self, decision: Decision) -> str:
        what = self.judge_as
        if decision.is_error:
            return (
                f"ProGuard could not judge the {what} ({decision.error_type}: {decision.error_message}); "
                "treated as a failure because fail_mode is 'closed' (set fail_mode='open' on the ProGuard "
                "guard, or PROGUARD_FAIL_MODE=open, to let unjudged content through)."
            )
        v = decision.verdict
        if v is not None and v.is_out_of_policy:
            return f"ProGuard judged the {what} unsafe: a risk outside the configured policy: {v.description!r}."
        if v is not None and v.category_id:
            name = " / ".join(n for n in (v.category_name, v.subcategory_name) if n)
            return f"ProGuard judged the {what} unsafe: {v.category_id}" + (f" ({name})." if name else ".")
        return f"ProGuard judged the {what} unsafe ({decision.reason})."

    def _info(self, decision: Decision) -> dict[str, Any]:
        v = decision.verdict
        return {
            "decision_status": decision.status,
            "category_id": decision.category_id,
            "category_name": v.category_name if v else None,
            "subcategory_name": v.subcategory_name if v else None,
            "is_out_of_policy": decision.is_out_of_policy,
            "description": decision.description,
            "reason": decision.reason,
            "proguard": decision.to_dict(),
        }

    def to_result(self, decision: Decision, value: str, metadata: Mapping[str, Any],
                  extra: Mapping[str, Any] | None = None) -> ValidationResult:
        """PassResult or FailResult for a Decision. The input metadata is carried through
        (Guardrails hands a result's metadata to the next validation: re-checks, stream chunks)."""
        md = {**metadata, **self._info(decision), **(extra or {})}
        if decision.allowed:
            return PassResult(metadata=md)
        message = self._error_message(decision)
        return FailResult(
            error_message=message,
            fix_value=self._fix_value(value, decision),
            metadata=md,
            error_spans=[ErrorSpan(start=0, end=len(value), reason=message)],
        )

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        return run_sync(self._avalidate(value, metadata))

    async def _avalidate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        text = value if isinstance(value, str) else str(value)
        decision = await self.adecide(text, metadata or {})
        return self.to_result(decision, text, metadata or {})

    async def async_validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        """Native async validation (``AsyncGuard``, and Guardrails' async validator service)."""
        return await self._avalidate(value, metadata)

    # ------------------------------------------------------------------ streaming
    # Each stream has its own state, never one per validator: a Guard (and its validator) is
    # shared by every thread and task that streams through it.
    #
    # * AsyncGuard streams: Guardrails hands each stream its own context variables; the state
    #   lives there.
    # * Sync streams: Guardrails passes no per-stream object, only the metadata dict, which it
    #   replaces with each result's metadata. Every result carries this stream's id (under a key
    #   of this validator), and the state is found by it. Before the first result, the state is
    #   kept in a context variable (per thread and task) under the identity of the metadata dict
    #   Guardrails passes for that stream, so concurrent threads, tasks, and streams fed
    #   alternately by one caller each find their own.
    def _stream_state(self, metadata: Mapping[str, Any], property_path: str | None,
                      context_vars: ContextVar[dict[str, ContextVar[list[Any]]]] | None,
                      context: Context | None) -> _StreamState:
        key = f"{property_path or '$'}_{self.rail_alias}"
        if context_vars is not None and context is not None:
            try:
                var = context.run(context_vars.get).get(key)
            except LookupError:
                var = None
            if var is not None:
                current = context.run(var.get, [])
                if current and isinstance(current[0], _StreamState):
                    return current[0]
                state = _StreamState(id=uuid.uuid4().hex, in_context=True)
                context.run(var.set, [state])
                return state
        token = metadata.get(self._stream_key)
        if token is not None:
            with self._lock:
                st = self._streams.get(str(token))
                if st is not None:
                    self._streams.move_to_end(st.id)
                    return st
            # a stream this validator handed a result to but no longer knows: fail closed
            return _StreamState(id=str(token), lost=True)
        untagged = _UNTAGGED.get({})
        mine = (id(self), id(metadata))
        found = untagged.get(mine)
        if found is not None and found[0] is metadata:
            return found[1]
        state = _StreamState(id=uuid.uuid4().hex)
        kept = list(untagged.items())[-(_MAX_UNTAGGED - 1):]  # streams abandoned before any result
        _UNTAGGED.set({**dict(kept), mine: (metadata, state)})
        return state

    def _tag(self, state: _StreamState, metadata: Mapping[str, Any], *, ended: bool) -> None:
        """The stream got a result: from now on its chunks carry its id; forget it at its end."""
        if state.in_context or state.lost:
            return
        untagged = _UNTAGGED.get({})
        mine = (id(self), id(metadata))
        if mine in untagged and untagged[mine][1] is state:
            _UNTAGGED.set({k: v for k, v in untagged.items() if k != mine})
        with self._lock:
            if ended:
                self._streams.pop(state.id, None)
                return
            self._streams[state.id] = state
            self._streams.move_to_end(state.id)
            while len(self._streams) > _MAX_OPEN_STREAMS:
                self._streams.popitem(last=False)

    def reset_stream(self) -> None:
        """Forget this thread's (or task's) sync streams that were never handed a result
        (streams that ended without a sentence end and without Guardrails' final call)."""
        untagged = _UNTAGGED.get({})
        _UNTAGGED.set({k: v for k, v in untagged.items() if k[0] != id(self)})

    async def _astream_step(self, state: _StreamState, chunk: Any, metadata: Mapping[str, Any],
                            remainder: bool) -> ValidationResult | None:
        state.text += "" if chunk is None else str(chunk)
        pending = state.text[state.emitted:]
        extra = {self._stream_key: state.id}
        if state.lost:
            reason = "withheld: this stream's earlier text is no longer known to the validator"
            return FailResult(
                error_message=f"ProGuard could not judge this part of the stream ({reason}).",
                fix_value="",
                metadata={**metadata, **extra, "withheld": True},
                validated_chunk=pending,
                error_spans=[ErrorSpan(start=0, end=len(pending), reason=reason)],
            )
        if state.failure is not None:
            # Latched: once part of a stream is blocked, the rest is withheld (fix value "")
            # without asking the guard again: it would judge the same unsafe prefix.
            if not pending:
                return None
            state.emitted = len(state.text)
            first = state.failure
            reason = "withheld: an earlier part of this stream was blocked"
            return FailResult(
                error_message=first.error_message,
                fix_value="",
                metadata={**metadata, **(first.metadata or {}), **extra, "withheld": True},
                validated_chunk=pending,
                error_spans=[ErrorSpan(start=0, end=len(pending), reason=reason)],
            )
        cut = len(pending) if remainder else sentence_cut(pending, self.stream_max_chars)
        if cut == 0:
            return None
        piece = pending[:cut]
        state.emitted += cut
        state.started = True
        # The whole response so far is judged, not the new sentence alone: harm split across
        # sentences, or a sentence only harmful in context, is still seen.
        decision = await self.adecide(state.text[: state.emitted], metadata)
        result = self.to_result(decision, piece, metadata, extra)
        result.validated_chunk = piece
        if isinstance(result, FailResult):
            state.failure = result
        return result

    def validate_stream(self, chunk: Any, metadata: dict[str, Any], *, property_path: str | None = "$",
                        context_vars: Any = None, context: Context | None = None,
                        **kwargs: Any) -> ValidationResult | None:
        """Sentence-level streaming: chunks accumulate until a sentence ends, then the whole
        text so far is judged and the new sentence(s) returned as the validated chunk."""
        state = self._stream_state(metadata, property_path, context_vars, context)
        remainder = bool(kwargs.get("remainder", False))
        result = run_sync(self._astream_step(state, chunk, metadata, remainder))
        if result is not None or remainder:
            self._tag(state, metadata, ended=remainder)
        return result

    async def async_validate_stream(self, chunk: Any, metadata: dict[str, Any],
                                    **kwargs: Any) -> ValidationResult | None:
        state = self._stream_state(metadata, kwargs.get("property_path", "$"), kwargs.get("context_vars"),
                                   kwargs.get("context"))
        remainder = bool(kwargs.get("remainder", False))
        result = await self._astream_step(state, chunk, metadata, remainder)
        if result is not None or remainder:
            self._tag(state, metadata, ended=remainder)
        return result


__all__ = ["DEFAULT_REFUSAL", "REQUEST_KEYS", "ProGuardValidator", "sentence_cut"]
