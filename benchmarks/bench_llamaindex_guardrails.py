"""LlamaIndex and Guardrails adapters: batched node screening, and what each adapter adds per call.

All sides use one in-process ScriptedBackend-based guard with the verdict cache off, so the
compared sides do the same judging work.

    nodes        screening 8 retrieved nodes: ``ProGuardNodePostprocessor`` (one batched guard call)
                 versus the naive way, one ``guard.check`` per node, with 50 ms of simulated
                 generation per judgement (ScriptedBackend delay; the batch is judged concurrently,
                 as a vLLM endpoint would). Figure: speedup = naive / batched wall time.
    query_engine ``ProGuardQueryEngine(inner).query(q)`` versus the same two checks written by hand
                 around ``inner.query(q)`` (no delay): the wrapper's added microseconds and ratio.
    guardrails   ``Guard().use(ProGuardValidator(guard)).validate(answer, metadata=...)`` versus
                 ``guard.check(request, answer)`` (no delay): what Guardrails plus the validator add;
                 ``validator_alone`` isolates the validator (``validator.validate``) from Guardrails.

Rounds alternate the two sides; each figure is the median over rounds of the mean wall time per
call, from one run in one process.

    python benchmarks/bench_llamaindex_guardrails.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any


def _median_pair(a: Callable[[], Any], b: Callable[[], Any], n: int, rounds: int) -> tuple[float, float]:
    """Median over rounds of the mean wall microseconds per call of a and b, alternating."""
    ta: list[float] = []
    tb: list[float] = []
    a()
    b()  # warm-up
    for _ in range(rounds):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            out.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(ta), statistics.median(tb)


def _offline_guardrails() -> None:
    # Guardrails' metrics, LiteLLM's price list and nltk's punkt download stay off (docs/guardrails.md).
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("OTEL_SDK_DISABLED", "true")
    try:
        import nltk

        nltk.data.find("tokenizers/punkt")
    except LookupError:  # benchmark only: the validator never uses punkt
        stub = tempfile.mkdtemp(prefix="punkt-placeholder-")
        os.makedirs(os.path.join(stub, "tokenizers", "punkt"))
        nltk.data.path.append(stub)
    except ImportError:
        pass


def bench_nodes(quick: bool) -> dict[str, Any]:
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.postprocessor.proguard import ProGuardNodePostprocessor

    from proguard_rails import ProGuard, ScriptedBackend

    delay = 0.05
    guard = ProGuard(backend=ScriptedBackend(delay=delay), cache_size=0)
    nodes = [NodeWithScore(node=TextNode(text=f"Document {i}: Paris facts, part {i}."), score=1.0) for i in range(8)]
    pp = ProGuardNodePostprocessor(guard)

    def naive() -> None:
        for n in nodes:
            guard.check(guard.tool_result_request("retriever", n.node.get_content()))

    def batched() -> None:
        pp.postprocess_nodes(nodes)

    rounds = 2 if quick else 5
    t_naive, t_batched = _median_pair(naive, batched, 1, rounds)
    return {
        "nodes": len(nodes),
        "simulated_generation_ms": delay * 1000,
        "naive_ms_per_retrieval": round(t_naive / 1000, 2),
        "batched_ms_per_retrieval": round(t_batched / 1000, 2),
        "speedup_batched_vs_naive": round(t_naive / t_batched, 2),
    }


def bench_query_engine(quick: bool) -> dict[str, Any]:
    from llama_index.core.query_engine import CustomQueryEngine
    from llama_index.postprocessor.proguard import ProGuardQueryEngine

    from proguard_rails import ProGuard, ScriptedBackend

    class Fixed(CustomQueryEngine):
        def custom_query(self, query_str: str) -> str:
            return "Paris is the capital of France."

    guard = ProGuard(backend=ScriptedBackend(), cache_size=0)
    inner = Fixed()
    wrapped = ProGuardQueryEngine(inner, guard)
    q = "What is the capital of France?"
    out_policy = guard.policy.model_copy(update={"labels": "response"})

    def by_hand() -> None:
        if guard.check(q, kind="input").allowed:
            ans = str(inner.query(q))
            guard.check(q, ans, kind="output", policy=out_policy)

    def adapter() -> None:
        wrapped.query(q)

    n, rounds = (20, 3) if quick else (100, 7)
    base, ours = _median_pair(by_hand, adapter, n, rounds)
    return {"baseline_us": round(base, 1), "adapter_us": round(ours, 1), "added_us": round(ours - base, 1),
            "ratio_adapter_vs_hand_written": round(ours / base, 3)}


def bench_guardrails(quick: bool) -> dict[str, Any]:
    _offline_guardrails()
    from guardrails import Guard
    from guardrails_ai.proguard import ProGuardValidator

    from proguard_rails import ProGuard, ScriptedBackend

    guard = ProGuard(backend=ScriptedBackend(), cache_size=0)
    validator = ProGuardValidator(guard, on_fail="noop")
    g = Guard().use(validator)
    g.configure(allow_metrics_collection=False)
    answer, meta = "Paris is the capital of France.", {"request": "What is the capital of France?"}
    pol = validator.policy

    def direct() -> None:
        guard.check(meta["request"], answer, kind="output", policy=pol)

    def through_guard() -> None:
        g.validate(answer, metadata=meta)

    def validator_alone() -> None:
        validator.validate(answer, meta)

    n, rounds = (10, 3) if quick else (50, 5)
    base, full = _median_pair(direct, through_guard, n, rounds)
    base2, alone = _median_pair(direct, validator_alone, n, rounds)
    return {"baseline_us": round(base, 1), "guard_validate_us": round(full, 1),
            "added_us_guard_validate": round(full - base, 1), "ratio_guard_validate_vs_direct": round(full / base, 2),
            "validator_alone_us": round(alone, 1), "ratio_validator_alone_vs_direct": round(alone / base2, 3)}


def run(quick: bool = False) -> dict[str, Any]:
    return {"nodes": bench_nodes(quick), "query_engine": bench_query_engine(quick),
            "guardrails": bench_guardrails(quick)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(quick=parser.parse_args().quick), indent=2))
