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
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._portal import run_sync
from .backends.base import Backend
from .errors import ConfigurationError, ProGuardError
from .inputs import CheckKind, GuardRequest, build_request, normalize
from .judges.base import Judge, JudgeResult
from .judges.generative import GenerativeJudge
from .policy import Policy
from .settings import ProGuardSettings
from .taxonomy import Taxonomy
from .telemetry import record_checks, trace_checks
from .verdict import Decision, Verdict

logger = logging.getLogger("proguard_rails")

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


def resolve_judge(
    settings: ProGuardSettings,
    *,
    backend: Backend | None = None,
) -> Judge:
    """Pick the judge from explicit settings, then the environment, then the lite fallback."""
    if backend is not None:
        return GenerativeJudge(backend)
    kind = settings.backend
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
        h = hashlib.sha256()
        h.update(self.judge.identity().encode())
        h.update(self.taxonomy.fingerprint.encode())
        h.update(request.cache_key().encode())
        return h.hexdigest()

    def request(self, obj: Any, response: Any = None, images: Iterable[Any] | None = None,
                *, kind: CheckKind = "conversation") -> GuardRequest:
        """Normalize input with this guard's limits (raises ``InputError``)."""
        return normalize(obj, response, images, settings=self.settings, kind=kind)

    async def arequest(self, obj: Any, response: Any = None, images: Iterable[Any] | None = None,
                       *, kind: CheckKind = "conversation") -> GuardRequest:
        """``request`` for async code: with image-URL fetching on, normalization (which may fetch)
        runs in a worker thread so it never blocks the event loop."""
        if self.settings.allow_image_urls:
            return await asyncio.to_thread(self.request, obj, response, images, kind=kind)
        return self.request(obj, response, images, kind=kind)

    def _early_error(self, policy: Policy, exc: ProGuardError, check: Any) -> Decision:
        """An input that could not become a request: decided (and traced) like any other check."""
        start = time.perf_counter()
        decision = policy.decide_error(exc, check)
        record_checks(self.judge.identity(), [decision], [None], start)
        return decision

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
        """Decisions for many inputs; requests go to the judge together, concurrently."""
        modalities: list[str | None] = [None] * len(items)
        with trace_checks(self.judge.identity(), len(items)) as span:
            decisions = await self._acheck_batch(items, policy=policy, kind=kind, modalities=modalities)
            span.finish(decisions, modalities)
        return decisions

    async def _acheck_batch(self, items: Sequence[Any], *, policy: Policy | None, kind: CheckKind,
                            modalities: list[str | None]) -> list[Decision]:
        pol = policy or self.policy
        decisions: list[Decision | None] = [None] * len(items)
        requests: list[GuardRequest] = []
        positions: list[int] = []
        for i, item in enumerate(items):
            try:
                req = item if isinstance(item, GuardRequest) else await self.arequest(item, kind=kind)
            except ProGuardError as exc:
                decisions[i] = pol.decide_error(exc, _check_name(kind))
                continue
            if req.images and not self.judge.supports_images:
                from .errors import UnjudgeableInputError

                decisions[i] = pol.decide_error(
                    UnjudgeableInputError(f"{self.judge.name} cannot judge images"), _check_name(req.kind)
                )
                continue
            modalities[i] = str(req.modality)
            requests.append(req)
            positions.append(i)
        if requests:
            try:
                results: Sequence[JudgeResult] = await self.ajudge_batch(requests)
            except ProGuardError as exc:  # the judge failed as a whole: every check gets an error decision
                results = [exc] * len(requests)
            for pos, req, res in zip(positions, requests, results, strict=True):
                if isinstance(res, BaseException):
                    decisions[pos] = pol.decide_error(res, _check_name(req.kind))
                else:
                    decisions[pos] = pol.decide(res, _check_name(req.kind), has_response=req.has_response)
        missing = [i for i, d in enumerate(decisions) if d is None]
        if missing:  # never hand back a shorter list than was asked for
            raise ProGuardError(f"internal error: no decision for items {missing}")
        return [d for d in decisions if d is not None]

    async def acheck(
        self,
        content: Any,
        response: Any = None,
        *,
        images: Iterable[Any] | None = None,
        policy: Policy | None = None,
        kind: CheckKind = "conversation",
    ) -> Decision:
        """Check one input: text, (request, response), messages, dict or GuardRequest."""
        pol = policy or self.policy
        try:
            req = await self.arequest(content, response, images, kind=kind)
        except ProGuardError as exc:
            return self._early_error(pol, exc, _check_name(kind))
        (decision,) = await self.acheck_batch([req], policy=pol, kind=kind)
        return decision

    def check(self, content: Any, response: Any = None, *, images: Iterable[Any] | None = None,
              policy: Policy | None = None, kind: CheckKind = "conversation") -> Decision:
        """Sync ``acheck``; safe to call from inside a running event loop."""
        return run_sync(self.acheck(content, response, images=images, policy=policy, kind=kind))

    def check_batch(self, items: Sequence[Any], *, policy: Policy | None = None,
                    kind: CheckKind = "conversation") -> list[Decision]:
        return run_sync(self.acheck_batch(items, policy=policy, kind=kind))

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
        instructions): judged as the User turn, with any images it returned."""
        text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, default=str)
        prefix = f"[context: {context}]\n" if context else ""
        return build_request(
            f"{prefix}[output of tool {name}]\n{text}", None, images, settings=self.settings, kind="tool_result",
            metadata={"tool": name}, allow_paths=False,
        )

    async def acheck_tool_call(self, name: str, arguments: Any, context: str | None = None,
                               *, policy: Policy | None = None) -> Decision:
        pol = policy or self.policy
        try:
            req = self.tool_call_request(name, arguments, context)
        except ProGuardError as exc:
            return self._early_error(pol, exc, "tool_call")
        return (await self.acheck_batch([req], policy=pol))[0]

    def check_tool_call(self, name: str, arguments: Any, context: str | None = None,
                        *, policy: Policy | None = None) -> Decision:
        return run_sync(self.acheck_tool_call(name, arguments, context, policy=policy))

    async def acheck_tool_result(self, name: str, output: Any, context: str | None = None,
                                 *, images: Iterable[Any] | None = None, policy: Policy | None = None) -> Decision:
        pol = policy or self.policy
        try:
            req = self.tool_result_request(name, output, context, images=images)
        except ProGuardError as exc:
            return self._early_error(pol, exc, "tool_result")
        return (await self.acheck_batch([req], policy=pol))[0]

    def check_tool_result(self, name: str, output: Any, context: str | None = None,
                          *, images: Iterable[Any] | None = None, policy: Policy | None = None) -> Decision:
        return run_sync(self.acheck_tool_result(name, output, context, images=images, policy=policy))

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


def _check_name(kind: CheckKind):  # type: ignore[no-untyped-def]
    return kind


__all__ = ["LiteGuardWarning", "ProGuard", "VerdictCache", "resolve_judge"]
