"""``proguard-rails serve``: run the guard server with uvicorn; and an in-thread runner for
tests and benchmarks (:class:`ServerThread`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
import threading
import time
from typing import Any

from ..errors import ConfigurationError, MissingDependencyError, ProGuardError
from .settings import ServerSettings, is_loopback

logger = logging.getLogger("proguard_rails.server")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..cli_options import add_judge_options

    g = parser.add_argument_group("server")
    g.add_argument("--host", help="address to bind [PROGUARD_SERVER_HOST, default 127.0.0.1]")
    g.add_argument("--port", type=int, help="port [PROGUARD_SERVER_PORT, default 8080; 0 picks a free one]")
    g.add_argument("--api-keys-file", metavar="FILE",
                   help="bearer tokens, one per line [PROGUARD_SERVER_API_KEYS_FILE; or PROGUARD_SERVER_API_KEYS=k1,k2]")
    g.add_argument("--allow-unauthenticated", action="store_true", default=None,
                   help="serve a non-loopback address without API keys (an authenticating proxy in front)")
    g.add_argument("--metrics-public", action="store_true", default=None, help="/metrics without a bearer token")
    g.add_argument("--max-body-bytes", type=int, help="request body limit [default 32 MiB]")
    g.add_argument("--max-image-bytes", type=int, help="encoded bytes per image [PROGUARD_MAX_IMAGE_BYTES]")
    g.add_argument("--max-requests", type=int, dest="server_max_concurrency",
                   help="requests judged at once [PROGUARD_SERVER_MAX_CONCURRENCY, default 64]")
    g.add_argument("--max-queue", type=int, help="requests waiting for a slot before 429 [default 1024]")
    g.add_argument("--deadline", type=float, help="per-request deadline in seconds, queueing included [default 60]")
    g.add_argument("--max-inputs", type=int, help="inputs per /v1/moderations call [default 64]")
    g.add_argument("--include-raw", action="store_true", default=None,
                   help="let clients ask for the model's raw answer (include_raw in the body; debugging)")
    g.add_argument("--model-name", help="the `model` the API reports (default: derived from the judge)")
    g.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], help="[default info]")
    add_judge_options(parser)


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    fields = {
        "host": args.host, "port": args.port, "api_keys_file": args.api_keys_file,
        "allow_unauthenticated": args.allow_unauthenticated, "metrics_public": args.metrics_public,
        "max_body_bytes": args.max_body_bytes, "max_concurrency": args.server_max_concurrency,
        "max_queue": args.max_queue, "deadline": args.deadline, "max_inputs": args.max_inputs,
        "model_name": args.model_name, "log_level": args.log_level, "include_raw": args.include_raw,
    }
    from pydantic import ValidationError

    try:
        return ServerSettings(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise ConfigurationError(f"invalid server settings (options or PROGUARD_SERVER_* variables): {exc}") from exc


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the
    # socket says it is TCP; without it every response waits ~40 ms for a delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_cli(args: argparse.Namespace) -> int:
    """``proguard-rails serve``; exit 0 on a clean stop, 2 on bad configuration or a failed load."""
    try:
        import uvicorn

        from ..cli_options import guard_from_args
        from .app import create_app
    except MissingDependencyError as exc:
        print(f"proguard-rails serve: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"proguard-rails serve: {MissingDependencyError(exc.name or 'uvicorn', 'serve', 'the server')}",
              file=sys.stderr)
        return 2
    try:
        settings = settings_from_args(args)
        keys = settings.keys()
        settings.check_bind(keys)
        if args.max_image_bytes is not None and args.max_image_bytes < 1:
            raise ConfigurationError("--max-image-bytes must be positive")
        if args.config:  # fail before binding on a bad policy file, not in the background
            from ..config import load_config

            load_config(args.config)
        sock = _bind(settings.host, settings.port)
    except (ProGuardError, OSError) as exc:
        print(f"proguard-rails serve: {exc}", file=sys.stderr)
        return 2
    extra = {"max_image_bytes": args.max_image_bytes} if args.max_image_bytes else {}
    failed: list[BaseException] = []
    server: Any = None

    def on_load_failure(exc: BaseException) -> None:
        failed.append(exc)
        if server is not None:
            server.should_exit = True

    app = create_app(lambda: guard_from_args(args, **extra), settings, on_load_failure=on_load_failure)
    config = uvicorn.Config(app, log_level=settings.log_level, proxy_headers=False, server_header=False,
                            timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    auth = f"{len(keys)} API key(s)" if keys else ("no auth (loopback)" if is_loopback(settings.host) else
                                                   "NO AUTH (--allow-unauthenticated)")
    print(f"proguard-rails serve: listening on http://{shown}:{port} ({auth})", file=sys.stderr, flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if failed:
        print(f"proguard-rails serve: the guard could not be loaded: {failed[0]}", file=sys.stderr)
        return 2
    return 0


class ServerThread:
    """The app served by uvicorn on a background thread of this process (tests, benchmarks).

    >>> with ServerThread(create_app(guard)) as srv:            # doctest: +SKIP
    ...     httpx.get(srv.url("/healthz"))
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, wait_ready: bool = True,
                 startup_timeout: float = 60.0) -> None:
        self.app, self.host, self.port = app, host, port
        self.wait_ready, self.startup_timeout = wait_ready, startup_timeout
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def start(self) -> ServerThread:
        import uvicorn

        if self._thread is not None and self._thread.is_alive():
            return self
        self._sock = _bind(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", server_header=False)
        self._server = uvicorn.Server(config)
        sock = self._sock

        def run() -> None:
            asyncio.run(self._server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=run, name=f"proguard-server:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError("the guard server did not start")
            time.sleep(0.01)
        if self.wait_ready:
            state = self.app.state.proguard
            while not state.ready:
                if state.failed or time.monotonic() > deadline:
                    detail = state.detail
                    self.stop()
                    raise RuntimeError(f"the guard server did not become ready: {detail}")
                time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["ServerThread", "add_arguments", "run_cli", "settings_from_args"]
