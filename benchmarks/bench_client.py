"""Client throughput: concurrent ProGuard checks against what a user would write instead.

Every mode talks to the same fake OpenAI-compatible endpoint (``proguard_rails.testing_server``)
running in a child process, which answers every request after a fixed delay standing in for
generation time (50 ms by default). The endpoint serves any number of requests at once, so
the figures measure what each client does with the endpoint's capacity, not a real server's
batching limits (vLLM's throughput also grows with concurrency, but sub-linearly).

The baselines a user would pick at the same concurrency (16 and 64 in flight, bounded by an
``asyncio.Semaphore``), each doing the same work per check as the guard: render the same
ProGuard prompt (``proguard_rails.protocol.render``), send the same chat-completions body, and
parse the answer with the project's parser (``parse_answer``):

    openai_c16/c64        the official ``AsyncOpenAI`` client (default connection limits)
    httpx_c16/c64         one plain ``httpx.AsyncClient`` with keep-alive for every connection in flight
    concurrent_c16/c64    ``ProGuard.acheck`` (full pipeline: normalize, render, HTTP, parse, policy)
    batch_c64             one ``ProGuard.acheck_batch`` call for all checks, 64 in flight

For context, the sequential figures:

    sequential_released   the released ``deploy/inference.py`` way: the OpenAI sync client, one
                          ``chat.completions.create`` at a time (httpx if ``openai`` is absent)
    sequential_proguard   ``ProGuard.check`` in a loop (one at a time, full pipeline)

The concurrent modes of one concurrency alternate over several rounds (three; one with
``--quick``), in a rotating order, and each mode's median is kept, so a load change on a shared
machine hits all of them. ``ratio`` is a mode's checks/s over ``sequential_released``;
``ratio_vs_openai`` and ``ratio_vs_httpx`` compare ``ProGuard.acheck`` with the baselines at the
same concurrency. ``client_cpu_ms_per_check`` is this process's CPU time (the server runs in
another process). The load figures (64 in flight, 2,000 checks, decisions == requests, verdicts
matched to their own request, peak RSS) come from ``proguard_rails.testing_server.run_load``
against the same server with no delay.

    python benchmarks/bench_client.py            # 50 ms generation, 64 sequential / 512 concurrent checks
    python benchmarks/bench_client.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

try:  # running as a script: make the repository importable without installing
    import proguard_rails  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from proguard_rails import ProGuard
from proguard_rails.backends.base import STOP_SEQUENCES
from proguard_rails.inputs import build_request
from proguard_rails.protocol import parse_answer, released_prompts, render
from proguard_rails.settings import ProGuardSettings
from proguard_rails.testing_server import (
    FakeChatServerProcess,
    expected_for_tag,
    run_load,
    tag,
    tagged_answer,
)

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


_SETTINGS = ProGuardSettings()  # read once, as the guard does (reading PROGUARD_* costs ~1 ms)


def _body(text: str) -> tuple[Any, dict[str, Any]]:
    """The prompt and chat-completions body the guard sends for ``text`` (same renderer, same fields)."""
    prompt = render(build_request(text, settings=_SETTINGS))
    body = {"model": MODEL, "messages": prompt.to_messages(), "max_tokens": 1024, "temperature": 0.0,
            "stream": False, "stop": list(STOP_SEQUENCES)}
    return prompt, body


async def _timed_gather(one: Callable[[str], Awaitable[Any]], items: list[str], concurrency: int) -> tuple[
    float, float, list[Any]
]:
    sem = asyncio.Semaphore(concurrency)

    async def bounded(text: str) -> Any:
        async with sem:
            return await one(text)

    await one("warm-up")  # first connection, lazy imports
    cpu0 = time.process_time()
    start = time.perf_counter()
    out = await asyncio.gather(*(bounded(t) for t in items))
    return time.perf_counter() - start, time.process_time() - cpu0, out


async def _openai_async(base_url: str, items: list[str], concurrency: int) -> tuple[float, float, int]:
    """Baseline: the official AsyncOpenAI client, same prompt and body, the project's parser."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="EMPTY", base_url=base_url, max_retries=0, timeout=120)

    async def one(text: str) -> Any:
        prompt, body = _body(text)
        r = await client.chat.completions.create(**body)
        return parse_answer(r.choices[0].message.content or "", prompt.modality)

    try:
        wall, cpu, verdicts = await _timed_gather(one, items, concurrency)
    finally:
        await client.close()
    return wall, cpu, _mismatches(items, verdicts)


