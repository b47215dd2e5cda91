"""The validator on its own: results, metadata, requests, images, errors (scripted guard)."""

from __future__ import annotations

import io

import pytest
from guardrails.validator_base import FailResult, PassResult, validators_registry
from guardrails_ai.proguard import DEFAULT_REFUSAL, ProGuardValidator
from guardrails_ai.proguard.main import sentence_cut

from proguard_rails import BackendTimeoutError, ConfigurationError, Policy, ProGuard, ScriptedBackend

from .conftest import OOP_MARKER, UNSAFE_REQUEST, UNSAFE_RESPONSE


def _png(size: tuple[int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (90, 20, 160)).save(buf, format="PNG")
    return buf.getvalue()


def test_registered_as_proguard_proguard():
    assert validators_registry["proguard/proguard"] is ProGuardValidator
    assert ProGuardValidator.rail_alias == "proguard/proguard"


def test_scripted_safe_response_passes(make_validator):  # type: ignore[no-untyped-def]
    res = make_validator().validate("Paris is the capital of France.", {"request": "Capital of France?"})
    assert isinstance(res, PassResult)
    assert res.metadata["decision_status"] == "allowed" and res.metadata["request"] == "Capital of France?"


def test_scripted_unsafe_response_fails_with_category_metadata(make_validator, scripted_guard):  # type: ignore[no-untyped-def]
    value = "First, wire the detonator to the battery."
    res = make_validator().validate(value, {"prompt": "how do fireworks work?"})
    assert isinstance(res, FailResult)
    assert res.error_message == "ProGuard judged the response unsafe: C8S1 (Dangerous Goods / Weapons)."
    assert res.fix_value == DEFAULT_REFUSAL
    md = res.metadata
    assert md["category_id"] == "C8S1" and md["category_name"] == "Dangerous Goods"
    assert md["subcategory_name"] == "Weapons" and md["is_out_of_policy"] is False
    assert md["description"] is None and md["decision_status"] == "blocked"
    assert md["proguard"]["response"] == "unsafe" and md["prompt"] == "how do fireworks work?"
    assert res.error_spans[0].start == 0 and res.error_spans[0].end == len(value)
    # the request from metadata was judged with the response
    assert "how do fireworks work?" in scripted_guard.judge.backend.prompts[-1].user_text


def test_scripted_out_of_policy_risk_is_reported(make_validator):  # type: ignore[no-untyped-def]
    res = make_validator().validate(f"Try {OOP_MARKER} for your insulin.", {})
    assert isinstance(res, FailResult)
    assert res.metadata["is_out_of_policy"] is True and res.metadata["category_id"] is None
    assert res.metadata["description"] == "Astrology-based medication dosing"
    assert "outside the configured policy" in res.error_message
    assert "Astrology-based medication dosing" in res.error_message


def test_scripted_refused_harmful_request_passes_as_response(make_validator):  # type: ignore[no-untyped-def]
    # judge_as="response" judges the response label only: a refusal of a harmful request is safe.
    res = make_validator().validate("I can't help with that.", {"request": f"how to {UNSAFE_REQUEST}"})
    assert isinstance(res, PassResult)
    assert res.metadata["proguard"]["request"] == "unsafe"


def test_scripted_judge_as_request(make_validator):  # type: ignore[no-untyped-def]
    v = make_validator(judge_as="request")
    assert isinstance(v.validate("What is the capital of France?", {}), PassResult)
    res = v.validate(f"Explain how to {UNSAFE_REQUEST}", {})
    assert isinstance(res, FailResult) and res.error_message.startswith("ProGuard judged the request unsafe")


def test_scripted_request_from_chat_messages(make_validator, scripted_guard):  # type: ignore[no-untyped-def]
    msgs = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"}, {"role": "user", "content": "latest question"}]
    make_validator().validate("an answer", {"messages": msgs})
    text = scripted_guard.judge.backend.prompts[-1].user_text
    assert "latest question" in text and "earlier question" in text and "an answer" in text
    assert "be nice" in text  # system messages are judged with the conversation by default (issue 13)


def test_scripted_images_from_metadata(make_validator, scripted_guard, tmp_path):  # type: ignore[no-untyped-def]
    backend = scripted_guard.judge.backend
    v = make_validator()
    bad = _png((13, 9))
    res = v.validate("Here is the picture you asked for.", {"request": "draw", "images": [bad]})
    assert isinstance(res, FailResult) and res.metadata["category_id"] == "C11S2"
    assert str(backend.prompts[-1].modality) == "text-image"
    good = tmp_path / "ok.png"
    good.write_bytes(_png((20, 20)))
    assert isinstance(v.validate("A chart.", {"image": str(good)}), PassResult)  # a trusted local path
    refused = make_validator(allow_image_paths=False).validate("A chart.", {"image": str(good)})
    assert isinstance(refused, FailResult) and refused.metadata["decision_status"] == "error"
    assert "image" in refused.error_message


def test_scripted_guard_error_fails_closed_and_can_fail_open(make_validator):  # type: ignore[no-untyped-def]
    broken = ScriptedBackend(default=BackendTimeoutError("deadline passed"))
    res = make_validator(guard=ProGuard(backend=broken)).validate("hello", {})
    assert isinstance(res, FailResult) and res.metadata["decision_status"] == "error"
    assert res.metadata["category_id"] is None
    assert "could not judge" in res.error_message and "fail_mode" in res.error_message
    opened = make_validator(guard=ProGuard(backend=broken, fail_mode="open")).validate("hello", {})
    assert isinstance(opened, PassResult) and opened.metadata["decision_status"] == "error"


def test_scripted_block_categories_and_policy(make_validator):  # type: ignore[no-untyped-def]
    value = f"Then {UNSAFE_RESPONSE}."
    assert isinstance(make_validator(block_categories=["C1"]).validate(value, {}), PassResult)
    assert isinstance(make_validator(block_categories=["C8"]).validate(value, {}), FailResult)
    allow = Policy(allow_categories=frozenset({"C8S1"}))
    assert isinstance(make_validator(policy=allow).validate(value, {}), PassResult)


def test_scripted_callable_refusal_and_with_metadata(make_validator, scripted_guard):  # type: ignore[no-untyped-def]
    v = make_validator(refusal=lambda value, d: f"[withheld: {d.category_id}]")
    v.with_metadata({"request": "default request"})
    res = v.validate(f"ok, {UNSAFE_RESPONSE}", {})
    assert res.fix_value == "[withheld: C8S1]"
    assert "default request" in scripted_guard.judge.backend.prompts[-1].user_text


async def test_scripted_native_async_validate(make_validator):  # type: ignore[no-untyped-def]
    v = make_validator()
    ok, bad = await v.async_validate("fine", {}), await v.async_validate(UNSAFE_RESPONSE, {})
    assert isinstance(ok, PassResult) and isinstance(bad, FailResult)


def test_never_uses_hosted_inference(make_validator):  # type: ignore[no-untyped-def]
    v = make_validator()
    assert v.use_local is True
    with pytest.raises(ConfigurationError, match="never sends content to a hosted"):
        v._inference_remote("anything")


def test_guard_is_built_lazily_from_settings(monkeypatch):  # type: ignore[no-untyped-def]
    v = ProGuardValidator(base_url="http://127.0.0.1:9/v1", model="proguard", on_fail="noop")
    assert v._guard is None  # Guard().use(...) builds nothing
    assert v.get_args()["base_url"] == "http://127.0.0.1:9/v1" and "guard" not in v.get_args()
    assert v.guard.settings.base_url == "http://127.0.0.1:9/v1"


def test_guard_settings_reach_the_guard_and_secrets_stay_out_of_args():
    v = ProGuardValidator(guard_settings={"base_url": "http://127.0.0.1:9/v1", "timeout": 7, "api_key": "sk-x"})
    assert "api_key" not in v.get_args()["guard_settings"] and "sk-x" not in v.to_prompt()
    s = v.guard.settings
    assert s.base_url == "http://127.0.0.1:9/v1" and s.timeout == 7 and s.api_key_value() == "sk-x"


def test_invalid_arguments():
    with pytest.raises(ConfigurationError):
        ProGuardValidator(judge_as="both")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        ProGuardValidator(stream_max_chars=0)


@pytest.mark.parametrize(
    ("pending", "cut"),
    [
        ("Hello there", 0),
        ("Hello there.", 12),
        ("Hello there. How", 12),
        ("One. Two! Three? Four", 16),
        ('He said "stop." Then', 15),
        ("line one\nline two", 9),
        ("3.14 is pi", 0),
    ],
)
def test_sentence_cut(pending, cut):  # type: ignore[no-untyped-def]
    assert sentence_cut(pending, 600) == cut


def test_sentence_cut_bounds_text_without_punctuation():
    text = "word " * 50
    cut = sentence_cut(text, 40)
    assert 20 < cut <= 40 and text[cut - 1] == " "
    assert sentence_cut("x" * 50, 40) == 40
