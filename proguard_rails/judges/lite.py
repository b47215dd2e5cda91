"""The embedded lite judge: a fine-tuned MiniLM on onnxruntime, on CPU, with no torch.

What every user meets first (``ProGuard()`` with nothing configured, CI, the cascade's
first stage). It reads each text of a check ON ITS OWN CONTENT: the request (when there is
one), the answer, a tool call, a tool result or a retrieved document, so the same text gets
the same score whatever framing it arrives in, and a check with no request reports no
request label. It gives the same ``Verdict`` as the generative judges: labels with
calibrated probabilities in ``Verdict.scores``, a taxonomy subcategory, and an
out-of-policy name when the content is unsafe but no category of the policy shown fits.

- Long text: judged window by window over ALL of it (``_lite_text.window_starts``: 64-token
  windows, stride 40); a text is as unsafe as its worst window, so padding does not dilute
  a harmful part. Cost grows linearly with length (bound in ``window_starts``).
- Obfuscation: base64, hex, rot13, leetspeak and look-alike letters are decoded
  (``_lite_text.decoded_variants``, linear time, bounded) and the decoded text is judged too.
- Languages: the model reads English. Text in another language is "unreadable": never
  reported safe. ``unreadable="block"`` (default) returns an ``UnreadableTextError`` (the
  policy's ``unjudgeable`` setting blocks it); ``"allow"`` returns a verdict with no labels
  and ``Verdict.unreadable`` set; ``"escalate"`` is what the cascade does (it sends the item
  to the generative judge; alone, the lite judge treats it as ``"block"``).
- Images: refused with ``UnjudgeableInputError``.

It is far weaker than ProGuard (see docs/lite_model_card.md). Install:
``pip install 'proguard-rails[lite]'`` (onnxruntime, tokenizers, numpy; no torch).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigurationError, MissingDependencyError, ProGuardError, UnjudgeableInputError
from ..inputs import GuardRequest
from ..taxonomy import Category, Taxonomy
from ..verdict import Modality, Verdict
from ._lite_text import WINDOW_TOKENS, decoded_variants, language_name, unreadable_language, window_starts
from .base import Judge, JudgeResult

try:
    import numpy as np
except ImportError as exc:  # pragma: no cover - numpy ships with the lite extra
    raise MissingDependencyError("numpy", "lite", "the lite judge") from exc

logger = logging.getLogger("proguard_rails.lite")

MODEL_FILE = "lite_model.onnx"
TOKENIZER_FILE = "lite_tokenizer.json"
META_FILE = "lite_model.json"
UnreadablePolicy = Literal["block", "allow", "escalate"]


class UnreadableTextError(UnjudgeableInputError):
    """The lite judge cannot read this text (a language or script it was not trained on)."""

    kind = "unreadable"

    def __init__(self, message: str, language: str) -> None:
        super().__init__(message)
        self.language = language


# ============================================================================ model
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class HeadClass:
    """One category output: a taxonomy subcategory, or a learned out-of-policy risk."""

    id: str  # C<k>S<j>, or "oop:<slug>" for a risk outside the released taxonomy
    name: str
    in_taxonomy: bool


class LiteModel:
    """The fine-tuned encoder (ONNX), its tokenizer and its calibration; numpy in, numpy out.

    ``raw_scores(texts)`` gives, per text, the unsafe logit of its worst window and that
    window's category logits. Thread-safe (onnxruntime sessions are; the tokenizer is).
    """

    def __init__(self, session: Any, tokenizer: Any, meta: dict[str, Any], source: str = "") -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.meta = meta
        self.source = source
        self.classes = [HeadClass(c["id"], c["name"], bool(c["in_taxonomy"])) for c in meta["classes"]]
        self.window = int(meta.get("window_tokens", WINDOW_TOKENS))
        self.stride = int(meta.get("window_stride", 40))
        cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise ConfigurationError("the lite tokenizer has no [CLS]/[SEP] tokens; reinstall proguard-rails")
        self._cls, self._sep, self._pad = cls_id, sep_id, tokenizer.token_to_id("[PAD]") or 0
        self.batch_size = 64
        self.windows_run = 0

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_files(cls, model: str | Path, tokenizer: str | Path, meta: str | Path | dict[str, Any]) -> LiteModel:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError("onnxruntime and tokenizers", "lite", "the lite judge") from exc
        for p in (model, tokenizer):
            if not Path(p).exists():
                raise ConfigurationError(f"lite model file not found: {p}; reinstall proguard-rails or train one "
                                         "with: python -m training.run lite train")
        meta_d = meta if isinstance(meta, dict) else json.loads(Path(meta).read_text(encoding="utf-8"))
        if int(meta_d.get("format", 1)) < 2:
            raise ConfigurationError("this lite model metadata is from an older format; retrain with "
                                     "python -m training.run lite train")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = os.environ.get("PROGUARD_LITE_THREADS")
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        tok = Tokenizer.from_file(str(tokenizer))
        tok.no_truncation()
        tok.no_padding()
        return cls(session, tok, meta_d, source=str(model))

    @classmethod
    def load(cls, path: str | Path | None = None) -> LiteModel:
        """``None``: the model shipped in ``proguard_rails/data``; else a folder holding the three files."""
        if path is None:
            pkg = resources.files("proguard_rails").joinpath("data")
            with resources.as_file(pkg) as folder:
                return cls.from_files(folder / MODEL_FILE, folder / TOKENIZER_FILE, folder / META_FILE)
        folder = Path(path)
        if not folder.is_dir():
            raise ConfigurationError(f"lite model folder not found: {folder} (needs {MODEL_FILE}, {TOKENIZER_FILE}, "
                                     f"{META_FILE})")
        return cls.from_files(folder / MODEL_FILE, folder / TOKENIZER_FILE, folder / META_FILE)

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "unknown"))

    # ------------------------------------------------------------------ scoring
    def windows(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        """Token windows covering every text in full, and the text each window belongs to."""
        body = self.window - 2
        out: list[list[int]] = []
        owner: list[int] = []
        encs = self.tokenizer.encode_batch([t if t.strip() else " " for t in texts], add_special_tokens=False)
        for i, enc in enumerate(encs):
            ids = enc.ids
            for s in window_starts(len(ids), body, self.stride):
                out.append([self._cls, *ids[s : s + body], self._sep])
                owner.append(i)
        return out, owner

    def forward(self, windows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """The model on token windows, in length-sorted batches: (unsafe logits, category logits)."""
        n = len(windows)
        logits = np.zeros(n, dtype=np.float32)
        cats = np.zeros((n, len(self.classes)), dtype=np.float32)
        order = sorted(range(n), key=lambda k: len(windows[k]))
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            width = len(windows[idx[-1]])
            ids = np.full((len(idx), width), self._pad, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, k in enumerate(idx):
                w = windows[k]
                ids[row, : len(w)] = w
                mask[row, : len(w)] = 1
            lg, cat = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            logits[idx] = lg.reshape(-1)
            cats[idx] = cat
        self.windows_run += n
        return logits, cats

    def raw_scores(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per text: the unsafe logit of its worst window and that window's category logits."""
        windows, owner = self.windows(texts)
        lg, cat = self.forward(windows)
        return worst_windows(lg, cat, owner, len(texts))

    def unsafe_proba(self, logits: np.ndarray) -> np.ndarray:
        c = self.meta["calibration"]["unsafe"]
        return _sigmoid(c["a"] * logits + c["b"])

    def category_proba(self, logits: np.ndarray) -> np.ndarray:
        return _softmax(logits / float(self.meta["calibration"]["category"]["temperature"]))