async def _httpx_async(base_url: str, items: list[str], concurrency: int) -> tuple[float, float, int]:
    """Baseline: one plain httpx.AsyncClient, keep-alive for every connection in flight."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits)

    async def one(text: str) -> Any:
        prompt, body = _body(text)
        r = await client.post("/chat/completions", json=body)
        r.raise_for_status()
        return parse_answer(r.json()["choices"][0]["message"]["content"], prompt.modality)

    try:
        wall, cpu, verdicts = await _timed_gather(one, items, concurrency)
    finally:
        await client.aclose()
    return wall, cpu, _mismatches(items, verdicts)


async def _proguard_async(base_url: str, items: list[str], concurrency: int, batch: bool = False) -> tuple[
    float, float, int
]:
    guard = _guard(base_url, concurrency)
    try:
        if batch:
            await guard.acheck("warm-up")
            cpu0 = time.process_time()
            start = time.perf_counter()
            decisions = await guard.acheck_batch(items)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
        else:
            wall, cpu, decisions = await _timed_gather(guard.acheck, items, concurrency)
    finally:
        await guard.aclose()
    errors = [d.reason for d in decisions if d.is_error]
    if errors:
        raise RuntimeError(f"{len(errors)} checks failed, e.g. {errors[0]}")
    return wall, cpu, _mismatches(items, [d.verdict for d in decisions])


def _mismatches(items: list[str], verdicts: list[Any]) -> int:
    """Verdicts that are not their own request's tagged answer (every mode must score 0)."""
    bad = 0
    for text, v in zip(items, verdicts, strict=True):
        n = int(text.split()[0].removeprefix("req-"))
        if v is None or v.reasoning != expected_for_tag(n)["reasoning"]:
            bad += 1
    return bad


async def _load(base_url: str, n: int, concurrency: int) -> dict[str, Any]:
    guard = ProGuard(base_url=base_url, model=MODEL, max_concurrency=concurrency, timeout=120)
    try:
        return await run_load(guard, n=n, concurrency=concurrency)
    finally:
        await guard.aclose()


