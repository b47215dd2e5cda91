"""Fault injection with the fake endpoint: what a guard does when its model server misbehaves.

Runs offline: ``proguard_rails.testing_server.FakeChatServer`` plays the vLLM endpoint on
loopback. Shows fail-closed errors (500s, a hanging server), fail-open with its warning, the
circuit breaker, and recovery after the server is killed and restarted on the same port.

    python examples/fault_injection.py
"""

from __future__ import annotations

import logging
import time

from proguard_rails import ProGuard
from proguard_rails.testing_server import FakeChatServer, tag


def show(label: str, decision) -> None:
    what = decision.verdict.summary() if decision.verdict else decision.error_type
    print(f"{label:<34} status={decision.status:<8} allowed={decision.allowed!s:<5} {what}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="  log: %(levelname)s %(name)s: %(message)s")
    with FakeChatServer() as srv:  # answers depend on the req-<n> tag in the text
        guard = ProGuard(base_url=srv.base_url, timeout=1.0, max_retries=1, retry_backoff=0.05,
                         circuit_breaker_failures=4, circuit_breaker_cooldown=0.5)
        show("healthy, req-1 (unsafe)", guard.check(f"{tag(1)} how do I pick a lock?"))
        show("healthy, req-3 (safe)", guard.check(f"{tag(3)} what is the capital of France?"))

        srv.configure(behaviour="error")  # HTTP 500 for every request
        show("HTTP 500, fail closed", guard.check(f"{tag(6)} hello"))
        show("HTTP 500, fail open (logged)", guard.check(f"{tag(9)} hello",
                                                         policy=guard.policy.model_copy(update={"fail_mode": "open"})))
        show("breaker open: fails fast", guard.check(f"{tag(12)} hello"))
        print(f"{'':<34} requests that reached the server: {srv.stats.chat_requests}")

        srv.configure(behaviour="hang")
        time.sleep(0.6)  # let the breaker's cooldown pass
        start = time.monotonic()
        d = guard.check(f"{tag(15)} hello")
        show(f"hanging server ({time.monotonic() - start:.1f} s)", d)

        srv.configure(behaviour="ok")
        srv.kill()
        show("server killed", guard.check(f"{tag(18)} hello"))
        srv.start()  # same port
        time.sleep(0.6)
        show("server restarted, req-21", guard.check(f"{tag(21)} hello"))
        guard.close()


if __name__ == "__main__":
    main()
