"""Where sync checks run: in-process judges on the calling thread's own loop (no thread hop),
judges with loop-bound state (HTTP pools) on the shared background loop, and the background
loop whenever the calling thread already runs an event loop. Uses the in-process scripted
backend, whose answer function records the thread and loop it ran on."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

from proguard_rails import ProGuard, ScriptedBackend
from proguard_rails._portal import run_sync
from proguard_rails.backends.scripted import safe_answer


class _Recorder:
    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.loops: list[asyncio.AbstractEventLoop] = []

    def __call__(self, prompt: object) -> str:
        self.threads.append(threading.current_thread())
        self.loops.append(asyncio.get_running_loop())
        return safe_answer()


class _LoopBoundScripted(ScriptedBackend):
    """Stands in for a backend with connection pools: it must stay on the shared loop."""

    loop_bound = True


def _guard(backend_cls: type[ScriptedBackend] = ScriptedBackend) -> tuple[ProGuard, _Recorder]:
    rec = _Recorder()
    return ProGuard(backend=backend_cls(default=rec), cache_size=0), rec


def test_scripted_sync_check_runs_on_the_calling_thread_and_reuses_its_loop():
    guard, rec = _guard()
    assert guard.check("hello").allowed
    assert guard.check_batch(["a", "b"])[1].allowed
    assert guard.check_tool_call("calc", {"x": 1}).allowed
    assert guard.check_tool_result("search", "some text").allowed
    assert rec.threads and all(t is threading.current_thread() for t in rec.threads)
    assert len(set(map(id, rec.loops))) == 1  # one cached loop per thread, not a new one per call
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # the private loop is not left running or installed


def test_scripted_loop_bound_backend_sync_check_uses_the_shared_background_loop():
    guard, rec = _guard(_LoopBoundScripted)
    guard.check("one")
    guard.check("two")
    assert all(t.name == "proguard-rails-portal" for t in rec.threads)
    assert rec.loops[0] is rec.loops[1]


async def test_scripted_sync_check_inside_a_running_loop_goes_through_the_background_loop():
    guard, rec = _guard()
    assert guard.check("from async code").allowed  # must neither fail nor deadlock
    assert rec.threads[-1].name == "proguard-rails-portal"
    assert rec.loops[-1] is not asyncio.get_running_loop()
    assert (await guard.acheck("async")).allowed
    assert rec.loops[-1] is asyncio.get_running_loop()


def test_scripted_sync_checks_from_many_threads_each_use_their_own_loop_closed_at_thread_exit():
    guard = ProGuard(backend=ScriptedBackend(default=_Recorder(), delay=0.01), cache_size=0)
    rec: _Recorder = guard.judge.backend.default  # type: ignore[attr-defined]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for i in range(3):
                assert guard.check(f"q{i}").allowed
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len(rec.loops) == 12
    loops = {id(lp): lp for lp in rec.loops}
    assert len(loops) == 4  # one private loop per thread
    assert {t.ident for t in rec.threads} == {t.ident for t in threads}
    del threads
    gc.collect()
    assert all(lp.is_closed() for lp in loops.values())  # dropped with the thread's local storage


def test_inline_run_sync_reraises_and_the_loop_stays_usable():
    async def boom() -> None:
        await asyncio.sleep(0)
        raise ValueError("inside")

    async def fine() -> int:
        await asyncio.sleep(0)
        return 7

    with pytest.raises(ValueError, match="inside"):
        run_sync(boom(), inline=True)
    assert run_sync(fine(), inline=True) == 7
