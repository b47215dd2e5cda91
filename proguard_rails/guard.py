"""``ProGuard``: the engine every adapter calls.

check / acheck / check_batch / acheck_batch, tool-call and tool-result screening, an LRU
verdict cache, and backend resolution: explicit arguments, else ``PROGUARD_BASE_URL``,
else ``PROGUARD_MODEL_PATH``, else the embedded lite judge (with a one-time notice, logged as a
WARNING record on the ``proguard_rails`` logger). Each check is traced with OpenTelemetry when
``opentelemetry-api`` is installed (see ``proguard_rails.telemetry``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from ._deadline import DEADLINE_MARGIN_S, deadline_at, run_cpu, time_left
from ._portal import run_sync
from .backends.base import Backend
from .errors import BackendTimeoutError, ConfigurationError, InputError, InputTimeoutError, ProGuardError
from .inputs import CheckKind, GuardRequest, build_request, content_parts, normalize
from .judges.base import Judge, JudgeResult
from .judges.generative import GenerativeJudge
from .policy import Policy
from .settings import ProGuardSettings, SettingsWarning, warn_unknown_env_vars
from .taxonomy import Taxonomy
from .telemetry import trace_checks
from .verdict import Decision, Verdict

logger = logging.getLogger("proguard_rails")
T = TypeVar("T")

_LITE_WARNING_LOCK = threading.Lock()
_LITE_WARNING_SHOWN = False


#: message of the one-time lite-judge notice (a WARNING record on the ``proguard_rails`` logger)
LITE_NOTICE = (
    "proguard-rails: no ProGuard model configured, using the embedded LITE guard (a small "
    "fine-tuned MiniLM classifier, far weaker than ProGuard; English text only). To use "
    "ProGuard, serve it with vLLM and set PROGUARD_BASE_URL=http://HOST:8000/v1, or set "
    "PROGUARD_MODEL_PATH=/path/to/ProGuard-7B (pip install 'proguard-rails[local]')."
)


class LiteGuardWarning(UserWarning):
    """Kept for code that filters it; no longer emitted. The lite-judge notice is now a log
    record (logger ``proguard_rails``, level WARNING, ``record.proguard_notice == "lite_guard"``)."""


def _warn_lite_once() -> None:
    global _LITE_WARNING_SHOWN
    with _LITE_WARNING_LOCK:
        if _LITE_WARNING_SHOWN:
            return
        _LITE_WARNING_SHOWN = True
    # a log record, not warnings.warn: applications route it with their logging config; with none,
    # logging's last-resort handler still prints WARNING records to stderr
    logger.warning(LITE_NOTICE, extra={"proguard_notice": "lite_guard"})


def _warn_ignored_settings(settings: ProGuardSettings) -> None:
    """An explicit backend that leaves a configured endpoint or checkpoint unused says so, loudly:
    ``PROGUARD_BACKEND=lite`` next to ``PROGUARD_BASE_URL`` would otherwise judge with the weak
    lite classifier while the operator believes ProGuard is in use."""
    kind = settings.backend
    ignored = []
    if settings.base_url and kind in ("lite", "transformers", "vllm"):
        ignored.append(f"base_url={settings.base_url!r} (PROGUARD_BASE_URL)")
    if settings.model_path and kind in ("lite", "openai"):
        ignored.append(f"model_path={settings.model_path!r} (PROGUARD_MODEL_PATH)")
    if ignored:
        msg = (
            f"proguard-rails: backend={kind!r} (PROGUARD_BACKEND) ignores {' and '.join(ignored)}; "
            f"checks use the {kind} backend. Unset one of them (or set backend='auto') if that is not meant."
        )
        logger.warning(msg)
        warnings.warn(msg, SettingsWarning, stacklevel=4)


def resolve_judge(
    settings: ProGuardSettings,
    *,
    backend: Backend | None = None,
) -> Judge:
    """Pick the judge from explicit settings, then the environment, then the lite fallback."""
    if backend is not None:
        return GenerativeJudge(backend)
    kind = settings.backend
    _warn_ignored_settings(settings)
    if kind == "lite":
        from .judges.lite import LiteJudge

        return LiteJudge()
    if kind == "openai" or (kind == "auto" and settings.base_url):
        from .backends.openai import OpenAIBackend

        if not settings.base_url:
            raise ConfigurationError("backend 'openai' needs base_url (PROGUARD_BASE_URL)")
        return GenerativeJudge(OpenAIBackend(settings=settings))
    if kind in ("transformers", "vllm") or (kind == "auto" and settings.model_path):
        if not settings.model_path:
            raise ConfigurationError(f"backend {kind!r} needs model_path (PROGUARD_MODEL_PATH)")
        if kind == "vllm":
            from .backends.vllm_local import VLLMBackend

            return GenerativeJudge(VLLMBackend(settings.model_path, settings=settings))
        from .backends.transformers_local import TransformersBackend

        return GenerativeJudge(TransformersBackend(settings.model_path, settings=settings))
    from .judges.lite import LiteJudge

    _warn_lite_once()
    return LiteJudge()


class VerdictCache:
    """Thread-safe LRU of verdicts, keyed by judge, policy text and content hash."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[str, Verdict] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Verdict | None:
        if self.maxsize <= 0:
            return None
        with self._lock:
            v = self._data.get(key)
            if v is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return v

    def put(self, key: str, verdict: Verdict) -> None:
        if self.maxsize <= 0:
            return
        with self._lock:
            self._data[key] = verdict
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "size": len(self._data), "maxsize": self.maxsize}


