"""Reward throughput: what batching, keep-alive and deduplication each contribute.

The original ProGuard pipeline scored the out-of-policy bonus by POSTing each
(answer, phrase) pair to a sentence-transformers HTTP service: for every sample, one
request for the target name and one per synonym (six round trips), each encoding two
texts. ``training.rewards`` embeds every new phrase of a batch in one call (each distinct
phrase once: a GRPO group repeats names and a batch repeats synonym banks), caches phrase
embeddings across steps, and takes similarities as a matrix product.

Modes, on the same batch (1,024 out-of-policy completions shaped like a GRPO step: 128
prompts x 8 generations, names partly repeated within a group), the same MiniLM model
object and the same parsing code; all give identical rewards (checked):

* ``http_new_connection``: the original's pattern, one POST per pair, a new TCP connection
  per request (the baseline every ratio is against);
* ``http_keepalive``: one POST per pair over one kept-alive connection (what a tuned client
  of the same service would do);
* ``batched_no_cache``: one ``encode`` call for the whole batch, but every answer and every
  bank phrase encoded as it occurs (no deduplication, no cache);
* ``ours_cold``: ``training.rewards`` from an empty cache (one call, each distinct phrase
  once): the first step of a run;
* ``ours_warm``: the next step (another batch) with the synonym banks already cached, the
  steady state of a run.

The HTTP service (started here on loopback, HTTP/1.1) wraps the same model. The HTTP modes
score a prefix of the batch (``http_samples``; throughput is per sample), in chunks of 32
that alternate between the two clients; the others score all of it, ``ours_*`` as the
median of three runs spread over the HTTP chunks, so every mode sees the same machine load.

    python benchmarks/bench_rewards.py            # HTTP modes on 256 samples
    python benchmarks/bench_rewards.py --quick    # HTTP modes on 64 samples, the rest on 256
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# ``training`` runs from the checkout (it is not in the wheel): make it importable when this file
# is run directly (``python benchmarks/<name>.py``), as ``benchmarks/run.py`` does for every module.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
            protocol_version = "HTTP/1.1"  # keep-alive, as any production HTTP server offers
            disable_nagle_algorithm = True  # TCP_NODELAY, as uvicorn and gunicorn set: no 40 ms ACK stalls

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
    """The original's access pattern: one POST per (answer, phrase) pair.

    ``keepalive=False``: a new connection per request (``httpx.post``, as the original);
    ``True``: one ``httpx.Client`` whose connection is kept alive across requests.
    """

    def __init__(self, url: str, *, keepalive: bool = False) -> None:
        import httpx

        self.url = url
        self.httpx = httpx
        self.client = httpx.Client(timeout=30) if keepalive else None
        self.requests = 0

    def _post(self, payload: dict[str, str]) -> Any:
        if self.client is not None:
            return self.client.post(f"{self.url}/similarity", json=payload)
        return self.httpx.post(f"{self.url}/similarity", json=payload, timeout=30)

    def similarities(self, phrases: list[str], banks: list[list[str]]) -> list[list[float]]:
        out = []
        for phrase, bank in zip(phrases, banks, strict=True):
            row = []
            for other in bank:
                r = self._post({"text1": phrase, "text2": other})
                self.requests += 1
                row.append(float(r.json().get("similarity", 0.0)))
            out.append(row)
        return out

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


class BatchedNoCacheEmbedder:
    """One encode call per batch, every phrase as it occurs: batching without deduplication or cache."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.encoded = 0
        self.encode_calls = 0

    def similarities(self, phrases: list[str], banks: list[list[str]]) -> list[list[float]]:
        flat = list(phrases) + [p for bank in banks for p in bank]
        emb = self.model.encode(flat, batch_size=256, normalize_embeddings=True, convert_to_numpy=True,
                                show_progress_bar=False)
        self.encoded += len(flat)
        self.encode_calls += 1
        q, rest = emb[: len(phrases)], emb[len(phrases):]
        out, k = [], 0
        for i, bank in enumerate(banks):
            out.append([float(x) for x in rest[k:k + len(bank)] @ q[i]])
            k += len(bank)
        return out


def _timed(scorer: RewardScorer, texts: list[str], targets: list[RewardTarget]) -> tuple[float, list[Any]]:
    t0 = time.perf_counter()
    scores = scorer.score_batch(texts, targets)
    return time.perf_counter() - t0, scores


