"""Lite judge throughput/latency on CPU, and the cascade's cost versus generative-only.

    python benchmarks/bench_lite.py            # full run (about a minute or two on 2 cores)
    python benchmarks/bench_lite.py --quick    # smaller sets

Everything in one process, so the ratios compare like with like. The generative judge is
a ``ScriptedBackend`` whose batch call sleeps ``gen_cost_s`` per prompt: a stand-in for
the cost of generating a ProGuard answer (reasoning + answer) on a served model, NOT a
measurement of any real model. The cascade's saving is reported as the ratio of generated
items (independent of that stand-in cost) and as a wall-time ratio under it. The mixed
set is built from the lite training package's generated templates (benign everyday,
benign-with-dangerous-words, unsafe coverage prompts), labelled by construction.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _mixed_set(n: int, unsafe_share: float, seed: int = 0) -> list[tuple[str, bool, str | None]]:
    """(text, is_unsafe, category) from the generated templates, shuffled."""
    from training.lite import synth

    rng = random.Random(seed)
    benign = [s.text for s in synth.benign_everyday(rng)] + [s.text for s in synth.benign_contrast(rng)]
    unsafe = [(s.text, s.category) for s in synth.unsafe_coverage(rng)]
    n_unsafe = max(1, round(n * unsafe_share))
    rows: list[tuple[str, bool, str | None]] = [(t, False, None) for t in rng.sample(benign, n - n_unsafe)]
    rows += [(t, True, c) for t, c in (rng.sample(unsafe, n_unsafe) if n_unsafe <= len(unsafe)
                                       else [rng.choice(unsafe) for _ in range(n_unsafe)])]
    rng.shuffle(rows)
    return rows


def _scripted_generative(rows: Sequence[tuple[str, bool, str | None]], gen_cost_s: float) -> Any:
    from proguard_rails import ScriptedBackend
    from proguard_rails.backends.scripted import safe_answer, unsafe_answer
    from proguard_rails.judges import GenerativeJudge

    class CostlyScripted(ScriptedBackend):
        """Batch generation whose time grows with the number of prompts (throughput-bound serving)."""

        async def agenerate_batch(self, prompts):  # type: ignore[no-untyped-def]
            await asyncio.sleep(gen_cost_s * len(prompts))
            return await super().agenerate_batch(prompts)

    truth = {t: c for t, u, c in rows if u}

    def answer(prompt):  # type: ignore[no-untyped-def]
        for text, cat in truth.items():
            if text in prompt.user_text:
                return unsafe_answer(cat or "C9S3")
        return safe_answer("text")

    backend = CostlyScripted(default=answer)
    return backend, GenerativeJudge(backend)


def run(quick: bool = False) -> dict[str, Any]:
    import torch

    from proguard_rails import ProGuard, Taxonomy
    from proguard_rails.inputs import build_request
    from proguard_rails.judges.cascade import CascadeJudge
    from proguard_rails.judges.lite import LiteJudge

    tax = Taxonomy.default()
    lite = LiteJudge()
    t0 = time.perf_counter()
    lite.warmup()
    load_s = time.perf_counter() - t0
    results: dict[str, Any] = {
        "device": "cpu", "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "lite_version": lite.head.version, "load_s": round(load_s, 3),
    }

    # ---- lite throughput: one batch of 256 (direct judge call, and through the engine, cache off)
    rows = _mixed_set(256, 0.3, seed=1)
    reqs = [build_request(t, None) for t, _, _ in rows]
    lite.judge_texts_sync(reqs[:8], tax)  # warm kernels
    guard = ProGuard(judge=lite, cache_size=0)
    reps = 1 if quick else 3
    direct_times, engine_times = [], []
    for _ in range(reps):  # interleaved, best of reps: the machine may be shared
        t = time.perf_counter()
        lite.judge_texts_sync(reqs, tax)
        direct_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        guard.check_batch([t for t, _, _ in rows])
        engine_times.append(time.perf_counter() - t)
    b256, engine_b256 = min(direct_times), min(engine_times)

    # ---- single calls (per-check latency)
    n_single = 20 if quick else 60
    singles = []
    for text, _, _ in rows[:n_single]:
        t = time.perf_counter()
        guard.check(text)
        singles.append(time.perf_counter() - t)
    singles.sort()
    results["lite"] = {
        "batch256_s": round(b256, 3),
        "batch256_throughput_per_s": round(256 / b256, 1),
        "engine_batch256_s": round(engine_b256, 3),
        "engine_batch256_throughput_per_s": round(256 / engine_b256, 1),
        "single_check_latency_ms": {
            "mean": round(1000 * statistics.mean(singles), 2),
            "p50": round(1000 * singles[len(singles) // 2], 2),
            "p95": round(1000 * singles[min(len(singles) - 1, int(0.95 * len(singles)))], 2),
        },
        "batching_speedup_per_item": round((statistics.mean(singles)) / (engine_b256 / 256), 2),
    }

    # ---- cascade vs generative-only on a mixed set
    n_mix = 60 if quick else 200
    gen_cost_s = 0.01 if quick else 0.05
    mixed = _mixed_set(n_mix, 0.3, seed=2)
    texts = [t for t, _, _ in mixed]
    truth = [u for _, u, _ in mixed]

    def check_all(judge: Any) -> tuple[float, list[bool]]:
        g = ProGuard(judge=judge, cache_size=0)
        t = time.perf_counter()
        decisions = g.check_batch(texts)
        return time.perf_counter() - t, [d.blocked for d in decisions]

    gen_backend, gen_judge = _scripted_generative(mixed, gen_cost_s)
    gen_s, gen_blocked = check_all(gen_judge)
    cas_backend, cas_gen = _scripted_generative(mixed, gen_cost_s)
    cascade = CascadeJudge(lite, cas_gen)
    cas_s, cas_blocked = check_all(cascade)
    n_unsafe = sum(truth)
    caught_gen = sum(b and u for b, u in zip(gen_blocked, truth, strict=False))
    caught_cas = sum(b and u for b, u in zip(cas_blocked, truth, strict=False))
    results["cascade"] = {
        "items": n_mix, "unsafe_share": round(n_unsafe / n_mix, 3),
        "generative_stand_in": f"ScriptedBackend, {gen_cost_s * 1000:.0f} ms per generated item (batch sleeps n*cost)",
        "safe_threshold": cascade.safe_threshold,
        "escalated_fraction": round(cascade.escalated_fraction, 4),
        "generated_items": {"generative_only": gen_backend.calls, "cascade": cas_backend.calls},
        "generated_items_ratio_cascade_over_generative": round(cas_backend.calls / max(gen_backend.calls, 1), 4),
        "wall_s": {"generative_only": round(gen_s, 3), "cascade": round(cas_s, 3)},
        "wall_ratio_cascade_over_generative": round(cas_s / gen_s, 4),
        "unsafe_blocked": {"generative_only": caught_gen, "cascade": caught_cas, "of": n_unsafe},
        "recall_vs_generative_only": round(caught_cas / max(caught_gen, 1), 4),
    }
    return results


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    print(json.dumps(run(quick=args.quick), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
