"""Endpoint faults against a real HTTP server on loopback (``proguard_rails.testing_server``).

Slow, hanging, 5xx, 429, malformed JSON, connections reset, and a server killed and
restarted in the middle of a load run. Every check ends within its deadline (bounds here
are generous correctness bounds, 3x the deadline, not performance assertions); every
failure is an ``error`` decision, blocked by default and allowed only with
``fail_mode="open"``, which logs a warning; no verdict is lost or given to another
request (the server's answers depend on each request's ``req-<n>`` tag); and the circuit
breaker stops hammering a dead endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib

import pytest

from proguard_rails import ProGuard
from proguard_rails.testing_server import FakeChatServer, FakeChatServerProcess, expected_for_tag, tag
from tests.helpers import ManualClock

DEADLINE = 1.0
BOUND = DEADLINE * 3  # correctness bound on elapsed time, generous for a loaded CI machine


def make_guard(base_url: str, **overrides) -> ProGuard:
    opts = dict(timeout=DEADLINE, max_retries=2, retry_backoff=0.02, circuit_breaker_failures=1_000,
                circuit_breaker_cooldown=0.2)
    opts.update(overrides)
    return ProGuard(base_url=base_url, **opts)


def assert_matches(n: int, decision) -> None:
    """The decision is the model's answer to request ``req-<n>`` and no other."""
    assert decision.status != "error", decision.reason
    exp = expected_for_tag(n)
    v = decision.verdict
    assert v.reasoning == exp["reasoning"]
    assert (v.request, v.response) == (exp["request"], exp["response"])
    assert decision.allowed == (exp["request"] == "safe")
    if n % 3 == 1:
        assert v.category_id == exp["category"]
    elif n % 3 == 2:
        assert v.is_out_of_policy and v.description == exp["category"]


def assert_fail_closed(decision, error_type: str | None = None) -> None:
    assert decision.status == "error" and not decision.allowed and decision.fail_mode_applied == "closed"
    assert decision.verdict is None
    if error_type:
        assert decision.error_type == error_type, (decision.error_type, decision.reason)


async def timed(coro):
    start = time.monotonic()
    result = await coro
    return result, time.monotonic() - start


# ------------------------------------------------------------------ slow and hanging endpoints
@pytest.mark.parametrize("behaviour", ["slow", "hang"])
async def test_every_check_ends_within_its_deadline(behaviour, server):
    if behaviour == "slow":
        server.configure(delay=DEADLINE * 10)
    else:
        server.configure(behaviour="hang")
    guard = make_guard(server.base_url, max_concurrency=4)
    # 12 concurrent checks through a client limited to 4 in flight: queued ones count too
    results = await asyncio.gather(*(timed(guard.acheck(f"{tag(i)} slow")) for i in range(12)))
    for decision, elapsed in results:
        assert_fail_closed(decision, "timeout")
        assert elapsed < BOUND, elapsed
        assert "PROGUARD_TIMEOUT" in decision.reason
    # the sync entry point respects the same deadline
    start = time.monotonic()
    d = guard.check(f"{tag(99)} sync")
    assert_fail_closed(d, "timeout")
    assert time.monotonic() - start < BOUND
    assert server.stats.chat_requests <= 4 + 1 + 4  # at most max_concurrency were ever sent per wave
    await guard.aclose()


async def test_slow_but_in_time_answers_are_matched_even_out_of_order(server):
    # each answer takes a different time, so responses come back in a shuffled order
    server.configure(delay=lambda body: (zlib.crc32(str(body).encode()) % 50) / 1000)
    guard = make_guard(server.base_url, timeout=10, max_concurrency=32)
    items = [f"{tag(i)} question" for i in range(150)]
    decisions = await guard.acheck_batch(items)
    assert len(decisions) == len(items)
    for i, d in enumerate(decisions):
        assert_matches(i, d)
    assert server.stats.max_in_flight > 1  # they did overlap
    await guard.aclose()


# ------------------------------------------------------------------ 5xx / 429 / malformed / resets
@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_retryable_status_is_retried_then_fails_closed(status, server):
    server.configure(behaviour="error", error_status=status)
    guard = make_guard(server.base_url, max_retries=2)
    d = await guard.acheck(f"{tag(1)} hello")
    assert_fail_closed(d, "backend")
    assert f"HTTP {status}" in d.reason
    assert server.stats.chat_requests == 3  # first try + 2 retries
    await guard.aclose()


