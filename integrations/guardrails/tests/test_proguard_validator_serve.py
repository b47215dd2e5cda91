"""End to end through a real ``transformers serve`` on loopback serving the tiny random
Qwen2.5-VL built offline by ``proguard_rails.testing``: the validator reaches the user's
endpoint (and nothing else), and the gibberish answers become fail-closed FailResults.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

from guardrails import AsyncGuard, Guard
from guardrails_ai.proguard import DEFAULT_REFUSAL, ProGuardValidator

from proguard_rails import OpenAIBackend, ProGuard
from proguard_rails.testing import serve_model, tiny_model_path

pytestmark = [pytest.mark.serve, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def served() -> Iterator[Any]:
    with serve_model(tiny_model_path()) as server:
        yield server


async def test_served_tiny_model_validator_fails_closed(served, _offline):  # type: ignore[no-untyped-def]
    # transformers serve 5.x rejects `stop` for VLMs; the backend cuts at </answer> itself.
    backend = OpenAIBackend(served.base_url, served.model, send_stop=False, max_tokens=16, timeout=120)
    pg = ProGuard(backend=backend, cache_size=0)
    try:
        g = Guard().use(ProGuardValidator(pg, on_fail="fix"))
        out = g.validate("Paris is the capital of France.", metadata={"request": "Capital of France?"})
        assert out.validated_output == DEFAULT_REFUSAL
        result = g.history.last.iterations.last.outputs.validator_logs[0].validation_result
        assert result.metadata["decision_status"] == "error"
        assert result.metadata["proguard"]["error_type"] in ("parse", "backend")
        assert "could not judge" in result.error_message

        ag = AsyncGuard().use(ProGuardValidator(pg, on_fail="fix"))
        assert (await ag.validate("hello", metadata={"request": "hi"})).validated_output == DEFAULT_REFUSAL
    finally:
        await pg.aclose()


def test_served_tiny_model_validator_built_from_base_url(served, _offline):  # type: ignore[no-untyped-def]
    v = ProGuardValidator(base_url=served.base_url, model=served.model, guard_settings={"timeout": 120}, on_fail="noop")
    out = Guard().use(v).validate("Paris is the capital of France.")
    assert out.validation_passed is False  # judged at the user's endpoint: unjudgeable -> fail-closed
    assert v.guard.settings.base_url == served.base_url
