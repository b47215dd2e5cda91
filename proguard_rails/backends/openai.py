"""OpenAI-compatible chat completions backend: vLLM's server, ``transformers serve``, SGLang, ...

Async HTTP with a connection pool per event loop, bounded concurrency, a deadline per
check (retries included), retries with exponential backoff on connection errors, 5xx and
429 only, and a circuit breaker that fails fast while the endpoint is down instead of
hammering it. Each response is awaited by the coroutine that sent its request, so a
verdict can never be attributed to another request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..errors import BackendError, BackendTimeoutError, BackendUnavailableError, ConfigurationError
from ..protocol import RenderedPrompt
from ..settings import ProGuardSettings
from .base import STOP_SEQUENCES, Backend, Generation

logger = logging.getLogger("proguard_rails.backends.openai")

_TRANSIENT = (
    httpx.ConnectError,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
_RETRY_STATUS = {429, 500, 502, 503, 504}  # 429: vLLM/proxies shed load; a later try can succeed


def normalize_base_url(url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1``; a URL with a path is kept as given."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"base_url {url!r} must be an http(s) URL such as http://127.0.0.1:8000/v1")
    path = parts.path.rstrip("/")
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures and fails fast for ``cooldown`` seconds.

    Then it is half-open: ONE probe request goes through while the others wait for its result
    (within their own deadline); a success closes the breaker and lets them go, a failure
    re-opens it and they fail fast. A probe that never reports back (its
    check was cancelled) expires after ``cooldown`` seconds so the breaker cannot stick.
    """

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._failures = 0
        self._open_until = 0.0
        self._probe_since: float | None = None
        self._lock = threading.Lock()
        self.opened_count = 0
        self.rejected_count = 0
        self.probes = 0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def _reject(self, why: str) -> None:
        self.rejected_count += 1
        raise BackendUnavailableError(
            f"endpoint circuit breaker is open after {self._failures} consecutive failures; {why}"
        )

    def admit(self) -> bool:
        """True: send the request. False: a probe is out, wait and ask again. Raises while open."""
        with self._lock:
            now = time.monotonic()
            if now < self._open_until:
                self._reject(f"failing fast for another {self._open_until - now:.1f}s")
            if self._failures >= self.threshold:  # half-open
                if self._probe_since is not None and now - self._probe_since < max(self.cooldown, 0.1):
                    return False
                self._probe_since = now
                self.probes += 1
            return True

    def check(self) -> None:
        """Like ``admit`` but never waits: a request that would wait for the probe is rejected."""
        if not self.admit():
            with self._lock:
                self._reject("a probe request is testing the endpoint")

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._open_until = 0.0
            self._probe_since = None

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._probe_since = None
            if self._failures >= self.threshold:
                if not self.is_open:
                    self.opened_count += 1
                self._open_until = time.monotonic() + self.cooldown


_CONNECTIONS_PER_POOL = 16


