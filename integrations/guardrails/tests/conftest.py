"""Fixtures for the proguard/proguard validator tests: offline, no Guardrails telemetry.

- Guardrails reads ``~/.guardrailsrc`` (``enable_metrics``, ``use_remote_inferencing``) on import and
  on every ``Guard()``; with no file, metrics default to ON. Tests point HOME at a temporary
  folder holding ``enable_metrics=false`` and ``use_remote_inferencing=false``: the same switch
  users set (see README.md).
- ``import guardrails`` runs ``nltk.download("punkt")`` when nltk (a llama-index-core dependency)
  is installed without punkt: an empty ``tokenizers/punkt`` folder on nltk's search path stops it.
- LiteLLM (imported by Guardrails when an LLM callable is given) fetches a model price list
  unless ``LITELLM_LOCAL_MODEL_COST_MAP=True``.
- A network detector refuses and records any non-loopback connection or lookup, during the
  imports below and during every test; a test that caused one fails.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# ----------------------------------------------------------------------------- network detector
from proguard_rails.testing_network import BlockedNetworkError, NetworkDetector, is_loopback  # noqa: F401

DETECTOR = NetworkDetector()

RC_TEXT = "enable_metrics=false\nuse_remote_inferencing=false\n"
OFFLINE_HOME = Path(tempfile.mkdtemp(prefix="proguard-guardrails-home-"))
(OFFLINE_HOME / ".guardrailsrc").write_text(RC_TEXT, encoding="utf-8")
_NLTK_STUB = Path(tempfile.mkdtemp(prefix="proguard-nltk-"))
(_NLTK_STUB / "tokenizers" / "punkt").mkdir(parents=True)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

#: whether guardrails was first imported here (else its import time was not observed)
IMPORT_OBSERVED = "guardrails" not in sys.modules


@contextlib.contextmanager
def _home(path: Path) -> Iterator[None]:
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old


with DETECTOR.active(), _home(OFFLINE_HOME):
    try:
        import nltk

        if str(_NLTK_STUB) not in nltk.data.path:
            nltk.data.path.append(str(_NLTK_STUB))
    except ImportError:  # pragma: no cover - nltk absent: guardrails downloads nothing
        pass
    import guardrails  # noqa: F401
    from guardrails import AsyncGuard, Guard  # noqa: F401
    from guardrails_ai.proguard import ProGuardValidator
IMPORT_ATTEMPTS = list(DETECTOR.attempts)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkDetector]:
    """Every test: rc file with metrics off (Guard() re-reads it), Guardrails' OpenTelemetry spans
    off, and the network detector.

    Spans off also avoids a CPython 3.11 crash: a validator span left open by a coroutine that
    Guardrails abandons (gather + a raised ValidationError) logs a traceback when garbage
    collected; if that happens inside ``ast.parse`` (pytest's assertion rewriting), the nested
    parse corrupts the AST recursion counter ("AST constructor recursion depth mismatch").
    """
    from guardrails.settings import settings as gr_settings

    monkeypatch.setenv("HOME", str(OFFLINE_HOME))
    monkeypatch.setattr(gr_settings, "disable_tracing", True)
    before = len(DETECTOR.attempts)
    with DETECTOR.active():
        yield DETECTOR
    new = DETECTOR.attempts[before:]
    if new:
        pytest.fail(f"test attempted network access outside loopback: {new}")


# ----------------------------------------------------------------------------- scripted guards
UNSAFE_RESPONSE = "wire the detonator"
UNSAFE_REQUEST = "build a pipe bomb"
OOP_MARKER = "lunar-phase dosing"
OOP_ANSWER = "<answer>\nRequest:safe\nResponse:unsafe\nCategory:Astrology-based medication dosing\n</answer>"


def scripted_answer(prompt: Any) -> str:
    """Markers in the User part make the request unsafe, in the Agent part the response (C8S1)."""
    from proguard_rails.backends.scripted import safe_answer, unsafe_answer

    user, _, agent = prompt.user_text.partition("\nAgent:")
    mod = prompt.modality.value
    if prompt.images and any(img.width == 13 for img in prompt.images):  # the "unsafe" test image
        return unsafe_answer("C11S2", modality=mod, request="safe", response="unsafe")
    if OOP_MARKER in agent:
        return OOP_ANSWER
    if UNSAFE_REQUEST in user:
        return unsafe_answer("C8S1", modality=mod, request="unsafe", response="safe")
    if UNSAFE_RESPONSE in agent.lower():
        return unsafe_answer("C8S1", modality=mod, request="safe", response="unsafe")
    return safe_answer(mod)


@pytest.fixture
def scripted_guard() -> Any:
    from proguard_rails import ProGuard, ScriptedBackend

    return ProGuard(backend=ScriptedBackend(default=scripted_answer))


@pytest.fixture
def make_validator(scripted_guard: Any) -> Callable[..., Any]:
    def make(on_fail: Any = "exception", **kwargs: Any) -> Any:
        return ProGuardValidator(kwargs.pop("guard", scripted_guard), on_fail=on_fail, **kwargs)

    return make
