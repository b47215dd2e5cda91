"""Text generation backends. Heavy ones (transformers, vLLM) are imported lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import STOP_SEQUENCES, Backend, Generation
from .openai import OpenAIBackend
from .scripted import ScriptedBackend

if TYPE_CHECKING:  # pragma: no cover
    from .transformers_local import TransformersBackend
    from .vllm_local import VLLMBackend

_LAZY = {
    "TransformersBackend": ".transformers_local",
    "VLLMBackend": ".vllm_local",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)


__all__ = [
    "STOP_SEQUENCES",
    "Backend",
    "Generation",
    "OpenAIBackend",
    "ScriptedBackend",
    "TransformersBackend",
    "VLLMBackend",
]
