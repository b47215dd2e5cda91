"""End to end through a real OpenAI-compatible server: `transformers serve` on loopback,
serving the tiny random-weight Qwen2.5-VL built offline by proguard_rails.testing.

The tiny model's output is gibberish, so every decision must be an error (unreadable
answer), turned into a block by the default fail-closed policy.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from proguard_rails import ProGuard
from proguard_rails.testing import serve_model, tiny_model_path
from tests.helpers import png_bytes

pytestmark = pytest.mark.serve


@pytest.fixture(scope="module")
def server():
    with serve_model(tiny_model_path()) as srv:
        yield srv


def guard_for(srv, **kw) -> ProGuard:
    # transformers serve (5.x) fails on `stop` for VLMs: the backend cuts at </answer> itself
    return ProGuard(base_url=srv.base_url, model=srv.model, send_stop=False, max_tokens=24, **kw)


@pytest.mark.parametrize("kind", ["text", "image", "text-image"])
def test_gibberish_answer_is_error_turned_into_block(server, kind):
    guard = guard_for(server, timeout=120)
    img = png_bytes((56, 56))
    if kind == "text":
        d = guard.check("How do I bake bread?", "Mix flour and water.")
    elif kind == "image":
        d = guard.check("", images=[img])
    else:
        d = guard.check("What is in this picture?", images=[img])
    assert d.status == "error", d
    assert d.allowed is False and d.blocked
    assert d.fail_mode_applied == "closed"
    assert d.error_type in ("parse", "backend"), d.error_message
    assert d.verdict is None
    guard.close()


def test_model_discovery_from_v1_models(server):
    guard = ProGuard(base_url=server.base_url, send_stop=False, max_tokens=16, timeout=120)
    d = guard.check("hello")
    assert d.status == "error" and d.blocked
    assert guard.judge.backend.model == server.model  # type: ignore[attr-defined]


async def test_server_stopped_mid_batch_every_check_ends_fail_closed():
    timeout = 20.0
    with serve_model(tiny_model_path()) as srv:
        guard = ProGuard(base_url=srv.base_url, model=srv.model, send_stop=False, max_tokens=96,
                         timeout=timeout, max_retries=1, max_concurrency=4)
        started = time.monotonic()
        batch = asyncio.ensure_future(guard.acheck_batch([f"question number {i}" for i in range(12)]))
        await asyncio.sleep(1.0)  # let requests reach the server
        await asyncio.to_thread(srv.stop)
        decisions = await asyncio.wait_for(batch, timeout=timeout * 3)
        elapsed = time.monotonic() - started
    assert len(decisions) == 12
    assert all(d.blocked for d in decisions)
    assert all(d.status == "error" for d in decisions)
    assert {d.fail_mode_applied for d in decisions} == {"closed"}
    assert elapsed < timeout * 3  # nothing hung past its deadline (correctness bound, not a benchmark)
