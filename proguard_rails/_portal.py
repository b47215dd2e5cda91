"""Sync entry points that also work inside a running event loop.

Every sync call runs its coroutine on one background event loop thread (the portal), so
connection pools live on a loop that stays alive, and a sync call made from async code
(a notebook, a sync LangChain callback inside an async app) neither fails with "event loop
is already running" nor nests loops.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _portal_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed() or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def _run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=_run, name="proguard-rails-portal", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code, wherever that code is called from."""
    loop = _portal_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError(
            "a synchronous proguard-rails call was made from inside its own event loop thread; "
            "use the async method (acheck/acheck_batch) there"
        )
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


__all__ = ["run_sync"]