def _overhead(rounds: int, n: int) -> dict[str, Any]:
    """Client CPU per check with no network at all: every client on an in-memory httpx transport
    that answers at once (``httpx.MockTransport``), one check at a time, alternating rounds.
    Steadier than the loopback figures on a busy machine: it isolates each client's own work."""
    import httpx

    from proguard_rails.backends.openai import OpenAIBackend

    answer = {"id": "x", "object": "chat.completion", "model": MODEL,
              "choices": [{"index": 0, "message": {"role": "assistant", "content": tagged_answer({})},
                           "finish_reason": "stop"}], "usage": {}}
    payload = json.dumps(answer).encode()

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=payload, headers={"content-type": "application/json"})

    transport = httpx.MockTransport(reply)
    url = "http://fake.test/v1"

    async def raw_httpx(items: list[str]) -> None:
        async with httpx.AsyncClient(base_url=url, transport=transport) as client:
            for text in items:
                prompt, body = _body(text)
                r = await client.post("/chat/completions", json=body)
                parse_answer(r.json()["choices"][0]["message"]["content"], prompt.modality)

    async def openai_async(items: list[str]) -> None:
        from openai import AsyncOpenAI

        http = httpx.AsyncClient(base_url=url, transport=transport)
        client = AsyncOpenAI(api_key="EMPTY", base_url=url, max_retries=0, http_client=http)
        for text in items:
            prompt, body = _body(text)
            r = await client.chat.completions.create(**body)
            parse_answer(r.choices[0].message.content or "", prompt.modality)
        await client.close()

    async def proguard(items: list[str]) -> None:
        guard = ProGuard(backend=OpenAIBackend(url, MODEL, transport=transport), cache_size=0)
        for text in items:
            if not (await guard.acheck(text)).allowed:
                raise RuntimeError("unexpected decision")
        await guard.aclose()

    fns: dict[str, Callable[[list[str]], Awaitable[None]]] = {"httpx": raw_httpx, "proguard": proguard}
    try:
        import openai  # noqa: F401

        fns["openai"] = openai_async
    except ImportError:
        pass
    items = [f"How do I reset my router password? (question {i})" for i in range(n)]
    for fn in fns.values():  # warm-up
        asyncio.run(fn(items[:20]))
    samples: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            cpu0 = time.process_time()
            asyncio.run(fns[name](items))
            samples[name].append((time.process_time() - cpu0) / n * 1e6)
    out: dict[str, Any] = {f"{k}_cpu_us_per_check": round(statistics.median(v), 1) for k, v in samples.items()}
    ours = out["proguard_cpu_us_per_check"]
    for k in names:
        if k != "proguard":
            out[f"cpu_ratio_{k}_over_proguard"] = round(out[f"{k}_cpu_us_per_check"] / ours, 2)
    out["checks_per_round"], out["rounds"] = n, rounds
    return out


_CONCURRENT: dict[str, Callable[..., Awaitable[tuple[float, float, int]]]] = {
    "openai": _openai_async,
    "httpx": _httpx_async,
    "proguard": _proguard_async,
}


