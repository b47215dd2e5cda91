"""TransformersBackend on the tiny offline Qwen2.5-VL (CPU, float32).

What is pinned down here: loading through ``from_pretrained``; one model shared by every backend
and guard on a path; batched, one-by-one, prefix-reuse and plain ``generate`` outputs identical
(text, image, text-image, several images); first-step logits of the reuse path equal to a full
forward pass; stop strings and token limits; the engine's fail-closed handling of the tiny
model's gibberish; coalescing of concurrent calls; thread safety; error isolation; timeouts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import subprocess
import sys
import threading

import pytest

from proguard_rails import ConfigurationError, Policy, ProGuard
from proguard_rails.errors import BackendError, BackendTimeoutError
from proguard_rails.inputs import ImageData, Modality, build_request
from proguard_rails.protocol import RenderedPrompt, render
from tests.helpers import png_bytes
from tests.local.helpers import SHORT_SYSTEM, texts

pytest.importorskip("torch")
pytest.importorskip("transformers")

from proguard_rails.backends.transformers_local import TransformersBackend, loaded_models

MAX_NEW = 16


@pytest.fixture(scope="module")
def reuse(tiny_path):
    backend = TransformersBackend(tiny_path, max_new_tokens=MAX_NEW, prefix_cache=True, batch_size=8)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def plain(tiny_path):
    backend = TransformersBackend(tiny_path, max_new_tokens=MAX_NEW, prefix_cache=False, batch_size=8)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def released_prompts(images):
    """The released templates with the default policy (~3.7k tokens with the tiny tokenizer)."""
    return [
        render(build_request("How do I bake bread at home?", "Mix flour, water, salt and yeast.")),
        render(build_request("Tell me a story about a cat who learns to sail. " * 4)),
        render(build_request("What is shown here?", images=[images[1].data])),
        render(build_request("", images=[images[0].data])),
    ]


def test_import_stays_light():
    code = (
        "import sys, proguard_rails.backends.transformers_local, proguard_rails.backends.vllm_local\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_loads_through_from_pretrained(reuse, tiny_path):
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    assert isinstance(reuse.model, Qwen2_5_VLForConditionalGeneration)
    assert reuse.model.dtype == torch.float32  # float32 on CPU
    assert reuse.model.device.type == "cpu"
    assert not reuse.model.training
    assert reuse.processor.tokenizer.padding_side == "left"
    assert reuse.identity() == f"transformers:{tiny_path.name}"
    assert reuse.params.stop == ("</answer>",)


def test_one_model_shared_by_backends_and_guards(reuse, tiny_path):
    other = TransformersBackend(str(tiny_path) + "/", prefix_cache=False, batch_size=2)  # same folder
    guards = [ProGuard(model_path=str(tiny_path), backend="transformers", max_tokens=16) for _ in range(3)]
    try:
        assert other.model is reuse.model
        assert other.shared is reuse.shared  # same worker thread, same prefix caches
        for g in guards:
            assert isinstance(g.judge.backend, TransformersBackend)
            assert g.judge.backend.model is reuse.model
        keys = [k for k in loaded_models() if k[0] == os.path.realpath(tiny_path) and k[3] == ""]
        assert keys == [reuse._key]  # one model for the path, however it was spelled
    finally:
        other.close()
        for g in guards:
            g.close()
    # A backend that is garbage collected without close() gives its reference back too.
    extra = TransformersBackend(tiny_path)
    key = extra._key
    from proguard_rails.backends.transformers_local import _MODELS

    users = _MODELS.users(key)
    del extra
    gc.collect()
    assert _MODELS.users(key) == users - 1
    assert reuse.shared is _MODELS.get(key)  # the module fixture still holds it


def test_model_is_freed_when_last_backend_closes(tiny_path):
    backend = TransformersBackend(tiny_path, dtype="float32", attn_implementation="eager")
    key = backend._key
    assert key in loaded_models()
    worker_thread = backend.shared.worker._thread
    backend.close()
    assert key not in loaded_models()
    worker_thread.join(timeout=10)
    assert not worker_thread.is_alive()
    with pytest.raises(BackendError, match="closed"):
        backend.generate_batch([RenderedPrompt(Modality.TEXT, SHORT_SYSTEM, "hi", ())])


def test_batched_one_by_one_reuse_and_plain_outputs_identical(reuse, plain, short_prompts):
    batched_reuse = texts(reuse.generate_batch(short_prompts))
    batched_plain = texts(plain.generate_batch(short_prompts))
    single_reuse = [texts(reuse.generate_batch([p]))[0] for p in short_prompts]
    single_plain = [texts(plain.generate_batch([p]))[0] for p in short_prompts]
    assert batched_reuse == batched_plain == single_reuse == single_plain
    # Meaningful only if the conversations actually drive the output.
    assert len(set(batched_plain)) >= 4
    assert all(batched_plain)


def test_reuse_prefill_logits_match_a_full_forward(reuse, short_prompts, released_prompts):
    """Tighter than comparing tokens: an off-by-one M-RoPE position shifts these logits by ~1e-3."""
    import torch

    shared = reuse.shared
    for prompts in (short_prompts, released_prompts[:2], released_prompts[2:3], released_prompts[3:]):
        before = shared.stats["conversation_only_encodes"]
        with torch.inference_mode():
            state = shared.prefill_with_prefix(prompts, reuse.params)
            assert state is not None
            full = shared.model(**shared._encode(prompts, reuse.params)).logits[:, -1]
        torch.testing.assert_close(state.logits, full, atol=1e-5, rtol=1e-5)
        # the system turn came from the cache: only the conversations were tokenized
        assert shared.stats["conversation_only_encodes"] == before + 1


def _unpadded(enc, key, i):
    return enc[key][i][enc["attention_mask"][i].bool()].tolist()


def test_cached_system_ids_plus_conversation_ids_equal_the_whole_prompt_ids(reuse, short_prompts, released_prompts):
    """The reuse path tokenizes only what follows the system turn and puts the cached system-turn
    ids in front: that must be exactly the whole prompt's tokenization (ids, token types, images)."""
    import torch

    shared = reuse.shared
    # one system turn per group: the released text, text-image and image prompts differ
    for prompts in (short_prompts, released_prompts[:2], released_prompts[2:3], released_prompts[3:]):
        prefix = shared._prefix_for(prompts[0].system)
        assert prefix is not None and prefix.boundary == "<|im_start|>"
        assert prefix.text.startswith("<|im_start|>system\n") and prefix.text.endswith("<|im_end|>\n")
        parts = shared._encode_after_prefix(prompts, reuse.params, prefix)
        whole = shared._encode(prompts, reuse.params)
        assert parts is not None
        assert parts["input_ids"].shape[1] < whole["input_ids"].shape[1] - len(prefix.ids) + 1
        for i in range(len(prompts)):
            assert prefix.ids + _unpadded(parts, "input_ids", i) == _unpadded(whole, "input_ids", i)
            types = _unpadded(whole, "mm_token_type_ids", i)
            assert [0] * len(prefix.ids) + _unpadded(parts, "mm_token_type_ids", i) == types
        if "pixel_values" in whole:
            torch.testing.assert_close(parts["pixel_values"], whole["pixel_values"], atol=0, rtol=0)
            assert parts["image_grid_thw"].tolist() == whole["image_grid_thw"].tolist()


