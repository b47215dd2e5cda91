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
import zlib
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from .._deadline import time_left
from ..errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigurationError,
    RequestRejectedError,
    ResponseTooLargeError,
)
from ..protocol import RenderedPrompt, answer_end, escape_reasoning
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
# The endpoint refused the request itself (too long, malformed content): the input decides that.
_REJECTED_STATUS = {400, 413, 422}


class _BoundedBody:
    """Collects a response body, decoding gzip/deflate itself so that no more than ``limit``
    decoded bytes are ever held: a gzip bomb stops at the cap instead of inflating in memory."""

    def __init__(self, encoding: str, limit: int, where: str) -> None:
        self.limit = limit
        self.where = where
        self.size = 0
        self.parts: list[bytes] = []
        enc = encoding.strip().lower()
        self._raw_deflate_retry = False
        if enc in ("", "identity"):
            self._d = None
        elif enc in ("gzip", "x-gzip"):
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._d = zlib.decompressobj(zlib.MAX_WBITS)
            self._raw_deflate_retry = True
        else:
            raise BackendError(f"{where} answered with an unsupported content-encoding {encoding!r}")

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise ResponseTooLargeError(
                f"{self.where} sent a response body over max_response_bytes={self.limit:,} bytes (after "
                "decompression); refused (setting PROGUARD_MAX_RESPONSE_BYTES)"
            )
        self.parts.append(data)

    def feed(self, chunk: bytes) -> None:
        if self._d is None:
            self._add(chunk)
            return
        try:
            data = self._d.decompress(chunk, self.limit - self.size + 1)
            while True:
                self._add(data)
                tail = self._d.unconsumed_tail
                if not tail:
                    break
                data = self._d.decompress(tail, self.limit - self.size + 1)
        except zlib.error as exc:
            if self._raw_deflate_retry and self.size == 0:  # "deflate" sent without the zlib header
                self._raw_deflate_retry = False
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                self.feed(chunk)
                return
            raise BackendError(f"{self.where} sent a corrupt compressed body: {exc}") from exc
        self._raw_deflate_retry = False

    def finish(self) -> bytes:
        if self._d is not None:
            self._add(self._d.flush())
        return b"".join(self.parts)


