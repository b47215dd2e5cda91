"""Train, calibrate and evaluate the lite judge's head; write the shipped artifact.

    python -m training.lite train                       # writes proguard_rails/data/lite_head.{npz,json}
    python -m training.lite train --out /tmp/my_head    # somewhere else
    python -m training.lite build --dump /tmp/lite.jsonl  # only the labelled examples, with splits
    python -m training.lite sanity                      # the hand-written sanity set (sanity.py)

Steps: build examples (data.py) -> embed with the packaged MiniLM (cached under
.cache/lite) -> merge near-duplicates into groups -> split train/calib/dev by group ->
train a small multi-task MLP (torch, CPU) -> calibrate on calib (Platt for the two binary
scores, temperature for the category) -> pick the out-of-policy and cascade thresholds on
calib -> evaluate on dev through the same LiteJudge code users run -> save numpy arrays
(.npz, no pickle) and metadata (.json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data import LiteExample, build_examples, normalize_text, summary

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "proguard_rails" / "data" / "lite_head"
DEFAULT_CACHE = REPO / ".cache" / "lite"
SPLITS = (("train", 0.70), ("calib", 0.10), ("dev", 0.20))
TARGET_RECALLS = (0.90, 0.95, 0.97, 0.98, 0.99, 0.995)
DEFAULT_TARGET_RECALL = 0.98
OOP_QUANTILE = 0.05  # share of in-policy unsafe calib items allowed below the out-of-policy threshold
NEAR_DUP_COSINE = 0.92
PAIR_DROP = 0.5  # share of training rows whose response logit omits the pair path (see train_head)


def default_data_root() -> Path:
    env = os.environ.get("PROGUARD_PUBLIC_DATA")
    if env:
        return Path(env)
    for cand in (REPO.parent / "shared" / "data" / "public", REPO / "shared" / "data" / "public"):
        if cand.exists():
            return cand
    return REPO.parent / "shared" / "data" / "public"


# ============================================================================ embeddings
class CachedEmbedder:
    """The judge's embedder with a per-text memo persisted to disk, so reruns embed nothing."""

    def __init__(self, cache_dir: Path) -> None:
        from proguard_rails.judges.lite import MiniLMEmbedder

        self.inner = MiniLMEmbedder()
        self.path = cache_dir / "embeddings.npz"
        self.rows: dict[str, np.ndarray] = {}  # "<key>:<window>" -> embedding
        self.count: dict[str, int] = {}  # "<key>" -> number of windows
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as z:
                self.rows = {str(k): v for k, v in zip(z["keys"], z["vals"], strict=False)}
                self.count = {str(k): int(n) for k, n in zip(z["nkeys"], z["nvals"], strict=False)}
        self.dirty = False

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _complete(self, key: str, max_chunks: int) -> bool:
        n = self.count.get(key)
        if n is None:
            return False
        # n < 0: only the first window was embedded and the text is longer than one window
        return max_chunks == 1 or n > 0

    # the LiteJudge calls encode_chunks; training calls encode (first window only). Windows
    # do not depend on max_chunks except in number, so one cache serves both.
    def encode_chunks(self, texts: Sequence[str], max_chunks: int = 4) -> tuple[np.ndarray, np.ndarray]:
        todo = [t for t in dict.fromkeys(texts) if not self._complete(self._key(t), max_chunks)]
        if todo:
            e, o = self.inner.encode_chunks(todo, max_chunks=max_chunks)
            seen: Counter[int] = Counter()
            for row, i in zip(e, o.tolist(), strict=False):
                self.rows[f"{self._key(todo[i])}:{seen[i]}"] = row
                seen[i] += 1
            body = self.inner.max_length - 2
            for i, t in enumerate(todo):
                n = seen[i]
                if max_chunks == 1 and len(self.inner._tokenizer.encode(t or " ", add_special_tokens=False).ids) > body:
                    n = -1
                self.count[self._key(t)] = n
            self.dirty = True
        embs: list[np.ndarray] = []
        owner: list[int] = []
        for i, t in enumerate(texts):
            k = self._key(t)
            n = 1 if max_chunks == 1 else self.count[k]
            for j in range(abs(n)):
                embs.append(self.rows[f"{k}:{j}"])
                owner.append(i)
        return np.stack(embs).astype(np.float32), np.asarray(owner, dtype=np.int64)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        e, _ = self.encode_chunks(texts, max_chunks=1)
        return e

    def load(self) -> None:
        self.inner.load()

    def save(self) -> None:
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.path, keys=np.asarray(list(self.rows), dtype=str),
                 vals=np.stack(list(self.rows.values())).astype(np.float32),
                 nkeys=np.asarray(list(self.count), dtype=str), nvals=np.asarray(list(self.count.values())))
        self.dirty = False


