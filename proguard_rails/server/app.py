"""The guard server: a Starlette app over one ``ProGuard`` engine.

Endpoints: ``POST /v1/moderations`` (OpenAI-compatible), ``POST /v1/check`` (native),
``GET /healthz`` (the process is up), ``GET /readyz`` (the judge is loaded and, for an
endpoint, answered), ``GET /metrics`` (Prometheus). See docs/server.md.

Every error a client can cause is a 4xx with an OpenAI-style body ``{"error": {"message",
"type", "code", "param"}}``; a bug is a 500 with the same shape and no traceback (the
traceback goes to the server log). A guard failure (endpoint down, timeout, unreadable
answer, the request's deadline) is not an HTTP error: the policy's fail mode turns it into a
block or an allow, and the result says ``status: "error"`` with the error's type and message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from ..errors import BackendTimeoutError, InputError, MissingDependencyError, ProGuardError
from ..guard import ProGuard
from ..inputs import GuardRequest, build_request, request_from_messages
from ..verdict import Decision
from .moderation import category_map, moderation_result, new_id, proguard_field
from .schemas import CheckRequest, ImagePart, ModerationRequest
from .settings import ServerSettings

_Body = TypeVar("_Body", ModerationRequest, CheckRequest)

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - the serve extra is missing
    raise MissingDependencyError(exc.name or "starlette", "serve", "proguard-rails serve") from exc

logger = logging.getLogger("proguard_rails.server")

GuardSource = ProGuard | Callable[[], ProGuard]


# ============================================================================ errors
class ApiError(Exception):
    """An error answered to the client as ``{"error": {...}}``."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _validation_message(exc: ValidationError, what: str) -> tuple[str, str | None]:
    lines = []
    param = None
    for err in exc.errors()[:6]:
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("list[", "function-")))
        param = param or (loc or None)
        lines.append(f"{loc or what}: {err['msg']}")
    return f"invalid {what} body: " + "; ".join(lines), param


# ============================================================================ metrics
class Metrics:
    """Prometheus metrics of one app (its own registry, so several apps can share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.checks = Counter("proguard_checks", "Checks decided, by endpoint, status and category",
                              ["endpoint", "status", "category"], registry=self.registry)
        self.latency = Histogram("proguard_request_latency_seconds", "Time to answer a judging request",
                                 ["endpoint"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.errors = Counter("proguard_errors", "Errors by type: guard errors (timeout, unavailable, parse, ...) "
                              "and request errors (bad_request, unauthorized, too_large, busy, not_ready, internal)",
                              ["type"], registry=self.registry)
        self.queue_depth = Gauge("proguard_queue_depth", "Requests waiting for a judging slot",
                                 registry=self.registry)
        self.in_flight = Gauge("proguard_in_flight", "Requests being judged", registry=self.registry)
        self.ready = Gauge("proguard_ready", "1 once the judge is loaded and answered", registry=self.registry)

    def record(self, endpoint: str, decisions: Sequence[Decision]) -> None:
        for d in decisions:
            v = d.verdict
            if v is not None and v.category_id:
                category = v.category_id
            elif v is not None and v.is_out_of_policy:
                category = "out_of_policy"
            else:
                category = "none"
            self.checks.labels(endpoint, d.status, category).inc()
            if d.status == "error":
                self.errors.labels(d.error_type or "error").inc()


# ============================================================================ admission
class Busy(Exception):
    pass


class Admission:
    """At most ``limit`` requests judged at once and ``max_queue`` waiting; beyond that, 429."""

    def __init__(self, limit: int, max_queue: int, metrics: Metrics) -> None:
        self.limit, self.max_queue, self.metrics = limit, max_queue, metrics
        self._sem: asyncio.Semaphore | None = None
        self.waiting = 0
        self.in_flight = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.limit)
        if self._sem.locked() and self.waiting >= self.max_queue:
            raise Busy
        self.waiting += 1
        self.metrics.queue_depth.inc()
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
            self.metrics.queue_depth.dec()
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            yield
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()
            self._sem.release()


# ============================================================================ state
def public_model_name(guard: ProGuard) -> str:
    """What the API reports as ``model``: never the judge's internal address."""
    judge = guard.judge
    backend = getattr(judge, "backend", None)
    if judge.name == "lite" or judge.name.startswith("lite"):
        return "proguard-lite"
    if judge.name.startswith("cascade"):
        gen = getattr(judge, "generative", None)
        inner = getattr(getattr(gen, "backend", None), "model", None)
        return f"proguard-cascade:{inner}" if inner else "proguard-cascade"
    model = getattr(backend, "model", None) or getattr(backend, "model_path", None)
    if model:
        return str(model).rstrip("/").rsplit("/", 1)[-1]
    return "proguard"


