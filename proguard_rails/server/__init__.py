"""The guard server (``proguard-rails serve``): an OpenAI-compatible ``/v1/moderations``, the
native ``/v1/check``, health, readiness and Prometheus metrics over one ``ProGuard`` engine.

Needs the ``serve`` extra (``pip install 'proguard-rails[serve]'``); importing
``proguard_rails`` never imports this package. See docs/server.md.
"""

from __future__ import annotations

from typing import Any

from .settings import ServerSettings

__all__ = ["ServerSettings", "ServerThread", "create_app"]


def __getattr__(name: str) -> Any:  # the ASGI stack is imported on first use
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "ServerThread":
        from .run import ServerThread

        return ServerThread
    raise AttributeError(name)