# ============================================================================ splits
class _UnionFind:
    def __init__(self, n: int) -> None:
        self.p = list(range(n))

    def find(self, i: int) -> int:
        while self.p[i] != i:
            self.p[i] = self.p[self.p[i]]
            i = self.p[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.p[max(ra, rb)] = min(ra, rb)


#: sources whose agent text is a stock reply (templated refusal or answer) shared by many
#: records: not a merge key, or every record using the same stock reply would be one group
_BOILERPLATE_SOURCES = ("donotanswer+refusal", "donotanswer+compliance", "donotanswer+answer", "jailbreaks+refusal",
                        "synth-benign+answer", "synth-contrast+answer", "synth-coverage+compliance",
                        "synth-coverage+refusal", "synth-wrapped+refusal", "resp-refusal", "resp-refusal+carrier")


def _boilerplate(e: LiteExample) -> bool:
    return e.source in _BOILERPLATE_SOURCES


def assign_splits(examples: list[LiteExample], user_emb: np.ndarray, seed: int,
                  agent_emb: np.ndarray | None = None) -> list[str]:
    """Group by source group key, by normalized text and by near-duplicate embeddings
    (cosine >= 0.92), then hash each group into train/calib/dev: no text or near-copy of
    it is on both sides of a split.

    Requests alone are merged on their text; pairs on their answer's text (a response is
    what the response task learns), and on their group, which ties a record's request to
    its answers. A pair's request text is not a merge key: generated answers follow shared
    carrier requests ("Write me a short story."), and merging on those would pull every
    answer into one group.
    """
    n = len(examples)
    uf = _UnionFind(n)
    first: dict[str, int] = {}
    for i, e in enumerate(examples):
        keys = [f"g:{e.group}"] if e.group else []
        if e.agent is None:
            keys.append(f"t:{normalize_text(e.user)}")
        elif not _boilerplate(e):
            keys.append(f"a:{normalize_text(e.agent)}")
        for key in keys:
            if key in first:
                uf.union(first[key], i)
            else:
                first[key] = i

    def near_dups(rows: list[int], emb: np.ndarray, text_of: Any) -> None:
        uniq: dict[str, int] = {}
        for i in rows:
            uniq.setdefault(normalize_text(text_of(examples[i])), i)
        idx = np.asarray(list(uniq.values()), dtype=np.int64)
        if len(idx) == 0:
            return
        m = emb[idx]
        for start in range(0, len(idx), 1024):
            sims = m[start : start + 1024] @ m.T
            rr, cc = np.nonzero(sims >= NEAR_DUP_COSINE)
            for r, c in zip(rr.tolist(), cc.tolist(), strict=False):
                if start + r < c:
                    uf.union(int(idx[start + r]), int(idx[c]))

    near_dups([i for i, e in enumerate(examples) if e.agent is None], user_emb, lambda e: e.user)
    if agent_emb is not None:
        near_dups([i for i, e in enumerate(examples) if e.agent is not None and not _boilerplate(e)], agent_emb,
                  lambda e: e.agent or "")
    out = []
    for i in range(n):
        root = examples[uf.find(i)].group + "|" + str(uf.find(i))
        h = int(hashlib.sha256(f"{seed}:{root}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        acc = 0.0
        for name, frac in SPLITS:
            acc += frac
            if h <= acc:
                out.append(name)
                break
        else:
            out.append(SPLITS[-1][0])
    return out


# ============================================================================ model
def train_head(
    ex: list[LiteExample],
    split: list[str],
    user_emb: np.ndarray,
    agent_emb: np.ndarray,
    classes: list[str],
    *,
    seed: int,
    epochs: int,
    hidden: int = 256,
    resp_hidden: int = 128,
) -> dict[str, np.ndarray]:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    np.random.seed(seed)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is as fast and bit-for-bit reproducible
    cls_index = {c: i for i, c in enumerate(classes)}
    tr = [i for i, s in enumerate(split) if s == "train"]

    # request task: one row per distinct user text (pairs repeat their request)
    req_rows = [i for i in tr if ex[i].request is not None and ex[i].agent is None]
    # category task: the unsafe side's text, wherever the category is known
    cat_x, cat_y = [], []
    for i in tr:
        e = ex[i]
        if e.category is None or e.category not in cls_index:
            continue
        if e.agent is None and e.request == 1:
            cat_x.append(user_emb[i])
            cat_y.append(cls_index[e.category])
        elif e.agent is not None and e.response == 1:
            cat_x.append(agent_emb[i])
            cat_y.append(cls_index[e.category])
    resp_rows = [i for i in tr if ex[i].response is not None and ex[i].agent is not None]

    xr = torch.tensor(user_emb[req_rows])
    yr = torch.tensor([float(ex[i].request) for i in req_rows])  # type: ignore[arg-type]
    xc = torch.tensor(np.stack(cat_x))
    yc = torch.tensor(cat_y)
    xu = torch.tensor(user_emb[resp_rows])
    xa = torch.tensor(agent_emb[resp_rows])
    ya = torch.tensor([float(ex[i].response) for i in resp_rows])  # type: ignore[arg-type]

    def pos_weight(y: torch.Tensor) -> torch.Tensor:
        p = float(y.mean())
        return torch.tensor((1 - p) / max(p, 1e-6))  # balanced classes

    counts = Counter(cat_y)
    cw = torch.tensor([1.0 / math.sqrt(counts.get(k, 1)) for k in range(len(classes))])
    cw = cw / cw.mean()

    trunk = nn.Sequential(nn.Linear(384, hidden), nn.GELU(), nn.Dropout(0.2))
    req = nn.Linear(hidden, 1)
    cat = nn.Linear(hidden, len(classes))
    resp = nn.Sequential(nn.Linear(3 * 384, resp_hidden), nn.GELU(), nn.Dropout(0.2), nn.Linear(resp_hidden, 1))
    # the answer read alone: a harmful answer is unsafe after any request, so this path
    # must carry the label by itself (the pair path is dropped for PAIR_DROP of the rows)
    resp_a = nn.Sequential(nn.Linear(384, resp_hidden), nn.GELU(), nn.Dropout(0.2), nn.Linear(resp_hidden, 1))
    # the response logit also reads how unsafe the answer's text is on its own (the request
    # head applied to it), so toxic or harmful answers count even after a harmless request
    resp_c = nn.Parameter(torch.tensor(0.5))
    params = [*trunk.parameters(), *req.parameters(), *cat.parameters(), *resp.parameters(),
              *resp_a.parameters(), resp_c]
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-2)
    bce_r = nn.BCEWithLogitsLoss(pos_weight=pos_weight(yr))
    bce_a = nn.BCEWithLogitsLoss(pos_weight=pos_weight(ya))
    ce = nn.CrossEntropyLoss(weight=cw, label_smoothing=0.05)
    g = torch.Generator().manual_seed(seed)
    bs = 128
    steps = max(len(xr), len(xc), len(xu)) // bs + 1
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * steps)
    for _ in range(epochs):
        pr, pc, pa = (torch.randperm(len(t), generator=g) for t in (xr, xc, xu))
        for s in range(steps):
            def batch(perm: torch.Tensor, step: int = s) -> torch.Tensor:
                lo = (step * bs) % len(perm)
                return perm[lo : lo + bs]

            br, bc, ba = batch(pr), batch(pc), batch(pa)
            # small input noise: the head should not hinge on one embedding coordinate
            loss = bce_r(req(trunk(xr[br] + 0.01 * torch.randn_like(xr[br]))).squeeze(-1), yr[br])
            loss = loss + ce(cat(trunk(xc[bc] + 0.01 * torch.randn_like(xc[bc]))), yc[bc])
            u, a = xu[ba], xa[ba]
            keep = (torch.rand(len(ba), generator=g) >= PAIR_DROP).float()
            za = keep * resp(torch.cat([u, a, u * a], dim=1)).squeeze(-1) + resp_a(a).squeeze(-1) \
                + resp_c * req(trunk(a)).squeeze(-1).detach()  # answers must not reshape the request head
            loss = loss + bce_a(za, ya[ba])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    torch.set_num_threads(prev_threads)

    def npy(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy().astype(np.float32)

    return {
        "trunk_w": npy(trunk[0].weight.T), "trunk_b": npy(trunk[0].bias),
        "req_w": npy(req.weight.T), "req_b": npy(req.bias),
        "cat_w": npy(cat.weight.T), "cat_b": npy(cat.bias),
        "resp_w1": npy(resp[0].weight.T), "resp_b1": npy(resp[0].bias),
        "resp_w2": npy(resp[3].weight.T), "resp_b2": npy(resp[3].bias),
        "respa_w1": npy(resp_a[0].weight.T), "respa_b1": npy(resp_a[0].bias),
        "respa_w2": npy(resp_a[3].weight.T), "respa_b2": npy(resp_a[3].bias),
        "resp_c": npy(resp_c.reshape(1)),
    }


# ============================================================================ calibration
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: the (a, b) minimizing the log loss of sigmoid(a*z+b), by grid search.

    Platt's smoothed targets ((N+ + 1)/(N+ + 2) and 1/(N- + 2)) and a bounded grid keep
    the fit finite and sane when the calibration split is (nearly) separable, where
    Newton's method runs off to infinity.
    """
    npos, nneg = float(y.sum()), float(len(y) - y.sum())
    t = np.where(y > 0.5, (npos + 1) / (npos + 2), 1 / (nneg + 2))
    best, best_ab = math.inf, (1.0, 0.0)
    for a in np.exp(np.linspace(math.log(0.05), math.log(5.0), 93)):
        for b in np.linspace(-8.0, 8.0, 161):
            z = np.clip(a * logits + b, -60, 60)
            nll = float(np.mean(np.logaddexp(0, -z) * t + np.logaddexp(0, z) * (1 - t)))
            if nll < best:
                best, best_ab = nll, (float(a), float(b))
    return best_ab


def fit_temperature(log_probs: np.ndarray, y: np.ndarray) -> float:
    best, best_t = math.inf, 1.0
    for t in np.exp(np.linspace(math.log(0.2), math.log(5.0), 121)):
        z = log_probs / t
        z = z - z.max(1, keepdims=True)
        nll = -np.mean(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1)))
        if nll < best:
            best, best_t = nll, float(t)
    return best_t


def ece(p: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of binary probabilities (equal-width bins on P(unsafe))."""
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        m = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if m.any():
            total += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(total)


def threshold_for_recall(scores: np.ndarray, labels: np.ndarray, target: float) -> float:
    """The largest threshold t with recall(score >= t) >= target on the unsafe items."""
    pos = np.sort(scores[labels == 1])
    if len(pos) == 0:
        return 0.5
    k = int(math.floor((1 - target) * len(pos)))
    return float(max(pos[k] - 1e-9, 0.0))


def binary_metrics(p: np.ndarray, y: np.ndarray, thr: float = 0.5) -> dict[str, float]:
    pred = p >= thr
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    prec = tp / max(tp + fp, 1)
    rec = tp / max(tp + fn, 1)
    return {
        "n": int(len(y)), "positives": int(y.sum()), "f1": round(2 * prec * rec / max(prec + rec, 1e-9), 4),
        "precision": round(prec, 4), "recall": round(rec, 4), "accuracy": round((tp + tn) / max(len(y), 1), 4),
        "false_positive_rate": round(fp / max(fp + tn, 1), 4),
    }


# ============================================================================ driver
def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m training.lite", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="train", choices=["train", "build"],
                    help="train (default): build, train, calibrate, evaluate, write; build: examples only")
    ap.add_argument("--data-root", type=Path, default=None,
                    help="shared/data/public folder (default: ../shared/data/public or $PROGUARD_PUBLIC_DATA)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="artifact stem: writes STEM.npz and STEM.json")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="embedding cache and reports")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--dump", type=Path, default=None, help="write the labelled examples (with split) as JSONL")
    args = ap.parse_args(list(argv) if argv is not None else None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    t0 = time.monotonic()
    data_root = args.data_root or default_data_root()
    if not data_root.exists():
        raise SystemExit(f"public data not found at {data_root}; pass --data-root or set PROGUARD_PUBLIC_DATA")

    ex = build_examples(data_root, seed=args.seed)
    stats = summary(ex)
    print(f"[lite] {len(ex)} examples from {data_root}", file=sys.stderr)

    emb = CachedEmbedder(args.cache_dir)
    user_emb = emb.encode([e.user for e in ex])
    agent_emb = np.zeros_like(user_emb)
    has_agent = [i for i, e in enumerate(ex) if e.agent is not None]
    if has_agent:
        agent_emb[has_agent] = emb.encode([ex[i].agent or "" for i in has_agent])
    emb.save()
    print(f"[lite] embedded in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    split = assign_splits(ex, user_emb, args.seed, agent_emb)
    stats["splits"] = {s: dict(Counter(sp for sp in split if sp == s)).get(s, 0) for s, _ in SPLITS}
    if args.dump:
        args.dump.parent.mkdir(parents=True, exist_ok=True)
        with args.dump.open("w", encoding="utf-8") as fh:
            for e, s in zip(ex, split, strict=False):
                fh.write(json.dumps({**e.to_dict(), "split": s}, ensure_ascii=False) + "\n")
    if args.command == "build":
        print(json.dumps(stats, indent=1))
        return stats

    from proguard_rails.taxonomy import Taxonomy

    from .data import Rules

    tax = Taxonomy.default()
    rules = Rules()
    classes = [s.id for s in tax.subcategories] + list(rules.oop_classes)
    names = {s.id: s.name for s in tax.subcategories} | rules.oop_classes
    arrays = train_head(ex, split, user_emb, agent_emb, classes, seed=args.seed, epochs=args.epochs)
    print(f"[lite] trained in {time.monotonic() - t0:.0f}s", file=sys.stderr)

    meta: dict[str, Any] = {
        "format": 1,
        "embedder": "all-MiniLM-L6-v2",
        "classes": [{"id": c, "name": names[c], "in_taxonomy": not c.startswith("oop:")} for c in classes],
        "calibration": {"request": {"a": 1.0, "b": 0.0}, "response": {"a": 1.0, "b": 0.0},
                        "category": {"temperature": 1.0}},
        "oop_threshold": 0.0,
    }
    try:
        report = calibrate_and_evaluate(ex, split, arrays, meta, emb, tax)
    finally:
        emb.save()
    digest = hashlib.sha256(b"".join(arrays[k].tobytes() for k in sorted(arrays))).hexdigest()[:12]
    meta["version"] = f"minilm-mlp-{digest}"
    meta["training"] = {
        "command": "python -m training.lite train" + (f" --seed {args.seed}" if args.seed else ""),
        "seed": args.seed, "epochs": args.epochs, "data": stats,
        "sources": "shared/data/public (donotanswer, realtoxicityprompts, jailbreaks, hh-rlhf harmless-base, "
                   "alpaca seed tasks) + generated (training/lite/synth.py, training/lite/responses.py)",
        "sanity_set": "training/lite/sanity_set.jsonl (hand-written, not used for training or tuning): "
                      "python -m training.lite sanity",
    }
    meta["dev_metrics"] = report
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out.with_name(out.name + ".npz"), **arrays)
    out.with_name(out.name + ".json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    (args.cache_dir / "metrics.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))
    print(f"[lite] wrote {out}.npz/.json in {time.monotonic() - t0:.0f}s total", file=sys.stderr)
    return report


def calibrate_and_evaluate(
    ex: list[LiteExample], split: list[str], arrays: dict[str, np.ndarray], meta: dict[str, Any],
    emb: CachedEmbedder, tax: Any,
) -> dict[str, Any]:
    """Calibrate on calib through the real LiteJudge scoring path, then evaluate dev."""
    from proguard_rails.judges.lite import HeadClass, LiteHead, LiteJudge

    def judge() -> LiteJudge:
        classes = [HeadClass(c["id"], c["name"], c["in_taxonomy"]) for c in meta["classes"]]
        head = LiteHead(arrays=arrays, meta=meta, classes=classes)
        return LiteJudge(head, embedder=emb)  # type: ignore[arg-type]

    def rows(name: str) -> list[int]:
        return [i for i, s in enumerate(split) if s == name]

    def score(idx: list[int]) -> list[Any]:
        return judge().score_texts([ex[i].user for i in idx], [ex[i].agent for i in idx])

    cal = rows("calib")
    sc = score(cal)
    # --- Platt scaling of the two binary scores (scores are uncalibrated sigmoids here)
    req_i = [k for k, i in enumerate(cal) if ex[i].request is not None and ex[i].agent is None]
    zr = _logit(np.array([sc[k].request_unsafe for k in req_i]))
    yr = np.array([ex[cal[k]].request for k in req_i], dtype=float)
    resp_i = [k for k, i in enumerate(cal) if ex[i].response is not None and ex[i].agent is not None]
    za = _logit(np.array([sc[k].response_unsafe for k in resp_i]))
    ya = np.array([ex[cal[k]].response for k in resp_i], dtype=float)
    pre_ece = {"request": round(ece(1 / (1 + np.exp(-zr)), yr), 4), "response": round(ece(1 / (1 + np.exp(-za)), ya), 4)}
    a, b = fit_platt(zr, yr)
    meta["calibration"]["request"] = {"a": a, "b": b}
    a2, b2 = fit_platt(za, ya)
    meta["calibration"]["response"] = {"a": a2, "b": b2}
    # --- temperature of the category softmax, on unsafe items with a known class
    cls_ids = [c["id"] for c in meta["classes"]]
    cat_k = [k for k, i in enumerate(cal) if ex[i].category in cls_ids and (ex[i].request == 1 or ex[i].response == 1)]
    lp = np.log(np.stack([sc[k].category_proba for k in cat_k]) + 1e-12)
    yc = np.array([cls_ids.index(ex[cal[k]].category) for k in cat_k])  # type: ignore[arg-type]
    meta["calibration"]["category"] = {"temperature": fit_temperature(lp, yc)}

    # --- thresholds on calibrated calib scores
    sc = score(cal)
    inpol = [k for k in cat_k if meta["classes"][cls_ids.index(ex[cal[k]].category)]["in_taxonomy"]]  # type: ignore[arg-type]
    top = np.array([float(sc[k].category_proba.max()) for k in inpol])
    meta["oop_threshold"] = round(float(np.quantile(top, OOP_QUANTILE)), 4) if len(top) else 0.0
    unsafe_cal = np.array([int(ex[i].request == 1 or ex[i].response == 1) for i in cal])
    s_cal = np.array([s.unsafe for s in sc])
    table = {str(r): round(threshold_for_recall(s_cal, unsafe_cal, r), 6) for r in TARGET_RECALLS}
    meta["cascade"] = {
        "score": "max(request_unsafe, response_unsafe)",
        "default_target_recall": DEFAULT_TARGET_RECALL,
        "safe_threshold": table[str(DEFAULT_TARGET_RECALL)],
        "thresholds_by_target_recall": table,
        "fitted_on": f"calib split ({len(cal)} items)",
    }

    # --- dev evaluation with the final head, through LiteJudge verdicts
    dev = rows("dev")
    j = judge()
    sd = j.score_texts([ex[i].user for i in dev], [ex[i].agent for i in dev])
    view = j._policy_view(tax)
    verdicts = [j.verdict_from_scores(s, tax, has_response=ex[i].agent is not None, view=view) for s, i in zip(sd, dev, strict=False)]
    rq = [k for k, i in enumerate(dev) if ex[i].request is not None and ex[i].agent is None]
    p_rq = np.array([sd[k].request_unsafe for k in rq])
    y_rq = np.array([ex[dev[k]].request for k in rq])
    rs = [k for k, i in enumerate(dev) if ex[i].response is not None and ex[i].agent is not None]
    p_rs = np.array([sd[k].response_unsafe for k in rs])
    y_rs = np.array([ex[dev[k]].response for k in rs])

    # category accuracy on unsafe dev items judged unsafe, against the class of the unsafe side
    correct = main_ok = total = 0
    per_src: dict[str, list[int]] = {}
    for k, i in enumerate(dev):
        e = ex[i]
        if e.category is None or not (e.request == 1 or e.response == 1):
            continue
        v = verdicts[k]
        if not v.unsafe:
            continue
        total += 1
        if e.category.startswith("oop:"):
            ok = v.is_out_of_policy and v.description == meta["classes"][cls_ids.index(e.category)]["name"]
            mok = ok
        else:
            ok = v.category_id == e.category
            mok = v.category_id is not None and v.category_id.split("S")[0] == e.category.split("S")[0]
        correct += ok
        main_ok += mok
    for k in rq:
        per_src.setdefault(ex[dev[k]].source, []).append(k)
    by_source = {}
    for src, ks in sorted(per_src.items()):
        y = np.array([ex[dev[k]].request for k in ks])
        p = np.array([sd[k].request_unsafe for k in ks])
        by_source[src] = {"n": len(ks), "flagged_unsafe": round(float(np.mean(p >= 0.5)), 4), "truth_unsafe": round(float(y.mean()), 4)}

    # held-out policy: hide each dev item's true subcategory; the judge should say out of policy
    held_ok = held_n = 0
    for k, i in enumerate(dev):
        e = ex[i]
        if e.agent is None and e.request == 1 and e.category and not e.category.startswith("oop:"):
            if not verdicts[k].unsafe:
                continue
            t2 = tax.hold_out([e.category])
            v2 = j.verdict_from_scores(sd[k], t2, has_response=False)
            held_n += 1
            held_ok += v2.is_out_of_policy

    unsafe_dev = np.array([int(ex[i].request == 1 or ex[i].response == 1) for i in dev])
    s_dev = np.array([s.unsafe for s in sd])
    thr = meta["cascade"]["safe_threshold"]
    esc = s_dev >= thr
    cascade_dev = {
        "safe_threshold": thr,
        "target_recall": DEFAULT_TARGET_RECALL,
        "escalated_fraction": round(float(esc.mean()), 4),
        "unsafe_recall_of_escalation": round(float(esc[unsafe_dev == 1].mean()), 4),
        "safe_items_passed_without_generation": round(float((~esc)[unsafe_dev == 0].mean()), 4),
        "by_target_recall": {
            r: {"threshold": t, "escalated_fraction": round(float((s_dev >= t).mean()), 4),
                "recall": round(float((s_dev >= t)[unsafe_dev == 1].mean()), 4)}
            for r, t in table.items()
        },
    }
    contrast = [pos for pos, k in enumerate(rq) if ex[dev[k]].source == "synth-contrast"]
    return {
        "splits": {s: split.count(s) for s, _ in SPLITS},
        "request": binary_metrics(p_rq, y_rq),
        "response": binary_metrics(p_rs, y_rs),
        "category": {"n_unsafe_flagged": total, "subcategory_accuracy": round(correct / max(total, 1), 4),
                     "main_category_accuracy": round(main_ok / max(total, 1), 4)},
        "calibration": {
            "ece_calib_before": pre_ece,
            "ece_dev_after": {"request": round(ece(p_rq, y_rq), 4), "response": round(ece(p_rs, y_rs), 4)},
            "platt_request": meta["calibration"]["request"], "platt_response": meta["calibration"]["response"],
            "category_temperature": meta["calibration"]["category"]["temperature"],
        },
        "oop_threshold": meta["oop_threshold"],
        "held_out_category_flagged_out_of_policy": round(held_ok / max(held_n, 1), 4),
        "benign_dangerous_words_false_positive_rate": round(float(np.mean(p_rq[contrast] >= 0.5)), 4) if contrast else None,
        "request_by_source": by_source,
        "cascade": cascade_dev,
    }


def main(argv: Sequence[str] | None = None) -> int:
    run(argv)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