@pytest.mark.parametrize("fault", ["error", "close", "partial"])
async def test_transient_fault_then_recovery_gives_the_right_verdict(fault, server):
    server.push(fault, fault)  # two failures, then normal answers
    guard = make_guard(server.base_url, max_retries=2)
    d = await guard.acheck(f"{tag(4)} hello")
    assert_matches(4, d)
    assert guard.judge.backend.retries == 2
    await guard.aclose()


@pytest.mark.parametrize("fault,error_type", [("close", "unavailable"), ("partial", "unavailable"),
                                              ("malformed", "backend"), ("wrong_shape", "backend")])
async def test_broken_responses_fail_closed(fault, error_type, server):
    server.configure(behaviour=fault)
    guard = make_guard(server.base_url, max_retries=1)
    decisions = await guard.acheck_batch([f"{tag(i)} x" for i in range(5)])
    for d in decisions:
        assert_fail_closed(d, error_type)
    expected_sends = 5 * (2 if fault in ("close", "partial") else 1)  # malformed bodies are not retried
    assert server.stats.chat_requests == expected_sends
    await guard.aclose()


@pytest.mark.parametrize(("status", "kind"), [(400, "input_rejected"), (404, "backend")])
async def test_client_errors_are_not_retried(server, status, kind):
    """400 means the endpoint refused this input (an input error); 404 a wrong URL (a backend error)."""
    server.configure(behaviour="error", error_status=status)
    guard = make_guard(server.base_url)
    assert_fail_closed(await guard.acheck("x"), kind)
    assert server.stats.chat_requests == 1
    await guard.aclose()


async def test_fail_open_allows_and_logs_each_failure(server, caplog):
    server.configure(behaviour="error", error_status=503)
    guard = make_guard(server.base_url, fail_mode="open", max_retries=0)
    with caplog.at_level(logging.WARNING, logger="proguard_rails"):
        decisions = await guard.acheck_batch([f"{tag(i)} x" for i in range(4)])
    for d in decisions:
        assert d.status == "error" and d.allowed and d.fail_mode_applied == "open"
        assert "allowed (fail-open)" in d.reason
    warnings_ = [r for r in caplog.records if "fail_mode is open" in r.getMessage()]
    assert len(warnings_) == 4 and all(r.levelno == logging.WARNING for r in warnings_)
    await guard.aclose()


# ------------------------------------------------------------------ circuit breaker
async def test_circuit_breaker_stops_hammering_a_failing_endpoint(server):
    server.configure(behaviour="close")  # alive, but resets every connection: it counts each attempt
    guard = make_guard(server.base_url, max_retries=0, circuit_breaker_failures=3, circuit_breaker_cooldown=60)
    decisions = [await guard.acheck(f"{tag(i)} x") for i in range(40)]
    for d in decisions:
        assert_fail_closed(d, "unavailable")
    assert server.stats.chat_requests == 3  # the threshold, then nothing while open
    assert sum("circuit breaker is open" in d.reason for d in decisions) == 37
    breaker = guard.judge.backend.breaker
    assert breaker.is_open and breaker.rejected_count == 37 and breaker.opened_count == 1
    # concurrent checks while open never reach the endpoint either
    more = await guard.acheck_batch([f"{tag(i)} y" for i in range(100, 164)])
    assert all(d.is_error and not d.allowed for d in more)
    assert server.stats.chat_requests == 3
    await guard.aclose()