def worst_windows(logits: np.ndarray, cats: np.ndarray, owner: Sequence[int], n_texts: int) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the unsafe logit of its worst window and that window's category logits.

    ``owner[k]`` is the text window ``k`` belongs to. Shared by the runtime and the training
    code's scoring (``training/lite/finetune.score_torch``), so both reduce windows the same way.
    """
    best = np.full(n_texts, -np.inf, dtype=np.float32)
    best_k = np.zeros(n_texts, dtype=np.int64)
    for k, i in enumerate(owner):
        if logits[k] > best[i]:
            best[i], best_k[i] = logits[k], k
    return best, cats[best_k]


_SHARED_LOCK = threading.Lock()
_SHARED: dict[str, LiteModel] = {}


def shared_model(path: str | Path | None = None) -> LiteModel:
    """One loaded copy of a model per process, however many judges use it."""
    key = str(path or "")
    with _SHARED_LOCK:
        m = _SHARED.get(key)
        if m is None:
            m = _SHARED[key] = LiteModel.load(path)
        return m


# ============================================================================ scores
@dataclass(frozen=True)
class LiteScores:
    """The lite judge's raw view of one check (what the cascade thresholds).

    ``request_unsafe`` is ``None`` when the check has no request text; ``response_unsafe``
    when it has no answer. ``unreadable``: the language code of a side it could not read.
    """

    request_unsafe: float | None
    response_unsafe: float | None
    category_proba: np.ndarray  # over model.classes, of the most unsafe side
    unreadable: str | None = None
    decoded: dict[str, float] = field(default_factory=dict)  # obfuscation kind -> P(unsafe) of the decoded text

    @property
    def unsafe(self) -> float:
        """The larger unsafe probability of the texts judged: the cascade's escalation score."""
        vals = [v for v in (self.request_unsafe, self.response_unsafe) if v is not None]
        return max(vals) if vals else 1.0


