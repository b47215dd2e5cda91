"""The tiny offline Qwen2.5-VL checkpoint and the ``transformers serve`` runner of ``proguard_rails.testing``.

Other tests rely on these helpers to exercise real model code without hub access, so they are
checked here end to end: the folder loads through the Auto classes, generates from text and image
prompts, is reproducible, and can be served over the OpenAI-compatible API.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import pytest

# Nothing may reach a model hub from the test suite; set before transformers is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("transformers")

from proguard_rails.testing import (
    QWEN_SPECIAL_TOKENS,
    build_tiny_qwen25vl,
    free_port,
    serve_model,
    tiny_model_path,
)


@pytest.fixture(scope="session")
def tiny_model() -> pathlib.Path:
    return tiny_model_path()


@pytest.fixture(scope="module")
def loaded(tiny_model: pathlib.Path) -> tuple[Any, Any]:
    """Model and processor loaded once for the module: loading is the slow part on CPU."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    processor = AutoProcessor.from_pretrained(tiny_model)
    return model, processor


def _image() -> Any:
    from PIL import Image

    return Image.new("RGB", (64, 48), (200, 30, 30))


def _generate(model: Any, processor: Any, messages: list[dict[str, Any]], max_new_tokens: int = 8) -> str:
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    assert new_tokens.shape[0] == max_new_tokens  # control tokens are never chosen: no early EOS
    return str(processor.decode(new_tokens, skip_special_tokens=True))


def test_folder_loads_with_auto_classes(loaded: tuple[Any, Any], tiny_model: pathlib.Path) -> None:
    model, processor = loaded
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert processor.tokenizer.padding_side == "left"
    assert model.generation_config.pad_token_id is not None
    assert sum(f.stat().st_size for f in tiny_model.iterdir()) < 10 * 1024 * 1024


def test_tokenizer_round_trips_unicode_and_markup(loaded: tuple[Any, Any]) -> None:
    _, processor = loaded
    tokenizer = processor.tokenizer
    for text in ("<think>", "<answer>", "Request:safe", "Ünïcødé 世界 🙂 \x00\u200b"):
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.decode(ids) == text
    for token in QWEN_SPECIAL_TOKENS:
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1


def test_chat_template_renders_qwen_format(loaded: tuple[Any, Any]) -> None:
    _, processor = loaded
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Be safe."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is this ok?"}]},
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt == (
        "<|im_start|>system\nBe safe.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Is this ok?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_generate_from_text_prompt(loaded: tuple[Any, Any]) -> None:
    model, processor = loaded
    messages = [{"role": "user", "content": [{"type": "text", "text": "How do I bake bread?"}]}]
    assert _generate(model, processor, messages)


def test_generate_from_image_prompt(loaded: tuple[Any, Any]) -> None:
    model, processor = loaded
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "image": _image()}, {"type": "text", "text": "Describe it."}],
        }
    ]
    assert _generate(model, processor, messages)


def test_same_seed_gives_identical_weights(tiny_model: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from safetensors.torch import load_file

    rebuilt = build_tiny_qwen25vl(tmp_path / "rebuilt", seed=0)
    reference = load_file(tiny_model / "model.safetensors")
    again = load_file(rebuilt / "model.safetensors")
    assert reference.keys() == again.keys()
    for name, tensor in reference.items():
        assert tensor.equal(again[name]), name
    assert (rebuilt / "tokenizer.json").read_bytes() == (tiny_model / "tokenizer.json").read_bytes()

    with pytest.raises(FileExistsError):
        build_tiny_qwen25vl(rebuilt, seed=0)


@pytest.mark.serve
def test_serve_model_answers_chat_completion(tiny_model: pathlib.Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    import httpx

    with serve_model(tiny_model, port=free_port()) as server:
        assert server.process.poll() is None
        response = httpx.post(
            f"{server.base_url}/chat/completions",
            json={
                "model": server.model,
                "messages": [
                    {"role": "system", "content": "You are a safety moderator."},
                    {"role": "user", "content": [{"type": "text", "text": "Request: hello"}]},
                ],
                "max_tokens": 8,
                "temperature": 0,
            },
            timeout=60,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["choices"][0]["message"]["content"]
        assert body["usage"]["completion_tokens"] == 8
    assert server.process.poll() is not None  # stopped on exit
