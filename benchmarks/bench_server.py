"""Guard server: latency and its own overhead per request, against calling the guard in-process.

Both sides use the same judge: a ``ProGuard`` over the fake OpenAI-compatible endpoint
(``proguard_rails.testing_server.FakeChatServerProcess``, a child process answering at once with
tagged answers), verdict cache off.

    direct_c1     ProGuard.acheck in this process, one at a time
    server_c1     POST /v1/moderations to ``proguard-rails serve`` (a child process), one at a time
    direct_c64    ProGuard.acheck, 64 in flight (``n`` checks)
    server_c64    /v1/moderations, 64 in flight (``n`` requests; the load run: every answer matched)

``overhead_ms_p50`` = server_c1 p50 - direct_c1 p50: what the HTTP hop, JSON, auth, admission
and the OpenAI-format response add to one request. ``ratio_*`` are server over direct.

    python benchmarks/bench_server.py            # 2,000 requests at 64 in flight, 200 sequential
    python benchmarks/bench_server.py --quick    # 400 / 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any

try:  # running as a script: make the repository importable without installing
    import proguard_rails  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from proguard_rails import ProGuard
from proguard_rails.server.loadtest import percentile, run_http_load, serve_process
from proguard_rails.testing_server import FakeChatServerProcess, expected_for_tag, tag

KEY = "bench-key"


def _stats(latencies: list[float], wall: float, n: int) -> dict[str, Any]:
    return {
        "n": n,
        "wall_s": round(wall, 3),
        "per_s": round(n / wall, 1) if wall else None,
        "p50_ms": round(percentile(latencies, 50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 99) * 1000, 3),
    }


async def _direct(guard: ProGuard, n: int, concurrency: int, offset: int) -> dict[str, Any]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(offset, offset + n):
        queue.put_nowait(i)
    latencies: list[float] = []
    matched = 0

    async def worker() -> None:
        nonlocal matched
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            d = await guard.acheck(f"{tag(i)} load request {i}", kind="input")
            latencies.append(time.perf_counter() - t0)
            v = d.verdict
            if v is not None and v.reasoning == expected_for_tag(i)["reasoning"]:
                matched += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    out = _stats(latencies, time.perf_counter() - start, n)
    out["matched"] = matched
    return out


def run(quick: bool = False, n: int | None = None, sequential: int | None = None) -> dict[str, Any]:
    n = n or (400 if quick else 2_000)
    seq = sequential or (60 if quick else 200)
    results: dict[str, Any] = {"requests": n, "sequential": seq, "concurrency": 64,
                               "endpoint": "fake OpenAI-compatible endpoint (child process, no delay), cache off"}
    with FakeChatServerProcess(model="ProGuard-7B") as fake:
        guard = ProGuard(base_url=fake.base_url, cache_size=0, max_concurrency=64, timeout=60)

        async def direct_all() -> tuple[dict[str, Any], dict[str, Any]]:
            await _direct(guard, 20, 1, 10_000_000)  # warm-up: connection, model discovery
            c1 = await _direct(guard, seq, 1, 0)
            c64 = await _direct(guard, n, 64, 0)
            await guard.aclose()
            return c1, c64

        results["direct_c1"], results["direct_c64"] = asyncio.run(direct_all())
        fd, keyfile = tempfile.mkstemp(prefix="bench-server-keys-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(KEY + "\n")
        args = ["--judge", f"openai:{fake.base_url}", "--api-keys-file", keyfile, "--include-raw",
                "--max-concurrency", "64", "--log-level", "warning"]
        try:
            with serve_process(args, env={"PROGUARD_CACHE_SIZE": "0"}) as (url, _proc, _log):
                asyncio.run(run_http_load(url, n=20, concurrency=1, api_key=KEY))  # warm-up
                s1 = asyncio.run(run_http_load(url, n=seq, concurrency=1, api_key=KEY))
                s64 = asyncio.run(run_http_load(url, n=n, concurrency=64, api_key=KEY))
        finally:
            os.unlink(keyfile)
    for name, r in (("server_c1", s1), ("server_c64", s64)):
        results[name] = {
            "n": r["requests"], "wall_s": round(r["wall_s"], 3), "per_s": round(r["requests_per_s"], 1),
            "p50_ms": round(r["latency_p50_ms"], 3), "p99_ms": round(r["latency_p99_ms"], 3),
            "answered": r["answered"], "http_200": r["http_200"], "matched": r["matched"],
            "mismatched": r["mismatched"], "errors": r["errors"],
        }
    d1, sv1 = results["direct_c1"], results["server_c1"]
    d64, sv64 = results["direct_c64"], results["server_c64"]
    results["overhead_ms_p50"] = round(sv1["p50_ms"] - d1["p50_ms"], 3)
    results["overhead_ms_p99"] = round(sv1["p99_ms"] - d1["p99_ms"], 3)
    results["ratio_latency_p50_c1"] = round(sv1["p50_ms"] / d1["p50_ms"], 3)
    results["ratio_throughput_c64"] = round(sv64["per_s"] / d64["per_s"], 3)
    results["load_ok"] = sv64["answered"] == n and sv64["matched"] == n
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("-n", type=int, help="requests at 64 in flight")
    p.add_argument("--sequential", type=int, help="requests one at a time")
    a = p.parse_args()
    print(json.dumps(run(a.quick, a.n, a.sequential), indent=2))


if __name__ == "__main__":
    main()