_SETTING_KEYS = set(ProGuardSettings.model_fields)


class ProGuard:
    """The guard engine.

    >>> guard = ProGuard(base_url="http://127.0.0.1:8000/v1")      # doctest: +SKIP
    >>> guard.check("How do I make a pipe bomb?").allowed           # doctest: +SKIP
    False

    Arguments win over ``PROGUARD_*`` environment variables. Any ``ProGuardSettings``
    field can be passed as a keyword (``timeout=10``, ``fail_mode="open"``...).
    ``config`` is a policy file (path, dict or ``GuardConfig``; default ``PROGUARD_CONFIG``):
    per-category actions and thresholds, the out-of-policy action, the fail mode, an optional
    taxonomy (see ``proguard_rails.config``). ``policy=`` wins over it.
    """

    def __init__(
        self,
        judge: Judge | None = None,
        *,
        backend: Backend | str | None = None,
        taxonomy: Taxonomy | None = None,
        policy: Policy | None = None,
        settings: ProGuardSettings | None = None,
        config: Any = None,
        **overrides: Any,
    ) -> None:
        if isinstance(backend, str):  # a backend name ("transformers", "vllm"...) is the setting
            overrides["backend"] = backend
            backend = None
        unknown = set(overrides) - _SETTING_KEYS
        if unknown:
            raise TypeError(f"unknown ProGuard argument(s): {', '.join(sorted(unknown))}")
        from pydantic import ValidationError

        if settings is None:
            warn_unknown_env_vars()  # a misspelled PROGUARD_* variable would otherwise be ignored silently
        try:
            base = settings or ProGuardSettings()
            if overrides:
                base = base.model_copy(update={k: v for k, v in overrides.items() if v is not None})
                base = ProGuardSettings.model_validate(base.model_dump())  # re-validate overrides
        except ValidationError as exc:
            raise ConfigurationError(f"invalid ProGuard settings (arguments or PROGUARD_* variables): {exc}") from exc
        self.settings = base
        if judge is not None and backend is not None:
            raise ConfigurationError("pass judge= or backend=, not both")
        cfg = None
        if policy is None and (config is not None or self.settings.config):
            from .config import as_config

            source = config if config is not None else self.settings.config
            assert source is not None
            cfg = as_config(source)
            if taxonomy is None:
                taxonomy = cfg.load_taxonomy()
        self.taxonomy = taxonomy or Taxonomy.default()
        if cfg is not None:
            cfg.check_against(self.taxonomy)
            # an explicit fail_mode argument wins over the file; the file wins over PROGUARD_FAIL_MODE
            policy = cfg.to_policy(fail_mode=self.settings.fail_mode)
            if overrides.get("fail_mode") is not None:
                policy = policy.model_copy(update={"fail_mode": self.settings.fail_mode})
        self.config = cfg
        self.judge: Judge = judge if judge is not None else resolve_judge(self.settings, backend=backend)
        self.policy = policy or Policy(fail_mode=self.settings.fail_mode)
        self.cache = VerdictCache(self.settings.cache_size)

    def __repr__(self) -> str:
        return f"ProGuard(judge={self.judge.identity()!r}, taxonomy={self.taxonomy!r})"

    # ------------------------------------------------------------------ helpers
    def _cache_key(self, request: GuardRequest) -> str:
        parts = [self.judge.identity(), self.taxonomy.fingerprint, request.cache_key()]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def request(self, obj: Any, response: Any = None, images: Iterable[Any] | None = None,
                *, kind: CheckKind = "conversation") -> GuardRequest:
        """Normalize input with this guard's limits (raises ``InputError``)."""
        return normalize(obj, response, images, settings=self.settings, kind=kind)

    async def arequest(self, obj: Any, response: Any = None, images: Iterable[Any] | None = None,
                       *, kind: CheckKind = "conversation") -> GuardRequest:
        """``request`` for async code: normalization (image decoding, URL fetching) runs in a worker
        thread, so it never blocks the event loop, and within the check's deadline when one is set."""
        if isinstance(obj, GuardRequest) and response is None and not images:
            return obj
        if not images and _small_text(obj) and (response is None or _small_text(response)):
            return self.request(obj, response, kind=kind)  # plain short text: microseconds, no thread hop
        left = time_left(self.settings.timeout)
        if left <= 0:
            raise InputTimeoutError(self._input_timeout_message())
        try:
            return await asyncio.wait_for(run_cpu(partial(self.request, obj, response, images, kind=kind)), left)
        except asyncio.TimeoutError as exc:
            raise InputTimeoutError(self._input_timeout_message()) from exc
        except ProGuardError:
            raise
        except (RecursionError, ValueError, TypeError, OverflowError, MemoryError) as exc:
            # hostile structure (deep nesting, huge numbers...): an input error, never an uncaught crash
            raise InputError(f"cannot read this input: {type(exc).__name__}: {str(exc)[:200]}") from exc

    def _input_timeout_message(self) -> str:
        return (
            f"preparing the input (normalization, image decoding, URL fetching) did not finish within the "
            f"check's deadline of {self.settings.timeout:g}s; abandoned (setting PROGUARD_TIMEOUT)"
        )

    # ------------------------------------------------------------------ judging
    async def ajudge_batch(self, requests: Sequence[GuardRequest]) -> list[JudgeResult]:
        """Verdicts (or errors) for normalized requests, through the cache. One judge call for the misses."""
        results: list[JudgeResult | None] = [None] * len(requests)
        keys = [self._cache_key(r) for r in requests]
        todo: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            hit = self.cache.get(key)
            if hit is not None:
                results[i] = hit.model_copy(update={"cached": True, "truncated": requests[i].truncated})
            else:
                todo.setdefault(key, []).append(i)  # duplicates in one batch are judged once
        if todo:
            firsts = [idxs[0] for idxs in todo.values()]
            judged = await self.judge.ajudge_batch([requests[i] for i in firsts], self.taxonomy)
            if len(judged) != len(firsts):
                raise ProGuardError(f"judge returned {len(judged)} results for {len(firsts)} requests")
            for (key, idxs), res in zip(todo.items(), judged, strict=True):
                if isinstance(res, Verdict):
                    self.cache.put(key, res)
                for i in idxs:
                    results[i] = res
        return [r for r in results if r is not None]

    async def ajudge(self, request: GuardRequest) -> Verdict:
        (res,) = await self.ajudge_batch([request])
        if isinstance(res, BaseException):
            raise res
        return res

    # ------------------------------------------------------------------ checks
    async def acheck_batch(
        self,
        items: Sequence[Any],
        *,
        policy: Policy | None = None,
        kind: CheckKind = "conversation",
    ) -> list[Decision]:
        """Decisions for many inputs; requests go to the judge together, concurrently.

        The whole batch shares one deadline, ``timeout`` seconds from the call: normalization,
        rendering, the endpoint and parsing included. An item still unfinished then gets an
        error decision (its work is abandoned).
        """
        return await self._traced(len(items), self._acheck_batch(items, policy or self.policy, kind))

    async def _traced(self, n: int, work: Awaitable[list[Decision]]) -> list[Decision]:
        """One OpenTelemetry span around ``n`` checks, from the call to the decisions (no-op without otel)."""
        with trace_checks(self.judge.identity(), n) as span:
            decisions = await work
            span.finish(decisions, [None] * len(decisions))  # the modality comes from each verdict
        return decisions

    async def _acheck_batch(self, items: Sequence[Any], pol: Policy, kind: CheckKind) -> list[Decision]:
        with deadline_at(time.monotonic() + self.settings.timeout):
            prepared = await asyncio.gather(*(self.arequest(item, kind=kind) for item in items),
                                            return_exceptions=True)
            requests: list[GuardRequest] = []
            positions: list[int] = []
            decisions: list[Decision | None] = [None] * len(items)
            for i, res in enumerate(prepared):
                if isinstance(res, GuardRequest):
                    requests.append(res)
                    positions.append(i)
                elif isinstance(res, ProGuardError):
                    decisions[i] = pol.decide_error(res, _check_name(kind))
                else:
                    raise res
            for pos, decision in zip(positions, await self._adecide(requests, pol), strict=True):
                decisions[pos] = decision
        missing = [i for i, d in enumerate(decisions) if d is None]
        if missing:  # never hand back a shorter list than was asked for
            raise ProGuardError(f"internal error: no decision for items {missing}")
        return [d for d in decisions if d is not None]

    async def _adecide(self, requests: Sequence[GuardRequest], pol: Policy) -> list[Decision]:
        """Decisions for normalized requests, within the deadline already set."""
        from .errors import UnjudgeableInputError

        decisions: list[Decision | None] = [None] * len(requests)
        todo: list[int] = []
        for i, req in enumerate(requests):
            nothing_else = not (req.user_text.strip() or (req.agent_text or "").strip() or req.images)
            if req.unjudgeable and (pol.unjudgeable == "block" or nothing_else):
                # Policy(unjudgeable=...) decides: "block" refuses the check, "allow" lets it through
                # (the rest, if any, is still judged) and the Decision lists what was not judged.
                decisions[i] = pol.decide_error(UnjudgeableInputError(
                    f"the input holds content the guard cannot judge ({'; '.join(req.unjudgeable[:5])}); "
                    f"Policy(unjudgeable={pol.unjudgeable!r})"
                ), _check_name(req.kind))
            elif req.images and not self.judge.supports_images:
                decisions[i] = pol.decide_error(
                    UnjudgeableInputError(f"{self.judge.name} cannot judge images"), _check_name(req.kind)
                )
            else:
                todo.append(i)
        if todo:
            batch = [requests[i] for i in todo]
            left = time_left(self.settings.timeout)
            results: Sequence[JudgeResult]
            try:
                # the judge's own steps watch the same deadline; the small grace lets them report first
                results = await asyncio.wait_for(self.ajudge_batch(batch), left + DEADLINE_MARGIN_S / 2)
            except asyncio.TimeoutError:
                results = [BackendTimeoutError(
                    f"no verdict within the check's deadline of {self.settings.timeout:g}s; abandoned "
                    "(setting PROGUARD_TIMEOUT)"
                )] * len(batch)
            except ProGuardError as exc:  # the judge failed as a whole: every check gets an error decision
                results = [exc] * len(batch)
            for i, res in zip(todo, results, strict=True):
                req = requests[i]
                if isinstance(res, BaseException):
                    decisions[i] = pol.decide_error(res, _check_name(req.kind))
                else:
                    decisions[i] = pol.decide(res, _check_name(req.kind), has_response=req.has_response)
        out: list[Decision] = []
        for req, d in zip(requests, decisions, strict=True):
            assert d is not None
            out.append(d.model_copy(update={"not_judged": list(req.not_judged)}) if req.not_judged else d)
        return out

    async def acheck(
        self,
        content: Any,
        response: Any = None,
        *,
        images: Iterable[Any] | None = None,
        policy: Policy | None = None,
        kind: CheckKind = "conversation",
    ) -> Decision:
        """Check one input: text, (request, response), messages, dict or GuardRequest.

        Returns within ``timeout`` seconds (plus ``DEADLINE_MARGIN_S``) whatever the input: work
        still running then is abandoned and the check ends as an error decision.
        """
        pol = policy or self.policy
        (decision,) = await self._traced(1, self._acheck(content, response, images, pol, kind))
        return decision

    async def _acheck(self, content: Any, response: Any, images: Iterable[Any] | None, pol: Policy,
                      kind: CheckKind) -> list[Decision]:
        with deadline_at(time.monotonic() + self.settings.timeout):
            try:
                req = await self.arequest(content, response, images, kind=kind)
            except ProGuardError as exc:
                return [pol.decide_error(exc, _check_name(kind))]
            return await self._adecide([req], pol)

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        # In-process judges run on the calling thread's own loop when none runs there (no thread
        # hop); judges with loop-bound state (connection pools) share the background loop.
        return run_sync(coro, inline=not self.judge.loop_bound)

    def check(self, content: Any, response: Any = None, *, images: Iterable[Any] | None = None,
              policy: Policy | None = None, kind: CheckKind = "conversation") -> Decision:
        """Sync ``acheck``; safe to call from inside a running event loop."""
        return self._sync(self.acheck(content, response, images=images, policy=policy, kind=kind))

    def check_batch(self, items: Sequence[Any], *, policy: Policy | None = None,
                    kind: CheckKind = "conversation") -> list[Decision]:
        return self._sync(self.acheck_batch(items, policy=policy, kind=kind))

    # ------------------------------------------------------------------ agents
    def tool_call_request(self, name: str, arguments: Any, context: str | None = None) -> GuardRequest:
        """A tool call is the agent's action: judged as the Agent turn, with the user's request as context."""
        args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False, default=str, sort_keys=True)
        return build_request(
            context or "",
            f"[tool call] {name}({args})",
            settings=self.settings,
            kind="tool_call",
            metadata={"tool": name},
        )

    def tool_result_request(self, name: str, output: Any, context: str | None = None,
                            *, images: Iterable[Any] | None = None) -> GuardRequest:
        """A tool result is untrusted input to the model (it may carry harmful content or injected
        instructions): judged as the User turn, with any images it returned.

        ``output`` may be text, any JSON-able value (judged as its JSON), or content blocks
        (``[{"type": "text" | "json" | "image" | "file", ...}]``, a LangChain ``ToolMessage``):
        text and JSON blocks are judged, images go to the image path, and files or audio, which
        the model cannot read, are refused by ``Policy(unjudgeable="block")`` (listed in
        ``Decision.not_judged`` either way). Nothing reaches the model unjudged."""
        text, block_images, not_judged = content_parts(output, label=f"output of tool {name}")
        prefix = f"[context: {context}]\n" if context else ""
        return build_request(
            f"{prefix}[output of tool {name}]\n{text}", None, [*block_images, *(images or [])],
            settings=self.settings, kind="tool_result", metadata={"tool": name}, allow_paths=False,
            not_judged=not_judged,
        )

    async def acheck_tool_call(self, name: str, arguments: Any, context: str | None = None,
                               *, policy: Policy | None = None) -> Decision:
        pol = policy or self.policy
        (decision,) = await self._traced(1, self._acheck_tool_call(name, arguments, context, pol))
        return decision

    async def _acheck_tool_call(self, name: str, arguments: Any, context: str | None,
                                pol: Policy) -> list[Decision]:
        with deadline_at(time.monotonic() + self.settings.timeout):
            try:  # serializing the arguments is the caller's data: in a worker thread, within the deadline
                req = await asyncio.wait_for(run_cpu(partial(self.tool_call_request, name, arguments, context)),
                                             time_left(self.settings.timeout))
            except asyncio.TimeoutError:
                return [pol.decide_error(InputTimeoutError(self._input_timeout_message()), "tool_call")]
            except ProGuardError as exc:
                return [pol.decide_error(exc, "tool_call")]
            except (RecursionError, ValueError, TypeError) as exc:
                return [pol.decide_error(InputError(f"cannot serialize the tool call: {type(exc).__name__}"),
                                         "tool_call")]
            return await self._adecide([req], pol)

    def check_tool_call(self, name: str, arguments: Any, context: str | None = None,
                        *, policy: Policy | None = None) -> Decision:
        return self._sync(self.acheck_tool_call(name, arguments, context, policy=policy))

    async def acheck_tool_result(self, name: str, output: Any, context: str | None = None,
                                 *, images: Iterable[Any] | None = None, policy: Policy | None = None) -> Decision:
        pol = policy or self.policy
        (decision,) = await self._traced(1, self._acheck_tool_result(name, output, context, images, pol))
        return decision

    async def _acheck_tool_result(self, name: str, output: Any, context: str | None,
                                  images: Iterable[Any] | None, pol: Policy) -> list[Decision]:
        with deadline_at(time.monotonic() + self.settings.timeout):
            try:  # image blocks are decoded here: in a worker thread, within the deadline
                req = await asyncio.wait_for(
                    run_cpu(partial(self.tool_result_request, name, output, context, images=images)),
                    time_left(self.settings.timeout),
                )
            except asyncio.TimeoutError:
                return [pol.decide_error(InputTimeoutError(self._input_timeout_message()), "tool_result")]
            except ProGuardError as exc:
                return [pol.decide_error(exc, "tool_result")]
            return await self._adecide([req], pol)

    def check_tool_result(self, name: str, output: Any, context: str | None = None,
                          *, images: Iterable[Any] | None = None, policy: Policy | None = None) -> Decision:
        return self._sync(self.acheck_tool_result(name, output, context, images=images, policy=policy))

    # ------------------------------------------------------------------ lifecycle
    def stats(self) -> Mapping[str, Any]:
        return {"cache": self.cache.stats(), "judge": self.judge.identity()}

    async def aclose(self) -> None:
        await self.judge.aclose()

    def close(self) -> None:
        run_sync(self.aclose())

    async def __aenter__(self) -> ProGuard:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> ProGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Text up to this size is normalized inline (linear and cheap); anything larger, any image and
#: any structured input goes to a worker thread under the deadline.
_INLINE_CHARS = 32_768


def _small_text(obj: Any) -> bool:
    if isinstance(obj, str):
        return len(obj) <= _INLINE_CHARS
    if isinstance(obj, tuple) and len(obj) == 2 and all(isinstance(x, (str, type(None))) for x in obj):
        return sum(len(x or "") for x in obj) <= _INLINE_CHARS
    return False


def _check_name(kind: CheckKind):  # type: ignore[no-untyped-def]
    return kind


__all__ = ["LiteGuardWarning", "ProGuard", "VerdictCache", "resolve_judge"]
