"""A network detector for tests: refuses, and records, any non-loopback connection or lookup.

    from proguard_rails.testing_network import NetworkDetector
    detector = NetworkDetector()
    with detector.active():
        run_the_code_under_test()
    assert detector.attempts == []

It patches ``socket.socket.connect``/``connect_ex``, ``socket.create_connection`` and
``socket.getaddrinfo`` while active and raises ``BlockedNetworkError`` before any packet is
sent to a non-loopback address. Unix sockets and loopback pass through. Used by the test
suites of the integrations to prove they stay offline; usable in your own tests too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterator
from typing import Any


class BlockedNetworkError(OSError):
    """Raised instead of any non-loopback connection or lookup while the detector is active."""


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback(host: Any) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%", 1)[0].lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NetworkDetector:
    """Patches socket connect/connect_ex/create_connection/getaddrinfo while active.

    Non-loopback targets are recorded and refused BEFORE any packet is sent; unix sockets
    and loopback pass through.
    """

    def __init__(self) -> None:
        self.attempts: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: dict[str, Any] = {}

    def _refuse(self, what: str, target: Any) -> None:
        with self._lock:
            self.attempts.append((what, target))
        raise BlockedNetworkError(f"network access outside loopback attempted during tests: {what} {target!r}")

    def _check_address(self, what: str, address: Any) -> None:
        if isinstance(address, tuple) and address and not is_loopback(address[0]):
            self._refuse(what, address)

    def install(self) -> None:
        with self._lock:
            self._depth += 1
            if self._depth > 1:
                return
        det = self
        orig_connect = socket.socket.connect
        orig_connect_ex = socket.socket.connect_ex
        orig_create = socket.create_connection
        orig_gai = socket.getaddrinfo
        self._saved = {"connect": orig_connect, "connect_ex": orig_connect_ex,
                       "create_connection": orig_create, "getaddrinfo": orig_gai}

        def connect(sock: socket.socket, address: Any) -> Any:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                det._check_address("connect", address)
            return orig_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> Any:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                det._check_address("connect_ex", address)
            return orig_connect_ex(sock, address)

        def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
            det._check_address("create_connection", address)
            return orig_create(address, *args, **kwargs)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not is_loopback(host):
                det._refuse("getaddrinfo", host)
            return orig_gai(host, *args, **kwargs)

        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
        socket.create_connection = create_connection  # type: ignore[assignment]
        socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]

    def uninstall(self) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth > 0:
                return
        socket.socket.connect = self._saved["connect"]  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = self._saved["connect_ex"]  # type: ignore[method-assign,assignment]
        socket.create_connection = self._saved["create_connection"]  # type: ignore[assignment]
        socket.getaddrinfo = self._saved["getaddrinfo"]  # type: ignore[assignment]

    @contextlib.contextmanager
    def active(self) -> Iterator[NetworkDetector]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()


__all__ = ["BlockedNetworkError", "NetworkDetector", "is_loopback"]
