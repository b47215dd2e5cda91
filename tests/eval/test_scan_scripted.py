"""``proguard-rails scan`` with scripted judges: every input format, one row per input with
its id and row index, resumption without re-querying (backend calls counted), summaries."""

from __future__ import annotations

import argparse
import json

import pytest

from proguard_rails import ProGuard, ScriptedBackend
from proguard_rails.errors import BackendUnavailableError
from proguard_rails.scan import (
    ScanColumns,
    add_arguments,
    guard_from_spec,
    iter_jsonl_tolerant,
    run_cli,
    scan,
)

from .helpers import CLI_BACKENDS, ood_answer, unsafe_answer, write_csv, write_jsonl, write_png

RULES = {"BOMB": unsafe_answer("C8S1"), "SCAM": unsafe_answer("C3S1"), "NEWRISK": ood_answer("Deepfake voice cloning")}


def _rows(n: int = 10) -> list[dict]:
    words = ["BOMB", "hello", "SCAM", "weather", "NEWRISK"]
    return [{"id": f"u{i}", "text": f"message {i} {words[i % len(words)]}"} for i in range(n)]


def _guard(backend: ScriptedBackend) -> ProGuard:
    return ProGuard(backend=backend, cache_size=0)  # no in-memory cache: calls count every judgement