async def test_circuit_breaker_bounds_attempts_on_a_dead_endpoint_and_recovers(server):
    """Cooldown windows are stepped with the breaker's injectable clock, not slept through:
    each window's count is exact whatever the machine's load."""
    guard = make_guard(server.base_url, max_retries=1, circuit_breaker_failures=5, circuit_breaker_cooldown=0.3,
                       max_concurrency=8)
    backend = guard.judge.backend
    clock = backend.breaker.clock = ManualClock()
    assert_matches(0, await guard.acheck(f"{tag(0)} warm"))
    server.kill()

    async def wave(start: int) -> int:
        sent = backend.requests_sent
        decisions = await guard.acheck_batch([f"{tag(i)} z" for i in range(start, start + 32)])
        assert all(d.is_error and not d.allowed for d in decisions)
        return backend.requests_sent - sent

    # closed breaker: only the checks already out when it opens reach the endpoint (each tried twice)
    first = await wave(100)
    assert 5 <= first <= 8 * 2, first
    assert backend.breaker.is_open
    assert await wave(200) == 0  # open: 32 more checks, nothing sent
    for n in range(3):  # each cooldown window lets exactly one probe through; it fails, it reopens
        clock.advance(0.31)
        assert await wave(300 + 100 * n) == 1
        assert backend.breaker.is_open
    # the endpoint comes back: after the cooldown, the probe succeeds, the breaker closes
    server.start()
    clock.advance(0.31)
    decisions = await guard.acheck_batch([f"{tag(i)} back" for i in range(10_000, 10_016)])
    for n, d in zip(range(10_000, 10_016), decisions, strict=True):
        assert_matches(n, d)
    assert not backend.breaker.is_open and backend.breaker.probes == 4
    await guard.aclose()


async def test_queued_timeouts_do_not_open_the_breaker(server):
    """A burst larger than max_concurrency against a healthy endpoint that answers the first
    request and is slow on the next: checks that time out while queued in this client are not
    the endpoint's failures."""
    seen = []

    def delay(body):
        seen.append(body)
        return 0.0 if len(seen) == 1 else 30.0  # the first answer at once, then the endpoint stalls

    server.configure(delay=delay)
    guard = make_guard(server.base_url, timeout=1.5, max_concurrency=1, circuit_breaker_failures=2,
                       circuit_breaker_cooldown=60)
    decisions = await guard.acheck_batch([f"{tag(i)} q" for i in range(12)])
    answered = [d for d in decisions if not d.is_error]
    timeouts = [d for d in decisions if d.is_error]
    assert len(answered) == 1 and len(timeouts) == 11
    assert all(d.error_type == "timeout" for d in timeouts)
    assert server.stats.chat_requests == 2  # the answered one and the stalled one; the rest stayed queued
    # threshold 2: had any queued timeout counted, the breaker would be open
    assert not guard.judge.backend.breaker.is_open
    await guard.aclose()


