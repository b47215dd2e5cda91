"""ProGuard for LlamaIndex (llama-index-core 0.14).

- ``ProGuardQueryEngine``: screens the question before retrieval and the answer after synthesis.
- ``ProGuardNodePostprocessor``: screens retrieved nodes (text and images) in one batched call.
- ``ProGuardChatEngine``: screens each message and reply of a chat engine.
- ``ProGuardVerdictEvent``: one instrumentation event per verdict.

Install with ``pip install 'proguard-rails[llamaindex]'``.
"""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from proguard_rails.errors import MissingDependencyError

    raise MissingDependencyError("llama-index-core", "llamaindex", "the LlamaIndex integration") from exc

from ._common import DEFAULT_REFUSAL, ProGuardVerdictEvent
from .chat_engine import ProGuardChatEngine
from .postprocessor import ProGuardNodePostprocessor
from .query_engine import ProGuardQueryEngine

__all__ = [
    "DEFAULT_REFUSAL",
    "ProGuardChatEngine",
    "ProGuardNodePostprocessor",
    "ProGuardQueryEngine",
    "ProGuardVerdictEvent",
]
