"""A scriptable fake OpenAI-compatible chat-completions server, for tests and benchmarks.

It stands in for a vLLM endpoint on loopback, with knobs for the faults a real endpoint
has: slow answers, HTTP 500s, malformed JSON, connections closed mid-request, requests
that hang forever, and a process that dies and comes back on the same port. It counts
what it receives (requests, connections, peak concurrency), so tests can assert that a
circuit breaker stopped hammering it and benchmarks can show that requests overlapped.

Two ways to run it, with the same HTTP behaviour:

* ``FakeChatServer``: in this process, on its own event-loop thread (answers may be any
  Python callable of the request body);
* ``FakeChatServerProcess``: in a child process (``python -m proguard_rails.testing_server``),
  so a benchmark's client and server do not share one GIL; configured over HTTP.

The default answer is :func:`tagged_answer`: a correct ProGuard answer derived from a
``req-<n>`` tag in the user's text (see :func:`expected_for_tag`), so a test can check that
every verdict came back to the request that asked for it.

Only the standard library is used (asyncio streams, a hand-written HTTP/1.1 subset:
``Content-Length`` bodies and keep-alive, which is what httpx and the OpenAI client send).
``import proguard_rails`` never imports this module.

>>> with FakeChatServer(answer=lambda body: "<answer>Request:safe\\nResponse:safe\\n</answer>") as srv:
...     srv.base_url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Behaviour = Literal["ok", "error", "malformed", "wrong_shape", "close", "partial", "hang"]
#: What the server does with a chat-completions request:
#: ok (answer after ``delay``), error (HTTP ``error_status``, 500 by default), malformed
#: (HTTP 200 with a truncated JSON body), wrong_shape (valid JSON without ``choices``),
#: close (read the request, then reset the connection without a response), partial (send
#: the headers and half the body, then reset), hang (never answer; the connection stays
#: open until the client gives up or the server stops).
BEHAVIOURS: tuple[str, ...] = ("ok", "error", "malformed", "wrong_shape", "close", "partial", "hang")

AnswerFn = Callable[[Mapping[str, Any]], str]

_TAG_RE = re.compile(r"\breq-(\d+)\b")
_CONTROL_PREFIX = "/_fake/"


# ---------------------------------------------------------------------------- answers
def request_user_text(body: Mapping[str, Any]) -> str:
    """The text of the last user message of a chat-completions request body."""
    messages = body.get("messages") or []
    for msg in reversed(messages):
        if not isinstance(msg, Mapping) or msg.get("role") != "user":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(
                str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"
            )
    return ""


def request_image_count(body: Mapping[str, Any]) -> int:
    """How many ``image_url`` parts the request carries (all messages)."""
    n = 0
    for msg in body.get("messages") or []:
        content = msg.get("content") if isinstance(msg, Mapping) else None
        if isinstance(content, list):
            n += sum(1 for p in content if isinstance(p, Mapping) and p.get("type") == "image_url")
    return n


def proguard_answer(request: str, response: str | None, category: str | None, reasoning: str = "...") -> str:
    """A ProGuard answer in the released output format, written independently of the core's
    ``format_answer`` so that tests exercise the parser on text the core did not produce."""
    lines = ["<think>", reasoning, "</think>", "<answer>", f"Request:{request}"]
    if response is not None:
        lines.append(f"Response:{response}")
    lines += [f"Category:{category or 'None'}", "</answer>"]
    return "\n".join(lines)


def tag(n: int) -> str:
    """The request tag :func:`tagged_answer` looks for: put it in the user text."""
    return f"req-{n}"


def expected_for_tag(n: int) -> dict[str, Any]:
    """What :func:`tagged_answer` answers for ``req-<n>``.

    n % 3 == 0: safe. n % 3 == 1: unsafe request, in-policy category ``C<1 + n % 11>S1``.
    n % 3 == 2: unsafe request and response, out-of-policy risk ``tagged risk <n>``.
    The reasoning is always ``answer for req-<n>``, so even safe verdicts can be matched.
    """
    if n % 3 == 0:
        return {"request": "safe", "response": "safe", "category": None, "reasoning": f"answer for req-{n}"}
    if n % 3 == 1:
        return {
            "request": "unsafe", "response": "safe", "category": f"C{1 + n % 11}S1",
            "reasoning": f"answer for req-{n}",
        }
    return {
        "request": "unsafe", "response": "unsafe", "category": f"tagged risk {n}",
        "reasoning": f"answer for req-{n}",
    }


def tagged_answer(body: Mapping[str, Any]) -> str:
    """Deterministic answer derived from the first ``req-<n>`` tag of the user text; a safe
    answer with reasoning ``untagged`` when there is no tag."""
    m = _TAG_RE.search(request_user_text(body))
    if not m:
        return proguard_answer("safe", "safe", None, "untagged")
    e = expected_for_tag(int(m.group(1)))
    return proguard_answer(e["request"], e["response"], e["category"], e["reasoning"])


def fixed_answer(text: str) -> AnswerFn:
    """An answer function that always returns ``text``."""
    return lambda body: text


# ---------------------------------------------------------------------------- statistics
@dataclass
class ServerStats:
    """Counters since start (or the last ``reset_stats``); they survive a restart."""

    requests: int = 0  # every HTTP request, control ones excluded
    chat_requests: int = 0
    models_requests: int = 0
    file_requests: int = 0
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    answered: int = 0  # chat requests that got a 200 with an answer
    errors_sent: int = 0
    malformed_sent: int = 0
    closed: int = 0  # connections reset on purpose (close/partial)
    hung: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _Config:
    """Mutable behaviour, read per request (attribute writes are atomic under the GIL)."""

    def __init__(
        self,
        answer: AnswerFn | str | None,
        delay: float | Callable[[Mapping[str, Any]], float],
        behaviour: str,
        error_status: int,
        model: str,
        honour_stop: bool,
    ) -> None:
        self.answer: AnswerFn = _answer_fn(answer)
        self.delay: float | Callable[[Mapping[str, Any]], float] = _delay(delay)
        self.behaviour = _check_behaviour(behaviour)
        self.error_status = int(error_status)
        self.model = model
        self.honour_stop = honour_stop
        self.script: collections.deque[str] = collections.deque()
        self.files: dict[str, tuple[int, bytes, str, dict[str, str]]] = {}


def _answer_fn(answer: AnswerFn | str | None) -> AnswerFn:
    if answer is None or answer == "tagged":
        return tagged_answer
    if isinstance(answer, str):
        return fixed_answer(answer)
    if not callable(answer):
        raise TypeError(f"answer must be a string or a callable of the request body, not {type(answer).__name__}")
    return answer


def _delay(value: Any) -> float | Callable[[Mapping[str, Any]], float]:
    return value if callable(value) else float(value)


def _check_behaviour(b: str) -> str:
    if b not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {b!r}; choose one of {', '.join(BEHAVIOURS)}")
    return b


# ---------------------------------------------------------------------------- HTTP core
class _HTTPCore:
    """The protocol handling shared by the thread and the subprocess servers."""

    def __init__(self, config: _Config, stats: ServerStats) -> None:
        self.config = config
        self.stats = stats
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stopping: asyncio.Event | None = None
        self._ids = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        self.writers.add(writer)
        self.stats.connections += 1
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                method, path, headers, body = request
                keep = await self._dispatch(method, path, headers, body, reader, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:  # server stopping: drop the connection abruptly
            writer.transport.abort()
        finally:
            self.writers.discard(writer)
            if task is not None:
                self.tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _dispatch(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        path = path.split("?", 1)[0]
        if path.startswith(_CONTROL_PREFIX):
            return await self._control(method, path[len(_CONTROL_PREFIX):], body, writer)
        cfg, st = self.config, self.stats
        st.requests += 1
        if path in cfg.files:
            st.file_requests += 1
            status, data, ctype, extra = cfg.files[path]
            await _respond(writer, status, data, ctype, extra)
            return True
        if path in ("/v1/models", "/models"):
            st.models_requests += 1
            payload = {
                "object": "list",
                "data": [{"id": cfg.model, "object": "model", "created": 0, "owned_by": "proguard-rails-testing"}],
            }
            await _respond_json(writer, 200, payload)
            return True
        if path not in ("/v1/chat/completions", "/chat/completions"):
            await _respond_json(writer, 404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return True
        if method != "POST":
            await _respond_json(writer, 405, {"error": {"message": "use POST", "type": "invalid_request"}})
            return True
        st.chat_requests += 1
        st.in_flight += 1
        st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            behaviour = cfg.script.popleft() if cfg.script else cfg.behaviour
            return await self._chat(behaviour, body, reader, writer)
        finally:
            st.in_flight -= 1

    async def _chat(self, behaviour: str, raw: bytes, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> bool:
        cfg, st = self.config, self.stats
        if behaviour == "close":
            st.closed += 1
            writer.transport.abort()
            return False
        if behaviour == "hang":
            st.hung += 1
            await self._hang(reader)
            writer.transport.abort()
            return False
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as exc:
            await _respond_json(writer, 400, {"error": {"message": f"invalid JSON body: {exc}", "type": "invalid_request"}})
            return True
        delay = cfg.delay(body) if callable(cfg.delay) else cfg.delay
        if delay > 0:
            await asyncio.sleep(delay)
        if behaviour == "error":
            st.errors_sent += 1
            await _respond_json(
                writer, cfg.error_status,
                {"error": {"message": "injected server error", "type": "server_error", "code": cfg.error_status}},
            )
            return True
        if behaviour == "malformed":
            st.malformed_sent += 1
            await _respond(writer, 200, b'{"id": "chatcmpl-x", "choices": [{"message": {"content": "<ans', "application/json")
            return True
        if behaviour == "wrong_shape":
            st.malformed_sent += 1
            await _respond_json(writer, 200, {"id": "chatcmpl-x", "object": "chat.completion", "result": "ok"})
            return True
        try:
            text = cfg.answer(body)
        except Exception as exc:  # an answer function bug shows up as a 500, as a crashing server would
            st.errors_sent += 1
            await _respond_json(writer, 500, {"error": {"message": f"answer function failed: {exc!r}"}})
            return True
        finish = "stop"
        if cfg.honour_stop:  # like vLLM: cut at the first stop string, which is not returned
            for stop in body.get("stop") or []:
                if isinstance(stop, str) and stop and stop in text:
                    text = text[: text.index(stop)]
        self._ids += 1
        payload = {
            "id": f"chatcmpl-fake-{self._ids}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model") or cfg.model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": len(raw) // 4, "completion_tokens": len(text) // 4,
                      "total_tokens": (len(raw) + len(text)) // 4},
        }
        if behaviour == "partial":
            st.closed += 1
            data = json.dumps(payload).encode()
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
            writer.write(head + data[: len(data) // 2])
            await writer.drain()
            writer.transport.abort()
            return False
        st.answered += 1
        await _respond_json(writer, 200, payload)
        return True

    async def _hang(self, reader: asyncio.StreamReader) -> None:
        """Wait until the client hangs up or the server stops; never answer."""
        assert self.stopping is not None
        eof = asyncio.ensure_future(reader.read(1 << 16))
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({eof, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (eof, stop):
                f.cancel()

    async def _control(self, method: str, what: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        cfg = self.config
        try:
            if what == "stats":
                await _respond_json(writer, 200, self.stats.as_dict())
            elif what == "reset" and method == "POST":
                _reset(self.stats)
                await _respond_json(writer, 200, {"ok": True})
            elif what == "config" and method == "POST":
                data = json.loads(body or b"{}")
                _apply(cfg, data)
                await _respond_json(writer, 200, {"ok": True})
            else:
                await _respond_json(writer, 404, {"error": f"no control route {what!r}"})
        except (ValueError, TypeError) as exc:
            await _respond_json(writer, 400, {"error": str(exc)})
        return True


def _apply(cfg: _Config, data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if key == "behaviour":
            cfg.behaviour = _check_behaviour(value)
        elif key == "delay":
            cfg.delay = _delay(value)
        elif key == "error_status":
            cfg.error_status = int(value)
        elif key == "answer":
            cfg.answer = _answer_fn(value)
        elif key == "model":
            cfg.model = str(value)
        elif key == "script":
            cfg.script.extend(_check_behaviour(b) for b in value)
        elif key == "honour_stop":
            cfg.honour_stop = bool(value)
        else:
            raise ValueError(f"unknown setting {key!r}")


def _reset(stats: ServerStats) -> None:
    in_flight = stats.in_flight
    for k in stats.__dict__:
        setattr(stats, k, 0)
    stats.in_flight = in_flight


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        raise ValueError("bad request line")
    method, path, _version = parts
    headers: dict[str, str] = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        n = int(headers.get("content-length") or 0)
        body = await reader.readexactly(n) if n else b""
    return method.upper(), path, headers, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readline()
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readline()


_REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


async def _respond(writer: asyncio.StreamWriter, status: int, data: bytes, ctype: str,
                   extra: Mapping[str, str] | None = None) -> None:
    more = "".join(f"{k}: {v}\r\n" for k, v in (extra or {}).items())
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(data)}\r\nConnection: keep-alive\r\n{more}\r\n"
    ).encode()
    writer.write(head + data)
    await writer.drain()


async def _respond_json(writer: asyncio.StreamWriter, status: int, payload: Any) -> None:
    await _respond(writer, status, json.dumps(payload).encode(), "application/json")


# ---------------------------------------------------------------------------- in-process server
class FakeChatServer:
    """The fake endpoint on a background event-loop thread of this process.

    ``answer``: a string (always that), a callable of the parsed request body, or ``None``
    / ``"tagged"`` for :func:`tagged_answer`. ``delay``: seconds before each answer (the
    generation time), or a callable of the request body giving them (to reorder answers). ``behaviour``: one of :data:`BEHAVIOURS`, for every chat request;
    :meth:`push` queues one-shot behaviours used first. ``/v1/models`` always answers.
    ``stop``/``kill`` drop every open connection at once, as a crashed server would;
    ``start``/``restart`` bind the same port again.
    """

    def __init__(
        self,
        *,
        answer: AnswerFn | str | None = None,
        delay: float | Callable[[Mapping[str, Any]], float] = 0.0,
        behaviour: str = "ok",
        error_status: int = 500,
        model: str = "fake-proguard",
        host: str = "127.0.0.1",
        port: int = 0,
        honour_stop: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.config = _Config(answer, delay, behaviour, error_status, model, honour_stop)
        self.stats = ServerStats()
        self._core: _HTTPCore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self.starts = 0

    # -------------------------------------------------------------- lifecycle
    def start(self) -> FakeChatServer:
        if self.running:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        core = _HTTPCore(self.config, self.stats)

        async def boot() -> None:
            core.stopping = asyncio.Event()
            self._server = await asyncio.start_server(
                core.handle, self.host, self.port, reuse_address=True, backlog=1024
            )
            self.port = self._server.sockets[0].getsockname()[1]

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(boot())
            except BaseException as exc:  # bind failure: report to the caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        thread = threading.Thread(target=run, name=f"fake-chat-server:{self.port}", daemon=True)
        thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        self._loop, self._thread, self._core = loop, thread, core
        self.starts += 1
        return self

    def stop(self) -> None:
        """Stop abruptly: close the listener and reset every open connection."""
        loop, thread, core = self._loop, self._thread, self._core
        if loop is None or thread is None or core is None:
            return

        async def shutdown() -> None:
            assert core.stopping is not None
            core.stopping.set()
            if self._server is not None:
                self._server.close()
            for w in list(core.writers):
                w.transport.abort()
            for t in list(core.tasks):
                t.cancel()
            await asyncio.sleep(0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        self._loop = self._thread = self._core = None
        self._server = None

    kill = stop

    def restart(self, downtime: float = 0.0) -> FakeChatServer:
        """Kill, stay down ``downtime`` seconds, start again on the same port."""
        self.stop()
        if downtime:
            time.sleep(downtime)
        return self.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> FakeChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- knobs
    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``http://127.0.0.1:<port>/v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}/{path.lstrip('/')}"

    def configure(self, **settings: Any) -> None:
        """Change ``behaviour``, ``delay``, ``answer``, ``error_status``, ``model`` or ``honour_stop`` live."""
        _apply(self.config, settings)

    def push(self, *behaviours: str) -> None:
        """Queue one-shot behaviours for the next chat requests (then ``behaviour`` again)."""
        self.config.script.extend(_check_behaviour(b) for b in behaviours)

    def add_file(self, path: str, data: bytes, content_type: str = "application/octet-stream",
                 *, status: int = 200, headers: Mapping[str, str] | None = None) -> str:
        """Serve ``data`` at ``GET /<path>``; returns its URL (for image-URL fetching tests)."""
        key = "/" + path.lstrip("/")
        self.config.files[key] = (status, data, content_type, dict(headers or {}))
        return self.url(key)

    def add_redirect(self, path: str, location: str, status: int = 302) -> str:
        """Answer ``GET /<path>`` with a redirect to ``location``; returns its URL."""
        return self.add_file(path, b"", "text/plain", status=status, headers={"Location": location})

    def reset_stats(self) -> None:
        _reset(self.stats)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"FakeChatServer({self.base_url}, {state}, behaviour={self.config.behaviour!r})"


# ---------------------------------------------------------------------------- subprocess server
class FakeChatServerProcess:
    """The same server in a child process (no GIL shared with the client under test).

    Answers are ``"tagged"`` (default) or a fixed string; everything else is configured
    as for ``FakeChatServer`` and sent to the child over HTTP (``/_fake/config``).
    ``kill`` sends SIGKILL: a real crash, connections reset by the kernel.
    """

    def __init__(
        self,
        *,
        answer: str = "tagged",
        delay: float = 0.0,
        behaviour: str = "ok",
        error_status: int = 500,
        model: str = "fake-proguard",
        port: int = 0,
        python: str | None = None,
    ) -> None:
        if not isinstance(answer, str):
            raise TypeError("a subprocess server takes answer='tagged' or a fixed answer string")
        self.host = "127.0.0.1"
        self.port = port
        self._args = {"answer": answer, "delay": delay, "behaviour": _check_behaviour(behaviour),
                      "error_status": error_status, "model": model}
        self._python = python or sys.executable
        self._proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> FakeChatServerProcess:
        if self.running:
            return self
        cmd = [self._python, "-m", "proguard_rails.testing_server", "--port", str(self.port),
               "--config", json.dumps(self._args)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("READY ") or not line:
                break
        if not line.startswith("READY "):
            proc.kill()
            proc.wait()
            raise RuntimeError(f"fake server process did not start (exit code {proc.poll()}, said {line!r})")
        self.port = int(line.split()[1])
        self._proc = proc
        return self

    def stop(self) -> None:
        """SIGKILL the child: every connection is reset, as in a crash."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None

    kill = stop

    def restart(self, downtime: float = 0.0) -> FakeChatServerProcess:
        self.stop()
        if downtime:
            time.sleep(downtime)
        return self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}/{path.lstrip('/')}"

    def _control(self, what: str, payload: Mapping[str, Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url(_CONTROL_PREFIX + what), data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def configure(self, **settings: Any) -> None:
        if callable(settings.get("answer")):
            raise TypeError("a subprocess server cannot run a Python callable; use FakeChatServer")
        self._args.update({k: v for k, v in settings.items() if k in self._args})
        self._control("config", settings)

    def push(self, *behaviours: str) -> None:
        self._control("config", {"script": list(behaviours)})

    @property
    def stats(self) -> ServerStats:
        """A snapshot of the child's counters (counters restart with the process)."""
        return ServerStats(**self._control("stats"))

    def reset_stats(self) -> None:
        self._control("reset", {})

    def __enter__(self) -> FakeChatServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------- load driver
def _rss_bytes() -> int | None:
    try:
        import psutil
    except ImportError:  # psutil is a dev extra; fall back to the process's lifetime peak
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    return int(psutil.Process().memory_info().rss)


async def run_load(guard: Any, n: int = 2_000, concurrency: int = 64, *, sample_every: float = 0.05) -> dict[str, Any]:
    """Drive ``n`` checks through ``guard.acheck``, ``concurrency`` at a time, each tagged
    ``req-<i>``; return counts, attribution errors, throughput and memory figures.

    A check is "matched" when its verdict is the tagged answer of its own request (see
    :func:`expected_for_tag`); ``mismatched`` counts verdicts that belong to another request.
    """
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    decisions: dict[int, Any] = {}
    rss0 = _rss_bytes() or 0
    peak = rss0
    done = asyncio.Event()

    async def sampler() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_bytes() or 0)
            await asyncio.sleep(sample_every)

    async def worker() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            decisions[i] = await guard.acheck(f"{tag(i)} load request {i}")

    watcher = asyncio.ensure_future(sampler())
    start = time.perf_counter()
    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    done.set()
    await watcher
    peak = max(peak, _rss_bytes() or 0)
    matched = mismatched = errors = 0
    for i, d in decisions.items():
        if d.status == "error":
            errors += 1
            continue
        exp = expected_for_tag(i)
        v = d.verdict
        if v is not None and v.reasoning == exp["reasoning"] and v.request == exp["request"]:
            matched += 1
        else:
            mismatched += 1
    return {
        "checks": n,
        "concurrency": concurrency,
        "decisions": len(decisions),
        "matched": matched,
        "mismatched": mismatched,
        "errors": errors,
        "wall_s": wall,
        "client_cpu_s": cpu,
        "checks_per_s": n / wall if wall else float("inf"),
        "rss_start_mb": rss0 / 2**20,
        "rss_peak_mb": peak / 2**20,
        "rss_growth_mb": (peak - rss0) / 2**20,
    }


# ---------------------------------------------------------------------------- CLI (child process)
async def _serve_forever(port: int, config: _Config) -> None:
    stats = ServerStats()
    core = _HTTPCore(config, stats)
    core.stopping = asyncio.Event()
    server = await asyncio.start_server(core.handle, "127.0.0.1", port, reuse_address=True, backlog=1024)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible ProGuard endpoint for tests/benchmarks")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config", default="{}", help="JSON: answer, delay, behaviour, error_status, model")
    args = parser.parse_args(list(argv) if argv is not None else None)
    raw = json.loads(args.config)
    config = _Config(
        raw.get("answer"), raw.get("delay", 0.0), raw.get("behaviour", "ok"), raw.get("error_status", 500),
        raw.get("model", "fake-proguard"), bool(raw.get("honour_stop", True)),
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args.port, config))


if __name__ == "__main__":
    main()


__all__ = [
    "BEHAVIOURS",
    "FakeChatServer",
    "FakeChatServerProcess",
    "ServerStats",
    "expected_for_tag",
    "fixed_answer",
    "proguard_answer",
    "request_image_count",
    "request_user_text",
    "run_load",
    "tag",
    "tagged_answer",
]