def _text(body: bytes, limit: int = 300) -> str:
    return body[: limit * 4].decode("utf-8", "replace")[:limit]


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

    ``clock`` (seconds, monotonic) is injectable so tests drive the cooldown without sleeping.
    """

    def __init__(self, threshold: int, cooldown: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self._failures = 0
        self._open_until = 0.0
        self._probe_since: float | None = None
        self._lock = threading.Lock()
        self.opened_count = 0
        self.rejected_count = 0
        self.probes = 0

    @property
    def is_open(self) -> bool:
        return self.clock() < self._open_until

    def _reject(self, why: str) -> None:
        self.rejected_count += 1
        raise BackendUnavailableError(
            f"endpoint circuit breaker is open after {self._failures} consecutive failures; {why}"
        )

    def admit(self) -> bool:
        """True: send the request. False: a probe is out, wait and ask again. Raises while open."""
        with self._lock:
            now = self.clock()
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
                self._open_until = self.clock() + self.cooldown


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

    async def request(self, method: str, url: str, *, limit: int, where: str, **kwargs: Any) -> tuple[
        httpx.Response, bytes
    ]:
        """Send a request and read its body, decoded, up to ``limit`` bytes (``ResponseTooLargeError``)."""
        i = min(range(len(self.busy)), key=self.busy.__getitem__)
        self.busy[i] += 1
        try:
            client = self.clients[i]
            resp = await client.send(client.build_request(method, url, **kwargs), stream=True)
            try:
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit and not resp.headers.get("content-encoding"):
                    raise ResponseTooLargeError(
                        f"{where} announced a {int(declared):,}-byte body, over max_response_bytes={limit:,}"
                    )
                try:
                    ready: bytes | None = resp.content  # an in-memory transport hands over a read body
                except httpx.ResponseNotRead:
                    ready = None
                if ready is not None:
                    body = _BoundedBody("", limit, where)
                    body.feed(ready)
                    return resp, body.finish()
                body = _BoundedBody(resp.headers.get("content-encoding", ""), limit, where)
                async for chunk in resp.aiter_raw():
                    body.feed(chunk)
                return resp, body.finish()
            finally:
                await resp.aclose()
        finally:
            self.busy[i] -= 1

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
        self.max_response_bytes = int(s.max_response_bytes)
        # Proxy variables (HTTP_PROXY, ALL_PROXY...) are not used unless asked: judged content goes to
        # base_url only, even when the environment names a proxy for other traffic.
        self.proxy_from_env = bool(s.proxy_from_env)
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
            headers["Accept-Encoding"] = "gzip, deflate"  # the encodings _BoundedBody decodes

            def make(connections: int) -> httpx.AsyncClient:
                limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
                transport = self._transport
                if transport is None and not self.proxy_from_env:
                    # An explicit transport keeps httpx from mounting the environment's proxies, while
                    # SSL_CERT_FILE/SSL_CERT_DIR still apply to TLS.
                    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=True)
                return httpx.AsyncClient(
                    base_url=self.base_url,
                    headers=headers,
                    timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                    limits=limits,
                    transport=transport,
                    trust_env=self.proxy_from_env,
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
                resp, raw = await asyncio.wait_for(
                    client.request("GET", "/models", limit=self.max_response_bytes, where=self.base_url),
                    timeout=time_left(self.timeout),
                )
                resp.raise_for_status()
                data = json.loads(raw).get("data") or []
            except (httpx.HTTPError, ValueError, AttributeError, BackendError, asyncio.TimeoutError) as exc:
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
        budget = time_left(self.timeout)  # what is left of the check's deadline, if one is set
        try:
            if budget <= 0:
                raise asyncio.TimeoutError
            return await asyncio.wait_for(self._generate_with_retries(prompt, start, at_endpoint), timeout=budget)
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
                    resp, raw = await client.request(
                        "POST", "/chat/completions", limit=self.max_response_bytes, where=self.base_url, json=body
                    )
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
                except ResponseTooLargeError:
                    at_endpoint[0] = False
                    self.breaker.failure()
                    raise
                else:
                    if resp.status_code in _RETRY_STATUS:
                        self.breaker.failure()
                        err = BackendError(
                            f"{self.base_url} answered HTTP {resp.status_code}: {_text(raw)}",
                            status_code=resp.status_code,
                            body=_text(raw, 2000),
                        )
                        if attempt >= self.max_retries:
                            raise err
                    elif resp.status_code in _REJECTED_STATUS:
                        # The endpoint refused this input (too long, malformed content): an input error,
                        # which blocks under both fail modes. Retrying the same input cannot help.
                        self.breaker.success()
                        raise RequestRejectedError(
                            f"{self.base_url} refused the request with HTTP {resp.status_code}: {_text(raw, 500)}",
                            status_code=resp.status_code,
                            body=_text(raw, 2000),
                        )
                    elif resp.status_code >= 400:
                        # other 4xx: the configuration is wrong (key, model name, URL); retrying cannot help
                        self.breaker.success()
                        raise BackendError(
                            f"{self.base_url} rejected the request with HTTP {resp.status_code}: {_text(raw, 500)}",
                            status_code=resp.status_code,
                            body=_text(raw, 2000),
                        )
                    else:
                        self.breaker.success()
                        return self._parse_body(resp, raw, model, start)
                attempt += 1
                self.retries += 1
                await asyncio.sleep(self.retry_backoff * (2 ** (attempt - 1)))

    def _parse_body(self, resp: httpx.Response, raw: bytes, model: str, start: float) -> Generation:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, ValueError, RecursionError) as exc:
            raise BackendError(
                f"{self.base_url} returned a non-JSON body: {_text(raw, 200)!r}", status_code=resp.status_code
            ) from exc
        try:
            choice = data["choices"][0]
            message = choice["message"]
            content = message.get("content")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise BackendError(f"{self.base_url} returned JSON without choices[0].message.content: {str(data)[:300]}") from exc
        reasoning_parts: list[str] = []
        if isinstance(content, list):  # some servers return content parts; reasoning parts are not the answer
            texts = []
            for p in content:
                if not isinstance(p, dict):
                    continue
                text = p.get("text") if isinstance(p.get("text"), str) else p.get("reasoning")
                if not isinstance(text, str):
                    continue
                if str(p.get("type", "text")) in ("reasoning", "thinking", "reasoning_text"):
                    reasoning_parts.append(text)
                else:
                    texts.append(text)
            content = "".join(texts)
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise BackendError(f"{self.base_url} returned a non-text message content: {content!r:.200}")
        # Servers with a reasoning parser (vLLM --reasoning-parser, transformers serve for Qwen)
        # move <think>...</think> out of `content`; put it back so the verdict keeps the reasoning.
        # That field is reasoning through and through: its own tags are made inert, so a draft
        # answer quoted there is never read as the verdict, which comes from `content` alone.
        field = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(field, str):
            reasoning_parts.insert(0, field)
        reasoning = "\n".join(r.strip() for r in reasoning_parts if r.strip())
        if reasoning:
            content = f"<think>\n{escape_reasoning(reasoning)}\n</think>\n{content.lstrip()}"
        if not content.strip():
            raise BackendError(f"{self.base_url} returned an empty answer (finish_reason={choice.get('finish_reason')})")
        # The server may not have applied the stop sequence: end the text after the first </answer>
        # that follows the closed reasoning (never at one quoted inside it).
        end = answer_end(content, include_closer=False)  # as a server drops the stop string
        if end is not None:
            content = content[:end]
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
