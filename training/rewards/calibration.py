"""Similarity thresholds of the out-of-policy bonus, calibrated for the embedder that scores it.

The paper's bonus, ``0.5 * max((best - 0.7) / 0.3, (mean - 0.6) / 0.4)``, is tuned to its
embedder (BGE-M3), whose cosine similarities run high. Other embedders have other scales:
with the default MiniLM a good name such as "Phishing scam" for a fraud risk reaches a best
similarity of 0.69 against the synonym bank, under 0.7, and would earn nothing more than
"Weather forecast". So the thresholds are measured per embedder on the synonym bank of the
released taxonomy:

* **unrelated** names: each entry's bank against the names and synonyms of every entry of
  *another* main category (about 8,300 answer/bank pairs);
* **true synonyms**: each phrase of an entry's bank against the rest of that bank (234 pairs).

The bonus starts where an answer is closer than 95 % of unrelated names (``*_low`` = the 95th
percentile of unrelated best/mean similarity) and is full where it is as close as an
upper-quartile true synonym (``*_high`` = the 75th percentile of the true synonyms'):

``bonus = 0.5 * max(clip((best - best_low) / (best_high - best_low)),
                    clip((mean - mean_low) / (mean_high - mean_low)))``, clipped to [0, 1].

:data:`PAPER` (low 0.7/0.6, high 1.0) reproduces the paper's formula exactly. Calibrations
travel with the embedder (:attr:`training.rewards.embeddings.PhraseEmbedder.calibration`): the
default MiniLM's is shipped in ``calibrations.json`` (a test recomputes it), any other model is
calibrated on first use (one encode call of ~240 phrases) or from a saved file::

    python -m training.rewards.calibration --embedding-model /models/bge-m3 --out bge-m3.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from proguard_rails.eval.calibration import PAPER, SimilarityCalibration, shipped
from proguard_rails.taxonomy import Taxonomy

logger = logging.getLogger("training.rewards")

UNRELATED_QUANTILE = 0.95
SYNONYM_QUANTILE = 0.75


def _quantile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.quantile(np.asarray(values, dtype=np.float64), q))


def calibrate(embedder: Any, taxonomy: Taxonomy | None = None, *, name: str | None = None) -> SimilarityCalibration:
    """Measure the thresholds for ``embedder`` on ``taxonomy``'s synonym bank (default: released).

    ``embedder`` needs ``embed(phrases) -> unit vectors`` (:class:`PhraseEmbedder`) or, slower,
    the :class:`~training.rewards.scoring.Embedder` protocol's ``similarities``.
    """
    import numpy as np

    tax = taxonomy or Taxonomy.default()
    bank = tax.synonym_bank()
    ids = list(bank)
    phrases = sorted({p for v in bank.values() for p in v})
    index = {p: i for i, p in enumerate(phrases)}
    if hasattr(embedder, "embed"):
        vecs = np.asarray(embedder.embed(phrases), dtype=np.float64)
        sim = vecs @ vecs.T
    else:  # protocol only: one row per phrase against every phrase
        rows = embedder.similarities(phrases, [phrases] * len(phrases))
        sim = np.asarray(rows, dtype=np.float64)
    main = {e: e.split("S", 1)[0] for e in ids}
    true_best, true_mean, un_best, un_mean = [], [], [], []
    for e in ids:
        cols = [index[p] for p in bank[e]]
        for p in bank[e]:
            rest = [c for c in cols if c != index[p]]
            row = sim[index[p], rest]
            true_best.append(float(row.max()))
            true_mean.append(float(row.mean()))
        others = [index[p] for f in ids if main[f] != main[e] for p in bank[f]]
        block = sim[np.ix_(others, cols)]
        un_best.extend(block.max(axis=1).tolist())
        un_mean.extend(block.mean(axis=1).tolist())

    def summary(values: list[float]) -> dict[str, float]:
        return {f"q{int(q * 100):02d}": round(_quantile(values, q), 4) for q in (0.05, 0.25, 0.5, 0.75, 0.95)}

    stats = {
        "taxonomy": tax.fingerprint,
        "pairs": {"true_synonyms": len(true_best), "unrelated": len(un_best)},
        "unrelated_quantile": UNRELATED_QUANTILE,
        "synonym_quantile": SYNONYM_QUANTILE,
        "true_best": summary(true_best), "true_mean": summary(true_mean),
        "unrelated_best": summary(un_best), "unrelated_mean": summary(un_mean),
    }
    return SimilarityCalibration(
        embedder=name or getattr(embedder, "name", None) or type(embedder).__name__,
        best_low=round(_quantile(un_best, UNRELATED_QUANTILE), 4),
        best_high=round(_quantile(true_best, SYNONYM_QUANTILE), 4),
        mean_low=round(_quantile(un_mean, UNRELATED_QUANTILE), 4),
        mean_high=round(_quantile(true_mean, SYNONYM_QUANTILE), 4),
        stats=stats,
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.rewards.calibration",
                                 description="Calibrate the out-of-policy similarity thresholds for an embedder.")
    ap.add_argument("--embedding-model", default=None, help="sentence-transformers folder or id (default: MiniLM)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--taxonomy", default=None, help="policy YAML whose synonym bank to use (default: released)")
    ap.add_argument("--out", default=None, help="write the calibration JSON here (load it with reward.calibration)")
    a = ap.parse_args(list(sys.argv[1:] if argv is None else argv))
    from .embeddings import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder(a.embedding_model, device=a.device)
    tax = Taxonomy.from_yaml(a.taxonomy) if a.taxonomy else None
    cal = calibrate(emb, tax, name=emb.embedder_id)
    text = json.dumps(cal.to_dict(), indent=2)
    if a.out:
        cal.save(a.out)
    print(text)
    return 0


__all__ = ["PAPER", "SimilarityCalibration", "calibrate", "main", "shipped"]

if __name__ == "__main__":
    sys.exit(main())
