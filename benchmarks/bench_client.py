"""Client throughput: concurrent ProGuard checks versus the released inference script's loop.

Both sides talk to the same fake OpenAI-compatible endpoint (``proguard_rails.testing_server``)
running in a child process, which answers every request after a fixed delay standing in for
generation time (50 ms by default). The endpoint serves any number of requests at once, so
the figure measures what the client does with the endpoint's capacity, not a real server's
batching limits (vLLM's throughput also grows with concurrency, but sub-linearly).

    sequential_released   the released ``deploy/inference.py`` way: the OpenAI sync client, one
                          ``chat.completions.create`` at a time (httpx if ``openai`` is absent)
    sequential_proguard   ``ProGuard.check`` in a loop (one at a time, full pipeline: normalize,
                          render, HTTP, parse, policy): isolates client overhead from concurrency
    concurrent_c16/c64    ``ProGuard.acheck`` with 16 / 64 checks in flight (``max_concurrency``)
    batch_c64             one ``ProGuard.acheck_batch`` call for all checks

Ratios are checks/s of a mode over ``sequential_released``, from this one run. The load
figures (64 in flight, 2,000 checks, decisions == requests, verdicts matched to their own
request, peak RSS) come from ``proguard_rails.testing_server.run_load`` against the same server
with no delay.

    python benchmarks/bench_client.py            # 50 ms generation, 64 sequential / 512 concurrent checks
    python benchmarks/bench_client.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

try:  # running as a script: make the repository importable without installing
    import proguard_rails  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from proguard_rails import ProGuard
from proguard_rails.protocol import released_prompts
from proguard_rails.testing_server import FakeChatServerProcess, run_load, tag

MODEL = "ProGuard-7B"


def _items(n: int, offset: int = 0) -> list[str]:
    return [f"{tag(offset + i)} How do I reset my router password? (question {offset + i})" for i in range(n)]


def _released_loop(base_url: str, items: list[str]) -> tuple[float, str]:
    """One request at a time, messages built as ``deploy/inference.py`` builds them."""
    p = released_prompts()
    system, template = p["TEXT_SYSTEM_PROMPT"], p["TEXT_USER_PROMPT_TEMPLATE"]

    def messages(text: str) -> list[dict[str, Any]]:
        user = template.replace("{{HUMAN_USER}}", text).replace("{{AI_ASSISTANT}}", "")
        return [{"role": "system", "content": system}, {"role": "user", "content": [{"type": "text", "text": user}]}]

    try:
        from openai import OpenAI
    except ImportError:
        OpenAI = None
    if OpenAI is not None:
        client = OpenAI(api_key="EMPTY", base_url=base_url, max_retries=0, timeout=60)
        start = time.perf_counter()
        for text in items:
            r = client.chat.completions.create(model=MODEL, messages=messages(text), max_tokens=1024, temperature=0.0)
            if not (r.choices[0].message.content or "").strip():
                raise RuntimeError("empty response")
        elapsed = time.perf_counter() - start
        client.close()
        return elapsed, "openai sync client"
    import httpx

    with httpx.Client(base_url=base_url, timeout=60) as http:
        start = time.perf_counter()
        for text in items:
            body = {"model": MODEL, "messages": messages(text), "max_tokens": 1024, "temperature": 0.0}
            r = http.post("/chat/completions", json=body)
            r.raise_for_status()
        return time.perf_counter() - start, "httpx sync client"


def _guard(base_url: str, concurrency: int) -> ProGuard:
    # cache off: every check must reach the endpoint, as distinct production traffic does
    return ProGuard(base_url=base_url, model=MODEL, max_concurrency=concurrency, cache_size=0, timeout=120)


def _sequential_proguard(base_url: str, items: list[str]) -> float:
    guard = _guard(base_url, 1)
    guard.check("warm-up")
    start = time.perf_counter()
    for text in items:
        d = guard.check(text)
        if d.is_error:
            raise RuntimeError(d.reason)
    elapsed = time.perf_counter() - start
    guard.close()
    return elapsed


async def _concurrent(base_url: str, items: list[str], concurrency: int, batch: bool) -> tuple[float, float, int]:
    guard = _guard(base_url, concurrency)
    await guard.acheck("warm-up")
    cpu0 = time.process_time()
    start = time.perf_counter()
    if batch:
        decisions = await guard.acheck_batch(items)
    else:
        sem = asyncio.Semaphore(concurrency)

        async def one(text: str):
            async with sem:
                return await guard.acheck(text)

        decisions = await asyncio.gather(*(one(t) for t in items))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    await guard.aclose()
    errors = sum(d.is_error for d in decisions)
    return elapsed, cpu, errors


async def _load(base_url: str, n: int, concurrency: int) -> dict[str, Any]:
    guard = ProGuard(base_url=base_url, model=MODEL, max_concurrency=concurrency, timeout=120)
    try:
        return await run_load(guard, n=n, concurrency=concurrency)
    finally:
        await guard.aclose()


def run(quick: bool = False, *, delay: float = 0.05) -> dict[str, Any]:
    """Throughput of each mode (checks/s), ratios over the released script's loop, and load figures."""
    n_seq = 16 if quick else 64
    n_conc = 128 if quick else 512
    n_load = 500 if quick else 2_000
    modes: dict[str, dict[str, Any]] = {}
    with FakeChatServerProcess(delay=delay, model=MODEL) as srv:
        elapsed, client_name = _released_loop(srv.base_url, _items(2))  # warm-up (imports, connection)
        elapsed, client_name = _released_loop(srv.base_url, _items(n_seq))
        modes["sequential_released"] = {"checks": n_seq, "wall_s": elapsed, "client": client_name}
        elapsed = _sequential_proguard(srv.base_url, _items(n_seq, 10_000))
        modes["sequential_proguard"] = {"checks": n_seq, "wall_s": elapsed}
        for name, conc, batch in (("concurrent_c16", 16, False), ("concurrent_c64", 64, False),
                                  ("batch_c64", 64, True)):
            srv.reset_stats()
            elapsed, cpu, errors = asyncio.run(_concurrent(srv.base_url, _items(n_conc, 20_000), conc, batch))
            if errors:
                raise RuntimeError(f"{name}: {errors} checks failed")
            modes[name] = {"checks": n_conc, "wall_s": elapsed, "client_cpu_s": cpu,
                           "server_max_in_flight": srv.stats.max_in_flight}
        srv.configure(delay=0.0)
        srv.reset_stats()
        load = asyncio.run(_load(srv.base_url, n_load, 64))
        load["server_chat_requests"] = srv.stats.chat_requests
    base = modes["sequential_released"]["checks"] / modes["sequential_released"]["wall_s"]
    for m in modes.values():
        m["checks_per_s"] = round(m["checks"] / m["wall_s"], 1)
        m["ratio"] = round(m["checks_per_s"] / base, 2)
        m["wall_s"] = round(m["wall_s"], 3)
        if "client_cpu_s" in m:
            m["client_cpu_ms_per_check"] = round(1000 * m.pop("client_cpu_s") / m["checks"], 2)
    load = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in load.items()}
    return {
        "benchmark": "client throughput: concurrent checks vs the released script's sequential loop",
        "endpoint": f"fake OpenAI-compatible server in a child process, {delay * 1000:.0f} ms per answer",
        "modes": modes,
        "speedup_c64": modes["concurrent_c64"]["ratio"],
        "speedup_batch_c64": modes["batch_c64"]["ratio"],
        "speedup_c16": modes["concurrent_c16"]["ratio"],
        "ideal_speedup_c64": round((64 * (1 / delay)) / base, 1) if delay else None,
        "load": load,
        "quick": quick,
    }


def _print(result: dict[str, Any]) -> None:
    print(result["benchmark"])
    print(result["endpoint"])
    print(f"{'mode':<22}{'checks':>8}{'wall s':>9}{'checks/s':>10}{'x':>8}")
    for name, m in result["modes"].items():
        print(f"{name:<22}{m['checks']:>8}{m['wall_s']:>9.2f}{m['checks_per_s']:>10.1f}{m['ratio']:>8.2f}")
    ld = result["load"]
    print(f"load: {ld['decisions']}/{ld['checks']} decisions, {ld['matched']} matched, {ld['errors']} errors, "
          f"{ld['checks_per_s']:.0f} checks/s at {ld['concurrency']} in flight, "
          f"peak RSS {ld['rss_peak_mb']:.0f} MB (+{ld['rss_growth_mb']:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer checks (smoke run)")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per answer at the fake endpoint")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = run(quick=args.quick, delay=args.delay)
    print(json.dumps(result, indent=2)) if args.json else _print(result)


if __name__ == "__main__":
    main()
