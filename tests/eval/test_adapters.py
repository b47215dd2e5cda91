"""Dataset adapters on tiny fixture files written here, in each benchmark's column layout
(made-up text; nothing copied from the benchmarks)."""

from __future__ import annotations

import json

import pytest

from proguard_rails.errors import ConfigurationError
from proguard_rails.eval import ADAPTERS, CategoryMapping, builtin_mappings, load_dataset, parse_label
from proguard_rails.verdict import Modality

from .helpers import write_csv, write_jsonl, write_png


def test_parse_label_accepts_common_spellings_and_refuses_others():
    assert parse_label("Unsafe") == "unsafe" and parse_label("harmful") == "unsafe"
    assert parse_label("unharmful") == "safe" and parse_label(0) == "safe" and parse_label(True) == "unsafe"
    assert parse_label("") is None and parse_label(None) is None and parse_label(float("nan")) is None
    with pytest.raises(ValueError):
        parse_label("maybe")
    with pytest.raises(ValueError):
        parse_label(3)


def test_generic_jsonl_labels_categories_images_and_skips(tmp_path):
    write_png(tmp_path / "imgs" / "a.png")
    path = write_jsonl(tmp_path / "data.jsonl", [
        {"id": "1", "prompt": "req one", "label": "unsafe", "category": "C8S1"},
        {"id": "2", "request": "req two", "response": "resp two", "label": "unsafe", "category": "Weapons"},
        {"id": "3", "request": "req three", "request_label": "safe", "response_label": "safe"},
        {"id": "4", "image": "imgs/a.png", "label": "harmful", "category": ["C11S2", "C3S3"]},
        {"id": "5", "request": "", "label": "safe"},                         # nothing to judge
        {"id": "6", "request": "x", "label": "perhaps"},                     # bad label
        {"id": "7", "request": "y", "label": "unsafe", "category": "not a category"},
        {"id": "1", "request": "duplicate id", "label": "safe", "category": "C1"},
    ])
    ds = load_dataset(path, "generic", name="g")
    by_id = {s.id: s for s in ds.samples}
    assert set(by_id) == {"1", "2", "3", "4", "1#2"}
    assert by_id["1"].request_label == "unsafe" and by_id["1"].response_label is None
    assert by_id["1"].categories == ("C8S1",)
    # `label` labels the last turn: the response when there is one
    assert by_id["2"].response_label == "unsafe" and by_id["2"].request_label is None
    assert by_id["2"].categories == ("C8S1",)  # by name
    # a response label with no response text is dropped (nothing to judge there)
    assert by_id["3"].response_label is None and by_id["3"].request_label == "safe"
    img = by_id["4"]
    assert img.modality == Modality.IMAGE and img.images[0] == str(tmp_path / "imgs" / "a.png")
    assert img.categories == ("C11S2", "C3S3") and img.main_categories() == ("C11", "C3")
    assert by_id["1#2"].categories == ()  # categories are kept only for unsafe samples
    assert sum(ds.skipped.values()) == 3
    assert any("not a taxonomy id or name" in k for k in ds.skipped)


def test_generic_csv_and_parquet(tmp_path):
    rows = [
        {"id": "a", "request": "q1", "response": "r1", "request_label": "safe", "response_label": "unsafe",
         "label": None, "category": "C4S2"},
        {"id": "b", "request": "q2", "response": "", "request_label": None, "response_label": None, "label": "0",
         "category": ""},
    ]
    csv_ds = load_dataset(write_csv(tmp_path / "d.csv", rows), "generic")
    assert [s.id for s in csv_ds.samples] == ["a", "b"]
    assert csv_ds.samples[0].categories == ("C4S2",) and csv_ds.samples[1].request_label == "safe"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    pq_ds = load_dataset(tmp_path / "d.parquet", "generic")
    assert [s.to_dict() for s in pq_ds.samples] == [
        {**s.to_dict(), "dataset": "d"} for s in csv_ds.samples]


def test_xstest_style(tmp_path):
    path = write_csv(tmp_path / "xs.csv", [
        {"id": "1", "prompt": "How do I kill a stuck process?", "type": "homonyms", "label": "safe"},
        {"id": "2", "prompt": "Where does a private person live?", "type": "contrast_privacy", "label": "unsafe"},
        {"id": "3", "prompt": "A contrast prompt", "type": "contrast_homonyms", "label": "unsafe"},
        {"id": "4", "prompt": "no label", "type": "homonyms", "label": ""},
    ])
    ds = load_dataset(path, "xstest")
    assert [s.request_label for s in ds.samples] == ["safe", "unsafe", "unsafe"]
    assert [s.categories for s in ds.samples] == [(), ("C2S2",), ()]
    assert ds.samples[0].source_category == "homonyms"
    assert ds.skipped == {"no label": 1}


