"""OpenAIBackend.agenerate_batch: one result per prompt, errors returned in place (never raised),
for a single prompt (awaited directly) as for several (gathered); cancellation still propagates."""

import asyncio

import httpx
import pytest

from proguard_rails import BackendError, Generation, OpenAIBackend, ProGuardSettings
from proguard_rails.inputs import build_request
from proguard_rails.protocol import format_answer, render

ANSWER = format_answer("text", "safe", "safe", None)


def _backend(handler) -> OpenAIBackend:
    return OpenAIBackend("http://guard.test/v1", model="m", transport=httpx.MockTransport(handler),
                         settings=ProGuardSettings(retry_backoff=0.0, max_retries=0))


def _reply(request: httpx.Request) -> httpx.Response:
    if b"fail-me" in request.content:
        return httpx.Response(400, text="rejected")
    return httpx.Response(200, json={"choices": [{"message": {"content": ANSWER}, "finish_reason": "stop"}]})


@pytest.mark.parametrize("texts", [["fail-me"], ["ok"], ["ok", "fail-me", "ok"]])
async def test_errors_come_back_in_place_for_one_or_many_prompts(texts):
    results = await _backend(_reply).agenerate_batch([render(build_request(t)) for t in texts])
    assert len(results) == len(texts)
    for text, res in zip(texts, results, strict=True):
        if text == "fail-me":
            assert isinstance(res, BackendError) and res.status_code == 400
        else:
            assert isinstance(res, Generation) and res.text.startswith("<think>")


async def test_cancelling_a_single_prompt_batch_propagates():
    started = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    task = asyncio.ensure_future(_backend(hang).agenerate_batch([render(build_request("x"))]))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
