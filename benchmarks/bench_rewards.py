"""Reward throughput: batched local embeddings vs an HTTP similarity service per phrase.

The original ProGuard pipeline scored the out-of-policy bonus by POSTing each
(answer, phrase) pair to a sentence-transformers HTTP service: for every sample, one
request for the target name and one per synonym (six round trips), each encoding two
texts. ``training.rewards`` embeds every new phrase of a batch in one call, caches the
synonym banks and repeated answers, and takes similarities as a matrix product.

Both sides use the same MiniLM model object (the HTTP service, started here on loopback,
wraps it) and the same parsing code, on a batch of 1,024 out-of-policy completions shaped
like a GRPO step (128 prompts x 8 generations, names partly repeated within a group).
Ours starts with an empty cache (model already loaded, as in both pipelines after the
first step); its time is the median of three such cold runs. Reported: samples/s for
each and the ratio, from one invocation.

    python benchmarks/bench_rewards.py            # full: the baseline scores all 1,024
    python benchmarks/bench_rewards.py --quick    # the baseline scores 128 (throughput is per sample)
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from proguard_rails.protocol import format_answer
from proguard_rails.taxonomy import Taxonomy
from training.rewards import RewardScorer, RewardTarget
from training.rewards.embeddings import PhraseEmbedder, SentenceTransformerEmbedder

_MODIFIERS = ["online", "covert", "organized", "targeted", "large-scale", "digital", "coordinated", "illegal",
              "deceptive", "harmful", "violent", "systematic"]
_UNRELATED = ["weather report", "cooking recipe", "sports results", "gardening tips", "travel plans",
              "music review", "math homework", "movie trivia"]


def make_batch(n_prompts: int = 128, group: int = 8, seed: int = 0) -> tuple[list[str], list[RewardTarget]]:
    """``n_prompts * group`` out-of-policy completions with their targets."""
    rng = random.Random(seed)
    tax = Taxonomy.default()
    subs = list(tax.subcategories)
    texts: list[str] = []
    targets: list[RewardTarget] = []
    for _ in range(n_prompts):
        entry = rng.choice(subs)
        main = tax.category_of(entry.id).id
        modality = rng.choice(["text", "image", "text-image"])
        target = RewardTarget.parse({
            "modality": modality, "request_label": "unsafe", "response_label": None if modality == "image" else "safe",
            "held_out": [main], "target_name": entry.name, "synonyms": list(entry.synonyms),
        })
        # A group repeats some names (sampling at temperature 1 often does) and varies others.
        pool = [entry.name, *entry.synonyms, rng.choice(_UNRELATED)]
        for _ in range(group):
            base = rng.choice(pool)
            name = f"{rng.choice(_MODIFIERS)} {base.lower()}" if rng.random() < 0.6 else base
            texts.append(format_answer(modality, "unsafe", None if modality == "image" else "safe", name,
                                       reasoning="The policy shown does not list this risk."))
            targets.append(target)
    return texts, targets


class _SimilarityService:
    """A loopback HTTP service in the original's shape: POST /similarity {text1, text2}."""

    def __init__(self, model: Any) -> None:
        self.model = model
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                emb = service.model.encode([body["text1"], body["text2"]], normalize_embeddings=True,
                                           convert_to_numpy=True, show_progress_bar=False)
                payload = json.dumps({"similarity": float(np.dot(emb[0], emb[1]))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _SimilarityService:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class HTTPPairEmbedder:
    """The original's access pattern: one POST per (answer, phrase) pair, a new connection each."""

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url
        self.httpx = httpx
        self.requests = 0

    def similarities(self, phrases: list[str], banks: list[list[str]]) -> list[list[float]]:
        out = []
        for phrase, bank in zip(phrases, banks, strict=True):
            row = []
            for other in bank:
                r = self.httpx.post(f"{self.url}/similarity", json={"text1": phrase, "text2": other}, timeout=30)
                self.requests += 1
                row.append(float(r.json().get("similarity", 0.0)))
            out.append(row)
        return out


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark; returns throughputs (samples/s), the ratio and a check that both agree."""
    texts, targets = make_batch()
    st = SentenceTransformerEmbedder()
    model = st.model  # load once; both sides share it
    model.encode(["warm up"], show_progress_bar=False)

    # Ours, cold (empty cache) each time: the median of three runs, since a short timing on a
    # shared machine is noisy; the baseline's long run averages the noise out by itself.
    ours_times = []
    for _ in range(3):
        ours_embedder = PhraseEmbedder(st._encode_st, name="minilm")
        ours = RewardScorer(embedder=ours_embedder)
        t0 = time.perf_counter()
        ours_scores = ours.score_batch(texts, targets)
        ours_times.append(time.perf_counter() - t0)
    ours_s = statistics.median(ours_times)

    n_base = 128 if quick else len(texts)
    with _SimilarityService(model) as svc:
        http = HTTPPairEmbedder(svc.url)
        base = RewardScorer(embedder=http)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        base_scores = base.score_batch(texts[:n_base], targets[:n_base])
        base_s = time.perf_counter() - t0

    diff = max(abs(a.total - b.total) for a, b in zip(ours_scores[:n_base], base_scores, strict=True))
    ours_tput = len(texts) / ours_s
    base_tput = n_base / base_s
    return {
        "benchmark": "reward throughput, out-of-policy completions",
        "batch": len(texts),
        "baseline_samples": n_base,
        "ours_seconds": round(ours_s, 3),
        "ours_seconds_runs": [round(t, 3) for t in ours_times],
        "ours_samples_per_s": round(ours_tput, 1),
        "ours_phrases_encoded": ours_embedder.encoded,
        "ours_encode_calls": ours_embedder.encode_calls,
        "baseline_seconds": round(base_s, 3),
        "baseline_samples_per_s": round(base_tput, 1),
        "baseline_http_requests": http.requests,
        "speedup": round(ours_tput / base_tput, 1),
        "max_reward_difference": round(diff, 6),
        "quick": quick,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    print(json.dumps(run(quick=ap.parse_args().quick), indent=2))