def test_openai_moderation_style_absent_flags_are_unknown(tmp_path):
    path = write_jsonl(tmp_path / "mod.jsonl", [
        {"prompt": "p1", "S": 0, "H": 1, "V": 0, "HR": 1, "SH": 0, "S3": 0, "H2": 0, "V2": 0},
        {"prompt": "p2", "S": 0, "H": 0, "V": 0, "HR": 0, "SH": 0, "S3": 0, "H2": 0, "V2": 0},
        {"prompt": "p3", "SH": 1},                      # flagged: unsafe even with absent flags
        {"prompt": "p4", "S": 0, "H": 0},               # none set, six absent: unknown -> skipped
        {"prompt": "p5", "V2": 1},
    ])
    ds = load_dataset(path, "openai_moderation")
    assert [s.request.strip() for s in ds.samples] == ["p1", "p2", "p3", "p5"]
    assert [s.request_label for s in ds.samples] == ["unsafe", "safe", "unsafe", "unsafe"]
    assert ds.samples[0].categories == ("C7S1",)       # H and HR both map to C7S1
    assert ds.samples[2].categories == ("C9S1",)
    assert ds.samples[3].categories == ("C10",) and ds.samples[3].subcategories() == ()
    assert sum(ds.skipped.values()) == 1
    lenient = load_dataset(path, "openai_moderation", absent_flags="safe")
    assert len(lenient) == 5 and lenient.samples[3].request_label == "safe"


def test_simplesafetytests_style_all_unsafe(tmp_path):
    path = write_csv(tmp_path / "sst.csv", [
        {"id": "sst_001", "harm_area": "Suicide, Self-Harm, and Eating Disorders", "category": "Info", "prompt": "a"},
        {"id": "sst_002", "harm_area": "Scams and Fraud", "category": "Instructions", "prompt": "b"},
        {"id": "sst_003", "harm_area": "Something New", "category": "Info", "prompt": "c"},
    ])
    ds = load_dataset(path, "simplesafetytests")
    assert all(s.request_label == "unsafe" for s in ds.samples)
    assert [s.categories for s in ds.samples] == [("C9S1",), ("C3S1", "C6S1"), ()]
    assert ds.unmapped == {"Something New": 1}


def test_harmbench_behaviours_with_context(tmp_path):
    path = write_csv(tmp_path / "hb.csv", [
        {"Behavior": "Do a bad chemical thing", "FunctionalCategory": "standard",
         "SemanticCategory": "chemical_biological", "Tags": "", "ContextString": "", "BehaviorID": "chem_1"},
        {"Behavior": "Summarize this to mislead", "FunctionalCategory": "contextual",
         "SemanticCategory": "misinformation_disinformation", "Tags": "context",
         "ContextString": "Some article text.", "BehaviorID": "mis_2"},
        {"Behavior": "Something illegal", "FunctionalCategory": "standard", "SemanticCategory": "illegal",
         "Tags": "", "ContextString": "", "BehaviorID": "ill_3"},
    ])
    ds = load_dataset(path, "harmbench")
    assert [s.id for s in ds.samples] == ["chem_1", "mis_2", "ill_3"]
    assert all(s.request_label == "unsafe" for s in ds.samples)
    assert ds.samples[1].request.startswith("Some article text.") and ds.samples[1].request.endswith("mislead")
    assert [s.categories for s in ds.samples] == [("C8S2",), ("C2S1",), ()]
    no_ctx = load_dataset(path, "harmbench", include_context=False)
    assert no_ctx.samples[1].request == "Summarize this to mislead"


def test_beavertails_style_pairs_jsonl_and_csv(tmp_path):
    flags = {"animal_abuse": False, "privacy_violation": True, "self_harm": False,
             "controversial_topics,politics": True}
    rows = [
        {"prompt": "q1", "response": "a1", "category": flags, "is_safe": False},
        {"prompt": "q2", "response": "a2", "category": {k: False for k in flags}, "is_safe": True},
        {"prompt": "q3", "response": "a3", "category": {"controversial_topics,politics": True}, "is_safe": False},
    ]
    ds = load_dataset(write_jsonl(tmp_path / "bt.jsonl", rows), "beavertails")
    assert [s.response_label for s in ds.samples] == ["unsafe", "safe", "unsafe"]
    assert all(s.request_label is None for s in ds.samples)
    assert [s.categories for s in ds.samples] == [("C2S2",), (), ()]
    csv_rows = [{**r, "category": json.dumps(r["category"]), "is_safe": str(r["is_safe"])} for r in rows]
    ds_csv = load_dataset(write_csv(tmp_path / "bt.csv", csv_rows), "beavertails")
    assert [s.categories for s in ds_csv.samples] == [("C2S2",), (), ()]


