"""ProGuard as a Guardrails AI validator (``proguard/proguard``), laid out like a hub validator.

``from integrations.guardrails_proguard import ProGuardValidator`` (imports guardrails on first
use; install with ``pip install 'proguard-rails[guardrails]'``). See README.md in this folder.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_REFUSAL", "ProGuardValidator"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        try:
            from . import validator
        except ImportError as exc:
            if "guardrails" not in str(exc):
                raise
            from proguard_rails.errors import MissingDependencyError

            raise MissingDependencyError("guardrails-ai", "guardrails", "the Guardrails validator") from exc
        return getattr(validator, name)
    raise AttributeError(name)
