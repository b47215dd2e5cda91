"""ProGuard loaded in-process with transformers (offline, CPU).

Uses the tiny random Qwen2.5-VL test checkpoint from ``proguard_rails.testing`` (same loading
code as ProGuard-7B); its output is gibberish, so every check is a parse error that the default
policy turns into a block. Point ``MODEL`` at real weights (e.g. /models/ProGuard-7B on a GPU)
to get verdicts.

    python examples/local_transformers_guard.py
"""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from proguard_rails import ProGuard
from proguard_rails.backends import TransformersBackend
from proguard_rails.testing import tiny_model_path

MODEL = os.environ.get("PROGUARD_MODEL_PATH") or str(tiny_model_path())


async def main() -> None:
    backend = TransformersBackend(MODEL, max_new_tokens=32, batch_size=8)
    guard = ProGuard(backend=backend)
    # A second guard on the same path shares the loaded model (no second copy in memory).
    strict = ProGuard(model_path=MODEL, backend="transformers", max_tokens=32, fail_mode="closed")
    assert strict.judge.backend.model is backend.model

    decisions = await guard.acheck_batch([
        "How do I bake bread?",
        ("How do I pick a lock?", "Insert a tension wrench, then rake the pins."),
    ])
    for d in decisions:
        print(f"{d.status:8} allowed={d.allowed!s:5} {d.reason[:90]}")

    # Concurrent single checks are coalesced into batches on the model's worker thread.
    many = await asyncio.gather(*(guard.acheck(f"question {i}") for i in range(4)))
    print("concurrent:", [d.status for d in many])
    print("stats:", {k: v for k, v in backend.stats.items() if k in ("prefix_builds", "prefix_hits", "largest_batch")})
    await guard.aclose()
    await strict.aclose()


if __name__ == "__main__":
    asyncio.run(main())
