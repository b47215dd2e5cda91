"""Sync entry points that also work inside a running event loop.

By default every sync call runs its coroutine on one background event loop thread (the
portal), so connection pools live on a loop that stays alive and are shared by all sync
callers, and a sync call made from async code (a notebook, a sync LangChain callback inside
an async app) neither fails with "event loop is already running" nor nests loops.

The hop to the portal thread and back costs two thread wake-ups per call (tens of
microseconds of CPU, more in latency on a busy machine). Work that keeps nothing bound to an
event loop between calls (in-process backends: the scripted one, the local model workers)
may run ``inline`` instead: on a private event loop of the calling thread, when that thread
has no loop running. A thread that is already running a loop always goes through the portal.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_local = threading.local()


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


class _ThreadLoop:
    """The calling thread's private loop for inline calls. Thread-local storage is dropped when
    its thread ends, which closes the loop (an epoll handle and a socket pair)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        loop = self.loop
        if not loop.is_closed() and not loop.is_running():
            with contextlib.suppress(Exception):  # may run during interpreter shutdown
                loop.close()


def _thread_loop() -> asyncio.AbstractEventLoop:
    holder: _ThreadLoop | None = getattr(_local, "holder", None)
    if holder is None or holder.loop.is_closed():
        holder = _local.holder = _ThreadLoop()
    return holder.loop


def run_sync(coro: Coroutine[Any, Any, T], *, inline: bool = False) -> T:
    """Run ``coro`` to completion from synchronous code, wherever that code is called from.

    ``inline=True``: the coroutine keeps no loop-bound resources (connection pools, loop-bound
    locks) beyond the call, so when no loop runs in this thread it runs on this thread's own
    loop, without the hop to the portal thread. Inside a running loop it still uses the portal.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if inline and running is None:
        return _thread_loop().run_until_complete(coro)
    loop = _portal_loop()
    if running is loop:
        coro.close()
        raise RuntimeError(
            "a synchronous proguard-rails call was made from inside its own event loop thread; "
            "use the async method (acheck/acheck_batch) there"
        )
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


__all__ = ["run_sync"]
