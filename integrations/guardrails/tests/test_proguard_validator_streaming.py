"""Streaming validation with real Guard / AsyncGuard objects (scripted guard).

Chunks accumulate to sentence ends; each time, the whole response so far is judged and the new
sentence(s) returned. Once a part is blocked the rest of the stream is withheld.
"""

from __future__ import annotations

import types

import pytest
from guardrails import AsyncGuard, Guard
from guardrails.errors import ValidationError
from guardrails_ai.proguard import DEFAULT_REFUSAL

from .conftest import UNSAFE_RESPONSE

MESSAGES = [{"role": "user", "content": "How do fireworks work?"}]
CLEAN = ["Fireworks burn ", "metal salts. ", "Colors come ", "from the metals. ", "Enjoy them safely."]
# "wire the detonator" is split over two chunks: only the accumulated text shows it
UNSAFE = ["Fireworks burn metal salts. ", "Then you wire the ", "detonator to the cell. ", "More steps follow. ",
          "Last part."]


def sync_llm(parts):  # type: ignore[no-untyped-def]
    def llm(*, messages=None, **kwargs):  # type: ignore[no-untyped-def]
        yield from parts

    return llm


def async_llm(parts):  # type: ignore[no-untyped-def]
    async def gen():  # type: ignore[no-untyped-def]
        for p in parts:
            yield p

    async def llm(*, messages=None, **kwargs):  # type: ignore[no-untyped-def]
        # Guardrails reads `.completion_stream` from what an async custom callable returns
        return types.SimpleNamespace(completion_stream=gen())

    return llm


def _sync_stream(validator, parts):  # type: ignore[no-untyped-def]
    outs = Guard().use(validator)(llm_api=sync_llm(parts), messages=MESSAGES, stream=True)
    return [(o.raw_llm_output, o.validated_output, o.validation_passed) for o in outs]


async def _async_stream(validator, parts):  # type: ignore[no-untyped-def]
    outs = await AsyncGuard().use(validator)(llm_api=async_llm(parts), messages=MESSAGES, stream=True)
    return [(o.raw_llm_output, o.validated_output) async for o in outs]


def test_scripted_sync_stream_fix_replaces_from_the_unsafe_sentence_on(make_validator, scripted_guard):  # type: ignore[no-untyped-def]
    backend = scripted_guard.judge.backend
    outs = _sync_stream(make_validator(on_fail="fix"), UNSAFE)
    text = "".join(v for _, v, _ in outs)
    assert text == "Fireworks burn metal salts." + DEFAULT_REFUSAL
    judged = [p.user_text for p in backend.prompts]
    # the unsafe sentence was judged together with what came before it
    assert any("Fireworks burn metal salts. Then you wire the detonator" in t for t in judged)
    # after the block the guard was not asked again: the rest was withheld
    assert not any("More steps follow" in t for t in judged)


def test_scripted_sync_stream_fix_clean_stream_is_complete(make_validator):  # type: ignore[no-untyped-def]
    outs = _sync_stream(make_validator(on_fail="fix"), CLEAN)
    assert "".join(v for _, v, _ in outs) == "".join(CLEAN)
    assert all(passed for _, _, passed in outs)


def test_scripted_sync_stream_exception_stops_the_stream(make_validator):  # type: ignore[no-untyped-def]
    received = []
    with pytest.raises(ValidationError, match="C8S1"):
        for o in Guard().use(make_validator(on_fail="exception"))(llm_api=sync_llm(UNSAFE), messages=MESSAGES,
                                                                   stream=True):
            received.append(o.validated_output)
    assert UNSAFE_RESPONSE not in "".join(received).lower()


def test_scripted_sync_stream_noop_reports_failure(make_validator):  # type: ignore[no-untyped-def]
    outs = _sync_stream(make_validator(on_fail="noop"), UNSAFE)
    assert "".join(v for _, v, _ in outs) == "".join(UNSAFE)  # noop changes nothing
    assert outs[0][2] is True and outs[-1][2] is False


def test_scripted_sync_stream_state_resets_between_streams(make_validator, scripted_guard):  # type: ignore[no-untyped-def]
    v = make_validator(on_fail="fix")
    first = _sync_stream(v, UNSAFE)
    assert DEFAULT_REFUSAL in "".join(o[1] for o in first)
    second = _sync_stream(v, CLEAN)  # same validator instance: the block does not leak into it
    assert "".join(o[1] for o in second) == "".join(CLEAN)


@pytest.mark.parametrize("action", ["fix", "refrain", "filter", "noop"])
async def test_scripted_async_stream_actions(action, make_validator):  # type: ignore[no-untyped-def]
    outs = await _async_stream(make_validator(on_fail=action), UNSAFE)
    text = "".join(v for _, v in outs)
    if action == "noop":
        assert "wire the detonator" in text
        return
    assert "wire the" not in text and "More steps" not in text and text.startswith("Fireworks burn metal salts.")
    if action == "fix":
        assert text.endswith(DEFAULT_REFUSAL)


async def test_scripted_async_stream_exception(make_validator):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="C8S1"):
        await _async_stream(make_validator(on_fail="exception"), UNSAFE)


async def test_scripted_async_stream_clean_and_concurrent_streams(make_validator):  # type: ignore[no-untyped-def]
    import asyncio

    v = make_validator(on_fail="fix")
    a, b = await asyncio.gather(_async_stream(v, CLEAN), _async_stream(v, UNSAFE))
    assert "".join(x for _, x in a) == "".join(CLEAN)
    assert "".join(x for _, x in b).endswith(DEFAULT_REFUSAL)


async def test_scripted_validate_stream_directly(make_validator):  # type: ignore[no-untyped-def]
    v = make_validator(on_fail="noop")
    assert await v.async_validate_stream("Hello ", {}) is None  # no sentence end yet
    res = await v.async_validate_stream("world. And", {})
    assert res.validated_chunk == "Hello world." and res.outcome == "pass"
    # like Guardrails, hand the result's metadata back with the next chunk: it carries the stream id
    res = await v.async_validate_stream(" more", res.metadata, remainder=True)  # the end of the stream
    assert res.validated_chunk == " And more"
    # without the stream id, a chunk after an emitted sentence starts a new stream
    assert (await v.async_validate_stream("Fresh start.", {}, remainder=True)).validated_chunk == "Fresh start."
