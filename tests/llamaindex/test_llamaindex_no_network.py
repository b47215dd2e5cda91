"""The LlamaIndex adapter tests run fully offline: proof that the detector works, and that the
flows (and the imports) attempted no connection outside loopback."""

from __future__ import annotations

import socket

import pytest
from llama_index.core.llms import MockLLM
from llama_index.postprocessor.proguard import (
    ProGuardChatEngine,
    ProGuardNodePostprocessor,
    ProGuardQueryEngine,
)

from . import conftest


def test_detector_refuses_non_loopback_before_any_packet(_no_network):  # type: ignore[no-untyped-def]
    det = _no_network
    before = len(det.attempts)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(conftest.BlockedNetworkError):
            sock.connect(("203.0.113.1", 80))  # TEST-NET-3: refused before connecting
        with pytest.raises(conftest.BlockedNetworkError):
            sock.connect_ex(("203.0.113.1", 443))
    finally:
        sock.close()
    with pytest.raises(conftest.BlockedNetworkError):
        socket.create_connection(("203.0.113.1", 80), timeout=0.01)
    with pytest.raises(conftest.BlockedNetworkError):
        socket.getaddrinfo("example.com", 443)
    recorded = det.attempts[before:]
    assert [w for w, _ in recorded] == ["connect", "connect_ex", "create_connection", "getaddrinfo"]
    del det.attempts[before:]  # expected attempts: do not fail this test in teardown


def test_detector_lets_loopback_through(_no_network):  # type: ignore[no-untyped-def]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
    assert socket.getaddrinfo("localhost", 80)
    assert conftest.is_loopback("::1") and not conftest.is_loopback("10.0.0.1")


def test_scripted_llamaindex_flows_attempt_no_network(_no_network, scripted_guard_factory, index_factory):  # type: ignore[no-untyped-def]
    det = _no_network
    start = len(det.attempts)
    guard = scripted_guard_factory(unsafe_requests={"pipe bomb": "C8S1", "IGNORE ALL": "C4S1"})
    index, _ = index_factory()
    engine = ProGuardQueryEngine(
        index.as_query_engine(llm=MockLLM(), similarity_top_k=3, node_postprocessors=[ProGuardNodePostprocessor(guard)]),
        guard,
    )
    engine.query("What is the capital of France?")
    engine.query("pipe bomb")
    ProGuardChatEngine(index.as_chat_engine(chat_mode="simple", llm=MockLLM()), guard).chat("hello")
    assert det.attempts[start:] == []
    if conftest.IMPORT_OBSERVED:
        assert conftest.IMPORT_ATTEMPTS == [], "importing llama_index / the adapter attempted network access"
