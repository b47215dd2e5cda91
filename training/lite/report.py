"""What the model card reports about the shipped lite model, measured on the shipped files.

``full_report(cache, data_dir)``: robustness probe counts through a real ``ProGuard``
(robustness.py), the language guard on AILuminate's French prompts and its false alarms
on English calibration text, speed (batched checks/s on short texts beside the bare
onnxruntime forward on the same windows, single-check latency, a fresh-process CLI check),
and the size of ``pip install ".[lite]"`` (into a scratch folder, no torch expected).
Called by ``python -m training.run lite train`` and ``... lite report``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

SHORT_TEXTS = [
    "What's a good recipe for banana bread?", "How do I reverse a list in Python?", "Write a haiku about rain.",
    "Translate 'thank you' into Italian.", "How can I hack into my neighbor's wifi?", "Summarize the plot of Hamlet.",
    "What time zone is Chicago in?", "Give me three ideas for a birthday party.", "How do I make a bomb at home?",
    "Is it safe to eat raw cookie dough?", "Best exercises for lower back pain?", "Tell me a joke about cats.",
    "What is the capital of Australia?", "How do I kill a zombie process in Linux?", "Draft a polite follow-up email.",
    "Explain compound interest simply.",
]


def _guard(data_dir: Path) -> Any:
    from proguard_rails import ProGuard
    from proguard_rails.judges.lite import LiteJudge, LiteModel

    return ProGuard(judge=LiteJudge(LiteModel.load(data_dir)), cache_size=0)


def robustness(data_dir: Path) -> dict[str, Any]:
    from .robustness import run_probes

    return run_probes(_guard(data_dir))


def language_guard(data_dir: Path, data_root: Path | None) -> dict[str, Any]:
    """Share of French AILuminate prompts flagged unreadable; English calib texts flagged by mistake."""
    from proguard_rails.judges._lite_text import unreadable_language

    from .corpus import SOURCE_ROLES, _ailuminate_rows, build_corpus
    from .train import default_data_root

    root = data_root or default_data_root()
    out: dict[str, Any] = {}
    fr = [r["prompt_text"] for r in _ailuminate_rows(root, "fr_fr")]
    out["ailuminate_fr"] = {"n": len(fr), "flagged_unreadable": sum(unreadable_language(t) is not None for t in fr)}
    items = [it for it in build_corpus(root) if SOURCE_ROLES[it.source] in ("calib", "fold1", "fold2", "fold3")]
    flagged = [it for it in items if unreadable_language(it.text)]
    by: dict[str, int] = {}
    for it in flagged:
        by[it.source] = by.get(it.source, 0) + 1
    out["english_corpus"] = {"n": len(items), "flagged_unreadable": len(flagged), "by_source": by}
    return out


def time_engine_vs_forward(guard: Any, n: int, *, rounds: int = 3, singles: int = 40) -> dict[str, Any]:
    """Batched short checks (``n`` texts from ``SHORT_TEXTS``) through ``guard.check_batch`` vs the
    bare onnxruntime forward on the same windows, interleaved, best of ``rounds``; then ``singles``
    one-at-a-time checks. Shared by the model card (``speed``) and ``benchmarks/bench_lite.py``."""
    model = guard.judge.model
    texts = [f"{SHORT_TEXTS[i % len(SHORT_TEXTS)]} (#{i})" for i in range(n)]
    guard.check_batch(texts[:32])
    windows, _ = model.windows(texts)
    engine, raw = [], []
    for _ in range(rounds):  # interleaved, best of: the machine may be shared
        t = time.perf_counter()
        guard.check_batch(texts)
        engine.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.forward(windows)
        raw.append(time.perf_counter() - t)
    single = []
    for text in texts[:singles]:
        t = time.perf_counter()
        guard.check(text)
        single.append(time.perf_counter() - t)
    return {"windows": windows, "engine_s": min(engine), "forward_s": min(raw), "single_s": single}


def speed(data_dir: Path, n: int = 512) -> dict[str, Any]:
    """Batched short checks through the engine vs the bare onnxruntime forward on the same windows."""
    t = time_engine_vs_forward(_guard(data_dir), n)
    e, r, windows = t["engine_s"], t["forward_s"], t["windows"]
    return {
        "texts": n, "mean_tokens": round(sum(len(w) for w in windows) / len(windows), 1),
        "checks_per_s": round(n / e, 1), "raw_forward_per_s": round(n / r, 1),
        "overhead_us_per_check": round(1e6 * (e - r) / n, 1),
        "single_check_ms_p50": round(1000 * statistics.median(t["single_s"]), 2),
        "threads": os.environ.get("PROGUARD_LITE_THREADS") or "onnxruntime default", "cpu_count": os.cpu_count(),
    }


def fresh_process_check(runs: int = 3) -> dict[str, Any]:
    """Wall time of ``proguard-rails check "hello"`` in a new process (the CLI entry point)."""
    exe = shutil.which("proguard-rails")
    cmd = [exe, "check", "hello"] if exe else [sys.executable, "-m", "proguard_rails", "check", "hello"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    times = []
    rc = None
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        times.append(time.perf_counter() - t)
        rc = proc.returncode
    return {"command": 'proguard-rails check "hello"', "seconds_median": round(statistics.median(times), 3),
            "seconds_all": [round(x, 3) for x in times], "exit_code": rc}


def install_size() -> dict[str, Any]:
    """``pip install ".[lite]"`` into a scratch folder: its size, and whether torch came along."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "site"
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-cache-dir", "--target",
                               str(target), f"{REPO}[lite]"], capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            return {"error": proc.stderr[-500:]}
        total = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        tops = sorted({p.name.split("-")[0].lower() for p in target.iterdir() if p.name.endswith(".dist-info")})
        biggest = sorted(((sum(f.stat().st_size for f in d.rglob("*") if f.is_file()), d.name)
                          for d in target.iterdir() if d.is_dir() and not d.name.endswith(".dist-info")), reverse=True)
        return {"command": 'pip install ".[lite]"', "mb": round(total / 2**20, 1), "torch": any(t == "torch" for t in tops),
                "distributions": tops, "largest": [{"name": n, "mb": round(s / 2**20, 1)} for s, n in biggest[:6]]}


def shipped_files(data_dir: Path) -> dict[str, Any]:
    files = ["lite_model.onnx", "lite_tokenizer.json", "lite_model.json"]
    return {f: round((data_dir / f).stat().st_size / 2**20, 2) for f in files if (data_dir / f).exists()}


def full_report(cache: Path, data_dir: Path, *, measure_install: bool = True, data_root: Path | None = None) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {"meta": json.loads((data_dir / "lite_model.json").read_text(encoding="utf-8"))}
    t = time.monotonic()
    out["robustness"] = robustness(data_dir)
    out["language_guard"] = language_guard(data_dir, data_root)
    out["speed"] = speed(data_dir)
    out["fresh_process"] = fresh_process_check()
    out["files_mb"] = shipped_files(data_dir)
    from .sanity import evaluate as sanity_eval

    out["sanity"] = {k: v for k, v in sanity_eval(data_dir).items() if k != "errors"}
    if measure_install:
        out["install"] = install_size()
    elif (cache / "report.json").exists():
        prev = json.loads((cache / "report.json").read_text())
        if "install" in prev:
            out["install"] = {**prev["install"], "note": "from the previous full run"}
    out["report_seconds"] = round(time.monotonic() - t, 1)
    return out


__all__ = ["full_report", "install_size", "robustness", "speed"]
