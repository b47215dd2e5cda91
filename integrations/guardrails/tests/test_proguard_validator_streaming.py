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
    md: dict = {}  # like Guardrails: one metadata object per stream until a result replaces it
    assert await v.async_validate_stream("Hello ", md) is None  # no sentence end yet
    res = await v.async_validate_stream("world. And", md)
    assert res.validated_chunk == "Hello world." and res.outcome == "pass"
    # like Guardrails, hand the result's metadata back with the next chunk: it carries the stream id
    res = await v.async_validate_stream(" more", res.metadata, remainder=True)  # the end of the stream
    assert res.validated_chunk == " And more"
    # without the stream id, a chunk after an emitted sentence starts a new stream
    assert (await v.async_validate_stream("Fresh start.", {}, remainder=True)).validated_chunk == "Fresh start."


# ------------------------------------------------------------------ concurrent streams through one Guard
def lockstep_llm(parts, barrier):  # type: ignore[no-untyped-def]
    """A sync LLM whose streams advance chunk by chunk together (every stream waits for the others)."""

    def llm(*, messages=None, **kwargs):  # type: ignore[no-untyped-def]
        for p in parts:
            barrier.wait(timeout=30)
            yield p

    return llm


def _judged_prefixes_ok(backend, streams):  # type: ignore[no-untyped-def]
    """Every text the guard judged is the start of one stream's own text, never a mixture."""
    wholes = ["".join(s) for s in streams]
    for p in backend.prompts:
        agent = p.user_text.split("\nAgent:", 1)[1].rsplit("\n<END CONVERSATION>", 1)[0].strip()
        assert any(w.startswith(agent) for w in wholes), f"judged a mixture of streams: {agent!r}"


@pytest.mark.parametrize(("action", "shared_metadata"), [("fix", False), ("noop", False), ("fix", True)])
def test_scripted_threads_streaming_through_one_guard_keep_their_own_state(action, shared_metadata,  # type: ignore[no-untyped-def]
                                                                          make_validator, scripted_guard):
    """Four threads stream through one Guard in lock step; with ``shared_metadata`` they even
    pass the very same metadata dict (a module-level constant, say)."""
    import threading

    shared = {"request": "How do fireworks work?"}

    guard = Guard().use(make_validator(on_fail=action))  # one Guard, one validator instance
    kinds = [UNSAFE, CLEAN, UNSAFE, CLEAN]
    barrier = threading.Barrier(len(kinds))
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            outs = guard(llm_api=lockstep_llm(kinds[i], barrier), messages=MESSAGES, stream=True,
                         metadata=shared if shared_metadata else None)
            results[i] = [(o.validated_output, o.validation_passed) for o in outs]
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(kinds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for i, parts in enumerate(kinds):
        text = "".join(v for v, _ in results[i])
        if parts is CLEAN:
            assert text == "".join(CLEAN) and all(ok for _, ok in results[i])
        elif action == "fix":
            assert text == "Fireworks burn metal salts." + DEFAULT_REFUSAL  # the unsafe continuation withheld
        else:
            assert results[i][-1][1] is False  # noop: released unchanged, but reported as failed
    _judged_prefixes_ok(scripted_guard.judge.backend, [UNSAFE, CLEAN])


async def test_scripted_async_streams_in_lockstep_keep_their_own_state(make_validator, scripted_guard):  # type: ignore[no-untyped-def]
    import asyncio

    v = make_validator(on_fail="fix")
    kinds = [UNSAFE, CLEAN, CLEAN, UNSAFE]
    step = [0]
    cond = asyncio.Condition()

    def llm_for(parts):  # type: ignore[no-untyped-def]
        async def gen():  # type: ignore[no-untyped-def]
            for n, p in enumerate(parts):
                async with cond:  # chunk n of every stream goes out before chunk n+1 of any
                    step[0] += 1
                    cond.notify_all()
                    await cond.wait_for(lambda n=n: step[0] >= (n + 1) * len(kinds))
                yield p

        async def llm(*, messages=None, **kwargs):  # type: ignore[no-untyped-def]
            return types.SimpleNamespace(completion_stream=gen())

        return llm

    async def one(parts):  # type: ignore[no-untyped-def]
        outs = await AsyncGuard().use(v)(llm_api=llm_for(parts), messages=MESSAGES, stream=True)
        return "".join([o.validated_output async for o in outs])

    texts = await asyncio.wait_for(asyncio.gather(*(one(k) for k in kinds)), 60)
    for parts, text in zip(kinds, texts, strict=True):
        assert text == ("".join(CLEAN) if parts is CLEAN else "Fireworks burn metal salts." + DEFAULT_REFUSAL)
    _judged_prefixes_ok(scripted_guard.judge.backend, [UNSAFE, CLEAN])


async def test_scripted_interleaved_direct_streams_in_one_thread(make_validator, scripted_guard):  # type: ignore[no-untyped-def]
    """Two streams fed alternately by one caller: each keeps its own text and its own block."""
    v = make_validator(on_fail="noop")
    md_a, md_b = {"request": "fireworks?"}, {"request": "fireworks?"}
    res_a = v.validate_stream("Fireworks burn metal salts. Then you wire the ", md_a)
    res_b = v.validate_stream("Fireworks burn ", md_b)  # no sentence end yet: held
    assert res_a.outcome == "pass" and res_b is None
    md_a = res_a.metadata
    res_a = v.validate_stream("detonator to the cell. ", md_a)
    assert res_a.outcome == "fail"
    res_b = v.validate_stream("metal salts. ", md_b)
    assert res_b.outcome == "pass" and res_b.validated_chunk == "Fireworks burn metal salts."
    res_b = v.validate_stream("Colors come from the metals.", res_b.metadata, remainder=True)
    assert res_b.outcome == "pass" and res_b.validated_chunk == " Colors come from the metals."
    res_a = v.validate_stream("Last part.", res_a.metadata, remainder=True)
    assert res_a.outcome == "fail" and res_a.metadata.get("withheld")  # A's block stays A's
    _judged_prefixes_ok(scripted_guard.judge.backend,
                        [["Fireworks burn metal salts. Then you wire the detonator to the cell. "],
                         ["Fireworks burn metal salts. Colors come from the metals."]])


async def test_scripted_chunk_of_a_forgotten_stream_is_withheld(make_validator, monkeypatch):  # type: ignore[no-untyped-def]
    """Streams never ended are forgotten past a bound; a later chunk of one fails closed."""
    import guardrails_ai.proguard.main as main

    monkeypatch.setattr(main, "_MAX_OPEN_STREAMS", 2)
    v = make_validator(on_fail="noop")
    tagged = [v.validate_stream(f"Stream {i} starts.", {}).metadata for i in range(3)]  # the first is forgotten
    res = v.validate_stream(" More text.", tagged[0], remainder=True)
    assert res.outcome == "fail" and res.metadata["withheld"] and res.validated_chunk == " More text."
    res = v.validate_stream(" More text.", tagged[2], remainder=True)
    assert res.outcome == "pass" and res.validated_chunk == " More text."