def test_system_turn_cache_is_per_policy_and_a_part_that_cannot_be_split_falls_back(reuse, plain):
    """Two policies in the same template give two system turns: each check must reuse its own
    (a cache keyed by template alone would prefill one policy's checks on the other's system turn)."""
    import torch

    from proguard_rails.taxonomy import Taxonomy

    small = Taxonomy.default().keep_only(["C1", "C8"])
    reqs = [build_request("How do I build a bomb?", "Here is how."), build_request("Bake bread?")]
    default_prompts = [render(r) for r in reqs]
    small_prompts = [render(r, small) for r in reqs]
    assert default_prompts[0].system != small_prompts[0].system
    shared = reuse.shared
    before = dict(shared.stats)
    mixed = [default_prompts[0], small_prompts[0], default_prompts[1], small_prompts[1]]
    got = [texts(reuse.generate_batch([p]))[0] for p in mixed]  # alternate policies, one at a time
    assert got == texts(plain.generate_batch(mixed))
    after = shared.stats
    assert after["prefix_builds"] - before["prefix_builds"] <= 2  # each system turn built at most once
    # every check reused its own system turn: no mismatch caught by the safety net, no fallback
    assert after["conversation_only_encodes"] - before["conversation_only_encodes"] == 4
    assert after["prefix_fallbacks"] == before["prefix_fallbacks"]
    with torch.inference_mode():
        for prompts in (default_prompts, small_prompts):
            state = shared.prefill_with_prefix(prompts, reuse.params)
            full = shared.model(**shared._encode(prompts, reuse.params)).logits[:, -1]
            torch.testing.assert_close(state.logits, full, atol=1e-5, rtol=1e-5)
    # Where the conversation part cannot be tokenized alone, whole prompts are tokenized and
    # checked against the cached ids instead; the result is the same.
    prefix = shared._prefix_for(small_prompts[0].system)
    boundary, prefix.boundary = prefix.boundary, None
    try:
        encodes = shared.stats["conversation_only_encodes"]
        with torch.inference_mode():
            state = shared.prefill_with_prefix(small_prompts, reuse.params)
            full = shared.model(**shared._encode(small_prompts, reuse.params)).logits[:, -1]
        torch.testing.assert_close(state.logits, full, atol=1e-5, rtol=1e-5)
        assert shared.stats["conversation_only_encodes"] == encodes
    finally:
        prefix.boundary = boundary