# ------------------------------------------------------------------ killed and restarted during load
async def _until(predicate, what: str, limit: float = 60.0) -> None:
    """Wait for a condition of the run (an event, not a time window); ``limit`` only stops a hang."""
    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    try:
        await asyncio.wait_for(wait(), limit)
    except asyncio.TimeoutError:
        pytest.fail(f"the run never reached: {what}")


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
async def test_server_killed_and_restarted_mid_load(fail_mode, caplog):
    """Continuous load (up to 64 checks in flight) while the server is killed and restarted.

    The phases follow the run's own events, not wall-clock windows: the kill comes after 50
    answers, the restart after 30 failures, and the breaker's cooldown is stepped with its
    injectable clock. Every check issued once a check issued after the restart was answered
    must be answered too.
    """
    srv = FakeChatServer(delay=0.005).start()
    deadline = 3.0  # client and server share two busy cores here: leave room for scheduling delays
    guard = make_guard(srv.base_url, timeout=deadline, max_retries=1, retry_backoff=0.05,
                       circuit_breaker_failures=5, circuit_breaker_cooldown=0.3, max_concurrency=16,
                       fail_mode=fail_mode)
    clock = guard.judge.backend.breaker.clock = ManualClock()
    results: dict[int, tuple[str, float, object]] = {}
    issued: dict[int, str] = {}
    phase = ["up"]
    stop = asyncio.Event()
    slots = asyncio.Semaphore(64)

    def count(ph: str, ok: bool) -> int:
        return sum(1 for p, _, d in results.values() if p == ph and d.is_error != ok)

    async def one(i: int) -> None:
        try:
            start = time.monotonic()
            d = await guard.acheck(f"{tag(i)} load request")
            results[i] = (issued[i], time.monotonic() - start, d)
        finally:
            slots.release()

    async def load() -> None:
        tasks, i = [], 0
        while not stop.is_set():
            await slots.acquire()
            issued[i] = phase[0]
            tasks.append(asyncio.create_task(one(i)))
            i += 1
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)

    async def chaos() -> None:
        await _until(lambda: count("up", ok=True) >= 50, "answers before the kill")
        phase[0] = "down"
        await asyncio.to_thread(srv.kill)
        await _until(lambda: count("down", ok=False) >= 30, "failures during the outage")
        await asyncio.to_thread(srv.start)  # same port
        phase[0] = "restarted"
        while count("restarted", ok=True) == 0:  # the cooldown ends; a probe finds the server back
            clock.advance(0.31)
            await _until(lambda: any(p == "restarted" for p, _, _ in results.values()), "a check after restart")
            await asyncio.sleep(0.01)
        phase[0] = "recovered"
        await _until(lambda: sum(p == "recovered" for p, _, _ in results.values()) >= 100, "checks after recovery")
        stop.set()

    with caplog.at_level(logging.WARNING, logger="proguard_rails"):
        await asyncio.gather(load(), chaos())
    try:
        assert sorted(results) == sorted(issued)  # every check ended: none lost
        errors = 0
        for i, (_ph, elapsed, d) in results.items():
            assert elapsed < deadline * 3, (i, elapsed)  # deadline correctness bound, not a speed test
            if d.is_error:
                errors += 1
                assert d.allowed == (fail_mode == "open") and d.fail_mode_applied == fail_mode
                assert d.error_type in ("unavailable", "timeout", "backend"), d.reason
            else:
                assert_matches(i, d)  # answered: by the answer to this very request
        assert errors >= 30  # the outage was real
        late = [d for ph, _, d in results.values() if ph == "recovered"]
        assert len(late) >= 100 and not any(d.is_error for d in late), [d.reason for d in late if d.is_error][:3]
        if fail_mode == "open":
            logged = [r for r in caplog.records if "fail_mode is open" in r.getMessage()]
            assert len(logged) == errors
        # after the run: all checks succeed
        after = await guard.acheck_batch([f"{tag(i)} after" for i in range(50_000, 50_064)])
        for i, d in zip(range(50_000, 50_064), after, strict=True):
            assert_matches(i, d)
        assert srv.starts == 2
    finally:
        await guard.aclose()
        srv.stop()


async def test_subprocess_server_sigkilled_and_restarted():
    """A real crash: the server process gets SIGKILL (the kernel resets its connections)."""
    with FakeChatServerProcess(delay=0.01) as srv:
        guard = make_guard(srv.base_url, max_retries=1, circuit_breaker_failures=3, circuit_breaker_cooldown=0.2)
        clock = guard.judge.backend.breaker.clock = ManualClock()
        first = await guard.acheck_batch([f"{tag(i)} a" for i in range(32)])
        for i, d in enumerate(first):
            assert_matches(i, d)
        port = srv.port
        srv.kill()
        down = await guard.acheck_batch([f"{tag(i)} b" for i in range(100, 132)])
        assert all(d.is_error and not d.allowed and d.fail_mode_applied == "closed" for d in down)
        assert guard.judge.backend.breaker.is_open
        srv.start()
        assert srv.port == port
        clock.advance(0.21)  # the cooldown is over: the next check probes the restarted server
        back = await guard.acheck_batch([f"{tag(i)} c" for i in range(200, 232)])
        for i, d in zip(range(200, 232), back, strict=True):
            assert_matches(i, d)
        await guard.aclose()


# ------------------------------------------------------------------ a judge that fails as a whole
async def test_a_judge_failing_as_a_whole_gives_error_decisions_not_exceptions():
    """A judge that raises (a closed local backend, a batch-length bug) must still give every
    check a fail-closed decision: an exception escaping ``check`` could be swallowed upstream."""
    from proguard_rails import BackendError
    from proguard_rails.judges.base import Judge

    class BrokenJudge(Judge):
        name = "broken"
        supports_images = True

        def identity(self) -> str:
            return "broken"

        async def ajudge_batch(self, requests, taxonomy):
            raise BackendError("the local model was released (backend closed)")

    guard = ProGuard(BrokenJudge())
    d = await guard.acheck("req-1 hello")
    assert_fail_closed(d, "backend")
    ds = await guard.acheck_batch(["a", "b", "c"])
    assert len(ds) == 3 and all(x.status == "error" and not x.allowed for x in ds)
    assert not guard.check_tool_result("search", "x").allowed
