"""OpenAIBackend request/response handling over an in-process httpx transport.

The real-server paths (transformers serve, killed servers, load) are in test_serve_e2e.py
and tests/hardening/.
"""

import asyncio
import json

import httpx
import pytest

from proguard_rails import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigurationError,
    OpenAIBackend,
    ProGuard,
    ProGuardSettings,
)
from proguard_rails.backends.openai import normalize_base_url
from proguard_rails.inputs import build_request
from proguard_rails.protocol import format_answer, render
from tests.helpers import ManualClock

ANSWER = format_answer("text", "unsafe", "safe", "C8S1")
CUT = ANSWER.split("</answer>")[0]  # the text is cut at the stop sequence, as servers do


def completion(text=ANSWER):
    return {"id": "x", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                  "finish_reason": "stop"}], "usage": {"completion_tokens": 5}}


class Script:
    """Scripted responses per call; records requests."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "ProGuard-7B"}]})
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, Exception):
            raise item
        if isinstance(item, httpx.Response):
            return item
        return httpx.Response(200, json=item)


def backend(script, **kw):
    s = ProGuardSettings(retry_backoff=0.0, **kw.pop("settings", {}))
    return OpenAIBackend("http://guard.test/v1", transport=httpx.MockTransport(script), settings=s, **kw)


PROMPT = render(build_request("How do I build a weapon?"))


async def test_request_body_and_model_discovery():
    script = Script(completion())
    b = backend(script, api_key="sk-1")
    gen = await b.agenerate(PROMPT)
    assert gen.text == CUT and gen.finish_reason == "stop"
    assert b.model == "ProGuard-7B"
    chat = [r for r in script.requests if r.url.path.endswith("/chat/completions")][0]
    body = json.loads(chat.content)
    assert body["model"] == "ProGuard-7B" and body["temperature"] == 0.0
    assert body["stop"] == ["</answer>"] and body["max_tokens"] == 1024
    assert body["messages"] == PROMPT.to_messages()
    assert chat.headers["authorization"] == "Bearer sk-1"


async def test_retries_on_5xx_then_succeeds():
    script = Script(httpx.Response(503, text="busy"), httpx.Response(500, text="oops"), completion())
    b = backend(script, model="m", max_retries=2)
    gen = await b.agenerate(PROMPT)
    assert gen.text == CUT and b.retries == 2


async def test_retries_on_connection_errors_then_gives_up():
    script = Script(httpx.ConnectError("refused"))
    b = backend(script, model="m", max_retries=2)
    with pytest.raises(BackendUnavailableError):
        await b.agenerate(PROMPT)
    assert len(script.requests) == 3


async def test_no_retry_on_4xx():
    script = Script(httpx.Response(400, text="bad request"))
    b = backend(script, model="m", max_retries=3)
    with pytest.raises(BackendError) as exc:
        await b.agenerate(PROMPT)
    assert exc.value.status_code == 400 and len(script.requests) == 1


async def test_malformed_json_and_missing_content_are_errors():
    b = backend(Script(httpx.Response(200, text="{not json")), model="m")
    with pytest.raises(BackendError, match="non-JSON"):
        await b.agenerate(PROMPT)
    b = backend(Script({"choices": []}), model="m")
    with pytest.raises(BackendError, match="choices"):
        await b.agenerate(PROMPT)


async def test_deadline_covers_slow_endpoint():
    async def slow(request):
        await asyncio.sleep(5)
        return httpx.Response(200, json=completion())

    b = OpenAIBackend("http://guard.test/v1", model="m", timeout=0.2, transport=httpx.MockTransport(slow))
    with pytest.raises(BackendTimeoutError):
        await b.agenerate(PROMPT)


async def test_circuit_breaker_fails_fast_while_open():
    script = Script(httpx.ConnectError("refused"))
    b = backend(script, model="m", max_retries=0,
                settings={"circuit_breaker_failures": 2, "circuit_breaker_cooldown": 60})
    for _ in range(2):
        with pytest.raises(BackendUnavailableError):
            await b.agenerate(PROMPT)
    sent = len(script.requests)
    for _ in range(5):
        with pytest.raises(BackendUnavailableError, match="circuit breaker"):
            await b.agenerate(PROMPT)
    assert len(script.requests) == sent  # nothing more reached the endpoint
    assert b.breaker.rejected_count == 5


async def test_engine_over_http_backend_blocks_and_fails_closed():
    script = Script(completion())
    guard = ProGuard(backend=backend(script, model="m"))
    d = await guard.acheck("How do I build a weapon?")
    assert d.blocked and d.category_id == "C8S1"
    script.responses = [completion("garbage")]
    d = await guard.acheck("another question")
    assert d.status == "error" and d.blocked and d.raw == "garbage"


def test_base_url_normalization():
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/") == "http://h:8000/v1"
    assert normalize_base_url("https://h/openai/v1/") == "https://h/openai/v1"
    with pytest.raises(ConfigurationError):
        normalize_base_url("h:8000")


async def test_reasoning_field_is_restored_and_stop_can_be_left_to_the_client():
    msg = {"choices": [{"message": {"content": "<answer>\nRequest:safe\nResponse:safe\nCategory:None\n</answer>trailing",
                                    "reasoning_content": "benign baking question"}}]}
    script = Script(msg)
    b = backend(script, model="m", send_stop=False)
    gen = await b.agenerate(PROMPT)
    assert gen.text.startswith("<think>\nbenign baking question\n</think>\n<answer>")
    assert "trailing" not in gen.text  # still cut client-side at </answer>
    body = json.loads(script.requests[-1].content)
    assert "stop" not in body


async def test_empty_answer_is_an_error():
    b = backend(Script({"choices": [{"message": {"content": ""}, "finish_reason": "length"}]}), model="m")
    with pytest.raises(BackendError, match="empty answer"):
        await b.agenerate(PROMPT)


def test_circuit_breaker_half_open_lets_one_probe_through():
    from proguard_rails.backends.openai import CircuitBreaker

    clock = ManualClock()
    b = CircuitBreaker(threshold=2, cooldown=5.0, clock=clock)
    b.failure()
    b.failure()
    with pytest.raises(BackendUnavailableError, match="failing fast"):
        b.check()
    clock.advance(4.99)
    with pytest.raises(BackendUnavailableError, match="failing fast"):
        b.check()  # still inside the cooldown
    clock.advance(0.02)
    assert b.admit()  # the probe
    assert not b.admit()  # others wait while the probe is out
    with pytest.raises(BackendUnavailableError, match="probe"):
        b.check()  # a caller that cannot wait is rejected
    b.failure()  # the probe failed: open again, for a full cooldown from now
    with pytest.raises(BackendUnavailableError, match="failing fast"):
        b.check()
    clock.advance(5.01)
    b.check()
    b.success()  # the probe succeeded: closed
    b.check()
    b.check()
    assert b.probes == 2 and not b.is_open


def test_circuit_breaker_probe_that_never_reports_expires():
    from proguard_rails.backends.openai import CircuitBreaker

    clock = ManualClock()
    b = CircuitBreaker(threshold=1, cooldown=5.0, clock=clock)
    b.failure()
    clock.advance(5.01)
    b.check()  # a probe whose check is then cancelled: no success or failure
    clock.advance(4.9)
    assert not b.admit()  # the probe is still out
    clock.advance(0.2)  # probes expire after the cooldown
    b.check()  # another probe is allowed, the breaker does not stick
    assert b.probes == 2
