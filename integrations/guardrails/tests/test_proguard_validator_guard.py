"""Real Guard / AsyncGuard objects: every on_fail action, async, Runnables, input validation.

The guard behind the validator is scripted (allow/block logic only); Guardrails itself is real.
"""

from __future__ import annotations

import pytest
from guardrails import AsyncGuard, Guard, OnFailAction
from guardrails.errors import ValidationError
from guardrails_ai.proguard import DEFAULT_REFUSAL, ProGuardValidator

from .conftest import OOP_MARKER, UNSAFE_REQUEST, UNSAFE_RESPONSE

SAFE = "Paris is the capital of France."
UNSAFE = f"Sure. First, {UNSAFE_RESPONSE} to the battery."
META = {"request": "How do fireworks work?"}


def _guard(make_validator, on_fail):  # type: ignore[no-untyped-def]
    return Guard().use(make_validator(on_fail=on_fail))


def test_scripted_safe_output_passes_unchanged(make_validator):  # type: ignore[no-untyped-def]
    out = _guard(make_validator, "exception").validate(SAFE, metadata=META)
    assert out.validation_passed and out.validated_output == SAFE


def test_scripted_on_fail_exception_raises(make_validator):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=r"ProGuard judged the response unsafe: C8S1"):
        _guard(make_validator, OnFailAction.EXCEPTION).validate(UNSAFE, metadata=META)


def test_scripted_on_fail_fix_returns_the_refusal(make_validator):  # type: ignore[no-untyped-def]
    g = _guard(make_validator, "fix")
    out = g.validate(UNSAFE, metadata=META)
    assert out.validated_output == DEFAULT_REFUSAL and out.validation_passed
    (summary,) = out.validation_summaries
    assert summary.validator_status == "fail" and "C8S1" in summary.failure_reason
    logs = g.history.last.iterations.last.outputs.validator_logs
    assert logs[0].validation_result.metadata["category_id"] == "C8S1"


def test_scripted_on_fail_filter_and_refrain_withhold_the_output(make_validator):  # type: ignore[no-untyped-def]
    for action in ("filter", "refrain"):
        out = _guard(make_validator, action).validate(UNSAFE, metadata=META)
        assert out.validated_output is None and out.validation_passed is False


def test_scripted_on_fail_noop_keeps_value_but_reports_failure(make_validator):  # type: ignore[no-untyped-def]
    out = _guard(make_validator, "noop").validate(UNSAFE, metadata=META)
    assert out.validated_output == UNSAFE and out.validation_passed is False
    assert out.validation_summaries[0].validator_status == "fail"


