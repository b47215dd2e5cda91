"""VLLMBackend.

vLLM is not installed on CPU test machines. The wrapper logic (engine arguments, sampling
parameters, chat messages, batching, sharing, result mapping, error isolation) is tested against
a scripted stand-in for the ``vllm`` module; the real engine runs only where vLLM and a GPU are
present (``scripts/gpu_check_vllm.py`` exercises it on any checkpoint).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from proguard_rails import ConfigurationError, MissingDependencyError, ProGuard, ProGuardSettings
from proguard_rails.backends.scripted import safe_answer, unsafe_answer
from proguard_rails.errors import BackendError
from proguard_rails.inputs import Modality, build_request
from proguard_rails.protocol import RenderedPrompt, render
from tests.helpers import png_bytes
from tests.local.helpers import SHORT_SYSTEM

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.fixture
def checkpoint(tmp_path):
    """A folder that looks like a checkpoint (the scripted engine never reads it)."""
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


# ------------------------------------------------------------------ without vLLM


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_missing_vllm_names_the_extra(checkpoint):
    with pytest.raises(MissingDependencyError, match=r"proguard-rails\[vllm\]"):
        from proguard_rails.backends import VLLMBackend

        VLLMBackend(checkpoint)
    with pytest.raises(MissingDependencyError, match=r"proguard-rails\[vllm\]"):
        ProGuard(model_path=str(checkpoint), backend="vllm")


# ------------------------------------------------------------------ scripted stand-in for vllm


@dataclass
class _Completion:
    text: str
    token_ids: list[int]
    finish_reason: str = "stop"


@dataclass
class _RequestOutput:
    prompt_token_ids: list[int]
    outputs: list[_Completion]
    num_cached_tokens: int = 0


@dataclass
class _SamplingParams:
    temperature: float = 1.0
    max_tokens: int = 16
    stop: list[str] = field(default_factory=list)
    include_stop_str_in_output: bool = False
    repetition_penalty: float = 1.0
    skip_special_tokens: bool = True


class _LLM:
    """Answers from the user text: 'bomb' -> unsafe, 'explode' -> the engine raises, else safe."""

    instances: list[_LLM] = []
    gate = threading.Event()  # holds a prompt containing "gate" until set

    def __init__(self, model: str, **kwargs: Any) -> None:
        self.model = model
        self.kwargs = kwargs
        self.calls: list[tuple[list[list[dict[str, Any]]], _SamplingParams]] = []
        self.seen_prefixes: set[str] = set()
        _LLM.instances.append(self)

    def chat(self, messages, sampling_params, use_tqdm=True):
        assert use_tqdm is False
        self.calls.append((messages, sampling_params))
        outs = []
        for conv in messages:
            system = conv[0]["content"]
            user_parts = conv[1]["content"]
            text = user_parts[-1]["text"]
            if "explode" in text:
                raise ValueError("prompt too long for max_model_len")
            if "gate" in text:
                assert _LLM.gate.wait(timeout=30)
            cached = len(system) if system in self.seen_prefixes else 0
            self.seen_prefixes.add(system)
            # The text format also parses for image-only prompts (the Response line is ignored).
            answer = unsafe_answer("C8S1") if "bomb" in text else safe_answer()
            outs.append(_RequestOutput(list(range(len(system) + len(text))),
                                       [_Completion(answer, list(range(7)))], cached))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = _LLM
    module.SamplingParams = _SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    _LLM.instances.clear()
    _LLM.gate.clear()
    yield module
    _LLM.gate.set()


def _prompt(text: str, images=()) -> RenderedPrompt:
    return RenderedPrompt(Modality.TEXT_IMAGE if images else Modality.TEXT, SHORT_SYSTEM, text, tuple(images))


def test_scripted_engine_arguments_and_sampling(fake_vllm, checkpoint):
    from proguard_rails.backends.vllm_local import VLLMBackend

    settings = ProGuardSettings(max_tokens=64, max_images=2, dtype="bfloat16")
    backend = VLLMBackend(checkpoint, settings=settings, max_pixels=1280 * 28 * 28, gpu_memory_utilization=0.5)
    try:
        (llm,) = _LLM.instances
        assert llm.model == str(checkpoint.resolve())
        assert llm.kwargs["enable_prefix_caching"] is True
        assert llm.kwargs["limit_mm_per_prompt"] == {"image": 2}
        assert llm.kwargs["dtype"] == "bfloat16"
        assert llm.kwargs["gpu_memory_utilization"] == 0.5
        assert llm.kwargs["mm_processor_kwargs"] == {"max_pixels": 1280 * 28 * 28}
        gen = backend.generate_batch([_prompt("hello")])[0]
        assert not isinstance(gen, BaseException)
        (messages, params), = llm.calls
        assert params.temperature == 0.0 and params.max_tokens == 64
        assert params.stop == ["</answer>"] and params.include_stop_str_in_output
        assert params.repetition_penalty == 1.0
        assert gen.usage["completion_tokens"] == 7 and gen.finish_reason == "stop"
        assert backend.identity() == f"vllm:{checkpoint.name}"
    finally:
        backend.close()


def test_scripted_chat_messages_put_images_first(fake_vllm, checkpoint):
    from proguard_rails.backends.vllm_local import VLLMBackend

    backend = VLLMBackend(checkpoint)
    try:
        req = build_request("what is this?", images=[png_bytes(), png_bytes((20, 20), (1, 2, 3))])
        backend.generate_batch([render(req)])
        (messages, _), = _LLM.instances[0].calls
        system, user = messages[0]
        assert system["role"] == "system" and "C1" in system["content"]  # the policy is in the system turn
        kinds = [part["type"] for part in user["content"]]
        assert kinds == ["image_url", "image_url", "text"]
        assert user["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    finally:
        backend.close()


async def test_scripted_batches_sharing_and_coalescing(fake_vllm, checkpoint):
    from proguard_rails.backends.vllm_local import VLLMBackend

    a = VLLMBackend(checkpoint, batch_size=4)
    b = VLLMBackend(checkpoint, batch_size=4)
    try:
        assert a.llm is b.llm and len(_LLM.instances) == 1  # one engine per checkpoint
        results = await a.agenerate_batch([_prompt(f"q{i}") for i in range(10)])
        assert all(not isinstance(r, BaseException) for r in results)
        assert [len(c[0]) for c in a.llm.calls] == [4, 4, 2]  # micro-batches of batch_size
        assert results[-1].usage["cached_tokens"] > 0  # the engine's prefix cache is on
        # Hold the worker on one prompt while six single calls arrive: they queue, then share calls.
        gate = a.submit([_prompt("gate")])
        for _ in range(1000):
            if gate[0].running():
                break
            await asyncio.sleep(0.01)
        tasks = [asyncio.create_task(b.agenerate(_prompt(f"c{i}"))) for i in range(6)]
        for _ in range(1000):
            if a.shared.worker.queued == 6:
                break
            await asyncio.sleep(0.01)
        a.llm.calls.clear()
        _LLM.gate.set()
        single = await asyncio.gather(*tasks)
        assert gate[0].result().text
        assert [r.text for r in single] == [safe_answer()] * 6
        assert [len(c[0]) for c in a.llm.calls] == [4, 2]  # six concurrent calls, two chat() calls
    finally:
        a.close()
        b.close()
    from proguard_rails.backends.vllm_local import _ENGINES

    assert not _ENGINES.keys()
    c = VLLMBackend(checkpoint, enforce_eager=True)  # different engine arguments: a new engine
    c.close()
    assert len(_LLM.instances) == 2


def test_scripted_engine_error_fails_only_its_prompt(fake_vllm, checkpoint):
    from proguard_rails.backends.vllm_local import VLLMBackend

    backend = VLLMBackend(checkpoint)
    try:
        results = backend.generate_batch([_prompt("fine"), _prompt("explode"), _prompt("bomb")])
        assert isinstance(results[1], BackendError) and "max_model_len" in str(results[1])
        assert "Request: safe" in results[0].text or "safe" in results[0].text
        assert "unsafe" in results[2].text
    finally:
        backend.close()


def test_scripted_guard_through_vllm_backend(fake_vllm, checkpoint):
    guard = ProGuard(model_path=str(checkpoint), backend="vllm", max_tokens=32)
    try:
        from proguard_rails.backends.vllm_local import VLLMBackend

        assert isinstance(guard.judge.backend, VLLMBackend)
        allowed, blocked, image = guard.check_batch(
            ["How do I bake bread?", "How do I build a bomb?", build_request("", images=[png_bytes()])]
        )
        assert allowed.status == "allowed" and allowed.allowed
        assert blocked.status == "blocked" and blocked.category_id == "C8S1"
        assert image.status == "allowed"
    finally:
        guard.close()


class _StoppingLLM(_LLM):
    """Like vLLM: generates one fixed output and stops at the first stop string anywhere in it,
    inside the reasoning too; with ``continue_final_message`` it resumes after the assistant's text."""

    FULL = ("<think>\nThe user asks me to answer <answer>\nRequest:safe\nResponse:safe\nCategory:None\n"
            "</answer> but that is their draft, not my verdict.\n</think>\n<answer>\nRequest:unsafe\n"
            "Response:unsafe\nCategory:C8S1\n</answer>")

    def chat(self, messages, sampling_params, use_tqdm=True, add_generation_prompt=True,
             continue_final_message=False):
        self.calls.append((messages, sampling_params))
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(messages)
        outs = []
        for conv, sp in zip(messages, params, strict=True):
            done = conv[-1]["content"] if continue_final_message else ""
            assert continue_final_message == (not add_generation_prompt)
            assert self.FULL.startswith(done)
            rest = self.FULL[len(done):]
            cut = min((rest.find(stop) + len(stop) for stop in sp.stop if stop in rest), default=len(rest))
            outs.append(_RequestOutput([0], [_Completion(rest[:cut], list(range(len(rest[:cut].split()))))]))
        return outs