# the engine frames a tool result as "[context: ...]\n[output of tool NAME]\n<text>": the content is judged
_TOOL_HEADER = re.compile(r"\A(?:\[context: ([^\n]{0,2000})\]\n)?\[output of tool [^\]\n]{0,200}\]\n")


def content_texts(request: GuardRequest) -> tuple[list[str], str | None]:
    """(user-side texts, agent text): what the lite judge reads, framing removed."""
    user = request.user_text or ""
    texts: list[str] = []
    m = _TOOL_HEADER.match(user)
    if m:
        if m.group(1):
            texts.append(m.group(1))
        user = user[m.end() :]
    if user.strip():
        texts.append(user)
    agent = request.agent_text if request.agent_text and request.agent_text.strip() else None
    return texts, agent


def _norm_name(name: str) -> str:
    return " ".join(name.casefold().replace("’", "'").split())


# ============================================================================ judge
class LiteJudge(Judge):
    """The embedded judge. ``LiteJudge()`` loads the shipped model (shared per process, lazily).

    ``model``: a ``LiteModel``, a folder with ``lite_model.{onnx,json}`` and
    ``lite_tokenizer.json``, or ``None`` for the shipped one. ``threshold``: calibrated
    probability at or above which a text is unsafe. ``oop_threshold``: an unsafe item whose
    best category probability is below it is reported out of policy ("uncategorized risk");
    default from the model's metadata. ``unreadable``: what to do with text in a language
    the model cannot read (see the module docstring). ``decode``: judge decoded
    obfuscations too (default on).
    """

    name = "lite"
    supports_images = False

    def __init__(
        self,
        model: LiteModel | str | Path | None = None,
        *,
        threshold: float = 0.5,
        oop_threshold: float | None = None,
        unreadable: UnreadablePolicy = "block",
        decode: bool = True,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ConfigurationError(f"LiteJudge threshold must be in (0, 1), got {threshold}")
        if unreadable not in ("block", "allow", "escalate"):
            raise ConfigurationError(f"LiteJudge unreadable must be 'block', 'allow' or 'escalate', got {unreadable!r}")
        self._model_arg = model
        self._model: LiteModel | None = model if isinstance(model, LiteModel) else None
        self.threshold = threshold
        self._oop_threshold = oop_threshold
        self.unreadable = unreadable
        self.decode = decode

    # ------------------------------------------------------------------ components
    @property
    def model(self) -> LiteModel:
        if self._model is None:
            arg = self._model_arg if not isinstance(self._model_arg, LiteModel) else None
            self._model = shared_model(arg)
        return self._model

    @property
    def oop_threshold(self) -> float:
        if self._oop_threshold is not None:
            return self._oop_threshold
        return float(self.model.meta.get("oop_threshold", 0.0))

    def identity(self) -> str:
        return (f"lite:{self.model.version}:t={self.threshold:g}:oop={self.oop_threshold:.4g}:"
                f"unreadable={self.unreadable}:decode={int(self.decode)}")

    def warmup(self) -> None:
        """Load the model now rather than on the first check."""
        self.model.raw_scores(["warm up"])

    # ------------------------------------------------------------------ scoring
    def score_requests(self, requests: Sequence[GuardRequest]) -> list[LiteScores]:
        """Calibrated scores per request. Blocking; runs the model once for the whole batch."""
        model = self.model
        texts: list[str] = []
        # per request: (user text indices, agent text index or None); per text: its variant indices
        plan: list[tuple[list[int], int | None]] = []
        variants: list[list[tuple[str, int]]] = []

        def add(text: str) -> int:
            texts.append(text)
            variants.append([])
            k = len(texts) - 1
            if self.decode:
                for how, decoded in decoded_variants(text):
                    texts.append(decoded)
                    variants.append([])
                    variants[k].append((how, len(texts) - 1))
            return k

        unread: list[str | None] = []
        for r in requests:
            users, agent = content_texts(r)
            u_idx = [add(t) for t in users]
            a_idx = add(agent) if agent is not None else None
            plan.append((u_idx, a_idx))
            lang = None
            for t in [*users, *([agent] if agent else [])]:
                lang = unreadable_language(t)
                if lang:
                    break
            unread.append(lang)
        if not texts:
            return [LiteScores(None, None, np.zeros(len(model.classes)), lang) for lang in unread]
        z, cat = model.raw_scores(texts)
        p = model.unsafe_proba(z)
        cp = model.category_proba(cat)

        def side(idx: list[int]) -> tuple[float | None, int | None, dict[str, float]]:
            best: float | None = None
            best_k: int | None = None
            dec: dict[str, float] = {}
            for k in idx:
                for kk in [k, *(v for _, v in variants[k])]:
                    if best is None or p[kk] > best:
                        best, best_k = float(p[kk]), kk
                for how, v in variants[k]:
                    dec[how] = max(dec.get(how, 0.0), float(p[v]))
            return best, best_k, dec

        out = []
        for (u_idx, a_idx), lang in zip(plan, unread, strict=True):
            pu, ku, du = side(u_idx)
            pa, ka, da = side([a_idx] if a_idx is not None else [])
            if pu is not None and (pa is None or pu >= pa):
                cat_p = cp[ku]
            elif ka is not None:
                cat_p = cp[ka]
            else:
                cat_p = np.zeros(len(model.classes))
            out.append(LiteScores(pu, pa, cat_p, lang, {**du, **da}))
        return out

    # ------------------------------------------------------------------ verdicts
    def _policy_view(self, taxonomy: Taxonomy) -> list[tuple[str, Any] | None]:
        """For each class: (id, entry) in the policy shown, or None if the policy lacks it (then the
        judge names it out of policy, as ProGuard names a risk that is not in the policy)."""
        view: list[tuple[str, Any] | None] = []
        for cls in self.model.classes:
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

    def verdict_from_scores(self, s: LiteScores, taxonomy: Taxonomy, *,
                            view: list[tuple[str, Any] | None] | None = None) -> Verdict:
        """Scores -> Verdict for the policy shown (pure; no model call). A side with no text has no label."""
        view = view if view is not None else self._policy_view(taxonomy)
        req = None if s.request_unsafe is None else ("unsafe" if s.request_unsafe >= self.threshold else "safe")
        resp = None if s.response_unsafe is None else ("unsafe" if s.response_unsafe >= self.threshold else "safe")
        scores: dict[str, float] = {}
        if s.request_unsafe is not None:
            scores["request_unsafe"] = round(s.request_unsafe, 6)
        if s.response_unsafe is not None:
            scores["response_unsafe"] = round(s.response_unsafe, 6)
        for how, v in s.decoded.items():
            scores[f"decoded_{how}_unsafe"] = round(v, 6)
        fields: dict[str, Any] = {}
        if req == "unsafe" or resp == "unsafe":
            proba = s.category_proba
            best = int(np.argmax(proba))
            cls = self.model.classes[best]
            scores["category"] = round(float(proba[best]), 6)
            scores[f"category:{cls.id}"] = round(float(proba[best]), 6)
            hit = view[best]
            if hit is not None and proba[best] >= self.oop_threshold:
                cid, entry = hit
                if isinstance(entry, Category):
                    fields.update(category_id=cid, category_name=entry.name)
                else:
                    fields.update(category_id=cid, category_name=taxonomy.category_of(cid).name,
                                  subcategory_name=entry.name)
            elif hit is None:
                fields.update(is_out_of_policy=True, description=cls.name)
            else:
                fields.update(is_out_of_policy=True,
                              description=f"uncategorized risk (closest policy entry: {cls.name})")
        elif s.unreadable:
            # not read, so not "safe": no label on any side, and the verdict says why
            req = resp = None
        return Verdict(modality=Modality.TEXT, request=req, response=resp,  # type: ignore[arg-type]
                       scores=scores or None, judge=self.name, unreadable=s.unreadable, **fields)

    def unreadable_error(self, lang: str) -> UnreadableTextError:
        return UnreadableTextError(
            f"the lite judge reads English only and this text looks like {language_name(lang)} ({lang}); it was not "
            "judged. Use ProGuard (PROGUARD_BASE_URL or PROGUARD_MODEL_PATH) or the cascade, or set "
            "LiteJudge(unreadable='allow') to let such text through unjudged", lang)

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
                    "Policy(unjudgeable='allow') to let image content through unjudged")
            else:
                todo.append(i)
        if todo:
            scores = self.score_requests([requests[i] for i in todo])
            view = self._policy_view(taxonomy)
            elapsed = time.monotonic() - start
            for i, s in zip(todo, scores, strict=True):
                v = self.verdict_from_scores(s, taxonomy, view=view)
                if s.unreadable and not v.unsafe and self.unreadable != "allow":
                    out[i] = self.unreadable_error(s.unreadable)  # "block" and "escalate" (alone)
                    continue
                out[i] = v.model_copy(update={"latency_s": elapsed, "truncated": requests[i].truncated})
        return [r for r in out if r is not None]

    async def ajudge_batch(self, requests: Sequence[GuardRequest], taxonomy: Taxonomy) -> list[JudgeResult]:
        """One model pass for the whole batch, off the event loop (it is CPU-bound)."""
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


__all__ = ["HeadClass", "LiteJudge", "LiteModel", "LiteScores", "UnreadableTextError", "content_texts", "shared_model", "worst_windows"]
