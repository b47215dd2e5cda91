"""The benchmark runner's plumbing (not the benchmarks): lazy imports, "not available",
headline extraction, the saved JSON/Markdown with the command line and the machine."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runner(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_runner_under_test", ROOT / "benchmarks" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "bench_fake_ok.py").write_text(
        "def run(quick=False):\n"
        "    return {'benchmark': 'fake', 'speedup': 3.5, 'nested': {'ratio_cpu': 2.0}, 'quick': quick}\n")
    (tmp_path / "bench_fake_broken.py").write_text("def run(quick=False):\n    raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(mod, "BENCHMARKS", {
        "ok": ("bench_fake_ok", "a fake"), "broken": ("bench_fake_broken", "fails"),
        "missing": ("bench_fake_missing_module", "absent"),
    })
    yield mod
    for name in ("bench_fake_ok", "bench_fake_broken"):
        sys.modules.pop(name, None)


def test_runner_reports_ok_missing_and_failed(runner, tmp_path, capsys):
    out = tmp_path / "results"
    code = runner.main(["--quick", "--out", str(out)])
    assert code == 1  # one benchmark failed (a missing one alone would not fail the run)
    printed = capsys.readouterr().out
    assert "not available" in printed and "module 'bench_fake_missing_module' not found" in printed
    assert "RuntimeError: boom" in printed
    saved = json.loads(next(out.glob("*-quick.json")).read_text())
    assert saved["command"].endswith("run.py --quick --out " + str(out))
    assert saved["machine"]["logical_cores"] and saved["machine"]["python"]
    by_name = {b["name"]: b for b in saved["benchmarks"]}
    assert by_name["ok"]["status"] == "ok" and by_name["ok"]["result"]["quick"] is True
    ratios = {r["figure"]: r["ratio"] for r in by_name["ok"]["headline"]}
    assert ratios == {"speedup": 3.5, "nested.ratio_cpu": 2.0}  # generic fallback finds every ratio
    assert by_name["missing"]["kind"] == "missing" and by_name["broken"]["kind"] == "failed"
    md = (out / "latest-quick.md").read_text()
    assert "| ok | speedup |" in md and "Command:" in md and "## Machine" in md


def test_only_missing_benchmarks_is_not_a_failure(runner, tmp_path):
    assert runner.main(["--only", "missing,ok", "--no-save"]) == 0


def test_client_rows_from_a_result_shape(runner):
    result = {"endpoint": "fake", "modes": {
        "sequential_released": {"checks_per_s": 10.0, "ratio": 1.0, "client": "openai sync client"},
        "concurrent_c64": {"checks_per_s": 120.0, "ratio": 12.0}},
        "load": {"checks": 2000, "concurrency": 64, "decisions": 2000, "matched": 2000, "errors": 0,
                 "checks_per_s": 300.0, "rss_peak_mb": 100.0, "rss_growth_mb": 3.0}}
    rows = runner.headline_rows("client", result)
    assert rows[0]["ratio"] == 12.0 and rows[0]["baseline"] == 10.0
    assert "decisions 2000/2000" in rows[1]["note"]


def test_client_rows_compare_with_the_async_baselines_at_the_same_concurrency(runner):
    result = {"endpoint": "fake", "modes": {
        "sequential_released": {"checks_per_s": 10.0, "ratio": 1.0, "client": "openai sync client"},
        "openai_c16": {"checks_per_s": 100.0, "client_cpu_ms_per_check": 3.0, "rounds": 3},
        "httpx_c16": {"checks_per_s": 150.0, "client_cpu_ms_per_check": 1.5, "rounds": 3},
        "concurrent_c16": {"checks_per_s": 200.0, "ratio": 20.0, "ratio_vs_openai": 2.0, "ratio_vs_httpx": 1.33,
                           "client_cpu_ms_per_check": 1.2}}}
    rows = {r["figure"]: r for r in runner.headline_rows("client", result)}
    vs_openai = rows["ProGuard.acheck vs AsyncOpenAI, 16 in flight"]
    assert (vs_openai["value"], vs_openai["baseline"], vs_openai["ratio"]) == (200.0, 100.0, 2.0)
    vs_httpx = rows["ProGuard.acheck vs httpx.AsyncClient (keep-alive), 16 in flight"]
    assert (vs_httpx["baseline"], vs_httpx["ratio"]) == (150.0, 1.33)
    assert rows["ProGuard.acheck, 16 in flight, vs the sequential loop"]["ratio"] == 20.0


def test_sync_api_rows(runner):
    result = {"backend": "scripted", "modes": {
        "acheck": {"wall_us": 100.0, "cpu_us": 60.0},
        "check": {"wall_us": 110.0, "cpu_us": 66.0, "added_cpu_us": 6.0, "added_wall_us": 10.0, "ratio_cpu": 1.1},
        "check_via_portal": {"wall_us": 300.0, "cpu_us": 120.0, "added_cpu_us": 60.0, "added_wall_us": 200.0,
                             "ratio_cpu": 2.0}}}
    rows = runner.headline_rows("sync_api", result)
    assert [(r["value"], r["baseline"], r["ratio"]) for r in rows] == [(66.0, 60.0, 1.1), (120.0, 60.0, 2.0)]


def test_local_rows_compare_with_single_and_batched_generate_for_both_answer_lengths(runner):
    def run(tokens, same=True):
        return {"max_new_tokens": tokens, "identical_outputs": same, "different_modes": [] if same else ["ours"],
                "modes": {"generate_single": {"checks_per_s": 2.0, "ratio_wall": 1.0},
                          "generate_batched": {"checks_per_s": 1.0, "ratio_wall": 0.5},
                          "ours_whole_prompt_tokenizing": {"checks_per_s": 7.0},
                          "ours": {"checks_per_s": 8.0, "ratio_wall": 4.0, "ratio_cpu": 3.0,
                                   "ratio_wall_vs_batched": 8.0, "ratio_cpu_vs_batched": 6.0,
                                   "ratio_wall_vs_whole_prompt_tokenizing": 1.14}}}

    result = {**run(24), "batch_size": 16, "long": run(160, same=False), "ours_ms_per_check_cpu": 20.0,
              "tokenize_ms_per_check": {"whole_prompt": 5.0, "conversation_only": 1.0,
                                        "whole_prompt_batch16": 4.0, "conversation_only_batch16": 0.5}}
    rows = {r["figure"]: r for r in runner.headline_rows("local", result)}
    assert "local backend, batch_only" not in rows
    single = rows["local backend, 24 new tokens: ours vs one generate per check"]
    assert (single["baseline"], single["ratio"]) == (2.0, 4.0) and "outputs identical" in single["note"]
    assert rows["local backend, 24 new tokens: ours vs batched generate (batch 16)"]["ratio"] == 8.0
    before = rows["local backend, 24 new tokens: ours vs ours tokenizing whole prompts (before)"]
    assert (before["baseline"], before["ratio"]) == (7.0, 1.14)
    long = rows["local backend, 160 new tokens: ours vs one generate per check"]
    assert "OUTPUTS DIFFER" in long["note"]
    tok = rows["local backend: tokenizing a check in batches of 16 (conversation only, system ids cached)"]
    assert (tok["value"], tok["baseline"], tok["ratio"]) == (0.5, 4.0, 8.0) and "17%" in tok["note"]
    assert rows["local backend: tokenizing a check one at a time (conversation only, system ids cached)"][
        "ratio"] == 5.0
