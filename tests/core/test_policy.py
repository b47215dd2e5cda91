import pytest

from proguard_rails import AnswerParseError, BackendTimeoutError, Policy, UnjudgeableInputError
from proguard_rails.protocol import format_answer, parse_answer


def v(request="unsafe", response="safe", category="C8S1", modality="text"):
    return parse_answer(format_answer(modality, request, response, category), modality)


def test_default_blocks_every_unsafe_and_allows_safe():
    p = Policy()
    assert p.decide(v("safe", "safe", None)).status == "allowed"
    d = p.decide(v())
    assert d.status == "blocked" and not d.allowed and "C8S1" in d.reason
    assert p.decide(v("safe", "unsafe", "C3S1")).blocked


def test_out_of_policy_blocks_by_default_and_can_be_allowed():
    oop = v(category="Organ trafficking scheme")
    assert oop.is_out_of_policy
    d = Policy().decide(oop)
    assert d.blocked and "out-of-policy" in d.reason and d.is_out_of_policy and d.description
    assert Policy(out_of_policy="allow").decide(oop).allowed


def test_allow_and_block_lists_with_main_category_prefix():
    assert Policy(allow_categories={"C8"}).decide(v(category="C8S1")).allowed
    assert Policy(allow_categories={"C8S2"}).decide(v(category="C8S1")).blocked
    assert Policy(block_categories={"C3"}).decide(v(category="C8S1")).allowed
    assert Policy(block_categories={"C3"}).decide(v(category="C3S2")).blocked
    # a bare main-category answer does not match a subcategory allowlist entry
    assert Policy(allow_categories={"C8S1"}).decide(v(category="C8")).blocked
    with pytest.raises(ValueError):
        Policy(allow_categories={"weapons"})


def test_label_selection():
    resp_only = v("unsafe", "safe", "C8S1")
    assert Policy(labels="response").decide(resp_only).allowed
    assert Policy(labels="request").decide(resp_only).blocked
    assert Policy(labels="request").decide(v("safe", "unsafe", "C8S1")).allowed


def test_unknown_category_and_id_outside_policy():
    unsafe_no_cat = v(category=None)
    assert Policy().decide(unsafe_no_cat).blocked
    assert Policy(unknown_category="allow").decide(unsafe_no_cat).allowed


def test_errors_fail_closed_by_default_and_open_when_configured(caplog):
    err = AnswerParseError("no <answer> block", raw="gibberish")
    d = Policy().decide_error(err)
    assert d.status == "error" and d.blocked and d.fail_mode_applied == "closed"
    assert d.raw == "gibberish" and d.error_type == "parse"
    with caplog.at_level("WARNING", logger="proguard_rails.policy"):
        d = Policy(fail_mode="open").decide_error(BackendTimeoutError("slow"))
    assert d.status == "error" and d.allowed and d.fail_mode_applied == "open"
    assert any("fail_mode is open" in r.message for r in caplog.records)


def test_unjudgeable_follows_its_own_setting():
    e = UnjudgeableInputError("lite cannot judge images")
    assert Policy().decide_error(e).blocked
    assert Policy(unjudgeable="allow").decide_error(e).allowed


def test_decision_to_dict_has_cli_fields():
    d = Policy().decide(v(category="Organ trafficking scheme")).to_dict()
    for key in ("decision", "request", "response", "category", "out_of_policy", "description", "error"):
        assert key in d
    assert d["decision"] == "block" and d["out_of_policy"] is True


def test_input_errors_block_even_in_fail_open_mode():
    from proguard_rails import ImageError

    bomb = ImageError("refused as a decompression bomb")
    d = Policy(fail_mode="open").decide_error(bomb)
    assert d.status == "error" and d.blocked and d.fail_mode_applied == "closed"
    d = Policy(fail_mode="open", input_errors="fail_mode").decide_error(bomb)
    assert d.allowed and d.fail_mode_applied == "open"