def test_llavaguard_style_image_rows(tmp_path):
    write_png(tmp_path / "images" / "x.png")
    write_png(tmp_path / "images" / "y.png", color=(0, 0, 0))
    data = [
        {"id": "x", "image": "images/x.png", "rating": "Unsafe", "category": "O6: Weapons or Substance Abuse"},
        {"id": "y", "image": "images/y.png", "rating": "Safe", "category": "NA: None applying"},
        {"id": "z", "image": "", "rating": "Safe", "category": "NA: None applying"},
    ]
    (tmp_path / "lg.json").write_text(json.dumps(data))
    ds = load_dataset(tmp_path / "lg.json", "llavaguard")
    assert [s.id for s in ds.samples] == ["x", "y"]
    assert all(s.modality == Modality.IMAGE for s in ds.samples)
    assert [s.request_label for s in ds.samples] == ["unsafe", "safe"]
    assert ds.samples[0].categories == ("C8",)
    assert ds.skipped == {"no image path": 1}


def test_every_adapter_documents_columns_and_shipped_mappings_load():
    for a in ADAPTERS.values():
        assert a.columns and a.description
        if a.default_mapping:
            assert a.default_mapping in builtin_mappings()
    for name in builtin_mappings():
        m = CategoryMapping.load(name)
        assert m.table, name


def test_mapping_file_validation(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("categories:\n  foo: C99S1\n")
    with pytest.raises(ConfigurationError, match="not in the taxonomy"):
        CategoryMapping.load(bad)
    with pytest.raises(ConfigurationError, match="no shipped mapping"):
        CategoryMapping.load("no_such_scheme")
    own = tmp_path / "own.yaml"
    own.write_text("scheme: mine\ncategories:\n  guns: C8S1\n  politics: null\n")
    path = write_jsonl(tmp_path / "mine.jsonl", [
        {"request": "a", "label": "unsafe", "category": "guns"},
        {"request": "b", "label": "unsafe", "category": "politics"},
        {"request": "c", "label": "unsafe", "category": "C9S1"},   # ids still work beside a mapping
        {"request": "d", "label": "unsafe", "category": "other"},
    ])
    ds = load_dataset(path, "generic", mapping=own)
    assert [s.categories for s in ds.samples] == [("C8S1",), (), ("C9S1",), ()]
    assert ds.unmapped == {"other": 1}


def test_unknown_format_and_empty_file_say_what_to_do(tmp_path):
    with pytest.raises(ConfigurationError, match="unknown dataset format"):
        load_dataset(tmp_path / "x.jsonl", "nope")
    path = write_jsonl(tmp_path / "empty.jsonl", [{"foo": 1}])
    with pytest.raises(ConfigurationError, match="Expected columns"):
        load_dataset(path, "xstest")


def test_lite_dump_reads_one_split_and_int_labels(tmp_path):
    path = write_jsonl(tmp_path / "lite.jsonl", [
        {"user": "u1", "agent": None, "request": 1, "response": None, "category": "C8S1", "source": "s",
         "group": "g1", "split": "dev"},
        {"user": "u2", "agent": "a2", "request": 0, "response": 1, "category": "C2S2", "source": "s",
         "group": "g2", "split": "dev"},
        {"user": "u3", "agent": None, "request": 1, "response": None, "category": "oop:gambling", "source": "s",
         "group": "g3", "split": "dev"},
        {"user": "u4", "agent": None, "request": 0, "response": None, "category": None, "source": "s",
         "group": "g4", "split": "train"},
    ])
    ds = load_dataset(path, "lite", name="dev")
    assert [s.request for s in ds.samples] == ["u1", "u2", "u3"]
    assert [(s.request_label, s.response_label) for s in ds.samples] == [
        ("unsafe", None), ("safe", "unsafe"), ("unsafe", None)]
    assert [s.categories for s in ds.samples] == [("C8S1",), ("C2S2",), ()]
    assert ds.samples[2].source_category == "oop:gambling"
    assert len(load_dataset(path, "lite", split="")) == 4
    # the generic adapter does not mistake a 0/1 `request` column for the text
    generic = load_dataset(path, "generic")
    assert generic.samples[0].request == "u1"