class _ClientShards:
    """Several small httpx connection pools in place of one large one.

    httpcore's pool scans every connection (polling idle sockets) on each request event, so
    its cost per request grows with the pool size: measured on loopback, one 64-connection
    pool spent ~4x the CPU per request of a 16-connection one, and 64 checks in flight ran
    slower than 16. Requests go to the least-busy shard; the caller's semaphore bounds the
    total, so no shard ever queues.
    """

    def __init__(self, make: Any, total: int) -> None:
        n = max(1, -(-total // _CONNECTIONS_PER_POOL))
        per = -(-total // n)
        self.clients: list[httpx.AsyncClient] = [make(per) for _ in range(n)]
        self.busy = [0] * n

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        i = min(range(len(self.busy)), key=self.busy.__getitem__)
        self.busy[i] += 1
        try:
            return await self.clients[i].request(method, url, **kwargs)
        finally:
            self.busy[i] -= 1

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self._call("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self._call("POST", url, **kwargs)

    async def aclose(self) -> None:
        for c in self.clients:
            await c.aclose()


class OpenAIBackend(Backend):
    """Talks to ``{base_url}/chat/completions``; discovers the model from ``/models`` if unset."""

    name = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        *,
        api_key: str | None = None,
        settings: ProGuardSettings | None = None,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        max_retries: int | None = None,
        max_tokens: int | None = None,
        extra_body: dict[str, Any] | None = None,
        send_stop: bool | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        s = settings or ProGuardSettings()
        url = base_url or s.base_url
        if not url:
            raise ConfigurationError("OpenAIBackend needs base_url (or PROGUARD_BASE_URL)")
        self.base_url = normalize_base_url(url)
        self.model = model or s.model
        self.api_key = api_key or s.api_key_value()
        self.timeout = float(timeout if timeout is not None else s.timeout)
        self.connect_timeout = min(s.connect_timeout, self.timeout)
        self.max_concurrency = int(max_concurrency or s.max_concurrency)
        self.max_retries = int(max_retries if max_retries is not None else s.max_retries)
        self.retry_backoff = s.retry_backoff
        self.max_tokens = int(max_tokens or s.max_tokens)
        self.extra_body = dict(extra_body or {})
        # The stop sequence is always applied client-side; sending it is optional because some
        # servers (``transformers serve`` with VLMs, 5.24) fail on ``stop``: send_stop=False there.
        self.stop = STOP_SEQUENCES
        self.send_stop = s.send_stop if send_stop is None else bool(send_stop)
        self.breaker = CircuitBreaker(s.circuit_breaker_failures, s.circuit_breaker_cooldown)
        self._transport = transport
        # one client and semaphore per event loop: httpx pools and asyncio primitives are loop-bound
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[_ClientShards, asyncio.Semaphore]] = (
            weakref.WeakKeyDictionary()
        )
        # one /models discovery at a time per loop: a cold burst of checks must not storm the endpoint
        self._discovery_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self.requests_sent = 0
        self.retries = 0

    def identity(self) -> str:
        return f"openai:{self.base_url}:{self.model or '?'}"

    def _state(self) -> tuple[_ClientShards, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        st = self._per_loop.get(loop)
        if st is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

            def make(connections: int) -> httpx.AsyncClient:
                return httpx.AsyncClient(
                    base_url=self.base_url,
                    headers=headers,
                    timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                    limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
                    transport=self._transport,
                )

            st = (_ClientShards(make, self.max_concurrency), asyncio.Semaphore(self.max_concurrency))
            self._per_loop[loop] = st
        return st

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        st = self._per_loop.pop(loop, None)
        if st is not None:
            await st[0].aclose()

    # ------------------------------------------------------------------ discovery
    async def resolve_model(self) -> str:
        if self.model:
            return self.model
        lock = self._discovery_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            if self.model:  # discovered while this check waited for the lock
                return self.model
            client, _ = self._state()
            try:
                resp = await asyncio.wait_for(client.get("/models"), timeout=self.timeout)
                resp.raise_for_status()
                data = resp.json().get("data") or []
            except (httpx.HTTPError, ValueError, asyncio.TimeoutError) as exc:
                raise BackendUnavailableError(
                    f"could not discover the model at {self.base_url}/models ({type(exc).__name__}: {exc}); "
                    "set model= or PROGUARD_MODEL"
                ) from exc
            if not data:
                raise BackendError(f"{self.base_url}/models lists no model; set model= or PROGUARD_MODEL")
            self.model = str(data[0]["id"])
            return self.model

    # ------------------------------------------------------------------ generation
    async def agenerate(self, prompt: RenderedPrompt) -> Generation:
        start = time.monotonic()
        at_endpoint = [False]  # was a request in flight when the deadline hit?
        try:
            return await asyncio.wait_for(
                self._generate_with_retries(prompt, start, at_endpoint), timeout=self.timeout
            )
        except asyncio.TimeoutError as exc:
            # Time spent queued behind this client's own concurrency limit (a burst of checks)
            # says nothing about the endpoint: only a request that was out counts against it.
            if at_endpoint[0]:
                self.breaker.failure()
            raise BackendTimeoutError(
                f"no answer from {self.base_url} within {self.timeout:.1f}s (setting PROGUARD_TIMEOUT)"
            ) from exc

    async def _generate_with_retries(
        self, prompt: RenderedPrompt, start: float, at_endpoint: list[bool] | None = None
    ) -> Generation:
        at_endpoint = at_endpoint if at_endpoint is not None else [False]
        client, sem = self._state()
        model = await self.resolve_model()
        body: dict[str, Any] = {
            "model": model,
            "messages": prompt.to_messages(),
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
            "stream": False,
            **self.extra_body,
        }
        if self.send_stop:
            body["stop"] = list(self.stop)
        attempt = 0
        async with sem:
            while True:
                while not self.breaker.admit():  # half-open: wait for the probe's result
                    await asyncio.sleep(0.02)
                try:
                    self.requests_sent += 1
                    at_endpoint[0] = True
                    resp = await client.post("/chat/completions", json=body)
                    at_endpoint[0] = False
                except _TRANSIENT as exc:
                    at_endpoint[0] = False
                    self.breaker.failure()
                    err: BackendError = BackendUnavailableError(
                        f"cannot reach {self.base_url}: {type(exc).__name__}: {exc}"
                    )
                    if attempt >= self.max_retries:
                        raise err from exc
                except httpx.TimeoutException as exc:
                    at_endpoint[0] = False
                    self.breaker.failure()
                    raise BackendTimeoutError(f"{self.base_url} timed out: {type(exc).__name__}") from exc
                else:
                    if resp.status_code in _RETRY_STATUS:
                        self.breaker.failure()
                        err = BackendError(
                            f"{self.base_url} answered HTTP {resp.status_code}: {resp.text[:300]}",
                            status_code=resp.status_code,
                            body=resp.text[:2000],
                        )
                        if attempt >= self.max_retries:
                            raise err
                    elif resp.status_code >= 400:
                        # 4xx: our request or the configuration is wrong; retrying cannot help
                        self.breaker.success()
                        raise BackendError(
                            f"{self.base_url} rejected the request with HTTP {resp.status_code}: {resp.text[:500]}",
                            status_code=resp.status_code,
                            body=resp.text[:2000],
                        )
                    else:
                        self.breaker.success()
                        return self._parse_body(resp, model, start)
                attempt += 1
                self.retries += 1
                await asyncio.sleep(self.retry_backoff * (2 ** (attempt - 1)))

    def _parse_body(self, resp: httpx.Response, model: str, start: float) -> Generation:
        try:
            data = resp.json()
        except (json.JSONDecodeError, ValueError) as exc:
            raise BackendError(
                f"{self.base_url} returned a non-JSON body: {resp.text[:200]!r}", status_code=resp.status_code
            ) from exc
        try:
            choice = data["choices"][0]
            message = choice["message"]
            content = message.get("content")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise BackendError(f"{self.base_url} returned JSON without choices[0].message.content: {str(data)[:300]}") from exc
        if isinstance(content, list):  # some servers return content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise BackendError(f"{self.base_url} returned a non-text message content: {content!r:.200}")
        # Servers with a reasoning parser (vLLM --reasoning-parser, transformers serve for Qwen)
        # move <think>...</think> out of `content`; put it back so the verdict keeps the reasoning.
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(reasoning, str) and reasoning.strip() and "<think" not in content.lower():
            content = f"<think>\n{reasoning.strip()}\n</think>\n{content.lstrip()}"
        if not content.strip():
            raise BackendError(f"{self.base_url} returned an empty answer (finish_reason={choice.get('finish_reason')})")
        for stop in self.stop:  # the server may not have applied the stop sequence
            cut = content.find(stop)
            if cut != -1:
                content = content[:cut]
        return Generation(
            text=content,
            latency_s=time.monotonic() - start,
            model=data.get("model", model),
            finish_reason=choice.get("finish_reason"),
            usage=data.get("usage") or {},
        )

    async def agenerate_batch(self, prompts: Sequence[RenderedPrompt]) -> list[Generation | BaseException]:
        if len(prompts) == 1:  # a single check (acheck): awaited directly, no task for a gather
            try:
                return [await self.agenerate(prompts[0])]
            except Exception as exc:  # as gather(return_exceptions=True); cancellation propagates
                return [exc]
        return await super().agenerate_batch(prompts)


__all__ = ["CircuitBreaker", "OpenAIBackend", "normalize_base_url"]
