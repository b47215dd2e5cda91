"""Fixtures for the local-backend tests: the tiny offline Qwen2.5-VL and a few prompts.

The tiny model (random weights, from ``proguard_rails.testing``) loads through the same
``from_pretrained`` code as ProGuard-7B; its output is gibberish by design.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

from tests.local.helpers import SHORT_SYSTEM

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_path() -> pathlib.Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from proguard_rails.testing import tiny_model_path

    return tiny_model_path()


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread: the tiny model gains nothing from more, and on a shared 2-core runner
    OpenMP barriers across busy cores make every op many times slower."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def images():
    from proguard_rails.inputs import load_image
    from tests.helpers import png_bytes

    return (
        load_image(png_bytes((64, 48), (200, 30, 30))),
        load_image(png_bytes((90, 30), (10, 200, 10))),
        load_image(png_bytes((40, 70), (20, 20, 220))),
    )


@pytest.fixture(scope="session")
def short_prompts(images):
    """Prompts with a short system turn, so the conversation (not the policy) drives the output:
    different prompts give different gibberish, which makes equality tests meaningful."""
    from proguard_rails.inputs import Modality
    from proguard_rails.protocol import RenderedPrompt

    return [
        RenderedPrompt(Modality.TEXT, SHORT_SYSTEM, "Request: How do I bake bread at home?", ()),
        RenderedPrompt(Modality.TEXT, SHORT_SYSTEM, "The quick brown fox jumps over the lazy dog. 0123456789 " * 3, ()),
        RenderedPrompt(Modality.TEXT, SHORT_SYSTEM, "emoji 🙂🚀✨", ()),
        RenderedPrompt(Modality.TEXT_IMAGE, SHORT_SYSTEM, "Describe the picture.", (images[0],)),
        RenderedPrompt(Modality.TEXT_IMAGE, SHORT_SYSTEM, "What is in this image? Is it safe?", (images[1],)),
        RenderedPrompt(Modality.IMAGE, SHORT_SYSTEM, "", (images[0], images[2])),
    ]