def test_scripted_on_fail_reask_asks_the_llm_again_with_the_reason(make_validator):  # type: ignore[no-untyped-def]
    calls: list[list[dict]] = []

    def llm(*, messages=None, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(messages)
        return UNSAFE if len(calls) == 1 else SAFE

    g = _guard(make_validator, "reask")
    out = g(llm_api=llm, messages=[{"role": "user", "content": "How do fireworks work?"}], num_reasks=1,
            metadata=META)
    assert len(calls) == 2 and out.validated_output == SAFE and out.validation_passed
    reask_prompt = calls[1][-1]["content"]
    assert "ProGuard judged the response unsafe: C8S1" in reask_prompt and UNSAFE in reask_prompt


def test_scripted_on_fail_fix_reask_rechecks_the_refusal(make_validator, scripted_guard):  # type: ignore[no-untyped-def]
    backend = scripted_guard.judge.backend
    out = _guard(make_validator, "fix_reask").validate(UNSAFE, metadata=META)
    assert out.validated_output == DEFAULT_REFUSAL and out.validation_passed
    # the refusal was judged too, still with the request as context
    assert DEFAULT_REFUSAL in backend.prompts[-1].user_text and META["request"] in backend.prompts[-1].user_text


def test_scripted_custom_on_fail_callable(make_validator):  # type: ignore[no-untyped-def]
    seen = []

    def handler(value, fail_result):  # type: ignore[no-untyped-def]
        seen.append(fail_result.metadata["category_id"])
        return "[redacted]"

    out = Guard().use(make_validator(on_fail=handler)).validate(UNSAFE, metadata=META)
    assert out.validated_output == "[redacted]" and seen == ["C8S1"]


async def test_scripted_async_guard(make_validator):  # type: ignore[no-untyped-def]
    g = AsyncGuard().use(make_validator(on_fail="fix"))
    out = await g.validate(UNSAFE, metadata=META)
    assert out.validated_output == DEFAULT_REFUSAL
    out = await g.validate(SAFE, metadata=META)
    assert out.validated_output == SAFE and out.validation_passed
    with pytest.raises(ValidationError):
        await AsyncGuard().use(make_validator(on_fail="exception")).validate(UNSAFE, metadata=META)


async def test_scripted_sync_guard_inside_running_loop(make_validator):  # type: ignore[no-untyped-def]
    # Guardrails falls back to sequential validation inside a running loop; the sync path still works.
    with pytest.warns(UserWarning, match="event loop"):
        out = _guard(make_validator, "fix").validate(UNSAFE, metadata=META)
    assert out.validated_output == DEFAULT_REFUSAL


def test_scripted_guard_to_runnable(make_validator):  # type: ignore[no-untyped-def]
    from langchain_core.messages import AIMessage

    runnable = Guard().use(make_validator(on_fail="fix")).to_runnable()
    assert runnable.invoke(SAFE) == SAFE
    assert runnable.invoke(UNSAFE) == DEFAULT_REFUSAL
    assert runnable.invoke(AIMessage(content=UNSAFE)).content == DEFAULT_REFUSAL
    strict = Guard().use(make_validator(on_fail="exception")).to_runnable()
    with pytest.raises(ValidationError):
        strict.invoke(UNSAFE)


def test_scripted_validator_to_runnable_uses_with_metadata(make_validator, scripted_guard):  # type: ignore[no-untyped-def]
    v = make_validator(on_fail="exception").with_metadata({"request": "chain question"})
    runnable = v.to_runnable()
    assert runnable.invoke(SAFE) == SAFE
    assert "chain question" in scripted_guard.judge.backend.prompts[-1].user_text
    with pytest.raises(ValidationError, match="C8S1"):
        runnable.invoke(UNSAFE)


def test_scripted_input_validation_on_messages_stops_the_llm_call(make_validator):  # type: ignore[no-untyped-def]
    calls = []

    def llm(*, messages=None, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(messages)
        return SAFE

    g = Guard().use(make_validator(judge_as="request", on_fail="exception"), on="messages")
    with pytest.raises(ValidationError):
        g(llm_api=llm, messages=[{"role": "user", "content": f"Explain how to {UNSAFE_REQUEST}"}])
    assert calls == []
    out = g(llm_api=llm, messages=[{"role": "user", "content": "Capital of France?"}])
    assert out.validated_output == SAFE and len(calls) == 1


def test_scripted_validator_call_shortcut(make_validator):  # type: ignore[no-untyped-def]
    assert make_validator(on_fail="fix")(UNSAFE) == DEFAULT_REFUSAL
    assert make_validator(on_fail="fix")(SAFE) == SAFE


def test_validator_composes_with_other_validators(make_validator):  # type: ignore[no-untyped-def]
    from guardrails.validator_base import FailResult, PassResult, Validator, register_validator

    @register_validator(name="tests/short", data_type="string")
    class Short(Validator):
        def _validate(self, value, metadata):  # type: ignore[no-untyped-def]
            return PassResult() if len(value) < 200 else FailResult(error_message="too long")

    g = Guard().use(Short(on_fail="exception"), make_validator(on_fail="exception"))
    assert g.validate(SAFE, metadata=META).validation_passed
    with pytest.raises(ValidationError, match="ProGuard"):
        g.validate(UNSAFE, metadata=META)


def test_get_args_are_plain_settings():
    v = ProGuardValidator(base_url="http://127.0.0.1:9/v1", refusal="No.", on_fail="fix")
    args = v.get_args()
    assert args["refusal"] == "No." and args["use_local"] is True and args["judge_as"] == "response"


# ------------------------------------------------------------------ the out-of-policy name, end to end
OOP_TEXT = f"Try {OOP_MARKER} for your insulin."
OOP_NAME = "Astrology-based medication dosing"


def _last_result(guard):  # type: ignore[no-untyped-def]
    logs = guard.history.last.iterations.last.validator_logs
    return logs[-1].validation_result


def test_scripted_out_of_policy_name_reaches_every_guard_outcome(make_validator):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=OOP_NAME):
        _guard(make_validator, "exception").validate(OOP_TEXT, metadata=META)
    guard = _guard(make_validator, "noop")
    out = guard.validate(OOP_TEXT, metadata=META)
    assert out.validation_passed is False
    (summary,) = out.validation_summaries
    assert OOP_NAME in summary.failure_reason and "outside the configured policy" in summary.failure_reason
    md = _last_result(guard).metadata
    assert md["is_out_of_policy"] is True and md["description"] == OOP_NAME
    assert md["proguard"]["out_of_policy"] is True and md["proguard"]["description"] == OOP_NAME
    fixed = _guard(make_validator, "fix").validate(OOP_TEXT, metadata=META)
    assert fixed.validated_output == DEFAULT_REFUSAL


async def test_scripted_out_of_policy_name_reaches_async_and_stream_outcomes(make_validator):  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=OOP_NAME):
        await AsyncGuard().use(make_validator(on_fail="exception")).validate(OOP_TEXT, metadata=META)

    def llm(*, messages=None, **kwargs):  # type: ignore[no-untyped-def]
        yield from ["Fine so far. ", f"Now {OOP_MARKER}. ", "More."]

    guard = Guard().use(make_validator(on_fail="noop"))
    outs = list(guard(llm_api=llm, messages=[{"role": "user", "content": "dosing?"}], stream=True))
    assert outs[-1].validation_passed is False
    failed = [log.validation_result for log in guard.history.last.iterations.last.validator_logs
              if log.validation_result is not None and log.validation_result.outcome == "fail"]
    assert failed and all(r.metadata["description"] == OOP_NAME for r in failed)
    assert OOP_NAME in failed[0].error_message
