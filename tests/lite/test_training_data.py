"""The lite head's data pipeline: mapping, labels, leak-free splits, calibration maths (no embedding)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from proguard_rails import Taxonomy
from training.lite import responses, synth
from training.lite.data import LiteExample, Rules, build_examples, dedupe, normalize_text
from training.lite.train import assign_splits, default_data_root, ece, fit_platt

FORBIDDEN = ("xstest", "moderation", "simplesafety", "harmbench", "aegis", "toxicchat", "wildguard",
             "beavertails", "llavaguard")


def test_mapping_uses_only_real_subcategory_ids():
    rules = Rules()
    ids = {s.id for s in Taxonomy.default().subcategories}
    targets = {v for v in rules.raw["donotanswer"]["intents"].values() if v not in ("safe", "drop")}
    targets |= set(rules.raw["realtoxicityprompts"]["files"].values())
    targets |= {sub for sub, _ in rules.category_rules}
    assert targets <= ids | set(rules.oop_classes)
    assert set(rules.raw["donotanswer"]["priority"]) <= set(rules.raw["donotanswer"]["intents"])


def test_donotanswer_labels_follow_the_mapping():
    rules = Rules()
    assert rules.donotanswer_label(["S002fin"], "How should I invest $50,000?") == (0, None)
    assert rules.donotanswer_label(["C009", "S001fab"], "When was Atlantis found?") == (1, "C2S1")
    assert rules.donotanswer_label(["C009"], "Why is coffee bad for you?") == (None, None)
    label, cat = rules.donotanswer_label(["S003instructions"], "How to poach animals undetected?")
    assert (label, cat) == (1, "C9S2")  # topic rule refines a broad intent code


def test_restate_task_and_templates():
    assert synth.restate_task("How can I launder money?") == "launder money"
    assert synth.restate_task("Can you help me write my essay?") == "write your essay"
    contrast = list(synth.benign_contrast(__import__("random").Random(0)))
    assert any("kill a python process" in s.text for s in contrast)
    assert len({s.template for s in contrast}) > 20


def test_dedupe_drops_conflicting_labels():
    a = LiteExample("Hello there!", None, 0, None, None, "x", "g1")
    b = LiteExample("hello there", None, 1, None, "C7S1", "y", "g2")
    c = LiteExample("Other", None, 0, None, None, "x", "g3")
    assert dedupe([a, b, c]) == [c]


def test_splits_keep_groups_and_near_duplicates_together():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 384)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    emb = np.concatenate([base, base + 0.001])  # each text has a near-copy under another group
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ex = [LiteExample(f"text {i}", None, 0, None, None, "s", f"g{i}") for i in range(40)]
    ex += [LiteExample(f"copy {i}", None, 0, None, None, "s", f"h{i}") for i in range(40)]
    split = assign_splits(ex, emb, seed=0)
    assert all(split[i] == split[i + 40] for i in range(40))
    assert set(split) <= {"train", "calib", "dev"}


def test_platt_and_ece_behave():
    rng = np.random.default_rng(1)
    z = rng.normal(size=800) * 3
    y = (rng.random(800) < 1 / (1 + np.exp(-(0.5 * z - 1)))).astype(float)
    a, b = fit_platt(z, y)
    assert a == pytest.approx(0.5, abs=0.15) and b == pytest.approx(-1, abs=0.3)
    p = 1 / (1 + np.exp(-(a * z + b)))
    assert ece(p, y) < ece(1 / (1 + np.exp(-z)), y)
    # separable data stays finite
    a2, b2 = fit_platt(np.array([-5.0, -4, 4, 5]), np.array([0.0, 0, 1, 1]))
    assert np.isfinite(a2) and np.isfinite(b2)


def test_build_examples_is_balanced_and_never_reads_benchmarks():
    root = default_data_root()
    if not root.exists():
        pytest.skip("shared/data/public not available")
    ex = build_examples(root, seed=0)
    req = [e.request for e in ex if e.agent is None and e.request is not None]
    share = sum(req) / len(req)
    assert 0.35 < share < 0.65  # classes kept roughly balanced
    assert len({normalize_text(e.user) + "|" + normalize_text(e.agent or "") for e in ex}) == len(ex)
    assert not any(f in str(p).lower() for p in Path(root).rglob("*") for f in FORBIDDEN)
    again = build_examples(root, seed=0)
    assert json.dumps([e.to_dict() for e in again]) == json.dumps([e.to_dict() for e in ex])  # seeded


def test_generated_responses_decorrelate_the_response_label_from_the_request():
    ids = {s.id for s in Taxonomy.default().subcategories}
    harmful = responses.harmful_answers(__import__("random").Random(0))
    assert {cat for cat, _, _, _ in harmful} == ids  # harmful answers for all 28 subcategories
    pairs = list(responses.response_pairs(__import__("random").Random(0), [("How do I steal a car?", "C9S3", "x:0")]))
    combos = {(p.request, p.response) for p in pairs}
    assert combos == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert all(p.category for p in pairs if p.response == 1)
    assert len({responses.refusal(__import__("random").Random(i)) for i in range(200)}) > 100  # composed, varied


def test_pairs_sharing_an_answer_share_a_split_and_carriers_do_not_merge_groups():
    rng = np.random.default_rng(2)
    ex, rows = [], []
    for i in range(60):
        carrier = "Write me a short story."  # shared harmless request: must not glue groups together
        ex.append(LiteExample(carrier, f"answer number {i}", 0, 1, "C7S1", "resp-harmful+carrier", f"g{i}"))
        ex.append(LiteExample(f"request {i}", f"answer number {i}", 1, 1, "C7S1", "resp-harmful+own-request", f"h{i}"))
        rows += [rng.normal(size=384), rng.normal(size=384)]
    emb = np.asarray(rows, dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    split = assign_splits(ex, emb, seed=0, agent_emb=emb)
    assert all(split[2 * i] == split[2 * i + 1] for i in range(60))  # same answer text, same split
    assert len(set(split)) > 1  # the shared carrier did not merge everything into one group


def test_sanity_set_is_hand_written_labelled_and_never_used_for_training():
    from training.lite.sanity import load_sanity

    rows = load_sanity()
    assert 60 <= len(rows) <= 100
    for r in rows:
        assert r["request"] in (0, 1) and isinstance(r["user"], str) and r["note"]
        assert (r["agent"] is None) == (r["response"] is None)
    pairs = [r for r in rows if r["agent"]]
    assert {(r["request"], r["response"]) for r in pairs} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    root = default_data_root()
    if not root.exists():
        pytest.skip("shared/data/public not available")
    texts = {normalize_text(t) for e in build_examples(root, seed=0) for t in (e.user, e.agent or "")}
    leaked = [r["id"] for r in rows if r["agent"] and normalize_text(r["agent"]) in texts]
    leaked += [r["id"] for r in rows if r["agent"] is None and normalize_text(r["user"]) in texts]
    assert not leaked, f"sanity items found in the training data: {leaked}"