def test_released_prompt_reuse_matches_plain(reuse, plain, released_prompts):
    before = dict(reuse.stats)
    with_reuse = reuse.generate_batch(released_prompts)
    without = plain.generate_batch(released_prompts)
    assert texts(with_reuse) == texts(without)
    for gen in with_reuse:
        assert gen.usage["cached_tokens"] > 3000  # the policy was not prefilled again
        assert gen.usage["prompt_tokens"] > gen.usage["cached_tokens"]
        assert gen.usage["completion_tokens"] == MAX_NEW
        assert gen.finish_reason == "length"
    assert all(g.usage["cached_tokens"] == 0 for g in without)
    stats = reuse.stats
    assert stats["reuse_batches"] > before["reuse_batches"]
    assert stats["prefix_fallbacks"] == before["prefix_fallbacks"]


def test_prefix_cache_is_built_once_per_system_prompt(tiny_path, short_prompts):
    backend = TransformersBackend(tiny_path, max_new_tokens=4, prefix_cache=True, batch_size=2,
                                  attn_implementation="sdpa")  # its own model: counters start at 0
    try:
        texts(backend.generate_batch(short_prompts[:3]))  # one system prompt, two batches
        texts(backend.generate_batch(short_prompts[:1]))
        stats = backend.stats
        assert stats["prefix_builds"] == 1
        assert stats["prefix_hits"] == 2
        assert stats["reuse_batches"] == 3
        assert stats["largest_batch"] == 2
    finally:
        backend.close()


def test_stop_string_ends_generation_the_same_way_on_both_paths(reuse, short_prompts):
    import torch

    shared = reuse.shared
    long_params = dataclasses.replace(reuse.params, max_new_tokens=24, stop=())
    with torch.inference_mode():
        free = shared._generate_plain(short_prompts[:2], long_params)
    text0 = free[0][0]
    # A plain-ASCII string the tiny model is known to produce for the first prompt, mid-answer.
    start = next(i for i in range(4, len(text0) - 3)
                 if text0[i:i + 3].isascii() and text0[i:i + 3].isalnum() and text0.find(text0[i:i + 3]) == i)
    stop = text0[start:start + 3]
    params = dataclasses.replace(long_params, stop=(stop,))
    with torch.inference_mode():
        plain_out = shared._generate_plain(short_prompts[:2], params)
        reuse_out = shared._generate_with_prefix(short_prompts[:2], params)
    assert [o[:2] for o in plain_out] == [o[:2] for o in reuse_out]
    text, reason, usage = reuse_out[0]
    assert reason == "stop"
    assert text.endswith(stop) and text == text0[: text0.index(stop) + len(stop)]
    assert usage["completion_tokens"] < 24


def test_guard_checks_end_as_fail_closed_errors_on_gibberish(tiny_path, images):
    """The tiny model cannot follow the protocol: every check is an unparseable answer, which the
    default policy turns into a block (an error, not an unsafe verdict)."""
    backend = TransformersBackend(tiny_path, max_new_tokens=MAX_NEW)
    guard = ProGuard(backend=backend)
    try:
        items = [
            "How do I bake bread?",
            ("How do I bake bread?", "Mix flour and water."),
            build_request("", images=[images[0].data]),
            build_request("What is this?", images=[images[1].data]),
        ]
        decisions = guard.check_batch(items)
        direct = texts(backend.generate_batch([render(guard.request(i) if not hasattr(i, "modality") else i)
                                               for i in items]))
        for decision, raw in zip(decisions, direct, strict=True):
            assert decision.status == "error"
            assert decision.allowed is False
            assert decision.error_type == "parse"
            assert decision.fail_mode_applied == "closed"
            assert decision.verdict is None
            assert decision.raw == raw
        single = guard.check("How do I bake bread?")
        assert single.status == "error" and single.allowed is False and single.raw == direct[0]
        opened = guard.check("How do I bake bread?", policy=Policy(fail_mode="open"))
        assert opened.status == "error" and opened.allowed is True and opened.fail_mode_applied == "open"
        assert len(guard.cache) == 0  # errors are never cached as verdicts
    finally:
        guard.close()


