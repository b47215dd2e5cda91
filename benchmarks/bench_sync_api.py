"""Cost of the sync API: ``guard.check`` versus ``await guard.acheck`` on the same guard.

One guard on the in-process scripted backend (cache off), so every call does the engine's full
work (normalize, render, judge, parse, policy) and nothing else: the difference between the
modes is how the sync call reaches the coroutine.

    acheck              ``await guard.acheck(x)`` in a running event loop (the baseline)
    check               ``guard.check(x)`` from a thread with no running loop: in-process judges
                        run on the thread's own cached loop (``proguard_rails._portal``, inline)
    check_via_portal    the same coroutine sent to the background loop thread and waited for
                        (``run_sync(guard.acheck(x))``): what ``check`` did before, and what it
                        still does for judges with loop-bound state (HTTP connection pools)
    check_in_loop       ``guard.check(x)`` called from inside a running event loop (a sync
                        callback in an async app): always the background loop

Short rounds alternate the modes (rotating their order) to cancel drift and load changes; each
figure is the median over rounds of the mean time per call, as wall time (latency) and as
process CPU time (all threads, so the portal thread's work counts). Ratios are mode / acheck.

    python benchmarks/bench_sync_api.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

try:  # running as a script: make the repository importable without installing
    import proguard_rails  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TEXT = "Paris is the capital of France. It is known for the Eiffel Tower."
Timing = tuple[float, float]  # (wall us per call, cpu us per call)


def run(quick: bool = False) -> dict[str, Any]:
    from proguard_rails import ProGuard, ScriptedBackend
    from proguard_rails._portal import run_sync

    guard = ProGuard(backend=ScriptedBackend(), cache_size=0)
    n = 50 if quick else 200
    rounds = 5 if quick else 15
    loop = asyncio.new_event_loop()  # the async callers' loop, kept across rounds

    def timed_sync(call: Callable[[], Any]) -> Timing:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            call()
        return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6

    async def timed_acheck() -> Timing:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            await guard.acheck(TEXT)
        return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6

    async def timed_check_in_loop() -> Timing:
        return timed_sync(lambda: guard.check(TEXT))

    modes: dict[str, Callable[[], Timing]] = {
        "acheck": lambda: loop.run_until_complete(timed_acheck()),
        "check": lambda: timed_sync(lambda: guard.check(TEXT)),
        "check_via_portal": lambda: timed_sync(lambda: run_sync(guard.acheck(TEXT))),
        "check_in_loop": lambda: loop.run_until_complete(timed_check_in_loop()),
    }
    for fn in modes.values():  # warm-up: the portal thread, the cached loop, lazy imports
        fn()
    samples: dict[str, list[Timing]] = {name: [] for name in modes}
    names = list(modes)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            samples[name].append(modes[name]())
    loop.close()
    for name in ("check", "check_via_portal", "check_in_loop"):  # every mode judged the text
        assert (guard.check(TEXT) if name == "check" else run_sync(guard.acheck(TEXT))).allowed

    out: dict[str, Any] = {}
    for name, vals in samples.items():
        out[name] = {"wall_us": round(statistics.median(v[0] for v in vals), 1),
                     "cpu_us": round(statistics.median(v[1] for v in vals), 1)}
    base = out["acheck"]
    for name, m in out.items():
        if name == "acheck":
            continue
        m["added_wall_us"] = round(m["wall_us"] - base["wall_us"], 1)
        m["added_cpu_us"] = round(m["cpu_us"] - base["cpu_us"], 1)
        m["ratio_wall"] = round(m["wall_us"] / base["wall_us"], 3)
        m["ratio_cpu"] = round(m["cpu_us"] / base["cpu_us"], 3)
    return {
        "benchmark": "sync API: guard.check vs await guard.acheck (same guard, same work)",
        "backend": "scripted (in-process), cache off",
        "calls_per_round": n,
        "rounds": rounds,
        "modes": out,
        "hop_saved_cpu_us": round(out["check_via_portal"]["cpu_us"] - out["check"]["cpu_us"], 1),
        "hop_saved_wall_us": round(out["check_via_portal"]["wall_us"] - out["check"]["wall_us"], 1),
        "quick": quick,
    }


def _print(result: dict[str, Any]) -> None:
    print(f"{result['benchmark']}\n{result['backend']}; {result['rounds']} rounds of "
          f"{result['calls_per_round']} calls per mode")
    print(f"{'mode':<18}{'wall us':>9}{'cpu us':>9}{'+wall':>8}{'+cpu':>8}{'x cpu':>7}")
    for name, m in result["modes"].items():
        print(f"{name:<18}{m['wall_us']:>9.1f}{m['cpu_us']:>9.1f}{m.get('added_wall_us', 0):>8.1f}"
              f"{m.get('added_cpu_us', 0):>8.1f}{m.get('ratio_cpu', 1.0):>7.2f}")
    print(f"thread hop avoided by check: {result['hop_saved_cpu_us']} us CPU, {result['hop_saved_wall_us']} us wall")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args(argv)
    result = run(args.quick)
    print(json.dumps(result, indent=2)) if args.json else _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
