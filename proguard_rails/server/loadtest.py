"""A load driver for the guard server: ``n`` tagged moderation requests, ``concurrency`` in
flight, every answer matched to the request that asked for it.

Pair it with the fake endpoint's tagged answers (``proguard_rails.testing_server``): request
``i`` carries ``req-<i>``, so its verdict, its category or out-of-policy name, and the model's
raw answer (``answer for req-<i>``, returned when the server runs with ``--include-raw``) must be
the ones :func:`~proguard_rails.testing_server.expected_for_tag` gives for ``i``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..testing_server import expected_for_tag, tag


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 100]) of a non-empty list."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def matches(i: int, result: dict[str, Any]) -> bool:
    """Whether a moderation result is the tagged answer of request ``i``."""
    exp = expected_for_tag(i)
    pg = result.get("proguard") or {}
    if pg.get("status") == "error" or pg.get("request") != exp["request"]:
        return False
    if exp["request"] == "unsafe" and result.get("flagged") is not True:
        return False
    cat = exp["category"]
    if cat is not None and cat.startswith("C") and pg.get("category_id") != cat:
        return False
    if cat is not None and not cat.startswith("C") and pg.get("description") != cat:
        return False
    raw = pg.get("raw")
    return raw is None or exp["reasoning"] in raw


async def run_http_load(base_url: str, n: int = 2_000, concurrency: int = 64, *, api_key: str | None = None,
                        timeout: float = 60.0) -> dict[str, Any]:
    """Drive ``n`` ``POST /v1/moderations`` calls; return counts, matches and latency figures."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    answers: dict[int, dict[str, Any]] = {}
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout, limits=limits) as client:

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/moderations",
                                          json={"input": f"{tag(i)} load request {i}", "include_raw": True})
                except httpx.HTTPError:
                    statuses[i] = -1
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[i] = r.status_code
                if r.status_code == 200:
                    answers[i] = r.json()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    matched = mismatched = errors = 0
    for i, body in answers.items():
        results = body.get("results") or []
        if len(results) != 1:
            mismatched += 1
            continue
        if (results[0].get("proguard") or {}).get("status") == "error":
            errors += 1
        elif matches(i, results[0]):
            matched += 1
        else:
            mismatched += 1
    return {
        "requests": n,
        "concurrency": concurrency,
        "answered": len(statuses),
        "http_200": sum(1 for s in statuses.values() if s == 200),
        "http_other": sorted({s for s in statuses.values() if s != 200}),
        "matched": matched,
        "mismatched": mismatched,
        "errors": errors,
        "wall_s": wall,
        "requests_per_s": n / wall if wall else float("inf"),
        "latency_p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
        "latency_p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
    }


@contextlib.contextmanager
def serve_process(args: Sequence[str], *, env: Mapping[str, str] | None = None, ready: bool = True,
                  startup_timeout: float = 120.0, cwd: str | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """``proguard-rails serve --port 0 ARGS`` in a child process; yields (base URL, process, log file).

    Waits for ``/readyz`` when ``ready``; terminates the child on exit.
    """
    import httpx

    fd, name = tempfile.mkstemp(prefix="proguard-serve-", suffix=".log")
    os.close(fd)
    log = Path(name)
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "proguard_rails", "serve", "--port", "0", *args],
                                stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=cwd)
    try:
        url = None
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"listening on (http://\S+) ", log.read_text())
            if m:
                url = m.group(1)
                break
            time.sleep(0.05)
        if not url:
            raise RuntimeError(f"proguard-rails serve did not start: {log.read_text()[-2000:]}")
        while ready and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"proguard-rails serve exited: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield url, proc, log
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


__all__ = ["matches", "percentile", "run_http_load", "serve_process"]