def test_settings_pick_the_transformers_backend(tiny_path, monkeypatch):
    monkeypatch.setenv("PROGUARD_MODEL_PATH", str(tiny_path))
    monkeypatch.setenv("PROGUARD_MAX_TOKENS", "16")
    monkeypatch.delenv("PROGUARD_BASE_URL", raising=False)
    monkeypatch.delenv("PROGUARD_BACKEND", raising=False)
    guard = ProGuard()
    try:
        backend = guard.judge.backend
        assert isinstance(backend, TransformersBackend)
        assert backend.params.max_new_tokens == 16
        assert guard.judge.identity() == f"generative:transformers:{tiny_path.name}"
    finally:
        guard.close()


async def test_concurrent_agenerate_calls_are_coalesced(tiny_path, short_prompts, plain):
    backend = TransformersBackend(tiny_path, max_new_tokens=MAX_NEW, prefix_cache=True, batch_size=8,
                                  attn_implementation="sdpa")
    try:
        before = backend.stats["worker_batches"]
        results = await asyncio.gather(*(backend.agenerate(p) for p in short_prompts[:3]))
        assert [r.text for r in results] == texts(plain.generate_batch(short_prompts[:3]))
        assert backend.stats["worker_batches"] - before < 3  # at least two calls shared a batch
        batch = await backend.agenerate_batch(short_prompts[:3])
        assert texts(batch) == [r.text for r in results]
    finally:
        await backend.aclose()


def test_thread_safe_concurrent_callers(reuse, plain, short_prompts):
    expected = texts(plain.generate_batch(short_prompts[:3]))
    outputs: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            order = short_prompts[:3] if i % 2 == 0 else list(reversed(short_prompts[:3]))
            got = texts(reuse.generate_batch(order))
            outputs[i] = got if i % 2 == 0 else list(reversed(got))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert all(outputs[i] == expected for i in range(4))


def test_a_broken_input_fails_alone(reuse, plain, short_prompts):
    broken = ImageData(data=b"not an image", mime="image/png", width=10, height=10, sha256="0" * 64)
    bad = RenderedPrompt(Modality.TEXT_IMAGE, SHORT_SYSTEM, "look", (broken,))
    results = reuse.generate_batch([short_prompts[0], bad, short_prompts[1]])
    assert isinstance(results[1], BackendError)
    assert texts([results[0], results[2]]) == texts(plain.generate_batch([short_prompts[0], short_prompts[1]]))


async def test_timeout_is_a_backend_timeout_error(tiny_path, short_prompts):
    backend = TransformersBackend(tiny_path, max_new_tokens=MAX_NEW, timeout=1e-4)
    try:
        results = await backend.agenerate_batch(short_prompts[:2])
        assert all(isinstance(r, BackendTimeoutError) for r in results)
        backend.timeout = None
        assert texts(await backend.agenerate_batch(short_prompts[:1]))
    finally:
        await backend.aclose()


def test_configuration_errors_say_what_to_do(tmp_path, tiny_path):
    with pytest.raises(ConfigurationError, match="PROGUARD_MODEL_PATH"):
        TransformersBackend(tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="PROGUARD_DTYPE"):
        TransformersBackend(tiny_path, dtype="float13")
    with pytest.raises(ConfigurationError, match="batch_size"):
        TransformersBackend(tiny_path, batch_size=0)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigurationError, match="PROGUARD_DEVICE"):
            TransformersBackend(tiny_path, device="cuda")


def test_pixel_limits_reach_the_processor(tiny_path):
    big = build_request("what is this?", images=[png_bytes((400, 300))])
    small = TransformersBackend(tiny_path, max_new_tokens=2, max_pixels=4 * 28 * 28, prefix_cache=False)
    large = TransformersBackend(tiny_path, max_new_tokens=2, max_pixels=32 * 28 * 28, prefix_cache=False)
    try:
        prompt = render(big)
        n_small = small.generate(prompt).usage["prompt_tokens"]
        n_large = large.generate(prompt).usage["prompt_tokens"]
        assert n_large - n_small >= 16  # more vision tokens under the larger budget
        assert small.params.max_pixels == 4 * 28 * 28
    finally:
        small.close()
        large.close()
