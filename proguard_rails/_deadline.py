"""The deadline of one check, and the worker threads its CPU-bound steps run in.

``ProGuard`` sets the deadline (``timeout`` seconds from the start of a check) in a context
variable; every step reads what is left of it: the endpoint call, image decoding, URL
fetching, rendering and parsing. CPU-bound steps run in worker threads so the event loop
keeps its timers: when the deadline passes, the check returns an error decision at once and
the work still running in its thread is abandoned (a thread cannot be killed; its result is
dropped). Everything such a thread runs is linear in its bounded input, so abandoned work
ends soon after.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

#: What a check may take beyond ``timeout``: the time for the event loop to notice the deadline
#: and build the error decision (measured at about 10 ms where a step watches the deadline
#: itself: normalization, rendering, the HTTP endpoint), plus half of it as grace for a judge
#: that does not (local backends, custom judges: about 0.26 s measured). Documented as this
#: bound in docs/security.md; the hostile-input test allows more for a loaded CI machine.
DEADLINE_MARGIN_S = 0.5

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("proguard_check_deadline", default=None)
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


@contextmanager
def deadline_at(at: float) -> Iterator[None]:
    """Run the block under an absolute ``time.monotonic()`` deadline (the earlier one wins)."""
    current = _deadline.get()
    token = _deadline.set(at if current is None else min(current, at))
    try:
        yield
    finally:
        _deadline.reset(token)


def current_deadline() -> float | None:
    return _deadline.get()


def time_left(default: float) -> float:
    """Seconds left before the check's deadline, at most ``default`` (``default`` if none is set)."""
    at = _deadline.get()
    if at is None:
        return default
    return max(0.0, min(default, at - time.monotonic()))


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=min(32, (os.cpu_count() or 2) + 4), thread_name_prefix="proguard-rails-cpu"
            )
        return _executor


async def run_cpu(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in a worker thread (context variables included); cancelling the await abandons it."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    return await loop.run_in_executor(_pool(), ctx.run, fn, *args)  # type: ignore[arg-type]


__all__ = ["DEADLINE_MARGIN_S", "current_deadline", "deadline_at", "run_cpu", "time_left"]
