"""Fixtures of the guard-server tests: a real uvicorn server on 127.0.0.1 (in a thread of the
test process) in front of a ProGuard whose judge talks to the scriptable fake OpenAI endpoint
(``proguard_rails.testing_server.FakeChatServer``, also on loopback)."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

from proguard_rails import ProGuard
from proguard_rails.server import ServerSettings, ServerThread, create_app
from proguard_rails.testing_server import FakeChatServer

KEY = "test-key-0123456789"


@pytest.fixture(scope="module")
def endpoint():
    with FakeChatServer(model="ProGuard-7B") as fake:
        yield fake


@pytest.fixture
def fresh_endpoint(endpoint):
    endpoint.configure(behaviour="ok", delay=0.0, answer="tagged")
    endpoint.config.script.clear()
    yield endpoint
    endpoint.configure(behaviour="ok", delay=0.0, answer="tagged")
    endpoint.config.script.clear()


def serve(guard_or_factory, **settings) -> ServerThread:
    """A started server; ``settings`` are ServerSettings fields."""
    return ServerThread(create_app(guard_or_factory, ServerSettings(**settings))).start()


@pytest.fixture(scope="module")
def server(endpoint):
    """The shared server: bearer auth on, fail-closed guard over the fake endpoint."""
    guard = ProGuard(base_url=endpoint.base_url, timeout=5, max_retries=0, cache_size=0)
    srv = serve(guard, api_keys=KEY)
    yield srv
    srv.stop()
    guard.close()
