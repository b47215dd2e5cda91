"""Adapter overhead of the LangChain rail: ``chain | ProGuardRail()`` versus the same guard called directly.

Both sides use one in-process ScriptedBackend-based guard with the verdict cache off, so
both do the same judging work and the difference is what the Runnable adds (run
bookkeeping, callbacks, reading the LangChain value, shaping the result).

    baseline (sync):  out = chain.invoke(x); guard.check("", out)
    rail     (sync):  (chain | ProGuardRail(guard)).invoke(x)
    baseline (async): out = await chain.ainvoke(x); await guard.acheck("", out)
    rail     (async): await (chain | ProGuardRail(guard)).ainvoke(x)

"rail_alone" isolates the rail from LangChain's own RunnableSequence cost:
``ProGuardRail(guard).invoke(answer)`` versus ``guard.check("", answer.content)``.

Short rounds alternate baseline and rail to cancel drift and load changes; each figure is
the median over rounds of the mean per-call time, measured as wall time (latency) and as
process CPU time (all threads: the work done, robust on a loaded machine). Reported:
microseconds per call, the added microseconds, and the ratio rail / baseline, all from one
run in one process. Target: < 1000 us added per call.

    python benchmarks/bench_langchain_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

TARGET_ADDED_US = 1000.0


def _setup() -> tuple[Any, Any, Any, Any]:
    from langchain_core.messages import AIMessage
    from langchain_core.runnables import RunnableLambda
    from langchain_proguard import ProGuardRail

    from proguard_rails import ProGuard, ScriptedBackend

    guard = ProGuard(backend=ScriptedBackend(), cache_size=0)
    answer = AIMessage(content="Paris is the capital of France. It is known for the Eiffel Tower.")
    chain = RunnableLambda(lambda _: answer)
    guarded = chain | ProGuardRail(guard)
    return guard, chain, guarded, answer


Timing = tuple[float, float]  # (wall us per call, cpu us per call)


def _time_sync(fn: Callable[[], Any], n: int) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


async def _time_async(fn: Callable[[], Awaitable[Any]], n: int) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def _summary(base: list[Timing], rail: list[Timing]) -> dict[str, float]:
    b, r = statistics.median(t[0] for t in base), statistics.median(t[0] for t in rail)
    bc, rc = statistics.median(t[1] for t in base), statistics.median(t[1] for t in rail)
    return {"baseline_us": round(b, 1), "rail_us": round(r, 1), "added_us": round(r - b, 1),
            "ratio": round(r / b, 3), "baseline_cpu_us": round(bc, 1), "rail_cpu_us": round(rc, 1),
            "added_cpu_us": round(rc - bc, 1), "ratio_cpu": round(rc / bc, 3)}


def run(quick: bool = False) -> dict[str, Any]:
    """Measure the rail's added latency per call; returns the figures (also printed by ``__main__``)."""
    guard, chain, guarded, answer = _setup()
    n = 40 if quick else 100
    rounds = 5 if quick else 15
    rail = guarded.last

    def baseline_sync() -> Any:
        out = chain.invoke("q")
        return guard.check("", out.content, kind="output")

    def rail_sync() -> Any:
        return guarded.invoke("q")

    def guard_only() -> Any:
        return guard.check("", answer.content, kind="output")

    def rail_only() -> Any:
        return rail.invoke(answer)

    assert rail_sync() is answer and baseline_sync().allowed  # same outcome on both sides
    pairs = {"chain": (baseline_sync, rail_sync), "alone": (guard_only, rail_only)}
    sync_t: dict[str, tuple[list[Timing], list[Timing]]] = {k: ([], []) for k in pairs}
    for b_fn, r_fn in pairs.values():  # warm-up
        _time_sync(b_fn, n)
        _time_sync(r_fn, n)
    for _ in range(rounds):
        for k, (b_fn, r_fn) in pairs.items():
            sync_t[k][0].append(_time_sync(b_fn, n))
            sync_t[k][1].append(_time_sync(r_fn, n))

    async def measure_async() -> dict[str, tuple[list[Timing], list[Timing]]]:
        async def baseline_async() -> Any:
            out = await chain.ainvoke("q")
            return await guard.acheck("", out.content, kind="output")

        async def rail_async() -> Any:
            return await guarded.ainvoke("q")

        async def aguard_only() -> Any:
            return await guard.acheck("", answer.content, kind="output")

        async def arail_only() -> Any:
            return await rail.ainvoke(answer)

        assert (await rail_async()) is answer
        apairs = {"chain": (baseline_async, rail_async), "alone": (aguard_only, arail_only)}
        out: dict[str, tuple[list[Timing], list[Timing]]] = {k: ([], []) for k in apairs}
        for b_fn, r_fn in apairs.values():
            await _time_async(b_fn, n)
            await _time_async(r_fn, n)
        for _ in range(rounds):
            for k, (b_fn, r_fn) in apairs.items():
                out[k][0].append(await _time_async(b_fn, n))
                out[k][1].append(await _time_async(r_fn, n))
        return out

    async_t = asyncio.run(measure_async())
    sync = _summary(*sync_t["chain"])
    asyn = _summary(*async_t["chain"])
    guard.close()
    return {
        "benchmark": "langchain_overhead",
        "backend": "scripted (in-process)",
        "calls_per_round": n,
        "rounds": rounds,
        "sync": sync,
        "async": asyn,
        "rail_alone": {"sync": _summary(*sync_t["alone"]), "async": _summary(*async_t["alone"])},
        "target_added_us": TARGET_ADDED_US,
        "meets_target": max(sync["added_us"], asyn["added_us"]) < TARGET_ADDED_US,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (smoke run)")
    args = parser.parse_args()
    print(json.dumps(run(quick=args.quick), indent=2))


if __name__ == "__main__":
    main()
