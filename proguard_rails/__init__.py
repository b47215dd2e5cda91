"""proguard-rails: production guardrails around ProGuard, the proactive vision-language safety guard.

Importing this package loads only pydantic, httpx and pyyaml; torch, transformers,
langchain, llama-index and guardrails are imported when a feature that needs them is used.
"""

from __future__ import annotations

from .backends import Backend, Generation, OpenAIBackend, ScriptedBackend
from .errors import (
    AnswerParseError,
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigurationError,
    ImageError,
    InputError,
    InputTimeoutError,
    InputTooLargeError,
    MissingDependencyError,
    ProGuardError,
    ProGuardViolation,
    RequestRejectedError,
    ResponseTooLargeError,
    UnjudgeableInputError,
)
from .guard import LiteGuardWarning, ProGuard
from .inputs import GuardRequest, ImageData, normalize
from .judges import GenerativeJudge, Judge
from .policy import Policy
from .protocol import parse_answer, render_messages
from .settings import ProGuardSettings, SettingsWarning
from .taxonomy import Category, Subcategory, Taxonomy
from .verdict import Decision, Modality, Verdict

__version__ = "0.1.0"

__all__ = [
    "AnswerParseError",
    "Backend",
    "BackendError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "Category",
    "ConfigurationError",
    "Decision",
    "Generation",
    "GenerativeJudge",
    "GuardRequest",
    "ImageData",
    "ImageError",
    "InputError",
    "InputTimeoutError",
    "InputTooLargeError",
    "Judge",
    "LiteGuardWarning",
    "MissingDependencyError",
    "Modality",
    "OpenAIBackend",
    "Policy",
    "ProGuard",
    "ProGuardError",
    "ProGuardSettings",
    "ProGuardViolation",
    "RequestRejectedError",
    "ResponseTooLargeError",
    "ScriptedBackend",
    "SettingsWarning",
    "Subcategory",
    "Taxonomy",
    "UnjudgeableInputError",
    "Verdict",
    "normalize",
    "parse_answer",
    "render_messages",
    "__version__",
]
