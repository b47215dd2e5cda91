"""``proguard-rails scan`` input robustness, with a scripted judge: columns are detected over
every row (not the first), bad rows (invalid UTF-8, invalid or deeply nested JSON, lone
surrogates, unreadable CSV bytes) become error rows and the scan goes on; folders and globs
of files; typed parquet output. Each of these failed (crash or unjudged column) before."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proguard_rails import ProGuard, ScriptedBackend
from proguard_rails.scan import iter_inputs, iter_jsonl_tolerant, scan

from .helpers import unsafe_answer, write_jsonl

RULES = {"BOMB": unsafe_answer("C8S1"), "poison it": unsafe_answer("C8S3")}


def _guard(backend: ScriptedBackend) -> ProGuard:
    return ProGuard(backend=backend, cache_size=0)


def _scan(src, out, backend: ScriptedBackend, **kw):
    return scan(src, out, guard=_guard(backend), progress=False, **kw)


def test_scripted_scan_response_column_first_seen_in_a_later_row_is_judged(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "prompt": "how do I water a plant"},
        {"id": "b", "prompt": "my neighbour's dog barks", "response": "poison it"},
    ])
    backend = ScriptedBackend(RULES)
    _scan(src, tmp_path / "out.jsonl", backend)
    rows = {r["id"]: r for r in iter_jsonl_tolerant(tmp_path / "out.jsonl")}
    assert "poison it" in backend.prompts[1].user_text  # the response is the agent turn of row b
    assert rows["b"]["decision"] == "block" and rows["b"]["category"] == "C8S3"
    assert rows["a"]["decision"] == "allow"


def test_scripted_scan_id_column_first_seen_in_a_later_row_is_used(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "hi"}, {"text": "there", "id": "x7"}])
    items = list(iter_inputs(src))
    assert [i.id for i in items] == ["0", "x7"]  # a row without the id column falls back to its index


def _write_bytes_lines(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_scripted_scan_bad_jsonl_rows_become_error_rows_and_the_scan_goes_on(tmp_path):
    deep = b'{"id": "deep", "text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    nested_msgs = {"id": "msgs", "text": "hi", "extra": json.loads("[" * 200 + "]" * 200)}
    src = _write_bytes_lines(tmp_path / "in.jsonl", [
        json.dumps({"id": "ok1", "text": "BOMB howto"}).encode(),
        b'{"id": "utf", "text": "caf\xe9 \xff\xfe"}',  # latin-1 bytes: not UTF-8
        deep,  # RecursionError in json.loads
        b'{"id": "broken", "text": ',  # invalid JSON
        b'{"id": "surrogate", "text": "\\ud800 alone"}',  # valid JSON, not encodable text
        json.dumps(nested_msgs).encode(),  # parses, but nested deeper than any chat content
        b"",
        json.dumps({"id": "ok2", "text": "nice weather"}).encode(),
    ])
    backend = ScriptedBackend(RULES)
    out = tmp_path / "out.jsonl"
    summary = _scan(src, out, backend, batch_size=2)
    rows = list(iter_jsonl_tolerant(out))
    assert len(rows) == 7 and len({r["id"] for r in rows}) == 7  # one row per non-blank line
    by_row = {r["row"]: r for r in rows}
    assert by_row[0]["id"] == "ok1" and by_row[0]["decision"] == "block" and by_row[0]["status"] == "blocked"
    assert by_row[6]["id"] == "ok2" and by_row[6]["status"] == "allowed"
    for i in range(1, 6):
        r = by_row[i]
        assert r["status"] == "error" and r["error_type"] == "input" and r["decision"] == "block", r
    assert "invalid UTF-8" in by_row[1]["error"] and "nested too deeply" in by_row[2]["error"]
    assert "invalid JSON" in by_row[3]["error"] and "UTF-8" in by_row[4]["error"]
    assert "nested deeper" in by_row[5]["error"]
    # unreadable lines have no id to read: the row index stands in; readable ones keep theirs
    assert by_row[1]["id"] == "1" and by_row[4]["id"] == "surrogate"
    assert backend.calls == 2 and summary.errors == {"input": 5}
    # an error row is done: a rerun judges nothing, --retry-errors tries the bad rows again
    again = ScriptedBackend(RULES)
    _scan(src, out, again)
    assert again.calls == 0
    _scan(src, out, again, retry_errors=True)
    assert again.calls == 0 and len(list(iter_jsonl_tolerant(out))) == 7


def test_scripted_scan_bad_csv_bytes_become_an_error_row(tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(b"id,text\nr1,BOMB talk\nr2,caf\xe9 au lait\nr3,hello\n")
    backend = ScriptedBackend(RULES)
    _scan(src, tmp_path / "out.jsonl", backend)
    rows = {r["id"]: r for r in iter_jsonl_tolerant(tmp_path / "out.jsonl")}
    assert rows["r1"]["decision"] == "block" and rows["r3"]["status"] == "allowed"
    assert rows["r2"]["status"] == "error" and "UTF-8" in rows["r2"]["error"]


def test_scripted_scan_unreadable_json_file_is_one_error_row(tmp_path):
    src = tmp_path / "in.json"
    src.write_text('[{"text": "hi"}, ')
    _scan(src, tmp_path / "out.jsonl", ScriptedBackend(RULES))
    (row,) = iter_jsonl_tolerant(tmp_path / "out.jsonl")
    assert row["status"] == "error" and "unreadable JSON file" in row["error"]


def test_scripted_scan_folder_and_glob_of_files_ids_and_duplicates(tmp_path):
    data = tmp_path / "data"
    write_jsonl(data / "a.jsonl", [{"id": "dup", "text": "BOMB"}, {"id": "a2", "text": "x"}])
    write_jsonl(data / "b" / "c.jsonl", [{"id": "dup", "text": "hello"}, {"text": "no id here"}])
    out = tmp_path / "out.parquet"
    _scan(data, out, ScriptedBackend(RULES))
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert table.column("id").to_pylist() == ["dup", "a2", "dup#b/c.jsonl:0", "b/c.jsonl:1"]
    assert table.column("file").to_pylist() == ["a.jsonl", "a.jsonl", "b/c.jsonl", "b/c.jsonl"]
    assert table.column("row").to_pylist() == [0, 1, 0, 1]
    assert table.schema.field("scores").type == pa.map_(pa.string(), pa.float64())
    assert table.schema.field("row").type == pa.int64()
    glob_items = list(iter_inputs(str(data / "**" / "*.jsonl")))
    assert [i.id for i in glob_items] == ["dup", "a2", "dup#b/c.jsonl:0", "b/c.jsonl:1"]


@pytest.mark.parametrize("name", ["out.jsonl", "out.parquet"])
def test_scripted_scan_output_inside_the_input_folder_is_never_read_as_input(tmp_path, name):
    data = tmp_path / "data"
    write_jsonl(data / "a.jsonl", [{"id": "a", "text": "hi"}, {"id": "b", "text": "BOMB"}])
    out = data / name
    _scan(data, out, ScriptedBackend(RULES))
    again = ScriptedBackend(RULES)
    summary = _scan(data, out, again)
    assert again.calls == 0 and summary.total == 2


def test_scripted_scan_image_bytes_column_is_judged_as_an_image(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.helpers import png_bytes

    pq.write_table(pa.Table.from_pylist([{"id": "i1", "text": "look", "image": png_bytes()}]),
                   tmp_path / "in.parquet")
    (item,) = iter_inputs(tmp_path / "in.parquet")
    assert item.content["images"] == [png_bytes()]
    backend = ScriptedBackend(default=unsafe_answer("C11S2", modality="text-image"))
    _scan(tmp_path / "in.parquet", tmp_path / "out.jsonl", backend)
    (row,) = iter_jsonl_tolerant(tmp_path / "out.jsonl")
    assert row["modality"] == "text-image" and row["category"] == "C11S2"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b.strip()),
                min_size=1, max_size=12))
def test_scripted_scan_random_bytes_lines_one_row_each_never_raises(tmp_path_factory, lines):
    tmp = tmp_path_factory.mktemp("fuzz")
    src = _write_bytes_lines(tmp / "in.jsonl", lines)
    out = tmp / "out.jsonl"
    summary = _scan(src, out, ScriptedBackend(RULES))
    rows = list(iter_jsonl_tolerant(out))
    assert len(rows) == len(lines) == summary.total
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["status"] in ("allowed", "blocked", "error") for r in rows)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_scripted_scan_rows_are_identical_whatever_the_output_format(tmp_path, suffix):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "BOMB"}, {"id": "b", "text": "hi"}])
    out = tmp_path / f"out{suffix}"
    _scan(src, out, ScriptedBackend(RULES))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(out).to_pylist()
        rows = [{**r, "scores": dict(r["scores"]) if r["scores"] is not None else None} for r in rows]
    else:
        rows = list(iter_jsonl_tolerant(out))
    assert [r["id"] for r in rows] == ["a", "b"] and rows[0]["category"] == "C8S1"
    assert rows[0]["file"] == "in.jsonl" and rows[1]["row"] == 1
