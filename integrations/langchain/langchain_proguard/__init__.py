"""LangChain integration: ``ProGuardRail`` (a Runnable) and ``ProGuardMiddleware`` (agents).

    from langchain_proguard import ProGuardRail, ProGuardMiddleware, ProGuardViolation

    chain = prompt | model | ProGuardRail(guard)          # screen the answer
    agent = create_agent(model, tools, middleware=[ProGuardMiddleware(guard)])

Needs ``pip install 'proguard-rails[langchain]'`` (langchain-core and langchain 1.x).
Names are resolved on first use, so importing this package alone loads nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from proguard_rails.errors import MissingDependencyError, ProGuardViolation

if TYPE_CHECKING:  # pragma: no cover
    from .middleware import ProGuardMiddleware
    from .rail import DECISION_EVENT, ProGuardGuarded, ProGuardRail

_LAZY = {
    "ProGuardRail": ("rail", "langchain-core"),
    "ProGuardGuarded": ("rail", "langchain-core"),
    "DECISION_EVENT": ("rail", "langchain-core"),
    "ProGuardMiddleware": ("middleware", "langchain"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, package = _LAZY[name]
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in ("langchain", "langchain_core", "langgraph"):
            raise MissingDependencyError(package, "langchain", f"langchain_proguard.{name}") from exc
        raise
    value = getattr(mod, name)
    globals()[name] = value
    return value


__all__ = ["DECISION_EVENT", "ProGuardGuarded", "ProGuardMiddleware", "ProGuardRail", "ProGuardViolation"]
