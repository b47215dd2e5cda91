"""Reports: ``results.json`` (every metric with its counts), ``report.md`` (judges compared
across datasets, paper figures beside measured ones), PNG figures, and per-query predictions.

Published figures come from a reference YAML (``proguard_rails/eval/reference/paper_results.yaml``
by default)::

    results:
      ProGuard-7B:                 # a column in the tables, marked "(paper)"
        xstest:                    # the dataset name given with --dataset NAME=...
          binary.request.all.f1: 90.1     # metric path in results.json; percent
          categorization.subcategory.accuracy: 70.0

Only entries whose dataset name and metric path match a measured cell are shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .runner import EvalResults, JudgeRun

#: rows of the summary table: (label, metric path in results.json)
SUMMARY_METRICS: tuple[tuple[str, str], ...] = (
    ("Request F1", "binary.request.all.f1"),
    ("Response F1", "binary.response.all.f1"),
    ("Subcategory accuracy", "categorization.subcategory.accuracy"),
    ("Main category accuracy", "categorization.main.accuracy"),
    ("Out-of-policy detection F1", "ood_detection.all.f1"),
    ("Out-of-policy description score", "ood_description.score"),
)
_COUNT_OF = {
    "binary.request.all.f1": "binary.request.all.n",
    "binary.response.all.f1": "binary.response.all.n",
    "categorization.subcategory.accuracy": "categorization.subcategory.n",
    "categorization.main.accuracy": "categorization.main.n",
    "ood_detection.all.f1": "ood_detection.all.n",
    "ood_description.score": "ood_description.n_positives",
}


def default_reference_path() -> Path:
    return Path(__file__).resolve().parent / "reference" / "paper_results.yaml"


def load_reference(path: str | Path | None) -> dict[str, Any]:
    """The reference file as a dict (``{}`` when absent); ``results`` values are percents."""
    p = Path(path) if path is not None else default_reference_path()
    if not p.exists():
        return {}
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{p}: a reference file is a mapping with a `results:` table")
    return dict(data)


def lookup(metrics: Mapping[str, Any], path: str) -> Any:
    cur: Any = metrics
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.1f}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _mdcell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# ============================================================================ writing
def write_report(
    results: EvalResults,
    out_dir: str | Path,
    *,
    reference: Mapping[str, Any] | None = None,
    command: str | None = None,
    figures: bool = True,
    predictions: bool = True,
    title: str = "Evaluation report",
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Write results.json, predictions/ (one JSONL per judge and dataset), report.md and
    figures/*.png under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ref = dict(reference or {})
    data = results.to_dict()
    data["meta"]["command"] = command
    if ref.get("results"):
        data["reference"] = {"source": ref.get("source"), "results": ref["results"]}
    paths: dict[str, Path] = {}
    paths["json"] = out / "results.json"
    paths["json"].write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    if predictions:
        paths["predictions"] = _write_predictions(results, out / "predictions")
    figs: dict[str, list[Path]] = {}
    if figures:
        figs = write_figures(results, out / "figures", reference=ref)
    paths["markdown"] = out / "report.md"
    paths["markdown"].write_text(
        render_markdown(results, reference=ref, command=command, figures=figs, base=out, title=title, notes=notes),
        encoding="utf-8",
    )
    return paths


def _write_predictions(results: EvalResults, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for run in results.runs:
        path = folder / f"{_slug(run.judge)}__{_slug(run.dataset)}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for i, it in enumerate(run.items):
                v = it.prediction.verdict
                row = {
                    "sample": it.query.sample.id,
                    "task": it.query.task,
                    "held_out": list(it.query.held_out),
                    "gold": it.query.sample.to_dict(),
                    "request": v.request if v else None,
                    "response": v.response if v else None,
                    "category": v.category_id if v else None,
                    "out_of_policy": v.is_out_of_policy if v else None,
                    "description": v.description if v else None,
                    "scores": v.scores if v else None,
                    "error_type": it.prediction.error_type,
                    "error": it.prediction.error,
                    "cached": it.prediction.cached,
                }
                if i in run.description_scores:
                    row["description_similarity"] = run.description_scores[i]
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return folder


# ============================================================================ markdown
def _ref_models(ref: Mapping[str, Any], dataset: str, paths: Sequence[str]) -> list[str]:
    models = []
    for model, per_ds in (ref.get("results") or {}).items():
        vals = (per_ds or {}).get(dataset) or {}
        if any(p in vals for p in paths):
            models.append(model)
    return models


def render_markdown(
    results: EvalResults,
    *,
    reference: Mapping[str, Any] | None = None,
    command: str | None = None,
    figures: Mapping[str, Sequence[Path]] | None = None,
    base: Path | None = None,
    title: str = "Evaluation report",
    notes: Sequence[str] = (),
) -> str:
    ref = reference or {}
    figs = figures or {}
    judges = list(results.judges)
    ds_names = list(results.datasets)
    m = results.meta
    lines = [f"# {title}", ""]
    if command:
        lines += ["Made with:", "", "```bash", command, "```", ""]
    lines += [
        f"- created: {m.get('created')}; taxonomy fingerprint `{m.get('taxonomy_fingerprint')}`",
        f"- failed judgements in binary metrics count as **{m.get('error_policy')}**; in the other tasks as wrong",
        f"- out-of-policy pairs: {100 * float(m.get('ood_fraction', 0)):.0f}% of unsafe samples with a known "
        f"category, held out at the {m.get('ood_level')} level; description scorer: `{m.get('scorer')}`",
        "- all figures in percent; `n` is the number of samples behind each figure",
    ]
    lines += [f"- {n}" for n in notes]
    lines += ["", "## Judges", "", "| name | identity |", "|---|---|"]
    lines += [f"| {_mdcell(n)} | `{_mdcell(i)}` |" for n, i in results.judges.items()]
    lines += ["", "## Datasets", "",
              "| dataset | format | samples | modalities | request labels | response labels | with category | skipped rows |",
              "|---|---|---:|---|---|---|---:|---|"]
    for name, st in results.datasets.items():
        lines.append(
            f"| {_mdcell(name)} | {st['format']} | {st['n']} | {_kv(st['modalities'])} | {_kv(st['request_labels'])} "
            f"| {_kv(st['response_labels'])} | {st['with_category']} | {_kv(st['skipped']) or '0'} |"
        )
    # ------------------------------------------------------------------ summary
    lines += ["", "## Summary", ""]
    ref_cols: list[str] = []
    for ds in ds_names:
        for model in _ref_models(ref, ds, [p for _, p in SUMMARY_METRICS]):
            if model not in ref_cols:
                ref_cols.append(model)
    header = ["dataset", "metric", *judges, *[f"{r} (paper)" for r in ref_cols]]
    lines += ["| " + " | ".join(_mdcell(h) for h in header) + " |",
              "|---|---|" + "---:|" * (len(judges) + len(ref_cols))]
    for ds in ds_names:
        for label, path in SUMMARY_METRICS:
            cells = []
            any_value = False
            for j in judges:
                try:
                    met = results.metrics(j, ds)
                except KeyError:
                    cells.append("–")
                    continue
                val = lookup(met, path)
                n = lookup(met, _COUNT_OF[path])
                any_value = any_value or val is not None
                cells.append(f"{_pct(val)} (n={n})" if val is not None else "–")
            refs = []
            for col in ref_cols:
                v = ((ref.get("results") or {}).get(col) or {}).get(ds, {}).get(path)
                refs.append(f"{float(v):.1f}" if v is not None else "–")
                any_value = any_value or v is not None
            if any_value:
                lines.append(f"| {_mdcell(ds)} | {label} | " + " | ".join(cells + refs) + " |")
    for key in ("binary", "per_category"):
        for p in figs.get(key, []):
            lines += ["", f"![{p.stem}]({_rel(p, base)})"]
    # ------------------------------------------------------------------ per dataset
    for ds in ds_names:
        runs = [r for r in results.runs if r.dataset == ds]
        if not runs:
            continue
        lines += ["", f"## {ds}", "", "### Binary safety classification (unsafe = positive)", "",
                  "| judge | turn | modality | n | precision | recall | F1 | tp | fp | fn | tn | errors |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in runs:
            for field in ("request", "response"):
                for mod, c in r.metrics["binary"][field].items():
                    lines.append(
                        f"| {_mdcell(r.judge)} | {field} | {mod} | {c['n']} | {_pct(c['precision'])} | "
                        f"{_pct(c['recall'])} | {_pct(c['f1'])} | {c['tp']} | {c['fp']} | {c['fn']} | {c['tn']} | "
                        f"{c['errors']} |"
                    )
        lines += ["", "### Unsafe content categorization", "",
                  "| judge | subcategory acc. | (correct / n) | main category acc. | (correct / n) | outcomes |",
                  "|---|---:|---:|---:|---:|---|"]
        for r in runs:
            c = r.metrics["categorization"]
            lines.append(
                f"| {_mdcell(r.judge)} | {_pct(c['subcategory']['accuracy'])} | {c['subcategory']['correct']} / "
                f"{c['subcategory']['n']} | {_pct(c['main']['accuracy'])} | {c['main']['correct']} / {c['main']['n']} "
                f"| {_kv(c['outcomes'])} |"
            )
        lines += ["", "### Out-of-policy detection (hold-out pairs) and description quality", "",
                  "| judge | pairs n | precision | recall | F1 | tp | fp | fn | tn | named | description score "
                  "| best sim. | mean sim. | good |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in runs:
            o = r.metrics["ood_detection"].get("all")
            d = r.metrics["ood_description"]
            if not o:
                lines.append(f"| {_mdcell(r.judge)} | 0 | – | – | – | – | – | – | – | – | – | – | – | – |")
                continue
            lines.append(
                f"| {_mdcell(r.judge)} | {o['n']} | {_pct(o['precision'])} | {_pct(o['recall'])} | {_pct(o['f1'])} | "
                f"{o['tp']} | {o['fp']} | {o['fn']} | {o['tn']} | {d.get('described', 0)} | {_pct(d.get('score'))} | "
                f"{_fmt(d.get('best_similarity_described'))} | {_fmt(d.get('mean_similarity_described'))} | "
                f"{d.get('good', '–')} |"
            )
        outcome_rows = [(r.judge, r.metrics["ood_detection"].get("positive_outcomes") or {}) for r in runs]
        if any(o for _, o in outcome_rows):
            lines += ["", "What the judges answered on the held-out (positive) queries:", ""]
            lines += [f"- {_mdcell(j)}: {_kv(o)}" for j, o in outcome_rows]
        errs = [(r.judge, r.metrics["errors"]) for r in runs if r.metrics["errors"]]
        if errs:
            lines += ["", "Failed judgements: " + "; ".join(f"{j}: {_kv(e)}" for j, e in errs)]
        for p in figs.get(f"confusion::{ds}", []):
            lines += ["", f"![{p.stem}]({_rel(p, base)})"]
        lines += ["", _run_line(runs)]
    claims = ref.get("claims") or []
    if claims:
        lines += ["", "## Published claims without per-benchmark numbers", ""]
        for c in claims:
            lines.append(f"- {c.get('text')} ({c.get('source', 'paper')})")
    return "\n".join(lines) + "\n"


def _run_line(runs: Sequence[JudgeRun]) -> str:
    return "Run: " + "; ".join(
        f"{r.judge}: {r.judged} judged, {r.cached} from cache, {r.seconds:.1f} s" for r in runs
    )


def _fmt(x: Any) -> str:
    return "–" if x is None else f"{float(x):.3f}"


def _kv(d: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def _rel(p: Path, base: Path | None) -> str:
    if base is None:
        return p.as_posix()
    try:
        return p.relative_to(base).as_posix()
    except ValueError:
        return p.as_posix()


# ============================================================================ figures
def write_figures(results: EvalResults, folder: str | Path, *,
                  reference: Mapping[str, Any] | None = None) -> dict[str, list[Path]]:
    """PNG figures (matplotlib, Agg backend): binary F1 by judge (paper bars hatched),
    per-category accuracy bars, and one confusion matrix per judge and dataset."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    ref = reference or {}
    made: dict[str, list[Path]] = {}
    judges = list(results.judges)
    ds_names = list(results.datasets)

    # --- binary F1 (+ categorization and OOD) overview, paper figures beside
    groups: list[tuple[str, str, str]] = []
    for ds in ds_names:
        for label, path in SUMMARY_METRICS:
            if any(_safe_lookup(results, j, ds, path) is not None for j in judges):
                groups.append((ds, label, path))
    if groups:
        ref_models = []
        for ds in ds_names:
            for mname in _ref_models(ref, ds, [p for _, p, in SUMMARY_METRICS]):
                if mname not in ref_models:
                    ref_models.append(mname)
        series = [(j, False) for j in judges] + [(r, True) for r in ref_models]
        width = 0.8 / max(len(series), 1)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) * max(1, len(series)) / 2 + 3), 4.2))
        cmap = plt.get_cmap("tab10")
        for k, (name, is_ref) in enumerate(series):
            xs, ys = [], []
            for g, (ds, _label, path) in enumerate(groups):
                if is_ref:
                    v = ((ref.get("results") or {}).get(name) or {}).get(ds, {}).get(path)
                    v = None if v is None else float(v)
                else:
                    raw = _safe_lookup(results, name, ds, path)
                    v = None if raw is None else 100 * float(raw)
                if v is not None:
                    xs.append(g + (k - (len(series) - 1) / 2) * width)
                    ys.append(v)
            bars = ax.bar(xs, ys, width=width, label=f"{name} (paper)" if is_ref else name, color=cmap(k % 10),
                          hatch="//" if is_ref else None, edgecolor="black" if is_ref else None, linewidth=0.5)
            ax.bar_label(bars, labels=[f"{y:.0f}" for y in ys], fontsize=6, padding=1)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f"{ds}\n{label}" for ds, label, _ in groups], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("percent")
        ax.set_ylim(0, 108)
        ax.set_title("Measured (solid) and published (hatched) figures" if ref_models else "Measured figures")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        p = out / "summary.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        made["binary"] = [p]

    # --- per-category main accuracy bars, one figure per dataset
    made["per_category"] = []
    for ds in ds_names:
        cats: list[str] = []
        for j in judges:
            pc = _safe_lookup(results, j, ds, "categorization.per_category") or {}
            cats += [c for c in pc if c not in cats]
        if not cats:
            continue
        names = {c.id: c.name for c in results.taxonomy.categories}
        width = 0.8 / max(len(judges), 1)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(cats) + 3), 4.2))
        cmap = plt.get_cmap("tab10")
        for k, j in enumerate(judges):
            pc = _safe_lookup(results, j, ds, "categorization.per_category") or {}
            xs = [i + (k - (len(judges) - 1) / 2) * width for i, c in enumerate(cats) if c in pc]
            ys = [100 * (pc[c]["accuracy"] or 0.0) for c in cats if c in pc]
            bars = ax.bar(xs, ys, width=width, label=j, color=cmap(k % 10))
            ax.bar_label(bars, labels=[f"{y:.0f}" for y in ys], fontsize=6, padding=1)
        counts = {c: max((_safe_lookup(results, j, ds, f"categorization.per_category.{c}.n") or 0) for j in judges)
                  for c in cats}
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels([f"{c} {names.get(c, '')[:18]}\n(n={counts[c]})" for c in cats], rotation=35,
                           ha="right", fontsize=7)
        ax.set_ylim(0, 108)
        ax.set_ylabel("main-category accuracy (%)")
        ax.set_title(f"{ds}: categorization accuracy by gold category")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        p = out / f"per_category__{_slug(ds)}.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        made["per_category"].append(p)

    # --- confusion matrices
    for r in results.runs:
        conf = r.metrics["categorization"]["confusion"]
        if not conf["rows"]:
            continue
        import numpy as np

        mat = np.asarray(conf["matrix"], dtype=float)
        fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(conf["columns"]) + 2.5),
                                        max(3.5, 0.45 * len(conf["rows"]) + 2)))
        norm = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(conf["columns"])))
        ax.set_xticklabels(conf["columns"], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(conf["rows"])))
        ax.set_yticklabels(conf["rows"], fontsize=7)
        for (i, k), v in np.ndenumerate(mat):
            if v:
                ax.text(k, i, str(int(v)), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, k] > 0.6 else "black")
        ax.set_xlabel("predicted main category / outcome")
        ax.set_ylabel("gold main category")
        ax.set_title(f"{r.judge} on {r.dataset}: categorization", fontsize=9)
        fig.tight_layout()
        p = out / f"confusion__{_slug(r.judge)}__{_slug(r.dataset)}.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        made.setdefault(f"confusion::{r.dataset}", []).append(p)
    return made


def _safe_lookup(results: EvalResults, judge: str, ds: str, path: str) -> Any:
    try:
        return lookup(results.metrics(judge, ds), path)
    except KeyError:
        return None


__all__ = ["SUMMARY_METRICS", "default_reference_path", "load_reference", "lookup", "render_markdown",
           "write_figures", "write_report"]