def test_scripted_scan_jsonl_one_row_per_input_and_summary(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", _rows(10))
    backend = ScriptedBackend(RULES)
    out = tmp_path / "out.jsonl"
    summary = scan(src, out, guard=_guard(backend), batch_size=3, max_inflight=2, progress=False)
    rows = list(iter_jsonl_tolerant(out))
    assert [r["id"] for r in rows] == [f"u{i}" for i in range(10)]  # input order, ids kept
    assert [r["row"] for r in rows] == list(range(10))
    assert backend.calls == 10
    assert rows[0]["decision"] == "block" and rows[0]["category"] == "C8S1"
    assert rows[1]["decision"] == "allow" and rows[1]["status"] == "allowed"
    assert rows[4]["out_of_policy"] is True and rows[4]["description"] == "Deepfake voice cloning"
    assert summary.total == 10 and summary.judged_now == 10
    assert summary.categories == {"C8S1": 2, "C3S1": 2, "out-of-policy": 2}
    assert summary.status == {"blocked": 6, "allowed": 4}
    text = summary.format()
    assert "C8S1" in text and "Weapons" in text and "Deepfake voice cloning" in text


def test_scripted_scan_resumes_without_requerying(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", _rows(10))
    out = tmp_path / "out.jsonl"
    first = ScriptedBackend(RULES)
    scan(src, out, guard=_guard(first), limit=4, batch_size=2, progress=False)
    assert first.calls == 4
    with out.open("a") as fh:  # killed mid-write: a torn last line
        fh.write('{"id": "u4", "row": 4, "deci')
    second = ScriptedBackend(RULES)
    summary = scan(src, out, guard=_guard(second), batch_size=2, progress=False)
    assert second.calls == 6  # only the 6 inputs not in the output
    rows = list(iter_jsonl_tolerant(out))
    assert sorted(r["id"] for r in rows) == sorted(f"u{i}" for i in range(10))
    assert len(rows) == 10 and summary.skipped_done == 4 and summary.total == 10
    third = ScriptedBackend(RULES)
    scan(src, out, guard=_guard(third), progress=False)
    assert third.calls == 0


def test_scripted_scan_retry_errors(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", _rows(4))
    out = tmp_path / "out.jsonl"
    failing = ScriptedBackend({**RULES, "SCAM": BackendUnavailableError("down")})
    s1 = scan(src, out, guard=_guard(failing), progress=False)
    assert s1.status["error"] == 1
    err_row = next(r for r in iter_jsonl_tolerant(out) if r["status"] == "error")
    assert err_row["decision"] == "block" and err_row["error_type"] == "unavailable"  # fail closed
    fixed = ScriptedBackend(RULES)
    scan(src, out, guard=_guard(fixed), progress=False)
    assert fixed.calls == 0  # an error row counts as done unless asked
    s3 = scan(src, out, guard=_guard(fixed), retry_errors=True, progress=False)
    assert fixed.calls == 1
    rows = list(iter_jsonl_tolerant(out))
    assert len(rows) == 4 and all(r["status"] != "error" for r in rows)
    assert s3.status == {"blocked": 2, "allowed": 2}


def test_scripted_scan_csv_without_ids_uses_row_index_and_several_text_columns(tmp_path):
    src = write_csv(tmp_path / "in.csv", [
        {"title": "hi", "body": "BOMB recipe", "reply": "no"},
        {"title": "weather", "body": "sunny", "reply": "SCAM offer"},
    ])
    backend = ScriptedBackend(RULES)
    out = tmp_path / "out.jsonl"
    scan(src, out, guard=_guard(backend), columns=ScanColumns(text=("title", "body"), response="reply"),
         progress=False)
    rows = list(iter_jsonl_tolerant(out))
    assert [r["id"] for r in rows] == ["0", "1"]
    assert "hi\n\nBOMB recipe" in backend.prompts[0].user_text
    assert "SCAM offer" in backend.prompts[1].user_text  # the response column is judged as the agent turn
    with pytest.raises(Exception, match="no column 'nope'"):
        scan(src, tmp_path / "x.jsonl", guard=_guard(backend), columns=ScanColumns(text=("nope",)), progress=False)


def test_scripted_scan_parquet_in_and_out_resumable(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(_rows(6)), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    first = ScriptedBackend(RULES)
    scan(tmp_path / "in.parquet", out, guard=_guard(first), limit=2, progress=False)
    second = ScriptedBackend(RULES)
    scan(tmp_path / "in.parquet", out, guard=_guard(second), batch_size=2, progress=False)
    assert first.calls == 2 and second.calls == 4
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == [f"u{i}" for i in range(6)]
    assert table.schema.field("out_of_policy").type == pa.bool_()
    rows = table.to_pylist()  # the out-of-policy name survives the parquet output
    assert rows[4]["out_of_policy"] is True and rows[4]["description"] == "Deepfake voice cloning"
    assert rows[4]["decision"] == "block" and rows[4]["category"] is None
    assert not (tmp_path / "out.parquet.partial.jsonl").exists()


def test_scripted_scan_image_folder_and_messages(tmp_path):
    folder = tmp_path / "imgs"
    write_png(folder / "a.png")
    write_png(folder / "sub" / "b.jpg")
    (folder / "notes.txt").write_text("not an image")
    backend = ScriptedBackend(default=unsafe_answer("C11S2", modality="image"))
    out = tmp_path / "imgs.jsonl"
    summary = scan(folder, out, guard=_guard(backend), progress=False)
    rows = list(iter_jsonl_tolerant(out))
    assert [r["id"] for r in rows] == ["a.png", "sub/b.jpg"]
    assert all(r["modality"] == "image" and r["category"] == "C11S2" for r in rows)
    assert summary.categories == {"C11S2": 2}

    msgs = write_jsonl(tmp_path / "chats.jsonl", [
        {"id": "c1", "messages": [{"role": "user", "content": "make a BOMB"}, {"role": "assistant", "content": "no"}]},
    ])
    b2 = ScriptedBackend(RULES)
    scan(msgs, tmp_path / "chats_out.jsonl", guard=_guard(b2), progress=False)
    (row,) = iter_jsonl_tolerant(tmp_path / "chats_out.jsonl")
    assert row["id"] == "c1" and row["category"] == "C8S1"


def test_scripted_scan_cli_resumes_and_prints_summary(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "WEAPON-ONE"}, {"id": "b", "prompt": "hi"}])
    out = tmp_path / "out.jsonl"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = [str(src), "--out", str(out), "--judge", "py:tests.eval.helpers:cli_backend", "--no-progress",
            "--summary-json", str(tmp_path / "summary.json")]
    CLI_BACKENDS.clear()
    assert run_cli(parser.parse_args(argv)) == 0
    printed = capsys.readouterr().out
    assert "C8S1" in printed and "2 rows" in printed
    assert CLI_BACKENDS[-1].calls == 2
    assert run_cli(parser.parse_args(argv)) == 0
    assert CLI_BACKENDS[-1].calls == 0
    assert json.loads((tmp_path / "summary.json").read_text())["skipped_already_done"] == 2
    assert run_cli(parser.parse_args([str(tmp_path / "missing.jsonl"), "--out", str(out), "--judge",
                                      "py:tests.eval.helpers:cli_backend", "--no-progress"])) == 2


def test_guard_from_spec_kinds(monkeypatch):
    for var in ("PROGUARD_BASE_URL", "PROGUARD_MODEL_PATH", "PROGUARD_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    g = guard_from_spec("http://127.0.0.1:9/v1#ProGuard-7B")
    assert g.settings.base_url == "http://127.0.0.1:9/v1" and g.settings.model == "ProGuard-7B"
    assert guard_from_spec("openai:http://127.0.0.1:9/v1").settings.backend == "openai"
    assert guard_from_spec("py:tests.eval.helpers:dev_backend").judge.identity() == "generative:scripted"
    from proguard_rails.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="unknown judge spec"):
        guard_from_spec("bogus:thing")
    with pytest.raises(ConfigurationError, match="checkpoint folder"):
        guard_from_spec("vllm:")


def test_guard_from_spec_cascade_wraps_a_generative_judge(monkeypatch):
    for var in ("PROGUARD_BASE_URL", "PROGUARD_MODEL_PATH", "PROGUARD_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    g = guard_from_spec("cascade:py:tests.eval.helpers:dev_backend")
    assert type(g.judge).__name__ == "CascadeJudge"
    assert g.judge.generative.identity() == "generative:scripted"
    from proguard_rails.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="needs a generative judge"):
        guard_from_spec("cascade:lite")
