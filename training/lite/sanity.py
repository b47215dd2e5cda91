"""Score a lite model on the small hand-written sanity set (``sanity_set.jsonl`` beside this file).

    python -m training.lite sanity                          # the shipped head
    python -m training.lite sanity --model /tmp/other_model_dir --errors

The sanity set is ~70 sentences written by hand for this purpose (requests alone, and
request/response pairs in all four label combinations, several of them adversarial for an
embedding classifier). It is never read by training, calibration or threshold selection:
it is a smoke test of behaviour on text unlike the templated training data, and far too
small for precise figures.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SANITY_FILE = Path(__file__).resolve().parent / "sanity_set.jsonl"


def load_sanity(path: Path = SANITY_FILE) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _binary(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from .train import binary_metrics

    return binary_metrics(p, y) if len(y) else {}


def evaluate(model: str | Path | None = None, *, path: Path = SANITY_FILE) -> dict[str, Any]:
    """Metrics of a model (``None``: the shipped one; else its folder) on the sanity set, through ``LiteJudge``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from proguard_rails.inputs import build_request
    from proguard_rails.judges.lite import LiteJudge

    rows = load_sanity(path)
    judge = LiteJudge(model)
    scores = judge.score_requests([build_request(r["user"], r["agent"]) for r in rows])
    alone = [k for k, r in enumerate(rows) if r["agent"] is None]
    pairs = [k for k, r in enumerate(rows) if r["agent"] is not None]
    req_p = np.array([scores[k].request_unsafe for k in alone])
    req_y = np.array([rows[k]["request"] for k in alone])
    resp_p = np.array([scores[k].response_unsafe for k in pairs])
    resp_y = np.array([rows[k]["response"] for k in pairs])
    # the request label of the pairs too (is the request judged the same with an answer attached?)
    preq_p = np.array([scores[k].request_unsafe for k in pairs])
    preq_y = np.array([rows[k]["request"] for k in pairs])
    # the hardest slice: the response label disagrees with the request label
    flip = [j for j, k in enumerate(pairs) if rows[k]["request"] != rows[k]["response"]]
    errors = []
    for k, r in enumerate(rows):
        s = scores[k]
        bad_req = ((s.request_unsafe or 0.0) >= 0.5) != bool(r["request"])
        bad_resp = r["agent"] is not None and ((s.response_unsafe or 0.0) >= 0.5) != bool(r["response"])
        if bad_req or bad_resp:
            errors.append({"id": r["id"], "note": r["note"], "request": r["request"], "response": r["response"],
                           "p_request": None if s.request_unsafe is None else round(s.request_unsafe, 3),
                           "p_response": None if s.response_unsafe is None else round(s.response_unsafe, 3)})
    return {
        "model": judge.model.version,
        "n": len(rows),
        "request_alone": _binary(req_p, req_y),
        "response": _binary(resp_p, resp_y),
        "response_label_differs_from_request": {
            "n": len(flip), "accuracy": round(float(np.mean((resp_p[flip] >= 0.5) == resp_y[flip])), 4) if flip else None},
        "request_in_pairs": _binary(preq_p, preq_y),
        "errors": errors,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.lite sanity", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder (lite_model.onnx/.json, lite_tokenizer.json); default: shipped")
    ap.add_argument("--errors", action="store_true", help="also list the misjudged items")
    args = ap.parse_args(list(argv) if argv is not None else None)
    report = evaluate(args.model)
    if not args.errors:
        report.pop("errors")
    print(json.dumps(report, indent=1))
    return 0


__all__ = ["SANITY_FILE", "evaluate", "load_sanity", "main"]