def run(quick: bool = False, *, delay: float = 0.05, rounds: int | None = None) -> dict[str, Any]:
    """Throughput of each mode (checks/s), ratios over the baselines, and load figures."""
    n_seq = 16 if quick else 64
    n_conc = 128 if quick else 512
    n_load = 500 if quick else 2_000
    rounds = rounds or (1 if quick else 3)
    modes: dict[str, dict[str, Any]] = {}
    try:
        import openai  # noqa: F401

        clients = ["openai", "httpx", "proguard"]
    except ImportError:  # the dev extra installs it; without it the httpx baseline still runs
        clients = ["httpx", "proguard"]
    with FakeChatServerProcess(delay=delay, model=MODEL) as srv:
        elapsed, client_name = _released_loop(srv.base_url, _items(2))  # warm-up (imports, connection)
        elapsed, client_name = _released_loop(srv.base_url, _items(n_seq))
        modes["sequential_released"] = {"checks": n_seq, "wall_s": elapsed, "client": client_name}
        elapsed = _sequential_proguard(srv.base_url, _items(n_seq, 10_000))
        modes["sequential_proguard"] = {"checks": n_seq, "wall_s": elapsed}
        offset = 20_000
        for conc in (16, 64):
            samples: dict[str, list[tuple[float, float]]] = {c: [] for c in clients}
            for r in range(rounds):
                for c in clients[r % len(clients):] + clients[: r % len(clients)]:  # rotate the order
                    srv.reset_stats()
                    offset += n_conc
                    wall, cpu, bad = asyncio.run(_CONCURRENT[c](srv.base_url, _items(n_conc, offset), conc))
                    if bad:
                        raise RuntimeError(f"{c} at {conc} in flight: {bad} verdicts not matched to their request")
                    samples[c].append((wall, cpu))
                    if srv.stats.max_in_flight > conc:
                        raise RuntimeError(f"{c}: {srv.stats.max_in_flight} requests in flight, limit {conc}")
            for c, vals in samples.items():
                name = "concurrent" if c == "proguard" else c
                modes[f"{name}_c{conc}"] = {
                    "checks": n_conc, "wall_s": statistics.median(v[0] for v in vals),
                    "client_cpu_s": statistics.median(v[1] for v in vals), "rounds": len(vals),
                }
        srv.reset_stats()
        wall, cpu, bad = asyncio.run(_proguard_async(srv.base_url, _items(n_conc, offset + n_conc), 64, batch=True))
        if bad:
            raise RuntimeError(f"batch_c64: {bad} verdicts not matched to their request")
        modes["batch_c64"] = {"checks": n_conc, "wall_s": wall, "client_cpu_s": cpu,
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
    versus: dict[str, float] = {}
    for conc in (16, 64):
        ours = modes[f"concurrent_c{conc}"]
        for c in clients:
            other = modes.get(f"{c}_c{conc}")
            if c != "proguard" and other:
                versus[f"ratio_vs_{c}_c{conc}"] = ours[f"ratio_vs_{c}"] = round(
                    ours["checks_per_s"] / other["checks_per_s"], 2)
                ours[f"cpu_ratio_vs_{c}"] = round(other["client_cpu_ms_per_check"] / ours["client_cpu_ms_per_check"], 2)
    load = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in load.items()}
    overhead = _overhead(rounds=3 if quick else 7, n=100 if quick else 300)
    versions = {}
    for dist in ("openai", "httpx", "httpcore"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "benchmark": "client throughput: ProGuard.acheck vs AsyncOpenAI and httpx.AsyncClient at the same "
                     "concurrency, and vs the released script's sequential loop",
        "endpoint": f"fake OpenAI-compatible server in a child process, {delay * 1000:.0f} ms per answer",
        "baselines": "same rendered prompt and request body per check, answers parsed with parse_answer",
        "versions": versions,
        "rounds": rounds,
        "modes": modes,
        **versus,
        "speedup_c64": modes["concurrent_c64"]["ratio"],
        "speedup_batch_c64": modes["batch_c64"]["ratio"],
        "speedup_c16": modes["concurrent_c16"]["ratio"],
        "ideal_speedup_c64": round((64 * (1 / delay)) / base, 1) if delay else None,
        "load": load,
        "overhead_no_network": overhead,
        "quick": quick,
    }


def _print(result: dict[str, Any]) -> None:
    print(result["benchmark"])
    print(result["endpoint"])
    print(f"{'mode':<22}{'checks':>8}{'wall s':>9}{'checks/s':>10}{'cpu ms':>8}{'x seq':>8}  vs baselines")
    for name, m in result["modes"].items():
        cpu = m.get("client_cpu_ms_per_check")
        vs = ", ".join(f"{k.removeprefix('ratio_vs_')} {v:.2f}x" for k, v in m.items() if k.startswith("ratio_vs_"))
        print(f"{name:<22}{m['checks']:>8}{m['wall_s']:>9.2f}{m['checks_per_s']:>10.1f}"
              f"{cpu if cpu is not None else '-':>8}{m['ratio']:>8.2f}  {vs}")
    oh = result["overhead_no_network"]
    print("client CPU per check, no network (in-memory transport): " + ", ".join(
        f"{k.removesuffix('_cpu_us_per_check')} {v} us" for k, v in oh.items() if k.endswith("_cpu_us_per_check")))
    ld = result["load"]
    print(f"load: {ld['decisions']}/{ld['checks']} decisions, {ld['matched']} matched, {ld['errors']} errors, "
          f"{ld['checks_per_s']:.0f} checks/s at {ld['concurrency']} in flight, "
          f"peak RSS {ld['rss_peak_mb']:.0f} MB (+{ld['rss_growth_mb']:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer checks (smoke run)")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per answer at the fake endpoint")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per concurrent mode (default 3, quick 1)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = run(quick=args.quick, delay=args.delay, rounds=args.rounds)
    print(json.dumps(result, indent=2)) if args.json else _print(result)


if __name__ == "__main__":
    main()
