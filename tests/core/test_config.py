"""Policy files (YAML / TOML): loading, validation errors, and what the loaded policy decides.

Decisions here come from an in-process scripted backend (deterministic answers) and from
verdicts built by hand (for score thresholds); the file parsing is the real code path.
"""

from __future__ import annotations

import pytest

from proguard_rails import ConfigurationError, ProGuard, ScriptedBackend, Verdict
from proguard_rails.backends.scripted import unsafe_answer
from proguard_rails.config import load_config
from proguard_rails.verdict import Modality

POLICY_YAML = """\
version: 1
fail_mode: open
out_of_policy: flag
default: block
categories:
  C1: allow
  C1S1: block
  C3S3: flag
  C9S1: {action: block, threshold: 0.4}
"""


def _scripted(answer: str) -> ScriptedBackend:
    return ScriptedBackend(default=answer)


@pytest.fixture
def policy_file(tmp_path):
    p = tmp_path / "proguard.yaml"
    p.write_text(POLICY_YAML, encoding="utf-8")
    return p


def test_scripted_yaml_policy_actions_most_specific_id_wins(policy_file):
    def decide(category: str):
        return ProGuard(backend=_scripted(unsafe_answer(category)), config=policy_file).check("x")

    assert decide("C1S2").status == "allowed" and not decide("C1S2").flagged  # C1: allow
    d = decide("C1S1")  # C1S1: block beats C1: allow
    assert d.status == "blocked" and "C1S1" in d.reason
    d = decide("C3S3")  # flag: allowed, flagged, and the reason says so
    assert d.allowed and d.flagged and d.status == "allowed" and d.reason.startswith("flagged")
    assert decide("C8S1").status == "blocked"  # default: block


def test_scripted_out_of_policy_action_and_fail_mode_from_file(policy_file):
    guard = ProGuard(backend=_scripted(unsafe_answer("Deepfake Impersonation")), config=policy_file)
    d = guard.check("x")
    assert d.allowed and d.flagged and d.is_out_of_policy and "Deepfake Impersonation" in d.reason
    assert guard.policy.fail_mode == "open"
    # an explicit argument wins over the file
    assert ProGuard(backend=_scripted("x"), config=policy_file, fail_mode="closed").policy.fail_mode == "closed"


def test_scripted_proguard_config_env_variable(policy_file, monkeypatch):
    monkeypatch.setenv("PROGUARD_CONFIG", str(policy_file))
    guard = ProGuard(backend=_scripted(unsafe_answer("C3S3")))
    assert guard.check("x").flagged
    assert guard.config is not None and guard.config.source == str(policy_file)


def test_toml_policy_file(tmp_path):
    p = tmp_path / "proguard.toml"
    p.write_text('fail_mode = "open"\ndefault = "allow"\n[categories]\nC8 = "block"\n'
                 'C9S1 = { action = "flag", threshold = 0.5 }\n', encoding="utf-8")
    cfg = load_config(p)
    pol = cfg.to_policy()
    assert pol.default_action == "allow" and pol.category_actions == {"C8": "block", "C9S1": "flag"}
    assert pol.thresholds == {"C9S1": 0.5} and pol.fail_mode == "open"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("categories:\n  C99X: block\n", "'C99X' is not a category id"),
        ("categories:\n  C1: destroy\n", "categories.C1"),
        ("categories:\n  C1: {action: block, threshold: 1.5}\n", "threshold"),
        ("fail_mode: sideways\n", "fail_mode"),
        ("out_of_policy: maybe\n", "out_of_policy"),
        ("unknown_key: 1\n", "unknown_key"),
        ("- just a list\n", "top level must be a mapping"),
        ("categories: [\n", "not valid YAML"),
    ],
)
def test_invalid_files_name_the_key_and_the_file(tmp_path, text, fragment):
    p = tmp_path / "bad.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError) as err:
        load_config(p)
    assert fragment in str(err.value) and str(p) in str(err.value)


def test_category_missing_from_the_policy_is_an_error_unless_held_out(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("categories:\n  C12: block\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="C12 .*not in the policy"):
        ProGuard(backend=_scripted("x"), config=p)
    p.write_text("hold_out: [C8]\ncategories:\n  C8S1: allow\n", encoding="utf-8")
    guard = ProGuard(backend=_scripted("x"), config=p)
    assert "C8" not in guard.taxonomy  # the file's hold-out shapes the policy shown to the model


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read policy file"):
        ProGuard(backend=_scripted("x"), config=tmp_path / "nope.yaml")


def _scored(category: str, p_unsafe: float | None) -> Verdict:
    return Verdict(modality=Modality.TEXT, request="unsafe", response=None, category_id=category,
                   scores=None if p_unsafe is None else {"request_unsafe": p_unsafe}, judge="lite")


def test_thresholds_apply_to_judges_with_scores_only(policy_file):
    pol = load_config(policy_file).to_policy()
    low = pol.decide(_scored("C9S1", 0.3))
    assert low.allowed and "below the policy threshold 0.4" in low.reason
    assert pol.decide(_scored("C9S1", 0.6)).status == "blocked"
    assert pol.decide(_scored("C9S1", None)).status == "blocked"  # no scores: the verdict stands


def test_request_only_check_does_not_claim_a_response_was_judged():
    guard = ProGuard(backend=_scripted("<answer>\nRequest:safe\nResponse:safe\nCategory:None\n</answer>"))
    assert guard.check("hello").reason == "request judged safe"
    assert guard.check("hello", "hi there").reason == "request and response judged safe"
