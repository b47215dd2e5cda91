"""The lite model's corpus and calibration maths (no torch, no model)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from proguard_rails import ProGuard, Taxonomy
from training.lite import gaps
from training.lite.corpus import AILUMINATE_HAZARDS, FOLDS, SOURCE_ROLES, build_corpus, summary
from training.lite.data import Rules, normalize_text
from training.lite.robustness import all_probe_texts
from training.lite.train import auc, default_data_root, ece, fit_platt, threshold_for_recall

FORBIDDEN = ("xstest", "moderation", "simplesafety", "harmbench", "aegis", "toxicchat", "wildguard",
             "beavertails", "llavaguard")


@pytest.fixture(scope="module")
def corpus():
    root = default_data_root()
    if not root.exists():
        pytest.skip("shared/data/public not available")
    return build_corpus(root, seed=0)


def test_mapping_uses_only_real_subcategory_ids():
    rules = Rules()
    ids = {s.id for s in Taxonomy.default().subcategories}
    targets = {v for v in rules.raw["donotanswer"]["intents"].values() if v not in ("safe", "drop")}
    targets |= set(rules.raw["realtoxicityprompts"]["files"].values()) | {sub for sub, _ in rules.category_rules}
    targets |= {v for v in AILUMINATE_HAZARDS.values() if v}
    assert targets <= ids | set(rules.oop_classes)


def test_every_source_has_a_role_and_calibration_sources_are_never_in_a_fold(corpus):
    sources = {it.source for it in corpus}
    assert sources == set(SOURCE_ROLES)  # every role is used, every source has one
    calib = {s for s, r in SOURCE_ROLES.items() if r == "calib"}
    assert calib and all(SOURCE_ROLES[s] in (*FOLDS, "calib") for s in sources)
    stats = summary(corpus)
    for s in calib:  # calibration needs both labels overall, and unsafe items for the cascade threshold
        assert stats["by_source"][s]["safe"] + stats["by_source"][s]["unsafe"] > 0
    assert sum(stats["by_source"][s]["unsafe"] for s in calib) > 300
    for fold in FOLDS:  # each fold holds out both safe and unsafe items
        fs = [s for s, r in SOURCE_ROLES.items() if r == fold]
        assert sum(stats["by_source"][s]["unsafe"] for s in fs) > 100
        assert sum(stats["by_source"][s]["safe"] for s in fs) > 100


def test_corpus_is_seeded_deduplicated_and_never_reads_benchmarks(corpus):
    root = default_data_root()
    assert not any(f in str(p).lower() for p in Path(root).rglob("*") for f in FORBIDDEN)
    keys = [normalize_text(it.text) for it in corpus]
    assert len(set(keys)) == len(keys)
    again = build_corpus(root, seed=0)
    assert json.dumps([it.to_dict() for it in again]) == json.dumps([it.to_dict() for it in corpus])


def test_probes_and_sanity_set_are_never_trained_on(corpus):
    from training.lite.sanity import load_sanity

    texts = {normalize_text(it.text) for it in corpus}
    probes = [t for t in all_probe_texts() if normalize_text(t) in texts]
    assert not probes, probes[:5]
    sanity = [r["id"] for r in load_sanity() if normalize_text(r["agent"] or r["user"]) in texts]
    assert not sanity


def test_labelling_rules_of_the_new_sources(corpus):
    ail = [it for it in corpus if it.source == "ailuminate"]
    assert ail and all(it.label == 1 and it.category for it in ail)  # spc_* prompts are left out, not "unsafe"
    assert len(ail) == 1100
    dav = [it for it in corpus if it.source == "davidson"]
    assert {it.category for it in dav if it.label} == {"C7S1", "C3S2"}
    assert any(not it.label for it in dav)
    tox = [it for it in corpus if it.source == "toxigen"]
    assert {it.label for it in tox} == {0, 1}
    t0 = [it for it in corpus if it.source.startswith("t0-")]
    assert len(t0) > 9000 and not any(it.label for it in t0)
    assert max(len(it.text) for it in t0) > 3000  # long natural benign text


def test_generated_families_cover_the_gaps_with_both_labels():
    items = gaps.all_gaps(random.Random(0))
    fams = {g.family for g in items}
    assert fams == {"gen-sensitive-benign", "gen-figurative", "gen-self-harm", "gen-implicit-hate", "gen-cyber",
                    "gen-agent-actions", "gen-answers"}
    for fam in fams - {"gen-sensitive-benign"}:
        assert {g.label for g in items if g.family == fam} == {0, 1}, fam
    assert all(g.category for g in items if g.label)


def test_generated_tool_calls_match_the_engine_rendering():
    guard = ProGuard.__new__(ProGuard)  # only the request builder is needed: no judge
    from proguard_rails.settings import ProGuardSettings

    guard.settings = ProGuardSettings()
    args = {"command": "ls -la", "cwd": "/tmp"}
    assert gaps._call("run_shell", args) == guard.tool_call_request("run_shell", args).agent_text


def test_calibration_maths():
    rng = np.random.default_rng(1)
    z = rng.normal(size=800) * 3
    y = (rng.random(800) < 1 / (1 + np.exp(-(0.5 * z - 1)))).astype(float)
    a, b = fit_platt(z, y)
    assert a == pytest.approx(0.5, abs=0.15) and b == pytest.approx(-1, abs=0.3)
    p = 1 / (1 + np.exp(-(a * z + b)))
    assert ece(p, y) < ece(1 / (1 + np.exp(-z)), y)
    a2, b2 = fit_platt(np.array([-5.0, -4, 4, 5]), np.array([0.0, 0, 1, 1]))
    assert np.isfinite(a2) and np.isfinite(b2)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.05, 0.01])
    labels = np.array([1, 1, 1, 1, 0, 0])
    t = threshold_for_recall(scores, labels, 1.0)
    assert (scores[labels == 1] >= t).all()
    t75 = threshold_for_recall(scores, labels, 0.75)
    assert (scores[labels == 1] >= t75).sum() == 3 and t75 > t
    assert auc(scores, labels) == 1.0 and auc(1 - scores, labels) == 0.0