def test_scripted_stop_inside_the_reasoning_is_continued(fake_vllm, checkpoint, monkeypatch):
    """vLLM stops at a </answer> the model quotes while reasoning; the backend continues to the real
    answer, so the draft "safe" quoted in the reasoning never becomes the verdict."""
    from proguard_rails.backends.vllm_local import VLLMBackend
    from proguard_rails.protocol import parse_answer

    monkeypatch.setattr(fake_vllm, "LLM", _StoppingLLM)
    backend = VLLMBackend(checkpoint, settings=ProGuardSettings(max_tokens=200))
    try:
        (gen,) = backend.generate_batch([_prompt("quote a draft answer")])
        assert not isinstance(gen, BaseException)
        assert gen.text == _StoppingLLM.FULL and len(backend.llm.calls) == 2  # one stop inside, continued once
        v = parse_answer(gen.text, "text")
        assert v.request == "unsafe" and v.category_id == "C8S1"
    finally:
        backend.close()


def test_missing_checkpoint_folder(fake_vllm, tmp_path):
    from proguard_rails.backends.vllm_local import VLLMBackend

    with pytest.raises(ConfigurationError, match="PROGUARD_MODEL_PATH"):
        VLLMBackend(tmp_path / "nope")


# ------------------------------------------------------------------ the real engine


@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_VLLM and _cuda()), reason="needs vLLM and a CUDA GPU")
def test_real_vllm_on_tiny_model():
    from proguard_rails.backends.vllm_local import VLLMBackend
    from proguard_rails.testing import tiny_model_path

    backend = VLLMBackend(tiny_model_path(), max_tokens=16, gpu_memory_utilization=0.3, enforce_eager=True,
                          max_model_len=8192)
    try:
        prompts = [render(build_request("How do I bake bread?")), render(build_request("", images=[png_bytes()]))]
        results = backend.generate_batch(prompts)
        assert all(not isinstance(r, BaseException) for r in results), results
        assert all(r.usage["completion_tokens"] <= 16 for r in results)
    finally:
        backend.close()
