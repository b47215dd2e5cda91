"""Load: 64 concurrent checks, 2,000 in all, against a loopback endpoint.

Every check gets exactly one decision, each verdict is the answer to its own request, and
memory stays bounded (peak RSS growth is reported and checked against a generous bound;
``benchmarks/run.py`` reports the same run with throughput).
"""

from __future__ import annotations

from proguard_rails import ProGuard
from proguard_rails.testing_server import FakeChatServer, run_load


async def test_2000_checks_64_concurrent(record_property):
    with FakeChatServer(delay=0.002) as srv:
        guard = ProGuard(base_url=srv.base_url, max_concurrency=64, timeout=60)
        try:
            figures = await run_load(guard, n=2_000, concurrency=64)
        finally:
            await guard.aclose()
        stats = srv.stats
    for key in ("wall_s", "checks_per_s", "rss_start_mb", "rss_peak_mb", "rss_growth_mb"):
        record_property(key, round(figures[key], 2))
    print(f"\nload: {figures['decisions']} decisions, peak RSS {figures['rss_peak_mb']:.0f} MB "
          f"(+{figures['rss_growth_mb']:.0f} MB), {figures['checks_per_s']:.0f} checks/s")
    assert figures["decisions"] == 2_000
    assert figures["matched"] == 2_000 and figures["mismatched"] == 0 and figures["errors"] == 0
    assert stats.chat_requests == 2_000 and stats.answered == 2_000
    assert 1 < stats.max_in_flight <= 64  # concurrent, and bounded by the client
    assert figures["rss_growth_mb"] < 256, figures  # bounded: no per-check leak of prompts/responses