async def warm_up(judge: Any) -> None:
    """Load what the judge loads lazily, and for an endpoint, make sure it answers."""
    for part in (getattr(judge, "lite", None), getattr(judge, "generative", None)):
        if part is not None:
            await warm_up(part)
    if callable(getattr(judge, "warmup", None)):
        await asyncio.to_thread(judge.warmup)
    backend = getattr(judge, "backend", None)
    if backend is not None and callable(getattr(backend, "resolve_model", None)):
        await backend.resolve_model()


class ServerState:
    def __init__(self, source: GuardSource, settings: ServerSettings,
                 on_load_failure: Callable[[BaseException], None] | None) -> None:
        self.source = source
        self.settings = settings
        self.on_load_failure = on_load_failure
        self.keys = settings.keys()
        self.metrics = Metrics()
        self.admission = Admission(settings.max_concurrency, settings.max_queue, self.metrics)
        self.guard: ProGuard | None = None
        self.ready = False
        self.detail = "loading the judge"
        self.failed = False
        self.model_name = settings.model_name or "proguard"
        self.mapping: dict[str, tuple[str, ...]] = {}

    async def load(self) -> None:
        try:
            guard = self.source if isinstance(self.source, ProGuard) else await asyncio.to_thread(self.source)
        except BaseException as exc:  # configuration or load failure: not ready, ever
            self.failed = True
            self.detail = f"the guard could not be built: {type(exc).__name__}: {exc}"
            logger.error("proguard server: %s", self.detail, exc_info=not isinstance(exc, ProGuardError))
            if self.on_load_failure is not None:
                self.on_load_failure(exc)
            return
        self.guard = guard
        self.mapping = category_map(guard.taxonomy)
        delay = 0.5
        while True:
            try:
                await warm_up(guard.judge)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the endpoint is not up yet: keep trying, stay not-ready
                self.detail = f"waiting for the judge: {type(exc).__name__}: {exc}"
                logger.warning("proguard server: %s (retrying in %.1fs)", self.detail, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.model_name = self.settings.model_name or public_model_name(guard)  # after discovery
        self.ready = True
        self.detail = "ready"
        self.metrics.ready.set(1)
        logger.info("proguard server ready: judge %s, policy fail_mode=%s", self.model_name, guard.policy.fail_mode)


# ============================================================================ helpers
def _authorize(state: ServerState, request: Request) -> None:
    if not state.keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    ok = False
    if scheme.lower() == "bearer" and token:
        for key in state.keys:  # compare with every key, in constant time per key
            ok |= hmac.compare_digest(token.encode(), key.encode())
    if not ok:
        state.metrics.errors.labels("unauthorized").inc()
        raise ApiError(401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                       type="authentication_error", code="invalid_api_key",
                       headers={"WWW-Authenticate": "Bearer"})


def _ready_guard(state: ServerState) -> ProGuard:
    if not state.ready or state.guard is None:
        state.metrics.errors.labels("not_ready").inc()
        raise ApiError(503, f"the guard is not ready: {state.detail}", type="server_error", code="not_ready",
                       headers={"Retry-After": "2"})
    return state.guard


async def _read_json(state: ServerState, request: Request) -> Any:
    limit = state.settings.max_body_bytes
    length = request.headers.get("content-length")
    too_large = ApiError(413, f"request body larger than {limit} bytes (server limit max_body_bytes)",
                         code="body_too_large")
    if length is not None and length.isdigit() and int(length) > limit:
        state.metrics.errors.labels("too_large").inc()
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            state.metrics.errors.labels("too_large").inc()
            raise too_large
    try:
        return json.loads(body)
    except ValueError as exc:
        state.metrics.errors.labels("bad_request").inc()
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None


async def _read_body(state: ServerState, request: Request, model: type[_Body], what: str) -> tuple[ProGuard, _Body]:
    """The common front of every judging endpoint: auth, readiness, a capped JSON body, its schema."""
    _authorize(state, request)
    g = _ready_guard(state)
    data = await _read_json(state, request)
    try:
        return g, model.model_validate(data)
    except ValidationError as exc:
        state.metrics.errors.labels("bad_request").inc()
        msg, param = _validation_message(exc, what)
        raise ApiError(400, msg, param=param) from None


def _input_error(state: ServerState, exc: InputError, param: str) -> ApiError:
    state.metrics.errors.labels("bad_request").inc()
    return ApiError(400, f"{param}: {exc}", code=getattr(exc, "kind", "input"), param=param)


async def _build(guard: ProGuard, fn: Callable[[], GuardRequest], heavy: bool) -> GuardRequest:
    """Normalize off the event loop when it decodes images or may fetch URLs."""
    if heavy or guard.settings.allow_image_urls:
        return await asyncio.to_thread(fn)
    return fn()


async def _judge(state: ServerState, guard: ProGuard, requests: list[GuardRequest], endpoint: str) -> list[Decision]:
    """Admission, the per-request deadline, and the guard; a deadline overrun is a guard error."""
    deadline = state.settings.deadline

    async def run() -> list[Decision]:
        async with state.admission.slot():
            return await guard.acheck_batch(requests)

    try:
        decisions = await asyncio.wait_for(run(), timeout=deadline)
    except Busy:
        state.metrics.errors.labels("busy").inc()
        raise ApiError(429, f"server busy: {state.admission.limit} requests being judged and "
                            f"{state.admission.waiting} waiting; retry later", type="rate_limit_error",
                       code="busy", headers={"Retry-After": "1"}) from None
    except asyncio.TimeoutError:
        err = BackendTimeoutError(f"the server's per-request deadline of {deadline:g}s passed before a verdict")
        decisions = [guard.policy.decide_error(err, r.kind) for r in requests]
    state.metrics.record(endpoint, decisions)
    return decisions


# ============================================================================ app
def create_app(
    guard: GuardSource,
    settings: ServerSettings | None = None,
    *,
    on_load_failure: Callable[[BaseException], None] | None = None,
) -> Starlette:
    """The ASGI app. ``guard``: a ``ProGuard``, or a no-argument factory run in a thread at
    startup (so ``/healthz`` answers while weights load). ``on_load_failure`` is called if the
    factory raises (the CLI stops the server with it)."""
    s = settings or ServerSettings()
    state = ServerState(guard, s, on_load_failure)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if state.ready:
            return JSONResponse({"status": "ready", "model": state.model_name})
        status = "failed" if state.failed else "loading"
        return JSONResponse({"status": status, "detail": state.detail}, status_code=503)

    async def metrics(request: Request) -> Response:
        if not s.metrics_public:
            _authorize(state, request)
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def moderations(request: Request) -> Response:
        start = time.perf_counter()
        g, body = await _read_body(state, request, ModerationRequest, "moderation")
        items: list[tuple[str, list[str]]]  # (text, image urls) per result
        raw = body.input
        if isinstance(raw, str):
            items = [(raw, [])]
        elif raw and all(isinstance(x, str) for x in raw):
            items = [(x, []) for x in raw]  # type: ignore[misc]
        else:
            texts = [p.text for p in raw if not isinstance(p, (str, ImagePart))]  # type: ignore[union-attr]
            urls = [p.image_url.url for p in raw if isinstance(p, ImagePart)]
            items = [("\n".join(texts), urls)]
        if not items:
            state.metrics.errors.labels("bad_request").inc()
            raise ApiError(400, "input is an empty list", param="input")
        if len(items) > s.max_inputs:
            state.metrics.errors.labels("bad_request").inc()
            raise ApiError(400, f"{len(items)} inputs in one call; the server takes at most {s.max_inputs}",
                           param="input")
        requests: list[GuardRequest] = []
        for i, (text, urls) in enumerate(items):
            param = "input" if len(items) == 1 else f"input[{i}]"
            try:
                requests.append(await _build(g, functools.partial(
                    build_request, text, None, urls or None, settings=g.settings, allow_paths=False, kind="input"),
                    bool(urls)))
            except InputError as exc:
                raise _input_error(state, exc, param) from None
        decisions = await _judge(state, g, requests, "moderations")
        results = []
        for (text, urls), d in zip(items, decisions, strict=True):
            types = (["text"] if text.strip() else []) + (["image"] if urls else [])
            results.append(moderation_result(d, types, state.mapping, state.model_name, labels=g.policy.labels,
                                             include_raw=body.include_raw and s.include_raw))
        state.metrics.latency.labels("moderations").observe(time.perf_counter() - start)
        return JSONResponse({"id": new_id(), "model": state.model_name, "results": results})

    async def check(request: Request) -> Response:
        start = time.perf_counter()
        g, body = await _read_body(state, request, CheckRequest, "check")
        images = list(body.images)
        try:
            if body.check == "tool_call":
                req = g.tool_call_request(body.tool_name or "", body.tool_arguments, body.context)
            elif body.check == "tool_result":
                req = await _build(g, lambda: g.tool_result_request(body.tool_name or "", body.tool_output,
                                                                  body.context, images=images or None), bool(images))
            elif body.messages is not None:
                msgs = body.messages
                req = await _build(g, lambda: request_from_messages(msgs, settings=g.settings, kind=body.check),
                                   True)
                if images:
                    raise InputError("images go inside the messages (image_url parts) when messages are given")
            else:
                req = await _build(g, lambda: build_request(body.request or "", body.response, images or None,
                                                            settings=g.settings, allow_paths=False,
                                                            kind=body.check), bool(images))
        except InputError as exc:
            raise _input_error(state, exc, "messages" if body.messages is not None else "request") from None
        (decision,) = await _judge(state, g, [req], "check")
        state.metrics.latency.labels("check").observe(time.perf_counter() - start)
        payload = proguard_field(decision, state.model_name, include_raw=body.include_raw and s.include_raw)
        return JSONResponse({"id": f"chk-{uuid.uuid4().hex}", "model": state.model_name, **payload})

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return ApiError(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}", code=code,
                        headers=dict(exc.headers or {})).response()

    async def internal_error(request: Request, exc: Exception) -> Response:
        logger.exception("proguard server: unhandled error on %s %s", request.method, request.url.path)
        state.metrics.errors.labels("internal").inc()
        return ApiError(500, "internal server error (details are in the server log)", type="server_error",
                        code="internal_error").response()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(state.load())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            if state.guard is not None and not isinstance(state.source, ProGuard):
                await state.guard.aclose()  # a guard the app built is the app's to close

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/v1/moderations", moderations, methods=["POST"]),
            Route("/v1/check", check, methods=["POST"]),
        ],
        exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan,
    )
    app.state.proguard = state
    return app


__all__ = ["ApiError", "Metrics", "ServerState", "create_app", "public_model_name", "warm_up"]
