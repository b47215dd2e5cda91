"""ProGuard as a Guardrails AI validator, ``proguard/proguard``.

Laid out like the validators ``guardrails hub install`` puts in the ``guardrails_ai`` namespace
(``from guardrails_ai.proguard import ProGuardValidator``; ``from guardrails.hub import
ProGuardValidator`` also resolves it through Guardrails' namespace fallback). Install with
``pip install 'proguard-rails[guardrails]'``. Guardrails itself is imported on first use of a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .main import DEFAULT_REFUSAL, ProGuardValidator

__all__ = ["DEFAULT_REFUSAL", "ProGuardValidator"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from . import main
    except ImportError as exc:
        if not (exc.name or "").startswith("guardrails."):
            raise
        from proguard_rails.errors import MissingDependencyError

        raise MissingDependencyError("guardrails-ai", "guardrails", "the Guardrails validator") from exc
    return getattr(main, name)