def run(quick: bool = False) -> dict[str, Any]:
    """Run every mode; returns samples/s per mode, ratios against the new-connection baseline,
    and the largest reward difference between any mode and ours (0: they agree)."""
    from training.rewards.calibration import shipped
    from training.rewards.embeddings import MINILM_ID

    texts, targets = make_batch()
    next_texts, next_targets = make_batch(seed=1)  # the following step
    n_batch = 256 if quick else len(texts)
    n_http = 64 if quick else 256
    texts, targets = texts[:n_batch], targets[:n_batch]
    st = SentenceTransformerEmbedder()
    model = st.model  # load once; every mode shares it
    model.encode(["warm up"], show_progress_bar=False)
    calibration = shipped(MINILM_ID)  # the same thresholds in every mode
    modes: dict[str, dict[str, Any]] = {}

    # The modes are interleaved (HTTP chunks of 32 samples, alternating the two clients, with
    # the other modes' runs in between), so a change in the machine's load during the run
    # weighs on every mode alike instead of on whichever ran last.
    chunk = 32
    chunks = [(i, min(i + chunk, n_http)) for i in range(0, n_http, chunk)]
    # after which chunk each of the other runs goes (ours once more before the first chunk)
    pending = [("ours", len(chunks) // 4), ("batched", len(chunks) // 2), ("ours", (3 * len(chunks)) // 4)]
    cold: list[tuple[float, int, int]] = []
    warm: list[tuple[float, int, int]] = []
    ours_scores: list[Any] = []
    batched_scores: list[Any] = []
    batched = BatchedNoCacheEmbedder(model)

    def run_batched() -> None:
        nonlocal batched_scores
        seconds, batched_scores = _timed(RewardScorer(embedder=batched, calibration=calibration),  # type: ignore[arg-type]
                                         texts, targets)
        modes["batched_no_cache"] = {"samples": n_batch, "seconds": round(seconds, 3),
                                     "phrases_encoded": batched.encoded, "encode_calls": batched.encode_calls}

    def run_ours() -> None:
        nonlocal ours_scores
        emb = PhraseEmbedder(st._encode_st, name="minilm", calibration=calibration)
        ours = RewardScorer(embedder=emb, calibration=calibration)
        seconds, ours_scores = _timed(ours, texts, targets)
        cold.append((seconds, emb.encoded, emb.encode_calls))
        before = (emb.encoded, emb.encode_calls)
        seconds, _ = _timed(ours, next_texts[:n_batch], next_targets[:n_batch])
        warm.append((seconds, emb.encoded - before[0], emb.encode_calls - before[1]))

    http_seconds = {"http_new_connection": 0.0, "http_keepalive": 0.0}
    http_scores: dict[str, list[Any]] = {k: [] for k in http_seconds}
    http_requests = dict.fromkeys(http_seconds, 0)
    run_ours()
    with _SimilarityService(model) as svc:
        clients = {"http_new_connection": HTTPPairEmbedder(svc.url, keepalive=False),
                   "http_keepalive": HTTPPairEmbedder(svc.url, keepalive=True)}
        try:
            for k, (a, b) in enumerate(chunks):
                order = list(clients) if k % 2 == 0 else list(reversed(clients))
                for name in order:
                    seconds, scores = _timed(RewardScorer(embedder=clients[name], calibration=calibration),  # type: ignore[arg-type]
                                             texts[a:b], targets[a:b])
                    http_seconds[name] += seconds
                    http_scores[name].extend(scores)
                while pending and pending[0][1] <= k:
                    (run_ours if pending.pop(0)[0] == "ours" else run_batched)()
        finally:
            for name, client in clients.items():
                http_requests[name] = client.requests
                client.close()
    for what, _ in pending:  # fewer chunks than slots (quick runs)
        (run_ours if what == "ours" else run_batched)()
    for name in http_seconds:
        modes[name] = {"samples": n_http, "seconds": round(http_seconds[name], 3), "http_requests": http_requests[name]}
    for name, runs in (("ours_cold", cold), ("ours_warm", warm)):
        seconds = statistics.median(r[0] for r in runs)
        modes[name] = {"samples": n_batch, "seconds": round(seconds, 3), "seconds_runs": [round(r[0], 3) for r in runs],
                       "phrases_encoded": runs[0][1], "encode_calls": runs[0][2]}

    for m in modes.values():
        m["samples_per_s"] = round(m["samples"] / m["seconds"], 1)
    base = modes["http_new_connection"]["samples_per_s"]
    for m in modes.values():
        m["ratio"] = round(m["samples_per_s"] / base, 1)
    diff = max(
        [abs(a.total - b.total) for a, b in zip(ours_scores, batched_scores, strict=True)]
        + [abs(a.total - b.total) for scores in http_scores.values()
           for a, b in zip(ours_scores[:n_http], scores, strict=True)]
    )
    order = ["http_new_connection", "http_keepalive", "batched_no_cache", "ours_cold", "ours_warm"]
    return {
        "benchmark": "reward throughput, out-of-policy completions",
        "batch": n_batch,
        "http_samples": n_http,
        "modes": {k: modes[k] for k in order},
        "speedup": modes["ours_cold"]["ratio"],
        "keepalive_over_new_connection": round(modes["http_keepalive"]["samples_per_s"] / base, 2),
        "batching_over_keepalive": round(modes["batched_no_cache"]["samples_per_s"]
                                         / modes["http_keepalive"]["samples_per_s"], 2),
        "dedup_over_batching": round(modes["ours_cold"]["samples_per_s"] / modes["batched_no_cache"]["samples_per_s"], 2),
        "cache_over_cold": round(modes["ours_warm"]["samples_per_s"] / modes["ours_cold"]["samples_per_s"], 2),
        "max_reward_difference": round(diff, 6),
        "embedder": MINILM_ID,
        "quick": quick,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    print(json.dumps(run(quick=ap.parse_args().quick), indent=2))
